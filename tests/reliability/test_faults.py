"""Faults: `kill -9` in the middle of `seq2seq export` and `seq2seq prepare translate`,
corrupt checkpoints and SavedModels, and bad `seq2seq serve` configurations.

- A killed export never leaves a numeric version directory that is not a complete
  SavedModel (what a polling server would load), and the rerun writes the next version.
- A killed `prepare translate` leaves no manifest that vouches for incomplete files, and
  the rerun writes what an uninterrupted run writes.
- Corrupt inputs are refused with exit status 2 and one error line that names the file,
  and no traceback.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sentencepiece import sentencepiece_model_pb2

from conftest import run_seq2seq
from seq2seq.cli import main
from seq2seq.export import resolve_model_dir
from seq2seq.serving.servables import read_signature_defs


def the_error(stderr: str, prog: str) -> str:
    """The program's error: the one line of stderr that starts with `prog:`, which must
    be the last line (TensorFlow's start-up lines may come before it), and no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(f"{prog}: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr[-3000:]
    return errors[0]


def kill_when(processes: dict[str, tuple[subprocess.Popen, Callable[[], bool]]]) -> set[str]:
    """Sends SIGKILL to each process as soon as its condition holds (polled every 5 ms).

    Returns:
        The names of the processes killed (the others ended on their own first).
    """
    killed = set()
    running = dict(processes)
    while running:
        for name, (process, condition) in list(running.items()):
            if process.poll() is not None:
                del running[name]
            elif condition():
                process.send_signal(signal.SIGKILL)
                process.wait()
                killed.add(name)
                del running[name]
        time.sleep(0.005)
    return killed


def seq2seq_process(*args: str, log: Path) -> subprocess.Popen:
    with log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "seq2seq", *args], stdout=output, stderr=subprocess.STDOUT
        )


def relative_files(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*"))


# --- kill -9 during export -----------------------------------------------------------------


def served_versions(base: Path, complete: Path) -> list[int]:
    """The numeric version directories of `base`, which a polling server would load, each
    checked to be a complete SavedModel: the files of `complete`, none empty, and a
    `saved_model.pb` that parses."""
    versions = []
    for child in base.iterdir():
        if child.name.isdigit():
            assert relative_files(child) == relative_files(complete), child
            assert all(path.stat().st_size for path in child.rglob("*") if path.is_file())
            assert "serving_default" in read_signature_defs(child)
            versions.append(int(child.name))
    return sorted(versions)


def test_export_killed_at_any_moment_leaves_no_partial_version(tiny_run, tiny_export, tmp_path):
    base = tmp_path / "models" / tiny_export.name
    shutil.copytree(tiny_export / "1", base / "1")
    start = time.monotonic()

    def after(seconds: float) -> Callable[[subprocess.Popen], Callable[[], bool]]:
        return lambda process: lambda: time.monotonic() - start > seconds

    def written(*parts: str) -> Callable[[subprocess.Popen], Callable[[], bool]]:
        temporary = ".export-tmp-{}"  # where `seq2seq export` writes before the rename
        return lambda process: base.joinpath(temporary.format(process.pid), *parts).exists

    # Four exports at once, each killed at its own moment.
    moments = {
        "0.5 s in: starting Python": after(0.5),
        "2 s in: importing TensorFlow": after(2.0),
        "writing the SavedModel": written(),
        "checking it (warm-up requests written)": written(
            "assets.extra", "tf_serving_warmup_requests"
        ),
    }
    args = ("export", "--run", str(tiny_run), "--model-base-path", str(base))
    processes = {}
    for index, (name, condition) in enumerate(moments.items()):
        process = seq2seq_process(*args, log=tmp_path / f"{index}.log")
        processes[name] = (process, condition(process))
    killed = kill_when(processes)
    logs = {name: (tmp_path / f"{i}.log").read_text() for i, name in enumerate(moments)}
    assert killed == set(moments), {name: logs[name][-2000:] for name in set(moments) - killed}

    # What a polling server sees: version 1 only, complete; the rest is hidden.
    assert served_versions(base, tiny_export / "1") == [1]
    assert resolve_model_dir(base) == base / "1"
    assert all(
        child.name.startswith(".export-tmp-") for child in base.iterdir() if child.name != "1"
    )

    # The rerun, in this process (TensorFlow is loaded here already).
    assert main(["export", "--run", str(tiny_run), "--model-base-path", str(base)]) == 0
    assert served_versions(base, tiny_export / "1") == [1, 2]
    assert sorted(child.name for child in base.iterdir()) == ["1", "2"]  # debris cleared


# --- kill -9 during prepare translate --------------------------------------------------------


def corpus_files(directory: Path) -> dict[str, object]:
    """What a prepared corpus holds, less what differs between identical runs: the
    manifest's time stamps and the scratch directory that SentencePiece records."""
    files = {}
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue  # hidden: the temporary files of a killed run
        if path.name == "manifest.json":
            manifest = json.loads(path.read_text(encoding="utf-8"))
            files[path.name] = {
                k: v for k, v in manifest.items() if k not in ("created", "seconds")
            }
        elif path.name == "spm.model":
            model = sentencepiece_model_pb2.ModelProto.FromString(path.read_bytes())
            model.trainer_spec.ClearField("model_prefix")
            files[path.name] = model.SerializeToString(deterministic=True)
        else:
            files[path.name] = path.read_bytes()
    return files


def test_prepare_killed_at_any_moment_then_rerun_gives_the_same_corpus(tiny_corpus, tmp_path):
    tsv = tmp_path / "corpus.tsv"
    tsv.write_bytes((tiny_corpus / "train.tsv").read_bytes() * 10)  # 6000 lines: ~1 s of work
    args = ["prepare", "translate", "--tsv", str(tsv), "--vocab-size", "64"]
    began = time.monotonic()
    reference = run_seq2seq(*args, "--data-dir", str(tmp_path / "reference"))
    seconds = time.monotonic() - began
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = corpus_files(tmp_path / "reference" / "translate-en-fr")

    out = tmp_path / "killed" / "translate-en-fr"
    started = {}

    def after(fraction: float) -> Callable[[subprocess.Popen], Callable[[], bool]]:
        return lambda process: lambda: time.monotonic() - started[process.pid] > fraction * seconds

    def rewritten(name: str) -> Callable[[subprocess.Popen], Callable[[], bool]]:
        def condition(process: subprocess.Popen) -> Callable[[], bool]:
            since, path = time.time_ns(), out / name
            temporary = out / f".{name}.{process.pid}.tmp"  # how atomic_file writes it
            return lambda: (
                temporary.exists() or (path.exists() and path.stat().st_mtime_ns >= since)
            )

        return condition

    def spm_training(process: subprocess.Popen) -> Callable[[], bool]:
        before = set(out.glob(".spm.*"))
        return lambda: bool(set(out.glob(".spm.*")) - before)

    # One after another on the same directory (--force: each starts over), each run
    # killed at its own moment.
    moments = {
        "writing the splits": rewritten("train.tsv"),
        "training SentencePiece": spm_training,
        "after spm.model, before manifest.json": rewritten("spm.model"),
        **{
            f"{fraction:.0%} of an uninterrupted run": after(fraction)
            for fraction in (0.2, 0.5, 0.7, 0.85)
        },
    }
    killed = set()
    for index, (name, condition) in enumerate(moments.items()):
        process = seq2seq_process(
            *args, "--force", "--data-dir", str(out.parent), log=tmp_path / f"{index}.log"
        )
        started[process.pid] = time.monotonic()
        killed |= kill_when({name: (process, condition(process))})
        # A manifest vouches only for complete files.
        if (out / "manifest.json").exists():
            assert corpus_files(out) == expected, name
    assert len(killed) >= 3, f"only {sorted(killed)} were killed before they finished"

    rerun = run_seq2seq(*args, "--data-dir", str(out.parent))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert corpus_files(out) == expected


# --- corrupt checkpoints and SavedModels ----------------------------------------------------


@pytest.mark.parametrize(
    "corrupt",
    [lambda data: data[: len(data) // 2], lambda data: b"", lambda data: b"not HDF5" * 100],
    ids=["truncated", "empty", "garbage"],
)
def test_export_of_a_corrupt_checkpoint_is_a_one_line_error(tiny_run, tmp_path, capfd, corrupt):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.yaml", "spm.model"):
        shutil.copy(tiny_run / name, run / name)
    weights = run / "best.weights.h5"
    weights.write_bytes(corrupt((tiny_run / "best.weights.h5").read_bytes()))
    base = tmp_path / "models" / "m"
    assert main(["export", "--run", str(run), "--model-base-path", str(base)]) == 2
    assert str(weights) in the_error(capfd.readouterr().err, "seq2seq export")
    assert not base.exists()


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    "damaged",
    ["saved_model.pb", "variables/variables.data-00000-of-00001", "variables/variables.index"],
)
def test_a_corrupt_savedmodel_is_a_one_line_error(
    tiny_export, tiny_corpus, tmp_path, capfd, damaged
):
    model = tmp_path / "model"
    shutil.copytree(tiny_export / "1", model)
    truncate(model / damaged)
    assert main(["translate", "--model", str(model), "the red cat ."]) == 2
    assert str(model) in the_error(capfd.readouterr().err, "seq2seq translate")
    assert main(["evaluate", "--model", str(model), "--data", str(tiny_corpus)]) == 2
    assert str(model) in the_error(capfd.readouterr().err, "seq2seq evaluate")


# --- bad serve configurations ---------------------------------------------------------------


def test_bad_serve_configurations_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty"  # a base path without versions: nothing to load
    empty.mkdir()
    missing = tmp_path / "missing"

    def file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    unparsable = file("unparsable.config", "model_config_list { config { name: 'x' ")
    not_a_dir = file(
        "not-a-dir.config", f'model_config_list {{ config {{ name: "m" base_path: "{missing}" }} }}'
    )
    no_models = file("no-models.config", "model_config_list {}")
    bad_batching = file("bad.batching", "max_batch_size { value: -4 }")
    unknown_batching = file("unknown.batching", "max_batch_siz { value: 4 }")
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = str(taken.getsockname()[1])
    # Ports 0 where the error is elsewhere: were it not found, the server would stop at
    # "nothing to serve on", not run.
    base = ["--model_base_path", str(empty), "--port", "0", "--rest_api_port", "0"]
    config = ["--port", "0", "--rest_api_port", "0", "--model_config_file"]
    cases = {
        "missing config": ([*config, str(missing)], [str(missing)]),
        "unparsable config": ([*config, str(unparsable)], [str(unparsable)]),
        "base_path not a directory": ([*config, str(not_a_dir)], [str(not_a_dir), str(missing)]),
        "no models": ([*config, str(no_models)], [str(no_models)]),
        "model_base_path not a directory": (
            ["--model_base_path", str(missing), "--port", "0", "--rest_api_port", "0"],
            [str(missing)],
        ),
        "missing batching file": (
            [*base, "--batching_parameters_file", str(missing)],
            [str(missing)],
        ),
        "negative batch size": (
            [*base, "--batching_parameters_file", str(bad_batching)],
            [str(bad_batching), "max_batch_size"],
        ),
        "unknown batching field": (
            [*base, "--batching_parameters_file", str(unknown_batching)],
            [str(unknown_batching)],
        ),
        "gRPC port taken": ([*base[:2], "--port", port, "--rest_api_port", "0"], [port]),
        "REST port taken": ([*base[:2], "--port", "0", "--rest_api_port", port], [port]),
    }
    processes = {}
    try:
        for name, (flags, _) in cases.items():  # all at once: two of them load TensorFlow
            processes[name] = subprocess.Popen(
                [sys.executable, "-m", "seq2seq", "serve", *flags],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        for name, process in processes.items():
            _, stderr = process.communicate(timeout=300)
            assert process.returncode == 2, (name, stderr[-3000:])
            error = the_error(stderr, "seq2seq serve")
            assert all(word in error for word in cases[name][1]), (name, error)
    finally:
        taken.close()
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
