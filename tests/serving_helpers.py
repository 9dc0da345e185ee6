"""Starting and stopping `seq2seq serve` for the tests, on free ports of 127.0.0.1."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A running `seq2seq serve`: its ports, URLs and log."""

    def __init__(self, process: subprocess.Popen, grpc_port: int, rest_port: int, log: Path):
        self.process = process
        self.grpc_port = grpc_port
        self.rest_port = rest_port
        self.log = log

    def rest(self, name: str) -> str:
        return f"http://127.0.0.1:{self.rest_port}/v1/models/{name}"

    def grpc(self, name: str) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}/{name}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextlib.contextmanager
def serving(*flags: str, log: Path, ready_model: str, timeout: float = 120) -> Iterator[Server]:
    """Runs `seq2seq serve FLAGS` until the block ends, once `ready_model` answers.

    Args:
        flags: the model flags (`--model_base_path ...` or `--model_config_file ...`).
        log: the file for the server's output.
        ready_model: a model whose status answering 200 means the server is up.
        timeout: seconds to wait for that.
    """
    grpc_port, rest_port = free_port(), free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "seq2seq", "serve",
                "--port", str(grpc_port), "--rest_api_port", str(rest_port),
                "--file_system_poll_wait_seconds", "0.5", *flags,
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    server = Server(process, grpc_port, rest_port, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"the server exited:\n{server.log_text()[-3000:]}"
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(server.rest(ready_model), timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, (
                f"the server is not up:\n{server.log_text()[-3000:]}"
            )
            time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
