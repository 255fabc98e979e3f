"""Autoencoders: an encoder to a code, a decoder back, trained to reproduce the input.

    code = encoder(x)            x_hat = decoder(code)          loss = L(x_hat, x)

``Autoencoder`` wraps any encoder and decoder; ``mlp_autoencoder`` and
``conv_autoencoder`` build the study's networks; ``DenoisingAutoencoder``
corrupts its input during training and learns to restore the clean one.

This module also holds what every model of ``tinyae.models`` shares: the
*training-step protocol* that ``tinyae.train`` drives, the input-shape check,
and the stacks of layers the builders use.

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
import contextlib
import math

import numpy

from .. import backend, data, losses, nn
from ..autograd import Tensor, no_grad

RECONSTRUCTION_LOSSES = ("bce", "mse", "euclidean")


class NonFiniteLossError(FloatingPointError):
    """A loss came out NaN or Inf; raised before the optimizer step, so no weight changed."""

    def __init__(self, component, value):
        self.component, self.value = component, value
        super().__init__(f"the loss component {component!r} is {value}")


# ---------------------------------------------------------------- small shared helpers
def as_input(x, like=None):
    """``x`` as a Tensor: a Tensor as it is; an array (NumPy or CuPy) as float32, on the
    backend of the tensor ``like`` (default: the active backend)."""
    if isinstance(x, Tensor):
        return x
    where = None if like is None else like.backend
    return Tensor(backend.to_backend(x, where).astype(numpy.float32, copy=False))


def standard_normal(rng, shape, like):
    """Draws of N(0, 1) in float32 from the host Generator ``rng``, on ``like``'s backend.

    Drawing on the host makes one seed give the same numbers on NumPy and CuPy.
    """
    values = rng.standard_normal(tuple(shape), dtype=numpy.float32)
    values = values.astype(like.dtype, copy=False)
    return Tensor(backend.to_backend(values, like.backend))


def as_generator(rng, default):
    """A NumPy Generator from ``rng``: a Generator, an int seed, or None for ``default``."""
    if rng is None:
        return default
    if isinstance(rng, numpy.random.Generator):
        return rng
    return numpy.random.default_rng(rng)


@contextlib.contextmanager
def evaluating(model):
    """Eval mode and no graph inside the block; the previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        model.train(was_training)


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


def check_finite(components):
    """Raise NonFiniteLossError for the first NaN or Inf among the float ``components``."""
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
        self.rng = numpy.random.default_rng(0)

    def as_input(self, x):
        """``x`` as a Tensor on this model's backend (arrays become float32)."""
        return as_input(x, like=next(self.parameters(), None))

    def split_batch(self, batch):
        """A batch as ``(x, y)``: x a Tensor on this model's backend; a bare x has y = None."""
        x, y = batch if isinstance(batch, (tuple, list)) else (batch, None)
        return self.as_input(x), y

    def loss_components(self, batch):
        raise NotImplementedError(f"{type(self).__name__} must define loss_components(batch)")

    def make_optimizers(self, make):
        return {"model": make(self.parameters())}

    def check_batch(self, x, y=None):
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
        check_finite(values)
        components["loss"].backward()
        optimizer.step()
        return values

    def validation_step(self, batch):
        with evaluating(self):
            return scalar_values(self.loss_components(batch))


# ---------------------------------------------------------------- the autoencoder
def reconstruction_loss(name, x_hat, x, reduction="mean"):
    """The reconstruction error ``name`` ("bce", "mse" or "euclidean") of x_hat against x."""
    if name == "bce":
        return losses.bce(x_hat, x, reduction=reduction)
    if name == "mse":
        return losses.mse(x_hat, x, reduction=reduction)
    return losses.euclidean(x_hat, x, reduction=reduction)


def check_loss_name(name, allowed=RECONSTRUCTION_LOSSES):
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


class Autoencoder(TrainableModel):
    """An encoder and a decoder trained to reproduce the input.

    Args:
        encoder, decoder: Modules; ``decoder(encoder(x))`` has the input's shape
            (or, with ``flatten_input``, as many values).
        loss: "bce" (decoder ends in a sigmoid, data in [0, 1]; the mean over all
            pixels, as PyTorch's default), "mse" (mean over pixels) or "euclidean"
            (squared distance per image, mean over the batch).
        input_shape: the shape of one example, checked before training (None: no check).
        flatten_input: fully connected models: flatten (N, ...) inputs to (N, D)
            before the encoder and give reconstructions the input's shape back.

    Methods: ``encode(x)``, ``decode(z)``, ``reconstruct(x)``, ``embed(x)`` (the
    code used for analysis, here ``encode``), ``forward(x)`` = ``decode(encode(x))``.

    Example::

        model = Autoencoder(Sequential(Flatten(), Dense(784, 32), ReLU()),
                            Sequential(Dense(32, 784), Sigmoid(), Reshape(1, 28, 28)),
                            loss="bce", input_shape=(1, 28, 28))
        history = tinyae.train(model, x_train, epochs=10, batch_size=256)
    """

    def __init__(self, encoder, decoder, loss="bce", input_shape=None, flatten_input=False):
        super().__init__(input_shape, flexible_input=flatten_input)
        self.encoder, self.decoder = encoder, decoder
        self.loss = check_loss_name(loss)
        self.flatten_input = flatten_input

    # --- the maps --------------------------------------------------------------
    def _flat(self, x):
        return x.reshape(x.shape[0], -1) if self.flatten_input else x

    def encode(self, x):
        """The code of each example: encoder(x)."""
        return self.encoder(self._flat(self.as_input(x)))

    def decode(self, z):
        """The decoder's output for codes ``z``, shaped as one example (``input_shape``)."""
        out = self.decoder(self.as_input(z))
        if self.flatten_input and self.input_shape is not None:
            out = out.reshape((out.shape[0],) + self.input_shape)
        return out

    def forward(self, x):
        """The reconstruction decoder(encoder(x)), in the input's shape."""
        x = self.as_input(x)
        out = self.decoder(self.encode(x))
        return out.reshape(x.shape) if self.flatten_input else out

    def embed(self, x):
        """The deterministic code used for analysis (sampling, PCA, neighbours), no graph."""
        with evaluating(self):
            return self.encode(x)

    def reconstruct(self, x):
        """decode(encode(x)) in eval mode, without a graph."""
        with evaluating(self):
            return self.forward(x)

    def sample(self, n, rng=None):
        raise NotImplementedError(
            f"{type(self).__name__} has no prior to sample codes from. Fit a "
            "tinyae.models.GMMSampler on its codes (model.embed(x)) and decode its samples, "
            "or train a VAE.")

    # --- training ----------------------------------------------------------------
    def check_batch(self, x, y=None):
        super().check_batch(x, y)
        check_bce_targets(type(self).__name__, self.loss, x)

    def loss_components(self, batch):
        """{"loss": L(decoder(encoder(x)), x)}."""
        x, _ = self.split_batch(batch)
        return {"loss": reconstruction_loss(self.loss, self.forward(x), x)}

    def extra_repr(self):
        return f"loss={self.loss!r}"


# ---------------------------------------------------------------- denoising
NOISE_KINDS = ("gaussian", "salt_and_pepper", "mask")


class DenoisingAutoencoder(Autoencoder):
    """An autoencoder that sees corrupted inputs in training and is scored on clean ones.

        loss = L(decoder(encoder(corrupt(x))), x)

    Corruption happens in training mode only (``model.train()``), drawn from
    ``self.rng``; in eval mode (validation, ``reconstruct``, ``denoise``) the
    input is used as given.

    Args (besides Autoencoder's):
        noise: "gaussian" (x + noise_level * N(0, 1), clipped to [0, 1] when
            ``clip``; the study uses 0.1), "salt_and_pepper" (a fraction
            noise_level of pixels set to 0 or 1) or "mask" (a fraction
            noise_level of pixels set to 0, Vincent et al.'s masking noise).
        noise_level: sigma, or the fraction of pixels corrupted.
    """

    def __init__(self, encoder, decoder, loss="bce", noise="gaussian", noise_level=0.1,
                 clip=True, input_shape=None, flatten_input=False):
        super().__init__(encoder, decoder, loss, input_shape, flatten_input)
        if noise not in NOISE_KINDS:
            raise ValueError(f"DenoisingAutoencoder: noise must be one of {NOISE_KINDS}, "
                             f"got {noise!r}")
        if noise_level < 0 or (noise != "gaussian" and noise_level > 1):
            raise ValueError(f"DenoisingAutoencoder: noise_level {noise_level} is out of range "
                             "(a sigma >= 0, or a fraction of pixels in [0, 1])")
        self.noise, self.noise_level, self.clip = noise, float(noise_level), clip

    def corrupt(self, x, rng=None):
        """A corrupted copy of ``x`` (a Tensor without a graph), drawn from ``rng``/``self.rng``."""
        x = self.as_input(x)
        rng = as_generator(rng, self.rng)
        if self.noise == "gaussian":
            noisy = data.gaussian_noise(x.data, self.noise_level, clip=self.clip, rng=rng)
        elif self.noise == "salt_and_pepper":
            noisy = data.salt_and_pepper(x.data, self.noise_level, rng=rng)
        else:
            keep = rng.random(x.shape, dtype=numpy.float32) >= self.noise_level
            noisy = x.data * backend.to_backend(keep.astype(x.dtype), x.backend)
        return Tensor(noisy.astype(x.dtype, copy=False))

    def loss_components(self, batch):
        x, _ = self.split_batch(batch)
        seen = self.corrupt(x) if self.training else x
        return {"loss": reconstruction_loss(self.loss, self.forward(seen), x)}

    def denoise(self, x):
        """The model's restoration of (already noisy) images ``x``: ``reconstruct(x)``."""
        return self.reconstruct(x)

    def extra_repr(self):
        return f"loss={self.loss!r}, noise={self.noise!r}, noise_level={self.noise_level}"


# ---------------------------------------------------------------- layer stacks for builders
ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


def activation_layer(name):
    """A new activation layer by name, or None for "linear"/None (no activation)."""
    if name in (None, "linear"):
        return None
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)} "
                         "or None")
    return ACTIVATIONS[name]()


def mlp_layers(sizes, activation, last_activation, batch_norm=False):
    """Dense layers sizes[0] -> sizes[1] -> ... with ``activation`` between them and
    ``last_activation`` after the last (a list of layers for Sequential). With
    ``batch_norm``, a BatchNorm1d sits between each inner Dense and its activation
    (not after the last layer, which is a code or an output)."""
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Dense(n_in, n_out))
        last = i == len(sizes) - 2
        if batch_norm and not last:
            layers.append(nn.BatchNorm1d(n_out))
        act = activation_layer(last_activation if last else activation)
        if act is not None:
            layers.append(act)
    return layers


def split_hidden(hidden, latent_dim):
    """(encoder hidden sizes, code size, decoder hidden sizes) from a builder's ``hidden``.

    If ``hidden`` has an odd length and its middle entry is ``latent_dim`` (or
    ``latent_dim`` is None), it is the whole stack as written in the study,
    encoder and decoder: [512, 128, 32, 128, 512]. Otherwise it lists the
    encoder's hidden layers and the decoder mirrors them: [512, 128] with
    latent_dim=32 builds the same network.
    """
    hidden = [int(n) for n in hidden]
    middle = len(hidden) // 2
    if len(hidden) % 2 == 1 and (latent_dim is None or hidden[middle] == latent_dim):
        return hidden[:middle], hidden[middle], hidden[middle + 1:]
    if latent_dim is None:
        raise ValueError(f"hidden={hidden} has no middle (code) layer; give latent_dim, or "
                         "list the whole stack with the code in the middle, e.g. "
                         "[512, 128, 32, 128, 512]")
    return hidden, int(latent_dim), hidden[::-1]


def conv_output_size(size, kernel_size, stride, padding):
    """Conv2d's output size along one axis: floor((size + 2 padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel_size) // stride + 1


def transposed_output_padding(target, size, kernel_size, stride, padding):
    """The output_padding that makes ConvTranspose2d map ``size`` back to exactly ``target``.

    ConvTranspose2d gives (size - 1) stride - 2 padding + kernel + output_padding.
    """
    padding_needed = target - ((size - 1) * stride - 2 * padding + kernel_size)
    if not 0 <= padding_needed < stride:
        raise ValueError(f"a transposed convolution (kernel {kernel_size}, stride {stride}, "
                         f"padding {padding}) cannot map {size} back to {target} pixels; "
                         "choose another kernel_size/padding")
    return padding_needed


def conv_encoder_stack(input_shape, channels, kernel_size=3, stride=2, padding=1):
    """Conv2d + BatchNorm2d + LeakyReLU(0.2) per entry of ``channels``, then Flatten.

    Returns (Sequential, feature_dim, sizes) where ``sizes`` lists the (H, W) after
    each convolution, starting with the input's.
    """
    c, h, w = _image_shape(input_shape)
    layers, sizes = [], [(h, w)]
    for out_channels in channels:
        layers += [nn.Conv2d(c, out_channels, kernel_size, stride=stride, padding=padding),
                   nn.BatchNorm2d(out_channels), nn.LeakyReLU(0.2)]
        h, w = (conv_output_size(h, kernel_size, stride, padding),
                conv_output_size(w, kernel_size, stride, padding))
        if h < 1 or w < 1:
            raise ValueError(f"{len(channels)} stride-{stride} convolutions shrink a "
                             f"{input_shape[1]}x{input_shape[2]} image to nothing; use fewer "
                             "channels entries")
        sizes.append((h, w))
        c = out_channels
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), c * h * w, sizes


def conv_decoder_stack(latent_dim, input_shape, channels, sizes, kernel_size=3, stride=2,
                       padding=1, out_activation="sigmoid"):
    """The mirror of ``conv_encoder_stack``: Dense + Reshape, then one ConvTranspose2d per
    convolution (BatchNorm2d + LeakyReLU(0.2) after all but the last, which ends in
    ``out_activation``), each output_padding chosen so the sizes retrace ``sizes`` exactly.
    """
    c_in = _image_shape(input_shape)[0]
    h, w = sizes[-1]
    layers = [nn.Dense(latent_dim, channels[-1] * h * w), nn.Reshape(channels[-1], h, w)]
    targets = list(reversed(sizes[:-1]))                  # the sizes to climb back to
    outs = list(reversed(channels[:-1])) + [c_in]         # channels after each transpose
    ins = list(reversed(channels))
    for i, ((th, tw), c_from, c_to) in enumerate(zip(targets, ins, outs)):
        h_pad = transposed_output_padding(th, h, kernel_size, stride, padding)
        w_pad = transposed_output_padding(tw, w, kernel_size, stride, padding)
        layers.append(nn.ConvTranspose2d(c_from, c_to, kernel_size, stride=stride,
                                         padding=padding, output_padding=(h_pad, w_pad)))
        if i < len(targets) - 1:
            layers += [nn.BatchNorm2d(c_to), nn.LeakyReLU(0.2)]
        else:
            act = activation_layer(out_activation)
            if act is not None:
                layers.append(act)
        h, w = th, tw
    return nn.Sequential(*layers)


def _image_shape(input_shape):
    shape = tuple(int(n) for n in input_shape)
    if len(shape) != 3:
        raise ValueError(f"a convolutional model needs input_shape=(channels, height, width), "
                         f"got {input_shape!r}")
    return shape


# ---------------------------------------------------------------- builders
def mlp_autoencoder(input_dim, hidden, latent_dim=None, activation="relu",
                    out_activation="sigmoid", loss="bce", code_activation="same", noise=None,
                    noise_level=0.1, batch_norm=False):
    """A fully connected autoencoder, as in the study's networks.

    Args:
        input_dim: values per example (784), or an example's shape ((1, 28, 28)),
            in which case ``decode`` returns images of that shape. Inputs of any
            shape with that many values are flattened; ``forward`` and
            ``reconstruct`` give back the input's shape.
        hidden: the hidden layer sizes. Either the whole stack with the code in
            the middle, as the study writes it, or only the encoder's layers,
            mirrored for the decoder (see ``split_hidden``)::

                [32]                                 784-32-784 (one hidden layer: the code)
                [512, 128, 32, 128, 512]             784-512-128-32-128-512-784
                [512, 256, 128, 64, 32, 64, 128, 256, 512]
                [512, 128] with latent_dim=32        the same as the second

        latent_dim: the code size (the middle entry of a whole stack, may be omitted then).
        activation: after each hidden layer ("relu", "leaky_relu", "tanh", ...).
        code_activation: after the code layer: "same" (as ``activation``, as in
            the study) or None for a linear code.
        out_activation: after the output layer ("sigmoid" for loss="bce").
        batch_norm: put a BatchNorm1d between each hidden Dense and its activation
            (not on the code or the output). The 9-hidden-layer stack reaches a
            given reconstruction error in far fewer epochs with it (see
            benchmarks/RESULTS.md).
        noise, noise_level: give a noise kind ("gaussian", "salt_and_pepper",
            "mask") to build a DenoisingAutoencoder.

    Example::

        model = mlp_autoencoder((1, 28, 28), [512, 128, 32, 128, 512])
    """
    shape = image_shape_of(input_dim)
    n_in = math.prod(shape)
    encoder_hidden, code, decoder_hidden = split_hidden(hidden, latent_dim)
    code_act = activation if code_activation == "same" else code_activation
    encoder = nn.Sequential(*mlp_layers([n_in] + encoder_hidden + [code], activation, code_act,
                                        batch_norm))
    decoder = nn.Sequential(*mlp_layers([code] + decoder_hidden + [n_in], activation,
                                        out_activation, batch_norm))
    if noise is None:
        return Autoencoder(encoder, decoder, loss, input_shape=shape, flatten_input=True)
    return DenoisingAutoencoder(encoder, decoder, loss, noise=noise, noise_level=noise_level,
                                input_shape=shape, flatten_input=True)


def conv_autoencoder(input_shape, channels=(32, 64), latent_dim=32, kernel_size=3,
                     loss="bce", noise=None, noise_level=0.1):
    """A convolutional autoencoder for images of ``input_shape`` = (C, H, W), any H and W.

    Encoder: per entry of ``channels`` a Conv2d (stride 2, padding 1) + BatchNorm2d
    + LeakyReLU(0.2), then Flatten and a Dense code of ``latent_dim``. Decoder:
    Dense + Reshape and the mirrored ConvTranspose2d stack, its output_padding
    chosen so the output is exactly H x W, ending in a sigmoid.

    Example::

        model = conv_autoencoder((1, 28, 28), channels=(32, 64), latent_dim=16)
    """
    shape = _image_shape(input_shape)
    features, feature_dim, sizes = conv_encoder_stack(shape, channels, kernel_size)
    encoder = nn.Sequential(features, nn.Dense(feature_dim, latent_dim))
    decoder = conv_decoder_stack(latent_dim, shape, list(channels), sizes, kernel_size)
    if noise is None:
        return Autoencoder(encoder, decoder, loss, input_shape=shape)
    return DenoisingAutoencoder(encoder, decoder, loss, noise=noise, noise_level=noise_level,
                                input_shape=shape)
