"""`imported`: any PyTorch module, captured once by `edgeseg.import_model` and then run without its
source code and without unpickling anything.

Why not `torch.export.save` / `torch.export.load` (`.pt2`) as the file format: their loader is not
weights-only safe. On torch 2.13/2.14, `torch.export.load` reads tensor-subclass weights and constants
with torch.load and weights_only=False, and "opaque" constants with `pickle.loads` (both run arbitrary
code from the file), rebuilds symbolic shapes with `sympy.sympify` (which evaluates strings), resolves
node and metadata targets by dotted name under `torch.*`, and carries `guards_code`, Python source of
shape guards. Torch's own docstring says: never load a `.pt2` from an untrusted source.

What edgeseg stores instead, inside an ordinary edgeseg checkpoint (tensors + JSON, read with
`torch.load(weights_only=True)`): the program `torch.export.export` captures at the model's fixed
input size, serialised by torch's own serializer (`torch._export.serde.serialize`, what
`torch.export.save` uses) to its JSON graph, and the program's weights as plain tensors. Before that
JSON reaches torch's deserializer (at import and at every load), `check_program`
(edgeseg.models.program) refuses anything but pure tensor operators from an allow-list derived from
real segmentation models, any write into the program's input, weights or buffers (a module that
changes its own state when it runs), symbolic shapes (sympy would parse them), guard code and custom
objects; node metadata (stack traces with the writer's paths, module class names resolved by name)
is dropped. What remains is a graph of pure aten calls over tensors the safe unpickler read. The
cost: the program is specialised to the size it was imported at (`img_size`; computed pads and
resizes become constants, which also keeps them exportable), batch size 1 (larger batches run image
by image in PyTorch; exported graphs get a dynamic batch from the exporter), and the torch that
reads it must understand the writer's schema.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg._claims import claim
from edgeseg._guards import sequence_arg, size_arg
from edgeseg._logits import MAX_LOGITS_SCALE, logits_scale
from edgeseg.errors import EdgesegRuntimeError, InputError, first_line
from edgeseg.models.program import check_program, export_program

if TYPE_CHECKING:
    import torch
    from torch import nn

    from edgeseg.models.checkpoint import Normalization
    from edgeseg.models.registry import ModelSpec

__all__ = ["as_imported", "check_program", "import_model"]

ARCH = "imported"
_COLOR_CHANNELS = {"RGB": 3, "BGR": 3, "GRAY": 1}


# -- the registry's family contract ------------------------------------------------------------


def check(spec: ModelSpec) -> None:
    if spec.member is not None or "img_size" not in spec.kwargs:
        raise InputError(f"'{spec.arch}' is not an imported model (no img_size recorded)")


def build(spec: ModelSpec, extra: dict[str, Any]) -> nn.Module:
    """The imported program as a module; needs the file's `program` (JSON) and `state_dict`."""
    program, state = extra.get("program"), extra.get("state_dict")
    if not isinstance(program, str) or not isinstance(state, dict):
        raise InputError("an imported model is rebuilt from its model file (its program and weights)")
    w, h = (int(v) for v in spec.kwargs["img_size"])
    return as_imported(_deserialize(program, state, (1, spec.in_channels, h, w)))


def stride(spec: ModelSpec) -> int:
    return 1  # any size is "divisible"; the fixed size is enforced by `Checkpoint.check_input`


def describe(spec: ModelSpec) -> str:
    w, h = spec.kwargs["img_size"]
    scale = spec.kwargs.get("logits_upsampled")
    up = f", its 1/{scale} logits upsampled bilinearly" if scale else ""
    return f"imported {spec.kwargs.get('module', 'module')} (torch.export program at {w}x{h}{up})"


# -- the module ---------------------------------------------------------------------------------


def as_imported(graph: nn.Module) -> nn.Module:
    """Give the program's module (a torch.fx GraphModule) what edgeseg's models have, in place.

    The class is swapped rather than the module wrapped: a GraphModule nested in another module does
    not re-export to ONNX (torch's decomposition cannot resolve the nested attribute paths), while
    the GraphModule itself does. `weights_from_file`: `Checkpoint.build_model` must not load the
    state dict again; `train(False)` is a no-op (the program was captured in eval mode, BatchNorm
    statistics and disabled dropout are part of the graph, and torch refuses the train and eval calls on an
    exported module); batches larger than 1 run image by image (the program was captured at 1).
    """
    base = type(graph)

    def forward(self: Any, x: Any) -> Any:
        if x.shape[0] == 1:
            return base.forward(self, x)
        import torch

        return torch.cat([base.forward(self, x[i : i + 1]) for i in range(x.shape[0])])

    def train(self: Any, mode: bool = True) -> Any:
        if mode:
            raise InputError("an imported model runs in inference mode only; it cannot be trained")
        self.training = False
        return self

    graph.__class__ = type(
        "ImportedProgram", (base,), {"forward": forward, "train": train, "weights_from_file": True}
    )
    for name in ("train", "eval"):  # torch sets refusing train/eval methods on the instance
        graph.__dict__.pop(name, None)
    graph.training = False
    return graph


def _deserialize(program: str, state: dict[str, Any], shape: tuple[int, ...]) -> nn.Module:
    import torch
    from torch._export.serde.serialize import SerializedArtifact, deserialize

    data = check_program(program)
    params = set()
    for spec in data["graph_module"]["signature"]["input_specs"]:
        if "parameter" in spec:
            params.add(spec["parameter"]["parameter_name"])
    weights = {k: torch.nn.Parameter(v, requires_grad=False) if k in params else v for k, v in state.items()}
    try:
        example = ((torch.zeros(shape),), {})  # the signature torch checks the program against
        ep = deserialize(SerializedArtifact(json.dumps(data).encode(), weights, {}, example))  # type: ignore[arg-type]
        return ep.module()
    except Exception as exc:
        raise InputError(
            f"cannot rebuild the imported program with torch {torch.__version__} ({first_line(exc)}); "
            "import the module again with this torch"
        ) from None


# -- import_model -------------------------------------------------------------------------------


def _class_names(classes: int | Sequence[str]) -> list[str]:
    if isinstance(classes, int) and not isinstance(classes, bool):
        if classes < 1:
            raise InputError(f"classes must be 1 or more, got {classes}")
        return [f"class{i}" for i in range(classes)]
    names = [str(c) for c in sequence_arg(classes, "classes", 'classes=["background", "road"] or classes=2')]
    if not names or len(set(names)) != len(names):
        raise InputError(f"classes must be a count or distinct names; got {list(classes)}")
    return names


def _normalization(mean: Sequence[float], std: Sequence[float], color_order: str) -> tuple[Any, int]:
    from edgeseg.models.checkpoint import Normalization

    order = str(color_order).upper()
    if order not in _COLOR_CHANNELS:
        raise InputError(f"color_order must be RGB, BGR or GRAY; got '{color_order}'")
    channels = _COLOR_CHANNELS[order]
    example = "(0.485, 0.456, 0.406)" if channels == 3 else "(0.5,)"
    mean_t = tuple(float(m) for m in sequence_arg(mean, "mean", f"mean={example}"))
    std_t = tuple(float(s) for s in sequence_arg(std, "std", f"std={example}"))
    if len(mean_t) != channels or len(std_t) != channels:
        raise InputError(
            f"mean and std need {channels} value(s) each for color_order {order}; "
            f"got {len(mean_t)} and {len(std_t)}"
        )
    if not all(s > 0 and s < float("inf") for s in std_t) or not all(abs(m) < float("inf") for m in mean_t):
        raise InputError(f"std must be positive and mean finite; got mean {mean_t}, std {std_t}")
    return Normalization(mean_t, std_t, order), channels


def _logits(output: Any) -> torch.Tensor:
    """The logits tensor of a module's output: the tensor itself, a dict's "out" (torchvision) or
    "logits", an output object's `.logits` (Hugging Face's `SemanticSegmenterOutput`), or the first
    item of a tuple or list (a model returning (main, aux))."""
    import torch

    if isinstance(output, dict):  # torchvision's segmentation models; a ModelOutput is a dict too
        for key in ("out", "logits"):
            if key in output:
                output = output[key]
                break
    elif not isinstance(output, torch.Tensor) and isinstance(getattr(output, "logits", None), torch.Tensor):
        output = output.logits
    elif isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise InputError(
            f"the module returned {type(output).__name__}; it must return an N x classes x H x W "
            "logits tensor (or a dict with 'out' or 'logits', an object with .logits, or a tuple whose "
            "first item is the logits)"
        )
    return output


def unwrapped(module: nn.Module, upsample: bool = False) -> nn.Module:
    """The user's module with its output unwrapped to the logits tensor (`_logits`): what torch.export
    captures. With `upsample`, logits that come out at a fraction of the input's size (SegFormer's
    1/4) are brought to it by bilinear interpolation without corner alignment, the step Hugging
    Face's `post_process_semantic_segmentation` takes; it becomes part of the captured program, so
    every exported graph holds it."""
    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = _logits(self.module(x))
            if upsample:
                y = torch.nn.functional.interpolate(
                    y, size=x.shape[-2:], mode="bilinear", align_corners=False
                )
            return y

    return Logits()


def import_model(
    module: nn.Module,
    path: str | os.PathLike[str],
    *,
    classes: int | Sequence[str],
    img_size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
    color_order: str = "RGB",
    ignore_index: int | None = None,
) -> Path:
    """Write an edgeseg model file from any `torch.nn.Module` mapping N x C x H x W float input to
    N x classes x H x W logits. Every command that takes a checkpoint takes the file; it loads
    without the module's source code and without unpickling.

    The output may also be a dict with "out" (torchvision) or "logits", an object with `.logits`
    (Hugging Face), or a tuple whose first item is the logits; and the logits may come out at 1/f
    of the input's size (f = 2 .. 32 on both sides, e.g. SegFormer's 1/4): edgeseg then adds a
    bilinear upsampling to the input's size (align_corners=False, as Hugging Face's
    post-processing) to the captured program, recorded in the file (`logits_upsampled`), so every
    exported graph holds it.

    Args:
        module: the network; it is captured in eval mode (its BatchNorm statistics are frozen into the
            file) from a copy, so the module itself, its mode and its buffers are left as they were.
        path: the model file to write (`.pt`), atomically; an existing file is refused.
        classes: a count or the class names, in output-channel order.
        img_size: (width, height) the model runs at (the program is captured at this size).
        mean, std: per-channel normalisation of pixel / 255 (1 value each for GRAY, 3 for RGB/BGR).
        color_order: the channel order the module expects: "RGB", "BGR" or "GRAY".
        ignore_index: the label id that marks unlabelled pixels in the data the model is checked
            on (11 in CamVid, 255 in VOC and Cityscapes): metrics skip it. It may be one of the
            model's own ids (a "void" class trained as a class). Commands take `--ignore-index`
            to override it.

    Raises InputError (one line, nothing written) for a wrong output shape, wrong mean/std lengths,
    an existing `path`, a forward that changes the module's own buffers or its input, or an operator
    outside the allow-list (edgeseg.models.program); EdgesegRuntimeError when torch.export cannot
    capture the module.
    """
    import torch

    names = _class_names(classes)
    norm, channels = _normalization(mean, std, color_order)
    if ignore_index is not None and (
        isinstance(ignore_index, bool) or not isinstance(ignore_index, int) or ignore_index < 0
    ):
        raise InputError(f"ignore_index must be a label id (an int, 0 or more); got {ignore_index!r}")
    w, h = size_arg(img_size)
    dest = Path(path)
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"import_model takes a torch.nn.Module; got {type(module).__name__}")
    # Claimed before the existence check and held until the file is in place: of two imports to one
    # path, the second is refused instead of silently replacing the first one's file.
    with claim(dest, "path"):
        if dest.exists():
            raise InputError(f"'{dest}' already exists; choose another path or remove it first")
        return _write_imported(module, dest, names, norm, channels, (w, h), ignore_index)


def _write_imported(
    module: nn.Module,
    dest: Path,
    names: list[str],
    norm: Normalization,
    channels: int,
    size: tuple[int, int],
    ignore_index: int | None = None,
) -> Path:
    import torch

    from edgeseg.models.checkpoint import Checkpoint, save_checkpoint
    from edgeseg.models.registry import ModelSpec

    w, h = size
    x = torch.rand(1, channels, h, w)
    with _untouched(module) as own:
        own.eval()
        with torch.inference_mode():
            y = unwrapped(own)(x)
        scale = logits_scale(tuple(y.shape[-2:]), (h, w)) if y.dim() == 4 else None
        if y.dim() != 4 or y.shape[:2] != (1, len(names)) or scale is None:
            raise InputError(
                f"the module maps 1x{channels}x{h}x{w} input to shape {'x'.join(map(str, y.shape))}; "
                f"edgeseg needs 1x{len(names)}x{h}x{w} logits (one channel per class, at the input's size, "
                f"or at 1/2 .. 1/{MAX_LOGITS_SCALE} of it, which edgeseg upsamples)"
            )
        program, state = _capture(unwrapped(own, upsample=scale > 1).eval(), x)
    kwargs: dict[str, Any] = {"module": type(module).__name__, "img_size": [w, h]}
    if scale > 1:
        kwargs["logits_upsampled"] = scale  # recorded: the bilinear step edgeseg added
    spec = ModelSpec(ARCH, channels, len(names), kwargs)
    ckpt = Checkpoint(
        model_config=spec,
        class_names=names,
        normalization=norm,
        img_size=(w, h),
        ignore_index=ignore_index,
        training={"imported": type(module).__qualname__},
        state_dict=state,
        program=program,
    )
    return save_checkpoint(dest, ckpt)


@contextlib.contextmanager
def _untouched(module: nn.Module) -> Iterator[nn.Module]:
    """The module to run and capture, such that the user's own object is left as it was: a deep copy,
    or, for a module that cannot be copied, the module itself with its attributes, train/eval modes
    and tensor values restored afterwards (a forward may count calls or flip a buffer)."""
    import torch

    try:
        own = copy.deepcopy(module)
    except (TypeError, RuntimeError, copy.Error, pickle.PicklingError):
        own = None  # a lock, a file handle, a C++ object among its attributes: snapshot instead
    if own is not None:
        yield own
        return
    mods = list(module.modules())
    attrs = [dict(m.__dict__) for m in mods]
    tables = [(dict(m._parameters), dict(m._buffers), dict(m._modules)) for m in mods]
    with torch.no_grad():
        values = {id(t): (t, t.detach().clone()) for m in mods for t in (*m._parameters.values(),
                  *m._buffers.values()) if t is not None}  # fmt: skip
    try:
        yield module
    finally:
        for m, saved, (params, buffers, children) in zip(mods, attrs, tables, strict=True):
            m.__dict__.clear()
            m.__dict__.update(saved)
            m._parameters.clear(), m._parameters.update(params)
            m._buffers.clear(), m._buffers.update(buffers)
            m._modules.clear(), m._modules.update(children)
        with torch.no_grad():
            for tensor, value in values.values():
                tensor.copy_(value)


def _capture(module: nn.Module, x: torch.Tensor) -> tuple[str, dict[str, Any]]:
    """torch.export's program of `module` at `x`'s shape, as (checked JSON, weights)."""
    from torch._export.serde.serialize import serialize

    try:
        ep = export_program(module, x)
        artifact = serialize(ep)
    except InputError:
        raise
    except Exception as exc:
        raise EdgesegRuntimeError(
            f"torch.export could not capture the module ({first_line(exc)}); its forward must be "
            "traceable (no data-dependent Python control flow)"
        ) from exc
    if ep.constants:
        raise EdgesegRuntimeError(
            f"the module's program keeps tensor constants ({', '.join(list(ep.constants)[:3])}); "
            "register them as buffers (self.register_buffer) so they are stored as weights"
        )
    try:
        data = check_program(artifact.exported_program.decode())
    except InputError as exc:
        raise InputError(
            str(exc).replace("refusing the model file's program:", "cannot import the module:", 1)
        ) from None
    state = {k: v.detach().cpu().contiguous().clone() for k, v in ep.state_dict.items()}
    return json.dumps(data), state
