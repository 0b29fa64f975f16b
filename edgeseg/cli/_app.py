"""The typer application and the small helpers every command module shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg._version import __version__
from edgeseg.errors import InputError

app = typer.Typer(
    name="edgeseg",
    help="Train U-Net segmentation models and deploy them to edge runtimes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Train U-Net segmentation models and deploy them to edge runtimes."""


def write_json_opt(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        from edgeseg._io import write_json

        write_json(path, data)


def existing_dir(path: Path | None, flag: str, expected: str = "DIR/images and DIR/masks") -> None:
    if path is not None and not path.is_dir():
        raise InputError(f"{flag} folder '{path}' does not exist (expected {expected})")


JsonOpt = Annotated[Path | None, typer.Option("--json", help="Also write a machine-readable summary here.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace output files that already exist.")]


def check_paths(
    inputs: list[tuple[str, Path | str | None]],
    json_path: Path | None = None,
    *outputs: Any,
    overwrite: bool = False,
    overwrite_flag: str = "--overwrite",
) -> None:
    """The shared output check (edgeseg._paths.check_outputs), run by every command before any work:
    `--json` and the other `outputs` (edgeseg._paths.Output) against the command's `inputs`."""
    from edgeseg._paths import Output, check_outputs

    json_out = Output("--json", json_path) if json_path is not None else None
    check_outputs(inputs, [json_out, *outputs], overwrite=overwrite, overwrite_flag=overwrite_flag)


def fmt_score(v: float) -> str:
    return "-" if v != v else f"{v:.4f}"  # NaN: class absent from truth and prediction
