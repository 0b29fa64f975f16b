"""The `edgeseg` command line. Thin: parse options, call the library, print results.

Each command lives in its own module of this package and registers itself on the shared typer
app when imported. Errors the user can fix are one line on stderr with exit code 2; runtime
failures exit 1; a traceback is shown only with --debug (or EDGESEG_DEBUG=1). Warnings are one line
too, `edgeseg: warning: ...`, instead of Python's "file.py:120: UserWarning" and a source line; only
while a command runs, so the library keeps Python's own warnings for programs that import it.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import sys
import warnings
from typing import Any, TextIO

import typer
import typer.core
import typer.main

# Importing a command module registers its commands; the order here is the order of --help.
# isort: off
from edgeseg.cli import train, evaluate, export, doctor, engine, predict, info, demo, bench, quickstart  # noqa: F401

# isort: on
from edgeseg._guards import is_out_of_memory
from edgeseg._io import discard_pending
from edgeseg._text import escaped_output
from edgeseg.cli._app import app
from edgeseg.errors import EdgesegError, first_line

try:  # typer >= 0.22 vendors click; older releases depend on it
    from typer import TyperException as _CliException
except ImportError:  # pragma: no cover
    from click import ClickException as _CliException  # type: ignore[no-redef]

__all__ = ["app", "command", "main"]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `edgeseg` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    first_cmd = next((i for i, a in enumerate(args) if not a.startswith("-")), len(args))
    debug = "--debug" in args[:first_cmd] or os.environ.get("EDGESEG_DEBUG") == "1"
    # Libraries log warnings through `logging` too (with no handler Python prints them bare): the
    # same one line for those, while the command runs.
    handler = _LogLine(logging.WARNING)
    if not debug:
        logging.getLogger().addHandler(handler)
    try:
        # Text from files (class names, cards, manifests, node names) reaches the terminal escaped.
        with warnings.catch_warnings(), escaped_output():
            if not debug:  # restores Python's warning display when the command ends
                warnings.showwarning = _warning
            return _run(args, debug)
    finally:
        logging.getLogger().removeHandler(handler)


class _LogLine(logging.Handler):
    """A logging handler that prints a library's warning or error record as `edgeseg: warning:`."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = " ".join(record.getMessage().strip().split("\n")[0].split())
        except Exception:  # a record whose arguments do not format: say so rather than raise
            text = str(record.msg)
        print(f"edgeseg: warning: {text or record.levelname.lower()}", file=sys.stderr)


def _run(args: list[str], debug: bool) -> int:
    try:
        rv = command()(args=args, prog_name="edgeseg", standalone_mode=False)
        if rv == 130:
            # Typer turns Ctrl-C into a silent exit code 130 before it reaches the handler below; no
            # command returns 130 itself, so this is an interrupt and still gets its line.
            raise KeyboardInterrupt
        return rv if isinstance(rv, int) else 0
    except EdgesegError as exc:
        if debug:
            raise
        _error(str(exc))
        return exc.exit_code
    except _CliException as exc:
        if debug:
            raise
        exit_code = getattr(exc, "exit_code", 2)
        cmd = next((a for a in args if not a.startswith("-")), None)
        hint = f" (see 'edgeseg {cmd} --help')" if cmd in _command_names() else " (see 'edgeseg --help')"
        _error(exc.format_message().replace("\n", " ") + hint)
        return exit_code
    except KeyboardInterrupt:
        discard_pending()  # a temporary file the interrupt cut off before its own cleanup could run
        _error("interrupted; files already completed were kept, nothing half-written was left")
        return 130
    except (typer.Abort, EOFError):
        _error("aborted")
        return 1
    except OSError as exc:  # a path the user gave that cannot be written or read, or a full disk
        if debug:
            raise
        _error(_os_error_message(exc))
        return 1 if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO) else 2
    except Exception as exc:  # an unexpected failure: still one line, the traceback on --debug
        if debug:
            raise
        if is_out_of_memory(exc):  # MemoryError, or a library's allocator failure in its own type
            _error(f"out of memory ({first_line(exc)}); {_memory_hint(args)}")
        else:
            _error(f"{type(exc).__name__}: {first_line(exc)} (run again with --debug for the traceback)")
        return 1


def _memory_hint(args: list[str]) -> str:
    """What to shrink, naming only options the command has (a hint must never name a missing one)."""
    cmd = next((a for a in args if not a.startswith("-")), None)
    sub = command().commands.get(cmd) if cmd else None  # type: ignore[attr-defined]
    flags = {o for p in (sub.params if sub else []) for o in p.opts}
    named = [f for f in ("--batch-size", "--img-size") if f in flags]
    return f"try a smaller {' or '.join(named)}" if named else "close other programs or use a smaller model"


_COMMAND: typer.core.TyperGroup | None = None


def command() -> typer.core.TyperGroup:
    """The click command of the app, with every float option refusing NaN and Inf (one guard for all:
    `nan < 0` is False, so a range check alone lets NaN through and `--lr nan` would train), and
    every option and argument refusing an empty value (see `_non_empty`)."""
    global _COMMAND
    if _COMMAND is None:
        group = typer.main.get_command(app)
        for sub in group.commands.values():  # type: ignore[attr-defined]
            for param in sub.params:
                _finite_only(param)
                _non_empty(param)
        _COMMAND = group  # type: ignore[assignment]
    return _COMMAND  # type: ignore[return-value]


def _finite_only(param: Any) -> None:
    process = param.process_value

    def finite(ctx: Any, value: Any) -> Any:
        number = process(ctx, value)
        if isinstance(number, float) and not math.isfinite(number):
            raise typer.BadParameter(f"'{value}' is not a finite number.", ctx=ctx, param=param)
        return number

    param.process_value = finite


def _non_empty(param: Any) -> None:
    """Refuse an empty value (`""` or only spaces) for every option and argument of every command.

    An empty value is what a script passes when its variable came out empty, and each reader would
    otherwise give it its own meaning: "all" (`--targets ""` ran every target, `doctor --target ""`
    checked every target), the default (`--img-size ""`, `--encoder ""`), every interface
    (`--bind ""`), the working folder (a path). None of them is what was meant."""
    process = param.process_value

    def non_empty(ctx: Any, value: Any) -> Any:
        values = value if isinstance(value, (tuple, list)) else (value,)
        if any(isinstance(v, str) and not v.strip() for v in values):
            raise typer.BadParameter(
                "an empty value is not a choice: give one, or leave the option out to get its default",
                ctx=ctx,
                param=param,
            )
        return process(ctx, value)

    param.process_value = non_empty


def _os_error_message(exc: OSError) -> str:
    where = f" '{exc.filename}'" if exc.filename else ""
    what = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{what}{where}: free some space and run again (nothing half-written was kept)"
    return f"{what}{where}: choose a path you can write to (e.g. another --out) and run again"


def _command_names() -> set[str]:
    return {c.name or c.callback.__name__.rstrip("_") for c in app.registered_commands if c.callback}


def _warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """`warnings.showwarning` for the CLI: the warning's text as one line, without Python's source
    location and code line (those are for developers: --debug shows them)."""
    text = first_line(message) if isinstance(message, Warning) else str(message).strip()
    print(f"edgeseg: warning: {' '.join(text.split()) or category.__name__}", file=file or sys.stderr)


def _error(msg: str) -> None:
    line = " ".join(msg.split("\n")[0].split()) if msg else "failed"
    print(f"edgeseg: error: {line}", file=sys.stderr)
