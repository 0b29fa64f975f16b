"""What an export starts from: an edgeseg checkpoint, or an ONNX file from another framework.

Every exporter starts from the same two things, whatever the source: an FP32 ONNX graph
(`ExportSource.write_onnx`) and the bundle's manifest draft (`ExportSource.draft`). The FP32
reference that parity, the mIoU drop and the accuracy-aware `--max-drop` search measure against is
also the source's (`ExportSource.reference`):

- `CheckpointSource`: the checkpoint's PyTorch model, exported with torch's dynamo exporter
  (edgeseg.exporters.torch_onnx.write_onnx); the reference is that PyTorch model.
- `OnnxSource` (edgeseg.exporters.onnx_source): the given graph itself, checked and brought to the
  export's size; the reference is the source file run on ONNX Runtime's CPU provider.

`open_export_source(path, facts)` (edgeseg.exporters.source_open) picks by the file: a `.onnx` is an ONNX
source, anything else a checkpoint.
`SourceFacts` are what a graph from elsewhere cannot say about itself (class names, normalisation,
channel order); an ONNX file written by edgeseg carries them in its metadata.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeseg._evidence import ClassSet
from edgeseg._guards import recorded_path, sequence_arg
from edgeseg._version import __version__
from edgeseg.errors import InputError
from edgeseg.evaluation.parity import Reference
from edgeseg.exporters.torch_onnx import write_onnx
from edgeseg.formats import get_target
from edgeseg.manifest import INPUT_NAME, OUTPUT_NAME, InputSpec, Manifest, OutputSpec, sha256_file

if TYPE_CHECKING:
    import torch

    from edgeseg.evaluation.parity import Reference
    from edgeseg.models.checkpoint import Checkpoint

__all__ = ["CheckpointSource", "ExportSource", "SourceFacts"]

_AXES = {0: "batch", 2: "height", 3: "width"}


@dataclass(frozen=True)
class SourceFacts:
    """Facts about a model that its file may not hold (an ONNX file from another framework).

    Attributes:
        classes: class names, or their count (names then default to class0, class1, ...).
        mean, std: per-channel normalisation, x = (pixel / 255 - mean) / std.
        color_order: the network's channel order, "RGB", "BGR" or "GRAY".
        ignore_index: the label id the metrics skip in labelled data, if any: a data option that
            every source takes (a checkpoint's recorded one included).
    Each one given wins over the file's own edgeseg metadata.
    """

    classes: int | tuple[str, ...] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    color_order: str | None = None
    ignore_index: int | None = None

    def given(self) -> list[str]:
        """The CLI names of the facts that are set."""
        return [*self.model_facts_given(), *(["--ignore-index"] if self.ignore_index is not None else [])]

    def model_facts_given(self) -> list[str]:
        """The CLI names of the set facts that describe the network itself (classes, normalisation,
        channel order): what a checkpoint holds and an ONNX file from elsewhere may not. The ignore
        label is not one of them: it describes labelled data, and every source takes it."""
        names = ("--classes", "--mean", "--std", "--color-order")
        values = (self.classes, self.mean, self.std, self.color_order)
        return [n for n, v in zip(names, values, strict=True) if v is not None]

    def class_names(self) -> tuple[str, ...] | None:
        if self.classes is None:
            return None
        if isinstance(self.classes, int):
            if self.classes < 1:
                raise InputError(f"--classes must be 1 or more; got {self.classes}")
            return tuple(f"class{i}" for i in range(self.classes))
        given = sequence_arg(self.classes, "classes", "classes=('road', 'car')")
        names = tuple(str(c).strip() for c in given)
        if not names or not all(names):
            raise InputError("--classes needs a count or comma-separated names, none of them empty")
        return names


class ExportSource(abc.ABC):
    """A model to export: its facts, its FP32 ONNX graph and its FP32 reference.

    Attributes:
        kind: "checkpoint" or "onnx" (the manifest's `source.kind`).
        path: the source file as given.
        class_names, channels, mean, std, color_order, resize, ignore_index: the model's facts.
        img_size: the default export size (width, height), or None when the model has none.
        size_multiple: what the input's sides must divide by.
        reference_label: how reports name the FP32 reference ("PyTorch" or the source ONNX).
        reference_backend: the edgeseg backend the reference runs on (benchmark's baseline row).
        facts: the `SourceFacts` the source was opened with.
        output_steps: what the graph itself does to its output (the manifest's
            `output.graph_steps`): ("softmax",) for a graph that ends in a softmax.
    """

    kind: str
    path: Path
    class_names: tuple[str, ...]
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    color_order: str
    resize: str = "stretch"
    ignore_index: int | None = None
    img_size: tuple[int, int] | None = None
    size_multiple: int = 1
    reference_label: str = "PyTorch"
    reference_backend: str = "torch"
    facts: SourceFacts | None = None  # what the caller stated about the model
    output_steps: tuple[str, ...] = ()

    @property
    def classes(self) -> int:
        return len(self.class_names)

    @property
    def sha256(self) -> str:
        return sha256_file(self.path)

    def files(self) -> list[Path]:
        """Every file the source is stored in: the model file, and for an ONNX file the external
        data beside it (what its size is, e.g. the benchmark's size column of its baseline row)."""
        return [self.path]

    def stored_bytes(self) -> int:
        """The size of the source on disk: all its `files`."""
        return sum(f.stat().st_size for f in self.files())

    def model_classes(self) -> ClassSet:
        """The model's classes, as labelled data and other models must agree with them."""
        return ClassSet.of(f"the model '{self.path}'", self.class_names)

    def default_bundle_dir(self, target: str, precision: str, dynamic: bool) -> Path:
        """Beside the source: runs/x/best.pt -> runs/x/unet-onnx-fp32 (a training run holds one
        model); model.onnx -> model-onnx-fp32 and an imported mine.pt -> mine-onnx-fp32 (a folder of
        models brought in holds many, told apart by their file names)."""
        suffix = "-dynamic" if dynamic else ""
        return self.path.parent / f"{self._bundle_stem()}-{target}-{precision}{suffix}"

    def _bundle_stem(self) -> str:
        return self.path.stem

    @abc.abstractmethod
    def export_size(self, requested: tuple[int, int] | None, dynamic: bool) -> tuple[int, int]:
        """The (width, height) to export at; InputError when it does not suit the model."""

    def size_advice(self, size: tuple[int, int], dynamic: bool) -> str | None:
        """What the user does to export this source at `size` = (width, height), as the export
        accepts it (`export_size` is the judge), or None when no option gets it there. The doctor
        phrases every size it advises with this, so its advice is what `export` then takes."""
        try:
            self.export_size(size, dynamic)
        except InputError:
            return None
        return f"--img-size {size[0]}x{size[1]}"

    def draft(self, target: str, precision: str, size: tuple[int, int], dynamic: bool) -> Manifest:
        """The manifest draft (no files, tools or parity yet) of an export of this source."""

        inp, out = self.tensor_names()
        runtime_precisions = get_target(target).runtime_precisions if precision == "fp32" else {}
        return Manifest(
            target=target,
            precision=precision,
            model_file="",
            class_names=self.class_names,
            input=InputSpec(
                name=inp,
                channels=self.channels,
                height=size[1],
                width=size[0],
                color_order=self.color_order,
                mean=self.mean,
                std=self.std,
                resize=self.resize,
                size_multiple=self.size_multiple,
            ),
            output=OutputSpec(name=out, classes=self.classes, graph_steps=self.output_steps),
            source=self.source_record(),
            model=self.model_record(),
            ignore_index=self.ignore_index,
            dynamic_axes=self.dynamic_axes() if dynamic else {},
            runtime_precisions={p: dict(options) for p, options in runtime_precisions.items()},
            edgeseg_version=__version__,
            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )

    def tensor_names(self) -> tuple[str, str]:
        """(input, output) tensor names of the FP32 graph."""
        return INPUT_NAME, OUTPUT_NAME

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        inp, out = self.tensor_names()
        return {inp: dict(_AXES), out: dict(_AXES)}

    @abc.abstractmethod
    def source_record(self) -> dict[str, Any]:
        """The manifest's `source`: the kind, the file as given and its sha256."""

    @abc.abstractmethod
    def model_record(self) -> dict[str, Any]:
        """The manifest's `model`: what the network is."""

    @abc.abstractmethod
    def write_onnx(self, path: Path, manifest: Manifest, *, opset: int) -> None:
        """Write the FP32 ONNX graph for `manifest`'s input (size, dynamic axes) and metadata."""

    @abc.abstractmethod
    def reference(self) -> Reference:
        """The FP32 reference, loaded (close it, or use it as a context manager)."""

    def segmenter_options(self, size: tuple[int, int]) -> dict[str, Any]:
        """`Segmenter` arguments that run the source itself at `size` (benchmark's baseline row)."""
        return {"img_size": size}

    def torch_module(self) -> torch.nn.Module | None:
        """The source's PyTorch module (contiguous layout) when it has one, else None."""
        return None

    def training_data(self) -> tuple[str, str | None]:
        """What the model was trained on: ("folder", absolute path), ("synthetic", None) or
        ("unknown", None) when the source does not record it (the default calibration source,
        edgeseg.exporters.calibration)."""
        return "unknown", None


class CheckpointSource(ExportSource):
    """An edgeseg checkpoint: the U-Net rebuilt from it, exported through torch."""

    kind = "checkpoint"

    def __init__(self, path: Path, ckpt: Checkpoint) -> None:
        self.path, self.ckpt = path, ckpt
        norm = ckpt.normalization
        self.class_names = tuple(ckpt.class_names)
        self.channels = ckpt.model_config.in_channels
        self.mean, self.std = tuple(norm.mean), tuple(norm.std)
        self.color_order, self.resize = norm.color_order, norm.resize
        self.ignore_index = ckpt.ignore_index
        self.img_size = ckpt.img_size
        self.size_multiple = ckpt.model_config.stride
        self._model: torch.nn.Module | None = None

    def _bundle_stem(self) -> str:
        if self.ckpt.model_config.family == "imported":  # the arch would be "imported" for every one
            return self.path.stem
        return self.ckpt.model_config.arch.replace(":", "-")  # unet, smp-unet, ...

    def export_size(self, requested: tuple[int, int] | None, dynamic: bool) -> tuple[int, int]:
        """The export size, or InputError naming the nearest size the architecture accepts."""
        from edgeseg.models.registry import round_to_stride

        w, h = (int(v) for v in (requested or self.ckpt.img_size))
        spec = self.ckpt.model_config
        if spec.family == "imported":
            if (w, h) != tuple(self.ckpt.img_size) or dynamic:
                iw, ih = self.ckpt.img_size
                raise InputError(
                    f"an imported model exports at the size it was imported at, {iw}x{ih}, with a fixed "
                    f"input size (got --img-size {w}x{h}{', --dynamic' if dynamic else ''}); import it "
                    "again with img_size=(W, H) for another size"
                )
            return w, h
        stride = spec.stride
        if w <= 0 or h <= 0 or w % stride or h % stride:
            raise InputError(
                f"--img-size {w}x{h} does not suit {spec.describe()}: width and height must divide by "
                f"{stride}; e.g. {round_to_stride(w, stride)}x{round_to_stride(h, stride)}"
            )
        return w, h

    def size_advice(self, size: tuple[int, int], dynamic: bool) -> str | None:
        if self.ckpt.model_config.family == "imported":  # its program is captured at one size
            return f"import the module again with img_size=({size[0]}, {size[1]})"
        return super().size_advice(size, dynamic)

    def source_record(self) -> dict[str, Any]:
        return {"kind": self.kind, "checkpoint": recorded_path(self.path), "sha256": self.sha256}

    def training_data(self) -> tuple[str, str | None]:
        training = self.ckpt.training or {}
        data = training.get("data")
        if "data" in training and (data is None or str(data).startswith("synthetic")):
            return "synthetic", None
        path = training.get("data_path")  # recorded since the training folder became the default
        return ("folder", str(path)) if path else ("unknown", None)

    def model_record(self) -> dict[str, Any]:
        cfg = self.ckpt.model_config
        return {"name": cfg.arch, **cfg.kwargs, **cfg.to_dict()}  # kwargs flat too: schema-1 readers

    def torch_module(self) -> torch.nn.Module:
        if self._model is None:
            import torch

            # Checkpoints build channels_last models (faster on CPU); torch.export of one with dynamic
            # shapes fails its shape constraints, and the exported graph is plain NCHW either way.
            self._model = self.ckpt.build_model("cpu").to(memory_format=torch.contiguous_format)
        return self._model

    def write_onnx(self, path: Path, manifest: Manifest, *, opset: int) -> None:

        write_onnx(self.torch_module(), path, manifest, opset=opset)

    def reference(self) -> Reference:

        ref = Reference.from_checkpoint(self.ckpt, self.torch_module())
        ref.ignore_index = self.ignore_index  # --ignore-index wins over the checkpoint's own
        return ref
