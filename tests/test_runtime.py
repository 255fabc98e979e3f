"""The allocator tuning applied where training starts (never at import), and the user's
ways to say no to it; what ``import tinyae`` loads."""
import os
import subprocess
import sys

import pytest

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
