"""Calibration source and coverage (edgeseg.exporters.calibration): the checkpoint's own training
folder by default, synthetic scenes only when it was trained on them or the folder is gone, and a
warning when the calibration images never show a class the model predicts on the val data."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edgeseg.evaluation.parity import Reference
from edgeseg.exporters import ExportConfig, export
from edgeseg.exporters.calibration import calibration_source, coverage, prepare_calibration
from edgeseg.exporters.calibset import load_calibration
from edgeseg.exporters.source_open import open_export_source
from edgeseg.manifest import read_manifest
from edgeseg.models.checkpoint import load_checkpoint, save_checkpoint
from tests.helpers import make_checkpoint, make_dataset, run_cli

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _with_training(path: Path, training: dict[str, Any]) -> Path:
    ckpt = load_checkpoint(path)
    ckpt.training = training
    return save_checkpoint(path, ckpt)


def _red_reference() -> Reference:
    """A 3-class model by rule: class 1 where the red channel is above its mean, else class 0
    (class 2 never)."""

    def run(x: np.ndarray) -> np.ndarray:
        logits = np.zeros((x.shape[0], 3, *x.shape[2:]), np.float32)
        logits[:, 1] = x[:, 0]
        logits[:, 2] = -100
        return logits

    return Reference("rule", 3, 3, MEAN, STD, "RGB", None, run)


def _dark_folder(root: Path, n: int = 3) -> Path:
    (root / "images").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((32, 32, 3), 20 + 10 * i, np.uint8)).save(root / "images" / f"{i}.png")
    return root


@pytest.fixture
def ck(tmp_path: Path) -> Path:
    return make_checkpoint(tmp_path / "ck.pt", classes=3, size=(32, 32))


def test_default_source_is_the_recorded_training_folder_while_it_exists(ck: Path, tmp_path: Path) -> None:
    data = make_dataset(tmp_path / "train", n=3, size=(32, 32))
    _with_training(ck, {"data": "train", "data_path": str(data)})
    assert calibration_source(open_export_source(ck), None) == (
        str(data),
        "the checkpoint's training folder (no --calib given)",
        None,
    )
    assert calibration_source(open_export_source(ck), "other")[:2] == ("other", "given with --calib")
    shutil.rmtree(data)
    folder, why, warning = calibration_source(open_export_source(ck), None)
    assert folder is None and "no longer exists" in why and f"'{data}'" in str(warning)
    _with_training(ck, {"data": "synthetic(seed=0)", "data_path": None})
    assert calibration_source(open_export_source(ck), None) == (
        None,
        "synthetic scenes: the model was trained on them",
        None,
    )
    _with_training(ck, {})  # nothing recorded (imported model, older checkpoint): said, not silent
    folder, why, warning = calibration_source(open_export_source(ck), None)
    assert folder is None and "records no training folder" in why and "pass --calib" in str(warning)


def test_export_calibrates_on_the_training_folder_then_falls_back_with_one_warning(
    ck: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("onnxruntime")
    data = make_dataset(tmp_path / "train", n=3, size=(32, 32))
    _with_training(ck, {"data": "train", "data_path": str(data)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export(ck, ExportConfig("onnx", "int8", out=str(tmp_path / "a")))
    q = read_manifest(result.bundle).quantization
    assert q["calibration_source"] == f"folder: {data}" and q["calibration_images"] == 3
    assert q["calibration_choice"] == "the checkpoint's training folder (no --calib given)"
    assert q["calibration_coverage"]["calibration"]["images"] == 3
    shutil.rmtree(data)
    rc, out, err = run_cli(
        ["export", ck, "--target", "onnx", "--precision", "int8", "--out", tmp_path / "b"], capsys
    )
    assert rc == 0, err
    gone = [line for line in err.splitlines() if "no longer exists" in line]
    assert len(gone) == 1 and gone[0].startswith("edgeseg: warning: calibrating INT8 on synthetic scenes")
    q = read_manifest(tmp_path / "b").quantization
    assert q["calibration_source"] == "synthetic" and "no longer exists" in q["calibration_choice"]
    assert "calibration coverage: 32 images" in out


def test_coverage_shares_and_spread_by_hand(ck: Path, tmp_path: Path) -> None:
    draft = open_export_source(ck).draft("onnx", "int8", (32, 32), False)
    calib = load_calibration(_dark_folder(tmp_path / "dark"), draft)
    cov = coverage(calib, _red_reference(), draft.class_names)
    part = cov["calibration"]
    assert part["images"] == 3 and part["predicted_share"] == {"c0": 1.0, "c1": 0.0, "c2": 0.0}
    # Uniform grey images of level 20, 30, 40: brightness is the level, contrast 0.
    assert part["brightness"] == pytest.approx({"min": 20, "median": 30, "max": 40}, abs=0.01)
    assert part["contrast"] == pytest.approx({"min": 0, "median": 0, "max": 0}, abs=0.01)
    assert cov["missing_classes"] == [] and "compared_with" not in cov


def test_warns_in_one_line_when_calibration_lacks_a_predicted_class(ck: Path, tmp_path: Path) -> None:
    val = make_dataset(tmp_path / "val", n=4, size=(32, 32))  # bright (red) regions: class 1
    src = open_export_source(ck)
    draft = src.draft("onnx", "int8", (32, 32), False)
    lines: list[str] = []
    config = ExportConfig("onnx", "int8", calib=str(_dark_folder(tmp_path / "dark")), val_data=str(val))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calib = prepare_calibration(src, config.calib, config.val_data, draft, _red_reference(), lines.append)
    texts = [str(w.message) for w in caught if "calibration images show no" in str(w.message)]
    assert len(texts) == 1 and "\n" not in texts[0]
    assert texts[0].startswith("the calibration images show no c1 (") and f"--val-data {val}" in texts[0]
    entry = calib.to_manifest()
    assert entry["calibration_choice"] == "given with --calib"
    cov = entry["calibration_coverage"]
    assert cov["missing_classes"] == ["c1"] and cov["compared_with"]["predicted_share"]["c1"] > 0
    assert len(lines) == 1 and lines[0].startswith("calibration coverage: 3 images, 1/3 classes predicted")

    # Calibrating on images like the val data: nothing is missing, nothing is said.
    config = ExportConfig("onnx", "int8", calib=str(val), val_data=str(val))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        calib = prepare_calibration(src, config.calib, config.val_data, draft, _red_reference(), lines.append)
    assert not [w for w in caught if "calibration images show no" in str(w.message)]
    assert calib.coverage is not None and calib.coverage["missing_classes"] == []
