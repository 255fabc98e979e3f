"""``python -m tutorials [PREFIX ...]``: run every tutorial's code and regenerate its figures."""
import sys
import time

from . import run_tutorial, tutorial_files


def main(argv):
    files = tutorial_files()
    if argv:
        files = [f for f in files if any(f.name.startswith(prefix) for prefix in argv)]
        if not files:
            raise SystemExit(f"no tutorial matches {argv}; the tutorials are "
                             f"{[f.name for f in tutorial_files()]}")
    total = time.perf_counter()
    for path in files:
        start = time.perf_counter()
        run_tutorial(path)
        print(f"{path.name:32s} ok  {time.perf_counter() - start:6.1f} s", flush=True)
    print(f"{len(files)} tutorials ran in {time.perf_counter() - total:.1f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
