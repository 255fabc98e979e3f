"""Every study runs on the real data and draws its figures; --quick shows each study's point;
settings behave."""
import re

import numpy as np
import pytest
from PIL import Image

from tinyae import cli, studies
from tinyae.studies import common, photo_vae

FIGURES = {
    "autoencoder-gmm": ["loss_curves.png", "reconstructions.png", "gaussian_samples.png",
                        "mixture_samples.png", "originality.png", "decoded_basis.png",
                        "class_mean_interpolation.png", "pca_eigenvalues.png",
                        "pca_projection.png"],
    "denoise-inpaint": ["denoising.png", "vae_latent_2d.png", "vae_manifold_2d.png",
                        "cvae_label_samples.png", "inpainting.png",
                        "losses/denoising_autoencoder.png", "losses/vae_2d.png",
                        "losses/vae.png", "losses/cvae_label.png",
                        "losses/cvae_image_bce.png", "losses/cvae_image_mse.png"],
    "gan-vs-vae": ["gan_samples.png", "vae_samples.png", "class_distribution.png",
                   "nearest_neighbours.png", "losses/gan.png", "losses/vae.png",
                   "losses/classifier.png"],
    "face-vae": ["loss_curves.png", "reconstructions.png", "samples.png",
                 "attribute_arithmetic.png", "morph.png"],
    "photo-vae": ["loss_curves.png", "reconstructions.png", "samples.png", "morph.png",
                  "samples/samples_epoch001.png", "samples/samples_epoch002.png",
                  "reconstructions/reconstructions_epoch002.png"],
}


def check_png(path):
    assert path.is_file(), f"{path.name} was not written"
    with Image.open(path) as picture:
        assert picture.format == "PNG" and min(picture.size) > 50
        assert np.asarray(picture.convert("L")).std() > 5


def check_outputs(name, out):
    for figure in FIGURES[name]:
        check_png(out / figure)
    summary = (out / "summary.txt").read_text()
    assert f"study: {name}" in summary and "--quick" in summary
    for figure in FIGURES[name]:
        assert figure.split("/")[0] in summary
    assert not list(out.rglob(".*")), "a temporary file was left behind"


# A smoke run of each study (a few hundred images, one epoch): every figure is drawn and
# every summary number is written. The --quick runs below check that the numbers show the
# study's point; they take about a minute each and are marked slow.
SMOKE = {
    "autoencoder-gmm": ["--limit", "300", "--epochs", "1"],
    "denoise-inpaint": ["--limit", "300", "--epochs", "1"],
    "gan-vs-vae": ["--limit", "300", "--epochs", "1", "--n-samples", "50"],
    "face-vae": ["--limit", "60", "--epochs", "1", "--latent-dim", "8", "--group-a", "1",
                 "--group-b", "0,2"],
}
SUMMARY_NUMBERS = {
    "autoencoder-gmm": r"samples of the requested digit .*: (\d+)% from the Gaussians, (\d+)% "
                       r"from the mixtures",
    "denoise-inpaint": r"denoising: mean squared error per pixel ([\d.]+) noisy -> ([\d.]+) "
                       r"denoised",
    "gan-vs-vae": r"\n  VAE +([\d.]+) +([\d.]+) +([\d.]+)",
    "face-vae": r"reconstruction: mean squared error per pixel ([\d.]+); the mean face, the "
                r"same for every picture, scores ([\d.]+)",
}


def run_study(name, data_dir, out, extra=()):
    assert cli.main(["study", name, "--quick", "--data-dir", str(data_dir), "--out", str(out),
                     "--quiet", *extra]) == 0
    check_outputs(name, out)
    summary = (out / "summary.txt").read_text()
    found = re.search(SUMMARY_NUMBERS[name], summary)
    assert found, f"{name}: no {SUMMARY_NUMBERS[name]!r} in\n{summary}"
    return [float(value) for value in found.groups()]


@pytest.mark.parametrize("name", sorted(SMOKE))
def test_smoke_study_on_the_real_data(name, data_dir, tmp_path, capsys):
    out = tmp_path / name
    run_study(name, data_dir, out, SMOKE[name])
    assert str(out.resolve()) in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.slow
def test_quick_autoencoder_gmm_samples_the_requested_digits(data_dir, tmp_path):
    gaussian, mixture = run_study("autoencoder-gmm", data_dir, tmp_path)
    assert gaussian >= 50 and mixture >= 50  # chance is 10%


@pytest.mark.slow
def test_quick_denoiser_beats_the_noisy_input(data_dir, tmp_path):
    noisy, denoised = run_study("denoise-inpaint", data_dir, tmp_path)
    assert denoised < 0.8 * noisy  # measured: 0.0465 -> 0.0300


@pytest.mark.slow
def test_quick_gan_vs_vae_draws_digits(data_dir, tmp_path):
    entropy, confidence, _ = run_study("gan-vs-vae", data_dir, tmp_path)
    # VAE samples: many classes (uniform: 3.32 bits), read as digits; measured 3.27 and 0.62
    assert entropy > 2.5 and confidence > 0.45


@pytest.mark.slow
def test_quick_face_vae_tells_faces_apart(data_dir, tmp_path):
    error, mean_face_error = run_study("face-vae", data_dir, tmp_path)
    assert error < 0.8 * mean_face_error


@pytest.fixture
def photo_folder(tmp_path):
    """A few pictures of different sizes and shapes, in colour, as a camera folder would be."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i, (height, width) in enumerate([(120, 160), (200, 150), (90, 90), (300, 240)]):
        y, x = np.mgrid[0:height, 0:width]
        picture = np.stack([(x * (i + 1)) % 256, (y * 2) % 256,
                            rng.integers(0, 256, (height, width))], axis=-1)
        Image.fromarray(picture.astype("uint8")).save(folder / f"photo{i}.jpg")
    (folder / "notes.txt").write_text("not a picture")
    return folder


def test_quick_photo_study_on_a_folder(photo_folder, tmp_path):
    out = tmp_path / "photos-out"
    assert cli.main(["study", "photo-vae", "--quick", "--folder", str(photo_folder),
                     "--size", "100", "--out", str(out), "--quiet"]) == 0
    check_outputs("photo-vae", out)
    summary = (out / "summary.txt").read_text()
    assert "4 training" in summary and "100x100" in summary


def test_photo_study_defaults_to_the_sample_photos():
    dataset = photo_vae.load_photos(None, size=100, limit=None, seed=0)
    assert dataset.x_train.shape[1:] == (1, 100, 100) and len(dataset.x_train) >= 2
    assert "sample_photos" in dataset.note
    said = " ".join(photo_vae.photo_source_lines(None, dataset))
    assert "no --folder given" in said and "--folder PATH" in said
    if len(dataset.x_train) < 10:
        assert "validation loss is measured on the training photos" in said


def test_photo_study_on_a_folder_does_not_warn_about_sample_photos(photo_folder):
    dataset = photo_vae.load_photos(photo_folder, size=32, limit=None, seed=0)
    said = " ".join(photo_vae.photo_source_lines(photo_folder, dataset))
    assert "no --folder" not in said and "training photos" in said  # 4 photos: no held-out part


def test_quick_settings_are_the_full_ones_made_small():
    for name, module in studies.STUDIES.items():
        assert set(module.QUICK) == set(module.FULL), name
        full = studies.settings_for(name)
        quick = studies.settings_for(name, quick=True, epochs=3, seed=None)
        assert quick["epochs"] == 3 and quick["seed"] == full["seed"]  # None keeps defaults
        assert quick["quick"] and not full["quick"]
        assert "CPU time" in module.QUICK_NOTE or "smoke" in module.QUICK_NOTE, name
        if full.get("limit") is not None or quick.get("limit") is not None:
            assert quick["limit"] is not None


def test_studies_run_from_python(data_dir, tmp_path):
    # train() limits the threads itself (tinyae.runtime), as the command line does
    outputs = studies.run("face-vae", tmp_path / "faces", quick=True, data_dir=data_dir,
                          progress=False, limit=60, epochs=1, latent_dim=8, group_a=(1,),
                          group_b=(0, 2))
    names = {path.name for path in outputs.files}
    assert {"attribute_arithmetic.png", "morph.png", "summary.txt"} <= names
    assert "people [1] minus that of people [0, 2]" in (tmp_path / "faces" /
                                                        "summary.txt").read_text()


def test_unknown_study_from_python(tmp_path):
    with pytest.raises(common.UsageError, match="unknown study"):
        studies.run("vae-gan", tmp_path)


def test_face_groups_must_be_among_the_people_used(data_dir, tmp_path, capsys):
    assert cli.main(["study", "face-vae", "--quick", "--limit", "20", "--group-a", "30",
                     "--data-dir", str(data_dir), "--out", str(tmp_path), "--quiet"]) == 2
    assert "each group needs" in capsys.readouterr().err


def test_autoencoder_study_takes_the_nine_layer_stack_with_batch_norm(data_dir, tmp_path):
    assert cli.main(["study", "autoencoder-gmm", "--quick", "--layers", "9", "--batch-norm",
                     "--limit", "500", "--epochs", "1", "--data-dir", str(data_dir),
                     "--out", str(tmp_path), "--quiet"]) == 0
    summary = (tmp_path / "summary.txt").read_text()
    assert "[512, 256, 128, 64, 32, 64, 128, 256, 512]" in summary
    assert "batch_norm=True" in summary
