"""Export to ONNX and OpenVINO bundles: files, manifest, parity with PyTorch, failure handling.

Each bundle is exported once per module (a tiny U-Net, depth 2, width 4, at 64x48) and shared.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

import torch

from edgeseg.errors import EdgesegRuntimeError, InputError, MissingDependencyError
from edgeseg.evaluation.parity import run_artifact
from edgeseg.exporters import ExportConfig, ExportResult, export
from edgeseg.manifest import manifest_from_onnx_metadata, read_manifest, sha256_file
from edgeseg.models.checkpoint import load_checkpoint
from tests.helpers import make_checkpoint, make_dataset

SIZE = (64, 48)  # (width, height): not square, so a swapped W/H shows
MODEL_FILES = {"onnx": ["model.onnx"], "openvino": ["model.bin", "model.xml"]}


@pytest.fixture(scope="module")
def ckpt_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("run") / "best.pt")


@pytest.fixture(scope="module")
def exported(ckpt_path: Path) -> Callable[[str, bool], ExportResult]:
    """exported(target, dynamic): the bundle for that combination, exported on first use."""
    cache: dict[tuple[str, bool], ExportResult] = {}

    def get(target: str, dynamic: bool) -> ExportResult:
        if target == "openvino":
            pytest.importorskip("openvino")
        if (target, dynamic) not in cache:
            cache[target, dynamic] = export(ckpt_path, ExportConfig(target=target, dynamic=dynamic))
        return cache[target, dynamic]

    return get


COMBOS = [("onnx", False), ("onnx", True), ("openvino", False), ("openvino", True)]


@pytest.mark.parametrize(("target", "dynamic"), COMBOS)
def test_bundle_files_and_manifest(exported, ckpt_path: Path, target: str, dynamic: bool):
    result = exported(target, dynamic)
    suffix = "-dynamic" if dynamic else ""
    assert result.bundle == ckpt_path.parent / f"unet-{target}-fp32{suffix}"
    assert sorted(p.name for p in result.bundle.iterdir()) == sorted(["edgeseg.json", *MODEL_FILES[target]])
    m = read_manifest(result.bundle)  # verifies every sha256
    assert m == result.manifest
    assert (m.target, m.precision, m.model_file) == (target, "fp32", MODEL_FILES[target][-1])
    assert sorted(m.files) == MODEL_FILES[target]
    assert m.class_names == ("c0", "c1", "c2", "c3") and m.output.classes == 4
    assert (m.input.width, m.input.height, m.input.channels, m.input.size_multiple) == (64, 48, 3, 4)
    assert (m.input.name, m.output.name, m.input.color_order) == ("image", "logits", "RGB")
    recorded = {k: m.source[k] for k in ("kind", "checkpoint", "sha256")}
    assert recorded == {"kind": "checkpoint", "checkpoint": str(ckpt_path), "sha256": sha256_file(ckpt_path)}
    assert len(m.source["reuse_key"]) == 64 and m.source["settings"]["target"] == target  # edgeseg._reuse
    assert m.quantization is None and m.model["depth"] == 2
    assert {"edgeseg", "torch", "onnx", "onnxscript"} <= set(m.tools)
    assert ("openvino" if target == "openvino" else "onnxruntime") in m.tools
    axes = {0: "batch", 2: "height", 3: "width"}
    assert m.dynamic_axes == ({"image": axes, "logits": axes} if dynamic else {})
    assert m.parity == result.parity.to_dict()
    assert result.to_dict()["parity"]["target"] == target


@pytest.mark.parametrize(("target", "dynamic"), COMBOS)
def test_parity_on_synthetic_images(exported, target: str, dynamic: bool):
    report = exported(target, dynamic).parity
    assert report.inputs == "synthetic (8 images)" and report.images == 8 and report.img_size == SIZE
    assert report.max_abs_logit_diff <= 1e-3
    assert report.pixel_agreement >= 0.999 and report.miou_vs_pytorch >= 0.99
    assert report.miou_pytorch_vs_gt is None and report.miou_artifact_vs_gt is None
    assert report.runtime.startswith("onnxruntime" if target == "onnx" else "openvino")


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_dynamic_bundle_runs_at_other_sizes(exported, ckpt_path: Path, target: str):
    result = exported(target, True)
    model = load_checkpoint(ckpt_path).build_model()
    rng = np.random.default_rng(0)
    for shape in [(2, 3, 32, 96), (1, 3, 80, 40)]:
        x = rng.normal(size=shape).astype(np.float32)
        with torch.inference_mode():
            ref = model(torch.from_numpy(x)).numpy()
        out = run_artifact(target, result.bundle / result.manifest.model_file, x)
        assert out.shape == ref.shape
        assert np.abs(out - ref).max() <= 1e-3
        assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.999


def test_static_onnx_graph_and_metadata(exported):
    import onnx

    result = exported("onnx", False)
    proto = onnx.load(str(result.bundle / "model.onnx"))
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 48, 64] and proto.opset_import[0].version == 18
    assert [o.name for o in proto.graph.output] == ["logits"]
    assert not any(node.metadata_props for node in proto.graph.node)  # no local stack traces
    props = {p.key: p.value for p in proto.metadata_props}
    assert "edgeseg.input" in props and "edgeseg.class_names" in props
    bare = manifest_from_onnx_metadata(props, model_file="model.onnx")
    assert bare is not None
    assert bare.input == result.manifest.input and bare.class_names == result.manifest.class_names
    assert bare.source["sha256"] == result.manifest.source["sha256"]


def test_openvino_ir_keeps_fp32_weights_and_metadata(exported):
    import openvino as ov

    result = exported("openvino", True)
    xml = (result.bundle / "model.xml").read_text()
    assert 'element_type="f16"' not in xml and 'element_type="f32"' in xml
    model = ov.Core().read_model(result.bundle / "model.xml")
    assert model.get_rt_info(["edgeseg", "target"]).astype(str) == '"openvino"'
    assert [p.get_any_name() for p in model.inputs] == ["image"]


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_tampered_bundle_is_refused(exported, tmp_path: Path, target: str):
    copy = shutil.copytree(exported(target, False).bundle, tmp_path / "copy")
    model_file = copy / MODEL_FILES[target][0]
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model_file.write_bytes(bytes(data))
    with pytest.raises(InputError, match=rf"'{MODEL_FILES[target][0]}' has been modified or is corrupt"):
        read_manifest(copy)


def test_corrupt_onnx_is_an_input_error(exported, tmp_path: Path):
    good = (exported("onnx", False).bundle / "model.onnx").read_bytes()
    x = np.zeros((1, 3, 48, 64), np.float32)
    for name, data in [("truncated.onnx", good[: len(good) // 3]), ("random.onnx", np.random.bytes(4096))]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(InputError, match=rf"cannot load ONNX model .*{name}"):
            run_artifact("onnx", tmp_path / name, x)
    with pytest.raises(InputError, match=r"no parity runner for target 'coreml'; available: onnx"):
        run_artifact("coreml", tmp_path / "random.onnx", x)


def test_corrupt_ir_is_an_input_error(exported, tmp_path: Path):
    bundle = exported("openvino", False).bundle
    copy = shutil.copytree(bundle, tmp_path / "ir")
    (copy / "model.bin").write_bytes((bundle / "model.bin").read_bytes()[:1000])
    with pytest.raises(InputError, match=r"cannot load OpenVINO IR .*model.xml"):
        run_artifact("openvino", copy / "model.xml", np.zeros((1, 3, 48, 64), np.float32))


def test_failed_export_leaves_nothing(ckpt_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    ov = pytest.importorskip("openvino")

    def broken_save(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(ov, "save_model", broken_save)
    out = tmp_path / "ir"
    with pytest.raises(EdgesegRuntimeError, match="OpenVINO could not save the IR: disk full"):
        export(ckpt_path, ExportConfig(target="openvino", out=str(out)))
    assert list(tmp_path.iterdir()) == []  # neither the bundle nor a temporary folder


def test_failed_overwrite_keeps_the_old_bundle(exported, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import edgeseg.evaluation.parity

    old = shutil.copytree(exported("onnx", False).bundle, tmp_path / "b")
    before = read_manifest(old)

    def broken_parity(*args: object, **kwargs: object) -> None:
        raise RuntimeError("parity crashed")

    import edgeseg.exporters.run

    monkeypatch.setattr(edgeseg.exporters.run, "measure_parity", broken_parity)  # where export calls it
    with pytest.raises(RuntimeError, match="parity crashed"):
        export(before.source["checkpoint"], ExportConfig(target="onnx", out=str(old), overwrite=True))
    assert read_manifest(old) == before and [p.name for p in tmp_path.iterdir()] == ["b"]


def test_overwrite_replaces_a_bundle(exported, tmp_path: Path):
    old = shutil.copytree(exported("onnx", True).bundle, tmp_path / "b")
    src = read_manifest(old).source["checkpoint"]
    with pytest.raises(InputError, match=r"already exists; pass --overwrite"):
        export(src, ExportConfig(target="onnx", out=str(old)))
    result = export(src, ExportConfig(target="onnx", out=str(old), overwrite=True))
    assert result.manifest.dynamic_axes == {} and read_manifest(old) == result.manifest
    assert [p.name for p in tmp_path.iterdir()] == ["b"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"precision": "fp64"}, r"unknown precision 'fp64'; choose from fp32, fp16, int8"),
        ({"calib": "/nonexistent/c", "precision": "int8"}, r"--calib folder '/nonexistent/c' does not exist"),
        ({"calib_method": "mse", "precision": "int8"}, r"unknown --calib-method 'mse'"),
        ({"calib_method": "entropy"}, r"--calib and --calib-method apply to --precision int8 only"),
        ({"target": "coreml"}, r"unknown target 'coreml'"),
        ({"img_size": (62, 48)}, r"--img-size 62x48 does not suit .* must divide by 4; e\.g\. 64x48"),
        ({"opset": 12}, r"--opset 12 is not supported; choose 18\.\.23"),
        ({"val_data": "/nonexistent/val"}, r"--val-data folder '/nonexistent/val' does not exist"),
        ({"parity_images": 0}, r"at least 1 image"),
    ],
)
def test_bad_options_fail_before_any_work(ckpt_path: Path, tmp_path: Path, overrides: dict, message: str):
    config = ExportConfig(**{"target": "onnx", "out": str(tmp_path / "b"), **overrides})
    with pytest.raises(InputError, match=message):
        export(ckpt_path, config)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_that_is_not_a_bundle(ckpt_path: Path, tmp_path: Path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(InputError, match=r"refusing to replace .* not an edgeseg bundle"):
        export(ckpt_path, ExportConfig(target="onnx", out=str(tmp_path), overwrite=True))
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_missing_runtime_names_the_extra(ckpt_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "openvino" else real(n, *a))
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgeseg\[openvino\]'"):
        export(ckpt_path, ExportConfig(target="openvino", out=str(tmp_path / "b")))


def test_gray_model_with_val_data(tmp_path: Path):
    """A 1-channel model, scored on a labelled gray folder: ground-truth mIoU for both models."""
    ckpt = make_checkpoint(tmp_path / "gray.pt", channels=1, classes=3, seed=1)
    data = make_dataset(tmp_path / "val", n=5, size=(40, 30), gray=True)
    result = export(ckpt, ExportConfig(target="onnx", val_data=str(data), out=str(tmp_path / "b")))
    report = result.parity
    assert report.inputs == f"val_data: {data} (5 images)" and report.images == 5
    assert report.max_abs_logit_diff <= 1e-3 and report.pixel_agreement >= 0.999
    assert report.miou_pytorch_vs_gt is not None and report.miou_artifact_vs_gt is not None
    assert abs(report.miou_pytorch_vs_gt - report.miou_artifact_vs_gt) < 1e-3
    assert result.manifest.input.channels == 1 and result.manifest.input.color_order == "GRAY"
