"""Saving and loading training state: one ``.npz`` file, never pickle.

A checkpoint is any nesting of dicts, lists and tuples whose leaves are arrays
(NumPy or CuPy), Python numbers, strings, booleans or None: a model's
``state_dict()``, an optimizer's, the epoch and the loss history::

    tinyae.checkpoint.save({"model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "epoch": epoch, "history": history}, "run/last.npz")
    state = tinyae.checkpoint.load("run/last.npz")
    model.load_state_dict(state["model"])

The file is a plain ``numpy.savez`` archive. Each array is stored under its path
in the nesting (``"arrays/model/encoder.0.weight"``), as a host NumPy array, so
``numpy.load`` can read it anywhere. The nesting itself and every non-array value
are described by a JSON *manifest*, stored as a uint8 array, which records each
value's type: int dict keys stay ints, tuples stay tuples, 3 stays an int and
3.0 a float. Loading uses ``numpy.load(..., allow_pickle=False)``, so opening a
checkpoint never runs code from the file.

Saving is atomic: the archive is written to a temporary file beside the target,
flushed to disk, and renamed over it, so a crash mid-save leaves the previous
checkpoint intact.
"""
import json
import os
import secrets
import zipfile
import zlib

import numpy

from . import backend
from .autograd import Tensor

MANIFEST_KEY = "__tinyae_manifest__"
FORMAT = "tinyae-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file is not a readable tinyae checkpoint, or a value cannot be stored in one."""


def _is_array(value):
    """A NumPy or CuPy array (not a NumPy scalar, not a Tensor)."""
    return isinstance(value, numpy.ndarray) or backend.backend_of(value) == "cupy"


# ---------------------------------------------------------------- flattening
def _encode(value, path, arrays):
    """The manifest node for ``value``; its arrays go into ``arrays`` under path keys."""
    where = "/".join(str(p) for p in path) or "the checkpoint"
    if value is None:
        return {"type": "none"}
    if isinstance(value, bool):  # before int: bool is a subclass of int
        return {"type": "bool", "value": value}
    if isinstance(value, int):
        return {"type": "int", "value": value}
    if isinstance(value, float):
        return {"type": "float", "value": value}
    if isinstance(value, str):
        return {"type": "str", "value": value}
    if isinstance(value, numpy.generic):  # a NumPy scalar, e.g. numpy.float32(0.5)
        return {"type": "numpy_scalar", "key": _store(numpy.asarray(value), path, arrays)}
    if _is_array(value):
        return {"type": "array", "key": _store(backend.to_numpy(value), path, arrays)}
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise CheckpointError(f"checkpoint: a dict key at {where} is {key!r} of type "
                                      f"{type(key).__name__}; only str and int keys are stored")
            items.append([key, _encode(item, path + [key], arrays)])  # JSON keeps 3 vs "3"
        return {"type": "dict", "items": items}
    if isinstance(value, (list, tuple)):
        return {"type": type(value).__name__,
                "items": [_encode(item, path + [i], arrays) for i, item in enumerate(value)]}
    hint = " (save tensor.data, or a state_dict())" if isinstance(value, Tensor) else ""
    raise CheckpointError(f"checkpoint: cannot store the {type(value).__name__} at {where}"
                          f"{hint}; a checkpoint holds dicts, lists, tuples, arrays, numbers, "
                          "strings, booleans and None")


def _store(array, path, arrays):
    """Put a host array under a unique key derived from its path; return the key."""
    where = "/".join(str(p) for p in path)
    if array.dtype.hasobject:
        raise CheckpointError(f"checkpoint: the array at {where or 'the top level'} has dtype "
                              f"{array.dtype}, which can only be stored with pickle; convert "
                              "it to a numeric dtype")
    key = "arrays/" + where
    suffix = 1
    while key in arrays:  # two paths can print alike, e.g. {"a/b": x} and {"a": {"b": y}}
        key = f"arrays/{where}~{suffix}"
        suffix += 1
    arrays[key] = array
    return key


def _decode(node, arrays, path):
    kind = node["type"]
    if kind == "none":
        return None
    if kind in ("bool", "int", "float", "str"):
        return node["value"]
    if kind == "array":
        return arrays[node["key"]]
    if kind == "numpy_scalar":
        return arrays[node["key"]][()]
    if kind == "dict":
        return {key: _decode(item, arrays, path) for key, item in node["items"]}
    if kind in ("list", "tuple"):
        items = [_decode(item, arrays, path) for item in node["items"]]
        return items if kind == "list" else tuple(items)
    raise CheckpointError(f"{path}: unknown value type {kind!r} in the manifest")


def _array_keys(node):
    """Every array key a manifest node refers to."""
    if node["type"] in ("array", "numpy_scalar"):
        yield node["key"]
    elif node["type"] == "dict":
        for _, item in node["items"]:
            yield from _array_keys(item)
    elif node["type"] in ("list", "tuple"):
        for item in node["items"]:
            yield from _array_keys(item)


# ---------------------------------------------------------------- save and load
def save(obj, path):
    """Write ``obj`` (nested dicts/lists/tuples of arrays and plain values) to ``path`` atomically.

    Arrays are copied to the host. Raises CheckpointError for values that cannot
    be stored without pickle (objects, object arrays), naming where they are.

    Example::

        tinyae.checkpoint.save({"model": model.state_dict(), "epoch": 3}, "last.npz")
    """
    path = os.fspath(path)
    arrays = {}
    root = _encode(obj, [], arrays)
    manifest = json.dumps({"format": FORMAT, "version": VERSION, "root": root})
    arrays[MANIFEST_KEY] = numpy.frombuffer(manifest.encode("utf-8"), dtype=numpy.uint8)

    temporary = f"{path}.{secrets.token_hex(4)}.tmp"  # same directory: os.replace stays atomic
    try:
        with open(temporary, "xb") as file:
            numpy.savez(file, allow_pickle=False, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


def check_writable(directory):
    """Make ``directory`` (and its parents) if needed and write and remove a small file
    there, so that a training run learns before its first step that checkpoints cannot
    be saved. Raises OSError naming the folder.
    """
    directory = os.fspath(directory)
    probe = os.path.join(directory, f".write-test.{secrets.token_hex(4)}.tmp")
    try:
        os.makedirs(directory, exist_ok=True)
        with open(probe, "xb"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise OSError(f"checkpoint: cannot write checkpoints to the folder {directory!r} "
                      f"({type(exc).__name__}: {exc}); choose a folder you can write to") from exc


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load(path):
    """Read a checkpoint written by ``save``: the same nesting, with host NumPy arrays.

    Never unpickles. Raises FileNotFoundError for a missing file and CheckpointError
    (naming the file, and the array key where one is at fault) for a truncated or
    corrupt file, an .npz that is not a tinyae checkpoint, or an object array.

    Example::

        state = tinyae.checkpoint.load("last.npz")
        model.load_state_dict(state["model"])
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    key = None  # the archive member being read, named in errors
    try:
        archive = numpy.load(path, allow_pickle=False)
        if not isinstance(archive, numpy.lib.npyio.NpzFile):
            raise CheckpointError(f"{path}: a single .npy array, not a tinyae checkpoint "
                                  "(an .npz written by tinyae.checkpoint.save)")
        with archive:
            if MANIFEST_KEY not in archive.files:
                raise CheckpointError(
                    f"{path}: an .npz archive without a tinyae manifest, so not a tinyae "
                    "checkpoint; read its arrays with numpy.load instead")
            key = MANIFEST_KEY
            manifest = json.loads(bytes(archive[MANIFEST_KEY]).decode("utf-8"))
            if manifest.get("format") != FORMAT:
                raise CheckpointError(f"{path}: the manifest is not a {FORMAT} manifest")
            if manifest.get("version", 0) > VERSION:
                raise CheckpointError(
                    f"{path}: checkpoint format version {manifest['version']} is newer than "
                    f"this tinyae reads ({VERSION}); upgrade tinyae")
            arrays = {}
            for key in _array_keys(manifest["root"]):
                if key not in archive.files:
                    raise CheckpointError(f"{path}: array {key!r} named in the manifest is "
                                          "missing from the archive")
                arrays[key] = archive[key]
    except CheckpointError:
        raise
    except ValueError as exc:
        if "Object arrays" in str(exc):
            raise CheckpointError(
                f"{path}: array {key!r} holds Python objects (dtype object), which could only "
                "be read with pickle; tinyae never unpickles") from None
        raise _corrupt(path, key, exc) from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, UnicodeDecodeError,
            TypeError) as exc:
        raise _corrupt(path, key, exc) from exc
    return _decode(manifest["root"], arrays, path)


def _corrupt(path, key, exc):
    where = f" (reading {key!r})" if key else ""
    return CheckpointError(f"{path}: cannot read the checkpoint{where}: it is truncated or "
                           f"corrupt ({type(exc).__name__}: {exc})")
