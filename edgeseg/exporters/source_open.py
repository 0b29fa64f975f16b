"""Which export source a path is: `open_export_source` (kept apart from the source classes so that neither
source module imports the other)."""

from __future__ import annotations

import os
from pathlib import Path

from edgeseg.errors import InputError
from edgeseg.exporters.source import CheckpointSource, ExportSource, SourceFacts

__all__ = ["open_export_source"]


def open_export_source(path: str | os.PathLike[str], facts: SourceFacts | None = None) -> ExportSource:
    """The export source at `path`: a `.onnx` file (with `facts` for what it does not say itself)
    or an edgeseg checkpoint. Raises InputError for a missing or unusable file, or for facts given
    for a checkpoint (which holds its own)."""
    src = Path(path)
    facts = facts or SourceFacts()
    if src.suffix.lower() == ".onnx":
        from edgeseg.exporters.onnx_source import OnnxSource

        return OnnxSource.open(src, facts)
    given = facts.given()
    if given:
        raise InputError(
            f"{', '.join(given)} apply to an ONNX source only; checkpoint '{src}' holds its own classes "
            "and preprocessing"
        )
    from edgeseg.models.checkpoint import load_checkpoint

    return CheckpointSource(src, load_checkpoint(src))
