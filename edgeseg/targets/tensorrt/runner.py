"""The TensorRT backend: runs an engine on a CUDA device, building it from the bundle's ONNX if needed.

Given the engine-ready `model.onnx` of a bundle (or any edgeseg `.onnx`), it looks for a cached
engine valid for this TensorRT and GPU beside it (edgeseg.targets.tensorrt.build), builds and
caches one when there is none (with progress lines, once), and refuses an unwritable cache folder
instead of rebuilding on every start. Given a `.engine`, it deserializes it as is.

Execution uses TensorRT's name-based tensor API (`num_io_tensors`, `get_tensor_name`,
`get_tensor_mode`, `set_input_shape`, `set_tensor_address`, `execute_async_v3`) on a non-default CUDA
stream. Device buffers are torch CUDA tensors: torch is already a dependency and allocates, copies and
synchronises on streams, so no second CUDA binding (cuda-python) is needed. Buffers, and the pinned
host staging tensors the copies go through, are kept across frames and reallocated only when a shape
changes.

Precision: TensorRT networks are strongly typed here, so the engine computes in the graph's own types
(TF32 is turned off for fp32 builds): `executed_precision` is the engine record's precision
("fp32", "fp16", or "int8+fp32" for a Q/DQ graph, whose unquantized layers stay float32).

Threads: not `reentrant` (one execution context, stream and set of buffers per engine), so the base
class runs one call at a time.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgeseg._records import Record
from edgeseg._text import shown
from edgeseg.errors import EdgesegRuntimeError, InputError
from edgeseg.manifest import MANIFEST_NAME, Manifest, manifest_from_onnx_metadata, read_manifest, sha256_file
from edgeseg.runtimes.base import Backend, Dim, TensorSpec
from edgeseg.targets.tensorrt.build import BuildOptions, Profile, build_engine, import_tensorrt, profile_of
from edgeseg.targets.tensorrt.cache import check_writable, find_cached, read_profile, read_record
from edgeseg.targets.tensorrt.device import cuda_device, selected

__all__ = ["TensorRTBackend"]


def _stderr(line: str) -> None:
    print(f"edgeseg: {shown(line)}", file=sys.stderr, flush=True)


class TensorRTBackend(Backend):
    """A TensorRT engine on a CUDA device.

    Args:
        path: a bundle's engine-ready `.onnx` (engine built and cached on first use) or a `.engine`.
        device: "cuda" or "cuda:N" (default cuda:0).
        engine_cache: folder for built engines; default the ONNX's folder (the bundle).
        workspace_mib, version_compatible, hardware_compatible: builder settings for a build
            (see edgeseg.targets.tensorrt.build.BuildOptions).
        log: receives progress lines of a build; default stderr.
        threads: taken, as by every backend, and unused: the GPU runs the model.
    """

    name = "tensorrt"
    package = "tensorrt"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        device: str | None = None,
        engine_cache: str | os.PathLike[str] | None = None,
        workspace_mib: int = 1024,
        version_compatible: bool = False,
        hardware_compatible: bool = False,
        log: Callable[[str], None] | None = None,
        threads: int | None = None,
    ) -> None:

        super().__init__(path, threads=threads)  # the GPU runs the model: no CPU threads to limit
        kind, _, index = str(device or "cuda").lower().partition(":")
        if kind != "cuda" or (index and not index.isdigit()):
            raise InputError(
                f"the tensorrt backend runs on a CUDA device: device cuda or cuda:N; got '{device}'"
            )
        self.device_index = int(index or 0)
        self.engine_cache = Path(engine_cache) if engine_cache is not None else None
        self.options = BuildOptions(workspace_mib, version_compatible, hardware_compatible)
        self.log = log or _stderr
        self.engine_file: Path | None = None  # the engine in use, once loaded
        self.engine_record: dict[str, Any] = {}  # its build record (TensorRT, GPU, profile, ...)
        self.built_now = False  # whether `load()` had to build the engine
        self._manifest: Manifest | None = None
        self._reset()

    def _reset(self) -> None:
        self._engine: Any = None
        self._context: Any = None
        self._stream: Any = None
        self._device: Any = None
        self._buffers: dict[str, tuple[Any, Any]] = {}  # name -> (device tensor, pinned host tensor)
        self._profiles: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        self._runtime: Any = None
        self._gpu: Any = None

    # ---------------------------------------------------------------------------------------- loading
    def _bundle_manifest(self) -> Manifest | None:

        if not (self.path.parent / MANIFEST_NAME).is_file():
            return None
        manifest = read_manifest(self.path.parent, verify=False)  # Segmenter verifies bundles
        return manifest if manifest.model_file == self.path.name else None

    def _engine_for_onnx(self, trt: Any, device: Any) -> bytes:

        manifest = self._manifest
        precision = manifest.precision if manifest else "fp32"
        if manifest is not None and manifest.target != "tensorrt" and precision == "int8":
            raise InputError(
                f"'{self.path}' is an ONNX Runtime INT8 graph (asymmetric uint8 activations), which "
                "TensorRT does not accept; export with --target tensorrt for a TensorRT INT8 graph"
            )
        profile = None
        if manifest is not None and manifest.dynamic_axes:
            saved = read_profile(Record(manifest.engine or {}, f"'{self.path}' (its manifest's engine)"))
            profile = Profile.from_dict(saved) if saved else profile_of(manifest)
        cache = self.engine_cache or self.path.parent
        found = find_cached(
            cache,
            self.path.stem,
            precision,
            trt.__version__,
            device,
            sha256_file(self.path),
            profile=profile.to_dict() if profile else None,
            options=self.options,
        )
        if found is not None:
            self.engine_file, self.engine_record = found
            return self.engine_file.read_bytes()
        cache.mkdir(parents=True, exist_ok=True)
        check_writable(cache)
        self.engine_file, self.engine_record = build_engine(
            self.path,
            cache,
            precision=precision,
            profile=profile,
            options=self.options,
            device_index=self.device_index,
            log=self.log,
        )
        self.built_now = True
        return self.engine_file.read_bytes()

    def _load(self) -> None:
        import torch

        trt = import_tensorrt()
        device = cuda_device(self.device_index)
        self.built_now = False
        if self.path.suffix.lower() == ".engine":
            self.engine_file, blob = self.path, self.path.read_bytes()
            record = self.path.with_suffix(".json")

            self.engine_record = read_record(record) if record.is_file() else {}
        else:
            self._manifest = self._bundle_manifest() or self._onnx_metadata()
            blob = self._engine_for_onnx(trt, device)
        with selected(device.index):  # TensorRT loads onto, and allocates on, the current device
            runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
            if self.engine_record.get("version_compatible"):
                # Version-compatible plans embed TensorRT's lean runtime (host code, run on load). A
                # record beside the engine is a file anyone could write: the code runs only when the
                # caller asked for such engines (version_compatible=True, --version-compatible).
                if not self.options.version_compatible:
                    raise InputError(
                        f"the engine '{self.engine_file}' is version-compatible: it carries TensorRT runtime "
                        "code that runs when it is loaded; load it with version_compatible=True "
                        "(build-engine --version-compatible) if you trust where it came from"
                    )
                runtime.engine_host_code_allowed = True
            engine = runtime.deserialize_cuda_engine(blob)
            if engine is None:
                raise InputError(
                    f"TensorRT {trt.__version__} cannot load the engine '{self.engine_file}' on "
                    f"{device.name}: it was built for another TensorRT version or GPU, or is damaged; "
                    "delete it and load the bundle again, or run 'edgeseg build-engine BUNDLE' on this device"
                )
            context = engine.create_execution_context()
        self._device = torch.device("cuda", device.index)
        self._engine, self._runtime, self._context = engine, runtime, context
        self._stream = torch.cuda.Stream(device=self._device)  # never the default stream
        self._gpu = device

    def _discover_specs(self) -> tuple[Sequence[TensorSpec], Sequence[TensorSpec]]:

        with selected(self.device_index):  # every TensorRT call on the engine's device
            return self._io_specs()

    def _io_specs(self) -> tuple[list[TensorSpec], list[TensorSpec]]:
        import tensorrt as trt

        inputs, outputs = [], []
        engine = self._engine
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dims = tuple(engine.get_tensor_shape(name))
            shape: tuple[Dim, ...] = tuple(d if d >= 0 else None for d in dims)
            spec = TensorSpec(name, shape, np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name)
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                if any(d < 0 for d in dims):
                    lo, _, hi = engine.get_tensor_profile_shape(name, 0)
                    self._profiles[name] = (tuple(lo), tuple(hi))
                inputs.append(spec)
            else:
                outputs.append(spec)
        return inputs, outputs

    # -------------------------------------------------------------------------------------- inference
    def _buffer(self, name: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[Any, Any]:
        import torch

        held = self._buffers.get(name)
        if held is None or tuple(held[0].shape) != shape:
            tdtype = torch.from_numpy(np.empty(0, dtype)).dtype
            held = (
                torch.empty(shape, dtype=tdtype, device=self._device),
                torch.empty(shape, dtype=tdtype, pin_memory=True),
            )
            self._buffers[name] = held
        return held

    def _infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        ctx = self._context
        # The engine's device current for TensorRT, our stream current for torch's copies.
        with selected(self.device_index), torch.cuda.stream(self._stream):
            for name, x in feed.items():
                if name in self._profiles:
                    lo, hi = self._profiles[name]
                    if not all(a <= s <= b for s, a, b in zip(x.shape, lo, hi, strict=True)):
                        raise InputError(
                            f"input '{name}' has shape {x.shape}, outside the engine's optimisation profile "
                            f"{lo}..{hi}; export again with --img-size/--batch covering it"
                        )
                if not ctx.set_input_shape(name, x.shape):
                    raise InputError(f"TensorRT refused the shape {x.shape} for input '{name}'")
                dev, host = self._buffer(name, tuple(x.shape), x.dtype)
                host.numpy()[...] = x
                dev.copy_(host, non_blocking=True)
                ctx.set_tensor_address(name, dev.data_ptr())
            outs = {}
            for spec in self._outputs:
                shape = tuple(ctx.get_tensor_shape(spec.name))
                dev, host = self._buffer(spec.name, shape, np.dtype(spec.dtype))
                ctx.set_tensor_address(spec.name, dev.data_ptr())
                outs[spec.name] = (dev, host)
            if not ctx.execute_async_v3(self._stream.cuda_stream):
                raise EdgesegRuntimeError(f"TensorRT failed to run '{self.engine_file}'")
            for dev, host in outs.values():
                host.copy_(dev, non_blocking=True)
        self._stream.synchronize()
        return {name: host.numpy().copy() for name, (_, host) in outs.items()}

    def _close(self) -> None:

        if self._stream is None:
            self._reset()
            return
        with selected(self.device_index):  # TensorRT frees the engine's memory on its own device
            self._stream.synchronize()
            self._reset()

    def _embedded_manifest(self) -> Manifest | None:
        return self._manifest

    def _executed_precision(self) -> str:
        precision = self.engine_record.get("precision") or (
            self._manifest.precision if self._manifest else None
        )
        return {"fp32": "fp32", "fp16": "fp16", "int8": "int8+fp32"}.get(str(precision), "unknown")

    def _onnx_metadata(self) -> Manifest | None:
        """The edgeseg metadata inside a bare `.onnx` (precision, dynamic axes), if onnx is installed."""
        try:
            import onnx
        except ImportError:  # a device with TensorRT but without the onnx package: no metadata
            return None

        model = onnx.load(str(self.path), load_external_data=False)
        props = {p.key: p.value for p in model.metadata_props}
        return manifest_from_onnx_metadata(props, model_file=self.path.name, where=f"'{self.path}'")

    def _describe(self) -> str:
        built = ", built now" if self.built_now else ""
        if self._gpu is None:
            return f"cuda:{self.device_index}"
        engine = self.engine_file.name if self.engine_file else "no engine"
        return f"{self._gpu.name} {self._gpu.sm}, {engine}{built}"
