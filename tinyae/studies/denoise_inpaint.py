"""Study 2, denoise-inpaint: restoring damaged digits.

- A denoising autoencoder trained on MNIST with Gaussian noise (sigma 0.1)
  cleans noisy test digits.
- A VAE with a 2-D latent space: the test digits' codes scattered by class,
  and the digits its decoder draws over a grid of that plane.
- Inpainting: the bottom half of each test digit is hidden and filled in by
  three models: a VAE (encode the visible part, decode, keep the visible
  pixels, repeat), a label-conditioned CVAE (the same, told the digit), and an
  image-conditioned CVAE that takes [visible pixels, mask] as its condition,
  trained once with BCE and once with MSE.

Figures: denoising rows, the 2-D latent scatter and manifold, per-class CVAE
samples, the inpainting comparison, and each model's loss curves.
"""
import numpy

from .. import data, plot
from ..backend import to_numpy
from ..data import load_dataset
from ..models import mlp_autoencoder, mlp_cvae, mlp_vae
from .outputs import losses_line
from .training import RunSettings, decode_all, embed_all, fit, seed_everything

NAME = "denoise-inpaint"
TITLE = "denoising autoencoder, 2-D VAE latent space, inpainting with VAE and CVAEs on MNIST"

FULL = dict(epochs=20, batch_size=128, lr=1e-3, limit=None, noise=0.1, latent_dim=20,
            hidden=512, inpaint_iterations=10, shown=10, seed=0)
QUICK = dict(FULL, epochs=5, limit=10000, noise=0.3, hidden=256, inpaint_iterations=5)
QUICK_NOTE = ("10,000 MNIST images, 5 epochs per model, stronger noise (sigma 0.3) so that a "
              "briefly trained denoiser already beats the noisy input (the summary gives both "
              "errors); about a minute of CPU time")
FULL_NOTE = ("MNIST, 60,000 training images, six models of 20 epochs each; about 8 s per "
             "model and epoch on one CPU core, some 16 minutes in all")


def add_arguments(parser):
    """The study's command-line options."""
    parser.add_argument("--noise", type=float, metavar="SIGMA",
                        help="standard deviation of the denoising autoencoder's Gaussian "
                             "noise (default 0.1)")
    parser.add_argument("--latent-dim", type=int, metavar="D",
                        help="latent size of the inpainting VAE and CVAEs (default 20; the "
                             "scatter VAE always has 2)")


def run(settings, out):
    """Train the denoising AE, the VAE and the CVAEs, draw the restorations; returns the
    summary lines.
    """
    seed = settings["seed"]
    seed_everything(seed)
    dataset = load_dataset("mnist", settings.get("data_dir"), limit=settings["limit"], seed=seed)
    run_settings = RunSettings(settings["epochs"], settings["batch_size"], settings["lr"], seed,
                               settings.get("progress", True))
    shown = _one_per_class(dataset.y_val, settings["shown"])
    lines = [f"data: {dataset.describe()}",
             f"training: epochs={settings['epochs']}, batch_size={settings['batch_size']}, "
             f"lr={settings['lr']}, Adam, seed={seed}"]
    lines += denoising(dataset, shown, settings, run_settings, out)
    lines += planar_vae(dataset, settings, run_settings, out)
    lines += inpainting(dataset, shown, settings, run_settings, out)
    return lines


def denoising(dataset, shown, settings, run_settings, out):
    """Train the denoising autoencoder, draw its restorations; summary lines with the errors."""
    x_test, sigma, seed = dataset.x_val, settings["noise"], settings["seed"]
    # A wide code (256 values): the noise, not a bottleneck, keeps it from copying its input.
    hidden = settings["hidden"]
    denoiser = mlp_autoencoder((1, 28, 28), [hidden, 256, hidden], noise="gaussian",
                               noise_level=sigma)
    history = fit(denoiser, dataset, run_settings)
    plot.loss_curves(history, path=out.file("losses/denoising_autoencoder.png"))
    clean = x_test[shown]
    noisy = data.gaussian_noise(clean, sigma, rng=seed)
    plot.restoration_rows(clean, noisy, denoiser.denoise(noisy).numpy(), row_labels=(
        "original", f"noise σ={sigma}", "denoised"), path=out.file("denoising.png"))
    before, after, clean_error = denoising_errors(denoiser, x_test, sigma, seed + 1)
    verdict = "the denoiser helps" if after < before else "the denoiser does NOT help yet"
    return [losses_line("denoising autoencoder", history),
            f"denoising: mean squared error per pixel {before:.4f} noisy -> {after:.4f} "
            f"denoised, {verdict} (test images; reconstructing the clean images: "
            f"{clean_error:.4f})"]


def denoising_errors(denoiser, x, sigma, seed):
    """Mean squared error per pixel: (noisy input, denoised output, clean reconstruction)."""
    noisy = data.gaussian_noise(x, sigma, rng=seed)
    before = float(((noisy - x) ** 2).mean())
    after = float(((reconstruct_batches(denoiser.denoise, noisy) - x) ** 2).mean())
    clean_error = float(((reconstruct_batches(denoiser.reconstruct, x) - x) ** 2).mean())
    return before, after, clean_error


def reconstruct_batches(function, x, batch_size=1000):
    """``function`` over ``x`` in batches: host images."""
    return numpy.concatenate([function(x[start:start + batch_size]).numpy()
                              for start in range(0, len(x), batch_size)])


def planar_vae(dataset, settings, run_settings, out):
    """A VAE with a 2-D latent space: its codes scattered by class, and its manifold."""
    planar = mlp_vae((1, 28, 28), hidden=(settings["hidden"],), latent_dim=2)
    history = fit(planar, dataset, run_settings)
    plot.loss_curves(history, path=out.file("losses/vae_2d.png"))
    train_codes = embed_all(planar, dataset.x_train[:5000])
    test_codes = embed_all(planar, dataset.x_val[:500])
    plot.latent_scatter(train_codes, dataset.y_train[:5000], test_codes, dataset.y_val[:500],
                        path=out.file("vae_latent_2d.png"))
    plot.image_grid(decode_all(planar, _grid_codes(train_codes, 12)), nrow=12,
                    path=out.file("vae_manifold_2d.png"))
    return [losses_line("VAE, 2-D latent", history)]


def inpainting(dataset, shown, settings, run_settings, out):
    """Fill the hidden bottom halves with a VAE, a label CVAE and two image CVAEs."""
    shape, hidden, latent = (1, 28, 28), settings["hidden"], settings["latent_dim"]
    x_test, y_test, iterations = dataset.x_val, dataset.y_val, settings["inpaint_iterations"]
    mask = to_numpy(data.half_mask(shape, "bottom"))
    masked = data.apply_mask(x_test[shown], mask, fill=0.0)
    rows, labels, errors, lines = [x_test[shown], masked], ["original", "bottom hidden"], {}, []

    vae = mlp_vae(shape, hidden=(hidden,), latent_dim=latent)
    lines.append(_fit_and_draw_losses(vae, "VAE", "vae", dataset, run_settings, out))
    fill = _iterative_inpainting(lambda x: vae.reconstruct(x).numpy(), x_test, mask, iterations)
    _add_row(rows, labels, errors, "VAE", fill, shown, x_test, mask)

    labelled = mlp_cvae(shape, hidden=(hidden,), latent_dim=latent, condition="label")
    lines.append(_fit_and_draw_losses(labelled, "CVAE (label)", "cvae_label", dataset,
                                      run_settings, out, labels=True))
    plot.class_sample_grid([labelled.sample(10, label=c, rng=settings["seed"]).numpy()
                            for c in range(10)], path=out.file("cvae_label_samples.png"))
    test_condition = labelled.label_condition(y_test, labelled.fc_mu.weight)
    fill = _iterative_inpainting(lambda x: labelled.reconstruct(x, test_condition).numpy(),
                                 x_test, mask, iterations)
    _add_row(rows, labels, errors, "CVAE (label)", fill, shown, x_test, mask)

    for loss in ("bce", "mse"):
        painter = mlp_cvae(shape, hidden=(hidden,), latent_dim=latent, condition="inpainting",
                           mask="half", loss=loss)
        name = f"CVAE (image, {loss.upper()})"
        lines.append(_fit_and_draw_losses(painter, name, f"cvae_image_{loss}", dataset,
                                          run_settings, out))
        fill = painter.complete(data.apply_mask(x_test, mask), mask, sample=False).numpy()
        _add_row(rows, labels, errors, name, fill, shown, x_test, mask)

    plot.interpolation_strip(rows, row_labels=labels, path=out.file("inpainting.png"))
    lines.append("inpainting (bottom half hidden), mean squared error on the hidden pixels of "
                 f"{len(x_test)} test images:")
    lines += [f"  {name:22s} {value:.4f}" for name, value in errors.items()]
    return lines


def _fit_and_draw_losses(model, name, file_name, dataset, run_settings, out, labels=False):
    """Train ``model``, draw losses/FILE_NAME.png; its summary line."""
    history = fit(model, dataset, run_settings, labels=labels)
    plot.loss_curves(history, path=out.file(f"losses/{file_name}.png"))
    return losses_line(name, history)


def _one_per_class(labels, count):
    """Indices of ``count`` test images, cycling through the classes 0, 1, 2, ..."""
    picks = [numpy.flatnonzero(labels == c % 10)[c // 10] for c in range(count)]
    return numpy.array(picks)


def _grid_codes(codes, side):
    """A side x side grid of 2-D codes spanning the central 90% of the codes' range."""
    low, high = numpy.percentile(codes, [5, 95], axis=0)
    xs = numpy.linspace(low[0], high[0], side)
    ys = numpy.linspace(high[1], low[1], side)  # top row: large z[1], as in the scatter
    return numpy.array([[x, y] for y in ys for x in xs], dtype=numpy.float32)


def _iterative_inpainting(reconstruct, x, mask, iterations):
    """Fill the hidden pixels by repeated reconstruction, keeping the visible ones each time.

    Start from the masked image (hidden pixels 0); each round reconstructs the
    current guess and pastes the known pixels back. A model never trained on
    holes thus fills them with what fits the visible part.
    """
    guess = x * mask
    for _ in range(int(iterations)):
        guess = x * mask + reconstruct(guess) * (1 - mask)
    return guess


def _add_row(rows, labels, errors, name, filled, shown, x, mask):
    """One method's completions: a figure row of the shown digits and its error on all."""
    rows.append(filled[shown])
    labels.append(name)
    errors[name] = _hidden_error(filled, x, mask)


def _hidden_error(filled, x, mask):
    hidden = 1 - numpy.broadcast_to(mask, x.shape)
    return float((((filled - x) ** 2) * hidden).sum() / hidden.sum())
