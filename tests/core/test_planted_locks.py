"""A lock file beside a destination is data, never an instruction.

A stale lock (this host, a dead pid) makes the next run clean up what the dead run left. A planted
one must not make edgeseg delete anything else: whatever paths its record lists (absolute, relative
with '..', links, other users' files, the user's `.git` beside --out), only temporaries whose names
the claim itself gives, in the destination's own folder, owned by this user, go.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import edgeseg._claims as claims
from edgeseg._claims import claim, lock_path, temporary_name
from tests.helpers import run_cli


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _plant(dest: Path, partial: list[str], **extra: object) -> Path:
    lock = lock_path(dest)
    lock.parent.mkdir(parents=True, exist_ok=True)
    record = {"pid": _dead_pid(), "host": socket.gethostname(), "since": "earlier", "partial": partial}
    lock.write_text(json.dumps({**record, **extra}), encoding="utf-8")
    return lock


def _precious(folder: Path) -> Path:
    """A folder of the user's with a file in it (what a planted record aims at)."""
    folder.mkdir(parents=True)
    (folder / "HEAD").write_text("ref: refs/heads/main\n")
    return folder


def _intact(folder: Path) -> bool:
    return (folder / "HEAD").is_file() and (folder / "HEAD").read_text() == "ref: refs/heads/main\n"


# Each case: (what the record lists, built from the workspace root and the destination) -> the
# folder that must survive.
Case = Callable[[Path, Path], tuple[list[str], Path]]


def _git_beside(root: Path, dest: Path) -> tuple[list[str], Path]:
    return [str(root / ".git")], _precious(root / ".git")


def _absolute_elsewhere(root: Path, dest: Path) -> tuple[list[str], Path]:
    return [str(root / "elsewhere" / "photos")], _precious(root / "elsewhere" / "photos")


def _relative_dotdot(root: Path, dest: Path) -> tuple[list[str], Path]:
    target = _precious(root.parent / f"{root.name}-sibling")
    return [os.path.relpath(target, Path.cwd()), f"{dest.parent}/../{target.name}"], target


def _our_name_elsewhere(root: Path, dest: Path) -> tuple[list[str], Path]:
    # A name the claim would give, but in another folder.
    target = _precious(root / "other" / f".{dest.name}.0123abcd.tmp")
    return [str(target)], target


def _our_name_through_dotdot(root: Path, dest: Path) -> tuple[list[str], Path]:
    target = _precious(root / "other" / f".{dest.name}.0123abcd.tmp")
    return [f"{dest.parent}/../other/{target.name}"], target


def _our_name_as_link(root: Path, dest: Path) -> tuple[list[str], Path]:
    target = _precious(root / "photos")
    link = dest.parent / f".{dest.name}.0123abcd.tmp"
    link.symlink_to(target, target_is_directory=True)
    return [str(link)], target


def _linked_parent(root: Path, dest: Path) -> tuple[list[str], Path]:
    # The record names a temporary under a link to another folder that holds one by that name.
    target = _precious(root / "other" / f".{dest.name}.0123abcd.tmp")
    (root / "via").symlink_to(root / "other", target_is_directory=True)
    return [str(root / "via" / target.name)], target


def _other_name_beside(root: Path, dest: Path) -> tuple[list[str], Path]:
    # Hidden and beside the destination, but not a name the claim gives (another bundle's temp).
    target = _precious(dest.parent / f".{dest.name}x.0123abcd.tmp")
    return [str(target)], target


CASES: dict[str, Case] = {
    "git-beside-out": _git_beside,
    "absolute-elsewhere": _absolute_elsewhere,
    "relative-dotdot": _relative_dotdot,
    "our-name-elsewhere": _our_name_elsewhere,
    "our-name-through-dotdot": _our_name_through_dotdot,
    "our-name-as-symlink": _our_name_as_link,
    "our-name-under-a-linked-folder": _linked_parent,
    "other-name-beside": _other_name_beside,
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_planted_lock_deletes_nothing_it_names(tmp_path: Path, case: str) -> None:
    root = tmp_path / "work"
    root.mkdir()
    dest = root / "out"
    partial, target = CASES[case](root, dest)
    _plant(dest, partial)
    with pytest.warns(UserWarning, match="ended without finishing; removed its lock$"), claim(dest):
        pass
    assert _intact(target), f"{case}: a path the lock named was removed"
    assert not lock_path(dest).exists()


def test_stale_lock_still_removes_its_own_temporaries(tmp_path: Path) -> None:
    """The cleanup is not disabled wholesale: the names the claim gives, beside the destination and
    owned by this user, go; everything else the record lists stays."""
    dest = tmp_path / "out"
    ours = [temporary_name(dest, "tmp"), temporary_name(dest, "old")]
    ours[0].mkdir()
    (ours[0] / "model.onnx").write_bytes(b"half")
    ours[1].write_bytes(b"old bundle")
    keep = _precious(tmp_path / ".git")
    _plant(dest, [*map(str, ours), str(keep)])
    with pytest.warns(UserWarning, match="removed its lock and 2 unfinished file"), claim(dest):
        assert not any(p.exists() for p in ours)
    assert _intact(keep)


def test_other_users_temporaries_are_left(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files another user owns are never removed, even under the claim's own names."""
    dest = tmp_path / "out"
    dest.mkdir()
    theirs = temporary_name(dest)
    _precious(theirs)
    atomic = dest / ".model.onnx.ab12cd34.tmp"  # an atomic write's name, inside the destination
    atomic.write_bytes(b"theirs")
    _plant(dest, [str(theirs)])
    monkeypatch.setattr(claims.os, "getuid", lambda: os.stat(tmp_path).st_uid + 1)
    with pytest.warns(UserWarning, match="removed its lock$"), claim(dest):
        pass
    assert _intact(theirs) and atomic.read_bytes() == b"theirs"


def test_links_inside_the_destination_are_not_followed(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    precious = tmp_path / "notes.txt"
    precious.write_text("mine")
    (dest / ".notes.txt.ab12cd34.tmp").symlink_to(precious)
    (dest / ".half.png.ab12cd34.tmp").write_bytes(b"half")  # a real leftover: removed
    _plant(dest, [])
    with pytest.warns(UserWarning, match="1 unfinished file"), claim(dest):
        pass
    assert precious.read_text() == "mine" and (dest / ".notes.txt.ab12cd34.tmp").is_symlink()
    assert not (dest / ".half.png.ab12cd34.tmp").exists()


@pytest.mark.parametrize(
    "record",
    [
        '{"pid": "1; rm -rf /", "host": "HOST", "partial": []}',
        '{"pid": -1, "host": "HOST", "partial": []}',
        '{"pid": 0, "host": "HOST", "partial": []}',
        '{"pid": 12, "host": ["HOST"], "partial": []}',
        '{"pid": 12, "host": "HOST", "partial": "/"}',
        '{"pid": 12, "host": "HOST", "partial": [["/"]]}',
        '{"pid": 1e400, "host": "HOST", "partial": []}',
        '{"pid": NaN, "host": "HOST", "partial": []}',
        "[" * 100000,
        '"just text"',
    ],
)
def test_malformed_lock_is_judged_by_its_age_only(tmp_path: Path, record: str) -> None:
    """A record that is not a lock's shape is never acted on: fresh, it holds the place (one line);
    old, it is removed with nothing else."""
    dest = tmp_path / "out"
    keep = _precious(tmp_path / ".git")
    lock = lock_path(dest)
    lock.write_text(record.replace("HOST", socket.gethostname()))
    with pytest.raises(claims.InputError, match="being written by another edgeseg run"), claim(dest):
        pass
    old = time.time() - 3600
    os.utime(lock, (old, old))
    with pytest.warns(UserWarning, match="removed its lock$"), claim(dest):
        pass
    assert _intact(keep) and not lock.exists()


def test_track_refuses_paths_that_are_not_its_temporaries(tmp_path: Path) -> None:
    """The writer side: a claim records only names its cleanup would accept."""
    with claim(tmp_path / "out") as held:
        for path in (tmp_path / ".git", tmp_path / "elsewhere" / ".out.0123abcd.tmp", tmp_path / "out"):
            with pytest.raises(ValueError, match="not a temporary name"):
                held.track(path)
        assert held.temporary().parent == tmp_path


def test_predict_with_a_planted_lock_keeps_the_folders_it_names(
    tmp_path: Path, tiny_ckpt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's case through the command: `.out.edgeseg-lock` with this host, a dead pid and the
    repository's `.git` (and an absolute folder elsewhere) in "partial"."""
    repo = tmp_path / "repo"
    git = _precious(repo / ".git")
    photos = _precious(tmp_path / "photos-backup")
    Image.fromarray(np.full((48, 64, 3), 80, np.uint8)).save(repo / "frame.png")
    out = repo / "out"
    _plant(out, [str(git), str(photos), f"{repo}/../photos-backup"])
    rc, _, err = run_cli(["predict", tiny_ckpt, repo / "frame.png", "--out", out], capsys)
    assert rc == 0, err
    assert "ended without finishing" in err
    assert _intact(git) and _intact(photos)
    assert (out / "frame_mask.png").is_file()
