"""What is reused or re-read by path is checked by content (edgeseg._reuse).

- The reuse key of an export comes from every field of `ExportConfig` (parametrized over the
  dataclass's fields, so a new field fails `test_every_export_setting_is_in_the_reuse_key` until it is
  given a value to try), plus the content of the source and of the data folders.
- The benchmark reuses a bundle only for the same key; the TensorRT engine cache only for the same
  ONNX, precision, profile and builder options (parametrized over `BuildOptions`'s fields).
- The doctor and the demo's default baseline use a manifest's recorded source only when its content
  is what was exported, and no other module reads a manifest's source paths.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from edgeseg.exporters import ExportConfig
from tests.helpers import make_checkpoint, make_dataset, run_cli

ROOT = Path(__file__).resolve().parents[2]

# ----------------------------------------------------------------------------- the export reuse key
# For each ExportConfig field: (the base config's overrides, the changed value). The base must be
# valid for that field, as export itself would accept it.
ALTERNATIVES: dict[str, tuple[dict[str, Any], Any]] = {
    "target": ({}, "openvino"),
    "precision": ({}, "fp16"),
    "img_size": ({}, (32, 32)),
    "dynamic": ({}, True),
    "opset": ({}, 19),
    # --val-data shapes an int8 artifact through a drop bound; without one it feeds the parity report
    # only (test_what_feeds_only_the_report_is_not_in_the_key).
    "val_data": ({"precision": "int8", "val_data": "VAL_A", "max_drop": 1.0}, "VAL_B"),
    "calib": ({"precision": "int8", "calib": "CALIB_A"}, "CALIB_B"),
    "calib_method": ({"precision": "int8"}, "entropy"),
    "max_drop": ({"precision": "int8", "val_data": "VAL_A"}, 1.5),
    "batch": ({"target": "tensorrt", "dynamic": True}, 4),
    "max_class_drop": ({"precision": "int8", "val_data": "VAL_A"}, 2.0),
    "fuse_prepost": ({}, True),
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("reuse-data")
    return {
        name: str(make_dataset(root / name, n=2, seed=seed))
        for seed, name in enumerate(("VAL_A", "VAL_B", "CALIB_A", "CALIB_B"))
    }


def _key(src: Any, config: Any) -> str:
    from edgeseg._reuse import reuse_key
    from edgeseg.exporters import export_settings

    return reuse_key(export_settings(src, config))


def _resolve(value: Any, folders: dict[str, str]) -> Any:
    return folders.get(value, value) if isinstance(value, str) else value


def _config(folders: dict[str, str], **overrides: Any) -> Any:
    return ExportConfig(**{"target": "onnx", **{k: _resolve(v, folders) for k, v in overrides.items()}})


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(ExportConfig)])
def test_every_export_setting_is_in_the_reuse_key(name: str, tiny_ckpt: Path, folders: dict[str, str]):
    from edgeseg._reuse import NOT_SHAPING
    from edgeseg.exporters.source_open import open_export_source

    field = next(f for f in dataclasses.fields(ExportConfig) if f.name == name)
    src = open_export_source(tiny_ckpt)
    if dict(field.metadata) == dict(NOT_SHAPING):  # where or whether to write: never part of the key
        base = _config(folders)
        assert _key(src, base) == _key(src, dataclasses.replace(base, **{name: "elsewhere"}))
        return
    if name not in ALTERNATIVES:
        pytest.fail(
            f"ExportConfig.{name} is new: add a value for it to ALTERNATIVES (or mark it NOT_SHAPING)"
        )
    overrides, changed = ALTERNATIVES[name]
    base = _config(folders, **overrides)
    other = dataclasses.replace(base, **{name: _resolve(changed, folders)})
    assert _key(src, base) != _key(src, other), f"changing {name} alone must prevent reuse"


def test_what_feeds_only_the_report_is_not_in_the_key(tiny_ckpt: Path, folders: dict[str, str]):
    """A bundle exported with its own --val-data and parity images is the bundle the benchmark would
    export without them: the same key, so it is reused."""
    from edgeseg.exporters.source_open import open_export_source

    src = open_export_source(tiny_ckpt)
    plain = _config(folders)
    for precision in ("fp32", "int8"):
        base = dataclasses.replace(plain, precision=precision)
        checked = dataclasses.replace(base, val_data=folders["VAL_A"], parity_images=3)
        assert _key(src, base) == _key(src, checked), precision


def test_content_not_names_of_source_and_data_is_in_the_key(tmp_path: Path, tiny_ckpt: Path):
    from edgeseg.exporters.source_open import open_export_source

    ckpt = shutil.copy(tiny_ckpt, tmp_path / "model.pt")
    calib = make_dataset(tmp_path / "calib", n=2)
    config = _config({}, precision="int8", calib=str(calib))
    first = _key(open_export_source(ckpt), config)
    copy = shutil.copy(ckpt, tmp_path / "elsewhere.pt")
    assert _key(open_export_source(copy), config) == first  # same content
    (calib / "images" / "img000.png").write_bytes((calib / "images" / "img001.png").read_bytes())
    changed_calib = _key(open_export_source(ckpt), config)
    assert changed_calib != first  # the same --calib path with other images
    make_checkpoint(tmp_path / "model.pt", seed=1)
    # another model at the same path
    assert _key(open_export_source(ckpt), config) not in (first, changed_calib)


def test_the_default_calibration_folder_is_in_the_key(
    tmp_path: Path, tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch
):
    """int8 without --calib calibrates on the training folder the checkpoint records: its content
    is part of the key, so a changed training folder is not taken for the one a bundle used."""
    from edgeseg.exporters.source import CheckpointSource
    from edgeseg.exporters.source_open import open_export_source

    train = make_dataset(tmp_path / "train", n=2)
    monkeypatch.setattr(CheckpointSource, "training_data", lambda self: ("folder", str(train)))
    src = open_export_source(tiny_ckpt)
    before = _key(src, _config({}, precision="int8"))
    shutil.copy(train / "images" / "img001.png", train / "images" / "img000.png")
    assert _key(src, _config({}, precision="int8")) != before


def test_an_export_records_the_key_of_its_settings(tiny_ckpt: Path, tiny_bundle):
    """The key a bundle records is the key `export_settings` derives for the config that made it
    (conftest's tiny_bundle: onnx fp32, parity on 1 image)."""
    from edgeseg.exporters.source_open import open_export_source
    from edgeseg.manifest import read_manifest

    bundle = tiny_bundle("onnx")
    recorded = read_manifest(bundle).source
    config = ExportConfig(target="onnx", parity_images=1, out=str(bundle))
    assert recorded["reuse_key"] == _key(open_export_source(tiny_ckpt), config)
    assert recorded["settings"]["source"]["sha256"] == recorded["sha256"]


# ------------------------------------------------------------------------------- benchmark reuse
def test_benchmark_reuses_a_bundle_only_for_the_same_settings(
    tmp_path: Path, tiny_ckpt: Path, tiny_bundle, monkeypatch: pytest.MonkeyPatch
):
    """An INT8 bundle calibrated on another --calib folder, or on the same folder whose images
    changed, is exported again; the same settings reuse it. (Each "export" here copies an existing
    bundle and records the key as `export` does: the real recording is tested above.)"""
    import edgeseg.exporters as exporters
    from edgeseg._reuse import reuse_key
    from edgeseg.bench.reuse import export_row
    from edgeseg.bench.run import BenchmarkConfig, BenchRow
    from edgeseg.exporters.source_open import open_export_source
    from edgeseg.manifest import read_manifest, write_manifest

    exported: list[str | None] = []

    def fake_export(source: Any, config: Any, *, facts: Any = None, log: Any = None) -> Any:
        exported.append(config.calib)
        dest = Path(config.out)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(tiny_bundle("onnx"), dest)
        m = read_manifest(dest)
        settings = exporters.export_settings(open_export_source(source), config)
        write_manifest(dest, dataclasses.replace(m, source={**m.source, "reuse_key": reuse_key(settings)}))
        return type("Result", (), {"bundle": dest})()

    import edgeseg.bench.reuse

    monkeypatch.setattr(edgeseg.bench.reuse, "export", fake_export)  # where the benchmark calls it
    src = open_export_source(tiny_ckpt)
    calib_a, calib_b = make_dataset(tmp_path / "a", n=2), make_dataset(tmp_path / "b", n=2, seed=5)

    def run(calib: Path) -> list[str]:
        said: list[str] = []
        row = BenchRow("onnx:int8", "onnx", "int8")
        config = BenchmarkConfig(calib=str(calib))
        export_row(row, src, (64, 48), config, tmp_path / "bundles", said.append)
        assert row.status == "ok", row.reason
        return said

    run(calib_a)
    assert run(calib_a)[0].startswith("reusing") and exported == [str(calib_a)]
    assert run(calib_b)[0].startswith("exporting") and exported[-1] == str(calib_b)
    assert run(calib_b)[0].startswith("reusing")
    shutil.copy(calib_b / "images" / "img001.png", calib_b / "images" / "img000.png")
    assert run(calib_b)[0].startswith("exporting")  # same folder, other images


# ------------------------------------------------------------------------------ TensorRT engine cache
ENGINE_ALTERNATIVES: dict[str, Any] = {
    "workspace_mib": 2048,
    "version_compatible": True,
    "hardware_compatible": True,
}


def _engine_key_args() -> dict[str, Any]:
    from edgeseg.targets.tensorrt.build import BuildOptions

    return {"onnx_sha": "abc", "precision": "fp16", "profile": None, "options": BuildOptions()}


def _cached(tmp_path: Path, **args: Any) -> Any:
    from edgeseg.targets.tensorrt.cache import find_cached
    from edgeseg.targets.tensorrt.device import Device

    orin = Device(0, "Orin", "8.7", "12.6")
    return find_cached(
        tmp_path, "model", args["precision"], "10.3.0", orin, args["onnx_sha"],
        profile=args["profile"], options=args["options"],
    )  # fmt: skip


def _cache_engine(tmp_path: Path, **args: Any) -> None:
    """An engine and its record as build_engine writes them for `args`."""
    from edgeseg._reuse import reuse_key
    from edgeseg.targets.tensorrt.cache import engine_settings

    engine = tmp_path / f"model.trt10.3.0.sm87.{args['precision']}.engine"
    engine.write_bytes(b"plan")
    key = reuse_key(engine_settings(args["onnx_sha"], args["precision"], args["profile"], args["options"]))
    record = {"tensorrt": "10.3.0", "compute_capability": "8.7", "precision": args["precision"],
              "onnx_sha256": args["onnx_sha"], **dataclasses.asdict(args["options"]),
              "reuse_key": key}  # fmt: skip
    engine.with_suffix(".json").write_text(json.dumps(record))


def _engine_changes() -> list[str]:
    from edgeseg.targets.tensorrt.build import BuildOptions

    return ["onnx_sha", "profile", *(f"options.{f.name}" for f in dataclasses.fields(BuildOptions))]


@pytest.mark.parametrize("change", _engine_changes())
def test_a_cached_engine_is_reused_only_for_the_same_settings(tmp_path: Path, change: str):
    args = _engine_key_args()
    _cache_engine(tmp_path, **args)
    assert _cached(tmp_path, **args) is not None
    if change == "onnx_sha":
        other = {**args, "onnx_sha": "another graph"}
    elif change == "profile":
        profile = {"input": "image", "min": [1, 3, 48, 64], "opt": [1, 3, 48, 64], "max": [4, 3, 48, 64]}
        other = {**args, "profile": profile}
    else:
        name = change.split(".", 1)[1]
        if name not in ENGINE_ALTERNATIVES:
            pytest.fail(f"BuildOptions.{name} is new: add a value for it to ENGINE_ALTERNATIVES")
        other = {**args, "options": dataclasses.replace(args["options"], **{name: ENGINE_ALTERNATIVES[name]})}
    assert _cached(tmp_path, **other) is None, f"an engine built with another {change} was reused"


# ---------------------------------------------------------------------- a manifest's recorded source
@pytest.fixture
def own_bundle(tmp_path: Path) -> tuple[Path, Path]:
    """(a checkpoint in tmp_path, its FP32 ONNX bundle, which records it as its source)."""
    from edgeseg.exporters import ExportConfig, export

    ckpt = make_checkpoint(tmp_path / "ckpt.pt")
    return ckpt, Path(export(ckpt, ExportConfig(target="onnx", parity_images=1)).bundle)


def test_doctor_uses_the_recorded_source_only_when_its_content_is_unchanged(
    own_bundle: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    from edgeseg.exporters.doctor_run import diagnose

    ckpt, bundle = own_bundle
    assert "(the bundle's source, verified" in diagnose(bundle).checked
    make_checkpoint(ckpt, classes=2, seed=3)  # another model where the source was
    report = diagnose(bundle)
    assert report.checked.startswith("the bundle's own model.onnx, not its source")
    assert f"'{ckpt}' is not the file this bundle was exported from" in report.checked
    # A bundle without an FP32 ONNX graph of its own cannot fall back: refused, saying why.
    int8 = tmp_path / "int8"
    shutil.copytree(bundle, int8)
    manifest = json.loads((int8 / "edgeseg.json").read_text())
    (int8 / "edgeseg.json").write_text(json.dumps({**manifest, "precision": "int8"}))
    rc, _, err = run_cli(["doctor", int8], capsys)
    assert rc == 2 and "is not the file this bundle was exported from" in err and "no FP32 ONNX" in err
    assert len(err.strip().splitlines()) == 1


def test_demo_default_baseline_is_the_recorded_checkpoint_only_by_content(own_bundle: tuple[Path, Path]):
    from edgeseg.demo.baseline import resolve_baseline
    from edgeseg.manifest import read_manifest

    ckpt, bundle = own_bundle
    manifest = read_manifest(bundle)
    assert resolve_baseline(None, manifest, bundle)[0] == ckpt
    make_checkpoint(ckpt, seed=3)
    found, note = resolve_baseline(None, manifest, bundle)
    assert found is None and "is not the file this bundle was exported from" in note


def test_no_module_reads_a_manifests_source_path_but_the_verified_reader():
    """Every read of the paths a manifest's `source` records goes through edgeseg._reuse.find_source
    (which checks the content): a new reader elsewhere fails here."""
    pattern = re.compile(r"""source\s*(\.get\(|\[)\s*["'](checkpoint|onnx)["']""")
    readers = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "edgeseg").rglob("*.py"))
        if path.name != "_reuse.py" and pattern.search(path.read_text(encoding="utf-8"))
    ]
    assert readers == []
