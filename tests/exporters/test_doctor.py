"""The export doctor: graphs built here each hold one trap; the finding and its node are asserted,
and a clean graph gives none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeseg.exporters.doctor import check_resize, check_stride, total_stride
from edgeseg.exporters.doctor_fp16 import check_fp16
from edgeseg.exporters.doctor_ops import check_int8, check_ops
from edgeseg.exporters.doctor_run import check_graph
from tests.helpers import run_cli

ALL = ["onnx", "openvino", "tensorrt"]


def _weight(name: str, shape: tuple[int, ...], scale: float = 0.1) -> onnx.TensorProto:
    rng = np.random.default_rng(0)
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def _graph(
    nodes: list,
    inits: list,
    size: int = 16,
    out_shape: tuple[int, ...] | None = None,
    domains: tuple[str, ...] = (),
    dynamic: bool = False,
) -> onnx.ModelProto:
    side: int | str = "side" if dynamic else size
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, side, side])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape) if out_shape else None)
    opsets = [helper.make_opsetid("", 18), *(helper.make_opsetid(d, 1) for d in domains)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=opsets)
    model.ir_version = 9
    return model


def _unet_like(size: int = 16) -> onnx.ModelProto:
    """conv -> relu -> pool (stride 2) -> conv -> transposed conv (x2) -> concat skip -> head."""
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["a"], name="enc", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a"], ["ar"], name="relu"),
        helper.make_node("MaxPool", ["ar"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p", "w2"], ["b"], name="mid", pads=[1, 1, 1, 1]),
        helper.make_node("ConvTranspose", ["b", "wt"], ["u"], name="up", strides=[2, 2], kernel_shape=[2, 2]),
        helper.make_node("Concat", ["ar", "u"], ["c"], name="cat", axis=1),
        helper.make_node("Conv", ["c", "wh"], ["y"], name="head"),
    ]
    inits = [
        _weight("w1", (4, 3, 3, 3)),
        _weight("w2", (4, 4, 3, 3)),
        _weight("wt", (4, 4, 2, 2)),
        _weight("wh", (2, 8, 1, 1)),
    ]
    return _graph(nodes, inits, size, (1, 2, size, size))


def _resize_graph(mode: str, coord: str, dynamic: bool = False) -> onnx.ModelProto:
    """x -> MaxPool/2 -> Resize x2 (constant scales, or sizes computed from x's shape)."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    inits = []
    if dynamic:
        nodes += [
            helper.make_node("Shape", ["x"], ["s"], name="shape"),
            helper.make_node(
                "Resize",
                ["p", "", "", "s"],
                ["y"],
                name="up",
                mode=mode,
                coordinate_transformation_mode=coord,
            ),
        ]
    else:
        inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"))
        nodes.append(
            helper.make_node(
                "Resize",
                ["p", "", "scales"],
                ["y"],
                name="up",
                mode=mode,
                coordinate_transformation_mode=coord,
            )
        )
    return _graph(nodes, inits, dynamic=dynamic)


def test_clean_graph_has_no_findings() -> None:
    model = _unet_like()
    onnx.checker.check_model(model)
    assert check_graph(model, ALL, ["fp32", "fp16"], None) == []
    assert check_graph(model, ["openvino", "tensorrt"], ["int8"], None) == []
    assert check_fp16(model, [np.ones((1, 3, 16, 16), np.float32)]) == []
    assert check_graph(_resize_graph("linear", "half_pixel"), ALL, ["fp32"], None) == []


def test_total_stride_follows_branches_without_multiplying_them() -> None:
    assert total_stride(_unet_like())[:2] == (2, 2)
    # Two parallel stride-2 convolutions added: still stride 2, not 4.
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="c1", strides=[2, 2]),
        helper.make_node("Conv", ["x", "w"], ["b"], name="c2", strides=[2, 2]),
        helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    ]
    assert total_stride(_graph(nodes, [_weight("w", (3, 3, 1, 1))]))[:2] == (2, 2)


def _skip_graph(size: int, *, pad: bool, dynamic: bool = False) -> onnx.ModelProto:
    """A U-Net step: pool (stride 2), upsample x2, concat with the skip; with `pad`, the upsampled map
    is padded to the skip's size first (as milesial's Pytorch-UNet does), so any size runs."""
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Resize", ["p", "", "scales"], ["u"], name="up", mode="nearest"),
    ]
    inits = [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]
    skip = "u"
    if pad:
        nodes += [
            helper.make_node("Shape", ["x"], ["sx"], name="sx"),
            helper.make_node("Shape", ["u"], ["su"], name="su"),
            helper.make_node("Sub", ["sx", "su"], ["d"], name="diff"),
            helper.make_node("Slice", ["d", "two", "four"], ["dhw"], name="dhw"),
            helper.make_node("Concat", ["zeros", "dhw"], ["pads"], name="pads", axis=0),
            helper.make_node("Pad", ["u", "pads"], ["up"], name="pad"),
        ]
        inits += [
            numpy_helper.from_array(np.array([2], np.int64), "two"),
            numpy_helper.from_array(np.array([4], np.int64), "four"),
            numpy_helper.from_array(np.zeros(6, np.int64), "zeros"),
        ]
        skip = "up"
    nodes.append(helper.make_node("Concat", ["x", skip], ["y"], name="cat", axis=1))
    return _graph(nodes, inits, size, dynamic=dynamic)


def test_stride_is_an_error_only_where_the_graph_cannot_run_at_the_size() -> None:
    model = _skip_graph(17, pad=False)
    assert total_stride(model)[:2] == (2, 2)
    (f,) = check_stride(model, None)
    assert (f.severity, f.check, f.where) == ("error", "stride", "pool")  # 17 -> 8 -> 16: no match
    assert "does not run at 17x17" in f.what
    assert "16x16" in f.fix and "export the graph again with a 16x16 input" in f.fix  # a fixed input
    (f,) = check_stride(_skip_graph(17, pad=False, dynamic=True), (17, 17))
    assert f.fix.endswith("--img-size 16x16")  # a dynamic input: the option that sets the size
    assert check_stride(model, (18, 18)) == check_stride(_skip_graph(16, pad=False), None) == []
    # The same graph padding its upsampled map to the skip's size runs at any size: nothing to say.
    assert check_stride(_skip_graph(17, pad=True), None) == []
    # No skips at all (a classifier-like stack of pools): flooring is the model's own business.
    nodes = [
        helper.make_node("MaxPool", ["x"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("MaxPool", ["p1"], ["y"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    assert check_stride(_graph(nodes, [], size=34), None) == []


def test_the_stride_advice_is_phrased_by_the_source_or_left_out() -> None:
    model = _skip_graph(17, pad=False, dynamic=True)
    (f,) = check_stride(model, (17, 17), lambda s: f"import the module again with img_size={s}")
    assert f.fix.endswith("import the module again with img_size=(16, 16)")
    # A source that accepts no size the graph runs at gets no size advised.
    (f,) = check_stride(model, (17, 17), lambda s: None)
    assert "16" not in f.fix and "pad or crop" in f.fix


def test_total_stride_is_not_followed_through_tokens() -> None:
    """A transformer stage: patch conv (stride 4), tokens (Reshape), attention over keys from a
    spatial-reduction conv (stride 8 more) by MatMul, tokens back to a map. The stride is 32 at most
    (the reduction conv's), not the product over every path that rejoins through MatMul."""
    nodes = [
        helper.make_node("Conv", ["x", "w4"], ["e"], name="patch", strides=[4, 4], kernel_shape=[4, 4]),
        helper.make_node("Reshape", ["e", "tok"], ["t"], name="tokens"),
        helper.make_node("Conv", ["e", "w8"], ["r"], name="reduce", strides=[8, 8], kernel_shape=[8, 8]),
        helper.make_node("Reshape", ["r", "tok"], ["k"], name="keys"),
        helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["t", "kt"], ["a"], name="scores"),
        helper.make_node("MatMul", ["a", "k"], ["v"], name="attend"),
        helper.make_node("Reshape", ["v", "map"], ["m"], name="back"),
        helper.make_node("Conv", ["m", "w2"], ["y"], name="stage2", strides=[2, 2], kernel_shape=[2, 2]),
    ]
    inits = [
        _weight("w4", (3, 3, 4, 4)),
        _weight("w8", (3, 3, 8, 8)),
        _weight("w2", (3, 3, 2, 2)),
        numpy_helper.from_array(np.array([1, 3, -1], np.int64), "tok"),
        numpy_helper.from_array(np.array([1, 3, 16, 16], np.int64), "map"),
    ]
    sh, sw, _ = total_stride(_graph(nodes, inits, size=64))
    assert (sh, sw) == (32, 32)


def test_dynamic_resize_sizes() -> None:
    (f,) = check_resize(_resize_graph("linear", "half_pixel", dynamic=True), "tensorrt")
    assert (f.severity, f.where) == ("warning", "up")
    assert "computed at run time (from 's')" in f.what
    assert check_resize(_resize_graph("linear", "half_pixel", dynamic=True), "onnx") == []
    # The same sizes from Shape on a fixed-size input fold into constants when the engine is built.
    fixed = _resize_graph("linear", "half_pixel")
    del fixed.graph.node[1:]
    fixed.graph.node.extend(_resize_graph("linear", "half_pixel", dynamic=True).graph.node[1:])
    assert [n.op_type for n in fixed.graph.node] == ["MaxPool", "Shape", "Resize"]
    assert check_resize(fixed, "tensorrt") == []


def test_resize_attributes_per_target() -> None:
    (f,) = check_resize(_resize_graph("linear", "tf_crop_and_resize"), "tensorrt")
    assert (f.severity, f.where) == ("error", "up") and "tf_crop_and_resize" in f.what
    assert check_resize(_resize_graph("linear", "tf_crop_and_resize"), "openvino") == []
    for target in ("tensorrt", "openvino"):
        (f,) = check_resize(_resize_graph("nearest", "align_corners"), target)
        assert (f.severity, f.where) == ("warning", "up") and "align_corners" in f.what
    assert check_resize(_resize_graph("nearest", "asymmetric"), "tensorrt") == []
    (f,) = check_resize(_resize_graph("cubic", "half_pixel"), "tensorrt")
    assert f.severity == "warning" and "cubic" in f.what


def test_ops_without_int8_kernels_and_their_share() -> None:
    model = _unet_like()
    (f,) = check_int8(model, "onnx")  # ONNX Runtime's INT8 here quantizes Conv, MaxPool, Concat
    assert (f.severity, f.check, f.where) == ("warning", "int8", "up")
    # MACs: enc 16*16*4*27, mid 8*8*4*36, up 8*8*4*4*4 (input x out/group x k), head 16*16*2*8.
    up, total = 8 * 8 * 4 * 16, 16 * 16 * 4 * 27 + 8 * 8 * 4 * 36 + 8 * 8 * 4 * 16 + 16 * 16 * 2 * 8
    assert f"{up / total:.1%}" in f.what
    nodes = [helper.make_node("MatMul", ["x", "m"], ["y"], name="proj")]
    (f,) = check_int8(_graph(nodes, [_weight("m", (16, 16))]), "tensorrt")
    assert (f.severity, f.where) == ("warning", "proj") and "100.0%" in f.what


def test_unsupported_and_slow_ops() -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="c"),
        helper.make_node("NonZero", ["a"], ["nz"], name="nonzero"),
        helper.make_node("Custom", ["a"], ["y"], name="mine", domain="my.ops"),
    ]
    model = _graph(nodes, [_weight("w", (3, 3, 1, 1))], domains=("my.ops",))
    trt = {(f.severity, f.where) for f in check_ops(model, "tensorrt")}
    assert trt == {("error", "nonzero"), ("error", "mine")}
    assert {(f.severity, f.where) for f in check_ops(model, "openvino")} == {("error", "mine")}


def _scaled(factor: float) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="conv"),
        helper.make_node("Mul", ["a", "k"], ["y"], name="scale"),
    ]
    w = numpy_helper.from_array(np.ones((2, 3, 1, 1), np.float32), "w")
    k = numpy_helper.from_array(np.array(factor, np.float32), "k")
    return _graph(nodes, [w, k], out_shape=(1, 2, 16, 16))


def test_fp16_overflow_measured_on_images() -> None:
    images = [np.full((1, 3, 16, 16), 1.0, np.float32)]  # conv output 3, scaled by the factor
    weight, act = check_fp16(_scaled(1e5), images)  # the factor itself is beyond float16 too
    assert (weight.severity, weight.where) == ("error", "k")
    assert (act.severity, act.check, act.where) == ("error", "fp16", "scale") and "3e+05" in act.what
    (f,) = check_fp16(_scaled(1e4), images)  # 30000: fits, but within 4x of 65504
    assert (f.severity, f.where) == ("warning", "scale")
    assert check_fp16(_scaled(10.0), images) == []


def test_cli_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    onnx.save(_resize_graph("linear", "tf_crop_and_resize"), bad)
    code, out, _ = run_cli(["doctor", bad, "--target", "tensorrt", "--json", tmp_path / "d.json"], capsys)
    assert code == 1
    assert "error [tensorrt] resize at 'up': coordinate_transformation_mode 'tf_crop_and_resize'" in out
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["counts"]["error"] == 1 and data["findings"][0]["where"] == "up"
    clean = tmp_path / "clean.onnx"
    onnx.save(_unet_like(), clean)
    code, out, _ = run_cli(["doctor", clean, "--precision", "fp32"], capsys)
    assert code == 0 and out.strip().endswith("no findings")
    code, _, err = run_cli(["doctor", tmp_path / "missing.pt"], capsys)
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    code, _, err = run_cli(["doctor", clean, "--target", "nope"], capsys)
    assert code == 2 and "unknown target 'nope'" in err


def test_export_refuses_an_error_finding_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["a"], name="conv"),
        helper.make_node("Mod", ["a", "k"], ["y"], name="mod", fmod=1),
    ]
    k = numpy_helper.from_array(np.array(0.75, np.float32), "k")
    src = tmp_path / "mod.onnx"
    onnx.save(_graph(nodes, [_weight("w", (2, 3, 1, 1)), k], out_shape=(1, 2, 16, 16)), src)
    facts = ["--classes", "2", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--color-order", "RGB"]
    out = tmp_path / "bundle"
    code, _, err = run_cli(["export", src, "--target", "tensorrt", "--out", out, *facts], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "refusing to export: error [tensorrt] ops at 'mod': Mod is not supported" in err
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    code, stdout, _ = run_cli(["export", src, "--target", "onnx", "--out", out, *facts], capsys)
    assert code == 0 and "doctor:" not in stdout  # ONNX Runtime runs Mod: no finding, a bundle
    assert sorted(p.name for p in out.iterdir()) == ["edgeseg.json", "model.onnx"]


def test_checkpoint_and_bundle_are_checked_through_their_fp32_graph(tmp_path: Path) -> None:
    from edgeseg.exporters import ExportConfig, export
    from edgeseg.exporters.doctor_run import diagnose
    from tests.helpers import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "tiny.pt", size=(64, 48))
    report = diagnose(ckpt, target="tensorrt", precision="fp16")
    assert report.checked == "the checkpoint's FP32 ONNX graph at 64x48" and report.findings == ()
    bundle = export(ckpt, ExportConfig(target="onnx", precision="fp32", parity_images=1)).bundle
    report = diagnose(bundle)
    assert "(the bundle's source, verified" in report.checked and report.targets == ("onnx",)
    assert report.precisions == ("fp32",) and report.findings == ()
    ckpt.unlink()  # without its source, the bundle's own FP32 graph is checked
    report = diagnose(bundle, precision="int8")
    assert report.checked.startswith("the bundle's own model.onnx, not its source")
    assert [(f.check, f.where.startswith("node_")) for f in report.findings] == [("int8", True)]
    assert "ConvTranspose" in report.findings[0].what  # ONNX Runtime's INT8 keeps it in float


@pytest.mark.parametrize("kind", ["onnx-dynamic", "checkpoint"])
def test_every_size_the_doctor_advises_is_accepted_by_export(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    """The doctor's advice, fed back into the same commands: doctor and export both take it."""
    import re

    from tests.helpers import make_checkpoint

    if kind == "checkpoint":
        model, facts, size = make_checkpoint(tmp_path / "best.pt", size=(64, 48)), [], "66x50"
    else:
        model = tmp_path / "skips.onnx"
        onnx.save(_skip_graph(16, pad=False, dynamic=True), model)
        facts = ["--classes", "6", "--mean", "0.5,0.5,0.5", "--std", "0.5,0.5,0.5", "--color-order", "RGB"]
        size = "17x17"
    code, out, err = run_cli(["doctor", model, "--precision", "fp32", "--img-size", size, *facts], capsys)
    assert code in (1, 2)
    advised = {a for a in re.findall(r"(?:--img-size|e\.g\.) (\d+x\d+)", out + err) if a != size}
    assert advised, out + err
    for advice in advised:
        code, out, err = run_cli(
            ["doctor", model, "--precision", "fp32", "--img-size", advice, *facts], capsys
        )
        assert code == 0 and "stride" not in out, out + err
        dest = tmp_path / f"bundle-{advice}"
        args = ["export", model, "--target", "onnx", "--img-size", advice, "--out", dest, *facts]
        code, _, err = run_cli(args, capsys)
        assert code == 0, err
