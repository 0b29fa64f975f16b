"""Atomic writes: a complete file or the previous one, never a partial one, and no temporary left."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeseg._io import atomic_open, atomic_path, discard_pending, write_json


def test_complete_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a.json"
    target.write_text("old")
    write_json(target, {"x": 1})
    assert target.read_text() == '{\n  "x": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_open(target) as f:
        f.write("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_interrupt_outside_the_generator_is_cleaned_by_discard_pending(tmp_path: Path) -> None:
    # A Ctrl-C inside contextlib's own frames never reaches the generator's cleanup; the CLI's
    # interrupt handler calls discard_pending() for exactly that case.
    cm = atomic_path(tmp_path / "b.bin")
    tmp = cm.__enter__()
    tmp.write_bytes(b"partial")
    assert tmp.exists()
    discard_pending()
    assert list(tmp_path.iterdir()) == []
    cm.gen.close()  # what garbage collection would do; must not fail on the missing file
