"""Reference against fused kernels at the workload sizes, with pytest-benchmark.

Each group times one kernel at one size twice: ``[reference]`` (kernels.reference,
plain NumPy) and ``[fused]`` (kernels.cpu, Numba). Not part of the default test
run (testpaths = tests); run it with::

    python -m pytest benchmarks/bench_kernels.py --benchmark-only \\
        --benchmark-group-by=group --benchmark-max-time=0.5

Timings on the 2-core VMs move by up to 30% from run to run, and parallel
kernels collapse when another process uses a core (a parallel region then waits
a scheduler time slice, 6-16 ms, for its second thread; so does OpenBLAS).
Compare the two rows of a group within one run on an otherwise idle machine, or
set ``NUMBA_NUM_THREADS=1`` to compare one thread against NumPy's one thread.
``OPENBLAS_CORETYPE`` and the Numba thread count are recorded in extra_info.
The sizes are the layers of workloads A-E (see shared/PERFORMANCE.md), float32.
"""
import os

import numpy as np
import pytest

import kernels

DTYPE = "float32"
CONV_INPUTS = [(128, 1, 28, 28), (128, 32, 14, 14), (32, 1, 100, 100), (32, 32, 50, 50),
               (32, 64, 13, 13)]
K3_S2_P1 = (3, 3, 2, 2, 1, 1)
BIAS_ACT = [((256, 512), "relu"), ((128, 784), "sigmoid"), ((128, 32, 14, 14), "leaky_relu"),
            ((32, 32, 50, 50), "leaky_relu"), ((32, 1, 100, 100), "sigmoid")]
ACTIVATION = [((128, 32, 14, 14), "relu"), ((32, 32, 50, 50), "leaky_relu"),
              ((32, 1, 100, 100), "sigmoid"), ((128, 32, 14, 14), "tanh")]
BCE = [((256, 784), "mean"), ((128, 784), "sum"), ((32, 1, 100, 100), "sum"),
       ((128, 1, 28, 28), "none")]
LATENT = [(128, 20), (32, 150)]
BATCHNORM = [(32, 32, 50, 50), (32, 64, 25, 25), (32, 64, 13, 13), (128, 512)]
PARAMETERS = [784 * 512, 3136 * 150, 512]


@pytest.fixture(params=["reference", "fused"])
def mode(request):
    with kernels.using_mode(request.param):
        yield request.param


def data(shape, scale=1.0, offset=0.0, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale + offset).astype(DTYPE)


def timed(benchmark, group, function, *args):
    """Time function(*args) after one untimed call (Numba compiles or loads it there)."""
    benchmark.group = group
    benchmark.extra_info["OPENBLAS_CORETYPE"] = os.environ.get("OPENBLAS_CORETYPE", "(unset)")
    benchmark.extra_info["NUMBA_NUM_THREADS"] = os.environ.get("NUMBA_NUM_THREADS", "(default)")
    function(*args)
    benchmark(function, *args)


def name(shape):
    return "x".join(str(s) for s in shape)


def label(value):
    """Test id for a shape (256x512) or a word (relu)."""
    return name(value) if isinstance(value, tuple) else str(value)


@pytest.mark.parametrize("x_shape", CONV_INPUTS, ids=name)
def test_im2col(benchmark, mode, x_shape):
    timed(benchmark, f"im2col {name(x_shape)} k3s2p1", kernels.im2col, data(x_shape), *K3_S2_P1)


@pytest.mark.parametrize("x_shape", CONV_INPUTS, ids=name)
def test_col2im(benchmark, mode, x_shape):
    with kernels.using_mode("reference"):
        cols = kernels.im2col(data(x_shape), *K3_S2_P1)
    timed(benchmark, f"col2im {name(x_shape)} k3s2p1", kernels.col2im, cols, x_shape, *K3_S2_P1)


@pytest.mark.parametrize("shape, act", BIAS_ACT, ids=label)
def test_bias_act_forward(benchmark, mode, shape, act):
    timed(benchmark, f"bias_act_forward {name(shape)} {act}", kernels.bias_act_forward,
          data(shape, 3.0), data(shape[1]), act, 0.2)


@pytest.mark.parametrize("shape, act", BIAS_ACT, ids=label)
def test_bias_act_backward(benchmark, mode, shape, act):
    with kernels.using_mode("reference"):
        y = kernels.bias_act_forward(data(shape, 3.0), data(shape[1]), act, 0.2)
    timed(benchmark, f"bias_act_backward {name(shape)} {act}", kernels.bias_act_backward,
          data(shape, seed=1), y, act, 0.2)


@pytest.mark.parametrize("shape, act", ACTIVATION, ids=label)
def test_activation_forward(benchmark, mode, shape, act):
    timed(benchmark, f"activation_forward {name(shape)} {act}", kernels.activation_forward,
          data(shape, 3.0), act, 0.2)


@pytest.mark.parametrize("shape, act", ACTIVATION, ids=label)
def test_activation_backward(benchmark, mode, shape, act):
    with kernels.using_mode("reference"):
        y = kernels.activation_forward(data(shape, 3.0), act, 0.2)
    timed(benchmark, f"activation_backward {name(shape)} {act}", kernels.activation_backward,
          data(shape, seed=1), y, act, 0.2)


@pytest.mark.parametrize("shape, reduction", BCE, ids=label)
def test_sigmoid_bce_with_logits(benchmark, mode, shape, reduction):
    targets = np.random.default_rng(1).random(shape).astype(DTYPE)
    timed(benchmark, f"sigmoid_bce_with_logits {name(shape)} {reduction}",
          kernels.sigmoid_bce_with_logits, data(shape, 3.0), targets, reduction)


@pytest.mark.parametrize("shape", LATENT, ids=name)
def test_reparameterize(benchmark, mode, shape):
    timed(benchmark, f"reparameterize {name(shape)}", kernels.reparameterize,
          data(shape), data(shape, seed=1), data(shape, seed=2))


@pytest.mark.parametrize("shape", LATENT, ids=name)
def test_reparameterize_backward(benchmark, mode, shape):
    timed(benchmark, f"reparameterize_backward {name(shape)}", kernels.reparameterize_backward,
          data(shape), data(shape, seed=1), np.exp(data(shape, seed=2)))


@pytest.mark.parametrize("shape", LATENT, ids=name)
def test_kl_normal_forward_backward(benchmark, mode, shape):
    timed(benchmark, f"kl_normal_forward_backward {name(shape)}",
          kernels.kl_normal_forward_backward, data(shape), data(shape, seed=1))


@pytest.mark.parametrize("shape", BATCHNORM, ids=name)
def test_batchnorm_forward(benchmark, mode, shape):
    c = shape[1]
    timed(benchmark, f"batchnorm_forward {name(shape)}", kernels.batchnorm_forward,
          data(shape, 3.0, 1.0), data(c), data(c, seed=1), 1e-5)


@pytest.mark.parametrize("shape", BATCHNORM, ids=name)
def test_batchnorm_backward(benchmark, mode, shape):
    x, c = data(shape, 3.0, 1.0), shape[1]
    mean = x.mean(axis=kernels.reference.channel_sum_axes(x.ndim))
    invstd = 1 / np.sqrt(x.var(axis=kernels.reference.channel_sum_axes(x.ndim)) + 1e-5)
    timed(benchmark, f"batchnorm_backward {name(shape)}", kernels.batchnorm_backward,
          data(shape, seed=1), x, data(c), mean, invstd)


@pytest.mark.parametrize("size", PARAMETERS)
def test_adam_update(benchmark, mode, size):
    param, grad = data(size), data(size, seed=1)
    exp_avg, exp_avg_sq = np.zeros_like(param), np.zeros_like(param)
    timed(benchmark, f"adam_update {size}", kernels.adam_update, param, grad, exp_avg,
          exp_avg_sq, 10, 1e-3, 0.9, 0.999, 1e-8, 0.0)


@pytest.mark.parametrize("size", PARAMETERS[:1])
def test_rmsprop_update(benchmark, mode, size):
    param, grad = data(size), data(size, seed=1)
    square_avg, buffer = np.zeros_like(param), np.zeros_like(param)
    timed(benchmark, f"rmsprop_update {size} momentum", kernels.rmsprop_update, param, grad,
          square_avg, 1e-2, 0.99, 1e-8, 0.0, 0.9, buffer)
