"""An ONNX file from another framework as an export source (see edgeseg.exporters.source).

The graph is taken as it is, with its own tensor names and opset, after the checks a segmentation
export needs: one float32 NCHW image input (an initializer listed as an input is a weight, not an
input), a first output of rank 4 with the classes on axis 1 at the input's height and width, a batch
that is dynamic or 1. A fixed input size is the bundle's size; a dynamic one needs `--img-size`.
Without `--dynamic` the input is fixed to 1 x C x H x W (onnxruntime's `make_input_shape_fixed`) and
the shapes are inferred again, so every target gets a static graph as from a checkpoint. Opsets below
13 are converted to 13 (`onnx.version_converter`): per-channel INT8 needs it. Weights stored as
external data are loaded from beside the file and written into the bundle's single file.

Class names, mean/std and channel order come from `SourceFacts`, else from the file's own edgeseg
metadata (`manifest_from_onnx_metadata`); one missing is an InputError naming the option.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeseg._guards import first_nonfinite, recorded_path
from edgeseg._logits import logits_scale
from edgeseg._paths import folder_not_file
from edgeseg.errors import EdgesegRuntimeError, InputError, MissingDependencyError, first_line
from edgeseg.evaluation.parity import onnx_reference
from edgeseg.exporters.doctor import check_stride
from edgeseg.exporters.source import ExportSource, SourceFacts
from edgeseg.manifest import (
    METADATA_PREFIX,
    Manifest,
    manifest_from_onnx_metadata,
    onnx_metadata,
    sha256_file,
)

if TYPE_CHECKING:
    import onnx

    from edgeseg.evaluation.parity import Reference

__all__ = ["MIN_SOURCE_OPSET", "OnnxSource"]

MIN_SOURCE_OPSET = 13  # per-channel QDQ (axis on QuantizeLinear) needs opset 13
_COLOR_ORDERS = ("RGB", "BGR", "GRAY")


def _dims(value: Any) -> list[int | None]:
    """A graph value's shape: ints where static, None where dynamic."""
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in shape.dim]


def _load(path: Path) -> tuple[onnx.ModelProto, list[str]]:
    """The model with its weights, and the external data files it read (relative names)."""
    try:
        import onnx
        from onnx.external_data_helper import load_external_data_for_model, uses_external_data
    except ImportError as exc:
        raise MissingDependencyError("onnx", "onnx", "exporting an ONNX file") from exc
    if path.is_dir():
        raise InputError(folder_not_file(path, "ONNX file", "an .onnx file", (".onnx",), bundles=False))
    if not path.is_file():
        raise InputError(f"ONNX file '{path}' does not exist")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: not an ONNX protobuf
        raise InputError(f"cannot read '{path}' as an ONNX model ({first_line(exc)})") from None
    external = sorted(
        {
            next((e.value for e in t.external_data if e.key == "location"), "?")
            for t in model.graph.initializer
            if uses_external_data(t)
        }
    )
    if external:
        missing = [name for name in external if not (path.parent / name).is_file()]
        if missing:
            raise InputError(
                f"'{path}' keeps its weights in external data '{missing[0]}', which is not beside it; "
                "copy that file next to the .onnx"
            )
        load_external_data_for_model(model, str(path.parent))
    from onnx import numpy_helper

    # A NaN weight makes every logit NaN; refused here, with the tensor named, not found by parity.
    bad = first_nonfinite((t.name, numpy_helper.to_array(t)) for t in model.graph.initializer)
    if bad is not None:
        raise InputError(
            f"ONNX file '{path}' holds {bad[1]} NaN or Inf value(s) in weight '{bad[0]}'; "
            "export it again from a model with finite weights"
        )
    return model, external


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def ends_in_softmax(model: onnx.ModelProto) -> bool:
    """Whether the first output is a softmax over the classes (axis 1 of N x classes x H x W), reached
    back through ops that change nothing about the values (Identity, Cast). A LogSoftmax is left as
    it is: log-probabilities are logits to every use (their softmax is the probabilities)."""
    g = model.graph
    producers = {o: n for n in g.node for o in n.output}
    node = producers.get(g.output[0].name) if g.output else None
    while node is not None and node.op_type in ("Identity", "Cast") and node.input:
        node = producers.get(node.input[0])
    if node is None or node.op_type != "Softmax":
        return False
    axis = next((a.i for a in node.attribute if a.name == "axis"), 1 if _opset(model) < 13 else -1)
    # Before opset 13, Softmax flattens from `axis` on: axis 1 is over classes x H x W, not per pixel.
    return axis in (1, -3) and _opset(model) >= 13


class OnnxSource(ExportSource):
    """A foreign (or edgeseg-written) `.onnx` file, checked; build with `OnnxSource.open`."""

    kind = "onnx"
    reference_backend = "onnxruntime"
    reference_label = "the source ONNX on ONNX Runtime"

    def __init__(self, path: Path, model: onnx.ModelProto, external: list[str]) -> None:
        self.path, self.model, self.external = path, model, external
        self.opset_given = _opset(model)
        self.upsampled: int | None = None  # 1/f logits brought to the input's size by edgeseg
        self._static: dict[tuple[int, int], onnx.ModelProto] = {}

    @classmethod
    def open(cls, path: Path, facts: SourceFacts) -> OnnxSource:
        """Load and check the graph at `path`; InputError (one line) for anything it cannot export."""
        model, external = _load(path)
        src = cls(path, model, external)
        src.facts = facts
        src._check_graph()
        src._resolve(facts)
        if ends_in_softmax(model):
            src.output_steps = tuple(dict.fromkeys((*src.output_steps, "softmax")))
        if src.opset_given < MIN_SOURCE_OPSET:
            from onnx import version_converter

            try:
                src.model = version_converter.convert_version(model, MIN_SOURCE_OPSET)
            except Exception as exc:
                raise InputError(
                    f"'{path}' uses opset {src.opset_given}, which could not be converted to "
                    f"{MIN_SOURCE_OPSET} (INT8 needs {MIN_SOURCE_OPSET}+): {first_line(exc)}; re-export it "
                    f"at opset {MIN_SOURCE_OPSET} or newer"
                ) from None
        return src

    # ---------------------------------------------------------------------------------- the graph
    def _check_graph(self) -> None:
        from onnx import TensorProto

        g, where = self.model.graph, f"ONNX file '{self.path}'"
        weights = {t.name for t in g.initializer}
        inputs = [v for v in g.input if v.name not in weights]
        if len(inputs) != 1:
            names = ", ".join(repr(v.name) for v in inputs) or "none"
            raise InputError(
                f"{where} has {len(inputs)} inputs ({names}); edgeseg exports models with one image input"
            )
        inp = inputs[0]
        if inp.type.tensor_type.elem_type != TensorProto.FLOAT:
            kind = TensorProto.DataType.Name(inp.type.tensor_type.elem_type).lower()
            raise InputError(
                f"{where}: its input '{inp.name}' is {kind}, not float32; edgeseg feeds normalised "
                "float32 images"
            )
        dims = _dims(inp)
        if len(dims) != 4:
            raise InputError(
                f"{where}: its input '{inp.name}' has rank {len(dims)}; edgeseg feeds NCHW images"
            )
        if dims[1] not in (1, 3) and dims[3] in (1, 3):
            raise InputError(
                f"{where}: its input '{inp.name}' looks channels-last {dims}; edgeseg feeds NCHW (N, C, H, W)"
            )
        if dims[1] not in (None, 1, 3):
            raise InputError(
                f"{where}: its input has {dims[1]} channels; edgeseg runs 1- or 3-channel models"
            )
        if dims[0] not in (None, 1):
            raise InputError(f"{where}: its batch is fixed at {dims[0]}; edgeseg needs batch 1 or dynamic")
        if not g.output or len(_dims(g.output[0])) not in (0, 4):
            rank = len(_dims(g.output[0])) if g.output else 0
            raise InputError(
                f"{where}: its first output has rank {rank}; edgeseg needs (N, classes, H, W) logits"
            )
        self.input_name, self.output_name = inp.name, g.output[0].name
        self.input_dims = dims

    def _resolve(self, facts: SourceFacts) -> None:
        props = {p.key: p.value for p in self.model.metadata_props}
        meta = manifest_from_onnx_metadata(props, model_file=self.path.name, where=f"'{self.path}'")
        self.embedded = meta
        names = facts.class_names() or (meta.class_names if meta else None)
        mean = facts.mean or (meta.input.mean if meta else None)
        std = facts.std or (meta.input.std if meta else None)
        order = facts.color_order or (meta.input.color_order if meta else None)
        channels = self.input_dims[1] or (meta.input.channels if meta else None) or len(mean or ())
        if order is None and channels == 1:
            order = "GRAY"
        missing = [
            flag
            for flag, value in (
                ("--classes", names),
                ("--mean", mean),
                ("--std", std),
                ("--color-order", order),
            )
            if not value
        ]
        if missing:
            raise InputError(
                f"ONNX file '{self.path}' carries no edgeseg metadata: pass {', '.join(missing)} "
                "(e.g. --classes road,car,sky --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 "
                "--color-order RGB)"
            )
        assert names and mean and std and order
        order = order.strip().upper()
        for flag, values in (("--mean", mean), ("--std", std)):
            if len(values) != channels:
                raise InputError(
                    f"{flag} has {len(values)} values but the model's input has {channels} channels"
                )
            if not all(math.isfinite(v) for v in values):
                raise InputError(f"{flag} values must be finite numbers; got {','.join(map(str, values))}")
        if min(std) <= 0:
            raise InputError(f"--std values must be > 0; got {','.join(map(str, std))}")
        if order not in _COLOR_ORDERS or (order == "GRAY") != (channels == 1):
            raise InputError(
                f"--color-order {order} does not suit a {channels}-channel model; use "
                f"{'GRAY' if channels == 1 else 'RGB or BGR'}"
            )
        self.class_names, self.channels = tuple(names), int(channels)
        self.mean, self.std, self.color_order = tuple(map(float, mean)), tuple(map(float, std)), order
        self.resize = meta.input.resize if meta else "stretch"
        self.ignore_index = meta.ignore_index if meta else None  # --ignore-index: open_export_source
        fixed = (self.input_dims[3], self.input_dims[2])
        if None not in fixed:
            self.img_size = (int(fixed[0]), int(fixed[1]))  # type: ignore[arg-type]
        elif meta is not None:
            self.img_size = (meta.input.width, meta.input.height)
        self.size_multiple = meta.input.size_multiple if meta else 1
        self.output_steps = tuple(s for s in (meta.output.graph_steps if meta else ()) if s == "softmax")

    def _static_graph(self, size: tuple[int, int]) -> onnx.ModelProto:
        """A copy with the input fixed to 1 x C x H x W and shapes inferred again."""
        if size not in self._static:
            import onnx
            from onnxruntime.tools.onnx_model_utils import make_input_shape_fixed

            model = onnx.ModelProto()
            model.CopyFrom(self.model)
            try:
                make_input_shape_fixed(model.graph, self.input_name, [1, self.channels, size[1], size[0]])
                del model.graph.value_info[:]  # stale symbolic shapes; inferred again below
                for out in model.graph.output:
                    for dim in out.type.tensor_type.shape.dim:
                        if not dim.HasField("dim_value"):
                            dim.Clear()
                model = onnx.shape_inference.infer_shapes(model)
            except Exception as exc:
                raise InputError(
                    f"ONNX file '{self.path}' cannot run at {size[0]}x{size[1]}: {first_line(exc)}"
                ) from None
            self._static[size] = model
        return self._static[size]

    def _check_output(self, model: onnx.ModelProto, size: tuple[int, int]) -> None:
        dims, where = _dims(model.graph.output[0]), f"ONNX file '{self.path}'"
        if len(dims) != 4:
            raise InputError(
                f"{where}: its output has rank {len(dims)}; edgeseg needs (N, classes, H, W) logits"
            )
        w, h = size
        if dims[1:3] == [h, w] and dims[3] != w:
            raise InputError(
                f"{where}: its output {dims} has the classes on the last axis; edgeseg needs them on "
                "axis 1 (N, classes, H, W): add a Transpose to the model"
            )
        if None not in dims[2:] and dims[2:] != [h, w]:
            raise InputError(
                f"{where}: its output is {dims[3]}x{dims[2]} for a {w}x{h} input; edgeseg needs logits "
                "at the input's size or at 1/2 .. 1/32 of it (which it upsamples): upsample them in the model"
            )
        if dims[1] is not None and dims[1] != self.classes:
            raise InputError(
                f"{where} outputs {dims[1]} classes but --classes gives {self.classes}; give "
                f"{dims[1]} names or --classes {dims[1]}"
            )

    # ------------------------------------------------------------------------- the source contract
    def export_size(self, requested: tuple[int, int] | None, dynamic: bool) -> tuple[int, int]:
        fixed = (self.input_dims[3], self.input_dims[2])
        dims, where = self.input_dims, f"ONNX file '{self.path}'"
        if (dynamic and None not in fixed) or (dynamic and dims[0] is not None):
            raise InputError(
                f"--dynamic needs a graph with dynamic batch, height and width; {where} has input {dims}"
            )
        if None not in fixed and requested and tuple(requested) != fixed:
            raise InputError(
                f"--img-size {requested[0]}x{requested[1]} does not match {where}'s fixed input "
                f"{fixed[0]}x{fixed[1]}; leave --img-size out"
            )
        size = requested or self.img_size
        if size is None:
            raise InputError(f"{where} has a dynamic input size: give --img-size WxH (the size to export at)")
        w, h = int(size[0]), int(size[1])
        if w <= 0 or h <= 0 or w % self.size_multiple or h % self.size_multiple:
            raise InputError(f"--img-size {w}x{h}: width and height must divide by {self.size_multiple}")
        static = self._static_graph((w, h))
        if self.upsampled is None and self._fraction(static, (w, h)) > 1:
            self._add_upsampling(self._fraction(static, (w, h)))
            static = self._static_graph((w, h))
        if len(_dims(static.graph.output[0])) != 4:  # no shape inferred: does it run at this size?
            for finding in check_stride(self.model, (w, h), lambda s: self.size_advice(s, dynamic)):
                raise InputError(f"{where}: {finding.what}; {finding.fix}")
        self._check_output(static, (w, h))
        return w, h

    def _fraction(self, static: onnx.ModelProto, size: tuple[int, int]) -> int:
        """f when the static graph's logits are at 1/f of `size` (SegFormer's 1/4), else 1."""

        dims = _dims(static.graph.output[0])
        if len(dims) != 4 or None in dims[2:]:
            return 1
        return logits_scale((int(dims[2]), int(dims[3])), (size[1], size[0])) or 1  # type: ignore[arg-type]

    def _add_upsampling(self, factor: int) -> None:
        """Append a bilinear Resize of the logits to the input's height and width (half-pixel
        centres: PyTorch's align_corners=False, Hugging Face's post-processing) under the output's
        own name, so that every target's graph, and the reference, holds the same step."""
        from onnx import helper, numpy_helper

        g, out = self.model.graph, self.output_name
        low = f"{out}__edgeseg_low_res"
        for node in g.node:
            node.output[:] = [low if o == out else o for o in node.output]
            node.input[:] = [low if i == out else i for i in node.input]
        p = "edgeseg_upsample"
        g.initializer.extend(
            numpy_helper.from_array(np.array(v, np.int64), f"{p}_{n}")
            for n, v in (("0", [0]), ("2", [2]), ("4", [4]))
        )
        node = helper.make_node
        g.node.extend(
            [
                node("Shape", [low], [f"{p}_nc_all"], name=f"{p}_shape_logits"),
                node("Slice", [f"{p}_nc_all", f"{p}_0", f"{p}_2"], [f"{p}_nc"], name=f"{p}_nc"),
                node("Shape", [self.input_name], [f"{p}_in_all"], name=f"{p}_shape_input"),
                node("Slice", [f"{p}_in_all", f"{p}_2", f"{p}_4"], [f"{p}_hw"], name=f"{p}_hw"),
                node("Concat", [f"{p}_nc", f"{p}_hw"], [f"{p}_sizes"], name=f"{p}_sizes", axis=0),
                node("Resize", [low, "", "", f"{p}_sizes"], [out], name=p, mode="linear",
                     coordinate_transformation_mode="half_pixel"),
            ]
        )  # fmt: skip
        for dim in g.output[0].type.tensor_type.shape.dim[2:]:
            dim.Clear()
        self.upsampled = factor
        self._static.clear()

    def size_advice(self, size: tuple[int, int], dynamic: bool) -> str | None:
        if None not in (self.input_dims[2], self.input_dims[3]):  # the graph fixes its own size
            return f"export the ONNX file again with a {size[0]}x{size[1]} input"
        return super().size_advice(size, dynamic)

    def tensor_names(self) -> tuple[str, str]:
        return self.input_name, self.output_name

    def files(self) -> list[Path]:
        return [self.path, *(self.path.parent / name for name in self.external)]

    def source_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": self.kind, "onnx": recorded_path(self.path), "sha256": self.sha256}
        if self.external:
            # Loaded from beside the file and written into the bundle's single model file.
            record["external_data"] = {n: sha256_file(self.path.parent / n) for n in self.external}
        return record

    def model_record(self) -> dict[str, Any]:
        m = self.model
        record: dict[str, Any] = {
            "name": "onnx",
            "opset": _opset(m),
            "producer": f"{m.producer_name} {m.producer_version}".strip(),
        }
        if self.opset_given != _opset(m):
            record["opset_converted_from"] = self.opset_given
        if self.upsampled:
            record["logits_upsampled"] = self.upsampled  # the bilinear step edgeseg appended
        return record

    def write_onnx(self, path: Path, manifest: Manifest, *, opset: int) -> None:
        """The source graph (static at the manifest's size unless dynamic) with edgeseg's metadata.
        `opset` is not applied: the graph keeps its own (see the module docstring)."""
        import onnx

        size = (manifest.input.width, manifest.input.height)
        model = onnx.ModelProto()
        model.CopyFrom(self.model if manifest.dynamic_axes else self._static_graph(size))
        props = {p.key: p.value for p in model.metadata_props if not p.key.startswith(METADATA_PREFIX)}
        onnx.helper.set_model_props(model, {**props, **onnx_metadata(manifest)})
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            raise InputError(f"ONNX file '{self.path}' is not a valid graph: {first_line(exc)}") from None
        try:
            onnx.save_model(model, str(path))
        except ValueError as exc:  # a graph over protobuf's 2 GB limit
            raise EdgesegRuntimeError(f"cannot write '{path}': {first_line(exc)}") from exc

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        names = {0: "batch", 2: "height", 3: "width"}
        return {self.input_name: dict(names), self.output_name: dict(names)}

    def reference(self) -> Reference:
        """The source on ONNX Runtime; with edgeseg's upsampling appended (`upsampled`), the source
        graph plus that step, from a temporary file removed at close."""
        import shutil
        import tempfile

        path, tmp = self.path, None
        if self.upsampled:
            import onnx

            tmp = Path(tempfile.mkdtemp(prefix="edgeseg-source-"))
            path = tmp / self.path.name
            onnx.save_model(self.model, str(path))
        try:
            ref = onnx_reference(
                path,
                classes=self.classes,
                mean=self.mean,
                std=self.std,
                color_order=self.color_order,
                ignore_index=self.ignore_index,
                class_names=self.class_names,
            )
        except BaseException:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            raise
        if tmp is not None:
            close = ref.close

            def close_and_remove() -> None:
                close()
                shutil.rmtree(tmp, ignore_errors=True)

            ref.close, ref.source = close_and_remove, str(self.path)
            ref.label += f" with its 1/{self.upsampled} logits upsampled"
        ref.probabilities = "softmax" in self.output_steps
        return ref

    def segmenter_options(self, size: tuple[int, int]) -> dict[str, Any]:
        return {
            "img_size": size,
            "mean": self.mean,
            "std": self.std,
            "color_order": self.color_order,
            "class_names": self.class_names,
        }
