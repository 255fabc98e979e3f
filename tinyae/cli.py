"""The command line: ``tinyae demo``, ``tinyae train``, ``tinyae sample``, ``tinyae study``.

    tinyae demo                                   # a minute on a CPU, no files needed
    tinyae train vae --data mnist --epochs 10 --out runs/vae
    tinyae sample --model runs/vae --n 64
    tinyae study face-vae --quick --out runs/faces

``python -m tinyae`` is the same program. Every command writes into one folder
(``--out``), replacing files atomically, and ends by saying where its outputs
are. Mistakes in what was asked (an unknown name, a missing folder, a label a
model cannot take, an output folder that cannot be written) are reported in one
line with exit status 2, never as a traceback; an unexpected error is one line
too, with exit status 1 (``TINYAE_DEBUG=1`` shows its traceback). Ctrl-C stops
training after the current step, keeps the checkpoint and says how to go on
(``--resume``); exit status 130. From Python, ``main(["demo", "--epochs", "2"])``
returns the exit status instead of exiting.
"""
import argparse
import math
import os
import pathlib
import sys
import textwrap
import warnings

from . import __version__, runtime, studies
from .errors import UsageError
from .studies import common

DATA_HELP = ("data set: mnist (files in --data-dir or $TINYAE_DATA), olivetti (likewise), "
             "digits (scikit-learn's 8x8 digits, always there) or folder:PATH (a folder of "
             "pictures)")
THREADS_HELP = ("CPU threads for matrix products (BLAS) and Numba kernels (default: "
                "$TINYAE_THREADS, else the idle cores at the start; why: README, "
                "\"Threads\")")


# ---------------------------------------------------------------- argument types
def existing_directory(text):
    """argparse type: a folder that exists."""
    path = pathlib.Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {path}")
    return path


def data_name(text):
    """argparse type: a data set name that ``common.parse_data_name`` accepts."""
    try:
        common.parse_data_name(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def positive_int(text):
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: give a number of at least 1")
    return value


def positive_float(text):
    """A finite number above 0 (a learning rate)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: give a finite number above 0, e.g. 1e-3")
    return value


def int_list(text):
    """argparse type: comma-separated layer sizes, e.g. 512,128."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give layer sizes separated by commas, "
                                         "e.g. 512,128")
    return values


# ---------------------------------------------------------------- the parser
def build_parser():
    """The argument parser of the ``tinyae`` command, with its four subcommands."""
    parser = argparse.ArgumentParser(
        prog="tinyae",
        description="Autoencoders and generative models from scratch, on NumPy or CuPy.",
        epilog="Run `tinyae COMMAND --help` for the options of each command. Start with "
               "`tinyae demo`.")
    parser.add_argument("--version", action="version", version=f"tinyae {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    _add_demo(commands)
    _add_train(commands)
    _add_sample(commands)
    _add_study(commands)
    return parser


def _run_options(parser, quiet_help):
    """--seed, --backend, --threads and --quiet, which every command that computes takes."""
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--backend", choices=("numpy", "cupy"), default="numpy",
                        help="array backend: numpy (CPU) or cupy (NVIDIA GPU)")
    parser.add_argument("--threads", type=positive_int, default=None, metavar="N",
                        help=THREADS_HELP)
    parser.add_argument("--quiet", action="store_true", help=quiet_help)


def _common_options(parser, out_default, epochs_help=None):
    parser.add_argument("--out", type=pathlib.Path, default=out_default, metavar="DIR",
                        help=f"folder for the outputs (default {out_default}); files in it "
                             "are replaced")
    if epochs_help:
        parser.add_argument("--epochs", type=positive_int, metavar="N", help=epochs_help)
    _run_options(parser, quiet_help="no progress bars")


def _add_demo(commands):
    parser = commands.add_parser(
        "demo", help="train two small models and draw what they learned (about 20 seconds)",
        description="Train an MLP autoencoder and a 2-D VAE on scikit-learn's 8x8 digits "
                    "(no files or network needed) and write reconstructions, loss curves, "
                    "per-digit samples from a Gaussian mixture fitted to the autoencoder's "
                    "codes, a PCA of the codes, an interpolation strip, the VAE's latent "
                    "scatter and samples, and summary.txt.",
        epilog="With --data mnist the demo trains on 10,000 MNIST images (--limit to change) "
               "for 5 epochs.")
    parser.add_argument("--data", choices=("digits", "mnist"), default="digits",
                        help="digits (default, built in) or mnist (needs the MNIST files in "
                             "--data-dir or $TINYAE_DATA)")
    parser.add_argument("--data-dir", type=existing_directory, metavar="DIR",
                        help="folder holding mnist/ (default: $TINYAE_DATA)")
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="train on at most N images (default: all digits, 10,000 MNIST)")
    _common_options(parser, pathlib.Path("tinyae-out"),
                    epochs_help="epochs of each model (default 150 on digits, 5 on mnist)")
    parser.set_defaults(run=run_demo, parser=parser)


KINDS = {
    "ae": "autoencoder (sampled through a Gaussian fitted to its codes)",
    "dae": "denoising autoencoder (Gaussian noise, --noise)",
    "vae": "variational autoencoder",
    "cvae": "label-conditioned VAE (needs labelled data: mnist, olivetti, digits)",
    "gan": "generative adversarial network",
}
DEFAULT_LATENT = {"ae": 32, "dae": 32, "vae": 20, "cvae": 20, "gan": 100}


def _add_train(commands):
    parser = commands.add_parser(
        "train", help="train one model and save it",
        description="Train an ae, dae, vae, cvae or gan on a data set. Writes model.npz "
                    "(weights and the recipe to rebuild them, for `tinyae sample`), "
                    "checkpoints/last.npz after every epoch (continue with --resume), "
                    "loss_curves.png, samples.png, reconstructions.png and summary.txt.",
        epilog="Kinds: " + "; ".join(f"{k}: {v}" for k, v in KINDS.items()) + ". "
               "Defaults: mlp networks sized for the data (784-512-128-code for MNIST), "
               "latent 32 (ae, dae), 20 (vae, cvae), 100 (gan); Adam lr 1e-3 (gan: 2e-4 "
               "with betas 0.5, 0.999); batch 128 (gan: 64).")
    parser.add_argument("kind", choices=tuple(KINDS), help="the model to train")
    parser.add_argument("--data", type=data_name, default="digits", metavar="NAME",
                        help=DATA_HELP + " (default digits)")
    parser.add_argument("--data-dir", type=existing_directory, metavar="DIR",
                        help="folder holding mnist/ and olivetti/ (default: $TINYAE_DATA)")
    parser.add_argument("--arch", choices=("mlp", "conv"), default="mlp",
                        help="fully connected (default) or convolutional networks (not for "
                             "cvae)")
    parser.add_argument("--batch-size", type=positive_int, metavar="N")
    parser.add_argument("--lr", type=positive_float, metavar="RATE", help="learning rate")
    parser.add_argument("--lr-schedule", choices=("constant", "cosine"), default="constant",
                        help="constant (default), or cosine: from --lr down towards 0 over "
                             "the epochs")
    parser.add_argument("--latent-dim", type=positive_int, metavar="D", help="code size")
    parser.add_argument("--hidden", type=int_list, metavar="SIZES",
                        help="hidden layer sizes of an mlp encoder, e.g. 512,128 (the "
                             "decoder mirrors them)")
    parser.add_argument("--loss", choices=("bce", "mse", "euclidean"),
                        help="reconstruction loss (default bce; euclidean only for ae, dae)")
    parser.add_argument("--noise", type=float, default=0.1, metavar="SIGMA",
                        help="dae: standard deviation of the training noise (default 0.1)")
    parser.add_argument("--d-steps", type=positive_int, default=1, metavar="K",
                        help="gan: discriminator steps per generator step (default 1)")
    parser.add_argument("--image-size", type=positive_int, default=64, metavar="PIXELS",
                        help="folder: data: side of the square pictures (default 64)")
    parser.add_argument("--limit", type=positive_int, metavar="N",
                        help="train on at most N images")
    parser.add_argument("--patience", type=positive_int, metavar="EPOCHS",
                        help="stop when the validation loss has not improved for this many "
                             "epochs, keeping the best weights")
    parser.add_argument("--resume", action="store_true",
                        help="continue from DIR/checkpoints/last.npz up to --epochs")
    _common_options(parser, pathlib.Path("tinyae-out/train"),
                    epochs_help="epochs to train in all (default 10)")
    parser.set_defaults(run=run_train, parser=parser)


def _add_sample(commands):
    parser = commands.add_parser(
        "sample", help="draw new images from a trained model",
        description="Rebuild a model saved by `tinyae train` and write a grid of new images.",
        epilog="vae and gan draw from their prior; cvae draws the class --label (default: "
               "all classes in turn); ae and dae draw from a Gaussian fitted to the training "
               "codes stored in the model file (per class with --label).")
    parser.add_argument("--model", required=True, type=pathlib.Path, metavar="DIR_OR_FILE",
                        help="a folder written by `tinyae train` or its model.npz")
    parser.add_argument("--n", type=positive_int, default=64, help="how many (default 64)")
    parser.add_argument("--label", type=int, metavar="K", help="the class to draw")
    parser.add_argument("--nrow", type=positive_int, metavar="N",
                        help="images per row (default: a square grid)")
    parser.add_argument("--out", type=pathlib.Path, metavar="DIR",
                        help="folder for sample_grid.png (default: the model's folder)")
    _run_options(parser, quiet_help="print nothing but errors")
    parser.set_defaults(run=run_sample, parser=parser)


def _add_study(commands):
    parser = commands.add_parser(
        "study", help="reproduce one of the five studies' figures",
        description="Reproduce a study's figures on the data available. Without --quick "
                    "the settings are close to the study's (slow on a CPU; see each study's "
                    "--help); --quick uses a subset and few epochs, about a minute each.",
        epilog="Studies: " + "; ".join(f"{name}: {module.TITLE}"
                                       for name, module in studies.STUDIES.items()))
    names = parser.add_subparsers(dest="study", metavar="STUDY")
    names.required = True
    for name, module in studies.STUDIES.items():
        epilog = (f"Full settings: {common.settings_text(module.FULL)}.\n\nTime: "
                  f"{module.FULL_NOTE}.\n\n--quick: {module.QUICK_NOTE}.\n\n--quick changes: "
                  f"{common.settings_text(_changes(module.FULL, module.QUICK))}.")
        sub = names.add_parser(
            name, help=module.TITLE, description=module.__doc__.strip(),
            epilog="\n\n".join(textwrap.fill(part, 79) for part in epilog.split("\n\n")),
            formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--quick", action="store_true",
                         help="a subset and few epochs: the study's point in about a "
                              "minute (what it shows: below)")
        if name != "photo-vae":
            sub.add_argument("--data-dir", type=existing_directory, metavar="DIR",
                             help="folder holding mnist/ and olivetti/ (default: "
                                  "$TINYAE_DATA)")
        sub.add_argument("--limit", type=positive_int, metavar="N",
                         help="use at most N training images")
        module.add_arguments(sub)
        _common_options(sub, pathlib.Path("tinyae-out") / name,
                        epochs_help="epochs (default: the study's, see below)")
        sub.set_defaults(run=run_study, parser=sub)


def _changes(full, quick):
    return {key: value for key, value in quick.items() if full.get(key) != value}


# ---------------------------------------------------------------- running
def main(argv=None):
    """Run the ``tinyae`` command with ``argv`` (default: sys.argv[1:]); return the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a usage error argparse printed
        return stop.code if isinstance(stop.code, int) else 2
    from . import backend
    from .data import DataError, DataNotFoundError
    from .train import TrainingDivergedError
    try:
        threads = runtime.training_threads(args.threads)
        with backend.using_backend(args.backend), runtime.limited_threads(threads):
            return args.run(args)
    except (UsageError, DataError, backend.BackendError) as exc:
        hint = ""
        if isinstance(exc, DataNotFoundError) and "data_dir" in vars(args):
            hint = (" On the command line: --data-dir DIR names the folder holding mnist/ "
                    "and olivetti/ (or set TINYAE_DATA).")
        print(f"{args.parser.prog}: error: {exc}{hint}", file=sys.stderr)
        return 2
    except TrainingDivergedError as exc:
        print(f"{args.parser.prog}: training diverged: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{args.parser.prog}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # an output (or input) path that cannot be written or read
        _raise_when_debugging()
        print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError) as exc:  # a value tinyae refused, named in the message
        _raise_when_debugging()
        print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line, but say so
        _raise_when_debugging()
        print(f"{args.parser.prog}: internal error ({type(exc).__name__}: {exc}); please "
              "report it, with the traceback that TINYAE_DEBUG=1 shows", file=sys.stderr)
        return 1


def _raise_when_debugging():
    """Re-raise the exception being handled when TINYAE_DEBUG=1 (to see its traceback)."""
    if os.environ.get("TINYAE_DEBUG", "0") not in ("", "0"):
        raise


def _finish(outputs):
    print(outputs.final_line())
    return 0


def run_demo(args):
    """``tinyae demo``: two small models and their figures."""
    from .studies import demo
    outputs = demo.run(common.Outputs(args.out), data=args.data, data_dir=args.data_dir,
                       epochs=args.epochs, limit=args.limit, seed=args.seed,
                       progress=not args.quiet)
    return _finish(outputs)


def run_study(args):
    """``tinyae study NAME``: one study's figures."""
    overrides = {key: value for key, value in vars(args).items()
                 if key not in ("command", "study", "run", "parser", "quick", "out", "backend",
                                "threads", "quiet")}
    overrides["progress"] = not args.quiet
    outputs = studies.run(args.study, common.Outputs(args.out), quick=args.quick, **overrides)
    return _finish(outputs)


# ---------------------------------------------------------------- train
def model_recipe(kind, arch, image_shape, classes, args):
    """(builder name, keyword arguments) of the model ``kind`` for images of ``image_shape``."""
    pixels = math.prod(image_shape)
    large = pixels >= 512
    latent = args.latent_dim or DEFAULT_LATENT[kind]
    loss = args.loss
    if kind == "gan":
        if loss is not None:
            raise UsageError("--loss: a gan is trained with its own adversarial loss; leave "
                               "--loss out")
        if arch == "conv":
            return "dcgan", dict(latent_dim=latent, image_shape=image_shape,
                                 d_steps=args.d_steps)
        generator = tuple(args.hidden or ((256, 512) if large else (128, 256)))
        return "mlp_gan", dict(latent_dim=latent, image_shape=image_shape,
                               generator_hidden=generator,
                               discriminator_hidden=tuple(reversed(generator)),
                               d_steps=args.d_steps)
    loss = loss or "bce"
    if kind in ("vae", "cvae") and loss == "euclidean":
        raise UsageError("--loss euclidean is for ae and dae; a vae or cvae takes bce or mse")
    if kind in ("ae", "dae"):
        noise = dict(noise="gaussian", noise_level=args.noise) if kind == "dae" else {}
        if arch == "conv":
            return "conv_autoencoder", dict(input_shape=image_shape, channels=(32, 64),
                                            latent_dim=latent, loss=loss, **noise)
        hidden = args.hidden or ([512, 128] if large else [128])
        return "mlp_autoencoder", dict(input_dim=image_shape, hidden=list(hidden),
                                       latent_dim=latent, loss=loss, **noise)
    hidden = tuple(args.hidden or ((400,) if large else (128,)))
    if kind == "vae":
        if arch == "conv":
            return "conv_vae", dict(input_shape=image_shape, channels=(32, 64, 64, 64),
                                    latent_dim=latent, loss=loss)
        return "mlp_vae", dict(input_dim=image_shape, hidden=hidden, latent_dim=latent,
                               loss=loss)
    if arch == "conv":
        raise UsageError("--arch conv: the cvae is fully connected only; use --arch mlp")
    if not classes:
        raise UsageError("a cvae is conditioned on labels, and this data set has none "
                           "(folder: data); use ae, dae, vae or gan, or labelled data")
    return "mlp_cvae", dict(input_dim=image_shape, hidden=hidden, latent_dim=latent,
                            condition="label", n_classes=classes, loss=loss)


def run_train(args):
    """``tinyae train KIND``: train one model, save it with its recipe, draw its figures."""
    kind = args.kind
    gan = kind == "gan"
    if gan and args.patience is not None:
        raise UsageError("--patience: a gan has no validation loss to stop on; leave it out")
    epochs = args.epochs or 10
    dataset = common.load_dataset(args.data, args.data_dir, image_size=args.image_size,
                                  limit=args.limit, seed=args.seed)
    builder, kwargs = model_recipe(kind, args.arch, dataset.image_shape, dataset.classes, args)
    common.seed_everything(args.seed)
    try:
        model = common.build_model(builder, kwargs)
    except ValueError as exc:  # e.g. a dcgan for images whose side is not divisible by 4
        raise UsageError(f"cannot build {builder} for {dataset.name} images of shape "
                           f"{dataset.image_shape}: {exc}") from None

    outputs = common.Outputs(args.out)
    checkpoints = outputs.folder("checkpoints")
    if args.resume and not (checkpoints / "last.npz").exists():
        print(f"--resume: no checkpoint in {checkpoints} yet; starting from the beginning",
              file=sys.stderr)
    settings = common.RunSettings(epochs, args.batch_size or (64 if gan else 128),
                                  args.lr or (2e-4 if gan else 1e-3), args.seed, not args.quiet)
    try:
        with warnings.catch_warnings():  # the trainer's note speaks Python (resume=True)
            warnings.filterwarnings("ignore", message="training interrupted")
            history = common.fit(model, dataset, settings, labels=kind == "cvae",
                                 betas=(0.5, 0.999) if gan else None, patience=args.patience,
                                 checkpoint_dir=checkpoints, resume=args.resume,
                                 lr_schedule=None if args.lr_schedule == "constant"
                                 else args.lr_schedule)
    except ValueError as exc:
        if not args.resume:
            raise
        raise UsageError(f"--resume: the checkpoint in {checkpoints} does not fit this "
                           f"model ({exc}); train it with the options it was started with, "
                           "or choose a new --out") from None
    if history.interrupted:
        saved = (f"the checkpoint {checkpoints / 'last.npz'} is kept"
                 if (checkpoints / "last.npz").exists() else "no checkpoint was written yet")
        print(f"{args.parser.prog}: interrupted after {common.plural(len(history), 'epoch')}; "
              f"{saved}. Continue with the same command and --resume", file=sys.stderr)
        return 130

    info = {"data": args.data, "epochs": len(history), "history": history.as_dict(),
            "classes": dataset.classes}
    if kind in ("ae", "dae"):  # training codes, for sampling a model that has no prior
        x_codes, y_codes = common.limit_examples(dataset.x_train, dataset.y_train, 5000,
                                                 args.seed)
        info["codes"] = common.embed_all(model, x_codes)
        info["code_labels"] = y_codes
    model_path = outputs.file("model.npz")
    common.save_model(model_path, model, builder, kwargs, kind, dataset.image_shape, info)

    from . import plot
    plot.loss_curves(history, path=outputs.file("loss_curves.png"))
    record = {"kind": kind, "kwargs": kwargs, "info": info}
    images = common.sample_images(model, record, 64, seed=args.seed)
    plot.image_grid(images, nrow=8, path=outputs.file("samples.png"))
    if not gan:
        originals = dataset.x_val[:10]
        if kind == "cvae":
            condition = model.label_condition(dataset.y_val[:10], model.fc_mu.weight)
            restored = model.reconstruct(originals, condition).numpy()
        else:
            restored = common.reconstruct_all(model, originals)
        plot.interpolation_strip([originals, restored], row_labels=("original", "reconstructed"),
                                 path=outputs.file("reconstructions.png"))
    outputs.write_summary([
        f"data: {dataset.describe()}",
        f"model: {common.describe_record({'kind': kind, 'builder': builder, 'kwargs': kwargs})}"
        f", {model.num_parameters()} parameters",
        f"training: {common.plural(epochs, 'epoch')}, batch_size={settings.batch_size}, "
        f"Adam lr={settings.lr}{', betas=(0.5, 0.999)' if gan else ''}"
        f"{', cosine schedule' if args.lr_schedule == 'cosine' else ''}, seed={args.seed}, "
        f"backend={args.backend}" + (f", patience={args.patience}" if args.patience else ""),
        common.losses_line(kind, history),
        f"draw more with: tinyae sample --model {model_path} --n 64",
    ], title=f"tinyae train {kind}")
    return _finish(outputs)


# ---------------------------------------------------------------- sample
def run_sample(args):
    """``tinyae sample``: rebuild a saved model and write a grid of new images."""
    model, record = common.load_model(args.model)
    model.to(args.backend)
    images = common.sample_images(model, record, args.n, label=args.label, seed=args.seed)
    model_file = common.find_model_file(args.model)
    outputs = common.Outputs(args.out if args.out is not None else model_file.parent)
    name = "sample_grid.png" if args.label is None else f"sample_grid_label{args.label}.png"
    nrow = args.nrow or math.ceil(math.sqrt(args.n))
    from . import plot
    plot.image_grid(images, nrow=nrow, path=outputs.file(name))
    if not args.quiet:
        print(f"{args.n} samples of {common.describe_record(record)}")
    print(f"outputs (1 file, {name}) are in {outputs.directory.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
