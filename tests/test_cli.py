"""The `seq2seq` command line: its help and its not-yet-built subcommands."""

import subprocess
import sys

import pytest

from seq2seq.cli import NOT_BUILT, main

SUBCOMMANDS = ("translate", "transcribe", "prepare", "train", "evaluate", "export", "serve")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seq2seq", *args], capture_output=True, text=True, timeout=120
    )


def test_help_lists_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0
    for name in SUBCOMMANDS:
        assert name in result.stdout


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: seq2seq" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(NOT_BUILT))
def test_unbuilt_subcommand_says_so_and_exits_nonzero(name, capsys):
    assert main([name, "--model", "x"]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"seq2seq {name}: not built yet")
    assert error.count("\n") == 1


def test_unknown_subcommand_is_a_usage_error():
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
