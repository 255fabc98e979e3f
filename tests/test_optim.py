"""Optimizers: the same trajectory as torch.optim from the same start and gradients,
dtypes kept, state dicts that resume exactly, StepLR."""
import numpy as np
import pytest

import tinyae
from tinyae import backend, optim

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("SGD", dict(lr=0.1, weight_decay=0.1)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, betas=(0.5, 0.9), eps=1e-6)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("RMSprop", dict()),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1)),
]
IDS = [f"{name}-{kwargs}" for name, kwargs in CONFIGS]
SHAPES = [(3, 4), (4,), (2, 1, 3)]
SKIPPED = {(2, 1), (4, 0)}  # (step, parameter) pairs whose gradient is None


def initial_values(dtype="float64"):
    rng = np.random.default_rng(0)
    return [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]


def gradient_noise(steps, dtype="float64"):
    rng = np.random.default_rng(1)
    return [[rng.standard_normal(shape).astype(dtype) for shape in SHAPES] for _ in range(steps)]


def set_gradients(params, noise, step, xp):
    """grad = noise + 0.3 * param: the gradient of a quadratic, so paths that part stay apart."""
    for i, p in enumerate(params):
        p.grad = None if (step, i) in SKIPPED else xp.asarray(noise[step][i]) + 0.3 * p.data


def tinyae_run(name, kwargs, steps, xp, dtype="float64", params=None, optimizer=None,
               first_step=0):
    if params is None:
        params = [tinyae.Parameter(xp.asarray(a)) for a in initial_values(dtype)]
    if optimizer is None:
        optimizer = getattr(optim, name)(params, **kwargs)
    noise = gradient_noise(first_step + steps, dtype)
    for step in range(first_step, first_step + steps):
        optimizer.zero_grad()
        set_gradients(params, noise, step, xp)
        optimizer.step()
    return params, optimizer


def torch_run(torch, name, kwargs, steps, dtype="float64"):
    params = [torch.tensor(a, requires_grad=True) for a in initial_values(dtype)]
    optimizer = getattr(torch.optim, name)(params, **kwargs)
    noise = gradient_noise(steps, dtype)
    for step in range(steps):
        optimizer.zero_grad()
        for i, p in enumerate(params):
            if (step, i) not in SKIPPED:
                p.grad = torch.tensor(noise[step][i]) + 0.3 * p.detach()
        optimizer.step()
    return [p.detach().numpy() for p in params]


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_matches_torch_in_float64(backend_name, xp, torch, name, kwargs):
    ours, _ = tinyae_run(name, kwargs, 6, xp)
    theirs = torch_run(torch, name, kwargs, 6)
    for i, (p, t) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(p.numpy(), t, rtol=1e-10, atol=1e-12, err_msg=f"param {i}")


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_float32_stays_float32(backend_name, xp, torch, name, kwargs):
    ours, optimizer = tinyae_run(name, kwargs, 5, xp, dtype="float32")
    theirs = torch_run(torch, name, kwargs, 5, dtype="float32")
    for p, t in zip(ours, theirs):
        assert p.dtype == np.float32
        np.testing.assert_allclose(p.numpy(), t, rtol=1e-5, atol=1e-6)
    for entry in optimizer.state.values():
        for value in entry.values():
            assert not hasattr(value, "dtype") or value.dtype == np.float32


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_state_dict_resumes_exactly(backend_name, xp, name, kwargs):
    uninterrupted, _ = tinyae_run(name, kwargs, 6, xp)

    params, optimizer = tinyae_run(name, kwargs, 3, xp)
    saved = optimizer.state_dict()
    resumed_params = [tinyae.Parameter(p.data.copy()) for p in params]
    snapshot = [[v.copy() if hasattr(v, "copy") else v for v in e.values()]
                for e in saved["state"].values()]
    optimizer.step()  # later steps must not change the saved snapshot
    for entry, before in zip(saved["state"].values(), snapshot):
        for value, old in zip(entry.values(), before):
            np.testing.assert_array_equal(backend.to_numpy(value), backend.to_numpy(old))

    fresh = getattr(optim, name)(resumed_params, lr=123.0)  # hyperparameters come from the dict
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == kwargs.get("lr", optimizer.defaults["lr"])
    tinyae_run(name, kwargs, 3, xp, params=resumed_params, optimizer=fresh, first_step=3)
    for p, q in zip(resumed_params, uninterrupted):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


@pytest.mark.parametrize("name, kwargs", CONFIGS, ids=IDS)
def test_one_call_over_a_flat_group_equals_one_call_per_parameter(backend_name, xp, name,
                                                                  kwargs):
    """A group's data, gradients and state are views of one flat array each, and the step
    over them is bit for bit the step parameter by parameter (one group per parameter)."""
    grouped, optimizer = tinyae_run(name, kwargs, 6, xp)
    alone = [tinyae.Parameter(xp.asarray(a)) for a in initial_values()]
    per_parameter = getattr(optim, name)([{"params": [p]} for p in alone], **kwargs)
    tinyae_run(name, kwargs, 6, xp, params=alone, optimizer=per_parameter)
    for p, q in zip(grouped, alone):
        np.testing.assert_array_equal(p.numpy(), q.numpy())
    # A step skipped for one parameter leaves it a step count of its own (as in torch), so
    # the group goes parameter by parameter from then on; a fresh run with every gradient:
    grouped = [tinyae.Parameter(xp.asarray(a)) for a in initial_values()]
    optimizer = getattr(optim, name)(grouped, **kwargs)
    for _ in range(2):
        for p in grouped:
            p.grad = p.data * 0.5
        optimizer.step()
    flat = optimizer.flat_groups[0]
    arrays = [flat.param, flat.grad] + list(flat.state.values())
    for i, p in enumerate(grouped):
        owned = [p.data, p.grad] + [v for v in optimizer.state[i].values() if hasattr(v, "shape")]
        assert len(owned) == len(arrays)
        for view, whole in zip(owned, arrays):   # a value written into the flat array shows
            whole[flat.slices[i].start] = 12345.0
            assert float(view.reshape(-1)[0]) == 12345.0


def test_load_state_dict_writes_into_the_flat_state():
    params = [tinyae.Parameter(np.zeros(3)), tinyae.Parameter(np.zeros((2, 2)))]
    optimizer = optim.Adam(params)
    for _ in range(2):
        for p in params:
            p.grad = backend.to_backend(np.ones(p.shape))
        optimizer.step()
    saved, views = optimizer.state_dict(), optimizer.state[1]["exp_avg"]
    saved["state"][1]["exp_avg"] = np.full((2, 2), 7.0)
    optimizer.load_state_dict(saved)
    assert optimizer.state[1]["exp_avg"] is views
    np.testing.assert_allclose(backend.to_numpy(optimizer.flat_groups[0].state["exp_avg"]),
                               [0.19] * 3 + [7.0] * 4)   # 0.1 + 0.9 * 0.1, then as loaded


def test_state_dict_layout_is_pytorch_like():
    params = [tinyae.Parameter(np.zeros(3)), tinyae.Parameter(np.zeros((2, 2)))]
    optimizer = optim.Adam(params, lr=0.01)
    for p in params:
        p.grad = backend.to_backend(np.ones(p.shape))
    optimizer.step()
    state = optimizer.state_dict()
    assert state["param_groups"] == [dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                          weight_decay=0, params=[0, 1])]
    assert sorted(state["state"]) == [0, 1]
    assert state["state"][1]["step"] == 1 and type(state["state"][1]["step"]) is int
    assert state["state"][1]["exp_avg"].shape == (2, 2)


def test_load_state_dict_checks_parameters():
    params = [tinyae.Parameter(np.zeros(3)), tinyae.Parameter(np.zeros((2, 2)))]
    optimizer = optim.Adam(params)
    for p in params:
        p.grad = backend.to_backend(np.ones(p.shape))
    optimizer.step()
    saved = optimizer.state_dict()
    with pytest.raises(ValueError, match="saved with 2 parameters, this optimizer has 1"):
        optim.Adam(params[:1]).load_state_dict(saved)
    other = [tinyae.Parameter(np.zeros(3)), tinyae.Parameter(np.zeros((2, 3)))]
    with pytest.raises(ValueError, match=r"parameter 1 has shape \(2, 2\).*\(2, 3\)"):
        optim.Adam(other).load_state_dict(saved)
    with pytest.raises(ValueError, match="another optimizer"):
        optim.SGD(params, lr=0.1).load_state_dict(saved)


def test_step_skips_parameters_without_gradient():
    a, b = tinyae.Parameter(np.ones(2)), tinyae.Parameter(np.ones(2))
    optimizer = optim.SGD([a, b], lr=0.5, momentum=0.9)
    a.grad = backend.to_backend(np.ones(2))
    optimizer.step()
    np.testing.assert_array_equal(a.numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(b.numpy(), [1, 1])
    assert list(optimizer.state) == [0]
    optimizer.zero_grad()
    assert a.grad is None and b.grad is None


def test_step_records_no_graph():
    p = tinyae.Parameter(np.ones(2))
    p.grad = backend.to_backend(np.ones(2))
    optim.Adam([p]).step()
    assert p.creator is None and p.requires_grad


def test_parameter_groups_match_torch(torch):
    init = initial_values()
    ours = [tinyae.Parameter(a.copy()) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    mine = optim.SGD([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.01}], lr=0.1,
                     momentum=0.9)
    reference = torch.optim.SGD([{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.01}],
                                lr=0.1, momentum=0.9)
    for step, noise in enumerate(gradient_noise(4)):
        for p, t, g in zip(ours, theirs, noise):
            p.grad, t.grad = backend.to_backend(g) + 0.3 * p.data, torch.tensor(g) + 0.3 * t.detach()
        mine.step()
        reference.step()
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.numpy(), t.detach().numpy(), rtol=1e-12)


def test_constructor_errors():
    p = tinyae.Parameter(np.zeros(2))
    with pytest.raises(TypeError, match="wrap it in a list"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="twice"):
        optim.Adam([p, p])
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        optim.Adam([{"params": [p], "learning_rate": 0.1}])
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)


def test_step_lr_matches_torch(torch):
    ours = optim.SGD([tinyae.Parameter(np.zeros(1))], lr=0.5)
    theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    scheduler = optim.StepLR(ours, step_size=3, gamma=0.1)
    reference = torch.optim.lr_scheduler.StepLR(theirs, step_size=3, gamma=0.1)
    for epoch in range(10):
        assert scheduler.get_last_lr()[0] == pytest.approx(reference.get_last_lr()[0],
                                                           rel=1e-12)
        theirs.step()
        scheduler.step()
        reference.step()


def test_step_lr_state_dict_resumes():
    def make():
        optimizer = optim.Adam([tinyae.Parameter(np.zeros(1))], lr=1.0)
        return optimizer, optim.StepLR(optimizer, step_size=2, gamma=0.5)

    optimizer, scheduler = make()
    for _ in range(5):
        scheduler.step()
    saved_optimizer, saved_scheduler = optimizer.state_dict(), scheduler.state_dict()
    scheduler.step()
    expected = scheduler.get_last_lr()

    optimizer, scheduler = make()
    optimizer.load_state_dict(saved_optimizer)
    scheduler.load_state_dict(saved_scheduler)
    assert scheduler.get_last_lr() == [0.25]
    scheduler.step()
    assert scheduler.get_last_lr() == expected == [0.125]


@pytest.mark.parametrize("name, options", [
    ("StepLR", dict(step_size=2, gamma=0.5)), ("CosineAnnealingLR", dict(T_max=7)),
    ("LambdaLR", dict(lr_lambda=lambda e: 0.9 ** e))])
def test_schedules_set_torchs_rates(torch, name, options):
    mine = optim.SGD([tinyae.Parameter(np.zeros(1))], lr=0.5)
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    scheduler = getattr(optim, name)(mine, **options)
    torch_schedule = getattr(torch.optim.lr_scheduler, name)(reference, **options)
    for epoch in range(7):
        assert scheduler.get_last_lr()[0] == pytest.approx(torch_schedule.get_last_lr()[0],
                                                           rel=1e-12, abs=1e-15)
        assert mine.param_groups[0]["lr"] == pytest.approx(
            0.5 * scheduler.factor(epoch), rel=1e-12, abs=1e-15)   # one rule: factor(epoch)
        reference.step()
        scheduler.step()
        torch_schedule.step()


def test_a_schedule_without_an_optimizer_is_a_factor_of_the_epoch():
    schedule = optim.StepLR(step_size=3, gamma=0.5)
    assert [schedule.factor(e) for e in range(7)] == [1, 1, 1, 0.5, 0.5, 0.5, 0.25]
    assert repr(schedule) == "StepLR(step_size=3, gamma=0.5)"
    with pytest.raises(ValueError, match="bound to no optimizer"):
        schedule.step()


def test_schedule_arguments_speak_plainly():
    with pytest.raises(TypeError, match="first argument is the optimizer.*got 10.*"
                                        "StepLR\\(step_size=10\\)"):
        optim.StepLR(10)
    for bad in (0, 2.5, True, None):
        with pytest.raises(ValueError, match=f"step_size must be a positive integer, got "
                                             f"{bad!r}"):
            optim.StepLR(step_size=bad)
    with pytest.raises(ValueError, match="T_max must be a positive integer, got 0"):
        optim.CosineAnnealingLR(T_max=0)
    with pytest.raises(TypeError, match="lr_lambda must be a function"):
        optim.LambdaLR(lr_lambda=0.5)
    with pytest.raises(ValueError, match="gave the factor nan for epoch 4"):
        optim.LambdaLR(lr_lambda=lambda e: float("nan")).checked_factor(4)
