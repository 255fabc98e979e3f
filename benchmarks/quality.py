"""Sample quality, likelihood, originality and cost of the generative models, on MNIST.

    python -m benchmarks.quality [--epochs N] [--quick] [--data-dir DIR] [--seed S]

Every model trains for the same number of epochs on the 60,000 MNIST training
images (batch 128; Adam, lr 1e-3 for autoencoders and VAEs, 2e-4 with betas
(0.5, 0.999) for GANs), from seed ``--seed`` (weights, batch order, noise and
sampling). Then ``tinyae.metrics`` scores it:

- reconstruction error on the test set (per-pixel BCE and MSE), for models with an encoder;
- the VAEs' negative ELBO on the test set and their IWAE log-likelihood (k = 100) on
  its first images;
- the Frechet distance between the reference classifier's features of generated
  images and of the training set (the MNIST analogue of FID), the Inception-Score
  analogue, and, for models that draw a requested digit, the share of samples the
  classifier reads as that digit;
- originality: the mean distance from samples to their nearest training image and
  nearest reconstruction of a training image, beside the same for held-out test images;
- cost: parameters, seconds per training epoch, images sampled per second.

The row "real test images" scores test images as if they were samples: its Frechet
distance is the floor a perfect generator would reach with as many images.

The default (5 epochs, DCGAN with 32 base features) takes some 15 minutes on a
2-core CPU; ``--quick`` is a smoke run on 2,000 images. One BLAS thread
(OPENBLAS_NUM_THREADS=1) is the polite setting on a shared machine.
"""
import argparse
import os
import pathlib
import sys
import time

import numpy

from tinyae import data, metrics, models, nn
from tinyae.autograd import Tensor
from tinyae.backend import to_numpy
from tinyae.models.latent import decode_codes
from tinyae.train import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEFAULT_DATA = os.environ.get("TINYAE_DATA", str(ROOT.parent / "shared" / "data"))

FULL = dict(epochs=5, batch_size=128, train_limit=None, test_limit=None, samples=5000,
            iwae_k=100, iwae_images=500, originality_images=1000, reconstructions=10000,
            components=10, dcgan_features=32)
QUICK = dict(FULL, epochs=1, train_limit=2000, test_limit=1000, samples=500, iwae_images=50,
             originality_images=200, reconstructions=1000, components=2)
AE_LR = dict(lr=1e-3)
GAN_LR = dict(lr=2e-4, betas=(0.5, 0.999))
CHUNK = 500   # images generated, reconstructed or scored at a time


# ---------------------------------------------------------------- helpers
def batched(function, count, chunk=CHUNK):
    """Concatenate host arrays ``function(rows)`` over slices of ``range(count)``."""
    parts = [function(slice(start, min(start + chunk, count)))
             for start in range(0, count, chunk)]
    return numpy.concatenate([numpy.asarray(p, dtype=numpy.float32) for p in parts])


def host(images):
    return to_numpy(images)


def reconstruct_all(model, x, y=None):
    """The model's reconstructions of ``x`` (labels ``y`` for a label-conditioned model)."""
    def chunk(rows):
        xb = Tensor(x[rows])
        if getattr(model, "needs_labels", False):
            return host(model.reconstruct(xb, model.label_condition(y[rows], xb)))
        return host(model.reconstruct(xb))
    return batched(chunk, len(x))


def sampler_parameter_count(sampler):
    """Numbers a fitted GMMSampler stores: weights, means and covariances of its components."""
    total = 0
    for weights, means, covariances in sampler.components_.values():
        d = means.shape[1]
        total += len(weights) * (1 + d + d * (d + 1) // 2)
    return total


def fmt(value, spec):
    return "n/a" if value is None else format(value, spec)


# ---------------------------------------------------------------- the models
def train_model(name, build, x, y, settings, seed, options, with_labels=False):
    """Build with seeded weights, train, and time the epochs."""
    nn.manual_seed(seed)
    model = build()
    timer = metrics.EpochTimer()
    begun = time.perf_counter()
    train(model, (x, y) if with_labels else x, epochs=settings["epochs"],
          batch_size=settings["batch_size"], seed=seed, callbacks=[timer], progress=False,
          **options)
    print(f"  trained {name}: {time.perf_counter() - begun:.0f} s", flush=True)
    return model, timer.seconds_per_epoch


def generators(x_train, y_train, settings, seed):
    """Yield one dict per generator: how to sample it, what it can be scored on."""
    n = settings["samples"]
    per_class = n // 10
    requested_by_class = numpy.repeat(numpy.arange(10), per_class)

    # one autoencoder, two densities over its codes
    autoencoder, seconds = train_model(
        "MLP autoencoder", lambda: models.mlp_autoencoder((1, 28, 28), [512, 128, 32, 128, 512]),
        x_train, y_train, settings, seed, AE_LR)
    codes = batched(lambda rows: host(autoencoder.embed(x_train[rows])), len(x_train))
    for label, kind, extra in (("AE + Gaussian per class", "gaussian", {}),
                               (f"AE + GMM (K={settings['components']} per class)", "mixture",
                                {"n_components": settings["components"]})):
        begun = time.perf_counter()
        sampler = models.GMMSampler(kind, seed=seed, **extra).fit(codes, y_train)
        fit_seconds = time.perf_counter() - begun
        # per class, then shuffled: IS splits and the originality subset need a random order
        order = numpy.random.default_rng(seed).permutation(per_class * 10)
        sampled = numpy.concatenate([sampler.sample(per_class, label=c)
                                     for c in range(10)])[order]
        yield dict(name=label, model=autoencoder, seconds_per_epoch=seconds,
                   parameters=autoencoder.num_parameters() + sampler_parameter_count(sampler),
                   images=batched(lambda rows: decode_codes(autoencoder, sampled[rows]),
                                  len(sampled)),
                   requested=requested_by_class[order],
                   sample=lambda count, s=sampler: decode_codes(autoencoder, s.sample(count)),
                   note=f"the autoencoder's training time; {kind} density fitted to its codes "
                        f"in {fit_seconds:.0f} s more; parameters include the density's")

    rng = numpy.random.default_rng(seed)
    for label, build in (("MLP VAE", lambda: models.mlp_vae((1, 28, 28), hidden=(400,),
                                                            latent_dim=20)),
                         ("conv VAE", lambda: models.conv_vae((1, 28, 28), latent_dim=16))):
        vae, seconds = train_model(label, build, x_train, y_train, settings, seed, AE_LR)
        yield dict(name=label, model=vae, seconds_per_epoch=seconds, vae=True,
                   parameters=vae.num_parameters(),
                   images=batched(lambda rows, m=vae: host(m.sample(rows.stop - rows.start,
                                                                    rng=rng)), n),
                   sample=lambda count, m=vae: m.sample(count, rng=rng))

    cvae, seconds = train_model("CVAE", lambda: models.mlp_cvae((1, 28, 28), hidden=(400,),
                                                                latent_dim=20),
                                x_train, y_train, settings, seed, AE_LR, with_labels=True)
    requested = numpy.arange(n) % 10
    yield dict(name="CVAE (label)", model=cvae, seconds_per_epoch=seconds, vae=True,
               parameters=cvae.num_parameters(), requested=requested,
               images=batched(lambda rows: host(cvae.sample(rows.stop - rows.start,
                                                            label=requested[rows], rng=rng)), n),
               sample=lambda count: cvae.sample(count, rng=rng))

    for label, build in (("MLP GAN", lambda: models.mlp_gan(100)),
                         (f"DCGAN (features {settings['dcgan_features']})",
                          lambda: models.dcgan(100, features=settings["dcgan_features"]))):
        gan, seconds = train_model(label, build, x_train, y_train, settings, seed, GAN_LR)
        yield dict(name=label, model=gan, seconds_per_epoch=seconds,
                   parameters=gan.num_parameters(),
                   images=batched(lambda rows, m=gan: host(m.sample(rows.stop - rows.start,
                                                                    rng=rng)), n),
                   sample=lambda count, m=gan: m.sample(count, rng=rng),
                   note="parameters: generator and discriminator")


# ---------------------------------------------------------------- scoring
def score(entry, context, settings, seed):
    """Every metric that applies to one generator, as a row dict."""
    x_train, y_train, x_test, y_test = context["data"]
    classifier, train_stats = context["classifier"], context["train_stats"]
    held_out = context["held_out"]
    row = dict(name=entry["name"], parameters=entry.get("parameters"),
               seconds_per_epoch=entry.get("seconds_per_epoch"))
    model = entry.get("model")
    needs_labels = getattr(model, "needs_labels", False)
    labels = y_test if needs_labels else None
    if model is not None and hasattr(model, "encode"):
        row.update(metrics.reconstruction_error(model, x_test, labels=labels))
    if entry.get("vae"):
        row["negative_elbo"] = metrics.elbo(model, x_test, labels=labels, rng=seed)[
            "negative_elbo"]
        m = settings["iwae_images"]
        row["iwae"] = metrics.iwae_log_likelihood(
            model, x_test[:m], k=settings["iwae_k"],
            labels=None if labels is None else labels[:m], rng=seed)
    quality = metrics.sample_quality(entry["images"], train_stats,
                                     requested=entry.get("requested"), classifier=classifier)
    row.update(quality)
    reconstructions = None
    if model is not None and hasattr(model, "encode"):
        subset = context["reconstruction_rows"]
        reconstructions = reconstruct_all(model, x_train[subset], y_train[subset])
    m = settings["originality_images"]
    row.update(metrics.originality(entry["images"][:m], x_train, held_out, reconstructions))
    if entry.get("sample") is not None:
        row["samples_per_second"] = metrics.sampling_throughput(entry["sample"], n=1000)
    row["note"] = entry.get("note", "")
    return row


def markdown_table(rows):
    header = ("| model | parameters | s / epoch | samples / s | BCE / pixel | MSE / pixel | "
              "-ELBO | log p(x) IWAE | FD | IS | cond. acc. | NN train: gen / real | "
              "NN recon.: gen / real |")
    lines = [header, "|" + " --- |" * (header.count("|") - 1)]
    for r in rows:
        recon_nn = (f"{r['generated_to_reconstruction']:.2f} / "
                    f"{r['held_out_to_reconstruction']:.2f}"
                    if "generated_to_reconstruction" in r else "n/a")
        lines.append(
            f"| {r['name']} | {fmt(r.get('parameters'), ',')} | "
            f"{fmt(r.get('seconds_per_epoch'), '.0f')} | "
            f"{fmt(r.get('samples_per_second'), ',.0f')} | {fmt(r.get('bce'), '.4f')} | "
            f"{fmt(r.get('mse'), '.4f')} | {fmt(r.get('negative_elbo'), '.1f')} | "
            f"{fmt(r.get('iwae'), '.1f')} | {r['frechet_distance']:.2f} | "
            f"{r['inception_score']:.2f} ± {r['inception_score_std']:.2f} | "
            f"{fmt(r.get('conditional_accuracy'), '.1%')} | "
            f"{r['generated_to_train']:.2f} / {r['held_out_to_train']:.2f} | {recon_nn} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="training epochs, the same for every model "
                        f"(default {FULL['epochs']}; --quick: {QUICK['epochs']})")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 2,000 training images, fewer samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", default=DEFAULT_DATA,
                        help="directory holding mnist/ (default $TINYAE_DATA or ../shared/data)")
    parser.add_argument("--classifier", help="reference classifier weights (default: the "
                        "shipped tinyae/assets/mnist_classifier.npz)")
    args = parser.parse_args(argv)
    settings = dict(QUICK if args.quick else FULL)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    seed = args.seed
    started = time.perf_counter()

    x_train, y_train = data.load_mnist(args.data_dir, split="train")
    x_test, y_test = data.load_mnist(args.data_dir, split="test")
    if settings["train_limit"]:
        x_train, y_train = x_train[:settings["train_limit"]], y_train[:settings["train_limit"]]
    if settings["test_limit"]:
        x_test, y_test = x_test[:settings["test_limit"]], y_test[:settings["test_limit"]]
    n, m = settings["samples"], settings["originality_images"]
    if n + m > len(x_test):
        raise SystemExit(f"{n} samples and {m} held-out images need {n + m} test images; "
                         f"there are {len(x_test)}")

    classifier = metrics.load_reference_classifier(args.classifier)
    train_outputs = metrics.classifier_outputs(x_train, classifier)
    context = dict(data=(x_train, y_train, x_test, y_test), classifier=classifier,
                   train_stats=metrics.feature_statistics(train_outputs.features),
                   held_out=x_test[:m],
                   reconstruction_rows=numpy.sort(numpy.random.default_rng(seed).choice(
                       len(x_train), min(settings["reconstructions"], len(x_train)),
                       replace=False)))
    print(f"MNIST: {len(x_train)} training, {len(x_test)} test images; {settings['epochs']} "
          f"epochs of batch {settings['batch_size']} for every model; seed {seed}", flush=True)

    # the floor: real test images (disjoint from the held-out ones) scored as if samples
    rows = [score(dict(name="real test images (floor)", images=x_test[len(x_test) - n:],
                       requested=y_test[len(x_test) - n:]), context, settings, seed)]

    timings = {}
    for entry in generators(x_train, y_train, settings, seed):
        begun = time.perf_counter()
        rows.append(score(entry, context, settings, seed))
        timings[entry["name"]] = time.perf_counter() - begun
        print(f"  scored {entry['name']}: {timings[entry['name']]:.0f} s", flush=True)

    wall = time.perf_counter() - started
    print()
    print(f"MNIST quality benchmark: {len(x_train)} training images, {settings['epochs']} "
          f"epoch(s) of batch {settings['batch_size']} for every model, seed {seed}; "
          f"{n} samples per model for FD/IS/accuracy (FD against the "
          f"{len(x_train)} training images' features), IWAE k={settings['iwae_k']} on "
          f"{settings['iwae_images']} test images, originality on {m} samples against "
          f"{m} held-out test images and {len(context['reconstruction_rows'])} "
          f"reconstructed training images; wall time {wall / 60:.1f} min.")
    print()
    print(markdown_table(rows))
    print()
    print("FD: Frechet distance of the reference classifier's penultimate features to the "
          "training set's (lower is better; the first row is the floor). IS: Inception-Score "
          "analogue, mean ± std over 10 splits (at most 10). cond. acc.: share of samples "
          "read as the requested digit (real row: classifier accuracy on test labels). "
          "NN: mean Euclidean distance to the nearest training image / reconstruction, for "
          "samples and for held-out test images. BCE, MSE, -ELBO (nats per image) on the "
          "test set; log p(x) in nats per image.")
    for r in rows:
        if r.get("note"):
            print(f"- {r['name']}: {r['note']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
