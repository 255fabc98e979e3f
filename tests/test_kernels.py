"""Every fused kernel agrees with its plain reference in kernels/reference.py.

One test body per kernel, run on every backend (the ``xp`` fixture: NumPy, whose
arrays go to the Numba kernels, and CuPy where a GPU is present), in float64
and float32, on random small shapes drawn by Hypothesis.

Tolerances: float64 agrees to 1e-12 (relative, and absolute relative to the
largest entry, because a sum may cancel to near zero). float32 tolerances are
the ones documented in each kernel's docstring (kernels/cpu.py), listed in
FLOAT32 below. Kernels that are pure copies, sums in the reference's order or
IEEE + - * / sqrt in the reference's order are bit for bit equal on the CPU
(EXACT_ON_CPU); on the GPU, NVRTC may fuse a * b + c, so they get the float
tolerances there.
"""
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import kernels
from kernels import reference
from tinyae.backend import backend_of, to_numpy

ROOT = pathlib.Path(__file__).resolve().parents[1]
DTYPES = ["float64", "float32"]

# float32 (rtol, atol) of a fused kernel against the reference, as documented in kernels/cpu.py.
FLOAT32 = {
    "im2col": (0, 0),
    "col2im": (1e-6, 1e-6),
    "activation_forward": (1e-6, 1e-6),
    "activation_backward": (1e-6, 1e-6),
    "bias_act_forward": (1e-6, 1e-6),
    "bias_act_backward": (1e-5, 1e-5),
    "sigmoid_bce_with_logits": (1e-5, 1e-6),
    "bce_forward": (1e-5, 1e-6),
    "bce_backward": (1e-6, 1e-6),
    "reparameterize": (1e-6, 1e-6),
    "reparameterize_backward": (1e-6, 1e-6),
    "kl_normal_forward_backward": (1e-5, 1e-6),
    "batchnorm_forward": (1e-5, 1e-5),
    "batchnorm_backward": (1e-5, 1e-5),
    "batchnorm_update_running": (1e-6, 1e-6),
    "dropout_forward": (0, 0),
    "matmul_accumulate": (1e-5, 1e-5),
    "adam_update": (1e-6, 1e-7),
    "rmsprop_update": (1e-6, 1e-7),
}
EXACT_ON_CPU = {"im2col", "col2im", "activation_backward", "reparameterize_backward",
                "adam_update", "rmsprop_update", "bce_backward",
                "batchnorm_update_running", "dropout_forward", "matmul_accumulate"}

# Few examples: each is cheap, but CI starts with an empty compile cache.
few_examples = settings(max_examples=12, deadline=None,
                        suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_agrees(kernel, actual, expected, dtype):
    """actual (fused) against expected (reference), with the kernel's tolerance."""
    on_cpu = backend_of(actual) == "numpy"
    actual, expected = to_numpy(actual), to_numpy(expected)
    assert actual.shape == expected.shape, f"{kernel}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{kernel}: dtype {actual.dtype} != {expected.dtype}"
    if kernel in EXACT_ON_CPU and on_cpu:
        np.testing.assert_array_equal(actual, expected, err_msg=kernel)
        return
    rtol, atol = (1e-12, 1e-12) if dtype == "float64" else FLOAT32[kernel]
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=kernel)


def fused(kernel, *args):
    with kernels.using_mode("fused"):
        return getattr(kernels, kernel)(*args)


def agree(kernel, dtype, *args):
    """Run the fused kernel and the reference on the same inputs and compare every output."""
    got, want = fused(kernel, *args), getattr(reference, kernel)(*args)
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_agrees(kernel, g, w, dtype)
    else:
        assert_agrees(kernel, got, want, dtype)
    return want


def random(xp, seed, shape, dtype, scale=1.0, offset=0.0):
    """Standard-normal test data (scaled and shifted) on the active backend."""
    values = np.random.default_rng(seed).standard_normal(shape) * scale + offset
    return xp.asarray(values.astype(dtype))


seeds = st.integers(0, 2**32 - 1)
dtypes = st.sampled_from(DTYPES)


@st.composite
def conv_geometry(draw):
    """(x_shape, kh, kw, sh, sw, ph, pw) with at least one output position."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, kh - 2 * ph), 9))
    w = draw(st.integers(max(1, kw - 2 * pw), 9))
    n, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return (n, c, h, w), kh, kw, draw(st.integers(1, 3)), draw(st.integers(1, 3)), ph, pw


def channel_shapes():
    """(N, F) for dense layers or (N, C, H, W) for convolutions."""
    dense = st.tuples(st.integers(1, 9), st.integers(1, 9))
    conv = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 6), st.integers(1, 6))
    return st.one_of(dense, conv)


# ---------------------------------------------------------- im2col / col2im
@few_examples
@given(geometry=conv_geometry(), dtype=dtypes, seed=seeds)
def test_im2col_and_col2im_match_reference(xp, geometry, dtype, seed):
    x_shape, *conv = geometry
    x = random(xp, seed, x_shape, dtype)
    cols = agree("im2col", dtype, x, *conv)
    agree("col2im", dtype, random(xp, seed + 1, cols.shape, dtype), x_shape, *conv)


@few_examples
@given(geometry=conv_geometry(), seed=seeds)
def test_col2im_is_the_adjoint_of_im2col(xp, geometry, seed):
    """<im2col(x), c> == <x, col2im(c)> for every x and c (float64)."""
    x_shape, *conv = geometry
    x = random(xp, seed, x_shape, "float64")
    cols = fused("im2col", x, *conv)
    c = random(xp, seed + 1, cols.shape, "float64")
    left = float((cols * c).sum())
    right = float((x * fused("col2im", c, x_shape, *conv)).sum())
    assert left == pytest.approx(right, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("x_shape", [(4, 32, 14, 14), (2, 1, 100, 100), (2, 64, 13, 13),
                                     (3, 8, 7, 7)])
def test_im2col_and_col2im_at_workload_shapes(xp, x_shape):
    """The real layers' geometry (k3 s2 p1, odd sizes included), smaller batches."""
    x = random(xp, 0, x_shape, "float32")
    cols = agree("im2col", "float32", x, 3, 3, 2, 2, 1, 1)
    agree("col2im", "float32", cols, x_shape, 3, 3, 2, 2, 1, 1)


def test_col2im_rejects_a_mismatched_column_matrix(xp):
    cols = xp.zeros((9, 10), dtype="float32")
    with pytest.raises(ValueError, match="x_shape"):
        fused("col2im", cols, (1, 1, 5, 5), 3, 3, 1, 1, 1, 1)


# ------------------------------------------------------------- activations
@few_examples
@given(shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=5),
       act=st.sampled_from(reference.FUSED_ACTIVATIONS), dtype=dtypes, seed=seeds)
def test_activation_forward_and_backward_match_reference(xp, shape, act, dtype, seed):
    x = random(xp, seed, shape, dtype, scale=3.0)
    y = agree("activation_forward", dtype, x, act, 0.2)
    agree("activation_backward", dtype, random(xp, seed + 1, shape, dtype), y, act, 0.2)


def test_activation_kernels_on_non_contiguous_arrays(xp):
    x = random(xp, 0, (4, 6), "float32", scale=3.0).T          # a transposed view
    for act in reference.FUSED_ACTIVATIONS:
        y = agree("activation_forward", "float32", x, act, 0.2)
        agree("activation_backward", "float32", x, y, act, 0.2)


def test_sigmoid_kernel_is_stable_at_extremes(xp):
    x = xp.asarray(np.array([-1e4, -800.0, 0.0, 800.0, 1e4]))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = fused("activation_forward", x, "sigmoid")
    np.testing.assert_array_equal(to_numpy(y), [0.0, 0.0, 0.5, 1.0, 1.0])


# ------------------------------------------------------- bias + activation
@few_examples
@given(shape=channel_shapes(), act=st.sampled_from(reference.FUSED_ACTIVATIONS), dtype=dtypes,
       seed=seeds)
def test_bias_act_forward_and_backward_match_reference(xp, shape, act, dtype, seed):
    z = random(xp, seed, shape, dtype, scale=3.0)
    bias = random(xp, seed + 1, shape[1], dtype)
    y = agree("bias_act_forward", dtype, z, bias, act, 0.2)
    agree("bias_act_backward", dtype, random(xp, seed + 2, shape, dtype), y, act, 0.2)


def test_parameter_gradients_are_written_into_the_buffers_given(xp):
    """bias_act_backward's gbias and batchnorm_backward's ggamma, gbeta go into the
    arrays given (an optimizer's flat gradient buffer) and are those arrays."""
    gy, x = random(xp, 0, (4, 3, 2, 2), "float32"), random(xp, 1, (4, 3, 2, 2), "float32")
    gamma = random(xp, 2, 3, "float32")
    buffers = xp.zeros(9, dtype="float32")
    _, gbias = fused("bias_act_backward", gy, x, "leaky_relu", 0.2, buffers[:3])
    _, mean, invstd = reference.batchnorm_forward(x, gamma, gamma, 1e-5)
    _, ggamma, gbeta = fused("batchnorm_backward", gy, x, gamma, mean, invstd, buffers[3:6],
                             buffers[6:])
    want = reference.bias_act_backward(gy, x, "leaky_relu", 0.2)[1:]
    want += reference.batchnorm_backward(gy, x, gamma, mean, invstd)[1:]
    np.testing.assert_allclose(to_numpy(buffers), np.concatenate([to_numpy(w) for w in want]),
                               rtol=1e-5, atol=1e-5)
    for got in (gbias, ggamma, gbeta):
        assert np.shares_memory(to_numpy(got), to_numpy(buffers)) or backend_of(got) == "cupy"


def test_bias_act_rejects_an_unknown_activation(xp):
    z = xp.zeros((2, 3), dtype="float32")
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        fused("bias_act_forward", z, xp.zeros(3, dtype="float32"), "gelu")


# ------------------------------------------------------------------ losses
@few_examples
@given(shape=channel_shapes(), reduction=st.sampled_from(["mean", "sum", "none"]),
       dtype=dtypes, seed=seeds)
def test_sigmoid_bce_with_logits_matches_reference(xp, shape, reduction, dtype, seed):
    logits = random(xp, seed, shape, dtype, scale=5.0)
    targets = xp.asarray(np.random.default_rng(seed + 1).random(shape).astype(dtype))
    agree("sigmoid_bce_with_logits", dtype, logits, targets, reduction)


@few_examples
@given(shape=channel_shapes(), reduction=st.sampled_from(["mean", "sum", "none"]),
       dtype=dtypes, seed=seeds)
def test_bce_forward_and_backward_match_reference(xp, shape, reduction, dtype, seed):
    values = np.random.default_rng(seed).random((2,) + shape)
    values[0].flat[0], values[0].flat[-1] = 0.0, 1.0      # the clamped logs
    p, targets = (xp.asarray(v.astype(dtype)) for v in values)
    loss = agree("bce_forward", dtype, p, targets, reduction)
    gy = random(xp, seed + 1, tuple(loss.shape), dtype)
    agree("bce_backward", dtype, gy, p, targets, reduction)


def test_bce_forward_is_nan_for_a_p_outside_0_1(xp):
    p = xp.asarray(np.array([0.5, 1.5, 0.0], dtype="float32"))
    targets = xp.asarray(np.array([1.0, 1.0, 0.0], dtype="float32"))
    assert np.isnan(float(fused("bce_forward", p, targets, "sum")))
    assert float(fused("bce_forward", p[::2], targets[::2], "sum")) == pytest.approx(np.log(2))


def test_sigmoid_bce_with_logits_is_stable_for_large_logits(xp):
    logits = xp.asarray(np.array([-1e4, -100.0, 0.0, 100.0, 1e4], dtype="float32"))
    targets = xp.asarray(np.array([0.0, 1.0, 0.5, 0.0, 1.0], dtype="float32"))
    loss, grad = fused("sigmoid_bce_with_logits", logits, targets, "sum")
    # Losses: 0, 100, log 2, 100, 0; gradients sigmoid(x) - y.
    assert float(loss) == pytest.approx(200 + np.log(2), rel=1e-6)
    np.testing.assert_allclose(to_numpy(grad), [0, -1, 0, 1, 0], atol=1e-7)


# ------------------------------------------------------ VAE: KL and sampling
@few_examples
@given(n=st.integers(1, 9), d=st.integers(1, 9), dtype=dtypes, seed=seeds)
def test_reparameterize_and_kl_match_reference(xp, n, d, dtype, seed):
    mu, logvar = random(xp, seed, (n, d), dtype), random(xp, seed + 1, (n, d), dtype)
    eps = random(xp, seed + 2, (n, d), dtype)
    z, std = agree("reparameterize", dtype, mu, logvar, eps)
    agree("reparameterize_backward", dtype, random(xp, seed + 3, (n, d), dtype), eps, std)
    agree("kl_normal_forward_backward", dtype, mu, logvar)


# ------------------------------------------------------------- batch norm
@few_examples
@given(shape=channel_shapes(), dtype=dtypes, seed=seeds)
def test_batchnorm_forward_and_backward_match_reference(xp, shape, dtype, seed):
    x = random(xp, seed, shape, dtype, scale=3.0, offset=2.0)
    gamma, beta = random(xp, seed + 1, shape[1], dtype), random(xp, seed + 2, shape[1], dtype)
    _, mean, invstd = agree("batchnorm_forward", dtype, x, gamma, beta, 1e-5)
    agree("batchnorm_backward", dtype, random(xp, seed + 3, shape, dtype), x, gamma, mean, invstd)


@few_examples
@given(channels=st.integers(1, 9), momentum=st.sampled_from([0.1, 0.7]), dtype=dtypes,
       seed=seeds)
def test_batchnorm_update_running_matches_reference(xp, channels, momentum, dtype, seed):
    mean, invstd = random(xp, seed, channels, dtype), random(xp, seed + 1, channels, dtype)
    fused_stats = [random(xp, seed + 2, channels, dtype), random(xp, seed + 3, channels, dtype)]
    plain_stats = [s.copy() for s in fused_stats]
    fused("batchnorm_update_running", *fused_stats, mean, invstd, momentum, 6, 1e-5)
    reference.batchnorm_update_running(*plain_stats, mean, invstd, momentum, 6, 1e-5)
    for got, want in zip(fused_stats, plain_stats):
        assert_agrees("batchnorm_update_running", got, want, dtype)


# ------------------------------------------------------------------ dropout
@few_examples
@given(shape=channel_shapes(), p=st.sampled_from([0.0, 0.3, 1.0]), dtype=dtypes, seed=seeds)
def test_dropout_forward_matches_reference(xp, shape, p, dtype, seed):
    uniform = xp.asarray(np.random.default_rng(seed).random(shape, dtype="float32"))
    y, mask = agree("dropout_forward", dtype, random(xp, seed + 1, shape, dtype), uniform, p)
    scale = 0.0 if p == 1 else np.dtype(dtype).type(1 / (1 - p))
    assert set(np.unique(to_numpy(mask))) <= {0.0, scale}


# ------------------------------------------------------------ matrix product
@few_examples
@given(m=st.integers(1, 7), k=st.integers(1, 7), n=st.integers(1, 7), dtype=dtypes, seed=seeds)
def test_matmul_accumulate_matches_reference(xp, m, k, n, dtype, seed):
    a, b = random(xp, seed, (k, m), dtype).T, random(xp, seed + 1, (k, n), dtype)  # a transposed
    got = random(xp, seed + 2, (m, n), dtype)
    want = got.copy()
    fused("matmul_accumulate", a, b, got)
    reference.matmul_accumulate(a, b, want)
    assert_agrees("matmul_accumulate", got, want, dtype)


# -------------------------------------------------------------- optimizers
@few_examples
@given(shape=channel_shapes(), beta1=st.sampled_from([0.9, 0.3]),
       weight_decay=st.sampled_from([0.0, 0.01]), dtype=dtypes, seed=seeds)
def test_adam_update_matches_reference(xp, shape, beta1, weight_decay, dtype, seed):
    """Three steps from zero moments; beta1 = 0.3 takes torch.lerp's other rounding branch."""
    param = random(xp, seed, shape, dtype)
    grads = [random(xp, seed + t, shape, dtype) for t in range(1, 4)]
    results = []
    for run in (lambda *a: fused("adam_update", *a), reference.adam_update):
        p, m, v = param.copy(), xp.zeros_like(param), xp.zeros_like(param)
        for t in range(1, 4):
            run(p, grads[t - 1], m, v, t, 1e-2, beta1, 0.999, 1e-8, weight_decay)
        results.append((p, m, v))
    for got, want in zip(*results):
        assert_agrees("adam_update", got, want, dtype)


@few_examples
@given(shape=channel_shapes(), momentum=st.sampled_from([0.0, 0.9]), centered=st.booleans(),
       weight_decay=st.sampled_from([0.0, 0.01]), dtype=dtypes, seed=seeds)
def test_rmsprop_update_matches_reference(xp, shape, momentum, centered, weight_decay, dtype,
                                          seed):
    param = random(xp, seed, shape, dtype)
    grads = [random(xp, seed + t, shape, dtype) for t in range(1, 4)]
    results = []
    for run in (lambda *a: fused("rmsprop_update", *a), reference.rmsprop_update):
        p, s, b, a = (param.copy(),) + tuple(xp.zeros_like(param) for _ in range(3))
        for t in range(1, 4):
            run(p, grads[t - 1], s, 1e-2, 0.99, 1e-8, weight_decay, momentum, b, centered, a)
        results.append((p, s, b, a))
    for got, want in zip(*results):
        assert_agrees("rmsprop_update", got, want, dtype)


def test_optimizer_kernels_refuse_a_param_they_cannot_update_in_place():
    param = np.zeros((4, 4), dtype="float32")[:, ::2]       # a strided view
    with pytest.raises(ValueError, match="C-contiguous"):
        fused("adam_update", param, np.ones_like(param), np.zeros((4, 2), "float32"),
              np.zeros((4, 2), "float32"), 1)
    with pytest.raises(ValueError, match="momentum_buffer"):
        fused("rmsprop_update", np.zeros(3), np.ones(3), np.zeros(3), 0.01, 0.99, 1e-8, 0.0, 0.9)


@pytest.mark.torch
@pytest.mark.parametrize("optimizer", ["adam", "rmsprop"])
def test_optimizer_kernels_follow_pytorch(torch, optimizer):
    """Five float32 steps of ours and of torch.optim from the same start agree."""
    rng = np.random.default_rng(0)
    start = rng.standard_normal((7, 5)).astype("float32")
    grads = rng.standard_normal((5, 7, 5)).astype("float32")
    weight = torch.nn.Parameter(torch.tensor(start))
    param = start.copy()
    zeros = [np.zeros_like(start) for _ in range(3)]
    if optimizer == "adam":
        opt = torch.optim.Adam([weight], lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
    else:
        opt = torch.optim.RMSprop([weight], lr=1e-2, alpha=0.9, eps=1e-8, weight_decay=0.01,
                                  momentum=0.5, centered=True)
    for t, grad in enumerate(grads, start=1):
        weight.grad = torch.tensor(grad)
        opt.step()
        if optimizer == "adam":
            fused("adam_update", param, grad, zeros[0], zeros[1], t, 1e-2, 0.9, 0.999, 1e-8, 0.01)
        else:
            fused("rmsprop_update", param, grad, zeros[0], 1e-2, 0.9, 1e-8, 0.01, 0.5, zeros[1],
                  True, zeros[2])
    np.testing.assert_allclose(param, weight.detach().numpy(), rtol=1e-6, atol=1e-6)


# ------------------------------------------------------------ mode switch
def test_kernel_mode_selects_the_implementation():
    x = np.zeros((1, 1, 3, 3), dtype="float32")
    with kernels.using_mode("fused"):
        assert kernels.implementation(x).__name__ == "kernels.cpu"
        assert kernels.implementation(x.astype("int64")) is reference   # no fused int kernels
    with kernels.using_mode("reference"):
        assert kernels.get_mode() == "reference"
        assert kernels.implementation(x) is reference
    with pytest.raises(ValueError, match="unknown kernel mode"):
        kernels.set_mode("fast")


def test_cupy_arrays_go_to_the_cupy_kernels(xp, backend_name):
    x = xp.zeros((1, 1, 3, 3), dtype="float32")
    expected = {"numpy": "kernels.cpu", "cupy": "kernels.gpu"}[backend_name]
    with kernels.using_mode("fused"):
        assert kernels.implementation(x).__name__ == expected


def _run_python(code, **environment):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **environment)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_importing_kernels_loads_neither_numba_nor_cupy():
    done = _run_python("import sys, kernels; "
                       "print(sorted(m for m in ('numba', 'cupy', 'kernels.cpu', 'kernels.gpu') "
                       "if m in sys.modules))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_environment_variable_selects_the_reference_kernels():
    done = _run_python("import kernels; print(kernels.get_mode())", TINYAE_KERNELS="reference")
    assert done.stdout.strip() == "reference", done.stderr
    done = _run_python("import kernels", TINYAE_KERNELS="turbo")
    assert done.returncode != 0 and "TINYAE_KERNELS='turbo'" in done.stderr


def test_numba_kernels_run_as_plain_python_with_jit_disabled():
    """NUMBA_DISABLE_JIT=1 turns the kernels into Python a debugger can step through."""
    code = """
import numpy as np, numba, kernels
from kernels import cpu, reference
assert numba.config.DISABLE_JIT and not hasattr(cpu._im2col_kernel, "signatures")
x = np.random.default_rng(0).standard_normal((2, 3, 5, 4)).astype("float32")
assert np.array_equal(cpu.im2col(x, 3, 3, 2, 1, 1, 0), reference.im2col(x, 3, 3, 2, 1, 1, 0))
gz, gb = cpu.bias_act_backward(x, np.tanh(x), "tanh")
gz_ref, gb_ref = reference.bias_act_backward(x, np.tanh(x), "tanh")
assert np.allclose(gz, gz_ref, atol=1e-6) and np.allclose(gb, gb_ref, atol=1e-5)
p, m, v = x.copy(), np.zeros_like(x), np.zeros_like(x)
cpu.adam_update(p, x, m, v, 1)
q, m, v = x.copy(), np.zeros_like(x), np.zeros_like(x)
reference.adam_update(q, x, m, v, 1)
assert np.array_equal(p, q)
print("ok")
"""
    done = _run_python(code, NUMBA_DISABLE_JIT="1")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def test_every_kernel_has_a_caller_in_tinyae():
    """A kernel nothing runs is dead code: each one is called by an op, layer, loss or optimizer."""
    names = [name for name in vars(reference) if callable(getattr(kernels, name, None))
             and name in kernels.__dict__ and getattr(kernels, name).__module__ == "kernels"
             and name not in ("set_mode", "get_mode", "using_mode", "implementation")]
    assert {"im2col", "activation_backward", "sigmoid_bce_with_logits", "reparameterize",
            "kl_normal_forward_backward", "adam_update"} <= set(names)
    source = "\n".join(path.read_text(encoding="utf-8")
                       for path in (ROOT / "tinyae").rglob("*.py"))
    imported = {name.strip() for line in re.findall(r"^from kernels import ([\w, ]+)", source,
                                                     re.MULTILINE) for name in line.split(",")}
    uncalled = [name for name in names if f"kernels.{name}(" not in source
                and not (name in imported and f"{name}(" in source)]
    assert not uncalled, f"kernels with no caller in tinyae/: {uncalled}"
