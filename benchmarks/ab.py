"""Two checkouts of tinyae side by side: did a change make the workloads slower?

    python -m benchmarks.ab --before ../tinyae-old --after . -w A,B,C,D,E --rounds 3

Each round runs ``python -m benchmarks.compare -p fused,torch`` once in each
checkout, alternating, each in a fresh process whose ``tinyae`` and ``kernels``
are that checkout's. PyTorch runs in every process too, so each tinyae time has
a same-process PyTorch time beside it: the ratio to PyTorch is what is compared
across checkouts, since machine noise moves both alike. Prints one row per
workload and checkout (median over rounds of the per-process medians).
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROW = re.compile(r"^\| (?P<w>[A-Z]) \| (?P<batch>\d+) \| (?P<path>[\w-]+) \| (?P<ms>[\d.]+) \|")


def run_once(tree, workloads, seconds, extra):
    """One compare run in ``tree``: {(workload, path): median ms}."""
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    cmd = [sys.executable, "-m", "benchmarks.compare", "-w", workloads, "-p", "fused,torch",
           "--rounds", "1", "--seconds", str(seconds)] + extra
    out = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=True)
    times = {}
    for line in out.stdout.splitlines():
        match = ROW.match(line)
        if match:
            times[match["w"], match["path"]] = float(match["ms"])
    return times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="checkout measured first in each round")
    parser.add_argument("--after", default=".", help="checkout measured second")
    parser.add_argument("-w", "--workloads", default="A,B,C,D,E")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    args, extra = parser.parse_known_args(argv)
    trees = {"before": args.before, "after": args.after}
    runs = {label: [] for label in trees}
    for round_index in range(args.rounds):
        for label, tree in trees.items():
            runs[label].append(run_once(tree, args.workloads, args.seconds, extra))
            print(f"# round {round_index + 1}: {label} done", file=sys.stderr, flush=True)
    print("| workload | checkout | tinyae ms | torch ms | tinyae / torch (per round) | median ratio |")
    print("|---|---|---|---|---|---|")
    for w in args.workloads.split(","):
        for label in trees:
            ratios = [r[w, "fused"] / r[w, "torch"] for r in runs[label]]
            ours = statistics.median(r[w, "fused"] for r in runs[label])
            theirs = statistics.median(r[w, "torch"] for r in runs[label])
            per_round = " / ".join(f"{x:.2f}" for x in ratios)
            print(f"| {w} | {label} | {ours:.2f} | {theirs:.2f} | {per_round} | "
                  f"{statistics.median(ratios):.2f} |")


if __name__ == "__main__":
    main()
