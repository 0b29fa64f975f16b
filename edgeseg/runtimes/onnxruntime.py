"""The ONNX Runtime backend: runs a `.onnx` file with explicit execution providers.

Providers are never a silent choice. onnxruntime itself only warns when a requested provider is not in
the installed build and then runs on CPU, and it also drops to CPU when a provider is in the build
but fails to start (missing CUDA libraries): here the first is an InputError and the second an
EdgesegRuntimeError, checked against `session.get_providers()` after the session is created.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg._guards import sequence_arg
from edgeseg.errors import EdgesegRuntimeError, InputError, first_line
from edgeseg.manifest import Manifest, manifest_from_onnx_metadata
from edgeseg.runtimes.base import Backend, Dim, TensorSpec

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


def _device_providers(device: str) -> list[ProviderSpec]:
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return [_CPU]
    if kind == "cuda" and (not index or index.isdigit()):
        return [("CUDAExecutionProvider", {"device_id": int(index or 0)})]
    raise InputError(
        f"the onnxruntime backend takes device cpu, cuda or cuda:N (or providers=); got '{device}'"
    )


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
        self.providers: list[ProviderSpec] = (
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
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.parallel, thread_name_prefix="edgeseg-ort")
        parts = list(self._executor.map(self._infer, chunks))
        return {name: np.concatenate([p[name] for p in parts]) for name in self._output_names}

    def _close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown()
            self._executor = None
        self._session = None

    def _embedded_manifest(self) -> Manifest | None:
        props = self._session.get_modelmeta().custom_metadata_map
        return manifest_from_onnx_metadata(
            props, model_file=self.path.name, where=f"the edgeseg metadata of '{self.path}'"
        )

    def _describe(self) -> str:
        active = self._session.get_providers() if self._session is not None else self.provider_names
        runs = f", {self.parallel} parallel runs" if self.parallel > 1 else ""
        return ", ".join(active) + runs


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
