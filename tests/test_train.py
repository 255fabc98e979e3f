"""tinyae.train: history, exact resume (also after Ctrl-C), early stopping, divergence,
errors before the first step, callbacks, optimizers and backends."""
import math
import os
import signal

import numpy as np
import pytest

import tinyae
from tinyae import checkpoint, data, models, nn, optim
from tinyae.callbacks import SaveReconstructions, SaveSamples
from tinyae.train import History, TrainingDivergedError, evaluate, train


@pytest.fixture(scope="module")
def digits(data_dir):
    """512 MNIST test images (8 batches of 64) for training, 128 for validation."""
    x, y = data.load_mnist(data_dir, split="test")
    return x[:512], y[:512], x[512:640], y[512:640]


def small_autoencoder(seed=0, **options):
    nn.manual_seed(seed)
    return models.mlp_autoencoder((1, 28, 28), [64, 16, 64], **options)


def small_vae(seed=0):
    nn.manual_seed(seed)
    return models.mlp_vae((1, 28, 28), hidden=(64,), latent_dim=4)


def small_gan(seed=0):
    nn.manual_seed(seed)
    return models.mlp_gan(latent_dim=8, generator_hidden=(32,), discriminator_hidden=(32,),
                          d_steps=2, label_smoothing=0.1)


def weights(model):
    """Host copies of every parameter and buffer."""
    return {name: tinyae.backend.to_numpy(value).copy()
            for name, value in model.state_dict().items()}


def assert_bitwise_equal(first, second):
    assert first.keys() == second.keys()
    for name in first:
        assert first[name].tobytes() == second[name].tobytes(), f"{name} differs"


class RecordWeights:
    """A callback keeping the weights after every epoch."""

    def __init__(self):
        self.by_epoch = {}

    def on_epoch_end(self, trainer, epoch, history):
        self.by_epoch[epoch] = weights(trainer.model)


# ---------------------------------------------------------------- history
def test_history_records_each_component_for_train_and_validation(digits):
    x, _, x_val, _ = digits
    history = train(small_vae(), x, epochs=2, batch_size=64, val_data=x_val, progress=False)
    assert isinstance(history, History)
    assert set(history.history) == {"train/loss", "train/recon", "train/kl", "val/loss",
                                    "val/recon", "val/kl"}
    assert all(len(values) == 2 for values in history.history.values())
    assert history.epoch == [1, 2]
    assert history["train/loss"][1] < history["train/loss"][0]
    assert history.best_epoch == int(np.argmin(history["val/loss"])) + 1
    assert not history.stopped_early and not history.interrupted
    copy = history.as_dict()
    copy["train/loss"].append(0.0)
    assert len(history["train/loss"]) == 2
    for name in ("train/loss", "val/loss"):
        for value, expected in zip(history[name], copy[name]):
            assert value == expected


def test_evaluate_matches_the_validation_history(digits):
    x, _, x_val, _ = digits
    model = small_autoencoder()
    history = train(model, x, epochs=1, batch_size=64, val_data=x_val, progress=False)
    assert evaluate(model, x_val, batch_size=64)["loss"] == pytest.approx(
        history["val/loss"][-1], rel=1e-6)


def test_progress_bar_and_epoch_lines(digits, capsys):
    x = digits[0][:128]
    train(small_autoencoder(), x, epochs=1, batch_size=64, progress=True)
    captured = capsys.readouterr()
    assert "epoch 1/1" in captured.out + captured.err


# ---------------------------------------------------------------- exact resume
@pytest.mark.parametrize("build", [small_vae, small_gan], ids=["vae", "gan_with_dropout"])
def test_resume_from_a_checkpoint_is_bitwise_identical(build, digits, tmp_path):
    x = digits[0]
    options = dict(batch_size=64, seed=3, progress=False)
    if build is small_gan:
        options.update(lr=2e-4, betas=(0.5, 0.999))
    straight = build()
    straight_history = train(straight, x, epochs=3, **options)

    first_part = build()
    train(first_part, x, epochs=2, checkpoint_dir=tmp_path, **options)
    assert (tmp_path / "last.npz").exists()
    resumed = build(seed=99)                  # other initial weights: the checkpoint decides
    resumed_history = train(resumed, x, epochs=3, checkpoint_dir=tmp_path, resume=True,
                            **options)
    assert_bitwise_equal(weights(straight), weights(resumed))
    assert resumed_history.as_dict() == straight_history.as_dict()


def test_ctrl_c_mid_epoch_saves_and_resume_is_bitwise_identical(digits, tmp_path):
    x, _, x_val, _ = digits
    options = dict(batch_size=64, seed=1, progress=False, val_data=x_val)
    straight = small_autoencoder(noise="gaussian")
    straight_history = train(straight, x, epochs=2, **options)

    interrupted = small_autoencoder(noise="gaussian")
    original_step = interrupted.training_step

    def step_then_press_ctrl_c(batch, optimizers, step=None):
        values = original_step(batch, optimizers, step)
        if step == 10:                        # epoch 2, third batch
            os.kill(os.getpid(), signal.SIGINT)
        return values

    interrupted.training_step = step_then_press_ctrl_c
    with pytest.warns(UserWarning, match="interrupted in epoch 2 after 3 of 8 steps"):
        history = train(interrupted, x, epochs=2, checkpoint_dir=tmp_path, **options)
    assert history.interrupted and len(history) == 1
    assert checkpoint.load(tmp_path / "last.npz")["position"]["step_in_epoch"] == 3

    resumed = small_autoencoder(seed=5, noise="gaussian")
    resumed_history = train(resumed, x, epochs=2, checkpoint_dir=tmp_path, resume=True,
                            **options)
    assert_bitwise_equal(weights(straight), weights(resumed))
    assert resumed_history.as_dict() == straight_history.as_dict()
    assert not resumed_history.interrupted


def test_keyboard_interrupt_without_checkpoint_dir_returns_the_history(digits):
    def press_ctrl_c(trainer, epoch, history):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted"):
        history = train(small_autoencoder(), digits[0], epochs=5, batch_size=64,
                        callbacks=[press_ctrl_c], progress=False)
    assert history.interrupted and len(history) == 2


def test_resume_with_another_batch_size_is_refused(digits, tmp_path):
    x = digits[0]
    train(small_autoencoder(), x, epochs=1, batch_size=64, checkpoint_dir=tmp_path,
          progress=False)
    with pytest.raises(ValueError, match="batch_size=64 \\(now 32\\)"):
        train(small_autoencoder(), x, epochs=2, batch_size=32, checkpoint_dir=tmp_path,
              resume=True, progress=False)


# ---------------------------------------------------------------- early stopping
def test_early_stopping_restores_the_best_weights(digits):
    x, _, x_val, _ = digits
    # Inverted digits (white background): the better the model learns real digits,
    # the worse it reconstructs these, so the validation loss rises after epoch 1.
    record = RecordWeights()
    model = small_autoencoder()
    history = train(model, x, epochs=10, batch_size=64, val_data=1.0 - x_val, patience=2,
                    callbacks=[record], progress=False)
    assert history.stopped_early
    best = history.best_epoch
    assert len(history) == best + 2
    assert history["val/loss"][best - 1] == min(history["val/loss"])
    assert_bitwise_equal(weights(model), record.by_epoch[best])
    assert not np.array_equal(weights(model)["encoder.0.weight"],
                              record.by_epoch[len(history)]["encoder.0.weight"])


# ---------------------------------------------------------------- divergence
def test_nan_loss_names_epoch_and_step_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    x = digits[0]
    record = RecordWeights()
    model = small_vae()
    original = model.loss_components
    calls = {"count": 0}

    def poisoned(batch):
        components = original(batch)
        calls["count"] += 1
        if calls["count"] == 8 + 3 + 1:       # one dry run, then epoch 2's third step
            components["loss"] = components["loss"] * float("nan")
        return components

    model.loss_components = poisoned
    with pytest.raises(TrainingDivergedError, match="epoch 2, step 3 of 8") as caught:
        train(model, x, epochs=4, batch_size=64, checkpoint_dir=tmp_path, callbacks=[record],
              progress=False)
    assert (caught.value.epoch, caught.value.step) == (2, 3)
    assert "last good checkpoint" in str(caught.value)
    saved = checkpoint.load(tmp_path / "last.npz")
    assert saved["position"]["epochs_done"] == 1
    assert_bitwise_equal(saved["model"], record.by_epoch[1])
    fresh = small_vae(seed=7)
    fresh.load_state_dict(saved["model"])                      # loadable


def test_a_poisoned_batch_is_named_as_the_cause(digits):
    x = digits[0].copy()
    x[100, 0, 5, 5] = np.nan
    with pytest.raises(TrainingDivergedError, match="epoch 1, step .*NaN or Inf values"):
        train(small_autoencoder(), x, epochs=1, batch_size=64, progress=False)


def test_a_huge_learning_rate_stops_with_a_clear_error(digits):
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+, step \d+ .*lr=1e\+06"):
        with np.errstate(all="ignore"):
            train(small_vae(), digits[0], epochs=3, batch_size=64, optimizer="sgd", lr=1e6,
                  progress=False)


# ---------------------------------------------------------------- errors before the first step
def test_data_of_the_wrong_shape_fails_before_any_step(digits):
    x = digits[0]
    nn.manual_seed(0)
    conv = models.conv_autoencoder((1, 28, 28), channels=(4,), latent_dim=3)
    before = weights(conv)
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*\(784,\)"):
        train(conv, x.reshape(len(x), 784), epochs=1, batch_size=64, progress=False)
    assert_bitwise_equal(before, weights(conv))
    eight_by_eight, _ = data.load_digits()
    with pytest.raises(ValueError, match=r"784 values.*\(1, 8, 8\)"):
        train(small_autoencoder(), eight_by_eight, epochs=1, progress=False)
    with pytest.raises(ValueError, match="validation data does not fit"):
        train(small_autoencoder(), x, val_data=eight_by_eight, epochs=1, progress=False)


def test_a_custom_model_that_cannot_run_on_the_data_fails_before_any_step(digits):
    nn.manual_seed(0)
    model = models.Autoencoder(nn.Sequential(nn.Flatten(), nn.Dense(100, 4)),
                               nn.Sequential(nn.Dense(4, 100), nn.Sigmoid()))
    with pytest.raises(ValueError, match=r"cannot run on the data \(examples of shape "
                                         r"\(1, 28, 28\)\).*\(N, 100\)"):
        train(model, digits[0], epochs=1, progress=False)


def test_empty_and_unlabelled_data_are_refused(digits):
    x, y = digits[0], digits[1]
    with pytest.raises(ValueError, match="empty"):
        train(small_autoencoder(), x[:0], epochs=1, progress=False)
    nn.manual_seed(0)
    cvae = models.mlp_cvae((1, 28, 28), hidden=(16,), latent_dim=2)
    with pytest.raises(ValueError, match="conditioned on labels.*data=\\(x, y\\)"):
        train(cvae, x, epochs=1, progress=False)
    with pytest.raises(ValueError, match="512 examples but its labels have shape \\(100,\\)"):
        train(cvae, (x, y[:100]), epochs=1, progress=False)
    history = train(cvae, x, labels=y, epochs=1, progress=False)   # labels= works too
    assert len(history) == 1


def test_other_bad_arguments_speak_plainly(digits):
    x = digits[0]
    with pytest.raises(ValueError, match=r"loss='bce' needs data in \[0, 1\].*0 to 255"):
        train(small_autoencoder(), x * 255, epochs=1, progress=False)
    with pytest.raises(TypeError, match="floating-point"):
        train(small_autoencoder(), (x * 255).astype(np.uint8), epochs=1, progress=False)
    with pytest.raises(ValueError, match="patience.*val_data"):
        train(small_autoencoder(), x, epochs=1, patience=2, progress=False)
    with pytest.raises(ValueError, match="resume=True needs the checkpoint_dir"):
        train(small_autoencoder(), x, epochs=1, resume=True, progress=False)
    with pytest.raises(ValueError, match="early stopping watches the validation 'loss'"):
        train(small_gan(), x, epochs=1, val_data=x, patience=1, progress=False)
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'"):
        train(small_autoencoder(), x, epochs=1, optimizer="adamw", progress=False)


# ---------------------------------------------------------------- callbacks and optimizers
def test_callbacks_save_sample_and_reconstruction_grids(digits, tmp_path):
    x = digits[0]
    samples = SaveSamples(tmp_path / "samples", every=1, n=16, nrow=4)
    reconstructions = SaveReconstructions(tmp_path / "recon", x[:6], every=2)
    train(small_vae(), x, epochs=2, batch_size=64, callbacks=[samples, reconstructions],
          progress=False)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "samples_epoch001.png", "samples_epoch002.png"]
    assert [p.name for p in (tmp_path / "recon").iterdir()] == ["reconstructions_epoch002.png"]


def test_a_callback_can_stop_training(digits):
    def stop_after_two(trainer, epoch, history):
        trainer.stop_training = epoch == 2

    history = train(small_autoencoder(), digits[0], epochs=5, callbacks=[stop_after_two],
                    progress=False)
    assert len(history) == 2 and not history.stopped_early


def test_optimizer_by_name_with_options_or_ready_made(digits):
    x = digits[0]
    seen = {}

    def keep(trainer, epoch, history):
        seen.update(trainer.optimizers)

    train(small_autoencoder(), x, epochs=1, optimizer="sgd", lr=0.5,
          optimizer_options={"momentum": 0.9}, callbacks=[keep], progress=False)
    assert isinstance(seen["model"], optim.SGD)
    assert seen["model"].param_groups[0]["momentum"] == 0.9
    model = small_autoencoder()
    ready = optim.RMSprop(model.parameters(), lr=1e-3)
    history = train(model, x, epochs=2, optimizer=ready, callbacks=[keep], progress=False)
    assert seen["model"] is ready and history["train/loss"][1] < history["train/loss"][0]
    gan = small_gan()
    train(gan, x, epochs=1, lr=2e-4, betas=(0.5, 0.999), callbacks=[keep], progress=False)
    assert seen["generator"].param_groups[0]["betas"] == (0.5, 0.999)
    assert seen["discriminator"].param_groups[0]["lr"] == 2e-4


# ---------------------------------------------------------------- learning-rate schedules
class RecordRates:
    """A callback keeping every optimizer's rate as it was during each epoch."""

    def __init__(self):
        self.by_epoch = []

    def on_epoch_end(self, trainer, epoch, history):
        self.by_epoch.append({name: opt.param_groups[0]["lr"]
                              for name, opt in trainer.optimizers.items()})


def test_cosine_schedule_sets_each_epochs_rate_and_constant_is_the_default(digits):
    x = digits[0][:128]
    rates = RecordRates()
    train(small_autoencoder(), x, epochs=4, lr=0.01, lr_schedule="cosine", callbacks=[rates],
          progress=False)
    expected = [0.01 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    assert [r["model"] for r in rates.by_epoch] == pytest.approx(expected, rel=1e-12)
    assert expected[1] < expected[0]                      # it does decay
    constant = RecordRates()
    train(small_autoencoder(), x, epochs=2, lr=0.01, callbacks=[constant], progress=False)
    assert [r["model"] for r in constant.by_epoch] == [0.01, 0.01]


def test_a_schedule_function_scales_both_of_a_gans_optimizers(digits):
    rates = RecordRates()
    train(small_gan(), digits[0][:128], epochs=3, lr=2e-4, betas=(0.5, 0.999),
          lr_schedule=lambda epoch: 0.5 ** epoch, callbacks=[rates], progress=False)
    for name in ("generator", "discriminator"):
        assert [r[name] for r in rates.by_epoch] == pytest.approx([2e-4, 1e-4, 5e-5])


def test_resume_under_a_schedule_is_bitwise_identical(digits, tmp_path):
    x = digits[0]
    options = dict(batch_size=64, seed=2, lr=3e-3, lr_schedule="cosine", progress=False)
    straight = small_vae()
    straight_history = train(straight, x, epochs=3, **options)

    def stop_after_two(trainer, epoch, history):       # as if killed after epoch 2 of 3
        trainer.stop_training = epoch == 2

    train(small_vae(), x, epochs=3, checkpoint_dir=tmp_path, callbacks=[stop_after_two],
          **options)
    resumed = small_vae(seed=7)
    resumed_history = train(resumed, x, epochs=3, checkpoint_dir=tmp_path, resume=True,
                            **options)
    assert_bitwise_equal(weights(straight), weights(resumed))
    assert resumed_history.as_dict() == straight_history.as_dict()


def test_a_bad_schedule_is_refused_before_training(digits):
    model = small_autoencoder()
    before = weights(model)
    with pytest.raises(ValueError, match="lr_schedule must be None, one of \\('cosine',\\)"):
        train(model, digits[0], epochs=1, lr_schedule="linear", progress=False)
    with pytest.raises(ValueError, match="factor -1.0 for epoch 0"):
        train(model, digits[0], epochs=1, lr_schedule=lambda epoch: -1.0, progress=False)
    assert_bitwise_equal(before, weights(model))


@pytest.mark.gpu
@pytest.mark.skipif(not tinyae.cupy_available(), reason="CuPy with a CUDA device is not "
                                                         "available here")
def test_backend_cupy_moves_the_model_and_trains_there(digits):
    model = small_vae()
    history = train(model, digits[0], epochs=2, batch_size=64, backend="cupy", progress=False)
    assert all(param.backend == "cupy" for param in model.parameters())
    assert history["train/loss"][1] < history["train/loss"][0]
    assert math.isfinite(evaluate(model, digits[0])["loss"])
