"""tinyae.callbacks: the image callbacks, the hooks train() calls and in which order, and
the callbacks train() is made of (LearningRateSchedule, EarlyStopping, ProgressBar,
SaveCheckpoint), each tested on its own with a stand-in trainer."""
import types

import numpy as np
import pytest

import tinyae
from tinyae import checkpoint, data, models, nn, optim
from tinyae.callbacks import (EarlyStopping, LearningRateSchedule, ProgressBar,
                              SaveCheckpoint, SaveReconstructions, SaveSamples)
from tinyae.train import History, LossTotals, train


@pytest.fixture(scope="module")
def small_digits():
    """256 of scikit-learn's 8x8 digits: 4 batches of 64."""
    return data.load_digits()[0][:256]


def small_vae(seed=0):
    nn.manual_seed(seed)
    return models.mlp_vae((1, 8, 8), hidden=(32,), latent_dim=2)


def small_autoencoder(seed=0):
    nn.manual_seed(seed)
    return models.mlp_autoencoder((1, 8, 8), [32, 4, 32])


def stand_in_trainer(**fields):
    """What a callback reads of a Trainer, without a training run."""
    defaults = dict(epochs=3, epochs_done=0, step_in_epoch=0, batches_per_epoch=4,
                    history=History(), stop_training=False, optimizers={}, model=None)
    return types.SimpleNamespace(**(defaults | fields))


# ---------------------------------------------------------------- through train()
def test_callbacks_save_sample_and_reconstruction_grids(small_digits, tmp_path):
    x = small_digits
    samples = SaveSamples(tmp_path / "samples", every=1, n=16, nrow=4)
    reconstructions = SaveReconstructions(tmp_path / "recon", x[:6], every=2)
    train(small_vae(), x, epochs=2, batch_size=64, callbacks=[samples, reconstructions],
          progress=False)
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "samples_epoch001.png", "samples_epoch002.png"]
    assert [p.name for p in (tmp_path / "recon").iterdir()] == ["reconstructions_epoch002.png"]


def test_a_callback_can_stop_training(small_digits):
    def stop_after_two(trainer, epoch, history):       # a plain function is an on_epoch_end
        trainer.stop_training = epoch == 2

    history = train(small_autoencoder(), small_digits, epochs=5, callbacks=[stop_after_two],
                    progress=False)
    assert len(history) == 2 and not history.stopped_early


class RecordHooks:
    """Every hook call, as (hook, epoch or None)."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self, trainer):
        self.calls.append(("on_train_begin", trainer.epochs_done))

    def on_epoch_begin(self, trainer, epoch):
        self.calls.append(("on_epoch_begin", epoch))

    def on_step_end(self, trainer, values):
        assert set(values) == {"loss"}
        self.calls.append(("on_step_end", trainer.step_in_epoch))

    def on_epoch_end(self, trainer, epoch, history):
        assert len(history) == epoch == trainer.epochs_done
        self.calls.append(("on_epoch_end", epoch))

    def on_train_end(self, trainer, history):
        self.calls.append(("on_train_end", len(history)))


def test_train_calls_every_hook_in_order(small_digits):
    record = RecordHooks()
    train(small_autoencoder(), small_digits[:128], epochs=2, batch_size=64,
          callbacks=[record], progress=False)
    epoch = [("on_step_end", 1), ("on_step_end", 2)]
    assert record.calls == [("on_train_begin", 0),
                            ("on_epoch_begin", 1), *epoch, ("on_epoch_end", 1),
                            ("on_epoch_begin", 2), *epoch, ("on_epoch_end", 2),
                            ("on_train_end", 2)]


def test_progress_bar_and_epoch_lines(small_digits, capsys):
    train(small_autoencoder(), small_digits[:128], epochs=1, batch_size=64,
          val_data=small_digits[128:192], progress=True)
    captured = capsys.readouterr()
    assert "epoch 1/1: loss " in captured.out + captured.err
    assert ", val loss " in captured.out + captured.err


def test_the_checkpoint_holds_what_user_callbacks_did(small_digits, tmp_path):
    def stop_after_one(trainer, epoch, history):
        trainer.stop_training = True

    train(small_autoencoder(), small_digits[:128], epochs=3, val_data=small_digits[128:192],
          patience=5, callbacks=[stop_after_one], checkpoint_dir=tmp_path, progress=False)
    saved = checkpoint.load(tmp_path / "last.npz")
    assert saved["position"]["epochs_done"] == 1
    assert saved["early_stopping"]["epochs_without_improvement"] == 0
    assert saved["early_stopping"]["best_model"].keys() == small_autoencoder().state_dict().keys()


# ---------------------------------------------------------------- LearningRateSchedule
def test_learning_rate_schedule_scales_the_initial_rates():
    first = optim.SGD([tinyae.Parameter(np.zeros(2))], lr=0.4)
    second = optim.Adam([tinyae.Parameter(np.zeros(1))], lr=0.1)
    callback = LearningRateSchedule(optim.StepLR(step_size=2, gamma=0.5),
                                    {"a": first, "b": second})
    first.param_groups[0]["lr"] = 123.0        # e.g. a checkpoint's scheduled rate: ignored
    trainer = stand_in_trainer(optimizers={"a": first, "b": second}, epochs=5)
    callback.on_train_begin(trainer)
    rates = []
    for epoch in range(1, 6):
        callback.on_epoch_begin(trainer, epoch)
        rates.append((first.param_groups[0]["lr"], second.param_groups[0]["lr"]))
    assert rates == [(0.4, 0.1), (0.4, 0.1), (0.2, 0.05), (0.2, 0.05), (0.1, 0.025)]


def test_learning_rate_schedule_refuses_a_bad_factor_before_training():
    opt = optim.SGD([tinyae.Parameter(np.zeros(1))], lr=0.1)
    callback = LearningRateSchedule(optim.LambdaLR(lr_lambda=lambda e: 1.0 if e < 2 else -1.0),
                                    {"model": opt})
    with pytest.raises(ValueError, match="gave the factor -1.0 for epoch 2"):
        callback.on_train_begin(stand_in_trainer(optimizers={"model": opt}, epochs=3))
    callback.on_train_begin(stand_in_trainer(optimizers={"model": opt}, epochs=2))  # fine


# ---------------------------------------------------------------- EarlyStopping
def run_epochs(callback, trainer, val_losses, model):
    """Record each val loss as an epoch (with weights equal to the epoch number)."""
    for epoch, value in enumerate(val_losses, start=1):
        model.weight.data[...] = epoch
        trainer.history.record(epoch, {"loss": 0.0}, {"loss": value})
        trainer.epochs_done = epoch
        callback.on_epoch_end(trainer, epoch, trainer.history)
        if trainer.stop_training:
            break


def test_early_stopping_stops_after_patience_and_restores_the_best_weights():
    nn.manual_seed(0)
    model = nn.Dense(2, 1)
    trainer = stand_in_trainer(model=model, epochs=10)
    callback = EarlyStopping(patience=2, min_delta=0.05)
    run_epochs(callback, trainer, [3.0, 2.0, 1.98, 2.5, 1.0], model)
    assert trainer.stop_training and trainer.history.stopped_early
    assert trainer.history.epoch == [1, 2, 3, 4]          # 1.98 is not better by 0.05
    assert trainer.history.best_epoch == 2 and trainer.history.best_value == 2.0
    callback.on_train_end(trainer, trainer.history)
    np.testing.assert_array_equal(model.weight.numpy(), 2.0)
    state = callback.state_dict()
    again = EarlyStopping(patience=2)
    again.load_state_dict(state)
    assert again.epochs_without_improvement == 2
    np.testing.assert_array_equal(again.best_model["weight"], 2.0)


def test_early_stopping_without_patience_only_tracks_the_best_epoch():
    nn.manual_seed(0)
    model = nn.Dense(2, 1)
    trainer = stand_in_trainer(model=model, epochs=10)
    callback = EarlyStopping()
    run_epochs(callback, trainer, [3.0, 2.0, 2.5, 2.6, 2.7], model)
    assert not trainer.stop_training and trainer.history.best_epoch == 2
    callback.on_train_end(trainer, trainer.history)
    np.testing.assert_array_equal(model.weight.numpy(), 5.0)   # nothing restored
    assert callback.best_model is None                          # nor kept


# ---------------------------------------------------------------- ProgressBar
def test_progress_bar_shows_running_means_and_prints_a_line_per_epoch(capsys):
    trainer = stand_in_trainer(epochs=2, batches_per_epoch=2)
    trainer.epoch_totals = LossTotals()
    bar = ProgressBar()
    bar.on_epoch_begin(trainer, 1)
    for loss in (1.0, 3.0):
        trainer.epoch_totals.add({"loss": loss}, 10)
        bar.on_step_end(trainer, {"loss": loss})
    assert bar.bar.n == 2 and bar.bar.postfix == "loss=2"
    trainer.history.record(1, {"loss": 2.0, "kl": float("nan")}, {"loss": 2.5})
    bar.on_epoch_end(trainer, 1, trainer.history)
    assert bar.bar is None
    assert "epoch 1/2: loss 2, val loss 2.5\n" in capsys.readouterr().out
    bar.on_train_end(trainer, trainer.history)               # nothing left open: fine


# ---------------------------------------------------------------- SaveCheckpoint
def test_save_checkpoint_writes_the_trainers_state(tmp_path):
    trainer = stand_in_trainer()
    trainer.state_dict = lambda: {"position": {"epochs_done": trainer.epochs_done}}
    callback = SaveCheckpoint(tmp_path / "new" / "run")
    callback.on_train_begin(trainer)                          # makes the folder
    assert list((tmp_path / "new" / "run").iterdir()) == []   # and leaves nothing there
    trainer.epochs_done = 2
    callback.on_epoch_end(trainer, 2, trainer.history)
    assert checkpoint.load(callback.path) == {"position": {"epochs_done": 2}}
    trainer.epochs_done = 3
    callback.on_interrupt(trainer)
    assert checkpoint.load(tmp_path / "new" / "run" / "last.npz")["position"]["epochs_done"] == 3


def test_save_checkpoint_refuses_a_folder_it_cannot_write(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(OSError, match="cannot write checkpoints to the folder"):
        SaveCheckpoint(tmp_path / "a_file" / "run").on_train_begin(stand_in_trainer())
