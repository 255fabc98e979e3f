"""Generative adversarial networks: a generator G(z) against a discriminator D(x).

D learns to tell real images from generated ones; G learns to make D call its
images real. Both losses are binary cross-entropies on D's *logits* (the
sigmoid is folded into the loss, which is exact where a separate sigmoid
saturates)::

    d_loss = -log D(x) - log(1 - D(G(z)))       (real target 1 - label_smoothing)
    g_loss = -log D(G(z))                       (non-saturating: strong gradients early on)

Where the [-1, 1] scaling happens: the data stay in [0, 1] everywhere outside
this model. With ``scale_data=True`` (for tanh generators) the GAN maps each
real batch to 2x - 1 before D sees it, and ``sample`` maps G's output back with
(g + 1) / 2, so samples look like the data. Tutorial 11 walks through training.
"""
import math

from .. import losses, nn
from ..autograd import no_grad
from .base import (TrainableModel, as_generator, check_finite_losses, evaluating, scalar_values,
                   standard_normal)


class GAN(TrainableModel):
    """A generator and a discriminator trained against each other.

    Args:
        generator: z (N, latent_dim) -> images (in [-1, 1] with ``scale_data``).
        discriminator: images -> logits (N, 1) (no sigmoid at the end).
        latent_dim: the size of z ~ N(0, I).
        d_steps: k, discriminator updates per generator update. Each batch gives
            D one update; G is updated after every k-th batch (Goodfellow et
            al.'s algorithm 1), so an epoch gives G (batches / k) updates.
        label_smoothing: one-sided label smoothing: real targets are
            1 - label_smoothing (e.g. 0.1), fake targets stay 0.
        scale_data: map real data from [0, 1] to [-1, 1] for D, and samples back.
        image_shape: the shape of one image (what G makes and D takes); data with
            the same number of values is reshaped to it.

    Loss components: "d" (per D update) and "g" (per G update).

    Example::

        gan = mlp_gan(latent_dim=100)
        tinyae.train(gan, x_train, epochs=20, batch_size=64, lr=2e-4, betas=(0.5, 0.999))
        images = gan.sample(16)
    """

    def __init__(self, generator, discriminator, latent_dim, d_steps=1, label_smoothing=0.0,
                 scale_data=True, image_shape=None):
        super().__init__(image_shape, flexible_input=True)
        if int(d_steps) < 1:
            raise ValueError(f"GAN: d_steps must be at least 1, got {d_steps}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"GAN: label_smoothing must be in [0, 1), got {label_smoothing}")
        self.generator, self.discriminator = generator, discriminator
        self.latent_dim, self.d_steps = int(latent_dim), int(d_steps)
        self.label_smoothing, self.scale_data = float(label_smoothing), bool(scale_data)

    # --- data range ------------------------------------------------------------
    def to_model_range(self, x):
        """Data in [0, 1] -> what D sees ([-1, 1] with scale_data)."""
        return x * 2.0 - 1.0 if self.scale_data else x

    def to_data_range(self, g):
        """G's output -> the data's range ([0, 1] with scale_data)."""
        return (g + 1.0) * 0.5 if self.scale_data else g

    def _real(self, x):
        x = self.as_input(x)
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            x = x.reshape((x.shape[0],) + self.input_shape)
        return self.to_model_range(x)

    # --- generating ------------------------------------------------------------
    def noise(self, n, like, rng=None):
        """z ~ N(0, I) of shape (n, latent_dim), from ``rng`` (default ``self.rng``)."""
        return standard_normal(as_generator(rng, self.rng), (int(n), self.latent_dim), like)

    def forward(self, z):
        """G(z), in the generator's range."""
        return self.generator(self.as_input(z))

    def sample(self, n, rng=None):
        """``n`` new images in the data's range, in eval mode and without a graph."""
        like = next(iter(self.generator.parameters()))
        with evaluating(self):
            return self.to_data_range(self.generator(self.noise(n, like, rng)))

    def discriminate(self, x):
        """D's probability that images ``x`` (data range) are real, in eval mode."""
        with evaluating(self):
            return (self.discriminator(self._real(x))).sigmoid()

    # --- the training-step protocol --------------------------------------------
    def make_optimizers(self, make):
        """Two optimizers: "d" for the discriminator, "g" for the generator."""
        return {"generator": make(self.generator.parameters()),
                "discriminator": make(self.discriminator.parameters())}

    def discriminator_loss(self, real):
        """D's loss on a batch of real images (model range) and as many fresh fakes."""
        with no_grad():  # the fakes are D's input here: no gradient into G
            fake = self.generator(self.noise(real.shape[0], real))
        real_label = 1.0 - self.label_smoothing
        return losses.gan_discriminator_loss(self.discriminator(real),
                                             self.discriminator(fake),
                                             real_label=real_label)

    def generator_loss(self, n, like):
        """G's non-saturating loss on ``n`` fresh fakes."""
        return losses.gan_generator_loss(self.discriminator(self.generator(self.noise(n, like))))

    def training_step(self, batch, optimizers, step=None):
        """One D update on this batch; a G update too after every ``d_steps``-th batch.

        ``step`` counts batches from 0 over the whole run (the trainer passes it);
        None updates G every time.
        """
        real = self._real(self.split_batch(batch)[0])
        d_optimizer, g_optimizer = optimizers["discriminator"], optimizers["generator"]

        d_optimizer.zero_grad()
        d_loss = self.discriminator_loss(real)
        values = scalar_values({"d": d_loss})
        check_finite_losses(values)
        d_loss.backward()
        d_optimizer.step()

        if step is None or (step + 1) % self.d_steps == 0:
            g_optimizer.zero_grad()
            g_loss = self.generator_loss(real.shape[0], real)
            g_value = scalar_values({"g": g_loss})
            check_finite_losses(g_value)
            g_loss.backward()   # also fills D's gradients; D's next zero_grad drops them
            g_optimizer.step()
            values.update(g_value)
        return values

    def validation_step(self, batch):
        """D's and G's losses on ``batch``, in eval mode, without a graph or an update."""
        real = self._real(self.split_batch(batch)[0])
        with evaluating(self):
            return scalar_values({"d": self.discriminator_loss(real),
                                  "g": self.generator_loss(real.shape[0], real)})

    def extra_repr(self):
        """The arguments shown in ``repr``."""
        return (f"latent_dim={self.latent_dim}, d_steps={self.d_steps}, "
                f"label_smoothing={self.label_smoothing}, scale_data={self.scale_data}")


# ---------------------------------------------------------------- builders
def mlp_gan(latent_dim=100, image_shape=(1, 28, 28), generator_hidden=(256, 512),
            discriminator_hidden=(512, 256), dropout=0.3, negative_slope=0.2, d_steps=1,
            label_smoothing=0.0):
    """The study's fully connected GAN.

    G: latent_dim -> 256 -> 512 -> 784, LeakyReLU(0.2) between, tanh out, reshaped
    to ``image_shape``. D: 784 -> 512 -> 256 -> 1, LeakyReLU(0.2) + Dropout(0.3)
    after each hidden layer, logits out.

    Example::

        gan = mlp_gan(100, d_steps=1, label_smoothing=0.1)
    """
    image_shape = tuple(image_shape)
    n_pixels = math.prod(image_shape)
    g_layers, n_in = [], latent_dim
    for n_out in generator_hidden:
        g_layers += [nn.Dense(n_in, n_out), nn.LeakyReLU(negative_slope)]
        n_in = n_out
    g_layers += [nn.Dense(n_in, n_pixels), nn.Tanh(), nn.Reshape(*image_shape)]
    d_layers, n_in = [nn.Flatten()], n_pixels
    for n_out in discriminator_hidden:
        d_layers += [nn.Dense(n_in, n_out), nn.LeakyReLU(negative_slope), nn.Dropout(dropout)]
        n_in = n_out
    d_layers.append(nn.Dense(n_in, 1))
    return GAN(nn.Sequential(*g_layers), nn.Sequential(*d_layers), latent_dim, d_steps=d_steps,
               label_smoothing=label_smoothing, image_shape=image_shape)


def dcgan(latent_dim=100, image_shape=(1, 28, 28), features=64, d_steps=1,
          label_smoothing=0.0):
    """A DCGAN (Radford et al.) for 28x28 images (any H, W divisible by 4).

    G: Dense(latent_dim, 2f * H/4 * W/4) + BatchNorm1d + ReLU, Reshape, then
    ConvTranspose2d(2f, f, 4, stride 2, padding 1) + BatchNorm2d + ReLU and
    ConvTranspose2d(f, C, 4, 2, 1) + Tanh: 7x7 -> 14x14 -> 28x28.
    D: Conv2d(C, f, 4, 2, 1) + LeakyReLU(0.2), Conv2d(f, 2f, 4, 2, 1) +
    BatchNorm2d + LeakyReLU(0.2), Flatten, Dense to one logit.

    Example::

        gan = dcgan(latent_dim=100, features=64)
    """
    c, h, w = tuple(int(n) for n in image_shape)
    if h % 4 or w % 4:
        raise ValueError(f"dcgan: height and width must be divisible by 4, got {h}x{w}")
    f = int(features)
    h4, w4 = h // 4, w // 4
    generator = nn.Sequential(
        nn.Dense(latent_dim, 2 * f * h4 * w4), nn.BatchNorm1d(2 * f * h4 * w4), nn.ReLU(),
        nn.Reshape(2 * f, h4, w4),
        nn.ConvTranspose2d(2 * f, f, 4, stride=2, padding=1), nn.BatchNorm2d(f), nn.ReLU(),
        nn.ConvTranspose2d(f, c, 4, stride=2, padding=1), nn.Tanh())
    discriminator = nn.Sequential(
        nn.Conv2d(c, f, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(f, 2 * f, 4, stride=2, padding=1), nn.BatchNorm2d(2 * f), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Dense(2 * f * h4 * w4, 1))
    return GAN(generator, discriminator, latent_dim, d_steps=d_steps,
               label_smoothing=label_smoothing, image_shape=(c, h, w))
