"""Every study runs with --quick on the real data and draws its figures; settings behave."""
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


@pytest.mark.parametrize("name", ["autoencoder-gmm", "denoise-inpaint", "gan-vs-vae",
                                  "face-vae"])
def test_quick_study_on_the_real_data(name, data_dir, tmp_path, capsys):
    out = tmp_path / name
    assert cli.main(["study", name, "--quick", "--data-dir", str(data_dir), "--out", str(out),
                     "--quiet"]) == 0
    assert str(out.resolve()) in capsys.readouterr().out.splitlines()[-1]
    check_outputs(name, out)


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


def test_quick_settings_are_the_full_ones_made_small():
    for name, module in studies.STUDIES.items():
        assert set(module.QUICK) == set(module.FULL), name
        full = studies.settings_for(name)
        quick = studies.settings_for(name, quick=True, epochs=3, seed=None)
        assert quick["epochs"] == 3 and quick["seed"] == full["seed"]  # None keeps defaults
        assert quick["quick"] and not full["quick"]
        if full.get("limit") is not None or quick.get("limit") is not None:
            assert quick["limit"] is not None


def test_studies_run_from_python(data_dir, tmp_path):
    with cli.limited_threads(1):
        outputs = studies.run("face-vae", tmp_path / "faces", quick=True, data_dir=data_dir,
                              progress=False, limit=60, latent_dim=8, group_a=(1,),
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
                     "--limit", "500", "--data-dir", str(data_dir), "--out", str(tmp_path),
                     "--quiet"]) == 0
    summary = (tmp_path / "summary.txt").read_text()
    assert "[512, 256, 128, 64, 32, 64, 128, 256, 512]" in summary
    assert "batch_norm=True" in summary
