"""`edgeseg predict`."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeseg.cli._app import JsonOpt, ResizeKernelOpt, app, writable_dir, write_json_opt
from edgeseg.cli._facts import (
    ClassesOpt,
    ColorOrderOpt,
    ImgSizeOpt,
    MeanOpt,
    StdOpt,
    parse_facts,
    segmenter_options,
)
from edgeseg.cli._help import backend_help, model_help
from edgeseg.errors import InputError


def _collect_images(inputs: list[Path]) -> list[Path]:
    from edgeseg.data import IMAGE_SUFFIXES, list_images

    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = list_images(item)
            if not found:
                raise InputError(f"folder '{item}' holds no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif item.is_file():
            files.append(item)
        else:
            raise InputError(f"image '{item}' does not exist")
    stems = [p.stem for p in files]
    dupes = sorted({s for s in stems if stems.count(s) > 1})
    if dupes:
        raise InputError(
            f"{len(dupes)} image name(s) occur twice (e.g. '{dupes[0]}'): their outputs would overwrite "
            f"each other; predict them in separate runs"
        )
    return files


def _read_ahead(
    read: Callable[[Path], Any], files: list[Path], pool: ThreadPoolExecutor, ahead: int
) -> Iterator[Any]:
    """read(file) for every file in order, up to `ahead` files decoded in the pool while the caller
    works on earlier ones (bounded: a large folder is not held in memory at once)."""
    pending: deque[Future[Any]] = deque()
    for path in files:
        pending.append(pool.submit(read, path))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help=model_help())],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    backend: Annotated[str, typer.Option(help=backend_help())] = "auto",
    device: Annotated[str | None, typer.Option(help="Backend device (cpu, cuda, GPU, AUTO, ...).")] = None,
    out: Annotated[
        Path,
        typer.Option(
            callback=writable_dir, help="Folder for <stem>_mask.png, <stem>_color.png and <stem>_overlay.png."
        ),
    ] = Path("predictions"),
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Overlay opacity.")] = 0.5,
    legend: Annotated[
        bool, typer.Option(help="Add the class colour key beside the colour mask and the overlay.")
    ] = True,
    img_size: ImgSizeOpt = None,
    classes: ClassesOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    color_order: ColorOrderOpt = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace mask/overlay files (and --json) that already exist.")
    ] = False,
    mode: Annotated[
        str,
        typer.Option(
            help="throughput: the runtime's parallel streams over batches of images, decoding and PNG "
            "writing in threads; latency: one image at a time. The masks are the same."
        ),
    ] = "throughput",
    resize_kernel: ResizeKernelOpt = "pillow",
    json_path: JsonOpt = None,
) -> None:
    """Segment images: per image a mask PNG of class ids, the mask in class colours and a colour overlay
    (the colour pictures with the class key)."""
    import numpy as np
    from PIL import Image

    from edgeseg._claims import claim
    from edgeseg._cpu import usable_cores
    from edgeseg._io import atomic_path
    from edgeseg._paths import Output, check_outputs
    from edgeseg.data import SkipLog, parse_img_size, read_image
    from edgeseg.legend import MaskPictures
    from edgeseg.segmenter import MODES, Segmenter

    if mode.strip().lower() not in MODES:
        raise InputError(f"--mode must be latency or throughput; got '{mode}'")
    options = segmenter_options(
        parse_facts(classes, mean, std, color_order), parse_img_size(img_size) if img_size else None
    )
    files = _collect_images(images)
    names = [f"{p.stem}_{suffix}.png" for p in files for suffix in MaskPictures.SUFFIXES]
    check_outputs(
        [("MODEL", model), *(("IMAGE_OR_DIR", p) for p in images)],
        [Output("--out", out, "folder", names), Output("--json", json_path) if json_path else None],
        overwrite=overwrite,
    )
    rows = []
    skips = SkipLog(len(files))
    workers = max(2, usable_cores())
    with (
        claim(out),
        Segmenter(
            model,
            backend=backend,
            device=device,
            input_format="rgb",
            mode=mode,
            resize_kernel=resize_kernel,
            **options,
        ) as seg,
        ThreadPoolExecutor(workers, thread_name_prefix="edgeseg-io") as io,
    ):
        k = len(seg.class_names)
        pictures = MaskPictures(seg.class_names, alpha, legend=legend)  # RGB, like the images read here

        def write(path: Path, image: np.ndarray, mask: np.ndarray) -> None:
            for suffix, img in pictures(image, mask).items():
                with atomic_path(out / f"{path.stem}_{suffix}.png") as tmp:
                    Image.fromarray(img).save(tmp, format="PNG")

        # Decoded images awaiting their result (for the overlays), with their files.
        kept: deque[tuple[Path, np.ndarray]] = deque()

        def read(path: Path) -> np.ndarray | InputError:
            try:
                return read_image(path)  # RGB, or HxWx1 gray; the Segmenter converts to the model's
            except InputError as exc:
                return exc

        def frames() -> Iterator[np.ndarray]:
            # An unreadable file is named and left out here, in file order, before any mode batches
            # the frames: both modes segment exactly the readable images.
            for path, image in zip(files, _read_ahead(read, files, io, 2 * workers), strict=True):
                if isinstance(image, InputError):
                    skips.add(path, image)
                    continue
                kept.append((path, image))
                yield image

        results = (seg(f) for f in frames()) if seg.mode == "latency" else seg.predict_many(frames())
        writes = []
        for result in results:
            path, image = kept.popleft()
            writes.append(io.submit(write, path, image, result.mask))
            counts = np.bincount(result.mask.ravel(), minlength=k)
            rows.append(
                {
                    "image": str(path),
                    **{suffix: str(out / f"{path.stem}_{suffix}.png") for suffix in MaskPictures.SUFFIXES},
                    "class_fraction": {
                        n: round(float(c) / result.mask.size, 4)
                        for n, c in zip(seg.class_names, counts, strict=True)
                    },
                    "timings_ms": {key: round(v, 2) for key, v in result.timings.items()},
                }
            )
            typer.echo(f"{path.name}: {result.timings['total']:.1f} ms")
        for done in writes:
            done.result()  # a failed write raises here, before the summary
        skips.check_any_done(len(rows))
        skipped = f"; skipped {len(skips)} unreadable image(s)" if skips else ""
        typer.echo(
            f"wrote {len(names)} files for {len(rows)} image(s) to {out}{skipped} "
            f"({seg.backend.description}, {seg.mode} mode)"
        )
        write_json_opt(
            json_path,
            {
                "model": str(model),
                "backend": seg.backend.description,
                "mode": seg.mode,
                "written": len(rows),
                "images": rows,
                "skipped": skips.to_list(),
            },
        )
    skips.finish(len(rows), f"segmented: their masks and overlays are in '{out}'")
