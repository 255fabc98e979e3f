"""Shared test fixtures: every test is written once and runs on every available backend."""
import collections
import os
import pathlib

import numpy as np
import pytest
from hypothesis import HealthCheck, settings


import tinyae
from tinyae import backend

CUPY_READY = backend.cupy_available()

# The backend fixture only selects the active backend, which is the same for every
# example Hypothesis draws, so sharing it across examples is intended.
settings.register_profile("tinyae", suppress_health_check=[HealthCheck.function_scoped_fixture],
                          deadline=None)
settings.load_profile("tinyae")

# The real data sets live beside the project (never copied into it): ../shared/data.
DATA_DIR = pathlib.Path(os.environ.get(
    "TINYAE_DATA", pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(params=[
    "numpy",
    pytest.param("cupy", marks=[pytest.mark.gpu, pytest.mark.skipif(
        not CUPY_READY, reason="cupy backend: CuPy with a CUDA device is not available here")]),
])
def backend_name(request):
    """Run the test body with this backend active; restore the previous one after."""
    with tinyae.using_backend(request.param):
        yield request.param


@pytest.fixture
def xp(backend_name):
    """The array module of the active backend (numpy or cupy)."""
    return backend.xp()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def torch():
    """PyTorch as a test oracle; the test is skipped (with the reason) when it is missing."""
    return pytest.importorskip("torch", reason="PyTorch is not installed: parity tests skipped")


@pytest.fixture(scope="session")
def data_dir():
    """../shared/data, or $TINYAE_DATA; tests that need it skip when it is absent."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"real data not found at {DATA_DIR} (set TINYAE_DATA)")
    return DATA_DIR


def to_tensor(array, requires_grad=False, dtype="float64"):
    """A host NumPy array as a tensor on the active backend (float64 by default, for checks)."""
    return tinyae.tensor(np.asarray(array, dtype=dtype), requires_grad=requires_grad)


def pytest_terminal_summary(terminalreporter):
    """Skips counted by reason (one line each, not one per test), and what was deselected."""
    reasons = collections.Counter()
    for report in terminalreporter.stats.get("skipped", []):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reasons[reason.replace("Skipped: ", "", 1)] += 1
    deselected = terminalreporter.stats.get("deselected", [])
    slow = sum(1 for item in deselected if item.get_closest_marker("slow"))
    if not reasons and not deselected:
        return
    terminalreporter.section("skipped and deselected", sep="-")
    for reason, count in reasons.most_common():
        terminalreporter.write_line(f"{count:5d} skipped: {reason}")
    if slow:
        terminalreporter.write_line(f"{slow:5d} deselected: marked slow (the default run leaves "
                                    "them out; `pytest -m slow` runs them)")
    if len(deselected) > slow:
        terminalreporter.write_line(f"{len(deselected) - slow:5d} deselected by -k or -m")
