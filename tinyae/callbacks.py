"""Callbacks for ``tinyae.train``: everything around the training steps.

A callback is an object with any of these methods (``epoch`` counts from 1); a plain
function works as ``on_epoch_end``:

    on_train_begin(trainer)                  before the first step (and after a resume)
    on_epoch_begin(trainer, epoch)           before the epoch's first (remaining) step
    on_step_end(trainer, values)             after each step; values: the batch's losses
    on_epoch_end(trainer, epoch, history)    after the epoch is recorded in the history
    on_interrupt(trainer)                    Ctrl-C, with no step cut in half
    on_train_end(trainer, history)           after the last epoch, an early stop or Ctrl-C

``trainer.model``, ``trainer.optimizers``, ``trainer.history``, ``trainer.epochs`` and
``trainer.epochs_done`` describe the run; ``trainer.stop_training = True`` stops after
this epoch. ``train`` itself is built from the callbacks below: it runs
``LearningRateSchedule``, ``EarlyStopping`` and ``ProgressBar`` before yours and
``SaveCheckpoint`` after them, so a checkpoint holds what your callbacks did::

    tinyae.train(model, x, epochs=30, callbacks=[SaveSamples("runs/vae/samples"),
                                                 SaveReconstructions("runs/vae/recon", x[:8])])

The image callbacks draw with ``tinyae.plot`` and never touch the training
run's random streams: samples come from latents drawn once, from the
callback's own seed, so the grids of successive epochs show the same codes.
"""
import math
import pathlib

import numpy

from . import backend, checkpoint, plot


def _image_shape_for_plot(images, model):
    """An image shape for flat rows: the model's input shape, or a square for D = s*s."""
    if images.ndim != 2:
        return None
    shape = getattr(model, "input_shape", None)
    if shape is not None and len(shape) > 1:
        return shape
    side = int(round(images.shape[1] ** 0.5))
    if side * side == images.shape[1]:
        return (side, side)
    raise ValueError(f"cannot draw flat samples of {images.shape[1]} values as images; give "
                     "the model an image-shaped input (e.g. input_dim=(1, 28, 28))")


class SaveSamples:
    """Save a grid of ``n`` generated samples (``model.sample``) as a PNG every ``every`` epochs.

    Files: ``directory/samples_epoch001.png``, ... The same latent codes are
    used every epoch (drawn from ``seed``), so the grids show the model learning.
    Extra keyword arguments go to ``model.sample`` (e.g. ``label=3`` for a CVAE).
    """

    def __init__(self, directory, every=1, n=64, nrow=8, seed=0, **sample_options):
        self.directory = pathlib.Path(directory)
        self.every, self.n, self.nrow, self.seed = int(every), int(n), int(nrow), seed
        self.sample_options = sample_options

    def on_train_begin(self, trainer):
        # one sample now, so a model that cannot sample says so before training starts
        trainer.model.sample(1, rng=numpy.random.default_rng(self.seed), **self.sample_options)
        self.directory.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, trainer, epoch, history):
        if epoch % self.every:
            return
        rng = numpy.random.default_rng(self.seed)  # the same codes every epoch
        images = trainer.model.sample(self.n, rng=rng, **self.sample_options).numpy()
        path = self.directory / f"samples_epoch{epoch:03d}.png"
        plot.image_grid(images, nrow=self.nrow, path=path,
                        image_shape=_image_shape_for_plot(images, trainer.model))
        self.last_path = path


class SaveReconstructions:
    """Save originals above their reconstructions (``model.reconstruct``) every ``every`` epochs.

    ``images``: a few examples (host array, e.g. ``x_val[:8]``). Files:
    ``directory/reconstructions_epoch010.png``, ... For models whose ``reconstruct``
    takes the images alone (not a ConditionalVAE, which also needs its condition).
    """

    def __init__(self, directory, images, every=10):
        self.directory = pathlib.Path(directory)
        self.images = numpy.asarray(backend.to_numpy(images), dtype=numpy.float32)
        self.every = int(every)

    def on_train_begin(self, trainer):
        self.directory.mkdir(parents=True, exist_ok=True)

    def on_epoch_end(self, trainer, epoch, history):
        if epoch % self.every:
            return
        model = trainer.model
        restored = model.reconstruct(self.images).numpy()
        shape = _image_shape_for_plot(self.images, model)
        path = self.directory / f"reconstructions_epoch{epoch:03d}.png"
        plot.interpolation_strip([self.images, restored], path=path, image_shape=shape,
                                 row_labels=("original", "reconstructed"))
        self.last_path = path


# ---------------------------------------------------------------- what train() is made of
class LearningRateSchedule:
    """Set every optimizer's rates at the start of each epoch: initial rate x
    ``schedule.checked_factor(epoch - 1)`` (a ``tinyae.optim.LRSchedule``).

    The initial rates are read when the callback is made, before a resumed run
    loads the checkpoint's (scheduled) rates, so a resumed run gets the same rates.
    """

    def __init__(self, schedule, optimizers):
        self.schedule = schedule
        self.initial_lrs = {name: [group["lr"] for group in opt.param_groups]
                            for name, opt in optimizers.items()}

    def on_train_begin(self, trainer):
        for epoch_index in range(trainer.epochs_done, trainer.epochs):  # refuse a bad one now
            self.schedule.checked_factor(epoch_index)

    def on_epoch_begin(self, trainer, epoch):
        factor = self.schedule.checked_factor(epoch - 1)
        for name, opt in trainer.optimizers.items():
            for group, initial in zip(opt.param_groups, self.initial_lrs[name]):
                group["lr"] = initial * factor


class EarlyStopping:
    """Track the epoch with the lowest "val/loss" (``history.best_epoch``); with
    ``patience``, stop when it has not improved by ``min_delta`` for that many epochs,
    and at the end of training restore the weights of the best epoch.

    Its state (epochs without improvement, the best weights) goes into the checkpoint.
    """

    checkpoint_key = "early_stopping"

    def __init__(self, patience=None, min_delta=0.0):
        self.patience, self.min_delta = patience, float(min_delta)
        self.epochs_without_improvement = 0
        self.best_model = None  # host copies of the best epoch's state_dict (with patience)

    def on_epoch_end(self, trainer, epoch, history):
        if "val/loss" not in history.history:
            return
        value = history["val/loss"][-1]
        if history.best_value is None or value < history.best_value - self.min_delta:
            history.best_epoch, history.best_value = epoch, float(value)
            self.epochs_without_improvement = 0
            if self.patience is not None:
                self.best_model = {name: backend.to_numpy(array).copy()
                                   for name, array in trainer.model.state_dict().items()}
            return
        self.epochs_without_improvement += 1
        if self.patience is not None and self.epochs_without_improvement >= self.patience:
            history.stopped_early = trainer.stop_training = True

    def on_train_end(self, trainer, history):
        if (self.best_model is not None and history.best_epoch is not None
                and history.best_epoch != trainer.epochs_done):
            trainer.model.load_state_dict(self.best_model)

    def state_dict(self):
        return {"epochs_without_improvement": self.epochs_without_improvement,
                "best_model": self.best_model}

    def load_state_dict(self, state):
        self.epochs_without_improvement = state["epochs_without_improvement"]
        self.best_model = state["best_model"]


class ProgressBar:
    """A tqdm bar over each epoch's steps with the running losses, and a line per epoch."""

    def __init__(self):
        self.bar = None

    def on_epoch_begin(self, trainer, epoch):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=trainer.batches_per_epoch, initial=trainer.step_in_epoch,
                        desc=f"epoch {epoch}/{trainer.epochs}", leave=False)

    def on_step_end(self, trainer, values):
        self.bar.set_postfix({name: f"{value:.4g}"
                              for name, value in trainer.epoch_totals.means().items()},
                             refresh=False)
        self.bar.update()

    def on_epoch_end(self, trainer, epoch, history):
        from tqdm.auto import tqdm
        self._close()
        parts = []
        for name, series in history.history.items():
            split, _, component = name.partition("/")
            if not math.isnan(series[-1]):
                parts.append(f"{'' if split == 'train' else split + ' '}{component} "
                             f"{series[-1]:.4g}")
        tqdm.write(f"epoch {epoch}/{trainer.epochs}: " + ", ".join(parts))

    def on_train_end(self, trainer, history):
        self._close()

    def _close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class SaveCheckpoint:
    """Write ``trainer.state_dict()`` atomically to ``directory/last.npz`` after every
    epoch and on Ctrl-C; ``train(checkpoint_dir=..., resume=True)`` continues from it.

    The folder is checked at the start, so an unwritable one fails before any compute.
    """

    def __init__(self, directory, name="last.npz"):
        self.directory = pathlib.Path(directory)
        self.path = self.directory / name

    def on_train_begin(self, trainer):
        checkpoint.check_writable(self.directory)

    def on_epoch_end(self, trainer, epoch, history):
        checkpoint.save(trainer.state_dict(), self.path)

    def on_interrupt(self, trainer):
        checkpoint.save(trainer.state_dict(), self.path)
