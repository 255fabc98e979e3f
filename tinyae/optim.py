"""Optimizers (SGD, Adam, RMSprop) and learning-rate schedules (StepLR, CosineAnnealingLR,
LambdaLR).

The update rules are PyTorch's, to the operation, so that a model trained here
and one trained with ``torch.optim`` from the same start follow the same path.
Each rule is a small function on arrays that changes the parameter and its
state in place: ``sgd_update`` here, ``adam_update`` and ``rmsprop_update`` in
``kernels`` (read the plain versions in ``kernels/reference.py``; the fused
Numba/CuPy versions make one pass over their arrays). The optimizer classes
only keep the state and call the rule for every parameter that has a gradient.
Tutorial 09 derives the rules and compares them.

The rules are elementwise, so one call over all of a group's parameters laid end
to end computes what one call per parameter would, bit for bit, in one kernel
launch instead of one per parameter (``FlatGroup``): each parameter's data,
gradient and state arrays are views of one flat array each.

Usage, as in PyTorch::

    optimizer = tinyae.optim.Adam(model.parameters(), lr=1e-3)
    for x in batches:
        optimizer.zero_grad()
        loss = tinyae.losses.mse(model(x), x)
        loss.backward()
        optimizer.step()

Parameters are given as a list (or iterator) of ``Parameter``\\ s, or as a list of
parameter groups, dicts ``{"params": [...], "lr": ...}`` whose keys override the
defaults for that group. ``state_dict()`` / ``load_state_dict()`` save and
restore everything a resumed run needs (hyperparameters, step counts, moment
estimates), keyed by the parameter's index in the order given.
"""
import math
import numbers

from kernels import adam_update, rmsprop_update  # plain rules: kernels/reference.py
from .autograd import Tensor, no_grad
from .backend import get_array_module


# ---------------------------------------------------------------- update rules on arrays
def sgd_update(param, grad, momentum_buffer, lr, momentum, dampening, nesterov, weight_decay):
    """One SGD step, in place on ``param``; returns the momentum buffer (None without momentum).

        g = grad + weight_decay * param
        b = g on the first step, then momentum * b + (1 - dampening) * g
        param -= lr * (g + momentum * b if nesterov else b)
    """
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if momentum != 0:
        if momentum_buffer is None:
            momentum_buffer = grad.copy()
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * grad
        grad = grad + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * grad
    return momentum_buffer


# ---------------------------------------------------------------- flat groups
class FlatGroup:
    """A parameter group's arrays end to end: each parameter's data, gradient slot and
    state arrays are views of one flat array each, so one update call covers the group.

    ``param`` and ``grad`` are the flat data and gradients; backward writes each
    gradient into its slot (``Tensor.grad_buffer``). ``state`` maps a state key
    ("exp_avg", ...) to its flat array. Built by the optimizer on its first step;
    only for a group whose parameters share one dtype and backend.
    """

    def __init__(self, params):
        xp = get_array_module(params[0].data)
        self.params = params
        bounds = [0]
        for p in params:
            bounds.append(bounds[-1] + p.size)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        self.param = xp.empty(bounds[-1], dtype=params[0].dtype)
        self.data_views = self.views(self.param)
        self.gather(self.data_views, [p.data for p in params])
        for p, view in zip(params, self.data_views):
            p.data = view
        self.grad = xp.zeros(bounds[-1], dtype=params[0].dtype)
        self.grad_views = self.views(self.grad)
        for p, view in zip(params, self.grad_views):
            p.grad_buffer = view
        self.state, self.state_views = {}, {}

    @staticmethod
    def fits(params):
        """Whether ``params`` can share flat arrays: one dtype, one backend."""
        return len({(p.dtype, p.backend) for p in params}) == 1

    def views(self, flat):
        """Each parameter's part of ``flat``, in its shape."""
        return [flat[part].reshape(p.shape) for p, part in zip(self.params, self.slices)]

    @staticmethod
    def gather(views, arrays):
        """Copy ``arrays`` into ``views`` where they are not those views already."""
        for view, array in zip(views, arrays):
            if array is not view:
                view[...] = array

    def intact(self):
        """False once a parameter's data was replaced (e.g. ``Module.to``)."""
        return all(p.data is view for p, view in zip(self.params, self.data_views))

    def flat_state(self, entries):
        """The flat state of the group from its parameters' ``entries`` (one dict each, with
        the same keys and numbers), copying into the flat arrays any that are not views."""
        state = {}
        for key, value in entries[0].items():
            if not hasattr(value, "shape"):
                state[key] = value
                continue
            if key not in self.state:
                self.state[key] = get_array_module(self.param).empty_like(self.param)
                self.state_views[key] = self.views(self.state[key])
            self.gather(self.state_views[key], [entry[key] for entry in entries])
            state[key] = self.state[key]
        return state

    def scatter_state(self, state, entries):
        """Each parameter's entry from the flat ``state`` after an update: numbers copied,
        arrays as views (a flat array the update made anew is taken in first)."""
        for key, value in state.items():
            if hasattr(value, "shape") and value is not self.state.get(key):
                self.state[key], self.state_views[key] = value, self.views(value)
            for i, entry in enumerate(entries):
                entry[key] = self.state_views[key][i] if hasattr(value, "shape") else value


# ---------------------------------------------------------------- optimizers
class Optimizer:
    """Base class: parameter groups, per-parameter state, ``step``, ``zero_grad``, state dicts.

    Subclasses set ``defaults`` (hyperparameter name -> default value) and write
    ``init_state(param, group)`` (the fresh state of one parameter) and
    ``update(param, state, group)`` (one step for one parameter; ``step`` also calls
    both with a whole group's flat arrays as one parameter, see ``FlatGroup``).
    """

    def __init__(self, params, defaults):
        name = type(self).__name__
        if isinstance(params, Tensor):
            raise TypeError(f"{name}: params must be an iterable of Parameters (e.g. "
                            "model.parameters()), got a single Tensor; wrap it in a list")
        groups = list(params)
        if not groups:
            raise ValueError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.defaults = defaults
        self.param_groups = []
        self.state = {}  # parameter index -> dict of arrays and numbers
        self.flat_groups = []  # one FlatGroup (or None) per parameter group, from the first step
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        """Add a group ``{"params": [...], hyperparameter: value, ...}``; defaults fill the rest."""
        name = type(self).__name__
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"{name}: unknown hyperparameters {sorted(unknown)}; "
                             f"{name} has {sorted(self.defaults)}")
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(f"{name}: can only optimize Parameters/Tensors, got "
                                f"{type(p).__name__}")
            if id(p) in seen:
                raise ValueError(f"{name}: a parameter appears twice in the parameter list")
            seen.add(id(p))
        self.param_groups.append({**self.defaults, **group, "params": params})

    def indexed_params(self):
        """(index, parameter, group) for every parameter, indexed across groups in order."""
        index = 0
        for group in self.param_groups:
            for param in group["params"]:
                yield index, param, group
                index += 1

    def zero_grad(self):
        """Forget every parameter's gradient (set it to None), before the next backward."""
        for _, param, _ in self.indexed_params():
            param.grad = None

    def step(self):
        """Update every parameter that has a gradient; parameters with grad None are skipped.

        A group whose parameters all have a gradient and the same step count is updated
        in one call over its flat arrays (``step_flat``), the others parameter by parameter.
        """
        with no_grad():
            first = 0
            for number, group in enumerate(self.param_groups):
                indices = range(first, first + len(group["params"]))
                first += len(group["params"])
                if self.step_flat(number, indices):
                    continue
                for index, param in zip(indices, group["params"]):
                    if param.grad is None:
                        continue
                    if index not in self.state:
                        self.state[index] = self.init_state(param, group)
                    self.update(param, self.state[index], group)

    def step_flat(self, number, indices):
        """``update`` once on group ``number``'s flat arrays, as a parameter of their own;
        False (nothing done) unless every parameter has a gradient and their states agree."""
        group, params = self.param_groups[number], self.param_groups[number]["params"]
        while len(self.flat_groups) <= number:
            self.flat_groups.append(None)
        flat = self.flat_groups[number]
        if flat is None or not flat.intact():
            flat = self.flat_groups[number] = FlatGroup(params) if FlatGroup.fits(params) else None
        if flat is None or any(p.grad is None for p in params):
            return False
        entries = [self.state.get(index) for index in indices]
        if any(entry is None for entry in entries) and not all(e is None for e in entries):
            return False
        if entries[0] is not None and any(  # the same keys and numbers (step counts) for all
                {k: v for k, v in e.items() if not hasattr(v, "shape")}
                != {k: v for k, v in entries[0].items() if not hasattr(v, "shape")}
                or e.keys() != entries[0].keys() for e in entries):
            return False
        flat.gather(flat.grad_views, [p.grad for p in params])
        for p, view in zip(params, flat.grad_views):
            p.grad = view
        whole = Tensor(flat.param)
        whole.grad = flat.grad
        if entries[0] is None:
            state = self.init_state(whole, group)
            entries = [{} for _ in params]
            self.state.update(zip(indices, entries))
        else:
            state = flat.flat_state(entries)
        self.update(whole, state, group)
        flat.scatter_state(state, entries)
        return True

    def init_state(self, param, group):
        """The state of a parameter before its first step (a subclass's buffers)."""
        raise NotImplementedError

    def update(self, param, state, group):
        """One update of ``param`` in place from its gradient, ``state`` and ``group``'s
        settings.
        """
        raise NotImplementedError

    # --- saving and resuming ------------------------------------------------
    def state_dict(self):
        """A snapshot, in PyTorch's layout: {"state": {index: {...}}, "param_groups": [...]}.

        Arrays are copies (later steps do not change the snapshot); step counts
        and hyperparameters are Python numbers. Save it with ``tinyae.checkpoint.save``.
        """
        state = {index: {key: value.copy() if hasattr(value, "shape") else value
                         for key, value in entry.items()}
                 for index, entry in self.state.items()}
        groups, first = [], 0
        for group in self.param_groups:
            saved = {key: value for key, value in group.items() if key != "params"}
            saved["params"] = list(range(first, first + len(group["params"])))
            first += len(group["params"])
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state saved by ``state_dict`` (possibly from a file).

        Arrays are copied onto each parameter's backend and dtype. Raises ValueError
        when the saved optimizer had other parameters (count or shapes) or was of
        another kind.
        """
        name = type(self).__name__
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: the saved state has {len(saved_groups)} "
                             f"parameter groups, this optimizer has {len(self.param_groups)}")
        for i, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {i} was saved with {len(saved['params'])} "
                    f"parameters, this optimizer has {len(group['params'])}; was it built "
                    "from the same model?")
            hyperparameters = set(saved) - {"params"}
            if hyperparameters != set(self.defaults):
                raise ValueError(
                    f"{name}.load_state_dict: the saved hyperparameters {sorted(hyperparameters)}"
                    f" are not {name}'s {sorted(self.defaults)}; was it saved from another "
                    "optimizer?")
        params = [(param, saved) for saved, group in zip(saved_groups, self.param_groups)
                  for param in group["params"]]
        state = {}
        for index, saved_entry in state_dict["state"].items():
            index = int(index)
            if not 0 <= index < len(params):
                raise ValueError(f"{name}.load_state_dict: state for parameter {index}, but "
                                 f"this optimizer has {len(params)} parameters")
            param, saved_group = params[index]
            state[index] = self._restore_entry(index, param, saved_entry, saved_group)
            for key, value in state[index].items():  # into the arrays there (flat views)
                old = self.state.get(index, {}).get(key)
                if hasattr(value, "shape") and getattr(old, "shape", None) == value.shape:
                    old[...] = value
                    state[index][key] = old
        for saved, group in zip(saved_groups, self.param_groups):
            group.update({key: value for key, value in saved.items() if key != "params"})
        self.state = state

    def _restore_entry(self, index, param, saved_entry, saved_group):
        """One parameter's saved state, checked against a fresh one, on the parameter's backend."""
        name = type(self).__name__
        expected = self.init_state(param, saved_group)
        if set(saved_entry) != set(expected):
            raise ValueError(f"{name}.load_state_dict: parameter {index} has state "
                             f"{sorted(saved_entry)}, expected {sorted(expected)}")
        xp = get_array_module(param.data)
        entry = {}
        for key, value in saved_entry.items():
            if hasattr(value, "shape"):
                if tuple(value.shape) != param.shape:
                    raise ValueError(
                        f"{name}.load_state_dict: state {key!r} of parameter {index} has shape "
                        f"{tuple(value.shape)}, but the parameter has shape {param.shape}")
                value = xp.array(value, dtype=param.dtype)  # a copy, on the parameter's backend
            entry[key] = value
        return entry


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay.

    Same arguments and update as torch.optim.SGD (see ``sgd_update``).

    Example::

        optimizer = tinyae.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    """

    def __init__(self, params, lr, momentum=0, dampening=0, nesterov=False, weight_decay=0):
        if lr < 0:
            raise ValueError(f"SGD: lr must be >= 0, got {lr}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: nesterov=True needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      nesterov=nesterov, weight_decay=weight_decay))

    def init_state(self, param, group):
        # the buffer starts as a copy of the first gradient, so it is made in the first update
        """No state until momentum needs a buffer."""
        return {"momentum_buffer": None} if group["momentum"] != 0 else {}

    def update(self, param, state, group):
        """PyTorch's SGD step (weight decay, momentum, dampening, Nesterov) in one kernel."""
        state_buffer = sgd_update(param.data, param.grad, state.get("momentum_buffer"),
                                  group["lr"], group["momentum"], group["dampening"],
                                  group["nesterov"], group["weight_decay"])
        if group["momentum"] != 0:
            state["momentum_buffer"] = state_buffer


class Adam(Optimizer):
    """Adam: steps scaled by running averages of the gradient and its square.

    Same arguments and update as torch.optim.Adam (see ``adam_update``); weight_decay
    is the L2 penalty added to the gradient (torch.optim.Adam, not AdamW).

    Example::

        optimizer = tinyae.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0):
        if lr < 0 or eps < 0:
            raise ValueError(f"Adam: lr and eps must be >= 0, got lr={lr}, eps={eps}")
        if not all(0 <= beta < 1 for beta in betas) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    def init_state(self, param, group):
        """The step count and the two moment buffers, zero."""
        xp = get_array_module(param.data)
        return {"step": 0,
                "exp_avg": xp.zeros_like(param.data),
                "exp_avg_sq": xp.zeros_like(param.data)}

    def update(self, param, state, group):
        """PyTorch's Adam step, in one fused kernel (kernels.adam_update)."""
        state["step"] += 1
        beta1, beta2 = group["betas"]
        adam_update(param.data, param.grad, state["exp_avg"], state["exp_avg_sq"],
                    state["step"], group["lr"], beta1, beta2, group["eps"],
                    group["weight_decay"])


class RMSprop(Optimizer):
    """RMSprop: steps divided by a running root-mean-square of the gradient.

    Same arguments and update as torch.optim.RMSprop (see ``rmsprop_update``);
    ``centered=True`` divides by the running standard deviation instead.

    Example::

        optimizer = tinyae.optim.RMSprop(model.parameters(), lr=5e-5)
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False):
        if lr < 0 or eps < 0 or momentum < 0:
            raise ValueError(f"RMSprop: lr, eps and momentum must be >= 0, got lr={lr}, "
                             f"eps={eps}, momentum={momentum}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered))

    def init_state(self, param, group):
        """The squared-gradient average, and the buffers momentum and centring need."""
        xp = get_array_module(param.data)
        state = {"step": 0, "square_avg": xp.zeros_like(param.data)}
        if group["momentum"] > 0:
            state["momentum_buffer"] = xp.zeros_like(param.data)
        if group["centered"]:
            state["grad_avg"] = xp.zeros_like(param.data)
        return state

    def update(self, param, state, group):
        """PyTorch's RMSprop step, in one fused kernel (kernels.rmsprop_update)."""
        state["step"] += 1
        rmsprop_update(param.data, param.grad, state["square_avg"], group["lr"], group["alpha"],
                       group["eps"], group["weight_decay"], group["momentum"],
                       state.get("momentum_buffer"), group["centered"], state.get("grad_avg"))


# ---------------------------------------------------------------- learning-rate schedules
class LRSchedule:
    """A learning-rate schedule: each group's rate is its initial rate x ``factor(epoch)``,
    epoch counting from 0. The factor depends on the epoch alone, so a resumed run gets
    the rates of an uninterrupted one.

    Use one in either of two ways:

    - give it to ``tinyae.train(..., lr_schedule=StepLR(step_size=10))``, which sets
      every optimizer's rates at the start of each epoch;
    - or, as torch's schedulers, bind it to an optimizer and call ``step()`` after
      each epoch: ``scheduler = StepLR(optimizer, step_size=10)``.

    Subclasses write ``factor(epoch)`` and ``__repr__`` (what a checkpoint records).
    """

    def __init__(self, optimizer=None):
        if optimizer is not None and not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: the first argument is the optimizer to "
                            f"bind to (or None), got {optimizer!r}; give the schedule's "
                            "settings by name, e.g. StepLR(step_size=10)")
        self.optimizer = optimizer
        self.base_lrs = None if optimizer is None else [g["lr"] for g in optimizer.param_groups]
        self.last_epoch = 0

    def factor(self, epoch):
        """The factor on the initial learning rate in the 0-based ``epoch``."""
        raise NotImplementedError

    def checked_factor(self, epoch):
        """``factor(epoch)`` as a float, refused unless finite and >= 0."""
        factor = float(self.factor(epoch))
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"{self!r} gave the factor {factor!r} for epoch {epoch}; it must "
                             "be a finite number >= 0")
        return factor

    def step(self):
        """One epoch done: set the bound optimizer's rates for the next one."""
        if self.optimizer is None:
            raise ValueError(f"{self!r}.step(): the schedule is bound to no optimizer; build "
                             "it with one, or give it to tinyae.train(lr_schedule=...)")
        self.last_epoch += 1
        factor = self.checked_factor(self.last_epoch)
        for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base_lr * factor

    def get_last_lr(self):
        """The learning rate of each parameter group, as set by the last ``step``."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {"base_lrs": list(self.base_lrs), "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict):
        self.base_lrs = list(state_dict["base_lrs"])
        self.last_epoch = state_dict["last_epoch"]


class StepLR(LRSchedule):
    """Multiply the learning rate by ``gamma`` every ``step_size`` epochs, as torch's StepLR:
    factor(epoch) = gamma ** (epoch // step_size).

    Example::

        scheduler = tinyae.optim.StepLR(optimizer, step_size=10, gamma=0.5)
        for epoch in range(30):
            train_one_epoch()
            scheduler.step()
        tinyae.train(model, x, epochs=30, lr_schedule=tinyae.optim.StepLR(step_size=10))
    """

    def __init__(self, optimizer=None, step_size=None, gamma=0.1):
        super().__init__(optimizer)
        if isinstance(step_size, bool) or not isinstance(step_size, numbers.Integral) \
                or step_size < 1:
            raise ValueError(f"StepLR: step_size must be a positive integer, got {step_size!r}")
        self.step_size, self.gamma = int(step_size), gamma

    def factor(self, epoch):
        """gamma ** (epoch // step_size)."""
        return self.gamma ** (epoch // self.step_size)

    def __repr__(self):
        return f"StepLR(step_size={self.step_size}, gamma={self.gamma!r})"

    def state_dict(self):
        return {"step_size": self.step_size, "gamma": self.gamma, **super().state_dict()}

    def load_state_dict(self, state_dict):
        self.step_size, self.gamma = state_dict["step_size"], state_dict["gamma"]
        super().load_state_dict(state_dict)


class CosineAnnealingLR(LRSchedule):
    """From the initial rate down towards 0 over ``T_max`` epochs, as torch's
    CosineAnnealingLR (eta_min = 0): factor(epoch) = (1 + cos(pi epoch / T_max)) / 2.

    ``tinyae.train(lr_schedule="cosine")`` is this schedule with T_max = the run's epochs.
    """

    def __init__(self, optimizer=None, T_max=None):  # noqa: N803 (torch's name)
        super().__init__(optimizer)
        if isinstance(T_max, bool) or not isinstance(T_max, numbers.Integral) or T_max < 1:
            raise ValueError(f"CosineAnnealingLR: T_max must be a positive integer, got {T_max!r}")
        self.T_max = int(T_max)

    def factor(self, epoch):
        """(1 + cos(pi epoch / T_max)) / 2: from 1 down to 0 over T_max epochs."""
        return 0.5 * (1.0 + math.cos(math.pi * epoch / self.T_max))

    def __repr__(self):
        return f"CosineAnnealingLR(T_max={self.T_max})"


class LambdaLR(LRSchedule):
    """factor(epoch) = ``lr_lambda(epoch)``, as torch's LambdaLR;
    ``lambda epoch: 0.5 ** (epoch // 10)`` halves the rate every 10 epochs."""

    def __init__(self, optimizer=None, lr_lambda=None):
        super().__init__(optimizer)
        if not callable(lr_lambda):
            raise TypeError(f"LambdaLR: lr_lambda must be a function epoch -> factor, got "
                            f"{lr_lambda!r}")
        self.lr_lambda = lr_lambda

    def factor(self, epoch):
        """Whatever the function gives for ``epoch``."""
        return self.lr_lambda(epoch)

    def __repr__(self):
        return f"LambdaLR({getattr(self.lr_lambda, '__qualname__', self.lr_lambda)!r})"
