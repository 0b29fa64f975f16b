"""edgeseg's TensorRT calls exist, with the signatures it calls, in the real bindings of 10.3 and 11.4.

The TensorRT Python bindings are wheels on the package index (`tensorrt-cu12-bindings`, ~1.2 MB);
their native libraries are not. So the fixture installs each version's bindings into a cache folder
(`pip install --no-deps --target`), builds empty stand-ins for the native libraries the extension
needs and cannot load here (their names from `readelf -d`, the C symbols from `nm -D`, compiled
with the system C compiler), imports the bindings in a subprocess with those on LD_LIBRARY_PATH and
has it print the API (tensorrt_api.dump). The AST walk of tensorrt_uses.py then checks every use in
edgeseg's source (all of it lives in edgeseg/targets/tensorrt/) against it. Skips, saying why, when
the wheels cannot be fetched.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.runtimes.tensorrt_uses import check

VERSIONS = ("10.3.0", "11.4.0.106")  # JetPack 6's TensorRT and the current major
HERE = Path(__file__).resolve().parent
PACKAGE = HERE.parents[1] / "edgeseg"
SOURCES = sorted(PACKAGE.rglob("*.py"))  # TensorRT lives in targets/tensorrt/; a use elsewhere counts too
# Outside the repository, kept between runs: the user's cache folder.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeseg-tests" / "trt-bindings"
EXTENSION = Path("tensorrt_bindings") / "tensorrt.so"
TOOLS = ("gcc", "readelf", "nm")


def _install(version: str) -> Path:
    """The bindings of `version` in the cache folder, installed on first use (atomically)."""
    target = CACHE / version
    if (target / EXTENSION).is_file():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=CACHE))
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--only-binary=:all:", "--no-input",
           "--disable-pip-version-check", "--quiet", "--target", str(tmp),
           f"tensorrt-cu12-bindings=={version}"]  # fmt: skip
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        done = subprocess.CompletedProcess(cmd, 1, "", "pip timed out after 180 s")
    if done.returncode != 0 or not (tmp / EXTENSION).is_file():
        shutil.rmtree(tmp, ignore_errors=True)
        why = (done.stderr.strip().splitlines() or ["the wheel has no tensorrt_bindings/tensorrt.so"])[-1]
        pytest.skip(f"cannot fetch tensorrt-cu12-bindings=={version} from the package index: {why}")
    try:
        os.replace(tmp, target)
    except OSError:  # another run installed it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _loadable(library: str) -> bool:
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def _stand_ins(extension: Path, folder: Path) -> list[str]:
    """Build empty shared objects for the libraries `extension` needs that do not load here, each
    defining every C symbol the extension imports that this process cannot resolve; their names."""
    dynamic = subprocess.run(["readelf", "-d", str(extension)], capture_output=True, text=True, check=True)
    missing = [lib for lib in re.findall(r"\(NEEDED\).*\[(.+?)\]", dynamic.stdout) if not _loadable(lib)]
    undefined = subprocess.run(
        ["nm", "-D", "--undefined-only", str(extension)], capture_output=True, text=True, check=True
    )
    here = ctypes.CDLL(None)  # python, libc, libm ...: what the process already provides
    symbols = sorted(
        parts[1]
        for parts in (line.split() for line in undefined.stdout.splitlines())
        if len(parts) == 2 and parts[0] == "U" and "@" not in parts[1] and not hasattr(here, parts[1])
    )
    source = folder / "stand_in.c"
    source.write_text("".join(f"void *{name}(void) {{ return 0; }}\n" for name in symbols))
    for lib in missing:
        cmd = ["gcc", "-shared", "-fPIC", f"-Wl,-soname,{lib}", "-o", str(folder / lib), str(source)]
        subprocess.run(cmd, capture_output=True, text=True, check=True)
    return symbols


@pytest.fixture(scope="module", params=VERSIONS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The API of one version's real bindings, as tensorrt_api.dump prints it."""
    absent = [tool for tool in TOOLS if shutil.which(tool) is None]
    if absent:
        pytest.skip(f"building stand-ins for TensorRT's native libraries needs {', '.join(absent)}")
    version = request.param
    target = _install(version)
    folder = tmp_path_factory.mktemp(f"trt{version}")
    symbols = _stand_ins(target / EXTENSION, folder)
    assert "createInferBuilder_INTERNAL" in symbols  # the scan found TensorRT's C entry points
    env = {
        **os.environ,
        "LD_LIBRARY_PATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("LD_LIBRARY_PATH")])),
        "PYTHONPATH": str(target),
        "PYTHONNOUSERSITE": "1",
    }
    cmd = [sys.executable, str(HERE / "tensorrt_api.py"), "tensorrt_bindings"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=folder, timeout=120)
    assert done.returncode == 0, f"importing the {version} bindings failed: {done.stderr[-2000:]}"
    found = json.loads(done.stdout)
    assert found["version"] == version
    return found


# What the walk must have followed for the check to mean anything: each object edgeseg creates.
FOLLOWED = {
    "trt.Builder", "Builder.create_network", "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
    "trt.OnnxParser", "OnnxParser.parse_from_file", "OnnxParser.get_error",
    "Builder.create_builder_config", "IBuilderConfig.set_memory_pool_limit", "MemoryPoolType.WORKSPACE",
    "Builder.create_optimization_profile", "IOptimizationProfile.set_shape",
    "IBuilderConfig.add_optimization_profile", "IBuilderConfig.clear_flag", "BuilderFlag.TF32",
    "IBuilderConfig.progress_monitor =", "IBuilderConfig.hardware_compatibility_level =",
    "Builder.build_serialized_network", "IProgressMonitor.phase_start (override)",
    "ILogger.log (override)", "ILogger.Severity.ERROR", "trt.Runtime", "Runtime.engine_host_code_allowed =",
    "Runtime.deserialize_cuda_engine", "ICudaEngine.create_execution_context",
    "ICudaEngine.get_tensor_profile_shape", "ICudaEngine.num_io_tensors", "trt.nptype",
    "IExecutionContext.set_input_shape", "IExecutionContext.set_tensor_address",
    "IExecutionContext.execute_async_v3",
}  # fmt: skip


def test_edgeseg_uses_only_what_the_bindings_have(api: dict[str, Any]):
    problems, uses = [], set()
    for path in SOURCES:
        report = check(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)), api)
        problems += report.problems
        uses |= report.uses
    assert problems == []
    assert uses >= FOLLOWED, sorted(FOLLOWED - uses)


def test_a_precision_flag_is_reported_on_11(api: dict[str, Any]):
    fake = (
        "def build(trt):\n"
        "    config = trt.Builder(trt.Logger(trt.Logger.ERROR)).create_builder_config()\n"
        "    config.set_flag(trt.BuilderFlag.FP16)\n"
    )
    report = check(fake, "fake.py", api)
    if api["version"].startswith("11."):  # TensorRT 11 is strongly typed only: no precision flags
        assert report.problems == [f"fake.py:3: BuilderFlag.FP16 does not exist (TensorRT {api['version']})"]
    else:
        assert report.problems == [] and {"BuilderFlag.FP16", "IBuilderConfig.set_flag"} <= report.uses


PRELUDE = """import tensorrt as trt
logger = trt.Logger(trt.Logger.WARNING)
builder = trt.Builder(logger)
network = builder.create_network(0)
config = builder.create_builder_config()
engine = trt.Runtime(logger).deserialize_cuda_engine(b"")
"""


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("builder.create_netwrk(0)", "Builder.create_netwrk does not exist"),
        ("builder.create_network(flags=0, typed=True)", "Builder.create_network has no keyword 'typed'"),
        ("trt.OnnxParser(network)", "OnnxParser(...) misses logger"),
        ("config.set_flag(trt.MemoryPoolType.WORKSPACE)", "'flag' takes BuilderFlag, given MemoryPoolType"),
        ("engine.num_io_tensors = 2", "ICudaEngine.num_io_tensors is read-only"),
        ("config.progress_monitor = logger", "'arg1' takes IProgressMonitor, given Logger"),
        ("from tensorrt import Builder as B; B(logger, 1)", "takes 1 positional arguments, given 2"),
        ("class M(trt.IProgressMonitor):\n    def phase_start(self, name): pass",
         "M.phase_start takes 2 parameters; IProgressMonitor has"),
        ("class R:\n    def load(self):\n        self.ctx = engine.create_execution_context()\n"
         "    def run(self):\n        ctx = self.ctx\n        ctx.enqueue_v3(0)",
         "IExecutionContext.enqueue_v3 does not exist"),
    ],
    ids=["method", "keyword", "missing", "enum-type", "read-only", "setter-type", "from-import", "override",
         "self-attr"],
)  # fmt: skip
def test_misuse_is_reported_with_its_line(api: dict[str, Any], line: str, expected: str):
    source = PRELUDE + line + "\n"
    report = check(source, "fake.py", api)
    assert len(report.problems) == 1 and expected in report.problems[0], report.problems
    assert int(report.problems[0].split(":")[1]) > PRELUDE.count("\n")  # the line of the misuse
