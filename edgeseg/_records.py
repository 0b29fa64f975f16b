"""JSON records from elsewhere, validated: one reader for every file kind edgeseg reads back.

A manifest, a benchmark card, a parity report, an engine cache record, a lock: each may come from
another machine or be edited by hand, so each is read through `Record`, which checks what the
reader asks for (key present, type, range, finite numbers, known choices) and refuses the rest
with one line naming the file, the full key and what was wrong, plus the advice of that file
kind. Parsing refuses what Python's json module would otherwise accept or crash on: `NaN` and
`Infinity` literals, nesting deeper than `MAX_DEPTH` (json raises RecursionError), a file larger
than `MAX_BYTES`, integers with thousands of digits.

Values read here are data: text is returned as it is (the printers escape it, edgeseg._text), and
nothing is looked up, imported or executed by name.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from edgeseg.errors import InputError

__all__ = ["MAX_BYTES", "MAX_DEPTH", "Record", "RecordError", "check_plain", "parse_json", "read_json"]

MAX_DEPTH = 32  # the deepest record edgeseg writes is 6 levels (a manifest's parity classes)
MAX_BYTES = 64 << 20  # a manifest with its parity report is a few kB; a benchmark card tens of kB
_MISSING: Any = object()


class RecordError(InputError):
    """A record that is not the expected shape (exit code 2, one line)."""


def _show(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(text: str | bytes, where: str, advice: str = "") -> Any:
    """Parse JSON text, refusing NaN/Infinity literals, deep nesting and oversized input."""
    tail = f"; {advice}" if advice else ""
    if len(text) > MAX_BYTES:
        raise RecordError(f"{where} is larger than {MAX_BYTES >> 20} MiB, too large for its kind{tail}")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise RecordError(f"{where} is nested deeper than {MAX_DEPTH} levels{tail}") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError, bad UTF-8, a 5000-digit integer
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RecordError(f"{where} is not readable JSON ({first}){tail}") from None
    check_plain(data, where, advice)
    return data


def check_plain(data: Any, where: str, advice: str = "") -> None:
    """Refuse nesting deeper than MAX_DEPTH and non-finite floats anywhere in parsed JSON (also for
    JSON that arrived by another way, e.g. an ONNX file's metadata)."""
    tail = f"; {advice}" if advice else ""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise RecordError(f"{where} is nested deeper than {MAX_DEPTH} levels{tail}")
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)
        elif isinstance(value, float) and not math.isfinite(value):
            raise RecordError(f"{where} holds a number that is not finite ({value}){tail}")


def read_json(path: str | os.PathLike[str], where: str, advice: str = "") -> Any:
    """Read and parse a JSON file (see `parse_json`); RecordError when it cannot be read."""
    p = Path(path)
    tail = f"; {advice}" if advice else ""
    try:
        if p.stat().st_size > MAX_BYTES:
            raise RecordError(f"{where} is larger than {MAX_BYTES >> 20} MiB, too large for its kind{tail}")
        raw = p.read_bytes()
    except FileNotFoundError:
        raise RecordError(f"{where} does not exist{tail}") from None
    except IsADirectoryError:
        raise RecordError(f"{where} is a folder, not a file{tail}") from None
    except OSError as exc:
        raise RecordError(f"{where} cannot be read ({exc.strerror or exc}){tail}") from None
    return parse_json(raw, where, advice)


class Record:
    """Typed, range-checked access to one JSON object; every error names `where` and the full key.

    `advice` ends every message (what to do: re-export, give another file). Getters take a
    `default`; without one the key is required. A key present with null counts as absent where the
    default is None.
    """

    def __init__(self, data: Any, where: str, advice: str = "", prefix: str = "") -> None:
        self.where, self.advice, self.prefix = where, advice, prefix
        if not isinstance(data, Mapping):
            self._fail(f"is malformed: {prefix.rstrip('.') or 'the top level'} is not an object")
        self.data: Mapping[str, Any] = data

    @classmethod
    def parse(cls, text: str | bytes, where: str, advice: str = "") -> Record:
        """A Record of JSON text (see `parse_json`)."""
        return cls(parse_json(text, where, advice), where, advice)

    @classmethod
    def read(cls, path: str | os.PathLike[str], where: str, advice: str = "") -> Record:
        """A Record of a JSON file (see `read_json`)."""
        return cls(read_json(path, where, advice), where, advice)

    # -- failures -------------------------------------------------------------------------------

    def _fail(self, problem: str) -> NoReturn:
        raise RecordError(f"{self.where} {problem}" + (f"; {self.advice}" if self.advice else ""))

    def fail(self, key: str, problem: str) -> NoReturn:
        """Refuse the value of `key`: `problem` completes "has ... for 'key'"."""
        self._fail(f"has {problem} for '{self.prefix}{key}'")

    # -- getters --------------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = _MISSING) -> Any:
        """The value of `key`, which must be of `kind` (bool is never an int or a float here)."""
        if key not in self.data or (self.data[key] is None and default is None):
            if default is _MISSING:
                self._fail(f"lacks the key '{self.prefix}{key}'")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        numeric = any(k in (int, float) for k in kinds)
        if not isinstance(value, kinds) or (numeric and isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            self._fail(
                f"has a wrong type for '{self.prefix}{key}': expected {names}, got {type(value).__name__}"
            )
        return value

    def integer(
        self, key: str, *, minimum: int | None = None, maximum: int | None = None, default: Any = _MISSING
    ) -> Any:
        value = self.get(key, int, default)
        if self.has(key):
            self._range(key, value, minimum, maximum)
        return value

    def number(
        self,
        key: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        default: Any = _MISSING,
    ) -> Any:
        """A finite int or float in [minimum, maximum], as float (None/default when absent)."""
        value = self.get(key, (int, float), default)
        return self._finite(key, value, minimum, maximum) if self.has(key) else value

    def _finite(self, key: str, value: Any, minimum: float | None, maximum: float | None) -> float:
        try:
            number = float(value)
        except OverflowError:  # JSON integers have no size limit; a float does
            self.fail(key, "an out-of-range number")
        if not math.isfinite(number):
            self.fail(key, "a number that is not finite")
        self._range(key, number, minimum, maximum)
        return number

    def _range(self, key: str, value: Any, minimum: float | None, maximum: float | None) -> None:
        if value is None:
            return
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            low = "" if minimum is None else f"{minimum} <= "
            high = "" if maximum is None else f" <= {maximum}"
            self.fail(key, f"an out-of-range value {_show(value)} (expected {low}value{high})")

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        return self.get(key, bool, default)

    def text(self, key: str, *, choices: Iterable[str] | None = None, default: Any = _MISSING) -> Any:
        value = self.get(key, str, default)
        if choices is not None and self.has(key):
            allowed = tuple(choices)
            if value not in allowed:
                self.fail(key, f"an unknown value {_show(value)} (expected one of {', '.join(allowed)})")
        return value

    def texts(self, key: str, default: Any = _MISSING) -> Any:
        values = self.get(key, list, default)
        if self.has(key) and not all(isinstance(v, str) for v in values):
            self.fail(key, "a wrong type (expected a list of text)")
        return values

    def numbers(
        self,
        key: str,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
        length: int | None = None,
        default: Any = _MISSING,
    ) -> Any:
        """A list of finite numbers (as floats), of `length` items when given."""
        values = self.get(key, list, default)
        if not self.has(key):
            return values
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            self._fail(f"has a wrong type for '{self.prefix}{key}': expected numbers")
        if length is not None and len(values) != length:
            self.fail(key, f"{len(values)} value(s) where {length} belong")
        return [self._finite(key, v, minimum, maximum) for v in values]

    def sub(self, key: str, default: Any = _MISSING) -> Any:
        """The object at `key` as a Record (`default` when absent)."""
        value = self.get(key, dict, default)
        if not self.has(key):
            return value
        return Record(value, self.where, self.advice, f"{self.prefix}{key}.")

    def subs(self, key: str, default: Any = _MISSING) -> Any:
        """The list of objects at `key`, each as a Record."""
        values = self.get(key, list, default)
        if not self.has(key):
            return values
        return [Record(v, self.where, self.advice, f"{self.prefix}{key}[{i}].") for i, v in enumerate(values)]

    def mapping(self, key: str, value: Callable[[Record, str], Any], default: Any = _MISSING) -> Any:
        """A {text: value} object, each value read by `value(record, key)` on the object itself."""
        sub = self.sub(key, default)
        if not isinstance(sub, Record):
            return sub
        return {k: value(sub, k) for k in sub.data}

    def plain(self, key: str, default: Any = _MISSING) -> Any:
        """An object kept as plain JSON (already depth- and finiteness-checked by the parser)."""
        value = self.get(key, dict, default)
        if isinstance(value, Mapping):
            check_plain(value, self.where, self.advice)
        return value
