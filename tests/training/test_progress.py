"""Progress inside a training epoch: live on a terminal (tested under a pseudo-terminal), plain lines
at an interval in a log, nothing with --quiet; and the shared progress task's arithmetic."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import edgeseg._progress as progress
from tests.helpers import make_dataset, run_cli

pytest.importorskip("torch")

TRAIN = ["--epochs", "2", "--img-size", "32", "--batch-size", "2", "--no-augment", "--workers", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("progress") / "d", n=12, size=(32, 32))


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_train_on_a_terminal_shows_steps_loss_rate_and_time_left(data: Path, tmp_path: Path) -> None:
    import pty

    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "220", "LINES": "50"}
    env.pop("NO_COLOR", None)
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "edgeseg", "train", "--data", str(data), *TRAIN, "--out", str(out)]
    proc = subprocess.Popen(cmd, stdin=follower, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    raw = _read_all(leader)
    os.close(leader)
    assert proc.wait(timeout=600) == 0, raw.decode(errors="replace")[-2000:]
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.decode(errors="replace"))
    # 12 images at batch 2, a 2-image val split aside: the bar counts the epoch's steps.
    live = re.findall(r"epoch (\d)/2\s.*?(\d+)/(\d+)\s+loss (\S+)\s+([\d.]+) img/s.*?run (\S+) left", text)
    assert live, text[-2000:]
    assert {e for e, *_ in live} == {"1", "2"}
    for _, done, total, loss, rate, _left in live:
        assert 1 <= int(done) <= int(total)
        assert float(loss) == float(loss) and float(loss) > 0  # a number from the first step on: never nan
        assert float(rate) > 0
    assert "nan" not in text.lower().replace("nan ", "")  # no "loss nan" placeholder before an update
    assert "epoch   2/2" in text  # the per-epoch summary line still follows the bar


def test_train_in_a_log_prints_plain_progress_lines(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)  # a line at every update, as a long epoch gets
    rc, _, err = run_cli(["train", "--data", data, *TRAIN, "--out", tmp_path / "b"], capsys)
    assert rc == 0, err
    shape = r"^epoch (\d)/2: (\d+)/(\d+)  loss (\S+)  ([\d.]+) img/s.*\((\S+) elapsed, (\S+) left\)$"
    lines = re.findall(shape, err, re.M)
    assert {e for e, *_ in lines} == {"1", "2"}, err
    assert [int(d) for e, d, *_ in lines if e == "1"][-1] == int(lines[0][2])  # the last step is shown
    assert all(float(loss) > 0 for *_, loss, _, _, _ in lines)
    assert all("best val mIoU" in line for line in err.splitlines() if line.startswith("epoch 2/2:"))


def test_export_names_its_stages_in_a_log(
    tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    rc, out, err = run_cli(["export", tiny_ckpt, "--target", "onnx", "--out", tmp_path / "b"], capsys)
    assert rc == 0, err
    done = re.findall(r"^export: (.+): done \((\d+:\d\d)\)$", err, re.M)
    assert [what for what, _ in done] == [
        "the FP32 graph and its doctor check",
        "the onnx fp32 artifact",
        "parity with the FP32 reference",
    ], err
    assert "wrote" in out and "export:" not in out  # progress on stderr; stdout keeps the report


def test_quiet_and_short_tasks_print_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 30.0)
    with progress.track("quiet", 3, quiet=True) as task:
        task.update(3, "done")
    with progress.track("short", 3) as task:  # stderr is no terminal here: lines only after the interval
        task.update(3, "done")
    assert capsys.readouterr() == ("", "")


def test_task_time_left_and_plain_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 30.0)
    now = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    printed: list[str] = []

    class Sink:
        def print(self, text: str, **_: object) -> None:
            printed.append(text)

    task = progress.Task("calibration", 40, None, Sink())
    assert task.remaining() is None  # nothing done yet: no rate to extrapolate
    now[0] += 10
    task.update(10, "x")
    assert printed == []  # 10 s < PLAIN_EVERY_S
    now[0] += 20
    task.update(20, "images")
    assert task.remaining() == pytest.approx(30.0)
    assert printed == ["calibration: 20/40  images  (0:30 elapsed, 0:30 left)"]
    now[0] += 3600
    task.advance(1)
    assert progress.clock(task.elapsed) == "1:00:30" and progress.clock(None) == "-:--"
    assert progress.clock(float("nan")) == "-:--" and progress.clock(float("inf")) == "-:--"
