"""Text from files is shown as text: terminal control characters escaped, Rich markup not interpreted.

Class names, manifests, benchmark cards, parity reports, ONNX node names and file names come from
other machines; printed raw, `\\x1b[2J` clears the user's terminal, `\\r` or a cursor move overwrites
a line already shown, and `[bold red]` (or a stray `[/x]`, which raises MarkupError) is read by
Rich as markup. The CLI therefore writes through `escaped_output` (its stdout and stderr escape
every control character but newline and tab, whatever code prints) and draws tables with
`console()`, a Rich console that renders every string literally (markup, emoji codes and
highlighting off, control characters escaped) while its own styling still reaches the terminal.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["console", "escaped_output", "shown"]

# C0 controls, DEL, C1 controls, and the Unicode bidirectional overrides that reorder what a
# terminal shows ("Trojan Source"); newline and tab are kept where whole lines are written.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_AND_LINES = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def shown(text: object, *, lines: bool = True) -> str:
    """`text` as it may reach a terminal: control characters as visible escapes (`\\x1b`); with
    `lines=False` also newlines and tabs (for one value inside a line)."""
    return (_CONTROL if lines else _CONTROL_AND_LINES).sub(_escape, str(text))


class _Escaping(io.TextIOBase):
    """A text stream that escapes control characters on their way to `raw`."""

    def __init__(self, raw: IO[str]) -> None:
        super().__init__()
        self.raw = raw

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # a text stream (click probes with bytes to tell the kinds apart)
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        self.raw.write(shown(text))
        return len(text)

    def flush(self) -> None:
        self.raw.flush()

    def isatty(self) -> bool:
        return self.raw.isatty()

    def fileno(self) -> int:
        return self.raw.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.raw, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self.raw, "errors", None)


def _raw(stream: IO[str]) -> IO[str]:
    return stream.raw if isinstance(stream, _Escaping) else stream


@contextlib.contextmanager
def escaped_output() -> Iterator[None]:
    """Within the block, sys.stdout and sys.stderr escape control characters (see `shown`)."""
    saved = sys.stdout, sys.stderr
    if sys.stdout is not None:  # None without a console (pythonw): nothing to escape
        sys.stdout = _Escaping(_raw(sys.stdout))
    if sys.stderr is not None:
        sys.stderr = _Escaping(_raw(sys.stderr))
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved


def console(*, stderr: bool = False, **kwargs: Any) -> Console:
    """A Rich console that shows every string it is given literally (see the module docstring);
    it writes to the real stream under `escaped_output`, so its own colours are not escaped."""
    from rich.console import Console

    class _Literal(Console):
        def render_str(self, text: str, **options: Any) -> Any:
            options.update(markup=False, emoji=False, highlight=False)
            return super().render_str(shown(text), **options)

    kwargs.setdefault("file", _raw(sys.stderr if stderr else sys.stdout))
    kwargs.update(markup=False, emoji=False, highlight=False)
    return _Literal(**kwargs)
