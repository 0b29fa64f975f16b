"""TensorRT runs on the GPU it was asked for: every TensorRT call happens with that device selected.

No GPU here, so torch.cuda's device selection and the tensorrt module are fakes that write one
journal: "select N" / "restore N" when the current device changes, "<object>.<call> @N" for each
TensorRT call with the device current at that moment. The tests build an engine and load and run
one on cuda:1 and read the journal.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest

INPUT, OUTPUT = (1, 3, 8, 8), (1, 2, 8, 8)


class FakeCuda:
    """torch.cuda as seen by edgeseg's TensorRT code: two GPUs, device 0 current."""

    def __init__(self) -> None:
        self.current = 0
        self.journal: list[str] = []

    @contextmanager
    def device(self, index: int) -> Iterator[None]:
        previous, self.current = self.current, index
        self.journal.append(f"select {index}")
        try:
            yield
        finally:
            self.current = previous
            self.journal.append(f"restore {previous}")

    def record(self, call: str) -> None:
        self.journal.append(f"{call} @{self.current}")

    def trt_calls(self) -> list[str]:
        return [e for e in self.journal if "@" in e]


class FakeObject:
    """A TensorRT object: keyword callables become recorded methods, other keywords attributes."""

    def __init__(self, cuda: FakeCuda, kind: str, **members: Any) -> None:
        self._cuda, self._kind = cuda, kind
        for name, value in members.items():
            setattr(self, name, self._method(cuda, f"{kind}.{name}", value) if callable(value) else value)

    def __del__(self) -> None:  # TensorRT frees device memory when its objects go
        self._cuda.record(f"{self._kind} freed")

    @staticmethod
    def _method(cuda: FakeCuda, call: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def method(*args: Any, **kwargs: Any) -> Any:
            cuda.record(call)
            return fn(*args, **kwargs)

        return method


def fake_tensorrt(cuda: FakeCuda) -> types.ModuleType:
    """The parts of the tensorrt module the builder and the runner use, each call recorded."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.3.0"
    enum = types.SimpleNamespace

    class ILogger:
        Severity = enum(INTERNAL_ERROR=0, ERROR=1)

        def __init__(self, *args: Any) -> None:
            pass

    class IProgressMonitor:
        def __init__(self) -> None:
            pass

    def obj(kind: str, **members: Any) -> Callable[..., FakeObject]:
        def make(*args: Any) -> FakeObject:
            cuda.record(kind)
            return FakeObject(cuda, kind, **members)

        return make

    shapes = {"image": INPUT, "logits": OUTPUT}
    context = obj("context", set_input_shape=lambda n, s: True, set_tensor_address=lambda n, p: None,
                  get_tensor_shape=shapes.__getitem__, execute_async_v3=lambda stream: True)  # fmt: skip
    engine = obj("engine", num_io_tensors=2, get_tensor_name=["image", "logits"].__getitem__,
                 get_tensor_shape=shapes.__getitem__, get_tensor_dtype=lambda n: "float32",
                 get_tensor_mode=lambda n: "in" if n == "image" else "out",
                 create_execution_context=lambda: context())  # fmt: skip
    trt.Runtime = obj("Runtime", deserialize_cuda_engine=lambda blob: engine())
    builder = obj(
        "Builder",
        create_network=lambda flags: obj("network")(),
        create_builder_config=lambda: obj("config", set_memory_pool_limit=lambda pool, size: None,
                                          add_optimization_profile=lambda p: 0, clear_flag=lambda f: None)(),
        create_optimization_profile=lambda: obj("profile", set_shape=lambda *shapes: None)(),
        build_serialized_network=lambda network, config: b"plan",
    )  # fmt: skip
    trt.Builder = builder
    trt.OnnxParser = obj("OnnxParser", parse_from_file=lambda path: True, num_errors=0)
    trt.Logger = type("Logger", (ILogger,), {"ERROR": 1})
    trt.ILogger, trt.IProgressMonitor = ILogger, IProgressMonitor
    trt.NetworkDefinitionCreationFlag = enum(STRONGLY_TYPED=0)
    trt.MemoryPoolType = enum(WORKSPACE=0)
    trt.BuilderFlag = enum(TF32=0, VERSION_COMPATIBLE=1)
    trt.TensorIOMode = enum(INPUT="in", OUTPUT="out")
    trt.nptype = lambda dtype: np.dtype(dtype).type
    return trt


@pytest.fixture
def cuda(monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
    """Two fake GPUs in torch.cuda, a fake tensorrt module, CUDA tensors made on the CPU."""
    import torch

    fake = FakeCuda()
    for name, value in {
        "is_available": lambda: True,
        "device_count": lambda: 2,
        "get_device_capability": lambda index: (8, 9),
        "get_device_name": lambda index: f"Fake GPU {index}",
        "device": fake.device,
        "Stream": lambda device: types.SimpleNamespace(cuda_stream=7, synchronize=lambda: None),
        "stream": lambda stream: nullcontext(),
    }.items():
        monkeypatch.setattr(torch.cuda, name, value)
    # The fake engine writes nothing into its output buffers: zeros, not whatever memory held (a NaN
    # there is rightly refused by the output check).
    zeros = torch.zeros
    monkeypatch.setattr(torch, "empty", lambda *a, device=None, pin_memory=False, **k: zeros(*a, **k))
    monkeypatch.setitem(sys.modules, "tensorrt", fake_tensorrt(fake))
    return fake


def assert_all_on(cuda: FakeCuda, index: int, first: str, last: str) -> None:
    """Every TensorRT call ran with `index` current, inside one selection, `first` first and
    `last` last (freeing excepted: the order objects go in is Python's)."""
    calls = cuda.trt_calls()
    used = [c for c in calls if " freed @" not in c]
    assert used[0] == f"{first} @{index}" and used[-1] == f"{last} @{index}", calls
    assert all(c.endswith(f"@{index}") for c in calls), calls
    start, end = cuda.journal.index(calls[0]), cuda.journal.index(calls[-1])
    assert f"select {index}" in cuda.journal[:start]
    assert "restore 0" in cuda.journal[end:] and cuda.current == 0  # the caller's device is back


def test_build_selects_the_device_it_builds_for(cuda: FakeCuda, tmp_path: Path):
    from edgeseg.targets.tensorrt.build import Profile, build_engine

    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"graph")
    profile = Profile("image", INPUT, INPUT, INPUT)
    engine, record = build_engine(onnx, tmp_path, precision="fp32", profile=profile, device_index=1)
    assert engine.read_bytes() == b"plan" and record["gpu"] == "Fake GPU 1"
    assert_all_on(cuda, 1, "Builder", "Builder.build_serialized_network")
    assert {"Builder freed @1", "network freed @1", "config freed @1"} <= set(cuda.journal)
    assert "config.clear_flag @1" in cuda.journal  # fp32: TF32 off, on device 1 like the rest


def test_load_and_infer_run_on_the_selected_device(cuda: FakeCuda, tmp_path: Path):
    from edgeseg.targets.tensorrt.runner import TensorRTBackend

    plan = tmp_path / "model.engine"
    plan.write_bytes(b"plan")
    with TensorRTBackend(plan, device="cuda:1") as backend:
        assert_all_on(cuda, 1, "Runtime", "engine.get_tensor_mode")
        loaded = list(cuda.journal)
        assert loaded.index("Runtime.deserialize_cuda_engine @1") < loaded.index(
            "engine.create_execution_context @1"
        )
        cuda.journal.clear()
        out = backend.infer({"image": np.ones(INPUT, np.float32)})
        assert out["logits"].shape == OUTPUT
        assert_all_on(cuda, 1, "context.set_input_shape", "context.execute_async_v3")
        assert cuda.journal[0] == "select 1"
        cuda.journal.clear()
    # Closing frees the context and the engine with their device current.
    assert cuda.journal[0] == "select 1" and cuda.journal[-1] == "restore 0"
    assert {"context freed @1", "engine freed @1", "Runtime freed @1"} <= set(cuda.journal), cuda.journal


def test_the_default_device_is_cuda_0(cuda: FakeCuda, tmp_path: Path):
    from edgeseg.targets.tensorrt.runner import TensorRTBackend

    plan = tmp_path / "model.engine"
    plan.write_bytes(b"plan")
    cuda.current = 1  # whatever the caller had selected, "cuda" means cuda:0
    with TensorRTBackend(plan) as backend:
        backend.infer({"image": np.zeros(INPUT, np.float32)})
    assert cuda.trt_calls() and all(c.endswith("@0") for c in cuda.trt_calls())
