"""The demo: a small tour of tinyae in about 20 seconds on 2 CPU cores, no files needed.

On scikit-learn's 1,797 8x8 digits (or MNIST with ``data="mnist"``) it trains

1. an MLP autoencoder, fits a Gaussian mixture per digit to its codes
   (``GMMSampler``) and decodes draws from it: digits of a chosen class;
2. an MLP VAE with a 2-D latent space, whose codes can be drawn directly and
   whose prior gives new digits;

and writes the figures and a ``summary.txt``::

    from tinyae.studies import demo
    out = demo.run("tinyae-out")          # or: tinyae demo
"""
import numpy

from .. import plot
from ..data import load_dataset
from ..models import GMMSampler, interpolate, mlp_autoencoder, mlp_vae, pca
from .outputs import Outputs, losses_line, plural
from .training import (RunSettings, decode_all, embed_all, fit, reconstruct_all, samples_by_class,
                       seed_everything)

# Per data set: models and epochs chosen so the default run takes well under a minute.
CONFIGS = {
    "digits": dict(hidden=[256, 64], code=12, vae_hidden=(256,), epochs=150, batch_size=64,
                   lr=2e-3, components=3, limit=None),
    "mnist": dict(hidden=[512, 128], code=16, vae_hidden=(400,), epochs=5, batch_size=128,
                  lr=1e-3, components=10, limit=10000),
}
INTERPOLATION_PAIRS = ((0, 6), (1, 7), (3, 8), (4, 9))


def run(out, data="digits", data_dir=None, epochs=None, limit=None, seed=0, progress=True):
    """Train the demo's two models on ``data`` ("digits" or "mnist") and write the figures
    into the folder ``out``; returns the ``Outputs`` (``.files`` lists what was written)."""
    config = CONFIGS[data]
    epochs = config["epochs"] if epochs is None else int(epochs)
    limit = config["limit"] if limit is None else limit
    outputs = out if isinstance(out, Outputs) else Outputs(out)
    seed_everything(seed)
    dataset = load_dataset(data, data_dir, limit=limit, seed=seed)
    settings = RunSettings(epochs, config["batch_size"], config["lr"], seed, progress)
    autoencoder, ae_history = autoencoder_with_mixture(dataset, config, settings, outputs)
    vae, vae_history = planar_vae(dataset, config, settings, outputs)

    shape = dataset.image_shape
    outputs.write_summary([
        f"data: {dataset.describe()}",
        f"autoencoder: mlp_autoencoder({shape}, {config['hidden']}, latent_dim={config['code']}), "
        f"{autoencoder.num_parameters()} parameters; sampled with GMMSampler('mixture', "
        f"n_components={config['components']}, covariance_scale=0.5) fitted per digit to its codes",
        f"VAE: mlp_vae({shape}, hidden={config['vae_hidden']}, latent_dim=2), "
        f"{vae.num_parameters()} parameters",
        f"training: {plural(epochs, 'epoch')} each, batch_size={config['batch_size']}, "
        f"Adam lr={config['lr']}, seed={seed}",
        losses_line("autoencoder", ae_history),
        losses_line("VAE", vae_history),
    ], title="tinyae demo")
    return outputs


def autoencoder_with_mixture(dataset, config, settings, outputs):
    """1. An autoencoder, and a Gaussian mixture per digit in its code space."""
    autoencoder = mlp_autoencoder(dataset.image_shape, config["hidden"], latent_dim=config["code"])
    history = fit(autoencoder, dataset, settings)
    plot.loss_curves(history, path=outputs.file("ae_loss.png"))
    shown = numpy.stack([dataset.x_val[numpy.flatnonzero(dataset.y_val == c)[0]]
                         for c in range(10)])
    plot.interpolation_strip([shown, reconstruct_all(autoencoder, shown)],
                             row_labels=("original", "reconstructed"),
                             path=outputs.file("ae_reconstructions.png"))
    codes = embed_all(autoencoder, dataset.x_train)
    sampler = GMMSampler("mixture", n_components=config["components"], covariance_scale=0.5,
                         seed=settings.seed).fit(codes, dataset.y_train)
    plot.class_sample_grid(samples_by_class(autoencoder, sampler, range(10), 10),
                           path=outputs.file("ae_gmm_samples.png"))
    projection = pca(codes).projection
    plot.pca_projection(projection, dataset.y_train, path=outputs.file("ae_code_pca.png"))
    means = {c: codes[dataset.y_train == c].mean(axis=0) for c in range(10)}
    strips = [decode_all(autoencoder, interpolate(means[a], means[b], 10))
              for a, b in INTERPOLATION_PAIRS]
    plot.interpolation_strip(strips, row_labels=[f"{a} → {b}" for a, b in INTERPOLATION_PAIRS],
                             path=outputs.file("ae_interpolation.png"))
    return autoencoder, history


def planar_vae(dataset, config, settings, outputs):
    """2. A VAE with a 2-D latent space: its codes can be drawn as they are."""
    vae = mlp_vae(dataset.image_shape, hidden=config["vae_hidden"], latent_dim=2)
    history = fit(vae, dataset, settings)
    plot.loss_curves(history, path=outputs.file("vae_loss.png"))
    plot.latent_scatter(embed_all(vae, dataset.x_train), dataset.y_train,
                        path=outputs.file("vae_latent.png"))
    rng = numpy.random.default_rng([settings.seed, 2])
    plot.image_grid(vae.sample(64, rng=rng).numpy(), nrow=8, path=outputs.file("vae_samples.png"))
    return vae, history
