"""``hearth bench``: how fast the configured models run on this machine, in process.

For each model it loads the engine exactly as ``hearth serve`` does and measures:
- chat: time to first token and decode tokens/s of one stream (``generate``);
- embeddings: texts/s batched (one call with every text) and one text at a time;
- image classification: per-image latency one at a time, and images/s when sent together.

When the backends can use a GPU (``llama_cpp.llama_supports_gpu_offload()``,
``torch.cuda.is_available()``), the same measurements run on CPU and on GPU through the backend
libraries directly and are shown side by side; otherwise the GPU column says why it is empty.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hearth.cli.common import settings_or_exit
from hearth.config import ModelKind, ModelSpec, Settings

console = Console()

CHAT_PROMPT = "Count from 1 to 500, separated by commas."
TOPICS = ("the sea", "a mountain village", "compilers", "bread baking", "the night sky", "a chess game")


@dataclass
class Row:
    model: str
    metric: str
    unit: str
    cpu: float | None
    gpu: float | None = None
    note: str = ""


@dataclass
class GpuSupport:
    llama_cpp: bool
    torch_cuda: bool
    note: str


def gpu_support() -> GpuSupport:
    """Whether the installed llama.cpp and torch builds can run on a GPU here."""
    notes = []
    try:
        import llama_cpp

        llama = bool(llama_cpp.llama_supports_gpu_offload())
    except Exception as exc:  # not installed, or its shared library fails to load
        llama = False
        notes.append(f"llama_cpp: {type(exc).__name__}")
    try:
        import torch

        cuda = bool(torch.cuda.is_available())
    except Exception as exc:
        cuda = False
        notes.append(f"torch: {type(exc).__name__}")
    if not llama:
        notes.append("llama.cpp is a CPU build (no GPU offload)")
    if not cuda:
        notes.append("torch sees no CUDA device")
    return GpuSupport(llama, cuda, "; ".join(notes) or "GPU available")


def sample_texts(n: int) -> list[str]:
    return [
        f"Sentence {i}: a short note about {TOPICS[i % len(TOPICS)]}, written for a benchmark."
        for i in range(n)
    ]


def sample_images() -> list[Image.Image]:
    """Real photos from scikit-image when installed, else a synthetic gradient."""
    try:
        from skimage import data
    except ImportError:
        gradient = Image.linear_gradient("L").resize((320, 240)).convert("RGB")
        return [gradient]
    return [
        Image.fromarray(getattr(data, name)()).convert("RGB") for name in ("chelsea", "coffee", "astronaut")
    ]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- CPU: the engines, in process ----------------------------------------------------------------


async def bench_chat(engine: Any, tokens: int, runs: int, advance: Callable[[], None]) -> list[Row]:
    from hearth.engines.base import GenerationDone, SamplingParams, TextDelta
    from hearth.inference.types import Message

    prompt = engine.tokenize(engine.render_chat([Message.of("user", CHAT_PROMPT)]))
    ttfts, rates, produced = [], [], []
    for run in range(runs):
        params = SamplingParams(max_tokens=tokens, temperature=0.7, seed=1234 + run)
        started = time.perf_counter()
        first: float | None = None
        completion = 0
        async for event in engine.generate(prompt, params):
            if isinstance(event, TextDelta) and first is None:
                first = time.perf_counter()
            elif isinstance(event, GenerationDone):
                completion = event.completion_tokens
        ended = time.perf_counter()
        first = first or ended
        ttfts.append((first - started) * 1000)
        if completion > 1 and ended > first:
            rates.append((completion - 1) / (ended - first))
        produced.append(completion)
        advance()
    spec = engine.spec.id
    return [
        Row(spec, "time to first token", "ms", statistics.median(ttfts), note=f"{len(prompt)}-token prompt"),
        Row(
            spec,
            "decode, 1 stream",
            "tokens/s",
            statistics.median(rates) if rates else None,
            note=f"median of {runs}, {int(statistics.median(produced))} tokens each",
        ),
    ]


async def bench_embeddings(engine: Any, texts: int, advance: Callable[[], None]) -> list[Row]:
    batch = sample_texts(texts)
    await engine.embed(batch[:2])  # warm up
    started = time.perf_counter()
    await engine.embed(batch)
    batched = texts / (time.perf_counter() - started)
    advance()
    singles = batch[: max(1, min(texts, 32))]
    started = time.perf_counter()
    for text in singles:
        await engine.embed([text])
    single = len(singles) / (time.perf_counter() - started)
    advance()
    spec = engine.spec.id
    return [
        Row(spec, f"embeddings, batch of {texts}", "texts/s", batched),
        Row(spec, "embeddings, one at a time", "texts/s", single, note=f"{len(singles)} sequential calls"),
    ]


async def bench_classifier(engine: Any, images: int, advance: Callable[[], None]) -> list[Row]:
    photos = sample_images()
    await engine.classify(photos[0], 1)  # warm up
    latencies = []
    for i in range(images):
        started = time.perf_counter()
        await engine.classify(photos[i % len(photos)], 5)
        latencies.append((time.perf_counter() - started) * 1000)
    advance()
    started = time.perf_counter()
    await asyncio.gather(*(engine.classify(photos[i % len(photos)], 5) for i in range(images)))
    together = images / (time.perf_counter() - started)
    advance()
    spec = engine.spec.id
    return [
        Row(spec, "per-image latency (p50)", "ms", statistics.median(latencies), note=f"{images} images"),
        Row(spec, "per-image latency (p95)", "ms", _percentile(latencies, 0.95)),
        Row(spec, f"{images} images sent together", "images/s", together, note="batched by the engine"),
    ]


# --- GPU: the backend libraries directly, same measurements on both devices ------------------------


def direct_llama(spec: ModelSpec, data_dir: Path, tokens: int, gpu_layers: int) -> float:
    """Decode tokens/s through llama_cpp.Llama with ``gpu_layers`` offloaded (0: CPU only)."""
    import llama_cpp

    from hearth.engines.llama.model_file import resolve_gguf

    llm = llama_cpp.Llama(
        model_path=str(resolve_gguf(spec.source, data_dir)),
        n_gpu_layers=gpu_layers,
        n_ctx=2048,
        n_threads=spec.threads,
        verbose=False,
    )
    try:
        llm.create_completion(CHAT_PROMPT, max_tokens=4)  # warm up
        started = time.perf_counter()
        out: Any = llm.create_completion(CHAT_PROMPT, max_tokens=tokens, temperature=0.7, seed=1234)
        return float(out["usage"]["completion_tokens"]) / (time.perf_counter() - started)
    finally:
        llm.close()


def direct_embeddings(path: Path, texts: int, device: str) -> tuple[float, float]:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=device, local_files_only=True)
    batch = sample_texts(texts)
    model.encode(batch[:2])
    started = time.perf_counter()
    model.encode(batch, batch_size=len(batch))
    batched = texts / (time.perf_counter() - started)
    singles = batch[: max(1, min(texts, 32))]
    started = time.perf_counter()
    for text in singles:
        model.encode([text])
    return batched, len(singles) / (time.perf_counter() - started)


def direct_classifier(spec: ModelSpec, images: int, device: str) -> tuple[float, float]:
    import torch

    from hearth.engines.vision.engine import preprocess, resolve_source
    from hearth.engines.vision.model import EfficientNetLite

    model = EfficientNetLite()
    model.load_state_dict(torch.load(resolve_source(spec.source), map_location="cpu", weights_only=True))
    model = model.eval().to(device)
    # preprocess gives (H, W, C) float32, as the server sends it to the worker; the network takes (C, H, W).
    photos = [torch.from_numpy(preprocess(p)).permute(2, 0, 1).contiguous() for p in sample_images()]

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode():
        model(photos[0][None].to(device))
        latencies = []
        for i in range(images):
            started = time.perf_counter()
            model(photos[i % len(photos)][None].to(device)).softmax(-1).cpu()
            sync()
            latencies.append((time.perf_counter() - started) * 1000)
        batch = torch.stack([photos[i % len(photos)] for i in range(images)]).to(device)
        started = time.perf_counter()
        model(batch).softmax(-1).cpu()
        sync()
        together = images / (time.perf_counter() - started)
    return statistics.median(latencies), together


def gpu_rows(spec: ModelSpec, settings: Settings, support: GpuSupport, sizes: dict[str, int]) -> list[Row]:
    """CPU and GPU side by side through the backend libraries (only when a GPU can be used)."""
    rows: list[Row] = []
    note = "backend directly"
    if spec.kind == ModelKind.CHAT and spec.backend == "llama.cpp" and support.llama_cpp:
        cpu = direct_llama(spec, settings.data_dir, sizes["tokens"], 0)
        gpu = direct_llama(spec, settings.data_dir, sizes["tokens"], -1)
        rows.append(Row(spec.id, "decode, 1 stream (llama.cpp)", "tokens/s", cpu, gpu, note))
    elif spec.kind == ModelKind.EMBEDDING and spec.backend == "sentence-transformers" and support.torch_cuda:
        from hearth.engines.embeddings import sentence_transformers_dir

        path = sentence_transformers_dir(spec)
        cpu_b, cpu_s = direct_embeddings(path, sizes["texts"], "cpu")
        gpu_b, gpu_s = direct_embeddings(path, sizes["texts"], "cuda")
        rows.append(Row(spec.id, f"embeddings, batch of {sizes['texts']}", "texts/s", cpu_b, gpu_b, note))
        rows.append(Row(spec.id, "embeddings, one at a time", "texts/s", cpu_s, gpu_s, note))
    elif (
        spec.kind == ModelKind.IMAGE_CLASSIFICATION and spec.backend == "efficientnet" and support.torch_cuda
    ):
        cpu_l, cpu_t = direct_classifier(spec, sizes["images"], "cpu")
        gpu_l, gpu_t = direct_classifier(spec, sizes["images"], "cuda")
        rows.append(Row(spec.id, "per-image latency (p50)", "ms", cpu_l, gpu_l, note))
        rows.append(Row(spec.id, f"{sizes['images']} images together", "images/s", cpu_t, gpu_t, note))
    return rows


# --- the command ---------------------------------------------------------------------------------


_ELSEWHERE = {
    ModelKind.SPEECH_TO_TEXT: "python -m bench.transcribe (from a checkout)",
    ModelKind.TEXT_TO_SPEECH: "speech synthesis is not timed by hearth bench",
    ModelKind.RERANK: "reranking is not timed by hearth bench",
}


async def run_bench(
    settings: Settings, specs: list[ModelSpec], sizes: dict[str, int], quiet: bool
) -> list[Row]:
    from hearth.engines.context import EngineContext
    from hearth.engines.registry import engine_class

    steps = {ModelKind.CHAT: sizes["runs"], ModelKind.EMBEDDING: 2, ModelKind.IMAGE_CLASSIFICATION: 2}
    rows: list[Row] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    context = EngineContext.of(settings)
    with Progress(*columns, console=console, disable=quiet, transient=False) as progress:
        for spec in specs:
            if spec.kind not in steps:  # speech and rerankers: their own benchmarks (docs/benchmarks.md)
                rows.append(Row(spec.id, "not timed here", "-", None, None, _ELSEWHERE.get(spec.kind, "")))
                continue
            task = progress.add_task(f"{spec.id}: loading", total=steps[spec.kind] + 1)
            engine = engine_class(spec)(spec, context)
            await asyncio.to_thread(engine.load)
            progress.update(task, advance=1, description=f"{spec.id}: measuring")

            def advance(task_id: Any = task) -> None:
                progress.advance(task_id)

            try:
                if spec.kind == ModelKind.CHAT:
                    rows += await bench_chat(engine, sizes["tokens"], sizes["runs"], advance)
                elif spec.kind == ModelKind.EMBEDDING:
                    rows += await bench_embeddings(engine, sizes["texts"], advance)
                else:
                    rows += await bench_classifier(engine, sizes["images"], advance)
            finally:
                engine.close()
            progress.update(task, description=f"{spec.id}: done")
    return rows


def bench(
    config: Annotated[
        Path | None, typer.Option("--config", envvar="HEARTH_CONFIG", help="Models/settings file.")
    ] = None,
    models: Annotated[
        str | None,
        typer.Option(help="Comma-separated model ids or aliases; default: every configured model."),
    ] = None,
    tokens: Annotated[int, typer.Option(min=2, help="Tokens generated per chat run.")] = 128,
    runs: Annotated[int, typer.Option(min=1, help="Chat runs (the median is reported).")] = 3,
    texts: Annotated[int, typer.Option(min=1, help="Texts in the embedding batch.")] = 64,
    images: Annotated[int, typer.Option(min=1, help="Images classified.")] = 16,
    gpu: Annotated[
        bool, typer.Option("--gpu/--no-gpu", help="Also compare CPU and GPU when the backends can use one.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
) -> None:
    """Time the configured models on this hardware: tokens/s, embeddings/s, image latency."""
    settings = settings_or_exit(config)
    specs = settings.models
    if models:
        wanted = [name.strip() for name in models.split(",") if name.strip()]
        found = [settings.find_model(name) for name in wanted]
        missing = [name for name, spec in zip(wanted, found, strict=True) if spec is None]
        if missing:
            console.print(f"[red]no model {', '.join(missing)}[/red]; see `hearth models list`")
            raise typer.Exit(1)
        specs = [spec for spec in found if spec is not None]
    sizes = {"tokens": tokens, "runs": runs, "texts": texts, "images": images}
    support = gpu_support()
    rows = asyncio.run(run_bench(settings, specs, sizes, quiet=as_json))
    if gpu and (support.llama_cpp or support.torch_cuda):
        for spec in specs:
            with console.status(f"{spec.id}: CPU vs GPU"):
                rows += gpu_rows(spec, settings, support, sizes)
    if as_json:
        print(json.dumps({"gpu": asdict(support), "results": [asdict(r) for r in rows]}, indent=2))
        return
    show_gpu = any(r.gpu is not None for r in rows)
    table = Table(
        "model", "measure", "CPU", *(["GPU"] if show_gpu else []), "unit", "note", title="hearth bench"
    )
    for r in rows:
        cells = [r.model, r.metric, _fmt(r.cpu), *([_fmt(r.gpu)] if show_gpu else []), r.unit, r.note]
        table.add_row(*cells)
    console.print(table)
    console.print(f"GPU: {support.note}" if not show_gpu else "GPU: measured through the backends directly")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
