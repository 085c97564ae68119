"""The ``mlops-kit`` command line: help for every command, argument errors."""

from __future__ import annotations

import pytest

from mlops_kit.cli import main


@pytest.mark.parametrize("argv, expected", [
    (["--help"], "check-notebooks"),
    (["evidence", "build", "--help"], "--quiz-answers"),
    (["grade", "--help"], "--min-score"),
    (["release", "--help"], "--out"),
    (["check-notebooks", "--help"], "--fix"),
])
def test_help_is_available_for_every_command(argv, expected, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 0 and expected in capsys.readouterr().out


@pytest.mark.parametrize("argv", [
    ["evidence", "build", "--chapters", "one"],
    ["evidence", "build", "--chapters", "0"],
    ["grade"],
    ["frobnicate"],
])
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and "usage:" in capsys.readouterr().err


def test_bad_values_are_one_line_errors(tmp_path, capsys):
    assert main(["evidence", "build", "--notebooks", str(tmp_path / "none")]) == 2
    assert main(["evidence", "build", "--notebooks", str(tmp_path), "--timeout", "0"]) == 2
    assert main(["check-notebooks", str(tmp_path / "missing.ipynb")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("mlops-kit: error:") for line in lines)
