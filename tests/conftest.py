"""Shared test fixtures: every test is written once and runs on every available backend."""
import collections
import os
import pathlib
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# TINYAE_FAKE_CUPY=1: run on the emulated cupy of tests/fakecupy (NumPy underneath,
# but it refuses implicit host conversions where CuPy does), before tinyae imports it.
# Subprocesses get it through PYTHONPATH. CUDA C cannot run there: reference kernels.
FAKE_CUPY = os.environ.get("TINYAE_FAKE_CUPY", "") not in ("", "0")

# One BLAS thread for every test (and the subprocesses they start), whatever the load:
# the default policy picks the idle cores when training starts (tinyae.runtime), and
# matrix products sum in another order on another thread count, so the tests that compare
# two runs bit for bit would depend on the machine's load. test_runtime.py tests the policy.
os.environ.setdefault("TINYAE_THREADS", "1")
if FAKE_CUPY:
    _fake = str(pathlib.Path(__file__).resolve().parent / "fakecupy")
    sys.path.insert(0, _fake)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (_fake, os.environ.get("PYTHONPATH", "")) if p)
    os.environ.setdefault("TINYAE_KERNELS", "reference")

import tinyae  # noqa: E402
from tinyae import backend  # noqa: E402

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


def to_host(array):
    """A host NumPy array of ``array``, a tensor or an array of either backend (for asserts)."""
    return backend.to_numpy(array.data if isinstance(array, tinyae.Tensor) else array)


# ------------------------------------------------------------ emulated cupy
def pytest_collection_modifyitems(config, items):
    """Under the emulation, the numpy cases are the plain run's: run only the cupy ones."""
    if not FAKE_CUPY:
        return
    numpy_cases = [item for item in items
                   if getattr(item, "callspec", None) and item.callspec.params.get(
                       "backend_name") == "numpy"]
    if numpy_cases:
        config.hook.pytest_deselected(items=numpy_cases)
        numpy_cases = set(numpy_cases)
        items[:] = [item for item in items if item not in numpy_cases]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under the emulation a gpu test that runs CUDA C skips and says why; any other test fails."""
    outcome = yield
    report = outcome.get_result()
    # RealDeviceRequired is a unittest.SkipTest, which pytest turns into its own skip.
    if not (FAKE_CUPY and call.excinfo is not None
            and "the emulated cupy cannot run CUDA C" in str(call.excinfo.value)):
        return
    if item.get_closest_marker("gpu"):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0,
                           f"Skipped: needs a real CUDA device: {call.excinfo.value}")
    else:
        report.outcome = "failed"
        report.longrepr = (f"{item.nodeid} ran CUDA C on the emulated cupy, where only the "
                           f"reference kernels can run: {call.excinfo.value}")
