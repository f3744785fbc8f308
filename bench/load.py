"""Load test: N concurrent ``gradio_client`` clients against a running (or self-launched) demo.

Each client loops for ``--seconds``, calling the chosen endpoints with its own random settings, and the
script prints requests served, failures and latency percentiles. Usage::

    python -m bench.load --clients 8 --seconds 30                 # launches the app on a free port
    python -m bench.load --url http://127.0.0.1:7860/ --mix benchmark,ranks,generate

``generate`` requests use few steps (``--steps``) so that the queue, not the model, is what is measured.

``--gen-under-load N`` measures whether benchmark traffic starves generation: generation latency with
``--gen-clients`` generating clients alone, then the same while N clients call ``benchmark``/``ranks``
with random settings, in one run (machine load printed before each phase)::

    python -m bench.load --gen-under-load 16 --seconds 60
    python -m bench.load --evaluate-market      # /evaluate_features on a Market-1501-size file
"""

from __future__ import annotations

import argparse
import os
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


def run(url: str, clients: int, seconds: float, mix: list[str], args: argparse.Namespace,
        groups: list[tuple[int, list[str]]] | None = None) -> dict:
    """``clients`` clients each calling endpoints of ``mix`` for ``seconds`` (or several ``groups`` of
    (clients, mix) at once); latencies and failures per endpoint."""
    from gradio_client import Client

    lat: dict[str, list[float]] = defaultdict(list)
    fails: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()
    plan = [m for n, m in (groups or [(clients, mix)]) for _ in range(n)]
    clients = len(plan)
    connected: list = []
    for _ in plan:  # connect first, one after the other (17 clients at once can time out a busy server)
        try:
            connected.append(Client(url, verbose=False))
        except Exception as exc:  # noqa: BLE001 — counted
            connected.append(None)
            fails["connect"].append(f"{type(exc).__name__}: {str(exc)[:120]}")
    deadline = time.monotonic() + seconds

    def worker(i: int) -> None:
        rng = random.Random(i)
        mine, client = plan[i], connected[i]
        if client is None:
            return
        while time.monotonic() < deadline:
            ep = rng.choice(mine)
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


def _p50_p95(v: list[float]) -> tuple[float, float]:
    v = sorted(v)
    return statistics.median(v), v[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))]


def gen_under_load(url: str, bench_clients: int, args: argparse.Namespace) -> None:
    """Generation p50/p95 alone, then while ``bench_clients`` benchmark clients run (one run, interleaved)."""
    gen = [(args.gen_clients, ["generate"])]
    phases = (("alone", gen), (f"with {bench_clients} benchmark clients", gen + [(bench_clients, ["benchmark", "ranks"])]))
    out = {}
    for name, groups in phases:
        print(f"[{name}] load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
        res = run(url, 0, args.seconds, [], args, groups=groups)
        report(res, sum(n for n, _ in groups))
        out[name] = res["lat"].get("generate", [])
    (a_name, a), (b_name, b) = out.items()
    if a and b:
        (a50, a95), (b50, b95) = _p50_p95(a), _p50_p95(b)
        print(f"generation ({args.steps} steps, {args.gen_clients} generating client(s)): {a_name} p50={a50:.2f}s "
              f"p95={a95:.2f}s (n={len(a)}); {b_name} p50={b50:.2f}s p95={b95:.2f}s (n={len(b)}); "
              f"p95 ratio {b95 / a95:.2f} (target <= 3)")
    else:
        print(f"generation: no request finished ({a_name}: {len(a)}, {b_name}: {len(b)})")
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


def market_size_file(path: str, nq: int = 3368, ng: int = 15913, d: int = 768, seed: int = 0) -> str:
    """A synthetic feature file of Market-1501's size (751 test identities, 6 cameras, distractors and junk in
    the gallery): clusters around random identity centres."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = np.arange(1, 751)
    q_pids = rng.choice(ids, nq)
    n_other = ng // 5
    g_pids = np.concatenate([rng.choice(ids, ng - n_other), rng.choice([0, -1], n_other)])
    centres = rng.normal(size=(752, d)).astype(np.float32)
    q = centres[q_pids] + 1.2 * rng.normal(size=(nq, d)).astype(np.float32)
    g = centres[np.maximum(g_pids, 0)] + 1.2 * rng.normal(size=(ng, d)).astype(np.float32)
    np.savez(path, q_feats=q, g_feats=g, q_pids=q_pids, g_pids=g_pids, q_camids=rng.integers(1, 7, nq),
             g_camids=rng.integers(1, 7, ng))
    return path


def evaluate_market(url: str) -> None:
    """Upload a Market-1501-size feature file to the app and time /evaluate_features (upload included)."""
    import tempfile
    from pathlib import Path

    from gradio_client import Client, handle_file

    path = market_size_file(str(Path(tempfile.mkdtemp(prefix="pose2id-bench-")) / "market-size.npz"))
    print(f"Market-1501-size file: 3,368 x 15,913 x 768 float32, {Path(path).stat().st_size / 2**20:.0f} MB; "
          f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    t = time.perf_counter()
    table, _, _, _, msg = Client(url, verbose=False).predict(handle_file(path), 2, 2, 0.5, "both", "both",
                                                             api_name="/evaluate_features")
    print(f"/evaluate_features: {time.perf_counter() - t:.1f} s; rows {[r[0] for r in table['data']]}; load average "
          f"after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("  " + msg.replace("\n\n", "\n  "))


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


def _hog() -> None:  # an outside CPU hog: one core busy until killed
    while True:
        pass


def torch_threads(repeats: int, hogs: tuple[int, ...], steps: int = 20) -> dict:
    """Generation time with torch on 1 and on 2 threads, with ``h`` outside processes spinning on a core each
    for every ``h`` of ``hogs``: the embedded pipeline called directly (8 poses, IFR on, ``steps`` steps, CFG
    3.5), median and max wall seconds and the CPU seconds of ``repeats`` runs after one warm-up run. Printed
    with the machine's load; the app's thread count is chosen from this (:data:`pose2id_demo.ui.app.
    TORCH_THREADS`)."""
    import multiprocessing as mp

    import torch
    from PIL import Image

    from pose2id_demo.engine import get_engine
    from pose2id_demo.ui.app import EXAMPLES_DIR

    eng = get_engine()
    pipe, poses = eng.pipeline(), [p for _, p in eng.representative_poses()]
    with Image.open(sorted(EXAMPLES_DIR.glob("*.jpg"))[0]) as im:
        ref = im.convert("RGB")
    out: dict = {}
    print(f"generation of 8 poses, {steps} steps, CFG 3.5, embedded pipeline; {os.cpu_count()} cores", flush=True)
    for h in hogs:
        procs = [mp.Process(target=_hog, daemon=True) for _ in range(h)]
        for p in procs:
            p.start()
        try:
            for n in (1, 2):
                torch.set_num_threads(n)
                pipe(reference_image=ref, poses=poses, num_inference_steps=steps, seed=0)  # warm-up run
                walls, cpus = [], []
                for i in range(repeats):
                    t, c = time.perf_counter(), time.process_time()
                    pipe(reference_image=ref, poses=poses, num_inference_steps=steps, seed=i)
                    walls.append(time.perf_counter() - t)
                    cpus.append(time.process_time() - c)
                key = f"{h} hog(s), {n} thread(s)"
                out[key] = {"median_s": round(statistics.median(walls), 2), "max_s": round(max(walls), 2),
                            "cpu_s": round(statistics.median(cpus), 2), "runs_s": [round(w, 2) for w in walls],
                            "load": round(os.getloadavg()[0], 2)}
                print(f"  {key:24s} median {out[key]['median_s']:6.2f} s  max {out[key]['max_s']:6.2f} s  "
                      f"CPU {out[key]['cpu_s']:6.2f} s  runs {out[key]['runs_s']}  [load {out[key]['load']}]",
                      flush=True)
        finally:
            for p in procs:
                p.kill()
                p.join()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", help="a running demo; default: launch one on a free localhost port")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--mix", default="benchmark,ranks", help="comma-separated endpoints: benchmark,ranks,generate")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--backbone", default="synthped-reid")
    ap.add_argument("--slider", action="store_true", help="first measure one user's slider → table latency")
    ap.add_argument("--gen-under-load", type=int, metavar="N", default=0,
                    help="generation latency alone, then with N benchmark clients")
    ap.add_argument("--gen-clients", type=int, default=1, help="generating clients (with --gen-under-load)")
    ap.add_argument("--evaluate-market", action="store_true",
                    help="time /evaluate_features on a synthetic Market-1501-size feature file instead")
    ap.add_argument("--torch-threads", action="store_true",
                    help="time generation with torch on 1 vs 2 threads, alone and beside outside CPU hogs")
    ap.add_argument("--hogs", default="0,1,2", help="outside hog processes per --torch-threads round")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.torch_threads:
        torch_threads(args.repeats, tuple(int(h) for h in args.hogs.split(",")), steps=20)
        print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return 0
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
    if args.gen_under_load:  # the pipeline loads on the first generation
        from gradio_client import Client

        _request(Client(url, verbose=False), "generate", random.Random(0), args)
    try:
        if args.slider:
            slider_latency(url, args.backbone)
        if args.evaluate_market:
            evaluate_market(url)
        elif args.gen_under_load:
            gen_under_load(url, args.gen_under_load, args)
        else:
            report(run(url, args.clients, args.seconds, mix, args), args.clients)
    finally:
        if demo is not None:
            demo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
