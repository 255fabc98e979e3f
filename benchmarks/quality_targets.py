"""The quality targets of the models (recorded in benchmarks/RESULTS.md; not tests).

    python -m benchmarks.quality_targets [--data-dir DIR] [--ae-epochs 30]

1. VAE 784-400-20, 10 epochs, batch 128, Adam 1e-3 on MNIST: the test loss (BCE
   summed over pixels + KL, per image), for tinyae and for PyTorch trained the
   same way in the same run (target: at most 106, and within 1% of PyTorch).
2. The study's deep MLP autoencoders (code 32, ReLU, sigmoid out, BCE, Adam 1e-3,
   batch 256): test BCE per pixel (target: at most 0.080), for the 5-hidden-layer
   network, the 9-hidden-layer one as the study wrote it, and the 9-hidden-layer
   one with batch norm between each hidden Dense and its ReLU.
3. A Gaussian mixture per class fitted on the 9-hidden-layer autoencoder's training
   codes: the share of decoded samples that the reference classifier assigns to
   the requested class (target: at least 97%).
"""
import argparse
import time

import numpy

import tinyae
from tinyae import data, metrics, models


def vae_tinyae(x_train, x_test, epochs, seed):
    tinyae.nn.manual_seed(seed)
    vae = models.mlp_vae((1, 28, 28), hidden=(400,), latent_dim=20)
    tinyae.train(vae, x_train, epochs=epochs, batch_size=128, lr=1e-3, seed=seed, progress=False)
    return tinyae.evaluate(vae, x_test, rng=seed)["loss"]


def vae_torch(x_train, x_test, epochs, seed):
    """PyTorch's own MNIST VAE example, written out: the same model, loss and optimizer."""
    import torch
    import torch.nn.functional as F
    torch.manual_seed(seed)
    enc, mu_head, logvar_head = torch.nn.Linear(784, 400), torch.nn.Linear(400, 20), \
        torch.nn.Linear(400, 20)
    dec1, dec2 = torch.nn.Linear(20, 400), torch.nn.Linear(400, 784)
    params = [p for m in (enc, mu_head, logvar_head, dec1, dec2) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)

    def loss_of(x):
        h = F.relu(enc(x))
        mu, logvar = mu_head(h), logvar_head(h)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = torch.sigmoid(dec2(F.relu(dec1(z))))
        bce = F.binary_cross_entropy(recon, x, reduction="sum")
        return bce - 0.5 * torch.sum(1 + logvar - mu * mu - logvar.exp())

    xt = torch.from_numpy(x_train.reshape(len(x_train), -1))
    rng = numpy.random.default_rng(seed)
    for _ in range(epochs):
        order = torch.from_numpy(rng.permutation(len(xt)))
        for start in range(0, len(xt), 128):
            loss = loss_of(xt[order[start:start + 128]]) / min(128, len(xt) - start)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        xs = torch.from_numpy(x_test.reshape(len(x_test), -1))
        return float(sum(loss_of(xs[s:s + 1000]) for s in range(0, len(xs), 1000)) / len(xs))


DEEP = {"5 hidden": ([512, 128, 32, 128, 512], False),
        "9 hidden": ([512, 256, 128, 64, 32, 64, 128, 256, 512], False),
        "9 hidden + batch norm": ([512, 256, 128, 64, 32, 64, 128, 256, 512], True)}


def deep_autoencoder(x_train, x_test, epochs, seed, network="9 hidden",
                     code_activation=None):
    """One of the DEEP networks; the 32-unit code is linear by default (a ReLU there
    leaves dead code units, and the Gaussian fits then see degenerate dimensions)."""
    tinyae.nn.manual_seed(seed)
    hidden, batch_norm = DEEP[network]
    ae = models.mlp_autoencoder((1, 28, 28), hidden, latent_dim=32, loss="bce",
                                code_activation=code_activation, batch_norm=batch_norm)
    tinyae.train(ae, x_train, epochs=epochs, batch_size=256, lr=1e-3, seed=seed, progress=False)
    bce = metrics.reconstruction_error(ae, x_test)["bce"]
    codes = numpy.concatenate([ae.embed(tinyae.tensor(x_train[s:s + 1000])).numpy()
                               for s in range(0, len(x_train), 1000)])
    return ae, bce, codes


def sampler_accuracy(ae, codes, y_train, kind, n_components, scale, seed, per_class=200):
    sampler = models.GMMSampler(kind, n_components=n_components, covariance_scale=scale,
                                seed=seed).fit(codes, y_train)
    requested = numpy.repeat(numpy.arange(10), per_class)
    z = numpy.concatenate([sampler.sample(per_class, label=k) for k in range(10)])
    with tinyae.no_grad():
        images = ae.decode(tinyae.tensor(z)).numpy().reshape(-1, 1, 28, 28)
    _, probabilities = metrics.classifier_outputs(images)
    return metrics.conditional_accuracy(probabilities, requested)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: $TINYAE_DATA)")
    parser.add_argument("--vae-epochs", type=int, default=10)
    parser.add_argument("--ae-epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--code-activation", default=None, help="e.g. relu (default: linear)")
    parser.add_argument("--skip-vae", action="store_true")
    args = parser.parse_args(argv)
    x_train, y_train = data.load_mnist(args.data_dir, split="train")
    x_test, _ = data.load_mnist(args.data_dir, split="test")
    start = time.perf_counter()
    print(f"# seed {args.seed}; VAE {args.vae_epochs} epochs; deep AE {args.ae_epochs} epochs")
    if not args.skip_vae:
        ours = vae_tinyae(x_train, x_test, args.vae_epochs, args.seed)
        try:
            theirs = vae_torch(x_train, x_test, args.vae_epochs, args.seed)
            versus = f"PyTorch {theirs:.2f}, tinyae/PyTorch {ours / theirs:.4f}"
        except ImportError:
            versus = "PyTorch not installed"
        print(f"VAE 784-400-20 test loss (BCE sum + KL per image): tinyae {ours:.2f}; {versus}")
    for network in DEEP:
        ae, bce, codes = deep_autoencoder(x_train, x_test, args.ae_epochs, args.seed, network,
                                          args.code_activation)
        print(f"deep MLP autoencoder, {network} (code 32, {args.code_activation or 'linear'} "
              f"code) test BCE per pixel: {bce:.4f}", flush=True)
        if network == "9 hidden":
            study_ae, study_codes = ae, codes
    ae, codes = study_ae, study_codes
    for kind, k, scale in (("gaussian", 1, 1.0), ("gaussian", 1, 0.5), ("mixture", 10, 1.0),
                           ("mixture", 10, 0.5)):
        accuracy = sampler_accuracy(ae, codes, y_train, kind, k, scale, args.seed)
        print(f"GMMSampler({kind!r}, K={k}, covariance_scale={scale}): "
              f"{100 * accuracy:.1f}% assigned to the requested class")
    print(f"# wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
