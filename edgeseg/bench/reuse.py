"""Where a benchmark row's bundle comes from: an intact bundle whose recorded reuse key (every
setting that shaped it and the content of its source and data, edgeseg._reuse) equals the key of the
export this run would make is reused; anything else is exported (a failure becomes the row's status).

The places looked at, in order: the benchmark's own bundles folder, the folder `edgeseg export`
writes to beside the source by default, and the folders given with `--bundles` (each a bundle, or
a folder of bundles). A bundle exported by hand is reused the same as one the benchmark made: the
key leaves out what shapes only the report (where it is written, the parity images)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from edgeseg._reuse import reuse_key
from edgeseg.errors import EdgesegError, MissingDependencyError, first_line
from edgeseg.exporters import ExportConfig, export, export_settings
from edgeseg.formats import get_target, missing_packages
from edgeseg.manifest import read_manifest
from edgeseg.runtimes.registry import ensure_installed

if TYPE_CHECKING:
    from edgeseg.bench.config import BenchmarkConfig
    from edgeseg.bench.rows import BenchRow
    from edgeseg.exporters.source import ExportSource

__all__ = ["export_row", "reusable"]


def export_row(
    row: BenchRow,
    src: ExportSource,
    size: tuple[int, int],
    config: BenchmarkConfig,
    bundles: Path,
    say: Callable[[str], None],
) -> None:
    """Find or make the bundle of `row`, or set its status and reason."""
    target = get_target(row.target)
    if row.precision not in target.precisions:
        row.status, row.reason = "not available", f"edgeseg cannot export {target.title} {row.precision} yet"
        return
    missing = missing_packages(target)
    if missing:
        extras = sorted({r.extra for r in target.requires if r.module in missing})
        row.status = "not available"
        row.reason = f"needs {', '.join(missing)} (pip install 'edgeseg[{','.join(extras)}]')"
        return
    try:
        ensure_installed(target.backends[0])
    except MissingDependencyError as err:  # nothing here could run the bundle: exporting costs time
        row.status, row.reason = "not available", first_line(err)
        return

    dest = bundles / f"{row.target}-{row.precision}-{size[0]}x{size[1]}"
    cfg = ExportConfig(
        target=row.target,
        precision=row.precision,
        img_size=size,
        out=str(dest),
        overwrite=True,
        calib=config.calib if row.precision == "int8" else None,
        parity_images=2,
    )
    try:
        key = reuse_key(export_settings(src, cfg))
        for found in candidates(
            dest, src.default_bundle_dir(row.target, row.precision, False), config.bundles
        ):
            if reusable(found, key):
                say(f"reusing {found} for {row.name} (same source, settings and tools)")
                row.path, row.reused = str(found), True
                return
        say(f"exporting {row.name}")
        row.path = str(export(src.path, cfg, facts=src.facts).bundle)
    except Exception as exc:  # a failed target is a row, not the end of the benchmark
        row.status, row.reason = "export failed", first_line(exc)


def candidates(dest: Path, beside: Path, given: tuple[str, ...]) -> list[Path]:
    """The bundle folders to try, in order, each once: `dest`, `beside` (export's default place),
    then every folder of `given` that is a bundle and every bundle directly inside one."""
    found = [dest, beside]
    for folder in map(Path, given):
        if (folder / "edgeseg.json").is_file():
            found.append(folder)
        elif folder.is_dir():
            found += sorted(p for p in folder.iterdir() if (p / "edgeseg.json").is_file())
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path.resolve(), None)
    return list(unique)


def reusable(dest: Path, key: str) -> bool:
    """A bundle at `dest` that is intact (every file's sha256 as its manifest records) and was made
    with exactly the settings asked for now: same source content, calibration data, method, bounds,
    size, precision, ... (its recorded `source.reuse_key`, edgeseg.exporters.export_settings)."""
    if not (dest / "edgeseg.json").is_file():
        return False

    try:
        m = read_manifest(dest)
    except EdgesegError:
        return False
    return m.source.get("reuse_key") == key
