"""Guards every layer shares, so that a class of failure is stopped in one place:

- non-finite numbers: `check_number` for options, `require_finite` for figures and arrays,
  `first_nonfinite` for named weights (checkpoints, ONNX initializers);
- paths recorded in files: `recorded_path` (resolved, so a file read from another folder still
  finds what it names);
- outputs that cannot be written: `check_writable`, called before any work starts;
- library failures that are really out of memory: `is_out_of_memory`;
- a str where the Python API takes a sequence (class names, mean/std, providers, a size): Python
  iterates "road" as "r", "o", "a", "d", so `sequence_arg` and `size_arg` refuse it.

Each raises the project's own one-line errors (edgeseg.errors).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg.errors import EdgesegRuntimeError, InputError

__all__ = [
    "check_number",
    "check_writable",
    "first_nonfinite",
    "is_out_of_memory",
    "recorded_path",
    "require_finite",
    "sequence_arg",
    "size_arg",
]


def check_number(
    value: float,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    min_open: bool = False,
) -> float:
    """`value` when it is a finite number in range; InputError naming `name` otherwise.
    (`nan < 0` is False, so a range check alone lets NaN through: finiteness is checked first.)"""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number; got {value!r}") from None
    if not math.isfinite(number):
        raise InputError(f"{name} must be a finite number; got {value!r}")
    low_fails = minimum is not None and (number <= minimum if min_open else number < minimum)
    if low_fails or (maximum is not None and number > maximum):
        low = "" if minimum is None else f"{'>' if min_open else '>='} {minimum:g}"
        high = "" if maximum is None else f"<= {maximum:g}"
        rule = " and ".join(r for r in (low, high) if r)
        raise InputError(f"{name} must be {rule}; got {value!r}")
    return number


def require_finite(value: Any, what: str, *, error: type[Exception] = EdgesegRuntimeError) -> Any:
    """`value` (a number or an array) when every element is finite; otherwise `error` saying that
    `what` is NaN or Inf. Comparisons with NaN are all False, so a NaN figure that is not stopped
    here reads as "no difference" further on."""
    if value is None:
        return value
    arr = np.asarray(value)
    if arr.dtype.kind in "fc" and not _all_finite(arr):
        bad = int(arr.size - np.isfinite(arr).sum())
        where = "" if arr.ndim == 0 else f" ({bad} of {arr.size} values)"
        raise error(f"{what} is NaN or Inf{where}; the result cannot be trusted")
    return value


def _all_finite(arr: np.ndarray) -> bool:
    # min/max propagate NaN and reach Inf without the frame-sized boolean array np.isfinite builds:
    # this runs on every inference output.
    if arr.size == 0:
        return True
    if arr.dtype.kind == "f":
        return bool(np.isfinite(arr.min()) and np.isfinite(arr.max()))
    return bool(np.isfinite(arr).all())


def first_nonfinite(named: Iterable[tuple[str, Any]]) -> tuple[str, int] | None:
    """The first (name, count of non-finite values) among named float arrays, or None when all are
    finite. Arrays may be numpy arrays or anything `np.asarray` takes (CPU torch tensors)."""
    for name, value in named:
        arr = np.asarray(value)
        if arr.dtype.kind in "fc":
            finite = np.isfinite(arr)
            if not finite.all():
                return name, int(arr.size - finite.sum())
    return None


def recorded_path(path: str | os.PathLike[str]) -> str:
    """How a path is written into a manifest, checkpoint or report: absolute and resolved, so the
    file stays meaningful when read from another working directory."""
    return str(Path(path).expanduser().resolve())


def check_writable(path: str | os.PathLike[str], flag: str, *, folder: bool = False) -> None:
    """InputError now, before any work, when `path` cannot be written later: it is (or is inside)
    a file where a folder is needed, a folder where a file is needed, or the nearest existing
    folder is not writable. Creates nothing."""
    target = Path(path)
    if target.exists():
        if folder and not target.is_dir():
            raise InputError(f"{flag} '{target}' exists and is not a folder; choose another {flag}")
        if not folder and target.is_dir():
            raise InputError(f"{flag} '{target}' is a folder; give a file path, e.g. {target / 'out.json'}")
        if not os.access(target if folder else target.parent, os.W_OK):
            raise InputError(f"{flag} '{target}' is not writable; choose another {flag}")
        return
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f"{flag} '{target}' cannot be created: '{parent}' is not a writable folder; choose another {flag}"
        )


# How allocators say they ran out: C++ (std::bad_alloc), ONNX Runtime's arena, OpenVINO, CUDA/torch.
_OOM = re.compile(
    r"bad[_ ]alloc|out of memory|failed to allocate|cannot allocate memory|allocation fail|"
    r"unable to allocate|memory allocation",
    re.IGNORECASE,
)


def is_out_of_memory(exc: BaseException) -> bool:
    """True when a library's exception is an allocator failure (the message, not the type, says so:
    runtimes wrap it in their own exception classes)."""
    return isinstance(exc, MemoryError) or bool(_OOM.search(f"{type(exc).__name__}: {exc}"))


def sequence_arg(value: Any, what: str, example: str) -> list[Any]:
    """`value` (a list, tuple or other iterable) as a list; InputError for a str or bytes, which
    Python would take letter by letter (classes="road" would be the four classes r, o, a, d), and
    for a value that is not iterable. `example` shows the right form, e.g. `classes=["road"]`."""
    if isinstance(value, (str, bytes)):
        raise InputError(
            f"{what} must be a list, not the string {value!r} (it would be taken letter by letter); "
            f"write e.g. {example}"
        )
    try:
        return list(value)
    except TypeError:
        raise InputError(f"{what} must be a list, e.g. {example}; got {type(value).__name__}") from None


def size_arg(value: Any, what: str = "img_size") -> tuple[int, int]:
    """(width, height) from a pair of positive whole numbers; InputError for anything else, a
    string included ("320" would otherwise be read as 3 x 2)."""
    items = sequence_arg(value, what, f"{what}=(320, 240)")
    ok = len(items) == 2 and all(
        isinstance(v, (int, float, np.integer, np.floating))
        and not isinstance(v, bool)
        and math.isfinite(v)
        and float(v).is_integer()
        and v > 0
        for v in items
    )
    if not ok:
        raise InputError(f"{what} must be (width, height), two positive whole numbers; got {value!r}")
    return int(items[0]), int(items[1])
