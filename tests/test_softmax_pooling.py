"""softmax, log_softmax, comparison masks, max/avg pooling: gradient checks in float64,
parity with PyTorch (forward and gradients), ties, errors and the docstring examples."""
import doctest

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

import tinyae
import tinyae.functional as F
from tinyae import backend, nn, ops

from conftest import to_tensor

RTOL, ATOL = 1e-10, 1e-12  # float64 parity with PyTorch


def close(ours, theirs, rtol=RTOL, atol=ATOL):
    ours = ours.numpy() if isinstance(ours, tinyae.Tensor) else backend.to_numpy(ours)
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


def run_both(torch, our_fn, torch_fn, x, seed=0):
    """Output and input gradient of both functions on the same float64 array."""
    ours, theirs = to_tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = our_fn(ours), torch_fn(theirs)
    close(y, ty)
    upstream = np.random.default_rng(seed).standard_normal(ty.shape)
    y.backward(to_tensor(upstream))
    ty.backward(torch.tensor(upstream))
    close(ours.grad, theirs.grad)
    return y


# ---------------------------------------------------------------- softmax, log_softmax
@pytest.mark.parametrize("fn", [tinyae.softmax, tinyae.log_softmax])
@pytest.mark.parametrize("shape, axis", [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1), ((6,), 0)])
def test_softmax_gradcheck(backend_name, rng, fn, shape, axis):
    x = to_tensor(rng.standard_normal(shape) * 3, requires_grad=True)
    assert tinyae.gradcheck(lambda x: fn(x, axis), x)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shape, axis", [((4, 5), -1), ((4, 5), 0), ((2, 3, 4), 1)])
def test_softmax_matches_torch(backend_name, torch, rng, name, shape, axis):
    x = rng.standard_normal(shape) * 5
    y = run_both(torch, lambda t: getattr(tinyae, name)(t, axis),
                 lambda t: getattr(torch, name)(t, dim=axis), x)
    if name == "softmax":
        close(y.numpy().sum(axis=axis), np.ones(np.delete(shape, axis % len(shape))))


def test_softmax_is_stable_for_large_logits(backend_name):
    x = to_tensor([[1000.0, 0.0, -1000.0]], requires_grad=True)
    y = tinyae.log_softmax(x)
    assert np.all(np.isfinite(y.numpy()))
    close(y, np.array([[0.0, -1000.0, -2000.0]]))
    close(tinyae.softmax(x), np.array([[1.0, 0.0, 0.0]]))
    y.sum().backward()
    assert np.all(np.isfinite(backend.to_numpy(x.grad)))


def test_softmax_layers_and_methods(backend_name, rng):
    x = to_tensor(rng.standard_normal((3, 4)))
    close(nn.Softmax(1)(x), tinyae.softmax(x, 1).numpy())
    close(nn.LogSoftmax(1)(x), tinyae.log_softmax(x, 1).numpy())
    close(x.softmax(0), tinyae.softmax(x, 0).numpy())
    close(F.log_softmax(x), np.log(tinyae.softmax(x).numpy()), rtol=1e-12)
    assert repr(nn.Softmax(1)) == "Softmax(axis=1)"


def test_log_softmax_matches_cross_entropy(rng):
    """cross_entropy = -log_softmax at the label, averaged (losses.py computes it fused)."""
    logits = to_tensor(rng.standard_normal((5, 3)))
    labels = np.array([0, 2, 1, 1, 0])
    picked = tinyae.log_softmax(logits).numpy()[np.arange(5), labels]
    close(tinyae.losses.cross_entropy(logits, backend.to_backend(labels)), np.array(-picked.mean()))


def test_softmax_axis_error_names_the_shape():
    with pytest.raises(ValueError, match=r"softmax: axis 2 .* shape \(3, 4\)"):
        tinyae.softmax(tinyae.tensor(np.zeros((3, 4))), 2)


# ---------------------------------------------------------------- comparisons
COMPARISONS = ["eq", "ne", "lt", "le", "gt", "ge"]


@pytest.mark.parametrize("name", COMPARISONS)
def test_comparisons_match_torch_and_are_constants(backend_name, torch, name):
    a = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0]])
    b = np.array([2.0, 2.0, 2.0])                                  # broadcast
    ta = to_tensor(a, requires_grad=True)
    mask = getattr(tinyae, name)(ta, to_tensor(b))
    expected = getattr(torch, name)(torch.tensor(a), torch.tensor(b)).numpy()
    assert mask.dtype == np.bool_ and not mask.requires_grad and mask.creator is None
    np.testing.assert_array_equal(mask.numpy(), expected)
    np.testing.assert_array_equal(getattr(ta, name)(2.0).numpy(),
                                  getattr(torch, name)(torch.tensor(a), 2.0).numpy())


def test_comparison_operators(backend_name):
    x = to_tensor([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal((x > 0).numpy(), [False, False, True])
    np.testing.assert_array_equal((x >= 0).numpy(), [False, True, True])
    np.testing.assert_array_equal((x < 0).numpy(), [True, False, False])
    np.testing.assert_array_equal((x <= 0).numpy(), [True, True, False])
    np.testing.assert_array_equal((0 < x).numpy(), [False, False, True])    # reflected
    np.testing.assert_array_equal((x < to_tensor([0.0, 1.0, 1.0])).numpy(), [True, True, False])


def test_a_mask_has_a_truth_value_only_when_it_has_one_element():
    x = tinyae.tensor([1.0, -2.0])
    assert bool(x[0] > 0) is True and bool(x[1] > 0) is False
    if tinyae.tensor(3.0) > 2:
        pass
    else:
        raise AssertionError("a one-element comparison must be usable in an if")
    with pytest.raises(ValueError, match=r"truth value of a tensor of shape \(2,\) is ambiguous"):
        bool(x > 0)


def test_equality_stays_identity_so_tensors_hash():
    """== is identity (documented): tensors stay usable as dict keys and set members."""
    a, b = tinyae.tensor([1.0, 2.0]), tinyae.tensor([1.0, 2.0])
    assert (a == a) is True and (a == b) is False and (a != b) is True
    assert len({a, b}) == 2 and {a: 1}[a] == 1 and b not in [a]
    np.testing.assert_array_equal(a.eq(b).numpy(), [True, True])


def test_a_mask_selects_differentiably(backend_name, rng):
    """x * (x > 0) is ReLU: the mask is a constant, the product carries the gradient."""
    x = to_tensor(rng.standard_normal((3, 4)), requires_grad=True)
    assert tinyae.gradcheck(lambda x: x * (x > 0.1), x)
    x.grad = None
    y = (x * (x > 0)).sum()
    y.backward()
    close(x.grad, (x.numpy() > 0).astype(float))


# ---------------------------------------------------------------- pooling
POOL_CASES = [  # x shape, kernel_size, stride, padding
    ((2, 3, 6, 6), 2, None, 0),
    ((1, 2, 7, 5), 3, 2, 1),            # unequal sizes, stride != kernel, padding
    ((2, 1, 5, 8), (2, 3), (1, 2), (1, 0)),
    ((1, 1, 4, 4), 3, 1, 0),            # overlapping windows
    ((1, 2, 5, 5), 4, 3, 2),
]


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", POOL_CASES)
@pytest.mark.parametrize("name", ["max_pool2d", "avg_pool2d"])
def test_pooling_matches_torch(backend_name, torch, rng, name, x_shape, kernel_size, stride,
                               padding):
    x = rng.standard_normal(x_shape)
    y = run_both(torch,
                 lambda t: getattr(F, name)(t, kernel_size, stride, padding),
                 lambda t: getattr(torch.nn.functional, name)(t, kernel_size, stride, padding),
                 x)
    assert y.dtype == np.float64


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", POOL_CASES[1:3])
def test_avg_pool_without_padding_in_the_count_matches_torch(backend_name, torch, rng, x_shape,
                                                             kernel_size, stride, padding):
    run_both(torch,
             lambda t: F.avg_pool2d(t, kernel_size, stride, padding, count_include_pad=False),
             lambda t: torch.nn.functional.avg_pool2d(t, kernel_size, stride, padding,
                                                      count_include_pad=False),
             rng.standard_normal(x_shape))


@pytest.mark.parametrize("x_shape, kernel_size, stride, padding", POOL_CASES)
def test_pooling_gradcheck(backend_name, rng, x_shape, kernel_size, stride, padding):
    # Distinct values a clear step apart, so no central difference crosses a tie.
    values = rng.permutation(int(np.prod(x_shape))).reshape(x_shape) * 0.1
    x = to_tensor(values, requires_grad=True)
    assert tinyae.gradcheck(lambda x: F.max_pool2d(x, kernel_size, stride, padding), x)
    assert tinyae.gradcheck(lambda x: F.avg_pool2d(x, kernel_size, stride, padding), x)
    assert tinyae.gradcheck(
        lambda x: F.avg_pool2d(x, kernel_size, stride, padding, count_include_pad=False), x)


@pytest.mark.parametrize("kernel_size, stride, padding", [(2, 2, 0), (3, 1, 1), (3, 2, 1)])
def test_max_pool_ties_send_the_gradient_to_the_first_maximum_as_torch(backend_name, torch,
                                                                         kernel_size, stride,
                                                                         padding):
    x = np.array([[[[1.0, 1.0, 0.0, 2.0],
                    [1.0, 0.0, 2.0, 2.0],
                    [3.0, 3.0, 3.0, 3.0],
                    [0.0, 3.0, 3.0, 0.0]]]])
    y = run_both(torch, lambda t: F.max_pool2d(t, kernel_size, stride, padding),
                 lambda t: torch.nn.functional.max_pool2d(t, kernel_size, stride, padding), x)
    if (kernel_size, stride) == (2, 2):   # top-left window: three 1s tie, the first wins
        x_tensor = to_tensor(x, requires_grad=True)
        F.max_pool2d(x_tensor, 2).sum().backward()
        grad = backend.to_numpy(x_tensor.grad)[0, 0]
        assert grad[0, 0] == 1 and grad[0, 1] == grad[1, 0] == 0
        assert grad[0, 3] == 1 and grad[1, 2] == grad[1, 3] == 0      # 2s at (0,3), (1,2), (1,3)
        assert grad[2, 0] == 1 and grad[2, 1] == grad[3, 1] == 0      # 3s in the bottom left
    assert y.shape[:2] == (1, 1)


@settings(max_examples=25)
@given(n=st.integers(1, 2), c=st.integers(1, 3), h=st.integers(1, 9), w=st.integers(1, 9),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       ph=st.integers(0, 2), pw=st.integers(0, 2), seed=st.integers(0, 99))
def test_pooling_matches_torch_on_random_shapes(torch, n, c, h, w, kh, kw, sh, sw, ph, pw,
                                                seed):
    assume(2 * ph <= kh and 2 * pw <= kw)
    assume(h + 2 * ph >= kh and w + 2 * pw >= kw)
    x = np.random.default_rng(seed).standard_normal((n, c, h, w))
    for name in ("max_pool2d", "avg_pool2d"):
        run_both(torch, lambda t: getattr(F, name)(t, (kh, kw), (sh, sw), (ph, pw)),
                 lambda t: getattr(torch.nn.functional, name)(t, (kh, kw), (sh, sw), (ph, pw)),
                 x, seed)


def test_pooling_layers(backend_name, rng):
    x = to_tensor(rng.standard_normal((2, 3, 6, 5)))
    pool = nn.MaxPool2d(2)
    assert pool.stride == (2, 2) and pool.num_parameters() == 0
    assert pool(x).shape == (2, 3, 3, 2)
    close(pool(x), F.max_pool2d(x, 2).numpy())
    close(nn.AvgPool2d(3, 1, 1)(x), F.avg_pool2d(x, 3, 1, 1).numpy())
    close(nn.AvgPool2d(3, 1, 1, count_include_pad=False)(x),
          F.avg_pool2d(x, 3, 1, 1, count_include_pad=False).numpy())
    assert "kernel_size=(2, 2)" in repr(pool)


def test_pooling_keeps_float32(backend_name, rng):
    x = tinyae.tensor(rng.standard_normal((1, 1, 4, 4)).astype(np.float32), requires_grad=True)
    for fn in (F.max_pool2d, F.avg_pool2d):
        y = fn(x, 2)
        assert y.dtype == np.float32
        y.sum().backward()
        assert x.grad.dtype == np.float32


def test_pooling_errors_name_the_problem():
    x = tinyae.tensor(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"max_pool2d: needs input \(N, C, H, W\), got shape"):
        F.max_pool2d(tinyae.tensor(np.zeros((4, 4))), 2)
    with pytest.raises(ValueError, match="at most half of kernel_size"):
        F.avg_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"smaller than the kernel \(5, 5\)"):
        F.max_pool2d(x, 5)
    with pytest.raises(ValueError, match=r"MaxPool2d.*expected input of shape \(N, C, H, W\)"):
        nn.MaxPool2d(2)(tinyae.tensor(np.zeros((4, 4))))
    with pytest.raises(ValueError, match="AvgPool2d: padding"):
        nn.AvgPool2d(2, padding=3)


# ---------------------------------------------------------------- the docstring examples
@pytest.mark.parametrize("obj", [ops.Softmax, ops.LogSoftmax, ops.eq, ops.gt, F.MaxPool2d,
                                 F.AvgPool2d], ids=lambda o: o.__name__)
def test_docstring_examples_run(obj):
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner()
    tests = finder.find(obj, obj.__name__, globs={})
    assert tests and tests[0].examples, f"{obj.__name__} has no doctest example"
    for test in tests:
        runner.run(test)
    assert runner.failures == 0
