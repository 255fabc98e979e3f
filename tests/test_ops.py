"""Every op: forward against NumPy, backward against central differences (gradcheck),
and, where PyTorch is installed, forward and every gradient against torch.autograd in
float64. Shapes are drawn with Hypothesis, including broadcasting and size-1 axes."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

import tinyae
from tinyae import backend

from conftest import to_tensor

SETTINGS = settings(max_examples=12, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
PARITY_RTOL = 1e-10


def shapes(min_dims=0, max_dims=3, min_side=1, max_side=4):
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims,
                            min_side=min_side, max_side=max_side)


def broadcast_pair(min_dims=0):
    return hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=min_dims, max_dims=3,
                                             min_side=1, max_side=4)


def values(rng, shape, low=-2.0, high=2.0):
    return rng.uniform(low, high, size=shape)


def check_op(tinyae_fn, numpy_fn, torch_fn, arrays, torch_module=None, atol=1e-5, rtol=1e-4):
    """The three checks for one op on host float64 ``arrays``:
    forward == NumPy; gradcheck passes; (if torch) forward and gradients == torch."""
    tensors = [to_tensor(a, requires_grad=True) for a in arrays]
    out = tinyae_fn(*tensors)
    np.testing.assert_allclose(out.numpy(), numpy_fn(*arrays), rtol=1e-12, atol=1e-12)
    assert tinyae.gradcheck(tinyae_fn, *tensors, atol=atol, rtol=rtol)
    if torch_module is None:
        return
    torch = torch_module
    seed = np.random.default_rng(1).standard_normal(out.shape)
    for t in tensors:
        t.grad = None
    tinyae_fn(*tensors).backward(seed)
    t_inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    t_out = torch_fn(*t_inputs)
    t_out.backward(torch.tensor(seed))
    np.testing.assert_allclose(out.numpy(), t_out.detach().numpy(), rtol=PARITY_RTOL, atol=1e-12)
    for i, (t, tt) in enumerate(zip(tensors, t_inputs)):
        np.testing.assert_allclose(backend.to_numpy(t.grad), tt.grad.numpy(), rtol=PARITY_RTOL,
                                   atol=1e-12, err_msg=f"gradient of input {i}")


def maybe_torch():
    try:
        import torch
        return torch
    except ImportError:
        return None


TORCH = maybe_torch()


# ---------------------------------------------------------------- binary, broadcasting
BINARY = {
    "add": (lambda a, b: a + b, np.add, lambda a, b: a + b),
    "sub": (lambda a, b: a - b, np.subtract, lambda a, b: a - b),
    "mul": (lambda a, b: a * b, np.multiply, lambda a, b: a * b),
    "div": (lambda a, b: a / b, np.divide, lambda a, b: a / b),
    "maximum": (tinyae.maximum, np.maximum, lambda a, b: TORCH.maximum(a, b) if TORCH else None),
    "minimum": (tinyae.minimum, np.minimum, lambda a, b: TORCH.minimum(a, b) if TORCH else None),
}


@pytest.mark.parametrize("name", sorted(BINARY))
@SETTINGS
@given(pair=broadcast_pair(), seed=st.integers(0, 2**31))
def test_binary_broadcasting(backend_name, name, pair, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = pair.input_shapes
    a, b = values(rng, a_shape), values(rng, b_shape)
    if name == "div":
        b = np.sign(b) * (np.abs(b) + 0.5)  # away from 0
    if name in ("maximum", "minimum"):
        b = b + 0.01  # no exact ties: the kink is not differentiable
    tinyae_fn, numpy_fn, torch_fn = BINARY[name]
    check_op(tinyae_fn, numpy_fn, torch_fn, [a, b], TORCH)


def test_maximum_ties_share_the_gradient(backend_name):
    a = to_tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = to_tensor([1.0, 5.0, 0.0], requires_grad=True)
    tinyae.maximum(a, b).sum().backward()
    np.testing.assert_allclose(backend.to_numpy(a.grad), [0.5, 0.0, 1.0])
    np.testing.assert_allclose(backend.to_numpy(b.grad), [0.5, 1.0, 0.0])


@pytest.mark.parametrize("scalar_side", ["left", "right"])
@pytest.mark.parametrize("op", ["+", "-", "*", "/"])
def test_python_scalars_on_either_side_keep_float32(backend_name, op, scalar_side):
    x = tinyae.tensor(np.array([[1.5, -2.0], [0.5, 4.0]], dtype=np.float32), requires_grad=True)
    expr = f"x {op} 3.0" if scalar_side == "right" else f"3.0 {op} x"
    y = eval(expr)
    assert y.dtype == np.float32
    host = np.array([[1.5, -2.0], [0.5, 4.0]], dtype=np.float32)
    np.testing.assert_allclose(y.numpy(), eval(expr.replace("x", "host")), rtol=1e-6)
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_numpy_array_on_the_left(backend_name):
    x = to_tensor([[1.0, 2.0]], requires_grad=True)
    host = backend.xp().asarray(np.array([[3.0, 4.0]]))
    y = host * x
    assert isinstance(y, tinyae.Tensor)
    y.sum().backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), [[3.0, 4.0]])


# ---------------------------------------------------------------- unary
UNARY = {
    "neg": (lambda x: -x, np.negative, lambda x: -x, None),
    "exp": (tinyae.exp, np.exp, lambda x: x.exp(), None),
    "log": (tinyae.log, np.log, lambda x: x.log(), (0.2, 3.0)),
    "sqrt": (tinyae.sqrt, np.sqrt, lambda x: x.sqrt(), (0.2, 3.0)),
    "tanh": (tinyae.tanh, np.tanh, lambda x: x.tanh(), None),
    "sigmoid": (tinyae.sigmoid, lambda x: 1 / (1 + np.exp(-x)), lambda x: x.sigmoid(), None),
    "relu": (tinyae.relu, lambda x: np.maximum(x, 0), lambda x: x.relu(), None),
    "leaky_relu": (lambda x: tinyae.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x),
                   lambda x: TORCH.nn.functional.leaky_relu(x, 0.2), None),
    "softplus": (tinyae.softplus, lambda x: np.log1p(np.exp(x)),
                 lambda x: TORCH.nn.functional.softplus(x, threshold=1000.0), None),
    "pow3": (lambda x: x ** 3, lambda x: x ** 3, lambda x: x ** 3, None),
    "pow_half": (lambda x: x ** 0.5, np.sqrt, lambda x: x ** 0.5, (0.2, 3.0)),
    "pow_neg": (lambda x: x ** -2, lambda x: x ** -2.0, lambda x: x ** -2, (0.5, 3.0)),
    "clip": (lambda x: tinyae.clip(x, -0.5, 0.7), lambda x: np.clip(x, -0.5, 0.7),
             lambda x: x.clamp(-0.5, 0.7), None),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(shape=shapes(), seed=st.integers(0, 2**31))
def test_unary(backend_name, name, shape, seed):
    rng = np.random.default_rng(seed)
    tinyae_fn, numpy_fn, torch_fn, bounds = UNARY[name]
    x = values(rng, shape, *(bounds or (-2.0, 2.0)))
    if name in ("relu", "leaky_relu", "clip"):  # stay off the kinks
        kinks = {"relu": [0.0], "leaky_relu": [0.0], "clip": [-0.5, 0.7]}[name]
        for k in kinks:
            x = np.where(np.abs(x - k) < 1e-3, k + 0.01, x)
    check_op(tinyae_fn, numpy_fn, torch_fn, [x], TORCH)


def test_relu_and_leaky_relu_at_zero_follow_pytorch(backend_name):
    x = to_tensor([0.0], requires_grad=True)
    tinyae.relu(x).sum().backward()
    assert backend.to_numpy(x.grad)[0] == 0.0
    x.grad = None
    tinyae.leaky_relu(x, 0.2).sum().backward()
    assert backend.to_numpy(x.grad)[0] == pytest.approx(0.2)


def test_sigmoid_and_softplus_are_stable_at_extremes(backend_name):
    x = to_tensor([-1e4, -800.0, 0.0, 800.0, 1e4], requires_grad=True)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = tinyae.sigmoid(x)
        p = tinyae.softplus(x)
        (s.sum() + p.sum()).backward()
    np.testing.assert_allclose(s.numpy(), [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(p.numpy(), [0.0, 0.0, np.log(2), 800.0, 1e4])
    assert np.all(np.isfinite(backend.to_numpy(x.grad)))


# ---------------------------------------------------------------- matmul
@SETTINGS
@given(m=st.integers(1, 4), k=st.integers(1, 4), n=st.integers(1, 4),
       batch=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3),
       seed=st.integers(0, 2**31))
def test_matmul_2d_and_batched(backend_name, m, k, n, batch, seed):
    rng = np.random.default_rng(seed)
    a = values(rng, batch.input_shapes[0] + (m, k))
    b = values(rng, batch.input_shapes[1] + (k, n))
    check_op(lambda a, b: a @ b, np.matmul, lambda a, b: a @ b, [a, b], TORCH)


# ---------------------------------------------------------------- reductions
def axis_and_keepdims(ndim):
    axes = st.one_of(st.none(), st.integers(-ndim, ndim - 1) if ndim else st.none(),
                     st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)
                     .map(tuple) if ndim else st.none())
    return st.tuples(axes, st.booleans())


@pytest.mark.parametrize("name", ["sum", "mean", "max"])
@SETTINGS
@given(data=st.data(), seed=st.integers(0, 2**31))
def test_reductions(backend_name, name, data, seed):
    shape = data.draw(shapes(min_dims=1))
    axis, keepdims = data.draw(axis_and_keepdims(len(shape)))
    rng = np.random.default_rng(seed)
    x = rng.permutation(np.linspace(-2, 2, int(np.prod(shape)))).reshape(shape)  # no ties
    tinyae_fn = lambda t: getattr(tinyae, name)(t, axis=axis, keepdims=keepdims)
    numpy_fn = lambda a: getattr(np, name)(a, axis=axis, keepdims=keepdims)
    torch_axis = tuple(range(len(shape))) if axis is None else axis

    def torch_fn(t):
        if name == "max":
            return t.amax(dim=torch_axis, keepdim=keepdims)
        return getattr(t, name)(dim=torch_axis, keepdim=keepdims)
    check_op(tinyae_fn, numpy_fn, torch_fn, [x], TORCH)


def test_max_shares_gradient_among_ties(backend_name):
    x = to_tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    tinyae.max(x, axis=1).sum().backward()
    np.testing.assert_allclose(backend.to_numpy(x.grad), [[0, 0.5, 0.5], [1, 0, 0]])


# ---------------------------------------------------------------- shape operations
@SETTINGS
@given(shape=shapes(min_dims=1), seed=st.integers(0, 2**31), data=st.data())
def test_reshape_and_transpose(backend_name, shape, seed, data):
    rng = np.random.default_rng(seed)
    x = values(rng, shape)
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    check_op(lambda t: t.reshape(-1, 1), lambda a: a.reshape(-1, 1),
             lambda t: t.reshape(-1, 1), [x], TORCH)
    check_op(lambda t: tinyae.transpose(t, perm), lambda a: np.transpose(a, perm),
             lambda t: t.permute(*perm), [x], TORCH)


def test_transpose_default_reverses_axes(backend_name):
    x = to_tensor(np.arange(24.0).reshape(2, 3, 4))
    assert x.T.shape == (4, 3, 2)


INDEXES = {
    "slice": (slice(1, None), 0),
    "step_and_int": (slice(None, None, 2), 1),
    "ellipsis": (Ellipsis, slice(0, 2)),
    "int_array_repeats": (np.array([0, 2, 0, 0]),),
    "bool_mask": None,  # built from the data
}


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_getitem(backend_name, name):
    rng = np.random.default_rng(3)
    x = values(rng, (3, 4, 2))
    index = INDEXES[name]
    if name == "bool_mask":
        index = x > 0
    index = index if isinstance(index, tuple) else (index,)
    device_index = tuple(backend.xp().asarray(i) if isinstance(i, np.ndarray) else i
                         for i in index)
    check_op(lambda t: t[device_index], lambda a: a[index],
             lambda t: t[tuple(TORCH.as_tensor(i) if isinstance(i, np.ndarray) else i
                               for i in index)] if TORCH else None, [x], TORCH)


@SETTINGS
@given(n=st.integers(1, 3), axis=st.integers(0, 1), seed=st.integers(0, 2**31))
def test_concatenate_and_stack(backend_name, n, axis, seed):
    rng = np.random.default_rng(seed)
    parts = [values(rng, (2, 3)) for _ in range(n)]
    check_op(lambda *ts: tinyae.concatenate(ts, axis=axis),
             lambda *a: np.concatenate(a, axis=axis),
             lambda *ts: TORCH.cat(ts, dim=axis), parts, TORCH)
    check_op(lambda *ts: tinyae.stack(ts, axis=axis), lambda *a: np.stack(a, axis=axis),
             lambda *ts: TORCH.stack(ts, dim=axis), parts, TORCH)


def test_pad(backend_name):
    rng = np.random.default_rng(4)
    x = values(rng, (2, 3, 4))
    width = ((0, 0), (1, 2), (2, 1))
    check_op(lambda t: tinyae.pad(t, width, value=0.5),
             lambda a: np.pad(a, width, constant_values=0.5),
             lambda t: TORCH.nn.functional.pad(t, (2, 1, 1, 2), value=0.5), [x], TORCH)


# ---------------------------------------------------------------- dtypes
def test_float32_stays_float32_through_every_op(backend_name):
    rng = np.random.default_rng(5)
    x = tinyae.tensor(rng.uniform(0.5, 2, (3, 4)).astype(np.float32), requires_grad=True)
    w = tinyae.tensor(rng.uniform(-1, 1, (4, 2)).astype(np.float32), requires_grad=True)
    h = tinyae.sigmoid(x @ w) * 0.5 + 1 - 2 / (1 + x.mean(axis=0, keepdims=True).sum())
    h = tinyae.softplus(h) ** 2 + tinyae.log(tinyae.sqrt(x)).max(axis=1, keepdims=True)
    h = tinyae.concatenate([h, tinyae.clip(h, 0, 1)], axis=1)
    h = tinyae.pad(tinyae.leaky_relu(tinyae.tanh(h), 0.2), ((0, 0), (1, 1)))
    loss = tinyae.exp(-h).mean() + tinyae.relu(h[:, 1:3]).sum() / 7
    assert loss.dtype == np.float32
    loss.backward()
    assert x.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_float64_inputs_stay_float64(backend_name):
    x = to_tensor([1.0, 2.0], requires_grad=True)
    assert (x * 2 + 1).dtype == np.float64


def test_tensor_defaults_to_float32(backend_name):
    assert tinyae.tensor([1, 2, 3]).dtype == np.float32
    assert tinyae.tensor(1.0).dtype == np.float32
    assert tinyae.tensor([1.0], dtype="float64").dtype == np.float64


# ---------------------------------------------------------------- bad input
def test_broadcast_mismatch_names_op_and_shapes(backend_name):
    a, b = to_tensor(np.ones((2, 3))), to_tensor(np.ones((4,)))
    with pytest.raises(ValueError, match=r"add.*\(2, 3\).*\(4,\)"):
        a + b


def test_matmul_mismatch_names_op_and_shapes(backend_name):
    a, b = to_tensor(np.ones((2, 3))), to_tensor(np.ones((4, 5)))
    with pytest.raises(ValueError, match=r"matmul.*\(2, 3\).*\(4, 5\)"):
        a @ b


def test_pow_needs_a_scalar_exponent(backend_name):
    x = to_tensor([1.0])
    with pytest.raises(TypeError, match="scalar"):
        x ** x


def test_nan_and_inf_propagate_as_in_numpy(backend_name):
    x = to_tensor([np.nan, np.inf, 1.0], requires_grad=True)
    y = x * 2
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(y.numpy(), np.array([np.nan, np.inf, 2.0]))
        y.sum().backward()
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [2.0, 2.0, 2.0])


@pytest.mark.parametrize("slope", [-0.5, 0.0, 0.2])
def test_leaky_relu_any_slope_matches_its_definition(backend_name, slope):
    x = np.array([-2.0, -0.5, 0.3, 1.5])
    check_op(lambda t: tinyae.leaky_relu(t, slope), lambda a: np.where(a > 0, a, slope * a),
             lambda t: TORCH.nn.functional.leaky_relu(t, slope), [x], TORCH)


# ---------------------------------------------------------------- backward lines pinned down
# Each test below fails when one line of a backward is broken (checked by mutating it).
def grads_of(fn, *arrays, dtype="float64", seed=None):
    """Gradients of sum(w * fn(*tensors)) for fixed weights w, as host arrays."""
    tensors = [to_tensor(a, requires_grad=True, dtype=dtype) for a in arrays]
    out = fn(*tensors)
    w = np.arange(1.0, out.size + 1).reshape(out.shape) if seed is None else seed
    out.backward(backend.xp().asarray(w.astype(out.dtype)))
    return [backend.to_numpy(t.grad) for t in tensors]


def test_clip_gradient_at_exactly_a_bound_is_one_as_torch_clamp(backend_name):
    x = np.array([-1.0, -0.5, 0.0, 0.7, 1.0])
    (gx,) = grads_of(lambda t: tinyae.clip(t, -0.5, 0.7), x, seed=np.ones(5))
    np.testing.assert_array_equal(gx, [0.0, 1.0, 1.0, 1.0, 0.0])
    (lo_only,) = grads_of(lambda t: tinyae.clip(t, lo=-0.5), x, seed=np.ones(5))
    (hi_only,) = grads_of(lambda t: tinyae.clip(t, hi=0.7), x, seed=np.ones(5))
    np.testing.assert_array_equal(lo_only, [0.0, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(hi_only, [1.0, 1.0, 1.0, 1.0, 0.0])


def test_clip_at_the_bounds_matches_torch(backend_name, torch):
    x = np.array([-1.0, -0.5, 0.0, 0.7, 1.0])
    t = torch.tensor(x, requires_grad=True)
    t.clamp(-0.5, 0.7).sum().backward()
    (gx,) = grads_of(lambda t: tinyae.clip(t, -0.5, 0.7), x, seed=np.ones(5))
    np.testing.assert_array_equal(gx, t.grad.numpy())


@pytest.mark.parametrize("source, target", [("float64", "float32"), ("float32", "float64")])
def test_astype_gradient_is_cast_back_to_the_input_dtype(backend_name, source, target):
    x = tinyae.tensor(np.array([0.5, -1.5, 2.0], dtype=source), requires_grad=True)
    y = tinyae.ops.astype(x, target)
    assert y.dtype == np.dtype(target)
    (y * 3).sum().backward()
    assert x.grad.dtype == np.dtype(source)
    np.testing.assert_array_equal(backend.to_numpy(x.grad), [3.0, 3.0, 3.0])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_concatenate_of_unequal_sizes_splits_the_gradient_where_the_inputs_meet(
        backend_name, axis):
    rng = np.random.default_rng(6)
    sizes = [1, 3, 2]
    parts = [values(rng, (s, 2) if axis == 0 else (2, s)) for s in sizes]
    out_shape = (6, 2) if axis == 0 else (2, 6)
    w = np.arange(1.0, 13.0).reshape(out_shape)
    grads = grads_of(lambda *ts: tinyae.concatenate(ts, axis=axis), *parts, seed=w)
    expected = np.split(w, np.cumsum(sizes)[:-1], axis=axis)
    for g, e, p in zip(grads, expected, parts):
        assert g.shape == p.shape
        np.testing.assert_array_equal(g, e)


def test_concatenate_of_unequal_sizes_matches_torch(backend_name, torch):
    rng = np.random.default_rng(7)
    parts = [values(rng, (2, s, 3)) for s in (4, 1, 2)]
    check_op(lambda *ts: tinyae.concatenate(ts, axis=1), lambda *a: np.concatenate(a, axis=1),
             lambda *ts: torch.cat(ts, dim=1), parts, torch)


@pytest.mark.parametrize("axis", [0, 1, 2, -1])
def test_stack_gives_each_input_its_slice_of_the_gradient(backend_name, axis):
    rng = np.random.default_rng(8)
    parts = [values(rng, (2, 3)) for _ in range(3)]
    w = rng.standard_normal(np.stack(parts, axis=axis).shape)
    grads = grads_of(lambda *ts: tinyae.stack(ts, axis=axis), *parts, seed=w)
    for i, g in enumerate(grads):
        np.testing.assert_array_equal(g, np.take(w, i, axis=axis))


@pytest.mark.parametrize("width", [1, ((0, 2), (3, 1)), ((2, 0), (0, 0))])
def test_pad_gradient_is_the_unpadded_window(backend_name, width):
    x = np.arange(6.0).reshape(2, 3)
    padded = np.pad(x, width)
    w = np.arange(1.0, padded.size + 1).reshape(padded.shape)
    (gx,) = grads_of(lambda t: tinyae.pad(t, width, value=-1.0), x, seed=w)
    pairs = [(width, width)] * 2 if isinstance(width, int) else width
    window = tuple(slice(a, a + n) for (a, _), n in zip(pairs, x.shape))
    np.testing.assert_array_equal(gx, w[window])


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, (0, 1)])
def test_max_shares_the_gradient_among_ties_for_every_axis_and_keepdims(backend_name, axis,
                                                                         keepdims):
    x = np.array([[3.0, 1.0, 3.0], [3.0, 2.0, 0.0]])
    out = np.max(x, axis=axis, keepdims=keepdims)
    w = np.arange(1.0, np.size(out) + 1).reshape(np.shape(out))
    (gx,) = grads_of(lambda t: tinyae.max(t, axis=axis, keepdims=keepdims), x, seed=w)
    largest = np.max(x, axis=axis, keepdims=True)
    w_full = np.broadcast_to(w.reshape(largest.shape), x.shape)
    is_max = x == largest
    ties = is_max.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(gx, w_full * is_max / ties, rtol=1e-15)


def test_max_over_ties_matches_torch_amax(backend_name, torch):
    x = np.array([[3.0, 1.0, 3.0], [3.0, 2.0, 3.0]])
    check_op(lambda t: tinyae.max(t, axis=1), lambda a: a.max(axis=1),
             lambda t: t.amax(dim=1), [x], None)
    t = torch.tensor(x, requires_grad=True)
    t.amax(dim=1).backward(torch.tensor([1.0, 2.0], dtype=torch.float64))
    (gx,) = grads_of(lambda t: tinyae.max(t, axis=1), x, seed=np.array([1.0, 2.0]))
    np.testing.assert_allclose(gx, t.grad.numpy(), rtol=1e-15)


@pytest.mark.parametrize("name", ["maximum", "minimum"])
def test_elementwise_choice_splits_ties_in_half_also_when_broadcast(backend_name, name, torch):
    a = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 0.0]])
    b = np.array([2.0])                 # broadcast against every element of a
    torch_fn = getattr(torch, name)
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a, b))
    w = np.arange(1.0, 7.0).reshape(2, 3)
    torch_fn(ta, tb).backward(torch.tensor(w))
    ga, gb = grads_of(getattr(tinyae, name), a, b, seed=w)
    np.testing.assert_array_equal(ga, ta.grad.numpy())
    np.testing.assert_array_equal(gb, tb.grad.numpy())
    ties = (a == 2.0)
    np.testing.assert_array_equal(ga[ties], w[ties] / 2)


def test_minimum_ties_share_the_gradient(backend_name):
    (ga, gb) = grads_of(tinyae.minimum, np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 0.0]),
                        seed=np.ones(3))
    np.testing.assert_array_equal(ga, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(gb, [0.5, 0.0, 1.0])


def test_getitem_with_repeated_indices_adds_their_gradients(backend_name):
    x = np.arange(4.0)
    index = backend.xp().asarray(np.array([0, 2, 0, 0, 3]))
    (gx,) = grads_of(lambda t: t[index], x, seed=np.array([1.0, 10.0, 100.0, 1000.0, 5.0]))
    np.testing.assert_array_equal(gx, [1101.0, 0.0, 10.0, 5.0])
    rows, cols = (backend.xp().asarray(np.array(v)) for v in ([0, 1, 0], [1, 0, 1]))
    (gx,) = grads_of(lambda t: t[rows, cols], np.zeros((2, 2)), seed=np.array([1.0, 2.0, 4.0]))
    np.testing.assert_array_equal(gx, [[0.0, 5.0], [2.0, 0.0]])


@pytest.mark.parametrize("shape", [(), (1,), (4,), (3, 1), (1, 4), (2, 1, 1), (2, 3, 4),
                                   (1, 3, 1), (1, 1, 1, 1)])
def test_unbroadcast_sums_over_exactly_the_broadcast_axes(backend_name, shape):
    rng = np.random.default_rng(9)
    grad = rng.standard_normal(np.broadcast_shapes(shape, (2, 3, 4)))
    expected = grad
    while expected.ndim > len(shape):
        expected = expected.sum(axis=0)
    expected = expected.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True)
    got = tinyae.ops.unbroadcast(backend.xp().asarray(grad), shape)
    assert tuple(got.shape) == shape
    np.testing.assert_allclose(backend.to_numpy(got), expected.reshape(shape), rtol=1e-12)


def test_broadcast_gradients_of_every_binary_op_have_the_input_shapes(backend_name):
    a, b = np.full((2, 1, 4), 2.0), np.full((3, 1), 4.0)
    for fn in (tinyae.add, tinyae.sub, tinyae.mul, tinyae.div, tinyae.maximum, tinyae.minimum):
        ga, gb = grads_of(fn, a, b, seed=np.ones((2, 3, 4)))
        assert ga.shape == a.shape and gb.shape == b.shape, fn.__name__
    ga, gb = grads_of(tinyae.mul, a, b, seed=np.ones((2, 3, 4)))
    np.testing.assert_array_equal(ga, np.full(a.shape, 3 * 4.0))
    np.testing.assert_array_equal(gb, np.full(b.shape, 2 * 4 * 2.0))


# Every op, every input: the gradient has the input's dtype (float32 and float64).
DTYPE_CASES = {
    "add": (tinyae.add, 2), "sub": (tinyae.sub, 2), "mul": (tinyae.mul, 2),
    "div": (tinyae.div, 2), "matmul": (lambda a, b: a @ b.T, 2),
    "maximum": (tinyae.maximum, 2), "minimum": (tinyae.minimum, 2),
    "neg": (tinyae.neg, 1), "pow": (lambda x: x ** 3, 1), "exp": (tinyae.exp, 1),
    "log": (tinyae.log, 1), "sqrt": (tinyae.sqrt, 1), "tanh": (tinyae.tanh, 1),
    "sigmoid": (tinyae.sigmoid, 1), "relu": (tinyae.relu, 1),
    "leaky_relu": (lambda x: tinyae.leaky_relu(x, 0.2), 1),
    "leaky_relu_negative": (lambda x: tinyae.leaky_relu(x, -0.2), 1),
    "softplus": (tinyae.softplus, 1), "clip": (lambda x: tinyae.clip(x, 0.8, 1.5), 1),
    "sum": (lambda x: tinyae.sum(x, axis=0), 1), "mean": (lambda x: tinyae.mean(x, axis=1), 1),
    "max": (lambda x: tinyae.max(x, axis=1, keepdims=True), 1),
    "reshape": (lambda x: tinyae.reshape(x, -1), 1), "transpose": (tinyae.transpose, 1),
    "getitem": (lambda x: x[:, 1:], 1), "concatenate": (lambda a, b: tinyae.concatenate([a, b]), 2),
    "stack": (lambda a, b: tinyae.stack([a, b], axis=1), 2), "pad": (lambda x: tinyae.pad(x, 1), 1),
    "flatten": (lambda x: tinyae.flatten(x, 0), 1),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(DTYPE_CASES))
def test_every_gradient_has_its_input_dtype(backend_name, name, dtype):
    fn, arity = DTYPE_CASES[name]
    rng = np.random.default_rng(10)
    inputs = [tinyae.tensor(rng.uniform(0.5, 2.0, (2, 3)).astype(dtype), requires_grad=True)
              for _ in range(arity)]
    out = fn(*inputs)
    assert out.dtype == np.dtype(dtype), name
    out.sum().backward()
    for i, t in enumerate(inputs):
        assert t.grad is not None and t.grad.dtype == np.dtype(dtype), f"{name}: input {i}"


# ---------------------------------------------------------------- documentation
def test_the_examples_in_the_ops_docstrings_run():
    import doctest
    result = doctest.testmod(tinyae.ops, extraglobs={"tinyae": tinyae}, verbose=False)
    assert result.attempted > 0 and result.failed == 0, result


def _exported_ops():
    return {name: obj for name, obj in vars(tinyae).items()
            if callable(obj) and getattr(obj, "__module__", None) == "tinyae.ops"}


def test_every_op_that_tinyae_exports_has_a_docstring_with_an_example():
    ops = _exported_ops()
    assert len(ops) >= 28 and {"exp", "tanh", "concatenate", "pad"} <= set(ops)
    missing = sorted(name for name, fn in ops.items() if ">>> " not in (fn.__doc__ or ""))
    assert not missing, f"exported ops without a doctest example: {missing}"


def test_every_public_name_in_ops_has_a_docstring():
    import inspect
    public = [(name, obj) for name, obj in vars(tinyae.ops).items()
              if not name.startswith("_") and getattr(obj, "__module__", None) == "tinyae.ops"
              and (inspect.isfunction(obj) or inspect.isclass(obj))]
    assert len(public) > 40
    assert not [name for name, obj in public if not inspect.getdoc(obj)]
