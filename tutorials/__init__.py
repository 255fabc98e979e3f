"""The tutorials: Markdown files whose ```python blocks derive and check every gradient.

Each ``NN-name.md`` is a derivation in prose and LaTeX, followed by code that
computes the derived gradient by hand in NumPy, compares it with tinyae's
backward and with a finite difference, and asserts that the three agree.
This module finds the tutorials, extracts their code and runs it:

    python -m tutorials            # run them all, figures into ./tinyae-out/tutorials
    python -m tutorials --regenerate-figures   # figures into tutorials/figures/ (tracked)
    python -m tutorials 04 10      # run only the tutorials whose names start so

Environment: ``TINYAE_QUICK=1`` asks the code for quick settings (fewer
samples, fewer training steps); ``TINYAE_TUTORIAL_OUT`` is the folder the
figures go to (default: ``tutorials/figures``).
"""
import ast
import contextlib
import os
import pathlib
import re

TUTORIALS_DIR = pathlib.Path(__file__).resolve().parent
DEFAULT_FIGURES = TUTORIALS_DIR / "figures"

# A fenced block that opens with ```python on its own line and ends at the next ``` line.
_PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def tutorial_files(directory=TUTORIALS_DIR):
    """Every tutorial, in reading order: the files named ``NN-*.md``, sorted by name."""
    return sorted(p for p in pathlib.Path(directory).glob("[0-9][0-9]-*.md"))


_FIGURE_LINK = re.compile(r"\]\(figures/([^)\s]+)\)")


def figure_names(text):
    """The file names of the figures a tutorial's Markdown shows (``![...](figures/NAME)``)."""
    return _FIGURE_LINK.findall(text)


def code_blocks(path):
    """The ```python blocks of ``path`` as (first line number, code) pairs, in order."""
    text = pathlib.Path(path).read_text(encoding="utf-8")
    blocks = []
    for match in _PYTHON_BLOCK.finditer(text):
        first_line = text.count("\n", 0, match.start(1)) + 1
        blocks.append((first_line, match.group(1)))
    return blocks


class _CountAsserts(ast.NodeTransformer):
    """After each ``assert`` statement, add one to ``__asserts_run__[0]``: the number of
    checks a tutorial actually ran, not the number it contains."""

    def visit_Assert(self, node):
        count = ast.parse("__asserts_run__[0] += 1").body[0]
        return [node, ast.copy_location(count, node)]


def compile_counting_asserts(code, filename, first_line=1):
    """``code`` compiled with an assert counter (see ``_CountAsserts``); line numbers start
    at ``first_line``, so a traceback names the Markdown's line."""
    tree = _CountAsserts().visit(ast.parse("\n" * (first_line - 1) + code, filename))
    return compile(ast.fix_missing_locations(tree), filename, "exec")


@contextlib.contextmanager
def _environment(**values):
    """Set environment variables for a block (None leaves one as it is)."""
    previous = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        if value is not None:
            os.environ[key] = value
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_tutorial(path, out_dir=None, quick=None):
    """Execute the code blocks of one tutorial, in order, in one fresh namespace.

    ``out_dir`` (default ``$TINYAE_TUTORIAL_OUT`` or tutorials/figures) receives
    the figures; ``quick=True`` sets ``TINYAE_QUICK=1`` for the run. Tracebacks
    name the Markdown file and its line. Returns the namespace, whose
    ``__asserts_run__[0]`` is the number of assert statements that ran.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import tinyae

    path = pathlib.Path(path)
    out_dir = pathlib.Path(out_dir or os.environ.get("TINYAE_TUTORIAL_OUT") or DEFAULT_FIGURES)
    out_dir.mkdir(parents=True, exist_ok=True)
    namespace = {"__name__": "__tutorial__", "__file__": str(path), "__asserts_run__": [0]}
    quick_flag = None if quick is None else ("1" if quick else "0")
    with _environment(TINYAE_TUTORIAL_OUT=str(out_dir.resolve()), TINYAE_QUICK=quick_flag,
                      MPLBACKEND="Agg"), tinyae.using_backend("numpy"):
        try:
            for first_line, code in code_blocks(path):
                exec(compile_counting_asserts(code, str(path), first_line), namespace)
        finally:
            plt.close("all")
    return namespace
