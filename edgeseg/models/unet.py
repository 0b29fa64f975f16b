"""The U-Net: a plain, export-friendly encoder-decoder with skip connections.

Every shape is a function of the input shape alone (fixed kernel sizes, strides and scale factors,
no cropping), so the graph exports to ONNX with static or dynamic H/W and runs on every backend.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn

from edgeseg.errors import InputError
from edgeseg.models.registry import ModelSpec, round_to_stride

__all__ = ["UNet", "UNetConfig", "round_to_stride"]

Upsample = Literal["transpose", "bilinear"]


@dataclass(frozen=True)
class UNetConfig:
    """Everything needed to rebuild a `UNet` (stored in checkpoints and manifests)."""

    in_channels: int = 3
    classes: int = 2
    depth: int = 4
    width: int = 32
    upsample: Upsample = "transpose"

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {self.in_channels}")
        if self.classes < 1:
            raise ValueError(f"classes must be >= 1, got {self.classes}")
        if not 1 <= self.depth <= 6:
            raise ValueError(f"depth must be between 1 and 6, got {self.depth}")
        if self.width < 1:
            raise ValueError(f"width must be >= 1, got {self.width}")
        if self.upsample not in ("transpose", "bilinear"):
            raise ValueError(f"upsample must be 'transpose' or 'bilinear', got {self.upsample!r}")

    @property
    def stride(self) -> int:
        """The factor H and W of the input must divide by."""
        return 2**self.depth

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        known = {k: data[k] for k in ("in_channels", "classes", "depth", "width", "upsample") if k in data}
        return cls(**known)


class DoubleConv(nn.Sequential):
    """(3x3 conv, batch norm, ReLU) twice; the conv has no bias because BN follows it."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class Down(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.MaxPool2d(2), DoubleConv(cin, cout))


class Up(nn.Module):
    """Upsample by 2, concatenate the skip connection, DoubleConv."""

    def __init__(self, cin: int, cskip: int, cout: int, mode: Upsample) -> None:
        super().__init__()
        if mode == "transpose":
            self.up: nn.Module = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        else:
            # A fixed scale factor (not a target size) keeps the graph free of shape arithmetic.
            self.up = nn.Sequential(
                nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(cin, cin // 2, kernel_size=1),
            )
        self.conv = DoubleConv(cin // 2 + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """U-Net for semantic segmentation.

    Args:
        in_channels: image channels (1 for grayscale, 3 for colour).
        classes: number of output classes; the output is raw logits of shape (N, classes, H, W).
        depth: number of 2x downsamplings; input H and W must divide by ``2**depth``.
        width: channels of the first level; level ``i`` has ``width * 2**i``.
        upsample: ``"transpose"`` (learned ConvTranspose) or ``"bilinear"`` (resize + 1x1 conv).

    Example:
        >>> model = UNet(in_channels=3, classes=2, depth=4, width=32)
    """

    def __init__(
        self,
        in_channels: int = 3,
        classes: int = 2,
        depth: int = 4,
        width: int = 32,
        upsample: Upsample = "transpose",
    ) -> None:
        super().__init__()
        self.config = UNetConfig(in_channels, classes, depth, width, upsample)
        chans = [width * 2**i for i in range(depth + 1)]
        self.stem = DoubleConv(in_channels, chans[0])
        self.downs = nn.ModuleList(Down(chans[i], chans[i + 1]) for i in range(depth))
        self.ups = nn.ModuleList(
            Up(chans[i + 1], chans[i], chans[i], upsample) for i in reversed(range(depth))
        )
        self.head = nn.Conv2d(chans[0], classes, kernel_size=1)

    @classmethod
    def from_config(cls, config: UNetConfig) -> UNet:
        return cls(config.in_channels, config.classes, config.depth, config.width, config.upsample)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise ValueError with a clear message when `x` cannot go through the network."""
        cfg = self.config
        if x.dim() != 4:
            raise ValueError(f"UNet expects a 4-D tensor (N, C, H, W), got shape {tuple(x.shape)}")
        _, c, h, w = x.shape
        if c != cfg.in_channels:
            raise ValueError(f"UNet was built for {cfg.in_channels} input channels, got {c}")
        if h % cfg.stride or w % cfg.stride:
            raise ValueError(
                f"input height and width must divide by 2**depth = {cfg.stride}; got {h}x{w} (HxW). "
                f"Resize or pad to e.g. {round_to_stride(h, cfg.stride)}x{round_to_stride(w, cfg.stride)}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Tracing/export sees symbolic shapes; the check is for eager users.
        if not torch.compiler.is_compiling() and not torch.jit.is_tracing():
            self.check_input(x)
        skips = [self.stem(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        y = skips.pop()
        for up in self.ups:
            y = up(y, skips.pop())
        return self.head(y)


# The registry's family contract (edgeseg.models.registry): `unet` is this module's one member.
_KWARGS = ("depth", "width", "upsample")


def _config(spec: ModelSpec) -> UNetConfig:
    try:
        kwargs = {k: spec.kwargs[k] for k in _KWARGS if k in spec.kwargs}
        return UNetConfig(spec.in_channels, spec.classes, **kwargs)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def check(spec: ModelSpec) -> None:
    """InputError for arguments edgeseg's U-Net does not take."""
    if spec.member is not None:
        raise InputError(f"unknown architecture '{spec.arch}'; edgeseg's U-Net is plain 'unet'")
    unknown = sorted(set(spec.kwargs) - set(_KWARGS))
    if unknown:
        raise InputError(f"'unet' does not take {', '.join(unknown)}; it takes {', '.join(_KWARGS)}")
    _config(spec)


def build(spec: ModelSpec, extra: dict[str, Any]) -> UNet:
    return UNet.from_config(_config(spec))


def stride(spec: ModelSpec) -> int:
    return _config(spec).stride


def describe(spec: ModelSpec) -> str:
    c = _config(spec)
    return (
        f"UNet(in_channels={spec.in_channels}, classes={spec.classes}, depth={c.depth}, width={c.width}, "
        f"upsample={c.upsample})"
    )


def spec_of(config: UNetConfig) -> ModelSpec:
    """The registry spec of a `UNetConfig` (what version-2 checkpoints store)."""
    return ModelSpec("unet", config.in_channels, config.classes, {k: getattr(config, k) for k in _KWARGS})
