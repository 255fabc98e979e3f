"""What every model of ``tinyae.models`` shares: the training-step protocol that
``tinyae.train`` drives, its error, and the small helpers the models use.

The training-step protocol
--------------------------
A model that ``tinyae.train`` can train has:

- ``rng``: the NumPy Generator its random draws come from (noise, corruption,
  latent samples). The trainer replaces it with one it owns and saves, so a
  resumed run draws the same numbers as an uninterrupted one.
- ``needs_labels``: True when a batch must carry labels (a label-conditioned model).
- ``make_optimizers(make)``: a dict name -> optimizer, ``make(parameters)``
  building one; an autoencoder has one ("model"), a GAN two.
- ``check_batch(x, y)``: raise a ValueError, naming both shapes, when data of
  this shape cannot go into the model (called before the first step).
- ``training_step(batch, optimizers, step)``: one optimisation step on a batch
  ``(x, y)`` (``y`` may be None); returns the loss components as Python floats.
  It raises ``NonFiniteLossError`` before updating anything when a loss is NaN or Inf.
- ``validation_step(batch)``: the same components, no update, no graph.

A model with one optimizer only writes ``loss_components(batch)``, a dict of
scalar tensors whose "loss" entry is minimised; ``TrainableModel`` does the rest.
"""
import math

from .. import backend, losses, nn
from ..autograd import Tensor
from ..backend import as_generator  # noqa: F401  (the models draw through it)
from ..nn import evaluating

RECONSTRUCTION_LOSSES = ("bce", "mse", "euclidean")


class NonFiniteLossError(FloatingPointError):
    """A loss came out NaN or Inf; raised before the optimizer step, so no weight changed."""

    def __init__(self, component, value):
        self.component, self.value = component, value
        super().__init__(f"the loss component {component!r} is {value}")


# ---------------------------------------------------------------- small shared helpers
def as_input(x, like=None):
    """``x`` as a Tensor on the backend of the tensor ``like`` (default: the active backend).

    The cast rule: a Tensor is used as it is (a layer refuses one whose dtype differs
    from its weights'); an array or list of numbers (bool, int or float, e.g. uint8
    pixels or float64 data) is data, converted to ``like``'s dtype (float32 without
    ``like``), since the model, not the data, decides the precision. Anything else
    (object, string or complex arrays) is refused with a TypeError.
    """
    if isinstance(x, Tensor):
        return x
    where = None if like is None else like.backend
    array = backend.to_backend(x, where)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"a model's input must be numbers (a Tensor or an array of bool, int "
                        f"or float), got an array of dtype {array.dtype}")
    dtype = "float32" if like is None else like.dtype
    return Tensor(array.astype(dtype, copy=False))


def standard_normal(rng, shape, like):
    """Draws of N(0, 1) from the host Generator ``rng`` in ``like``'s dtype, on ``like``'s
    backend.

    Drawing on the host (in float32, whatever ``like``'s dtype) makes one seed give the
    same numbers on NumPy and CuPy.
    """
    values = rng.standard_normal(tuple(shape), dtype="float32")
    values = values.astype(like.dtype, copy=False)
    return Tensor(backend.to_backend(values, like.backend))


def check_input_shape(model_name, expected, given, flexible):
    """Raise a ValueError naming both shapes when examples of shape ``given`` do not fit.

    ``expected`` is the shape of one example. A ``flexible`` (fully connected)
    model flattens its input, so any shape with as many values fits.
    """
    given = tuple(int(n) for n in given)
    if expected is None:
        return
    expected = tuple(expected)
    if flexible and math.prod(given) == math.prod(expected):
        return
    if not flexible and given == expected:
        return
    fits = (f"examples of {math.prod(expected)} values, e.g. shape {expected}" if flexible
            else f"examples of shape {expected}")
    raise ValueError(
        f"{model_name} takes {fits}, but the data's examples have shape {given} "
        f"(batches of shape (N, {', '.join(map(str, given))})). Build the model for this "
        "data's shape, or reshape the data.")


def check_finite_losses(components):
    """Raise NonFiniteLossError for the first NaN or Inf among the float ``components``.

    (``tinyae.check_finite`` is another check: it looks at gradients and arrays.)"""
    for name, value in components.items():
        if not math.isfinite(value):
            raise NonFiniteLossError(name, value)


def scalar_values(components):
    """The scalar tensors of a loss-components dict as Python floats (one sync each)."""
    return {name: float(value.item() if isinstance(value, Tensor) else value)
            for name, value in components.items()}


def image_shape_of(input_dim):
    """An int ``input_dim`` as the 1-tuple (input_dim,); a shape tuple as it is."""
    if isinstance(input_dim, (tuple, list)):
        return tuple(int(n) for n in input_dim)
    return (int(input_dim),)


# ---------------------------------------------------------------- the protocol, one optimizer
class TrainableModel(nn.Module):
    """The training-step protocol, with the steps of a model trained by one optimizer on
    one loss (a GAN overrides the steps and the optimizers).

    Subclasses pass ``input_shape`` (one example, or None to skip the check) and
    ``flexible_input`` (True for models that flatten their input), and write
    ``loss_components(batch)``.
    """

    needs_labels = False

    def __init__(self, input_shape=None, flexible_input=False):
        super().__init__()
        self.input_shape = None if input_shape is None else tuple(input_shape)
        self.flexible_input = flexible_input
        self.rng = as_generator(0)

    def as_input(self, x):
        """``x`` as a Tensor on this model's backend; arrays take the dtype of its
        parameters (see ``as_input``)."""
        return as_input(x, like=next(self.parameters(), None))

    def split_batch(self, batch):
        """A batch as ``(x, y)``: x a Tensor on this model's backend; a bare x has y = None."""
        x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
        return self.as_input(x), y

    def loss_components(self, batch):
        """A dict of scalar tensors for ``batch``; its "loss" entry is minimised."""
        raise NotImplementedError(f"{type(self).__name__} must define loss_components(batch)")

    def make_optimizers(self, make):
        """{"model": make(parameters)}: one optimizer for every parameter."""
        return {"model": make(self.parameters())}

    def check_batch(self, x, y=None):
        """Raise a ValueError, naming both shapes, when ``x`` (and ``y``) cannot go in."""
        check_input_shape(type(self).__name__, self.input_shape, tuple(x.shape[1:]),
                          self.flexible_input)
        if self.needs_labels and y is None:
            raise ValueError(f"{type(self).__name__} is conditioned on labels, but the data "
                             "has none: pass data=(x, y) or labels=y")

    def training_step(self, batch, optimizers, step=None):
        """Zero the gradients, compute the loss, check it is finite, backward, step."""
        optimizer = optimizers["model"]
        optimizer.zero_grad()
        components = self.loss_components(batch)
        values = scalar_values(components)
        check_finite_losses(values)
        components["loss"].backward()
        optimizer.step()
        return values

    def validation_step(self, batch):
        """The loss components of ``batch`` as floats, in eval mode, without a graph."""
        with evaluating(self):
            return scalar_values(self.loss_components(batch))


# ---------------------------------------------------------------- reconstruction losses
def reconstruction_loss(name, x_hat, x, reduction="mean"):
    """The reconstruction error ``name`` ("bce", "mse" or "euclidean") of x_hat against x."""
    if name == "bce":
        return losses.bce(x_hat, x, reduction=reduction)
    if name == "mse":
        return losses.mse(x_hat, x, reduction=reduction)
    return losses.euclidean(x_hat, x, reduction=reduction)


def check_loss_name(name, allowed=RECONSTRUCTION_LOSSES):
    """``name`` if it is one of ``allowed``; a ValueError listing them otherwise."""
    if name not in allowed:
        raise ValueError(f"loss must be one of {allowed}, got {name!r}")
    return name


def check_bce_targets(model_name, loss, x):
    """BCE needs targets in [0, 1]: say so, with the data's range, before training starts."""
    if loss != "bce" or x.size == 0:
        return
    low, high = float(x.data.min()), float(x.data.max())
    if low < 0 or high > 1:
        raise ValueError(f"{model_name} with loss='bce' needs data in [0, 1], but this batch "
                         f"runs from {low:g} to {high:g}. Scale it (e.g. x / 255) or use "
                         "loss='mse'.")
