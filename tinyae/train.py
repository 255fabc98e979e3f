"""``train``: the training loop for every model of ``tinyae.models``.

    history = tinyae.train(model, x_train, epochs=20, batch_size=128,
                           val_data=x_val, patience=3, checkpoint_dir="runs/ae")

One loop serves autoencoders, VAEs and GANs because the models speak one
protocol (``tinyae.models.base`` describes it): the model builds its
optimizers and takes one training step on a batch. The loop (``Trainer``) owns
the steps, the order of the data and the random streams; the rest is done by
callbacks (``tinyae.callbacks``) that ``train`` puts around your own:

- **Order and noise.** Batch order in epoch e comes from a generator seeded
  with (seed, e); the model's noise (VAE samples, denoising corruption, GAN
  latents) from one generator the trainer owns and saves; dropout's stream is
  seeded from ``seed`` and saved as (seed, calls). So a run is a function of
  ``seed``, and a resumed run continues exactly where the saved one stopped:
  its final weights are bitwise those of an uninterrupted run.
- **Bookkeeping.** Per-epoch means of each loss component, for training and
  validation, in a ``History`` ("train/loss", "val/loss", "train/kl", ...).
- **Callbacks.** ``LearningRateSchedule`` (``lr_schedule``), ``EarlyStopping``
  on "val/loss" (``patience``, restoring the best weights), ``ProgressBar``
  (``progress``) and ``SaveCheckpoint`` (``checkpoint_dir``: model, optimizers,
  random streams, position and history, written atomically after every epoch;
  ``resume=True`` continues from there).
- **Ctrl-C** finishes the current step, saves, and returns the history so far.
- **Divergence.** A NaN or Inf loss stops training with an error naming the
  epoch and the step, before that step changes any weight; the last checkpoint
  (the last good state) is left as it was.
"""
import itertools
import json
import math
import numbers
import signal
import threading
import warnings

import numpy

from . import backend as backend_module
from . import callbacks as callbacks_module
from . import checkpoint, data, optim, runtime
from . import functional as F
from .autograd import Tensor
from .models.base import NonFiniteLossError

OPTIMIZERS = {"adam": optim.Adam, "sgd": optim.SGD, "rmsprop": optim.RMSprop}
LR_SCHEDULES = ("cosine",)
CHECKPOINT_NAME = "last.npz"

# Tags that give each random stream of a run its own seed: (seed, tag, ...).
SHUFFLE, NOISE, VALIDATION, DROPOUT, DRY_RUN = range(5)


class TrainingDivergedError(FloatingPointError):
    """A loss became NaN or Inf; ``epoch`` and ``step`` (1-based) say where."""

    def __init__(self, message, epoch, step):
        super().__init__(message)
        self.epoch, self.step = epoch, step


# ---------------------------------------------------------------- History
class History:
    """What ``train`` recorded, epoch by epoch.

    Attributes:
        history: dict name -> list with one number per epoch; names are
            "train/<component>" and "val/<component>" (components: "loss",
            "recon", "kl", "d", "g", as the model reports them; NaN where a
            component had no value that epoch).
        epoch: the epoch numbers recorded (1, 2, ...).
        best_epoch: the epoch (1-based) with the lowest "val/loss", or None.
        stopped_early: True when ``patience`` ran out.
        interrupted: True when Ctrl-C ended training.

    A History of zero epochs is valid: Ctrl-C in the first epoch returns one
    (``len(history) == 0``, ``history.as_dict() == {}``, ``best_epoch`` None).
    ``history["train/loss"]`` also works; ``as_dict()`` gives a plain copy
    (what ``tinyae.plot.loss_curves`` draws).
    """

    def __init__(self):
        self.history = {}
        self.epoch = []
        self.best_epoch = None
        self.best_value = None
        self.stopped_early = False
        self.interrupted = False

    def record(self, epoch, train_values, val_values=None):
        """Append one epoch: dicts component -> mean for training and validation."""
        row = {f"train/{name}": value for name, value in train_values.items()}
        row.update({f"val/{name}": value for name, value in (val_values or {}).items()})
        for name in row:
            if name not in self.history:
                self.history[name] = [math.nan] * len(self.epoch)
        for name, values in self.history.items():
            values.append(float(row.get(name, math.nan)))
        self.epoch.append(int(epoch))

    def as_dict(self):
        """A plain dict name -> list of per-epoch numbers (a copy)."""
        return {name: list(values) for name, values in self.history.items()}

    def __getitem__(self, name):
        return self.history[name]

    def __len__(self):
        return len(self.epoch)

    def state_dict(self):
        return {"history": self.as_dict(), "epoch": list(self.epoch),
                "best_epoch": self.best_epoch, "best_value": self.best_value,
                "stopped_early": self.stopped_early, "interrupted": self.interrupted}

    def load_state_dict(self, state):
        self.history = {name: [float(v) for v in values]
                        for name, values in state["history"].items()}
        self.epoch = [int(e) for e in state["epoch"]]
        self.best_epoch, self.best_value = state["best_epoch"], state["best_value"]
        self.stopped_early, self.interrupted = state["stopped_early"], state["interrupted"]

    def __repr__(self):
        last = {name: round(values[-1], 4) for name, values in self.history.items() if values}
        flags = [flag for flag in ("stopped_early", "interrupted") if getattr(self, flag)]
        return (f"History(epochs={len(self.epoch)}, best_epoch={self.best_epoch}, last={last}"
                + (f", {', '.join(flags)}" if flags else "") + ")")


class LossTotals:
    """Example-weighted sums of loss components over batches: ``add`` each batch's means,
    read the means over all examples with ``means()``. The loop and ``evaluate`` use it."""

    def __init__(self, totals=None):
        # component -> [sum of batch mean x batch size, examples]
        self.totals = {name: list(total) for name, total in (totals or {}).items()}

    def add(self, values, n):
        """Add a batch's mean loss components, weighted by its ``n`` examples."""
        for name, value in values.items():
            total = self.totals.setdefault(name, [0.0, 0])
            total[0] += value * n
            total[1] += n

    def means(self):
        """The weighted mean of every component so far."""
        return {name: total / count for name, (total, count) in self.totals.items() if count}

    def state_dict(self):
        return {name: list(total) for name, total in self.totals.items()}


# ---------------------------------------------------------------- checking the inputs
def _integer(name, value, minimum, where="train"):
    """``value`` as an int >= minimum; a bool, float, string or None is refused."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where}: {name} must be an integer >= {minimum}, got {value!r} "
                        f"({type(value).__name__})")
    if value < minimum:
        raise ValueError(f"{where}: {name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _positive_number(name, value):
    """``value`` as a finite float > 0 (a learning rate)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"train: {name} must be a number > 0, got {value!r} "
                        f"({type(value).__name__})")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"train: {name} must be a finite number > 0, got {value!r}")
    return float(value)


def _as_arrays(data_or_pair, labels, what):
    """(x, y): x a float array with a batch axis, y integer labels or None."""
    if isinstance(data_or_pair, (tuple, list)) and len(data_or_pair) == 2:
        if labels is not None:
            raise ValueError(f"train: {what} is an (x, y) pair and labels are given too; "
                             "give the labels once")
        x, y = data_or_pair
    else:
        x, y = data_or_pair, labels
    x = _as_array(x, what)
    if numpy.dtype(x.dtype).kind != "f":
        raise TypeError(f"train: {what} has dtype {x.dtype}; give floating-point data "
                        "(e.g. images as float32 in [0, 1]: x.astype('float32') / 255)")
    if x.dtype != numpy.float32:
        x = x.astype(numpy.float32)
    if x.ndim < 2:
        raise ValueError(f"train: {what} has shape {tuple(x.shape)}; it needs a batch axis "
                         "first, (N, features) or (N, C, H, W)")
    if len(x) == 0:
        raise ValueError(f"train: {what} is empty (0 examples, shape {tuple(x.shape)})")
    if y is not None:
        y = _as_array(y, f"the labels of {what}")
        if y.ndim != 1 or len(y) != len(x):
            raise ValueError(f"train: {what} has {len(x)} examples but its labels have shape "
                             f"{tuple(y.shape)}; give one integer label per example")
        if numpy.dtype(y.dtype).kind not in "iu":
            raise TypeError(f"train: the labels of {what} have dtype {y.dtype}; give integer "
                            "class indices")
    return x, y


def _as_array(value, what):
    if isinstance(value, Tensor):
        value = value.data
    if backend_module.backend_of(value) == "cupy":
        return value
    if not hasattr(value, "shape"):
        value = numpy.asarray(value)
    return value


def _model_backend(model):
    for param in model.parameters():
        return param.backend
    return backend_module.get_backend()


def _make_optimizers(model, optimizer, lr, betas, options):
    """The model's optimizers from a name ("adam", "sgd", "rmsprop"), an optimizer class or
    factory, a ready optimizer (one-optimizer models) or a dict name -> optimizer."""
    options = dict(options or {})
    if betas is not None:
        options["betas"] = tuple(betas)
    if isinstance(optimizer, dict):
        return dict(optimizer)
    if isinstance(optimizer, optim.Optimizer):
        built = model.make_optimizers(lambda params: None)
        if len(built) != 1:
            raise ValueError(f"train: {type(model).__name__} trains {len(built)} optimizers "
                             f"({', '.join(built)}); pass a name such as 'adam' or a dict "
                             "with one optimizer per name")
        return {next(iter(built)): optimizer}
    if isinstance(optimizer, str):
        if optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"train: unknown optimizer {optimizer!r}; choose one of "
                             f"{sorted(OPTIMIZERS)}, or pass an optimizer")
        factory = OPTIMIZERS[optimizer.lower()]
    elif callable(optimizer):
        factory = optimizer
    else:
        raise TypeError(f"train: optimizer must be a name, an optimizer class, an optimizer or "
                        f"a dict of optimizers, got {type(optimizer).__name__}")
    return model.make_optimizers(lambda params: factory(list(params), lr=lr, **options))


def _check_values(model, x, what, finite):
    """One min/max pass over all of ``x``: NaN/Inf (refused when ``finite``; in the
    training data the step on that batch names it), and [0, 1] for a BCE model."""
    xp = backend_module.get_array_module(x)
    low, high = float(xp.min(x)), float(xp.max(x))
    if not (math.isfinite(low) and math.isfinite(high)):
        if finite:
            rows = ~xp.isfinite(x).reshape(len(x), -1).all(axis=1)
            raise ValueError(f"train: {what} holds NaN or Inf values (first in example "
                             f"{int(xp.argmax(rows))}), so its loss would be NaN every epoch; "
                             "drop or fix those examples")
        return
    if getattr(model, "loss", None) == "bce" and (low < 0 or high > 1):
        raise ValueError(f"train: {type(model).__name__} with loss='bce' needs data in [0, 1], "
                         f"but {what} runs from {low:g} to {high:g}. Scale it (e.g. x / 255) "
                         "or use loss='mse'.")


def _check_before_training(trainer):
    """Check the first batch's shape (and labels) against the model, then run the model
    on two examples without changing it, so that a mismatch fails before any step."""
    model, x, y = trainer.model, trainer.x, trainer.y
    sets = [("the training data", x, y)]
    if trainer.val is not None:
        sets.append(("the validation data", *trainer.val))
    for what, xs, ys in sets:
        first = Tensor(backend_module.to_backend(xs[:min(trainer.batch_size, len(xs))]))
        labels = None if ys is None else backend_module.to_backend(ys[:len(first)])
        try:
            model.check_batch(first, labels)
        except ValueError as error:
            raise ValueError(f"train: {what} does not fit the model: {error}") from None
    two = Tensor(backend_module.to_backend(x[:2]))
    labels = None if y is None else backend_module.to_backend(y[:2])
    model.rng = numpy.random.default_rng([trainer.seed, DRY_RUN])
    try:
        values = model.validation_step((two, labels))
    except ValueError as error:
        raise ValueError(f"train: {type(model).__name__} cannot run on the data "
                         f"(examples of shape {tuple(x.shape[1:])}): {error}") from error
    finally:
        model.rng = trainer.noise_rng
    if trainer.patience is not None and "loss" not in values:
        raise ValueError(f"train: early stopping watches the validation 'loss', but "
                         f"{type(model).__name__} reports {sorted(values)}; leave "
                         "patience=None for it")


def _as_schedule(schedule, epochs):
    """``lr_schedule`` as a ``tinyae.optim.LRSchedule`` (or None for a constant rate)."""
    if schedule is None or isinstance(schedule, optim.LRSchedule):
        return schedule
    if schedule == "cosine":
        return optim.CosineAnnealingLR(T_max=max(epochs, 1))
    if callable(schedule):
        return optim.LambdaLR(lr_lambda=schedule)
    raise ValueError(f"train: lr_schedule must be None, one of {LR_SCHEDULES}, a schedule "
                     "of tinyae.optim (e.g. optim.StepLR(step_size=10)) or a function "
                     f"epoch -> factor on lr, got {schedule!r}")


def _run_config(seed, batch_size, examples, optimizers, lr_schedule):
    """What fixes a run's trajectory besides its start, which resuming checks: seed, batch
    size, data size, each optimizer and its hyperparameters (the initial lr) and the
    schedule. (``epochs`` may grow; "cosine" is recorded by name: its length follows epochs.)"""
    config = {"seed": seed, "batch_size": batch_size, "examples": examples}
    for name, opt in optimizers.items():
        prefix = "" if list(optimizers) == ["model"] else f"{name} "
        config[f"{prefix}optimizer"] = type(opt).__name__
        groups = [{key: value for key, value in group.items() if key != "params"}
                  for group in opt.param_groups]
        for key in groups[0]:
            values = [group.get(key) for group in groups]
            config[prefix + key] = values[0] if len(values) == 1 else values
    config["lr_schedule"] = lr_schedule
    return config


def _check_same_run(saved, mine, path):
    different = [f"{key}={saved[key]!r} (now {mine[key]!r})" for key in mine
                 if key in saved and saved[key] != mine[key]]
    if different:
        raise ValueError(f"train(resume): the checkpoint {path} was written by a run with "
                         f"{', '.join(different)}. Resume with the run's settings, or start "
                         "afresh without resuming.")


def _generator_state(generator):
    return json.dumps(generator.bit_generator.state)


def _set_generator_state(generator, text):
    generator.bit_generator.state = json.loads(text)


def _host_copy(state):
    return {name: backend_module.to_numpy(value, copy=True) for name, value in state.items()}


def _finite(value):
    """A number, or an array whose values are all finite (integer arrays always are)."""
    if isinstance(value, numbers.Real):
        return math.isfinite(value)
    xp = backend_module.get_array_module(value)
    return value.dtype.kind != "f" or bool(xp.isfinite(value).all())


def _call(callbacks, hook, *args):
    """``callback.hook(*args)`` for every callback that has it; a plain function is an
    on_epoch_end."""
    for callback in callbacks:
        method = getattr(callback, hook, None)
        if method is not None:
            method(*args)
        elif hook == "on_epoch_end" and callable(callback):
            callback(*args)


# ---------------------------------------------------------------- the loop
class Trainer:
    """The state of one training run: the loop, its position and its random streams.
    ``train`` builds one and calls ``fit``; callbacks receive it (see ``tinyae.callbacks``).
    """

    def __init__(self, model, x, y, *, epochs, batch_size, optimizers, val, callbacks, seed,
                 patience=None, config=None):
        self.model, self.x, self.y, self.val = model, x, y, val
        self.epochs, self.batch_size, self.seed = epochs, batch_size, seed
        self.optimizers, self.patience = optimizers, patience
        self.callbacks = list(callbacks)
        self.history = History()
        self.threads = None        # BLAS/Numba threads of the run; train() sets it
        self.stop_training = False
        # where we are: complete epochs, steps done in the current epoch, steps in all
        self.epochs_done, self.step_in_epoch, self.global_step = 0, 0, 0
        self.epoch_totals = LossTotals()
        self.config = dict(config or {})  # what resuming checks (see _run_config)
        # batch norm cannot train on a batch of one example: drop such a last batch
        self.drop_last = len(x) > batch_size and len(x) % batch_size == 1
        self.batches_per_epoch = data.num_batches(len(x), batch_size, self.drop_last)
        self._interrupt_requested = self._in_step = False
        # the random streams (a resumed run replaces their states with the checkpoint's)
        self.noise_rng = numpy.random.default_rng([seed, NOISE])
        self.model.rng = self.noise_rng
        F.manual_seed(int(numpy.random.SeedSequence([seed, DROPOUT]).generate_state(1)[0]))

    @property
    def checkpoint_path(self):
        """Where the ``SaveCheckpoint`` callback writes, or None."""
        return next((callback.path for callback in self.callbacks
                     if isinstance(callback, callbacks_module.SaveCheckpoint)), None)

    def _stateful_callbacks(self):
        return [(callback.checkpoint_key, callback) for callback in self.callbacks
                if hasattr(callback, "checkpoint_key")]

    # --- what a checkpoint holds ------------------------------------------------------
    def state_dict(self):
        state = {
            "model_class": type(self.model).__name__,
            "model": _host_copy(self.model.state_dict()),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "rng": {"noise": _generator_state(self.noise_rng),
                    "dropout": F.dropout_stream_state()},
            "position": {"epochs_done": self.epochs_done, "step_in_epoch": self.step_in_epoch,
                         "global_step": self.global_step},
            "epoch_totals": self.epoch_totals.state_dict(),
            "history": self.history.state_dict(),
            "config": dict(self.config),
            "threads": self.threads,   # BLAS sums differ by thread count: resume keeps it
        }
        state.update({key: callback.state_dict() for key, callback in self._stateful_callbacks()})
        return state

    def load_state_dict(self, state, path="the checkpoint"):
        """Continue from ``state_dict()``'s result, after checking it is this run's."""
        _check_same_run(state["config"], self.config, path)
        if not isinstance(state["rng"]["dropout"], dict):
            raise ValueError(f"train(resume): the checkpoint {path} was written by an older "
                             "tinyae, whose dropout stream cannot be continued; start afresh")
        if state["model_class"] != type(self.model).__name__:
            raise ValueError(f"train(resume): the checkpoint {path} holds a "
                             f"{state['model_class']}, not a {type(self.model).__name__}")
        self.model.load_state_dict(state["model"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        _set_generator_state(self.noise_rng, state["rng"]["noise"])
        F.set_dropout_stream_state(state["rng"]["dropout"])
        position = state["position"]
        self.epochs_done = position["epochs_done"]
        self.step_in_epoch = position["step_in_epoch"]
        self.global_step = position["global_step"]
        self.epoch_totals = LossTotals(state["epoch_totals"])
        self.history.load_state_dict(state["history"])
        self.history.interrupted = False
        self.stop_training = self.history.stopped_early  # a finished run: nothing left to do
        for key, callback in self._stateful_callbacks():
            if key in state:  # e.g. a run without val_data has no early-stopping state
                callback.load_state_dict(state[key])

    # --- one epoch ----------------------------------------------------------------------
    def train_epoch(self, epoch_index):
        """Run the rest of epoch ``epoch_index`` (0-based); False when Ctrl-C stopped it."""
        self.model.train()
        order = numpy.random.default_rng([self.seed, SHUFFLE, epoch_index])
        batches = data.batches(self.x, self.y, self.batch_size, shuffle=True, rng=order,
                               drop_last=self.drop_last)
        for batch in itertools.islice(batches, self.step_in_epoch, None):
            if self._interrupt_requested:
                return False
            x, y = batch if isinstance(batch, tuple) else (batch, None)
            batch = (Tensor(x), y)
            self._in_step = True
            try:
                values = self.model.training_step(batch, self.optimizers, step=self.global_step)
            except NonFiniteLossError as error:
                raise self._diverged(error, epoch_index + 1, batch) from None
            self.epoch_totals.add(values, batch[0].shape[0])
            self.step_in_epoch += 1
            self.global_step += 1
            self._in_step = False   # the step and its bookkeeping are complete
            _call(self.callbacks, "on_step_end", self, values)
        return not self._interrupt_requested

    def end_epoch(self, epoch_index):
        """Check the weights, validate, record the epoch, and call on_epoch_end."""
        epoch = epoch_index + 1
        self._check_finite(epoch, self.model.state_dict(), "the weight")
        val_values = None
        if self.val is not None:
            rng = numpy.random.default_rng([self.seed, VALIDATION, epoch_index])
            val_values = evaluate(self.model, self.val, batch_size=self.batch_size, rng=rng)
            self._check_finite(epoch, val_values, "the validation loss")
        self.history.record(epoch, self.epoch_totals.means(), val_values)
        self.epochs_done, self.step_in_epoch, self.epoch_totals = epoch, 0, LossTotals()
        _call(self.callbacks, "on_epoch_end", self, epoch, self.history)

    # --- divergence -----------------------------------------------------------------------
    def _kept_checkpoint(self):
        path = self.checkpoint_path
        return (f" The last good checkpoint is kept at {path} (after {self.epochs_done} "
                "complete epochs)." if path is not None and path.exists() else "")

    def _diverged(self, error, epoch, batch):
        where = f"epoch {epoch}, step {self.step_in_epoch + 1} of {self.batches_per_epoch}"
        hint = ""
        if not bool(numpy.isfinite(backend_module.to_numpy(batch[0].data)).all()):
            hint = " The batch itself holds NaN or Inf values: check the data."
        lr = [group["lr"] for opt in self.optimizers.values() for group in opt.param_groups]
        return TrainingDivergedError(
            f"training diverged at {where}: {error}, so training stopped before that step "
            f"changed any weight.{hint}{self._kept_checkpoint()} Try a smaller learning rate "
            f"(lr={lr[0]:g} now), or check the data for NaN/Inf.", epoch, self.step_in_epoch + 1)

    def _check_finite(self, epoch, values, what):
        """After the epoch's last step: every float weight (or validation loss) is finite."""
        for name, value in values.items():
            if not _finite(value):
                raise TrainingDivergedError(
                    f"training diverged in epoch {epoch}: after its last step "
                    f"({self.batches_per_epoch}) {what} {name!r} is NaN or Inf, so the epoch's "
                    f"checkpoint was not written.{self._kept_checkpoint()} Try a smaller "
                    "learning rate.", epoch, self.batches_per_epoch)

    # --- the whole run, and Ctrl-C ----------------------------------------------------------
    def fit(self):
        """Run the epochs left (callbacks around each), handling Ctrl-C and divergence; returns
        the History.
        """
        runtime.tune_malloc()  # once per process, before the first step allocates (runtime.py)
        _call(self.callbacks, "on_train_begin", self)
        previous_handler = self._install_sigint_handler()
        try:
            while self.epochs_done < self.epochs and not self.stop_training:
                epoch_index = self.epochs_done
                _call(self.callbacks, "on_epoch_begin", self, epoch_index + 1)
                if not self.train_epoch(epoch_index):
                    self._interrupted()
                    break
                self.end_epoch(epoch_index)
                if self._interrupt_requested:
                    self._interrupted()
                    break
        except KeyboardInterrupt:
            self._interrupted(consistent=not self._in_step)
        finally:
            if previous_handler is not None:
                signal.signal(signal.SIGINT, previous_handler)
        _call(self.callbacks, "on_train_end", self, self.history)
        return self.history

    def _interrupted(self, consistent=True):
        """Ctrl-C: save where we are (if no step was cut in half) and stop."""
        self.history.interrupted = True
        path = self.checkpoint_path
        if consistent:
            _call(self.callbacks, "on_interrupt", self)
            where = (f"; checkpoint saved to {path}, from where a resumed run continues"
                     if path is not None else "")
        else:
            where = ("; a step was cut in half, so no checkpoint was written"
                     + (f" (the last one, {path}, is kept)" if path is not None else ""))
        warnings.warn(f"training interrupted in epoch {self.epochs_done + 1} after "
                      f"{self.step_in_epoch} of {self.batches_per_epoch} steps{where}",
                      stacklevel=4)

    def _install_sigint_handler(self):
        """Ctrl-C once: finish the current step, then stop and save. Twice: stop at once."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def request_stop(signum, frame):
            if self._interrupt_requested:
                raise KeyboardInterrupt
            self._interrupt_requested = True

        return signal.signal(signal.SIGINT, request_stop)


# ---------------------------------------------------------------- public functions
def evaluate(model, data, labels=None, *, batch_size=256, rng=0):
    """Mean loss components of ``model`` over ``data`` (eval mode, no graph, no update).

    ``data`` is x or (x, y); ``rng`` (a seed or Generator) feeds the model's noise
    (a VAE's sample z). Means are over examples.

    Example::

        tinyae.evaluate(model, x_test)     # {'loss': 101.2, 'recon': 96.0, 'kl': 5.2}
    """
    x, y = _as_arrays(data, labels, "the data")
    batch_size = _integer("batch_size", batch_size, 1, where="evaluate")
    where = _model_backend(model)
    previous_rng = getattr(model, "rng", None)
    model.rng = backend_module.as_generator(rng)
    totals = LossTotals()
    try:
        for start in range(0, len(x), batch_size):
            xb = Tensor(backend_module.to_backend(x[start:start + batch_size], where))
            yb = None if y is None else backend_module.to_backend(y[start:start + batch_size],
                                                                  where)
            totals.add(model.validation_step((xb, yb)), xb.shape[0])
    finally:
        model.rng = previous_rng
    return totals.means()


def train(model, data, *, epochs, batch_size=64, optimizer="adam", lr=1e-3, betas=None,
          optimizer_options=None, val_data=None, labels=None, val_labels=None, patience=None,
          min_delta=0.0, callbacks=(), checkpoint_dir=None, resume=False, seed=0,
          progress=True, backend=None, lr_schedule=None, threads=None):
    """Train ``model`` (any model of ``tinyae.models``) and return its ``History``.

    Args:
        model: an Autoencoder, DenoisingAutoencoder, VAE, ConditionalVAE or GAN
            (anything that speaks the training-step protocol).
        data: the training images x (N, ...) as a float array, or a pair (x, y)
            with integer labels y (needed by label-conditioned models; ``labels=y``
            does the same). Data stays where it is; each batch is moved to the backend.
        epochs: the total number of epochs, an integer (a resumed run continues up to it).
        batch_size: examples per step, an integer (a last batch of a single example is
            dropped, since batch norm cannot train on one).
        optimizer: "adam", "sgd" or "rmsprop" (one per network the model trains:
            a GAN gets two), an optimizer class, a ready optimizer, or a dict
            name -> optimizer. ``lr`` (finite, > 0), ``betas`` (Adam, e.g. (0.5, 0.999)
            for GANs) and ``optimizer_options`` (e.g. {"momentum": 0.9}) configure it.
        lr_schedule: None (a constant rate), "cosine" (from ``lr`` down towards 0
            over ``epochs``), a schedule of ``tinyae.optim`` (``StepLR(step_size=10,
            gamma=0.5)``, ``CosineAnnealingLR(T_max=...)``, ``LambdaLR(lr_lambda=...)``)
            or a function epoch (0-based) -> factor on ``lr``, e.g.
            ``lambda e: 0.5 ** (e // 10)``. Rates are set at the start of each epoch.
        val_data, val_labels: validation data, evaluated after every epoch ("val/..."),
            refused if it holds NaN or Inf.
        patience: stop when "val/loss" has not improved by ``min_delta`` for this
            many epochs, and restore the weights of the best epoch.
        callbacks: objects with any of the hooks of ``tinyae.callbacks`` (e.g.
            ``on_epoch_end(trainer, epoch, history)``), or plain functions called as
            on_epoch_end; see ``tinyae.callbacks`` (SaveSamples, SaveReconstructions).
        checkpoint_dir: write ``last.npz`` there after every epoch (and on Ctrl-C);
            checked for writing before the first step.
        resume: continue from ``checkpoint_dir/last.npz`` if it exists. The run's
            seed, batch size, data size, optimizer and its hyperparameters (lr, betas,
            ...) and lr_schedule must be the checkpoint's; ``epochs`` may grow.
        seed: seeds batch order, the model's noise and dropout.
        progress: show a tqdm progress bar with the running loss, and a line per epoch.
        backend: "numpy" or "cupy": move the model there (``model.to``) and train
            there. Default: where the model's parameters are.
        threads: BLAS and Numba threads while training; 0 keeps the libraries' own
            settings. Default: a resumed run's checkpoint's count (matrix products
            sum in another order on another thread count, so only that keeps resume
            bitwise identical), else ``tinyae.runtime.training_threads()`` (the
            command line's --threads, $TINYAE_THREADS, or the idle cores). See
            README's "Threads".

    Returns the ``History`` (of zero epochs if Ctrl-C came in the first one). Raises
    TypeError or ValueError before the first step when an argument is not what it
    should be, the data's shape does not fit the model, the data is empty, out of a
    BCE model's [0, 1] or labels are missing; ``TrainingDivergedError`` when a loss
    becomes NaN or Inf.

    Example::

        model = tinyae.models.mlp_vae(784, latent_dim=20)
        history = tinyae.train(model, x_train, epochs=10, batch_size=128,
                               val_data=x_val, patience=3, checkpoint_dir="runs/vae")
        history.history["val/loss"]
    """
    epochs = _integer("epochs", epochs, 0)
    asked_threads = None if threads is None else runtime.training_threads(threads)
    batch_size = _integer("batch_size", batch_size, 1)
    seed = _integer("seed", seed, 0)
    lr = _positive_number("lr", lr)
    if patience is not None:
        patience = _integer("patience", patience, 0)
        if val_data is None:
            raise ValueError("train: patience (early stopping) watches the validation loss: "
                             "give val_data as well")
    if resume and checkpoint_dir is None:
        raise ValueError("train: resume=True needs the checkpoint_dir to resume from")
    schedule = _as_schedule(lr_schedule, epochs)
    x, y = _as_arrays(data, labels, "the training data")
    _check_values(model, x, "the training data", finite=False)
    val = None
    if val_data is not None:
        val = _as_arrays(val_data, val_labels, "the validation data")
        _check_values(model, val[0], "the validation data", finite=True)
    name = backend or _model_backend(model)
    with backend_module.using_backend(name):
        model.to(name)
        optimizers = _make_optimizers(model, optimizer, lr, betas, optimizer_options)
        before, after = [], []            # train's own callbacks, around the caller's
        if schedule is not None:
            before.append(callbacks_module.LearningRateSchedule(schedule, optimizers))
        if val is not None:
            before.append(callbacks_module.EarlyStopping(patience, min_delta))
        if progress:
            before.append(callbacks_module.ProgressBar())
        if checkpoint_dir is not None:
            after.append(callbacks_module.SaveCheckpoint(checkpoint_dir, CHECKPOINT_NAME))
        config = _run_config(seed, batch_size, len(x), optimizers,
                             lr_schedule if isinstance(lr_schedule, str) or schedule is None
                             else repr(schedule))
        trainer = Trainer(model, x, y, epochs=epochs, batch_size=batch_size,
                          optimizers=optimizers, val=val, patience=patience, seed=seed,
                          callbacks=before + list(callbacks) + after, config=config)
        path = trainer.checkpoint_path
        saved = checkpoint.load(path) if resume and path.exists() else {}
        if saved:
            trainer.load_state_dict(saved, path)
        trainer.threads = asked_threads
        if trainer.threads is None:
            trainer.threads = saved.get("threads", runtime.training_threads())
        _check_before_training(trainer)
        with runtime.limited_threads(trainer.threads):
            return trainer.fit()
