"""Pre/post in the graph (`fuse_prepost`): fused masks agree with the numpy path on odd frame sizes,
gray frames, batches and probabilities; the manifest says what the graph does; wrong uses fail clearly.

One tiny U-Net (depth 2, width 4, 64x48) per channel count, exported plain and fused once per module.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from edgeseg import Segmenter
from edgeseg.errors import InputError
from edgeseg.exporters import ExportConfig, export
from edgeseg.formats import validate_export_options
from edgeseg.manifest import Manifest, read_manifest
from tests.helpers import make_checkpoint

# The TensorRT graph runs here on ONNX Runtime's CPU provider (how its export verifies it too).
TARGETS = [("onnx", "onnxruntime"), ("openvino", "openvino"), ("tensorrt", "onnxruntime")]
SHAPES = [(61, 97, 3), (719, 1281, 3), (61, 97), (48, 64, 3)]  # odd sizes, gray, the model's own


def _needs(backend: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int, str, bool], Path]:
    """bundles(channels, target, fused): the bundle, exported on first use."""
    root = tmp_path_factory.mktemp("prepost")
    made: dict[tuple[int, str, bool], Path] = {}

    def get(channels: int, target: str, fused: bool) -> Path:
        key = (channels, target, fused)
        if key not in made:
            ckpt = root / f"c{channels}.pt"
            if not ckpt.exists():
                make_checkpoint(ckpt, channels=channels, seed=3)
            out = root / f"{target}-{channels}-{'fused' if fused else 'plain'}"
            made[key] = export(ckpt, ExportConfig(target, out=str(out), fuse_prepost=fused)).bundle
        return made[key]

    return get


def _frames(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in SHAPES]


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize(("target", "backend"), TARGETS)
def test_fused_masks_agree_with_the_numpy_path(bundles, channels, target, backend) -> None:
    _needs(backend)
    with (
        Segmenter(bundles(channels, target, False), backend=backend) as plain,
        Segmenter(bundles(channels, target, True), backend=backend) as fused,
    ):
        assert fused.preprocessing.fused and not plain.preprocessing.fused
        for frame in _frames():
            a, b = plain(frame), fused(frame)
            assert b.mask.shape == frame.shape[:2] and b.mask.dtype == np.uint8
            assert (a.mask == b.mask).mean() >= 0.999, frame.shape
            assert set(b.timings) == {"pre", "wait", "infer", "post", "total"}


@pytest.mark.parametrize(("target", "backend"), TARGETS)
def test_fused_batch_and_probabilities_match(bundles, target, backend) -> None:
    _needs(backend)
    frames = _frames(1) + _frames(2)  # sizes repeat: frames of one size share a call
    with (
        Segmenter(bundles(3, target, False), backend=backend) as plain,
        Segmenter(bundles(3, target, True), backend=backend) as fused,
    ):
        batch = fused.predict_batch(frames, return_probs=True, batch_size=5)
        singles = [fused(f) for f in frames]
        reference = plain.predict_batch(frames, return_probs=True)
        for frame, b, s, r in zip(frames, batch, singles, reference, strict=True):
            assert np.array_equal(b.mask, s.mask)
            assert (b.mask == r.mask).mean() >= 0.999
            assert b.probabilities is not None and r.probabilities is not None
            assert b.probabilities.shape == (4, *frame.shape[:2])
            np.testing.assert_allclose(b.probabilities, r.probabilities, atol=2e-2)
            assert np.array_equal(b.probabilities.argmax(0), b.mask)


def test_rgb_frames_and_float_frames(bundles) -> None:
    frame = _frames(4)[1]
    with (
        Segmenter(bundles(3, "onnx", False), backend="onnxruntime", input_format="rgb") as plain,
        Segmenter(bundles(3, "onnx", True), backend="onnxruntime", input_format="rgb") as fused,
    ):
        assert (plain(frame).mask == fused(frame).mask).mean() >= 0.999
        assert np.array_equal(fused(frame).mask, fused(frame.astype(np.float32)).mask)


def test_manifest_records_the_graph_steps(bundles) -> None:
    fused, plain = read_manifest(bundles(3, "onnx", True)), read_manifest(bundles(3, "onnx", False))
    assert fused.input.graph_steps == ("normalize",)  # the resize runs on the host (bit-exact strips)
    assert (fused.input.dtype, fused.input.layout, fused.input.frame_order) == ("uint8", "NHWC", "BGR")
    assert fused.output.graph_steps == ("argmax",) and fused.output.mask == "mask"
    assert plain.input.graph_steps == () and plain.output.mask == ""
    if importlib.util.find_spec("openvino") is not None:
        ov = read_manifest(bundles(3, "openvino", True))
        assert ov.input.graph_steps == ("normalize",) and ov.output.mask == "mask"
    trt = read_manifest(bundles(3, "tensorrt", True))  # on the GPU the graph resizes
    assert trt.input.graph_steps == ("resize", "normalize") and trt.dynamic_axes["frame"] == {
        1: "frame_height",
        2: "frame_width",
    }
    assert fused.parity is not None and fused.parity["pixel_agreement"] == 1.0
    # A manifest written before these keys existed still reads, as a plain graph.
    data = json.loads(json.dumps(plain.to_dict()))
    for spec in ("input", "output"):
        data[spec] = {k: v for k, v in data[spec].items() if k not in ("graph_steps", "frame_order", "mask")}
    assert Manifest.from_dict(data).input.graph_steps == ()


def test_fused_onnx_runs_on_both_cpu_runtimes(bundles) -> None:
    pytest.importorskip("openvino")
    bundle = bundles(3, "onnx", True)
    frames = _frames(5)
    with (
        Segmenter(bundle, backend="onnxruntime") as ort,
        Segmenter(bundle, backend="openvino") as ov,
        Segmenter(bundles(3, "onnx", False), backend="onnxruntime") as plain,
    ):
        for frame in frames:
            reference = plain(frame).mask
            assert (ort(frame).mask == reference).mean() >= 0.999
            assert (ov(frame).mask == reference).mean() >= 0.999


def test_onnx_graphs_that_resize_run_on_onnxruntime_only(bundles) -> None:
    """A fused ONNX graph of an earlier release resizes frames itself with an antialiased Resize,
    which OpenVINO ignores: "auto" picks ONNX Runtime for it and an explicit openvino is refused."""

    from edgeseg.exporters.prepost import RESIZE_STEPS
    from edgeseg.runtimes import resolve_backend

    manifest = read_manifest(bundles(3, "onnx", True))
    steps = manifest.input.graph_steps  # this release's: no resize in the graph
    assert resolve_backend("openvino", "onnx", "onnx", steps, "'m'") == "openvino"
    assert resolve_backend("auto", "onnx", "onnx", steps, "'m'") == "openvino"
    assert resolve_backend("auto", "onnx", "onnx", RESIZE_STEPS, "'m'") == "onnxruntime"
    with pytest.raises(InputError, match="does not honour"):
        resolve_backend("openvino", "onnx", "onnx", RESIZE_STEPS, "'m'")


def test_fused_models_refuse_what_they_cannot_do(bundles) -> None:
    bundle = bundles(3, "onnx", True)
    with pytest.raises(InputError, match="--no-fuse-prepost"):
        Segmenter(bundle, backend="onnxruntime", img_size=(128, 96))
    with pytest.raises(InputError, match="cannot be overridden"):
        Segmenter(bundle, backend="onnxruntime", resize="letterbox")
    assert validate_export_options("tensorrt", "fp32", prepost=True).name == "tensorrt"


def test_tensorrt_graph_resizes_as_pillow_with_supported_ops(bundles) -> None:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from edgeseg.data.imageio import resize_image
    from edgeseg.targets.tensorrt.graph import check_engine_ready

    bundle = bundles(3, "tensorrt", True)
    manifest = read_manifest(bundle)
    assert manifest.input.graph_steps == ("resize", "normalize") and manifest.output.mask == "mask"
    assert manifest.engine is not None
    assert manifest.engine["profile"]["min"] == [1, 16, 16, 3]
    assert manifest.engine["profile"]["max"] == [1, 2160, 3840, 3]
    model = onnx.load(str(bundle / "model.onnx"))
    assert check_engine_ready(model, "fp32") == []
    assert "Resize" not in {n.op_type for n in model.graph.node}  # TensorRT has no antialiased one
    # An antialiased Resize (what ONNX Runtime could run) is what TensorRT would refuse.
    nodes = [
        helper.make_node("Cast", ["frame"], ["x"], name="prepost_cast", to=TensorProto.FLOAT),
        helper.make_node("Resize", ["x", "", "", "s"], ["y"], name="prepost_aa", mode="linear", antialias=1),
    ]
    graph = helper.make_graph(
        nodes,
        "aa",
        [helper.make_tensor_value_info("frame", TensorProto.UINT8, [1, 8, 8, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[helper.make_tensor("s", TensorProto.INT64, [4], [1, 4, 4, 3])],
    )
    aa = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    problems = check_engine_ready(aa, "fp32")
    assert any("antialiased" in p for p in problems), problems
    # The resized frame itself: within 1 grey level of Pillow's (its fixed-point weights), on
    # shrinking, odd and enlarging sizes.
    model.graph.output.append(helper.make_tensor_value_info("prepost_resized", TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    for shape in [(61, 97, 3), (719, 1281, 3), (30, 40, 3), (48, 64, 3)]:
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        got = session.run(["prepost_resized"], {"frame": frame[None]})[0][0].transpose(1, 2, 0)
        diff = np.abs(got - resize_image(frame, (64, 48)).astype(np.float32))
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01, shape


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_fused_reduced_precision_graph_is_engine_ready(tmp_path: Path, precision: str) -> None:
    import onnx

    from edgeseg.targets.tensorrt.graph import check_engine_ready

    ckpt = make_checkpoint(tmp_path / "c.pt", seed=3)
    frame = np.random.default_rng(2).integers(0, 256, (61, 97, 3), dtype=np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # int8: the small-calibration-set warning
        bundle = export(
            ckpt, ExportConfig("tensorrt", precision, out=str(tmp_path / "t"), fuse_prepost=True)
        ).bundle
    model = onnx.load(str(bundle / "model.onnx"))
    assert check_engine_ready(model, precision) == []
    plain = export(ckpt, ExportConfig("onnx", out=str(tmp_path / "p"))).bundle
    with Segmenter(plain) as a, Segmenter(bundle, backend="onnxruntime") as b:
        assert b.preprocessing.fused and b(frame).mask.shape == frame.shape[:2]
        assert (a(frame).mask == b(frame).mask).mean() >= 0.95  # reduced precision vs fp32: close


def test_cli_export_fuse_prepost(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edgeseg.cli import main

    ckpt = make_checkpoint(tmp_path / "best.pt")
    out = tmp_path / "bundle"
    assert main(["export", str(ckpt), "--target", "onnx", "--fuse-prepost", "--out", str(out)]) == 0
    assert "pixel agreement 100.0000%" in capsys.readouterr().out
    assert read_manifest(out).input.graph_steps == ("normalize",)
    assert main(["info", str(out)]) == 0
    trt = ["export", str(ckpt), "--target", "tensorrt", "--fuse-prepost", "--out", str(tmp_path / "t")]
    assert main(trt) == 0
    assert read_manifest(tmp_path / "t").input.graph_steps == ("resize", "normalize")


def test_check_engine_ready_refuses_uint8_read_by_other_ops() -> None:
    from onnx import TensorProto, helper

    from edgeseg.targets.tensorrt.graph import check_engine_ready

    # A wrapper that takes the Shape of the uint8 frame itself: TensorRT's Shape takes no uint8.
    nodes = [
        helper.make_node("Shape", ["frame"], ["prepost_shape"], name="prepost_0_shape"),
        helper.make_node("Cast", ["frame"], ["logits"], name="prepost_1_cast", to=TensorProto.FLOAT),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("frame", TensorProto.UINT8, [1, 8, 8, 3])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 8, 8, 3]),
            helper.make_tensor_value_info("prepost_shape", TensorProto.INT64, [4]),
        ],
    )
    problems = check_engine_ready(helper.make_model(graph), "fp32")
    assert any("uint8 tensor 'frame' is used by a node other than Cast" in p for p in problems), problems
    assert any("'prepost_shape' is not float32" in p for p in problems), problems


@pytest.mark.parametrize("fused", [False, True])
def test_torch_resize_kernel_gives_the_same_masks(bundles, fused) -> None:
    pytest.importorskip("torch")
    bundle = bundles(3, "onnx", fused)
    with (
        Segmenter(bundle, backend="onnxruntime") as pillow,
        Segmenter(bundle, backend="onnxruntime", resize_kernel=" Torch ") as torch_kernel,
    ):
        assert (pillow.preprocessing.resize_kernel, torch_kernel.preprocessing.resize_kernel) == (
            "pillow",
            "torch",
        )
        for frame in _frames(6):
            a, b = pillow(frame), torch_kernel(frame)
            assert b.mask.shape == frame.shape[:2]
            assert (a.mask == b.mask).mean() >= 0.999, frame.shape


def test_resize_kernel_choice_is_checked(bundles, monkeypatch) -> None:
    import importlib.util

    bundle = bundles(3, "onnx", True)
    with pytest.raises(InputError, match="resize_kernel must be one of pillow, torch; got 'cv2'"):
        Segmenter(bundle, backend="onnxruntime", resize_kernel="cv2")
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    with pytest.raises(InputError, match="needs PyTorch installed; use 'pillow'"):
        Segmenter(bundle, backend="onnxruntime", resize_kernel="torch")
