"""Errors that edgeseg reports to users as one clear line.

`InputError` is bad usage or bad input (CLI exit code 2); `EdgesegRuntimeError` is a failure while
doing valid work (exit code 1). Both carry a message meant to be printed as is: what was wrong and
what to do.
"""

from __future__ import annotations


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

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package, which is not installed: pip install 'edgeseg[{extra}]'"
        )
        self.package = package
        self.extra = extra
