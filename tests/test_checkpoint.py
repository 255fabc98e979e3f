"""Checkpoints: exact round trips with types, atomic writes, clear errors, never pickle."""
import os

import numpy as np
import pytest

import tinyae
from tinyae import backend, checkpoint, optim
from tinyae.checkpoint import CheckpointError


def assert_same(a, b, where="root"):
    """Equal values of exactly the same types, recursively (arrays: dtype, shape, values)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert type(key) is type(next(k for k in b if k == key)), f"{where}: key {key!r}"
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


def example_state():
    rng = np.random.default_rng(0)
    return {
        "model": {"encoder.0.weight": rng.standard_normal((4, 3)).astype(np.float32),
                  "encoder.0.bias": np.zeros(4, dtype=np.float32),
                  "decoder.weight": rng.standard_normal((3, 4))},
        "optimizer": {"state": {0: {"step": 3, "exp_avg": np.ones((4, 3), np.float32)},
                                1: {"momentum_buffer": None}},
                      "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8,
                                        "weight_decay": 0, "nesterov": False,
                                        "params": [0, 1]}]},
        "epoch": 7,
        "history": {"train": [0.5, 0.25, 0.125], "val": [], "best": float("inf")},
        "note": "résumé ✓",
        "numbers": [1, 2.0, True, None, "3", float("nan"), 10 ** 30],
        "numpy_scalar": np.float32(1.5),
        "counts": np.arange(5, dtype=np.int64),
        "mask": np.array([[True, False]]),
        "zero_d": np.array(2.5),
        "empty": np.zeros((0, 3), np.float32),
        "nested_tuple": (1, (2, [3.5])),
        "3": "a string key that looks like an int",
    }


def test_round_trip_keeps_structure_and_types(tmp_path):
    state = example_state()
    checkpoint.save(state, tmp_path / "run.npz")
    assert_same(state, checkpoint.load(tmp_path / "run.npz"))


def test_top_level_values_and_colliding_paths(tmp_path):
    for value in [np.arange(3), 5, None, [np.ones(2), np.zeros(2)]]:
        checkpoint.save(value, tmp_path / "v.npz")
        assert_same(value, checkpoint.load(tmp_path / "v.npz"))
    clash = {"a/b": np.ones(2), "a": {"b": np.zeros(2)}}  # both print as a/b
    checkpoint.save(clash, tmp_path / "clash.npz")
    assert_same(clash, checkpoint.load(tmp_path / "clash.npz"))


def test_backend_arrays_load_as_host_numpy(backend_name, xp, tmp_path):
    checkpoint.save({"w": xp.arange(6, dtype=xp.float32).reshape(2, 3)}, tmp_path / "w.npz")
    loaded = checkpoint.load(tmp_path / "w.npz")["w"]
    assert type(loaded) is np.ndarray and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, np.arange(6).reshape(2, 3))


def test_arrays_are_readable_with_plain_numpy(tmp_path):
    checkpoint.save({"model": {"fc.weight": np.eye(2)}}, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        np.testing.assert_array_equal(archive["arrays/model/fc.weight"], np.eye(2))


def test_optimizer_resumes_from_a_file(backend_name, xp, tmp_path):
    def make(values):
        params = [tinyae.Parameter(xp.array(v)) for v in values]  # copies: steps are in place
        return params, optim.Adam(params, lr=0.05, weight_decay=0.01)

    def train(params, optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            for p in params:
                p.grad = 0.5 * p.data + 1.0
            optimizer.step()

    init = [np.linspace(-1, 1, 6).reshape(2, 3), np.arange(3.0)]
    params, optimizer = make(init)
    train(params, optimizer, 6)

    params_a, optimizer_a = make(init)
    train(params_a, optimizer_a, 3)
    checkpoint.save({"params": [p.data for p in params_a],
                     "optimizer": optimizer_a.state_dict()}, tmp_path / "resume.npz")
    state = checkpoint.load(tmp_path / "resume.npz")
    params_b, optimizer_b = make(state["params"])
    optimizer_b.load_state_dict(state["optimizer"])
    assert backend.backend_of(optimizer_b.state[0]["exp_avg"]) == backend_name
    train(params_b, optimizer_b, 3)
    for p, q in zip(params_b, params):
        np.testing.assert_array_equal(p.numpy(), q.numpy())


# ---------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("failure", [OSError("disk full"), KeyboardInterrupt()])
def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch, failure):
    path = tmp_path / "last.npz"
    checkpoint.save({"epoch": 1, "w": np.ones(3)}, path)
    real_savez = np.savez

    def savez_then_fail(file, *args, **kwargs):
        real_savez(file, *args, **kwargs)
        file.truncate(file.tell() // 2)  # half an archive written...
        raise failure                    # ...then the disk fills up, or the user hits Ctrl-C

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(type(failure)):
        checkpoint.save({"epoch": 2, "w": np.zeros(3)}, path)
    monkeypatch.undo()
    assert_same(checkpoint.load(path), {"epoch": 1, "w": np.ones(3)})
    assert os.listdir(tmp_path) == ["last.npz"]  # no temporary file left behind


def test_unstorable_values_fail_before_touching_the_file(tmp_path):
    path = tmp_path / "last.npz"
    checkpoint.save({"epoch": 1}, path)
    with pytest.raises(CheckpointError, match="history/1"):
        checkpoint.save({"epoch": 2, "history": [1.0, {1, 2}]}, path)
    with pytest.raises(CheckpointError, match="tensor.data"):
        checkpoint.save({"w": tinyae.tensor([1.0])}, path)
    with pytest.raises(CheckpointError, match="key"):
        checkpoint.save({(1, 2): 3}, path)
    with pytest.raises(CheckpointError, match="model/w.*object"):
        checkpoint.save({"model": {"w": np.array([1, "a"], dtype=object)}}, path)
    assert checkpoint.load(path) == {"epoch": 1}
    assert os.listdir(tmp_path) == ["last.npz"]


# ---------------------------------------------------------------- reading bad files
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        checkpoint.load(tmp_path / "nothing.npz")


@pytest.mark.parametrize("keep", [0, 10, 0.5, -30])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "good.npz"
    checkpoint.save(example_state(), path)
    data = path.read_bytes()
    cut = int(len(data) * keep) if isinstance(keep, float) else keep % len(data)
    broken = tmp_path / "broken.npz"
    broken.write_bytes(data[:cut])
    with pytest.raises(CheckpointError, match="broken.npz.*(truncated|corrupt)"):
        checkpoint.load(broken)


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"not a checkpoint at all, just some text" * 10)
    with pytest.raises(CheckpointError, match="garbage.npz"):
        checkpoint.load(path)


def test_foreign_npz_and_npy(tmp_path):
    np.savez(tmp_path / "foreign.npz", weights=np.ones(3))
    with pytest.raises(CheckpointError, match="foreign.npz.*without a tinyae manifest"):
        checkpoint.load(tmp_path / "foreign.npz")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(CheckpointError, match="single.npy.*not a tinyae checkpoint"):
        checkpoint.load(tmp_path / "single.npy")


def test_object_array_in_a_file_is_refused_by_name(tmp_path):
    path = tmp_path / "evil.npz"
    checkpoint.save({"w": np.zeros(2)}, path)
    with np.load(path) as archive:
        manifest = archive[checkpoint.MANIFEST_KEY]
    np.savez(path, allow_pickle=True, **{checkpoint.MANIFEST_KEY: manifest,
                                         "arrays/w": np.array([print, 1], dtype=object)})
    with pytest.raises(CheckpointError, match="evil.npz.*'arrays/w'.*pickle"):
        checkpoint.load(path)


def test_pickle_is_never_allowed(tmp_path, monkeypatch):
    calls = []
    real_load, real_savez = np.load, np.savez

    def spy_load(*args, **kwargs):
        calls.append(("load", kwargs.get("allow_pickle")))
        return real_load(*args, **kwargs)

    def spy_savez(*args, **kwargs):
        calls.append(("savez", kwargs.get("allow_pickle")))
        return real_savez(*args, **kwargs)

    monkeypatch.setattr(np, "load", spy_load)
    monkeypatch.setattr(np, "savez", spy_savez)
    checkpoint.save(example_state(), tmp_path / "x.npz")
    checkpoint.load(tmp_path / "x.npz")
    assert calls == [("savez", False), ("load", False)]


def test_check_writable_makes_the_folder_and_leaves_it_empty(tmp_path):
    folder = tmp_path / "a" / "b"
    checkpoint.check_writable(folder)
    assert folder.is_dir() and list(folder.iterdir()) == []
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OSError, match="cannot write checkpoints to the folder .*a_file.*"
                                      "choose a folder you can write to"):
        checkpoint.check_writable(tmp_path / "a_file" / "run")
