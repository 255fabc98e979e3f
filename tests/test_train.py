"""tinyae.train: history, exact resume (also after Ctrl-C), early stopping, divergence,
errors before the first step, optimizers, schedules, dropout's random stream and backends.

The tests on ``small_digits`` (scikit-learn's 8x8 digits, shipped with it) run everywhere;
those on ``digits`` (MNIST) skip without TINYAE_DATA. Callbacks: tests/test_callbacks.py."""
import math
import os
import re
import signal
import types

import numpy as np
import pytest

import tinyae
from tinyae import checkpoint, data, models, nn, optim
from tinyae import functional as F
from tinyae.train import History, TrainingDivergedError, evaluate, train


@pytest.fixture(scope="module")
def digits(data_dir):
    """512 MNIST test images (8 batches of 64) for training, 128 for validation."""
    x, y = data.load_mnist(data_dir, split="test")
    return x[:512], y[:512], x[512:640], y[512:640]


@pytest.fixture(scope="module")
def small_digits():
    """512 of scikit-learn's 8x8 digits (8 batches of 64) for training, 128 for validation."""
    x, y = data.load_digits()
    return x[:512], y[:512], x[512:640], y[512:640]


def small_autoencoder(seed=0, shape=(1, 28, 28), **options):
    nn.manual_seed(seed)
    return models.mlp_autoencoder(shape, [64, 16, 64], **options)


def small_vae(seed=0, shape=(1, 28, 28)):
    nn.manual_seed(seed)
    return models.mlp_vae(shape, hidden=(64,), latent_dim=4)


def small_gan(seed=0, shape=(1, 28, 28)):
    nn.manual_seed(seed)
    return models.mlp_gan(latent_dim=8, image_shape=shape, generator_hidden=(32,),
                          discriminator_hidden=(32,), d_steps=2, label_smoothing=0.1)


EIGHT = (1, 8, 8)


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


# ---------------------------------------------------------------- optimizers
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


# ---------------------------------------------------------------- the same on the shipped digits
def test_digits_history_and_evaluate(small_digits):
    x, _, x_val, _ = small_digits
    model = small_vae(shape=EIGHT)
    history = train(model, x, epochs=2, batch_size=64, val_data=x_val, progress=False)
    assert history.epoch == [1, 2] and set(history.history) == {
        "train/loss", "train/recon", "train/kl", "val/loss", "val/recon", "val/kl"}
    assert history["train/loss"][1] < history["train/loss"][0]
    assert evaluate(model, x_val, batch_size=64, rng=np.random.default_rng([0, 2, 1]))[
        "loss"] == history["val/loss"][-1]       # the loop's validation is evaluate()


@pytest.mark.parametrize("build", [small_vae, small_gan], ids=["vae", "gan_with_dropout"])
def test_digits_resume_is_bitwise_identical(build, small_digits, tmp_path):
    x = small_digits[0]
    options = dict(batch_size=64, seed=3, progress=False)
    straight = build(shape=EIGHT)
    straight_history = train(straight, x, epochs=3, **options)
    train(build(shape=EIGHT), x, epochs=2, checkpoint_dir=tmp_path, **options)
    resumed = build(seed=99, shape=EIGHT)
    resumed_history = train(resumed, x, epochs=3, checkpoint_dir=tmp_path, resume=True,
                            **options)
    assert_bitwise_equal(weights(straight), weights(resumed))
    assert resumed_history.as_dict() == straight_history.as_dict()


def press_ctrl_c_after(model, global_step):
    """Make ``model`` send itself SIGINT after the step with this 0-based number."""
    original_step = model.training_step

    def step_then_press_ctrl_c(batch, optimizers, step=None):
        values = original_step(batch, optimizers, step)
        if step == global_step:
            os.kill(os.getpid(), signal.SIGINT)
        return values

    model.training_step = step_then_press_ctrl_c


def test_digits_ctrl_c_in_the_first_epoch_returns_an_empty_history_and_resumes(
        small_digits, tmp_path):
    x, _, x_val, _ = small_digits
    options = dict(batch_size=64, seed=1, progress=False, val_data=x_val)
    straight = small_gan(shape=EIGHT)                 # dropout: its stream is resumed too
    straight_history = train(straight, x, epochs=2, **options | {"val_data": None})

    interrupted = small_gan(shape=EIGHT)
    press_ctrl_c_after(interrupted, 2)
    with pytest.warns(UserWarning, match="interrupted in epoch 1 after 3 of 8 steps; "
                                         "checkpoint saved to") as caught:
        history = train(interrupted, x, epochs=2, checkpoint_dir=tmp_path,
                        **options | {"val_data": None})
    assert "resume=True" not in str(caught[0].message)   # the CLI spells it --resume
    assert history.interrupted and len(history) == 0 and history.as_dict() == {}
    assert history.best_epoch is None and "epochs=0" in repr(history)

    resumed = small_gan(seed=5, shape=EIGHT)
    resumed_history = train(resumed, x, epochs=2, checkpoint_dir=tmp_path, resume=True,
                            **options | {"val_data": None})
    assert_bitwise_equal(weights(straight), weights(resumed))
    assert resumed_history.as_dict() == straight_history.as_dict()


def test_digits_early_stopping_restores_the_best_weights(small_digits):
    x, _, x_val, _ = small_digits
    record = RecordWeights()
    model = small_autoencoder(shape=EIGHT)
    history = train(model, x, epochs=12, batch_size=64, val_data=1.0 - x_val, patience=2,
                    callbacks=[record], progress=False)
    assert history.stopped_early
    best = history.best_epoch
    assert len(history) == best + 2 < 12
    assert history["val/loss"][best - 1] == min(history["val/loss"])
    assert_bitwise_equal(weights(model), record.by_epoch[best])


def test_digits_divergence_names_epoch_and_step(small_digits, tmp_path):
    model = small_vae(shape=EIGHT)
    original = model.loss_components
    calls = {"count": 0}

    def poisoned(batch):
        components = original(batch)
        calls["count"] += 1
        if calls["count"] == 1 + 8 + 3:       # the dry run, epoch 1, then epoch 2's third step
            components["loss"] = components["loss"] * float("nan")
        return components

    model.loss_components = poisoned
    with pytest.raises(TrainingDivergedError, match="epoch 2, step 3 of 8") as caught:
        train(model, small_digits[0], epochs=3, batch_size=64, checkpoint_dir=tmp_path,
              progress=False)
    assert (caught.value.epoch, caught.value.step) == (2, 3)
    assert checkpoint.load(tmp_path / "last.npz")["position"]["epochs_done"] == 1


def test_a_nan_validation_loss_is_divergence_not_an_early_stop(small_digits):
    model = small_autoencoder(shape=EIGHT)
    original = model.validation_step
    calls = {"count": 0}

    def nan_in_epoch_two(batch):
        values = original(batch)
        calls["count"] += 1
        if calls["count"] > 1 + 2:            # the dry run, epoch 1's two batches
            values["loss"] = float("nan")
        return values

    model.validation_step = nan_in_epoch_two
    with pytest.raises(TrainingDivergedError, match="epoch 2.*validation loss 'loss' is NaN"):
        train(model, small_digits[0], val_data=small_digits[2], epochs=5, batch_size=64,
              patience=1, progress=False)


# ---------------------------------------------------------------- arguments checked before any step
@pytest.mark.parametrize("name, value", [
    ("epochs", None), ("epochs", 2.9), ("epochs", "2"), ("epochs", True),
    ("batch_size", 2.7), ("batch_size", "64"), ("batch_size", False), ("seed", 1.5),
    ("patience", 2.0)])
def test_non_integer_counts_are_refused(small_digits, name, value):
    x, _, x_val, _ = small_digits
    arguments = dict(epochs=1, batch_size=64, val_data=x_val, progress=False) | {name: value}
    with pytest.raises(TypeError, match=f"train: {name} must be an integer >= \\d, got "
                                        f"{re.escape(repr(value))} \\({type(value).__name__}"):
        train(small_autoencoder(shape=EIGHT), x, **arguments)


def test_negative_counts_are_refused(small_digits):
    with pytest.raises(ValueError, match="epochs must be an integer >= 0, got -1"):
        train(small_autoencoder(shape=EIGHT), small_digits[0], epochs=-1, progress=False)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1, got 0"):
        train(small_autoencoder(shape=EIGHT), small_digits[0], epochs=1, batch_size=0,
              progress=False)
    assert train(small_autoencoder(shape=EIGHT), small_digits[0], epochs=np.int64(1),
                 batch_size=np.int32(256), progress=False).epoch == [1]   # NumPy ints are fine


@pytest.mark.parametrize("lr", [float("nan"), -1e-3, 0.0, float("inf")])
def test_a_bad_learning_rate_is_refused_before_any_step(small_digits, lr):
    model = small_autoencoder(shape=EIGHT)
    before = weights(model)
    with pytest.raises(ValueError, match=f"lr must be a finite number > 0, got {lr!r}"):
        train(model, small_digits[0], epochs=1, lr=lr, progress=False)
    with pytest.raises(TypeError, match="lr must be a number > 0, got '0.1'"):
        train(model, small_digits[0], epochs=1, lr="0.1", progress=False)
    assert_bitwise_equal(before, weights(model))


def test_an_unwritable_checkpoint_dir_fails_before_any_step(small_digits, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    model = small_autoencoder(shape=EIGHT)
    before = weights(model)
    record = RecordWeights()
    with pytest.raises(OSError, match="cannot write checkpoints to the folder .*a_file"):
        train(model, small_digits[0], epochs=2, checkpoint_dir=a_file / "run",
              callbacks=[record], progress=False)
    assert record.by_epoch == {}
    assert_bitwise_equal(before, weights(model))


def test_nan_in_the_validation_data_is_refused_up_front(small_digits):
    x, _, x_val, _ = small_digits
    poisoned = x_val.copy()
    poisoned[5, 0, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"validation data holds NaN or Inf values \(first in "
                                         r"example 5\)"):
        train(small_autoencoder(shape=EIGHT), x, val_data=poisoned, patience=2, epochs=3,
              progress=False)


def test_the_bce_range_is_checked_over_all_the_data(small_digits):
    x, _, x_val, _ = small_digits
    later_rows_0_to_16 = x.copy()
    later_rows_0_to_16[100:] *= 16         # the first batch (64 rows) is in [0, 1]
    with pytest.raises(ValueError, match=r"loss='bce' needs data in \[0, 1\], but the training "
                                         r"data runs from 0 to 16"):
        train(small_autoencoder(shape=EIGHT), later_rows_0_to_16, epochs=1, progress=False)
    with pytest.raises(ValueError, match="but the validation data runs from 0 to 16"):
        train(small_autoencoder(shape=EIGHT), x, val_data=x_val * 16, epochs=1,
              progress=False)
    mse = train(small_autoencoder(shape=EIGHT, loss="mse"), later_rows_0_to_16, epochs=1,
                progress=False)          # other losses take any range
    assert len(mse) == 1


@pytest.mark.parametrize("change, message", [
    (dict(lr=1e-2), "lr=0.001 \\(now 0.01\\)"),
    (dict(optimizer="sgd"), "optimizer='Adam' \\(now 'SGD'\\)"),
    (dict(betas=(0.5, 0.999)), "betas=\\(0.9, 0.999\\) \\(now \\(0.5, 0.999\\)\\)"),
    (dict(lr_schedule="cosine"), "lr_schedule=None \\(now 'cosine'\\)"),
    (dict(optimizer_options={"weight_decay": 0.1}), "weight_decay=0 \\(now 0.1\\)"),
])
def test_resume_with_another_hyperparameter_is_refused(small_digits, tmp_path, change, message):
    x = small_digits[0]
    train(small_autoencoder(shape=EIGHT), x, epochs=1, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match=f"checkpoint .* was written by a run with {message}"):
        train(small_autoencoder(shape=EIGHT), x, epochs=2, checkpoint_dir=tmp_path,
              resume=True, progress=False, **change)
    history = train(small_autoencoder(shape=EIGHT), x, epochs=2, checkpoint_dir=tmp_path,
                    resume=True, progress=False)      # the same settings, more epochs: fine
    assert history.epoch == [1, 2]


def test_a_gans_hyperparameters_are_named_with_their_network(small_digits, tmp_path):
    x = small_digits[0][:128]
    train(small_gan(shape=EIGHT), x, epochs=1, lr=2e-4, checkpoint_dir=tmp_path,
          progress=False)
    with pytest.raises(ValueError, match="generator lr=0.0002 \\(now 0.001\\), discriminator "
                                         "lr=0.0002 \\(now 0.001\\)"):
        train(small_gan(shape=EIGHT), x, epochs=2, checkpoint_dir=tmp_path, resume=True,
              progress=False)


# ---------------------------------------------------------------- schedules of tinyae.optim
def test_train_takes_the_schedules_of_optim(small_digits):
    x = small_digits[0][:128]
    for schedule, expected in [
            (optim.StepLR(step_size=2, gamma=0.5), [0.01, 0.01, 0.005, 0.005]),
            (optim.CosineAnnealingLR(T_max=4),
             [0.01 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]),
            (optim.LambdaLR(lr_lambda=lambda epoch: 1 / (1 + epoch)),
             [0.01, 0.005, 0.01 / 3, 0.0025])]:
        rates = RecordRates()
        train(small_autoencoder(shape=EIGHT), x, epochs=4, lr=0.01, lr_schedule=schedule,
              callbacks=[rates], progress=False)
        assert [r["model"] for r in rates.by_epoch] == pytest.approx(expected, rel=1e-12)
    cosine = RecordRates()
    train(small_autoencoder(shape=EIGHT), x, epochs=4, lr=0.01, lr_schedule="cosine",
          callbacks=[cosine], progress=False)              # "cosine" is CosineAnnealingLR
    assert [r["model"] for r in cosine.by_epoch] == pytest.approx(
        [0.01 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)], rel=1e-12)


def test_resume_under_a_step_schedule_is_bitwise_identical(small_digits, tmp_path):
    x = small_digits[0]
    options = dict(batch_size=64, seed=2, lr=3e-3, progress=False)
    straight = small_vae(shape=EIGHT)
    straight_history = train(straight, x, epochs=3, lr_schedule=optim.StepLR(step_size=1),
                             **options)
    train(small_vae(shape=EIGHT), x, epochs=2, checkpoint_dir=tmp_path,
          lr_schedule=optim.StepLR(step_size=1), **options)
    resumed = small_vae(seed=7, shape=EIGHT)
    resumed_history = train(resumed, x, epochs=3, checkpoint_dir=tmp_path, resume=True,
                            lr_schedule=optim.StepLR(step_size=1), **options)
    assert_bitwise_equal(weights(straight), weights(resumed))
    assert resumed_history.as_dict() == straight_history.as_dict()
    with pytest.raises(ValueError, match="lr_schedule='StepLR\\(step_size=1, gamma=0.1\\)' "
                                         "\\(now 'StepLR\\(step_size=2, gamma=0.1\\)'\\)"):
        train(small_vae(shape=EIGHT), x, epochs=4, checkpoint_dir=tmp_path, resume=True,
              lr_schedule=optim.StepLR(step_size=2), **options)


# ---------------------------------------------------------------- dropout's random stream
def test_the_dropout_stream_is_a_seed_and_a_call_counter():
    x = tinyae.tensor(np.ones((4, 50), dtype=np.float32))
    F.manual_seed(11)
    assert F.dropout_stream_state() == {"seed": 11, "calls": 0}
    masks = [F.dropout(x, 0.5).numpy() for _ in range(3)]
    assert F.dropout_stream_state() == {"seed": 11, "calls": 3}
    assert not np.array_equal(masks[0], masks[1])         # each call draws a new mask
    F.set_dropout_stream_state({"seed": 11, "calls": 2})  # the same (seed, call): the same mask
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), masks[2])
    F.set_dropout_stream_state({"seed": 11, "calls": 0})
    np.testing.assert_array_equal(F.dropout(x, 0.5).numpy(), masks[0])
    F.manual_seed(12)
    assert not np.array_equal(F.dropout(x, 0.5).numpy(), masks[0])


def test_every_backend_seeds_call_k_alike():
    """The CuPy branch is the NumPy one: call k gets ``xp.random.default_rng(s_k)`` with the
    same int s_k from (seed, k), so a checkpoint's two ints resume either backend."""
    seeds = []
    stand_in = types.SimpleNamespace(__name__="cupy", random=types.SimpleNamespace(
        default_rng=lambda seed: seeds.append(seed) or np.random.default_rng(seed)))
    F.set_dropout_stream_state({"seed": 4, "calls": 7})
    on_stand_in = F.default_generator(stand_in).random(5)
    F.set_dropout_stream_state({"seed": 4, "calls": 7})
    on_numpy = F.default_generator(np).random(5)
    assert type(seeds[0]) is int
    np.testing.assert_array_equal(on_stand_in, on_numpy)
    assert F.dropout_stream_state() == {"seed": 4, "calls": 8}


def test_a_checkpoint_stores_the_dropout_stream_as_plain_ints(small_digits, tmp_path):
    train(small_gan(shape=EIGHT), small_digits[0][:128], epochs=1, batch_size=64,
          checkpoint_dir=tmp_path, progress=False)
    stream = checkpoint.load(tmp_path / "last.npz")["rng"]["dropout"]
    assert set(stream) == {"seed", "calls"}
    assert type(stream["seed"]) is int and type(stream["calls"]) is int
    assert stream["calls"] > 0                            # the discriminator's dropout ran
    assert stream == F.dropout_stream_state()


def test_a_checkpoint_with_numpys_old_dropout_state_is_refused_plainly(small_digits, tmp_path):
    x = small_digits[0][:128]
    train(small_gan(shape=EIGHT), x, epochs=1, checkpoint_dir=tmp_path, progress=False)
    saved = checkpoint.load(tmp_path / "last.npz")
    saved["rng"]["dropout"] = '{"bit_generator": "PCG64"}'     # what tinyae wrote before
    checkpoint.save(saved, tmp_path / "last.npz")
    with pytest.raises(ValueError, match="written by an older tinyae"):
        train(small_gan(shape=EIGHT), x, epochs=2, checkpoint_dir=tmp_path, resume=True,
              progress=False)



@pytest.mark.gpu
@pytest.mark.skipif(not tinyae.cupy_available(), reason="CuPy with a CUDA device is not "
                                                         "available here")
def test_backend_cupy_moves_the_model_and_trains_there(digits):
    model = small_vae()
    history = train(model, digits[0], epochs=2, batch_size=64, backend="cupy", progress=False)
    assert all(param.backend == "cupy" for param in model.parameters())
    assert history["train/loss"][1] < history["train/loss"][0]
    assert math.isfinite(evaluate(model, digits[0])["loss"])
