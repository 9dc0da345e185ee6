"""The `seq2seq` command line: its help and its not-yet-built subcommands."""

import subprocess
import sys

from seq2seq.cli import main

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


def test_unknown_subcommand_is_a_usage_error():
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
