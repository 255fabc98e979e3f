"""What the studies, the demo and the command line share.

- ``UsageError``: a mistake the user can fix (a missing folder, a label a model
  cannot take); the command line prints it and exits with status 2.
- ``load_dataset``: a data set by name ("mnist", "olivetti", "digits",
  "folder:PATH"), with a validation part.
- ``Outputs``: the folder a run writes into; it remembers every file, and
  ``write_summary`` writes ``summary.txt`` atomically.
- Model files (``save_model``, ``load_model``): a model's ``state_dict`` beside
  the builder and arguments that made it, so it can be rebuilt without pickle.
- ``embed_all``, ``reconstruct_all``, ``decode_all``: the code and image maps
  over a whole data set, a batch at a time, as host arrays.
"""
import dataclasses
import functools
import json
import math
import os
import pathlib
import platform
import time

import numpy

from .. import checkpoint, data, nn
from ..io import atomic_path, atomic_write_bytes
from ..models import (GMMSampler, conv_autoencoder, conv_vae, dcgan, mlp_autoencoder, mlp_cvae,
                      mlp_gan, mlp_vae)
from ..train import train

DATA_NAMES = ("mnist", "olivetti", "digits", "folder:PATH")


class UsageError(Exception):
    """A problem with what the user asked for, said in words the user can act on."""


# ---------------------------------------------------------------- data
@dataclasses.dataclass
class Dataset:
    """Training and validation images (N, C, H, W) in [0, 1], with labels where there are any."""

    name: str
    x_train: numpy.ndarray
    y_train: numpy.ndarray = None
    x_val: numpy.ndarray = None
    y_val: numpy.ndarray = None
    classes: int = 0          # number of label values (0: no labels)
    note: str = ""            # where the data came from, for summaries

    @property
    def image_shape(self):
        return tuple(int(n) for n in self.x_train.shape[1:])

    def describe(self):
        val = 0 if self.x_val is None else len(self.x_val)
        shape = "x".join(map(str, self.image_shape))
        return (f"{self.name}: {len(self.x_train)} training and {val} validation images of "
                f"{shape}" + (f", {self.classes} classes" if self.classes else "")
                + (f" ({self.note})" if self.note else ""))


@functools.lru_cache(maxsize=2)
def _mnist_split(root, split):
    """MNIST read once per process (the studies share it; reading it takes seconds)."""
    return data.load_mnist(root, split=split)


def load_mnist_pair(data_dir=None):
    """(x_train, y_train, x_test, y_test) of MNIST, from ``data_dir`` or $TINYAE_DATA."""
    root = None if data_dir is None else str(pathlib.Path(data_dir).expanduser().resolve())
    if root is None and os.environ.get("TINYAE_DATA"):
        root = str(pathlib.Path(os.environ["TINYAE_DATA"]).expanduser().resolve())
    x_train, y_train = _mnist_split(root, "train")
    x_test, y_test = _mnist_split(root, "test")
    return x_train, y_train, x_test, y_test


def parse_data_name(text):
    """("mnist" | "olivetti" | "digits" | "folder", folder path or None); UsageError otherwise."""
    if text.startswith("folder:"):
        folder = pathlib.Path(text[len("folder:"):]).expanduser()
        if not text[len("folder:"):]:
            raise UsageError("folder: needs a path after the colon, e.g. "
                             "folder:~/Pictures/cats")
        if not folder.is_dir():
            raise UsageError(f"the folder {folder} does not exist; give folder:PATH naming "
                             "a directory of pictures (.png, .jpg, ...)")
        return "folder", folder
    if text not in ("mnist", "olivetti", "digits"):
        raise UsageError(f"unknown data set {text!r}; choose one of {', '.join(DATA_NAMES)}")
    return text, None


def limit_examples(x, y, limit, seed):
    """At most ``limit`` examples, a seeded random choice (all of them when limit is None)."""
    if limit is None or limit >= len(x):
        return x, y
    index = numpy.sort(numpy.random.default_rng([seed, 7]).permutation(len(x))[:int(limit)])
    return x[index], (None if y is None else y[index])


def load_dataset(name, data_dir=None, image_size=64, limit=None, val_fraction=0.1, seed=0):
    """The data set ``name`` with a validation part, limited to ``limit`` training images.

    mnist uses its test split for validation (at most ``limit`` // 5 images of it
    when limited); the others hold out ``val_fraction`` at random. ``image_size``
    is the side pictures of a folder are resized to.
    """
    kind, folder = parse_data_name(name)
    if kind == "mnist":
        x, y, x_val, y_val = load_mnist_pair(data_dir)
        x, y = limit_examples(x, y, limit, seed)
        if limit is not None:
            x_val, y_val = limit_examples(x_val, y_val, max(limit // 5, 10), seed)
        return Dataset("mnist", x, y, x_val, y_val, 10, "validation: the test split")
    if kind == "olivetti":
        x, y = data.load_olivetti_faces(_root(data_dir))
        note, classes = "labels: the 40 people", 40
    elif kind == "digits":
        x, y = data.load_digits()
        note, classes = "scikit-learn's bundled 8x8 digits", 10
    else:
        x, _ = data.image_folder(folder, size=int(image_size), skip_unreadable=True)
        y, classes = None, 0
        note = f"{folder}, cropped to squares of {image_size}x{image_size} pixels, grayscale"
    x, y = limit_examples(x, y, limit, seed)
    if len(x) < 4:
        return Dataset(name, x, y, x, y, classes, note + "; too few to hold out: "
                       "validation on the training images")
    parts = data.train_val_split(x, y, val_fraction=val_fraction, seed=seed)
    x_train, x_val = parts[0], parts[1]
    y_train, y_val = (parts[2], parts[3]) if y is not None else (None, None)
    return Dataset(name, x_train, y_train, x_val, y_val, classes, note)


def _root(data_dir):
    return None if data_dir is None else pathlib.Path(data_dir).expanduser()


# ---------------------------------------------------------------- outputs
class Outputs:
    """The folder a run writes into, and the list of what it wrote.

    Every writer in tinyae replaces a file atomically (``tinyae.io``), so an
    interrupted run leaves each output either as it was or complete.

    Example::

        out = Outputs("runs/demo")
        plot.image_grid(images, path=out.file("samples.png"))
        out.write_summary(["trained for 10 epochs"])
    """

    def __init__(self, directory):
        self.directory = pathlib.Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UsageError(f"--out {directory}: a file of that name is in the way; "
                             "choose a folder name") from None
        except PermissionError:
            raise UsageError(f"--out {directory}: no permission to create it; choose "
                             "another folder") from None
        self.files = []
        self.started = time.perf_counter()

    def file(self, name):
        """The path of output ``name`` (subfolders are created); recorded for the summary."""
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path not in self.files:
            self.files.append(path)
        return path

    def folder(self, name):
        """A subfolder for files written by callbacks (recorded as a folder)."""
        path = self.directory / name
        path.mkdir(parents=True, exist_ok=True)
        if path not in self.files:
            self.files.append(path)
        return path

    def elapsed(self):
        return time.perf_counter() - self.started

    def listing(self, about_to_write=()):
        """One line per output, relative to the folder (a folder with its file count);
        ``about_to_write``: paths listed although they do not exist yet."""
        lines = []
        for path in self.files:
            relative = path.relative_to(self.directory)
            if path.is_dir():
                lines.append(f"  {relative}/  ({plural(_count_files(path), 'file')})")
            elif path.exists() or path in about_to_write:
                lines.append(f"  {relative}")
        return lines

    def write_summary(self, lines, title="tinyae"):
        """Write ``summary.txt``: the given lines, the time taken and the files written."""
        path = self.file("summary.txt")
        text = [title, "=" * len(title), *lines, "",
                f"time: {self.elapsed():.1f} s (Python {platform.python_version()}, "
                f"{os.cpu_count()} CPU cores visible)", "", "files written:",
                *self.listing(about_to_write=(path,)), ""]
        atomic_write_bytes(path, "\n".join(text).encode("utf-8"))
        return path

    def final_line(self):
        """The line the command line prints last: where the outputs are."""
        count = sum(_count_files(path) for path in self.files)
        return f"outputs ({plural(count, 'file')}) are in {self.directory.resolve()}"


def _count_files(path):
    """1 for a file, the number of files in a folder (temporary ones aside), 0 if missing."""
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return int(path.exists())


def losses_line(name, history):
    """One summary line with the last epoch's loss components of a ``History``."""
    values = history.as_dict()
    parts = [f"{key} {series[-1]:.4g}" for key, series in values.items()
             if series and math.isfinite(series[-1])]
    epochs = len(history)
    extra = ", stopped early" if history.stopped_early else ""
    extra += f", best epoch {history.best_epoch}" if history.best_epoch else ""
    return f"{name}: {plural(epochs, 'epoch')}{extra}; final {', '.join(parts) or 'no losses'}"


def plural(count, word):
    """"1 epoch", "2 epochs"."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def bar_chart(groups, values, categories, path, ylabel="fraction", title=None):
    """Grouped bars: ``values[g][c]`` for each group g (one colour each) and category c.

    Used for class distributions of generated samples; saved atomically.
    """
    from matplotlib.figure import Figure
    figure = Figure(figsize=(8.0, 3.5), dpi=100, layout="constrained")
    ax = figure.subplots()
    width = 0.8 / len(groups)
    positions = numpy.arange(len(categories))
    for i, (group, row) in enumerate(zip(groups, values)):
        ax.bar(positions + (i - (len(groups) - 1) / 2) * width, row, width, label=group)
    ax.set_xticks(positions, [str(c) for c in categories])
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=100)
    return figure


# ---------------------------------------------------------------- training helper
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


# ---------------------------------------------------------------- model files
MODEL_FORMAT = "tinyae-model"
MODEL_VERSION = 1

# The builders a model file may name; keyword arguments are stored beside the weights.
BUILDERS = {
    "mlp_autoencoder": mlp_autoencoder,
    "conv_autoencoder": conv_autoencoder,
    "mlp_vae": mlp_vae,
    "conv_vae": conv_vae,
    "mlp_cvae": mlp_cvae,
    "mlp_gan": mlp_gan,
    "dcgan": dcgan,
}


def build_model(builder, kwargs):
    """Call the builder named ``builder`` with ``kwargs``."""
    if builder not in BUILDERS:
        raise UsageError(f"unknown model builder {builder!r}; this tinyae knows "
                         f"{', '.join(BUILDERS)}")
    return BUILDERS[builder](**kwargs)


def save_model(path, model, builder, kwargs, kind, image_shape, info=None):
    """Write ``model`` to ``path`` (.npz, atomically): its state_dict and how to rebuild it.

    The file holds ``builder`` (a name in ``BUILDERS``), its ``kwargs``, the
    command-line ``kind`` ("ae", "vae", ...), the data's ``image_shape`` and any
    ``info`` (plain values and arrays: the data name, training epochs, codes of
    training images for sampling an autoencoder). ``load_model`` reverses it.
    """
    state = {name: array for name, array in model.state_dict().items()}
    record = {"format": MODEL_FORMAT, "version": MODEL_VERSION, "builder": builder,
              "kwargs": dict(kwargs), "kind": kind,
              "image_shape": tuple(int(n) for n in image_shape), "info": dict(info or {}),
              "state_dict": state}
    checkpoint.save(record, path)
    return pathlib.Path(path)


def find_model_file(path):
    """``path`` itself, or ``path/model.npz`` for a run's folder; UsageError if neither."""
    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        path = path / "model.npz"
    if not path.is_file():
        raise UsageError(f"--model {path}: no model file there. Give the folder a "
                         "`tinyae train` run wrote (it holds model.npz) or the .npz file")
    return path


def load_model(path):
    """(model, record) from a file written by ``save_model``; the model is in eval mode."""
    path = find_model_file(path)
    try:
        record = checkpoint.load(path)
    except checkpoint.CheckpointError as exc:
        raise UsageError(f"--model {path}: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != MODEL_FORMAT:
        raise UsageError(f"--model {path}: a tinyae checkpoint but not a model file (is it a "
                         "training checkpoint such as checkpoints/last.npz? give the run's "
                         "model.npz instead)")
    try:
        model = build_model(record["builder"], record["kwargs"])
        model.load_state_dict(record["state_dict"])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--model {path}: cannot rebuild {describe_record(record)} with this "
                         f"version of tinyae ({exc})") from None
    model.eval()
    return model, record


def describe_record(record):
    """A short text: kind, builder and its arguments."""
    arguments = ", ".join(f"{k}={v!r}" for k, v in record["kwargs"].items())
    return f"{record['kind']}: {record['builder']}({arguments})"


def sample_images(model, record, n, label=None, seed=0):
    """``n`` new images from a loaded model, of class ``label`` where the model allows.

    vae and gan draw from their prior (no label); cvae takes a label; ae and dae
    fit a Gaussian per class to the training codes stored in the model file and
    decode draws from it.
    """
    kind = record["kind"]
    rng = numpy.random.default_rng(seed)
    if kind == "cvae":
        classes = int(record["kwargs"].get("n_classes", 10))
        if label is not None and not 0 <= label < classes:
            raise UsageError(f"--label {label}: this cvae knows the classes 0..{classes - 1}")
        return model.sample(n, label=label, rng=rng).numpy()
    if kind in ("vae", "gan"):
        if label is not None:
            raise UsageError(f"--label: a {kind} is not conditioned on labels; train a cvae "
                             "(or an ae, sampled per class) to choose the class")
        return model.sample(n, rng=rng).numpy()
    info = record["info"]
    codes, code_labels = info.get("codes"), info.get("code_labels")
    if codes is None:
        raise UsageError("this autoencoder's model file holds no training codes to fit a "
                         "sampler to; retrain it with `tinyae train ae`")
    if label is not None:
        if code_labels is None:
            raise UsageError("--label: this autoencoder was trained on data without labels")
        known = sorted(set(int(v) for v in code_labels))
        if label not in known:
            raise UsageError(f"--label {label}: the training codes have the classes "
                             f"{known[0]}..{known[-1]}")
        sampler = GMMSampler("gaussian", covariance_scale=0.5, seed=seed).fit(codes, code_labels)
    else:
        sampler = GMMSampler("gaussian", covariance_scale=0.5, seed=seed).fit(codes)
    return decode_all(model, sampler.sample(n, label=label))


def settings_text(settings):
    """``{"epochs": 30, ...}`` as "epochs=30, ..." for help texts and summaries."""
    return ", ".join(f"{key}={json.dumps(value) if isinstance(value, str) else value}"
                     for key, value in settings.items())
