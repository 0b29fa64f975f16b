"""Checkpoints: one file with the model config, weights, preprocessing and training summary.

The file is written by ``torch.save`` but holds only tensors and plain containers of str/int/float,
and it is always read with ``torch.load(weights_only=True)``: a file that would need to unpickle
Python objects (and so could run code) is refused, never loaded.

Version 2 records the architecture by name with its arguments (`ModelSpec`, edgeseg.models.registry)
and, for an imported module, its program (JSON, edgeseg.models.imported); version-1 files (edgeseg's
U-Net config at the top of "model") still load, as `unet` specs.
"""

from __future__ import annotations

import json
import math
import pickle
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgeseg._io import atomic_open
from edgeseg._paths import CHECKPOINT_FILES, folder_not_file
from edgeseg._records import Record, parse_json
from edgeseg._version import __version__
from edgeseg.errors import InputError, first_line
from edgeseg.manifest import InputSpec
from edgeseg.models.registry import ModelSpec, build_model
from edgeseg.models.unet import UNetConfig, spec_of

FORMAT = "edgeseg.checkpoint"
VERSION = 2


@dataclass(frozen=True)
class Normalization:
    """How raw pixels become the network's input: x = (pixel / 255 - mean) / std, channel-wise."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    color_order: str = "RGB"  # order of the network's input channels ("GRAY" for one channel)
    resize: str = "stretch"  # how a frame of another size is brought to the input size

    @property
    def channels(self) -> int:
        return len(self.mean)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model plus everything needed to feed it."""

    model_config: ModelSpec  # a UNetConfig given here is converted to its spec
    class_names: list[str]
    normalization: Normalization
    img_size: tuple[int, int]  # (width, height) the model was trained at
    ignore_index: int | None = None
    training: dict[str, Any] = field(default_factory=dict)  # summary: epochs, best mIoU, data, seed...
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    train_state: dict[str, Any] | None = field(default=None, repr=False)  # optimizer etc. for --resume
    path: Path | None = None
    program: str | None = field(default=None, repr=False)  # an imported module's program (JSON)

    def __post_init__(self) -> None:
        if isinstance(self.model_config, UNetConfig):
            self.model_config = spec_of(self.model_config)

    @property
    def arch(self) -> str:
        return self.model_config.arch

    def meta(self) -> dict[str, Any]:
        """The JSON-serialisable description (no tensors)."""

        return {
            "edgeseg_version": __version__,
            "model": self.model_config.to_dict(),
            "class_names": list(self.class_names),
            "normalization": asdict(self.normalization),
            "img_size": list(self.img_size),
            "ignore_index": self.ignore_index,
            "training": self.training,
        }

    def input_spec(self, name: str, size_wh: tuple[int, int]) -> InputSpec:
        """The input of this checkpoint's network at `size_wh`, with its preprocessing."""
        cfg, norm = self.model_config, self.normalization
        return InputSpec(
            name=name,
            channels=cfg.in_channels,
            height=size_wh[1],
            width=size_wh[0],
            color_order=norm.color_order,
            mean=tuple(norm.mean),
            std=tuple(norm.std),
            resize=norm.resize,
            size_multiple=cfg.stride,
        )

    def build_model(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """The checkpoint's network (built through the registry) with its weights, in eval mode."""
        model = build_model(self.model_config, {"program": self.program, "state_dict": self.state_dict})
        if not getattr(model, "weights_from_file", False):  # an imported program has them already
            model.load_state_dict(self.state_dict)
        return model.to(device, memory_format=torch.channels_last).eval()

    def check_input(self, shape: tuple[int, ...]) -> None:
        """InputError naming the nearest valid size when an N x C x H x W input cannot go through."""
        from edgeseg.models.registry import round_to_stride

        spec = self.model_config
        if len(shape) != 4 or shape[1] != spec.in_channels:
            raise InputError(f"{spec.arch} takes N x {spec.in_channels} x H x W input; got {tuple(shape)}")
        h, w = int(shape[2]), int(shape[3])
        if spec.family == "imported":
            if (w, h) != tuple(self.img_size):
                raise InputError(
                    f"this imported model runs at {self.img_size[0]}x{self.img_size[1]} only (the size it "
                    f"was imported at); got {w}x{h}"
                )
            return
        s = spec.stride
        if h % s or w % s:
            raise InputError(
                f"input height and width must divide by {s} for {spec.describe()}; got {h}x{w} (HxW). "
                f"Resize or pad to e.g. {round_to_stride(h, s)}x{round_to_stride(w, s)}"
            )


def save_checkpoint(path: str | Path, ckpt: Checkpoint, model: torch.nn.Module | None = None) -> Path:
    """Write `ckpt` (weights taken from `model` when given) atomically to `path`."""
    state = model.state_dict() if model is not None else ckpt.state_dict
    payload: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        # JSON keeps the metadata readable by any tool and free of pickled objects.
        "meta": json.dumps(ckpt.meta()),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in state.items()},
    }
    if ckpt.train_state is not None:
        payload["train_state"] = ckpt.train_state
    if ckpt.program is not None:
        payload["program"] = ckpt.program
    path = Path(path)
    # Through a Python file object: a full disk is then the OSError(ENOSPC) of its write, where
    # torch.save(payload, path) would report it as "[enforce fail at inline_container.cc] unexpected pos".
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)
    return path


def load_checkpoint(path: str | Path, *, with_train_state: bool = False) -> Checkpoint:
    """Read a checkpoint written by `save_checkpoint`; refuses anything that needs unpickling code."""
    path = Path(path)
    if path.is_dir():
        raise InputError(
            folder_not_file(path, "checkpoint", "a checkpoint file (.pt)", CHECKPOINT_FILES, bundles=False)
        )
    if not path.is_file():
        raise InputError(f"checkpoint '{path}' does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore"
            )  # torch warns about foreign pickle protocols; we refuse them anyway
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # The weights-only unpickler says "GLOBAL" when the file names a Python object to import
        # (what could run code); any other complaint is bytes that are no pickle at all.
        if "GLOBAL" not in str(exc):
            raise InputError(
                f"cannot read checkpoint '{path}': not a PyTorch file or truncated (re-copy or re-train it)"
            ) from None
        raise InputError(
            f"refusing to load '{path}': it holds pickled Python objects that could run code when "
            f"loaded; edgeseg reads only its own checkpoints (tensors + JSON). Re-save the weights "
            f"with edgeseg.save_checkpoint from a trusted environment ({first_line(exc)})"
        ) from None
    except MemoryError:
        raise
    # Arbitrary bytes make torch's readers fail in many ways (KeyError on a text file, EOFError on
    # an empty one, BadZipFile, RuntimeError): all mean the same to the user.
    except Exception as exc:
        raise InputError(
            f"cannot read checkpoint '{path}': not a PyTorch file or truncated ({first_line(exc)})"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError(
            f"'{path}' is a PyTorch file but not an edgeseg checkpoint (no '{FORMAT}' header); "
            f"train with 'edgeseg train' or wrap the weights with edgeseg.save_checkpoint"
        )
    if payload.get("version", 0) > VERSION:
        raise InputError(
            f"checkpoint '{path}' has format version {payload['version']}, newer than this edgeseg "
            f"understands ({VERSION}); upgrade edgeseg"
        )
    where, advice = f"checkpoint '{path}'", "re-copy or re-train it"
    if not isinstance(payload.get("meta"), str):
        raise InputError(f"{where} is damaged: it has no metadata; {advice}")
    meta = Record(parse_json(payload["meta"], f"{where} (its metadata)", advice), where, advice)
    try:
        norm = meta.sub("normalization")
        ckpt = Checkpoint(
            model_config=ModelSpec.from_dict(meta.get("model", dict), f"{where} (its model spec)"),
            class_names=meta.texts("class_names"),
            normalization=Normalization(
                mean=tuple(norm.numbers("mean")),
                std=tuple(norm.numbers("std")),
                color_order=norm.text("color_order", choices=("RGB", "BGR", "GRAY"), default="RGB"),
                resize=norm.text("resize", default="stretch"),
            ),
            img_size=tuple(int(v) for v in meta.numbers("img_size", minimum=1, maximum=1 << 16, length=2)),
            ignore_index=meta.integer("ignore_index", minimum=0, default=None),
            training=meta.plain("training", default={}),
            state_dict=payload["state_dict"],
            train_state=payload.get("train_state") if with_train_state else None,
            path=path,
            program=payload.get("program"),
        )
    except InputError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"checkpoint '{path}' is damaged: its metadata is incomplete ({exc})") from None
    # Catch mismatched weights now, with the file named, rather than at first use.
    try:
        ckpt.build_model("cpu")
    except InputError as exc:
        raise InputError(f"checkpoint '{path}': {exc}") from None
    except RuntimeError as exc:
        raise InputError(
            f"checkpoint '{path}' is damaged: weights do not match its model config ({first_line(exc)})"
        ) from None
    _check_finite(path, ckpt)
    return ckpt


def _check_finite(path: Path, ckpt: Checkpoint) -> None:
    """Refuse NaN/Inf weights and normalisation at load: such a model computes NaN logits, whose
    argmax is class 0 everywhere, and every comparison with NaN reads as "no difference"."""
    for name, tensor in ckpt.state_dict.items():
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise InputError(
                    f"checkpoint '{path}' holds {bad} NaN or Inf value(s) in '{name}' (a diverged or "
                    "damaged run); use an earlier checkpoint or train again with a lower --lr"
                )
    norm = ckpt.normalization
    values = [*norm.mean, *norm.std]
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values) or min(norm.std) <= 0:
        raise InputError(
            f"checkpoint '{path}' has an invalid normalisation (mean {list(norm.mean)}, std "
            f"{list(norm.std)}): every value must be finite and std above 0"
        )
