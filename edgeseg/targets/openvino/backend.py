"""The OpenVINO backend: runs an IR (`.xml` + `.bin`) or a `.onnx` file on CPU, GPU, NPU or AUTO.

Precision: OpenVINO's CPU plugin computes in bf16 on CPUs with AVX512-BF16/AMX and its GPU plugin in
f16 unless told otherwise, which alone moves a U-Net's logits by ~2e-3 (and an fp16 model's masks by
more than fp16 itself does). So on CPU and GPU the backend always sets `INFERENCE_PRECISION_HINT` from
the precision the model's edgeseg metadata declares (`precision_hint`): fp32 -> f32; fp16 -> f16 where
the device computes f16 natively ('FP16' in its OPTIMIZATION_CAPABILITIES: on CPUs, AVX512-FP16 or
AMX-FP16), else f32; int8 -> f32, so the layers NNCF or ONNX Runtime quantized run int8 and the rest
f32, never bf16. bf16 (or any hint) runs only when the caller passes `inference_precision`.
`executed_precision` is read back from the compiled model: the input precision of every compute layer
of its runtime graph, else its INFERENCE_PRECISION_HINT.

Threads: the backend is `reentrant`: each call takes an infer request of its own from a pool (one is
created when every request is busy, so there are as many as calls ever ran at once) and gives it back
afterwards; one compiled model serves every thread, and its streams run their requests in parallel.

Batches: with a fixed batch of 1 (a static export) a larger batch runs through several requests of
the pool at once (OPTIMAL_NUMBER_OF_INFER_REQUESTS, or `num_requests`), so its images overlap in the
plugin's streams (use `performance_hint="THROUGHPUT"` for more streams) instead of running one after
another.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeseg._offline import quiet_telemetry
from edgeseg.errors import EdgesegRuntimeError, InputError, first_line
from edgeseg.manifest import METADATA_PREFIX, Manifest, manifest_from_onnx_metadata
from edgeseg.runtimes.base import Backend, Dim, TensorSpec, summarize_precisions

__all__ = [
    "DEVICES",
    "PERFORMANCE_HINTS",
    "OpenVINOBackend",
    "device_capabilities",
    "peak_runner",
    "precision_hint",
    "runtime_layers",
]

DEVICES = ("CPU", "GPU", "NPU", "AUTO")
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
_HINTED_DEVICES = ("CPU", "GPU")  # the plugins that take INFERENCE_PRECISION_HINT
# OpenVINO element types of a compute layer's activations -> edgeseg's precision names.
_ELEMENT_PRECISIONS = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "u8": "int8", "i8": "int8"}
# Runtime-graph layer types that carry a model's arithmetic (CPU: "Convolution", "Deconvolution",
# "FullyConnected", "MatMul"; GPU names differ in case), matched case-insensitively by substring.
_COMPUTE_LAYERS = ("convolution", "fullyconnected", "matmul", "gemm")
_FILE_KINDS = {".xml": "OpenVINO IR", ".onnx": "ONNX model"}
# rt_info sections holding edgeseg's metadata: the IR's own (keys without prefix, written by the
# OpenVINO exporter) and an ONNX file's metadata_props (keys with the "edgeseg." prefix).
_RT_SECTIONS = {"edgeseg": METADATA_PREFIX, "framework": ""}


def _normalize_device(device: str | None) -> str:
    """ "cpu" -> "CPU", "gpu.1" -> "GPU.1", "auto:gpu,cpu" -> "AUTO:GPU,CPU"; InputError for others."""
    text = str(device or "CPU").strip().upper()
    base = text.split(":")[0].split(".")[0]
    if base not in DEVICES:
        raise InputError(f"unknown OpenVINO device '{device}'; use one of {', '.join(DEVICES)} (e.g. GPU.0)")
    return text


def device_capabilities(core: Any, device: str) -> frozenset[str]:
    """The device's OPTIMIZATION_CAPABILITIES ("FP32", "FP16", "BF16", "INT8", ...); empty when the
    device does not report them. Tests replace this function to stand for another CPU."""
    try:
        return frozenset(str(c).upper() for c in core.get_property(device, "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # a plugin without the property (NPU, AUTO)
        return frozenset()


def precision_hint(declared: str, capabilities: frozenset[str]) -> str:
    """The INFERENCE_PRECISION_HINT for a model of `declared` precision on a device with these
    capabilities: never below what the model was exported at, and bf16 never unasked."""
    if declared == "fp16" and "FP16" in capabilities:
        return "f16"
    return "f32"  # fp32; fp16 without native f16; int8 (quantized layers stay int8, the rest f32)


class _Requests:
    """The infer requests of one compiled model, each used by one call at a time: a call takes free
    ones (creating a request when none is free) and gives them back when done."""

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled
        self._free: list[Any] = []
        self._lock = threading.Lock()

    def take(self, n: int) -> list[Any]:
        with self._lock:
            taken = self._free[len(self._free) - n :] if n <= len(self._free) else self._free[:]
            del self._free[len(self._free) - len(taken) :]
        return taken + [self._compiled.create_infer_request() for _ in range(n - len(taken))]

    def give(self, requests: list[Any]) -> None:
        with self._lock:
            self._free.extend(requests)


class OpenVINOBackend(Backend):
    """An OpenVINO IR or ONNX model run by OpenVINO Runtime.

    Args:
        path: the `.xml` (with its `.bin` beside it) or a `.onnx` file.
        device: "CPU" (default), "GPU[.N]", "NPU" or "AUTO[:list]"; case-insensitive.
        performance_hint: "LATENCY" (default: one image at a time, as a camera loop runs),
            "THROUGHPUT" or "CUMULATIVE_THROUGHPUT" (more parallel streams for batches).
        inference_precision: e.g. "f32", "bf16", "f16"; default on CPU/GPU: from the precision the
            model's metadata declares (see the module notes and `precision_hint`), elsewhere the
            device's default.
        num_requests: infer requests one batch uses in parallel (0: OpenVINO's optimum).
        config: further compile properties, passed as is (they override the ones above).
        threads: the common thread option of every backend; here INFERENCE_NUM_THREADS.
    """

    name = "openvino"
    package = "openvino"
    reentrant = True  # one infer request per call, from `_Requests`

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str | None = None,
        performance_hint: str = "LATENCY",
        inference_precision: str | None = None,
        num_requests: int = 0,
        config: dict[str, Any] | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(path, threads=threads)
        self.device = _normalize_device(device)
        self.performance_hint = str(performance_hint).strip().upper()
        if self.performance_hint not in PERFORMANCE_HINTS:
            raise InputError(
                f"performance_hint must be one of {', '.join(PERFORMANCE_HINTS)}; got '{performance_hint}'"
            )
        if not isinstance(num_requests, int) or num_requests < 0:
            raise InputError(f"num_requests must be a whole number >= 0; got {num_requests!r}")
        self.inference_precision = inference_precision
        self.num_requests = num_requests
        self.config = dict(config or {})
        self._compiled: Any = None
        self._requests: _Requests | None = None
        self._batch_requests = 1  # requests one batch of chunks uses at once
        self._output_names: list[str] = []
        self._manifest: Manifest | None = None
        self._precision: str | None = None  # the precision hint actually passed
        self._stored: str | None = None  # the float type most weights are stored in ("fp16", ...)

    def _read(self, ov: Any) -> Any:
        suffix = self.path.suffix.lower()
        if suffix not in _FILE_KINDS:
            raise InputError(f"the openvino backend reads .xml or .onnx files; got '{self.path}'")
        try:
            # One frontend per kind (ONNX, IR): read_model would also try the TensorFlow frontends on
            # a damaged file, and they print parse errors to stderr (a second, confusing error).
            framework = "onnx" if suffix == ".onnx" else "ir"
            frontend = ov.frontend.FrontEndManager().load_by_framework(framework)
            return frontend.convert(frontend.load(str(self.path)))
        except Exception as exc:  # OpenVINO raises RuntimeError and its own GeneralFailure types
            what = _FILE_KINDS[suffix]
            raise InputError(
                f"cannot load {what} '{self.path}' (corrupt or truncated?): {first_line(exc)}"
            ) from None

    def _metadata(self, model: Any) -> Manifest | None:
        props: dict[str, str] = {}
        try:
            info = model.get_rt_info()
            keys = set(info.keys())
            for section, prefix in _RT_SECTIONS.items():
                if section in keys:
                    for key, value in info[section].items():
                        if (prefix + key).startswith(METADATA_PREFIX):
                            props[prefix + key] = value.astype(str)
        except (RuntimeError, UnicodeDecodeError) as exc:  # a damaged file: bytes that are not UTF-8
            raise InputError(
                f"the edgeseg metadata of '{self.path}' cannot be read (corrupt file?): {first_line(exc)}"
            ) from None
        return manifest_from_onnx_metadata(
            props, model_file=self.path.name, where=f"the edgeseg metadata of '{self.path}'"
        )

    def _compile_config(self, core: Any) -> dict[str, Any]:
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.performance_hint}
        precision = self.inference_precision
        declared = self._manifest.precision if self._manifest else "fp32"  # a model from elsewhere: fp32
        if precision is None and self.device.split(".")[0] in _HINTED_DEVICES:
            precision = precision_hint(declared, device_capabilities(core, self.device))
        if precision is not None:
            config["INFERENCE_PRECISION_HINT"] = precision
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        config.update(self.config)
        self._precision = config.get("INFERENCE_PRECISION_HINT")
        return config

    def _load(self) -> None:
        quiet_telemetry()
        import openvino as ov

        core = ov.Core()
        physical = self.device.split(":")[0]
        if not physical.startswith("AUTO") and not any(
            d == physical or d.startswith(physical + ".") for d in core.available_devices
        ):
            raise InputError(
                f"OpenVINO device {self.device} is not available here (available: "
                f"{', '.join(core.available_devices)})"
            )
        model = self._read(ov)
        self._refuse_nonfinite(
            (op.get_friendly_name(), op.get_data())
            for op in model.get_ordered_ops()
            if op.get_type_name() == "Constant"
        )
        self._manifest = self._metadata(model)
        self._stored = _stored_float(model)
        try:
            compiled = core.compile_model(model, self.device, self._compile_config(core))
        except Exception as exc:
            raise EdgesegRuntimeError(
                f"OpenVINO could not compile '{self.path}' for {self.device}: {first_line(exc)}"
            ) from None
        self._compiled = compiled
        self._requests = _Requests(compiled)
        self._requests.give(self._requests.take(1))  # the first call's request, made at load
        n = self.num_requests or int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._batch_requests = max(1, n)
        self._output_names = [port.get_any_name() for port in compiled.outputs]

    def _discover_specs(self) -> tuple[Sequence[TensorSpec], Sequence[TensorSpec]]:
        def spec(port: Any) -> TensorSpec:
            shape: tuple[Dim, ...] = tuple(
                d.get_length() if d.is_static else None for d in port.get_partial_shape()
            )
            return TensorSpec(port.get_any_name(), shape, np.dtype(port.get_element_type().to_dtype()).name)

        return [spec(p) for p in self._compiled.inputs], [spec(p) for p in self._compiled.outputs]

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # share_inputs: the request reads the caller's (validated, C-contiguous) arrays in place
        # instead of copying them into its own tensors; outputs are copied (share_outputs=False), so
        # results outlive the next call. The output names were read once at load.
        assert self._requests is not None, "used before _load"
        (request,) = self._requests.take(1)
        results = request.infer(feed, share_inputs=True).to_tuple()
        self._requests.give([request])  # not after a failure: a request in an unknown state is dropped
        return dict(zip(self._output_names, results, strict=True))

    def _infer_chunks(self, chunks: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        # Requests of our own rather than an AsyncInferQueue with a Python callback: the callback
        # runs on OpenVINO's threads and takes the GIL, and tearing the compiled model down while
        # such a thread waits for the GIL deadlocks (seen intermittently at close under CPU
        # contention). start_async + wait keeps every Python call on this thread.
        assert self._requests is not None, "used before _load"
        requests = self._requests.take(min(self._batch_requests, len(chunks)))
        results: list[dict[str, np.ndarray]] = []
        for start in range(0, len(chunks), len(requests)):
            group = chunks[start : start + len(requests)]
            for request, chunk in zip(requests, group, strict=False):
                # share_inputs as in `_infer`: a request of the pool may still wrap an earlier
                # caller's array from a shared-input call, and a copying call would write into it.
                request.start_async(chunk, share_inputs=True)
            for request, _ in zip(requests, group, strict=False):
                request.wait()
                results.append(
                    {n: request.get_output_tensor(i).data.copy() for i, n in enumerate(self._output_names)}
                )
        self._requests.give(requests)
        return results

    def _close(self) -> None:
        # Requests before the compiled model that owns their executor (no call is in flight here).
        self._requests = None
        self._compiled = None

    def _executed_precision(self) -> str:
        """The precisions the compiled model's compute layers take their activations in (the
        plugin's runtime graph, `runtime_layers`); with float weights of another precision (the
        layers' own weight inputs, else the model's stored constants), that too: an fp16 IR on a CPU
        without native f16 is "fp32 (fp16 weights upcast)". Falls back to the compiled model's
        INFERENCE_PRECISION_HINT where the runtime graph says nothing."""
        layers = runtime_layers(self._compiled)
        if not layers:
            try:
                hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
            except Exception:  # a plugin without the property
                return "unknown"
            name = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)
            return _ELEMENT_PRECISIONS.get(name, name)
        ran = Counter(p for p, _, _ in layers)
        floats = [p for p in ran if p != "int8"]
        weights = [w for p, _, w in layers if p != "int8" and w in ("fp16", "bf16") and w not in floats]
        stored = self._stored if self._stored in ("fp16", "bf16") and self._stored not in floats else None
        upcast = (weights[0] if weights else stored) if floats else None
        return summarize_precisions(ran, upcast_from=upcast)

    def _embedded_manifest(self) -> Manifest | None:
        return self._manifest

    def _describe(self) -> str:
        precision = self._precision if self._compiled is not None else self.inference_precision
        return ", ".join(p for p in (self.device, precision, self.performance_hint) if p)


def runtime_layers(compiled: Any) -> list[tuple[str, str, str]]:
    """(precision, kernel, weights' precision) of every compute layer of a compiled model's runtime
    graph, as the plugin chose them: the precision is that of the activations the layer takes (its
    first input), the weights' that of its second (f16 where the kernel upcasts an fp16 IR's weights),
    e.g. ("bf16", "brgconv_avx512_amx_bf16", "bf16"), ("fp32", "brgconv_avx2_f32", "fp16"). Empty
    where the plugin does not expose its runtime graph."""
    try:
        ops = compiled.get_runtime_model().get_ordered_ops()
    except Exception:  # plugins without a readable runtime graph (NPU, AUTO)
        return []
    layers = []
    for op in ops:
        rt = op.get_rt_info()
        kind = rt["layerType"].astype(str).lower() if "layerType" in rt else ""
        if not any(k in kind for k in _COMPUTE_LAYERS) or op.get_input_size() < 2:
            continue
        types = [str(op.input(i).get_element_type().get_type_name()) for i in range(2)]
        activations, weights = (_ELEMENT_PRECISIONS.get(t, t) for t in types)
        kernel = rt["primitiveType"].astype(str) if "primitiveType" in rt else ""
        layers.append((activations, kernel, weights))
    return layers


def _stored_float(model: Any) -> str | None:
    """The float type holding most weight values of a model as read (an fp16 IR or ONNX graph stores
    f16 constants that the plugin may convert at compile time): "fp32", "fp16", "bf16" or None."""
    sizes: Counter[str] = Counter()
    for op in model.get_ordered_ops():
        if op.get_type_name() == "Constant":
            kind = _ELEMENT_PRECISIONS.get(op.get_element_type().get_type_name())
            if kind in ("fp32", "fp16", "bf16"):
                sizes[kind] += int(np.prod(op.get_output_shape(0), dtype=np.int64))
    return sizes.most_common(1)[0][0] if sizes else None


# The capability (OPTIMIZATION_CAPABILITIES) a CPU reports where it computes a precision natively.
_NATIVE = {"fp32": "FP32", "bf16": "BF16", "fp16": "FP16", "int8": "INT8"}


def peak_runner(model: bytes, x: np.ndarray, precision: str) -> tuple[Callable[[], object], str] | None:
    """(a call of the benchmark's ceiling graph `model` on OpenVINO's CPU plugin computing at
    `precision`, the kernels it chose as "kernel x count"), or None where the CPU plugin does not
    compute that precision natively (a bf16 hint on a CPU without bf16 runs f32: not a bf16 peak).
    The hint is the one a row of that precision gets (`precision_hint`; bf16 asked explicitly)."""
    quiet_telemetry()
    import openvino as ov

    capability = _NATIVE.get(precision)
    if capability is None:
        return None
    core = ov.Core()
    capabilities = device_capabilities(core, "CPU")
    hint = "bf16" if precision == "bf16" else precision_hint(precision, capabilities)
    if capability not in capabilities:
        return None
    compiled = core.compile_model(core.read_model(model, b""), "CPU", {"INFERENCE_PRECISION_HINT": hint})
    layers = runtime_layers(compiled)
    if layers and any(p != precision for p, _, _ in layers):
        return None  # some layer fell back to another precision: not this precision's peak
    request = compiled.create_infer_request()
    kernels = ", ".join(f"{k} x{n}" for k, n in sorted(Counter(k for _, k, _ in layers).items()))
    return (lambda: request.infer({0: x})), kernels
