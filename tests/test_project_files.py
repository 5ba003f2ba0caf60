"""The set-up files agree: CI runs the README's test command, with what it needs pinned."""

import os
import re

from conftest import ROOT


def _read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts)) as file:
        return file.read()


def test_ci_runs_exactly_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)\n```", _read("README.md"), flags=re.S)
    test_command = blocks[1].strip()  # the second of the "two commands on a fresh machine"
    assert test_command.startswith("python -m pytest"), test_command
    ci_lines = _read(".ci", "run").splitlines()
    pytest_lines = [line for line in ci_lines if "pytest" in line and not line.startswith("#")]
    assert pytest_lines == [test_command]
    # The command's worker processes come from pytest-xdist, which requirements.txt must pin.
    if " -n " in test_command:
        assert re.search(r"^pytest-xdist==", _read("requirements.txt"), flags=re.M)
