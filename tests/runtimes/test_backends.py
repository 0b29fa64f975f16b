"""One contract suite, parametrized over the backend registry: every backend, on every kind of artifact
it runs, goes through the same parity, shape, batch, load/close and bad-input tests. A backend whose
package is missing skips, naming the extra to install. The registry's own behaviour is tested below.

Artifacts (a tiny U-Net, depth 2, width 4, at 64x48, static and dynamic) are the session's
(tests/conftest.py), built once for the whole run.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgeseg.errors import EdgesegRuntimeError, InputError, MissingDependencyError
from edgeseg.formats import TARGETS, get_target
from edgeseg.runtimes import (
    Backend,
    TensorSpec,
    artifact_kind,
    available_backends,
    backend_entry,
    create_backend,
    get_backend_class,
    registered_backends,
    resolve_backend,
    throughput_options,
)

SHAPE = (3, 48, 64)  # C, H, W of the tiny model's export size
CLASSES = 4
TOLERANCE = 1e-3  # max |Δlogit| against PyTorch
# The artifacts the suite can build on a CPU, by kind: the checkpoint and every target whose own
# runtime runs on the CPU (a TensorRT engine exists only on a GPU: its cases skip without one).
BUILDABLE = (
    "checkpoint",
    *(t.name for t in TARGETS.values() if t.runtimes and "cpu" in t.runtimes[0].devices),
)


def device_of(name: str) -> str:
    """The device a backend's cases run on: the one it needs or uses by default."""
    return backend_entry(name).devices[0]


CASES = [(name, kind) for name in registered_backends() for kind in backend_entry(name).kinds]


@pytest.fixture(scope="module")
def ckpt_path(tiny_ckpt: Path) -> Path:
    """The session's tiny checkpoint (conftest.py: 4 classes, 64x48). Read-only."""
    return tiny_ckpt


@pytest.fixture(scope="module")
def artifact(ckpt_path: Path, tiny_bundle: Callable[..., Path]) -> Callable[[str, bool], Path]:
    """artifact(kind, dynamic): the model file of that kind, from the session's bundles (exported
    on first use). Read-only: tests that damage a model file copy it first."""
    cache: dict[tuple[str, bool], Path] = {}

    def get(kind: str, dynamic: bool) -> Path:
        if kind == "checkpoint":
            return ckpt_path  # a checkpoint takes any batch and size: it is both
        if kind not in BUILDABLE:
            pytest.skip(f"no {kind} artifact can be built on this machine")
        if (kind, dynamic) not in cache:
            from edgeseg.manifest import read_manifest

            bundle = tiny_bundle(kind, dynamic=dynamic)
            cache[kind, dynamic] = bundle / read_manifest(bundle).model_file
        return cache[kind, dynamic]

    return get


@pytest.fixture(scope="module")
def fused_artifact(ckpt_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """fused_artifact(kind): the model file of a `--fuse-prepost` bundle of the tiny checkpoint (uint8
    NHWC frames in; logits and class ids out), exported on first use. Read-only."""
    cache: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in FUSABLE or kind not in BUILDABLE:
            pytest.skip(f"no fused {kind} artifact can be built on this machine")
        if kind not in cache:
            from edgeseg.exporters import ExportConfig, export
            from edgeseg.manifest import read_manifest

            out = tmp_path_factory.mktemp("fused") / kind
            config = ExportConfig(target=kind, fuse_prepost=True, parity_images=1, out=str(out))
            try:
                bundle = Path(export(ckpt_path, config).bundle)
            except MissingDependencyError as exc:
                pytest.skip(str(exc))
            cache[kind] = bundle / read_manifest(bundle).model_file
        return cache[kind]

    return get


@pytest.fixture(scope="module")
def reference(ckpt_path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """PyTorch logits of the checkpoint's model, computed directly (not through a backend)."""
    import torch

    from edgeseg.models.checkpoint import load_checkpoint

    model = load_checkpoint(ckpt_path).build_model()

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()

    return run


@pytest.fixture(params=CASES, ids=[f"{n}-{k}" for n, k in CASES])
def case(request: pytest.FixtureRequest) -> tuple[str, str]:
    name, kind = request.param
    try:
        get_backend_class(name)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))  # e.g. "... pip install 'edgeseg[openvino]'"
    return name, kind


def open_backend(case: tuple[str, str], artifact: Callable[[str, bool], Path], dynamic: bool) -> Backend:
    name, kind = case
    # TensorRT runs on a CUDA device only; every other backend is tested on CPU.
    return create_backend(name, artifact(kind, dynamic), device=device_of(name))


def batch(n: int, shape: tuple[int, ...] = SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *shape)).astype(np.float32)


# ------------------------------------------------------------------------------------ contract suite
@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_parity_and_shapes(case, artifact, reference, dynamic: bool):
    with open_backend(case, artifact, dynamic) as backend:
        assert backend.is_loaded and backend.name == case[0]
        (inp,), (out,) = backend.input_specs, backend.output_specs
        assert (inp.name, out.name, inp.dtype, out.dtype) == ("image", "logits", "float32", "float32")
        assert inp.shape[1] == 3 and out.shape[1] == CLASSES and len(inp.shape) == len(out.shape) == 4
        if dynamic:
            assert inp.fixed_batch is None and inp.static_dim(2) is None
        else:
            assert inp.shape == (1, *SHAPE) or case[1] == "checkpoint"
        x = batch(1)
        logits = backend.infer({"image": x})["logits"]
        assert logits.shape == (1, CLASSES, *SHAPE[1:]) and logits.dtype == np.float32
        assert np.abs(logits - reference(x)).max() <= TOLERANCE
        assert backend.last_infer_ms is not None and backend.last_infer_ms > 0
        assert backend.description.startswith(case[0])


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "dynamic"])
def test_batch_of_n(case, artifact, reference, dynamic: bool):
    """A dynamic model runs the batch at once; a fixed batch of 1 runs it in chunks (OpenVINO: async)."""
    x = batch(5, seed=1)
    with open_backend(case, artifact, dynamic) as backend:
        logits = backend.infer({"image": x})["logits"]
        one_by_one = np.concatenate([backend.infer({"image": x[i : i + 1]})["logits"] for i in range(5)])
    assert logits.shape == (5, CLASSES, *SHAPE[1:])
    assert np.abs(logits - reference(x)).max() <= TOLERANCE
    assert np.abs(logits - one_by_one).max() <= 1e-5


def test_dynamic_model_at_other_sizes(case, artifact, reference):
    with open_backend(case, artifact, True) as backend:
        for shape in [(3, 32, 96), (3, 80, 40)]:
            x = batch(2, shape)
            logits = backend.infer({"image": x})["logits"]
            assert logits.shape == (2, CLASSES, *shape[1:])
            assert np.abs(logits - reference(x)).max() <= TOLERANCE


def test_load_close_reopen(case, artifact):
    backend = open_backend(case, artifact, False)
    x = batch(1)
    with pytest.raises(EdgesegRuntimeError, match=r"is not loaded; call load\(\) first"):
        backend.infer({"image": x})
    with pytest.raises(EdgesegRuntimeError, match="input_specs"):
        backend.input_specs  # noqa: B018
    first = backend.load().infer({"image": x})["logits"]
    assert backend.load() is backend  # loading twice is a no-op
    backend.close()
    backend.close()  # idempotent
    assert not backend.is_loaded
    with pytest.raises(EdgesegRuntimeError, match=r"was closed; call load\(\) to reopen it"):
        backend.infer({"image": x})
    with backend:
        assert np.array_equal(backend.infer({"image": x})["logits"], first)
    assert not backend.is_loaded


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        (lambda x: {"image": x[:, :1]}, r"input 'image' has 1 at axis 1 \(channels\); the model expects 3"),
        (lambda x: {"image": x.astype(np.float64)}, r"dtype float64; the model expects float32"),
        (lambda x: {"image": np.where(x > 2, np.nan, x)}, r"frame contains NaN or Inf values"),
        (lambda x: {"image": np.where(x > 2, np.inf, x)}, r"frame contains NaN or Inf values"),
        (lambda x: {"pixels": x}, r"unknown input\(s\) \['pixels'\]; the model's inputs are \['image'\]"),
        (lambda x: {}, r"missing input\(s\) \['image'\]"),
        (lambda x: {"image": x[0]}, r"has shape \(3, 48, 64\); the model expects 4 dimensions"),
        (lambda x: {"image": x[:0]}, r"empty batch"),
        (lambda x: {"image": x.tolist()}, r"must be a numpy array"),
        (lambda x: x, r"infer takes a dict"),
    ],
    ids=["channels", "dtype", "nan", "inf", "name", "missing", "rank", "empty", "list", "not-a-dict"],
)
def test_bad_input(case, artifact, feed, message: str):
    with open_backend(case, artifact, False) as backend:
        with pytest.raises(InputError, match=message):
            backend.infer(feed(batch(1)))
        assert backend.infer({"image": batch(1)})["logits"].shape[0] == 1  # still usable


# The thread-safety contract (edgeseg.runtimes.base): one instance shared by threads gives each call
# its own outputs and timings, on plain graphs, fused graphs (frames in, class ids out) and with the
# options of throughput mode (OpenVINO's THROUGHPUT streams, ONNX Runtime's parallel runs, chunked batches).
THREADS, CALLS, ROUNDS = 4, 6, 3
VARIANTS = ("plain", "fused", "throughput")
# Fused pre/post exists for the targets whose descriptors take the option; the other kinds have no
# fused variant to test (not a case that skips).
FUSABLE = {t.name for t in TARGETS.values() if "prepost" in t.options}
THREAD_CASES = [(c, v) for c in CASES for v in VARIANTS if v != "fused" or c[1] in FUSABLE]
THREAD_IDS = [f"{n}-{k}-{v}" for (n, k), v in THREAD_CASES]


def variant_backend(
    case: tuple[str, str], artifact: Callable[..., Path], fused_artifact: Callable[[str], Path], variant: str
) -> Backend:
    name, kind = case
    path = fused_artifact(kind) if variant == "fused" else artifact(kind, False)
    options = throughput_options(name) if variant == "throughput" else {}
    return create_backend(name, path, device=device_of(name), **options)


def distinct_feed(spec: Any, n: int, seed: int) -> dict[str, np.ndarray]:
    """A batch of `n` inputs no other call gets: uint8 frames for a fused graph, else float tensors."""
    rng = np.random.default_rng(seed)
    shape = (n, *[d if isinstance(d, int) else s for d, s in zip(spec.shape[1:], SHAPE, strict=True)])
    if spec.dtype == "uint8":
        return {spec.name: rng.integers(0, 256, shape, dtype=np.uint8)}
    return {spec.name: rng.normal(size=shape).astype(np.float32)}


def run_threads(work: Callable[[int], list[tuple[int, Any, float]]], n: int) -> list[Any]:
    """`work(t)` for t in range(THREADS), all started together; each returns (item index, result,
    the caller's wall time in ms) triples. Returns the (result, wall ms) pairs by item index, and
    re-raises the first failure."""
    barrier = threading.Barrier(THREADS)
    got: list[Any] = [None] * n

    def start(t: int) -> None:
        barrier.wait()
        for i, result, wall_ms in work(t):
            got[i] = (result, wall_ms)

    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(start, t) for t in range(THREADS)]:
            future.result()
    return got


@pytest.mark.parametrize(("case", "variant"), THREAD_CASES, ids=THREAD_IDS, indirect=["case"])
def test_one_instance_shared_by_threads(case, artifact, fused_artifact, variant: str):
    """THREADS threads x CALLS distinct inputs each on ONE backend: every call gets exactly the outputs
    the same input gets alone (batches of 1 and of 3, so a fixed-batch model's chunked path runs too),
    and the timings it carries are its own (within the caller's own wall time of the call)."""
    with variant_backend(case, artifact, fused_artifact, variant) as backend:
        spec = backend.input_specs[0]
        feeds = [distinct_feed(spec, 3 if i % 4 == 3 else 1, seed=100 + i) for i in range(THREADS * CALLS)]
        originals = [{k: v.copy() for k, v in feed.items()} for feed in feeds]
        expected = [backend.infer(feed) for feed in feeds]  # one call at a time

        def work(t: int) -> list[tuple[int, Any, float]]:
            done = []
            for i in range(t, len(feeds), THREADS):
                start = time.perf_counter()
                out = backend.infer(feeds[i])
                done.append((i, out, (time.perf_counter() - start) * 1000.0))
            return done

        for _ in range(ROUNDS):
            for i, (out, wall_ms) in enumerate(run_threads(work, len(feeds))):
                assert out.keys() == expected[i].keys()
                for name, value in out.items():
                    assert np.array_equal(value, expected[i][name]), f"call {i}: another call's {name}"
                assert out.infer_ms > 0.0 and out.wait_ms >= 0.0
                assert out.infer_ms + out.wait_ms <= wall_ms + 1e-6, "a timing that is not this call's"
        for feed, original in zip(feeds, originals, strict=True):  # a call never writes into its inputs
            assert all(np.array_equal(feed[k], original[k]) for k in feed)


@pytest.mark.parametrize(("case", "variant"), THREAD_CASES, ids=THREAD_IDS, indirect=["case"])
def test_segmenter_shared_by_threads(case, artifact, fused_artifact, variant: str):
    """The same contract through one `Segmenter`: threads calling it, `predict_batch` and
    `predict_many` at once get the masks of sequential calls, in order, with their own timings."""
    from edgeseg.segmenter import Segmenter

    name, kind = case
    model = fused_artifact(kind) if variant == "fused" else artifact(kind, False)
    mode = "throughput" if variant == "throughput" else "latency"
    device = device_of(name) if device_of(name) != "cpu" else None
    rng = np.random.default_rng(5)
    sizes = [(48, 64), (61, 97), (37, 50), (96, 128)]
    frames = [rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8) for i in range(THREADS * CALLS)]
    with Segmenter(model, backend=name, device=device, mode=mode) as seg:
        expected = [seg(frame).mask for frame in frames]

        def work(t: int) -> list[tuple[int, Any, float]]:
            mine = list(range(t, len(frames), THREADS))
            start = time.perf_counter()
            if t % 3 == 0:
                results = [seg(frames[i]) for i in mine]
            elif t % 3 == 1:
                results = seg.predict_batch([frames[i] for i in mine], batch_size=3)
            else:
                results = list(seg.predict_many(frames[i] for i in mine))
            wall_ms = (time.perf_counter() - start) * 1000.0
            return [(i, result, wall_ms) for i, result in zip(mine, results, strict=True)]

        for _ in range(ROUNDS):
            for i, (result, wall_ms) in enumerate(run_threads(work, len(frames))):
                assert np.array_equal(result.mask, expected[i]), f"frame {i}: another frame's mask"
                t = result.timings
                assert set(t) == {"pre", "wait", "infer", "post", "total"}
                assert t["total"] == pytest.approx(t["pre"] + t["wait"] + t["infer"] + t["post"])
                assert t["total"] <= wall_ms + 1e-6, "a timing that is not this call's"


def test_threads_is_every_backends_option(case, artifact, reference):
    """`threads` is the one thread option callers (the demo) pass to any backend; each spells it for
    its runtime (intra-op threads, INFERENCE_NUM_THREADS, torch's thread count; unused on a GPU)."""
    import torch

    before = torch.get_num_threads()
    try:
        with pytest.raises(InputError, match=r"threads must be a whole number >= 0"):
            create_backend(case[0], artifact(case[1], False), threads=-1)
        device = device_of(case[0])
        with create_backend(case[0], artifact(case[1], False), device=device, threads=1) as backend:
            assert backend.threads == 1
            x = batch(1)
            assert np.abs(backend.infer({"image": x})["logits"] - reference(x)).max() <= TOLERANCE
            if case[0] == "torch":
                assert torch.get_num_threads() == 1
            if case[0] == "onnxruntime":
                assert backend.intra_op_threads == 1
            if case[0] == "openvino":
                assert int(backend._compiled.get_property("INFERENCE_NUM_THREADS")) == 1
            if case[0] == "executorch":  # one pool per process: the last backend loaded sets it
                from executorch.extension.pybindings import _C

                assert _C._threadpool_get_thread_count() == 1
    finally:
        torch.set_num_threads(before)


def test_other_size_refused_when_static_served_when_dynamic(case, artifact):
    with open_backend(case, artifact, False) as backend:
        if backend.input_specs[0].static_dim(2) is None:  # a checkpoint takes any valid size
            assert backend.infer({"image": batch(1, (3, 40, 64))})["logits"].shape[2] == 40
            return
        with pytest.raises(InputError, match=r"has 40 at axis 2 \(height\); the model expects 48"):
            backend.infer({"image": batch(1, (3, 40, 64))})


@pytest.mark.parametrize("damage", ["truncated", "random", "missing"])
def test_corrupt_model_file(case, artifact, tmp_path: Path, damage: str):
    good = artifact(case[1], False)
    for sibling in good.parent.glob(f"{good.stem}.*"):  # the model file (and an IR's .bin)
        shutil.copy(sibling, tmp_path)
    bad = tmp_path / good.name
    if damage == "truncated":
        # An IR's graph reads without its weights: cut the .bin, the file that carries them.
        weights = bad.with_suffix(".bin") if bad.with_suffix(".bin").is_file() else bad
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    elif damage == "random":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    else:
        bad = tmp_path / f"nothing{good.suffix}"
    backend = create_backend(case[0], bad)
    with pytest.raises(InputError, match=re.escape(f"'{bad}'")):
        backend.load()
    assert not backend.is_loaded


# -------------------------------------------------------------------------------- registry and options
def test_listing_backends_imports_nothing():
    code = (
        "import sys; from edgeseg.runtimes import available_backends, registered_backends; "
        "print(available_backends(), registered_backends()); "
        "heavy = [m for m in ('torch', 'onnxruntime', 'openvino') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert {"torch", "onnxruntime", "openvino"} <= set(registered_backends())


def hide(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n in packages else real(n, *a))


def test_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch):
    hide(monkeypatch, "openvino", "torch")
    assert "openvino" not in available_backends() and "torch" not in available_backends()
    with pytest.raises(
        MissingDependencyError, match=r"openvino backend needs .*pip install 'edgeseg\[openvino\]'"
    ):
        get_backend_class("openvino")
    with pytest.raises(
        MissingDependencyError, match=r"torch backend needs the 'torch' package.*pip install torch"
    ):
        get_backend_class("torch")


def test_auto_preference(monkeypatch: pytest.MonkeyPatch):
    installed = available_backends()
    if {"openvino", "onnxruntime"} <= set(installed):
        assert resolve_backend("auto", "onnx") == "openvino"
    hide(monkeypatch, "openvino")
    assert resolve_backend("auto", "onnx") == "onnxruntime"
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgeseg\[openvino\]'"):
        resolve_backend("auto", "openvino")
    hide(monkeypatch, "openvino", "onnxruntime")
    with pytest.raises(MissingDependencyError, match=r"running onnx models .* 'edgeseg\[onnx\]'"):
        resolve_backend("auto", "onnx")
    assert resolve_backend("AUTO", "checkpoint") == "torch"


def test_explicit_backend_must_run_the_kind():
    with pytest.raises(
        InputError, match=r"onnxruntime backend cannot run openvino models; use auto or one of: openvino"
    ):
        resolve_backend("onnxruntime", "openvino")
    with pytest.raises(
        InputError, match=r"unknown backend 'tensorflow'; choose auto or one of: torch, onnxruntime"
    ):
        resolve_backend("tensorflow", "onnx")


# Every target's model-file suffix (from its descriptor, in any letter case) names its kind.
ARTIFACT_NAMES = [("best.pt", "checkpoint"), ("m.pth", "checkpoint"), ("m.XML", "openvino")] + [
    (f"m{t.suffixes[0].upper()}", t.name) for t in TARGETS.values()
]


@pytest.mark.parametrize(("name", "kind"), ARTIFACT_NAMES)
def test_artifact_kind(name: str, kind: str):
    assert artifact_kind(name) == kind


def test_unknown_suffix_is_refused():
    with pytest.raises(InputError, match=r"'model.tflite' is not a model edgeseg can run"):
        artifact_kind("model.tflite")


def test_unknown_option_lists_the_accepted_ones(artifact):
    with pytest.raises(InputError, match=r"does not take option\(s\) workers; it takes: device, providers"):
        create_backend("onnxruntime", artifact("onnx", False), workers=2)


def test_onnxruntime_refuses_a_silent_cpu_fallback(artifact, monkeypatch: pytest.MonkeyPatch):
    """A provider that is in the build but does not start: onnxruntime would run on CPU; we refuse."""
    ort = pytest.importorskip("onnxruntime")
    monkeypatch.setattr(
        ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    backend = create_backend("onnxruntime", artifact("onnx", False), device="cuda")
    with (
        pytest.warns(UserWarning),
        pytest.raises(EdgesegRuntimeError, match=r"could not start CUDAExecutionProvider"),
    ):
        backend.load()


def test_onnxruntime_session_options(artifact, reference):
    pytest.importorskip("onnxruntime")
    path = artifact("onnx", False)
    with create_backend(
        "onnxruntime", path, intra_op_threads=1, inter_op_threads=1, graph_optimization="disable"
    ) as backend:
        x = batch(1)
        assert np.abs(backend.infer({"image": x})["logits"] - reference(x)).max() <= TOLERANCE
    for options, message in [
        ({"graph_optimization": "max"}, r"graph_optimization must be one of disable, basic, extended, all"),
        ({"intra_op_threads": -1}, r"intra_op_threads must be a whole number >= 0"),
        ({"device": "tpu"}, r"takes device cpu, cuda or cuda:N"),
        ({"device": "cpu", "providers": ["CPUExecutionProvider"]}, r"either device or providers"),
    ]:
        with pytest.raises(InputError, match=message):
            create_backend("onnxruntime", path, **options)


def test_openvino_options(artifact):
    pytest.importorskip("openvino")
    path = artifact("openvino", False)
    with create_backend("openvino", path, device="cpu") as backend:
        assert "CPU, f32, LATENCY" in backend.description  # fp32 bundle: f32 despite bf16 hardware
    with create_backend("openvino", path, performance_hint="throughput", num_requests=2) as backend:
        assert backend.infer({"image": batch(3)})["logits"].shape == (3, CLASSES, *SHAPE[1:])
    with pytest.raises(InputError, match=r"OpenVINO device NPU is not available here"):
        create_backend("openvino", path, device="npu").load()
    with pytest.raises(InputError, match=r"unknown OpenVINO device 'tpu'; use one of CPU, GPU, NPU, AUTO"):
        create_backend("openvino", path, device="tpu")
    with pytest.raises(InputError, match=r"performance_hint must be one of LATENCY, THROUGHPUT"):
        create_backend("openvino", path, performance_hint="fast")


def test_torch_refuses_cuda_without_a_device(ckpt_path: Path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(InputError, match=r"device 'cuda' was requested but torch .* sees no CUDA device"):
        create_backend("torch", ckpt_path, device="cuda").load()


# ----------------------------------------------------------------------- precision: asked, run, recorded
# The rule (edgeseg.runtimes.base): fp32 runs fp32; fp16 runs fp16 where the device has it natively,
# else fp32; int8 runs int8 layers and fp32 for the rest; never a lower float precision (bf16) unasked.
ALLOWED_FLOATS = {"fp32": {"fp32"}, "fp16": {"fp16", "fp32"}, "int8": {"fp32"}}
PRECISION_CASES = [
    (name, kind, precision)
    for name, kind in CASES
    for precision in (("fp32",) if kind == "checkpoint" else get_target(kind).precisions)  # what it exports
]


def follows_the_rule(executed: str, precision: str) -> bool:
    """Whether an `executed_precision` text obeys the rule for a model exported at `precision`."""
    parts = executed.split(" (")[0].split("+")
    floats = [p for p in parts if p != "int8"]
    if precision == "int8" and "int8" not in parts:
        return False
    if precision != "int8" and "int8" in parts:
        return False
    return all(p in ALLOWED_FLOATS[precision] for p in floats)


@pytest.mark.parametrize(
    ("name", "kind", "precision"), PRECISION_CASES, ids=[f"{n}-{k}-{p}" for n, k, p in PRECISION_CASES]
)
def test_the_precision_that_runs_follows_the_bundle(
    name: str, kind: str, precision: str, ckpt_path: Path, tiny_bundle: Callable[..., Path]
):
    """Every backend on every bundle kind and precision computes, as read back from the runtime, in
    the precision the rule allows, and the export's parity report records what its check ran. On a
    CPU with native bf16 an fp16 or int8 model must still not run in bf16."""
    try:
        get_backend_class(name)
    except MissingDependencyError as exc:
        pytest.skip(str(exc))
    if kind not in BUILDABLE:
        pytest.skip(f"no {kind} artifact can be built on this machine")
    if kind == "checkpoint":
        model, parity = ckpt_path, None
    else:
        from edgeseg.manifest import read_manifest

        if kind == "openvino" and precision == "int8":
            pytest.importorskip("nncf", reason="pip install 'edgeseg[nncf]'")
        bundle = tiny_bundle(kind, precision)
        manifest = read_manifest(bundle)
        model, parity = bundle / manifest.model_file, manifest.parity
    if name == "tensorrt" and precision == "int8" and kind == "onnx":
        pytest.skip("TensorRT refuses ONNX Runtime's int8 graph (export --target tensorrt)")
    with create_backend(name, model, device=device_of(name)) as backend:
        executed = backend.executed_precision
        assert follows_the_rule(executed, precision), f"{name} runs a {precision} {kind} model in {executed}"
    if parity is not None:
        assert follows_the_rule(parity["executed_precision"], precision), parity["executed_precision"]


CPUS = {  # OPTIMIZATION_CAPABILITIES of three kinds of CPU, as OpenVINO's CPU plugin reports them
    "avx2": frozenset({"FP32", "INT8", "BIN", "EXPORT_IMPORT"}),
    "avx512-bf16": frozenset({"FP32", "BF16", "INT8", "BIN", "EXPORT_IMPORT"}),
    "amx-fp16": frozenset({"FP32", "BF16", "FP16", "INT8", "BIN", "EXPORT_IMPORT"}),
}


@pytest.mark.parametrize("cpu", list(CPUS))
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("kind", ["onnx", "openvino"])
def test_openvino_asks_for_the_bundles_precision_on_any_cpu(
    kind: str, precision: str, cpu: str, tiny_bundle: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
):
    """The INFERENCE_PRECISION_HINT OpenVINO gets, with the CPU's capabilities faked (so the test says
    the same on every machine): f16 only for an fp16 model on a CPU with native f16, f32 otherwise
    (bf16 never unasked), and what the caller asks for when it asks."""
    ov = pytest.importorskip("openvino")
    if kind == "openvino" and precision == "int8":
        pytest.importorskip("nncf", reason="pip install 'edgeseg[nncf]'")
    import edgeseg.targets.openvino.backend as openvino_backend
    from edgeseg.manifest import read_manifest

    bundle = tiny_bundle(kind, precision)
    path = bundle / read_manifest(bundle).model_file
    asked: list[dict[str, Any]] = []
    compile_model = ov.Core.compile_model

    def spy(core: Any, model: Any, device: str, config: dict[str, Any] | None = None) -> Any:
        asked.append(dict(config or {}))
        return compile_model(core, model, device, config)

    monkeypatch.setattr(openvino_backend, "device_capabilities", lambda core, device: CPUS[cpu])
    monkeypatch.setattr(ov.Core, "compile_model", spy)
    want = "f16" if precision == "fp16" and "FP16" in CPUS[cpu] else "f32"
    with create_backend("openvino", path, device="cpu") as backend:
        assert asked[-1]["INFERENCE_PRECISION_HINT"] == want
        assert f"CPU, {want}, LATENCY" in backend.description
    with create_backend("openvino", path, device="cpu", inference_precision="bf16"):
        assert asked[-1]["INFERENCE_PRECISION_HINT"] == "bf16"  # asked for explicitly: allowed


class _Type:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_type_name(self) -> str:
        return self.name


class _Port:
    def __init__(self, element: str) -> None:
        self.element = element

    def get_element_type(self) -> _Type:
        return _Type(self.element)


class _Info:
    def __init__(self, text: str) -> None:
        self.text = text

    def astype(self, _: type) -> str:
        return self.text


class _Layer:
    """One layer of a runtime graph as OpenVINO reports it: type, activation and weight precisions."""

    def __init__(self, kind: str, activations: str, weights: str) -> None:
        self.kind, self.ports = kind, [_Port(activations), _Port(weights)]

    def get_rt_info(self) -> dict[str, _Info]:
        return {"layerType": _Info(self.kind)}

    def get_input_size(self) -> int:
        return 2

    def input(self, i: int) -> _Port:
        return self.ports[i]


class _Compiled:
    def __init__(self, layers: list[_Layer], hint: str = "f32") -> None:
        self.layers, self.hint = layers, hint

    def get_runtime_model(self) -> Any:
        return type("RuntimeModel", (), {"get_ordered_ops": lambda _: self.layers})()

    def get_property(self, name: str) -> _Type:
        assert name == "INFERENCE_PRECISION_HINT"
        return _Type(self.hint)


@pytest.mark.parametrize(
    ("layers", "stored", "hint", "recorded"),
    [
        ([("Convolution", "bf16", "bf16"), ("Deconvolution", "bf16", "bf16")], "fp32", "bf16", "bf16"),
        ([("Convolution", "f32", "f32")] * 3, "fp16", "f32", "fp32 (fp16 weights upcast)"),
        # The layers' own weight inputs say so even where the stored constants do not.
        (
            [("Convolution", "f32", "f16"), ("Deconvolution", "f32", "f16")],
            "fp32",
            "f32",
            "fp32 (fp16 weights upcast)",
        ),
        ([("Convolution", "f16", "f16")], "fp16", "f16", "fp16"),
        ([("Convolution", "u8", "i8"), ("Deconvolution", "f32", "f32")], "fp32", "f32", "int8+fp32"),
        ([("Convolution", "u8", "i8"), ("Deconvolution", "bf16", "bf16")], "fp32", "bf16", "int8+bf16"),
        ([("Eltwise", "f32", "f32")], "fp32", "bf16", "bf16"),  # no compute layer: the hint read back
    ],
    ids=["bf16", "fp16-upcast", "fp16-upcast-in-layers", "fp16", "int8", "int8-bf16", "no-compute-layers"],
)
def test_openvino_records_what_the_compiled_model_computes_in(
    artifact, layers: list[tuple[str, str, str]], stored: str, hint: str, recorded: str
):
    """`executed_precision` is read from the compiled model's runtime graph (the CPU plugin's layers
    and the precision of their activations), so a CPU that ran bf16 anyway would be recorded as such;
    the runtime graphs of other CPUs are stood in for here."""
    pytest.importorskip("openvino")
    with create_backend("openvino", artifact("openvino", False)) as backend:
        backend._compiled, backend._stored = _Compiled([_Layer(*layer) for layer in layers], hint), stored
        assert backend._executed_precision() == recorded


def test_onnxruntime_reads_the_precision_from_its_optimised_graph():
    """The operators of the graph ONNX Runtime runs decide: float kernels by their weights' type
    (after ONNX Runtime's casts), integer kernels as int8, weights dequantized in the graph as fp32."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    from edgeseg.targets.onnx.backend import _graph_precisions

    def graph(nodes: list[Any], weights: dict[str, int]) -> Any:
        inits = [helper.make_tensor(n, t, [1], [0]) for n, t in weights.items()]
        return helper.make_graph(nodes, "g", [], [], initializer=inits)

    conv16 = graph([helper.make_node("Conv", ["x", "w"], ["y"])], {"w": TensorProto.FLOAT16})
    qconv = helper.make_node("QLinearConv", ["x", "s", "z", "w", "ws", "wz", "ys", "yz"], ["q"])
    mixed = graph(
        [
            qconv,
            helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"]),
            helper.make_node("ConvTranspose", ["q", "wd"], ["y"]),
        ],
        {"w": TensorProto.INT8, "wq": TensorProto.INT8},
    )
    assert _graph_precisions(conv16) == {"fp16": 1}
    assert _graph_precisions(mixed) == {"int8": 1, "fp32": 1}


def test_onnxruntime_cuda_runs_fp32_without_tf32(artifact):
    """ONNX Runtime's CUDA provider computes float32 convolutions in TF32 unless use_tf32 is 0."""
    pytest.importorskip("onnxruntime")
    path = artifact("onnx", False)
    assert create_backend("onnxruntime", path, device="cuda:1").providers == [
        ("CUDAExecutionProvider", {"device_id": 1, "use_tf32": 0})
    ]
    mine = create_backend(
        "onnxruntime", path, providers=[("CUDAExecutionProvider", {"use_tf32": 1}), "CPUExecutionProvider"]
    )
    assert mine.providers == [("CUDAExecutionProvider", {"use_tf32": 1}), "CPUExecutionProvider"]  # asked for


# ---------------------------------------------------------------------- the base class's thread contract
class SleepyBackend(Backend):
    """A backend of the test's own: `_infer` sleeps x[0, 0] ms and returns 2x, noting how many calls
    overlap. Not reentrant (the default), so the base class must run its calls one at a time."""

    name = "sleepy"

    def __init__(self, path: Path, **options: Any) -> None:
        super().__init__(path, **options)
        self.lock = threading.Lock()
        self.running = self.most_at_once = 0
        self.log: list[str] = []
        self.gate: threading.Event | None = None  # set by a test: _infer waits for it

    def _load(self) -> None:
        self.log.append("load")

    def _discover_specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        return [TensorSpec("x", ("batch", 1))], [TensorSpec("y", ("batch", 1))]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            if self.gate is not None:
                assert self.gate.wait(10)
            time.sleep(float(feed["x"][0, 0]) / 1000.0)
            return {"y": feed["x"] * 2}
        finally:
            with self.lock:
                self.running -= 1
            self.log.append("infer done")

    def _close(self) -> None:
        self.log.append("close")

    def _executed_precision(self) -> str:
        return "fp32"


class OverlappingBackend(SleepyBackend):
    """The same, declared reentrant: its calls must overlap (each waits for another to be inside)."""

    name = "overlapping"
    reentrant = True

    def _load(self) -> None:
        self.meet = threading.Barrier(2, timeout=10)

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.meet.wait()  # a BrokenBarrierError if the base class ran the calls one at a time
        return super()._infer(feed)


def test_base_class_runs_a_non_reentrant_backend_one_call_at_a_time(tmp_path: Path):
    """A backend that declares nothing is safe: calls never overlap, each gets its own result, and
    each call's `infer_ms` is its own run (a 1 ms call behind a 300 ms one reports the queue as
    `wait_ms`, not as its run); `last_infer_ms` is the calling thread's own call."""
    (tmp_path / "m").write_bytes(b"")
    backend = SleepyBackend(tmp_path / "m").load()
    sleeps = [300.0 if t == 0 else 1.0 for t in range(THREADS)]
    mine: dict[int, float | None] = {}

    def work(t: int) -> list[tuple[int, Any, float]]:
        while t and not backend.running:  # the long call goes first, the short ones queue behind it
            time.sleep(0.001)
        start = time.perf_counter()
        out = backend.infer({"x": np.full((1, 1), sleeps[t], np.float32)})
        mine[t] = backend.last_infer_ms
        return [(t, out, (time.perf_counter() - start) * 1000.0)]

    got = run_threads(work, THREADS)
    assert backend.most_at_once == 1
    for t, (out, wall_ms) in enumerate(got):
        assert out["y"][0, 0] == 2 * sleeps[t]
        assert sleeps[t] <= out.infer_ms < (300.0 if t else 10_000.0)
        assert out.infer_ms + out.wait_ms <= wall_ms + 1e-6 and mine[t] == out.infer_ms
    assert max(out.wait_ms for out, _ in got[1:]) > 100.0  # the queue behind the long call
    backend.close()


def test_base_class_lets_a_reentrant_backend_overlap(tmp_path: Path):
    (tmp_path / "m").write_bytes(b"")
    with OverlappingBackend(tmp_path / "m") as backend:

        def work(t: int) -> list[tuple[int, Any, float]]:
            return [(t, backend.infer({"x": np.full((1, 1), t, np.float32)}), 0.0)] if t < 2 else []

        got = run_threads(work, THREADS)  # both calls passed the barrier inside _infer: they overlapped
        assert [g[0]["y"][0, 0] for g in got[:2]] == [0.0, 2.0]


def test_close_waits_for_calls_in_flight_and_refuses_later_ones(tmp_path: Path):
    (tmp_path / "m").write_bytes(b"")
    backend = SleepyBackend(tmp_path / "m").load()
    backend.gate = threading.Event()
    with ThreadPoolExecutor(2) as pool:
        call = pool.submit(backend.infer, {"x": np.zeros((1, 1), np.float32)})
        while not backend.running:
            time.sleep(0.001)
        closing = pool.submit(backend.close)
        time.sleep(0.1)
        assert not closing.done() and backend.log == ["load"]  # the call is still running
        with pytest.raises(EdgesegRuntimeError, match="was closed"):
            backend.infer({"x": np.zeros((1, 1), np.float32)})
        backend.gate.set()
        assert call.result()["y"].shape == (1, 1)
        closing.result()
    assert backend.log == ["load", "infer done", "close"]
