"""Two runs, one destination: a run claims the place it writes to before any work, and holds it.

The claim is a small lock file beside the destination, `.<name>.edgeseg-lock`, created atomically
(O_CREAT | O_EXCL), so of two runs started together exactly one gets it; the other is told at once,
in one line, which run holds the place. The lock records the holder's pid, host, process start time
and the temporary paths it is writing, so that after a run killed with SIGKILL (which no cleanup
survives) the next run to the same place sees that the holder is gone, removes its leftovers and
its lock, and says so in one warning line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeseg._paths import PathLike, resolved
from edgeseg.errors import InputError

__all__ = ["Claim", "claim", "lock_path"]

_SUFFIX = ".edgeseg-lock"
_ATOMIC_TMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")


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

    def track(self, path: PathLike) -> None:
        """Record `path` (a temporary file or folder of this run) in the lock, so that if this run is
        killed the next run to the same destination removes it."""
        self._record["partial"].append(str(resolved(path)))
        self._write()

    def _write(self) -> None:
        tmp = self.lock.with_name(self.lock.name + f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self._record), encoding="utf-8")
        os.replace(tmp, self.lock)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.lock.unlink()


def _read(lock: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(lock.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written this very moment, or garbage: judged by its age below
    return data if isinstance(data, dict) else {}


def _stale(record: dict[str, Any], lock: Path) -> bool:
    if not record:  # unreadable: a run that died while creating it, if it stays so
        return time.time() - lock.stat().st_mtime > 60
    if record.get("host") != socket.gethostname():
        return False  # another machine's run (shared disk): its pid means nothing here
    return not _alive(int(record.get("pid", -1)), record.get("started"))


def _clean(record: dict[str, Any], lock: Path, dest: Path) -> list[str]:
    removed = []
    if dest.is_dir() and not dest.is_symlink():
        # The atomic writes' temporaries (edgeseg._io) a killed run left inside its folder.
        for p in dest.iterdir():
            if _ATOMIC_TMP.match(p.name) and p.is_file():
                p.unlink()
                removed.append(p.name)
    for item in record.get("partial", []):
        p = Path(item)
        if p.parent != lock.parent or not p.name.startswith("."):
            continue  # only the hidden temporaries beside the destination, never anything else
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            p.unlink()
        removed.append(p.name)
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
                who = f"pid {held.get('pid', '?')}" + (
                    f" on {held['host']}" if held.get("host") not in (None, socket.gethostname()) else ""
                )
                raise InputError(
                    f"{what} '{dest}' is being written by another edgeseg run ({who}, since "
                    f"{held.get('since', '?')}); wait for it to finish or choose another {what}"
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
