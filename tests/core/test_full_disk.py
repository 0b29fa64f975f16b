"""A full disk is one line, "No space left on device ... free some space", exit 1, whichever library
writes: Python's own writes say so by themselves, writers in C++ (torch.save to a path, OpenVINO's
save_model, ONNX Runtime's optimiser) do not, and edgeseg's writes report them the same way."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.helpers import make_dataset, run_cli

TINY_TRAIN = ["--img-size", "32", "--depth", "2", "--width", "4", "--batch-size", "4", "--quiet"]
DEV_FULL = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Under `tmp_path/disk`, a disk with no room: each temporary file edgeseg writes there is
    /dev/full (so the write itself fails with ENOSPC, in whatever library writes it, Python or C++),
    and the disk reports 0 bytes free. Returns the folder."""
    if not os.access(DEV_FULL, os.W_OK):
        pytest.skip("needs /dev/full")
    disk = tmp_path / "disk"
    disk.mkdir()
    real_mkstemp, real_usage, real_chmod = tempfile.mkstemp, shutil.disk_usage, os.chmod

    def on_disk(path: Any) -> bool:
        return Path(os.path.abspath(path)).is_relative_to(disk)

    def mkstemp(*args: Any, **kwargs: Any) -> tuple[int, str]:
        fd, name = real_mkstemp(*args, **kwargs)
        if on_disk(name):
            os.close(fd)
            os.unlink(name)
            os.symlink(DEV_FULL, name)
            fd = os.open(name, os.O_WRONLY)
        return fd, name

    def disk_usage(path: Any) -> Any:
        usage = real_usage(path)
        return usage._replace(free=0) if on_disk(path) else usage

    def chmod(path: Any, mode: int, *args: Any, **kwargs: Any) -> None:
        # A write to /dev/full that went unnoticed would go on to chmod (and rename) it: stop there.
        assert os.path.realpath(path) != str(DEV_FULL), f"a write to a full disk went unnoticed: {path}"
        real_chmod(path, mode, *args, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(shutil, "disk_usage", disk_usage)
    monkeypatch.setattr(os, "chmod", chmod)
    return disk


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(".") or p.name.endswith((".tmp", ".old"))]


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(path)
    return path


Command = Callable[[Path, Path, Path], list[Any]]  # (disk, data, checkpoint) -> CLI args

# Every command that writes its results through edgeseg's atomic writes.
COMMANDS: dict[str, Command] = {
    "train": lambda d, data, ck: ["train", "--data", data, "--epochs", "1", "--out", d / "run", *TINY_TRAIN],
    "predict": lambda d, data, ck: ["predict", ck, data / "images" / "img000.png", "--out", d / "pred"],
    "eval-json": lambda d, data, ck: ["eval", ck, "--data", data, "--json", d / "eval.json"],
    "info-json": lambda d, data, ck: ["info", ck, "--json", d / "info.json"],
}


@pytest.mark.parametrize("command", COMMANDS, ids=list(COMMANDS))
def test_a_full_disk_is_one_line_whoever_writes(
    command: str, full_disk: Path, tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_dataset(tmp_path / "data", n=4)
    rc, _, err = run_cli(COMMANDS[command](full_disk, data, tiny_ckpt), capsys)
    lines = err.strip().splitlines()
    assert rc == 1, err
    assert len(lines) == 1 and lines[0].startswith("edgeseg: error: No space left on device"), err
    assert "free some space" in lines[0] and str(full_disk) in lines[0]
    assert "Traceback" not in err and "enforce fail" not in err
    assert not _leftovers(full_disk), _leftovers(full_disk)


def test_checkpoints_report_a_full_disk_as_such_not_as_torch_internals(
    full_disk: Path, tiny_ckpt: Path
) -> None:
    from edgeseg.models.checkpoint import load_checkpoint, save_checkpoint

    with pytest.raises(OSError) as info:
        save_checkpoint(full_disk / "best.pt", load_checkpoint(tiny_ckpt))
    assert info.value.errno == errno.ENOSPC
    assert not list(full_disk.iterdir())


def test_openvino_export_reports_a_full_disk(
    full_disk: Path, tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ov = pytest.importorskip("openvino", reason="pip install 'edgeseg[openvino]'")
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    real = ov.save_model

    def save_model(model: Any, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).with_suffix(".bin").symlink_to(DEV_FULL)  # the weights land on the full disk
        real(model, path, *args, **kwargs)

    monkeypatch.setattr(ov, "save_model", save_model)
    out = full_disk / "bundle"
    rc, _, err = run_cli(
        ["export", tiny_ckpt, "--target", "openvino", "--out", out, "--parity-images", "1"], capsys
    )
    assert rc == 1 and err.strip().startswith("edgeseg: error: No space left on device"), err
    assert len(err.strip().splitlines()) == 1 and "free some space" in err
    assert not out.exists() and not _leftovers(full_disk)


def test_a_library_failure_is_a_full_disk_only_when_the_disk_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeseg._io import atomic_path, disk_full_as_oserror

    cpp_style = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    with pytest.raises(RuntimeError, match="unexpected pos"), atomic_path(tmp_path / "a.bin"):
        raise cpp_style  # room left: not the disk's doing, reported as it is
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1024))
    with pytest.raises(OSError) as info, atomic_path(tmp_path / "a.bin"):
        raise cpp_style
    assert info.value.errno == errno.ENOSPC and info.value.__cause__ is cpp_style
    with pytest.raises(OSError), disk_full_as_oserror(tmp_path, needed=10_000):
        raise RuntimeError("basic_ios::clear: iostream error")
    assert not list(tmp_path.iterdir())
