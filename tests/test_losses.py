"""Losses: gradients against central differences, values and gradients against PyTorch,
stability at the edges (p = 0 or 1, |logit| = 1e4), shape errors, dtypes."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyae
from tinyae import backend, losses
from conftest import to_tensor

REDUCTIONS = ["mean", "sum", "none"]


def host(array):
    return backend.to_numpy(array)


def assert_matches_torch(torch, ours, reference, *arrays):
    """ours(*tinyae tensors) and reference(*torch tensors) agree in value and in every
    input's gradient, in float64. Non-scalar outputs are weighted by fixed random numbers."""
    mine = [to_tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, expected = ours(*mine), reference(*theirs)
    np.testing.assert_allclose(out.numpy(), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    weights = np.asarray(np.random.default_rng(1).standard_normal(out.shape))
    (out * to_tensor(weights)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    for i, (m, t) in enumerate(zip(mine, theirs)):
        np.testing.assert_allclose(host(m.grad), t.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=f"gradient of input {i}")


def torch_reduce(torch, values, reduction, per_example=False):
    """The reductions of tinyae's losses written out in torch, for the hand-written oracles."""
    if per_example:
        values = values.reshape(values.shape[0], -1).sum(dim=1)
    if reduction == "none":
        return values
    return values.sum() if reduction == "sum" else values.mean()


# ---------------------------------------------------------------- gradient checks
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_regression_losses(backend_name, rng, reduction):
    x = to_tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    y = to_tensor(rng.standard_normal((3, 2, 2)), requires_grad=True)
    tinyae.gradcheck(lambda a, b: losses.mse(a, b, reduction), x, y)
    tinyae.gradcheck(lambda a, b: losses.euclidean(a, b, reduction), x, y)
    tinyae.gradcheck(lambda a, b: losses.kl_normal(a, b, reduction), x, y)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_binary_cross_entropies(backend_name, rng, reduction):
    p = to_tensor(rng.uniform(0.05, 0.95, (4, 3)), requires_grad=True)
    x = to_tensor(rng.standard_normal((4, 3)) * 3, requires_grad=True)
    y = to_tensor(rng.uniform(0, 1, (4, 3)), requires_grad=True)
    tinyae.gradcheck(lambda a, b: losses.bce(a, b, reduction), p, y)
    tinyae.gradcheck(lambda a, b: losses.bce_with_logits(a, b, reduction), x, y)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_cross_entropy(backend_name, rng, reduction):
    logits = to_tensor(rng.standard_normal((5, 4)) * 2, requires_grad=True)
    labels = tinyae.tensor(np.array([0, 3, 1, 3, 2]), dtype="int64")  # a Tensor of labels
    tinyae.gradcheck(lambda a: losses.cross_entropy(a, labels, reduction), logits)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gradcheck_gan_losses(backend_name, rng, reduction):
    real = to_tensor(rng.standard_normal((4, 1)), requires_grad=True)
    fake = to_tensor(rng.standard_normal((6, 1)), requires_grad=True)
    if reduction != "none":
        tinyae.gradcheck(lambda r, f: losses.gan_discriminator_loss(r, f, 0.9, reduction),
                         real, fake)
    tinyae.gradcheck(lambda f: losses.gan_generator_loss(f, reduction), fake)
    tinyae.gradcheck(lambda f: losses.gan_generator_loss_minimax(f, reduction), fake)


@settings(max_examples=10, deadline=None)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), seed=st.integers(0, 1000))
def test_gradcheck_random_shapes(shape, seed):
    rng = np.random.default_rng(seed)
    x = to_tensor(rng.standard_normal(shape), requires_grad=True)
    y = to_tensor(rng.standard_normal(shape), requires_grad=True)
    tinyae.gradcheck(lambda a, b: losses.euclidean(a, b, "none"), x, y)
    tinyae.gradcheck(lambda a, b: losses.bce_with_logits(a, b, "mean"), x, y)


# ---------------------------------------------------------------- parity with PyTorch
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_bce_match_torch(backend_name, rng, torch, reduction):
    F = torch.nn.functional
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    p, t = rng.uniform(0.02, 0.98, (4, 3)), rng.uniform(0, 1, (4, 3))
    assert_matches_torch(torch, lambda a, b: losses.mse(a, b, reduction),
                         lambda a, b: F.mse_loss(a, b, reduction=reduction), x, y)
    assert_matches_torch(torch, lambda a, b: losses.bce(a, b, reduction),
                         lambda a, b: F.binary_cross_entropy(a, b, reduction=reduction), p, t)
    assert_matches_torch(
        torch, lambda a, b: losses.bce_with_logits(a, b, reduction),
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=reduction), 4 * x, t)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_euclidean_and_kl_match_torch_formulas(backend_name, rng, torch, reduction):
    x, y = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 3))
    assert_matches_torch(
        torch, lambda a, b: losses.euclidean(a, b, reduction),
        lambda a, b: torch_reduce(torch, (a - b) ** 2, reduction, per_example=True), x, y)
    assert_matches_torch(
        torch, lambda mu, logvar: losses.kl_normal(mu, logvar, reduction),
        lambda mu, logvar: torch_reduce(
            torch, -0.5 * (1 + logvar - mu ** 2 - logvar.exp()), reduction, per_example=True),
        x, y)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_cross_entropy_matches_torch(backend_name, rng, torch, reduction):
    labels = np.array([2, 0, 1, 2, 2, 4])
    assert_matches_torch(
        torch, lambda a: losses.cross_entropy(a, tinyae.tensor(labels, dtype="int64"), reduction),
        lambda a: torch.nn.functional.cross_entropy(a, torch.tensor(labels),
                                                    reduction=reduction),
        rng.standard_normal((6, 5)) * 3)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_gan_losses_match_torch_formulas(backend_name, rng, torch, reduction):
    logsigmoid = torch.nn.functional.logsigmoid
    real, fake = rng.standard_normal((5, 1)) * 3, rng.standard_normal((5, 1)) * 3
    assert_matches_torch(torch, lambda f: losses.gan_generator_loss(f, reduction),
                         lambda f: torch_reduce(torch, -logsigmoid(f), reduction), fake)
    assert_matches_torch(torch, lambda f: losses.gan_generator_loss_minimax(f, reduction),
                         lambda f: torch_reduce(torch, logsigmoid(-f), reduction), fake)
    if reduction == "none":
        return
    smooth = 0.9  # -(0.9 log D(x) + 0.1 log(1 - D(x))) - log(1 - D(G(z)))
    assert_matches_torch(
        torch, lambda r, f: losses.gan_discriminator_loss(r, f, smooth, reduction),
        lambda r, f: (torch_reduce(torch, -smooth * logsigmoid(r) - (1 - smooth) * logsigmoid(-r),
                                   reduction)
                      + torch_reduce(torch, -logsigmoid(-f), reduction)),
        real, fake)


def test_gan_discriminator_loss_none_returns_both_terms(backend_name, rng):
    real = to_tensor(rng.standard_normal((3, 1)))
    fake = to_tensor(rng.standard_normal((5, 1)))
    on_real, on_fake = losses.gan_discriminator_loss(real, fake, reduction="none")
    assert on_real.shape == (3, 1) and on_fake.shape == (5, 1)
    total = losses.gan_discriminator_loss(real, fake, reduction="sum").item()
    assert total == pytest.approx(on_real.numpy().sum() + on_fake.numpy().sum(), rel=1e-12)


# ---------------------------------------------------------------- what "mean" means
def test_mean_is_per_element_or_per_example(backend_name, rng):
    x = to_tensor(rng.standard_normal((4, 2, 3)))
    y = to_tensor(rng.standard_normal((4, 2, 3)))
    squared = (x.numpy() - y.numpy()) ** 2
    assert losses.mse(x, y).item() == pytest.approx(squared.mean(), rel=1e-12)
    assert losses.mse(x, y, "none").shape == (4, 2, 3)
    assert losses.euclidean(x, y).item() == pytest.approx(squared.sum() / 4, rel=1e-12)
    np.testing.assert_allclose(losses.euclidean(x, y, "none").numpy(),
                               squared.sum(axis=(1, 2)), rtol=1e-12)
    assert losses.kl_normal(x, y, "none").shape == (4,)
    logits = to_tensor(rng.standard_normal((4, 3)))
    assert losses.cross_entropy(logits, [0, 1, 2, 0], "none").shape == (4,)


def test_kl_normal_is_zero_at_the_prior(backend_name):
    zeros = to_tensor(np.zeros((3, 4)))
    assert losses.kl_normal(zeros, zeros).item() == 0.0


# ---------------------------------------------------------------- stability at the edges
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_is_finite_at_exactly_zero_and_one(backend_name, torch, dtype):
    p = np.array([0.0, 1.0, 0.0, 1.0, 0.5])
    y = np.array([1.0, 0.0, 0.0, 1.0, 1.0])
    probs = to_tensor(p, requires_grad=True, dtype=dtype)
    loss = losses.bce(probs, to_tensor(y, dtype=dtype), "none")
    np.testing.assert_allclose(loss.numpy(), [100, 100, 0, 0, np.log(2)], rtol=1e-6)
    losses.bce(probs, to_tensor(y, dtype=dtype)).backward()
    assert np.all(np.isfinite(host(probs.grad)))
    tp = torch.tensor(p, dtype=getattr(torch, dtype), requires_grad=True)
    torch.nn.functional.binary_cross_entropy(tp, torch.tensor(y, dtype=tp.dtype)).backward()
    np.testing.assert_allclose(host(probs.grad), tp.grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_bce_with_logits_is_exact_at_huge_logits(backend_name, dtype):
    x = to_tensor([1e4, 1e4, -1e4, -1e4], requires_grad=True, dtype=dtype)
    y = to_tensor([1.0, 0.0, 1.0, 0.0], dtype=dtype)
    np.testing.assert_array_equal(losses.bce_with_logits(x, y, "none").numpy(), [0, 1e4, 1e4, 0])
    losses.bce_with_logits(x, y, "sum").backward()
    np.testing.assert_array_equal(host(x.grad), [0, 1, -1, 0])  # sigmoid(x) - y


def test_cross_entropy_is_finite_at_huge_logits(backend_name):
    logits = to_tensor([[1e4, -1e4, 0.0], [0.0, 0.0, 1e4]], requires_grad=True)
    loss = losses.cross_entropy(logits, [1, 2], "none")
    np.testing.assert_allclose(loss.numpy(), [2e4, 0.0])
    loss.sum().backward()
    np.testing.assert_allclose(host(logits.grad), [[1, -1, 0], [0, 0, 0]], atol=1e-300)


# ---------------------------------------------------------------- dtypes
def test_float32_stays_float32(backend_name, xp, rng):
    x = tinyae.tensor(rng.standard_normal((4, 3)).astype(np.float32), requires_grad=True)
    data64 = xp.asarray(rng.uniform(0, 1, (4, 3)))  # float64 data must not upcast the loss
    for loss in [losses.mse(x, data64), losses.euclidean(x, data64),
                 losses.bce(tinyae.sigmoid(x), data64), losses.bce_with_logits(x, data64),
                 losses.kl_normal(x, x * 0.5), losses.cross_entropy(x, [0, 1, 2, 0]),
                 losses.gan_discriminator_loss(x, x, 0.9), losses.gan_generator_loss(x),
                 losses.gan_generator_loss_minimax(x)]:
        assert loss.dtype == np.float32
        x.grad = None
        loss.backward()
        assert x.grad.dtype == np.float32


def test_target_gets_no_gradient_unless_asked(backend_name, rng):
    x = to_tensor(rng.standard_normal((2, 3)), requires_grad=True)
    y = to_tensor(rng.standard_normal((2, 3)))
    losses.mse(x, y).backward()
    assert x.grad is not None and y.grad is None


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("name", ["mse", "euclidean", "bce", "bce_with_logits", "kl_normal"])
def test_shape_mismatch_names_the_loss_and_both_shapes(backend_name, name):
    a, b = to_tensor(np.full((4, 1), 0.5)), to_tensor(np.full((4,), 0.5))
    with pytest.raises(ValueError, match=rf"{name}: .*\(4, 1\).*\(4,\)"):
        getattr(losses, name)(a, b)


def test_bad_reduction(backend_name):
    x = to_tensor(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="mse: reduction"):
        losses.mse(x, x, reduction="average")
    with pytest.raises(ValueError, match="gan_generator_loss: reduction"):
        losses.gan_generator_loss(x, reduction="avg")


def test_bce_refuses_values_outside_zero_one(backend_name):
    with pytest.raises(ValueError, match="bce_with_logits"):
        losses.bce(to_tensor([[2.0, -1.0]]), to_tensor([[1.0, 0.0]]))


def test_cross_entropy_label_errors(backend_name):
    logits = to_tensor(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        losses.cross_entropy(logits, [0, 1])
    with pytest.raises(TypeError, match="integer class indices"):
        losses.cross_entropy(logits, tinyae.tensor([0, 1, 2]))  # float32 by default
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        losses.cross_entropy(logits, [0, 1, 4])
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        losses.cross_entropy(to_tensor(np.zeros(3)), [0, 1, 2])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_fused_losses_agree_with_the_reference_kernels(backend_name, rng, reduction):
    """bce_with_logits and kl_normal run on kernels; both kernel modes give one answer."""
    import kernels
    arrays = [rng.standard_normal((4, 5)) * 3, rng.random((4, 5))]
    results = []
    for mode in ("reference", "fused"):
        with kernels.using_mode(mode):
            out = []
            for loss in (losses.bce_with_logits, losses.kl_normal):
                a, b = (to_tensor(v, requires_grad=True) for v in arrays)
                value = loss(a, b, reduction)
                value.backward(to_tensor(np.ones(value.shape)))
                out += [value.numpy(), backend.to_numpy(a.grad), backend.to_numpy(b.grad)]
            results.append(out)
    for ref, fused in zip(*results):
        np.testing.assert_allclose(fused, ref, rtol=1e-12, atol=1e-12)
