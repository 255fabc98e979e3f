"""tinyae: autoencoders and generative models from scratch, on NumPy or CuPy.

The public surface (see README.md for the full list)::

    import tinyae
    x = tinyae.tensor([[1.0, 2.0]], requires_grad=True)
    loss = (x * x).sum()
    loss.backward()

Importing tinyae changes nothing outside it: matplotlib loads with the first plot,
and the allocator tuning of ``tinyae.runtime`` happens where training starts.
"""
from .backend import (BackendError, get_backend, set_backend, using_backend,
                      cupy_available)
from .autograd import Tensor, Parameter, tensor, no_grad, is_grad_enabled
from .ops import (add, sub, mul, div, neg, pow, matmul, exp, log, sqrt, tanh, sigmoid,
                  relu, leaky_relu, softplus, clip, maximum, minimum, sum, mean, max,
                  reshape, transpose, permute, getitem, concatenate, stack, pad, flatten)
from .ops import softmax, log_softmax, eq, ne, lt, le, gt, ge
from .gradcheck import gradcheck, GradcheckError, check_finite
from . import functional, nn, losses, optim, data, plot, models, callbacks, metrics, runtime
from .train import train, evaluate, History, TrainingDivergedError
from .checkpoint import save, load, CheckpointError
from .weights import save_weights, load_weights, WeightsError

__version__ = "0.1.0"
