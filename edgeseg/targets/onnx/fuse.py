"""Pre/post in the ONNX graph for ONNX Runtime (see edgeseg.exporters.prepost): the exported graph
wrapped with onnx.helper nodes (Gather for the channel order, Transpose, Cast, Mul/Sub; ArgMax and
Cast on the output), one file as before."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeseg.exporters.prepost import (
    FRAME_NAME,
    MASK_NAME,
    assemble_fused,
    frame_input,
    frame_order,
    mask_dtype,
    scale_offset,
)
from edgeseg.manifest import Manifest

if TYPE_CHECKING:
    import onnx

__all__ = ["fuse_onnx", "fuse_onnx_file"]


def fuse_onnx(model: onnx.ModelProto, manifest: Manifest, metadata: dict[str, str]) -> onnx.ModelProto:
    """The plain graph `model` (input and logits as `manifest` names them) wrapped into a fused one.

    `metadata` becomes the graph's metadata_props (the fused manifest's essentials). The result is
    checked with onnx.checker (with shape inference).
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inp, out, batch, frame = frame_input(model, manifest, resize=False)
    scale, offset = scale_offset(inp)
    c = inp.channels
    inits = [
        numpy_helper.from_array(np.array(scale, np.float32).reshape(1, c, 1, 1), "prepost_scale"),
        numpy_helper.from_array(np.array(offset, np.float32).reshape(1, c, 1, 1), "prepost_offset"),
    ]
    nodes = []
    src = FRAME_NAME
    if c == 3 and inp.color_order.upper() != frame_order(inp.color_order):
        inits.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), "prepost_reverse"))
        nodes.append(helper.make_node("Gather", [src, "prepost_reverse"], ["prepost_ordered"], axis=3))
        src = "prepost_ordered"
    nodes += [
        helper.make_node("Transpose", [src], ["prepost_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Cast", ["prepost_nchw"], ["prepost_float"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["prepost_float", "prepost_scale"], ["prepost_scaled"]),
        helper.make_node("Sub", ["prepost_scaled", "prepost_offset"], [inp.name]),
    ]
    ids = TensorProto.UINT8 if mask_dtype(out.classes) == "uint8" else TensorProto.UINT16
    post = [
        helper.make_node("ArgMax", [out.name], ["prepost_ids"], axis=1, keepdims=0),
        helper.make_node("Cast", ["prepost_ids"], [MASK_NAME], to=ids),
    ]
    mask = helper.make_tensor_value_info(MASK_NAME, ids, [batch, inp.height, inp.width])
    return assemble_fused(model, frame, nodes, post, inits, mask, out.name, metadata)


def fuse_onnx_file(path: Any, manifest: Manifest, metadata: dict[str, str]) -> None:
    """Rewrite the plain graph at `path` as its fused graph (in place: the file is the job's own)."""
    import onnx

    onnx.save_model(fuse_onnx(onnx.load(str(path)), manifest, metadata), str(path))
