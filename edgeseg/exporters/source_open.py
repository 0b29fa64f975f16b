"""Which export source a path is: `open_export_source` (kept apart from the source classes so that neither
source module imports the other)."""

from __future__ import annotations

import os
from pathlib import Path

from edgeseg.errors import InputError
from edgeseg.exporters.onnx_source import OnnxSource
from edgeseg.exporters.source import CheckpointSource, ExportSource, SourceFacts

__all__ = ["open_export_source"]


def open_export_source(path: str | os.PathLike[str], facts: SourceFacts | None = None) -> ExportSource:
    """The export source at `path`: a `.onnx` file (with `facts` for what it does not say itself)
    or an edgeseg checkpoint (trained or imported), with the data options of `facts` applied.

    The one place that decides which options a source takes, before any work: the facts about the
    network (--classes, --mean, --std, --color-order) describe an ONNX file only (a checkpoint holds
    its own); the data options (--ignore-index, the label id labelled data leaves unlabelled) apply
    to every source and win over what its file records. Raises InputError for a missing or unusable
    file, for network facts given for a checkpoint, or for a bad data option."""
    src = Path(path)
    facts = facts or SourceFacts()
    if facts.ignore_index is not None and (isinstance(facts.ignore_index, bool) or facts.ignore_index < 0):
        raise InputError(f"--ignore-index must be a label id, 0 or more; got {facts.ignore_index}")
    if src.suffix.lower() == ".onnx":
        opened: ExportSource = OnnxSource.open(src, facts)
    else:
        given = facts.model_facts_given()
        if given:
            raise InputError(
                f"{', '.join(given)} apply to an ONNX source only; checkpoint '{src}' holds its own classes "
                "and preprocessing (--ignore-index, which describes the data, applies to every model)"
            )
        from edgeseg.models.checkpoint import load_checkpoint

        opened = CheckpointSource(src, load_checkpoint(src))
    opened.facts = facts
    if facts.ignore_index is not None:
        opened.ignore_index = int(facts.ignore_index)
    return opened
