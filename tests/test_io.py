"""Atomic file output: the target is the old file or the complete new one, never half."""
import pathlib

import pytest

from tinyae.io import atomic_path, atomic_write_bytes


def leftovers(folder):
    return sorted(p.name for p in pathlib.Path(folder).iterdir() if p.name.startswith("."))


def test_atomic_write_replaces_the_file_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "weights.bin"
    assert atomic_write_bytes(target, b"first") == target
    atomic_write_bytes(target, b"second")
    assert target.read_bytes() == b"second"
    assert leftovers(tmp_path) == []


def test_the_temporary_file_sits_beside_the_target_and_keeps_its_extension(tmp_path):
    with atomic_path(tmp_path / "grid.png") as temporary:
        assert temporary.parent == tmp_path and temporary.suffix == ".png"
        assert temporary.name.startswith(".grid.png.")
        temporary.write_bytes(b"png")
    assert (tmp_path / "grid.png").read_bytes() == b"png"


def test_a_failure_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "summary.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="crash"):
        with atomic_path(target) as temporary:
            temporary.write_text("half of the new")
            raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_a_block_that_writes_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="must write to the path it yields"):
        with atomic_path(tmp_path / "empty.bin"):
            pass
    assert not (tmp_path / "empty.bin").exists()


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-dir does not exist"):
        atomic_write_bytes(tmp_path / "no-such-dir" / "x.bin", b"")
