"""torch -> ONNX: a PyTorch module as one self-contained, checked `.onnx` file.

The first step of every export from a PyTorch source (a file-in/file-out step with no other
exporter behind it). Uses torch's dynamo exporter (`torch.onnx.export(..., dynamo=True)`), which on
torch 2.13 gives the cleaner graph of the two: 27 nodes of five op types for a depth-2 U-Net (batch
norm folded into the convolutions by its optimizer, no Identity nodes), while the legacy TorchScript
exporter is deprecated and leaves Identity nodes behind. An external graph simplifier was measured
and skipped: onnxslim left the same 27 nodes and ONNX Runtime ran the graph no faster.

The graph carries the manifest's essentials in `metadata_props` ("edgeseg.*" keys), so a bare
`.onnx` still says how to preprocess its input.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from edgeseg.errors import EdgesegRuntimeError, MissingDependencyError, first_line
from edgeseg.manifest import Manifest, onnx_metadata

if TYPE_CHECKING:
    import torch

__all__ = ["write_onnx"]


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence torch's exporter chatter the user cannot act on (deprecation notes from torch's own
    internals, 'torchvision is not installed' warnings); errors still surface as exceptions."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


_REGISTRIES: dict[str, object] = {}
_REGISTRY_LOCK = threading.Lock()


@contextlib.contextmanager
def _reused_op_registry() -> Iterator[None]:
    """Build torch's table of ONNX decompositions once per process instead of once per export.

    torch.onnx.export rebuilds it from onnxscript's torchlib on every call (1-2 s of a small model's
    export, measured with torch 2.14), then adds the call's own entries to it. Each call here gets a
    fresh copy of a table built once, so what one export adds never reaches another. Where torch's
    private registry is not as expected, exports build it themselves as before.
    """
    try:
        from torch.onnx._internal.exporter import _registration

        registry_cls = _registration.ONNXRegistry
        original = registry_cls.__dict__["from_torchlib"]
        build = original.__func__
    except (ImportError, AttributeError, KeyError):
        yield
        return

    def from_torchlib(cls: type, *args: object, **kwargs: object) -> object:
        key = repr((args, sorted(kwargs.items())))
        if key not in _REGISTRIES:
            _REGISTRIES[key] = build(cls, *args, **kwargs)
        built = _REGISTRIES[key]
        fresh = cls()
        fresh.__dict__.update(built.__dict__)
        fresh.functions = {k: list(v) for k, v in built.functions.items()}  # per-call additions stay here
        return fresh

    with _REGISTRY_LOCK:
        registry_cls.from_torchlib = classmethod(from_torchlib)
        try:
            yield
        finally:
            registry_cls.from_torchlib = original


def write_onnx(model: torch.nn.Module, path: Path, manifest: Manifest, *, opset: int) -> None:
    """Export `model` for the input `manifest` describes to a single-file ONNX graph at `path`.

    Dynamic axes come from `manifest.dynamic_axes`; the graph is checked with `onnx.checker` (with
    shape inference) before it is written.
    """
    try:
        import onnx
        import torch
    except ImportError as exc:
        raise MissingDependencyError("onnx", "onnx", "exporting to ONNX") from exc

    inp, out = manifest.input, manifest.output
    axes = manifest.dynamic_axes.get(inp.name, {})
    # torch.export specialises a dimension whose example size is 1, so a dynamic batch needs 2.
    example = torch.randn(2 if 0 in axes else 1, inp.channels, inp.height, inp.width)
    dynamic_shapes = ({a: torch.export.Dim(n) for a, n in axes.items()},) if axes else None
    model.eval()
    try:
        with _quiet_export(), _reused_op_registry():
            program = torch.onnx.export(
                model,
                (example,),
                input_names=[inp.name],
                output_names=[out.name],
                opset_version=opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
    except Exception as exc:
        raise EdgesegRuntimeError(f"torch.onnx.export failed: {first_line(exc)}") from exc
    if program is None:
        raise EdgesegRuntimeError("torch.onnx.export returned no program")
    proto = program.model_proto
    # The exporter annotates every node with source stack traces (absolute paths of this machine) and
    # FX details: they would leak local paths and double the file; the graph needs none of them.
    for node in proto.graph.node:
        del node.metadata_props[:]
    onnx.helper.set_model_props(proto, onnx_metadata(manifest))
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise EdgesegRuntimeError(f"the exported ONNX graph is invalid: {first_line(exc)}") from exc
    try:
        onnx.save_model(proto, str(path))
    except OSError:
        raise  # a full disk or unwritable folder: the CLI names the path and what to do
    except ValueError as exc:  # a graph over protobuf's 2 GB limit
        raise EdgesegRuntimeError(f"cannot write '{path}': {first_line(exc)}") from exc
