"""tinyae.nn: Module bookkeeping, PyTorch names, initialisation, parity, state dicts, errors."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tinyae
from tinyae import backend, nn

from conftest import to_host, to_tensor

RTOL, ATOL = 1e-10, 1e-12  # float64 parity with PyTorch


def host(array):
    return backend.to_numpy(array)


def close(ours, theirs, rtol=RTOL, atol=ATOL):
    ours = ours.numpy() if isinstance(ours, tinyae.Tensor) else host(ours)
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


def from_torch(module):
    """A torch module's state dict as plain NumPy arrays, the way a user would convert it."""
    return {name: value.numpy() for name, value in module.state_dict().items()}


def compare_step(torch, ours, theirs, x_array, seed=0):
    """One forward and backward of both modules on the same input and upstream gradient;
    compare the output, the input's gradient and every parameter's gradient by name."""
    x = to_tensor(x_array, requires_grad=True)
    tx = torch.tensor(x_array, requires_grad=True)
    y, ty = ours(x), theirs(tx)
    close(y, ty)
    upstream = np.random.default_rng(seed).standard_normal(ty.shape)
    ours.zero_grad()
    theirs.zero_grad()
    y.backward(to_tensor(upstream))
    ty.backward(torch.tensor(upstream))
    close(x.grad, tx.grad)
    torch_params = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        close(param.grad, torch_params[name].grad)
    return y


# ---------------------------------------------------------------- layers against PyTorch
def layer_pairs(torch):
    """(name, our layer, the same torch layer, input shape); float64 everywhere."""
    tnn, f64 = torch.nn, torch.float64
    return [
        ("dense", nn.Dense(3, 4, dtype="float64"), tnn.Linear(3, 4, dtype=f64), (5, 3)),
        ("dense-3d-nobias", nn.Linear(3, 2, bias=False, dtype="float64"),
         tnn.Linear(3, 2, bias=False, dtype=f64), (2, 4, 3)),
        ("conv", nn.Conv2d(2, 3, 3, dtype="float64"), tnn.Conv2d(2, 3, 3, dtype=f64), (2, 2, 5, 5)),
        ("conv-stride-pad-nonsquare", nn.Conv2d(2, 3, (3, 2), stride=2, padding=(1, 0),
                                                dtype="float64"),
         tnn.Conv2d(2, 3, (3, 2), stride=2, padding=(1, 0), dtype=f64), (2, 2, 7, 6)),
        ("conv-batch1-nobias", nn.Conv2d(1, 2, 2, stride=(1, 2), bias=False, dtype="float64"),
         tnn.Conv2d(1, 2, 2, stride=(1, 2), bias=False, dtype=f64), (1, 1, 4, 7)),
        ("convT", nn.ConvTranspose2d(3, 2, 3, dtype="float64"),
         tnn.ConvTranspose2d(3, 2, 3, dtype=f64), (2, 3, 3, 4)),
        ("convT-upsample", nn.ConvTranspose2d(3, 2, (3, 2), stride=2, padding=1,
                                              output_padding=1, dtype="float64"),
         tnn.ConvTranspose2d(3, 2, (3, 2), stride=2, padding=1, output_padding=1, dtype=f64),
         (2, 3, 4, 3)),
        ("convT-batch1-nobias", nn.ConvTranspose2d(2, 1, 4, stride=(2, 3), output_padding=(0, 2),
                                                   bias=False, dtype="float64"),
         tnn.ConvTranspose2d(2, 1, 4, stride=(2, 3), output_padding=(0, 2), bias=False,
                             dtype=f64), (1, 2, 3, 2)),
        ("bn1d", nn.BatchNorm1d(3, dtype="float64"), tnn.BatchNorm1d(3, dtype=f64), (6, 3)),
        ("bn1d-seq", nn.BatchNorm1d(3, dtype="float64"), tnn.BatchNorm1d(3, dtype=f64), (2, 3, 4)),
        ("bn2d", nn.BatchNorm2d(2, eps=1e-3, momentum=0.2, dtype="float64"),
         tnn.BatchNorm2d(2, eps=1e-3, momentum=0.2, dtype=f64), (3, 2, 3, 4)),
        ("bn2d-batch1", nn.BatchNorm2d(2, dtype="float64"), tnn.BatchNorm2d(2, dtype=f64),
         (1, 2, 2, 3)),
        ("relu", nn.ReLU(), tnn.ReLU(), (3, 4)),
        ("leaky", nn.LeakyReLU(0.2), tnn.LeakyReLU(0.2), (3, 4)),
        ("sigmoid", nn.Sigmoid(), tnn.Sigmoid(), (3, 4)),
        ("tanh", nn.Tanh(), tnn.Tanh(), (3, 4)),
        ("softplus", nn.Softplus(), tnn.Softplus(), (3, 4)),
        ("flatten", nn.Flatten(), tnn.Flatten(), (2, 3, 2, 2)),
        ("reshape", nn.Reshape(3, 2, 2), tnn.Unflatten(1, (3, 2, 2)), (2, 12)),
    ]


LAYER_NAMES = ["dense", "dense-3d-nobias", "conv", "conv-stride-pad-nonsquare",
               "conv-batch1-nobias", "convT", "convT-upsample", "convT-batch1-nobias", "bn1d",
               "bn1d-seq", "bn2d", "bn2d-batch1", "relu", "leaky", "sigmoid", "tanh", "softplus",
               "flatten", "reshape"]


def get_pair(torch, name):
    return next(pair[1:] for pair in layer_pairs(torch) if pair[0] == name)


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layer_names_and_shapes_match_torch(torch, name):
    ours, theirs, _ = get_pair(torch, name)
    ours_sd, theirs_sd = ours.state_dict(), theirs.state_dict()
    assert list(ours_sd) == list(theirs_sd)
    for key in ours_sd:
        assert tuple(ours_sd[key].shape) == tuple(theirs_sd[key].shape), key
        assert ours_sd[key].dtype == theirs_sd[key].numpy().dtype, key


@pytest.mark.parametrize("name", LAYER_NAMES)
def test_layer_matches_torch(backend_name, torch, rng, name):
    ours, theirs, shape = get_pair(torch, name)
    torch.manual_seed(0)
    with torch.no_grad():  # make batch norm's affine parameters non-trivial
        for param in theirs.parameters():
            param.uniform_(-1, 1)
    ours.load_state_dict(from_torch(theirs))
    compare_step(torch, ours, theirs, rng.standard_normal(shape) * 2 + 0.5)
    ours.eval()
    theirs.eval()
    compare_step(torch, ours, theirs, rng.standard_normal(shape), seed=1)


@pytest.mark.parametrize("name", ["bn1d", "bn1d-seq", "bn2d"])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batch_norm_running_statistics_match_torch(backend_name, torch, rng, name, momentum):
    ours, theirs, shape = get_pair(torch, name)
    ours.momentum = theirs.momentum = momentum
    for step in range(4):
        compare_step(torch, ours, theirs, rng.standard_normal(shape) * 3 - 1, seed=step)
    after = from_torch(theirs)
    for key, value in ours.state_dict().items():
        close(value, after[key])
    assert int(ours.num_batches_tracked.numpy()) == 4
    ours.eval()
    theirs.eval()
    compare_step(torch, ours, theirs, rng.standard_normal(shape), seed=9)
    assert int(ours.num_batches_tracked.numpy()) == 4  # eval does not count batches
    close(ours.running_mean, theirs.running_mean)


def autoencoder(torch=None):
    """A small conv autoencoder with every layer kind, ours or (given torch) PyTorch's."""
    if torch is None:
        return nn.Sequential(
            nn.Conv2d(1, 3, 3, stride=2, padding=1, dtype="float64"),
            nn.BatchNorm2d(3, dtype="float64"), nn.LeakyReLU(0.2), nn.Flatten(),
            nn.Dense(3 * 3 * 4, 5, dtype="float64"), nn.BatchNorm1d(5, dtype="float64"),
            nn.Tanh(), nn.Dropout(0.0), nn.Dense(5, 3 * 3 * 4, dtype="float64"), nn.ReLU(),
            nn.Reshape(3, 3, 4),
            nn.ConvTranspose2d(3, 1, 3, stride=2, padding=1, output_padding=(1, 0),
                               dtype="float64"),
            nn.Softplus(), nn.Sigmoid())
    tnn, f64 = torch.nn, torch.float64
    return tnn.Sequential(
        tnn.Conv2d(1, 3, 3, stride=2, padding=1, dtype=f64), tnn.BatchNorm2d(3, dtype=f64),
        tnn.LeakyReLU(0.2), tnn.Flatten(), tnn.Linear(3 * 3 * 4, 5, dtype=f64),
        tnn.BatchNorm1d(5, dtype=f64), tnn.Tanh(), tnn.Dropout(0.0),
        tnn.Linear(5, 3 * 3 * 4, dtype=f64), tnn.ReLU(), tnn.Unflatten(1, (3, 3, 4)),
        tnn.ConvTranspose2d(3, 1, 3, stride=2, padding=1, output_padding=(1, 0), dtype=f64),
        tnn.Softplus(), tnn.Sigmoid())


def test_sequential_model_matches_torch(backend_name, torch, rng):
    ours, theirs = autoencoder(), autoencoder(torch)
    ours.load_state_dict(from_torch(theirs))
    for step in range(3):
        y = compare_step(torch, ours, theirs, rng.standard_normal((4, 1, 6, 7)), seed=step)
        assert y.shape == (4, 1, 6, 7)
    ours.eval()
    theirs.eval()
    compare_step(torch, ours, theirs, rng.standard_normal((1, 1, 6, 7)))
    after = from_torch(theirs)
    for key, value in ours.state_dict().items():
        close(value, after[key])


# ---------------------------------------------------------------- gradient checks
GRADCHECK_LAYERS = [
    (lambda: nn.Dense(3, 2, dtype="float64"), (2, 3)),
    (lambda: nn.Conv2d(2, 2, (2, 3), stride=2, padding=1, dtype="float64"), (2, 2, 4, 3)),
    (lambda: nn.ConvTranspose2d(2, 2, (3, 2), stride=2, padding=1, output_padding=1,
                                dtype="float64"), (1, 2, 3, 2)),
    (lambda: nn.BatchNorm1d(3, dtype="float64"), (4, 3)),
    (lambda: nn.BatchNorm2d(2, dtype="float64"), (2, 2, 2, 3)),
    (lambda: nn.BatchNorm2d(2, dtype="float64").eval(), (1, 2, 2, 3)),
    (lambda: nn.LeakyReLU(0.1), (3, 4)),
    (lambda: nn.Softplus(), (3, 4)),
    (lambda: nn.Sequential(nn.Flatten(), nn.Reshape(2, -1)), (2, 3, 2)),
]


@pytest.mark.parametrize("index", range(len(GRADCHECK_LAYERS)))
def test_layer_gradcheck(backend_name, rng, index):
    make, shape = GRADCHECK_LAYERS[index]
    layer = make()
    for param in layer.parameters():  # away from the trivial initial gamma = 1, beta = 0
        param.data[...] = backend.to_backend(rng.uniform(-1, 1, param.shape))
    x = to_tensor(rng.standard_normal(shape) + 0.1, requires_grad=True)
    assert tinyae.gradcheck(lambda x, *params: layer(x), x, *layer.parameters())


# ---------------------------------------------------------------- initialisation
def test_default_initialisation_follows_torch(backend_name):
    nn.manual_seed(0)
    cases = [(nn.Dense(20, 30), 20), (nn.Conv2d(4, 6, (3, 5)), 4 * 3 * 5),
             (nn.ConvTranspose2d(6, 4, 3), 4 * 3 * 3)]  # torch's fan_in: weight.shape[1]*KH*KW
    for layer, fan_in in cases:
        bound = 1 / math.sqrt(fan_in)
        for param in (layer.weight, layer.bias):
            values = param.numpy()
            assert param.dtype == np.float32 and backend.backend_of(param.data) == backend_name
            assert param.requires_grad and isinstance(param, nn.Parameter)
            assert np.abs(values).max() <= bound
            assert np.abs(values).max() > 0.8 * bound       # the whole range is used
            assert abs(values.mean()) < 0.25 * bound
    bn = nn.BatchNorm2d(3)
    for value, name in [(1, "weight"), (0, "bias"), (0, "running_mean"), (1, "running_var")]:
        np.testing.assert_array_equal(getattr(bn, name).numpy(), np.full(3, value, np.float32))
    assert bn.num_batches_tracked.dtype == np.int64 and bn.num_batches_tracked.shape == ()


def test_manual_seed_makes_initialisation_reproducible():
    nn.manual_seed(123)
    first = autoencoder().state_dict()
    nn.manual_seed(123)
    second = autoencoder().state_dict()
    third = autoencoder().state_dict()
    for key in first:
        np.testing.assert_array_equal(host(first[key]), host(second[key]))
    assert not np.array_equal(host(first["0.weight"]), host(third["0.weight"]))


def test_float64_parameters_on_request():
    assert nn.Dense(2, 3, dtype="float64").weight.dtype == np.float64
    assert nn.BatchNorm1d(2, dtype=np.float64).running_var.dtype == np.float64
    with pytest.raises(TypeError, match="floating point"):
        nn.Dense(2, 3, dtype="int32")


def test_float32_model_stays_float32(backend_name, rng):
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.BatchNorm2d(2),
                          nn.LeakyReLU(0.2), nn.Dropout(0.3), nn.Flatten(), nn.Dense(2 * 4 * 4, 3),
                          nn.BatchNorm1d(3), nn.Softplus(), nn.Dense(3, 32), nn.Reshape(2, 4, 4),
                          nn.ConvTranspose2d(2, 1, 3, stride=2, padding=1, output_padding=1),
                          nn.Sigmoid(), nn.Tanh(), nn.ReLU())
    x = to_tensor(rng.standard_normal((3, 1, 8, 8)), requires_grad=True, dtype="float32")
    y = model(x)
    assert y.shape == (3, 1, 8, 8) and y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    for name, param in model.named_parameters():
        assert param.grad.dtype == np.float32, name
    for name, buffer in model.named_buffers():
        assert buffer.dtype == (np.int64 if name.endswith("tracked") else np.float32), name


# ---------------------------------------------------------------- Module bookkeeping
class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(tinyae.tensor(np.ones(2, dtype=np.float32)))
        self.encoder = nn.Sequential(nn.Dense(4, 2), nn.BatchNorm1d(2))
        self.decoder = nn.Dense(2, 4)
        self.note = "not registered"

    def forward(self, x):
        return self.decoder(self.encoder(x) * self.scale)


def test_attribute_registration_names_like_torch():
    model = TwoLayers()
    assert [name for name, _ in model.named_parameters()] == [
        "scale", "encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "encoder.1.bias",
        "decoder.weight", "decoder.bias"]
    assert [name for name, _ in model.named_buffers()] == [
        "encoder.1.running_mean", "encoder.1.running_var", "encoder.1.num_batches_tracked"]
    assert list(model.state_dict()) == [
        "scale", "encoder.0.weight", "encoder.0.bias", "encoder.1.weight", "encoder.1.bias",
        "encoder.1.running_mean", "encoder.1.running_var", "encoder.1.num_batches_tracked",
        "decoder.weight", "decoder.bias"]
    assert model.num_parameters() == 2 + (8 + 2) + (2 + 2) + (8 + 4)
    assert model.note == "not registered"
    assert list(model.children()) == [model.encoder, model.decoder]
    model.decoder = nn.Dense(2, 3)  # replacing a submodule keeps one entry
    assert [n for n, _ in model.named_parameters()][-2:] == ["decoder.weight", "decoder.bias"]
    model.decoder.bias = None       # like bias=False
    assert "decoder.bias" not in model.state_dict()
    with pytest.raises(AttributeError, match="has no attribute 'missing'"):
        model.missing
    with pytest.raises(TypeError, match=r"Dense.weight is a parameter: assign a Parameter"):
        model.decoder.weight = tinyae.tensor(np.ones((3, 2)))


def test_shared_parameters_are_listed_once():
    shared = nn.Dense(3, 3)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2


def test_module_needs_super_init():
    class Broken(nn.Module):
        def __init__(self):
            self.layer = nn.Dense(2, 2)

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Broken()


def test_train_eval_and_zero_grad(rng):
    model = TwoLayers()
    assert all(m.training for m in model.modules())
    assert model.eval() is model and not any(m.training for m in model.modules())
    model.train()
    assert model.encoder[1].training
    x = to_tensor(rng.standard_normal((5, 4)), dtype="float32")
    model(x).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_sequential_indexing_iteration_and_length():
    layers = [nn.Dense(2, 3), nn.ReLU(), nn.Dense(3, 1)]
    model = nn.Sequential(*layers)
    assert len(model) == 3 and list(model) == layers
    assert model[0] is layers[0] and model[-1] is layers[2]
    assert list(model[1:]) == layers[1:] and isinstance(model[1:], nn.Sequential)
    model.append(nn.Sigmoid())
    assert len(model) == 4 and isinstance(model[3], nn.Sigmoid)
    with pytest.raises(TypeError, match="item 1 is a str, not a Module"):
        nn.Sequential(nn.ReLU(), "relu")


def test_linear_is_dense():
    assert nn.Linear is nn.Dense


def test_layers_accept_backend_arrays(backend_name):
    x = backend.xp().ones((2, 3, 4), dtype="float32")
    for layer in (nn.Flatten(), nn.Sequential(nn.Flatten(), nn.Reshape(4, 3)), nn.Dense(4, 2)):
        y = layer(x)
        assert isinstance(y, tinyae.Tensor) and y.dtype == np.float32


def test_repr_lists_layers_output_shapes_and_parameter_counts(rng):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Dense(4 * 4 * 4, 10), nn.Dropout(0.25))
    text = repr(model)
    assert "(0): Conv2d(1, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))" in text
    assert "(3): Dense(in_features=64, out_features=10, bias=True)  # 650 parameters" in text
    assert "(4): Dropout(p=0.25)" in text
    assert text.endswith("# 690 parameters in total")
    model(to_tensor(rng.standard_normal((2, 1, 8, 8)), dtype="float32"))
    text = repr(model)
    assert "Conv2d(1, 4, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1))  " \
           "# output (2, 4, 4, 4), 40 parameters" in text
    assert "(1): ReLU()  # output (2, 4, 4, 4)" in text
    assert "(2): Flatten()  # output (2, 64)" in text
    assert text.endswith(")  # output (2, 10), 690 parameters in total")
    assert repr(nn.ConvTranspose2d(4, 2, (3, 2), stride=2, output_padding=1, bias=False)) == (
        "ConvTranspose2d(4, 2, kernel_size=(3, 2), stride=(2, 2), output_padding=(1, 1), "
        "bias=False)")
    assert repr(nn.BatchNorm2d(8)) == "BatchNorm2d(8, eps=1e-05, momentum=0.1)"
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Reshape(32, 7, 7)) == "Reshape(32, 7, 7)"
    nested = repr(TwoLayers())
    assert "  (encoder): Sequential(\n    (0): Dense(in_features=4, out_features=2" in nested
    assert "  )  # 14 parameters in total\n  (decoder)" in nested


# ---------------------------------------------------------------- state dicts
def test_state_dict_round_trip(backend_name, rng):
    nn.manual_seed(1)
    source = autoencoder()
    x = to_tensor(rng.standard_normal((3, 1, 6, 7)))
    source(x)                          # moves the running statistics
    snapshot = {key: host(value).copy() for key, value in source.state_dict().items()}
    assert snapshot["1.num_batches_tracked"].dtype == np.int64
    assert int(snapshot["1.num_batches_tracked"]) == 1
    nn.manual_seed(2)
    target = autoencoder()
    assert not np.allclose(host(target.state_dict()["0.weight"]), snapshot["0.weight"])
    result = target.load_state_dict(snapshot)
    assert result.missing_keys == [] and result.unexpected_keys == []
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(host(value), snapshot[key])
        assert backend.backend_of(value) == backend_name
    source.eval()
    target.eval()
    np.testing.assert_array_equal(source(x).numpy(), target(x).numpy())


def test_state_dict_loads_into_torch(torch, rng):
    ours, theirs = autoencoder(), autoencoder(torch)
    theirs.load_state_dict({k: torch.from_numpy(host(v).copy())
                            for k, v in ours.state_dict().items()})
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 1, 6, 7))
    close(ours(to_tensor(x)), theirs(torch.tensor(x)))


def test_load_state_dict_keeps_dtype_and_copies():
    model = nn.Dense(2, 3, dtype="float64")
    weight = model.weight
    state = {"weight": np.ones((3, 2), np.float32), "bias": np.arange(3, dtype=np.float32)}
    model.load_state_dict(state)
    assert model.weight is weight and weight.dtype == np.float64
    state["weight"][...] = 5                                    # a copy, not a view
    np.testing.assert_array_equal(model.weight.numpy(), 1)
    np.testing.assert_array_equal(model.bias.numpy(), [0, 1, 2])


def test_load_state_dict_errors():
    model = nn.Sequential(nn.Dense(3, 4), nn.BatchNorm1d(4))
    good = {key: host(value).copy() for key, value in model.state_dict().items()}
    wrong_shape = dict(good, **{"0.weight": np.zeros((4, 5), np.float32)})
    with pytest.raises(ValueError, match=r"size mismatch for '0.weight': the state dict has "
                                         r"shape \(4, 5\), this model expects \(4, 3\)"):
        model.load_state_dict(wrong_shape)
    with pytest.raises(ValueError, match=r"size mismatch for '0.weight'"):
        model.load_state_dict(wrong_shape, strict=False)
    missing = {k: v for k, v in good.items() if k != "1.running_var"}
    with pytest.raises(ValueError, match=r"missing keys: '1.running_var'.*strict=False"):
        model.load_state_dict(missing)
    extra = dict(good, **{"2.weight": np.zeros(3)})
    with pytest.raises(ValueError, match=r"unexpected keys: '2.weight'"):
        model.load_state_dict(extra)
    result = model.load_state_dict(dict(missing, **{"2.weight": np.zeros(3)}), strict=False)
    assert result == (["1.running_var"], ["2.weight"])


def test_to_moves_parameters_buffers_and_gradients(backend_name, rng):
    model = nn.Sequential(nn.Dense(3, 2), nn.BatchNorm1d(2))
    model(to_tensor(rng.standard_normal((4, 3)), dtype="float32")).sum().backward()
    assert model.to("numpy") is model
    for tensor in list(model.parameters()) + list(model.buffers()):
        assert backend.backend_of(tensor.data) == "numpy"
    for param in model.parameters():
        assert backend.backend_of(param.grad) == "numpy"
    with pytest.raises(ValueError, match="unknown backend 'gpu'"):
        model.to("gpu")
    model.to(backend_name)
    assert all(backend.backend_of(p.data) == backend_name for p in model.parameters())
    y = model(to_tensor(rng.standard_normal((4, 3)), dtype="float32"))
    assert backend.backend_of(y.data) == backend_name


@pytest.mark.skipif(not backend.cupy_available(), reason="needs CuPy with a CUDA device")
@pytest.mark.gpu
def test_to_cupy_and_back_keeps_values():
    model = autoencoder()
    before = {k: host(v).copy() for k, v in model.state_dict().items()}
    model.to("cupy")
    assert all(backend.backend_of(v) == "cupy" for v in model.state_dict().values())
    model.to("numpy")
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key])


# ---------------------------------------------------------------- dropout layer
def test_dropout_layer_statistics_and_eval(backend_name):
    layer = nn.Dropout(0.25)
    x = tinyae.tensor(np.ones((300, 400), dtype=np.float32))
    y = layer(x).numpy()
    assert abs((y == 0).mean() - 0.25) < 0.005
    assert abs(y.mean() - 1) < 0.01
    assert layer(x) is not x
    layer.eval()
    assert layer(x) is x
    with pytest.raises(ValueError, match="p is a probability"):
        nn.Dropout(-0.1)


# ---------------------------------------------------------------- bad inputs
BAD_INPUTS = [
    (lambda: nn.Conv2d(3, 16, 3), (8, 1, 28, 28),
     "Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1)): expected input of shape "
     "(N, 3, H, W), got (8, 1, 28, 28)"),
    (lambda: nn.Conv2d(3, 16, 3), (3, 28, 28),
     "Conv2d(3, 16, kernel_size=(3, 3), stride=(1, 1)): expected input of shape "
     "(N, 3, H, W), got (3, 28, 28)"),
    (lambda: nn.ConvTranspose2d(16, 1, 3, stride=2), (8, 8, 7, 7),
     "ConvTranspose2d(16, 1, kernel_size=(3, 3), stride=(2, 2)): expected input of shape "
     "(N, 16, H, W), got (8, 8, 7, 7)"),
    (lambda: nn.Dense(784, 32), (8, 28, 28),
     "Dense(in_features=784, out_features=32, bias=True): expected input of shape (N, 784), "
     "got (8, 28, 28)"),
    (lambda: nn.Dense(784, 32), (784,),
     "Dense(in_features=784, out_features=32, bias=True): expected input of shape (N, 784), "
     "got (784,)"),
    (lambda: nn.BatchNorm1d(32), (8, 16),
     "BatchNorm1d(32, eps=1e-05, momentum=0.1): expected input of shape (N, 32) or "
     "(N, 32, L), got (8, 16)"),
    (lambda: nn.BatchNorm2d(16), (8, 16, 4),
     "BatchNorm2d(16, eps=1e-05, momentum=0.1): expected input of shape (N, 16, H, W), "
     "got (8, 16, 4)"),
    (lambda: nn.Reshape(32, 7, 7), (8, 1000),
     "Reshape(32, 7, 7): expected input of shape (N, ...) with 1568 values per sample, "
     "got (8, 1000) (1000 per sample)"),
    (lambda: nn.Reshape(-1, 7, 7), (8, 1000),
     "Reshape(-1, 7, 7): expected input of shape (N, ...) with a multiple of 49 values per "
     "sample, got (8, 1000) (1000 per sample)"),
]


@pytest.mark.parametrize("index", range(len(BAD_INPUTS)))
def test_wrong_input_shape_names_the_layer(index):
    make, shape, message = BAD_INPUTS[index]
    with pytest.raises(ValueError) as error:
        make()(tinyae.tensor(np.zeros(shape, np.float32)))
    assert str(error.value) == message


def test_bad_layer_arguments():
    with pytest.raises(ValueError, match="kernel_size must be an int or a pair"):
        nn.Conv2d(1, 2, (3, 3, 3))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        nn.Conv2d(1, 2, 3, stride=0)
    with pytest.raises(ValueError, match="output_padding must be >= 0 and smaller than the stride"):
        nn.ConvTranspose2d(1, 2, 3, stride=2, output_padding=2)


def test_batch_norm_layer_needs_two_values_per_channel_in_training():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(tinyae.tensor(np.zeros((1, 3), np.float32)))
    bn.eval()
    assert bn(tinyae.tensor(np.zeros((1, 3), np.float32))).shape == (1, 3)


@settings(max_examples=15, deadline=None)
@given(batch=st.integers(1, 3), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_flatten_then_reshape_is_the_identity(batch, shape):
    x = tinyae.tensor(np.arange(batch * math.prod(shape), dtype=np.float32)
                      .reshape((batch,) + tuple(shape)), requires_grad=True)
    model = nn.Sequential(nn.Flatten(), nn.Reshape(*shape))
    y = model(x)
    assert model[0].output_shape == (batch, math.prod(shape))
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    y.sum().backward()
    np.testing.assert_array_equal(to_host(x.grad), 1)


def test_sequential_fuses_dense_and_activation_with_the_same_result(backend_name):
    """Sequential runs Dense + activation as one fused op; layer by layer must agree."""
    model = nn.Sequential(nn.Dense(6, 5, dtype="float64"), nn.LeakyReLU(0.2),
                          nn.Dense(5, 4, dtype="float64"), nn.Sigmoid(),
                          nn.Dense(4, 3, dtype="float64"), nn.Tanh())
    x = to_tensor(np.random.default_rng(0).standard_normal((7, 6)))
    fused = model(x)
    assert type(fused.creator).__name__ == "Linear"  # the tanh ran inside the Linear op
    fused.sum().backward()
    fused_grads = [tinyae.backend.to_numpy(p.grad).copy() for p in model.parameters()]
    model.zero_grad()
    h = x
    for layer in model:
        h = layer(h)
    assert type(h.creator).__name__ == "Tanh"
    np.testing.assert_allclose(fused.numpy(), h.numpy(), rtol=1e-12)
    h.sum().backward()
    for a, p in zip(fused_grads, model.parameters()):
        np.testing.assert_allclose(a, tinyae.backend.to_numpy(p.grad), rtol=1e-12, atol=1e-14)
    assert model[5].output_shape == (7, 3)  # the repr still knows every layer's output shape


@pytest.mark.parametrize("training", [True, False])
def test_sequential_fuses_batch_norm_and_activation_with_the_same_result(backend_name, training):
    """Conv2d, BatchNorm2d + LeakyReLU as one op, BatchNorm1d + ReLU as one op: the
    output, every gradient and the running statistics agree with layer by layer."""
    def build():
        nn.manual_seed(3)
        return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, dtype="float64"),
                             nn.BatchNorm2d(3, dtype="float64"), nn.LeakyReLU(0.2),
                             nn.Flatten(), nn.Dense(3 * 4 * 4, 5, dtype="float64"),
                             nn.BatchNorm1d(5, dtype="float64"), nn.ReLU())
    x = to_tensor(np.random.default_rng(2).standard_normal((6, 2, 4, 4)))
    results = []
    for fused in (True, False):
        model = build().train(training)
        if fused:
            y = model(x)
            assert type(y.creator).__name__ == "BatchNorm"   # the ReLU ran inside it
        else:
            y = x
            for layer in model:
                y = layer(y)
            assert type(y.creator).__name__ == "ReLU"
        y.backward(to_tensor(np.cos(np.arange(6 * 5)).reshape(6, 5)))
        results.append([y.numpy()] + [to_host(p.grad) for p in model.parameters()]
                       + [to_host(b.data) for b in model.buffers()])
    assert list(model.state_dict()) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked", "4.weight", "4.bias", "5.weight", "5.bias",
        "5.running_mean", "5.running_var", "5.num_batches_tracked"]
    for fused, plain in zip(*results):
        np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-14)


def test_fused_batch_norm_keeps_one_array_fewer_for_backward():
    """Layer by layer, the LeakyReLU keeps the batch norm's output as its input; fused,
    only x and y stay alive until backward (measured with tracemalloc, not time)."""
    import gc
    import tracemalloc
    x = to_tensor(np.random.default_rng(0).standard_normal((8, 16, 32, 32)))  # 1 MiB
    model = nn.Sequential(nn.BatchNorm2d(16, dtype="float64"), nn.LeakyReLU(0.2))
    kept = {}
    for fused in (True, False):
        model(x), model[1](model[0](x))   # compile and import first: not counted below
        gc.collect()
        tracemalloc.start()
        y = model(x) if fused else model[1](model[0](x))
        kept[fused] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del y
    assert kept[False] - kept[True] >= 0.9 * x.data.nbytes, kept


@pytest.mark.parametrize("slope", [-0.5, 0.0])
def test_dense_then_leaky_relu_of_non_positive_slope_is_not_fused(backend_name, slope):
    """The fused backward reads its mask off y, wrong for a negative slope: run it apart."""
    model = nn.Sequential(nn.Dense(3, 4, dtype="float64"), nn.LeakyReLU(slope))
    x = to_tensor(np.random.default_rng(1).standard_normal((5, 3)), requires_grad=True)
    assert tinyae.gradcheck(model, x)
    weight = model[0].weight.data.copy()
    z = x.numpy() @ backend.to_numpy(weight).T + model[0].bias.numpy()
    np.testing.assert_allclose(model(x).numpy(), np.where(z > 0, z, slope * z), rtol=1e-12)


@pytest.mark.parametrize("args, error, message", [
    ((0, 3), ValueError, "Dense: in_features must be at least 1, got 0"),
    ((4, -2), ValueError, "Dense: out_features must be at least 1, got -2"),
    ((2.5, 3), TypeError, "Dense: in_features must be an int, got 2.5"),
    ((4, "3"), TypeError, "Dense: out_features must be an int, got '3'"),
])
def test_dense_refuses_sizes_that_are_not_positive_ints(args, error, message):
    with pytest.raises(error, match=message):
        nn.Dense(*args)
    assert nn.Dense(np.int64(4), 2).weight.shape == (2, 4)    # NumPy ints are ints


def test_fusions_are_a_visible_table_and_keep_torch_state_dict_keys(backend_name):
    from tinyae.nn.module import FUSIONS
    assert FUSIONS[(nn.Dense, nn.ReLU)] == "relu"
    assert FUSIONS[(nn.Dense, nn.LeakyReLU)] == "leaky_relu"
    model = nn.Sequential(nn.Dense(3, 4), nn.ReLU(), nn.Dense(4, 2), nn.Softplus())
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    y = model(tinyae.tensor(np.ones((2, 3), dtype=np.float32)))
    assert type(y.creator).__name__ == "Softplus"   # (Dense, Softplus) is not in the table
    assert model[1].output_shape == (2, 4)           # the fused ReLU's output, for repr

    class MyReLU(nn.ReLU):  # a subclass is never fused: its own forward must run
        def forward(self, x):
            return super().forward(x) * 2

    model = nn.Sequential(nn.Dense(3, 4), MyReLU())
    assert type(model(tinyae.tensor(np.ones((2, 3), dtype=np.float32))).creator).__name__ == "Mul"


@pytest.mark.parametrize("layer", [nn.Dense(3, 2), nn.Sequential(nn.Dense(3, 2)), nn.ReLU(),
                                   nn.Conv2d(1, 1, 3)], ids=lambda m: type(m).__name__)
def test_a_python_list_is_refused_naming_the_layer(layer):
    with pytest.raises(TypeError, match=rf"{type(layer).__name__} takes a Tensor .* got a list"):
        layer([[1.0, 2.0, 3.0]])


def test_a_float64_input_into_a_float32_layer_is_refused(backend_name):
    """PyTorch refuses mixed dtypes; silently the output and the float32 weight's .grad
    would become float64."""
    x64 = tinyae.tensor(np.ones((2, 3)))
    image64 = tinyae.tensor(np.ones((1, 1, 4, 4)))
    for layer, x in ((nn.Dense(3, 2), x64), (nn.Conv2d(1, 1, 3), image64),
                     (nn.BatchNorm1d(3), x64)):
        with pytest.raises(TypeError, match=rf"{type(layer).__name__}: the input is float64 but "
                                            "the layer's parameters are float32"):
            layer(x)
    with pytest.raises(TypeError, match="Dense: the input is float64"):
        nn.Sequential(nn.Dense(3, 2), nn.ReLU())(x64)      # also inside a fused pair
    with pytest.raises(TypeError, match="the input is float32 but the layer's parameters are "
                                        "float64"):
        nn.Dense(3, 2, dtype="float64")(x64.astype("float32"))
    assert nn.Dense(3, 2, dtype="float64")(x64).dtype == np.float64
    assert nn.ReLU()(x64).dtype == np.float64         # no parameters: any float dtype


def test_evaluating_sets_eval_mode_and_no_grad_then_restores():
    model = nn.Sequential(nn.Dense(2, 2), nn.Dropout(0.5))
    x = tinyae.tensor(np.ones((1, 2), dtype=np.float32), requires_grad=True)
    with nn.evaluating(model) as same:
        assert same is model and not model[1].training
        assert not model(x).requires_grad
    assert model[1].training
    model.eval()
    with nn.evaluating(model):
        pass
    assert not model[1].training                         # the previous mode, not train()
