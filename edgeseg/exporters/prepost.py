"""Pre- and postprocessing inside the exported graph ("fused"): frames in, class ids out.

A fused graph takes uint8 NHWC frames in the order OpenCV gives them (BGR; gray for 1-channel
models) and does in the runtime what `edgeseg.preprocess` does in numpy: the model's channel order,
(x / 255 - mean) / std, NHWC to NCHW, and on the output the argmax to class ids. The logits stay an
output, for `return_probs`. `Segmenter` brings the ids back to the frame's size (nearest neighbour
on uint8).

The resize to the model's size is the kernel training used, Pillow's bilinear filter (antialiased
when it shrinks: its support widens with the scale; weights normalised inside the image). Where it
runs depends on the runtime, by measurement (`benchmarks/resize_speed.py`, one run, 2-core CPU):

- ONNX Runtime and OpenVINO (CPU): on the host, `resize_image(parallel=True)`, Pillow split into
  strips on the usable cores, bit-identical to one Pillow call. The in-graph kernels are slower:
  ONNX `Resize(linear, antialias=1)` on ONNX Runtime takes 0.7-0.8x of one Pillow call against the
  strips' 0.55-0.63x on 2 cores (within 1 grey level of Pillow), OpenVINO's
  `RESIZE_BILINEAR_PILLOW` 5-7x one call; and the fast ones are not Pillow's filter: ONNX linear
  without antialias, OpenVINO `RESIZE_LINEAR`, OpenCV `INTER_LINEAR` differ by up to 167 grey
  levels on shrinking frames, OpenCV `INTER_AREA` by up to 125; each would change masks. The
  manifest's `graph_steps` then lists "normalize" without "resize", and `Segmenter` resizes the
  uint8 frame before handing it over.
- TensorRT: in the graph (`edgeseg.targets.tensorrt.fuse`: the filter as two matrix products,
  cheap on a GPU), so frames of any size go to the device as uint8.

Graphs exported by earlier releases with the resize inside (ONNX `Resize`, "resize" in
`graph_steps`) keep working: `Segmenter` reads `graph_steps` and hands them frames of any size.

This module holds what the targets' wrappers share (the fused manifest, the frame input, the
assembly of a fused ONNX graph); each target's wrapper lives in its folder:

- ONNX (edgeseg.targets.onnx.fuse): the exported graph wrapped with onnx.helper nodes (Gather for
  the channel order, Transpose, Cast, Mul/Sub; ArgMax and Cast on the output), one file as before.
- OpenVINO (edgeseg.targets.openvino.fuse): `openvino.preprocess.PrePostProcessor` on the IR (u8
  NHWC tensor at the model's size, BGR to RGB, mean/scale, NCHW) and a TopK (k=1) on the logits for
  the ids (OpenVINO's ONNX frontend turns ArgMax into the same TopK).
- TensorRT (edgeseg.targets.tensorrt.fuse): the resize too, as two matrix products.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from edgeseg.errors import EdgesegRuntimeError, InputError
from edgeseg.manifest import InputSpec, Manifest, OutputSpec

if TYPE_CHECKING:
    import onnx

__all__ = [
    "FRAME_NAME",
    "INPUT_STEPS",
    "MASK_NAME",
    "OUTPUT_STEPS",
    "RESIZE_STEPS",
    "assemble_fused",
    "frame_input",
    "frame_order",
    "fused_manifest",
    "mask_dtype",
    "scale_offset",
    "toposort",
]

FRAME_NAME = "frame"  # the fused graph's input: uint8 NHWC frames
MASK_NAME = "mask"  # its class-id output
INPUT_STEPS = ("normalize",)  # what the ONNX Runtime and OpenVINO wrappers do (see the module notes)
RESIZE_STEPS = ("resize", "normalize")  # what the TensorRT wrapper (and earlier ONNX ones) do
OUTPUT_STEPS = ("argmax",)


def frame_order(color_order: str) -> str:
    """The channel order a fused graph takes frames in: BGR for colour models (OpenCV's order, what
    cameras give), GRAY for gray ones."""
    return "GRAY" if color_order.upper() == "GRAY" else "BGR"


def mask_dtype(classes: int) -> str:
    """The ids' dtype, as `edgeseg.preprocess.restore_output` gives them."""
    return "uint8" if classes <= 256 else "uint16"


def fused_manifest(manifest: Manifest, steps: tuple[str, ...] = INPUT_STEPS) -> Manifest:
    """The manifest of the fused graph made from the plain graph `manifest` describes, whose graph
    does the input `steps` and the argmax."""
    inp, out = manifest.input, manifest.output
    if inp.resize != "stretch":
        raise InputError(f"pre/post in the graph needs resize 'stretch'; the model uses '{inp.resize}'")
    fused_in: InputSpec = replace(
        inp,
        name=FRAME_NAME,
        layout="NHWC",
        dtype="uint8",
        graph_steps=steps,
        frame_order=frame_order(inp.color_order),
    )
    # A source graph's own softmax stays recorded: the fused graph's scores are still probabilities.
    kept = tuple(s for s in out.graph_steps if s not in OUTPUT_STEPS)
    fused_out: OutputSpec = replace(out, graph_steps=(*kept, *OUTPUT_STEPS), mask=MASK_NAME)
    axes: dict[str, dict[int, str]] = {FRAME_NAME: {}}
    if "resize" in steps:
        axes[FRAME_NAME] = {1: "frame_height", 2: "frame_width"}
    if 0 in manifest.dynamic_axes.get(inp.name, {}):
        axes[FRAME_NAME][0] = "batch"
        axes[MASK_NAME] = {0: "batch"}
        axes[out.name] = {0: "batch"}
    return replace(manifest, input=fused_in, output=fused_out, dynamic_axes=axes)


def scale_offset(inp: InputSpec) -> tuple[list[float], list[float]]:
    # (x / 255 - mean) / std = x * (1 / (255 std)) - mean / std, as edgeseg.data.normalize computes it.
    scale = [1.0 / (255.0 * s) for s in inp.std]
    offset = [m / s for m, s in zip(inp.mean, inp.std, strict=True)]
    return scale, offset


def toposort(nodes: list[Any], available: set[str]) -> list[Any]:
    """`nodes` in an order where every input is made before it is read (ONNX requires it; the
    float16 converter appends its boundary Casts after the nodes that read them)."""
    ready = set(available) | {""}
    done = [False] * len(nodes)
    ordered: list[Any] = []
    progress = True
    while progress:  # a few sweeps: the nodes are nearly in order already
        progress = False
        for k, node in enumerate(nodes):
            if not done[k] and all(i in ready for i in node.input):
                done[k], progress = True, True
                ordered.append(node)
                ready.update(node.output)
    # What never became ready (a cycle, a missing input) is left for onnx.checker to name.
    return ordered + [n for k, n in enumerate(nodes) if not done[k]]


def frame_input(model: onnx.ModelProto, manifest: Manifest, *, resize: bool) -> tuple[Any, Any, Any, Any]:
    """(manifest input, manifest output, batch dimension, the uint8 NHWC frame input) of a fused
    graph around `model`: frames of any size when the graph will `resize` them, else at the model's
    size; EdgesegRuntimeError when the plain graph has not exactly that input."""
    from onnx import TensorProto, helper

    inp, out = manifest.input, manifest.output
    g = model.graph
    if [i.name for i in g.input] != [inp.name] or out.name not in [o.name for o in g.output]:
        raise EdgesegRuntimeError(f"cannot fuse pre/post: the graph has no single input '{inp.name}'")
    batch: Any = "batch" if 0 in manifest.dynamic_axes.get(inp.name, {}) else 1
    hw: list[Any] = ["frame_height", "frame_width"] if resize else [inp.height, inp.width]
    frame = helper.make_tensor_value_info(FRAME_NAME, TensorProto.UINT8, [batch, *hw, inp.channels])
    return inp, out, batch, frame


def assemble_fused(
    model: onnx.ModelProto,
    frame: Any,
    nodes: list[Any],
    post: list[Any],
    inits: list[Any],
    mask: Any,
    logits_name: str,
    metadata: dict[str, str],
) -> onnx.ModelProto:
    """The fused model: the `frame` input, the pre-processing `nodes` and their `inits`, the plain
    graph of `model`, the `post` nodes; its outputs are the logits and the `mask` ids; checked by
    onnx's full checker (an invalid graph is one EdgesegRuntimeError line)."""
    import onnx
    from onnx import helper

    g = model.graph
    logits = next(o for o in g.output if o.name == logits_name)
    known = {FRAME_NAME} | {i.name for i in inits} | {i.name for i in g.initializer}
    graph = helper.make_graph(
        toposort([*nodes, *g.node, *post], known),
        g.name or "edgeseg",
        [frame],
        [logits, mask],
        initializer=[*inits, *g.initializer],
        value_info=list(g.value_info),
    )
    fused = helper.make_model(graph, opset_imports=list(model.opset_import))
    fused.ir_version = model.ir_version
    fused.producer_name, fused.producer_version = model.producer_name, model.producer_version
    helper.set_model_props(fused, metadata)
    try:
        onnx.checker.check_model(fused, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise EdgesegRuntimeError(f"the fused ONNX graph is invalid: {str(exc).splitlines()[0]}") from exc
    return fused
