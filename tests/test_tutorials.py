"""Every tutorial's code runs and its asserts hold (quick settings, figures into a tmp dir).

The tutorials derive each gradient and check the derivation against tinyae's backward
and a finite difference; running them here keeps the derivations true as the code changes.
"""
import os
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
    # Every figure the Markdown shows was written by the tutorial's own code.
    text = path.read_text(encoding="utf-8")
    for name in tutorials.figure_names(text):
        assert (tmp_path / name).is_file(), f"{path.name} shows figures/{name} but did not write it"


@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_checks_something(path):
    blocks = tutorials.code_blocks(path)
    assert blocks, f"{path.name} has no ```python block"
    assert any("assert" in code for _, code in blocks), f"{path.name} asserts nothing"


def test_code_blocks_keep_their_markdown_line_numbers(tmp_path):
    page = tmp_path / "99-example.md"
    page.write_text("# Title\n\ntext\n\n```python\nx = 1\n```\n\n```python\nassert x == 2\n```\n")
    assert tutorials.code_blocks(page) == [(6, "x = 1\n"), (10, "assert x == 2\n")]
    with pytest.raises(AssertionError) as error:
        tutorials.run_tutorial(page, out_dir=tmp_path)
    frames = traceback.extract_tb(error.value.__traceback__)
    assert (str(page), 10) in [(frame.filename, frame.lineno) for frame in frames]
