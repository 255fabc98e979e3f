"""Study 4, photo-vae: a convolutional VAE on a small folder of photos.

Each picture is cropped to a centred square, resized to 100x100 and made
grayscale. A conv VAE (4 stride-2 convolutions with batch norm and
LeakyReLU, latent size 150, mirrored transposed convolutions) trains with Adam
1e-4 and early stopping (patience 25 on the validation loss). A grid of
samples is saved every epoch and a reconstruction every 10, so the folder
shows the model learning. Without ``--folder`` the photos of
``tinyae.data.sample_photos`` are used.
"""
import pathlib

import numpy

from .. import data, plot
from ..callbacks import SaveReconstructions, SaveSamples
from ..data import Dataset
from ..models import conv_vae, morph
from .common import UsageError
from .outputs import losses_line
from .training import RunSettings, fit, reconstruct_all, seed_everything

NAME = "photo-vae"
TITLE = "convolutional VAE on a folder of photos (100x100 grayscale, latent 150)"

FULL = dict(size=100, latent_dim=150, channels=(32, 64, 64, 64), epochs=500, patience=25,
            batch_size=32, lr=1e-4, limit=None, sample_every=1, reconstruct_every=10, seed=0)
QUICK = dict(FULL, epochs=2, limit=8, reconstruct_every=2)
QUICK_NOTE = ("a smoke run: 2 epochs on at most 8 photos show that everything runs, not what a "
              "VAE learns from photos (that takes hundreds of epochs); seconds")
FULL_NOTE = ("up to 500 epochs, stopped when the validation loss has not improved for 25; "
             "about 30 ms per photo and epoch on one CPU core (100 photos: 3 s an epoch)")


def add_arguments(parser):
    """The study's command-line options."""
    parser.add_argument("--folder", metavar="PATH",
                        help="a folder of pictures (.jpg, .png, ...); default: the sample "
                             "photos that ship with scikit-image or scikit-learn")
    parser.add_argument("--size", type=int, metavar="PIXELS",
                        help="side of the square the photos are resized to (default 100)")
    parser.add_argument("--patience", type=int, metavar="EPOCHS",
                        help="early stopping: epochs without a better validation loss "
                             "(default 25)")


def load_photos(folder, size, limit, seed):
    """A Dataset of the photos in ``folder`` (or the sample photos), 10% held out when
    there are at least 10 (else validated on the training photos)."""
    if folder is None:
        photos, names = data.sample_photos(size)
        source = f"tinyae.data.sample_photos ({', '.join(names)})"
    else:
        folder = pathlib.Path(folder).expanduser()
        if not folder.is_dir():
            raise UsageError(f"--folder {folder}: no such folder; give a directory of "
                             "pictures (.jpg, .png, ...)")
        photos, names = data.image_folder(folder, size=size, skip_unreadable=True)
        source = str(folder)
    if limit is not None and len(photos) > limit:
        photos = photos[numpy.sort(numpy.random.default_rng(seed).permutation(len(photos))[:limit])]
    note = f"{source}, centre-cropped, {size}x{size} grayscale"
    if len(photos) < 10:
        return Dataset("photos", photos, x_val=photos,
                       note=note + "; fewer than 10 photos: validated on the training photos")
    x_train, x_val = data.train_val_split(photos, val_fraction=0.1, seed=seed)
    return Dataset("photos", x_train, x_val=x_val, note=note)


def run(settings, out):
    """Load the photos, train the conv VAE with early stopping, draw the results; returns the
    summary lines.
    """
    seed = settings["seed"]
    seed_everything(seed)
    size = settings["size"]
    dataset = load_photos(settings.get("folder"), size, settings["limit"], seed)
    model = conv_vae((1, size, size), channels=tuple(settings["channels"]),
                     latent_dim=settings["latent_dim"], loss="bce")
    shown = dataset.x_val[:8]
    callbacks = [
        SaveSamples(out.folder("samples"), every=settings["sample_every"], n=16, nrow=8,
                    seed=seed),
        SaveReconstructions(out.folder("reconstructions"), shown,
                            every=settings["reconstruct_every"]),
    ]
    history = fit(model, dataset, RunSettings(settings["epochs"], settings["batch_size"],
                                              settings["lr"], seed,
                                              settings.get("progress", True)),
                  patience=settings["patience"], callbacks=callbacks)
    plot.loss_curves(history, path=out.file("loss_curves.png"))
    draw_results(model, dataset, shown, seed, out)
    return [
        f"data: {dataset.describe()}",
        *photo_source_lines(settings.get("folder"), dataset),
        f"model: conv_vae((1, {size}, {size}), channels={tuple(settings['channels'])}, "
        f"latent_dim={settings['latent_dim']}, loss='bce'), {model.num_parameters()} "
        "parameters",
        f"training: up to {settings['epochs']} epochs, batch_size={settings['batch_size']}, "
        f"Adam lr={settings['lr']}, early stopping patience {settings['patience']}, seed={seed}",
        losses_line("VAE", history),
        f"samples every {settings['sample_every']} epoch(s) in samples/, reconstructions every "
        f"{settings['reconstruct_every']} in reconstructions/",
    ]


def photo_source_lines(folder, dataset):
    """Say plainly when the run learnt from the few built-in photos, or validated on its
    training photos, and how to give it a folder."""
    lines = []
    if folder is None:
        lines.append(f"NOTE: no --folder given, so the model learnt the {len(dataset.x_train)} "
                     "sample photos that ship with scikit-image or scikit-learn; for a real run "
                     "give a folder of your photos: tinyae study photo-vae --folder PATH")
    if dataset.x_val is dataset.x_train:
        lines.append("NOTE: fewer than 10 photos, so the validation loss is measured on the "
                     "training photos: it shows memorising, not how well new photos are coded")
    return lines


def draw_results(model, dataset, shown, seed, out):
    """Reconstructions of validation photos and samples from the prior."""
    plot.interpolation_strip([shown, reconstruct_all(model, shown, batch_size=32)],
                             row_labels=("original", "reconstructed"),
                             path=out.file("reconstructions.png"))
    rng = numpy.random.default_rng([seed, 4])
    plot.image_grid(model.sample(16, rng=rng).numpy(), nrow=8, path=out.file("samples.png"))
    if len(dataset.x_train) >= 2:
        strip = morph(model, dataset.x_train[0], dataset.x_train[1], steps=8)
        plot.interpolation_strip(strip, path=out.file("morph.png"))
