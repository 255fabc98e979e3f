"""The five reference workloads A to E, written once for both frameworks.

``tinyae.nn`` follows ``torch.nn``'s names, argument orders and parameter layouts,
so each architecture is built by one function from a namespace ``nn`` that is
either ``torch.nn`` or ``tinyae.nn``; both get the same state-dict keys, so
weights move from one to the other for the correctness check.

A training step is forward, backward and one optimizer update (for D: one
discriminator update and one generator update).
"""
import math

import numpy


# ---------------------------------------------------------------- framework adapters
class TorchOps:
    name = "torch"

    def __init__(self, device="cpu"):
        import torch
        import torch.nn.functional as F
        self.torch, self.F, self.nn, self.device = torch, F, torch.nn, device

    def tensor(self, array):
        return self.torch.from_numpy(array).to(self.device)

    def unflatten(self, *shape):
        return self.nn.Unflatten(1, shape)

    def bce(self, p, y, reduction):
        return self.F.binary_cross_entropy(p, y, reduction=reduction)

    def kl_sum(self, mu, logvar):
        return -0.5 * (1 + logvar - mu * mu - logvar.exp()).sum()

    def exp(self, x):
        return x.exp()

    def randn_like(self, x, rng):
        return self.tensor(rng.standard_normal(x.shape).astype("float32"))

    def adam(self, params, lr, betas=(0.9, 0.999)):
        return self.torch.optim.Adam(params, lr=lr, betas=betas)

    def set_threads(self, n):
        self.torch.set_num_threads(n)

    def no_grad(self):
        return self.torch.no_grad()


class TinyaeOps:
    name = "tinyae"

    def __init__(self):
        import tinyae
        import tinyae.nn
        import tinyae.losses
        import tinyae.optim
        self.tinyae, self.nn = tinyae, tinyae.nn
        self.losses, self.optim = tinyae.losses, tinyae.optim

    def tensor(self, array):
        return self.tinyae.tensor(array)

    def unflatten(self, *shape):
        return self.nn.Reshape(*shape)

    def bce(self, p, y, reduction):
        return self.losses.bce(p, y, reduction=reduction)

    def kl_sum(self, mu, logvar):
        return self.losses.kl_normal(mu, logvar, reduction="sum")

    def exp(self, x):
        return self.tinyae.exp(x)

    def randn_like(self, x, rng):
        return self.tinyae.tensor(rng.standard_normal(x.shape).astype("float32"))

    def adam(self, params, lr, betas=(0.9, 0.999)):
        return self.optim.Adam(list(params), lr=lr, betas=betas)

    def set_threads(self, n):
        pass

    def no_grad(self):
        return self.tinyae.no_grad()


# ---------------------------------------------------------------- architectures
def mlp(nn, sizes, activation, last=None):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
        elif last is not None:
            layers.append(last())
    return nn.Sequential(*layers)


def make_vae_class(nn):
    class VAE(nn.Module):
        def __init__(self, encoder, mu, logvar, decoder):
            super().__init__()
            self.encoder, self.mu, self.logvar, self.decoder = encoder, mu, logvar, decoder

    return VAE


def vae_step(ops, model, opt, x, rng):
    h = model.encoder(x)
    mu, logvar = model.mu(h), model.logvar(h)
    eps = ops.randn_like(mu, rng)
    z = mu + ops.exp(logvar * 0.5) * eps
    recon = model.decoder(z)
    loss = ops.bce(recon, x, "sum") + ops.kl_sum(mu, logvar)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def ae_step(ops, model, opt, x, rng):
    loss = ops.bce(model(x), x, "mean")
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss


def gan_step(ops, model, opts, x, rng):
    g, d = model.g, model.d
    opt_g, opt_d = opts
    n = x.shape[0]
    z = ops.tensor(rng.standard_normal((n, 100)).astype("float32"))
    ones = ops.tensor(numpy.ones((n, 1), dtype="float32"))
    zeros = ops.tensor(numpy.zeros((n, 1), dtype="float32"))
    with ops.no_grad():
        fake = g(z)
    d_loss = ops.bce(d(x), ones, "mean") + ops.bce(d(fake), zeros, "mean")
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()
    g_loss = ops.bce(d(g(z)), ones, "mean")
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    return d_loss


def build_a(ops):
    nn = ops.nn
    sizes = [784, 512, 256, 128, 64, 32, 64, 128, 256, 512, 784]
    model = mlp(nn, sizes, nn.ReLU, last=nn.Sigmoid)
    # the bottleneck is ReLU too: mlp puts an activation after every layer but the last
    return model, ops.adam(model.parameters(), 1e-3), ae_step


def build_b(ops):
    nn = ops.nn
    VAE = make_vae_class(nn)
    model = VAE(nn.Sequential(nn.Linear(784, 400), nn.ReLU()), nn.Linear(400, 20),
                nn.Linear(400, 20), mlp(nn, [20, 400, 784], nn.ReLU, last=nn.Sigmoid))
    return model, ops.adam(model.parameters(), 1e-3), vae_step


def build_c(ops):
    nn = ops.nn
    VAE = make_vae_class(nn)

    def block(conv):
        return [conv, nn.BatchNorm2d(conv.weight.shape[0] if "Transpose" not in
                                     type(conv).__name__ else conv.weight.shape[1]),
                nn.LeakyReLU(0.2)]
    encoder = nn.Sequential(*block(nn.Conv2d(1, 32, 3, 2, 1)), *block(nn.Conv2d(32, 64, 3, 2, 1)),
                            nn.Flatten())
    decoder = nn.Sequential(nn.Linear(16, 64 * 7 * 7), ops.unflatten(64, 7, 7),
                            *block(nn.ConvTranspose2d(64, 32, 4, 2, 1)),
                            nn.ConvTranspose2d(32, 1, 4, 2, 1), nn.Sigmoid())
    model = VAE(encoder, nn.Linear(64 * 7 * 7, 16), nn.Linear(64 * 7 * 7, 16), decoder)
    return model, ops.adam(model.parameters(), 1e-3), vae_step


def build_d(ops):
    nn = ops.nn

    class GAN(nn.Module):
        def __init__(self):
            super().__init__()
            self.g = nn.Sequential(nn.Linear(100, 256), nn.LeakyReLU(0.2), nn.Linear(256, 512),
                                   nn.LeakyReLU(0.2), nn.Linear(512, 784), nn.Tanh())
            self.d = nn.Sequential(nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Dropout(0.3),
                                   nn.Linear(512, 256), nn.LeakyReLU(0.2), nn.Dropout(0.3),
                                   nn.Linear(256, 1), nn.Sigmoid())

    model = GAN()
    opts = (ops.adam(model.g.parameters(), 2e-4, (0.5, 0.999)),
            ops.adam(model.d.parameters(), 2e-4, (0.5, 0.999)))
    return model, opts, gan_step


def build_e(ops):
    nn = ops.nn
    VAE = make_vae_class(nn)
    enc = []
    for a, b in [(1, 32), (32, 64), (64, 64), (64, 64)]:
        enc += [nn.Conv2d(a, b, 3, 2, 1), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
    # 100 -> 50 -> 25 -> 13 -> 7 and back: output_padding restores 50 and 100 exactly
    dec = [nn.Linear(150, 64 * 7 * 7), ops.unflatten(64, 7, 7)]
    for a, b, op in [(64, 64, 0), (64, 64, 0), (64, 32, 1)]:
        dec += [nn.ConvTranspose2d(a, b, 3, 2, 1, op), nn.BatchNorm2d(b), nn.LeakyReLU(0.2)]
    dec += [nn.ConvTranspose2d(32, 1, 3, 2, 1, 1), nn.Sigmoid()]
    model = VAE(nn.Sequential(*enc, nn.Flatten()), nn.Linear(64 * 7 * 7, 150),
                nn.Linear(64 * 7 * 7, 150), nn.Sequential(*dec))
    return model, ops.adam(model.parameters(), 1e-3), vae_step


def _dense_flops(sizes):
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def _conv_flops(c_in, c_out, k, out_hw):
    return 2 * c_in * c_out * k * k * out_hw[0] * out_hw[1]


# name: (builder, input shape without batch, batch, forward FLOPs per example)
WORKLOADS = {
    "A": (build_a, (784,), 256, _dense_flops([784, 512, 256, 128, 64, 32, 64, 128, 256, 512, 784])),
    "B": (build_b, (784,), 128, _dense_flops([784, 400]) + 2 * _dense_flops([400, 20])
          + _dense_flops([20, 400, 784])),
    "C": (build_c, (1, 28, 28), 128, _conv_flops(1, 32, 3, (14, 14)) + _conv_flops(32, 64, 3, (7, 7))
          + 2 * _dense_flops([3136, 16]) + _dense_flops([16, 3136])
          + _conv_flops(32, 64, 4, (7, 7)) + _conv_flops(1, 32, 4, (14, 14))),
    "D": (build_d, (784,), 64, 3 * _dense_flops([784, 512, 256, 1]) + 2 * _dense_flops([100, 256, 512, 784])),
    "E": (build_e, (1, 100, 100), 32, _conv_flops(1, 32, 3, (50, 50)) + _conv_flops(32, 64, 3, (25, 25))
          + _conv_flops(64, 64, 3, (13, 13)) + _conv_flops(64, 64, 3, (7, 7))
          + 2 * _dense_flops([3136, 150]) + _dense_flops([150, 3136])
          + _conv_flops(64, 64, 3, (7, 7)) + _conv_flops(64, 64, 3, (13, 13))
          + _conv_flops(32, 64, 3, (25, 25)) + _conv_flops(1, 32, 3, (50, 50))),
}


def step_flops(name, batch):
    """FLOPs of one training step: forward + backward (about twice the forward)."""
    return 3 * WORKLOADS[name][3] * batch


def make_batch(name, batch, rng):
    shape = WORKLOADS[name][1]
    x = rng.random((batch,) + shape).astype("float32")
    if name == "D":
        x = x * 2 - 1  # real images scaled to [-1, 1] for the tanh generator
    return x


def total_parameters(model):
    return sum(math.prod(p.shape) for p in model.parameters())
