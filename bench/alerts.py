"""The alert half: detections on JetStream → alert service → GraphQL subscriber.

    python bench/alerts.py                                 # 1, 16, 64 cameras, 2 fps, 20 s
    python bench/alerts.py --cameras 16 --fps 2 --seconds 30

N cameras (spread over the villages of a synthetic city) publish one
``FrameDetections`` per frame at F fps in real time, as the inference workers do: six
people in the plaza for 6 s, then nobody for 4 s, over and over. The plaza's rule is
"more than 3 people for 3 s", so every camera fires once per 10 s cycle: the first time
an alert is raised, later cycles are repeats counted on it (storm throttling), each
published again on ``zz.alerts``. A director of the city is subscribed to ``alertRaised``
over a real websocket (uvicorn, graphql-transport-ws).

**Latency**: from the moment the frame that fires was published to the moment its
alert (or repeat) reached the subscriber, p50/p99/max over every firing; the firing
frames are known beforehand by running the same pure rules (``vision.rules``) on the
frames the bench publishes. **Service** figures: frames processed, alerts raised and
repeated, and the service's busy time per frame (its worker-thread time over the
frames). Inference is not in this half (bench/vision.py measures it; add its p99 for
the end to end). Nothing is asserted on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import fresh_database, print_header  # noqa: E402
from domain import Place, RuleKind, Zone, ZoneRule  # noqa: E402
from tenants.cameras import Cameras  # noqa: E402
from tenants.service import Tenants  # noqa: E402
from vision.alerts import AlertService, ensure_streams  # noqa: E402
from vision.messages import Detection, FrameDetections  # noqa: E402
from vision.rules import CameraRules  # noqa: E402
from zongzhi.servers import EmbeddedNats, free_port  # noqa: E402

CST = timezone(timedelta(hours=8))
CITY = "6901"
PLAZA = Zone("plaza", [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]],
             [ZoneRule(RuleKind.CROWD, 3, people=3)])
CROWD_S, EMPTY_S = 6, 4
SECRET = b"bench-alerts-secret-of-32-bytes-or-more!"


def write_city(directory: Path, counties: int = 4, townships: int = 4,
               villages: int = 4) -> list[str]:
    """Division files of a synthetic city; returns its villages."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = {"cities.csv": ["code,name,provinceCode", f'{CITY},"基准市",{CITY[:2]}'],
            "counties.csv": ["code,name,cityCode,provinceCode"],
            "townships.csv": ["code,name,areaCode,provinceCode,cityCode"],
            "villages.csv": ["code,name,streetCode,provinceCode,cityCode,areaCode"]}
    found = []
    for c in range(1, counties + 1):
        county = f"{CITY}{c:02d}"
        rows["counties.csv"].append(f'{county},"县{c}",{CITY},{CITY[:2]}')
        for t in range(1, townships + 1):
            township = f"{county}{t:03d}"
            rows["townships.csv"].append(f'{township},"镇{c}-{t}",{county},{CITY[:2]},{CITY}')
            for v in range(1, villages + 1):
                village = f"{township}{v:03d}"
                found.append(village)
                rows["villages.csv"].append(
                    f'{village},"村{c}-{t}-{v}",{township},{CITY[:2]},{CITY},{county}')
    for name, lines in rows.items():
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return found


def detections(second: float) -> tuple[Detection, ...]:
    if second % (CROWD_S + EMPTY_S) >= CROWD_S:
        return ()
    return tuple(Detection("person", 0.9, (0.05 + 0.07 * k - 0.03, 0.3, 0.05 + 0.07 * k + 0.03,
                                           0.5)) for k in range(6))


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Subscriber:
    """A director of the city on ``alertRaised``, keeping each alert's arrival time."""

    def __init__(self, host: str, token: str) -> None:
        self.host, self.token = host, token
        self.arrived: dict[tuple[str, int], float] = {}  # (camera, repeats) -> monotonic
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from websockets.sync.client import connect
        from websockets.typing import Subprotocol

        with connect(f"ws://{self.host}/graphql",
                     subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
            ws.send(json.dumps({"type": "connection_init",
                                "payload": {"Authorization": f"Bearer {self.token}"}}))
            json.loads(ws.recv(timeout=10))
            ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": 'subscription { alertRaised(scope: "' + CITY
                         + '") { cameraRef repeats } }'}}))
            self.ready.set()
            while not self._stop.is_set():
                try:
                    message = json.loads(ws.recv(timeout=0.5))
                except TimeoutError:
                    continue
                if message.get("type") == "next":
                    alert = message["payload"]["data"]["alertRaised"]
                    self.arrived[(alert["cameraRef"], alert["repeats"])] = time.monotonic()

    def __enter__(self) -> Subscriber:
        self._thread.start()
        self.ready.wait(15)
        time.sleep(0.5)  # the ordered consumer is created after the subscribe message
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


async def publish_cameras(nats_url: str, cameras: list[tuple[str, str]], fps: float,
                          seconds: float) -> dict[tuple[str, int], float]:
    """Publish every camera's frames in real time; returns, per (camera, firing
    number), when the frame that fires was published."""
    import nats

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await ensure_streams(js)
    fired: dict[tuple[str, int], float] = {}

    async def camera(ref: str, tenant: str, offset: float) -> None:
        rules, count = CameraRules([PLAZA]), 0
        await asyncio.sleep(offset)
        start = time.monotonic()
        base = datetime.now(CST)
        for seq in range(int(seconds * fps)):
            due = start + seq / fps
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            frame = FrameDetections(ref, tenant, seq, base + timedelta(seconds=seq / fps),
                                    640, 480, "ssdlite-person", 0.0, detections(seq / fps))
            fires = rules.observe(frame)
            await js.publish(frame.subject, frame.encode(), headers={"Nats-Msg-Id": frame.msg_id})
            if fires:
                fired[(ref, count)] = time.monotonic()
                count += 1

    await asyncio.gather(*(camera(ref, tenant, i / len(cameras) / fps)
                           for i, (ref, tenant) in enumerate(cameras)))
    await nc.close()
    return fired


def time_processing(service: AlertService) -> list[float]:
    """Wrap the service's per-batch ``process`` to add up the seconds it is busy; the
    returned one-element list holds the total so far."""
    busy = [0.0]
    process = service.process

    def timed(*args: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return process(*args)
        finally:
            busy[0] += time.perf_counter() - t0

    service.process = timed  # type: ignore[method-assign, assignment]
    return busy


def run_level(tenants: Tenants, nats_url: str, host: str, token: str, villages: list[str],
              n: int, fps: float, seconds: float) -> None:
    run = secrets.token_hex(2)
    cameras = Cameras(tenants)
    chosen = [(f"bench-{run}-{i}", villages[i % len(villages)]) for i in range(n)]
    for ref, village in chosen:
        cameras.center(village).register_camera(ref, ref, Place(village, "广场"), [PLAZA],
                                                "bench", datetime.now(CST))
    service = AlertService(tenants, nats_url, durable=f"bench-{run}", cities=[CITY])
    loop = asyncio.new_event_loop()
    stop, ready = asyncio.Event(), threading.Event()

    async def serve() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(service.run(stop, started))
        await started.wait()
        ready.set()
        await task

    busy = time_processing(service)
    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    ready.wait(20)
    with Subscriber(host, token) as subscriber:
        fired = asyncio.run(publish_cameras(nats_url, chosen, fps, seconds))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not all(k in subscriber.arrived for k in fired):
            time.sleep(0.1)
    loop.call_soon_threadsafe(stop.set)
    thread.join(20)
    latencies = [subscriber.arrived[k] - t for k, t in fired.items() if k in subscriber.arrived]
    missing = len(fired) - len(latencies)
    frames = service.stats["frames"]
    ms = [x * 1000 for x in latencies]
    print(f"{n:>7} {fps:>4g} {frames:>7} {service.stats['raised']:>6} "
          f"{service.stats['repeated']:>8} {len(fired):>7} {missing:>7} "
          f"{(statistics.median(ms) if ms else float('nan')):>8.1f} "
          f"{(pct(ms, 0.99) if ms else float('nan')):>8.1f} "
          f"{(max(ms) if ms else float('nan')):>8.1f} "
          f"{(busy[0] / frames * 1000 if frames else float('nan')):>10.2f}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cameras", default="1,16,64")
    p.add_argument("--fps", type=float, default=2.0)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--quick", action="store_true", help="1 and 4 cameras, 5 s each")
    args = p.parse_args(argv)
    if args.quick:
        args.cameras, args.seconds = "1,4", 5.0
    import uvicorn

    from api.app import create_app
    from api.auth import TokenService, TokenSettings

    with fresh_database() as db, tempfile.TemporaryDirectory() as tmp:
        print_header("alert half: detections -> alert service -> GraphQL subscriber", db,
                     sys.argv)
        nats = EmbeddedNats(Path(tmp) / "nats", port=free_port())
        nats_url = nats.start()
        tenants = Tenants(db.url, secrets.token_bytes(32))
        try:
            villages = write_city(Path(tmp) / "divisions")
            tenants.import_divisions(Path(tmp) / "divisions", CITY, "bench", datetime.now(CST))
            tokens = TokenService(TokenSettings(secret=SECRET), tenants.registry)
            app = create_app(tenants, tokens=tokens, nats_url=nats_url, open311=False)
            port = free_port()
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                   log_level="warning"))
            serving = threading.Thread(target=server.run, daemon=True)
            serving.start()
            while not server.started:
                time.sleep(0.05)
            token = tokens.issue(CITY, ["director"], subject="bench-director")
            print(f"rule: more than 3 people for 3 s; cycle {CROWD_S} s crowd, {EMPTY_S} s "
                  f"empty; {args.seconds:g} s per level; latency = firing frame published -> "
                  "alertRaised received (ms)")
            print(f"{'cameras':>7} {'fps':>4} {'frames':>7} {'raised':>6} {'repeated':>8} "
                  f"{'firings':>7} {'missing':>7} {'p50':>8} {'p99':>8} {'max':>8} "
                  f"{'ms/frame':>10}")
            for n in (int(x) for x in args.cameras.split(",")):
                run_level(tenants, nats_url, f"127.0.0.1:{port}", token, villages, n,
                          args.fps, args.seconds)
            server.should_exit = True
            serving.join(15)
        finally:
            tenants.close()
            nats.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
