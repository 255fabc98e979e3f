"""``python -m tutorials [PREFIX ...]``: run every tutorial's code and write its figures.

The figures go to ``./tinyae-out/tutorials`` (or ``--out DIR``, or
``$TINYAE_TUTORIAL_OUT``), so running the tutorials leaves the checkout clean;
``--regenerate-figures`` writes them into the committed ``tutorials/figures/``.
"""
import argparse
import os
import pathlib
import sys
import time

from . import DEFAULT_FIGURES, run_tutorial, tutorial_files

DEFAULT_OUT = pathlib.Path("tinyae-out") / "tutorials"


def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="python -m tutorials",
        description="Run the tutorials' code (their asserts check every derivation) and "
                    "write their figures.")
    parser.add_argument("prefixes", nargs="*", metavar="PREFIX",
                        help="only the tutorials whose file names start so (e.g. 04 10)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--out", type=pathlib.Path, metavar="DIR",
                       help=f"folder for the figures (default $TINYAE_TUTORIAL_OUT or "
                            f"./{DEFAULT_OUT})")
    where.add_argument("--regenerate-figures", action="store_true",
                       help="write the figures into tutorials/figures/, the ones the "
                            "Markdown shows and git tracks")
    return parser.parse_args(argv)


def figure_folder(args):
    """--out, else tutorials/figures when regenerating, else $TINYAE_TUTORIAL_OUT, else
    ./tinyae-out/tutorials."""
    if args.out is not None:
        return args.out
    if args.regenerate_figures:
        return DEFAULT_FIGURES
    return pathlib.Path(os.environ.get("TINYAE_TUTORIAL_OUT") or DEFAULT_OUT)


def main(argv):
    args = parse_arguments(argv)
    files = tutorial_files()
    if args.prefixes:
        files = [f for f in files if any(f.name.startswith(prefix) for prefix in args.prefixes)]
        if not files:
            raise SystemExit(f"no tutorial matches {args.prefixes}; the tutorials are "
                             f"{[f.name for f in tutorial_files()]}")
    out_dir = figure_folder(args)
    total = time.perf_counter()
    for path in files:
        start = time.perf_counter()
        checks = run_tutorial(path, out_dir=out_dir)["__asserts_run__"][0]
        print(f"{path.name:32s} ok  {checks:4d} checks  {time.perf_counter() - start:6.1f} s",
              flush=True)
    print(f"{len(files)} tutorials ran in {time.perf_counter() - total:.1f} s; figures in "
          f"{out_dir.resolve()}")


if __name__ == "__main__":
    main(sys.argv[1:])
