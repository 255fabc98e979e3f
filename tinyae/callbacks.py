"""Callbacks for ``tinyae.train``: things to do at the end of an epoch.

A callback is any object with ``on_epoch_end(trainer, epoch, history)``
(``epoch`` counts from 1), and optionally ``on_train_begin(trainer)`` and
``on_train_end(trainer, history)``; a plain function works as on_epoch_end.
``trainer.model`` is the model; ``trainer.stop_training = True`` stops after
this epoch::

    tinyae.train(model, x, epochs=30, callbacks=[SaveSamples("runs/vae/samples"),
                                                 SaveReconstructions("runs/vae/recon", x[:8])])

The image callbacks draw with ``tinyae.plot`` and never touch the training
run's random streams: samples come from latents drawn once, from the
callback's own seed, so the grids of successive epochs show the same codes.
"""
import pathlib

import numpy

from . import backend, plot


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
