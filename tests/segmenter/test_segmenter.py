"""Segmenter: the same masks from a checkpoint, an ONNX bundle and an OpenVINO bundle, for frames of odd
sizes, colour and gray, one at a time and in batches; bare .onnx files; no torch in deployed processes.

Two tiny U-Nets (depth 2, width 4, 64x48): a colour one (4 classes; the session's, tests/conftest.py)
and a gray one (3 classes, exported once per module), each with one bundle static (batch 1) and one
dynamic, so both batch paths run.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")

from edgeseg.data.synthetic import render_scene
from edgeseg.errors import EdgesegRuntimeError, InputError
from edgeseg.exporters import ExportConfig, export
from edgeseg.segmenter import Segmenter
from tests.helpers import make_checkpoint

AGREEMENT = 0.999
SIZES = [(641, 479), (97, 61)]  # (width, height): odd, neither the model's size nor its aspect


@pytest.fixture(scope="module")
def models(
    tiny_ckpt: Path, tiny_bundle: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Path]]:
    """{"color"|"gray": {"checkpoint": .pt, "onnx": bundle, "openvino": bundle}}; the colour model is
    the session's tiny checkpoint and bundles (conftest.py). Read-only: tests copy before changing."""
    out: dict[str, dict[str, Path]] = {
        "color": {
            "checkpoint": tiny_ckpt,
            "onnx": tiny_bundle("onnx", dynamic=True),
            "openvino": tiny_bundle("openvino"),
        }
    }
    root = tmp_path_factory.mktemp("models")
    gray = make_checkpoint(root / "gray.pt", channels=1, classes=3, seed=1)
    out["gray"] = {"checkpoint": gray}
    for target in ("onnx", "openvino"):
        config = ExportConfig(
            target=target, dynamic=target == "openvino", parity_images=1, out=str(root / f"gray-{target}")
        )
        out["gray"][target] = export(gray, config).bundle
    return out


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """BGR colour and gray frames of odd sizes: synthetic scenes (shapes, texture, noise)."""
    rng = np.random.default_rng(7)
    colour = [render_scene(rng, size)[0][:, :, ::-1].copy() for size in SIZES]
    gray = [render_scene(rng, size)[0][:, :, 1].copy() for size in SIZES]
    return [colour[0], gray[0], colour[1], gray[1][:, :, None]]


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float((a == b).mean())


@pytest.mark.parametrize("model", ["color", "gray"])
def test_masks_agree_across_backends(models, frames, model: str):
    """Batch 1 and batch 8 (mixed sizes, colour and gray frames) through all three artifacts."""
    eight = frames * 2
    masks: dict[str, list[np.ndarray]] = {}
    for kind, path in models[model].items():
        with Segmenter(path) as seg:
            assert seg.backend_name == ("torch" if kind == "checkpoint" else "openvino")
            singles = [seg(f).mask for f in eight]
            batched = [r.mask for r in seg.predict_batch(eight)]
        for frame, single, batch_mask in zip(eight, singles, batched, strict=True):
            assert single.shape == frame.shape[:2] and single.dtype == np.uint8
            assert np.array_equal(single, batch_mask)
        masks[kind] = singles
    for kind in ("onnx", "openvino"):
        for ref, mask in zip(masks["checkpoint"], masks[kind], strict=True):
            assert agreement(ref, mask) >= AGREEMENT, kind


def test_onnxruntime_backend_agrees_with_torch(models, frames):
    with (
        Segmenter(models["color"]["checkpoint"]) as ref,
        Segmenter(models["color"]["onnx"], "onnxruntime") as seg,
    ):
        assert seg.backend_name == "onnxruntime"
        for a, b in zip(ref.predict_batch(frames), seg.predict_batch(frames, batch_size=3), strict=True):
            assert agreement(a.mask, b.mask) >= AGREEMENT


def test_result_timings_and_probabilities(models, frames):
    with Segmenter(models["color"]["openvino"]) as seg:
        seg.warmup(2)
        result = seg(frames[0], return_probs=True)
        assert seg(frames[0]).probabilities is None
    t = result.timings
    assert set(t) == {"pre", "wait", "infer", "post", "total"} and min(t.values()) >= 0
    assert t["total"] == pytest.approx(t["pre"] + t["wait"] + t["infer"] + t["post"])
    probs = result.probabilities
    assert probs is not None and probs.shape == (4, *frames[0].shape[:2]) and probs.dtype == np.float32
    assert np.allclose(probs.sum(0), 1.0, atol=1e-5)
    assert np.array_equal(probs.argmax(0), result.mask)


def test_properties_and_input_format(models, frames):
    with Segmenter(models["color"]["onnx"], input_format="rgb") as seg:
        assert seg.class_names == ("c0", "c1", "c2", "c3") and seg.manifest is not None
        assert seg.manifest.target == "onnx" and seg.preprocessing.color_order == "RGB"
        rgb = frames[0][:, :, ::-1]
        assert np.array_equal(seg(rgb).mask, seg(frames[0], input_format="bgr").mask)
        with pytest.raises(InputError, match=r"input_format must be 'bgr' or 'rgb'; got 'hsv'"):
            seg(rgb, input_format="hsv")
        assert seg.predict_batch([]) == []


def test_letterbox(models, frames):
    masks = []
    for kind in ("checkpoint", "onnx"):
        with Segmenter(models["color"][kind], resize="letterbox") as seg:
            assert seg.preprocessing.resize == "letterbox"
            masks.append([seg(f).mask for f in frames])
    for a, b, frame in zip(*masks, frames, strict=True):
        assert a.shape == frame.shape[:2] and agreement(a, b) >= AGREEMENT


def test_img_size_on_dynamic_and_static_models(models, frames):
    with Segmenter(models["color"]["onnx"], img_size=(32, 24)) as seg:  # a dynamic bundle
        assert (seg.preprocessing.width, seg.preprocessing.height) == (32, 24)
        assert seg(frames[0]).mask.shape == frames[0].shape[:2]
    with pytest.raises(InputError, match=r"img_size 32x24 does not match the model's fixed input 64x48"):
        Segmenter(models["color"]["openvino"], img_size=(32, 24))
    with pytest.raises(InputError, match=r"img_size 30x24: width and height must divide by 4"):
        Segmenter(models["color"]["checkpoint"], img_size=(30, 24))


def strip_metadata(src: Path, dst: Path) -> Path:
    import onnx

    proto = onnx.load(str(src))
    del proto.metadata_props[:]
    onnx.save(proto, str(dst))
    return dst


def test_bare_onnx_with_metadata_needs_nothing(models, frames, tmp_path: Path):
    bare = Path(shutil.copy(models["gray"]["onnx"] / "model.onnx", tmp_path / "gray.onnx"))
    with Segmenter(bare) as seg, Segmenter(models["gray"]["onnx"]) as bundle:
        assert seg.class_names == ("c0", "c1", "c2") and seg.preprocessing.color_order == "GRAY"
        assert np.array_equal(seg(frames[0]).mask, bundle(frames[0]).mask)


def test_bare_onnx_without_metadata(models, frames, tmp_path: Path):
    static = strip_metadata(models["gray"]["onnx"] / "model.onnx", tmp_path / "static.onnx")
    dynamic = strip_metadata(models["color"]["onnx"] / "model.onnx", tmp_path / "dynamic.onnx")
    with pytest.raises(InputError, match=r"carries no edgeseg metadata.*pass mean, std to Segmenter"):
        Segmenter(static)  # 1 channel: GRAY is the only order; size and classes are in the graph
    with pytest.raises(InputError, match=r"pass mean, std, color_order, img_size to Segmenter"):
        Segmenter(dynamic)
    given = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225), "color_order": "RGB"}
    names = ["a", "b", "c", "d"]
    with (
        Segmenter(dynamic, img_size=(64, 48), class_names=names, **given) as seg,
        Segmenter(models["color"]["onnx"]) as bundle,
    ):
        assert seg.class_names == ("a", "b", "c", "d") and seg.manifest is None
        for frame in frames:
            assert np.array_equal(seg(frame).mask, bundle(frame).mask)
    with pytest.raises(InputError, match=r"the model outputs 4 classes but 2 class names were given"):
        Segmenter(dynamic, img_size=(64, 48), classes=2, **given)
    with pytest.raises(InputError, match=r"mean and std need 3 values"):
        Segmenter(dynamic, img_size=(64, 48), mean=(0.5,), std=(0.2,), color_order="RGB")
    with pytest.raises(InputError, match=r"color_order 'GRAY' does not suit a 3-channel model"):
        Segmenter(dynamic, img_size=(64, 48), **{**given, "color_order": "GRAY"})


def test_no_torch_in_a_deployed_process(models):
    runs = [
        (str(models["color"]["onnx"]), "auto"),  # OpenVINO reading the .onnx
        (str(models["color"]["onnx"]), "onnxruntime"),
        (str(models["gray"]["openvino"]), "openvino"),
    ]
    code = f"""
import sys
import numpy as np
from edgeseg import Segmenter
frame = np.zeros((61, 97, 3), np.uint8)
for path, backend in {runs!r}:
    with Segmenter(path, backend=backend) as seg:
        assert seg(frame).mask.shape == (61, 97)
assert "torch" not in sys.modules, "torch was imported"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_requested_provider_missing_is_an_error(models):
    with pytest.raises(
        InputError, match=r"provider CUDAExecutionProvider is not available in this onnxruntime"
    ):
        Segmenter(models["color"]["onnx"], backend="onnxruntime", providers=["CUDAExecutionProvider"])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            np.zeros((48, 64, 4), np.uint8),
            r"HxWx3 \(colour\), HxWx1 or HxW \(gray\); got shape \(48, 64, 4\)",
        ),
        (np.full((48, 64, 3), np.nan, np.float32), r"frame contains NaN or Inf values"),
        (np.zeros((48, 64, 3), np.int32), r"frames must be uint8"),
        (np.zeros((0, 64, 3), np.uint8), r"empty frame"),
        ([[0, 1], [2, 3]], r"a frame must be a numpy array"),
    ],
    ids=["4-channels", "nan", "int32", "empty", "list"],
)
def test_bad_frames(models, frame, message: str):
    with Segmenter(models["color"]["checkpoint"]) as seg, pytest.raises(InputError, match=message):
        seg(frame)


def test_bad_models_and_options(models, tmp_path: Path):
    bundle = Path(shutil.copytree(models["color"]["openvino"], tmp_path / "b"))
    data = bytearray((bundle / "model.bin").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle / "model.bin").write_bytes(bytes(data))
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: Segmenter(bundle), r"'model.bin' has been modified or is corrupt"),
        (lambda: Segmenter(tmp_path / "none.onnx"), r"model '.*none.onnx' does not exist"),
        (
            lambda: Segmenter(models["color"]["openvino"], backend="onnxruntime"),
            r"cannot run openvino models",
        ),
        (
            lambda: Segmenter(models["color"]["onnx"], backend="onnxruntime", workers=2),
            r"does not take option",
        ),
        (lambda: Segmenter(models["color"]["checkpoint"], resize="crop"), r"resize must be one of stretch"),
    ]
    for make, message in cases:
        with pytest.raises(InputError, match=message):
            make()


def test_closed_segmenter_refuses_frames(models, frames):
    seg = Segmenter(models["gray"]["checkpoint"])
    seg.close()
    with pytest.raises(EdgesegRuntimeError, match=r"was closed"):
        seg(frames[1])
