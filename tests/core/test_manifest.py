"""The bundle manifest: round trip, validation, sha256 verification, ONNX metadata essentials."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeseg.errors import InputError
from edgeseg.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    InputSpec,
    Manifest,
    OutputSpec,
    manifest_from_onnx_metadata,
    onnx_metadata,
    read_manifest,
    sha256_file,
    write_manifest,
)


def make_manifest(**overrides: object) -> Manifest:
    fields: dict[str, object] = {
        "target": "onnx",
        "precision": "fp32",
        "model_file": "model.onnx",
        "class_names": ("background", "disc"),
        "input": InputSpec("image", 3, 48, 64, "RGB", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        "output": OutputSpec("logits", 2),
        "source": {"checkpoint": "runs/x/best.pt", "sha256": "0" * 64},
        "model": {"name": "unet", "depth": 2},
        "ignore_index": 255,
        "dynamic_axes": {"image": {0: "batch", 2: "height", 3: "width"}},
        "tools": {"torch": "2.13.0"},
        "parity": {
            "inputs": "synthetic (1 images)",
            "max_abs_logit_diff": 1e-5,
            "pixel_agreement": 1.0,
            "miou_vs_pytorch": 1.0,
        },
        "edgeseg_version": "0.1.0",
        "created_at": "2026-01-01T00:00:00+00:00",
    }
    fields.update(overrides)
    return Manifest(**fields)  # type: ignore[arg-type]


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "model.onnx").write_bytes(b"not really onnx, but hashed all the same")
    (root / "notes.txt").write_text("an extra file is hashed too\n")
    write_manifest(root, make_manifest())
    return root


def edit_manifest(bundle: Path, edit) -> None:
    path = bundle / MANIFEST_NAME
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_round_trip(bundle: Path):
    manifest = read_manifest(bundle)
    assert manifest == make_manifest(files=manifest.files)
    assert manifest.files == {
        "model.onnx": sha256_file(bundle / "model.onnx"),
        "notes.txt": sha256_file(bundle / "notes.txt"),
    }
    assert manifest.schema_version == SCHEMA_VERSION and manifest.dynamic_axes["image"][2] == "height"
    assert read_manifest(bundle / MANIFEST_NAME) == manifest  # the manifest's own path works too
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    assert list(data)[:3] == ["schema_version", "edgeseg_version", "created_at"]
    assert data["input"]["layout"] == "NCHW" and data["input"]["dtype"] == "float32"
    assert data["quantization"] is None


def test_modified_file_is_named(bundle: Path):
    with (bundle / "model.onnx").open("ab") as fh:
        fh.write(b"!")
    with pytest.raises(InputError, match=r"'model.onnx' has been modified or is corrupt"):
        read_manifest(bundle)
    assert read_manifest(bundle, verify=False).model_file == "model.onnx"


def test_missing_file_is_named(bundle: Path):
    (bundle / "notes.txt").unlink()
    with pytest.raises(InputError, match=r"incomplete: 'notes.txt' is missing"):
        read_manifest(bundle)


def test_newer_schema_is_refused(bundle: Path):
    edit_manifest(bundle, lambda d: d.update(schema_version=SCHEMA_VERSION + 1))
    with pytest.raises(
        InputError, match=rf"written by a newer edgeseg \(schema {SCHEMA_VERSION + 1}\).*upgrade"
    ):
        read_manifest(bundle)


def test_unknown_keys_of_the_same_schema_are_ignored(bundle: Path):
    edit_manifest(bundle, lambda d: d.update(added_later={"x": 1}))
    assert read_manifest(bundle).target == "onnx"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("target"), r"lacks the key 'target'"),
        (lambda d: d["input"].pop("channels"), r"lacks the key 'input.channels'"),
        (lambda d: d["input"].update(height="48"), r"wrong type for 'input.height': expected int, got str"),
        (lambda d: d["input"].update(mean=["a", 1, 2]), r"wrong type for 'input.mean'"),
        (lambda d: d.update(output=[]), r"wrong type for 'output'"),
        (lambda d: d["files"].update({"../../etc/passwd": "0"}), r"not a plain name inside the bundle"),
        (lambda d: d["files"].pop("model.onnx"), r"does not list its model file 'model.onnx'"),
    ],
)
def test_malformed_manifest_names_bundle_and_key(bundle: Path, edit, message: str):
    edit_manifest(bundle, edit)
    with pytest.raises(InputError, match=message) as info:
        read_manifest(bundle)
    assert str(bundle) in str(info.value)


def test_not_a_bundle(tmp_path: Path):
    with pytest.raises(InputError, match=r"is a folder, not an edgeseg bundle \(it has no edgeseg.json\)"):
        read_manifest(tmp_path)
    with pytest.raises(InputError, match=r"does not exist"):
        read_manifest(tmp_path / "nowhere")
    (tmp_path / MANIFEST_NAME).write_text("{ truncated")
    with pytest.raises(InputError, match=r"\(edgeseg.json\) is not readable JSON"):
        read_manifest(tmp_path)


def test_write_requires_the_model_file(tmp_path: Path):
    with pytest.raises(InputError, match=r"no model file 'model.onnx'"):
        write_manifest(tmp_path, make_manifest())
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_onnx_metadata_round_trip():
    manifest = make_manifest(files={"model.onnx": "f" * 64})
    props = onnx_metadata(manifest)
    assert all(k.startswith("edgeseg.") and isinstance(v, str) for k, v in props.items())
    assert {"edgeseg.input", "edgeseg.class_names", "edgeseg.schema_version"} <= set(props)
    assert not {"edgeseg.files", "edgeseg.evaluation.parity", "edgeseg.tools"} & set(props)
    back = manifest_from_onnx_metadata({**props, "producer": "x"}, model_file="model.onnx")
    assert back is not None
    assert back == make_manifest(tools={}, parity=None)
    assert manifest_from_onnx_metadata({"author": "someone"}, model_file="m.onnx") is None


def test_onnx_metadata_refuses_newer_schema_and_bad_json():
    props = onnx_metadata(make_manifest())
    newer = {**props, "edgeseg.schema_version": str(SCHEMA_VERSION + 1)}
    with pytest.raises(InputError, match=r"newer edgeseg"):
        manifest_from_onnx_metadata(newer, model_file="m.onnx", where="model 'm.onnx'")
    with pytest.raises(InputError, match=r"'edgeseg.input' is not readable JSON"):
        manifest_from_onnx_metadata({**props, "edgeseg.input": "{"}, model_file="m.onnx")


def test_reading_does_not_import_torch(bundle: Path):
    code = (
        "import sys; from edgeseg.manifest import read_manifest; "
        f"m = read_manifest({str(bundle)!r}); assert m.target == 'onnx'; "
        "heavy = [k for k in ('torch', 'onnx', 'onnxruntime', 'openvino') if k in sys.modules]; "
        "assert not heavy, heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
