"""Process-level settings that decide CPU speed more than any kernel does:
the allocator's thresholds and the number of threads.

Threads. While tinyae computes (``tinyae.train`` and every command of the
command line), the BLAS library behind NumPy's matrix products and Numba's
kernels run on as many threads as there are idle cores when training starts
(``idle_cores``), unless you choose: the ``threads`` argument of
``tinyae.train``, ``--threads N`` on the command line, or ``TINYAE_THREADS=N``
in the environment (0 leaves the libraries' own settings). Chosen by
measurement (benchmarks/RESULTS.md, "Threads"): on a quiet machine every core
helps, but OpenBLAS's spinning workers lose much when another process wants
their core, so a core in use by someone else is left to them.

glibc's malloc hands large freed blocks (above 128 KiB by default, a threshold
that then adapts) back to the operating system and faults them in again on the
next training step: thousands of page faults per step, 15-60% of step time on
tinyae's reference workloads (benchmarks/RESULTS.md). Raising the mmap and
trim thresholds keeps those blocks in the heap for reuse. ``tune_malloc`` does
that with ``mallopt`` where training starts (``tinyae.train`` calls it once, before
the first step; so do the benchmarks), never at ``import tinyae``, and not when the
user has chosen: setting ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_``
yourself, or ``TINYAE_TUNE_MALLOC=0``, leaves the allocator alone. Call it yourself
at the top of a training loop of your own.
"""
import contextlib
import ctypes
import ctypes.util
import os
import sys
import time

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024   # glibc's upper limit for this setting on 64-bit
TRIM_THRESHOLD = 256 * 1024 * 1024

malloc_tuned = False   # True once tune_malloc has changed the thresholds
_asked = False


def tune_malloc():
    """Raise glibc's mmap/trim thresholds (Linux only, once per process); True if applied.

    Example::

        tinyae.runtime.tune_malloc()   # before a training loop of your own
    """
    global malloc_tuned, _asked
    if _asked:
        return malloc_tuned
    _asked = True
    if not sys.platform.startswith("linux"):
        return False
    if os.environ.get("TINYAE_TUNE_MALLOC", "1") == "0":
        return False
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False  # the user's explicit setting wins
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return False
    ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    ok = mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
    malloc_tuned = ok
    return ok


# ---------------------------------------------------------------- threads
def idle_cores(window=0.05):
    """How many of the cores this process may run on no other process used during the
    last ``window`` seconds, at least 1.

    Read from /proc/stat (Linux) while this process sleeps, for the CPUs of this
    process's affinity mask only (``taskset -c 0`` or a pinned container means one
    core, however many the machine has); what this process's own threads used
    meanwhile (OpenBLAS workers still spinning after a matrix product) counts as
    idle. Elsewhere: cores minus the load average, or all cores.

    Example::

        tinyae.runtime.idle_cores()            # 2 on an idle 2-core machine, 1 if one is busy
    """
    cpus = _usable_cpus()
    cores = len(cpus)
    try:
        before = _cpu_times(cpus)
        time.sleep(window)
        after = _cpu_times(cpus)
        idle, total, own = (a - b for a, b in zip(after, before))
        idle = (idle + own) / max(total, 1) * cores
    except (OSError, ValueError, IndexError):
        try:
            idle = cores - os.getloadavg()[0]
        except (OSError, AttributeError):
            idle = cores
    return max(1, min(cores, int(idle + 0.3)))   # a core 70% idle counts as idle


def _usable_cpus():
    """The CPU numbers this process may run on (its affinity mask; all where unknown)."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # not Linux
        return list(range(os.cpu_count() or 1))


def _cpu_times(cpus):
    """(idle, total, this process's) CPU time in clock ticks: the ``cpus`` from /proc/stat,
    this process's user + system time from /proc/self/stat."""
    with open("/proc/stat") as stat:
        idle, total = _cpu_ticks(stat.read(), cpus)
    with open("/proc/self/stat") as own:
        mine = own.read().rsplit(")", 1)[1].split()   # after the command name
    return idle, total, int(mine[11]) + int(mine[12])


def _cpu_ticks(stat_text, cpus):
    """(idle + iowait, total) ticks of the per-CPU lines "cpuN ..." of /proc/stat for N in
    ``cpus``; ValueError if one of them is missing."""
    wanted, idle, total = {f"cpu{n}" for n in cpus}, 0, 0
    for line in stat_text.splitlines():
        name, *values = line.split()
        if name in wanted:
            fields = [int(value) for value in values[:8]]
            idle, total = idle + fields[3] + fields[4], total + sum(fields)
            wanted.discard(name)
    if wanted:
        raise ValueError(f"/proc/stat has no line for {sorted(wanted)}")
    return idle, total


def training_threads(threads=None):
    """The thread count tinyae computes with: ``threads`` if given, else the count of the
    ``limited_threads`` block it runs in (the command line's ``--threads`` reaches
    ``tinyae.train`` so), else ``$TINYAE_THREADS``, else the idle cores now
    (``idle_cores``); 0 means "leave the libraries' own settings".

    Example::

        tinyae.runtime.training_threads(1)     # 1: what you asked for
    """
    if threads is None and _active_limit:
        return _active_limit[-1]
    if threads is None:
        text = os.environ.get("TINYAE_THREADS", "").strip()
        if not text:
            return idle_cores()
        try:
            threads = int(text)
        except ValueError:
            raise ValueError(f"TINYAE_THREADS={text!r}: expected a whole number of threads "
                             "(0: the libraries' own settings)") from None
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be a whole number >= 0 (0: the libraries' own "
                         f"settings), got {threads!r}")
    return threads


_active_limit = []   # the counts of the limited_threads blocks running now, innermost last


@contextlib.contextmanager
def limited_threads(count):
    """At most ``count`` threads for BLAS and Numba inside the block (0 or None: no change).

    Example::

        with tinyae.runtime.limited_threads(1):
            loss = step(x)
    """
    _active_limit.append(count)
    try:
        if not count:
            yield
            return
        from threadpoolctl import threadpool_limits
        import numba
        previous = numba.get_num_threads()
        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
        try:
            with threadpool_limits(limits=count, user_api="blas"):
                yield
        finally:
            numba.set_num_threads(previous)
    finally:
        _active_limit.pop()
