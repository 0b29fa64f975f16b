"""Accuracy-aware INT8 (`--max-drop`): remedies in order, attempts in the manifest, clean failure.

The tiny untrained test model loses nothing to INT8, so most tests replace the measured drop with
one derived from the candidate graph itself (fewer float convs = more loss): the remedies, the
node names they exclude and the bookkeeping all run for real on ONNX Runtime / NNCF.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from edgeseg.exporters import ExportConfig, export
from edgeseg.exporters.accuracy import DropMeter
from edgeseg.manifest import read_manifest
from tests.helpers import make_checkpoint, make_dataset


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("maxdrop")
    return make_checkpoint(root / "ck.pt", size=(32, 32)), make_dataset(root / "d", n=4, size=(32, 32))


def _float_convs(path: Path) -> int:
    """Conv nodes of a QDQ graph whose weight does not come from a DequantizeLinear."""
    import onnx

    graph = onnx.load(str(path)).graph
    producer = {out: n.op_type for n in graph.node for out in n.output}
    return sum(producer.get(n.input[1]) != "DequantizeLinear" for n in graph.node if n.op_type == "Conv")


def _export(setup: tuple[Path, Path], out: Path, target: str = "onnx", **kw: Any) -> Any:
    ckpt, data = setup
    config = ExportConfig(target, "int8", calib=str(data), val_data=str(data), out=str(out), **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small-calibration-set warning
        return export(ckpt, config)


def test_onnx_remedies_run_in_order_until_the_bound_is_met(
    setup: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    # 3 points lost with every conv in int8, 0.8 fewer per conv kept in float.
    monkeypatch.setattr(DropMeter, "drop", lambda self, path, count=None: 3.0 - 0.8 * _float_convs(path))
    lines: list[str] = []
    ckpt, data = setup
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = ExportConfig(
            "onnx", "int8", calib=str(data), val_data=str(data), out=str(tmp_path / "b"), max_drop=0.5
        )
        result = export(ckpt, config, log=lines.append)
    q = read_manifest(result.bundle).quantization
    whats = [a["what"] for a in q["attempts"]]
    assert whats[:4] == [
        "ptq minmax",
        "ptq entropy",
        "ptq percentile",
        "ptq minmax, first and last conv in float",
    ]
    # Two more convs from the sensitivity pass reach 3.0 - 0.8 * 4 = -0.2 <= 0.5.
    assert whats[4:] == [f"ptq minmax, first/last + {k} most sensitive convs in float" for k in (1, 2)]
    assert [a["miou_drop_points"] for a in q["attempts"]] == pytest.approx([3.0, 3.0, 3.0, 1.4, 0.6, -0.2])
    assert len(q["float_nodes"]) == 4 and _float_convs(result.bundle / "model.onnx") == 4
    assert q["max_drop_points"] == 0.5 and set(q["sensitivity"])
    lines = [line for line in lines if not line.startswith("doctor: ")]  # the doctor's findings come first
    assert lines[0].startswith("calibration coverage: 4 images") and len(lines) == 1 + 6  # + attempts
    assert not [p for p in result.bundle.iterdir() if p.name.startswith(".")]  # no candidates left


def test_met_bound_on_real_measurement_records_one_attempt(setup: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    result = _export(setup, tmp_path / "b", max_drop=5.0)
    q = read_manifest(result.bundle).quantization
    assert [a["what"] for a in q["attempts"]] == ["ptq minmax"]
    assert q["attempts"][0]["miou_drop_points"] == pytest.approx(q["miou_drop_points"], abs=1e-3)


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_impossible_bound_fails_with_best_figure_and_no_bundle(
    setup: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    target: str,
) -> None:
    from edgeseg.cli import main

    pytest.importorskip("onnxruntime" if target == "onnx" else "nncf")
    if target == "onnx":
        monkeypatch.setattr(DropMeter, "drop", lambda self, path, count=None: 4.0 - 0.5 * _float_convs(path))
    else:  # NNCF's accuracy control really runs; its result is scored as still too lossy
        monkeypatch.setattr(DropMeter, "drop", lambda self, path, count=None: 2.5)
    ckpt, data = setup
    out = tmp_path / "b"
    args = ["export", str(ckpt), "--target", target, "--precision", "int8", "--calib", str(data)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main([*args, "--val-data", str(data), "--max-drop", "0", "--out", str(out)])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--max-drop 0 points" in err[0]
    best = (
        "1.00 points (ptq minmax, first/last + 4 most" if target == "onnx" else "2.50 points (nncf.quantize)"
    )
    assert f"best {best}" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".b.*"))


def test_bad_max_drop_combinations_exit_2(
    setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edgeseg.cli import main

    ckpt, data = setup
    base = ["export", str(ckpt), "--target", "onnx", "--out", str(tmp_path / "b")]
    cases = [
        (["--precision", "int8", "--val-data", str(data), "--max-drop", "-1"], "must be 0 or more"),
        (["--precision", "int8", "--max-drop", "1"], "needs --val-data"),
        (["--precision", "fp16", "--val-data", str(data), "--max-drop", "1"], "--precision int8 only"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "b").exists()


def test_openvino_falls_back_to_nncf_accuracy_control(
    setup: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("nncf")
    drops = iter([3.0, 0.2])  # plain nncf.quantize too lossy, accuracy control within the bound
    monkeypatch.setattr(DropMeter, "drop", lambda self, path, count=None: next(drops))
    result = _export(setup, tmp_path / "b", target="openvino", max_drop=1.0)
    q = read_manifest(result.bundle).quantization
    assert q["method"] == "nncf.quantize_with_accuracy_control" and q["max_drop_points"] == 1.0
    assert [(a["what"], a["miou_drop_points"]) for a in q["attempts"]] == [
        ("nncf.quantize", 3.0),
        ("nncf.quantize_with_accuracy_control", 0.2),
    ]
