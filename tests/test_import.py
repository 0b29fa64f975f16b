from __future__ import annotations

import subprocess
import sys


def test_import_is_cheap():
    code = (
        "import edgeseg, sys; "
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'openvino', 'matplotlib', 'cv2') "
        "if m in sys.modules]; "
        "assert not heavy, heavy; print(edgeseg.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_cli_help_does_not_import_torch():
    code = (
        "import sys; from edgeseg.cli import main; "
        "rc = main(['--help']); assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert "train" in out.stdout and "eval" in out.stdout


def test_lazy_names_resolve():
    import edgeseg

    assert edgeseg.UNet.__name__ == "UNet"
    assert callable(edgeseg.train)
    assert edgeseg.train.__module__ == "edgeseg.training.loop"
