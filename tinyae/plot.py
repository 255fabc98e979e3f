"""Figures for the studies: image grids, loss curves, latent spaces, PCA, restorations.

Every function takes host arrays, backend (CuPy) arrays or Tensors, returns the
matplotlib ``Figure``, and with ``path=`` also saves it (atomically, as PNG or
whatever the extension names)::

    fig = image_grid(samples, nrow=8, path="samples.png")
    loss_curves(trainer.history, path="loss.png")

Figures are built with ``matplotlib.figure.Figure`` directly rather than through
``pyplot``: they are drawn by the headless Agg renderer whatever backend the
user has chosen, pyplot never holds a reference to them (nothing to close, no
leak in a long training loop), and the user's own pyplot state is left alone.
In a notebook the returned Figure displays itself.

Images may be given as (N, 1, H, W) (grayscale), (N, 3, H, W) (RGB), (N, H, W),
or flat rows (N, D) together with ``image_shape=(H, W)`` or ``(C, H, W)``.
Pixel values are shown on the scale [0, 1] (clipped) unless ``normalize=True``
stretches each image to its own minimum and maximum.
"""
import importlib
import math

import numpy as np

from . import backend


class _ImportedOnFirstUse:
    """A matplotlib name, imported when first called or indexed: ``import tinyae`` (and
    ``import tinyae.plot``) never loads matplotlib, and autodiff runs without it."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def _load(self):
        return getattr(importlib.import_module(self.module), self.name)

    def __call__(self, *args, **kwargs):
        return self._load()(*args, **kwargs)

    def __getitem__(self, key):
        return self._load()[key]


colormaps = _ImportedOnFirstUse("matplotlib", "colormaps")
Figure = _ImportedOnFirstUse("matplotlib.figure", "Figure")
MaxNLocator = _ImportedOnFirstUse("matplotlib.ticker", "MaxNLocator")
from .io import atomic_path

CELL_INCHES = 1.0   # the side of one image in an image table
DPI = 100

# Panel titles for the usual loss components; other names are shown as they are.
COMPONENT_TITLES = {"loss": "loss", "recon": "reconstruction", "kl": "KL divergence",
                    "d": "discriminator", "g": "generator"}


# ---------------------------------------------------------------------------
# Shared helpers

def _to_host(values):
    """A NumPy array holding ``values`` (a Tensor, a CuPy or NumPy array, or a list)."""
    return backend.to_numpy(values)


def _as_images(images, image_shape=None):
    """Images as a host array (N, H, W) for grayscale or (N, H, W, 3) for RGB."""
    images = _to_host(images).astype(np.float64)
    if image_shape is not None:
        images = images.reshape((images.shape[0],) + tuple(image_shape))
    if images.ndim == 2:
        raise ValueError(
            f"images of shape {images.shape} are flat rows; pass image_shape=(H, W) or "
            "(C, H, W), e.g. image_shape=(28, 28) for MNIST.")
    if images.ndim == 4 and images.shape[1] == 1:
        return images[:, 0]
    if images.ndim == 4 and images.shape[1] == 3:
        return images.transpose(0, 2, 3, 1)
    if images.ndim == 3:
        return images
    raise ValueError(
        f"cannot show images of shape {images.shape}: expected (N, 1, H, W), (N, 3, H, W), "
        "(N, H, W), or (N, D) with image_shape.")


def _display_range(image, normalize):
    """``image`` mapped onto [0, 1]: stretched to its own range, or clipped."""
    if normalize:
        low, high = image.min(), image.max()
        return (image - low) / (high - low) if high > low else np.full_like(image, 0.5)
    return np.clip(image, 0.0, 1.0)


def _finish(figure, path, dpi):
    """Save ``figure`` to ``path`` atomically when a path is given; return the figure."""
    if path is not None:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, dpi=dpi)
    return figure


def _mosaic(rows, normalize, title_band):
    """The images of ``rows`` pasted into one canvas, with a white gap between cells.

    Returns the canvas and the (top, left) corner of every cell. Like torchvision's
    ``make_grid``: one picture drawn once is much faster than one axes per image.
    """
    height, width = rows[0][0].shape[:2]
    colour = any(image.ndim == 3 for row in rows for image in row)
    gap = max(1, round(0.06 * height))
    n_cols = max(len(row) for row in rows)
    cell_height, cell_width = title_band + height + gap, width + gap
    canvas = np.ones((len(rows) * cell_height + gap, n_cols * cell_width + gap)
                     + ((3,) if colour else ()))
    corners = []
    for r, row in enumerate(rows):
        for c, image in enumerate(row):
            if image.shape[:2] != (height, width):
                raise ValueError(
                    f"all images in one figure must share a size: found {image.shape[:2]} "
                    f"beside {(height, width)}.")
            image = _display_range(image, normalize)
            if colour and image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            top, left = gap + r * cell_height + title_band, gap + c * cell_width
            canvas[top:top + height, left:left + width] = image
            corners.append((r, c, top, left))
    return canvas, corners


def _image_table(rows, row_labels=None, col_labels=None, titles=None, normalize=False,
                 cell=CELL_INCHES, dpi=DPI):
    """A figure of images in rows; ``rows`` is a list of lists of images.

    Rows may have different lengths (missing cells stay blank). ``titles`` is a
    list of lists like ``rows`` (a small title above each image); ``row_labels``
    go left of each row and ``col_labels`` above each column.
    """
    height, width = rows[0][0].shape[:2]
    title_band = int(np.ceil(0.2 * height)) if titles is not None else 0
    canvas, corners = _mosaic(rows, normalize, title_band)

    # Size the figure to the canvas (``cell`` inches per image) plus margins for
    # the labels, and place the one axes by hand: no layout engine to second-guess.
    inches_per_pixel = cell / height
    content_width = canvas.shape[1] * inches_per_pixel
    content_height = canvas.shape[0] * inches_per_pixel
    left_margin = 1.3 if row_labels is not None else 0.05
    top_margin = 0.3 if col_labels is not None else 0.05
    margin = 0.05
    figure_width = left_margin + content_width + margin
    figure_height = top_margin + content_height + margin
    figure = Figure(figsize=(figure_width, figure_height), dpi=dpi)
    ax = figure.add_axes((left_margin / figure_width, margin / figure_height,
                          content_width / figure_width, content_height / figure_height))
    ax.imshow(canvas, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0, labeltop=True, labelbottom=False)

    # pixel (i, j) of the canvas is drawn centred on (j, i)
    row_centres = sorted({cell_top + height / 2 - 0.5 for _, _, cell_top, _ in corners})
    column_centres = sorted({cell_left + width / 2 - 0.5 for _, _, _, cell_left in corners})
    if row_labels is not None:
        ax.set_yticks(row_centres[:len(row_labels)], [str(v) for v in row_labels], fontsize=9)
    else:
        ax.set_yticks([])
    if col_labels is not None:
        ax.set_xticks(column_centres[:len(col_labels)], [str(v) for v in col_labels], fontsize=9)
    else:
        ax.set_xticks([])
    if titles is not None:
        for r, c, cell_top, cell_left in corners:
            if c < len(titles[r]) and titles[r][c] is not None:
                ax.text(cell_left + width / 2 - 0.5, cell_top - 1, str(titles[r][c]),
                        fontsize=8, ha="center", va="bottom")
    return figure


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


def _class_colors(count):
    """``count`` distinguishable colours: tab10 or tab20, else samples of turbo."""
    if count <= 10:
        return [colormaps["tab10"](i) for i in range(count)]
    if count <= 20:
        return [colormaps["tab20"](i) for i in range(count)]
    return [colormaps["turbo"](i / max(count - 1, 1)) for i in range(count)]


def _scatter_by_label(ax, points, labels, classes=None, marker=".", size=6, legend=True,
                      edge=None):
    """Scatter 2-D ``points`` with one colour per label value; ``classes`` names the labels."""
    points = _to_host(points)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(
            f"points of shape {points.shape}: expected (N, 2). Project higher-dimensional "
            "codes to two dimensions first (e.g. with PCA).")
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=size, marker=marker, color="tab:blue",
                   edgecolors=edge, linewidths=0.5)
        return
    labels = _to_host(labels).reshape(-1)
    if len(labels) != len(points):
        raise ValueError(f"{len(points)} points but {len(labels)} labels; they must match.")
    values = np.unique(labels)
    colors = _class_colors(len(values))
    for value, color in zip(values, colors):
        chosen = labels == value
        name = classes[int(value)] if classes is not None else value
        ax.scatter(points[chosen, 0], points[chosen, 1], s=size, marker=marker, color=color,
                   edgecolors=edge, linewidths=0.5,
                   label=str(name) if legend else None)


# ---------------------------------------------------------------------------
# Image figures

def image_grid(images, nrow=8, titles=None, path=None, image_shape=None, normalize=False,
               dpi=DPI):
    """Images in a grid with ``nrow`` images per row (torchvision's ``make_grid`` meaning).

    titles: one short title per image (optional).

    Example::

        image_grid(model.sample(64), nrow=8, path="samples.png")
    """
    images = _as_images(images, image_shape)
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(images)} images but {len(titles)} titles; give one title each.")
    rows = _chunks(list(images), nrow)
    row_titles = _chunks(list(titles), nrow) if titles is not None else None
    figure = _image_table(rows, titles=row_titles, normalize=normalize, dpi=dpi)
    return _finish(figure, path, dpi)


def interpolation_strip(images, path=None, image_shape=None, row_labels=None, dpi=DPI):
    """Decoded points along a path in latent space, left to right.

    images: one strip (steps, ...) or a list of strips (one row each).
    """
    strips = images if isinstance(images, (list, tuple)) else [images]
    rows = [list(_as_images(strip, image_shape)) for strip in strips]
    figure = _image_table(rows, row_labels=row_labels, dpi=dpi)
    return _finish(figure, path, dpi)


def class_sample_grid(samples_by_class, path=None, classes=None, image_shape=None, dpi=DPI):
    """One row of samples per class (e.g. 10 x 10 for the ten digits).

    samples_by_class: an array (K, M, ...) of M samples for each of K classes, a
        list of K batches, or a dict class name -> batch.
    classes: row labels (default: the dict keys, else 0..K-1).
    """
    if isinstance(samples_by_class, dict):
        classes = list(samples_by_class) if classes is None else classes
        batches = list(samples_by_class.values())
    else:
        batches = list(samples_by_class)
    classes = list(range(len(batches))) if classes is None else classes
    if len(classes) != len(batches):
        raise ValueError(f"{len(batches)} classes of samples but {len(classes)} class names.")
    rows = [list(_as_images(batch, image_shape)) for batch in batches]
    figure = _image_table(rows, row_labels=classes, dpi=dpi)
    return _finish(figure, path, dpi)


def basis_grid(decoded_basis, nrow=8, path=None, image_shape=None, titles=None, dpi=DPI):
    """Basis images (PCA components, decoded unit codes), each stretched to its own range.

    Example::

        basis_grid(pca.components_, image_shape=(28, 28), path="eigendigits.png")
    """
    images = _as_images(decoded_basis, image_shape)
    if titles is None:
        titles = [str(i) for i in range(len(images))]
    return image_grid(images, nrow=nrow, titles=titles, path=path, normalize=True, dpi=dpi)


def restoration_rows(original, corrupted, restored, path=None, image_shape=None,
                     row_labels=("original", "corrupted", "restored"), dpi=DPI):
    """Three rows for denoising and inpainting: the originals, their corruption, the repair."""
    rows = [list(_as_images(batch, image_shape)) for batch in (original, corrupted, restored)]
    figure = _image_table(rows, row_labels=row_labels, dpi=dpi)
    return _finish(figure, path, dpi)


def nearest_rows(generated, nearest_reconstruction, nearest_original, path=None,
                 image_shape=None,
                 row_labels=("generated", "nearest\nreconstruction", "its original"), dpi=DPI):
    """Generated samples above their nearest training reconstructions and those originals.

    A check for memorising: a sample identical to its neighbour was copied, not generated.
    """
    batches = (generated, nearest_reconstruction, nearest_original)
    rows = [list(_as_images(batch, image_shape)) for batch in batches]
    figure = _image_table(rows, row_labels=row_labels, dpi=dpi)
    return _finish(figure, path, dpi)


def arithmetic_rows(rows, labels, path=None, image_shape=None, row_labels=None, dpi=DPI):
    """Latent arithmetic, one equation per row, e.g. ``A - B + C = result``.

    rows: a list of rows (each a batch of images), or an array (R, K, ...).
    labels: the K column headings, e.g. ["smiling woman", "- neutral woman",
        "+ neutral man", "= ?"].
    """
    image_rows = [list(_as_images(row, image_shape)) for row in rows]
    width = max(len(row) for row in image_rows)
    if len(labels) != width:
        raise ValueError(f"rows of {width} images but {len(labels)} column labels.")
    figure = _image_table(image_rows, col_labels=labels, row_labels=row_labels, dpi=dpi)
    return _finish(figure, path, dpi)


# ---------------------------------------------------------------------------
# Curves and scatter plots

def _history_dict(history):
    """``history`` as a dict name -> list of per-epoch numbers."""
    if hasattr(history, "as_dict"):
        history = history.as_dict()
    if not isinstance(history, dict) or not history:
        raise ValueError(
            "history must be a non-empty dict like {'train/loss': [...], 'val/loss': [...]} "
            "or an object with .as_dict().")
    return history


def _as_float(value):
    if value is None:
        return math.nan
    return float(_to_host(value))


def loss_curves(history, path=None, dpi=DPI):
    """One panel per loss component, one line per split, against the epoch.

    history: {"train/loss": [...], "val/loss": [...], "train/kl": [...], ...}, or an
        object with ``.as_dict()``. Keys "split/component" share a panel per
        component; keys without "/" get their own panel.

    Example::

        loss_curves({"train/loss": [3.1, 2.4], "val/loss": [3.3, 2.6]}, path="loss.png")
    """
    history = _history_dict(history)
    panels = {}  # component -> [(split, values)], in the order the keys first appear
    for key, values in history.items():
        split, _, component = key.rpartition("/")
        panels.setdefault(component, []).append((split or component, values))

    n_cols = min(len(panels), 3)
    n_rows = math.ceil(len(panels) / n_cols)
    figure = Figure(figsize=(4.0 * n_cols, 3.0 * n_rows), dpi=dpi, layout="constrained")
    axes = figure.subplots(n_rows, n_cols, squeeze=False)
    for ax, (component, lines) in zip(axes.flat, panels.items()):
        for split, values in lines:
            values = [_as_float(v) for v in values]
            epochs = np.arange(1, len(values) + 1)
            ax.plot(epochs, values, marker="." if len(values) < 30 else None, label=split)
        ax.set_title(COMPONENT_TITLES.get(component, component))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    return _finish(figure, path, dpi)


def latent_scatter(codes_2d, labels=None, test_codes=None, test_labels=None, path=None,
                   classes=None, dpi=DPI):
    """Two-dimensional codes coloured by class; test codes drawn larger with black edges.

    Example::

        latent_scatter(encoder(x_train), y_train, encoder(x_test), y_test, path="latent.png")
    """
    figure = Figure(figsize=(6.0, 5.0), dpi=dpi, layout="constrained")
    ax = figure.subplots()
    _scatter_by_label(ax, codes_2d, labels, classes, size=4)
    if test_codes is not None:
        _scatter_by_label(ax, test_codes, test_labels, classes, marker="o", size=18,
                          edge="black", legend=False)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    if labels is not None and len(np.unique(_to_host(labels))) <= 20:
        ax.legend(fontsize=8, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _finish(figure, path, dpi)


def pca_eigenvalues(eigenvalues, total_variance=None, path=None, dpi=DPI):
    """The PCA spectrum (log scale) and the cumulative fraction of variance explained.

    The second panel answers "how many components keep 90% of the variance?".
    total_variance: the data's total variance (the trace of its covariance), needed
        when ``eigenvalues`` holds only the leading ones; default: their sum.
    """
    eigenvalues = _to_host(eigenvalues).astype(np.float64).reshape(-1)
    if eigenvalues.size == 0:
        raise ValueError("pca_eigenvalues needs at least one eigenvalue.")
    index = np.arange(1, eigenvalues.size + 1)
    total = eigenvalues.sum() if total_variance is None else float(total_variance)
    explained = np.cumsum(eigenvalues) / total
    figure = Figure(figsize=(10.0, 4.0), dpi=dpi, layout="constrained")
    spectrum, cumulative = figure.subplots(1, 2)
    positive = eigenvalues > 0  # a log axis cannot show zeros left by rounding
    spectrum.plot(index[positive], eigenvalues[positive])
    spectrum.set_yscale("log")
    spectrum.set_xlabel("component")
    spectrum.set_ylabel("eigenvalue (variance)")
    spectrum.set_title("spectrum")
    cumulative.plot(index, explained)
    cumulative.axhline(0.9, color="gray", linestyle="--", linewidth=0.8)
    cumulative.set_ylim(0.0, 1.02)
    cumulative.set_xlabel("number of components")
    cumulative.set_ylabel("fraction of variance explained")
    cumulative.set_title("cumulative")
    for ax in (spectrum, cumulative):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish(figure, path, dpi)


def pca_projection(points_2d, labels=None, classes=None, path=None, dpi=DPI):
    """Data projected on the first two principal components, coloured by class."""
    figure = Figure(figsize=(6.0, 5.0), dpi=dpi, layout="constrained")
    ax = figure.subplots()
    _scatter_by_label(ax, points_2d, labels, classes, size=4)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    if labels is not None and len(np.unique(_to_host(labels))) <= 20:
        ax.legend(fontsize=8, markerscale=3, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return _finish(figure, path, dpi)


def bar_chart(groups, values, categories, path=None, ylabel="fraction", title=None, dpi=DPI):
    """Grouped bars: ``values[g][c]`` for each group g (one colour each) and category c.

    Used for the class distributions of generated samples.

    Example::

        bar_chart(["test images", "GAN"], [test_shares, gan_shares], range(10),
                  path="classes.png", ylabel="fraction of images")
    """
    from matplotlib.figure import Figure
    figure = Figure(figsize=(8.0, 3.5), dpi=dpi, layout="constrained")
    ax = figure.subplots()
    width = 0.8 / len(groups)
    positions = np.arange(len(categories))
    for i, (group, row) in enumerate(zip(groups, values)):
        ax.bar(positions + (i - (len(groups) - 1) / 2) * width, _to_host(row), width,
               label=group)
    ax.set_xticks(positions, [str(c) for c in categories])
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _finish(figure, path, dpi)
