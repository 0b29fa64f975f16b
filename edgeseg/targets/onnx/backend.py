"""The ONNX Runtime backend: runs a `.onnx` file with explicit execution providers.

Providers are never a silent choice. onnxruntime itself only warns when a requested provider is not in
the installed build and then runs on CPU, and it also drops to CPU when a provider is in the build
but fails to start (missing CUDA libraries): here the first is an InputError and the second an
EdgesegRuntimeError, checked against `session.get_providers()` after the session is created.

Precision is the graph's own: ONNX Runtime has no precision option, except that its CUDA provider
computes float32 convolutions in TF32 on Ampere and later GPUs unless `use_tf32` is 0, which the
backend sets (unless the caller's provider options say otherwise). `executed_precision` is read back
from the graph ONNX Runtime itself runs after its optimisations (`optimized_model_filepath`, on the
same providers and settings): on x86 CPUs the CPU provider has no fp16 convolution kernels, so it
casts an fp16 graph's weights to float32 once and computes every layer in fp32 ("fp32 (fp16
weights upcast)", bit-identical to the fp32 graph with fp16-rounded weights); an int8 QDQ graph runs
its quantized layers in int8 and the layers left in float (ConvTranspose) in fp32 ("int8+fp32").

Threads: `run` on one session is thread-safe (ONNX Runtime documents it), so the backend is
`reentrant`; the parallel runs of a batch share one executor made at load.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg._guards import sequence_arg
from edgeseg.errors import EdgesegRuntimeError, InputError, first_line
from edgeseg.manifest import Manifest, manifest_from_onnx_metadata
from edgeseg.runtimes.base import Backend, Dim, TensorSpec, summarize_precisions

__all__ = ["GRAPH_OPTIMIZATION_LEVELS", "OnnxRuntimeBackend"]

ProviderSpec = str | tuple[str, dict[str, Any]]

# graph_optimization= values -> onnxruntime.GraphOptimizationLevel members.
GRAPH_OPTIMIZATION_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_CPU = "CPUExecutionProvider"
# onnxruntime's tensor type strings -> numpy dtype names.
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(bool)": "bool",
}
# onnxruntime's errors that mean "this file is not a loadable model" (the user's to fix).
_FILE_ERRORS = ("InvalidProtobuf", "InvalidGraph", "NoSuchFile", "NoModel", "Fail", "NotImplemented")
_CUDA = "CUDAExecutionProvider"
# Operators of an optimised graph that carry the arithmetic: integer kernels, and float ones whose
# weights' type is the type they compute in (ONNX Runtime casts weights for kernels it lacks).
_INT8_OPS = {
    "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul", "QGemm", "QAttention",
    "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QLinearConvTranspose",
}  # fmt: skip
_FLOAT_OPS = {
    "Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedGemm", "FusedMatMul", "NhwcFusedConv",
}  # fmt: skip
_FLOAT_TYPES = {1: "fp32", 10: "fp16", 16: "bf16"}  # onnx.TensorProto FLOAT, FLOAT16, BFLOAT16


def _device_providers(device: str) -> list[ProviderSpec]:
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return [_CPU]
    if kind == "cuda" and (not index or index.isdigit()):
        return [(_CUDA, {"device_id": int(index or 0)})]
    raise InputError(
        f"the onnxruntime backend takes device cpu, cuda or cuda:N (or providers=); got '{device}'"
    )


def _without_tf32(providers: list[ProviderSpec]) -> list[ProviderSpec]:
    """CUDA entries with use_tf32=0 unless the caller set it: fp32 means fp32 (the CUDA provider
    would otherwise round a float32 graph's convolutions to TF32's 10-bit mantissa on Ampere+)."""
    out: list[ProviderSpec] = []
    for p in providers:
        if p == _CUDA or (isinstance(p, tuple) and p[0] == _CUDA):
            options = dict(p[1]) if isinstance(p, tuple) else {}
            options.setdefault("use_tf32", 0)
            out.append((_CUDA, options))
        else:
            out.append(p)
    return out


class OnnxRuntimeBackend(Backend):
    """A `.onnx` model run by ONNX Runtime.

    Args:
        path: the `.onnx` file.
        device: "cpu" (default) or "cuda[:N]": shorthand for `providers`.
        providers: execution providers in priority order, names or (name, options) pairs, e.g.
            ["CUDAExecutionProvider", "CPUExecutionProvider"]. Every one must be available and start.
        intra_op_threads: threads within an operator (None: onnxruntime's default, the physical cores).
        inter_op_threads: threads across operators (None: onnxruntime's default).
        graph_optimization: "disable", "basic", "extended" or "all" (default).
        log_level: onnxruntime's log severity (0 verbose .. 4 fatal); default 3, errors only.
        threads: the common thread option of every backend; here intra_op_threads, unless that is given.
        parallel: runs of one session in flight at once for a batch (1: one run for the whole
            batch, default). With more, a batch is split along axis 0 (into the fixed batch size, or
            into `parallel` parts) and the parts run concurrently (ONNX Runtime's `run` is
            thread-safe and releases the GIL); pair it with threads=1 for throughput.
    """

    name = "onnxruntime"
    package = "onnxruntime"
    reentrant = True  # InferenceSession.run is thread-safe

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str | None = None,
        providers: Sequence[ProviderSpec] | None = None,
        intra_op_threads: int | None = None,
        inter_op_threads: int | None = None,
        graph_optimization: str = "all",
        log_level: int = 3,
        threads: int | None = None,
        parallel: int = 1,
    ) -> None:
        super().__init__(path, threads=threads)
        if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
            raise InputError(f"parallel must be a whole number >= 1; got {parallel!r}")
        self.parallel = parallel
        self._executor: ThreadPoolExecutor | None = None
        if providers is not None and device is not None:
            raise InputError("pass either device or providers to the onnxruntime backend, not both")
        if providers is not None and not providers:
            raise InputError("providers must name at least one execution provider")
        self.providers: list[ProviderSpec] = _without_tf32(
            sequence_arg(providers, "providers", 'providers=["CPUExecutionProvider"]')
            if providers is not None
            else _device_providers(str(device or "cpu").lower())
        )
        for name, value in (("intra_op_threads", intra_op_threads), ("inter_op_threads", inter_op_threads)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise InputError(f"{name} must be a whole number >= 0 (0: the default); got {value!r}")
        if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise InputError(
                f"graph_optimization must be one of {', '.join(GRAPH_OPTIMIZATION_LEVELS)}; "
                f"got '{graph_optimization}'"
            )
        if intra_op_threads is None:
            intra_op_threads = self.threads
        self.intra_op_threads, self.inter_op_threads = intra_op_threads, inter_op_threads
        self.graph_optimization, self.log_level = graph_optimization, log_level
        self._session: Any = None
        self._output_names: list[str] = []

    @property
    def provider_names(self) -> list[str]:
        """The requested providers' names, in priority order."""
        return [p if isinstance(p, str) else p[0] for p in self.providers]

    def _session_options(self, ort: Any) -> Any:
        options = ort.SessionOptions()
        if self.intra_op_threads is not None:
            options.intra_op_num_threads = self.intra_op_threads
        if self.inter_op_threads is not None:
            options.inter_op_num_threads = self.inter_op_threads
        level = GRAPH_OPTIMIZATION_LEVELS[self.graph_optimization]
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        options.log_severity_level = self.log_level
        return options

    def _load(self) -> None:
        import onnxruntime as ort
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_errors

        available = ort.get_available_providers()
        unavailable = [name for name in self.provider_names if name not in available]
        if unavailable:
            raise InputError(
                f"onnxruntime provider {', '.join(unavailable)} is not available in this onnxruntime "
                f"{ort.__version__} build (available: {', '.join(available)}); install the build that has "
                "it (e.g. onnxruntime-gpu for CUDA) or choose another device or provider"
            )
        file_errors = tuple(getattr(ort_errors, n) for n in _FILE_ERRORS if hasattr(ort_errors, n))
        try:
            session = ort.InferenceSession(
                str(self.path), sess_options=self._session_options(ort), providers=self.providers
            )
        except file_errors as exc:
            raise InputError(
                f"cannot load ONNX model '{self.path}' (corrupt or truncated?): {first_line(exc)}"
            ) from None
        except Exception as exc:  # provider start-up failures and other pybind errors
            raise EdgesegRuntimeError(
                f"onnxruntime could not create a session for '{self.path}' with "
                f"{', '.join(self.provider_names)}: {first_line(exc)}"
            ) from None
        # onnxruntime falls back to CPU when a provider fails to start; refuse to run on the fallback.
        dropped = [name for name in self.provider_names if name not in session.get_providers()]
        if dropped:
            raise EdgesegRuntimeError(
                f"onnxruntime could not start {', '.join(dropped)} for '{self.path}' (it would run on "
                f"{', '.join(session.get_providers())} instead); check that provider's libraries "
                "(e.g. CUDA/cuDNN for CUDAExecutionProvider) or request another device"
            )
        self._refuse_nonfinite(_initializers(self.path))
        self._session = session
        self._output_names = [o.name for o in session.get_outputs()]
        if self.parallel > 1:  # made here, not at the first batch: two threads' first batches would race
            self._executor = ThreadPoolExecutor(self.parallel, thread_name_prefix="edgeseg-ort")

    def _discover_specs(self) -> tuple[Sequence[TensorSpec], Sequence[TensorSpec]]:
        def spec(arg: Any) -> TensorSpec:
            shape: tuple[Dim, ...] = tuple(d if isinstance(d, (int, str)) else None for d in arg.shape)
            return TensorSpec(arg.name, shape, _DTYPES.get(arg.type, arg.type))

        return (
            [spec(a) for a in self._session.get_inputs()],
            [spec(a) for a in self._session.get_outputs()],
        )

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._session.run(self._output_names, feed)
        return dict(zip(self._output_names, outputs, strict=True))

    def _run(self, feed: dict[str, np.ndarray], batch: int | None) -> dict[str, np.ndarray]:
        fixed = self._fixed_batch()
        if self.parallel <= 1 or batch is None or batch <= (fixed or 1):
            return super()._run(feed, batch)
        step = fixed or -(-batch // self.parallel)
        # Slices along axis 0 of C-contiguous arrays are C-contiguous: no copies.
        chunks = [{k: v[i : i + step] for k, v in feed.items()} for i in range(0, batch, step)]
        assert self._executor is not None, "made at load when parallel > 1"
        parts = list(self._executor.map(self._infer, chunks))
        return {name: np.concatenate([p[name] for p in parts]) for name in self._output_names}

    def _close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        self._session = None

    def _executed_precision(self) -> str:
        """Read back from the graph ONNX Runtime runs: a second session with the same providers and
        options writes its optimised graph to a temporary folder, whose compute operators' weight
        types are the types their kernels take (see the module notes). Needs the onnx package."""
        if importlib.util.find_spec("onnx") is None:
            return "unknown (install onnx to read it back)"
        import onnx
        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="edgeseg-ort-") as folder:
            options = self._session_options(ort)
            options.optimized_model_filepath = str(Path(folder) / "optimized.onnx")
            try:
                ort.InferenceSession(str(self.path), sess_options=options, providers=self.providers)
                optimized = onnx.load(options.optimized_model_filepath)
            except Exception as exc:  # a provider that cannot write its graph (a compiled one)
                return f"unknown (onnxruntime did not give its optimised graph: {first_line(exc)})"
        ran = _graph_precisions(optimized.graph)
        stored = _graph_precisions(onnx.load(str(self.path), load_external_data=False).graph)
        upcast = next((p for p in ("fp16", "bf16") if stored.get(p) and not ran.get(p)), None)
        return summarize_precisions(ran, upcast_from=upcast)

    def _embedded_manifest(self) -> Manifest | None:
        props = self._session.get_modelmeta().custom_metadata_map
        return manifest_from_onnx_metadata(
            props, model_file=self.path.name, where=f"the edgeseg metadata of '{self.path}'"
        )

    def _describe(self) -> str:
        active = self._session.get_providers() if self._session is not None else self.provider_names
        runs = f", {self.parallel} parallel runs" if self.parallel > 1 else ""
        return ", ".join(active) + runs


def _graph_precisions(graph: Any) -> Counter[str]:
    """{precision: count} of an ONNX graph's compute operators: int8 for integer kernels, else the
    type of the weight (second input) a float operator takes."""
    types = {t.name: t.data_type for t in graph.initializer}
    for node in graph.node:  # weights that come out of a node: DequantizeLinear gives float32, Cast its `to`
        if node.op_type == "DequantizeLinear":
            types[node.output[0]] = 1
        elif node.op_type == "Cast":
            types[node.output[0]] = next((a.i for a in node.attribute if a.name == "to"), 0)
    found: Counter[str] = Counter()
    for node in graph.node:
        if node.op_type in _INT8_OPS:
            found["int8"] += 1
        elif node.op_type in _FLOAT_OPS and len(node.input) > 1:
            found[_FLOAT_TYPES.get(types.get(node.input[1], 0), "fp32")] += 1
    return found


def _initializers(path: Path) -> Iterator[tuple[str, np.ndarray]]:
    """The graph's weights (initializers and Constant nodes), read with the onnx package when it is
    installed (onnxruntime has no API for them); nothing without it."""
    if importlib.util.find_spec("onnx") is None:
        return
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    for t in graph.initializer:
        yield t.name, numpy_helper.to_array(t)
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.type == onnx.AttributeProto.TENSOR:
                yield node.output[0], numpy_helper.to_array(attr.t)


def peak_runner(model: bytes, x: np.ndarray, precision: str) -> tuple[Callable[[], object], str] | None:
    """(a call of the benchmark's ceiling graph `model` on ONNX Runtime's CPU provider at `precision`,
    the kernels: ONNX Runtime does not name them), or None for fp16 and bf16, which the CPU provider
    computes in fp32 on x86 (no peak of theirs to measure)."""
    if precision not in ("fp32", "int8"):
        return None
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return (lambda: session.run(None, {name: x})), ""
