"""Every Python code block of README.md and of the documentation (docs/**/*.md) runs as written.

A block is a fenced code block whose language is ``python``. Each runs alone, in a fresh
interpreter in an empty directory (so it must define the data it uses and may write files), with
this checkout first on the import path and the default backend. A block that needs a GPU or an
optional package says so on its first line, ``# needs a GPU: <why>`` or ``# needs onnx, pandas:
<why>``, and is skipped with that reason where CuPy has no usable device or a package is not
installed. New README sections and documentation pages are picked up without a change here.
"""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import anybackprop as ab

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$")
NEEDS = re.compile(r"^# needs (?P<what>[^:]+)(?::|$)")


def code_blocks(text):
    """``(line number, language, code)`` of each fenced block of Markdown ``text`` (CommonMark
    fences: three or more backticks or tildes, closed by a fence of the same kind at least as long)."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        language = opening["info"].split()[0].lower() if opening["info"].strip() else ""
        body, j = [], i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if (
                closing
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"]
            ):
                break
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        blocks.append((i + 1, language.strip("{}"), "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def python_blocks():
    found = []
    for source in SOURCES:
        for line, language, code in code_blocks(source.read_text(encoding="utf-8")):
            if language == "python":
                found.append(pytest.param(code, id=f"{source.relative_to(ROOT)}:{line}"))
    return found


def test_the_block_finder_reads_commonmark_fences():
    text = (
        "a\n```python\nx = 1\n```\n\n~~~~ {python}\ny = '```'\n~~~~\n"
        "````\n```python\n````\n  ```python\n  z = 2\n  ```\n"
    )
    assert code_blocks(text) == [
        (2, "python", "x = 1\n"),
        (6, "python", "y = '```'\n"),
        (9, "", "```python\n"),
        (12, "python", "z = 2\n"),
    ]


def test_the_readme_has_python_blocks_to_run():
    assert len([b for b in python_blocks() if b.id.startswith("README.md:")]) >= 4


@pytest.mark.parametrize("code", python_blocks())
def test_the_block_runs_as_written(code, tmp_path):
    needs = NEEDS.match(code.lstrip().splitlines()[0] if code.strip() else "")
    if needs and needs["what"].strip() == "a GPU":
        if "cupy" not in ab.available_backends():
            pytest.skip(f"the block needs a GPU (CuPy has no usable CUDA device here): {code.splitlines()[0]}")
    elif needs:
        missing = [name for name in needs["what"].replace(",", " ").split() if importlib.util.find_spec(name) is None]
        if missing:
            pytest.skip(f"the block needs {', '.join(missing)}, not installed here")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANYBACKPROP_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"the block failed:\n{code}\n--- stderr ---\n{result.stderr[-4000:]}"


def test_a_block_says_what_it_needs():
    assert NEEDS.match("# needs a GPU: CuPy")["what"] == "a GPU"
    assert NEEDS.match("# needs onnx, pandas: exports")["what"] == "onnx, pandas"
    assert NEEDS.match("# needs onnx")["what"] == "onnx"
    assert NEEDS.match("import anybackprop") is None
