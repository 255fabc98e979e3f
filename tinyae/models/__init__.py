"""The models: autoencoders, VAEs, GANs, and tools for their latent spaces.

Every model is a ``tinyae.nn.Module`` and speaks the training-step protocol
that ``tinyae.train`` drives (``tinyae.models.base`` describes it)::

    from tinyae import models
    model = models.mlp_autoencoder((1, 28, 28), [512, 128, 32, 128, 512])
    tinyae.train(model, x_train, epochs=10, batch_size=256)

- ``Autoencoder``, ``DenoisingAutoencoder``; builders ``mlp_autoencoder``, ``conv_autoencoder``
- ``VAE``, ``ConditionalVAE``; builders ``mlp_vae``, ``conv_vae``, ``mlp_cvae``
- ``GAN``; builders ``mlp_gan``, ``dcgan``
- ``GMMSampler``: sample new codes from the codes of real data (per class)
- ``latent``: interpolate, attribute_vector, latent_arithmetic, morph,
  decode_basis, pca, nearest_neighbours

The files: ``base.py`` (the protocol and shared helpers), ``builders.py`` (the
layer stacks the builders use), then one file per family of models.
"""
from . import latent
from .autoencoder import Autoencoder, DenoisingAutoencoder, conv_autoencoder, mlp_autoencoder
from .base import NonFiniteLossError, TrainableModel
from .gan import GAN, dcgan, mlp_gan
from .latent import (attribute_vector, decode_basis, interpolate, latent_arithmetic, morph,
                     nearest_neighbours, pca)
from .sampler import GMMSampler
from .vae import VAE, ConditionalVAE, conv_vae, mlp_cvae, mlp_vae

__all__ = ["Autoencoder", "DenoisingAutoencoder", "NonFiniteLossError", "TrainableModel",
           "mlp_autoencoder", "conv_autoencoder", "VAE", "ConditionalVAE", "mlp_vae",
           "conv_vae", "mlp_cvae", "GAN", "mlp_gan", "dcgan", "GMMSampler", "latent",
           "interpolate", "attribute_vector", "latent_arithmetic", "morph", "decode_basis",
           "pca", "nearest_neighbours"]
