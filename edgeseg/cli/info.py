"""`edgeseg info`."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edgeseg.cli._app import JsonOpt, OverwriteOpt, app, check_paths, write_json_opt
from edgeseg.cli._help import model_help

if TYPE_CHECKING:
    from edgeseg.manifest import Manifest


@app.command()
def info(
    model: Annotated[Path, typer.Argument(help=model_help())],
    overwrite: OverwriteOpt = False,
    json_path: JsonOpt = None,
) -> None:
    """Show what a model file holds: architecture, classes, input, normalisation, training or parity."""
    check_paths([("MODEL", model)], json_path, overwrite=overwrite)
    if model.is_dir():
        _bundle_info(model, json_path)
        return
    from edgeseg.runtimes import artifact_kind

    if artifact_kind(model) != "checkpoint":  # .onnx, .xml, .engine: what the model file holds
        _model_file_info(model, json_path)
        return
    from edgeseg.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(model)
    meta = ckpt.meta()
    spec, norm, tr = ckpt.model_config, meta["normalization"], meta["training"]
    w, h = meta["img_size"]
    kind = "imported model" if spec.family == "imported" else "checkpoint"
    lines = [
        f"{model}: edgeseg {kind} (edgeseg {meta['edgeseg_version']})",
        f"  model      {spec.describe()}, size multiple {spec.stride}",
        f"  classes    {', '.join(meta['class_names'])}"
        + (f"  (ignore id {meta['ignore_index']})" if meta["ignore_index"] is not None else ""),
        f"  input      {w}x{h} {norm['color_order']}, mean {norm['mean']}, std {norm['std']}, "
        f"resize {norm['resize']}",
    ]
    if tr and "epoch" in tr:
        lines.append(
            f"  training   {tr.get('data')}: epoch {tr.get('epoch')}/{tr.get('epochs')}, "
            f"best val mIoU {_num(tr.get('best_miou'))} at epoch {tr.get('best_epoch')}"
        )
    typer.echo("\n".join(lines))
    write_json_opt(json_path, meta)


def _bundle_info(bundle: Path, json_path: Path | None) -> None:
    from edgeseg.manifest import read_manifest

    m = read_manifest(bundle)  # verifies every file's sha256
    head = (
        f"{bundle}: edgeseg bundle, {m.target} {m.precision} (schema {m.schema_version}, "
        f"edgeseg {m.edgeseg_version}), files verified"
    )
    typer.echo("\n".join([head, *_manifest_lines(m)]))
    write_json_opt(json_path, m.to_dict())


def _model_file_info(path: Path, json_path: Path | None) -> None:
    from edgeseg.runtimes import artifact_kind, create_backend, resolve_backend

    with create_backend(resolve_backend("auto", artifact_kind(path)), path) as backend:
        m = backend.embedded_manifest
        specs = [f"{s.name} {list(s.shape)} {s.dtype}" for s in (*backend.input_specs, *backend.output_specs)]
        executed = backend.executed_precision
        lines = [f"{path}: {backend.description}", f"  tensors    {'; '.join(specs)}"]
        lines.append(f"  precision  {m.precision if m else 'not recorded'}; computed here in {executed}")
        if m is None:
            lines.append("  no edgeseg metadata: pass mean, std, color_order (and img_size) to Segmenter")
        else:
            lines += _manifest_lines(m)
    typer.echo("\n".join(lines))
    data = m.to_dict() if m is not None else {"model": str(path), "tensors": specs}
    write_json_opt(json_path, {**data, "executed_precision": executed})


def _manifest_lines(m: Manifest) -> list[str]:
    d = m.to_dict()
    inp = d["input"]
    lines = [
        f"  model      {m.model_file}; classes {', '.join(m.class_names)}",
        f"  input      {inp['name']} {inp['layout']} {inp['width']}x{inp['height']} {inp['color_order']}, "
        f"mean {inp['mean']}, std {inp['std']}, resize {inp['resize']}"
        + (f", dynamic {d['dynamic_axes']}" if d.get("dynamic_axes") else ""),
    ]
    for precision, options in (d.get("runtime_precisions") or {}).items():
        how = ", ".join(f"{k}={v!r}" for k, v in options.items())
        lines.append(
            f"  run-time   {precision} without another export: Segmenter(..., {how}), on CPUs that compute "
            f"{precision} natively"
        )
    if d.get("tools"):  # a bare .onnx carries no tool versions
        lines.append(f"  tools      {', '.join(f'{k} {v}' for k, v in d['tools'].items())}")
    src = d.get("source") or {}
    if src.get("onnx"):
        lines.append(f"  source     {src['onnx']} (ONNX, sha256 {str(src.get('sha256'))[:12]})")
    p = d.get("parity") or {}
    if p:
        # Bundles exported before the reference was recorded compared with PyTorch.
        ref = p.get("reference", "PyTorch")
        short = "PyTorch" if ref == "PyTorch" else "source"
        text = (
            f"  parity     vs {ref} on {p.get('inputs') or '?'}: max |Δlogit| {p['max_abs_logit_diff']:.2e}, "
            f"pixel agreement {p['pixel_agreement']:.4%}, mIoU vs {short} {p['miou_vs_pytorch']:.4f}"
        )
        if p.get("miou_artifact_vs_gt") is not None:
            art, ref_gt = _num(p["miou_artifact_vs_gt"]), _num(p.get("miou_pytorch_vs_gt"))
            text += f", mIoU vs truth {art} ({short} {ref_gt})"
        lines.append(text)
        if p.get("executed_precision"):  # bundles exported before it was read back lack it
            ran = f"the parity check computed it in {p['executed_precision']} ({p.get('runtime')})"
            lines.append(f"  precision  {m.precision}; {ran}")
        lines += _class_lines(p.get("classes") or {}, short)
    return lines


def _class_lines(c: dict[str, Any], short: str) -> list[str]:
    """The worst classes, the boundary F-score and the most common flips of a parity report."""
    if not c:  # bundles exported before per-class parity was measured
        return []
    worst = []
    for w in c.get("worst", []):
        if w.get("drop_points") is not None:
            iou = f"IoU {_num(w.get('iou_pytorch'))} -> {_num(w.get('iou_artifact'))}"
            worst.append(f"{w['class']} {w['drop_points']:.2f} points ({iou})")
        else:
            worst.append(f"{w['class']} (IoU vs {short} {_num(w.get('iou_vs_pytorch'))})")
    tol = c.get("boundary_tolerance_px")
    text = f"  classes    worst {', '.join(worst) or 'none judged'}; boundary F ({tol} px) vs {short} "
    text += _num(c.get("boundary_f_vs_pytorch"))
    gt = c.get("boundary_f_vs_gt")
    if gt:
        text += f", vs truth {_num(gt.get('artifact'))} ({short} {_num(gt.get('pytorch'))})"
    lines = [text]
    flips = [f"{f['pytorch']} -> {f['artifact']} {f['share']:.2%}" for f in c.get("flips", [])[:3]]
    if flips:
        lines.append(f"  flips      {short} class -> artifact class, share of pixels: {', '.join(flips)}")
    if c.get("unjudged"):
        lines.append(f"  unjudged   {', '.join(f'{k} ({v})' for k, v in c['unjudged'].items())}")
    return lines


def _num(v: object) -> str:
    """A figure for people: 4 decimals, or n/a (absent, or not a finite number)."""
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return f"{v:.4f}" if ok else "n/a"
