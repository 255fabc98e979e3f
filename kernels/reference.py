"""Plain reference versions of the hot kernels, written for reading.

Every fast kernel in this package (Numba on the CPU, CuPy on the GPU) has its
plain counterpart here, on whatever array module its inputs use, and a test
that the two agree. Read these first.

Convolution is lowered to one matrix product through the *column matrix*:

    cols[(c, i, j), (n, oh, ow)] = x_padded[n, c, oh*sh + i, ow*sw + j]

of shape (C*KH*KW, N*OH*OW), so that conv2d is  W.reshape(OC, -1) @ cols.
``col2im`` is the adjoint of ``im2col``: it adds every column entry back to the
pixel it came from (overlapping windows add up). Tutorial 06 derives both.
"""


def _array_module(x):
    if type(x).__module__.startswith("cupy"):
        import cupy
        return cupy
    import numpy
    return numpy


def conv_output_size(size, kernel, stride, padding, dilation=1):
    """PyTorch's output size of a convolution along one axis."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def im2col(x, kh, kw, sh, sw, ph, pw):
    """x (N, C, H, W) -> cols (C*kh*kw, N*OH*OW), the column matrix above."""
    xp = _array_module(x)
    n, c, h, w = x.shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    padded = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = xp.empty((c, kh, kw, n, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            window = padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
            cols[:, i, j] = window.transpose(1, 0, 2, 3)
    return cols.reshape(c * kh * kw, n * oh * ow)


def col2im(cols, x_shape, kh, kw, sh, sw, ph, pw):
    """The adjoint of im2col: cols (C*kh*kw, N*OH*OW) -> x (N, C, H, W), overlaps summed."""
    xp = _array_module(cols)
    n, c, h, w = x_shape
    oh = conv_output_size(h, kh, sh, ph)
    ow = conv_output_size(w, kw, sw, pw)
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    padded = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            padded[:, :, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += \
                cols[:, i, j].transpose(1, 0, 2, 3)
    return padded[:, :, ph:ph + h, pw:pw + w]
