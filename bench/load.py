"""Load test: N concurrent ``gradio_client`` clients against a running (or self-launched) demo.

Each client loops for ``--seconds``, calling the chosen endpoints with its own random settings, and the
script prints requests served, failures and latency percentiles. Usage::

    python -m bench.load --clients 8 --seconds 30                 # launches the app on a free port
    python -m bench.load --url http://127.0.0.1:7860/ --mix benchmark,ranks,generate

``generate`` requests use few steps (``--steps``) so that the queue, not the model, is what is measured.
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import threading
import time
from collections import defaultdict


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(client, endpoint: str, rng: random.Random, args: argparse.Namespace) -> None:
    from gradio_client import handle_file

    bb = args.backbone
    if endpoint == "benchmark":
        client.predict("standard", bb, rng.choice([0.5, 1.0, 1.5, 2.0, 3.0]), rng.randint(1, 6), rng.randint(1, 6),
                       rng.choice(["query", "gallery", "both"]), rng.choice(["query", "gallery", "both"]), False,
                       api_name="/benchmark")
    elif endpoint == "ranks":
        client.predict("standard", bb, rng.randint(0, 199), rng.choice([1.0, 2.0]), rng.randint(1, 4),
                       rng.randint(1, 4), "both", "both", False, api_name="/ranks")
    elif endpoint == "generate":
        from pose2id_demo.ui.app import EXAMPLES_DIR

        ex = rng.choice(sorted(EXAMPLES_DIR.glob("*.jpg")))
        client.predict(handle_file(str(ex)), "on", args.steps, 3.5, rng.randint(0, 1000), 1.0, None, bb,
                       api_name="/generate")
    else:
        raise SystemExit(f"unknown endpoint {endpoint!r}")


def run(url: str, clients: int, seconds: float, mix: list[str], args: argparse.Namespace) -> dict:
    from gradio_client import Client

    lat: dict[str, list[float]] = defaultdict(list)
    fails: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(i: int) -> None:
        rng = random.Random(i)
        client = Client(url, verbose=False)
        while time.monotonic() < deadline:
            ep = rng.choice(mix)
            t = time.perf_counter()
            try:
                _request(client, ep, rng, args)
                with lock:
                    lat[ep].append(time.perf_counter() - t)
            except Exception as exc:  # noqa: BLE001 — counted and reported
                with lock:
                    fails[ep].append(f"{type(exc).__name__}: {str(exc)[:120]}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 600)
    wall = time.perf_counter() - t0
    return {"lat": lat, "fails": fails, "wall": wall}


def report(res: dict, clients: int) -> None:
    lat, fails = res["lat"], res["fails"]
    all_lat = sorted(x for v in lat.values() for x in v)
    served, failed = len(all_lat), sum(len(v) for v in fails.values())
    print(f"clients={clients} wall={res['wall']:.1f}s served={served} failures={failed} "
          f"throughput={served / res['wall']:.2f} req/s")
    for ep in sorted(set(lat) | set(fails)):
        v = sorted(lat.get(ep, []))
        if v:
            p50 = statistics.median(v)
            p95 = v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]
            print(f"  {ep:10s} served={len(v):5d} failures={len(fails.get(ep, [])):3d} p50={p50:.3f}s p95={p95:.3f}s "
                  f"max={v[-1]:.3f}s")
        else:
            print(f"  {ep:10s} served=0 failures={len(fails.get(ep, []))}")
        for msg in fails.get(ep, [])[:3]:
            print(f"      e.g. {msg}")


def slider_latency(url: str, backbone: str) -> None:
    """One user moving sliders: each request has settings not seen before (nothing cached for it)."""
    from gradio_client import Client

    c = Client(url, verbose=False)
    lat = []
    for k1, k2, eta in [(k, 2, 1.0) for k in range(1, 9)] + [(2, 2, e) for e in (0.5, 1.5, 2.5, 3.5)]:
        t = time.perf_counter()
        c.predict("standard", backbone, eta, k1, k2, "both", "both", False, api_name="/benchmark")
        lat.append(time.perf_counter() - t)
    lat.sort()
    print(f"slider → table (uncached settings, {len(lat)} moves): p50={statistics.median(lat):.3f}s "
          f"max={lat[-1]:.3f}s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="a running demo; default: launch one on a free localhost port")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--mix", default="benchmark,ranks", help="comma-separated endpoints: benchmark,ranks,generate")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--backbone", default="synthped-reid")
    ap.add_argument("--slider", action="store_true", help="first measure one user's slider → table latency")
    args = ap.parse_args(argv)
    mix = [m.strip() for m in args.mix.split(",") if m.strip()]
    demo = None
    url = args.url
    if url is None:
        from pose2id_demo.ui.app import build_demo, launch

        demo = build_demo()
        _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=_free_port(),
                           quiet=True)
        # Warm the caches once (first use loads features), as a served demo would be.
        from gradio_client import Client

        Client(url, verbose=False).predict("standard", args.backbone, 1.0, 2, 2, "both", "both", False,
                                           api_name="/benchmark")
    try:
        if args.slider:
            slider_latency(url, args.backbone)
        report(run(url, args.clients, args.seconds, mix, args), args.clients)
    finally:
        if demo is not None:
            demo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
