"""The piece of cupyx that tinyae uses, for the emulated cupy (see tests/fakecupy/cupy)."""
import numpy

import cupy


def scatter_add(a, slices, value):
    """``a[slices] += value`` adding repeated indices up (numpy.add.at on device arrays)."""
    numpy.add.at(a, slices, value)
