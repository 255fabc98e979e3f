"""The allocator tuning applied where training starts (never at import), and the user's
ways to say no to it; what ``import tinyae`` loads; the one thread policy of the API and
the command line."""
import os
import subprocess
import sys

import pytest

import tinyae
from tinyae import runtime

TRAIN = ("import numpy, tinyae, tinyae.runtime as r\n"
         "before = r.malloc_tuned\n"
         "model = tinyae.models.mlp_autoencoder(4, [2])\n"
         "tinyae.train(model, numpy.full((8, 4), 0.5, numpy.float32), epochs=1, batch_size=4,"
         " progress=False)\n"
         "print(before, r.malloc_tuned)")


def run(code, **env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "TINYAE_TUNE_MALLOC")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_malloc_is_tuned_when_training_starts_not_at_import():
    assert run(TRAIN) == "False True"


def test_opt_out_and_explicit_user_settings_are_respected():
    code = "import tinyae.runtime as r; print(r.tune_malloc(), r.malloc_tuned)"
    assert run(code, TINYAE_TUNE_MALLOC="0") == "False False"
    assert run(code, MALLOC_MMAP_THRESHOLD_="131072") == "False False"
    assert run(code, MALLOC_TRIM_THRESHOLD_="131072") == "False False"


def test_import_loads_no_matplotlib_and_autodiff_runs_without_it():
    code = ("import sys\n"
            "sys.modules['matplotlib'] = None  # any import of matplotlib now fails\n"
            "import tinyae\n"
            "x = tinyae.tensor([1.0, 2.0], requires_grad=True)\n"
            "(x * x).sum().backward()\n"
            "print(x.grad.tolist())")
    assert run(code) == "[2.0, 4.0]"
    assert run("import sys, tinyae; print(any(m.startswith('matplotlib') for m in sys.modules))"
               ) == "False"


def test_plot_loads_matplotlib_on_first_use(tmp_path):
    code = ("import sys, tinyae.plot as p\n"
            "loaded = 'matplotlib' in sys.modules\n"
            "p.loss_curves({'train/loss': [2.0, 1.0]})\n"
            "print(loaded, 'matplotlib' in sys.modules)")
    assert run(code, MPLBACKEND="Agg") == "False True"


# ---------------------------------------------------------------- threads
def _blas_threads():
    from threadpoolctl import threadpool_info
    return {lib["filepath"]: lib["num_threads"] for lib in threadpool_info()
            if lib["user_api"] == "blas"}


def test_limited_threads_limits_blas_and_numba_then_restores():
    import numba
    numba_before, blas_before = numba.get_num_threads(), _blas_threads()
    assert blas_before, "NumPy's BLAS should be visible to threadpoolctl"
    with runtime.limited_threads(1):
        assert numba.get_num_threads() == 1
        assert set(_blas_threads().values()) == {1}
    assert numba.get_num_threads() == numba_before and _blas_threads() == blas_before
    with runtime.limited_threads(0):                      # 0: leave the libraries alone
        assert _blas_threads() == blas_before


@pytest.mark.parametrize("given, environment, expected", [
    (None, None, 5), (None, "3", 3), (2, "3", 2), (0, None, 0), (None, "0", 0)])
def test_training_threads_policy(monkeypatch, given, environment, expected):
    monkeypatch.setattr(runtime, "idle_cores", lambda: 5)   # the default: the idle cores
    if environment is None:
        monkeypatch.delenv("TINYAE_THREADS", raising=False)
    else:
        monkeypatch.setenv("TINYAE_THREADS", environment)
    assert runtime.training_threads(given) == expected


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_training_threads_refuses_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match="threads must be a whole number"):
        runtime.training_threads(bad)


def test_training_threads_names_a_bad_environment_value(monkeypatch):
    monkeypatch.setenv("TINYAE_THREADS", "many")
    with pytest.raises(ValueError, match="TINYAE_THREADS='many'"):
        runtime.training_threads()


def test_idle_cores_reads_the_cpu_times(monkeypatch):
    monkeypatch.setattr(runtime, "_usable_cpus", lambda: [0, 1, 2, 3])
    samples = iter([(100, 1000, 0), (150, 1100, 0)])    # half of every tick idle
    monkeypatch.setattr(runtime, "_cpu_times", lambda cpus: next(samples))
    assert runtime.idle_cores(window=0) == 2
    samples = iter([(100, 1000, 0), (100, 1100, 0)])    # every core busy: still one thread
    monkeypatch.setattr(runtime, "_cpu_times", lambda cpus: next(samples))
    assert runtime.idle_cores(window=0) == 1
    samples = iter([(100, 1000, 7), (125, 1100, 32)])   # our own spinning threads count as idle
    monkeypatch.setattr(runtime, "_cpu_times", lambda cpus: next(samples))
    assert runtime.idle_cores(window=0) == 2


def test_idle_cores_counts_only_the_cores_this_process_may_use(monkeypatch):
    """Under ``taskset -c 0`` an idle 2-core machine has one core for us, not two."""
    monkeypatch.setattr(runtime, "_usable_cpus", lambda: [0])
    asked = []
    samples = iter([(100, 1000, 0), (200, 1100, 0)])    # that core idle the whole time

    def times(cpus):
        asked.append(cpus)
        return next(samples)
    monkeypatch.setattr(runtime, "_cpu_times", times)
    assert runtime.idle_cores(window=0) == 1
    assert asked == [[0], [0]]


def test_cpu_ticks_sums_the_lines_of_the_given_cpus():
    stat = ("cpu  10 0 10 100 5 0 0 0 0 0\n"
            "cpu0 1 0 1 40 2 0 0 0 0 0\n"
            "cpu1 9 0 9 60 3 0 0 0 0 0\n"
            "intr 12345\n")
    assert runtime._cpu_ticks(stat, [1]) == (63, 81)
    assert runtime._cpu_ticks(stat, [0, 1]) == (105, 125)
    with pytest.raises(ValueError, match="no line for"):
        runtime._cpu_ticks(stat, [2])


def test_idle_cores_on_this_machine_is_a_core_count():
    assert 1 <= runtime.idle_cores() <= len(runtime._usable_cpus()) <= (os.cpu_count() or 1)


@pytest.mark.parametrize("threads", [None, 1, 2])
def test_train_runs_its_steps_on_the_policy_threads_and_restores(monkeypatch, threads):
    """The API and the command line apply one policy (runtime.training_threads)."""
    monkeypatch.delenv("TINYAE_THREADS", raising=False)
    monkeypatch.setattr(runtime, "idle_cores", lambda: 1)
    expected = 1 if threads is None else threads
    x, _ = tinyae.data.load_digits()
    model = tinyae.models.mlp_autoencoder(x.shape[1:], hidden=(16,), latent_dim=4)
    seen = []
    before = _blas_threads()
    tinyae.train(model, x[:64], epochs=1, batch_size=32, progress=False, threads=threads,
                 callbacks=[lambda trainer, epoch, history: seen.append(_blas_threads())])
    assert seen and all(set(limits.values()) == {min(expected, max(before.values()))}
                        for limits in seen)
    assert _blas_threads() == before


def test_an_outer_limit_reaches_train_as_the_command_lines_threads_do(monkeypatch):
    monkeypatch.delenv("TINYAE_THREADS", raising=False)
    monkeypatch.setattr(runtime, "idle_cores", lambda: 2)
    with runtime.limited_threads(1):
        assert runtime.training_threads() == 1          # --threads 1 wins over idle cores
        assert runtime.training_threads(2) == 2         # an explicit count still wins
    assert runtime.training_threads() == 2


def test_a_resumed_run_keeps_its_checkpoints_thread_count(monkeypatch, tmp_path):
    """BLAS sums in another order on another thread count: resume must not re-decide."""
    monkeypatch.delenv("TINYAE_THREADS", raising=False)
    x, _ = tinyae.data.load_digits()
    model = tinyae.models.mlp_autoencoder(x.shape[1:], hidden=(16,), latent_dim=4)
    monkeypatch.setattr(runtime, "idle_cores", lambda: 2)
    tinyae.train(model, x[:64], epochs=1, batch_size=32, progress=False,
                 checkpoint_dir=tmp_path)
    assert tinyae.checkpoint.load(tmp_path / "last.npz")["threads"] == 2
    monkeypatch.setattr(runtime, "idle_cores", lambda: 1)   # the machine got busy
    seen = []
    tinyae.train(model, x[:64], epochs=2, batch_size=32, progress=False, resume=True,
                 checkpoint_dir=tmp_path, callbacks=[lambda trainer, *_: seen.append(
                     trainer.threads)])
    assert seen == [2]
    assert tinyae.checkpoint.load(tmp_path / "last.npz")["threads"] == 2
