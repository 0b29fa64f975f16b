"""The torch -> ONNX step builds torch's decomposition table once per process: every export gets its
own copy (what one export adds stays out of the next), and torch's own method is back afterwards."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxscript")


def test_each_export_gets_its_own_copy_of_one_table() -> None:
    import torch
    from torch.onnx._internal.exporter import _registration

    from edgeseg.exporters.torch_onnx import _reused_op_registry

    original = _registration.ONNXRegistry.__dict__["from_torchlib"]
    with _reused_op_registry():
        first = _registration.ONNXRegistry().from_torchlib(opset_version=18)
        first.register_op(torch.ops.aten.relu.default, lambda x: x)  # a call's own translation
        second = _registration.ONNXRegistry().from_torchlib(opset_version=18)
    assert _registration.ONNXRegistry.__dict__["from_torchlib"] is original
    fresh = _registration.ONNXRegistry.from_torchlib(opset_version=18)
    assert (
        len(first.get_decomps(torch.ops.aten.relu.default))
        == len(fresh.get_decomps(torch.ops.aten.relu.default)) + 1
    )
    assert second.functions.keys() == fresh.functions.keys()
    assert [len(v) for v in second.functions.values()] == [len(v) for v in fresh.functions.values()]
    assert second.opset_version == fresh.opset_version == 18
