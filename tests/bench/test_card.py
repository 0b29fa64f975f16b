"""The benchmark card (environment fingerprint, command line, commit) and `benchmark --compare`."""

from __future__ import annotations

import json
import platform
import shlex
import sys
from pathlib import Path

import pytest

from edgeseg.bench.report import write_reports
from edgeseg.bench.run import BenchmarkConfig, BenchmarkReport, BenchRow, _meta
from tests.helpers import run_cli


def _card(
    folder: Path,
    model_ms: float,
    fps: float,
    cpu: str | None = None,
    spread: float | None = None,
    executed: str = "fp32",
) -> Path:
    """A benchmark.json/.md written by the report writer, with meta as `benchmark` builds it."""
    meta = _meta(
        Path("runs/x/best.pt"), (64, 48), 1000, "synthetic", 4, BenchmarkConfig(targets=("onnx:fp32",))
    )
    meta["out"] = str(folder)
    meta["executed_precision"] = {"pytorch": "fp32", "onnx:fp32": executed}
    if cpu is not None:
        meta["environment"]["cpu"]["model"] = cpu
    rows = [
        BenchRow("pytorch", "pytorch", "fp32", backend="torch", reference=True, model_ms_p50=8.0, fps=50.0),
        BenchRow(
            "onnx:fp32",
            "onnx",
            "fp32",
            backend="onnxruntime",
            executed_precision=executed,
            model_ms_p50=model_ms,
            total_ms_p50=2 * model_ms,
            fps=fps,
            miou=0.5,
            agreement=0.9987,
            speedup=8.0 / model_ms,
            spreads={"model_ms": spread, "speedup": spread} if spread is not None else {},
        ),
    ]
    return write_reports(BenchmarkReport(rows, meta), folder)["json"]


def test_card_fields_in_json_and_markdown(tmp_path: Path) -> None:
    path = _card(tmp_path / "a", 4.0, 100.0)
    meta = json.loads(path.read_text())["meta"]
    env = meta["environment"]
    assert env["python"] == platform.python_version()
    assert env["cpu"]["usable_cores"] >= 1 and env["cpu"]["logical_cpus"] >= 1
    assert {"torch", "onnxruntime", "openvino", "tensorrt"} <= set(env["packages"])
    assert env["packages"]["torch"] is not None  # installed here; tensorrt may be None (not installed)
    assert "gpus" in env and "jetson" in env and "os" in env
    assert meta["edgeseg_version"] and "command" in meta and "git_commit" in meta
    assert shlex.join(sys.argv[1:]) in (meta["command"] or "")  # the process that wrote it
    md = (tmp_path / "a" / "benchmark.md").read_text()
    assert "## Environment" in md and f"python: {platform.python_version()}" in md
    assert f"cpu usable_cores: {env['cpu']['usable_cores']}" in md
    assert "onnx:fp32 computed in: fp32" in md and "| onnx:fp32 | onnxruntime | fp32 |" in md


def test_compare_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _card(tmp_path / "a", 4.0, 100.0, cpu="CPU one")
    b = _card(tmp_path / "b", 2.0, 150.0, cpu="CPU two", executed="bf16")
    code, out, err = run_cli(["benchmark", "--compare", a, b], capsys)
    assert code == 0, err
    env_line = next(line for line in out.splitlines() if "cpu model" in line)
    assert "CPU one" in env_line and "CPU two" in env_line
    ran = next(line for line in out.splitlines() if "onnx:fp32 computed in" in line)
    assert "fp32" in ran and "bf16" in ran  # a precision one machine ran shows beside the other's
    assert not [line for line in out.splitlines() if "pytorch computed in" in line]  # equal: left out
    row = next(line for line in out.split("rows (ratio")[1].splitlines() if "onnx:fp32" in line)
    # model p50 4.00 -> 2.00 (0.50x), call p50 8.00 -> 4.00 (0.50x), FPS 100 -> 150 (1.50x)
    for cell in ("4.00", "2.00", "0.50x", "8.00", "100.0", "150.0", "1.50x", "0.5000", "99.87"):
        assert cell in row, cell
    same = [line for line in out.split("rows (ratio")[0].splitlines() if line.strip().startswith("│ python")]
    assert same == []  # equal facts are not listed
    assert "no spread recorded" in row  # cards without spreads cannot say whether B/A is noise


def test_compare_says_whether_a_difference_is_inside_the_spread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _card(tmp_path / "a", 4.0, 100.0, spread=0.03)
    near = _card(tmp_path / "near", 4.1, 98.0, spread=0.02)  # 2.5 % slower: inside 3 % + 2 %
    far = _card(tmp_path / "far", 2.0, 150.0, spread=0.02)  # twice as fast: far outside
    code, out, err = run_cli(["benchmark", "--compare", a, near], capsys)
    assert code == 0, err
    row = next(line for line in out.split("rows (ratio")[1].splitlines() if "onnx:fp32" in line)
    assert row.count("yes (2% <= 5%)") == 2  # model p50 and speed-up
    code, out, err = run_cli(["benchmark", "--compare", a, far], capsys)
    row = next(line for line in out.split("rows (ratio")[1].splitlines() if "onnx:fp32" in line)
    assert code == 0 and row.count("no (50% > 5%)") == 1 and "no (100% > 5%)" in row


def test_compare_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _card(tmp_path / "a", 4.0, 100.0)
    not_json, not_card = tmp_path / "x.json", tmp_path / "y.json"
    not_json.write_text("{ nope")
    not_card.write_text('{"rows": []}')
    for bad, message in (
        (tmp_path / "missing.json", "does not exist"),
        (not_json, "not readable JSON"),
        (not_card, "is not a benchmark.json"),
    ):
        code, _, err = run_cli(["benchmark", "--compare", good, bad], capsys)
        assert code == 2 and err.count("\n") == 1 and message in err and str(bad) in err
    # The figures the comparison computes with (spreads, the load) are validated like the rest.
    card = json.loads(good.read_text())
    for where, value, key in (
        ("rows", {"model_ms": -0.1}, "spreads"),
        ("rows", {"model_ms": "3%"}, "spreads"),
        ("meta", {"usable_cores": 2, "load_avg": {"mean": "high"}}, "load"),
    ):
        broken = json.loads(json.dumps(card))
        (broken["rows"][1] if where == "rows" else broken["meta"])[key] = value
        bad = tmp_path / f"broken-{key}.json"
        bad.write_text(json.dumps(broken))
        code, _, err = run_cli(["benchmark", "--compare", good, bad], capsys)
        assert code == 2 and err.count("\n") == 1 and key in err and str(bad) in err, err
    code, _, err = run_cli(["benchmark"], capsys)
    assert code == 2 and "--compare A.json B.json" in err
