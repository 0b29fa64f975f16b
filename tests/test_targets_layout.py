"""One folder per deployment target: what edgeseg knows about a target lives in its folder's
descriptor, and every table of targets elsewhere is derived from the descriptors.

These tests fail on a new table keyed by a target or backend name outside `edgeseg/targets/<name>/`
(a string literal naming one), on a descriptor that imports more than the core, and on a derived
table that disagrees with the descriptors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import edgeseg
from edgeseg.formats import TARGETS
from edgeseg.targets import DESCRIPTORS, NAMES, backend_specs

PACKAGE = Path(edgeseg.__file__).parent

# The literals outside the targets' folders that name a target or backend for another reason than
# keying a table: a Python package or pip extra (onnx, onnxruntime, openvino), a manifest key, the
# TensorRT-only build-engine command. Each is (file, literal): reason. A new one fails the test.
ALLOWED = {
    ("_offline.py", "openvino"): "the openvino package, imported with telemetry off",
    ("formats.py", "openvino"): "the openvino package (its telemetry), not the target",
    ("cli/engine.py", "tensorrt"): "build-engine is TensorRT's own command",
    ("cli/info.py", "onnx"): "the manifest's source record key for an ONNX source file",
    ("_reuse.py", "onnx"): "the manifest's source record key for an ONNX source file",
    ("exporters/run.py", "onnx"): "the manifest's source record key for an ONNX source file",
    (
        "exporters/doctor_run.py",
        "onnx",
    ): "the manifest's source key, and the FP32 ONNX graph the doctor reads",
    ("exporters/onnx_source.py", "onnx"): "the onnx package, the source kind and its record key",
    ("exporters/onnx_source.py", "onnxruntime"): "a foreign ONNX file's reference runs on ONNX Runtime",
    ("evaluation/parity.py", "onnxruntime"): "a foreign ONNX file's reference runs on ONNX Runtime",
    ("exporters/calibset.py", "onnx"): "the pip extra of onnxruntime, in its missing-package error",
    ("exporters/calibset.py", "onnxruntime"): "the onnxruntime package (its calibration reader)",
    ("exporters/onnx_quant.py", "onnx"): "the pip extra of onnxruntime, in its missing-package error",
    ("exporters/onnx_quant.py", "onnxruntime"): "the onnxruntime package (its quantizer)",
    ("exporters/torch_onnx.py", "onnx"): "the onnx package and its extra",
    ("targets/__init__.py", "onnx"): "the registration",
    ("targets/__init__.py", "openvino"): "the registration",
    ("targets/__init__.py", "tensorrt"): "the registration",
}


def _names() -> set[str]:
    return {t.name for t in DESCRIPTORS} | {spec.name for spec in backend_specs()}


def test_no_target_name_literals_outside_the_targets_folders() -> None:
    names = _names()
    found: set[tuple[str, str]] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "targets" and len(rel.parts) > 2:  # inside a target's own folder
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.add((rel.as_posix(), node.value))
    new = sorted(found - set(ALLOWED) - {("targets/__init__.py", n) for n in NAMES})
    assert not new, f"target or backend names outside edgeseg/targets/<name>/ (derive them instead): {new}"


def test_every_target_folder_is_registered_and_self_contained() -> None:
    folders = sorted(p.name for p in (PACKAGE / "targets").iterdir() if (p / "__init__.py").is_file())
    assert sorted(NAMES) == folders
    for target in DESCRIPTORS:
        assert target.name in NAMES
        for spec in target.runtimes:  # a target's own backends live in its own folder
            assert spec.module.startswith(f"edgeseg.targets.{target.name}.")
        if target.exporter is not None:
            assert target.exporter.startswith(f"edgeseg.targets.{target.name}.")


def test_descriptors_import_only_the_core() -> None:
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter: pip install import-linter")
    graph = grimp.build_graph("edgeseg")
    core = {"edgeseg.errors", "edgeseg._cpu", "edgeseg.targets.spec", "edgeseg._guards"}
    for name in NAMES:
        module = f"edgeseg.targets.{name}"
        imported = set(graph.find_modules_directly_imported_by(module))
        descriptors = {f"edgeseg.targets.{n}" for n in NAMES}
        assert imported <= core | descriptors, f"{module} imports {sorted(imported - core - descriptors)}"


def test_derived_tables_follow_the_descriptors() -> None:
    from edgeseg.bench.card import _PACKAGES
    from edgeseg.exporters.doctor_ops import INT8_OPS
    from edgeseg.runtimes import AUTO_PREFERENCE, registered_backends

    assert list(TARGETS) == list(NAMES)
    for target in DESCRIPTORS:
        assert INT8_OPS.get(target.name, frozenset()) == target.doctor.int8_ops
        for spec in target.runtimes:
            assert spec.name in registered_backends()
            assert spec.packages == _PACKAGES[spec.name]
            for kind in spec.kinds:
                ranked = AUTO_PREFERENCE[kind]
                assert spec.name in ranked
                better = [s.name for s in backend_specs() if kind in s.kinds and s.auto_rank < spec.auto_rank]
                assert set(better) == set(ranked[: ranked.index(spec.name)])


def test_a_registered_backend_joins_every_derived_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backend of one's own: one register_backend call puts it in the registry, "auto"'s order for
    its kind and the --backend help."""
    from edgeseg.cli._help import backend_help
    from edgeseg.runtimes import registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "AUTO_PREFERENCE", dict(registry.AUTO_PREFERENCE))
    spec = registry.BackendSpec(
        name="mine", title="Mine", module="edgeseg.runtimes.torch", class_name="TorchBackend",
        requires=(), extra=None, kinds=("openvino",), auto_rank=1,
    )  # fmt: skip
    registry.register_backend(spec)
    assert registry.AUTO_PREFERENCE["openvino"][0] == "mine"
    assert registry.resolve_backend("auto", "openvino") == "mine"
    assert "mine" in backend_help()
