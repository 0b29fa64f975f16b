"""Two runs, one destination: a run claims the place it writes to before any work, and holds it.

The claim is a small lock file beside the destination, `.<name>.edgeseg-lock`, created atomically
(O_CREAT | O_EXCL), so of two runs started together exactly one gets it; the other is told at once,
in one line, which run holds the place. The lock records the holder's pid, host, process start time
and the temporary paths it is writing, so that after a run killed with SIGKILL (which no cleanup
survives) the next run to the same place sees that the holder is gone, removes its leftovers and
its lock, and says so in one warning line.

A lock is a file anyone could have planted, so its record is data, never an instruction: the
cleanup removes only temporaries whose names this module itself gives (`.<name>.<8 hex>.tmp` or
`.old`, from `temporary_name`) in the destination's own folder, and the atomic writers' temporaries
inside the destination folder, each only if it is a plain file or folder (not a link) owned by this
user. A path the record lists that is anything else is left alone, wherever it points.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import stat
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeseg._paths import PathLike, resolved
from edgeseg._records import Record, RecordError
from edgeseg.errors import InputError

__all__ = ["Claim", "claim", "lock_path", "temporary_name"]

_SUFFIX = ".edgeseg-lock"
_ATOMIC_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")
_KINDS = ("tmp", "old")  # a folder being written; a replaced one waiting for removal


def temporary_name(dest: PathLike, kind: str = "tmp") -> Path:
    """A fresh hidden path beside `dest` for a claim's temporary: `.<name>.<8 hex>.<kind>`, the
    only names a later run's cleanup will remove."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}")
    target = Path(dest)
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.{kind}")


def _ours(name: str, dest: Path) -> bool:
    """Whether `name` is one `temporary_name(dest)` could have given."""
    return re.fullmatch(rf"\.{re.escape(dest.name)}\.[0-9a-f]{{8}}\.({'|'.join(_KINDS)})", name) is not None


def lock_path(dest: PathLike) -> Path:
    """The lock file that claims `dest` (beside it: `dest` may be a folder replaced as a whole)."""
    target = resolved(dest)
    return target.with_name(f".{target.name}{_SUFFIX}")


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), which tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    now = _start_time(pid)
    return started is None or now is None or now == started


class Claim:
    """A held claim on one destination; `track()` records temporary paths for a later cleanup."""

    def __init__(self, dest: Path, lock: Path, record: dict[str, Any]) -> None:
        self.dest, self.lock, self._record = dest, lock, record

    def temporary(self, kind: str = "tmp") -> Path:
        """A fresh temporary path beside the destination (`temporary_name`), already tracked."""
        path = temporary_name(self.dest, kind)
        self.track(path)
        return path

    def track(self, path: PathLike) -> None:
        """Record `path` (a temporary file or folder of this run, named by `temporary_name`) in the
        lock, so that if this run is killed the next run to the same destination removes it."""
        full = resolved(path)
        if full.parent != self.dest.parent or not _ours(full.name, self.dest):
            raise ValueError(f"'{path}' is not a temporary name of '{self.dest}' (see temporary_name)")
        self._record["partial"].append(str(full))
        self._write()

    def _write(self) -> None:
        tmp = self.lock.with_name(self.lock.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._record), encoding="utf-8")
        os.replace(tmp, self.lock)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.lock.unlink()


def _read(lock: Path) -> dict[str, Any] | None:
    """The lock's record, validated; {} when it is unreadable or not a lock record (then it is
    judged by its age), None when it is gone."""
    try:
        raw = lock.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError):
        return {}
    try:
        r = Record.parse(raw, f"lock '{lock}'")
        return {
            "pid": r.integer("pid", minimum=1),
            "host": r.text("host"),
            "started": r.text("started", default=None),
            "since": r.text("since", default="?"),
            "partial": r.texts("partial", default=[]),
        }
    except RecordError:
        return {}  # being written this very moment, or garbage


def _stale(record: dict[str, Any], lock: Path) -> bool:
    if not record:  # unreadable: a run that died while creating it, if it stays so
        return time.time() - lock.stat().st_mtime > 60
    if record["host"] != socket.gethostname():
        return False  # another machine's run (shared disk): its pid means nothing here
    return not _alive(record["pid"], record["started"])


def _removable(path: Path, folder: bool | None = None) -> bool:
    """A plain file or folder (never a link), owned by this user; `folder` asks for one kind."""
    try:
        st = path.lstat()
    except OSError:
        return False
    if st.st_uid != os.getuid() or stat.S_ISLNK(st.st_mode):
        return False
    is_dir = stat.S_ISDIR(st.st_mode)
    if folder is not None and is_dir != folder:
        return False
    return is_dir or stat.S_ISREG(st.st_mode)


def _clean(record: dict[str, Any], lock: Path, dest: Path) -> list[str]:
    """Remove what a dead holder left: nothing the record names is trusted beyond a name this
    module would give (see the module docstring)."""
    removed = []
    if _removable(dest, folder=True):
        # The atomic writes' temporaries (edgeseg._io) a killed run left inside its folder.
        for p in dest.iterdir():
            if _ATOMIC_TMP.match(p.name) and _removable(p, folder=False):
                p.unlink()
                removed.append(p.name)
    for item in record.get("partial", []):
        name = Path(item).name
        p = dest.parent / name
        # Exactly the path this claim would have written: same folder, a name it generates.
        if str(p) != item or not _ours(name, dest) or not _removable(p):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(name)
    lock.unlink(missing_ok=True)
    return removed


@contextlib.contextmanager
def claim(dest: PathLike, what: str = "--out") -> Iterator[Claim]:
    """Hold `dest` for the duration of the block, or raise InputError if another live run holds it.

    A lock left by a run that no longer exists is cleaned up (with its recorded temporaries) and
    reported with a warning; the claim is then taken.
    """
    target = resolved(dest)
    lock = lock_path(target)
    lock.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _start_time(os.getpid()),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:300],
        "dest": str(target),
        "partial": [],
    }
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            held = _read(lock)
            if held is None:
                continue  # released between our attempt and the read
            if not _stale(held, lock):
                who = "a run whose lock cannot be read yet"
                if held:
                    where = f" on {held['host']}" if held["host"] != socket.gethostname() else ""
                    who = f"pid {held['pid']}{where}, since {held['since']}"
                raise InputError(
                    f"{what} '{dest}' is being written by another edgeseg run ({who}); wait for it to "
                    f"finish or choose another {what}"
                ) from None
            removed = _clean(held, lock, target)
            pid, since = held.get("pid", "?"), held.get("since", "?")
            warnings.warn(
                f"{what} '{dest}': an earlier run (pid {pid}, since {since}) ended without finishing; "
                "removed its lock" + (f" and {len(removed)} unfinished file(s)" if removed else ""),
                stacklevel=3,
            )
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        break
    else:
        raise InputError(f"{what} '{dest}' is being claimed by several runs at once; run again")
    held_claim = Claim(target, lock, record)
    try:
        yield held_claim
    finally:
        held_claim.release()
