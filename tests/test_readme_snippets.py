"""Every Python block of the README runs, in order, as a user would run them after the quickstart.

The blocks execute in one namespace (later ones use what earlier ones defined, as a reader would) in
a folder laid out like the quickstart's output: `runs/quickstart/train/best.pt` and the bundles under
`runs/quickstart/bundles/` (the session's tiny checkpoint and its bundles, copied), a `photo.jpg` and
a small dataset at `path/to/data`. A few literals are scaled down so the suite stays fast (epochs,
sizes, frame counts, and the imported model's INT8 export runs as fp16: calibrating it takes
minutes); nothing else in a block is changed. A block whose first line says
`# needs: tensorrt` runs only where TensorRT is installed."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers import make_dataset

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^ *```python\n(.*?)^ *```", README, re.S | re.M)

# Literal -> what the test runs instead: the same call on the tiny fixtures, in seconds.
SCALE = {
    "epochs=20": "epochs=1",
    "img_size=(256, 256)": "img_size=(32, 32)",
    "max_frames=300": "max_frames=4",
    "img_size=(320, 240)": "img_size=(64, 48)",
    'target="onnx", precision="int8"': 'target="onnx", precision="fp16"',
}


def _dedent(block: str) -> str:
    lines = block.splitlines()
    indent = min((len(line) - len(line.lstrip()) for line in lines if line.strip()), default=0)
    return "\n".join(line[indent:] for line in lines) + "\n"


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 8
    assert any("Segmenter(" in b for b in BLOCKS[:1])  # the task-first block embeds Segmenter first


@pytest.fixture(scope="module")
def workspace(
    tiny_ckpt: Path, tiny_bundle: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    cv2 = pytest.importorskip("cv2", reason="pip install 'edgeseg[demo]'")
    root = tmp_path_factory.mktemp("readme")
    runs = root / "runs" / "quickstart"
    (runs / "train").mkdir(parents=True)
    shutil.copy(tiny_ckpt, runs / "train" / "best.pt")
    for target, precision in (("openvino", "int8"), ("onnx", "fp32"), ("openvino", "fp32")):
        shutil.copytree(tiny_bundle(target, precision), runs / "bundles" / f"{target}-{precision}-128x128")
    rng = np.random.default_rng(0)
    cv2.imwrite(str(root / "photo.jpg"), rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    make_dataset(root / "path" / "to" / "data", n=6)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        yield {"__name__": "readme"}
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(workspace: dict[str, Any], index: int) -> None:
    code = _dedent(BLOCKS[index])
    if code.startswith("# needs: tensorrt") and importlib.util.find_spec("tensorrt") is None:
        pytest.skip("this block runs where TensorRT is installed (a Jetson or a CUDA machine)")
    for literal, small in SCALE.items():
        code = code.replace(literal, small)
    exec(compile(code, f"README.md python block {index + 1}", "exec"), workspace)
