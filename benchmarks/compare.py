"""Side-by-side step times of tinyae and PyTorch on the reference workloads A to E.

    python -m benchmarks.compare                    # all workloads, all paths
    python -m benchmarks.compare -w A,C --rounds 3  # a subset
    python -m benchmarks.compare --memory           # also peak memory per step
    python -m benchmarks.compare -w E --profile fused   # where E's step spends its time
    python -m benchmarks.compare --count-launches   # GPU kernel launches per step (no GPU needed)
    python -m benchmarks.compare --busy             # with a CPU-bound process running beside it
    python -m benchmarks.compare -p fused@1,fused@2,torch   # tinyae on 1 and on 2 threads

In one process, round after round, it alternates the paths (tinyae reference
kernels, tinyae fused kernels, PyTorch CPU), so machine noise hits all of them
alike; it prints the median step time, the ratio to PyTorch, the achieved
GFLOP/s and, in the same run, the GEMM rate of ``numpy.dot`` as the ceiling.
Peak memory is measured in a fresh subprocess per (workload, path), sampling
the resident set size while steps run. Timings on shared machines move by up
to 30%: compare ratios within one run.

A tinyae path runs on the threads ``tinyae.train`` would use
(``tinyae.runtime.training_threads()``); ``PATH@N`` runs it on N BLAS and Numba
threads instead (0: the libraries' own settings). PyTorch gets ``--threads``.
``--busy`` starts one CPU-bound process beside the benchmark (it ends by itself
after ``--busy-seconds`` at the latest, and is stopped when the benchmark ends),
as on a shared machine.
"""
import argparse
import contextlib
import ctypes
import ctypes.util
import datetime
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import threading
import time

import numpy

from benchmarks import workloads as W

PATHS = ("reference", "fused", "torch")          # the default: CPU only
GPU_PATHS = ("cupy", "torch-cuda")                  # add with -p on a machine with a GPU


def gemm_rate(n=2048, repeats=5):
    """GFLOP/s of float32 numpy.dot on n x n matrices: the ceiling for dense layers."""
    rng = numpy.random.default_rng(0)
    a = rng.random((n, n), dtype=numpy.float32)
    b = rng.random((n, n), dtype=numpy.float32)
    numpy.dot(a, b)
    best = min(_timed(lambda: numpy.dot(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Runner:
    """One workload in one path: its model, optimizer, step function and batch.

    Paths: "reference" and "fused" (tinyae on NumPy with either kernel mode),
    "torch" (PyTorch CPU), and on a machine with an NVIDIA GPU "cupy" (tinyae on
    the CuPy backend, fused kernels) and "torch-cuda". GPU steps end with a
    device synchronisation, so the time is the step's, not its launch's.
    """

    def __init__(self, name, path, batch, seed=0):
        self.label = path
        path, _, threads = path.partition("@")
        self.path = path
        self.threads = int(threads) if threads else None
        builder, _, default_batch, _ = W.WORKLOADS[name]
        self.batch = batch or default_batch
        rng = numpy.random.default_rng(seed)
        x = W.make_batch(name, self.batch, rng)
        self.rng = numpy.random.default_rng(seed + 1)
        if path in ("torch", "torch-cuda"):
            import torch
            torch.manual_seed(seed)
            self.ops = W.TorchOps("cuda" if path == "torch-cuda" else "cpu")
            self.model, self.opt, self.step_fn = builder(self.ops)
            self.model.to(self.ops.device)
            self.synchronize = torch.cuda.synchronize if path == "torch-cuda" else _nothing
            self.backend = None
        else:
            import kernels
            import tinyae
            import tinyae.nn
            tinyae.runtime.tune_malloc()  # as tinyae.train does before its first step
            self.ops = W.TinyaeOps()
            self.kernels, self.tinyae = kernels, tinyae
            self.backend = "cupy" if path == "cupy" else "numpy"
            self.mode = "fused" if path == "cupy" else path
            tinyae.nn.manual_seed(seed)
            with tinyae.using_backend(self.backend):
                self.model, self.opt, self.step_fn = builder(self.ops)
            self.synchronize = _cupy_synchronize if path == "cupy" else _nothing
        with self._context():
            self.x = self.ops.tensor(x)

    def _context(self):
        if self.backend is None:
            return contextlib.nullcontext()
        return self.tinyae.using_backend(self.backend)

    def threads_context(self):
        """The thread limit the steps run under (for tinyae: what tinyae.train applies)."""
        if self.backend is None:
            return contextlib.nullcontext()
        runtime = self.tinyae.runtime
        return runtime.limited_threads(runtime.training_threads(self.threads))

    def step(self):
        if self.backend is not None:
            self.kernels.set_mode(self.mode)
        with self._context():
            self.step_fn(self.ops, self.model, self.opt, self.x, self.rng)
        self.synchronize()


def _nothing():
    pass


def _cupy_synchronize():
    import cupy
    cupy.cuda.Device().synchronize()


def time_steps(runner, seconds, min_steps=3, max_steps=300):
    times = []
    with runner.threads_context():
        deadline = time.perf_counter() + seconds
        while len(times) < min_steps or (time.perf_counter() < deadline
                                         and len(times) < max_steps):
            times.append(_timed(runner.step))
    return times


def compare(names, paths, rounds, seconds, batch, threads):
    results = {}
    for name in names:
        runners = {}
        for path in paths:
            try:
                runners[path] = Runner(name, path, batch)
            except (ImportError, RuntimeError, AssertionError) as exc:  # no torch, CuPy or GPU
                print(f"# {name}: path {path} skipped ({str(exc).splitlines()[0]})")
        for runner in runners.values():
            if runner.path == "torch":
                runner.ops.set_threads(threads)
            with runner.threads_context():
                for _ in range(2):  # warm-up: JIT compilation, allocator pools
                    runner.step()
        samples = {path: [] for path in runners}
        for _ in range(rounds):
            for path, runner in runners.items():
                samples[path].append(time_steps(runner, seconds))
        results[name] = samples
        b = next(iter(runners.values())).batch if runners else batch
        _print_workload(name, samples, b)
    return results


def _print_workload(name, samples, batch):
    medians = {path: statistics.median(t for r in rounds for t in r)
               for path, rounds in samples.items()}
    flops = W.step_flops(name, batch)
    for path, rounds in samples.items():
        flat = [t for r in rounds for t in r]
        med = statistics.median(flat)
        q = statistics.quantiles(flat, n=4) if len(flat) > 1 else [med, med, med]
        per_round = " / ".join(f"{statistics.median(r) * 1e3:.2f}" for r in rounds)
        baseline = medians.get("torch-cuda" if path in GPU_PATHS else "torch")
        ratio = f"{med / baseline:.2f}" if baseline else "-"
        if path == "cupy" and "fused" in medians:
            ratio += f" (CPU fused / GPU: {medians['fused'] / med:.1f}x)"
        print(f"| {name} | {batch} | {path} | {med * 1e3:.2f} | {(q[2] - q[0]) * 1e3:.2f} | "
              f"{per_round} | {ratio} | {flops / med / 1e9:.1f} | {len(flat)} |", flush=True)


# ---------------------------------------------------------------- peak memory
def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_probe(name, path, batch, steps=5):
    """Run in a fresh process: peak RSS during steps minus the RSS between steps
    (after a warm-up step and malloc_trim): the working memory of one step."""
    runner = Runner(name, path, batch)
    runner.step()  # first step allocates optimizer state and compiles kernels
    # Hand every freed heap page back to the OS, so the pages a step needs are
    # faulted in again below and show up in the RSS, for every path alike.
    ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for _ in range(steps):
        runner.step()
    done.set()
    sampler.join()
    return base, peak[0]


def measure_memory(names, paths, batch):
    print("\n| workload | path | RSS before steps MiB | peak during steps MiB | step peak above base MiB |")
    print("|---|---|---|---|---|")
    for name in names:
        for path in paths:
            cmd = [sys.executable, "-m", "benchmarks.compare", "--memory-probe", name, path,
                   "--batch", str(batch or 0)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"| {name} | {path} | failed: {out.stderr.strip().splitlines()[-1:]} | | |")
                continue
            base, peak = (int(v) for v in out.stdout.split())
            mib = 1024 * 1024
            print(f"| {name} | {path} | {base / mib:.0f} | {peak / mib:.0f} | "
                  f"{(peak - base) / mib:.1f} |", flush=True)


# ---------------------------------------------------------------- profile
def profile_steps(name, path, batch, seconds, top=18):
    """cProfile of one workload's steps in one path (after a warm-up step): the
    functions with the most time of their own, as a share of the profiled time.
    The profiler's overhead falls on Python calls, so small ops look dearer than they are."""
    import cProfile
    import pstats
    runner = Runner(name, path, batch)
    with runner.threads_context():
        runner.step()
        profiler = cProfile.Profile()
        steps, deadline = 0, time.perf_counter() + seconds
        profiler.enable()
        while steps < 3 or time.perf_counter() < deadline:
            runner.step()
            steps += 1
        profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(entry[2] for entry in stats.values())
    rows = sorted(stats.items(), key=lambda item: -item[1][2])[:top]
    print(f"\n{name} ({path}): {steps} steps, {1000 * total / steps:.1f} ms of own time per "
          "step under the profiler\n")
    print("| function | calls per step | own ms per step | share |")
    print("|---|---|---|---|")
    for (filename, line, function), (_, calls, own, _, _) in rows:
        where = (f"{pathlib.Path(filename).parent.name}/{pathlib.Path(filename).name}:{line}"
                 if line else "built-in")
        print(f"| `{function}` ({where}) | {calls / steps:.0f} | {1000 * own / steps:.2f} | "
              f"{own / total:.0%} |")


# ---------------------------------------------------------------- launch counting
FAKE_CUPY = pathlib.Path(__file__).resolve().parents[1] / "tests" / "fakecupy"


def count_launches(names, batch):
    """Device kernels one training step launches on the CuPy backend, counted without a GPU.

    Runs each workload on the emulated cupy of tests/fakecupy, which counts every
    operation that would be a kernel on a GPU (ufuncs, reductions, copies, fills,
    assignments; not views or empty allocations) and the copies between host and
    device. CUDA C cannot run there, so each kernel of kernels/gpu.py is counted
    as its reference run as one launch (``cupy.fuse``); the launches CuPy adds
    around a few of them (the sums in bias_act_backward and the batch-norm and KL
    kernels) are not counted. The "reference" column counts the plain kernels.
    The second step is counted (the first also creates the optimizer state).
    """
    sys.path.insert(0, str(FAKE_CUPY))
    import cupy
    if not getattr(cupy, "EMULATED", False):
        raise SystemExit(f"--count-launches needs the emulated cupy of {FAKE_CUPY}, but "
                         f"{cupy.__file__} was imported first")
    _gpu_kernels_as_one_launch(cupy)
    print("| workload | batch | kernel launches | reference kernels | host->device copies | "
          "device->host copies | most frequent |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        counted = {}
        for mode in ("fused", "reference"):
            runner = Runner(name, "cupy", batch)
            runner.mode = mode
            runner.step()
            with cupy.count_launches() as counts:
                runner.step()
            copies = {kind: counts.pop(kind, 0) for kind in ("to_device", "to_host")}
            counted[mode] = counts
        common = ", ".join(f"{kind} {n}" for kind, n in counted["fused"].most_common(5))
        print(f"| {name} | {runner.batch} | {sum(counted['fused'].values())} | "
              f"{sum(counted['reference'].values())} | {copies['to_device']} | "
              f"{copies['to_host']} | {common} |", flush=True)


def _gpu_kernels_as_one_launch(cupy):
    """Stand kernels/gpu.py's functions in with their references, each counted as one launch."""
    import types
    import kernels
    import kernels.gpu
    from kernels import reference
    stand_in = types.ModuleType("kernels.gpu", "kernels.reference, one launch per kernel")
    for name, function in vars(kernels.gpu).items():
        if callable(function) and not name.startswith("_") and hasattr(reference, name):
            setattr(stand_in, name, cupy.fuse(getattr(reference, name)))
    sys.modules["kernels.gpu"] = kernels.gpu = stand_in


# ---------------------------------------------------------------- busy machine
@contextlib.contextmanager
def competing_process(seconds):
    """One CPU-bound process beside the benchmark, as on a shared machine. It stops by
    itself after ``seconds`` and is stopped when the block ends."""
    loop = f"import time\nend = time.time() + {float(seconds)}\nwhile time.time() < end: pass"
    process = subprocess.Popen([sys.executable, "-c", loop])
    try:
        yield process
    finally:
        process.terminate()
        process.wait()


# ---------------------------------------------------------------- report header
def thread_report():
    """BLAS libraries with their core type and threads, Numba's target and threads, and
    the threads a tinyae path runs on."""
    import numba
    import llvmlite.binding
    from threadpoolctl import threadpool_info
    import tinyae.runtime
    blas = "; ".join(f"{lib.get('internal_api')} {lib.get('version')} "
                     f"{lib.get('architecture') or ''} {lib.get('num_threads')} threads "
                     f"({os.path.basename(lib.get('filepath', ''))})"
                     for lib in threadpool_info() if lib.get("user_api") == "blas")
    return (f"BLAS: {blas or 'none loaded'}; Numba target {llvmlite.binding.get_host_cpu_name()}, "
            f"{numba.get_num_threads()} threads; tinyae paths run on "
            f"{tinyae.runtime.training_threads()} threads (tinyae.runtime; PATH@N to change)")


def header(threads):
    import numba
    versions = [f"python {platform.python_version()}", f"numpy {numpy.__version__}",
                f"numba {numba.__version__}"]
    try:
        import torch
        versions.append(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        versions.append("torch not installed")
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"# {datetime.datetime.now():%Y-%m-%d %H:%M}  {cpu}, {os.cpu_count()} cores, "
          f"torch on {threads} threads")
    print("# " + ", ".join(versions))
    print("# " + thread_report())
    print(f"# OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}  "
          f"MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', '(unset)')}")
    print(f"# numpy.dot float32 2048^2 GEMM ceiling: {gemm_rate():.0f} GFLOP/s")
    try:
        import cupy
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        print(f"# GPU: {name}, driver {cupy.cuda.runtime.driverGetVersion()}, "
              f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}, CuPy {cupy.__version__}")
    except Exception:  # no CuPy or no device: a CPU-only run
        pass
    print("\n| workload | batch | path | median ms | IQR ms | per-round medians ms | "
          "ratio to torch (GPU paths: to torch-cuda) | GFLOP/s | steps |")
    print("|---|---|---|---|---|---|---|---|---|")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-w", "--workloads", default="A,B,C,D,E")
    parser.add_argument("-p", "--paths", default=",".join(PATHS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="per path per round")
    parser.add_argument("--batch", type=int, default=0, help="0: the workload's reference batch")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory", action="store_true", help="also measure peak memory")
    parser.add_argument("--memory-probe", nargs=2, metavar=("WORKLOAD", "PATH"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--count-launches", action="store_true",
                        help="count GPU kernel launches per step on the emulated cupy; no timing")
    parser.add_argument("--profile", metavar="PATH",
                        help="cProfile the workloads' steps in this one path; no timing table")
    parser.add_argument("--busy", action="store_true",
                        help="run one CPU-bound process beside the benchmark")
    parser.add_argument("--busy-seconds", type=float, default=1800,
                        help="the competing process ends by itself after this long")
    args = parser.parse_args(argv)
    if args.memory_probe:
        base, peak = memory_probe(*args.memory_probe, args.batch or None)
        print(base, peak)
        return
    names = [n.strip().upper() for n in args.workloads.split(",") if n.strip()]
    if args.count_launches:
        count_launches(names, args.batch or None)
        return
    if args.profile:
        for name in names:
            profile_steps(name, args.profile, args.batch or None, args.seconds)
        return
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401  (loads its BLAS, so the header lists it)
    header(args.threads)
    busy = competing_process(args.busy_seconds) if args.busy else contextlib.nullcontext()
    with busy:
        if args.busy:
            print("# busy: one CPU-bound process runs beside the benchmark")
        compare(names, paths, args.rounds, args.seconds, args.batch or None, args.threads)
    if args.memory:
        measure_memory(names, paths, args.batch or None)


if __name__ == "__main__":
    main()
