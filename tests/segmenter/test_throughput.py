"""Throughput mode: the runtimes' own parallelism gives the same masks as one frame at a time.

`Segmenter(mode="throughput")` (OpenVINO's THROUGHPUT hint, ONNX Runtime's parallel runs, frames
preprocessed in threads), `predict_many` over a stream, and `edgeseg predict --mode` on a folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnx")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxruntime")

from edgeseg import Segmenter
from edgeseg.errors import InputError
from edgeseg.exporters import ExportConfig, export
from tests.helpers import make_checkpoint, make_dataset, run_cli

BACKENDS = [("onnx", "onnxruntime", False), ("openvino", "openvino", False), ("onnx", "onnxruntime", True)]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("tp") / "best.pt", seed=4)


@pytest.fixture(scope="module")
def bundles(ckpt: Path) -> Callable[..., Path]:
    """bundles(target, fused=False, dynamic=False): the bundle, exported once per module."""
    made: dict[tuple[str, bool, bool], Path] = {}

    def get(target: str, fused: bool = False, dynamic: bool = False) -> Path:
        key = (target, fused, dynamic)
        if key not in made:
            out = ckpt.parent / f"{target}-{int(fused)}-{int(dynamic)}"
            made[key] = export(
                ckpt, ExportConfig(target, out=str(out), fuse_prepost=fused, dynamic=dynamic)
            ).bundle
        return made[key]

    return get


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    shapes = [(48, 64, 3), (61, 97, 3), (48, 64, 3), (30, 40, 3), (61, 97, 3), (48, 64, 3), (90, 120, 3)]
    return [rng.integers(0, 256, s, dtype=np.uint8) for s in shapes]


@pytest.mark.parametrize(("target", "backend", "fused"), BACKENDS)
def test_throughput_masks_equal_latency_masks(bundles, target, backend, fused) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    bundle = bundles(target, fused)
    frames = _frames()
    with (
        Segmenter(bundle, backend=backend) as lat,
        Segmenter(bundle, backend=backend, mode="throughput") as tp,
    ):
        assert tp.mode == "throughput"
        if backend == "openvino":
            assert "THROUGHPUT" in tp.backend.description
        else:
            assert tp.backend.parallel >= 1 and tp.backend.threads == 1
        expected = [lat(f).mask for f in frames]
        streamed = list(tp.predict_many(iter(frames), batch_size=3))  # batches of 3, then the rest
        assert len(streamed) == len(frames)
        for want, got in zip(expected, streamed, strict=True):
            assert np.array_equal(want, got.mask)
            assert set(got.timings) == {"pre", "wait", "infer", "post", "total"}


def test_parallel_runs_split_a_dynamic_batch(bundles) -> None:
    from edgeseg.runtimes import create_backend

    bundle = bundles("onnx", dynamic=True)
    x = np.random.default_rng(0).standard_normal((5, 3, 48, 64)).astype(np.float32)
    with (
        create_backend("onnxruntime", bundle / "model.onnx") as one,
        create_backend("onnxruntime", bundle / "model.onnx", parallel=2, threads=1) as two,
    ):
        name = one.input_specs[0].name
        a, b = one.infer({name: x}), two.infer({name: x})
        assert "2 parallel runs" in two.description
        for out in a:
            np.testing.assert_allclose(a[out], b[out], rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="parallel must be a whole number >= 1"):
        create_backend("onnxruntime", bundle / "model.onnx", parallel=0)
    with pytest.raises(InputError, match="mode must be 'latency' or 'throughput'"):
        Segmenter(bundle, mode="fast")


def test_cli_predict_modes_write_the_same_masks(bundles, tmp_path, capsys) -> None:
    images = make_dataset(tmp_path / "data", n=6, size=(40, 30)) / "images"
    bundle = bundles("onnx")
    outs = {}
    for mode in ("latency", "throughput"):
        out = tmp_path / mode
        rc, stdout, _ = run_cli(
            ["predict", bundle, images, "--out", out, "--mode", mode, "--json", tmp_path / f"{mode}.json"],
            capsys,
        )
        assert rc == 0 and f"{mode} mode" in stdout
        assert json.loads((tmp_path / f"{mode}.json").read_text())["mode"] == mode
        outs[mode] = {p.name: np.asarray(Image.open(p)) for p in sorted(out.glob("*_mask.png"))}
    assert len(outs["latency"]) == 6 and outs["latency"].keys() == outs["throughput"].keys()
    for name, mask in outs["latency"].items():
        assert np.array_equal(mask, outs["throughput"][name]), name
    rc, _, err = run_cli(["predict", bundle, images, "--out", tmp_path / "x", "--mode", "fast"], capsys)
    assert rc == 2 and "--mode must be latency or throughput" in err and not (tmp_path / "x").exists()
