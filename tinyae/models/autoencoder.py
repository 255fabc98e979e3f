"""Autoencoders: an encoder to a code, a decoder back, trained to reproduce the input.

    code = encoder(x)            x_hat = decoder(code)          loss = L(x_hat, x)

``Autoencoder`` wraps any encoder and decoder; ``mlp_autoencoder`` and
``conv_autoencoder`` build the study's networks; ``DenoisingAutoencoder``
corrupts its input during training and learns to restore the clean one.

The training-step protocol every model speaks, and the helpers the models share,
are in ``tinyae.models.base``; the stacks of layers the builders use are in
``tinyae.models.builders``.
"""
import math

from .. import backend, data, nn
from ..autograd import Tensor
from .base import (TrainableModel, as_generator, check_bce_targets, check_loss_name,
                   evaluating, image_shape_of, reconstruction_loss)
from .builders import (conv_decoder_stack, conv_encoder_stack, conv_image_shape, mlp_layers,
                       split_hidden)
# Names that lived here before the split into base.py and builders.py; importing them from
# here still works (train.py imports NonFiniteLossError), but new code imports from there.
from .base import (RECONSTRUCTION_LOSSES, NonFiniteLossError, as_input,  # noqa: F401
                   check_finite_losses, check_input_shape, scalar_values, standard_normal)
from .builders import (ACTIVATION_LAYERS, activation_layer, conv_output_size,  # noqa: F401
                       transposed_output_padding)


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
        """An autoencoder has no prior over codes: raises NotImplementedError saying what to do."""
        raise NotImplementedError(
            f"{type(self).__name__} has no prior to sample codes from. Fit a "
            "tinyae.models.GMMSampler on its codes (model.embed(x)) and decode its samples, "
            "or train a VAE.")

    # --- training ----------------------------------------------------------------
    def check_batch(self, x, y=None):
        """The protocol's shape check, plus data in [0, 1] for loss="bce"."""
        super().check_batch(x, y)
        check_bce_targets(type(self).__name__, self.loss, x)

    def loss_components(self, batch):
        """{"loss": L(decoder(encoder(x)), x)}."""
        x, _ = self.split_batch(batch)
        return {"loss": reconstruction_loss(self.loss, self.forward(x), x)}

    def extra_repr(self):
        """The arguments shown in ``repr``."""
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
            keep = rng.random(x.shape, dtype="float32") >= self.noise_level
            noisy = x.data * backend.to_backend(keep.astype(x.dtype), x.backend)
        return Tensor(noisy.astype(x.dtype, copy=False))

    def loss_components(self, batch):
        """{"loss": L(decoder(encoder(corrupt(x))), x)}; corrupted in training mode only."""
        x, _ = self.split_batch(batch)
        seen = self.corrupt(x) if self.training else x
        return {"loss": reconstruction_loss(self.loss, self.forward(seen), x)}

    def denoise(self, x):
        """The model's restoration of (already noisy) images ``x``: ``reconstruct(x)``."""
        return self.reconstruct(x)

    def extra_repr(self):
        """The arguments shown in ``repr``."""
        return f"loss={self.loss!r}, noise={self.noise!r}, noise_level={self.noise_level}"


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
    shape = conv_image_shape(input_shape)
    features, feature_dim, sizes = conv_encoder_stack(shape, channels, kernel_size)
    encoder = nn.Sequential(features, nn.Dense(feature_dim, latent_dim))
    decoder = conv_decoder_stack(latent_dim, shape, list(channels), sizes, kernel_size)
    if noise is None:
        return Autoencoder(encoder, decoder, loss, input_shape=shape)
    return DenoisingAutoencoder(encoder, decoder, loss, noise=noise, noise_level=noise_level,
                                input_shape=shape)
