"""The model file: a model's weights beside the recipe that rebuilds it, without pickle.

``tinyae train`` writes one (``model.npz``) and ``tinyae sample`` reads it::

    save_model("runs/ae/model.npz", model, "mlp_autoencoder",
               {"input_dim": (1, 28, 28), "hidden": [256, 32]}, kind="ae",
               image_shape=(1, 28, 28), info={"codes": codes, "code_labels": labels})
    model, record = load_model("runs/ae")          # the folder or the .npz file
    images = sample_images(model, record, 64, label=3)

The file is a ``tinyae.checkpoint`` (.npz, written atomically) of one dict:
``format`` and ``version``, the ``builder`` (a name in ``BUILDERS``) and its
``kwargs``, the command-line ``kind`` ("ae", "vae", ...), the data's
``image_shape``, ``info`` (plain values and arrays) and the ``state_dict``.
"""
import pathlib

import numpy

from .. import checkpoint, nn
from ..errors import UsageError
from .autoencoder import conv_autoencoder, mlp_autoencoder
from .gan import dcgan, mlp_gan
from .sampler import GMMSampler
from .vae import conv_vae, mlp_cvae, mlp_vae

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
        raise UsageError(f"--model {path}: a tinyae checkpoint but not a model file (is it "
                           "a training checkpoint such as checkpoints/last.npz? give the run's "
                           "model.npz instead)")
    try:
        model = build_model(record["builder"], record["kwargs"])
        model.load_state_dict(record["state_dict"])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--model {path}: cannot rebuild {describe_record(record)} with "
                           f"this version of tinyae ({exc})") from None
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
            raise UsageError(f"--label {label}: this cvae knows the classes "
                               f"0..{classes - 1}")
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
    return _decode(model, sampler.sample(n, label=label))


def _decode(model, codes):
    """``model.decode`` on host codes in eval mode without a graph; the mode restored after."""
    with nn.evaluating(model):
        return model.decode(numpy.asarray(codes, dtype=numpy.float32)).numpy()
