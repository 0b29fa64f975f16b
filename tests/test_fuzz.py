"""Fuzzing the readers of untrusted files: manifests, images and masks, ONNX and OpenVINO IR models.

The contract: whatever the bytes, a reader either succeeds or raises one of edgeseg's clear errors
(InputError, EdgesegRuntimeError). Any other exception is a bug, to be fixed by catching the library's
error at the boundary. Hypothesis runs derandomized (the same examples on every run, so CI is
reproducible) with `max_examples` sized to keep this file under a minute on one core.

Model files are loaded by native runtimes that a mutated file could crash outright; those run in a
worker subprocess, so a crash is reported (with the mutation) instead of killing pytest.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from edgeseg.errors import EdgesegRuntimeError, InputError
from edgeseg.manifest import MANIFEST_NAME, InputSpec, Manifest, OutputSpec, read_manifest

CLEAR_ERRORS = (InputError, EdgesegRuntimeError)
FUZZ = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -------------------------------------------------------------------------------------- manifests
def _valid_manifest() -> dict[str, Any]:
    manifest = Manifest(
        target="onnx",
        precision="fp32",
        model_file="model.onnx",
        class_names=("bg", "fg"),
        input=InputSpec("image", 3, 64, 64, "RGB", (0.5,) * 3, (0.25,) * 3),
        output=OutputSpec("logits", 2),
        source={"checkpoint": "best.pt", "sha256": "0" * 64},
        dynamic_axes={"image": {0: "batch"}},
        files={"model.onnx": "0" * 64},
        edgeseg_version="0.1.0",
    )
    return json.loads(json.dumps(manifest.to_dict()))  # as read from disk: lists, not tuples


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
file_names = st.sampled_from(
    [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "..",
        "",
        "a\\b",
        "ok.bin",
        "sub/ok.bin",
        "\u00e9t\u00e9.bin",
        "a\x00b",
    ]
) | st.text(max_size=20)


def _paths(data: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path in a JSON tree (dicts and lists)."""
    found = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found += _paths(value, (*prefix, i))
    return found


@st.composite
def mutated_manifests(draw: st.DrawFn) -> dict[str, Any]:
    data = _valid_manifest()
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["drop", "replace", "file", "model_file"]))
        if action == "drop":
            del parent[path[-1]]
        elif action == "replace":
            parent[path[-1]] = draw(json_values)
        elif action == "file" and isinstance(data.get("files"), dict):
            data["files"][draw(file_names)] = draw(st.text(max_size=64) | json_values)
        else:
            data["model_file"] = draw(file_names)
    return data


def _escapes(name: str) -> bool:
    return name.startswith("/") or ".." in name.split("/") or "\\" in name or not name


def _huge_mean() -> dict[str, Any]:
    data = _valid_manifest()
    data["input"]["mean"][0] = 10**400  # found by this test: float() overflowed
    return data


@FUZZ
@given(data=mutated_manifests())
@example(data=_huge_mean())
def test_manifest_reader_refuses_or_reads_clean_manifests(data: dict[str, Any]) -> None:
    try:
        manifest = Manifest.from_dict(data, "fuzz")
    except CLEAR_ERRORS:
        return
    assert not _escapes(manifest.model_file)
    assert not any(_escapes(name) for name in manifest.files)


@FUZZ
@given(raw=st.binary(max_size=64), cut=st.integers(0, 4000), at=st.integers(0, 4000))
def test_read_manifest_on_damaged_bytes(
    tmp_path_factory: pytest.TempPathFactory, raw: bytes, cut: int, at: int
):
    folder = tmp_path_factory.mktemp("bundle")
    text = json.dumps(_valid_manifest()).encode()
    damaged = text[: at % (len(text) + 1)] + raw + text[at % (len(text) + 1) :]
    (folder / MANIFEST_NAME).write_bytes(damaged[: max(cut, 1)] if cut % 3 == 0 else damaged)
    (folder / "model.onnx").write_bytes(b"not really a model")
    with contextlib.suppress(CLEAR_ERRORS):
        read_manifest(folder, verify=True)


# ------------------------------------------------------------------------------- images and masks
def _png_bytes(mode: str) -> bytes:
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 3, (16, 16), dtype=np.uint8)
    img = Image.fromarray(arr, "L") if mode == "L" else Image.fromarray(np.stack([arr * 80] * 3, -1), "RGB")
    if mode == "P":
        img = Image.fromarray(arr, "L").convert("P")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


PNGS = {mode: _png_bytes(mode) for mode in ("L", "RGB", "P")}


@st.composite
def mutated_png(draw: st.DrawFn) -> bytes:
    raw = bytearray(PNGS[draw(st.sampled_from(sorted(PNGS)))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "set"]))
        pos = draw(st.integers(0, max(0, len(raw) - 1)))
        if kind == "flip" and raw:
            raw[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del raw[pos:]
        elif kind == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif raw:  # "set": a byte to an extreme (0x00/0xFF), e.g. in the width/height fields
            raw[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
    return bytes(raw)


@FUZZ
@given(raw=mutated_png())
def test_image_and_mask_readers_on_mutated_png(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    from edgeseg.data import read_image, read_mask

    path = tmp_path_factory.mktemp("png") / "x.png"
    path.write_bytes(raw)
    for read in (read_mask, read_image):
        try:
            arr = read(path)
        except CLEAR_ERRORS:
            continue
        assert isinstance(arr, np.ndarray)


@settings(FUZZ, max_examples=60)
@given(raw=mutated_png())
def test_folder_dataset_on_a_mutated_mask(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    from edgeseg.data import FolderDataset

    root = tmp_path_factory.mktemp("ds")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(root / "images" / "a.png")
    (root / "masks" / "a.png").write_bytes(raw)
    try:
        ds = FolderDataset(root, num_classes=3)
        ds[0]
    except CLEAR_ERRORS:
        pass


# ---------------------------------------------------------------------------------- model files
_WORKER = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    from edgeseg import Segmenter
    from edgeseg.errors import EdgesegRuntimeError, InputError

    backend, files = sys.argv[1], sys.argv[2:]
    frame = np.full((48, 64, 3), 90, np.uint8)
    for path in files:
        print("START", path, flush=True)
        try:
            with Segmenter(path, backend=backend) as seg:
                seg(frame)
            kind = "ok"
        except (InputError, EdgesegRuntimeError):
            kind = "clear"
        except BaseException as exc:
            kind = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:200]}"
        print("RESULT", json.dumps(kind), flush=True)
    """
)


def _mutate(raw: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(raw)
    kind = rng.integers(4)
    if kind == 0:  # flip a few bits anywhere
        for pos in rng.integers(0, len(data), rng.integers(1, 9)):
            data[pos] ^= 1 << int(rng.integers(8))
    elif kind == 1:  # truncate
        del data[int(rng.integers(1, len(data))) :]
    elif kind == 2:  # insert random bytes
        pos = int(rng.integers(0, len(data)))
        data[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    else:  # overwrite a run with random bytes
        pos, n = int(rng.integers(0, len(data))), int(rng.integers(1, 64))
        data[pos : pos + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    return bytes(data)


def _run_worker(backend: str, files: list[Path]) -> dict[str, str]:
    """{file: "ok" | "clear" | what else it raised | "crashed (signal N)"}; restarts after a crash."""
    results: dict[str, str] = {}
    pending = [str(f) for f in files]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while pending:
        proc = subprocess.run(
            [sys.executable, "-c", _WORKER, backend, *pending],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        current = None
        for line in proc.stdout.splitlines():
            if line.startswith("START "):
                current = line[6:]
            elif line.startswith("RESULT ") and current is not None:
                results[current] = json.loads(line[7:])
                current = None
        if proc.returncode != 0:
            if current is None:
                pytest.fail(f"the {backend} fuzz worker failed outside a model load:\n{proc.stderr[-2000:]}")
            results[current] = f"crashed (exit {proc.returncode})"
        pending = [p for p in pending if p not in results]
    return results


@pytest.fixture(scope="module")
def bare_models(tiny_bundle: Any) -> dict[str, Path]:
    """The model files of the session's tiny FP32 bundles (conftest.py): read here, never written."""
    pytest.importorskip("onnxruntime", reason="pip install 'edgeseg[onnx]'")
    pytest.importorskip("openvino", reason="pip install 'edgeseg[openvino]'")
    onnx, ir = tiny_bundle("onnx"), tiny_bundle("openvino")
    return {"onnx": onnx / "model.onnx", "xml": ir / "model.xml", "bin": ir / "model.bin"}


MUTANTS = 40  # per case; a worker loads them all in one process


@pytest.mark.parametrize(
    ("case", "backend"),
    [("onnx", "onnxruntime"), ("onnx", "openvino"), ("xml", "openvino"), ("bin", "openvino")],
    ids=["onnx-onnxruntime", "onnx-openvino", "ir-xml-openvino", "ir-bin-openvino"],
)
def test_model_loading_on_mutated_files(
    tmp_path: Path, bare_models: dict[str, Path], case: str, backend: str
) -> None:
    """Mutated model files (bit flips, truncation, inserted or overwritten bytes) either run or fail
    with a clear error; never another exception, never a crash of the process."""
    rng = np.random.default_rng(["onnx", "xml", "bin"].index(case))
    source = bare_models[case]
    raw = source.read_bytes()
    files = []
    for i in range(MUTANTS):
        folder = tmp_path / f"m{i:03d}"
        folder.mkdir()
        if case == "onnx":
            (folder / "model.onnx").write_bytes(_mutate(raw, rng))
            files.append(folder / "model.onnx")
        else:  # an IR is two files: mutate one, copy the other
            other = bare_models["bin" if case == "xml" else "xml"]
            (folder / source.name).write_bytes(_mutate(raw, rng))
            (folder / other.name).write_bytes(other.read_bytes())
            files.append(folder / "model.xml")
    results = _run_worker(backend, files)
    bad = {path: kind for path, kind in results.items() if kind not in ("ok", "clear")}
    assert not bad, bad
    assert len(results) == MUTANTS
