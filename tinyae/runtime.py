"""Process-level settings that decide CPU speed more than any kernel does.

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
import ctypes
import ctypes.util
import os
import sys

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
