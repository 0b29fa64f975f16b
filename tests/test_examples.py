"""The examples are documentation: they must keep running."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=cwd, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_train_and_evaluate(tmp_path: Path):
    # 32x32 scenes instead of the default 128x128: the same steps, a sixteenth of the pixels.
    args = ["--epochs", "1", "--width", "4", "--img-size", "32"]
    out = run([str(EXAMPLES / "train_and_evaluate.py"), *args], tmp_path)
    assert "best val mIoU" in out and "class shares:" in out
    assert (tmp_path / "runs" / "example" / "best.pt").is_file()


def test_export_and_segment(tmp_path: Path):
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    from tests.helpers import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    out = run([str(EXAMPLES / "export_and_segment.py"), str(ckpt), "--out", str(tmp_path / "x")], tmp_path)
    import re

    agreements = [float(a) for a in re.findall(r"agreement with PyTorch on this frame ([\d.]+)%", out)]
    assert "pytorch" in out and len(agreements) >= 1
    assert min(agreements) >= 99.9


def test_robot_loop(tmp_path: Path):
    pytest.importorskip("cv2", reason="pip install 'edgeseg[demo]'")
    from tests.helpers import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "tiny.pt")
    out = run([str(EXAMPLES / "robot_loop.py"), str(ckpt), "--frames", "6", "--free-class", "c2"], tmp_path)
    import re

    assert "free space: class 2 (c2)" in out
    steps = re.findall(r"frame +\d+: free ahead +([\d.]+)% -> (go|slow|stop)", out)
    assert len(steps) == 6 and all(0 <= float(free) <= 100 for free, _ in steps)
    assert "6 frames" in out


def test_robot_loop_picks_the_free_class_by_name() -> None:
    """CamVid's class 0 is sky: the default free class is found by name (road), not taken as id 0."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("robot_loop", EXAMPLES / "robot_loop.py")
    loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loop)
    camvid = ("sky", "building", "pole", "road", "pavement")
    assert loop.free_class_id(camvid, None) == 3
    assert loop.free_class_id(("background", "disc"), None) == 0
    assert loop.free_class_id(camvid, "pavement") == 4 and loop.free_class_id(camvid, "1") == 1
    with pytest.raises(SystemExit, match="no class looks like free space; pass --free-class"):
        loop.free_class_id(("c0", "c1"), None)
    with pytest.raises(SystemExit, match="'lawn' is not one of the model's classes"):
        loop.free_class_id(camvid, "lawn")
