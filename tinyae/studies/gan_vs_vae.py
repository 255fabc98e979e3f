"""Study 3, gan-vs-vae: an MLP GAN against an MLP VAE on MNIST, compared with numbers.

GAN: generator z (100) -> 256 -> 512 -> 784, LeakyReLU(0.2), tanh out;
discriminator 784 -> 512 -> 256 -> 1, LeakyReLU(0.2) and Dropout(0.3); Adam
2e-4 (betas 0.5, 0.999), k discriminator steps per generator step.
VAE: 784 -> 400 -> z (20), BCE + KL, Adam 1e-3.

The comparison uses simple measures available here:

- reconstruction error (the VAE only: a GAN has no encoder);
- a small classifier (784 -> 256 -> 10, trained in the study) read on the
  samples: how the classes are spread (the entropy of the predicted-class
  histogram; log2 10 = 3.32 bits is uniform, low values mean mode collapse)
  and how confident it is (mean top probability; unclear images score low);
- distance from each sample to its nearest training image (copies score near
  0; unseen test digits give the reference value).
"""
import math

import numpy

from .. import losses, nn, plot
from ..data import load_dataset
from ..models import TrainableModel, mlp_gan, mlp_vae, nearest_neighbours
from ..train import evaluate
from .outputs import losses_line, plural
from .training import RunSettings, evaluation_mode, fit, reconstruct_all, seed_everything

NAME = "gan-vs-vae"
TITLE = "MLP GAN against MLP VAE on MNIST: samples, class spread, confidence, novelty"

FULL = dict(epochs=30, gan_batch_size=64, vae_batch_size=128, gan_lr=2e-4, vae_lr=1e-3,
            d_steps=1, gan_latent_dim=100, vae_latent_dim=20, classifier_epochs=3,
            n_samples=1000, limit=None, seed=0)
QUICK = dict(FULL, epochs=5, classifier_epochs=2, n_samples=500, limit=10000)
QUICK_NOTE = ("10,000 MNIST images, 5 epochs of each model: VAE samples the classifier reads "
              "as digits, a GAN still learning (its numbers trail the VAE's); about a minute "
              "of CPU time")
FULL_NOTE = ("MNIST, 60,000 training images, 30 epochs of each model; about 30 s per GAN "
             "epoch and 8 s per VAE epoch on one CPU core, some 20 minutes in all")


def add_arguments(parser):
    """The study's command-line options."""
    parser.add_argument("--d-steps", type=int, metavar="K",
                        help="discriminator steps per generator step (default 1)")
    parser.add_argument("--n-samples", type=int, metavar="N",
                        help="samples of each model that the measures are taken on "
                             "(default 1000)")


class DigitClassifier(TrainableModel):
    """A small MLP classifier (input -> hidden -> classes) trained with cross-entropy.

    Reports "accuracy" beside "loss", so the history holds both.
    """

    needs_labels = True

    def __init__(self, input_shape=(1, 28, 28), hidden=256, classes=10):
        super().__init__(input_shape, flexible_input=True)
        self.net = nn.Sequential(nn.Flatten(), nn.Dense(math.prod(input_shape), hidden),
                                 nn.ReLU(), nn.Dense(hidden, classes))

    def loss_components(self, batch):
        """Cross-entropy and accuracy of one labelled batch."""
        x, y = self.split_batch(batch)
        logits = self.net(x)
        correct = (logits.data.argmax(axis=1) == y).mean()
        return {"loss": losses.cross_entropy(logits, y), "accuracy": float(correct)}

    def probabilities(self, x, batch_size=1000):
        """Softmax probabilities (N, classes) as a host array, in eval mode."""
        rows = []
        with evaluation_mode(self):
            for start in range(0, len(x), batch_size):
                logits = self.net(self.as_input(x[start:start + batch_size])).numpy()
                logits = logits.astype(numpy.float64)
                logits -= logits.max(axis=1, keepdims=True)
                exp = numpy.exp(logits)
                rows.append(exp / exp.sum(axis=1, keepdims=True))
        return numpy.concatenate(rows)


def class_measures(probabilities, classes=10):
    """(class fractions, entropy of the predicted-class histogram in bits, mean confidence)."""
    predicted = probabilities.argmax(axis=1)
    fractions = numpy.bincount(predicted, minlength=classes) / len(predicted)
    nonzero = fractions[fractions > 0]
    entropy = max(0.0, float(-(nonzero * numpy.log2(nonzero)).sum()))  # no -0.0
    return fractions, entropy, float(probabilities.max(axis=1).mean())


def run(settings, out):
    """Train the GAN, the VAE and the judging classifier, compare their samples; returns the
    summary lines.
    """
    seed = settings["seed"]
    seed_everything(seed)
    dataset = load_dataset("mnist", settings.get("data_dir"), limit=settings["limit"], seed=seed)
    gan, vae, classifier, histories = train_models(dataset, settings, out)
    n = settings["n_samples"]
    rng = numpy.random.default_rng([seed, 3])
    samples = {"GAN": gan.sample(n, rng=rng).numpy(), "VAE": vae.sample(n, rng=rng).numpy()}
    plot.image_grid(samples["GAN"][:64], nrow=8, path=out.file("gan_samples.png"))
    plot.image_grid(samples["VAE"][:64], nrow=8, path=out.file("vae_samples.png"))
    table = measure_samples(classifier, dataset, samples, out)
    draw_nearest_neighbours(dataset, samples, out)
    return summary(settings, dataset, vae, histories, table)


def train_models(dataset, settings, out):
    """The GAN, the VAE and the classifier, trained; their loss curves drawn."""
    seed, epochs, progress = settings["seed"], settings["epochs"], settings.get("progress", True)
    gan = mlp_gan(settings["gan_latent_dim"], d_steps=settings["d_steps"])
    gan_history = fit(gan, dataset, RunSettings(epochs, settings["gan_batch_size"],
                                                settings["gan_lr"], seed, progress),
                      betas=(0.5, 0.999))
    plot.loss_curves(gan_history, path=out.file("losses/gan.png"))
    vae = mlp_vae((1, 28, 28), hidden=(400,), latent_dim=settings["vae_latent_dim"])
    vae_history = fit(vae, dataset, RunSettings(epochs, settings["vae_batch_size"],
                                                settings["vae_lr"], seed, progress))
    plot.loss_curves(vae_history, path=out.file("losses/vae.png"))
    classifier = DigitClassifier()
    classifier_history = fit(classifier, dataset, RunSettings(
        settings["classifier_epochs"], 128, 1e-3, seed, progress), labels=True)
    plot.loss_curves(classifier_history, path=out.file("losses/classifier.png"))
    return gan, vae, classifier, {"GAN": gan_history, "VAE": vae_history,
                                  "classifier": classifier_history}


def measure_samples(classifier, dataset, samples, out):
    """(name, entropy, confidence, nearest distance) for test images and each model's
    samples; draws the class distributions."""
    reference = dataset.x_val[:len(samples["GAN"])]
    groups = {"test images": reference, **samples}
    table, fractions = [], []
    for name, images in groups.items():
        shares, entropy, confidence = class_measures(classifier.probabilities(images))
        distance = nearest_neighbours(images, dataset.x_train).distances[:, 0].mean()
        fractions.append(shares)
        table.append((name, entropy, confidence, float(distance)))
    plot.bar_chart(list(groups), fractions, list(range(10)), out.file("class_distribution.png"),
                   ylabel="fraction of images", title="classes the classifier sees")
    return table


def draw_nearest_neighbours(dataset, samples, out, shown=10):
    """Each model's first samples above their nearest training images."""
    rows, labels = [], []
    for name in ("GAN", "VAE"):
        found = nearest_neighbours(samples[name][:shown], dataset.x_train)
        rows += [samples[name][:shown], dataset.x_train[found.indices[:, 0]]]
        labels += [f"{name} sample", "nearest training"]
    plot.interpolation_strip(rows, row_labels=labels, path=out.file("nearest_neighbours.png"))


def summary(settings, dataset, vae, histories, table):
    """The summary lines: the VAE's scores and the metrics table of both models."""
    x_test, epochs, n = dataset.x_val, settings["epochs"], settings["n_samples"]
    vae_scores = evaluate(vae, x_test)
    pixel_error = float(((reconstruct_all(vae, x_test) - x_test) ** 2).mean())
    accuracy = histories["classifier"]["val/accuracy"][-1]
    lines = [
        f"data: {dataset.describe()}",
        f"GAN: mlp_gan(latent_dim={settings['gan_latent_dim']}, d_steps={settings['d_steps']}), "
        f"Adam lr={settings['gan_lr']} betas=(0.5, 0.999), batch {settings['gan_batch_size']}, "
        f"{plural(epochs, 'epoch')}",
        f"VAE: mlp_vae(784, hidden=(400,), latent_dim={settings['vae_latent_dim']}), BCE + KL, "
        f"Adam lr={settings['vae_lr']}, batch {settings['vae_batch_size']}, "
        f"{plural(epochs, 'epoch')}",
        losses_line("GAN", histories["GAN"]),
        losses_line("VAE", histories["VAE"]),
        f"classifier: 784-256-10, {plural(settings['classifier_epochs'], 'epoch')}, test accuracy "
        f"{accuracy:.3f}",
        "",
        f"reconstruction (test images): VAE BCE {vae_scores['recon']:.2f} per image, KL "
        f"{vae_scores['kl']:.2f}, mean squared error per pixel {pixel_error:.4f}; "
        "GAN: none (no encoder)",
        f"measures on {n} images each (entropy of the predicted classes, uniform = "
        f"{math.log2(10):.2f} bits; confidence = mean top probability; nearest = mean L2 "
        "distance to the nearest training image):",
        f"  {'':12s} {'entropy':>8s} {'confidence':>11s} {'nearest':>8s}",
    ]
    lines += [f"  {name:12s} {entropy:8.3f} {confidence:11.3f} {distance:8.3f}"
              for name, entropy, confidence, distance in table]
    return lines
