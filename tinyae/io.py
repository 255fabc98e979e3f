"""Atomic file output: a file is either the old one or the complete new one, never half.

Plots, checkpoints and downloads are written to a temporary file in the target's
own directory and then renamed over the target with ``os.replace``, which is
atomic on POSIX and Windows when both names are on one file system. A crash or
Ctrl-C in the middle leaves the old file (or none) and no partial one::

    with atomic_path("figures/loss.png") as tmp:
        figure.savefig(tmp)              # written to figures/.loss.png.<random>.tmp.png

    atomic_write_bytes("weights.npz", payload)
"""
import contextlib
import os
import pathlib
import uuid


def _temporary_sibling(path):
    """A fresh, unused name beside ``path`` that keeps its extension.

    The extension is kept because writers such as ``savefig`` and ``np.save``
    choose the format from it (or append their own).
    """
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The temporary file is created by the caller's writer (so it gets the usual
    permissions). If the block raises, the temporary file is removed and the
    target is left untouched.

    Example::

        with atomic_path("out/grid.png") as tmp:
            fig.savefig(tmp)
    """
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {path}: the directory {path.parent} does not exist. "
            "Create it first (os.makedirs) or choose another path.")
    temporary = _temporary_sibling(path)
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(
                f"nothing was written to the temporary file {temporary} for {path}: "
                "the block given to atomic_path must write to the path it yields.")
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def atomic_write_bytes(path, data):
    """Write ``data`` (bytes) to ``path`` atomically, flushed to disk before the rename."""
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return pathlib.Path(path)
