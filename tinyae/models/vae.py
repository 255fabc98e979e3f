"""Variational autoencoders: an encoder to a distribution over codes, a decoder from a sample.

    mu, logvar = heads(encoder(x))            q(z | x) = N(mu, exp(logvar))
    z = mu + exp(0.5 logvar) * eps            eps ~ N(0, I)     (reparameterisation)
    x_hat = decoder(z)
    loss = r_loss_factor * recon(x_hat, x) + beta * KL(q(z | x) || N(0, I))

``logvar`` is the log of the *variance*, so the standard deviation is
exp(0.5 logvar). Sampling new images is decoding z ~ N(0, I). Tutorial 10
derives the loss (the negative evidence lower bound) and the reparameterisation.

``ConditionalVAE`` gives encoder and decoder a condition c as well: a one-hot
label (generate a requested digit) or the visible part of an image (inpainting).
"""
import math

from .. import backend, data, losses, nn
from .. import functional as F
from ..autograd import Tensor
from ..ops import concatenate
from .autoencoder import Autoencoder
from .base import (as_generator, check_loss_name, evaluating, image_shape_of,
                   reconstruction_loss, standard_normal)
from .builders import conv_decoder_stack, conv_encoder_stack, conv_image_shape, mlp_layers

VAE_LOSSES = ("bce", "mse")


class VAE(Autoencoder):
    """A variational autoencoder around an encoder (x -> features) and a decoder (z -> x).

    Two Dense heads map the encoder's ``feature_dim`` features to ``mu`` and
    ``logvar`` (each ``latent_dim``).

    Args:
        loss: the reconstruction term, "bce" or "mse", summed over each image's
            pixels (then averaged over the batch), times ``r_loss_factor``.
        beta: the weight of the KL term (beta-VAE; 1 is the plain VAE).
        kl: False drops the KL term from the loss (it is still reported):
            an autoencoder with a noisy code.
        input_shape, flatten_input: as for ``Autoencoder``.

    The loss components, per image and averaged over the batch: "recon" (the
    summed reconstruction error), "kl" and "loss" = r_loss_factor * recon + beta * kl.

    Example::

        model = mlp_vae(784, hidden=(400,), latent_dim=20)
        tinyae.train(model, x_train, epochs=10, batch_size=128)
        images = model.sample(16)                  # (16, 784)
    """

    def __init__(self, encoder, decoder, latent_dim, feature_dim, loss="bce", beta=1.0,
                 r_loss_factor=1.0, kl=True, input_shape=None, flatten_input=False):
        super().__init__(encoder, decoder, check_loss_name(loss, VAE_LOSSES), input_shape,
                         flatten_input)
        self.latent_dim, self.feature_dim = int(latent_dim), int(feature_dim)
        self.fc_mu = nn.Dense(self.feature_dim, self.latent_dim)
        self.fc_logvar = nn.Dense(self.feature_dim, self.latent_dim)
        self.beta, self.r_loss_factor, self.kl = float(beta), float(r_loss_factor), bool(kl)

    # --- the maps, with an optional condition c (used by ConditionalVAE) ---------
    def _encode(self, x, condition=None):
        h = self._flat(self.as_input(x))
        if condition is not None:
            h = concatenate([h.reshape(h.shape[0], -1), condition], axis=1)
        features = self.encoder(h)
        return self.fc_mu(features), self.fc_logvar(features)

    def _decode(self, z, condition=None):
        z = self.as_input(z)
        if condition is not None:
            z = concatenate([z, condition], axis=1)
        out = self.decoder(z)
        if self.flatten_input and self.input_shape is not None:
            out = out.reshape((out.shape[0],) + self.input_shape)
        return out

    def encode(self, x):
        """(mu, logvar) of q(z | x)."""
        return self._encode(x)

    def decode(self, z):
        """The decoder's images (probabilities for loss="bce") for codes ``z``."""
        return self._decode(z)

    def reparameterize(self, mu, logvar, rng=None):
        """z = mu + exp(0.5 logvar) * eps, eps ~ N(0, I) from ``rng`` (default ``self.rng``).

        The randomness sits in eps, outside the graph, so gradients reach mu and logvar.
        """
        eps = standard_normal(as_generator(rng, self.rng), mu.shape, like=mu)
        return F.reparameterize(mu, logvar, eps)   # one fused kernel each way

    def forward(self, x):
        """(x_hat, mu, logvar) with x_hat decoded from a sample z, in the input's shape."""
        x = self.as_input(x)
        mu, logvar = self._encode(x)
        x_hat = self._decode(self.reparameterize(mu, logvar))
        return x_hat.reshape(x.shape), mu, logvar

    def embed(self, x):
        """The mean mu of q(z | x): the code used for analysis."""
        with evaluating(self):
            return self.encode(x)[0]

    def reconstruct(self, x):
        """decode(mu) in eval mode: the deterministic reconstruction."""
        x = self.as_input(x)
        with evaluating(self):
            return self.decode(self.encode(x)[0]).reshape(x.shape)

    def sample(self, n, rng=None):
        """``n`` new images: decode z ~ N(0, I) (draws from ``rng``, default ``self.rng``)."""
        with evaluating(self):
            like = next(iter(self.parameters()))
            z = standard_normal(as_generator(rng, self.rng), (int(n), self.latent_dim), like)
            return self.decode(z)

    # --- the loss ------------------------------------------------------------------
    def elbo_terms(self, x, x_hat, mu, logvar):
        """recon (summed per image, mean over the batch), kl (mean), and the weighted loss."""
        n = x.shape[0]
        recon = reconstruction_loss(self.loss, x_hat.reshape(x.shape), x, reduction="sum") / n
        kl = losses.kl_normal(mu, logvar)
        loss = recon * self.r_loss_factor
        if self.kl:
            loss = loss + kl * self.beta
        return {"loss": loss, "recon": recon, "kl": kl}

    def loss_components(self, batch):
        """{"loss", "recon", "kl"} of ``batch`` (see ``elbo_terms``)."""
        x, _ = self.split_batch(batch)
        x_hat, mu, logvar = self.forward(x)
        return self.elbo_terms(x, x_hat, mu, logvar)

    def extra_repr(self):
        """The arguments shown in ``repr``."""
        return (f"latent_dim={self.latent_dim}, loss={self.loss!r}, beta={self.beta}, "
                f"r_loss_factor={self.r_loss_factor}, kl={self.kl}")


# ---------------------------------------------------------------- conditional
CONDITIONS = ("label", "inpainting")
MASKS = ("random_block", "half", "center")


class ConditionalVAE(VAE):
    """A VAE whose encoder sees [x, c] and whose decoder sees [z, c].

    condition="label": c is the one-hot label (``n_classes``); the batches need
        labels, and ``sample(n, label=3)`` draws threes.
    condition="inpainting": c is [visible pixels, mask] (each flattened; mask 1
        where a pixel is visible, 0 where hidden). Training hides part of each
        image, drawn from ``self.rng`` by ``mask``: "random_block" (one block of
        half the image's height and width at a random place), "half" (a random
        half: left, right, top or bottom), "center" (the central half-size
        square), or a function (shape, rng) -> mask array. ``complete(masked,
        mask)`` fills in the hidden pixels.

    The encoder takes prod(input_shape) + condition_dim values, the decoder
    latent_dim + condition_dim. Fully connected encoder and decoder (the inputs
    are flattened); ``mlp_cvae`` builds them.

    Example::

        model = mlp_cvae((1, 28, 28), n_classes=10)
        tinyae.train(model, (x_train, y_train), epochs=10, batch_size=128)
        sevens = model.sample(8, label=7)
    """

    def __init__(self, encoder, decoder, latent_dim, feature_dim, input_shape,
                 condition="label", n_classes=10, mask="random_block", loss="bce", beta=1.0,
                 r_loss_factor=1.0, kl=True):
        super().__init__(encoder, decoder, latent_dim, feature_dim, loss, beta, r_loss_factor,
                         kl, input_shape=image_shape_of(input_shape), flatten_input=True)
        if condition not in CONDITIONS:
            raise ValueError(f"ConditionalVAE: condition must be one of {CONDITIONS}, "
                             f"got {condition!r}")
        if condition == "inpainting" and not callable(mask) and mask not in MASKS:
            raise ValueError(f"ConditionalVAE: mask must be one of {MASKS} or a function "
                             f"(shape, rng) -> mask, got {mask!r}")
        self.condition = condition
        self.needs_labels = condition == "label"
        self.n_classes = int(n_classes)
        self.mask = mask
        size = math.prod(self.input_shape)
        self.condition_dim = self.n_classes if condition == "label" else 2 * size
        if condition == "inpainting":
            self.image_shape = _mask_image_shape(self.input_shape)

    # --- conditions ----------------------------------------------------------------
    def label_condition(self, labels, like):
        """One-hot rows (N, n_classes) for integer ``labels``, on ``like``'s backend."""
        labels = labels.data if isinstance(labels, Tensor) else labels
        labels = backend.to_backend(labels, like.backend)  # an int, a list or an array
        if labels.ndim != 1:
            labels = labels.reshape(-1)
        return Tensor(data.one_hot(labels, self.n_classes, dtype=like.dtype))

    def mask_condition(self, masked, mask):
        """[masked image * mask, mask], each flattened: (N, 2 * prod(input_shape))."""
        masked = self.as_input(masked)
        mask = _broadcast_mask(mask, masked)
        n = masked.shape[0]
        return concatenate([(masked * mask).reshape(n, -1), mask.reshape(n, -1)], axis=1)

    def draw_masks(self, x, rng=None):
        """Masks (1 visible, 0 hidden) for a batch ``x``, drawn from ``rng``/``self.rng``."""
        rng = as_generator(rng, self.rng)
        shape = (x.shape[0],) + self.image_shape
        c, h, w = self.image_shape
        if callable(self.mask):
            masks = self.mask(shape, rng)
        elif self.mask == "random_block":
            masks = data.random_block_mask(shape, 1, (h // 2, w // 2), rng=rng)
        elif self.mask == "center":
            masks = data.center_mask(shape, (h // 2, w // 2))
        else:
            sides = [data.half_mask(shape[1:], side) for side in ("left", "right", "top",
                                                                    "bottom")]
            xp = backend.get_array_module(sides[0])
            choice = xp.asarray(rng.integers(0, 4, size=shape[0]))
            masks = xp.stack(sides)[choice]
        masks = backend.to_backend(masks, x.backend).astype(x.dtype, copy=False)
        return Tensor(masks.reshape(x.shape) if masks.size == x.size else masks)

    def training_condition(self, x, y):
        """The condition c for a training batch: one-hot labels, or the masked image + mask."""
        if self.condition == "label":
            if y is None:
                raise ValueError("ConditionalVAE(condition='label') needs labels with each "
                                 "batch: give data=(x, y)")
            return self.label_condition(y, x)
        x_image = x.reshape((x.shape[0],) + self.image_shape)
        return self.mask_condition(x_image, self.draw_masks(x_image))

    # --- the maps --------------------------------------------------------------------
    def encode(self, x, condition):
        """(mu, logvar) of q(z | x, c) for a condition tensor c (see ``label_condition``)."""
        return self._encode(x, condition)

    def decode(self, z, condition):
        """Images from codes ``z`` under the condition tensor c."""
        return self._decode(z, condition)

    def embed(self, x, condition):
        """The mean mu of q(z | x, c): the code used for analysis, no graph."""
        with evaluating(self):
            return self._encode(x, condition)[0]

    def reconstruct(self, x, condition):
        """decode(mu, c) in eval mode: the deterministic reconstruction given condition c."""
        x = self.as_input(x)
        with evaluating(self):
            return self._decode(self._encode(x, condition)[0], condition).reshape(x.shape)

    def sample(self, n, label=None, rng=None):
        """``n`` images from z ~ N(0, I). condition="label": of class ``label`` (an int,
        or n labels; None cycles through the classes 0, 1, 2, ...). condition="inpainting":
        with nothing visible (an all-hidden mask)."""
        n = int(n)
        rng = as_generator(rng, self.rng)
        like = next(iter(self.parameters()))
        with evaluating(self):
            xp = backend.get_array_module(like.data)
            if self.condition == "label":
                if label is None:
                    labels = xp.arange(n) % self.n_classes
                else:
                    labels = xp.full((n,), 0, dtype="int64") + backend.to_backend(
                        label, like.backend).astype("int64")
                condition = self.label_condition(labels, like)
            else:
                condition = Tensor(xp.zeros((n, self.condition_dim), dtype=like.dtype))
            z = standard_normal(rng, (n, self.latent_dim), like)
            return self._decode(z, condition)

    def complete(self, masked, mask, rng=None, sample=True):
        """Inpainting: fill the hidden pixels (mask 0) of ``masked``; keep the visible ones.

        The decoder gets z ~ N(0, I) (``sample=False``: z = 0, the most typical
        completion) and the condition [masked * mask, mask].
        """
        if self.condition != "inpainting":
            raise ValueError("complete() needs a ConditionalVAE built with "
                             "condition='inpainting'")
        masked = self.as_input(masked)
        mask = _broadcast_mask(mask, masked)
        with evaluating(self):
            condition = self.mask_condition(masked, mask)
            z = standard_normal(as_generator(rng, self.rng), (masked.shape[0], self.latent_dim),
                                masked)
            if not sample:
                z = z * 0.0
            guess = self._decode(z, condition).reshape(masked.shape)
            return masked * mask + guess * (1.0 - mask)

    def loss_components(self, batch):
        """{"loss", "recon", "kl"} of ``batch`` with its condition."""
        x, y = self.split_batch(batch)
        condition = self.training_condition(x, y)
        mu, logvar = self._encode(x, condition)
        x_hat = self._decode(self.reparameterize(mu, logvar), condition)
        return self.elbo_terms(x, x_hat, mu, logvar)

    def extra_repr(self):
        """The arguments shown in ``repr``."""
        return f"condition={self.condition!r}, " + super().extra_repr()


def _mask_image_shape(input_shape):
    """(C, H, W) for masks: the input shape, or a square (1, s, s) for s*s values."""
    if len(input_shape) == 3:
        return input_shape
    if len(input_shape) == 2:
        return (1,) + tuple(input_shape)
    side = math.isqrt(input_shape[0])
    if len(input_shape) == 1 and side * side == input_shape[0]:
        return (1, side, side)
    raise ValueError(f"inpainting needs images: give input_shape=(C, H, W), got {input_shape}")


def _broadcast_mask(mask, like):
    """``mask`` (array or Tensor, broadcastable to ``like``) as a Tensor of ``like``'s shape."""
    mask = mask.data if isinstance(mask, Tensor) else mask
    mask = backend.to_backend(mask, like.backend).astype(like.dtype, copy=False)
    xp = backend.get_array_module(mask)
    try:
        mask = xp.broadcast_to(mask, like.shape)
    except ValueError:
        raise ValueError(f"a mask of shape {tuple(mask.shape)} does not fit images of shape "
                         f"{like.shape}") from None
    return Tensor(xp.ascontiguousarray(mask))


# ---------------------------------------------------------------- builders
def mlp_vae(input_dim=784, hidden=(400,), latent_dim=20, loss="bce", beta=1.0,
            r_loss_factor=1.0, kl=True, activation="relu"):
    """A fully connected VAE: input_dim -> hidden -> (mu, logvar) of latent_dim, and back
    through the mirrored hidden layers to a sigmoid output (PyTorch's MNIST example).

    ``input_dim`` may be an example's shape, e.g. (1, 28, 28), for image-shaped samples.

    Example::

        model = mlp_vae(784, hidden=(400,), latent_dim=20)
    """
    shape = image_shape_of(input_dim)
    n_in = math.prod(shape)
    hidden = [int(n) for n in hidden]
    if not hidden:
        raise ValueError("mlp_vae: hidden needs at least one layer (the heads read its output)")
    encoder = nn.Sequential(*mlp_layers([n_in] + hidden, activation, activation))
    decoder = nn.Sequential(*mlp_layers([latent_dim] + hidden[::-1] + [n_in], activation,
                                        "sigmoid" if loss == "bce" else None))
    return VAE(encoder, decoder, latent_dim, hidden[-1], loss, beta, r_loss_factor, kl,
               input_shape=shape, flatten_input=True)


def conv_vae(input_shape=(1, 28, 28), channels=(32, 64, 64, 64), latent_dim=2, kernel_size=3,
             loss="bce", beta=1.0, r_loss_factor=1.0, kl=True):
    """A convolutional VAE for images of any size, grayscale or RGB.

    Encoder: per entry of ``channels`` a Conv2d(kernel_size, stride 2, padding 1)
    + BatchNorm2d + LeakyReLU(0.2); Flatten; Dense heads to mu and logvar.
    Decoder: Dense + Reshape, then ConvTranspose2d layers mirroring the
    convolutions (BatchNorm2d + LeakyReLU(0.2) between them), each with the
    output_padding that retraces the encoder's sizes, so the output is exactly
    H x W (28x28, 64x64, 100x100, ...); a sigmoid at the end.

    Example::

        model = conv_vae((3, 64, 64), channels=(32, 64, 64, 64), latent_dim=200)
    """
    shape = conv_image_shape(input_shape)
    encoder, feature_dim, sizes = conv_encoder_stack(shape, channels, kernel_size)
    decoder = conv_decoder_stack(latent_dim, shape, list(channels), sizes, kernel_size,
                                 out_activation="sigmoid" if loss == "bce" else None)
    return VAE(encoder, decoder, latent_dim, feature_dim, loss, beta, r_loss_factor, kl,
               input_shape=shape)


def mlp_cvae(input_dim=(1, 28, 28), hidden=(400,), latent_dim=20, condition="label",
             n_classes=10, mask="random_block", loss="bce", beta=1.0, activation="relu"):
    """A fully connected ConditionalVAE: [x, c] -> hidden -> (mu, logvar); [z, c] -> hidden
    (mirrored) -> sigmoid output.

    Example::

        digits = mlp_cvae((1, 28, 28), condition="label", n_classes=10)
        painter = mlp_cvae((1, 28, 28), condition="inpainting", mask="half")
    """
    shape = image_shape_of(input_dim)
    n_in = math.prod(shape)
    hidden = [int(n) for n in hidden]
    if not hidden:
        raise ValueError("mlp_cvae: hidden needs at least one layer")
    condition_dim = int(n_classes) if condition == "label" else 2 * n_in
    encoder = nn.Sequential(*mlp_layers([n_in + condition_dim] + hidden, activation,
                                        activation))
    decoder = nn.Sequential(*mlp_layers([latent_dim + condition_dim] + hidden[::-1] + [n_in],
                                        activation, "sigmoid" if loss == "bce" else None))
    return ConditionalVAE(encoder, decoder, latent_dim, hidden[-1], shape, condition=condition,
                          n_classes=n_classes, mask=mask, loss=loss, beta=beta)
