"""gradcheck (central differences against backward) and check_finite."""
import numpy as np
import pytest

import tinyae
from tinyae.autograd import Function

from conftest import to_tensor


class Square(Function):
    """y = x^2; ``factor`` is what backward multiplies by (2 is right)."""

    def __init__(self, factor=2):
        self.factor = factor

    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, gy):
        return gy * self.factor * self.x


def test_gradcheck_passes_a_right_backward_on_every_input(backend_name):
    x = to_tensor([[1.0, -2.0], [0.5, 3.0]], requires_grad=True)
    w = to_tensor([[0.3, 0.1], [-0.2, 0.4]], requires_grad=True)
    assert tinyae.gradcheck(lambda a, b: Square().apply(a) * b, x, w) is True
    assert tinyae.gradcheck(lambda a, b: tinyae.tanh(a @ b), x, w)


def test_gradcheck_reports_the_worst_element(backend_name):
    x = to_tensor([[1.0, 2.0]], requires_grad=True)
    with pytest.raises(tinyae.GradcheckError, match=r"input 0 .*element \(0, 1\).*analytic"):
        tinyae.gradcheck(lambda t: Square(factor=3).apply(t), x)


def test_gradcheck_checks_only_inputs_that_require_grad(backend_name):
    x = to_tensor([1.0, 2.0], requires_grad=True)
    frozen = to_tensor([5.0, 7.0])                 # a wrong gradient here would go unseen
    assert tinyae.gradcheck(lambda a, b: Square().apply(a) + b, x, frozen)
    with pytest.raises(ValueError, match="no input has requires_grad=True"):
        tinyae.gradcheck(lambda a: a * a, frozen)


def test_gradcheck_refuses_float32(backend_name):
    x = tinyae.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        tinyae.gradcheck(lambda t: t * t, x)


def test_gradcheck_leaves_the_inputs_as_they_were(backend_name):
    x = to_tensor([0.25, -1.5], requires_grad=True)
    before = x.numpy().copy()
    tinyae.gradcheck(lambda t: Square().apply(t), x)
    np.testing.assert_array_equal(x.numpy(), before)


def test_check_finite_names_what(backend_name):
    t = to_tensor([1.0, 2.0])
    assert tinyae.check_finite(t, "loss") is t
    with pytest.raises(FloatingPointError, match=r"loss is not finite: 1 NaN and 1 Inf"):
        tinyae.check_finite(to_tensor([np.nan, np.inf, 1.0]), "loss")


def test_check_finite_takes_arrays(backend_name):
    with pytest.raises(FloatingPointError, match="weights is not finite: 0 NaN and 2 Inf"):
        tinyae.check_finite(tinyae.backend.xp().asarray([np.inf, -np.inf]), "weights")
