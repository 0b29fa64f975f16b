"""Errors that edgeseg reports to users as one clear line.

`InputError` is bad usage or bad input (CLI exit code 2); `EdgesegRuntimeError` is a failure while
doing valid work (exit code 1). Both carry a message meant to be printed as is: what was wrong and
what to do.
"""

from __future__ import annotations

import re


class EdgesegError(Exception):
    """Base class of the errors edgeseg explains to the user."""

    exit_code = 1


class InputError(EdgesegError, ValueError):
    """Bad usage or bad input: a file, folder, option or value the user can fix."""

    exit_code = 2


class EdgesegRuntimeError(EdgesegError, RuntimeError):
    """A failure while doing valid work (out of memory, a backend that crashed, ...)."""

    exit_code = 1


class MissingDependencyError(InputError, ImportError):
    """An optional package is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str | None, purpose: str, *, hint: str | None = None) -> None:
        # A core dependency (torch) has no extra: name the package itself. `hint` replaces the pip
        # line for a package whose libraries do not come from PyPI (a target's descriptor says so).
        install = hint or (f"pip install 'edgeseg[{extra}]'" if extra else f"pip install {package}")
        super().__init__(f"{purpose} needs the '{package}' package, which is not installed: {install}")
        self.package = package
        self.extra = extra


# A C++ source location, as OpenVINO prefixes its messages ("Exception from src/inference/src/cpp/
# core.cpp:112:", "Check 'x' failed at src/core/src/node.cpp:98:").
_SOURCE_LOCATION = re.compile(r"\.(?:cpp|hpp|cc|cxx|h|c):\d+")


def first_line(exc: BaseException) -> str:
    """The line of an exception's message that says what went wrong, for a one-line report: the first
    non-empty line (onnxruntime, torch and Python errors start with the cause), or the last one when
    the message starts with source locations (OpenVINO ends with the cause, after them). Library
    errors are often pages long; every edgeseg message that quotes one goes through here."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if not lines:
        return type(exc).__name__
    if len(lines) > 1 and _SOURCE_LOCATION.search(lines[0]):
        return lines[-1]
    # Some libraries write paragraphs on one line; the first sentence carries the cause.
    line = lines[0]
    cut = line.find(". ")
    return line[:cut] if len(line) > 150 and cut > 0 else line
