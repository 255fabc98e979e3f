"""The emulated cupy (tests/fakecupy) fails where CuPy fails, and the library copes with it.

These run in every test session: the stand-in is imported as ``cupy`` for the
test and removed after it, so a real CuPy (where installed) is left alone.
"""
import importlib
import pathlib
import sys

import numpy as np
import pytest

import tinyae
from tinyae import backend, metrics
from tinyae.callbacks import SaveReconstructions

FOLDER = pathlib.Path(__file__).resolve().parent / "fakecupy"


@pytest.fixture
def fake(monkeypatch):
    """The stand-in as ``cupy`` (and ``cupyx``) for one test; what was there before comes back."""
    loaded = sys.modules.get("cupy")
    if loaded is not None and getattr(loaded, "EMULATED", False):
        return loaded     # the session already runs on it (TINYAE_FAKE_CUPY=1)
    for name in ("cupy", "cupy.random", "cupy.cuda", "cupy.cuda.runtime", "cupyx"):
        monkeypatch.setitem(sys.modules, name, None)   # restored (or removed) after the test
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(FOLDER))
    return importlib.import_module("cupy")


@pytest.fixture
def on_fake_cupy(fake):
    """tinyae on the cupy backend of the stand-in."""
    with tinyae.using_backend("cupy"):
        yield fake


@pytest.mark.parametrize("leak", [
    lambda x: np.asarray(x),
    lambda x: np.testing.assert_array_equal(x, x),
    lambda x: np.arange(4.0)[x > 1],          # a host array indexed by a device mask
    lambda x: np.ones(4) + x,                 # a host array meets a device array
    lambda x: np.concatenate([np.ones(4), x]),
], ids=["asarray", "np.testing", "host[device_mask]", "host+device", "concatenate"])
def test_implicit_conversions_to_numpy_raise_as_in_cupy(fake, leak):
    x = fake.asarray(np.arange(4.0))
    with pytest.raises(TypeError, match="(Implicit conversion|Unsupported type)"):
        leak(x)


def test_explicit_copies_and_scalars_are_allowed(fake):
    x = fake.asarray(np.arange(6.0).reshape(2, 3))
    total = (x * 2).sum()
    assert type(total) is fake.ndarray and total.ndim == 0   # reductions stay on the device
    assert float(total) == 30.0 and int(x[1, 2]) == 5 and bool(x[0, 1])
    assert x.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and f"{total:.1f}" == "30.0"
    assert type(x.get()) is np.ndarray and type(fake.asnumpy(x)) is np.ndarray
    assert type(x).__module__.startswith("cupy") and fake.get_array_module(x) is fake


def test_launches_are_counted_and_views_are_not(fake):
    x = fake.zeros((4, 3))
    with fake.count_launches() as counts:
        y = fake.exp(x) + 1          # two kernels
        y.T, y.reshape(3, 4), y[1:]  # views: none
        y.sum(axis=0)                # one reduction
        y[0] = 2.0                   # one fill
        y.get()                      # one copy to the host
    assert counts == {"exp": 1, "add": 1, "sum": 1, "setitem": 1, "to_host": 1}


def test_a_kernel_writing_into_out_is_one_launch_and_returns_out(fake):
    a, out = fake.ones((2, 2)), fake.empty((2, 2))
    with fake.count_launches() as counts:
        result = fake.matmul(a, a, out=out)
        a.sum(axis=0, out=out[0])
    assert result is out and float(out[1, 1]) == 2.0
    assert counts == {"matmul": 1, "sum": 1}


def test_a_training_step_copies_no_gradient(on_fake_cupy):
    """Backward writes each gradient into its slot of the optimizer's flat buffer (a second
    one is added there), and the optimizer updates the group in one call."""
    import kernels
    model = tinyae.nn.Sequential(tinyae.nn.Dense(4, 3), tinyae.nn.ReLU(), tinyae.nn.Dense(3, 2))
    optimizer = tinyae.optim.Adam(model.parameters())
    x, y = (tinyae.tensor(np.full(shape, 0.5, dtype="float32")) for shape in ((5, 4), (5, 2)))
    with kernels.using_mode("reference"):
        for counted in (False, True):
            with on_fake_cupy.count_launches() as counts:
                optimizer.zero_grad()
                (tinyae.losses.mse(model(x), y) + tinyae.losses.mse(model(x), y)).backward()
                optimizer.step()
    assert "copy" not in counts and "setitem" not in counts, counts
    weight = model[0].weight
    assert weight.grad is weight.grad_buffer and weight.data is optimizer.flat_groups[0].data_views[0]


def test_cuda_kernels_keep_their_source_and_need_a_real_device(fake):
    kernel = fake.ElementwiseKernel("T x", "T y", "y = 2 * x", "tinyae_double")
    assert kernel.name == "tinyae_double" and "y = 2 * x" in kernel.args
    with pytest.raises(fake.RealDeviceRequired, match="tinyae_double.*cannot run CUDA C"):
        kernel(fake.zeros(3))


def test_host_statistics_take_device_arrays(on_fake_cupy, tmp_path):
    """The sample-quality helpers and SaveReconstructions copy device data to the host."""
    features = backend.to_backend(np.random.default_rng(0).standard_normal((20, 3)))
    mean, cov = metrics.feature_statistics(features)
    assert type(mean) is np.ndarray and cov.shape == (3, 3)
    assert metrics.frechet_distance(backend.to_backend(mean), cov, mean, cov) == pytest.approx(0)
    probabilities = backend.to_backend(np.eye(4)[np.arange(24) % 4])
    assert metrics.inception_score(probabilities, 2)[0] == pytest.approx(4.0)
    labels = backend.to_backend(np.arange(24) % 4)
    assert metrics.conditional_accuracy(probabilities, labels) == 1.0
    images = SaveReconstructions(tmp_path, backend.to_backend(np.zeros((2, 784)))).images
    assert type(images) is np.ndarray and images.dtype == np.float32
