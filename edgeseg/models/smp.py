"""`smp:<arch>`: segmentation_models_pytorch architectures (Unet, FPN, DeepLabV3+, Linknet, ...).

Wiring only: the spec names SMP's architecture and encoder, and SMP builds the network with random
weights (`encoder_weights=None`); pretrained encoder weights are applied once, when training starts
(`init_encoder`), and from then on live in the checkpoint's state dict. SMP and timm are the optional
extra `smp`, imported only when an `smp:` model is built.

The input-size rule is SMP's own: height and width must divide by the encoder's `output_stride`
(32 for a 5-level encoder, 16 or 8 where DeepLab dilates the last stages instead of striding).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from edgeseg._paths import folder_not_file
from edgeseg.errors import InputError, MissingDependencyError, first_line

if TYPE_CHECKING:
    from torch import nn

    from edgeseg.models.registry import ModelSpec

__all__ = ["DEFAULT_ENCODER", "EDGE_ENCODERS", "check", "init_encoder", "smp_archs"]

DEFAULT_ENCODER = "resnet18"
# Small encoders that suit edge devices (documented; any encoder SMP accepts works).
EDGE_ENCODERS = ("resnet18", "resnet34", "mobilenet_v2", "efficientnet-b0", "mobileone_s0")
_KWARGS = ("encoder",)
_strides: dict[tuple[str, str], int] = {}


def _smp() -> ModuleType:
    try:
        import segmentation_models_pytorch
    except ImportError as exc:
        raise MissingDependencyError("segmentation-models-pytorch", "smp", "an smp: architecture") from exc
    return segmentation_models_pytorch


def smp_archs() -> list[str]:
    """SMP's architecture names as `smp:<arch>` takes them (lower case)."""
    return sorted(_smp().MODEL_ARCHITECTURES_MAPPING)


def _encoder(spec: ModelSpec) -> str:
    return str(spec.kwargs.get("encoder", DEFAULT_ENCODER))


def check(spec: ModelSpec) -> None:
    """InputError naming the valid choices for an unknown SMP architecture or encoder."""
    smp = _smp()
    archs = smp_archs()
    if spec.member not in archs:
        raise InputError(
            f"unknown architecture '{spec.arch}'; choose from {', '.join('smp:' + a for a in archs)}"
        )
    unknown = sorted(set(spec.kwargs) - set(_KWARGS))
    if unknown:
        raise InputError(f"'{spec.arch}' does not take {', '.join(unknown)}; it takes --encoder")
    encoder = _encoder(spec)
    names = smp.encoders.get_encoder_names()
    if encoder.startswith("tu-"):  # any timm model through SMP's universal encoder
        import timm

        if timm.is_model(encoder[3:]):
            return
    elif encoder in names:
        return
    raise InputError(
        f"unknown --encoder '{encoder}' for {spec.arch}; choose from {', '.join(names)} (or tu-<timm model>)"
    )


def build(spec: ModelSpec, extra: dict[str, Any], weights: str | None = None) -> nn.Module:
    """The network with random weights, or with SMP's pretrained encoder when `weights` names one."""
    smp = _smp()
    try:
        return smp.create_model(
            str(spec.member),
            encoder_name=_encoder(spec),
            encoder_weights=weights,
            in_channels=spec.in_channels,
            classes=spec.classes,
        )
    except (ValueError, KeyError, TypeError) as exc:  # SMP's refusal of an argument combination
        raise InputError(f"{spec.arch} with encoder {_encoder(spec)}: {first_line(exc)}") from None


def stride(spec: ModelSpec) -> int:
    """The encoder's output stride, read from the network SMP builds (on the meta device: no memory,
    no weights), so the rule is SMP's own, never a table of ours."""
    key = (str(spec.member), _encoder(spec))
    if key not in _strides:
        import torch

        check(spec)
        with torch.device("meta"):
            model = build(spec, {})
        _strides[key] = int(model.encoder.output_stride)
    return _strides[key]


def describe(spec: ModelSpec) -> str:
    return f"{spec.arch}(encoder={_encoder(spec)})"


def init_encoder(model: nn.Module, spec: ModelSpec, weights: str) -> nn.Module:
    """Apply `--encoder-weights` to a freshly built model: "none" leaves it random, "imagenet" (or
    another name SMP knows) rebuilds it with SMP's download, a FILE (.pt/.pth state dict read with
    weights_only=True, or .safetensors) is loaded into the encoder, strictly."""
    if weights.lower() == "none":
        return model
    path = Path(weights)
    if path.suffix.lower() not in (".pt", ".pth", ".safetensors"):
        try:
            return build(spec, {}, weights=weights)
        except OSError as exc:  # no network, a proxy, a full disk
            raise InputError(
                f"cannot download '{weights}' weights for encoder {_encoder(spec)} ({first_line(exc)}); "
                "on an offline machine pass --encoder-weights FILE (a .pt/.pth/.safetensors state dict)"
            ) from None
    state = _read_state(path)
    encoder = model.encoder  # type: ignore[union-attr]
    # A whole SMP model's state dict works too: its encoder's keys carry the "encoder." prefix.
    if not any(k in encoder.state_dict() for k in state) and any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    try:
        # strict, through the encoder's own load_state_dict (SMP's drop a classifier's "fc." keys)
        encoder.load_state_dict(state, strict=True)
    except RuntimeError:
        have = set(encoder.state_dict())
        missing, unexpected = sorted(have - set(state)), sorted(set(state) - have)
        raise InputError(
            f"--encoder-weights '{path}' does not fit encoder {_encoder(spec)}: {len(missing)} missing "
            f"keys (e.g. {', '.join(missing[:3]) or '-'}), {len(unexpected)} unexpected "
            f"(e.g. {', '.join(unexpected[:3]) or '-'}); pass weights saved from this encoder"
        ) from None
    return model


def _read_state(path: Path) -> dict[str, Any]:
    if path.is_dir():
        raise InputError(
            folder_not_file(
                path,
                "--encoder-weights",
                "a weights file (.pt, .pth or .safetensors)",
                (".pt", ".pth", ".safetensors"),
                bundles=False,
            )
        )
    if not path.is_file():
        raise InputError(f"--encoder-weights file '{path}' does not exist")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError as exc:
        raise MissingDependencyError("safetensors", "smp", "reading .safetensors weights") from exc
    except Exception as exc:  # the weights-only unpickler's refusal, a truncated or foreign file
        raise InputError(
            f"cannot read --encoder-weights '{path}' as a state dict of tensors ({first_line(exc)})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(hasattr(v, "shape") for v in state.values()):
        raise InputError(f"--encoder-weights '{path}' is not a state dict (a mapping of names to tensors)")
    return state
