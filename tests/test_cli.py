"""The command line: help for every command, the demo, train then sample, and clear errors.

Commands run in-process through ``tinyae.cli.main`` (it returns the exit status);
one test starts ``python -m tinyae`` as a real subprocess.
"""
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tinyae import cli, studies
from tinyae.studies import common

DEMO_FIGURES = ("ae_loss.png", "ae_reconstructions.png", "ae_gmm_samples.png", "ae_code_pca.png",
                "ae_interpolation.png", "vae_loss.png", "vae_latent.png", "vae_samples.png")


def check_png(path):
    """A real PNG with something drawn on it."""
    assert path.is_file(), f"{path.name} was not written"
    assert path.stat().st_size > 1000
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert min(picture.size) > 50
        assert np.asarray(picture.convert("L")).std() > 5


def no_temporary_files(directory):
    return [p.name for p in pathlib.Path(directory).rglob(".*")] == []


def run(*argv):
    return cli.main([str(a) for a in argv])


def train(*argv):
    """``tinyae train`` without progress bars."""
    return run("train", *argv, "--quiet")


# ---------------------------------------------------------------- help
HELP_COMMANDS = [[], ["demo"], ["train"], ["sample"], ["study"]] + [
    ["study", name] for name in studies.STUDIES]


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: " ".join(c) or "tinyae")
def test_help_for_every_command(command, capsys):
    assert run(*command, "--help") == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: tinyae")
    if command[:1] == ["study"] and len(command) == 2:
        assert "Full settings:" in text and "--quick changes:" in text


def test_version(capsys):
    assert run("--version") == 0
    assert capsys.readouterr().out.startswith("tinyae ")


def test_python_dash_m_tinyae_help():
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "tinyae", "--help"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    for command in ("demo", "train", "sample", "study"):
        assert command in done.stdout


# ---------------------------------------------------------------- demo
def test_demo_writes_its_figures_and_summary(tmp_path, capsys):
    out = tmp_path / "demo"
    assert run("demo", "--epochs", 3, "--out", out, "--quiet") == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert str(out.resolve()) in last_line
    for name in DEMO_FIGURES:
        check_png(out / name)
    summary = (out / "summary.txt").read_text()
    for expected in ("digits", "mlp_autoencoder", "mlp_vae", "3 epochs", "time:",
                     "files written:", *DEMO_FIGURES):
        assert expected in summary
    assert no_temporary_files(out)


def test_demo_on_mnist_without_the_files_says_where_to_put_them(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("demo", "--data", "mnist", "--data-dir", empty, "--out", tmp_path / "o") == 2
    error = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in error and str(empty) in error
    assert "--data-dir" in error and "Traceback" not in error


# ---------------------------------------------------------------- train and sample
@pytest.mark.parametrize("kind", ["ae", "dae", "vae", "cvae", "gan"])
def test_train_then_sample(kind, tmp_path, capsys):
    out = tmp_path / kind
    assert train(kind, "--data", "digits", "--epochs", 1, "--limit", 400, "--out", out) == 0
    assert str(out.resolve()) in capsys.readouterr().out
    for name in ("loss_curves.png", "samples.png"):
        check_png(out / name)
    if kind != "gan":
        check_png(out / "reconstructions.png")
    assert (out / "checkpoints" / "last.npz").is_file()
    assert "1 epoch" in (out / "summary.txt").read_text()

    model, record = common.load_model(out)          # rebuilt from the saved recipe
    assert record["kind"] == kind and record["image_shape"] == (1, 8, 8)
    assert record["info"]["epochs"] == 1

    label = ["--label", 3] if kind in ("ae", "dae", "cvae") else []
    assert run("sample", "--model", out / "model.npz", "--n", 16, *label,
               "--out", tmp_path / "drawn", "--quiet") == 0
    name = "sample_grid_label3.png" if label else "sample_grid.png"
    check_png(tmp_path / "drawn" / name)
    assert no_temporary_files(out) and no_temporary_files(tmp_path / "drawn")


def test_train_with_a_cosine_schedule_changes_the_result_and_says_so(tmp_path):
    runs = {}
    for schedule in ("constant", "cosine"):
        out = tmp_path / schedule
        assert train("ae", "--epochs", 3, "--limit", 300, "--lr-schedule", schedule,
                     "--out", out) == 0
        runs[schedule] = common.load_model(out)[1]["info"]["history"]["train/loss"]
    assert "cosine schedule" in (tmp_path / "cosine" / "summary.txt").read_text()
    assert runs["constant"][0] == runs["cosine"][0]       # epoch 1 runs at the full rate
    assert runs["constant"][2] != runs["cosine"][2]


def test_sampling_a_saved_model_is_reproducible(tmp_path):
    out = tmp_path / "vae"
    assert train("vae", "--epochs", 1, "--limit", 300, "--out", out) == 0
    first_model, record = common.load_model(out)
    second_model, _ = common.load_model(out / "model.npz")
    first = common.sample_images(first_model, record, 8, seed=5)
    second = common.sample_images(second_model, record, 8, seed=5)
    np.testing.assert_array_equal(first, second)
    assert first.shape == (8, 1, 8, 8)


def test_resume_continues_to_the_requested_epoch(tmp_path):
    out = tmp_path / "run"
    assert train("ae", "--epochs", 1, "--limit", 300, "--out", out) == 0
    assert train("ae", "--epochs", 2, "--limit", 300, "--out", out, "--resume") == 0
    _, record = common.load_model(out)
    assert record["info"]["epochs"] == 2
    assert len(record["info"]["history"]["train/loss"]) == 2


def test_patience_stops_early(tmp_path):
    out = tmp_path / "run"
    assert train("vae", "--epochs", 200, "--patience", 1, "--limit", 200, "--lr", 0.05,
                 "--out", out) == 0
    _, record = common.load_model(out)
    assert record["info"]["epochs"] < 200


# ---------------------------------------------------------------- errors
@pytest.fixture
def picture_folder(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray((rng.random((30 + 5 * i, 40, 3)) * 255).astype("uint8")).save(
            folder / f"picture{i}.png")
    return folder


ERRORS = {
    "unknown model": (["train", "transformer"], "invalid choice: 'transformer'"),
    "unknown study": (["study", "mnist-gan"], "invalid choice: 'mnist-gan'"),
    "unknown data set": (["train", "ae", "--data", "imagenet"], "unknown data set 'imagenet'"),
    "bad folder": (["train", "ae", "--data", "folder:/no/such/folder"],
                   "/no/such/folder does not exist"),
    "empty folder spec": (["train", "ae", "--data", "folder:"], "needs a path"),
    "missing data dir": (["train", "ae", "--data-dir", "/no/such/dir"],
                         "argument --data-dir: no such folder"),
    "missing study data dir": (["study", "face-vae", "--data-dir", "/no/such/dir"],
                               "argument --data-dir: no such folder"),
    "bad epochs": (["train", "ae", "--epochs", "0"], "argument --epochs"),
    "negative learning rate": (["train", "ae", "--lr", "-5"], "argument --lr: -5"),
    "NaN learning rate": (["train", "ae", "--lr", "nan"], "argument --lr: nan"),
    "negative dae noise": (["train", "dae", "--noise", "-1", "--epochs", "1", "--limit", "64"],
                           "noise_level -1.0 is out of range"),
    "unknown backend": (["demo", "--backend", "tpu"], "invalid choice: 'tpu'"),
    "gan with a loss": (["train", "gan", "--loss", "mse"], "--loss"),
    "gan with patience": (["train", "gan", "--patience", "3"], "--patience"),
    "conv cvae": (["train", "cvae", "--arch", "conv"], "--arch conv"),
    "vae with euclidean": (["train", "vae", "--loss", "euclidean"], "--loss euclidean"),
    "missing model": (["sample", "--model", "/no/such/model"], "no model file there"),
    "photo folder": (["study", "photo-vae", "--folder", "/no/such/photos"],
                     "--folder /no/such/photos"),
    "bad people": (["study", "face-vae", "--group-a", "1,77"], "numbered 0 to 39"),
    "no command": ([], "required"),
}


@pytest.mark.parametrize("argv, message", ERRORS.values(), ids=ERRORS.keys())
def test_mistakes_exit_2_with_a_clear_message(argv, message, tmp_path, capsys):
    if argv:
        argv = [*argv, "--out", tmp_path / "o"]
    assert run(*argv) == 2
    error = capsys.readouterr().err
    assert message in error
    assert "Traceback" not in error


def test_cvae_on_unlabelled_pictures(picture_folder, tmp_path, capsys):
    assert run("train", "cvae", "--data", f"folder:{picture_folder}",
               "--out", tmp_path / "o") == 2
    assert "has none" in capsys.readouterr().err


def test_dcgan_needs_sides_divisible_by_four(picture_folder, tmp_path, capsys):
    assert run("train", "gan", "--arch", "conv", "--data", f"folder:{picture_folder}",
               "--image-size", 30, "--out", tmp_path / "o") == 2
    assert "divisible by 4" in capsys.readouterr().err


def test_train_on_a_folder_of_pictures(picture_folder, tmp_path):
    out = tmp_path / "o"
    assert train("vae", "--arch", "conv", "--data", f"folder:{picture_folder}",
                 "--image-size", 16, "--epochs", 1, "--out", out) == 0
    _, record = common.load_model(out)
    assert record["image_shape"] == (1, 16, 16)


def test_label_for_an_unconditional_model(tmp_path, capsys):
    out = tmp_path / "gan"
    assert train("gan", "--epochs", 1, "--limit", 200, "--out", out) == 0
    assert run("sample", "--model", out, "--label", 2) == 2
    assert "not conditioned on labels" in capsys.readouterr().err


def test_a_training_checkpoint_is_not_a_model_file(tmp_path, capsys):
    out = tmp_path / "ae"
    assert train("ae", "--epochs", 1, "--limit", 200, "--out", out) == 0
    assert run("sample", "--model", out / "checkpoints" / "last.npz") == 2
    assert "not a model file" in capsys.readouterr().err


def test_resume_with_other_options_is_refused(tmp_path, capsys):
    out = tmp_path / "vae"
    assert train("vae", "--epochs", 1, "--limit", 200, "--out", out) == 0
    assert train("vae", "--epochs", 2, "--latent-dim", 3, "--limit", 200, "--out", out,
                 "--resume") == 2
    assert "--resume" in capsys.readouterr().err


def test_out_that_is_a_file(tmp_path, capsys):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    assert train("ae", "--epochs", 1, "--out", blocker) == 2
    assert "--out" in capsys.readouterr().err


# ---------------------------------------------------------------- progress and threads
def test_long_runs_show_one_bar_over_the_epochs(tmp_path, capsys):
    assert run("train", "ae", "--epochs", 21, "--limit", 64, "--batch-size", 64,
               "--out", tmp_path / "o") == 0
    error = capsys.readouterr().err
    assert "21/21" in error and "epoch 21/21:" not in error   # one bar, no line per epoch


def test_cupy_backend_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    from tinyae import backend
    if backend.cupy_available():
        pytest.skip("CuPy and a CUDA device are available here")
    assert run("demo", "--backend", "cupy", "--epochs", 1, "--out", tmp_path / "o") == 2
    error = capsys.readouterr().err
    assert "cupy" in error.lower() and "Traceback" not in error


# ---------------------------------------------------------------- never a traceback
def test_python_dash_m_tinyae_help_where_tinyae_backend_cannot_be_honoured():
    """TINYAE_BACKEND=cupy without CuPy or a GPU: a true warning, and --help still works."""
    from tinyae import backend
    if backend.cupy_available():
        pytest.skip("CuPy and a CUDA device are available here")
    root = pathlib.Path(__file__).resolve().parents[1]
    env = dict(os.environ, TINYAE_BACKEND="cupy")
    done = subprocess.run([sys.executable, "-m", "tinyae", "--help"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: tinyae" in done.stdout
    assert "TINYAE_BACKEND=cupy could not be honoured, so the numpy backend is active" in (
        done.stderr)
    assert "Traceback" not in done.stderr


def test_output_that_cannot_be_written_is_one_line(tmp_path, capsys, monkeypatch):
    def unwritable(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(common, "save_model", unwritable)
    assert train("ae", "--epochs", 1, "--limit", 64, "--out", tmp_path / "o") == 2
    error = capsys.readouterr().err
    assert "error: [Errno 13] Permission denied" in error and "model.npz" in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1


def test_ctrl_c_in_the_first_epoch_keeps_the_checkpoint_and_says_resume(tmp_path, capsys,
                                                                         monkeypatch):
    from tinyae.train import Trainer

    def interrupted(self, epoch_index):
        raise KeyboardInterrupt  # as Ctrl-C pressed twice: stop at once, between steps

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    out = tmp_path / "o"
    assert train("ae", "--epochs", 2, "--limit", 64, "--out", out) == 130
    error = capsys.readouterr().err
    assert "interrupted after 0 epochs" in error and "--resume" in error
    assert "resume=True" not in error and "Traceback" not in error
    assert (out / "checkpoints" / "last.npz").is_file()


def test_an_unexpected_error_is_one_line_and_tinyae_debug_shows_it(tmp_path, capsys,
                                                                    monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke")

    monkeypatch.setattr(common, "fit", broken)
    assert train("ae", "--epochs", 1, "--limit", 64, "--out", tmp_path / "o") == 1
    error = capsys.readouterr().err
    assert "internal error (RuntimeError: something inside broke)" in error
    assert "TINYAE_DEBUG=1" in error and len(error.strip().splitlines()) == 1
    monkeypatch.setenv("TINYAE_DEBUG", "1")
    with pytest.raises(RuntimeError, match="something inside broke"):
        train("ae", "--epochs", 1, "--limit", 64, "--out", tmp_path / "o")
