"""Data sets, batching and corruptions.

Every loader returns host NumPy arrays in the layout the layers expect,
``(N, C, H, W)`` float32 in [0, 1], plus integer labels (int64)::

    images, labels = load_mnist("/data", split="train")    # (60000, 1, 28, 28)
    faces, people = load_olivetti_faces("/data")           # (400, 1, 64, 64)
    digits, labels = load_digits()                         # (1797, 1, 8, 8), no files needed
    photos, names = image_folder("holiday/", size=64)      # any folder of pictures
    dataset = load_dataset("mnist", limit=10000)           # by name, with a validation part

``batches`` moves one batch at a time to the active backend (NumPy or CuPy), so a
data set stays in host memory and only the batch in use sits on the GPU::

    for x, y in batches(images, labels, batch_size=128, rng=0):
        loss = model.loss(tinyae.tensor(x))

The corruptions (noise, masks) used by the denoising and inpainting studies work
on host or backend arrays alike. Their random draws come from a NumPy
``Generator`` on the host, so one seed gives the same corruption on every backend.

Where the data files live: an argument ``root``, else the environment variable
``TINYAE_DATA``, else the cache directory ``~/.cache/tinyae``. The data files are
never part of the repository.
"""
import dataclasses
import functools
import gzip
import hashlib
import os
import pathlib
import urllib.request
import warnings
import zlib

import numpy as np

from . import backend
from . import functional as F
from .autograd import Tensor
from .errors import UsageError
from .io import atomic_write_bytes


class DataError(ValueError):
    """A data file is damaged, has the wrong checksum, or is not what was expected."""


class DataNotFoundError(DataError, FileNotFoundError):
    """The data files are not where they were looked for."""


_generator = backend.as_generator  # None (fresh entropy), an int seed, or a Generator


def _check_array(x, name="x"):
    """Refuse Tensors here: these functions work on raw host or backend arrays."""
    if isinstance(x, Tensor):
        raise TypeError(
            f"{name} is a tinyae Tensor; data functions work on arrays. "
            f"Pass {name}.data (or corrupt the batch before wrapping it in a Tensor).")
    return x


# ---------------------------------------------------------------------------
# Where the files are

def cache_dir():
    """The directory tinyae downloads into: $XDG_CACHE_HOME/tinyae or ~/.cache/tinyae."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "tinyae"


def _candidate_dirs(root, subdir):
    """Where to look: ``root/subdir`` then ``root``; without a root the same under
    $TINYAE_DATA; without either, the cache directory."""
    if root is not None:
        root = pathlib.Path(root).expanduser()
        if not root.is_dir():
            raise DataNotFoundError(f"the data directory {root} does not exist.")
        return [root / subdir, root]
    environment = os.environ.get("TINYAE_DATA")
    if environment:
        root = pathlib.Path(environment).expanduser()
        return [root / subdir, root]
    return [cache_dir() / subdir]


def _find_file(directories, stem):
    """The first existing ``stem.gz`` or ``stem`` in ``directories``, else None."""
    for directory in directories:
        for name in (stem + ".gz", stem):
            if (directory / name).is_file():
                return directory / name
    return None


def _take(array, index):
    """``array[index]`` for host index arrays, on whichever backend holds ``array``."""
    return array[backend.get_array_module(array).asarray(index)]


# ---------------------------------------------------------------------------
# MNIST

# file stem -> (md5 of the uncompressed IDX file, md5 of the mirrors' .gz archive)
MNIST_FILES = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", "ec29112dd5afa0611ce80d1b7f02629c"),
}
MNIST_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# IDX type codes (the third byte of the magic number) -> NumPy big-endian dtypes
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _missing_mnist_message(stems, directories):
    """Which files are missing, where they were looked for, and how to provide them."""
    names = " and ".join(stem + ".gz" for stem in stems)
    places = " or ".join(str(d) for d in directories)
    return (
        f"MNIST files not found: {names} (or the same names without .gz) "
        f"were looked for in {places}. Place them in one of these "
        "directories, pass load_mnist(root=...) naming the directory that holds them "
        "(or its parent holding mnist/), or set the environment variable TINYAE_DATA "
        "to a directory holding mnist/. With internet access, load_mnist(download=True) "
        f"fetches them into {directories[0]}.")


def read_idx(path, expected_md5=None):
    """The array stored in the IDX file at ``path`` (``.gz`` or raw), in host memory.

    IDX layout: a 4-byte magic number ``0 0 type ndim``, then ``ndim`` big-endian
    int32 sizes, then the values in C order. ``expected_md5`` is checked against the
    uncompressed bytes.
    """
    path = pathlib.Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(
                f"{path} is not a complete gzip archive ({exc}). It was probably cut "
                "short while copying or downloading: delete it and place a fresh copy.") from None
    if expected_md5 is not None:
        actual = hashlib.md5(raw).hexdigest()
        if actual != expected_md5:
            raise DataError(
                f"{path}: the md5 of its uncompressed bytes is {actual}, but the published "
                f"checksum is {expected_md5}. The file is damaged or is a different file: "
                "replace it with a fresh copy (or pass verify=False to skip this check).")
    return _parse_idx(raw, path)


def _parse_idx(raw, path):
    """Check the IDX header of the bytes ``raw`` against their length; return the array."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(
            f"{path} is not an IDX file: its first 4 bytes are {raw[:4].hex()}, expected "
            "00 00 <type> <ndim> (e.g. 00000803 for images, 00000801 for labels).")
    ndim = raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: the IDX header promises {ndim} sizes but the file ends first.")
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected_size = header_size + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected_size:
        raise DataError(
            f"{path}: the IDX header says shape {shape} ({expected_size} bytes in all), "
            f"but the file holds {len(raw)} bytes. It is truncated or damaged: replace it.")
    values = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    return values.astype(dtype.newbyteorder("="))  # a writable copy in native byte order


def _download_mnist(stems, directory):
    """Fetch the ``.gz`` files for ``stems`` into ``directory``; check each archive's md5."""
    directory.mkdir(parents=True, exist_ok=True)
    for stem in stems:
        target = directory / (stem + ".gz")
        archive_md5 = MNIST_FILES[stem][1]
        failures = []
        for mirror in MNIST_MIRRORS:
            url = mirror + stem + ".gz"
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    payload = response.read()
            except OSError as exc:  # URLError, timeouts and refused connections
                failures.append(f"{url}: {exc}")
                continue
            if hashlib.md5(payload).hexdigest() != archive_md5:
                failures.append(f"{url}: md5 mismatch (expected {archive_md5})")
                continue
            atomic_write_bytes(target, payload)
            break
        else:
            raise DataNotFoundError(
                f"could not download {stem}.gz from any mirror:\n  " + "\n  ".join(failures)
                + f"\nPlace the file in {directory} by hand, or set TINYAE_DATA.")


def load_mnist(root=None, split="train", verify=True, flatten=False, download=False):
    """MNIST handwritten digits: images float32 (N, 1, 28, 28) in [0, 1] and labels int64.

    root: a directory holding the four IDX files (``train-images-idx3-ubyte.gz``
        etc., gzip-compressed or not) or holding them in ``mnist/``. Default:
        ``$TINYAE_DATA/mnist``, else ``~/.cache/tinyae/mnist``.
    split: "train" (60,000 images) or "test" (10,000).
    verify: check the md5 of the uncompressed files against the published checksums.
    flatten: return images as (N, 784) rows instead.
    download: fetch missing files from the public mirrors (checking each archive's
        md5) into the first directory searched (``root/mnist``,
        ``$TINYAE_DATA/mnist`` or the cache); off by default, so nothing is
        fetched behind the user's back.

    Example::

        x, y = load_mnist("/data", split="test")
        x.shape, y[:5]          # (10000, 1, 28, 28), array([7, 2, 1, 0, 4])
    """
    if split not in MNIST_SPLITS:
        raise ValueError(f"unknown MNIST split {split!r}; choose 'train' or 'test'.")
    images_stem, labels_stem, count = MNIST_SPLITS[split]
    stems = (images_stem, labels_stem)
    directories = _candidate_dirs(root, "mnist")
    paths = [_find_file(directories, stem) for stem in stems]
    if None in paths and download:
        _download_mnist([stem for stem, path in zip(stems, paths) if path is None], directories[0])
        paths = [_find_file(directories, stem) for stem in stems]
    if None in paths:
        missing = [stem for stem, path in zip(stems, paths) if path is None]
        raise DataNotFoundError(_missing_mnist_message(missing, directories))

    images_path, labels_path = paths
    images = read_idx(images_path, MNIST_FILES[images_stem][0] if verify else None)
    labels = read_idx(labels_path, MNIST_FILES[labels_stem][0] if verify else None)
    if images.shape != (count, 28, 28) or images.dtype != np.uint8:
        raise DataError(
            f"{images_path}: expected MNIST images of shape ({count}, 28, 28) uint8 for the "
            f"{split} split, found {images.shape} {images.dtype}. Is it the right file?")
    if labels.shape != (count,) or labels.dtype != np.uint8 or labels.max() > 9:
        raise DataError(
            f"{labels_path}: expected {count} MNIST labels 0..9 (uint8) for the {split} "
            f"split, found shape {labels.shape} {labels.dtype}. Is it the right file?")

    images = images.astype(np.float32) / 255.0
    images = images.reshape(count, 784) if flatten else images.reshape(count, 1, 28, 28)
    return images, labels.astype(np.int64)


# ---------------------------------------------------------------------------
# Olivetti faces

def load_olivetti_faces(root=None, flatten=False):
    """The Olivetti (ORL) faces: images float32 (400, 1, 64, 64) in [0, 1], person ids int64.

    40 people, 10 pictures each; person ``i`` owns images ``10*i .. 10*i + 9``.
    Reads Sam Roweis' ``olivettifaces.mat`` (a 4096 x 400 uint8 matrix, one
    column-major image per column) from ``root`` or ``root/olivetti``; default
    ``$TINYAE_DATA/olivetti``, else ``~/.cache/tinyae/olivetti``.

    Example::

        faces, people = load_olivetti_faces("/data")
        faces.shape, people[10]   # (400, 1, 64, 64), 1
    """
    import scipy.io

    directories = _candidate_dirs(root, "olivetti")
    path = next((d / "olivettifaces.mat" for d in directories
                 if (d / "olivettifaces.mat").is_file()), None)
    if path is None:
        places = " or ".join(str(d) for d in directories)
        raise DataNotFoundError(
            f"olivettifaces.mat not found in {places}. Place the file in one of these "
            "directories, pass load_olivetti_faces(root=...) naming the directory that "
            "holds it (or its parent holding olivetti/), or set TINYAE_DATA to a "
            "directory holding olivetti/.")
    try:
        contents = scipy.io.loadmat(path)
    except Exception as exc:  # scipy raises ValueError, TypeError or OSError for bad files
        raise DataError(f"{path} is not a readable MATLAB file ({exc}): replace it.") from None
    faces = contents.get("faces")
    if faces is None or faces.shape != (4096, 400) or faces.dtype != np.uint8:
        found = ("no variable 'faces'" if faces is None
                 else f"'faces' of shape {faces.shape} {faces.dtype}")
        raise DataError(
            f"{path}: expected a variable 'faces' of shape (4096, 400) uint8, found {found}.")

    # Each column is one image in column-major (MATLAB) order: reshape in Fortran
    # order so that rows of the array are rows of the face (upright).
    images = faces.T.reshape(400, 64, 64).transpose(0, 2, 1)
    images = np.ascontiguousarray(images, dtype=np.float32) / 255.0
    images = images.reshape(400, 4096) if flatten else images.reshape(400, 1, 64, 64)
    people = np.arange(400, dtype=np.int64) // 10
    return images, people


# ---------------------------------------------------------------------------
# scikit-learn's bundled digits: always present

def load_digits(flatten=False):
    """scikit-learn's 1,797 8x8 digits: float32 (N, 1, 8, 8) in [0, 1] and labels int64.

    The pixel values 0..16 are divided by 16. Needs no files: a small default for
    tests, tutorials and quick experiments.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = bunch.images.astype(np.float32) / 16.0
    count = images.shape[0]
    images = images.reshape(count, 64) if flatten else images.reshape(count, 1, 8, 8)
    return images, bunch.target.astype(np.int64)


# ---------------------------------------------------------------------------
# Folders of pictures

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                    ".pgm", ".ppm", ".pbm")


def _picture_to_array(picture, size, grayscale, crop):
    """One PIL image -> float32 (C, size, size) in [0, 1]: crop, resize, colour mode."""
    from PIL import Image, ImageOps

    picture = ImageOps.exif_transpose(picture)  # photos from cameras store their rotation
    picture = picture.convert("L" if grayscale else "RGB")
    if crop == "center":
        width, height = picture.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        picture = picture.crop((left, top, left + side, top + side))
    elif crop is not None:
        raise ValueError(f"unknown crop {crop!r}; choose 'center' or None (squash to a square).")
    picture = picture.resize((size, size), Image.BILINEAR)
    array = np.asarray(picture, dtype=np.float32) / 255.0
    return array[None] if grayscale else array.transpose(2, 0, 1)


def image_folder(path, size, grayscale=True, crop="center", extensions=IMAGE_EXTENSIONS,
                 skip_unreadable=False):
    """Every picture in a folder: float32 (N, C, size, size) in [0, 1] and the file names.

    Each picture is centre-cropped to a square (``crop="center"``; ``crop=None``
    squashes the whole picture instead), resized bilinearly to ``size`` x ``size``
    and converted to grayscale (C = 1) or RGB (C = 3). Files are taken in sorted
    name order; files with other extensions are ignored; subfolders are not read.

    skip_unreadable: warn about and skip pictures Pillow cannot read, instead of
        raising an error that names the file.

    Example::

        photos, names = image_folder("my_photos/", size=64)
        photos.shape            # (len(names), 1, 64, 64)
    """
    from PIL import Image

    folder = pathlib.Path(path).expanduser()
    if not folder.is_dir():
        raise DataNotFoundError(f"the image folder {folder} does not exist (or is not a folder).")
    if int(size) < 1:
        raise ValueError(f"size must be a positive number of pixels, got {size}.")
    extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in extensions)
    if not files:
        raise DataNotFoundError(
            f"no pictures in {folder}: looked for files ending in {', '.join(extensions)}.")

    arrays, names = [], []
    for file in files:
        try:
            with Image.open(file) as picture:
                arrays.append(_picture_to_array(picture, int(size), grayscale, crop))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            message = f"cannot read the picture {file} ({exc})."
            if not skip_unreadable:
                raise DataError(
                    message + " Remove or repair it, or pass skip_unreadable=True.") from None
            warnings.warn(message + " Skipped.", stacklevel=2)
            continue
        names.append(file.name)
    if not arrays:
        raise DataError(f"none of the {len(files)} pictures in {folder} could be read.")
    return np.stack(arrays), names


def sample_photos(size, grayscale=True):
    """A few real photographs, cropped and resized like ``image_folder``, and their names.

    From ``skimage.data`` when scikit-image is installed, else the two photos that
    scikit-learn ships (``china.jpg``, ``flower.jpg``), so there is always a default.
    """
    from PIL import Image

    pictures = {}
    try:
        import skimage.data
        for name in ("astronaut", "camera", "chelsea", "coffee", "rocket"):
            try:
                pictures[name] = getattr(skimage.data, name)()
            except Exception:  # some versions fetch a photo over the network; skip it
                continue
    except ImportError:
        pass
    if not pictures:
        from sklearn.datasets import load_sample_images
        bunch = load_sample_images()
        for filename, photo in zip(bunch.filenames, bunch.images):
            pictures[pathlib.Path(filename).stem] = photo

    arrays = [_picture_to_array(Image.fromarray(np.asarray(photo)), int(size), grayscale, "center")
              for photo in pictures.values()]
    return np.stack(arrays), list(pictures)


# ---------------------------------------------------------------------------
# Splitting and batching

def train_val_split(x, y=None, val_fraction=0.1, seed=0):
    """A seeded random split into training and validation parts.

    Returns ``x_train, x_val`` or, with labels, ``x_train, x_val, y_train, y_val``
    (scikit-learn's order).

    Example::

        x_train, x_val, y_train, y_val = train_val_split(images, labels, val_fraction=0.1)
    """
    _check_array(x)
    count = len(x)
    if y is not None and len(y) != count:
        raise ValueError(f"x has {count} samples but y has {len(y)}; they must match.")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}.")
    val_count = int(round(count * val_fraction))
    if val_fraction > 0 and val_count == 0:
        val_count = 1
    if val_count >= count:
        raise ValueError(
            f"a validation fraction of {val_fraction} of {count} samples leaves none for training.")
    order = np.random.default_rng(seed).permutation(count)
    train_index, val_index = order[val_count:], order[:val_count]
    if y is None:
        return _take(x, train_index), _take(x, val_index)
    return _take(x, train_index), _take(x, val_index), _take(y, train_index), _take(y, val_index)


def num_batches(count, batch_size, drop_last=False):
    """How many batches ``batches`` yields for ``count`` samples (for progress bars)."""
    return count // batch_size if drop_last else -(-count // batch_size)


def batches(x, y=None, batch_size=64, shuffle=True, seed=None, rng=None, drop_last=False):
    """Yield mini-batches moved to the active backend: ``x_batch`` or ``(x_batch, y_batch)``.

    Every sample appears exactly once per pass (the last batch may be smaller unless
    ``drop_last``). Slicing happens where the data lives, so a host data set is
    copied to the GPU one batch at a time.

    shuffle: visit the samples in a random order drawn from ``seed`` or ``rng`` (an int
        seed or a NumPy Generator; a Generator carries on across epochs).

    Example::

        rng = np.random.default_rng(0)
        for epoch in range(10):
            for x_batch, y_batch in batches(x, y, batch_size=128, rng=rng):
                ...
    """
    _check_array(x)
    count = len(x)
    if y is not None and len(y) != count:
        raise ValueError(f"x has {count} samples but y has {len(y)}; they must match.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    if seed is not None and rng is not None:
        raise ValueError("give either seed or rng, not both.")
    batch_size = int(batch_size)
    order = _generator(rng if rng is not None else seed).permutation(count) if shuffle else None

    stop = count - count % batch_size if drop_last else count
    for start in range(0, stop, batch_size):
        if order is None:
            x_batch = x[start:start + batch_size]
            y_batch = None if y is None else y[start:start + batch_size]
        else:
            index = order[start:start + batch_size]
            x_batch = _take(x, index)
            y_batch = None if y is None else _take(y, index)
        if y is None:
            yield backend.to_backend(x_batch)
        else:
            yield backend.to_backend(x_batch), backend.to_backend(y_batch)


def one_hot(labels, num_classes, dtype="float32"):
    """Labels (N,) as one-hot rows (N, num_classes) on the labels' backend.

    Example::

        one_hot(np.array([2, 0]), 3)    # [[0, 0, 1], [1, 0, 0]]
    """
    _check_array(labels, "labels")
    xp = backend.get_array_module(labels)
    labels = xp.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"one_hot expects labels of shape (N,), got {labels.shape}.")
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"labels run from {int(labels.min())} to {int(labels.max())}, outside "
            f"0..{num_classes - 1} for num_classes={num_classes}.")
    rows = xp.zeros((labels.shape[0], num_classes), dtype=dtype)
    rows[xp.arange(labels.shape[0]), labels.astype(xp.int64)] = 1
    return rows


# ---------------------------------------------------------------------------
# Corruptions for denoising

def _host_draw(x, draw):
    """A random array of x's shape drawn on the host, then moved to x's backend."""
    values = draw(x.shape)
    return backend.to_backend(values.astype(x.dtype, copy=False), backend.backend_of(x))


def gaussian_noise(x, sigma, clip=True, rng=None):
    """``x + sigma * eps`` with ``eps ~ N(0, 1)`` per pixel, clipped to [0, 1] if ``clip``.

    Example::

        noisy = gaussian_noise(images, sigma=0.3, rng=0)
    """
    _check_array(x)
    if sigma < 0:
        raise ValueError(f"sigma is a standard deviation and must be >= 0, got {sigma}.")
    xp = backend.get_array_module(x)
    generator = _generator(rng)
    noisy = x + sigma * _host_draw(x, generator.standard_normal)
    return xp.clip(noisy, 0.0, 1.0) if clip else noisy


def salt_and_pepper(x, amount, rng=None, low=0.0, high=1.0):
    """Replace a fraction ``amount`` of pixels: half by ``high`` (salt), half by ``low`` (pepper).

    Example::

        speckled = salt_and_pepper(images, amount=0.2, rng=0)
    """
    _check_array(x)
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount is a fraction of pixels and must be in [0, 1], got {amount}.")
    xp = backend.get_array_module(x)
    uniform = _host_draw(x, _generator(rng).random)
    corrupted = xp.where(uniform < amount / 2, xp.asarray(high, dtype=x.dtype), x)
    return xp.where((uniform >= amount / 2) & (uniform < amount),
                    xp.asarray(low, dtype=x.dtype), corrupted)


# ---------------------------------------------------------------------------
# Masks for inpainting: 1 where a pixel is visible, 0 where it is hidden.
#
# ``shape`` is the shape of the images to mask: (H, W), (C, H, W) or (N, C, H, W).
# A mask has that same shape, is float32 and lives on the active backend; it hides
# the same pixels in every channel.

def _image_size(shape):
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (2, 3, 4):
        raise ValueError(
            f"mask shape {shape}: expected (H, W), (C, H, W) or (N, C, H, W).")
    return shape, shape[-2], shape[-1]


def _pair(size, name):
    """A size or a (height, width) pair of sizes >= 0, as two ints (functional's rule)."""
    height, width = F._pair(size, name)
    if height < 0 or width < 0:
        raise ValueError(f"{name} must be non-negative, got {size}.")
    return height, width


def center_mask(shape, size):
    """Hide a ``size`` x ``size`` square (or ``(h, w)`` rectangle) in the centre of each image."""
    shape, height, width = _image_size(shape)
    hole_height, hole_width = _pair(size, "size")
    if hole_height > height or hole_width > width:
        raise ValueError(
            f"the hidden square {hole_height}x{hole_width} is larger than the images "
            f"({height}x{width}).")
    top, left = (height - hole_height) // 2, (width - hole_width) // 2
    mask = np.ones(shape, dtype=np.float32)
    mask[..., top:top + hole_height, left:left + hole_width] = 0.0
    return backend.to_backend(mask)


def half_mask(shape, side="left"):
    """Hide one half of each image: ``side`` = "left", "right", "top" or "bottom" is hidden.

    The halves are complementary: ``half_mask(s, "left") + half_mask(s, "right")``
    is 1 everywhere, also for odd sizes (the middle column belongs to "right").
    """
    shape, height, width = _image_size(shape)
    mask = np.ones(shape, dtype=np.float32)
    hidden = {
        "left": (slice(None), slice(0, width // 2)),
        "right": (slice(None), slice(width // 2, None)),
        "top": (slice(0, height // 2), slice(None)),
        "bottom": (slice(height // 2, None), slice(None)),
    }
    if side not in hidden:
        raise ValueError(f"unknown side {side!r}; choose one of {', '.join(hidden)}.")
    mask[(Ellipsis,) + hidden[side]] = 0.0
    return backend.to_backend(mask)


def random_block_mask(shape, n_blocks, block_size, rng=None):
    """Hide ``n_blocks`` squares of side ``block_size`` at random places (they may overlap).

    For a batch shape (N, C, H, W) each image gets its own blocks.
    """
    shape, height, width = _image_size(shape)
    block_height, block_width = _pair(block_size, "block_size")
    if block_height > height or block_width > width:
        raise ValueError(
            f"blocks of {block_height}x{block_width} do not fit in {height}x{width} images.")
    images = shape[0] if len(shape) == 4 else 1
    generator = _generator(rng)
    tops = generator.integers(0, height - block_height + 1, size=(images, n_blocks, 1, 1))
    lefts = generator.integers(0, width - block_width + 1, size=(images, n_blocks, 1, 1))
    rows = np.arange(height)[:, None]
    columns = np.arange(width)[None, :]
    in_block = ((rows >= tops) & (rows < tops + block_height)
                & (columns >= lefts) & (columns < lefts + block_width))  # (images, blocks, H, W)
    visible = ~in_block.any(axis=1)                                     # (images, H, W)
    if len(shape) == 4:
        visible = visible[:, None]
    else:
        visible = visible[0]
    mask = np.broadcast_to(visible, shape).astype(np.float32)
    return backend.to_backend(mask)


def apply_mask(x, mask, fill=0.0):
    """Keep the visible pixels of ``x`` (mask 1) and set the hidden ones (mask 0) to ``fill``.

    The mask is moved to ``x``'s backend if needed. Soft masks blend:
    ``x * mask + fill * (1 - mask)``.
    """
    _check_array(x)
    if backend.backend_of(mask) != backend.backend_of(x):
        mask = backend.to_backend(mask, backend.backend_of(x))
    xp = backend.get_array_module(x)
    mask = xp.asarray(mask, dtype=x.dtype)
    try:
        return x * mask + fill * (1 - mask)
    except ValueError:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not fit images of shape "
            f"{tuple(x.shape)}; build it with the images' shape, "
            "e.g. center_mask(x.shape, 12).") from None


# ---------------------------------------------------------------------------
# Data sets by name, with a validation part (what `tinyae train`, the studies and the demo load)

DATA_NAMES = ("mnist", "olivetti", "digits", "folder:PATH")


@dataclasses.dataclass
class Dataset:
    """Training and validation images (N, C, H, W) in [0, 1], with labels where there are any."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray = None
    x_val: np.ndarray = None
    y_val: np.ndarray = None
    classes: int = 0          # number of label values (0: no labels)
    note: str = ""            # where the data came from, for summaries

    @property
    def image_shape(self):
        """(C, H, W) of one training image."""
        return tuple(int(n) for n in self.x_train.shape[1:])

    def describe(self):
        """One line for summaries: the name, the sizes of both parts, the classes and the note."""
        val = 0 if self.x_val is None else len(self.x_val)
        shape = "x".join(map(str, self.image_shape))
        return (f"{self.name}: {len(self.x_train)} training and {val} validation images of "
                f"{shape}" + (f", {self.classes} classes" if self.classes else "")
                + (f" ({self.note})" if self.note else ""))


@functools.lru_cache(maxsize=2)
def _mnist_split(root, split):
    """MNIST read once per process (the studies share it; reading it takes seconds)."""
    return load_mnist(root, split=split)


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
    index = np.sort(np.random.default_rng([seed, 7]).permutation(len(x))[:int(limit)])
    return x[index], (None if y is None else y[index])


def load_dataset(name, data_dir=None, image_size=64, limit=None, val_fraction=0.1, seed=0):
    """The data set ``name`` with a validation part, limited to ``limit`` training images.

    mnist uses its test split for validation (at most ``limit`` // 5 images of it
    when limited); the others hold out ``val_fraction`` at random. ``image_size``
    is the side pictures of a folder are resized to.

    Example::

        dataset = load_dataset("digits")              # no files needed
        dataset.describe()                            # "digits: 1617 training and 180 ..."
    """
    kind, folder = parse_data_name(name)
    if kind == "mnist":
        x, y, x_val, y_val = load_mnist_pair(data_dir)
        x, y = limit_examples(x, y, limit, seed)
        if limit is not None:
            x_val, y_val = limit_examples(x_val, y_val, max(limit // 5, 10), seed)
        return Dataset("mnist", x, y, x_val, y_val, 10, "validation: the test split")
    if kind == "olivetti":
        root = None if data_dir is None else pathlib.Path(data_dir).expanduser()
        x, y = load_olivetti_faces(root)
        note, classes = "labels: the 40 people", 40
    elif kind == "digits":
        x, y = load_digits()
        note, classes = "scikit-learn's bundled 8x8 digits", 10
    else:
        x, _ = image_folder(folder, size=int(image_size), skip_unreadable=True)
        y, classes = None, 0
        note = f"{folder}, cropped to squares of {image_size}x{image_size} pixels, grayscale"
    x, y = limit_examples(x, y, limit, seed)
    if len(x) < 4:
        return Dataset(name, x, y, x, y, classes, note + "; too few to hold out: "
                       "validation on the training images")
    parts = train_val_split(x, y, val_fraction=val_fraction, seed=seed)
    x_train, x_val = parts[0], parts[1]
    y_train, y_val = (parts[2], parts[3]) if y is not None else (None, None)
    return Dataset(name, x_train, y_train, x_val, y_val, classes, note)
