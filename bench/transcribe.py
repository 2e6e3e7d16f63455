"""Speech to text throughput: ``hearth serve`` against faster-whisper called in this process.

Eight sentences spoken by espeak-ng (3-5 s each). Hearth: the default ``hearth serve`` (auth on,
SQLite ledger, Whisper base loading on first use), 4 concurrent clients each posting the files
to ``/v1/audio/transcriptions`` (``response_format=json``, the language detected). The anchor:
the same model directory loaded here with faster-whisper as Hearth loads it (int8, the same CPU
threads), 4 threads calling ``BatchedInferencePipeline.transcribe`` on the same files with the
same options. Rounds alternate; reported are files a second (median) and their ratio, and the
real-time factor of one 60 s file alone (seconds of compute per second of audio), both ways.

    .venv/bin/python -m bench.transcribe [--rounds 3] [--passes 4]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bench.common import RESULTS, free_port, require, start_default_hearth, stop, wait_http
from bench.speech_samples import SENTENCES
from hearth.config import WHISPER_BASE_SHA256, WHISPER_BASE_SOURCE
from hearth.cpu_topology import physical_cores
from hearth.engines.speech.model_dir import model_dir

console = Console()
CLIENTS = 4


def speak(folder: Path) -> tuple[list[Path], Path]:
    """The sentences as WAV files, and one file of all of them four times over (about 60 s)."""
    espeak = require("espeak-ng", "spoken test audio", "apt-get install espeak-ng (make system-deps)")
    files = []
    for i, text in enumerate(SENTENCES):
        path = folder / f"s{i}.wav"
        subprocess.run([espeak, "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
        files.append(path)
    long = folder / "long.wav"
    subprocess.run([espeak, "-v", "en-us", "-s", "150", "-w", str(long), " ".join(SENTENCES * 4)], check=True)
    return files, long


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def seconds_of(path: Path) -> float:
    with wave.open(str(path)) as w:
        frames: int = w.getnframes()
        rate: int = w.getframerate()
    return frames / rate


def run_clients(work: list[Path], one: Any) -> float:
    """Files a second with ``CLIENTS`` callers taking the files in turn."""
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        texts = list(pool.map(one, work))
    assert all(texts), "an empty transcript"
    return len(work) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--passes", type=int, default=4, help="times each client goes through the files")
    args = parser.parse_args()
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files, long = speak(root)
        work = files * args.passes
        port = free_port()
        server, base, key = start_default_hearth(root / "work", port)
        http = httpx.Client(timeout=600, headers={"Authorization": f"Bearer {key}"})
        try:
            wait_http(base + "/ready")

            def via_hearth(path: Path) -> str:
                with path.open("rb") as f:
                    reply = http.post(base + "/v1/audio/transcriptions", files={"file": (path.name, f)},
                                      data={"model": "whisper-1"})  # fmt: skip
                reply.raise_for_status()
                return str(reply.json()["text"])

            directory = model_dir(WHISPER_BASE_SOURCE, root / "direct", WHISPER_BASE_SHA256)
            model = WhisperModel(str(directory), device="cpu", compute_type="int8",
                                 cpu_threads=physical_cores(), local_files_only=True)  # fmt: skip
            pipeline = BatchedInferencePipeline(model)

            def direct(path: Path) -> str:
                segments, _ = pipeline.transcribe(str(path), batch_size=8, beam_size=5)
                return "".join(s.text for s in segments)

            # Loading on first use: the first request's time and the server's memory, before and after.
            rss_before = rss_mib(server.pid)
            began = time.perf_counter()
            via_hearth(files[0])
            first_s = time.perf_counter() - began
            began = time.perf_counter()
            via_hearth(files[0])
            second_s = time.perf_counter() - began
            first_use = {"first_request_s": first_s, "second_request_s": second_s,
                         "server_rss_mib_before": rss_before, "server_rss_mib_after": rss_mib(server.pid)}  # fmt: skip
            console.print(first_use)
            direct(files[0])
            rates: dict[str, list[float]] = {"hearth": [], "faster-whisper": []}
            for round_ in range(args.rounds):
                order = [("hearth", via_hearth), ("faster-whisper", direct)]
                for name, one in order if round_ % 2 == 0 else reversed(order):
                    rates[name].append(run_clients(work, one))
                    console.print(f"round {round_ + 1} {name}: {rates[name][-1]:.2f} files/s")
            audio = seconds_of(long)
            rtf: dict[str, list[float]] = {"hearth": [], "faster-whisper": []}
            for _ in range(args.rounds):
                for name, one in (("hearth", via_hearth), ("faster-whisper", direct)):
                    began = time.perf_counter()
                    one(long)
                    rtf[name].append((time.perf_counter() - began) / audio)
        finally:
            http.close()
            stop(server)
    hearth, anchor = statistics.median(rates["hearth"]), statistics.median(rates["faster-whisper"])
    result = {
        "clients": CLIENTS,
        "files": len(work),
        "files_per_s": {"hearth": hearth, "faster-whisper": anchor},
        "ratio": hearth / anchor,
        "rounds": rates,
        "long_file_s": audio,
        "real_time_factor": {k: statistics.median(v) for k, v in rtf.items()},
        "first_use": first_use,
    }
    console.print_json(json.dumps(result))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "transcribe.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
