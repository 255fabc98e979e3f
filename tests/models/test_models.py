"""tinyae.models: builders and shapes, each model's loss falling on real MNIST, the VAE's
reparameterisation, denoising, the GAN's steps, and a CVAE drawing the digits asked for."""
import math

import numpy as np
import pytest

import tinyae
from tinyae import data, losses, models, nn, optim
from tinyae.train import evaluate, train

from conftest import to_host


# ---------------------------------------------------------------- real data and a judge
@pytest.fixture(scope="module")
def mnist(data_dir):
    """MNIST's training split: models train on the first few thousand images, the digit
    classifier on images 10,000 to 30,000; tests use images from 50,000 on."""
    return data.load_mnist(data_dir, split="train")


def train_digit_classifier(x, y, epochs=3, seed=0):
    """A small tinyae MLP (784-256-10, cross-entropy) that judges generated digits.

    About 95% accurate on real digits after two seconds of training on 20,000.
    """
    nn.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Dense(784, 256), nn.ReLU(), nn.Dense(256, 10))
    optimizer = optim.Adam(net.parameters(), lr=1e-3)
    for epoch in range(epochs):
        for xb, yb in data.batches(x, y, batch_size=64, seed=epoch):
            optimizer.zero_grad()
            loss = losses.cross_entropy(net(tinyae.Tensor(xb)), yb)
            loss.backward()
            optimizer.step()
    net.eval()

    def predict(images):
        with tinyae.no_grad():
            logits = net(tinyae.tensor(np.asarray(images, np.float32).reshape(-1, 1, 28, 28)))
        return logits.numpy().argmax(axis=1)

    return predict


@pytest.fixture(scope="module")
def classify(mnist):
    x, y = mnist
    predict = train_digit_classifier(x[10000:30000], y[10000:30000])
    accuracy = (predict(x[50000:51000]) == y[50000:51000]).mean()
    assert accuracy > 0.93, f"the judging classifier itself is only {accuracy:.1%} accurate"
    return predict


# ---------------------------------------------------------------- builders and shapes
def dense_sizes(module):
    return [(layer.in_features, layer.out_features) for layer in module.modules()
            if isinstance(layer, nn.Dense)]


@pytest.mark.parametrize("hidden, latent_dim, sizes", [
    ([32], 32, [784, 32, 784]),
    ([32], None, [784, 32, 784]),
    ([512, 128, 32, 128, 512], 32, [784, 512, 128, 32, 128, 512, 784]),
    ([512, 256, 128, 64, 32, 64, 128, 256, 512], 32,
     [784, 512, 256, 128, 64, 32, 64, 128, 256, 512, 784]),
    ([512, 128], 32, [784, 512, 128, 32, 128, 512, 784]),   # the encoder half, mirrored
])
def test_mlp_autoencoder_study_configurations(hidden, latent_dim, sizes):
    model = models.mlp_autoencoder(784, hidden, latent_dim)
    layers = dense_sizes(model.encoder) + dense_sizes(model.decoder)
    assert [n_in for n_in, _ in layers] + [layers[-1][1]] == sizes


def test_mlp_autoencoder_without_a_code_layer_asks_for_latent_dim():
    with pytest.raises(ValueError, match="latent_dim"):
        models.mlp_autoencoder(784, [512, 128])

def test_mlp_autoencoder_batch_norm_sits_between_each_hidden_dense_and_its_activation(mnist):
    nn.manual_seed(0)
    model = models.mlp_autoencoder((1, 28, 28), [64, 16, 64], code_activation=None,
                                   batch_norm=True)
    kinds = [type(layer).__name__ for layer in list(model.encoder) + list(model.decoder)]
    assert kinds == ["Dense", "BatchNorm1d", "ReLU", "Dense",                  # code: linear
                     "Dense", "BatchNorm1d", "ReLU", "Dense", "Sigmoid"]       # output: no norm
    x = mnist[0][50000:50256]
    before = evaluate(model, x)["loss"]
    train(model, mnist[0][:2048], epochs=2, batch_size=64, progress=False)
    # reconstruct runs in eval mode: the running statistics, so one image alone gives
    # the same answer as inside a batch
    assert evaluate(model, x)["loss"] < 0.8 * before
    alone = model.reconstruct(x[:1]).numpy()
    np.testing.assert_allclose(alone, model.reconstruct(x[:8]).numpy()[:1], rtol=1e-5, atol=1e-6)


def test_mlp_models_flatten_and_give_back_the_input_shape(backend_name):
    nn.manual_seed(0)
    model = models.mlp_autoencoder((1, 28, 28), [64, 16, 64]).to(backend_name)
    images = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    assert model.reconstruct(images).shape == (3, 1, 28, 28)
    assert model.reconstruct(images.reshape(3, 784)).shape == (3, 784)
    assert model.embed(images).shape == (3, 16)
    assert model.decode(np.zeros((2, 16), np.float32)).shape == (2, 1, 28, 28)


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (1, 100, 100), (3, 30, 45)])
def test_conv_vae_returns_exactly_to_the_input_size(shape, backend_name):
    nn.manual_seed(0)
    model = models.conv_vae(shape, channels=(4, 8, 8, 8), latent_dim=3).to(backend_name)
    images = np.random.default_rng(0).random((2,) + shape, dtype=np.float32)
    x_hat, mu, logvar = model(images)
    assert x_hat.shape == (2,) + shape and mu.shape == logvar.shape == (2, 3)
    assert model.sample(2).shape == (2,) + shape
    assert 0 <= float(x_hat.numpy().min()) and float(x_hat.numpy().max()) <= 1  # sigmoid out


def test_conv_vae_layers_are_the_study_stack():
    model = models.conv_vae((1, 28, 28), channels=(32, 64, 64, 64), latent_dim=2)
    kinds = [type(layer).__name__ for layer in model.encoder]
    assert kinds == ["Conv2d", "BatchNorm2d", "LeakyReLU"] * 4 + ["Flatten"]
    assert all(layer.stride == (2, 2) and layer.padding == (1, 1)
               for layer in model.encoder if isinstance(layer, nn.Conv2d))
    assert [layer.negative_slope for layer in model.encoder
            if isinstance(layer, nn.LeakyReLU)] == [0.2] * 4
    assert model.fc_mu.in_features == 64 * 2 * 2          # 28 -> 14 -> 7 -> 4 -> 2
    transposed = [layer for layer in model.decoder if isinstance(layer, nn.ConvTranspose2d)]
    assert [layer.out_channels for layer in transposed] == [64, 64, 32, 1]
    assert [layer.output_padding for layer in transposed] == [(1, 1), (0, 0), (1, 1), (1, 1)]  # 2->4->7->14->28
    assert type(model.decoder[-1]).__name__ == "Sigmoid"


def test_conv_autoencoder_shapes(backend_name):
    nn.manual_seed(0)
    model = models.conv_autoencoder((1, 28, 28), channels=(4, 8), latent_dim=5).to(backend_name)
    images = np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)
    assert model.embed(images).shape == (2, 5)
    assert model.reconstruct(images).shape == (2, 1, 28, 28)


def test_mlp_gan_is_the_study_architecture():
    gan = models.mlp_gan(latent_dim=100)
    assert dense_sizes(gan.generator) == [(100, 256), (256, 512), (512, 784)]
    assert dense_sizes(gan.discriminator) == [(784, 512), (512, 256), (256, 1)]
    g_kinds = [type(layer).__name__ for layer in gan.generator]
    assert g_kinds == ["Dense", "LeakyReLU", "Dense", "LeakyReLU", "Dense", "Tanh", "Reshape"]
    d_kinds = [type(layer).__name__ for layer in gan.discriminator]
    assert d_kinds == ["Flatten", "Dense", "LeakyReLU", "Dropout", "Dense", "LeakyReLU",
                       "Dropout", "Dense"]                    # logits out: no sigmoid
    assert [layer.p for layer in gan.discriminator if isinstance(layer, nn.Dropout)] == [0.3] * 2


def test_dcgan_makes_28x28_images_in_the_data_range(backend_name):
    nn.manual_seed(0)
    gan = models.dcgan(latent_dim=16, features=4).to(backend_name)
    images = gan.sample(3).numpy()
    assert images.shape == (3, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1          # tanh output mapped back to [0, 1]
    assert gan.discriminate(images).shape == (3, 1)


# ---------------------------------------------------------------- the VAE's pieces
def test_reparameterize_uses_the_standard_deviation():
    model = models.mlp_vae(4, hidden=(3,), latent_dim=2)
    mu = tinyae.tensor(np.zeros((20000, 2), np.float32))
    logvar = tinyae.tensor(np.full((20000, 2), math.log(4.0), np.float32))  # variance 4: std 2
    z = model.reparameterize(mu, logvar, rng=0).numpy()
    assert abs(z.std() - 2.0) < 0.05 and abs(z.mean()) < 0.05


def test_vae_loss_is_recon_times_factor_plus_beta_kl():
    nn.manual_seed(0)
    images = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    for kl, beta, factor in ((True, 1.0, 1.0), (True, 4.0, 2.0), (False, 4.0, 3.0)):
        model = models.mlp_vae((1, 28, 28), hidden=(16,), latent_dim=3, beta=beta,
                               r_loss_factor=factor, kl=kl)
        terms = {name: value.item() for name, value in model.loss_components(images).items()}
        expected = factor * terms["recon"] + (beta * terms["kl"] if kl else 0.0)
        assert terms["loss"] == pytest.approx(expected, rel=1e-5)
        assert terms["kl"] > 0
        # recon is summed over each image's 784 pixels: of the order of 784 * log 2
        assert 300 < terms["recon"] < 1500


def test_vae_rejects_a_loss_it_cannot_sum_per_image():
    with pytest.raises(ValueError, match="loss must be one of"):
        models.mlp_vae(784, loss="euclidean")


def test_denoising_corrupts_only_in_training():
    nn.manual_seed(0)
    model = models.mlp_autoencoder((1, 28, 28), [16], noise="gaussian", noise_level=0.1)
    clean = np.random.default_rng(0).random((4, 1, 28, 28), dtype=np.float32)
    noisy = model.corrupt(clean, rng=1).numpy()
    assert noisy.min() >= 0 and noisy.max() <= 1          # clipped
    assert 0.05 < np.abs(noisy - clean).mean() < 0.1       # sigma 0.1, with clipping
    model.eval()
    plain = models.Autoencoder(model.encoder, model.decoder, "bce", (1, 28, 28), True)
    assert model.loss_components(clean)["loss"].item() == plain.loss_components(clean)[
        "loss"].item()
    model.train()
    assert model.loss_components(clean)["loss"].item() != plain.loss_components(clean)[
        "loss"].item()


@pytest.mark.parametrize("noise, level", [("salt_and_pepper", 0.2), ("mask", 0.3)])
def test_other_corruptions_touch_the_asked_fraction(noise, level):
    model = models.mlp_autoencoder(784, [16], noise=noise, noise_level=level)
    clean = np.full((10, 784), 0.5, np.float32)
    changed = (model.corrupt(clean, rng=0).numpy() != 0.5).mean()
    assert abs(changed - level) < 0.03


# ---------------------------------------------------------------- training on real digits
def build(name):
    nn.manual_seed(0)
    if name == "mlp_autoencoder":
        return models.mlp_autoencoder((1, 28, 28), [256, 64, 32, 64, 256])
    if name == "denoising_autoencoder":
        return models.mlp_autoencoder((1, 28, 28), [256, 32, 256], noise="gaussian")
    if name == "mlp_vae":
        return models.mlp_vae(784, hidden=(256,), latent_dim=16)
    if name == "conv_autoencoder":
        return models.conv_autoencoder((1, 28, 28), channels=(8, 16), latent_dim=16)
    if name == "conv_vae":
        return models.conv_vae((1, 28, 28), channels=(8, 16, 16), latent_dim=8)
    raise KeyError(name)


# (model, training images, epochs, batch size, learning rate, the factor by which the
# loss must fall at least). The convolutional models are slow on the CPU: fewer, bolder steps.
TRAINING_CASES = [
    ("mlp_autoencoder", 2000, 3, 64, 1e-3, 2.0),
    ("denoising_autoencoder", 2000, 3, 64, 1e-3, 2.0),
    ("mlp_vae", 2000, 3, 64, 1e-3, 2.0),
    ("conv_autoencoder", 256, 2, 32, 1e-2, 1.5),
    ("conv_vae", 256, 2, 32, 1e-2, 1.5),
]


@pytest.mark.parametrize("name, count, epochs, batch_size, lr, factor", TRAINING_CASES)
def test_model_loss_falls_on_mnist(name, count, epochs, batch_size, lr, factor, mnist,
                                   backend_name):
    x = mnist[0][:count]
    model = build(name).to(backend_name)
    before = evaluate(model, x)["loss"]
    history = train(model, x, epochs=epochs, batch_size=batch_size, lr=lr, progress=False,
                    seed=0)
    after = evaluate(model, x)["loss"]
    assert len(history.history["train/loss"]) == epochs
    assert after < before / factor, f"{name}: loss {before:.4g} -> {after:.4g}"


@pytest.mark.slow  # a long reproduction: trains a CVAE on MNIST
def test_cvae_draws_the_digit_asked_for(mnist, classify):
    x, y = mnist
    nn.manual_seed(0)
    model = models.mlp_cvae((1, 28, 28), hidden=(256,), latent_dim=2)
    before = evaluate(model, (x[:5000], y[:5000]))["loss"]
    train(model, (x[:5000], y[:5000]), epochs=10, batch_size=64, progress=False)
    assert evaluate(model, (x[:5000], y[:5000]))["loss"] < before / 2
    wanted = np.repeat(np.arange(10), 30)
    samples = model.sample(len(wanted), label=wanted, rng=1).numpy()
    accuracy = (classify(samples) == wanted).mean()
    assert accuracy >= 0.9, f"only {accuracy:.1%} of the CVAE's digits are the class asked for"
    assert model.sample(4, label=7).shape == (4, 1, 28, 28)


@pytest.mark.slow  # a long reproduction: trains an inpainting CVAE on MNIST
def test_inpainting_cvae_fills_holes_better_than_the_mean_image(mnist):
    x = mnist[0]
    nn.manual_seed(0)
    model = models.mlp_cvae((1, 28, 28), hidden=(256,), latent_dim=8, condition="inpainting",
                            mask="half")
    train(model, x[:3000], epochs=4, batch_size=64, progress=False)
    test = x[50000:50200]
    mask = data.half_mask(test.shape, "bottom")
    masked = data.apply_mask(test, mask)
    filled = model.complete(masked, mask, sample=False).numpy()
    visible = to_host(mask) == 1
    assert np.array_equal(filled[visible], test[visible])   # visible pixels are kept exactly
    hidden = ~visible
    model_error = ((filled - test)[hidden] ** 2).mean()
    mean_image = np.broadcast_to(x[:3000].mean(axis=0), test.shape)
    baseline_error = ((mean_image - test)[hidden] ** 2).mean()
    assert model_error < 0.8 * baseline_error


def test_gan_trains_with_two_discriminator_steps_per_generator_step(mnist):
    nn.manual_seed(0)
    gan = models.mlp_gan(latent_dim=32, generator_hidden=(64, 128), discriminator_hidden=(128, 64),
                         d_steps=2, label_smoothing=0.1)
    history = train(gan, mnist[0][:1024], epochs=2, batch_size=64, lr=2e-4, betas=(0.5, 0.999),
                    progress=False)
    for name in ("train/d", "train/g"):
        assert len(history[name]) == 2 and all(math.isfinite(v) for v in history[name])
    # 16 batches per epoch: 32 discriminator updates and 16 generator updates in all
    optimizers = {}
    history = train(gan, mnist[0][:1024], epochs=1, batch_size=64, progress=False,
                    callbacks=[lambda trainer, epoch, h: optimizers.update(trainer.optimizers)])
    d_steps = optimizers["discriminator"].state[0]["step"]
    g_steps = optimizers["generator"].state[0]["step"]
    assert (d_steps, g_steps) == (16, 8)
    images = gan.sample(5).numpy()
    assert images.shape == (5, 1, 28, 28) and 0 <= images.min() and images.max() <= 1


def test_gan_label_smoothing_softens_only_the_real_targets():
    nn.manual_seed(0)
    gan = models.mlp_gan(latent_dim=4, generator_hidden=(8,), discriminator_hidden=(8,),
                         label_smoothing=0.1)
    gan.eval()
    real = gan._real(np.random.default_rng(0).random((6, 1, 28, 28), dtype=np.float32))
    gan.rng = np.random.default_rng(3)
    ours = gan.discriminator_loss(real).item()
    gan.rng = np.random.default_rng(3)
    fake = gan.generator(gan.noise(6, real))
    expected = losses.gan_discriminator_loss(gan.discriminator(real), gan.discriminator(fake),
                                             real_label=0.9).item()
    assert ours == pytest.approx(expected, rel=1e-6)


def test_gan_scales_data_to_minus_one_one():
    gan = models.mlp_gan(latent_dim=4, generator_hidden=(8,), discriminator_hidden=(8,))
    x = np.array([[0.0, 0.5, 1.0]], np.float32)
    assert gan.to_model_range(tinyae.tensor(x)).numpy().tolist() == [[-1.0, 0.0, 1.0]]
    assert gan.to_data_range(tinyae.tensor(x * 2 - 1)).numpy().tolist() == x.tolist()
