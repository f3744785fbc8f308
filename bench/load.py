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

``--mixed`` is a busy Space: ``python app.py`` in a subprocess (``--app-dir`` names another checkout to
compare), then generation with IFR "both" (8 + 8 images, the paper's 20 steps) by one and by 4 clients alone
(quiet), by one client among 27 others, and by 4 clients among 24 others (benchmark tables, per-query views,
ranked lists, t-SNE and evaluations of an exported feature file, each with its own random settings). It prints
the generations' end-to-end p50 / p95 and the app's own generation time (from its message) per phase, with the
machine's load, against the target p95 <= 3 x quiet (the quiet phase with as many generating clients)::

    python -m bench.load --mixed --seconds 180 --quiet-seconds 60
    python -m bench.load --torch-threads        # generation on 1 vs 2 torch threads beside CPU hogs
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
    others = gen + [(bench_clients, ["benchmark", "ranks"])]
    phases = (("alone", gen), (f"with {bench_clients} benchmark clients", others))
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


# ---------------------------------------------------------------------------------------------- mixed load
OTHERS = ("benchmark", "per_query", "ranks", "tsne", "evaluate_features")


class AppProcess:
    """``python app.py`` of ``repo`` in a subprocess on a free port (its log in ``log_path``)."""

    def __init__(self, repo: str, log_path: str) -> None:
        import subprocess
        import sys

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(self.port),
                   GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
        self.log = open(log_path, "w")  # noqa: SIM115 — closed in close()
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=repo, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def wait_served(self, timeout: float = 600.0) -> None:
        import urllib.request

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"app.py did not serve {self.url} within {timeout:.0f} s")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except Exception:  # noqa: BLE001 — it did not stop: kill it
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def _gen_seconds(message: str) -> float | None:
    """The app's own generation time from /generate's message ("Generated 8 poses × 2 IFR setting(s) in 3.4 s")."""
    import re

    m = re.search(r"Generated \d+ poses .{0,40}? in ([0-9.]+) s", message or "")
    return float(m.group(1)) if m else None


def _mixed_call(client, endpoint: str, rng: random.Random, exported) -> dict | None:
    """One request of ``endpoint`` with random settings; for /generate the app's own time (None otherwise)."""
    from gradio_client import handle_file

    from pose2id_demo.ui.app import EXAMPLES_DIR

    task, bb = "standard", rng.choice(["synthped-reid", "imagenet-mobilenetv2"])
    eta, k1, k2 = rng.choice([0.25, 0.5, 1.0, 1.5, 2.0, 3.0]), rng.randint(1, 8), rng.randint(1, 8)
    apply = rng.choice(["query", "gallery", "both"])
    if endpoint == "generate":
        ex = rng.choice(sorted(EXAMPLES_DIR.glob("*.jpg")))
        out = client.predict(image=handle_file(str(ex)), use_ifr="both", steps=20, cfg=3.5, seed=rng.randint(0, 10**6),
                             eta=0.5, custom_pose=None, backbone="synthped-reid", api_name="/generate")
        seconds = _gen_seconds(out[5] if isinstance(out[5], str) else "")
        if seconds is None or not isinstance(out[0], list) or len(out[0]) < 8:
            raise RuntimeError(f"no images in the answer: {str(out[5])[:120]}")
        return {"gen_s": seconds}
    if endpoint == "benchmark":
        client.predict(task, bb, eta, k1, k2, apply, apply, rng.random() < 0.1, api_name="/benchmark")
    elif endpoint == "per_query":
        client.predict(task, bb, eta, k1, k2, apply, apply, False, api_name="/per_query")
    elif endpoint == "ranks":
        client.predict(task, bb, rng.randint(0, 251), eta, k1, k2, apply, apply, False, api_name="/ranks")
    elif endpoint == "tsne":
        client.predict(task, bb, eta, k1, k2, apply, apply, rng.randint(5, 15), api_name="/tsne")
    elif endpoint == "evaluate_features":
        client.predict(handle_file(exported), k1, k2, eta, apply, apply, api_name="/evaluate_features")
    return None


def _mixed_phase(url: str, gen_clients: int, other_clients: int, seconds: float, exported: str) -> dict:
    """``gen_clients`` clients generating and ``other_clients`` clients cycling through :data:`OTHERS`, for
    ``seconds`` (a request running at the end is waited for)."""
    from gradio_client import Client

    lat: dict[str, list[float]] = defaultdict(list)
    gen_s: list[float] = []
    fails: dict[str, list[str]] = defaultdict(list)
    lock = threading.Lock()
    plan = ["generate"] * gen_clients + [OTHERS[i % len(OTHERS)] for i in range(other_clients)]
    clients = [Client(url, verbose=False, httpx_kwargs={"timeout": 1800}) for _ in plan]
    load0 = os.getloadavg()[0]
    deadline = time.monotonic() + seconds

    def worker(i: int) -> None:
        rng = random.Random(1000 + i)
        ep = plan[i]
        if ep != "generate":
            time.sleep(rng.random() * 2)  # spread the others' first requests
        while time.monotonic() < deadline:
            t = time.perf_counter()
            try:
                extra = _mixed_call(clients[i], ep, rng, exported)
                with lock:
                    lat[ep].append(time.perf_counter() - t)
                    if extra and extra["gen_s"] is not None:
                        gen_s.append(extra["gen_s"])
            except Exception as exc:  # noqa: BLE001 — counted and reported
                with lock:
                    fails[ep].append(f"{type(exc).__name__}: {str(exc)[:160]}")

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(plan))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 900)
    return {"lat": dict(lat), "gen_s": gen_s, "fails": dict(fails), "load_start": round(load0, 2),
            "load_end": round(os.getloadavg()[0], 2)}


def _p(v: list[float]) -> tuple[float, float] | None:
    return _p50_p95(v) if v else None


def mixed(args: argparse.Namespace) -> dict:
    """The ``--mixed`` scenario (module docstring); returns and prints every phase."""
    import json
    import tempfile

    from gradio_client import Client

    repo = args.app_dir or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    logdir = tempfile.mkdtemp(prefix="pose2id-mixed-")
    app = AppProcess(repo, os.path.join(logdir, "app.log"))
    out: dict = {"app_dir": repo, "nproc": os.cpu_count(), "phases": {}}
    try:
        app.wait_served()
        c = Client(app.url, verbose=False, httpx_kwargs={"timeout": 1800})
        # Before measuring: a real generation (an app with a launch-time placeholder answers without images
        # until its warm-up is over) and an exported feature file for the evaluating clients.
        t = time.perf_counter()
        while True:
            try:
                _mixed_call(c, "generate", random.Random(0), None)
                break
            except RuntimeError:
                time.sleep(2)
        print(f"first real generation {time.perf_counter() - t:.1f} s after the page was served", flush=True)
        exported = c.predict("standard", "synthped-reid", api_name="/export_features")
        exported = exported if isinstance(exported, str) else exported[0]
        if args.settle:  # let the launch-time warm-up finish first (it computes in the idle gaps)
            print(f"settling for {args.settle:.0f} s", flush=True)
            time.sleep(args.settle)
        phases = [("quiet: 1 generating client", 1, 0, args.quiet_seconds),
                  ("quiet: 4 generating clients", 4, 0, args.quiet_seconds),
                  ("1 generating among 27 others", 1, 27, args.seconds),
                  ("4 generating among 24 others", 4, 24, args.seconds)]
        phases = [p for p in phases if any(p[0].endswith(f) for f in args.phases.split(","))]
        for name, g, o, secs in phases:
            print(f"[{name}] {secs:.0f} s, load average before: "
                  f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
            res = _mixed_phase(app.url, g, o, secs, exported)
            out["phases"][name] = res
            e2e, own = _p(res["lat"].get("generate", [])), _p(res["gen_s"])
            e2e_s = "{:.1f} / {:.1f} s".format(*e2e) if e2e else "none"
            own_s = "{:.1f} / {:.1f} s".format(*own) if own else "none"
            print(f"  generations: {len(res['lat'].get('generate', []))}; end-to-end p50 / p95 "
                  f"{e2e_s}; the app's own generation time p50 / p95 "
                  f"{own_s}; load {res['load_start']} -> {res['load_end']}",
                  flush=True)
            for ep in OTHERS:
                v = res["lat"].get(ep, [])
                if v or res["fails"].get(ep):
                    print(f"  {ep:18s} served {len(v):4d}, failed {len(res['fails'].get(ep, [])):3d}"
                          + (", p50 / p95 {:.1f} / {:.1f} s".format(*_p50_p95(v)) if v else ""), flush=True)
            for ep, msgs in res["fails"].items():
                print(f"  e.g. {ep} failed: {msgs[0]}", flush=True)
        for name, g, o, _ in phases:
            if not o:
                continue
            quiet = out["phases"].get(f"quiet: {g} generating client{'s' if g > 1 else ''}")
            if quiet is None:
                continue
            q_e2e, q_own = _p(quiet["lat"].get("generate", [])), _p(quiet["gen_s"])
            res = out["phases"][name]
            e2e, own = _p(res["lat"].get("generate", [])), _p(res["gen_s"])
            if q_e2e and e2e:
                ratio = e2e[1] / q_e2e[1]
                print(f"{name}: end-to-end p95 {e2e[1]:.1f} s = {ratio:.2f} x quiet ({q_e2e[1]:.1f} s): target <= 3 "
                      f"{'met' if ratio <= 3 else 'MISSED'}")
            if q_own and own:
                ratio = own[1] / q_own[1]
                print(f"{name}: the app's own generation time p95 {own[1]:.1f} s = {ratio:.2f} x quiet "
                      f"({q_own[1]:.1f} s): target <= 3 {'met' if ratio <= 3 else 'MISSED'}")
    finally:
        app.close()
    print(f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; app log {logdir}/app.log")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return out


# ------------------------------------------------------------------------------------------ red-team costs
def _zero_npy_member(zf, name: str, shape: tuple[int, ...]) -> None:
    """A member holding a .npy of float32 zeros of ``shape``, streamed in 1 MB chunks."""
    import numpy as np

    with zf.open(name, "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        left, chunk = int(np.prod(shape)) * 4, bytes(1 << 20)
        while left:
            f.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))


def attack_costs(cases: list[str], workdir: str) -> None:
    """What each red-team case costs the engine of the checkout on ``sys.path`` (run it with ``PYTHONPATH`` of an
    older checkout to compare): wall and CPU seconds, the peak of traced allocations, and the answer."""
    import json
    import resource
    import tracemalloc
    import zipfile

    import numpy as np

    from pose2id_demo.engine import Engine, Pose2IDError, load_custom_pose

    rng = np.random.default_rng(0)
    valid = dict(q_feats=rng.normal(size=(6, 8)).astype(np.float32),
                 g_feats=rng.normal(size=(12, 8)).astype(np.float32), q_pids=np.arange(6), g_pids=np.arange(12) % 6,
                 q_camids=np.zeros(6, int), g_camids=np.ones(12, int))

    def make(case: str) -> tuple[str, object]:
        path = os.path.join(workdir, case.replace(" ", "_"))
        if case.startswith("pose json"):
            n = {"pose json 80 KB": 40_000, "pose json 1 MB": 500_000}[case]
            with open(path + ".json", "w") as f:
                f.write('"' + '\\"' * n)
            return path + ".json", load_custom_pose
        if case == "npz extensionless twin":
            np.savez_compressed(path + ".npz", **valid)
            with zipfile.ZipFile(path + ".npz", "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                _zero_npy_member(zf, "q_feats", (65_000, 4_000))
            return path + ".npz", Engine().evaluate_features
        if case == "npz M = 80000":
            np.savez_compressed(path + ".npz", **valid, q_gen=np.ones((6, 80_000, 8), np.float32),
                                g_gen=np.ones((12, 80_000, 8), np.float32))
            return path + ".npz", Engine().evaluate_features
        if case == "zip of 2 million entries":
            np.savez(path + ".npz", **valid)
            with zipfile.ZipFile(path + ".npz", "a") as zf:
                for i in range(2_000_000):
                    zf.writestr(zipfile.ZipInfo(f"d{i}/"), b"")
            return path + ".npz", Engine().evaluate_features
        raise SystemExit(f"unknown case {case!r}")

    print(f"load average before: {', '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    for case in cases:
        path, fn = make(case)
        size = os.path.getsize(path)
        tracemalloc.start()
        t, c = time.perf_counter(), time.process_time()
        try:
            fn(path)
            answer = "answered with a result"
        except Pose2IDError as exc:
            answer = str(exc)
        except Exception as exc:  # noqa: BLE001 — reported
            answer = f"{type(exc).__name__}: {exc}"
        wall, cpu = time.perf_counter() - t, time.process_time() - c
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"case": case, "file_bytes": size, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
                          "traced_peak_mb": round(peak / 2**20, 1), "max_rss_mb_so_far": round(rss),
                          "answer": answer[:200], "load": round(os.getloadavg()[0], 2)}, ensure_ascii=False),
              flush=True)
        os.remove(path)


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
    ap.add_argument("--mixed", action="store_true", help="generation quiet, then among 27 and with 3 more "
                    "generating among 24 other clients (python app.py in a subprocess)")
    ap.add_argument("--quiet-seconds", type=float, default=60.0, help="the quiet phase of --mixed")
    ap.add_argument("--app-dir", help="with --mixed: the checkout whose app.py runs (default: this one)")
    ap.add_argument("--phases", default="1 generating client,4 generating clients,27 others,24 others",
                    help="with --mixed: the phases to run (ends of their names, comma-separated)")
    ap.add_argument("--json", help="with --mixed: write every latency here")
    ap.add_argument("--settle", type=float, default=0.0, help="with --mixed: seconds to wait after the first "
                    "generation (the app's warm-up finishes meanwhile)")
    ap.add_argument("--attacks", help="comma-separated red-team cases to cost: 'pose json 80 KB', 'pose json 1 MB', "
                    "'npz extensionless twin', 'npz M = 80000', 'zip of 2 million entries'")
    args = ap.parse_args(argv)
    if args.attacks:
        import tempfile

        attack_costs([c.strip() for c in args.attacks.split(",")], tempfile.mkdtemp(prefix="pose2id-attacks-"))
        return 0
    if args.mixed:
        mixed(args)
        return 0
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
