"""``train``: the training loop for every model of ``tinyae.models``.

    history = tinyae.train(model, x_train, epochs=20, batch_size=128,
                           val_data=x_val, patience=3, checkpoint_dir="runs/ae")

One loop serves autoencoders, VAEs and GANs because the models speak one
protocol (``tinyae.models.base`` describes it): the model builds its
optimizers and takes one training step on a batch; the loop owns everything
around the steps:

- **Order and noise.** Batch order in epoch e comes from a generator seeded
  with (seed, e); the model's noise (VAE samples, denoising corruption, GAN
  latents) from one generator the trainer owns and saves; ``seed`` also seeds
  dropout's default generator. So a run is a function of ``seed``, and a
  resumed run continues exactly where the saved one stopped: on the CPU its
  final weights are bitwise those of an uninterrupted run.
- **Bookkeeping.** Per-epoch means of each loss component, for training and
  validation, in a ``History`` ("train/loss", "val/loss", "train/kl", ...).
- **Early stopping** on "val/loss" with ``patience``, restoring the best weights.
- **Checkpoints** (model, optimizers, generator states, position, history)
  written atomically after every epoch to ``checkpoint_dir/last.npz``;
  ``resume=True`` continues from there. Ctrl-C finishes the current step,
  saves, and returns the history so far.
- **Divergence.** A NaN or Inf loss stops training with an error naming the
  epoch and the step, before that step changes any weight; the last checkpoint
  (the last good state) is left as it was.
"""
import itertools
import json
import math
import pathlib
import signal
import threading
import warnings

import numpy

from . import backend as backend_module
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


# ---------------------------------------------------------------- checking the inputs
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


def _generator_state(generator):
    return json.dumps(generator.bit_generator.state)


def _set_generator_state(generator, text):
    generator.bit_generator.state = json.loads(text)


def _host_copy(state):
    return {name: backend_module.to_numpy(value, copy=True) for name, value in state.items()}


def _sigint_handler_installable():
    return threading.current_thread() is threading.main_thread()


# ---------------------------------------------------------------- the trainer
def _lr_schedule(schedule, epochs):
    """The factor on the initial learning rate as a function of the 0-based epoch.

    None: 1 throughout. "cosine": 0.5 (1 + cos(pi epoch / epochs)), from 1 in the
    first epoch down towards 0 in the last. A function epoch -> factor is used as it
    is (``lambda epoch: 0.5 ** (epoch // 10)`` halves the rate every 10 epochs).
    The factor depends on the epoch alone, so a resumed run gets the same rates.
    """
    if schedule is None:
        return None
    if schedule == "cosine":
        return lambda epoch: 0.5 * (1.0 + math.cos(math.pi * epoch / max(epochs, 1)))
    if callable(schedule):
        return schedule
    raise ValueError(f"train: lr_schedule must be None, one of {LR_SCHEDULES} or a function "
                     f"epoch -> factor on lr, got {schedule!r}")


class Trainer:
    """The state of one training run; ``train`` builds one and calls ``fit``.

    Callbacks receive it: ``trainer.model``, ``trainer.optimizers``,
    ``trainer.history``; setting ``trainer.stop_training = True`` ends training
    after the current epoch.
    """

    def __init__(self, model, x, y, *, epochs, batch_size, optimizers, val, patience,
                 min_delta, callbacks, checkpoint_dir, resume, seed, progress,
                 lr_schedule=None):
        self.model, self.x, self.y = model, x, y
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.optimizers = optimizers
        self.lr_factor = _lr_schedule(lr_schedule, self.epochs)
        # the rates the schedule scales: taken now, before a checkpoint's are loaded
        self.initial_lrs = {name: [group["lr"] for group in opt.param_groups]
                            for name, opt in optimizers.items()}
        self.val = val
        self.patience, self.min_delta = patience, float(min_delta)
        self.callbacks = list(callbacks)
        self.checkpoint_dir = None if checkpoint_dir is None else pathlib.Path(checkpoint_dir)
        self.resume, self.seed, self.progress = resume, int(seed), progress
        self.history = History()
        self.stop_training = False

        # where we are: completed epochs, batches done in the current epoch, batches in all
        self.epochs_done, self.step_in_epoch, self.global_step = 0, 0, 0
        self.epoch_totals = {}                       # component -> [weighted sum, count]
        self.epochs_without_improvement = 0
        self.best_state = None
        self.noise_rng = numpy.random.default_rng([self.seed, NOISE])
        self.model.rng = self.noise_rng

        n = len(x)
        # batch norm cannot train on a batch of one example: drop such a last batch
        self.drop_last = n > self.batch_size and n % self.batch_size == 1
        self.batches_per_epoch = data.num_batches(n, self.batch_size, self.drop_last)
        self._interrupt_requested = False
        self._in_step = False

    # --- random streams ----------------------------------------------------------
    def _seed_dropout(self):
        """Seed dropout's default generators (every backend) from (seed, DROPOUT)."""
        F.manual_seed(int(numpy.random.SeedSequence([self.seed, DROPOUT]).generate_state(1)[0]))

    def _epoch_batches(self, epoch_index):
        order = numpy.random.default_rng([self.seed, SHUFFLE, epoch_index])
        return data.batches(self.x, self.y, self.batch_size, shuffle=True, rng=order,
                            drop_last=self.drop_last)

    # --- checkpoints -----------------------------------------------------------------
    @property
    def checkpoint_path(self):
        return None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME

    def state_dict(self):
        return {
            "model_class": type(self.model).__name__,
            "model": _host_copy(self.model.state_dict()),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "rng": {"noise": _generator_state(self.noise_rng),
                    "dropout": _generator_state(F.default_generator(numpy))},
            "position": {"epochs_done": self.epochs_done, "step_in_epoch": self.step_in_epoch,
                         "global_step": self.global_step},
            "epoch_totals": {name: list(total) for name, total in self.epoch_totals.items()},
            "history": self.history.state_dict(),
            "early_stopping": {"epochs_without_improvement": self.epochs_without_improvement,
                               "best_model": self.best_state},
            "config": {"seed": self.seed, "batch_size": self.batch_size, "examples": len(self.x)},
        }

    def save_checkpoint(self):
        if self.checkpoint_path is None:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        checkpoint.save(self.state_dict(), self.checkpoint_path)

    def load_checkpoint(self, path):
        state = checkpoint.load(path)
        config = state["config"]
        mine = {"seed": self.seed, "batch_size": self.batch_size, "examples": len(self.x)}
        different = [f"{key}={config[key]} (now {mine[key]})" for key in mine
                     if config[key] != mine[key]]
        if different:
            raise ValueError(f"train(resume=True): the checkpoint {path} was written by a run "
                             f"with {', '.join(different)}. Resume with the same seed, "
                             "batch_size and data, or pass resume=False to start afresh.")
        if state["model_class"] != type(self.model).__name__:
            raise ValueError(f"train(resume=True): the checkpoint {path} holds a "
                             f"{state['model_class']}, not a {type(self.model).__name__}")
        self.model.load_state_dict(state["model"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        _set_generator_state(self.noise_rng, state["rng"]["noise"])
        _set_generator_state(F.default_generator(numpy), state["rng"]["dropout"])
        position = state["position"]
        self.epochs_done = position["epochs_done"]
        self.step_in_epoch = position["step_in_epoch"]
        self.global_step = position["global_step"]
        self.epoch_totals = {name: list(total) for name, total in state["epoch_totals"].items()}
        self.history.load_state_dict(state["history"])
        self.history.interrupted = False
        early = state["early_stopping"]
        self.epochs_without_improvement = early["epochs_without_improvement"]
        self.best_state = early["best_model"]

    # --- checks before the first step ------------------------------------------------------
    def dry_run(self):
        """Check the first batch's shape (and labels) against the model, then run the model
        on two examples without changing it, so that a mismatch fails before any step."""
        sets = [("the training data", self.x, self.y)]
        if self.val is not None:
            sets.append(("the validation data", *self.val))
        for what, x, y in sets:
            first = Tensor(backend_module.to_backend(x[:min(self.batch_size, len(x))]))
            labels = None if y is None else backend_module.to_backend(y[:len(first)])
            try:
                self.model.check_batch(first, labels)
            except ValueError as error:
                raise ValueError(f"train: {what} does not fit the model: {error}") from None
        two = Tensor(backend_module.to_backend(self.x[:2]))
        labels = None if self.y is None else backend_module.to_backend(self.y[:2])
        self.model.rng = numpy.random.default_rng([self.seed, DRY_RUN])
        try:
            values = self.model.validation_step((two, labels))
        except ValueError as error:
            raise ValueError(f"train: {type(self.model).__name__} cannot run on the data "
                             f"(examples of shape {tuple(self.x.shape[1:])}): {error}") from error
        finally:
            self.model.rng = self.noise_rng
        if self.patience is not None and "loss" not in values:
            raise ValueError(f"train: early stopping watches the validation 'loss', but "
                             f"{type(self.model).__name__} reports {sorted(values)}; leave "
                             "patience=None for it")

    # --- one epoch ----------------------------------------------------------------------
    def _accumulate(self, values, n):
        for name, value in values.items():
            total = self.epoch_totals.setdefault(name, [0.0, 0])
            total[0] += value * n
            total[1] += n

    def _means(self, totals):
        return {name: total / count for name, (total, count) in totals.items() if count}

    def _diverged(self, error, epoch, batch):
        where = f"epoch {epoch}, step {self.step_in_epoch + 1} of {self.batches_per_epoch}"
        hint = ""
        if not bool(numpy.isfinite(backend_module.to_numpy(batch[0].data)).all()):
            hint = " The batch itself holds NaN or Inf values: check the data."
        kept = (f" The last good checkpoint is kept at {self.checkpoint_path} "
                f"(after {self.epochs_done} complete epochs)."
                if self.checkpoint_path is not None and self.checkpoint_path.exists() else "")
        lr = [group["lr"] for opt in self.optimizers.values() for group in opt.param_groups]
        return TrainingDivergedError(
            f"training diverged at {where}: {error}, so training stopped before that step "
            f"changed any weight.{hint}{kept} Try a smaller learning rate (lr={lr[0]:g} now), "
            "or check the data for NaN/Inf.", epoch, self.step_in_epoch + 1)

    def set_learning_rates(self, epoch_index):
        """lr = initial lr x the schedule's factor for this epoch, in every group."""
        if self.lr_factor is None:
            return
        factor = float(self.lr_factor(epoch_index))
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"train: lr_schedule gave the factor {factor!r} for epoch "
                             f"{epoch_index}; it must be a finite number >= 0")
        for name, opt in self.optimizers.items():
            for group, initial in zip(opt.param_groups, self.initial_lrs[name]):
                group["lr"] = initial * factor

    def train_epoch(self, epoch_index):
        """Run the rest of epoch ``epoch_index`` (0-based); False when interrupted."""
        epoch = epoch_index + 1
        self.set_learning_rates(epoch_index)
        self.model.train()
        batches = itertools.islice(self._epoch_batches(epoch_index), self.step_in_epoch, None)
        bar = _progress_bar(self.progress, self.batches_per_epoch, self.step_in_epoch,
                            f"epoch {epoch}/{self.epochs}")
        try:
            for batch in batches:
                if self._interrupt_requested:
                    return False
                if isinstance(batch, tuple):
                    batch = (Tensor(batch[0]), batch[1])
                else:
                    batch = (Tensor(batch), None)
                self._in_step = True
                try:
                    values = self.model.training_step(batch, self.optimizers,
                                                      step=self.global_step)
                except NonFiniteLossError as error:
                    raise self._diverged(error, epoch, batch) from None
                self._accumulate(values, batch[0].shape[0])
                self.step_in_epoch += 1
                self.global_step += 1
                self._in_step = False   # the step and its bookkeeping are complete
                if bar is not None:
                    bar.set_postfix(_rounded(self._means(self.epoch_totals)), refresh=False)
                    bar.update()
            return not self._interrupt_requested
        finally:
            if bar is not None:
                bar.close()

    def validate(self, epoch_index):
        """Mean loss components over the validation data (eval mode, no graph)."""
        x, y = self.val
        rng = numpy.random.default_rng([self.seed, VALIDATION, epoch_index])
        return evaluate(self.model, x, y, batch_size=self.batch_size, rng=rng)

    def _check_weights_finite(self, epoch):
        for name, value in self.model.state_dict().items():
            xp = backend_module.get_array_module(value)
            if value.dtype.kind == "f" and not bool(xp.isfinite(value).all()):
                raise TrainingDivergedError(
                    f"training diverged in epoch {epoch}: after its last step "
                    f"({self.batches_per_epoch}) the weight {name!r} holds NaN or Inf. The "
                    "epoch's checkpoint was not written"
                    + (f"; the last good one is kept at {self.checkpoint_path}"
                       if self.checkpoint_path is not None and self.checkpoint_path.exists()
                       else "") + ". Try a smaller learning rate.", epoch,
                    self.batches_per_epoch)

    def end_epoch(self, epoch_index):
        """Means, validation, early stopping, callbacks and the checkpoint of one epoch."""
        epoch = epoch_index + 1
        self._check_weights_finite(epoch)
        train_values = self._means(self.epoch_totals)
        val_values = self.validate(epoch_index) if self.val is not None else None
        self.history.record(epoch, train_values, val_values)
        self.epochs_done, self.step_in_epoch, self.epoch_totals = epoch, 0, {}
        if val_values is not None and "loss" in val_values:
            self._early_stopping(epoch, val_values["loss"])
        if self.progress:
            _print_epoch(epoch, self.epochs, train_values, val_values)
        for callback in self.callbacks:
            _call(callback, "on_epoch_end", self, epoch, self.history)
        self.save_checkpoint()

    def _early_stopping(self, epoch, value):
        history = self.history
        if history.best_value is None or value < history.best_value - self.min_delta:
            history.best_epoch, history.best_value = epoch, float(value)
            self.epochs_without_improvement = 0
            if self.patience is not None:
                self.best_state = _host_copy(self.model.state_dict())
        else:
            self.epochs_without_improvement += 1
            if self.patience is not None and self.epochs_without_improvement >= self.patience:
                history.stopped_early = True
                self.stop_training = True

    # --- the whole run --------------------------------------------------------------------
    def fit(self):
        runtime.tune_malloc()  # once per process, before the first step allocates (runtime.py)
        resumed = False
        if self.resume and self.checkpoint_path is not None and self.checkpoint_path.exists():
            self.load_checkpoint(self.checkpoint_path)
            resumed = True
        if not resumed:
            self._seed_dropout()
        self.dry_run()
        if self.history.stopped_early:  # a finished early-stopped run: nothing left to do
            self._restore_best()
            return self.history
        for callback in self.callbacks:
            _call(callback, "on_train_begin", self)

        previous_handler = self._install_sigint_handler()
        try:
            for epoch_index in range(self.epochs_done, self.epochs):
                finished = self.train_epoch(epoch_index)
                if not finished:
                    self._interrupted()
                    break
                self.end_epoch(epoch_index)
                if self._interrupt_requested:
                    self._interrupted()
                    break
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            self._interrupted(consistent=not self._in_step)
        finally:
            self._restore_sigint_handler(previous_handler)
        self._restore_best()
        for callback in self.callbacks:
            _call(callback, "on_train_end", self, self.history)
        return self.history

    def _restore_best(self):
        history = self.history
        if (self.patience is not None and self.best_state is not None
                and history.best_epoch is not None and history.best_epoch != self.epochs_done):
            self.model.load_state_dict(self.best_state)

    def _interrupted(self, consistent=True):
        """Ctrl-C: save where we are (if no step was cut in half) and stop."""
        self.history.interrupted = True
        if consistent:
            self.save_checkpoint()
            where = (f"; checkpoint saved to {self.checkpoint_path}, continue with resume=True"
                     if self.checkpoint_path is not None else "")
        else:
            where = ("; a step was cut in half, so no checkpoint was written" +
                     (f" (the last one, {self.checkpoint_path}, is kept)"
                      if self.checkpoint_path is not None else ""))
        warnings.warn(f"training interrupted in epoch {self.epochs_done + 1} after "
                      f"{self.step_in_epoch} of {self.batches_per_epoch} steps{where}",
                      stacklevel=4)

    def _install_sigint_handler(self):
        """Ctrl-C once: finish the current step, then stop and save. Twice: stop at once."""
        if not _sigint_handler_installable():
            return None

        def request_stop(signum, frame):
            if self._interrupt_requested:
                raise KeyboardInterrupt
            self._interrupt_requested = True

        return signal.signal(signal.SIGINT, request_stop)

    def _restore_sigint_handler(self, previous):
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _call(callback, hook, *args):
    """Call ``callback.hook(*args)`` if it has one; a plain function is an on_epoch_end."""
    method = getattr(callback, hook, None)
    if method is not None:
        method(*args)
    elif hook == "on_epoch_end" and callable(callback):
        callback(*args)


def _rounded(values):
    return {name: f"{value:.4g}" for name, value in values.items()}


def _progress_bar(enabled, total, initial, description):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, initial=initial, desc=description, leave=False)


def _print_epoch(epoch, epochs, train_values, val_values):
    from tqdm.auto import tqdm
    parts = [f"{name} {value:.4g}" for name, value in train_values.items()]
    parts += [f"val {name} {value:.4g}" for name, value in (val_values or {}).items()]
    tqdm.write(f"epoch {epoch}/{epochs}: " + ", ".join(parts))


# ---------------------------------------------------------------- public functions
def evaluate(model, data, labels=None, *, batch_size=256, rng=0):
    """Mean loss components of ``model`` over ``data`` (eval mode, no graph, no update).

    ``data`` is x or (x, y); ``rng`` (a seed or Generator) feeds the model's noise
    (a VAE's sample z). Means are over examples.

    Example::

        tinyae.evaluate(model, x_test)     # {'loss': 101.2, 'recon': 96.0, 'kl': 5.2}
    """
    x, y = _as_arrays(data, labels, "the data")
    where = _model_backend(model)
    previous_rng = getattr(model, "rng", None)
    model.rng = backend_module.as_generator(rng)
    totals = {}
    try:
        for start in range(0, len(x), int(batch_size)):
            xb = Tensor(backend_module.to_backend(x[start:start + batch_size], where))
            yb = None if y is None else backend_module.to_backend(y[start:start + batch_size],
                                                                  where)
            for name, value in model.validation_step((xb, yb)).items():
                total = totals.setdefault(name, [0.0, 0])
                total[0] += value * xb.shape[0]
                total[1] += xb.shape[0]
    finally:
        model.rng = previous_rng
    return {name: total / count for name, (total, count) in totals.items()}


def train(model, data, *, epochs, batch_size=64, optimizer="adam", lr=1e-3, betas=None,
          optimizer_options=None, val_data=None, labels=None, val_labels=None, patience=None,
          min_delta=0.0, callbacks=(), checkpoint_dir=None, resume=False, seed=0,
          progress=True, backend=None, lr_schedule=None):
    """Train ``model`` (any model of ``tinyae.models``) and return its ``History``.

    Args:
        model: an Autoencoder, DenoisingAutoencoder, VAE, ConditionalVAE or GAN
            (anything that speaks the training-step protocol).
        data: the training images x (N, ...) as a float array, or a pair (x, y)
            with integer labels y (needed by label-conditioned models; ``labels=y``
            does the same). Data stays where it is; each batch is moved to the backend.
        epochs: the total number of epochs (a resumed run continues up to it).
        batch_size: examples per step (a last batch of a single example is dropped,
            since batch norm cannot train on one).
        optimizer: "adam", "sgd" or "rmsprop" (one per network the model trains:
            a GAN gets two), an optimizer class, a ready optimizer, or a dict
            name -> optimizer. ``lr``, ``betas`` (Adam, e.g. (0.5, 0.999) for GANs)
            and ``optimizer_options`` (e.g. {"momentum": 0.9}) configure it.
        lr_schedule: None (a constant rate), "cosine" (from ``lr`` down towards 0
            over ``epochs``, set at the start of each epoch), or a function
            epoch (0-based) -> factor on ``lr``, e.g. ``lambda e: 0.5 ** (e // 10)``.
        val_data, val_labels: validation data, evaluated after every epoch ("val/...").
        patience: stop when "val/loss" has not improved by ``min_delta`` for this
            many epochs, and restore the weights of the best epoch.
        callbacks: objects with ``on_epoch_end(trainer, epoch, history)`` (and
            optionally ``on_train_begin(trainer)``, ``on_train_end(trainer,
            history)``), or plain functions called as on_epoch_end; see
            ``tinyae.callbacks`` (SaveSamples, SaveReconstructions).
        checkpoint_dir: write ``last.npz`` there after every epoch (and on Ctrl-C).
        resume: continue from ``checkpoint_dir/last.npz`` if it exists.
        seed: seeds batch order, the model's noise and dropout.
        progress: show a tqdm progress bar with the running loss, and a line per epoch.
        backend: "numpy" or "cupy": move the model there (``model.to``) and train
            there. Default: where the model's parameters are.

    Returns the ``History``. Raises ValueError before the first step when the
    data's shape does not fit the model, the data is empty or labels are
    missing; ``TrainingDivergedError`` when a loss becomes NaN or Inf.

    Example::

        model = tinyae.models.mlp_vae(784, latent_dim=20)
        history = tinyae.train(model, x_train, epochs=10, batch_size=128,
                               val_data=x_val, patience=3, checkpoint_dir="runs/vae")
        history.history["val/loss"]
    """
    if int(epochs) < 0:
        raise ValueError(f"train: epochs must be >= 0, got {epochs}")
    if int(batch_size) < 1:
        raise ValueError(f"train: batch_size must be at least 1, got {batch_size}")
    if patience is not None and val_data is None:
        raise ValueError("train: patience (early stopping) watches the validation loss: "
                         "give val_data as well")
    if resume and checkpoint_dir is None:
        raise ValueError("train: resume=True needs the checkpoint_dir to resume from")
    x, y = _as_arrays(data, labels, "the training data")
    val = None if val_data is None else _as_arrays(val_data, val_labels, "the validation data")
    name = backend or _model_backend(model)
    with backend_module.using_backend(name):
        model.to(name)
        optimizers = _make_optimizers(model, optimizer, lr, betas, optimizer_options)
        trainer = Trainer(model, x, y, epochs=epochs, batch_size=batch_size,
                          optimizers=optimizers, val=val, patience=patience,
                          min_delta=min_delta, callbacks=callbacks,
                          checkpoint_dir=checkpoint_dir, resume=resume, seed=seed,
                          progress=progress, lr_schedule=lr_schedule)
        return trainer.fit()
