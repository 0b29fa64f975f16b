"""Which files of a folder are images, and what a batch job over files does with one it cannot read.

`list_images` is the one listing of a folder's images: training, `--val-data`, `eval`, `--calib`,
`predict`, the benchmark's `--data` and the demo's folder sources all read a folder through it, so a
file one of them skips (a hidden file, macOS's `._name` resource forks, a `Thumbs.db`, a subfolder
named like an image) is skipped by all of them.

`SkipLog` is the batch rule: a job over many files (predict, eval, the demo's folder source) does
every file it can read, names each one it cannot in one warning line as it meets it, and ends with
`BatchIncomplete` (an `InputError`: exit code 2) after its other results are written, so a script
sees that something was left out and the log says what.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.data.imageio import IMAGE_SUFFIXES
from edgeseg.errors import InputError

__all__ = [
    "BatchIncomplete",
    "SkipLog",
    "Skipped",
    "SkippedFileWarning",
    "finish_batch",
    "is_listed_image",
    "list_images",
]


def is_listed_image(path: Path, suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> bool:
    """Whether a folder listing counts `path` as an image: a file (or a link to one) with one of
    `suffixes` (any case) whose name does not start with a dot. Hidden files are never data: macOS
    writes `._name.png` resource forks beside every file copied to a foreign disk, and they are not
    images whatever their suffix."""
    return not path.name.startswith(".") and path.suffix.lower() in suffixes and path.is_file()


def list_images(folder: str | os.PathLike[str], suffixes: tuple[str, ...] = IMAGE_SUFFIXES) -> list[Path]:
    """The image files directly in `folder`, sorted by name (see `is_listed_image`).

    Raises InputError when `folder` is not a readable folder; an empty result is the caller's to judge
    (each says what it expected to find)."""
    root = Path(folder)
    try:
        entries = list(root.iterdir())
    except FileNotFoundError:
        raise InputError(f"folder '{root}' does not exist") from None
    except NotADirectoryError:
        raise InputError(f"'{root}' is not a folder") from None
    except OSError as exc:
        raise InputError(f"cannot list folder '{root}': {exc.strerror or exc}") from None
    return sorted((p for p in entries if is_listed_image(p, suffixes)), key=lambda p: p.name)


class SkippedFileWarning(UserWarning):
    """A batch job skipped a file it could not read (the message names it and says why)."""


class BatchIncomplete(InputError):
    """A batch job finished what it could, but skipped unreadable files (exit code 2)."""


@dataclass(frozen=True)
class Skipped:
    """One file a batch job could not read."""

    path: Path
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "reason": self.reason}


class SkipLog:
    """The files a batch job skipped, each announced in one `SkippedFileWarning` line when met.

    `total` is the number of items the job was given: a job of one item has nothing to go on with, so
    its failure is raised as is (the one error line) instead of being announced and then summarised.
    `noun` names an item in the messages ("image", "image/mask pair").
    """

    def __init__(self, total: int, noun: str = "image") -> None:
        self.total, self.noun = total, noun
        self.items: list[Skipped] = []

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def add(self, path: Path, error: InputError) -> None:
        """Record that `path` could not be read because of `error` (raised again for a job of one)."""
        if self.total <= 1:
            raise error
        reason = str(error)
        self.items.append(Skipped(Path(path), reason))
        said = reason.removeprefix(f"cannot read {self.noun} '{path}': ")  # the file is named once
        warnings.warn(f"skipped {self.noun} '{path}': {said}", SkippedFileWarning, stacklevel=2)

    def to_list(self) -> list[dict[str, Any]]:
        """The skipped files for a `--json` summary: path and reason each."""
        return [s.to_dict() for s in self.items]

    def check_any_done(self, done: int) -> None:
        """InputError when every item was skipped (there is no result to report)."""
        if done == 0 and self.items:
            raise InputError(
                f"none of the {self.total} {self.noun}s could be read (each is named above); fix or remove "
                "them and run again"
            )

    def finish(self, done: int, did: str = "done") -> None:
        """Raise `BatchIncomplete` when files were skipped (after the job wrote its results); see
        `finish_batch`."""
        self.check_any_done(done)
        finish_batch(self.items, done, did, self.noun)


def finish_batch(skipped: list[Skipped], done: int | None, did: str = "done", noun: str = "image") -> None:
    """Raise `BatchIncomplete` when `skipped` is not empty: one line saying how many items were
    skipped (naming a few) and what became of the `done` others (`did`: "segmented: their masks are
    in 'out'"); `done` None when the job cannot count them (a demo stopped before the folder's end)."""
    if not skipped:
        return
    names = ", ".join(f"'{s.path.name}'" for s in skipped[:3])
    more = f" and {len(skipped) - 3} more" if len(skipped) > 3 else ""
    were = "was" if len(skipped) == 1 else "were"
    if done is None:
        counted = f"{len(skipped)} {noun}{'s' if len(skipped) > 1 else ''}"
        rest = f"the others were {did}"
    else:
        counted = f"{len(skipped)} of {done + len(skipped)} {noun}s"
        rest = f"the other {done} {'was' if done == 1 else 'were'} {did}"
    raise BatchIncomplete(
        f"{counted} could not be read and {were} skipped ({names}{more}); {rest}; fix or remove the "
        "skipped files and run again for them"
    )
