"""The autodiff engine: graph walk, accumulation, release, seeds, errors, backends."""
import gc
import tracemalloc

import numpy as np
import pytest

import tinyae
from tinyae import backend
from tinyae.autograd import Function

from conftest import CUPY_READY, to_tensor


def test_node_used_many_times_accumulates(backend_name):
    # y = x*x + x*x*x  used through a diamond; dy/dx = 2x + 3x^2
    x = to_tensor([2.0, -1.0], requires_grad=True)
    a = x * x
    y = (a + a * x).sum()
    y.backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), [2 * 2 + 3 * 4, -2 + 3])


def test_deep_chain_is_walked_without_recursion(backend_name):
    x = to_tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), [1.0001 ** 5000], rtol=1e-9)


def test_leaf_gradients_accumulate_across_backward_calls(backend_name):
    x = to_tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), [6.0, 6.0])
    x.zero_grad()
    assert x.grad is None


def test_scalar_seed_defaults_to_one_and_non_scalar_needs_a_seed(backend_name):
    x = to_tensor([[1.0, 2.0]], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"non-scalar.*\(1, 2\).*backward\(grad\)"):
        (x * 2).backward()
    (x * 2).backward(np.array([[1.0, 10.0]]))
    np.testing.assert_allclose(backend.to_numpy(x.grad), [[2.0, 20.0]])


def test_seed_of_wrong_shape_is_refused(backend_name):
    x = to_tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="seed gradient"):
        (x * 2).backward(np.ones(3))


def test_second_backward_through_released_graph_says_what_to_do(backend_name):
    x = to_tensor([1.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_shared_subgraph_released_by_first_loss_is_detected(backend_name):
    x = to_tensor([1.0], requires_grad=True)
    h = x * x
    (h * 2).sum().backward()
    with pytest.raises(RuntimeError, match="released"):
        (h * 3).sum().backward()


def test_retain_graph_allows_a_second_pass(backend_name):
    x = to_tensor([3.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), [12.0])


def test_backward_on_tensor_without_grad(backend_name):
    with pytest.raises(RuntimeError, match="does not require grad"):
        to_tensor([1.0]).sum().backward()


def test_no_grad_records_nothing(backend_name):
    x = to_tensor([1.0], requires_grad=True)
    with tinyae.no_grad():
        y = x * 2
    assert y.creator is None and not y.requires_grad
    assert tinyae.is_grad_enabled()


def test_detach_cuts_the_graph(backend_name):
    x = to_tensor([2.0], requires_grad=True)
    y = (x * x.detach()).sum()  # d/dx treats the detached factor as a constant
    y.backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), [2.0])


def test_numpy_returns_a_host_array(backend_name):
    x = to_tensor([1.0, 2.0])
    host = x.numpy()
    assert type(host) is np.ndarray
    np.testing.assert_array_equal(host, [1.0, 2.0])


def test_unused_input_gets_no_gradient_and_multi_output_functions_work(backend_name):
    class Split(Function):
        """Two outputs: (x, 2x); dL/dx = g1 + 2 g2."""

        def forward(self, x):
            return x, 2 * x

        def backward(self, g1, g2):
            return g1 + 2 * g2

    x = to_tensor([1.0, 1.0], requires_grad=True)
    z = to_tensor([5.0], requires_grad=True)
    a, b = Split().apply(x)
    (b * 3).sum().backward()  # a unused: its gradient is zero
    np.testing.assert_allclose(backend.to_numpy(x.grad), [6.0, 6.0])
    assert z.grad is None


def test_memory_stays_flat_over_10000_steps(backend_name):
    """The graph is released after backward: 10,000 small training-like steps must not
    grow memory. tracemalloc sees NumPy's allocations on the host."""
    rng = np.random.default_rng(0)
    w = tinyae.tensor(rng.standard_normal((8, 4)).astype(np.float32), requires_grad=True)
    x = tinyae.tensor(rng.standard_normal((16, 8)).astype(np.float32))

    def step():
        loss = (tinyae.sigmoid(x @ w) - 0.5).mean() + (w * w).sum() * 1e-3
        loss.backward()
        with tinyae.no_grad():
            w.data -= 0.01 * w.grad
        w.grad = None

    for _ in range(200):  # warm up caches and allocator pools
        step()
    gc.collect()
    tracemalloc.start()
    for _ in range(2000):
        step()
    after_warmup, _ = tracemalloc.get_traced_memory()
    for _ in range(8000):
        step()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert end - after_warmup < 64 * 1024, f"memory grew by {end - after_warmup} bytes"


# ---------------------------------------------------------------- backends
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


def test_environment_variable_selects_the_backend(monkeypatch):
    import subprocess
    import sys
    code = "import tinyae; print(tinyae.get_backend())"
    env = dict(__import__("os").environ, TINYAE_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "numpy"
    env["TINYAE_BACKEND"] = "cupy"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if CUPY_READY:
        assert out.stdout.strip() == "cupy"
    else:
        assert "BackendError" in out.stderr and "cupy" in out.stderr


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


def test_check_finite_names_what(backend_name):
    tinyae.check_finite(to_tensor([1.0, 2.0]), "loss")
    with pytest.raises(FloatingPointError, match=r"loss is not finite: 1 NaN and 1 Inf"):
        tinyae.check_finite(to_tensor([np.nan, np.inf, 1.0]), "loss")


def test_gradcheck_reports_the_worst_element(backend_name):
    class WrongSquare(Function):
        """y = x^2 with a deliberately wrong backward (3x instead of 2x)."""

        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, gy):
            return gy * 3 * self.x

    x = to_tensor([[1.0, 2.0]], requires_grad=True)
    with pytest.raises(tinyae.GradcheckError, match=r"input 0 .*element \(0, 1\).*analytic"):
        tinyae.gradcheck(lambda t: WrongSquare().apply(t), x)


def test_gradcheck_refuses_float32(backend_name):
    x = tinyae.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        tinyae.gradcheck(lambda t: t * t, x)


def test_tensor_and_parameter_copy_the_callers_array(backend_name):
    host = np.ones(3)
    t = tinyae.tensor(host)
    p = tinyae.Parameter(host)
    t.data += 1
    p.data += 1
    np.testing.assert_array_equal(host, np.ones(3))
