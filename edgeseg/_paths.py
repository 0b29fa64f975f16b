"""Outputs never clobber inputs: the one check every command runs on its paths before any work.

A command declares what it reads (files and folders) and what it will write: single files
(`--json`, `--save`), folders it writes named files into (`predict --out`, a run folder, a
benchmark folder), and bundles (a folder replaced as a whole). `check_outputs` then refuses, with one
line naming the option, any output that

- is one of the inputs, or lies inside an input folder where a file of that input already is;
- would replace (a bundle) or be written over a folder that holds an input;
- is the same path as another output of the same run;
- already exists, unless it is recognisably this kind of run's own earlier output (`Output.ours`)
  or the command's replace flag is given (`--overwrite`; a run folder's `--exist-ok`). A bundle's
  existence is left to its command, which replaces only bundles, and only with `--overwrite`.

Paths are compared resolved (symlinks followed, relative to the working folder), so `photos`,
`./photos/` and a link to it are one folder.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edgeseg.errors import InputError

__all__ = ["CHECKPOINT_FILES", "MODEL_FILES", "Output", "check_outputs", "folder_not_file", "resolved"]

Kind = Literal["file", "folder", "bundle"]
PathLike = str | os.PathLike[str]


def resolved(path: PathLike) -> Path:
    """`path` made absolute with its existing part's symlinks followed."""
    return Path(os.path.abspath(Path(path).expanduser())).resolve()


@dataclass(frozen=True)
class Output:
    """One thing a command writes.

    Attributes:
        flag: the option that names it (`--out`, `--json`, `--save`), for the messages.
        path: where it goes.
        kind: "file" (one file), "folder" (a folder the command writes `files` into; other files
            in it are left alone), "bundle" (a folder replaced as a whole).
        files: for a folder, the names the command will write into it (known up front).
        ours: recognises an existing file (or bundle) as one this kind of run wrote before, which
            may then be replaced without the flag (a benchmark's own report, a bundle's manifest).
    """

    flag: str
    path: PathLike
    kind: Kind = "file"
    files: Sequence[str] = ()
    ours: Callable[[Path], bool] | None = field(default=None, compare=False)

    def targets(self) -> list[Path]:
        """The paths this output will replace if they exist."""
        base = resolved(self.path)
        return [base / name for name in self.files] if self.kind == "folder" else [base]


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and path.is_relative_to(folder)


def _describe(label: str, path: Path) -> str:
    return f"{label} '{path}'"


def check_outputs(
    inputs: Iterable[tuple[str, PathLike | None]],
    outputs: Iterable[Output | None],
    *,
    overwrite: bool = False,
    overwrite_flag: str | None = "--overwrite",
) -> None:
    """Raise InputError (one line) if an output would overwrite or contain an input, two outputs
    collide, or an output exists that the command did not make and `overwrite` is not set.

    `inputs` are (label, path) pairs, e.g. ("MODEL", model) or ("--data", folder); None entries
    are skipped, as are outputs given as None. A folder input stands for every file under it.
    """
    ins = [(label, resolved(p)) for label, p in inputs if p is not None]
    outs = [o for o in outputs if o is not None]
    seen: dict[Path, str] = {}
    for out in outs:
        base = resolved(out.path)
        if out.kind == "folder":  # no file output may land where a folder output goes
            if base in seen:
                raise InputError(
                    f"{out.flag} and {seen[base]} both write '{base}'; give them different paths"
                )
            seen[base] = out.flag
        if out.kind != "file" and os.path.lexists(base) and not base.is_dir():
            raise InputError(f"{out.flag} '{out.path}' exists and is not a folder; choose another {out.flag}")
        for label, src in ins:
            if base == src:
                raise InputError(
                    f"{out.flag} '{out.path}' is also the input {label}: it would be overwritten; "
                    f"choose another {out.flag}"
                )
            if _inside(src, base) and out.kind != "folder":
                raise InputError(
                    f"{out.flag} '{out.path}' holds the input {_describe(label, src)}: writing it would "
                    f"replace that; choose another {out.flag}"
                )
        for target in out.targets():
            for label, src in ins:
                if target == src or (_inside(target, src) and os.path.lexists(target)):
                    raise InputError(
                        f"{out.flag}: '{target}' is part of the input {label} and would be overwritten; "
                        f"choose another {out.flag}"
                    )
            if target in seen:
                raise InputError(
                    f"{out.flag} and {seen[target]} both write '{target}'; give them different paths"
                )
            seen[target] = out.flag
            if os.path.lexists(target) and out.kind != "bundle":  # a bundle's owner decides (--overwrite)
                _check_replaceable(out, target, overwrite, overwrite_flag)


def _check_replaceable(out: Output, target: Path, overwrite: bool, flag: str | None) -> None:
    if out.kind == "file" and target.is_dir():
        raise InputError(f"{out.flag} '{target}' is a folder; give a file path")
    if out.kind == "folder" and target.is_dir():
        raise InputError(f"{out.flag}: '{target}' is a folder, where a file would be written; remove it")
    if out.ours is not None and out.ours(target):
        return
    if overwrite:
        return
    how = f"pass {flag} to replace it, or choose another {out.flag}" if flag else f"choose another {out.flag}"
    raise InputError(f"{out.flag}: '{target}' already exists; {how}")


# What a model path may name besides a bundle folder (the suffixes runtimes.artifact_kind knows).
CHECKPOINT_FILES = (".pt", ".pth")
MODEL_FILES = (*CHECKPOINT_FILES, ".onnx", ".xml", ".engine")


def folder_not_file(
    path: PathLike, what: str, expected: str, suffixes: Sequence[str] = MODEL_FILES, bundles: bool = True
) -> str:
    """The one line for a folder given where a model file is expected: "`what` 'PATH' is a folder,
    not `expected`", then the files with `suffixes` (and, with `bundles`, the bundle folders) it
    holds, so that `runs/x` leads to `runs/x/best.pt` (a run folder is the usual slip) instead of
    a "does not exist" about a path the user can see."""
    folder = Path(path)
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.name)
    except OSError:
        entries = []
    found = []
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.suffix.lower() in suffixes and p.is_file():
            found.append(f"'{p}'")
        elif bundles and p.is_dir() and (p / "edgeseg.json").is_file():
            found.append(f"'{p}' (a bundle)")
    hint = f"; it holds {', '.join(found[:4])}{' and more' if len(found) > 4 else ''}" if found else ""
    return f"{what} '{path}' is a folder, not {expected}{hint}".lstrip()
