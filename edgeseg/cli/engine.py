"""`edgeseg build-engine`: build (or find) the TensorRT engine of a bundle on this device."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgeseg.cli._app import JsonOpt, OverwriteOpt, app, check_paths, writable_dir, write_json_opt


@app.command("build-engine")
def build_engine(
    bundle: Annotated[Path, typer.Argument(help="A bundle exported with --target tensorrt.")],
    cache: Annotated[
        Path | None,
        typer.Option(callback=writable_dir, help="Folder for the engine. Default: the bundle folder."),
    ] = None,
    device: Annotated[str, typer.Option(help="CUDA device: cuda or cuda:N.")] = "cuda",
    workspace_mib: Annotated[int, typer.Option(min=16, help="TensorRT workspace limit in MiB.")] = 1024,
    version_compatible: Annotated[
        bool, typer.Option(help="Engine that later TensorRT releases of the same major version run.")
    ] = False,
    hardware_compatible: Annotated[
        bool, typer.Option(help="Engine that any Ampere or newer GPU runs (not on Jetson).")
    ] = False,
    overwrite: OverwriteOpt = False,
    json_path: JsonOpt = None,
) -> None:
    """Build the TensorRT engine for this GPU from a bundle's engine-ready ONNX, or reuse a valid one."""
    check_paths([("BUNDLE", bundle)], json_path, overwrite=overwrite)
    from edgeseg.errors import InputError
    from edgeseg.manifest import read_manifest
    from edgeseg.runtimes import get_backend_class

    manifest = read_manifest(bundle, verify=True)
    if manifest.target != "tensorrt":
        raise InputError(
            f"bundle '{bundle}' was exported for {manifest.target}; build-engine takes a bundle exported "
            "with --target tensorrt"
        )
    cls = get_backend_class("tensorrt")  # names what to install when TensorRT is missing
    backend = cls(
        bundle / manifest.model_file,
        device=device,
        engine_cache=cache,
        workspace_mib=workspace_mib,
        version_compatible=version_compatible,
        hardware_compatible=hardware_compatible,
        log=typer.echo,
    )
    with backend:
        record = dict(backend.engine_record)
        how = "built" if backend.built_now else "already cached and valid for this TensorRT and GPU"
        typer.echo(f"engine {backend.engine_file} ({how}): {backend.description}")
    write_json_opt(json_path, {"bundle": str(bundle), "engine": str(backend.engine_file), **record})
