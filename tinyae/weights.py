"""Model weights as safetensors: the file PyTorch, JAX and Hugging Face read.

A model's ``state_dict()`` already has PyTorch's names ("encoder.0.weight") and
layouts, so writing it as safetensors is all it takes to move a model across::

    tinyae.save_weights(model, "vae.safetensors")

    # in PyTorch, with the same architecture written in torch.nn:
    from safetensors.torch import load_file
    torch_model.load_state_dict(load_file("vae.safetensors"), strict=True)

and back (``safetensors.torch.save_file(torch_model.state_dict(), path)``, then
``tinyae.load_weights(model, path)``). Safetensors is a JSON header of names,
dtypes and shapes followed by the raw bytes: reading one runs no code (unlike
pickle). Only the weights travel; a training checkpoint (optimizer state, history,
random streams) stays a ``tinyae.checkpoint`` file.

Batch norm's ``num_batches_tracked`` (an int64 count in both libraries) is written
and read like any buffer; a file without it (older PyTorch models) still loads, and
the model keeps its own count.
"""
import os

import numpy

from . import backend
from .io import atomic_write_bytes
from .nn.module import LoadResult

# The file's dtypes tinyae can read: floats for the float parameters and buffers
# (cast to the model's dtype), integers for integer buffers (num_batches_tracked).
FLOAT_DTYPES = {"F16": "float16", "F32": "float32", "F64": "float64"}
INT_DTYPES = {"I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64",
              "U8": "uint8", "U16": "uint16", "U32": "uint32", "U64": "uint64"}
OPTIONAL_KEYS = ("num_batches_tracked",)  # may be absent from a file, as in PyTorch


class WeightsError(ValueError):
    """A weights file does not fit the model, or is not a readable safetensors file."""


def _safetensors():
    try:
        import safetensors
        import safetensors.numpy
    except ImportError:
        raise ImportError("tinyae.save_weights / load_weights need the safetensors package: "
                          "pip install safetensors") from None
    return safetensors


def save_weights(model, path, metadata=None):
    """Write ``model``'s parameters and buffers to ``path`` as safetensors, atomically.

    The keys and layouts are PyTorch's, so ``safetensors.torch.load_file(path)`` loads
    into the same architecture written in ``torch.nn`` with ``strict=True``. Arrays are
    copied to the host first (CuPy models too). ``metadata``: optional str -> str
    pairs stored in the header.

    Example::

        tinyae.save_weights(model, "model.safetensors")
    """
    safetensors = _safetensors()
    path = os.fspath(path)
    # numpy.require, not ascontiguousarray, which turns the 0-d num_batches_tracked into 1-d
    arrays = {key: numpy.require(backend.to_numpy(value), requirements="C")
              for key, value in model.state_dict().items()}
    header = {"format": "pt"}  # what Hugging Face's loaders expect of a PyTorch state dict
    header.update({str(k): str(v) for k, v in (metadata or {}).items()})
    payload = safetensors.numpy.save(arrays, metadata=header)
    atomic_write_bytes(path, payload)  # a crash mid-write leaves the previous file


def _read_header(path):
    """{key: (dtype code, shape)} of a safetensors file, read without loading the data."""
    safetensors = _safetensors()
    try:
        with safetensors.safe_open(path, framework="numpy") as file:
            return {key: (file.get_slice(key).get_dtype(), tuple(file.get_slice(key).get_shape()))
                    for key in file.keys()}
    except safetensors.SafetensorError as exc:
        raise WeightsError(f"{path}: not a readable safetensors file; it is truncated, "
                           f"corrupt or of another format ({exc})") from None


def _dtype_problem(key, code, array):
    """Why the file's dtype ``code`` cannot fill the model's ``array``, or None when it can."""
    kind = numpy.dtype(array.dtype).kind
    readable = FLOAT_DTYPES if kind == "f" else INT_DTYPES
    if code in readable:
        return None
    hint = " (convert it in PyTorch with .float() before saving)" if code == "BF16" else ""
    return (f"{key!r} has dtype {code} in the file, this model holds {array.dtype} and reads "
            f"{', '.join(readable)} into it{hint}")


def load_weights(model, path, strict=True):
    """Load a safetensors file (from ``save_weights``, or a PyTorch state dict saved with
    ``safetensors.torch.save_file``) into ``model``'s parameters and buffers, in place.

    Values keep the model's dtype and backend (they are copied to the GPU for a CuPy
    model). Every mismatch is reported at once, naming the file, the key, the expected
    and the actual shape or dtype: a file of another architecture, missing or extra keys
    (errors when ``strict``; otherwise skipped and returned), a dtype tinyae cannot hold
    (bfloat16, complex, bool), a truncated file. Returns ``(missing_keys, unexpected_keys)``.

    Example::

        model = tinyae.models.mlp_vae(784, hidden=(400,), latent_dim=20)
        tinyae.load_weights(model, "model.safetensors")
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"weights file {path!r} does not exist")
    header = _read_header(path)
    own = model.state_dict()
    missing = [key for key in own if key not in header
               and key.rsplit(".", 1)[-1] not in OPTIONAL_KEYS]
    unexpected = [key for key in header if key not in own]
    problems = []
    for key, array in own.items():
        if key not in header:
            continue
        code, shape = header[key]
        expected = tuple(int(n) for n in array.shape)
        if shape != expected:
            problems.append(f"{key!r} has shape {shape} in the file, this model expects "
                            f"{expected}")
        problem = _dtype_problem(key, code, array)
        if problem:
            problems.append(problem)
    if strict and missing:
        problems.append(f"missing from the file: {', '.join(map(repr, missing))}")
    if strict and unexpected:
        problems.append(f"in the file but not in this model: {', '.join(map(repr, unexpected))}")
    if problems:
        raise WeightsError(
            f"{path}: the weights do not fit this {type(model).__name__}: "
            + "; ".join(problems) + ". Build the model with the same arguments as the one "
            "that was saved" + (" (or pass strict=False to skip missing and extra keys)"
                                if strict and (missing or unexpected) else ""))
    safetensors = _safetensors()
    wanted = [key for key in own if key in header]
    try:
        with safetensors.safe_open(path, framework="numpy") as file:
            state = {key: file.get_tensor(key) for key in wanted}
    except safetensors.SafetensorError as exc:
        raise WeightsError(f"{path}: cannot read the weights; the file is truncated or "
                           f"corrupt ({exc})") from None
    model.load_state_dict(state, strict=False)  # copies to each tensor's dtype and backend
    return LoadResult(missing, unexpected)
