"""TensorRT export, build and runtime.

Here (no TensorRT, no GPU): the export writes a bundle with the engine-ready ONNX and says in one line
where the engine gets built; asking for the tensorrt backend or `build-engine` names what to install;
bad bundles and options are refused with exit 2. With TensorRT and a CUDA device the GPU tests build
the engine, load it, compare it with PyTorch, reuse the cache and rebuild on a mismatch.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgeseg.errors import InputError, MissingDependencyError
from tests.helpers import make_checkpoint, run_cli

pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")


def _gpu_missing() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return "TensorRT Python package not installed"
    import torch

    return None if torch.cuda.is_available() else "no CUDA device"


GPU_MISSING = _gpu_missing()
needs_gpu = pytest.mark.skipif(GPU_MISSING is not None, reason=f"needs TensorRT and a GPU: {GPU_MISSING}")
REASONS = {  # the export's wording of what is missing
    "TensorRT Python package not installed": "TensorRT is not installed",
    "no CUDA device": "no CUDA device",
    None: "",
}
INSTALL = r"pip install tensorrt-cu12.*python3-libnvinfer"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("trt") / "best.pt")


@pytest.fixture(scope="module")
def bundle(ckpt: Path) -> Path:
    from edgeseg.exporters import ExportConfig, export

    return export(ckpt, ExportConfig(target="tensorrt", precision="fp16", dynamic=True, batch=4)).bundle


def hide_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "tensorrt" else real(n, *a))


# ------------------------------------------------------------------------------------- CPU behaviour
@pytest.mark.skipif(
    GPU_MISSING is None, reason="TensorRT and a GPU are present: the export builds the engine"
)
def test_export_without_tensorrt_writes_the_onnx_and_one_note(ckpt: Path, tmp_path: Path, capsys):
    out = tmp_path / "b"
    code, stdout, stderr = run_cli(
        ["export", str(ckpt), "--target", "tensorrt", "--precision", "int8", "--out", str(out),
         "--json", str(tmp_path / "r.json")], capsys)  # fmt: skip
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["edgeseg.json", "model.onnx"]
    notes = [line for line in stdout.splitlines() if line.startswith("engine:")]
    assert notes == [
        f"engine: not built here ({REASONS[GPU_MISSING]}); "
        f"TensorRT builds it on the device from the bundled ONNX on first load, or ahead of time with "
        f"'edgeseg build-engine {out}' there"
    ]
    assert "measured on the CPU execution of the same engine-ready ONNX graph" in stdout
    manifest = json.loads((out / "edgeseg.json").read_text())
    assert manifest["engine"]["built"] is None and manifest["engine"]["precision"] == "int8"
    assert manifest["engine"]["profile"]["max"] == [1, 3, 48, 64]  # static: the export shape
    assert json.loads((tmp_path / "r.json").read_text())["notes"] == notes


def test_batch_needs_dynamic_and_a_target_that_takes_it(ckpt: Path, tmp_path: Path, capsys):
    code, _, err = run_cli(["export", str(ckpt), "--target", "tensorrt", "--batch", "4"], capsys)
    assert code == 2 and "--batch needs --dynamic" in err
    code, _, err = run_cli(["export", str(ckpt), "--target", "onnx", "--batch", "4", "--dynamic"], capsys)
    assert code == 2 and "--batch is not supported for target onnx" in err
    assert not any(p.name.startswith("unet-tensorrt") for p in ckpt.parent.iterdir())  # nothing left


def test_segmenter_asks_for_tensorrt_in_one_line(bundle: Path, monkeypatch: pytest.MonkeyPatch):
    from edgeseg import Segmenter

    hide_tensorrt(monkeypatch)
    with pytest.raises(MissingDependencyError, match=INSTALL) as info:
        Segmenter(bundle, backend="tensorrt")
    assert "\n" not in str(info.value)


def test_bundle_runs_its_graph_on_cpu_without_tensorrt(bundle: Path, monkeypatch: pytest.MonkeyPatch):
    from edgeseg import Segmenter

    hide_tensorrt(monkeypatch)
    with Segmenter(bundle, backend="onnxruntime") as seg:
        assert seg.manifest is not None and seg.manifest.target == "tensorrt"
        assert seg(np.zeros((60, 90, 3), np.uint8)).mask.shape == (60, 90)


def test_build_engine_cli_errors(bundle: Path, ckpt: Path, tmp_path: Path, capsys, monkeypatch):
    hide_tensorrt(monkeypatch)
    code, _, err = run_cli(["build-engine", str(bundle)], capsys)
    assert code == 2 and err.count("\n") == 1 and "python3-libnvinfer" in err
    code, _, err = run_cli(["build-engine", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "does not exist" in err
    from edgeseg.exporters import ExportConfig, export

    onnx_bundle = export(ckpt, ExportConfig(target="onnx", out=str(tmp_path / "o"), parity_images=1)).bundle
    code, _, err = run_cli(["build-engine", str(onnx_bundle)], capsys)
    assert code == 2 and "was exported for onnx" in err


def test_backend_refuses_a_cpu_device(bundle: Path):
    from edgeseg.targets.tensorrt.runner import TensorRTBackend

    with pytest.raises(InputError, match="runs on a CUDA device"):
        TensorRTBackend(bundle / "model.onnx", device="cpu")


def test_unwritable_cache_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from edgeseg.targets.tensorrt.cache import check_writable

    check_writable(tmp_path)
    # Faked: permission bits do not bind root, and the check is what matters.
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != tmp_path)
    with pytest.raises(InputError, match=r"not writable.*every start would rebuild"):
        check_writable(tmp_path)


# ------------------------------------------------------------------------------------------ on a GPU
@needs_gpu
def test_build_load_and_parity_with_pytorch(bundle: Path, ckpt: Path, tmp_path: Path):
    import torch

    from edgeseg.models.checkpoint import load_checkpoint
    from edgeseg.runtimes import create_backend

    net = load_checkpoint(ckpt).build_model()
    x = np.random.default_rng(0).normal(size=(3, 3, 48, 64)).astype(np.float32)
    with create_backend("tensorrt", bundle / "model.onnx", engine_cache=tmp_path) as backend:
        assert backend.built_now and backend.engine_file.parent == tmp_path
        assert ".sm" in backend.engine_file.name and backend.engine_file.name.endswith(".fp16.engine")
        record = json.loads(backend.engine_file.with_suffix(".json").read_text())
        assert record["precision"] == "fp16" and record["profile"]["max"][0] == 4
        logits = backend.infer({"image": x})["logits"]
        with pytest.raises(InputError, match="outside the engine's optimisation profile"):
            backend.infer({"image": np.zeros((5, 3, 48, 64), np.float32)})
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).numpy()
    assert (logits.argmax(1) == ref.argmax(1)).mean() >= 0.995
    assert np.abs(logits - ref).max() < 0.05


@needs_gpu
def test_cache_reuse_and_rebuild_on_mismatch(bundle: Path, tmp_path: Path):
    from edgeseg.runtimes import create_backend

    def load() -> tuple[bool, Path]:
        with create_backend("tensorrt", bundle / "model.onnx", engine_cache=tmp_path) as b:
            return b.built_now, b.engine_file

    _, engine = load()
    assert load() == (False, engine)  # the second start reuses the cached engine
    record = json.loads(engine.with_suffix(".json").read_text())
    engine.with_suffix(".json").write_text(json.dumps({**record, "tensorrt": "9.9.9"}))
    assert load() == (True, engine)  # a record of another TensorRT: rebuilt
    engine.write_bytes(b"not a plan")  # a damaged engine with a valid record
    with pytest.raises(InputError, match="cannot load the engine"):
        load()


@needs_gpu
def test_segmenter_and_build_engine_cli_on_the_device(bundle: Path, capsys):
    from edgeseg import Segmenter

    code, out, err = run_cli(["build-engine", str(bundle)], capsys)
    assert code == 0, err
    code, out, _ = run_cli(["build-engine", str(bundle)], capsys)
    assert code == 0 and "already cached" in out
    with Segmenter(bundle) as seg:  # auto prefers TensorRT for the bundle's ONNX
        assert seg.backend_name == "tensorrt" and not seg.backend.built_now
        assert seg(np.zeros((48, 64, 3), np.uint8)).mask.shape == (48, 64)
