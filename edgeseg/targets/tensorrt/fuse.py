"""Pre/post in the engine-ready graph for TensorRT: uint8 frames in, class ids out.

TensorRT's ONNX parser has no antialiased `Resize` (onnx-tensorrt's operator table: "Antialiasing
is not supported"), and plain bilinear differs from the numpy path's Pillow resize by up to 167 grey
levels on shrinking frames. So this graph writes Pillow's bilinear filter out as what it is, two
matrix products with weights computed from the frame's size inside the graph:

    scale = in / out, support = max(scale, 1)
    w[i, j] = max(0, 1 - |j + 0.5 - (i + 0.5) * scale| / support), each row divided by its sum
    resized = floor(W_h @ floor(frame @ W_w^T + 0.5) + 0.5)   (Pillow rounds after each pass)

Every op is in TensorRT's supported set with a supported type: uint8 only at the network's edges
(Cast to float right after the input, Cast to uint8 for the mask output; TensorRT takes uint8 only
as network input or output), Shape/Gather/Range on int64 (TensorRT casts them to int32), MatMul,
Abs, Relu, ReduceSum with constant axes, Floor, Transpose, Gather for the channel order, ArgMax on
float logits. The same graph runs on ONNX Runtime's CPU provider, which is how it is verified here.

The weight matrices are dense (out x in per axis): 1280x720 -> 320x240 costs about 1 GMAC per
frame for 3 channels, a few microseconds of a data-centre GPU's tensor throughput, and noticeable
only on ONNX Runtime's CPU provider, which runs this graph only to verify it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeseg.exporters.prepost import (
    FRAME_NAME,
    MASK_NAME,
    RESIZE_STEPS,
    assemble_fused,
    frame_input,
    frame_order,
    mask_dtype,
    scale_offset,
)
from edgeseg.manifest import Manifest

if TYPE_CHECKING:
    import onnx

__all__ = ["ENGINE_STEPS", "PREFIX", "fuse_engine_onnx", "fuse_engine_onnx_file"]

ENGINE_STEPS = RESIZE_STEPS  # the resize runs on the GPU, in the graph
PREFIX = "prepost_"  # every node and tensor of the wrapper starts with it (check_engine_ready reads it)


def _weights(axis: int, out_size: int, nodes: list[Any], inits: list[Any]) -> str:
    """Nodes computing Pillow's bilinear weight matrix (out_size x frame size on `axis` of the NHWC
    frame); returns its tensor name."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    p = f"{PREFIX}w{axis}_"
    inits += [
        numpy_helper.from_array(np.array(axis, np.int64), p + "axis"),
        numpy_helper.from_array(np.array(float(out_size), np.float32), p + "out"),
        # Output pixel centres (i + 0.5) as a column: rows of the matrix.
        numpy_helper.from_array((np.arange(out_size, dtype=np.float32) + 0.5)[:, None], p + "centre"),
    ]
    n = helper.make_node
    nodes += [
        n("Gather", [PREFIX + "shape", p + "axis"], [p + "in"], axis=0),  # scalar int64
        n("Range", [PREFIX + "zero", p + "in", PREFIX + "one"], [p + "j"]),
        n("Cast", [p + "j"], [p + "jf"], to=TensorProto.FLOAT),
        n("Add", [p + "jf", PREFIX + "half"], [p + "src"]),  # input pixel centres j + 0.5 (a row)
        n("Cast", [p + "in"], [p + "inf"], to=TensorProto.FLOAT),
        n("Div", [p + "inf", p + "out"], [p + "scale"]),
        n("Max", [p + "scale", PREFIX + "onef"], [p + "support"]),  # widened only when shrinking
        n("Mul", [p + "centre", p + "scale"], [p + "at"]),  # where each output pixel samples
        n("Sub", [p + "src", p + "at"], [p + "d"]),  # out x in
        n("Abs", [p + "d"], [p + "ad"]),
        n("Div", [p + "ad", p + "support"], [p + "x"]),
        n("Sub", [PREFIX + "onef", p + "x"], [p + "tri"]),
        n("Relu", [p + "tri"], [p + "wraw"]),
        n("ReduceSum", [p + "wraw", PREFIX + "axis1"], [p + "sum"], keepdims=1),
        n("Div", [p + "wraw", p + "sum"], [p + "w"]),  # normalised over the pixels in the image
    ]
    return p + "w"


def _wrapper(manifest: Manifest) -> tuple[list[Any], list[Any], str]:
    """(nodes, initializers, name of the float NCHW tensor they end in = the plain graph's input)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inp = manifest.input
    c = inp.channels
    scale, offset = scale_offset(inp)
    inits = [
        numpy_helper.from_array(np.array(0, np.int64), PREFIX + "zero"),
        numpy_helper.from_array(np.array(1, np.int64), PREFIX + "one"),
        numpy_helper.from_array(np.array(1.0, np.float32), PREFIX + "onef"),
        numpy_helper.from_array(np.array(0.5, np.float32), PREFIX + "half"),
        numpy_helper.from_array(np.array([1], np.int64), PREFIX + "axis1"),
        numpy_helper.from_array(np.array(scale, np.float32).reshape(1, c, 1, 1), PREFIX + "scale"),
        numpy_helper.from_array(np.array(offset, np.float32).reshape(1, c, 1, 1), PREFIX + "offset"),
    ]
    n = helper.make_node
    nodes: list[Any] = [
        n("Cast", [FRAME_NAME], [PREFIX + "float"], to=TensorProto.FLOAT),  # uint8 only at the edge
        n("Shape", [PREFIX + "float"], [PREFIX + "shape"]),  # TensorRT's Shape takes no uint8
        n("Transpose", [PREFIX + "float"], [PREFIX + "nchw"], perm=[0, 3, 1, 2]),
    ]
    w_h = _weights(1, inp.height, nodes, inits)
    w_w = _weights(2, inp.width, nodes, inits)
    nodes += [
        n("Transpose", [w_w], [PREFIX + "w2t"], perm=[1, 0]),
        n("MatMul", [PREFIX + "nchw", PREFIX + "w2t"], [PREFIX + "horizontal"]),  # Pillow: width first
        # Pillow rounds half up after each pass (ONNX Round would round half to even).
        n("Add", [PREFIX + "horizontal", PREFIX + "half"], [PREFIX + "horizontal_up"]),
        n("Floor", [PREFIX + "horizontal_up"], [PREFIX + "horizontal_u8"]),
        n("MatMul", [w_h, PREFIX + "horizontal_u8"], [PREFIX + "vertical"]),
        n("Add", [PREFIX + "vertical", PREFIX + "half"], [PREFIX + "vertical_up"]),
        n("Floor", [PREFIX + "vertical_up"], [PREFIX + "resized"]),
    ]
    src = PREFIX + "resized"
    if c == 3 and inp.color_order.upper() != frame_order(inp.color_order):
        inits.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), PREFIX + "reverse"))
        nodes.append(n("Gather", [src, PREFIX + "reverse"], [PREFIX + "ordered"], axis=1))
        src = PREFIX + "ordered"
    nodes += [
        n("Mul", [src, PREFIX + "scale"], [PREFIX + "scaled"]),
        n("Sub", [PREFIX + "scaled", PREFIX + "offset"], [inp.name]),
    ]
    for i, node in enumerate(nodes):
        node.name = f"{PREFIX}{i}_{node.op_type.lower()}"
    return nodes, inits, inp.name


def fuse_engine_onnx(model: onnx.ModelProto, manifest: Manifest, metadata: dict[str, str]) -> onnx.ModelProto:
    """The engine-ready graph `model` (fp32, fp16 or int8; input and logits as `manifest` names them)
    wrapped with pre/post TensorRT can build: uint8 NHWC frames of any size in, the logits and uint8
    (int32 beyond 256 classes) ids out. `metadata` becomes the graph's metadata_props."""
    from onnx import TensorProto, helper

    inp, out, batch, frame = frame_input(model, manifest, resize=True)
    nodes, inits, _ = _wrapper(manifest)
    # TensorRT has no uint16: beyond 256 classes the ids stay int32 (Segmenter makes them uint16).
    ids = TensorProto.UINT8 if mask_dtype(out.classes) == "uint8" else TensorProto.INT32
    post = [
        # ArgMax gives int64 ids, which TensorRT runs as int32; the Cast makes the uint8 network output.
        helper.make_node("ArgMax", [out.name], [PREFIX + "ids"], axis=1, keepdims=0, name=PREFIX + "argmax"),
        helper.make_node("Cast", [PREFIX + "ids"], [MASK_NAME], to=ids, name=PREFIX + "mask"),
    ]
    mask = helper.make_tensor_value_info(MASK_NAME, ids, [batch, inp.height, inp.width])
    return assemble_fused(model, frame, nodes, post, inits, mask, out.name, metadata)


def fuse_engine_onnx_file(path: Any, manifest: Manifest, metadata: dict[str, str]) -> None:
    """Rewrite the engine-ready graph at `path` as its fused graph (in place: the file is the job's own)."""
    import onnx

    onnx.save_model(fuse_engine_onnx(onnx.load(str(path)), manifest, metadata), str(path))
