"""Architectures by name, built from a JSON-able spec (timm's and segmentation_models_pytorch's rule:
a model is wiring only, so a checkpoint needs no pickled code to be rebuilt).

An architecture name is a family plus, for families with several members, a member after a colon:

    unet            edgeseg's own U-Net (edgeseg.models.unet), the default
    smp:<arch>      a segmentation_models_pytorch architecture (edgeseg.models.smp), e.g. smp:unet
    imported        a module captured by `edgeseg.import_model` (edgeseg.models.imported)

Each family is one small module, imported only when one of its models is built (SMP's import is
heavy and optional), exposing

    check(spec) -> None                 InputError for arguments the family does not accept
    build(spec, extra) -> nn.Module     the network, random weights (`extra`: what the file carries)
    stride(spec) -> int                 the factor the input's height and width must divide by
    describe(spec) -> str               one line for people, e.g. "smp:unet(encoder=resnet18)"
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

from edgeseg._records import Record
from edgeseg.errors import InputError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "FAMILIES",
    "ModelSpec",
    "arch_names",
    "build_model",
    "family_of",
    "register_family",
    "round_to_stride",
]

# Bounds of a stored spec (a file's numbers must not size a network that fills the memory).
MAX_CHANNELS, MAX_CLASSES = 64, 65536

# family name -> module implementing it; register_family adds more (e.g. a plug-in's own family).
FAMILIES: dict[str, str] = {
    "unet": "edgeseg.models.unet",
    "smp": "edgeseg.models.smp",
    "imported": "edgeseg.models.imported",
}


def register_family(name: str, module: str) -> None:
    """Make architectures `name` / `name:<member>` build through `module` (see this module's doc)."""
    FAMILIES[name] = module


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a network: the architecture's name, its input channels and
    classes, and the family's own arguments (JSON values only). Stored in checkpoints (version 2)
    and in bundle manifests."""

    arch: str = "unet"
    in_channels: int = 3
    classes: int = 2
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.in_channels < 1:
            raise InputError(f"in_channels must be >= 1, got {self.in_channels}")
        if self.classes < 1:
            raise InputError(f"classes must be >= 1, got {self.classes}")
        object.__setattr__(self, "kwargs", dict(self.kwargs))

    @property
    def family(self) -> str:
        return self.arch.split(":", 1)[0]

    @property
    def member(self) -> str | None:
        """The part after the colon (`unet` in `smp:unet`), None for single-member families."""
        return self.arch.split(":", 1)[1] if ":" in self.arch else None

    @property
    def stride(self) -> int:
        """The factor the input's height and width must divide by (from the architecture)."""
        return int(family_of(self).stride(self))

    def describe(self) -> str:
        return str(family_of(self).describe(self))

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "in_channels": self.in_channels,
            "classes": self.classes,
            "kwargs": dict(self.kwargs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "the model spec") -> ModelSpec:
        """A spec from `to_dict()`'s output, or from a version-1 checkpoint's UNetConfig dict
        (no "arch": edgeseg's U-Net with depth/width/upsample at the top level)."""
        r = Record(data, where, "re-copy or re-train the model")
        channels = r.integer("in_channels", minimum=1, maximum=MAX_CHANNELS)
        classes = r.integer("classes", minimum=1, maximum=MAX_CLASSES)
        if "arch" not in data:
            kwargs = {k: data[k] for k in ("depth", "width", "upsample") if k in data}
            return cls("unet", channels, classes, kwargs)
        return cls(r.text("arch"), channels, classes, dict(r.plain("kwargs")))


def arch_names() -> list[str]:
    """The families' names as `--arch` takes them (`smp:<arch>` for SMP's members)."""
    return [f"{name}:<arch>" if name == "smp" else name for name in FAMILIES]


def family_of(spec: ModelSpec) -> ModuleType:
    """The module implementing `spec.arch`'s family; InputError listing the known ones otherwise."""
    module = FAMILIES.get(spec.family)
    if module is None:
        raise InputError(f"unknown architecture '{spec.arch}'; choose from {', '.join(arch_names())}")
    return importlib.import_module(module)


def build_model(spec: ModelSpec, extra: Mapping[str, Any] | None = None) -> nn.Module:
    """The network `spec` describes, with random weights, in train mode (call `.eval()` to run it).

    `extra` is what a model file carries besides weights (an imported module's program). Raises
    InputError for an unknown architecture or arguments it does not accept, MissingDependencyError
    when the family's optional package is not installed.
    """
    family = family_of(spec)
    family.check(spec)
    return family.build(spec, dict(extra or {}))


def round_to_stride(n: int, stride: int) -> int:
    """The multiple of `stride` nearest to `n` (at least `stride`)."""
    return max(stride, round(n / stride) * stride)
