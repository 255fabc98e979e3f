"""The array backend: NumPy on the CPU or CuPy on an NVIDIA GPU.

One code base runs on both. Code that computes on tensor data never imports
``numpy`` for it; it asks this module for the array module (``xp``) of the
active backend, or of the arrays it was handed (the DeZero/Chainer idiom)::

    xp = tinyae.backend.get_array_module(x)
    y = xp.exp(x)

Switching::

    tinyae.set_backend("cupy")          # for the rest of the program
    with tinyae.using_backend("cupy"):  # for a block
        ...
    TINYAE_BACKEND=cupy python train.py # from the environment

Host-side bookkeeping (file formats, shapes, metrics on NumPy arrays) may use
NumPy directly; this module is the one place that knows which module holds the
tensor data. It also holds the two helpers every other module shares: the
host copy of values (``to_numpy``) and the seed-to-Generator rule
(``as_generator``). tests/test_backend.py checks that the rest of the package
keeps to this.
"""
import contextlib
import os
import warnings

import numpy

BACKENDS = ("numpy", "cupy")


class BackendError(RuntimeError):
    """A backend was asked for that cannot run here, or arrays of two backends met."""


_active = {"name": "numpy", "xp": numpy}


def _load_cupy():
    """Import CuPy and check that a CUDA device is present; say which is missing."""
    try:
        import cupy
    except ImportError as exc:
        raise BackendError(
            "backend 'cupy' asked for, but CuPy is not installed "
            f"({exc}). Install the gpu extra: pip install 'tinyae[gpu]' "
            "(CUDA 12) or pip install cupy-cuda13x (CUDA 13).") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError when no driver is present
        raise BackendError(
            "backend 'cupy' asked for: CuPy is installed but no CUDA device is "
            f"usable ({exc}).") from None
    if count < 1:
        raise BackendError(
            "backend 'cupy' asked for: CuPy is installed but no CUDA device is "
            "present.")
    return cupy


def cupy_available():
    """True when CuPy imports and at least one CUDA device is usable."""
    try:
        _load_cupy()
    except BackendError:
        return False
    return True


def set_backend(name):
    """Make ``name`` ("numpy" or "cupy") the backend for new tensors and parameters.

    Raises BackendError (and leaves the active backend as it was) when CuPy or a
    CUDA device is missing.
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {BACKENDS}")
    xp = numpy if name == "numpy" else _load_cupy()
    _active["name"], _active["xp"] = name, xp


def get_backend():
    """The active backend's name: "numpy" or "cupy"."""
    return _active["name"]


@contextlib.contextmanager
def using_backend(name):
    """Run a block on backend ``name``, then restore the previous one.

    Example::

        with tinyae.using_backend("cupy"):
            model.to("cupy")
    """
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def xp():
    """The active backend's array module (``numpy`` or ``cupy``)."""
    return _active["xp"]


def backend_of(array):
    """The name of the backend that holds ``array``: "numpy" or "cupy"."""
    module = type(array).__module__
    if module.startswith("cupy"):
        return "cupy"
    return "numpy"


def get_array_module(*arrays):
    """The array module of ``arrays``; they must all live on one backend."""
    names = {backend_of(a) for a in arrays if a is not None}
    if len(names) > 1:
        raise BackendError(
            "arrays from two backends met in one operation: numpy and cupy. "
            "Move them to one backend first (Tensor.to or Module.to).")
    if names == {"cupy"}:
        import cupy
        return cupy
    return numpy


def to_numpy(values, copy=False):
    """A host NumPy array holding ``values``: a NumPy or CuPy array, a Tensor, or a list.

    The result is a copy when the values were on the GPU or ``copy=True``;
    otherwise it may share memory with a NumPy array that was passed in.
    """
    from .autograd import Tensor  # here, not at the top: autograd imports this module
    if isinstance(values, Tensor):
        values = values.data
    if backend_of(values) == "cupy":
        return values.get()
    return numpy.array(values, copy=True) if copy else numpy.asarray(values)


def as_generator(rng=None, default=None):
    """A host NumPy Generator from ``rng``: a Generator (used as it is), an int seed or a
    sequence of ints (a new Generator), or None (``default``, or fresh entropy when
    there is no default).

    Random draws happen on the host, so one seed gives the same numbers on NumPy and CuPy.
    """
    if rng is None and default is not None:
        return default
    if isinstance(rng, numpy.random.Generator):
        return rng
    return numpy.random.default_rng(rng)


def to_backend(array, name=None):
    """``array`` moved to backend ``name`` (default: the active one)."""
    name = name or get_backend()
    if name == "numpy":
        return to_numpy(array)
    cupy = _load_cupy()
    return cupy.asarray(array)


def scatter_add(target, index, values):
    """``target[index] += values`` that adds repeated indices up (np.add.at)."""
    if backend_of(target) == "cupy":
        import cupyx
        cupyx.scatter_add(target, index, values)
    else:
        numpy.add.at(target, index, values)


def _init_from_environment():
    """Honour ``TINYAE_BACKEND``; when it cannot be honoured, warn and stay on numpy, so
    that ``import tinyae`` (and ``tinyae --help``) still work."""
    name = os.environ.get("TINYAE_BACKEND", "").strip().lower()
    if not name:
        return
    try:
        set_backend(name)
    except (BackendError, ValueError) as exc:
        warnings.warn(f"TINYAE_BACKEND={name} could not be honoured, so the numpy backend "
                      f"is active: {exc}", RuntimeWarning, stacklevel=2)


_init_from_environment()
