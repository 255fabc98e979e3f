"""Where a run's files go, and the lines of its summary.

- ``Outputs``: the folder a run writes into; it remembers every file, and
  ``write_summary`` writes ``summary.txt`` atomically.
- ``losses_line``, ``plural``, ``settings_text``: short texts for summaries and help.
"""
import json
import math
import os
import pathlib
import platform
import time

from ..io import atomic_write_bytes
from ..errors import UsageError


class Outputs:
    """The folder a run writes into, and the list of what it wrote.

    Every writer in tinyae replaces a file atomically (``tinyae.io``), so an
    interrupted run leaves each output either as it was or complete.

    Example::

        out = Outputs("runs/demo")
        plot.image_grid(images, path=out.file("samples.png"))
        out.write_summary(["trained for 10 epochs"])
    """

    def __init__(self, directory):
        self.directory = pathlib.Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UsageError(f"--out {directory}: a file of that name is in the way; "
                             "choose a folder name") from None
        except PermissionError:
            raise UsageError(f"--out {directory}: no permission to create it; choose "
                             "another folder") from None
        self.files = []
        self.started = time.perf_counter()

    def file(self, name):
        """The path of output ``name`` (subfolders are created); recorded for the summary."""
        path = self.directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path not in self.files:
            self.files.append(path)
        return path

    def folder(self, name):
        """A subfolder for files written by callbacks (recorded as a folder)."""
        path = self.directory / name
        path.mkdir(parents=True, exist_ok=True)
        if path not in self.files:
            self.files.append(path)
        return path

    def elapsed(self):
        """Seconds since the run's folder was opened."""
        return time.perf_counter() - self.started

    def listing(self, about_to_write=()):
        """One line per output, relative to the folder (a folder with its file count);
        ``about_to_write``: paths listed although they do not exist yet."""
        lines = []
        for path in self.files:
            relative = path.relative_to(self.directory)
            if path.is_dir():
                lines.append(f"  {relative}/  ({plural(_count_files(path), 'file')})")
            elif path.exists() or path in about_to_write:
                lines.append(f"  {relative}")
        return lines

    def write_summary(self, lines, title="tinyae"):
        """Write ``summary.txt``: the given lines, the time taken and the files written."""
        path = self.file("summary.txt")
        text = [title, "=" * len(title), *lines, "",
                f"time: {self.elapsed():.1f} s (Python {platform.python_version()}, "
                f"{os.cpu_count()} CPU cores visible)", "", "files written:",
                *self.listing(about_to_write=(path,)), ""]
        atomic_write_bytes(path, "\n".join(text).encode("utf-8"))
        return path

    def final_line(self):
        """The line the command line prints last: where the outputs are."""
        count = sum(_count_files(path) for path in self.files)
        return f"outputs ({plural(count, 'file')}) are in {self.directory.resolve()}"


def _count_files(path):
    """1 for a file, the number of files in a folder (temporary ones aside), 0 if missing."""
    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    return int(path.exists())


def losses_line(name, history):
    """One summary line with the last epoch's loss components of a ``History``."""
    values = history.as_dict()
    parts = [f"{key} {series[-1]:.4g}" for key, series in values.items()
             if series and math.isfinite(series[-1])]
    epochs = len(history)
    extra = ", stopped early" if history.stopped_early else ""
    extra += f", best epoch {history.best_epoch}" if history.best_epoch else ""
    return f"{name}: {plural(epochs, 'epoch')}{extra}; final {', '.join(parts) or 'no losses'}"


def plural(count, word):
    """"1 epoch", "2 epochs"."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def settings_text(settings):
    """``{"epochs": 30, ...}`` as "epochs=30, ..." for help texts and summaries."""
    return ", ".join(f"{key}={json.dumps(value) if isinstance(value, str) else value}"
                     for key, value in settings.items())
