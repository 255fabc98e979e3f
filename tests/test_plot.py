"""Every figure renders to a PNG of the promised size, from host arrays, backend arrays or Tensors."""
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

import tinyae
from tinyae import backend, data, plot


@pytest.fixture(scope="module")
def digits():
    return data.load_digits()


def _check_png(figure, path, directory):
    """The file is a real picture of the figure's size, and no temporary file is left."""
    assert isinstance(figure, Figure)
    assert path.stat().st_size > 1000
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        width, height = figure.get_size_inches() * figure.dpi
        assert abs(picture.size[0] - width) <= 1 and abs(picture.size[1] - height) <= 1
        assert np.asarray(picture.convert("L")).std() > 5  # something was drawn
    leftovers = [p.name for p in directory.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_image_grid_from_backend_tensors(backend_name, digits, tmp_path):
    images = tinyae.tensor(digits[0][:20])
    assert images.backend == backend_name
    path = tmp_path / "grid.png"
    figure = plot.image_grid(images, nrow=8, titles=[str(v) for v in digits[1][:20]], path=path)
    _check_png(figure, path, tmp_path)
    width, height = figure.get_size_inches()  # three rows of eight (the last one short)
    assert width > 2 * height
    assert [t.get_text() for t in figure.axes[0].texts][:3] == ["0", "1", "2"]


def test_image_grid_shapes(digits, tmp_path):
    flat = digits[0][:6].reshape(6, 64)
    plot.image_grid(flat, nrow=3, image_shape=(8, 8), path=tmp_path / "flat.png")
    _check_png(plot.image_grid(digits[0][:6, 0], nrow=3), tmp_path / "flat.png", tmp_path)
    colour, _ = data.sample_photos(16, grayscale=False)
    path = tmp_path / "colour.png"
    _check_png(plot.image_grid(colour, nrow=2, path=path, dpi=50), path, tmp_path)
    with pytest.raises(ValueError, match="image_shape"):
        plot.image_grid(flat)
    with pytest.raises(ValueError, match="one title each"):
        plot.image_grid(digits[0][:3], titles=["a"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot.image_grid(digits[0][:3], path=tmp_path / "missing" / "grid.png")


def test_image_tables(digits, tmp_path):
    images, labels = digits
    by_class = {str(k): images[labels == k][:10] for k in range(10)}
    path = tmp_path / "classes.png"
    figure = plot.class_sample_grid(by_class, path=path)
    _check_png(figure, path, tmp_path)
    labels_shown = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    assert labels_shown == [str(k) for k in range(10)]
    width, height = figure.get_size_inches()
    assert height > 10 and width > height  # ten rows of 1-inch images, labels on the left

    path = tmp_path / "restored.png"
    noisy = data.gaussian_noise(images[:6], 0.3, rng=0)
    _check_png(plot.restoration_rows(images[:6], noisy, images[:6], path=path), path, tmp_path)

    path = tmp_path / "nearest.png"
    _check_png(plot.nearest_rows(images[:5], images[5:10], images[10:15], path=path),
               path, tmp_path)

    path = tmp_path / "strip.png"
    _check_png(plot.interpolation_strip([images[:8], images[8:16]], path=path), path, tmp_path)

    path = tmp_path / "arithmetic.png"
    rows = images[:8].reshape(2, 4, 1, 8, 8)
    figure = plot.arithmetic_rows(rows, ["A", "- B", "+ C", "= ?"], path=path)
    _check_png(figure, path, tmp_path)
    with pytest.raises(ValueError, match="column labels"):
        plot.arithmetic_rows(rows, ["A", "B"])

    path = tmp_path / "basis.png"
    basis = np.random.default_rng(0).standard_normal((8, 64))  # any range: each is stretched
    _check_png(plot.basis_grid(basis, nrow=4, image_shape=(8, 8), path=path), path, tmp_path)


class History:
    def as_dict(self):
        return {"train/loss": [3.0, 2.0, 1.5], "val/loss": [3.2, 2.4, None],
                "train/recon": [2.0, 1.5, 1.2], "train/kl": [1.0, 0.5, 0.3],
                "train/d": [0.7, 0.6, 0.6], "train/g": [0.7, 0.9, 1.0]}


def test_loss_curves(tmp_path):
    path = tmp_path / "loss.png"
    figure = plot.loss_curves(History(), path=path)
    _check_png(figure, path, tmp_path)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["loss", "reconstruction", "KL divergence", "discriminator", "generator"]
    assert len(figure.axes[0].get_lines()) == 2  # train and val share the loss panel

    path = tmp_path / "single.png"
    _check_png(plot.loss_curves({"loss": np.linspace(2, 1, 50)}, path=path), path, tmp_path)
    with pytest.raises(ValueError, match="non-empty dict"):
        plot.loss_curves({})


def test_scatter_plots(backend_name, tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 300)
    codes = rng.standard_normal((300, 2)) + labels[:, None]
    path = tmp_path / "latent.png"
    figure = plot.latent_scatter(backend.to_backend(codes), labels, codes[:30] + 0.1, labels[:30],
                                 path=path)
    _check_png(figure, path, tmp_path)
    with pytest.raises(ValueError, match="two dimensions"):
        plot.latent_scatter(rng.standard_normal((10, 3)), labels[:10])
    with pytest.raises(ValueError, match="must match"):
        plot.latent_scatter(codes, labels[:10])

    path = tmp_path / "projection.png"
    classes = [f"digit {k}" for k in range(10)]
    _check_png(plot.pca_projection(codes, labels, classes=classes, path=path), path, tmp_path)

    path = tmp_path / "many.png"  # 40 people: colours from a continuous map, no legend
    _check_png(plot.pca_projection(codes, labels * 4 % 40 + labels % 4, path=path), path, tmp_path)

    path = tmp_path / "eigenvalues.png"
    eigenvalues = np.sort(rng.random(50))[::-1] ** 3
    figure = plot.pca_eigenvalues(eigenvalues, path=path)
    _check_png(figure, path, tmp_path)
    explained = figure.axes[1].get_lines()[0].get_ydata()
    assert explained[-1] == pytest.approx(1.0)
    partial = plot.pca_eigenvalues(eigenvalues[:10], total_variance=eigenvalues.sum())
    assert partial.axes[1].get_lines()[0].get_ydata()[-1] < 1.0


def test_bar_chart_draws_one_bar_per_group_and_category(tmp_path):
    path = tmp_path / "classes.png"
    shares = [np.full(10, 0.1), np.eye(10)[3]]
    figure = plot.bar_chart(["test images", "GAN"], shares, range(10), path=path,
                            ylabel="fraction of images", title="classes")
    ax = figure.axes[0]
    heights = sorted(round(patch.get_height(), 6) for patch in ax.patches)
    assert len(ax.patches) == 20 and heights[-1] == 1.0 and heights.count(0.1) == 10
    assert [label.get_text() for label in ax.get_xticklabels()] == [str(c) for c in range(10)]
    assert path.is_file() and not list(tmp_path.glob(".*"))
