"""One rule picks the backend: `edgeseg demo`, `run_demo` and `Segmenter` run the same bundles on the
same backend, or refuse them with the same message (a TensorRT bundle without TensorRT is refused by
all three, never run silently on another runtime)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("cv2", reason="the demo needs the demo extra: pip install 'edgeseg[demo]'")
pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
pytest.importorskip("openvino", reason="pip install 'edgeseg[openvino]'")

from edgeseg.demo import DemoConfig, run_demo
from edgeseg.errors import EdgesegError
from edgeseg.segmenter import Segmenter

KINDS = ("checkpoint", "onnx", "openvino", "tensorrt")


@pytest.fixture(scope="module")
def models(tiny_ckpt: Path, tiny_bundle) -> dict[str, Path]:
    """A checkpoint and one FP32 bundle per target, the session's (conftest.py); the TensorRT one
    is its graph, no engine, where TensorRT is missing. Read-only."""
    return {"checkpoint": tiny_ckpt, **{target: tiny_bundle(target) for target in KINDS[1:]}}


def _segmenter_choice(path: Path, backend: str) -> str:
    """The backend Segmenter runs `path` on, or "refused: <message>"."""
    try:
        with Segmenter(path, backend=backend) as seg:
            return seg.backend_name
    except EdgesegError as exc:
        return f"refused: {exc}"


def _demo_choice(path: Path, backend: str) -> str:
    cfg = DemoConfig(source="synthetic", frame_size=(64, 48), headless=True, compare=False, max_frames=1)
    cfg.backend = backend
    try:
        summary = run_demo(path, cfg)
    except EdgesegError as exc:
        return f"refused: {exc}"
    assert summary.frames == 1
    return summary.backend.split()[0]  # "openvino 2026.0.0 (CPU, ...)": the backend's description


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", ["auto", "onnxruntime"])
def test_demo_and_segmenter_choose_alike(models: dict[str, Path], kind: str, backend: str):
    expected = {
        ("checkpoint", "auto"): "torch",
        ("onnx", "auto"): "openvino",
        ("openvino", "auto"): "openvino",
        ("onnx", "onnxruntime"): "onnxruntime",
        ("tensorrt", "onnxruntime"): "onnxruntime",  # asked for by name: the engine-ready graph on CPU
    }
    chosen = _segmenter_choice(models[kind], backend)
    assert _demo_choice(models[kind], backend) == chosen
    if (kind, backend) in expected:
        assert chosen == expected[kind, backend]
    elif kind == "tensorrt" and importlib.util.find_spec("tensorrt") is not None:
        assert chosen == "tensorrt"  # a device with TensorRT builds and runs the engine
    elif kind == "tensorrt":
        assert chosen.startswith("refused: running tensorrt bundles needs the 'tensorrt' package")
    else:
        assert chosen.startswith(f"refused: the onnxruntime backend cannot run {kind} models")


def test_demo_cli_refuses_a_tensorrt_bundle_like_segmenter(models: dict[str, Path], capsys):
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here: the bundle runs on it")
    from edgeseg.cli import main

    message = _segmenter_choice(models["tensorrt"], "auto").removeprefix("refused: ")
    assert main(["demo", str(models["tensorrt"]), "--headless", "--max-frames", "1"]) == 2
    err = capsys.readouterr().err
    assert err == f"edgeseg: error: {message}\n"
