"""Centralization at the sizes researchers use: MSMT17 exact, a faiss index chosen on 100k, and 10^6 images.

    python -m bench.bench_scale --part msmt      # N = 93,820 (11,659 query + 82,161 gallery), d = 768, exact
    python -m bench.bench_scale --part faiss     # 100k subset: faiss indexes against exact NFC (recall, mAP)
    python -m bench.bench_scale --part million   # 3,368 query + 996,632 gallery, NFC with faiss, evaluate

Synthetic clustered features (``make_features``): every identity has a centre drawn from a standard normal
in d = 768 dims; its images are centre + ``--noise`` x standard normal noise, L2-normalised; cameras are
uniform.  With ``--intrinsic-dim r`` centres and noise are drawn in a random r-dim subspace instead, plus an
``--ambient`` residual outside it (features near a low-dimensional set, as real ReID features are).  Query
identities are the first ``n_query_ids``; gallery images are of those identities (so queries have matches)
and, in ``million``, of further "distractor" identities (10 images each), as in Market-1501 + 500k
distractors.  Each part prints times, the process's peak resident memory above what it held after
the features were made (Linux VmHWM), and load averages (the machine is shared), and writes every printed
line and its figures to ``docs/scale_<part>.json`` (``--json``; rewritten after each step, so a run that is
stopped keeps what it measured).

``faiss`` compares the indexes given by ``--indexes`` (``factory:nprobe`` pairs; nprobe is the HNSW search
beam for HNSW) or, by default, IVF-Flat with ~4 sqrt(N) lists searching 1/32, 1/16 and 1/8 of them,
HNSW32 with beam 64 and the library's default (HNSW32, beam 128).  ``million`` runs NFC with the index of
``--faiss-index`` / ``--nprobe`` (default: the library's :func:`faiss_default`) — the same search as
``python -m pose2id_demo eval --index faiss``.

The exact GEMM floor of ``msmt`` is measured on row blocks: the time of ``torch.mm`` of a (4096, d) block
against all N rows (the N x N float32 matrix — 35 GB — cannot exist here), scaled by N / 4096 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

from pose2id_demo.centralization import nfc_sets
from pose2id_demo.centralization.nfc import centralize_neighbors, faiss_default, mutual_mask, topk_neighbors
from pose2id_demo.metrics.rank import evaluate_features


def _hwm_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _reset_hwm() -> None:
    """Reset the peak-RSS counter (Linux: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _load() -> str:
    return "load avg " + " ".join(f"{v:.2f}" for v in os.getloadavg())


REPORT: dict = {"lines": [], "steps": {}}
_JSON_PATH: str | None = None


def _plain(o):
    """JSON form of numpy values (a metrics dict's CMC curve is kept to its first 20 ranks)."""
    if isinstance(o, np.ndarray):
        return o.ravel()[:20].tolist()
    return o.item() if isinstance(o, np.generic) else str(o)


def say(line: str, step: str | None = None, **values) -> None:
    """Print ``line``; record it (and ``values`` under ``step``) in the JSON report, rewritten at once."""
    print(line, flush=True)
    REPORT["lines"].append(line)
    if step is not None:
        values["load_avg"] = [round(v, 2) for v in os.getloadavg()]
        REPORT["steps"][step] = values
    if _JSON_PATH:
        tmp = _JSON_PATH + ".tmp"
        with open(tmp, "w") as f:
            json.dump(REPORT, f, indent=1, default=_plain)
            f.write("\n")
        os.replace(tmp, _JSON_PATH)


class Peak:
    """Peak RSS of a block above the RSS at its start."""

    def __enter__(self):
        _reset_hwm()
        self.base = _rss_mib()
        self.t = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t
        self.mib = _hwm_mib() - self.base


def make_features(n_per_id: np.ndarray, d: int, noise: float, seed: int, intrinsic_dim: int = 0,
                  ambient: float = 0.0) -> np.ndarray:
    """Images of identity i, L2-normalised (float32), identities in order.

    ``intrinsic_dim = 0``: centre_i + noise * N(0, I_d), centres N(0, I_d) — isotropic in all d dimensions.
    ``intrinsic_dim = r``: (c_i + noise * N(0, I_r)) U^T + ambient * sqrt(r / d) * N(0, I_d), c_i ~ N(0, I_r),
    U a random orthonormal d x r basis shared by all images: the features lie near an r-dimensional subspace
    (``ambient`` is the off-subspace residual's norm relative to a centre's), as real ReID features lie near
    a low-dimensional set.
    """
    rng = np.random.default_rng(seed)
    r = intrinsic_dim or d
    basis = None
    if intrinsic_dim:
        basis = np.linalg.qr(rng.standard_normal((d, r)))[0].astype(np.float32).T  # (r, d), orthonormal rows
    out = np.empty((int(n_per_id.sum()), d), np.float32)
    s = 0
    for start in range(0, n_per_id.size, 4096):  # identities in batches: bounded temporaries
        cnt = n_per_id[start : start + 4096]
        centres = rng.standard_normal((cnt.size, r), dtype=np.float32)
        e = s + int(cnt.sum())
        local = np.repeat(centres, cnt, axis=0)
        local += noise * rng.standard_normal((e - s, r), dtype=np.float32)
        if basis is None:
            out[s:e] = local
        else:
            out[s:e] = local @ basis
            out[s:e] += ambient * np.sqrt(r / d) * rng.standard_normal((e - s, d), dtype=np.float32)
        s = e
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


def split_dataset(n_ids: int, nq: int, ng: int, d: int, noise: float, seed: int, distractors: int = 0,
                  intrinsic_dim: int = 0, ambient: float = 0.0):
    """Queries and gallery of ``n_ids`` identities (+ distractor identities of 10 images in the gallery)."""
    rng = np.random.default_rng(seed + 1)
    q_pids = np.sort(rng.integers(0, n_ids, nq))
    g_pids = np.sort(np.concatenate([np.arange(n_ids), rng.integers(0, n_ids, ng - n_ids)]))
    n_dis_ids = -(-distractors // 10)
    dis_pids = np.repeat(np.arange(n_ids, n_ids + n_dis_ids), 10)[:distractors]
    all_pids = np.concatenate([q_pids, g_pids, dis_pids])
    order = np.argsort(all_pids, kind="stable")  # identities contiguous for make_features
    counts = np.bincount(all_pids, minlength=n_ids + n_dis_ids)
    feats_sorted = make_features(counts, d, noise, seed, intrinsic_dim, ambient)
    feats = np.empty_like(feats_sorted)
    feats[order] = feats_sorted
    del feats_sorted
    nqg = nq + ng + distractors
    cams = rng.integers(0, 6, nqg)
    q, g = feats[:nq], feats[nq:]
    return q, g, all_pids[:nq], all_pids[nq:], cams[:nq], cams[nq:]


def _shape(a) -> dict:
    """The feature model's subspace options (``make_features``) from the command line."""
    return {"intrinsic_dim": a.intrinsic_dim, "ambient": a.ambient}


def _model(a) -> str:
    """The feature model in words, for the printed lines."""
    if not a.intrinsic_dim:
        return f"noise {a.noise} (isotropic in {a.d} dims)"
    return f"noise {a.noise} in a {a.intrinsic_dim}-dim subspace, ambient {a.ambient}"


def gemm_floor_per_row(x: np.ndarray, rows: int = 4096, repeats: int = 2) -> float:
    """Seconds of torch.mm of a (rows, d) block against all N rows, per row (median of ``repeats``)."""
    xt = torch.from_numpy(x)
    rows = min(rows, x.shape[0] // repeats)
    out = torch.empty(rows, x.shape[0])
    times = []
    for r in range(repeats):
        a = xt[r * rows : (r + 1) * rows].clone()
        t = time.perf_counter()
        torch.mm(a, xt.T, out=out)
        times.append((time.perf_counter() - t) / rows)
    return statistics.median(times)


def pct(r: dict) -> str:
    return f"mAP {100 * r['mAP']:.2f}  Rank-1 {100 * r['Rank-1']:.2f}  mINP {100 * r['mINP']:.2f}"


def part_msmt(a) -> None:
    nq, ng, n_ids = 11659 // a.shrink, 82161 // a.shrink, 3060 // a.shrink
    q, g, qp, gp, qc, gc = split_dataset(n_ids, nq, ng, a.d, a.noise, a.seed, **_shape(a))
    n = nq + ng
    say(f"MSMT17 scale: {nq} query + {ng} gallery = {n}, d={a.d}, {n_ids} ids, {_model(a)}; "
        f"features {q.nbytes / 2**20 + g.nbytes / 2**20:.0f} MiB; {_load()}")
    floor_a = gemm_floor_per_row(np.concatenate([q, g]))
    with Peak() as p_sep:
        qs, gs = nfc_sets(q, g, a.k1, a.k2, mode="separate", progress=True)
    say(f"NFC separate: {p_sep.seconds:.1f} s, peak +{p_sep.mib:.0f} MiB; {_load()}")
    del qs, gs
    with Peak() as p_joint:
        qj, gj = nfc_sets(q, g, a.k1, a.k2, mode="joint", progress=True)
    say(f"NFC joint:    {p_joint.seconds:.1f} s, peak +{p_joint.mib:.0f} MiB; {_load()}")
    floor_b = gemm_floor_per_row(np.concatenate([q, g]))
    per_row_n = statistics.mean([floor_a, floor_b]) / n  # seconds per (row x row) product, one N-row GEMM
    floor_joint = per_row_n * n * n
    floor_sep = per_row_n * (nq * nq + ng * ng)
    say(f"GEMM floor (torch.mm on (4096, d) x (d, N) blocks, scaled; before {floor_a * n:.1f} s / after "
        f"{floor_b * n:.1f} s per N x N): joint N x N {floor_joint:.1f} s, separate nq^2 + ng^2 {floor_sep:.1f} s")
    say(f"NFC joint / GEMM floor:    {p_joint.seconds / floor_joint:.3f}  (target <= 1.3)")
    say(f"NFC separate / GEMM floor: {p_sep.seconds / floor_sep:.3f}  (target <= 1.3)")
    with Peak() as p_eb:
        base = evaluate_features(q, g, qp, gp, qc, gc, progress=True)
    say(f"evaluate baseline {nq} x {ng}: {p_eb.seconds:.1f} s, peak +{p_eb.mib:.0f} MiB; {pct(base)}")
    with Peak() as p_ej:
        res = evaluate_features(qj, gj, qp, gp, qc, gc)
    say(f"evaluate after joint NFC: {p_ej.seconds:.1f} s, peak +{p_ej.mib:.0f} MiB; {pct(res)}")
    peak = max(p_sep.mib, p_joint.mib, p_eb.mib, p_ej.mib)
    say(f"largest peak above the loaded features: {peak:.0f} MiB (target < 2048 MiB); {_load()}")


def mutual_pairs(nbr: np.ndarray, k1: int, k2: int) -> set:
    mask = mutual_mask(nbr, k1, k2)
    r, pos = np.nonzero(mask)
    return set(zip(r.tolist(), nbr[r, pos].tolist()))


def faiss_candidates(n: int, spec: str | None = None) -> list[tuple[str, int]]:
    """``factory:nprobe`` pairs from ``spec`` (comma-free factories joined by ``;``), or the default set."""
    if spec:
        out = []
        for item in spec.split(";"):
            factory, _, probe = item.rpartition(":")
            out.append((factory, int(probe)))
        return out
    lists = 2 ** int(round(np.log2(max(1.0, 4.0 * np.sqrt(n)))))  # ~4 sqrt(N) lists
    nlist = f"IVF{lists}"
    return [(f"{nlist},Flat", max(1, lists // 32)), (f"{nlist},Flat", max(1, lists // 16)),
            (f"{nlist},Flat", max(1, lists // 8)), ("HNSW32", 64), faiss_default()]


def million_sizes(a):
    """Market-1501's query and gallery (751 query identities) plus distractor identities of 10 images."""
    return 3368 // a.shrink, 15913 // a.shrink, 751 // a.shrink


def part_faiss(a) -> None:
    import faiss

    nq, ng_id, n_ids = million_sizes(a)
    n = 100_000 // a.shrink
    q, g, qp, gp, qc, gc = split_dataset(n_ids, nq, ng_id, a.d, a.noise, a.seed, distractors=n - nq - ng_id,
                                         **_shape(a))
    x = np.concatenate([q, g])
    del q, g
    k = max(a.k1, a.k2)
    say(f"faiss on a 100k subset (the 10^6 construction with {n - nq - ng_id} distractors): {nq} query + "
        f"{n - nq} gallery, d={a.d}, {_model(a)}, k1={a.k1}, k2={a.k2}; faiss {faiss.__version__}, "
        f"{faiss.omp_get_max_threads()} threads, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; {_load()}",
        "setup", n=n, nq=nq, d=a.d, noise=a.noise, **_shape(a), k1=a.k1, k2=a.k2, faiss=faiss.__version__)
    with Peak() as p_ex:
        exact = topk_neighbors(x, k, progress=True)
    ex_pairs = mutual_pairs(exact, a.k1, a.k2)
    ex_nfc = centralize_neighbors(x, exact, a.k1, a.k2)
    m_ex = evaluate_features(ex_nfc[:nq], ex_nfc[nq:], qp, gp, qc, gc)
    del ex_nfc
    m_0 = evaluate_features(x[:nq], x[nq:], qp, gp, qc, gc)
    say(f"exact top-{k}: {p_ex.seconds:.1f} s, peak +{p_ex.mib:.0f} MiB; exact NFC (joint): {len(ex_pairs)} "
        f"mutual pairs; {pct(m_ex)} (without NFC: {pct(m_0)}); {_load()}", "exact", seconds=p_ex.seconds,
        peak_mib=p_ex.mib, mutual_pairs=len(ex_pairs), nfc=m_ex, no_nfc=m_0)
    for factory, nprobe in faiss_candidates(n, a.indexes):
        with Peak() as p:
            approx = topk_neighbors(x, k, index="faiss", faiss_index=factory, nprobe=nprobe)
        ap_pairs = mutual_pairs(approx, a.k1, a.k2)
        recall = len(ap_pairs & ex_pairs) / max(1, len(ex_pairs))
        nb_recall = float((np.sort(approx, 1) == np.sort(exact, 1)).all(1).mean())
        z = centralize_neighbors(x, approx, a.k1, a.k2)
        m = evaluate_features(z[:nq], z[nq:], qp, gp, qc, gc)
        del z
        diff = 100 * (m["mAP"] - m_ex["mAP"])
        say(f"{factory:<22} nprobe/ef {nprobe:>3}: {p.seconds:6.1f} s, peak +{p.mib:5.0f} MiB, rows with the exact "
            f"top-{k} {100 * nb_recall:.2f} %, mutual-pair recall {recall:.4f} (target >= 0.99: "
            f"{'met' if recall >= 0.99 else 'missed'}), mAP {100 * m['mAP']:.2f} (diff {diff:+.3f} points, target "
            f"|.| <= 0.1: {'met' if abs(diff) <= 0.1 else 'missed'}); {_load()}",
            f"{factory} {nprobe}", factory=factory, nprobe=nprobe, seconds=p.seconds, peak_mib=p.mib,
            rows_exact=nb_recall, mutual_pair_recall=recall, mAP=m["mAP"], mAP_diff_points=diff, metrics=m)


def part_million(a) -> None:
    import faiss

    nq, ng_id, n_ids = million_sizes(a)
    n_total = 1_000_000 // a.shrink
    q, g, qp, gp, qc, gc = split_dataset(n_ids, nq, ng_id, a.d, a.noise, a.seed,
                                         distractors=n_total - nq - ng_id, **_shape(a))
    factory, nprobe = faiss_default()
    factory, nprobe = a.faiss_index or factory, a.nprobe or nprobe
    say(f"10^6 images: {nq} query + {g.shape[0]} gallery ({ng_id} of the query ids + "
        f"{g.shape[0] - ng_id} distractors), d={a.d}, {_model(a)}; features "
        f"{(q.nbytes + g.nbytes) / 2**30:.2f} GiB; faiss {faiss.__version__} {factory!r} nprobe/ef "
        f"{nprobe}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; RSS {_rss_mib():.0f} MiB; {_load()}",
        "setup", n=n_total, nq=nq, ng=int(g.shape[0]), d=a.d, noise=a.noise, **_shape(a), k1=a.k1, k2=a.k2,
        factory=factory, nprobe=nprobe, faiss=faiss.__version__)
    if not a.skip_evaluate:
        with Peak() as p_e0:
            base = evaluate_features(q, g, qp, gp, qc, gc, progress=True)
        say(f"evaluate {nq} x {g.shape[0]} (blocked): {p_e0.seconds:.1f} s, peak +{p_e0.mib:.0f} MiB "
            f"(the matrix would be {nq * g.shape[0] * 4 / 2**30:.1f} GiB); {pct(base)}; {_load()}", "evaluate",
            seconds=p_e0.seconds, peak_mib=p_e0.mib, metrics=base)
    if a.skip_nfc:
        return
    with Peak() as p_n:
        qj, gj = nfc_sets(q, g, a.k1, a.k2, mode="joint", index="faiss", faiss_index=factory, nprobe=nprobe,
                          progress=True)
    say(f"NFC joint with faiss {factory} nprobe/ef {nprobe}, N = {n_total}: {p_n.seconds:.1f} s, peak "
        f"+{p_n.mib:.0f} MiB; {_load()}", "nfc_faiss", seconds=p_n.seconds, peak_mib=p_n.mib)
    del q, g
    with Peak() as p_e1:
        res = evaluate_features(qj, gj, qp, gp, qc, gc)
    say(f"evaluate after NFC: {p_e1.seconds:.1f} s, peak +{p_e1.mib:.0f} MiB; {pct(res)}; {_load()}",
        "evaluate_after_nfc", seconds=p_e1.seconds, peak_mib=p_e1.mib, metrics=res)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("msmt", "faiss", "million"), required=True)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--noise", type=float, default=3.0)
    ap.add_argument("--intrinsic-dim", type=int, default=0,
                    help="centres and noise in a random subspace of this dimension (0: isotropic in d dims)")
    ap.add_argument("--ambient", type=float, default=0.1,
                    help="with --intrinsic-dim: off-subspace noise, its norm relative to a centre's")
    ap.add_argument("--k1", type=int, default=2)
    ap.add_argument("--k2", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shrink", type=int, default=1, help="divide every size by this (smoke test)")
    ap.add_argument("--indexes", help="faiss: 'factory:nprobe;factory:nprobe' to compare (default: see above)")
    ap.add_argument("--faiss-index", help="million: faiss index_factory string (default: faiss_default())")
    ap.add_argument("--nprobe", type=int, help="million: IVF lists searched / HNSW beam")
    ap.add_argument("--skip-evaluate", action="store_true", help="million: no evaluate before NFC")
    ap.add_argument("--skip-nfc", action="store_true", help="million: evaluate only")
    ap.add_argument("--json", help="report file (default docs/scale_<part>.json; 'none': no file)")
    a = ap.parse_args()
    global _JSON_PATH
    _JSON_PATH = None if a.json == "none" else a.json or f"docs/scale_{a.part}.json"
    REPORT.update(part=a.part, argv=sys.argv[1:], shrink=a.shrink, cpus=os.cpu_count(),
                  started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    say(f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs")
    {"msmt": part_msmt, "faiss": part_faiss, "million": part_million}[a.part](a)


if __name__ == "__main__":
    main()
