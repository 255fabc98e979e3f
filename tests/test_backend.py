"""The backend module: choosing NumPy or CuPy, what happens where CuPy cannot run, mixed
backends, the shared host-copy and seed helpers, and the rule that tensor code asks the
backend for its array module instead of calling NumPy."""
import ast
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import tinyae
from tinyae import backend

from conftest import CUPY_READY

PACKAGE = pathlib.Path(tinyae.__file__).resolve().parent


# ---------------------------------------------------------------- choosing a backend
def test_unknown_backend_is_refused():
    active = tinyae.get_backend()
    with pytest.raises(ValueError, match="unknown backend"):
        tinyae.set_backend("jax")
    assert tinyae.get_backend() == active


@pytest.mark.skipif(CUPY_READY, reason="checks the error raised where CuPy cannot run")
def test_cupy_where_unavailable_says_why_and_numpy_stays_active():
    with pytest.raises(tinyae.BackendError, match="(CuPy is not installed|no CUDA device)"):
        tinyae.set_backend("cupy")
    assert tinyae.get_backend() == "numpy"
    with pytest.raises(tinyae.BackendError):
        with tinyae.using_backend("cupy"):
            pass
    assert tinyae.get_backend() == "numpy"


def import_with(**env):
    code = "import tinyae; print(tinyae.get_backend())"
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=120)


def test_environment_variable_selects_the_backend():
    assert import_with(TINYAE_BACKEND="numpy").stdout.strip() == "numpy"
    done = import_with(TINYAE_BACKEND="cupy")
    assert done.returncode == 0, done.stderr
    if CUPY_READY:
        assert done.stdout.strip() == "cupy"
    else:  # import still works, and the warning says what is true
        assert done.stdout.strip() == "numpy"
        assert ("TINYAE_BACKEND=cupy could not be honoured, so the numpy backend is active"
                in done.stderr)
        assert "Traceback" not in done.stderr


def test_an_unknown_backend_in_the_environment_is_a_warning_not_a_crash():
    done = import_with(TINYAE_BACKEND="jax")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "numpy"
    assert "TINYAE_BACKEND=jax could not be honoured" in done.stderr
    assert "unknown backend 'jax'" in done.stderr


def test_mixed_backends_name_both():
    class FakeCupyArray:  # stands in for a cupy.ndarray where no GPU is present
        __module__ = "cupy._core.core"
        shape, ndim, dtype = (1,), 1, np.dtype("float32")

    with pytest.raises(tinyae.BackendError, match="numpy and cupy"):
        backend.get_array_module(np.zeros(1), FakeCupyArray())


@pytest.mark.gpu
@pytest.mark.skipif(not CUPY_READY, reason="needs CuPy and a CUDA device")
def test_mixed_backends_in_an_op_name_both_on_a_gpu():
    import cupy
    a = tinyae.Tensor(np.ones(2, dtype=np.float32))
    b = tinyae.Tensor(cupy.ones(2, dtype=cupy.float32))
    with pytest.raises(tinyae.BackendError, match="numpy"):
        a + b


# ---------------------------------------------------------------- the shared helpers
def test_to_numpy_takes_arrays_tensors_and_lists(backend_name):
    t = tinyae.tensor([[1.0, 2.0]])
    for values in (t, t.data, [[1.0, 2.0]]):
        host = backend.to_numpy(values)
        assert isinstance(host, np.ndarray)
        np.testing.assert_array_equal(host, [[1.0, 2.0]])


def test_to_numpy_copies_only_when_asked_on_the_host():
    array = np.zeros(3, dtype=np.float32)
    assert backend.to_numpy(array) is array or np.shares_memory(backend.to_numpy(array), array)
    copy = backend.to_numpy(array, copy=True)
    copy += 1
    np.testing.assert_array_equal(array, 0)


def test_as_generator_rules():
    generator = np.random.default_rng(5)
    assert backend.as_generator(generator) is generator
    assert backend.as_generator(None, default=generator) is generator
    assert backend.as_generator(3).random() == np.random.default_rng(3).random()
    assert backend.as_generator([3, 1]).random() == np.random.default_rng([3, 1]).random()
    assert isinstance(backend.as_generator(None), np.random.Generator)  # fresh entropy


@pytest.mark.parametrize("make", [tinyae.tensor, tinyae.Parameter], ids=["tensor", "Parameter"])
def test_python_numbers_become_float32_on_the_active_backend(backend_name, make):
    """Like torch: Parameter([1.0, 2.0]) and tensor([1.0, 2.0]) are float32, on the active
    backend; a floating array keeps its dtype."""
    for values in ([1.0, 2.0], [1, 2], [True, False]):
        t = make(values)
        assert t.dtype == np.float32 and t.backend == backend_name
    t = make(np.array([1.0, 2.0]))
    assert t.dtype == np.float64 and t.backend == backend_name


def test_object_arrays_are_refused_not_turned_into_nan():
    for values in (np.array([1, None], dtype=object), [1, None], ["a", "b"]):
        with pytest.raises(TypeError, match="takes numbers"):
            tinyae.tensor(values)
    with pytest.raises(TypeError, match="takes numbers"):
        tinyae.Parameter(np.array([1, None], dtype=object))


# ---------------------------------------------------------------- the rule
# Modules that work on host arrays by design, with NumPy: the backend itself; data files,
# plots, checkpoints, model files and safetensors weights (host formats); the training
# loop's and the studies' host bookkeeping (seeds, shuffles, histories); metrics, samplers and latent-space tools,
# which take host copies of codes and images; gradcheck, which compares a host float64
# copy of the analytic gradient with differences taken one Python float at a time.
HOST_MODULES = {
    "backend.py", "data.py", "plot.py", "checkpoint.py", "io.py", "train.py", "callbacks.py",
    "cli.py", "runtime.py", "gradcheck.py", "__main__.py", "weights.py", "models/modelfile.py",
    "models/sampler.py", "models/latent.py", "metrics/*", "studies/*",
}
# What the other modules may still take from NumPy: facts about data, not computation on
# it (dtypes, shapes), and host random Generators (one seed, the same draws on every backend).
METADATA = {"dtype", "float16", "float32", "float64", "int32", "int64", "uint64", "bool_", "integer",
            "floating", "generic", "ndarray", "finfo", "iinfo", "random", "errstate",
            "broadcast_shapes"}


def is_host_module(relative):
    folder = relative.split("/")[0] + "/*"
    return relative in HOST_MODULES or folder in HOST_MODULES


def numpy_uses(path):
    """(line, 'numpy.name') for every use of NumPy beyond METADATA in the file."""
    tree = ast.parse(path.read_text(), str(path))
    aliases = {"numpy"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname or a.name for a in node.names if a.name == "numpy"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("numpy"):
            found += [(node.lineno, f"from {node.module} import {a.name}") for a in node.names
                      if node.module != "numpy" or a.name not in METADATA]
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr not in METADATA):
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
    return sorted(found)


def test_tensor_code_asks_the_backend_instead_of_calling_numpy():
    """Code that computes on tensor data gets its array module from tinyae.backend
    (``backend.get_array_module(x)``), so it runs on NumPy and CuPy alike; host NumPy on
    tensor data would copy CuPy arrays to the host or fail. New host-side modules go
    into HOST_MODULES, with the reason above."""
    problems = []
    checked = 0
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if is_host_module(relative):
            continue
        checked += 1
        problems += [f"{relative}:{line}: {use}" for line, use in numpy_uses(path)]
    assert checked >= 15  # autograd, ops, functional, losses, optim, nn, models, ...
    assert not problems, "host NumPy on tensor data; ask tinyae.backend:\n" + "\n".join(
        problems)


def test_the_rule_sees_what_it_should(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import numpy as np\nfrom numpy import exp\n"
                      "def f(x):\n    return np.asarray(x).astype(np.float32) + exp(1)\n")
    assert numpy_uses(sample) == [(2, "from numpy import exp"), (4, "np.asarray")]
