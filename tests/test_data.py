"""Data loading on the real files, batching on every backend, corruptions, atomic writes."""
import gzip
import hashlib
import shutil

import numpy as np
import pytest
import scipy.io
from PIL import Image

import tinyae
from tinyae import backend, data
from tinyae.io import atomic_path, atomic_write_bytes

from conftest import to_host

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.fixture(scope="session")
def mnist_train(data_dir):
    return data.load_mnist(data_dir, split="train")


@pytest.fixture(scope="session")
def mnist_test(data_dir):
    return data.load_mnist(data_dir, split="test")


@pytest.fixture(scope="session")
def mnist_test_labels_raw(data_dir):
    """The uncompressed bytes of t10k-labels-idx1-ubyte (10,008 bytes)."""
    return gzip.decompress((data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes())


def _mnist_copy(data_dir, tmp_path, labels_bytes=None, labels_name="t10k-labels-idx1-ubyte"):
    """tmp_path holding the real test images and a (possibly altered) labels file."""
    shutil.copy(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz", tmp_path)
    if labels_bytes is not None:
        (tmp_path / labels_name).write_bytes(labels_bytes)
    return tmp_path


# ---------------------------------------------------------------------------
# MNIST

def test_mnist_train_shapes_labels_and_range(mnist_train):
    images, labels = mnist_train
    assert images.shape == (60000, 1, 28, 28) and images.dtype == np.float32
    assert labels.shape == (60000,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(labels).tolist() == MNIST_TRAIN_COUNTS
    # digits are white strokes on black: the border is background
    assert images[:, :, 0, :].mean() < 0.01 and images.mean() < 0.2


def test_mnist_test_split(mnist_test):
    images, labels = mnist_test
    assert images.shape == (10000, 1, 28, 28)
    assert labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(labels).tolist() == MNIST_TEST_COUNTS


def test_mnist_root_may_name_the_folder_or_its_parent_or_come_from_the_environment(
        data_dir, mnist_test, monkeypatch):
    images, labels = data.load_mnist(data_dir / "mnist", split="test", flatten=True)
    assert images.shape == (10000, 784)
    np.testing.assert_array_equal(images.reshape(-1, 1, 28, 28), mnist_test[0])
    monkeypatch.setenv("TINYAE_DATA", str(data_dir))
    _, labels = data.load_mnist(split="test", verify=False)
    np.testing.assert_array_equal(labels, mnist_test[1])


def test_mnist_reads_uncompressed_files(data_dir, mnist_test, tmp_path, mnist_test_labels_raw):
    _mnist_copy(data_dir, tmp_path, mnist_test_labels_raw)
    images, labels = data.load_mnist(tmp_path, split="test")
    np.testing.assert_array_equal(labels, mnist_test[1])


def test_mnist_unknown_split_is_refused(data_dir):
    with pytest.raises(ValueError, match="'train' or 'test'"):
        data.load_mnist(data_dir, split="validation")


def test_mnist_missing_files_say_which_files_go_where(tmp_path, monkeypatch):
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_mnist(tmp_path, split="test")
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message
    assert str(tmp_path) in message and "TINYAE_DATA" in message
    assert isinstance(info.value, FileNotFoundError)

    # nothing given: the message names the cache directory; nothing is downloaded
    monkeypatch.delenv("TINYAE_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(data.DataNotFoundError, match="cache/tinyae/mnist"):
        data.load_mnist()
    assert not (tmp_path / "cache" / "tinyae" / "mnist").exists()

    with pytest.raises(data.DataNotFoundError, match="does not exist"):
        data.load_mnist(tmp_path / "no-such-folder")


def test_mnist_names_only_the_missing_file(data_dir, tmp_path):
    _mnist_copy(data_dir, tmp_path)
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_mnist(tmp_path, split="test")
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)
    assert "t10k-images" not in str(info.value)


def test_mnist_wrong_file_is_caught_by_checksum_and_by_shape(data_dir, tmp_path):
    _mnist_copy(data_dir, tmp_path)
    shutil.copy(data_dir / "mnist" / "train-labels-idx1-ubyte.gz",
                tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(data.DataError, match="27ae3e4e09519cfbb04c329615203637"):
        data.load_mnist(tmp_path, split="test")
    with pytest.raises(data.DataError, match="expected 10000 MNIST labels"):
        data.load_mnist(tmp_path, split="test", verify=False)


def test_mnist_truncated_gzip_names_the_file(data_dir, tmp_path):
    _mnist_copy(data_dir, tmp_path)
    archive = (data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(archive[: len(archive) // 2])
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz is not a complete gzip"):
        data.load_mnist(tmp_path, split="test")


def test_mnist_checksum_mismatch_of_a_modified_copy(data_dir, tmp_path, mnist_test_labels_raw):
    modified = bytearray(mnist_test_labels_raw)
    modified[8] = 3  # the first label, a valid digit: only the checksum can tell
    _mnist_copy(data_dir, tmp_path, bytes(modified))
    with pytest.raises(data.DataError) as info:
        data.load_mnist(tmp_path, split="test")
    assert "md5" in str(info.value) and "verify=False" in str(info.value)
    _, labels = data.load_mnist(tmp_path, split="test", verify=False)
    assert labels[0] == 3


def test_mnist_idx_header_is_checked(data_dir, tmp_path, mnist_test_labels_raw):
    bad_magic = b"\x08\x00" + mnist_test_labels_raw[2:]
    _mnist_copy(data_dir, tmp_path, bad_magic)
    with pytest.raises(data.DataError, match="is not an IDX file"):
        data.load_mnist(tmp_path, split="test", verify=False)

    wrong_count = mnist_test_labels_raw[:4] + (10001).to_bytes(4, "big") + mnist_test_labels_raw[8:]
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(wrong_count)
    with pytest.raises(data.DataError, match=r"header says shape \(10001,\)"):
        data.load_mnist(tmp_path, split="test", verify=False)

    images_as_labels = (tmp_path / "t10k-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(images_as_labels)
    with pytest.raises(data.DataError, match=r"found shape \(10000, 28, 28\)"):
        data.load_mnist(tmp_path, split="test", verify=False)


class _FakeResponse:
    def __init__(self, payload):
        self.payload = payload

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        return self.payload


def test_mnist_download_checks_the_archive_md5_without_the_network(data_dir, tmp_path,
                                                                   monkeypatch):
    """The download path with urlopen replaced: tests never touch the network."""
    source = data_dir / "mnist"
    requested = []

    def fake_urlopen(url, timeout):
        requested.append(url)
        assert timeout > 0
        if "s3.amazonaws" in url:
            raise OSError("connection refused")
        return _FakeResponse((source / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(data.urllib.request, "urlopen", fake_urlopen)
    # our .gz files were made with gzip -n -9: their md5 is not the mirrors' one
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_mnist(tmp_path, split="test", download=True)
    assert "connection refused" in str(info.value) and "md5 mismatch" in str(info.value)
    assert list(tmp_path.iterdir()) == [tmp_path / "mnist"]
    assert list((tmp_path / "mnist").iterdir()) == []

    local_md5 = {stem: (md5, hashlib.md5((source / (stem + ".gz")).read_bytes()).hexdigest())
                 for stem, (md5, _) in data.MNIST_FILES.items()}
    monkeypatch.setattr(data, "MNIST_FILES", local_md5)
    requested.clear()
    images, labels = data.load_mnist(tmp_path, split="test", download=True)
    assert labels[:3].tolist() == [7, 2, 1]
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == [
        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert len(requested) == 4  # per file: the first mirror refused, the second served


def test_read_idx_reads_other_types(tmp_path):
    values = np.arange(6, dtype=">i4").reshape(2, 3)
    raw = bytes([0, 0, 0x0C, 2]) + np.array([2, 3], dtype=">i4").tobytes() + values.tobytes()
    (tmp_path / "small-idx").write_bytes(raw)
    np.testing.assert_array_equal(data.read_idx(tmp_path / "small-idx"), values)


# ---------------------------------------------------------------------------
# Olivetti faces, digits

def test_olivetti_faces_shapes_people_and_orientation(data_dir):
    faces, people = data.load_olivetti_faces(data_dir)
    assert faces.shape == (400, 1, 64, 64) and faces.dtype == np.float32
    assert 0.0 <= faces.min() and faces.max() <= 1.0
    np.testing.assert_array_equal(people, np.arange(400) // 10)
    mean_face = faces[:, 0].mean(axis=0)
    # Upright: the forehead (top rows) is brighter than the chin and neck (bottom
    # rows), and a face is nearly left-right symmetric. A transposed face fails
    # both; one upside down fails the first.
    assert mean_face[:8].mean() - mean_face[-8:].mean() > 0.1
    assert np.abs(mean_face - mean_face[:, ::-1]).mean() < 0.06
    # the eyes are a dark band below the forehead
    assert mean_face[13:18].mean() < mean_face[:6].mean() - 0.1
    same = data.load_olivetti_faces(data_dir / "olivetti", flatten=True)[0]
    np.testing.assert_array_equal(same.reshape(400, 1, 64, 64), faces)


def test_olivetti_errors(tmp_path):
    with pytest.raises(data.DataNotFoundError) as info:
        data.load_olivetti_faces(tmp_path)
    assert "olivettifaces.mat" in str(info.value) and str(tmp_path) in str(info.value)

    (tmp_path / "olivettifaces.mat").write_bytes(b"not a MATLAB file at all" * 10)
    with pytest.raises(data.DataError, match="not a readable MATLAB file"):
        data.load_olivetti_faces(tmp_path)

    scipy.io.savemat(tmp_path / "olivettifaces.mat", {"pictures": np.zeros((4, 4))})
    with pytest.raises(data.DataError, match="no variable 'faces'"):
        data.load_olivetti_faces(tmp_path)


def test_digits_are_bundled():
    images, labels = data.load_digits()
    assert images.shape == (1797, 1, 8, 8) and images.dtype == np.float32
    assert images.min() == 0.0 and images.max() == 1.0
    assert labels.dtype == np.int64 and set(labels.tolist()) == set(range(10))
    assert data.load_digits(flatten=True)[0].shape == (1797, 64)


# ---------------------------------------------------------------------------
# Folders of pictures

def _thirds(width, height, values, mode="L"):
    """A picture split into three equal bands (vertical if wide, horizontal if tall)."""
    picture = Image.new(mode, (width, height))
    for i, value in enumerate(values):
        if width > height:
            box = (i * width // 3, 0, (i + 1) * width // 3, height)
        else:
            box = (0, i * height // 3, width, (i + 1) * height // 3)
        picture.paste(value, box)
    return picture


def test_image_folder_crops_the_centre_and_resizes(tmp_path):
    _thirds(90, 30, [0, 255, 128]).save(tmp_path / "a_wide.png")
    _thirds(30, 90, [0, 100, 255]).save(tmp_path / "b_tall.png")
    _thirds(90, 30, [(0, 0, 0), (255, 0, 0), (0, 0, 255)], "RGB").save(
        tmp_path / "c_red.jpg", quality=100)
    Image.new("RGBA", (17, 17), (0, 255, 0, 255)).save(tmp_path / "d_green.png")
    (tmp_path / "notes.txt").write_text("not a picture")

    images, names = data.image_folder(tmp_path, size=10)
    assert names == ["a_wide.png", "b_tall.png", "c_red.jpg", "d_green.png"]
    assert images.shape == (4, 1, 10, 10) and images.dtype == np.float32
    np.testing.assert_allclose(images[0], 1.0)             # the white middle third
    np.testing.assert_allclose(images[1], 100 / 255)       # the grey middle third
    np.testing.assert_allclose(images[2], 76 / 255, atol=0.02)  # red in "L": 0.299 * 255

    colour, _ = data.image_folder(tmp_path, size=6, grayscale=False)
    assert colour.shape == (4, 3, 6, 6)
    np.testing.assert_allclose(colour[2].mean(axis=(1, 2)), [1.0, 0.0, 0.0], atol=0.02)
    np.testing.assert_allclose(colour[3].mean(axis=(1, 2)), [0.0, 1.0, 0.0])

    squashed, _ = data.image_folder(tmp_path, size=3, crop=None)
    left, middle, right = squashed[0, 0].mean(axis=0)
    assert left < right < middle


def test_image_folder_keeps_orientation(tmp_path):
    gradient = np.tile(np.arange(0, 240, 6, dtype=np.uint8), (40, 1))  # dark left, bright right
    Image.fromarray(gradient).save(tmp_path / "gradient.png")
    images, _ = data.image_folder(tmp_path, size=20)
    row = images[0, 0, 10]
    assert np.all(np.diff(row) > 0)
    np.testing.assert_allclose(images[0, 0, :, 3], images[0, 0, 0, 3])


def test_image_folder_errors(tmp_path):
    with pytest.raises(data.DataNotFoundError, match="does not exist"):
        data.image_folder(tmp_path / "missing", size=8)
    with pytest.raises(data.DataNotFoundError, match="no pictures"):
        data.image_folder(tmp_path, size=8)

    Image.new("L", (8, 8), 200).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG this is not really a png")
    with pytest.raises(data.DataError, match="broken.png.*skip_unreadable=True"):
        data.image_folder(tmp_path, size=8)
    with pytest.warns(UserWarning, match="broken.png"):
        images, names = data.image_folder(tmp_path, size=8, skip_unreadable=True)
    assert names == ["good.png"] and images.shape == (1, 1, 8, 8)


def test_sample_photos_are_always_available():
    photos, names = data.sample_photos(32)
    assert photos.shape == (len(names), 1, 32, 32) and len(names) >= 2
    assert 0.0 <= photos.min() and photos.max() <= 1.0 and photos.std() > 0.05
    colour, _ = data.sample_photos(16, grayscale=False)
    assert colour.shape == (len(names), 3, 16, 16)


# ---------------------------------------------------------------------------
# Splitting and batching

def test_train_val_split_is_a_seeded_partition():
    x = np.arange(100, dtype=np.float32).reshape(50, 2)
    y = np.arange(50)
    x_train, x_val, y_train, y_val = data.train_val_split(x, y, val_fraction=0.2, seed=1)
    assert len(x_train) == 40 and len(x_val) == 10
    np.testing.assert_array_equal(x_train[:, 0], 2 * y_train)  # rows stay with their labels
    assert sorted(np.concatenate([y_train, y_val]).tolist()) == list(range(50))
    again_train, again_val = data.train_val_split(x, val_fraction=0.2, seed=1)
    np.testing.assert_array_equal(again_val, x_val)
    assert not np.array_equal(data.train_val_split(x, val_fraction=0.2, seed=2)[1], x_val)
    with pytest.raises(ValueError, match="leaves none for training"):
        data.train_val_split(x[:1], val_fraction=0.5)
    with pytest.raises(ValueError, match="must match"):
        data.train_val_split(x, y[:3])


def _collect(iterator):
    xs, ys = [], []
    for x_batch, y_batch in iterator:
        xs.append(backend.to_numpy(x_batch))
        ys.append(backend.to_numpy(y_batch))
    return xs, ys


def test_batches_cover_every_sample_once_on_the_active_backend(backend_name):
    x = np.arange(46, dtype=np.float32).reshape(23, 2)
    y = np.arange(23)
    for x_batch, y_batch in data.batches(x, y, batch_size=5, seed=0):
        assert backend.backend_of(x_batch) == backend_name == backend.backend_of(y_batch)
    xs, ys = _collect(data.batches(x, y, batch_size=5, seed=0))
    assert [len(b) for b in ys] == [5, 5, 5, 5, 3]
    assert len(ys) == data.num_batches(23, 5)
    assert sorted(np.concatenate(ys).tolist()) == list(range(23))
    np.testing.assert_array_equal(np.concatenate(xs)[:, 0], 2 * np.concatenate(ys))
    assert np.concatenate(ys).tolist() != list(range(23))  # shuffled

    # the data set may already live on the backend
    on_backend = data.batches(backend.to_backend(x), batch_size=10, shuffle=False)
    np.testing.assert_array_equal(backend.to_numpy(next(iter(on_backend))), x[:10])

    _, ys = _collect(data.batches(x, y, batch_size=5, shuffle=False, drop_last=True))
    assert np.concatenate(ys).tolist() == list(range(20))
    assert data.num_batches(23, 5, drop_last=True) == 4


def test_batches_are_deterministic_given_a_seed():
    y = np.arange(40)

    def order(**how):   # the batches (on the active backend) joined on the host
        return np.concatenate([to_host(b) for b in data.batches(y, batch_size=8, **how)])
    first, again, other = order(seed=3), order(seed=3), order(seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)

    rng = np.random.default_rng(3)  # a Generator carries on: each epoch a new order
    epoch_1, epoch_2 = order(rng=rng), order(rng=rng)
    np.testing.assert_array_equal(epoch_1, first)
    assert not np.array_equal(epoch_1, epoch_2)
    with pytest.raises(ValueError, match="either seed or rng"):
        next(data.batches(y, seed=1, rng=rng))
    with pytest.raises(TypeError, match="Tensor"):
        next(data.batches(tinyae.tensor(np.zeros((4, 2)))))


def test_one_hot(xp):
    labels = backend.to_backend(np.array([2, 0, 1, 2]))
    rows = data.one_hot(labels, 3)
    assert backend.get_array_module(rows) is xp and rows.dtype == np.float32
    np.testing.assert_array_equal(backend.to_numpy(rows),
                                  [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="outside 0..2"):
        data.one_hot(labels + 1, 3)


# ---------------------------------------------------------------------------
# Corruptions and masks

def test_gaussian_noise_statistics_and_same_draws_on_every_backend(xp):
    x = xp.full((64, 1, 28, 28), 0.5, dtype=xp.float32)
    noisy = data.gaussian_noise(x, sigma=0.1, clip=False, rng=0)
    assert backend.get_array_module(noisy) is xp and noisy.dtype == np.float32
    noise = backend.to_numpy(noisy) - 0.5
    assert abs(noise.mean()) < 0.002 and abs(noise.std() - 0.1) < 0.002
    host = data.gaussian_noise(np.full((64, 1, 28, 28), 0.5, np.float32), 0.1, clip=False, rng=0)
    np.testing.assert_allclose(backend.to_numpy(noisy), host, rtol=1e-6)

    clipped = backend.to_numpy(data.gaussian_noise(x, sigma=1.0, rng=1))
    assert clipped.min() == 0.0 and clipped.max() == 1.0
    with pytest.raises(ValueError, match="sigma"):
        data.gaussian_noise(x, sigma=-1)


def test_salt_and_pepper_fractions(xp):
    x = xp.full((32, 1, 28, 28), 0.5, dtype=xp.float32)
    speckled = backend.to_numpy(data.salt_and_pepper(x, amount=0.2, rng=0))
    assert abs((speckled == 1.0).mean() - 0.1) < 0.005
    assert abs((speckled == 0.0).mean() - 0.1) < 0.005
    assert abs((speckled == 0.5).mean() - 0.8) < 0.01


def test_center_and_half_masks_geometry(xp):
    mask = data.center_mask((2, 3, 28, 28), 12)
    assert mask.shape == (2, 3, 28, 28) and mask.dtype == np.float32
    assert backend.get_array_module(mask) is xp
    hidden = backend.to_numpy(mask) == 0
    assert hidden.sum(axis=(2, 3)).tolist() == [[144] * 3] * 2
    rows, columns = np.nonzero(hidden[0, 0])
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (8, 19, 8, 19)

    shape = (1, 1, 5, 7)
    halves = {side: backend.to_numpy(data.half_mask(shape, side))
              for side in ("left", "right", "top", "bottom")}
    np.testing.assert_array_equal(halves["left"] + halves["right"], 1.0)
    np.testing.assert_array_equal(halves["top"] + halves["bottom"], 1.0)
    assert halves["left"][0, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert halves["bottom"][0, 0, :, 0].tolist() == [1, 1, 0, 0, 0]
    with pytest.raises(ValueError, match="choose one of"):
        data.half_mask(shape, "middle")
    with pytest.raises(ValueError, match="larger than the images"):
        data.center_mask((28, 28), 30)


def test_random_block_mask(xp):
    mask = backend.to_numpy(data.random_block_mask((8, 3, 28, 28), n_blocks=3, block_size=5, rng=0))
    hidden = (mask == 0).sum(axis=(2, 3))
    assert np.all(hidden >= 25) and np.all(hidden <= 75)
    np.testing.assert_array_equal(mask[:, 0], mask[:, 2])            # same in every channel
    assert not np.array_equal(mask[0], mask[1])                      # its own blocks per image
    again = backend.to_numpy(data.random_block_mask((8, 3, 28, 28), 3, 5, rng=0))
    np.testing.assert_array_equal(mask, again)
    assert data.random_block_mask((28, 28), 1, 4, rng=0).shape == (28, 28)


def test_apply_mask(xp):
    x = xp.asarray(np.random.default_rng(0).random((4, 1, 10, 10)), dtype=xp.float32)
    mask = data.half_mask(x.shape, "right")
    masked = backend.to_numpy(data.apply_mask(x, mask, fill=0.25))
    np.testing.assert_array_equal(masked[..., 5:], 0.25)
    np.testing.assert_array_equal(masked[..., :5], backend.to_numpy(x)[..., :5])
    host_mask = backend.to_numpy(mask)  # a mask from the other backend is moved over
    np.testing.assert_array_equal(backend.to_numpy(data.apply_mask(x, host_mask, 0.25)), masked)
    with pytest.raises(ValueError, match="does not fit"):
        data.apply_mask(x, data.center_mask((5, 5), 2))


# ---------------------------------------------------------------------------
# Atomic writes

def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "weights.bin"
    atomic_write_bytes(target, b"first")
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]

    with pytest.raises(RuntimeError, match="interrupted"):
        with atomic_path(target) as temporary:
            assert temporary.suffix == ".bin" and temporary.parent == tmp_path
            temporary.write_bytes(b"half")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]

    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(tmp_path / "empty.bin"):
            pass
    with pytest.raises(FileNotFoundError, match="does not exist"):
        atomic_write_bytes(tmp_path / "no-such-dir" / "x.bin", b"")


# ---------------------------------------------------------------- data sets by name
def test_load_dataset_by_name_holds_out_a_validation_part():
    dataset = data.load_dataset("digits", val_fraction=0.1, seed=0)
    assert len(dataset.x_train) + len(dataset.x_val) == 1797
    assert len(dataset.x_val) == 180 and dataset.image_shape == (1, 8, 8)
    assert dataset.classes == 10 and set(dataset.y_val.tolist()) <= set(range(10))
    assert dataset.describe().startswith("digits: 1617 training and 180 validation images of 1x8x8")


def test_load_dataset_limit_is_a_seeded_choice():
    first = data.load_dataset("digits", limit=100, seed=3)
    again = data.load_dataset("digits", limit=100, seed=3)
    other = data.load_dataset("digits", limit=100, seed=4)
    assert len(first.x_train) + len(first.x_val) == 100
    np.testing.assert_array_equal(first.x_train, again.x_train)
    assert not np.array_equal(first.y_train, other.y_train)


def test_load_dataset_mnist_validates_on_the_test_split(data_dir):
    dataset = data.load_dataset("mnist", data_dir, limit=500)
    assert len(dataset.x_train) == 500 and len(dataset.x_val) == 100
    assert "test split" in dataset.note


def test_load_dataset_on_a_tiny_folder_validates_on_the_training_pictures(tmp_path):
    for i in range(3):
        Image.fromarray(np.full((20, 30), 80 * i, dtype="uint8")).save(tmp_path / f"{i}.png")
    dataset = data.load_dataset(f"folder:{tmp_path}", image_size=16)
    assert dataset.x_train.shape == (3, 1, 16, 16) and dataset.x_val is dataset.x_train
    assert "validation on the training images" in dataset.note


@pytest.mark.parametrize("name, message", [
    ("cifar", "unknown data set 'cifar'; choose one of mnist, olivetti, digits, folder:PATH"),
    ("folder:", "folder: needs a path"),
    ("folder:/no/such/folder", "does not exist"),
])
def test_unknown_data_names_are_usage_errors(name, message):
    from tinyae.studies.common import UsageError
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        data.parse_data_name(name)
