"""Pre/post in the OpenVINO model (see edgeseg.exporters.prepost): `openvino.preprocess.PrePostProcessor`
on the IR (u8 NHWC tensor at the model's size, BGR to RGB, mean/scale, NCHW) and a TopK (k=1) on the
logits for the ids (OpenVINO's ONNX frontend turns ArgMax into the same TopK)."""

from __future__ import annotations

from typing import Any

from edgeseg.exporters.prepost import FRAME_NAME, MASK_NAME, frame_order, mask_dtype
from edgeseg.manifest import Manifest

__all__ = ["fuse_openvino"]


def fuse_openvino(model: Any, manifest: Manifest) -> Any:
    """The OpenVINO model `model` (the plain graph) with `INPUT_STEPS` and the argmax added; returns a
    new model (without rt_info: the exporter stores the fused manifest's metadata on it afterwards)."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino.preprocess import ColorFormat, PrePostProcessor

    inp, out = manifest.input, manifest.output
    ppp = PrePostProcessor(model)
    port = ppp.input(inp.name)
    tensor = port.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    steps = port.preprocess()
    steps.convert_element_type(ov.Type.f32)
    if inp.channels == 3 and inp.color_order.upper() != frame_order(inp.color_order):
        tensor.set_color_format(ColorFormat.BGR)
        steps.convert_color(ColorFormat.RGB)
    steps.mean([255.0 * m for m in inp.mean]).scale([255.0 * s for s in inp.std])
    port.model().set_layout(ov.Layout("NCHW"))
    model = ppp.build()
    model.input(0).get_tensor().set_names({FRAME_NAME})
    logits = model.output(out.name).get_node().input_value(0)  # what feeds the logits' Result
    # TopK(k=1) over the classes is argmax: OpenVINO's own ONNX frontend converts ArgMax to it.
    top = ops.topk(logits, 1, 1, "max", "none", ov.Type.i32)
    ids = ops.convert(ops.squeeze(top.output(1), [1]), mask_dtype(out.classes).replace("uint", "u"))
    ids.output(0).get_tensor().set_names({MASK_NAME})
    results = [r for r in model.get_results()] + [ops.result(ids)]
    return ov.Model(results, model.get_parameters(), model.get_friendly_name())
