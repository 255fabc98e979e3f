"""tinyae.functional: gradient checks, parity with torch.nn.functional, shapes, dtypes, errors."""
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import tinyae
import tinyae.functional as F
from tinyae import backend

from conftest import to_tensor

RTOL, ATOL = 1e-10, 1e-12  # float64 parity with PyTorch


def host(array):
    return backend.to_numpy(array)


def close(ours, theirs):
    """Our tensor or array against a torch tensor (or NumPy array), float64-tight."""
    ours = ours.numpy() if isinstance(ours, tinyae.Tensor) else host(ours)
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else theirs
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)


def run_both(torch, our_fn, torch_fn, arrays, seed=0):
    """Call both functions on the same float64 arrays (None passes through), backpropagate
    the same random upstream gradient, compare the output and every input's gradient."""
    ours = [None if a is None else to_tensor(a, requires_grad=True) for a in arrays]
    theirs = [None if a is None else torch.tensor(a, requires_grad=True) for a in arrays]
    y, ty = our_fn(*ours), torch_fn(*theirs)
    close(y, ty)
    upstream = np.random.default_rng(seed).standard_normal(ty.shape)
    y.backward(to_tensor(upstream))
    ty.backward(torch.tensor(upstream))
    for a, t in zip(ours, theirs):
        if a is not None:
            close(a.grad, t.grad)
    return y


# ---------------------------------------------------------------- linear
@pytest.mark.parametrize("x_shape, bias", [((4, 3), True), ((1, 3), False), ((2, 5, 3), True)])
def test_linear_matches_torch(backend_name, torch, rng, x_shape, bias):
    arrays = [rng.standard_normal(x_shape), rng.standard_normal((2, 3)),
              rng.standard_normal(2) if bias else None]
    y = run_both(torch, F.linear, torch.nn.functional.linear, arrays)
    assert y.shape == x_shape[:-1] + (2,)


def test_linear_gradcheck(backend_name, rng):
    x = to_tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w = to_tensor(rng.standard_normal((2, 4)), requires_grad=True)
    b = to_tensor(rng.standard_normal(2), requires_grad=True)
    assert tinyae.gradcheck(F.linear, x, w, b)
    assert tinyae.gradcheck(lambda x, w: F.linear(x, w), x, w)


def test_linear_shape_errors(rng):
    x = to_tensor(rng.standard_normal((4, 3)))
    with pytest.raises(ValueError, match=r"linear: input of shape \(4, 3\).*\(2, 5\)"):
        F.linear(x, to_tensor(np.ones((2, 5))))
    with pytest.raises(ValueError, match=r"bias of shape \(3,\), expected \(2,\)"):
        F.linear(x, to_tensor(np.ones((2, 3))), to_tensor(np.ones(3)))


# ---------------------------------------------------------------- conv2d
# (N, C, H, W), (OC, C, KH, KW), stride, padding, bias
CONV_CASES = [
    ((2, 3, 5, 5), (4, 3, 3, 3), 1, 0, True),
    ((2, 3, 7, 6), (4, 3, 3, 2), 2, 1, True),            # stride 2, padding, non-square kernel
    ((1, 2, 5, 8), (3, 2, 2, 4), (2, 1), (1, 2), False),  # batch 1, pairs, no bias
    ((1, 1, 4, 4), (2, 1, 4, 4), 1, 0, True),             # kernel as large as the image
    ((3, 2, 9, 7), (2, 2, 3, 3), 3, 2, True),             # stride 3 that skips pixels
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, bias", CONV_CASES)
def test_conv2d_matches_torch(backend_name, torch, rng, x_shape, w_shape, stride, padding, bias):
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape),
              rng.standard_normal(w_shape[0]) if bias else None]
    run_both(torch,
             lambda x, w, b: F.conv2d(x, w, b, stride=stride, padding=padding),
             lambda x, w, b: torch.nn.functional.conv2d(x, w, b, stride=stride, padding=padding),
             arrays)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), oc=st.integers(1, 3),
       h=st.integers(1, 7), w=st.integers(1, 7), kh=st.integers(1, 3), kw=st.integers(1, 3),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2))
def test_conv2d_matches_torch_on_random_shapes(torch, n, c, oc, h, w, kh, kw, sh, sw, ph, pw):
    # no output position: checked by test_conv2d_kernel_larger_than_input
    assume(h + 2 * ph >= kh and w + 2 * pw >= kw)
    rng = np.random.default_rng(n * 1000 + h * 10 + w)
    arrays = [rng.standard_normal((n, c, h, w)), rng.standard_normal((oc, c, kh, kw)),
              rng.standard_normal(oc)]
    y = run_both(torch,
                 lambda x, wt, b: F.conv2d(x, wt, b, stride=(sh, sw), padding=(ph, pw)),
                 lambda x, wt, b: torch.nn.functional.conv2d(x, wt, b, stride=(sh, sw),
                                                             padding=(ph, pw)),
                 arrays)
    assert y.shape == (n, oc, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)


@pytest.mark.parametrize("stride, padding, bias",
                         [(1, 0, True), (2, 1, False), ((1, 2), (0, 1), True)])
def test_conv2d_gradcheck(backend_name, rng, stride, padding, bias):
    x = to_tensor(rng.standard_normal((2, 2, 4, 5)), requires_grad=True)
    w = to_tensor(rng.standard_normal((2, 2, 2, 3)), requires_grad=True)
    inputs = (x, w) + ((to_tensor(rng.standard_normal(2), requires_grad=True),) if bias else ())
    assert tinyae.gradcheck(
        lambda x, w, b=None: F.conv2d(x, w, b, stride=stride, padding=padding), *inputs)


def test_conv2d_errors(rng):
    x = to_tensor(rng.standard_normal((2, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"conv2d: input has 3 channels.*\(4, 2, 3, 3\) expects 2"):
        F.conv2d(x, to_tensor(np.ones((4, 2, 3, 3))))
    with pytest.raises(ValueError, match=r"conv2d: needs input \(N, C, H, W\)"):
        F.conv2d(to_tensor(np.ones((3, 5, 5))), to_tensor(np.ones((4, 3, 3, 3))))
    with pytest.raises(ValueError, match=r"bias of shape \(3,\), expected \(4,\)"):
        F.conv2d(x, to_tensor(np.ones((4, 3, 3, 3))), to_tensor(np.ones(3)))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        F.conv2d(x, to_tensor(np.ones((4, 3, 3, 3))), stride=0)
    with pytest.raises(ValueError, match="padding must be an int or a pair"):
        F.conv2d(x, to_tensor(np.ones((4, 3, 3, 3))), padding=(1, 2, 3))
    same = F.conv2d(x, to_tensor(np.ones((4, 3, 3, 3))), stride=np.int64(2), padding=(1, 1))
    assert same.shape == (2, 4, 3, 3)  # NumPy integers are accepted as sizes


def test_conv2d_kernel_larger_than_input(rng):
    x = to_tensor(rng.standard_normal((1, 1, 2, 5)))
    with pytest.raises(ValueError,
                       match=r"spatial size \(2, 5\).*smaller than the kernel \(3, 3\)"):
        F.conv2d(x, to_tensor(np.ones((1, 1, 3, 3))))


# ---------------------------------------------------------------- conv_transpose2d
# (N, C_in, H, W), (C_in, C_out, KH, KW), stride, padding, output_padding, bias
CONV_T_CASES = [
    ((2, 3, 4, 4), (3, 2, 3, 3), 1, 0, 0, True),
    ((2, 3, 4, 5), (3, 2, 3, 3), 2, 1, 1, True),                 # the usual 2x upsampling
    ((1, 2, 3, 5), (2, 3, 2, 4), (2, 3), (1, 0), (1, 2), False),  # batch 1, all pairs, no bias
    ((2, 1, 7, 7), (1, 2, 4, 4), 2, 1, 0, True),                 # 7 -> 14 with a 4x4 kernel
]


@pytest.mark.parametrize("x_shape, w_shape, stride, padding, output_padding, bias", CONV_T_CASES)
def test_conv_transpose2d_matches_torch(backend_name, torch, rng, x_shape, w_shape, stride,
                                        padding, output_padding, bias):
    arrays = [rng.standard_normal(x_shape), rng.standard_normal(w_shape),
              rng.standard_normal(w_shape[1]) if bias else None]
    run_both(torch,
             lambda x, w, b: F.conv_transpose2d(x, w, b, stride, padding, output_padding),
             lambda x, w, b: torch.nn.functional.conv_transpose2d(
                 x, w, b, stride=stride, padding=padding, output_padding=output_padding),
             arrays)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), oc=st.integers(1, 3),
       h=st.integers(1, 5), w=st.integers(1, 5), kh=st.integers(1, 3), kw=st.integers(1, 3),
       sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
       oph=st.integers(0, 2), opw=st.integers(0, 2))
def test_conv_transpose2d_matches_torch_on_random_shapes(torch, n, c, oc, h, w, kh, kw, sh, sw,
                                                         ph, pw, oph, opw):
    oph, opw = oph % sh, opw % sw  # output_padding must be smaller than the stride
    oh, ow = (h - 1) * sh - 2 * ph + kh + oph, (w - 1) * sw - 2 * pw + kw + opw
    assume(oh >= 1 and ow >= 1)
    rng = np.random.default_rng(n * 1000 + h * 10 + w)
    arrays = [rng.standard_normal((n, c, h, w)), rng.standard_normal((c, oc, kh, kw)),
              rng.standard_normal(oc)]
    y = run_both(torch,
                 lambda x, wt, b: F.conv_transpose2d(x, wt, b, (sh, sw), (ph, pw), (oph, opw)),
                 lambda x, wt, b: torch.nn.functional.conv_transpose2d(
                     x, wt, b, stride=(sh, sw), padding=(ph, pw), output_padding=(oph, opw)),
                 arrays)
    assert y.shape == (n, oc, oh, ow)


@pytest.mark.parametrize("stride, padding, output_padding, bias",
                         [(1, 0, 0, True), (2, 1, 1, False), ((2, 1), (0, 1), (1, 0), True)])
def test_conv_transpose2d_gradcheck(backend_name, rng, stride, padding, output_padding, bias):
    x = to_tensor(rng.standard_normal((2, 2, 3, 4)), requires_grad=True)
    w = to_tensor(rng.standard_normal((2, 2, 3, 2)), requires_grad=True)
    inputs = (x, w) + ((to_tensor(rng.standard_normal(2), requires_grad=True),) if bias else ())
    assert tinyae.gradcheck(
        lambda x, w, b=None: F.conv_transpose2d(x, w, b, stride, padding, output_padding), *inputs)


def test_conv_transpose2d_is_the_adjoint_of_conv2d(backend_name, rng):
    """<conv2d(x), y> = <x, conv_transpose2d(y)> for the same weight (no bias)."""
    w = to_tensor(rng.standard_normal((3, 2, 3, 3)))
    x = to_tensor(rng.standard_normal((2, 2, 8, 7)))
    y = to_tensor(rng.standard_normal((2, 3, 4, 4)))
    left = float((F.conv2d(x, w, stride=2, padding=1) * y).sum().item())
    right = float((x * F.conv_transpose2d(y, w, stride=2, padding=1, output_padding=(1, 0)))
                  .sum().item())
    assert left == pytest.approx(right, rel=1e-12)


def test_conv_transpose2d_errors(rng):
    x = to_tensor(rng.standard_normal((2, 3, 4, 4)))
    with pytest.raises(ValueError, match=r"conv_transpose2d: input has 3 channels.*expects 2"):
        F.conv_transpose2d(x, to_tensor(np.ones((2, 3, 3, 3))))
    with pytest.raises(ValueError, match="output_padding .* smaller than the stride"):
        F.conv_transpose2d(x, to_tensor(np.ones((3, 2, 3, 3))), stride=2, output_padding=2)
    with pytest.raises(ValueError, match=r"output size \(-1, -1\) is not positive"):
        F.conv_transpose2d(to_tensor(np.ones((1, 3, 1, 1))), to_tensor(np.ones((3, 2, 1, 1))),
                           padding=1)


# ---------------------------------------------------------------- batch_norm
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 2), (3, 2, 4, 5), (1, 2, 3, 1)])
def test_batch_norm_training_matches_torch(backend_name, torch, rng, shape):
    c = shape[1]
    our_mean, our_var = to_tensor(rng.standard_normal(c)), to_tensor(rng.uniform(1, 2, c))
    torch_mean = torch.tensor(our_mean.numpy())
    torch_var = torch.tensor(our_var.numpy())
    for step in range(3):
        arrays = [rng.standard_normal(shape) * 2 + 1, rng.standard_normal(c),
                  rng.standard_normal(c)]
        run_both(torch,
                 lambda x, g, b: F.batch_norm(x, our_mean, our_var, g, b, training=True,
                                              momentum=0.3, eps=1e-3),
                 lambda x, g, b: torch.nn.functional.batch_norm(
                     x, torch_mean, torch_var, g, b, training=True, momentum=0.3, eps=1e-3),
                 arrays, seed=step)
        close(our_mean, torch_mean)
        close(our_var, torch_var)


@pytest.mark.parametrize("shape", [(5, 3), (1, 3, 2, 2)])
def test_batch_norm_eval_matches_torch(backend_name, torch, rng, shape):
    c = shape[1]
    mean, var = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    arrays = [rng.standard_normal(shape), rng.standard_normal(c), rng.standard_normal(c)]
    run_both(torch,
             lambda x, g, b: F.batch_norm(x, to_tensor(mean), to_tensor(var), g, b),
             lambda x, g, b: torch.nn.functional.batch_norm(
                 x, torch.tensor(mean), torch.tensor(var), g, b, training=False),
             arrays)


def test_batch_norm_without_affine_or_running_stats(backend_name, torch, rng):
    x = rng.standard_normal((4, 3, 2, 2))
    run_both(torch, lambda x: F.batch_norm(x, None, None, training=True),
             lambda x: torch.nn.functional.batch_norm(x, None, None, training=True), [x])


@pytest.mark.parametrize("activation", ["identity", "relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("shape, training", [((4, 3), True), ((3, 2, 2, 3), True),
                                             ((3, 2, 2, 3), False)])
def test_batch_norm_gradcheck(backend_name, rng, shape, training, activation):
    """Plain ("identity") and with each activation it can fuse."""
    c = shape[1]
    running_mean, running_var = to_tensor(np.zeros(c)), to_tensor(np.ones(c))
    x = to_tensor(rng.standard_normal(shape), requires_grad=True)
    gamma = to_tensor(rng.standard_normal(c), requires_grad=True)
    beta = to_tensor(rng.standard_normal(c), requires_grad=True)
    assert tinyae.gradcheck(
        lambda x, g, b: F.batch_norm(x, running_mean, running_var, g, b, training,
                                     activation=activation, negative_slope=0.2),
        x, gamma, beta)


def test_batch_norm_normalises_each_channel(backend_name, rng):
    x = to_tensor(rng.standard_normal((64, 3, 4, 4)) * 5 + 3)
    y = F.batch_norm(x, None, None, training=True).numpy()
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-4)  # eps = 1e-5


def test_batch_norm_errors(rng):
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 3\)"):
        F.batch_norm(to_tensor(np.ones((1, 3))), None, None, training=True)
    with pytest.raises(ValueError, match="eval mode .* needs running_mean"):
        F.batch_norm(to_tensor(np.ones((4, 3))), None, None, training=False)
    with pytest.raises(ValueError, match=r"weight of shape \(2,\), expected \(3,\)"):
        F.batch_norm(to_tensor(np.ones((4, 3))), None, None, to_tensor(np.ones(2)), training=True)
    with pytest.raises(ValueError, match=r"needs input \(N, C, ...\), got shape \(4,\)"):
        F.batch_norm(to_tensor(np.ones(4)), None, None, training=True)
    with pytest.raises(ValueError, match="batch_norm: unknown activation 'softplus'"):
        F.batch_norm(to_tensor(np.ones((4, 3))), None, None, training=True,
                     activation="softplus")
    with pytest.raises(ValueError, match="batch_norm: a fused leaky_relu needs negative_slope > 0"):
        F.batch_norm(to_tensor(np.ones((4, 3))), None, None, training=True,
                     activation="leaky_relu", negative_slope=0.0)


TORCH_ACTIVATIONS = {"relu": lambda torch, t: torch.relu(t),
                     "leaky_relu": lambda torch, t: torch.nn.functional.leaky_relu(t, 0.2),
                     "sigmoid": lambda torch, t: torch.sigmoid(t),
                     "tanh": lambda torch, t: torch.tanh(t)}


@pytest.mark.parametrize("activation", sorted(TORCH_ACTIVATIONS))
@pytest.mark.parametrize("shape, training", [((5, 3), True), ((3, 2, 4, 5), True),
                                             ((3, 2, 4, 5), False)])
def test_batch_norm_with_fused_activation_matches_torch(backend_name, torch, rng, activation,
                                                         shape, training):
    c = shape[1]
    mean, var = rng.standard_normal(c), rng.uniform(0.5, 2, c)
    our_mean, our_var = to_tensor(mean), to_tensor(var)
    torch_mean, torch_var = torch.tensor(mean), torch.tensor(var)
    arrays = [rng.standard_normal(shape), rng.standard_normal(c), rng.standard_normal(c)]
    run_both(torch,
             lambda x, g, b: F.batch_norm(x, our_mean, our_var, g, b, training,
                                          activation=activation, negative_slope=0.2),
             lambda x, g, b: TORCH_ACTIVATIONS[activation](torch, torch.nn.functional.batch_norm(
                 x, torch_mean, torch_var, g, b, training=training)),
             arrays)
    close(our_mean, torch_mean)   # the running statistics move as without the activation
    close(our_var, torch_var)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_with_fused_activation_equals_separate_ops(backend_name, rng, training):
    x = to_tensor(rng.standard_normal((4, 3, 2, 5)), requires_grad=True)
    gamma = to_tensor(rng.standard_normal(3), requires_grad=True)
    beta = to_tensor(rng.standard_normal(3), requires_grad=True)
    seed = rng.standard_normal((4, 3, 2, 5))
    results = []
    for fused in (True, False):
        mean, var = to_tensor(np.zeros(3)), to_tensor(np.ones(3))
        for t in (x, gamma, beta):
            t.grad = None
        if fused:
            y = F.batch_norm(x, mean, var, gamma, beta, training, activation="leaky_relu",
                             negative_slope=0.2)
        else:
            y = F.leaky_relu(F.batch_norm(x, mean, var, gamma, beta, training), 0.2)
        y.backward(to_tensor(seed))
        results.append([y.numpy(), mean.numpy(), var.numpy()]
                       + [host(t.grad) for t in (x, gamma, beta)])
    for fused, plain in zip(*results):
        np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- dropout
def test_dropout_statistics(backend_name):
    x = tinyae.tensor(np.ones((400, 500), dtype=np.float32), requires_grad=True)
    y = F.dropout(x, p=0.3, rng=backend.xp().random.default_rng(0))
    values = y.numpy()
    assert values.dtype == np.float32
    assert abs((values == 0).mean() - 0.3) < 0.005
    assert abs(values.mean() - 1.0) < 0.01                        # the mean is preserved
    np.testing.assert_allclose(values[values != 0], 1 / 0.7, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_array_equal(host(x.grad), values)          # dy/dx = mask / (1 - p)


def test_dropout_identity_in_eval_and_for_p_zero(backend_name, rng):
    x = to_tensor(rng.standard_normal((3, 4)))
    assert F.dropout(x, 0.5, training=False) is x
    assert F.dropout(x, 0.0) is x
    np.testing.assert_array_equal(F.dropout(x, 1.0).numpy(), 0)


def test_dropout_is_reproducible(backend_name, rng):
    x = to_tensor(rng.standard_normal((5, 6)))
    xp = backend.xp()
    a = F.dropout(x, 0.5, rng=xp.random.default_rng(7)).numpy()
    b = F.dropout(x, 0.5, rng=xp.random.default_rng(7)).numpy()
    np.testing.assert_array_equal(a, b)
    F.manual_seed(3)
    c = F.dropout(x, 0.5).numpy()
    F.manual_seed(3)
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), c)


def test_dropout_gradcheck(backend_name, rng):
    x = to_tensor(rng.standard_normal((3, 4)), requires_grad=True)
    xp = backend.xp()
    assert tinyae.gradcheck(lambda x: F.dropout(x, 0.4, rng=xp.random.default_rng(1)), x)


def test_dropout_errors(rng):
    x = to_tensor(rng.standard_normal((3, 4)))
    with pytest.raises(ValueError, match=r"p is a probability in \[0, 1\], got 1.5"):
        F.dropout(x, 1.5)


# ---------------------------------------------------------------- dtypes and activations
FLOAT32_CASES = {
    "linear": (lambda x, w, b: F.linear(x.reshape(2, -1), w, b), (2, 2, 3, 3), (4, 18), (4,)),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), (2, 2, 5, 5),
               (3, 2, 3, 3), (3,)),
    "conv_transpose2d": (lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1, 1), (2, 2, 3, 3),
                         (2, 3, 3, 3), (3,)),
    "batch_norm": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
                   (2, 2, 3, 3), (2,), (2,)),
    "dropout": (lambda x, w, b: F.dropout(x, 0.5) * w.sum() + b.sum(), (2, 3), (2,), (2,)),
    "reparameterize": (lambda mu, logvar, b: F.reparameterize(mu, logvar, mu.detach()) + b.sum(),
                       (3, 2), (3, 2), (2,)),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_CASES))
def test_float32_stays_float32(backend_name, rng, name):
    fn, *shapes = FLOAT32_CASES[name]
    inputs = [to_tensor(rng.standard_normal(s), requires_grad=True, dtype="float32")
              for s in shapes]
    y = fn(*inputs)
    assert y.dtype == np.float32
    y.sum().backward()
    for t in inputs:
        assert t.grad.dtype == np.float32


def test_activations_are_reexported():
    for name in ("relu", "leaky_relu", "sigmoid", "tanh", "softplus"):
        assert getattr(F, name) is getattr(tinyae.ops, name)


@pytest.mark.parametrize("activation", ["identity", "relu", "leaky_relu", "sigmoid", "tanh"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_with_fused_activation_gradcheck(backend_name, activation, with_bias):
    rng = np.random.default_rng(7)
    x = to_tensor(rng.uniform(-2, 2, (5, 3)), requires_grad=True)
    w = to_tensor(rng.uniform(-1, 1, (4, 3)), requires_grad=True)
    inputs = [x, w] + ([to_tensor(rng.uniform(-1, 1, 4), requires_grad=True)] if with_bias else [])

    def fn(x, w, b=None):
        return F.linear(x, w, b, activation=activation, negative_slope=0.2)
    assert tinyae.gradcheck(fn, *inputs)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "sigmoid", "tanh"])
def test_linear_with_fused_activation_equals_separate_ops(backend_name, activation):
    rng = np.random.default_rng(8)
    x = to_tensor(rng.standard_normal((6, 5)), requires_grad=True)
    w = to_tensor(rng.standard_normal((3, 5)), requires_grad=True)
    b = to_tensor(rng.standard_normal(3), requires_grad=True)
    separate = {"relu": F.relu, "leaky_relu": lambda t: F.leaky_relu(t, 0.2),
                "sigmoid": F.sigmoid, "tanh": F.tanh}[activation]
    seed = rng.standard_normal((6, 3))
    grads = []
    for fused in (True, False):
        for t in (x, w, b):
            t.grad = None
        y = (F.linear(x, w, b, activation=activation, negative_slope=0.2) if fused
             else separate(F.linear(x, w, b)))
        y.backward(seed)
        grads.append([y.numpy()] + [tinyae.backend.to_numpy(t.grad) for t in (x, w, b)])
    for fused, plain in zip(*grads):
        np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- reparameterisation
def test_reparameterize_matches_torch(backend_name, torch, rng):
    eps = rng.standard_normal((4, 3))
    run_both(torch, lambda mu, logvar: F.reparameterize(mu, logvar, to_tensor(eps)),
             lambda mu, logvar: mu + torch.exp(0.5 * logvar) * torch.tensor(eps),
             [rng.standard_normal((4, 3)), rng.standard_normal((4, 3))])


def test_reparameterize_gradcheck(backend_name, rng):
    eps = backend.xp().asarray(rng.standard_normal((3, 2)))      # an array works as well
    mu = to_tensor(rng.standard_normal((3, 2)), requires_grad=True)
    logvar = to_tensor(rng.standard_normal((3, 2)), requires_grad=True)
    assert tinyae.gradcheck(lambda m, v: F.reparameterize(m, v, eps), mu, logvar)


def test_reparameterize_is_the_same_with_either_kernel_mode(backend_name, rng):
    import kernels
    arrays = [rng.standard_normal((5, 4)).astype("float32") for _ in range(3)]
    results = []
    for mode in ("reference", "fused"):
        with kernels.using_mode(mode):
            mu, logvar = (to_tensor(a, requires_grad=True, dtype="float32") for a in arrays[:2])
            z = F.reparameterize(mu, logvar, to_tensor(arrays[2], dtype="float32"))
            (z * z).sum().backward()
            results.append([host(v) for v in (z.data, mu.grad, logvar.grad)])
    for ref, fused in zip(*results):
        np.testing.assert_allclose(fused, ref, rtol=1e-6, atol=1e-6)


def test_reparameterize_refuses_mismatched_shapes(rng):
    mu = to_tensor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"reparameterize.*\(2, 3\).*\(2, 4\)"):
        F.reparameterize(mu, to_tensor(np.zeros((2, 4))), np.zeros((2, 3)))


def test_linear_refuses_an_unknown_or_unfusable_activation(rng):
    x, w = to_tensor(rng.standard_normal((2, 3))), to_tensor(rng.standard_normal((4, 3)))
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        F.linear(x, w, activation="gelu")
    with pytest.raises(ValueError, match="negative_slope > 0, got -0.2"):
        F.linear(x, w, activation="leaky_relu", negative_slope=-0.2)
