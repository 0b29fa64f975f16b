"""`--max-class-drop`: no judged class may lose more than P IoU points vs the FP32 model; the
accuracy-aware INT8 remedies then rank candidates by the class figures too.

As in test_max_drop, the tiny untrained model loses nothing to INT8, so most tests replace the
measured score with one derived from the candidate graph (fewer float convs = more loss for class
c1); the remedies, excluded nodes and bookkeeping run for real.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from edgeseg.exporters import ExportConfig, export
from edgeseg.exporters.accuracy import DropMeter, Score
from edgeseg.manifest import read_manifest
from tests.exporters.test_max_drop import _float_convs
from tests.helpers import make_checkpoint, make_dataset, run_cli


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("maxclassdrop")
    return make_checkpoint(root / "ck.pt", size=(32, 32)), make_dataset(root / "d", n=4, size=(32, 32))


def _export(setup: tuple[Path, Path], out: Path, target: str = "onnx", **kw: Any) -> Any:
    ckpt, data = setup
    config = ExportConfig(target, "int8", calib=str(data), val_data=str(data), out=str(out), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-calibration-set warning
        return export(ckpt, config)


def _thin_class_score(self: DropMeter, path: Path, count: int | None = None) -> Score:
    # The mean barely moves while class c1 loses 3 points, 0.8 fewer per conv kept in float.
    return Score(0.1, {"c0": 0.0, "c1": 3.0 - 0.8 * _float_convs(path), "c2": 0.05})


def test_thin_class_drives_the_remedies_while_the_mean_is_fine(
    setup: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(DropMeter, "score", _thin_class_score)
    result = _export(setup, tmp_path / "b", max_drop=1.0, max_class_drop=0.5)
    q = read_manifest(result.bundle).quantization
    # --max-drop 1 alone would have kept plain PTQ (0.1 points); the class bound needs 4 float convs.
    assert [a["worst_class"] for a in q["attempts"]] == ["c1"] * 5 + ["c2"]  # c1 then gains 0.2
    assert [a["worst_class_drop_points"] for a in q["attempts"]] == pytest.approx(
        [3.0, 3.0, 3.0, 1.4, 0.6, 0.05]
    )
    assert q["attempts"][-1]["class_drop_points"]["c1"] == pytest.approx(-0.2)
    assert q["max_drop_points"] == 1.0 and q["max_class_drop_points"] == 0.5
    assert _float_convs(result.bundle / "model.onnx") == 4
    assert all(set(v) == {"miou_drop_points", "worst_class", "worst_class_drop_points"}
               for v in q["sensitivity"].values())  # fmt: skip


def test_real_measurement_records_the_class_drops_of_the_attempt_and_of_parity(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    result = _export(setup, tmp_path / "b", max_class_drop=50.0)
    m = read_manifest(result.bundle)
    (attempt,) = m.quantization["attempts"]
    assert "max_drop_points" not in m.quantization and m.quantization["max_class_drop_points"] == 50.0
    classes = m.parity["classes"]
    # The meter (one image at a time) and parity (batches) see the same judged classes and drops.
    assert attempt["class_drop_points"] == pytest.approx(classes["drop_points"], abs=1e-3)
    assert set(classes["drop_points"]) | set(classes["unjudged"]) == {"c0", "c1", "c2", "c3"}
    assert m.parity["worst_class"] == classes["worst"][0]["class"]


def test_impossible_class_bound_fails_with_one_line_and_no_bundle(
    setup: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(DropMeter, "score", _thin_class_score)
    ckpt, data = setup
    out = tmp_path / "b"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc, _, err = run_cli(["export", ckpt, "--target", "onnx", "--precision", "int8", "--calib", data,
                              "--val-data", data, "--max-class-drop", "0", "--out", out], capsys)  # fmt: skip
    lines = err.strip().splitlines()
    assert rc == 1 and len(lines) == 1
    # From 4 float convs on, c1 gains and c2 still loses 0.05 points: the first such attempt is the best.
    assert (
        "every class within --max-class-drop 0 points: the best attempt (ptq minmax, first/last + 2"
        in lines[0]
    )
    assert "still loses 0.05 IoU points on class c2 (mIoU 0.10) after 8 attempts" in lines[0]
    assert "no bundle written" in lines[0]
    assert not out.exists() and not list(tmp_path.glob(".b.*"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--precision", "int8", "--max-class-drop", "1"], "--max-class-drop needs --val-data"),
        (["--precision", "fp16", "--val-data", "{d}", "--max-class-drop", "1"], "--precision int8 only"),
        (
            ["--precision", "int8", "--val-data", "{d}", "--max-class-drop", "-1"],
            "must be 0 or more IoU points",
        ),
        (["--precision", "int8", "--val-data", "{d}", "--max-class-drop", "nan"], "is not a finite number"),
        (["--precision", "int8", "--val-data", "{d}", "--max-class-drop", "inf"], "is not a finite number"),
    ],
)
def test_bad_class_bounds_exit_2(
    setup: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    ckpt, data = setup
    args = ["export", ckpt, "--target", "onnx", "--out", tmp_path / "b", *[a.format(d=data) for a in extra]]
    rc, _, err = run_cli(args, capsys)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_openvino_accuracy_control_runs_on_the_class_metric(
    setup: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("nncf")
    scores = iter([Score(0.1, {"c1": 3.0}), Score(0.1, {"c1": 0.2})])
    monkeypatch.setattr(DropMeter, "score", lambda self, path, count=None: next(scores))
    result = _export(setup, tmp_path / "b", target="openvino", max_class_drop=1.0)
    q = read_manifest(result.bundle).quantization
    assert q["method"] == "nncf.quantize_with_accuracy_control" and q["max_class_drop_points"] == 1.0
    assert [(a["what"], a["worst_class_drop_points"]) for a in q["attempts"]] == [
        ("nncf.quantize", 3.0),
        ("nncf.quantize_with_accuracy_control", 0.2),
    ]
