"""Benchmark and load test: `seq2seq serve` under concurrent load, REST and gRPC,
batching off against batching on, and the model called in-process as the no-server peer.

For each server configuration (`--batching off,on`) one `seq2seq serve` process is
started on free ports of 127.0.0.1 with the model of `--model`; against it, for each
protocol (`--protocols rest,grpc`), `--concurrency` client threads (one client each,
the project's `RestClient` / `GrpcClient` with no retries, so every failure counts)
send one English sentence per request to `--signature` for `--warmup` seconds, then
for `--duration` measured seconds. Every request's latency and error is recorded, and
the server's RSS is sampled from /proc/PID/status. Then the same model is loaded in
this process (`SavedModelTranslator`) and run on the same sentences for
`--inprocess-duration` seconds each: one per call, one per call from two threads at
once (what the unbatched server's two predict threads do), and 32 per call. Their
ratio, `inprocess_batching_ceiling` (32 per call over two threads of one), is the most
batching could gain at concurrency 32 with a server that cost nothing.

Sentences are the first column of data/translate-en-fr/test-bible.tsv when it exists,
else a built-in list. Throughput counts the requests that completed inside the
measured window; latencies are those of the requests started inside it. Prints one
JSON object on stdout (progress on stderr) and exits 1 when any request failed.

    .venv/bin/python bench/serving.py                      # 60 s, concurrency 32, beam 5
    .venv/bin/python bench/serving.py --duration 5 --concurrency 8 --signature greedy
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import platform
import re
import resource
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import requests  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent

from seq2seq.client import GrpcClient, RestClient  # noqa: E402

SENTENCES_TSV = "data/translate-en-fr/test-bible.tsv"
FALLBACK_SENTENCES = (
    "God is love.",
    "The cat sees a dog.",
    "Where is the station?",
    "I would like a cup of coffee, please.",
    "The king sent his servants to the city.",
    "She opened the door and walked into the garden.",
    "We will leave tomorrow morning at dawn.",
    "Do not be afraid, for I am with you.",
    "The army marched north through the forest.",
    "How many soldiers are left?",
    "My brother lives in a small house near the river.",
    "The children were playing in the street.",
    "He who has ears to hear, let him hear.",
    "Our scouts report orcs to the east.",
    "It is raining again today.",
    "Can you help me find my keys?",
    "The old man told the story of the great war.",
    "They built a wall around the city.",
    "Your gold is running low; recruit wisely.",
    "The bridge was destroyed during the night.",
    "Blessed are the poor in spirit.",
    "I have never seen such a beautiful sunset.",
    "The merchants came from the west with silk and spices.",
    "We must defend the castle until reinforcements arrive.",
    "Why did you not tell me the truth?",
    "The teacher asked the students to read the first chapter.",
    "A wise son makes a glad father.",
    "The ship sailed across the sea to a distant island.",
    "Move your units to the hills.",
    "In the beginning God created the heavens and the earth.",
    "The dragon sleeps beneath the mountain.",
    "Please close the window; it is cold.",
    "The people rejoiced when they heard the news.",
    "He took the bread, gave thanks, and broke it.",
    "The elves will not fight for us.",
    "We need more wood to build the boats.",
    "The queen's guards stood at the gate.",
    "Love your neighbour as yourself.",
    "The road to the capital is long and dangerous.",
    "I do not know what you are talking about.",
    "The harvest was good this year.",
    "Victory: defeat all enemy leaders.",
    "The prophet spoke to the people in the temple.",
    "Turns run out: the enemy reinforcements arrive.",
    "She wrote a letter to her mother every week.",
    "The wind blew hard all night long.",
    "Let there be light.",
    "The wolves are hunting in the valley below.",
    "He was tired, so he went to bed early.",
    "Peace be with you.",
)


LOGGED_PROBLEM = re.compile(r"\d{4}-\d\d-\d\d [\d:,]+ (WARNING|ERROR|CRITICAL) |Traceback ")


def log(message: str) -> None:
    print(f"[serving bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def repo_path(path: str) -> Path:
    """`path` as given when it exists, else relative to the repository root."""
    given = Path(path)
    return given if given.exists() or given.is_absolute() else ROOT / given


def load_sentences() -> tuple[list[str], str]:
    path = repo_path(SENTENCES_TSV)
    if path.is_file():
        with path.open(encoding="utf-8") as lines:
            sentences = [line.split("\t", 1)[0].strip() for line in lines]
        sentences = [sentence for sentence in sentences if sentence]
        if sentences:
            return sentences, str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    return list(FALLBACK_SENTENCES), "built-in list"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------- server process


def proc_status_kb(pid: int, field: str) -> int | None:
    """A `VmRSS`/`VmHWM` line of /proc/PID/status in kB; None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (/proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def mb(kb: int | None) -> float | None:
    return None if kb is None else round(kb / 1024, 1)


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds on a thread."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid = pid
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = proc_status_kb(self.pid, "VmRSS")
            if rss is not None:
                self.samples.append((time.monotonic(), rss))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def between(self, start: float, end: float) -> list[int]:
        return [rss for when, rss in self.samples if start <= when <= end]


class Server:
    """A `seq2seq serve` subprocess on free ports, stopped by `stop()`."""

    def __init__(self, model: Path, model_name: str, batching_file: Path | None, log_path: Path):
        self.model_name = model_name
        self.grpc_port, self.rest_port = free_port(), free_port()
        self.log_path = log_path
        self.command = [
            sys.executable, "-m", "seq2seq", "serve",
            "--port", str(self.grpc_port), "--rest_api_port", str(self.rest_port),
            "--model_name", model_name, "--model_base_path", str(model),
        ]  # fmt: skip
        if batching_file is not None:
            self.command += ["--enable_batching", "--batching_parameters_file", str(batching_file)]
        with log_path.open("w") as output:
            self.process = subprocess.Popen(
                self.command, stdout=output, stderr=subprocess.STDOUT, cwd=ROOT
            )
        self.pid = self.process.pid

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}/v1/models/{self.model_name}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}/{self.model_name}"

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def wait_ready(self, timeout: float) -> float:
        """Waits until the model's status answers 200; returns the seconds it took."""
        start = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(self.rest_url, timeout=5).status_code == 200:
                    return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise RuntimeError(
                    f"the server is not up after {timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.25)

    def log_problems(self) -> dict:
        """Counts of the server's own WARNING/ERROR log lines and tracebacks (not
        TensorFlow's start-up noise), and the first few of them."""
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        problems = [line for line in lines if LOGGED_PROBLEM.match(line)]
        return {"lines": len(problems), "first": problems[:5]}

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 30 s; returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log(f"server {self.pid} did not stop in 30 s; killing it")
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def write_batching_file(path: Path, args: argparse.Namespace) -> str:
    text = (
        f"max_batch_size {{ value: {args.max_batch_size} }}\n"
        f"batch_timeout_micros {{ value: {args.batch_timeout_micros} }}\n"
        f"num_batch_threads {{ value: {args.num_batch_threads} }}\n"
    )
    path.write_text(text, encoding="utf-8")
    return text


# ---------------------------------------------------------------- load


class Record:
    __slots__ = ("start", "end", "error")

    def __init__(self, start: float, end: float, error: str | None):
        self.start, self.end, self.error = start, end, error


def make_client(protocol: str, server: Server, timeout: float):
    if protocol == "rest":
        return RestClient(server.rest_url, timeout=timeout, retries=0)
    return GrpcClient(server.grpc_url, timeout=timeout, retries=0)


def one_request(client, sentence: str, signature: str) -> None:
    outputs = client.predict({"text": [sentence]}, signature_name=signature)
    text = outputs.get("text")
    if text is None or np.shape(text) != (1,):
        raise ValueError(f"unexpected answer: outputs {sorted(outputs)}, text {np.shape(text)}")


def run_load(protocol: str, server: Server, sentences: list[str], args: argparse.Namespace) -> dict:
    """`args.concurrency` threads sending requests for warm-up + duration seconds."""
    clients = []
    for _ in range(args.concurrency):
        client = make_client(protocol, server, args.timeout)
        names = client.signature_names()  # also caches the metadata (RestClient needs it)
        if args.signature not in names:
            raise ValueError(f"the model has no signature {args.signature!r} (it has {names})")
        clients.append(client)
    # The first call connects and imports; it is not a load request: no short timeout.
    first = make_client(protocol, server, args.startup_timeout)
    one_request(first, sentences[0], args.signature)
    if isinstance(first, GrpcClient):
        first.close()

    records: list[list[Record]] = [[] for _ in clients]
    barrier = threading.Barrier(len(clients) + 1)
    times: dict[str, float] = {}

    def worker(index: int) -> None:
        client, mine = clients[index], records[index]
        position = index * len(sentences) // len(clients)  # threads start spread out
        barrier.wait()
        stop_at = times["stop"]
        while True:
            start = time.monotonic()
            if start >= stop_at:
                return
            error = None
            try:
                one_request(client, sentences[position % len(sentences)], args.signature)
            except Exception as failure:  # every failure is a result here
                error = f"{type(failure).__name__}: {failure}"[:300]
            mine.append(Record(start, time.monotonic(), error))
            position += 1

    threads = [
        threading.Thread(target=worker, args=(index,), name=f"client-{index}", daemon=True)
        for index in range(len(clients))
    ]
    for thread in threads:
        thread.start()
    cpu_before = proc_cpu_seconds(server.pid)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    with RssSampler(server.pid) as sampler:
        now = time.monotonic()
        times["begin"] = now
        times["measure"] = now + args.warmup
        times["stop"] = now + args.warmup + args.duration
        barrier.wait()
        measure_rss = None
        cpu_measure, self_measure = cpu_before, self_before
        while any(thread.is_alive() for thread in threads):
            if measure_rss is None and time.monotonic() >= times["measure"]:
                measure_rss = proc_status_kb(server.pid, "VmRSS")
                cpu_measure = proc_cpu_seconds(server.pid)
                self_measure = resource.getrusage(resource.RUSAGE_SELF)
                log(f"  {protocol}: warm-up done, measuring {args.duration:g} s")
            time.sleep(0.05)
        finished = time.monotonic()
    cpu_after = proc_cpu_seconds(server.pid)
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    for client in clients:
        if isinstance(client, GrpcClient):
            client.close()

    flat = [record for mine in records for record in mine]
    measure, stop = times["measure"], times["stop"]
    warmup_records = [record for record in flat if record.start < measure]
    measured = [record for record in flat if record.start >= measure]
    completed_in_window = [
        record for record in flat if record.error is None and measure <= record.end <= stop
    ]
    ok = [record for record in measured if record.error is None]
    latencies = np.array([record.end - record.start for record in ok]) * 1e3
    errors = collections.Counter(record.error for record in flat if record.error is not None)
    window_rss = sampler.between(measure, finished)
    timeline = sampler.between(measure, finished)
    step = max(1, len(timeline) // 10)
    throughput = len(completed_in_window) / args.duration

    def percentile(q: float) -> float | None:
        return round(float(np.percentile(latencies, q)), 1) if len(latencies) else None

    def cpu(before, after) -> float | None:
        return None if before is None or after is None else round(after - before, 1)

    server_cpu = cpu(cpu_measure, cpu_after)
    client_cpu = (self_after.ru_utime + self_after.ru_stime) - (
        self_measure.ru_utime + self_measure.ru_stime
    )
    measured_seconds = finished - measure
    return {
        "requests": len(measured),
        "errors": sum(1 for record in measured if record.error is not None),
        "warmup_requests": len(warmup_records),
        "warmup_errors": sum(1 for record in warmup_records if record.error is not None),
        "error_messages": dict(errors.most_common(5)),
        "completed_in_window": len(completed_in_window),
        "requests_per_second": round(throughput, 2),
        "sentences_per_second": round(throughput, 2),  # one sentence per request
        "latency_ms": {
            "mean": round(float(latencies.mean()), 1) if len(latencies) else None,
            "p50": percentile(50),
            "p90": percentile(90),
            "p99": percentile(99),
            "max": round(float(latencies.max()), 1) if len(latencies) else None,
        },
        "drain_seconds": round(finished - stop, 2),
        "server_rss_mb": {
            "start": mb(measure_rss),
            "end": mb(window_rss[-1] if window_rss else None),
            "peak_sampled": mb(max(window_rss) if window_rss else None),
            "timeline": [mb(rss) for rss in timeline[::step]],
            "timeline_every_s": round(step * sampler.interval, 1),
            "vm_hwm": mb(proc_status_kb(server.pid, "VmHWM")),
        },
        "server_cpu_seconds": server_cpu,
        "server_cpu_cores_busy": (
            round(server_cpu / measured_seconds, 2) if server_cpu is not None else None
        ),
        "client_cpu_cores_busy": round(client_cpu / measured_seconds, 2),
    }


def bench_server(
    batching: str,
    model: Path,
    sentences: list[str],
    args: argparse.Namespace,
    workdir: Path,
) -> dict:
    batching_file, batching_text = None, None
    if batching == "on":
        batching_file = workdir / "batching.config"
        batching_text = write_batching_file(batching_file, args)
    server = Server(model, model.name, batching_file, workdir / f"serve-batching-{batching}.log")
    result: dict = {"server_command": shlex.join(server.command)}
    if batching_text:
        result["batching_parameters"] = batching_text
    try:
        log(f"batching {batching}: starting the server (pid {server.pid})")
        result["startup_seconds"] = round(server.wait_ready(args.startup_timeout), 1)
        result["server_rss_mb_when_ready"] = mb(proc_status_kb(server.pid, "VmRSS"))
        for protocol in args.protocols:
            log(
                f"batching {batching}, {protocol}: {args.concurrency} clients, "
                f"{args.warmup:g} s warm-up + {args.duration:g} s"
            )
            try:
                result[protocol] = run_load(protocol, server, sentences, args)
            except Exception as error:  # e.g. the server died: reported, not fatal
                result[protocol] = {"failed": f"{type(error).__name__}: {error}"[:500]}
                log(f"  {protocol}: failed: {result[protocol]['failed']}")
            else:
                summary = result[protocol]
                log(
                    f"  {protocol}: {summary['requests']} requests, {summary['errors']} errors, "
                    f"{summary['requests_per_second']} req/s, "
                    f"p50 {summary['latency_ms']['p50']} ms, p99 {summary['latency_ms']['p99']} ms"
                )
            if server.process.poll() is not None:
                result["server_died"] = server.log_tail()
                break
        result["server_vm_hwm_mb"] = mb(proc_status_kb(server.pid, "VmHWM"))
    except RuntimeError as error:
        result["failed"] = str(error)
    finally:
        result["server_exit_status"] = server.stop()
        result["server_log_warnings_errors"] = server.log_problems()
    return result


# ---------------------------------------------------------------- in-process peer


# (threads, sentences per call) of the in-process peer. Two threads of one sentence are
# what the unbatched server does with its two predict threads; one call of 32 is a
# batching server with no overhead, so their ratio bounds what batching can gain.
INPROCESS_RUNS = ((1, 1), (2, 1), (1, 32))


def bench_inprocess(model: Path, sentences: list[str], args: argparse.Namespace) -> dict:
    """The same model in this process, no server: `INPROCESS_RUNS`, one after another."""
    from seq2seq.inference import SavedModelTranslator

    log(f"in-process: loading {model}")
    translator = SavedModelTranslator.load(model)
    function = translator.signatures[args.signature]
    result = {"model_dir": str(translator.model_dir)}
    for threads, per_call in INPROCESS_RUNS:
        batches = [sentences[i : i + per_call] for i in range(0, len(sentences), per_call)]
        for batch in batches[:2]:  # warm-up
            function(text=np.array(batch, dtype=object))
        log(
            f"in-process: {per_call} sentence(s) per call on {threads} thread(s) "
            f"for {args.inprocess_duration:g} s"
        )
        name = f"{per_call}_per_call" + (f"_{threads}_threads" if threads > 1 else "")
        result[name] = _inprocess_load(function, batches, threads, args.inprocess_duration)
    return result


def _inprocess_load(function, batches: list[list[str]], threads: int, duration: float) -> dict:
    """Calls `function` on `batches` in turn from `threads` threads for `duration` s."""
    latencies: list[float] = []
    sentences = [0] * threads
    start = time.monotonic()

    def worker(index: int) -> None:
        for call in range(index, sys.maxsize, threads):
            if time.monotonic() - start >= duration:
                return
            batch = batches[call % len(batches)]
            call_start = time.monotonic()
            function(text=np.array(batch, dtype=object))["text"].numpy()
            latencies.append(time.monotonic() - call_start)  # list.append is thread-safe
            sentences[index] += len(batch)

    workers = [threading.Thread(target=worker, args=(index,)) for index in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.monotonic() - start
    return {
        "calls": len(latencies),
        "sentences": sum(sentences),
        "sentences_per_second": round(sum(sentences) / elapsed, 2),
        "call_ms_p50": round(1e3 * float(np.median(latencies)), 1),
    }


# ---------------------------------------------------------------- report


def ratios(report: dict, protocols: list[str], inprocess: dict | None) -> dict:
    out: dict = {}
    runs = report["runs"]
    for protocol in protocols:
        off = runs.get("batching_off", {}).get(protocol, {})
        on = runs.get("batching_on", {}).get(protocol, {})
        if off.get("requests_per_second") and on.get("requests_per_second"):
            lat_off, lat_on = off["latency_ms"], on["latency_ms"]
            out[f"{protocol}_batching_on_vs_off"] = {
                "throughput": round(on["requests_per_second"] / off["requests_per_second"], 2),
                "p50_latency": round(lat_on["p50"] / lat_off["p50"], 2),
                "p99_latency": round(lat_on["p99"] / lat_off["p99"], 2),
            }
        if inprocess and "1_per_call" in inprocess:
            peer = inprocess["1_per_call"]["sentences_per_second"]
            for batching, run in (("off", off), ("on", on)):
                if run.get("sentences_per_second"):
                    out[f"{protocol}_batching_{batching}_vs_inprocess_1_per_call"] = round(
                        run["sentences_per_second"] / peer, 2
                    )
    if inprocess and "1_per_call_2_threads" in inprocess and "32_per_call" in inprocess:
        out["inprocess_batching_ceiling"] = round(
            inprocess["32_per_call"]["sentences_per_second"]
            / inprocess["1_per_call_2_threads"]["sentences_per_second"],
            2,
        )
    return out


def csv_choice(allowed: tuple[str, ...]):
    def parse(value: str) -> list[str]:
        items = [item.strip() for item in value.split(",") if item.strip()]
        bad = [item for item in items if item not in allowed]
        if not items or bad:
            raise argparse.ArgumentTypeError(
                f"{value!r}: give a comma-separated list of {', '.join(allowed)}"
            )
        return list(dict.fromkeys(items))

    return parse


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog="Example (the issue #4/#6 load test): .venv/bin/python bench/serving.py",
    )
    parser.add_argument(
        "--model",
        default="saved_models/translate-en-fr",
        help="TF Serving model base path (its highest version is served; the directory "
        "name is the model name) (default: saved_models/translate-en-fr)",
    )
    parser.add_argument(
        "--duration", type=float, default=60, help="measured seconds per run (default: 60)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=5,
        help="seconds of the same load before each measurement, not measured (default: 5)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="client threads per run (default: 32)"
    )
    parser.add_argument(
        "--signature",
        default="serving_default",
        help="signature to call: serving_default (beam 5), greedy, beam_N "
        "(default: serving_default)",
    )
    parser.add_argument(
        "--protocols",
        type=csv_choice(("rest", "grpc")),
        default=["rest", "grpc"],
        help="comma-separated: rest, grpc (default: rest,grpc)",
    )
    parser.add_argument(
        "--batching",
        type=csv_choice(("off", "on")),
        default=["off", "on"],
        help="server configurations, comma-separated: off, on (default: off,on)",
    )
    parser.add_argument(
        "--max-batch-size", type=int, default=32, help="batching: max_batch_size (default: 32)"
    )
    parser.add_argument(
        "--batch-timeout-micros",
        type=int,
        default=5000,
        help="batching: batch_timeout_micros (default: 5000)",
    )
    parser.add_argument(
        "--num-batch-threads",
        type=int,
        default=2,
        help="batching: num_batch_threads (default: 2)",
    )
    parser.add_argument(
        "--inprocess-duration",
        type=float,
        default=20,
        help="seconds of each in-process peer (1 per call, 1 per call on 2 threads, "
        "32 per call); 0: skip it (default: 20)",
    )
    parser.add_argument(
        "--timeout", type=float, default=120, help="seconds a request may take (default: 120)"
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=300,
        help="seconds to wait for a server to load the model (default: 300)",
    )
    args = parser.parse_args()
    if args.concurrency < 1 or args.duration <= 0 or args.warmup < 0:
        parser.error("--concurrency must be >= 1, --duration > 0, --warmup >= 0")

    model = repo_path(args.model).resolve()
    if not model.is_dir():
        parser.error(f"--model {args.model}: not a directory")
    import tensorflow as tf  # after the flags: --help stays fast

    from seq2seq.export import resolve_model_dir
    from seq2seq.serving.servables import read_signature_defs

    try:
        signatures = sorted(
            name
            for name in read_signature_defs(resolve_model_dir(model))
            if not name.startswith("__")
        )
    except (OSError, ValueError) as error:
        parser.error(f"--model {args.model}: {error}")
    if args.signature not in signatures:
        parser.error(f"--signature {args.signature}: the model has {', '.join(signatures)}")
    sentences, sentences_from = load_sentences()

    report: dict = {
        "benchmark": "serving",
        "command": shlex.join([sys.executable, *sys.argv]),
        "machine": {
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
        },
        "model": str(model.relative_to(ROOT) if model.is_relative_to(ROOT) else model),
        "signature": args.signature,
        "concurrency": args.concurrency,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "sentences": {
            "from": sentences_from,
            "count": len(sentences),
            "mean_chars": round(float(np.mean([len(s) for s in sentences])), 1),
        },
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as workdir:
        for batching in args.batching:
            report["runs"][f"batching_{batching}"] = bench_server(
                batching, model, sentences, args, Path(workdir)
            )
    inprocess = None
    if args.inprocess_duration > 0:
        inprocess = bench_inprocess(model, sentences, args)
        report["inprocess"] = inprocess
    report["ratios"] = ratios(report, args.protocols, inprocess)
    report["machine"]["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]

    failed = []
    for name, run in report["runs"].items():
        if "failed" in run or "server_died" in run:
            failed.append(f"{name}: server failed")
        for protocol in args.protocols:
            result = run.get(protocol, {})
            if "failed" in result or result.get("errors") or result.get("warmup_errors"):
                failed.append(f"{name} {protocol}")
            elif protocol not in run:
                failed.append(f"{name} {protocol}: not run")
    report["ok"] = not failed
    print(json.dumps(report, indent=2))
    if failed:
        log(f"FAILED (errors or no result): {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
