"""What is reused or re-read by path is checked by content.

Two mechanisms, each the one place its rule lives:

- **Reuse keys** (`settings_of`, `reuse_key`): an artifact made earlier (a benchmark's bundle, a
  cached TensorRT engine) is reused only when the key of the settings that made it equals the key
  of the settings asked for now. The settings are derived from the typed config itself: every field
  of the dataclass, so a field added later is part of the key without anyone remembering to add it.
  A field opts out only by saying it does not shape the artifact (`NOT_SHAPING`: where or whether
  to write), and a path whose content shapes the artifact (`CONTENT`: calibration or validation
  data) enters by a digest of that content, not by its name.
- **Recorded sources** (`find_source`): a path a manifest records (the checkpoint or ONNX file a
  bundle was exported from) is used only when the file there still has the sha256 the manifest
  recorded; otherwise the caller is told why and falls back to the bundle's own files or refuses.

Standard library only, so every layer can use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeseg.manifest import sha256_file

__all__ = [
    "CONTENT",
    "NOT_SHAPING",
    "content_digest",
    "find_source",
    "reuse_key",
    "settings_of",
]

_REUSE = "reuse"  # the dataclass field metadata key these markers use
CONTENT: Mapping[str, str] = {_REUSE: "content"}  # a path: its content shapes the artifact
NOT_SHAPING: Mapping[str, str] = {_REUSE: "skip"}  # where or whether to write, not what


def content_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file, or of a folder: every regular file under it whose name does not start with
    '.', by relative path and content, in a fixed order. "missing:<path>" when there is nothing."""
    root = Path(path)
    if root.is_file():
        return sha256_file(root)
    if not root.is_dir():
        return f"missing:{root}"
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        digest.update(f"{rel.as_posix()}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def _plain(value: Any) -> Any:
    """A JSON-able form of a setting's value (tuples as lists, nested dataclasses as dicts)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return settings_of(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def settings_of(config: Any) -> dict[str, Any]:
    """The settings of a dataclass instance that shape what it makes: every field, except those
    marked `NOT_SHAPING`; a field marked `CONTENT` (a path) by `content_digest` of what it names."""
    settings: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        kind = f.metadata.get(_REUSE)
        if kind == "skip":
            continue
        value = getattr(config, f.name)
        if kind == "content" and value is not None:
            value = content_digest(value)
        settings[f.name] = _plain(value)
    return settings


def reuse_key(settings: Mapping[str, Any]) -> str:
    """sha256 of the settings as canonical JSON: equal keys, equal settings."""
    text = json.dumps(_plain(settings), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def find_source(
    source: Mapping[str, Any], bundle: str | os.PathLike[str], keys: tuple[str, ...] = ("checkpoint", "onnx")
) -> tuple[Path | None, str]:
    """(the source file a manifest's `source` record names, or None; why, in words).

    Looked up as recorded, inside the bundle's folder, then beside it (where a copied bundle and its
    checkpoint usually travel together); a candidate is used only when its sha256, and that of every
    external-data file the record lists beside it, is what the manifest recorded. `keys` are the
    record's path entries to look at ("checkpoint", "onnx")."""
    recorded = next((str(source[k]) for k in keys if source.get(k)), None)
    if recorded is None:
        return None, "the bundle records no source file"
    expected = source.get("sha256")
    if not expected:
        return None, f"the bundle records no sha256 of its source '{recorded}', so it cannot be verified"
    folder = Path(bundle)
    folder = folder if folder.is_dir() else folder.parent
    candidates = list(dict.fromkeys([Path(recorded), folder / recorded, folder.parent / Path(recorded).name]))
    found = [c for c in candidates if c.is_file()]
    external = source.get("external_data") or {}
    for cand in found:
        if sha256_file(cand) != expected:
            continue
        if all(
            (cand.parent / n).is_file() and sha256_file(cand.parent / n) == h for n, h in external.items()
        ):
            return cand, "verified: its sha256 is the one the manifest records"
    if found:
        return None, (
            f"'{found[0]}' is not the file this bundle was exported from (its content differs from the "
            "sha256 the manifest records)"
        )
    return None, f"the source '{recorded}' was not found"
