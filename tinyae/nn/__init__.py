"""Layers and models: ``Module``, ``Sequential`` and the layers, with PyTorch's names,
parameter layouts and default initialisation.

Example::

    from tinyae import nn
    nn.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Dense(16 * 14 * 14, 10))
    y = model(x)          # x: (N, 1, 28, 28) -> y: (N, 10)
    print(model)          # layers, output shapes of the last call, parameter counts

The functions behind the layers are in ``tinyae.functional``.
"""
from ..autograd import Parameter
from .module import Module, Sequential, LoadResult, evaluating
from .layers import (manual_seed, Dense, Linear, Conv2d, ConvTranspose2d, BatchNorm1d,
                     BatchNorm2d, ReLU, LeakyReLU, Sigmoid, Tanh, Softplus, Dropout, Flatten,
                     Reshape)
from .layers import MaxPool2d, AvgPool2d, Softmax, LogSoftmax

__all__ = ["Parameter", "Module", "Sequential", "LoadResult", "evaluating", "manual_seed",
           "Dense", "Linear", "Conv2d", "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d", "ReLU",
           "LeakyReLU", "Sigmoid", "Tanh", "Softplus", "Dropout", "Flatten", "Reshape"]
__all__ += ["MaxPool2d", "AvgPool2d", "Softmax", "LogSoftmax"]
