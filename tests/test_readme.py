"""The README's Python examples: each block runs on its own (it imports what it uses), and
each pastes line by line into the standard interactive interpreter without an error.

A block fenced as ```python skip is an excerpt and not run; one fenced as
```python requires=dot needs Graphviz's dot (see conftest.py's requires marker).
"""

import code
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    """[(number, info words after ```python, code)] for every Python block of the README."""
    found = re.findall(r"^```python([^\n]*)\n(.*?)^```", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    return [(number, info.split(), block) for number, (info, block) in enumerate(found, 1)]


def block_params():
    params = []
    for number, info, block in python_blocks():
        if "skip" in info:
            continue
        marks = [pytest.mark.requires(word.split("=", 1)[1]) for word in info if word.startswith("requires=")]
        params.append(pytest.param(block, id=f"block{number}", marks=marks))
    return params


class Console(code.InteractiveConsole):
    """The standard interpreter's read-eval loop, keeping what it would print as errors."""

    def __init__(self):
        super().__init__({"__name__": "__console__"}, filename="<README paste>")
        self.errors = []

    def write(self, data):  # where InteractiveConsole prints tracebacks and syntax errors
        self.errors.append(data)


def test_the_readme_has_python_examples():
    assert len(block_params()) >= 7


@pytest.mark.parametrize("block", block_params())
def test_block_runs_on_its_own_and_pastes_into_the_interpreter(block, tmp_path, monkeypatch):
    # One run per block (some train or draw): pasted line by line into a fresh console,
    # which is the block alone in a fresh namespace, and stricter than running it as a
    # file (a blank line inside an indented block, or none after one, breaks a paste).
    compile(block, "README.md", "exec")  # and it is a valid script
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    console = Console()
    for line in block.splitlines():
        console.push(line)
        assert not console.errors, f"pasting stopped at {line!r}:\n{''.join(console.errors)}"
    console.push("")  # the blank line that ends a pasted block
    assert not console.errors, "".join(console.errors)
