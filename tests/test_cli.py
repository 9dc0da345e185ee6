"""The `seq2seq` command line: its help and its not-yet-built subcommands."""

import subprocess
import sys

from seq2seq.cli import TENSORFLOW_STARTUP_NOISE, main

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


def test_tensorflow_start_up_noise_is_told_from_what_users_must_see():
    noise = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796397583.199911   32373 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1796397583.200293   32373 cudart_stub.cc:31] Could not find cuda drivers",
        "E0000 00:00:1796397586.242231   32373 cuda_platform.cc:52] failed call to cuInit",
        "E0000 00:00:1796408423.211248   27075 util.cc:131] oneDNN supports DT_INT64 only on "
        "platforms with AVX-512. Falling back to the default Eigen-based implementation.",
    ]
    kept = [
        "E0000 00:00:1796397586.242231   32373 op_kernel.cc:1830] OP_REQUIRES failed at save.cc",
        "seq2seq transcribe: a.wav: no such file",
        "/venv/lib/python3.11/site-packages/keras/src/foo.py:12: UserWarning: something",
    ]
    assert all(TENSORFLOW_STARTUP_NOISE.search(line) for line in noise)
    assert not any(TENSORFLOW_STARTUP_NOISE.search(line) for line in kept)
