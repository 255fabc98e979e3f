"""Every tutorial's code runs and its asserts hold (quick settings, figures into a tmp dir).

The tutorials derive each gradient and check the derivation against tinyae's backward
and a finite difference; running them here keeps the derivations true as the code changes.
"""
import os
import re
import pathlib
import subprocess
import sys
import traceback

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # tutorials/ sits beside the package; it is not installed
    sys.path.insert(0, str(ROOT))
import tutorials  # noqa: E402

TUTORIALS = tutorials.tutorial_files()
# Tutorials 10 on train models (minutes together): long reproductions, marked slow.
RUNS = [pytest.param(path, marks=pytest.mark.slow) if int(path.name[:2]) >= 10 else path
        for path in TUTORIALS]


def test_the_tutorials_are_found():
    names = [path.name for path in TUTORIALS]
    assert "01-autodiff.md" in names and len(names) >= 12, names


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs(path, tmp_path):
    # A fresh interpreter per tutorial, as `python -m tutorials NAME` runs it, so that the
    # seeds and settings a tutorial changes (nn.manual_seed, ...) cannot reach other tests.
    env = dict(os.environ, TINYAE_QUICK="1", TINYAE_TUTORIAL_OUT=str(tmp_path), MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, "-m", "tutorials", path.name], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{path.name} failed:\n{result.stdout}\n{result.stderr}"
    # The tutorial's asserts ran (counted as they run, not found in the text).
    checks = re.search(rf"^{re.escape(path.name)}\s+ok\s+(\d+) checks", result.stdout, re.M)
    assert checks and int(checks.group(1)) >= 3, f"{path.name} ran too few checks:\n{result.stdout}"
    # Every figure the Markdown shows was written by the tutorial's own code.
    text = path.read_text(encoding="utf-8")
    for name in tutorials.figure_names(text):
        assert (tmp_path / name).is_file(), f"{path.name} shows figures/{name} but did not write it"


def test_the_assert_counter_counts_asserts_that_ran(tmp_path):
    page = tmp_path / "98-count.md"
    page.write_text("```python\nfor i in range(4):\n    assert i >= 0\nif False:\n"
                    "    assert False\n```\n")
    assert tutorials.run_tutorial(page, out_dir=tmp_path)["__asserts_run__"] == [4]


def test_code_blocks_keep_their_markdown_line_numbers(tmp_path):
    page = tmp_path / "99-example.md"
    page.write_text("# Title\n\ntext\n\n```python\nx = 1\n```\n\n```python\nassert x == 2\n```\n")
    assert tutorials.code_blocks(page) == [(6, "x = 1\n"), (10, "assert x == 2\n")]
    with pytest.raises(AssertionError) as error:
        tutorials.run_tutorial(page, out_dir=tmp_path)
    frames = traceback.extract_tb(error.value.__traceback__)
    assert (str(page), 10) in [(frame.filename, frame.lineno) for frame in frames]


# ---------------------------------------------------------------- the tutorials as notebooks
# `jupytext --to ipynb tutorials/NN-name.md` makes each tutorial a notebook: one code cell
# per ```python block, one Markdown cell per stretch of prose (tutorials/README.md).
# The tests check that every tutorial converts to a valid notebook whose code cells are
# exactly the blocks the Markdown runner executes, so the Markdown runs above also run
# the notebooks' code; and, for a few fast tutorials, they execute the converted cells
# as a Jupyter kernel would (in tutorials/, no __file__) and count the asserts that ran.

NOTEBOOK_RUNS = ["02-broadcasting", "05-losses", "06-convolution"]

# Runs one tutorial in a fresh interpreter, from its Markdown blocks or from the cells of
# its converted notebook, with a counter after every assert statement; prints the count.
_COUNTING_RUNNER = r'''
import pathlib, sys
import matplotlib
matplotlib.use("Agg")
import jupytext
import tinyae
import tutorials


path, source = pathlib.Path(sys.argv[1]), sys.argv[2]
if source == "markdown":
    cells = tutorials.code_blocks(path)
    namespace = {"__name__": "__tutorial__", "__file__": str(path)}
else:
    notebook = jupytext.reads(path.read_text(encoding="utf-8"), fmt="md")
    cells = [(1, cell.source) for cell in notebook.cells if cell.cell_type == "code"]
    namespace = {"__name__": "__main__"}  # as in a Jupyter kernel: no __file__
namespace["__asserts_run__"] = [0]
with tinyae.using_backend("numpy"):
    for first_line, code in cells:
        exec(tutorials.compile_counting_asserts(code, str(path), first_line), namespace)
print("asserts run:", namespace["__asserts_run__"][0])
'''


def notebook_code_cells(path):
    jupytext = pytest.importorskip("jupytext", reason="jupytext is not installed (dev extra)")
    notebook = jupytext.reads(path.read_text(encoding="utf-8"), fmt="md")
    return notebook, [cell.source for cell in notebook.cells if cell.cell_type == "code"]


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_converts_to_a_notebook_with_the_same_code(path):
    notebook, cells = notebook_code_cells(path)
    nbformat = pytest.importorskip("nbformat")
    import jupytext
    nbformat.validate(nbformat.reads(jupytext.writes(notebook, fmt="ipynb"), as_version=4))
    blocks = [code for _, code in tutorials.code_blocks(path)]
    # jupytext drops a cell's final newline; otherwise the code is character for character
    assert [cell.rstrip("\n") for cell in cells] == [code.rstrip("\n") for code in blocks]
    assert any(cell.cell_type == "markdown" and "$" in cell.source for cell in notebook.cells)


def _count_asserts(path, source, tmp_path):
    env = dict(os.environ, TINYAE_QUICK="1", TINYAE_TUTORIAL_OUT=str(tmp_path / source),
               MPLBACKEND="Agg", PYTHONPATH=os.pathsep.join(
                   [str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    (tmp_path / source).mkdir()
    # The Markdown runner works from the repository root; a notebook from its own folder.
    cwd = ROOT if source == "markdown" else path.parent
    result = subprocess.run([sys.executable, "-c", _COUNTING_RUNNER, str(path), source],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{path.name} ({source}) failed:\n{result.stdout}\n{result.stderr}"
    return int(result.stdout.strip().splitlines()[-1].split(":")[1])


@pytest.mark.parametrize("name", NOTEBOOK_RUNS)
def test_converted_notebook_runs_the_same_asserts(name, tmp_path):
    pytest.importorskip("jupytext", reason="jupytext is not installed (dev extra)")
    path = tutorials.TUTORIALS_DIR / f"{name}.md"
    from_notebook = _count_asserts(path, "notebook", tmp_path)
    from_markdown = _count_asserts(path, "markdown", tmp_path)
    assert from_notebook == from_markdown > 5


def test_quotes_fails_when_the_code_no_longer_says_so():
    from tutorials.source import quotes
    assert "def quotes" in quotes(tutorials.source.quotes, "inspect.getsource(obj)")
    with pytest.raises(AssertionError, match="no longer says so"):
        quotes(tutorials.source.quotes, "a line that is not there")
