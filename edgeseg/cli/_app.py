"""The typer application and the small helpers every command module shares."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg._guards import check_writable
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


def writable_file(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Option callback for a file the command writes at its end (--json, --save): a path that cannot
    be written is refused while the options are read, not after minutes of work."""
    if value is not None and not ctx.resilient_parsing:
        check_writable(value, _flag(param))
    return value


def writable_dir(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Option callback for a folder the command writes into (--out, --snapshot-dir, --cache)."""
    if value is not None and not ctx.resilient_parsing:
        check_writable(value, _flag(param), folder=True)
    return value


def _flag(param: typer.CallbackParam) -> str:
    return max(param.opts, key=len) if param.opts else f"--{param.name}"


def refuse_unused(ctx: typer.Context, params: Sequence[str], applies: bool, why: str) -> None:
    """InputError when an option among `params` (parameter names) was given on the command line but
    would have no effect in this combination: every option either takes effect or is refused.
    `why` completes "... has no effect ..." (e.g. "without --data")."""
    if applies:
        return
    used = [_typed(ctx, p) for p in ctx.command.params if p.name in params and _given(ctx, p.name)]
    if used:
        verb = "has" if len(used) == 1 else "have"
        raise InputError(
            f"{' and '.join(used)} {verb} no effect {why}; leave {'it' if len(used) == 1 else 'them'} out"
        )


def _typed(ctx: typer.Context, param: Any) -> str:
    # A --x/--no-x pair: name the spelling the user typed.
    secondary = getattr(param, "secondary_opts", None)
    return secondary[0] if secondary and ctx.params.get(param.name) is False else _flag(param)


def given(ctx: typer.Context, *params: str) -> list[str]:
    """The parameter names among `params` that the user set (command line or environment)."""
    return [name for name in params if _given(ctx, name)]


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def write_json_opt(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        from edgeseg._io import write_json

        write_json(path, data)


def existing_dir(path: Path | None, flag: str, expected: str = "DIR/images and DIR/masks") -> None:
    if path is not None and not path.is_dir():
        raise InputError(f"{flag} folder '{path}' does not exist (expected {expected})")


JsonOpt = Annotated[
    Path | None,
    typer.Option("--json", callback=writable_file, help="Also write a machine-readable summary here."),
]
ResizeKernelOpt = Annotated[
    str,
    typer.Option(
        help="Who resizes frames to the model's size on the host: pillow (the filter training used, in "
        "strips on all cores) or torch (PyTorch's copy of that filter, within 1 grey level: several "
        "times faster on colour camera frames; loads torch)."
    ),
]
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
