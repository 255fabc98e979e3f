"""tinyae.save_weights / load_weights: safetensors files with PyTorch's keys.

The round trips build each model twice, in tinyae and in torch.nn as a user would
write it, and move the weights across in both directions through a file; the eval
outputs must agree to float32 precision (batch-norm running statistics included).
The error tests check that a file that does not fit says which file, key and
shape or dtype is wrong.
"""
import os

import numpy as np
import pytest
import safetensors
import safetensors.numpy

import tinyae
from tinyae import backend, models, nn

RTOL, ATOL = 1e-5, 1e-6  # float32 arithmetic in two libraries


# ---------------------------------------------------------------- the PyTorch twins
def torch_autoencoder(torch):
    """models.mlp_autoencoder((1, 4, 3), [8, 3, 8], batch_norm=True), written in torch.nn."""
    tnn = torch.nn

    class Autoencoder(tnn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = tnn.Sequential(tnn.Linear(12, 8), tnn.BatchNorm1d(8), tnn.ReLU(),
                                          tnn.Linear(8, 3), tnn.ReLU())
            self.decoder = tnn.Sequential(tnn.Linear(3, 8), tnn.BatchNorm1d(8), tnn.ReLU(),
                                          tnn.Linear(8, 12), tnn.Sigmoid())

        def forward(self, x):
            return (self.decoder(self.encoder(x.flatten(1))).reshape(x.shape),)

    return Autoencoder()


def torch_vae(torch):
    """models.mlp_vae(12, hidden=(8,), latent_dim=3): forward gives (decode(mu), mu, logvar)."""
    tnn = torch.nn

    class VAE(tnn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = tnn.Sequential(tnn.Linear(12, 8), tnn.ReLU())
            self.decoder = tnn.Sequential(tnn.Linear(3, 8), tnn.ReLU(), tnn.Linear(8, 12),
                                          tnn.Sigmoid())
            self.fc_mu, self.fc_logvar = tnn.Linear(8, 3), tnn.Linear(8, 3)

        def forward(self, x):
            h = self.encoder(x.flatten(1))
            mu, logvar = self.fc_mu(h), self.fc_logvar(h)
            return self.decoder(mu).reshape(x.shape), mu, logvar

    return VAE()


def torch_conv_vae(torch):
    """models.conv_vae((1, 12, 10), channels=(4, 8), latent_dim=3): 12x10 -> 6x5 -> 3x3."""
    tnn = torch.nn

    class ConvVAE(tnn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = tnn.Sequential(
                tnn.Conv2d(1, 4, 3, stride=2, padding=1), tnn.BatchNorm2d(4), tnn.LeakyReLU(0.2),
                tnn.Conv2d(4, 8, 3, stride=2, padding=1), tnn.BatchNorm2d(8), tnn.LeakyReLU(0.2),
                tnn.Flatten())
            self.decoder = tnn.Sequential(
                tnn.Linear(3, 8 * 3 * 3), tnn.Unflatten(1, (8, 3, 3)),
                tnn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=(1, 0)),
                tnn.BatchNorm2d(4), tnn.LeakyReLU(0.2),
                tnn.ConvTranspose2d(4, 1, 3, stride=2, padding=1, output_padding=(1, 1)),
                tnn.Sigmoid())
            self.fc_mu, self.fc_logvar = tnn.Linear(72, 3), tnn.Linear(72, 3)

        def forward(self, x):
            h = self.encoder(x)
            mu, logvar = self.fc_mu(h), self.fc_logvar(h)
            return self.decoder(mu), mu, logvar

    return ConvVAE()


def torch_gan(torch):
    """models.mlp_gan(4, (1, 3, 4), generator_hidden=(8, 6), discriminator_hidden=(6, 5))."""
    tnn = torch.nn

    class GAN(tnn.Module):
        def __init__(self):
            super().__init__()
            self.generator = tnn.Sequential(
                tnn.Linear(4, 8), tnn.LeakyReLU(0.2), tnn.Linear(8, 6), tnn.LeakyReLU(0.2),
                tnn.Linear(6, 12), tnn.Tanh(), tnn.Unflatten(1, (1, 3, 4)))
            self.discriminator = tnn.Sequential(
                tnn.Flatten(), tnn.Linear(12, 6), tnn.LeakyReLU(0.2), tnn.Dropout(0.3),
                tnn.Linear(6, 5), tnn.LeakyReLU(0.2), tnn.Dropout(0.3), tnn.Linear(5, 1))

        def forward(self, x, z):
            return self.generator(z), self.discriminator(x)

    return GAN()


def tinyae_outputs(kind, model, arrays):
    """The eval outputs that the twin's forward returns, as host arrays."""
    x = tinyae.tensor(arrays[0])
    with tinyae.no_grad():
        if kind == "autoencoder":
            outputs = (model(x),)
        elif kind in ("vae", "conv_vae"):
            mu, logvar = model.encode(x)
            outputs = (model.decode(mu).reshape(x.shape), mu, logvar)
        else:
            outputs = (model.generator(tinyae.tensor(arrays[1])), model.discriminator(x))
    return [out.numpy() for out in outputs]


CASES = {  # kind: (tinyae builder, torch twin, input shapes)
    "autoencoder": (lambda: models.mlp_autoencoder((1, 4, 3), [8, 3, 8], batch_norm=True),
                    torch_autoencoder, [(5, 1, 4, 3)]),
    "vae": (lambda: models.mlp_vae(12, hidden=(8,), latent_dim=3), torch_vae, [(5, 12)]),
    "conv_vae": (lambda: models.conv_vae((1, 12, 10), channels=(4, 8), latent_dim=3),
                 torch_conv_vae, [(5, 1, 12, 10)]),
    "gan": (lambda: models.mlp_gan(4, (1, 3, 4), generator_hidden=(8, 6),
                                   discriminator_hidden=(6, 5)), torch_gan, [(5, 1, 3, 4), (5, 4)]),
}


def shake_batch_norm(model, rng):
    """Give every batch norm a non-trivial scale, shift and running statistics."""
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = module.num_features
            module.weight.data[...] = rng.uniform(0.5, 1.5, n)
            module.bias.data[...] = rng.normal(0, 0.5, n)
            module.running_mean.data[...] = rng.normal(0, 0.5, n)
            module.running_var.data[...] = rng.uniform(0.5, 2.0, n)
            module.num_batches_tracked.data[...] = 7


@pytest.mark.torch
@pytest.mark.parametrize("kind", list(CASES))
def test_weights_travel_to_torch_and_back(torch, tmp_path, kind):
    import safetensors.torch
    build, twin, shapes = CASES[kind]
    rng = np.random.default_rng(0)
    arrays = [rng.uniform(0, 1, shape).astype(np.float32) for shape in shapes]

    # tinyae -> file -> torch
    nn.manual_seed(1)
    model = build().eval()
    shake_batch_norm(model, rng)
    path = tmp_path / "tinyae.safetensors"
    tinyae.save_weights(model, path)
    torch_model = twin(torch)
    torch_model.load_state_dict(safetensors.torch.load_file(path), strict=True)
    torch_model.eval()
    with torch.no_grad():
        theirs = [t.numpy() for t in torch_model(*[torch.tensor(a) for a in arrays])]
    ours = tinyae_outputs(kind, model, arrays)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)

    # torch (trained a little, so batch norm has its own statistics) -> file -> tinyae
    torch.manual_seed(2)
    torch_model = twin(torch).train()
    with torch.no_grad():
        for _ in range(3):
            torch_model(*[torch.rand(a.shape) for a in arrays])
    torch_model.eval()
    back = tmp_path / "torch.safetensors"
    safetensors.torch.save_file(torch_model.state_dict(), back)
    nn.manual_seed(3)
    model = build().eval()
    assert tinyae.load_weights(model, back, strict=True) == ([], [])
    with torch.no_grad():
        theirs = [t.numpy() for t in torch_model(*[torch.tensor(a) for a in arrays])]
    for a, b in zip(tinyae_outputs(kind, model, arrays), theirs):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)
    torch_state = torch_model.state_dict()
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(backend.to_numpy(value), torch_state[key].numpy(), key)
        assert backend.to_numpy(value).dtype == torch_state[key].numpy().dtype, key


def test_save_and_load_round_trip_on_every_backend(backend_name, tmp_path):
    nn.manual_seed(0)
    model = models.conv_vae((1, 12, 10), channels=(4, 8), latent_dim=3)
    shake_batch_norm(model, np.random.default_rng(0))
    path = tmp_path / "model.safetensors"
    tinyae.save_weights(model, path, metadata={"epochs": 3})
    nn.manual_seed(1)
    other = models.conv_vae((1, 12, 10), channels=(4, 8), latent_dim=3)
    assert tinyae.load_weights(other, path) == ([], [])
    for (key, ours), (_, theirs) in zip(model.state_dict().items(), other.state_dict().items()):
        assert backend.backend_of(theirs) == backend_name, key   # back on the model's device
        np.testing.assert_array_equal(backend.to_numpy(ours), backend.to_numpy(theirs), key)
        assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, key
    with safetensors.safe_open(path, framework="numpy") as file:
        assert file.metadata() == {"format": "pt", "epochs": "3"}
        assert file.get_tensor("encoder.1.num_batches_tracked").shape == ()


def test_the_file_is_plain_safetensors_with_pytorch_keys(tmp_path):
    model = nn.Sequential(nn.Dense(3, 2), nn.BatchNorm1d(2))
    tinyae.save_weights(model, tmp_path / "w.safetensors")
    arrays = safetensors.numpy.load_file(tmp_path / "w.safetensors")
    assert sorted(arrays) == ["0.bias", "0.weight", "1.bias", "1.num_batches_tracked",
                              "1.running_mean", "1.running_var", "1.weight"]
    assert arrays["0.weight"].shape == (2, 3) and arrays["0.weight"].dtype == np.float32
    assert arrays["1.num_batches_tracked"].dtype == np.int64


def test_saving_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "w.safetensors"
    tinyae.save_weights(nn.Dense(3, 2), path)
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        tinyae.save_weights(nn.Dense(3, 2), path)
    assert path.read_bytes() == before                     # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary left


def test_a_file_without_num_batches_tracked_loads(tmp_path):
    """Older PyTorch models have no num_batches_tracked; the model keeps its own count."""
    model = nn.Sequential(nn.Dense(3, 2), nn.BatchNorm1d(2))
    model[1].num_batches_tracked.data[...] = 5
    arrays = {k: backend.to_numpy(v) for k, v in model.state_dict().items()
              if not k.endswith("num_batches_tracked")}
    arrays["1.running_var"] = np.full(2, 4.0, dtype=np.float32)
    safetensors.numpy.save_file(arrays, tmp_path / "old.safetensors")
    assert tinyae.load_weights(model, tmp_path / "old.safetensors", strict=True) == ([], [])
    np.testing.assert_array_equal(model[1].running_var.numpy(), [4.0, 4.0])
    assert int(model[1].num_batches_tracked.numpy()) == 5


def test_other_float_dtypes_are_cast_to_the_model_dtype(tmp_path):
    model = nn.Dense(3, 2)
    arrays = {"weight": np.arange(6, dtype=np.float64).reshape(2, 3) / 4,
              "bias": np.array([0.5, -1.0], dtype=np.float16)}
    safetensors.numpy.save_file(arrays, tmp_path / "w.safetensors")
    tinyae.load_weights(model, tmp_path / "w.safetensors")
    assert model.weight.dtype == np.float32 and model.bias.dtype == np.float32
    np.testing.assert_array_equal(model.weight.numpy(), arrays["weight"])
    np.testing.assert_array_equal(model.bias.numpy(), [0.5, -1.0])


# ---------------------------------------------------------------- files that do not fit
def save(tmp_path, arrays, name="w.safetensors"):
    path = tmp_path / name
    safetensors.numpy.save_file(arrays, path)
    return path


def dense_arrays(out_features=2, in_features=3, dtype=np.float32):
    return {"weight": np.zeros((out_features, in_features), dtype=dtype),
            "bias": np.zeros(out_features, dtype=dtype)}


def test_another_architecture_names_file_key_and_both_shapes(tmp_path):
    path = tmp_path / "small.safetensors"
    tinyae.save_weights(models.mlp_vae(12, hidden=(8,), latent_dim=3), path)
    model = models.mlp_vae(12, hidden=(6,), latent_dim=3)
    before = {k: backend.to_numpy(v).copy() for k, v in model.state_dict().items()}
    with pytest.raises(tinyae.WeightsError) as error:
        tinyae.load_weights(model, path)
    text = str(error.value)
    assert str(path) in text and "VAE" in text
    assert "'encoder.0.weight' has shape (8, 12) in the file, this model expects (6, 12)" in text
    assert "'fc_mu.weight' has shape (3, 8) in the file, this model expects (3, 6)" in text
    for key, value in model.state_dict().items():         # nothing was half-loaded
        np.testing.assert_array_equal(backend.to_numpy(value), before[key])


def test_missing_keys_are_an_error_unless_not_strict(tmp_path):
    path = save(tmp_path, {"weight": np.ones((2, 3), dtype=np.float32)})
    model = nn.Dense(3, 2)
    with pytest.raises(tinyae.WeightsError, match=r"w\.safetensors.*missing from the file: "
                                                  r"'bias'.*strict=False"):
        tinyae.load_weights(model, path)
    assert tinyae.load_weights(model, path, strict=False) == (["bias"], [])
    np.testing.assert_array_equal(model.weight.numpy(), np.ones((2, 3)))


def test_extra_keys_are_an_error_unless_not_strict(tmp_path):
    arrays = dense_arrays()
    arrays["head.weight"] = np.ones((1, 2), dtype=np.float32)
    path = save(tmp_path, arrays)
    with pytest.raises(tinyae.WeightsError, match=r"in the file but not in this model: "
                                                  r"'head\.weight'"):
        tinyae.load_weights(nn.Dense(3, 2), path)
    assert tinyae.load_weights(nn.Dense(3, 2), path, strict=False) == ([], ["head.weight"])


@pytest.mark.parametrize("dtype, code", [(np.int32, "I32"), (np.bool_, "BOOL"),
                                         (np.complex64, "C64")])
def test_an_unsupported_dtype_names_key_and_both_dtypes(tmp_path, dtype, code):
    arrays = dense_arrays()
    arrays["weight"] = np.ones((2, 3), dtype=dtype)
    try:
        path = save(tmp_path, arrays)
    except Exception as exc:  # a safetensors that cannot write this dtype from NumPy
        pytest.skip(f"safetensors cannot write {np.dtype(dtype)} from NumPy: {exc}")
    with pytest.raises(tinyae.WeightsError, match=rf"w\.safetensors.*'weight' has dtype {code} "
                                                  r"in the file, this model holds float32"):
        tinyae.load_weights(nn.Dense(3, 2), path)


@pytest.mark.torch
def test_bfloat16_is_refused_with_a_hint(torch, tmp_path):
    import safetensors.torch
    path = tmp_path / "bf16.safetensors"
    safetensors.torch.save_file({"weight": torch.zeros(2, 3, dtype=torch.bfloat16),
                                 "bias": torch.zeros(2)}, path)
    with pytest.raises(tinyae.WeightsError, match=r"'weight' has dtype BF16.*\.float\(\)"):
        tinyae.load_weights(nn.Dense(3, 2), path)


def test_a_float_file_for_an_integer_buffer_is_refused(tmp_path):
    model = nn.BatchNorm1d(2)
    arrays = {k: backend.to_numpy(v) for k, v in model.state_dict().items()}
    arrays["num_batches_tracked"] = np.array(1.5)
    path = save(tmp_path, arrays)
    with pytest.raises(tinyae.WeightsError, match="'num_batches_tracked' has dtype F64 in the "
                                                  "file, this model holds int64"):
        tinyae.load_weights(model, path)


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.02])
def test_a_truncated_file_is_a_clear_error(tmp_path, keep):
    path = tmp_path / "w.safetensors"
    tinyae.save_weights(nn.Dense(30, 20), path)
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(tinyae.WeightsError, match=r"w\.safetensors: not a readable safetensors "
                                                  r"file; it is truncated"):
        tinyae.load_weights(nn.Dense(30, 20), path)


def test_a_file_of_another_format_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.npz"
    tinyae.checkpoint.save({"weight": np.zeros((2, 3))}, path)
    with pytest.raises(tinyae.WeightsError, match="checkpoint.npz: not a readable safetensors"):
        tinyae.load_weights(nn.Dense(3, 2), path)


def test_a_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        tinyae.load_weights(nn.Dense(3, 2), tmp_path / "nothing.safetensors")
