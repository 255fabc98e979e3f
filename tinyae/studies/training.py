"""Training on a Dataset with a run's settings, and model maps over a whole data set.

- ``RunSettings`` and ``fit``: ``tinyae.train`` with the run's seed, progress and
  epochs; ``seed_everything`` seeds parameter initialisation and dropout.
- ``embed_all``, ``reconstruct_all``, ``decode_all``: the code and image maps
  over a whole data set, a batch at a time, as host arrays.
"""
import dataclasses

import numpy

from .. import nn
from ..train import train


@dataclasses.dataclass
class RunSettings:
    """What every run is told: epochs, batch size, learning rate, seed, progress bars."""

    epochs: int
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    progress: bool = True


# Up to this many epochs, train's own progress (a bar per epoch and a line after each)
# is shown; longer runs get one bar over the epochs instead of hundreds of lines.
EPOCH_LINES_UP_TO = 20


class EpochBar:
    """A callback: one tqdm bar over all epochs, showing the last epoch's losses."""

    def __init__(self, description):
        self.description = description
        self.bar = None

    def on_train_begin(self, trainer):
        from tqdm.auto import tqdm
        self.bar = tqdm(total=trainer.epochs, initial=trainer.epochs_done,
                        desc=self.description, unit="epoch", leave=True)

    def on_epoch_end(self, trainer, epoch, history):
        values = {name.replace("train/", ""): f"{series[-1]:.4g}"
                  for name, series in history.as_dict().items()
                  if name.startswith("train/") and series}
        self.bar.set_postfix(values, refresh=False)
        self.bar.update(1)

    def on_train_end(self, trainer, history):
        self.bar.close()


def fit(model, dataset, settings, *, labels=False, lr=None, betas=None, patience=None,
        callbacks=(), checkpoint_dir=None, resume=False, epochs=None, batch_size=None,
        lr_schedule=None):
    """``tinyae.train`` on a Dataset with the run's seed, progress and backend settings."""
    x = (dataset.x_train, dataset.y_train) if labels else dataset.x_train
    val = None
    if dataset.x_val is not None:
        val = (dataset.x_val, dataset.y_val) if labels else dataset.x_val
    epochs = settings.epochs if epochs is None else epochs
    progress = settings.progress and epochs <= EPOCH_LINES_UP_TO
    callbacks = list(callbacks)
    if settings.progress and not progress:
        callbacks.append(EpochBar(type(model).__name__))
    return train(model, x, epochs=epochs, batch_size=batch_size or settings.batch_size,
                 lr=lr or settings.lr, betas=betas, val_data=val, patience=patience,
                 callbacks=callbacks, checkpoint_dir=checkpoint_dir, resume=resume,
                 seed=settings.seed, progress=progress, lr_schedule=lr_schedule)


# ---------------------------------------------------------------- maps over a data set
def _batched(function, x, batch_size):
    return numpy.concatenate([function(x[start:start + batch_size]).numpy()
                              for start in range(0, len(x), batch_size)])


def embed_all(model, x, batch_size=1000):
    """``model.embed`` over ``x`` in batches: host codes (N, latent_dim)."""
    return _batched(model.embed, x, batch_size)


def reconstruct_all(model, x, batch_size=1000):
    """``model.reconstruct`` over ``x`` in batches: host images of x's shape."""
    return _batched(model.reconstruct, x, batch_size)


evaluation_mode = nn.evaluating  # eval mode + no graph; one helper for the whole package


def decode_all(model, codes, batch_size=1000):
    """``model.decode`` on host codes, in eval mode and without a graph: host images."""
    codes = numpy.asarray(codes, dtype=numpy.float32)
    with evaluation_mode(model):
        return _batched(model.decode, codes, batch_size)


def samples_by_class(model, sampler, classes, per_class):
    """A list, one batch of ``per_class`` decoded GMM samples per class label."""
    return [decode_all(model, sampler.sample(per_class, label=c)) for c in classes]


def seed_everything(seed):
    """Seed parameter initialisation and dropout: the same run gives the same weights."""
    nn.manual_seed(int(seed))
