"""Atomic file writes: write to a temporary file beside the target, then rename into place.

A crash, Ctrl-C or full disk mid-write leaves the previous file (or nothing) at the target path,
never a truncated one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def _file_mode() -> int:
    # mkstemp creates 0600 files; finished artifacts get the usual umask-based mode instead.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_FILE_MODE = _file_mode()


# Temporary files of atomic writes in progress. A Ctrl-C can land inside contextlib's own frames,
# where the generator below never sees it; the CLI's interrupt handler removes what is left here.
_PENDING: set[Path] = set()


def discard_pending() -> None:
    """Remove the temporary files of atomic writes that were cut short (e.g. by Ctrl-C)."""
    for tmp in list(_PENDING):
        tmp.unlink(missing_ok=True)
        _PENDING.discard(tmp)


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a write that failed for want of room (a full disk or an exhausted quota)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_has_no_room(folder: str | os.PathLike[str], needed: int = 0) -> bool:
    """Whether the disk holding `folder` has less room left than `needed` bytes or 1 MiB."""
    return _no_room(Path(folder), needed)


# Below this much room left on a disk, a failed write there is taken to be the full disk's doing.
_MIN_FREE_BYTES = 1 << 20


def _no_room(folder: Path, needed: int) -> bool:
    try:
        return shutil.disk_usage(folder).free < max(needed, _MIN_FREE_BYTES)
    except OSError:
        return False


@contextlib.contextmanager
def disk_full_as_oserror(
    folder: str | os.PathLike[str], needed: int = 0, name: str | os.PathLike[str] | None = None
) -> Iterator[None]:
    """Report a full disk during the block's writes into `folder` as `OSError(ENOSPC)` naming `name`
    (default: the folder), which the CLI reports as "No space left on device 'NAME': free some space"
    (exit 1).

    Python's own file writes raise that OSError already (without a file name: it is added). Writers
    in C++ do not: `torch.save` to a path raises `RuntimeError: [enforce fail at inline_container.cc...]
    unexpected pos`, OpenVINO's `save_model` `RuntimeError: basic_ios::clear: iostream error`. Such a
    failure is taken for a full disk when the folder's disk has less room left than `needed` bytes
    (what the block was writing, when known: some writers delete their partial output) or 1 MiB; any
    other failure passes unchanged.
    """
    where = str(name if name is not None else folder)
    try:
        yield
    except OSError as exc:
        if is_disk_full(exc) and not exc.filename:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), where) from exc
        raise
    except Exception as exc:
        if _no_room(Path(folder), needed):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), where) from exc
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto `path` if the block succeeds.

    A library that fails in the block because the disk is full is reported as `OSError(ENOSPC)`
    (`disk_full_as_oserror`: the temporary file is still there when that is judged)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp_path = Path(tmp)
    _PENDING.add(tmp_path)
    try:
        os.close(fd)
        with disk_full_as_oserror(target.parent, name=target):
            yield tmp_path
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        _PENDING.discard(tmp_path)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file for writing that replaces `path` only once it is complete."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")


def replace_folder(tmp: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Rename the finished folder `tmp` onto `dest` (both in one folder, so each rename is atomic).

    Whatever is at `dest` is moved aside first and removed only once the new folder is in place; if
    that rename fails it is put back. A symbolic link at `dest` is replaced itself, like a file by
    `atomic_path`: the folder it points to is left alone (it may be anything, anywhere), and no
    moved-aside name is left behind (`shutil.rmtree` refuses links).
    """
    tmp, dest = Path(tmp), Path(dest)
    if not os.path.lexists(dest):
        os.replace(tmp, dest)
        return
    old = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.old")
    os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.replace(old, dest)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)
