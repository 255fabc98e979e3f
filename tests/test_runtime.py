"""The allocator tuning applied at import, and the user's ways to say no to it."""
import os
import subprocess
import sys

import pytest

CODE = "import tinyae.runtime as r, tinyae; print(r.malloc_tuned)"


def run(**env):
    full = {k: v for k, v in os.environ.items()
            if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "TINYAE_TUNE_MALLOC")}
    full.update(env)
    out = subprocess.run([sys.executable, "-c", CODE], env=full, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_malloc_is_tuned_by_default_on_linux():
    assert run() == "True"


def test_opt_out_and_explicit_user_settings_are_respected():
    assert run(TINYAE_TUNE_MALLOC="0") == "False"
    assert run(MALLOC_MMAP_THRESHOLD_="131072") == "False"
    assert run(MALLOC_TRIM_THRESHOLD_="131072") == "False"
