"""The OpenVINO backend: runs an IR (`.xml` + `.bin`) or a `.onnx` file on CPU, GPU, NPU or AUTO.

Precision: OpenVINO's CPU plugin computes in bf16 on CPUs with AVX512-BF16/AMX and its GPU plugin in
f16, which alone moves a U-Net's logits by ~2e-3 and breaks the 1e-3 parity of an fp32 export. So on
CPU and GPU the backend asks for f32 (`INFERENCE_PRECISION_HINT`) unless the model's edgeseg
metadata declares a reduced precision (fp16/int8 exports) or the caller passes `inference_precision`.

Batches: with a fixed batch of 1 (a static export) a larger batch runs through a pool of async infer
requests, so its images overlap in the plugin's streams (use `performance_hint="THROUGHPUT"` for more streams)
instead of running one after another.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edgeseg._offline import quiet_telemetry
from edgeseg.errors import EdgesegRuntimeError, InputError, first_line
from edgeseg.manifest import METADATA_PREFIX, Manifest, manifest_from_onnx_metadata
from edgeseg.runtimes.base import Backend, Dim, TensorSpec

__all__ = [
    "DEVICES",
    "PERFORMANCE_HINTS",
    "OpenVINOBackend",
    "cpu_capabilities",
    "peak_runner",
    "runtime_layers",
]

DEVICES = ("CPU", "GPU", "NPU", "AUTO")
PERFORMANCE_HINTS = ("LATENCY", "THROUGHPUT", "CUMULATIVE_THROUGHPUT")
_PRECISE_DEVICES = ("CPU", "GPU")  # where an fp32 model is run at f32 unless asked otherwise
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


class OpenVINOBackend(Backend):
    """An OpenVINO IR or ONNX model run by OpenVINO Runtime.

    Args:
        path: the `.xml` (with its `.bin` beside it) or a `.onnx` file.
        device: "CPU" (default), "GPU[.N]", "NPU" or "AUTO[:list]"; case-insensitive.
        performance_hint: "LATENCY" (default: one image at a time, as a camera loop runs),
            "THROUGHPUT" or "CUMULATIVE_THROUGHPUT" (more parallel streams for batches).
        inference_precision: e.g. "f32", "bf16", "f16"; default f32 on CPU/GPU unless the model's
            metadata declares fp16/int8 (see the module notes), otherwise the device's default.
        num_requests: infer requests used in parallel for batches (0: OpenVINO's optimum).
        config: further compile properties, passed as is (they override the ones above).
        threads: the common thread option of every backend; here INFERENCE_NUM_THREADS.
    """

    name = "openvino"
    package = "openvino"

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
        self._request: Any = None
        self._pool: list[Any] = []
        self._output_names: list[str] = []
        self._manifest: Manifest | None = None
        self._precision: str | None = None  # the precision hint actually passed

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

    def _compile_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"PERFORMANCE_HINT": self.performance_hint}
        precision = self.inference_precision
        declared = self._manifest.precision if self._manifest else "fp32"
        if precision is None and declared == "fp32" and self.device.split(".")[0] in _PRECISE_DEVICES:
            precision = "f32"
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
        try:
            compiled = core.compile_model(model, self.device, self._compile_config())
        except Exception as exc:
            raise EdgesegRuntimeError(
                f"OpenVINO could not compile '{self.path}' for {self.device}: {first_line(exc)}"
            ) from None
        self._compiled = compiled
        self._request = compiled.create_infer_request()
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
        results = self._request.infer(feed, share_inputs=True).to_tuple()
        return dict(zip(self._output_names, results, strict=True))

    def _infer_chunks(self, chunks: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
        # A pool of our own requests rather than an AsyncInferQueue with a Python callback: the
        # callback runs on OpenVINO's threads and takes the GIL, and tearing the compiled model
        # down while such a thread waits for the GIL deadlocks (seen intermittently at close under
        # CPU contention). start_async + wait keeps every Python call on this thread.
        if not self._pool:
            n = self.num_requests or int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self._pool = [self._compiled.create_infer_request() for _ in range(max(1, n))]
        names = [port.get_any_name() for port in self._compiled.outputs]
        results: list[dict[str, np.ndarray]] = []
        for start in range(0, len(chunks), len(self._pool)):
            group = chunks[start : start + len(self._pool)]
            for request, chunk in zip(self._pool, group, strict=False):
                request.start_async(chunk)
            for request, _ in zip(self._pool, group, strict=False):
                request.wait()
                results.append({n: request.get_output_tensor(i).data.copy() for i, n in enumerate(names)})
        return results

    def _close(self) -> None:
        # Requests before the compiled model that owns their executor.
        self._pool = []
        self._request = None
        self._compiled = None

    def _embedded_manifest(self) -> Manifest | None:
        return self._manifest

    def _describe(self) -> str:
        precision = self._precision if self._compiled is not None else self.inference_precision
        return ", ".join(p for p in (self.device, precision, self.performance_hint) if p)


# OpenVINO element types of a compute layer's activations -> edgeseg's precision names.
_ELEMENT_PRECISIONS = {"f32": "fp32", "f16": "fp16", "bf16": "bf16", "u8": "int8", "i8": "int8"}
# Runtime-graph layer types that carry a model's arithmetic.
_COMPUTE_LAYERS = ("convolution", "deconvolution", "fullyconnected", "matmul", "gemm")
# The benchmark's precisions -> INFERENCE_PRECISION_HINT and the capability a CPU must report for it
# (OPTIMIZATION_CAPABILITIES); int8 is the Q/DQ graph's, with f32 for whatever stays float.
_PEAK_HINTS = {
    "fp32": ("f32", "FP32"), "bf16": ("bf16", "BF16"), "fp16": ("f16", "FP16"), "int8": ("f32", "INT8"),
}  # fmt: skip


def runtime_layers(compiled: Any) -> list[tuple[str, str, str]]:
    """(precision, kernel, weights' precision) of every compute layer of a compiled model's runtime
    graph, as the plugin chose them: the precision is that of the activations the layer takes (its
    first input: "runtimePrecision" names the weights' type, f16 for fp16 weights the kernel upcasts),
    e.g. ("bf16", "brgconv_avx512_amx_bf16", "bf16"), ("fp32", "brgconv_avx2_f32", "fp16").
    Empty where the plugin does not expose its runtime graph."""
    try:
        ops = compiled.get_runtime_model().get_ordered_ops()
    except Exception:  # plugins without a readable runtime graph (NPU, AUTO)
        return []
    layers = []
    for op in ops:
        rt = op.get_rt_info()
        kind = rt["layerType"].astype(str).lower() if "layerType" in rt else ""
        if kind not in _COMPUTE_LAYERS or op.get_input_size() == 0:
            continue
        types = [str(op.input(i).get_element_type().get_type_name()) for i in range(op.get_input_size())]
        activations = _ELEMENT_PRECISIONS.get(types[0], types[0])
        weights = _ELEMENT_PRECISIONS.get(types[1], types[1]) if len(types) > 1 else activations
        kernel = rt["primitiveType"].astype(str) if "primitiveType" in rt else ""
        layers.append((activations, kernel, weights))
    return layers


def cpu_capabilities(core: Any) -> frozenset[str]:
    """The CPU plugin's OPTIMIZATION_CAPABILITIES ("FP32", "BF16", "FP16", "INT8", ...)."""
    try:
        return frozenset(str(c).upper() for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # an OpenVINO without the property
        return frozenset()


def peak_runner(model: bytes, x: np.ndarray, precision: str) -> tuple[Callable[[], object], str] | None:
    """(a call of the benchmark's ceiling graph `model` on OpenVINO's CPU plugin computing at
    `precision`, the kernels it chose as "kernel x count"), or None where the CPU plugin does not
    compute that precision natively (a bf16 hint on a CPU without bf16 runs f32: not a bf16 peak)."""
    quiet_telemetry()
    import openvino as ov

    if precision not in _PEAK_HINTS:
        return None
    hint, capability = _PEAK_HINTS[precision]
    core = ov.Core()
    if capability not in cpu_capabilities(core):
        return None
    compiled = core.compile_model(core.read_model(model, b""), "CPU", {"INFERENCE_PRECISION_HINT": hint})
    layers = runtime_layers(compiled)
    if layers and any(p != precision for p, _, _ in layers):
        return None  # some layer fell back to another precision: not this precision's peak
    request = compiled.create_infer_request()
    kernels = ", ".join(f"{k} x{n}" for k, n in sorted(Counter(k for _, k, _ in layers).items()))
    return (lambda: request.infer({0: x})), kernels
