"""Command line: ``python -m pose2id_demo COMMAND``.

One workflow for a Market-layout dataset folder (``--help`` of each command has the details)::

    python -m pose2id_demo demo-dataset DIR                   # a small Market-layout folder from SynthPed
    python -m pose2id_demo extract  --data ROOT --backbone NAME --out FEATURES.npz
    python -m pose2id_demo generate --data ROOT --backbone NAME --out ROOT/gen-NAME.npz
    python -m pose2id_demo eval FEATURES.npz --gen ROOT/gen-NAME.npz [--plot-distances D.png]
    python -m pose2id_demo visrank FEATURES.npz --gen ROOT/gen-NAME.npz --out DIR

``eval`` prints a before/after table — baseline, +NFC (Alg. 1), +IPG (eq. 9, with the generated features of
``--gen`` or of the file itself) and +NFC+IPG — of mAP, Rank-1/5/10, mINP (Market-1501 protocol, percent) and
ID² (over query + gallery, distractors and junk — pid <= 0 — left out; ``--id2 paper`` eqs. 20-21,
``--id2 official`` the official ID2.py).  The rows are :func:`pose2id_demo.ablation.table`'s, the same the app
shows, and η defaults to :data:`pose2id_demo.ablation.DEFAULT_ETA` there as here.  With ``--rerank`` every
setting gets a second row with k-reciprocal re-ranking; ``--plot-distances``, ``--plot-identity`` and
``--ranked-lists`` write the same-identity vs different-identity distance histograms, the paper's Fig. 2 for
one identity and every query's ranked list (worst AP first).  A bad file or bad option prints one
``error: ...`` line on stderr and exits with status 2.  Long steps show a progress bar (count and ETA) and
every file written is printed.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from . import ablation
from .featurefile import (
    DEFAULT_MAX_BYTES,
    FeatureSet,
    attach_generated,
    load_feature_npz,
    read_file_info,
)
from .metrics import ID2_VARIANTS, id2_label

__all__ = ["build_parser", "load_for_eval", "main", "run_eval", "setup_logging"]

EXIT_BAD_INPUT = 2
ETA_HELP = (f"eta of eq. 9 (default {ablation.DEFAULT_ETA:g}, as in the app: it suits the shipped CPU generator; "
            "with the official weights use the paper's value: 2 on Market-1501, 1 on Occluded-REID, 0.25 on "
            "SYSU-MM01)")


class _TqdmHandler(logging.Handler):
    """Log lines to the current ``sys.stderr`` through ``tqdm.write``, so that they do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 — logging must never raise
            self.handleError(record)


def setup_logging(level: int = logging.INFO) -> None:
    """Send the package's log lines (``pose2id_demo.*``) at ``level`` and above to stderr: without a handler
    Python shows only warnings, and the INFO lines of ``extract`` and ``generate`` (where the generation cache
    and each ``--shard`` part go, the time taken) would be lost.  Once per process; the level each call."""
    pkg = logging.getLogger("pose2id_demo")
    if not any(isinstance(h, _TqdmHandler) for h in pkg.handlers):
        handler = _TqdmHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        pkg.addHandler(handler)
    pkg.setLevel(level)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2 (argparse's default prints the usage too)
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see 'python -m pose2id_demo {self.prog.split()[-1]} --help')\n")


def _nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return v


def _finite_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be finite, got {text!r}")
    return v


def _add_setting_args(p: argparse.ArgumentParser) -> None:
    """The options of an ablation setting, shared by ``eval`` and ``visrank``."""
    p.add_argument("--gen", metavar="GEN.npz",
                   help="generated features of these images (the file 'generate' wrote): adds the +IPG rows")
    p.add_argument("--k1", type=_nonneg_int, default=2, help="NFC k1 (Alg. 1; default 2)")
    p.add_argument("--k2", type=_nonneg_int, default=2, help="NFC k2 (Alg. 1; default 2)")
    p.add_argument("--eta", type=_finite_float, default=ablation.DEFAULT_ETA, help=ETA_HELP)
    p.add_argument("--nfc-mode", choices=ablation.NFC_MODES, default="separate",
                   help="neighbours within each set (published setting, default) or across query+gallery")
    p.add_argument("--nfc-apply", choices=("query", "gallery", "both"), default="both", help="sets NFC centralizes")
    p.add_argument("--index", choices=("exact", "faiss"), default="exact",
                   help="NFC neighbour search: exact, or faiss (approximate, for >= 10^6 images; "
                        "requirements-scale.txt)")
    p.add_argument("--max-bytes", type=_nonneg_int, default=DEFAULT_MAX_BYTES, help="feature file size limit")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pose2id_demo", description="Pose2ID feature centralization tools: demo-dataset, extract, "
                     "generate, eval, visrank (one workflow for a Market-layout folder).")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ev = sub.add_parser("eval", help="evaluate a feature file before/after feature centralization")
    ev.add_argument("features", help=".npz with q_feats, g_feats, q_pids, g_pids, q_camids, g_camids [, q_gen, g_gen]")
    _add_setting_args(ev)
    ev.add_argument("--rerank", action="store_true", help="add k-reciprocal re-ranking rows (k1=20, k2=6, lambda=0.3)")
    ev.add_argument("--id2", choices=ID2_VARIANTS, default="paper",
                    help="ID² reading: paper (eqs. 20-21, default) or official (ID2.py: squared distance, per sample)")
    ev.add_argument("--plot-distances", metavar="OUT.png",
                    help="write the same-identity vs different-identity distance histograms of every row, with "
                         "their overlap")
    ev.add_argument("--plot-identity", metavar="OUT.png",
                    help="write the paper's Fig. 2 for one identity: one feature dimension around the identity "
                         "centre, baseline vs the last row")
    ev.add_argument("--identity", type=int, default=None, metavar="PID",
                    help="identity of --plot-identity (default: the one with the most images)")
    ev.add_argument("--dim", type=_nonneg_int, default=None,
                    help="feature dimension of --plot-identity (default: the one the identity varies most in)")
    ev.add_argument("--ranked-lists", metavar="OUT.csv",
                    help="write every query's top --top gallery items (distance, camera, match) and AP, baseline "
                         "and the last row, worst AP first")
    ev.add_argument("--top", type=_nonneg_int, default=10, help="length of the ranked lists (default 10)")
    _add_dataset_commands(sub)
    vr = sub.add_parser("visrank", help="torchreid-style ranked-list strips (green: same identity, red: not) of the "
                                        "worst and best queries, baseline above the last row, one PNG per query")
    vr.add_argument("features", help="a feature file written by extract (it names the images)")
    _add_setting_args(vr)
    vr.add_argument("--data", metavar="ROOT", default=None,
                    help="the dataset folder the file's image paths are relative to (default: the one extract "
                         "recorded in the file)")
    vr.add_argument("--out", required=True, metavar="DIR", help="folder for the PNG files")
    vr.add_argument("--top", type=_nonneg_int, default=10, help="gallery images per strip (default 10)")
    vr.add_argument("--num", type=_nonneg_int, default=10,
                    help="queries of each kind (default 10); no query is in both lists: with fewer than 2 x NUM "
                         "queries (with a valid match) and --which both, the worst list gets half of them, rounded "
                         "up, and the best list the rest")
    vr.add_argument("--which", choices=("worst", "best", "both"), default="both",
                    help="lowest-AP queries, highest-AP queries, or both (default); by the last row's AP")
    vr.add_argument("--rerank", action="store_true", help="rank with k-reciprocal re-ranking")
    dd = sub.add_parser("demo-dataset", help="write a small Market-layout folder rendered by SynthPed (images only, "
                                             "as your own data would be), to try extract / generate / eval on")
    dd.add_argument("out", metavar="DIR", help="the folder to create (must not exist, or be empty)")
    dd.add_argument("--ids", type=_nonneg_int, default=None,
                    help="test identities (default 4: 18 queries, 62 gallery images; SynthPed has 56)")
    dd.add_argument("--seed", type=_nonneg_int, default=0)
    return parser


def _add_dataset_commands(sub) -> None:
    """``extract`` / ``generate``: a user's own Market-layout folder (pose2id_demo.reid.extract,
    pose2id_demo.ipg.precompute; imported only when run, so ``eval`` does not load torch)."""
    ex = sub.add_parser("extract", help="ReID features of a Market-layout folder into a feature file (resumable)")
    ex.add_argument("--data", required=True, metavar="ROOT", help="Market-layout folder (query/, bounding_box_test/)")
    ex.add_argument("--backbone", required=True, metavar="NAME",
                    help="registered backbone (synthped-reid, imagenet-mobilenetv2) or hf:<model id or folder> "
                         "(a transformers image model, e.g. hf:google/vit-base-patch16-224)")
    ex.add_argument("--out", required=True, metavar="FEATURES.npz")
    ex.add_argument("--batch-size", type=_nonneg_int, default=64)
    ex.add_argument("--threads", type=_nonneg_int, default=None, help="torch CPU threads")
    ex.add_argument("--no-generated", action="store_true",
                    help="ignore ROOT/query_gen/ and ROOT/bounding_box_test_gen/ (the official pipeline's generated "
                         "images, read into q_gen / g_gen by default)")
    ge = sub.add_parser("generate", help="IPG features in the 8 representative poses of a Market-layout folder's "
                                         "queries and gallery (resumable; several processes/GPUs with "
                                         "'accelerate launch --multi_gpu --num_processes N -m pose2id_demo generate')")
    ge.add_argument("--data", required=True, metavar="ROOT", help="Market-layout folder (query/, bounding_box_test/)")
    ge.add_argument("--ipg", default="tiny", metavar="tiny|DIR|hub[:REPO@REV]",
                    help="'tiny' (shipped), a saved pipeline folder, or the official release: its folder or "
                         "hub[:REPO@REV] (the Hugging Face repo yuanc3/Pose2ID, fetched into the Hub cache)")
    ge.add_argument("--backbone", action="append", metavar="NAME",
                    help="backbone(s) for the generations' features (repeatable; default synthped-reid)")
    ge.add_argument("--out", required=True, metavar="GEN.npz", help="output (several --backbone: GEN-<backbone>.npz)")
    ge.add_argument("--steps", type=_nonneg_int, default=20, help="DDIM steps (paper: 20)")
    ge.add_argument("--guidance", type=_finite_float, default=3.5, help="CFG scale (paper: 3.5)")
    ge.add_argument("--seed", type=_nonneg_int, default=None,
                    help="default 42; 12580 (the official inference's) with the official weights")
    ge.add_argument("--refs-per-batch", type=_nonneg_int, default=4)
    ge.add_argument("--threads", type=_nonneg_int, default=None, help="torch CPU threads")
    ge.add_argument("--device", default=None, help="torch device (default: the process's GPU under accelerate "
                                                   "launch, else cuda if available, else cpu)")
    ge.add_argument("--images-out", default=None, metavar="DIR",
                    help="write the generations as PNG files in the official layout (DIR/query_gen/pose1..8/, "
                         "DIR/bounding_box_test_gen/pose1..8/; resumable) instead of holding them in memory, then "
                         "extract a whole feature file from them: for the official 512x256 generator on a large "
                         "dataset (DIR may be ROOT itself)")
    ge.add_argument("--shard", default=None, metavar="K/N",
                    help="only part K of N (whole batches, round-robin; run N anywhere, then once without --shard "
                         "to merge); accelerate launch does this by itself")


def _settings(eta: float, k1: int, k2: int, nfc_mode: str, nfc_apply: str, id2_variant: str = "paper",
              index: str = "exact", rerank: bool = False) -> ablation.Settings:
    return ablation.Settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_apply, ipg_on="both", nfc_mode=nfc_mode,
                             id2_variant=id2_variant, nfc_index=index, rerank=rerank)


def run_eval(
    data: dict,
    k1: int = 2,
    k2: int = 2,
    eta: float = ablation.DEFAULT_ETA,
    nfc_mode: str = "separate",
    nfc_apply: str = "both",
    use_rerank: bool = False,
    id2_variant: str = "paper",
    index: str = "exact",
    progress: bool = False,
) -> list[dict]:
    """Evaluate every setting (:func:`pose2id_demo.ablation.table`); one dict per table row: the metrics as
    fractions (:func:`pose2id_demo.metrics.evaluate`'s keys) plus ``ID2``; with ``use_rerank`` each row is
    followed by its re-ranked twin (``setting`` + `` +RR``).  ``progress``: a progress bar over the rows (on a
    terminal, once a row takes more than a second)."""
    fs = FeatureSet.from_arrays(data)
    s = _settings(eta, k1, k2, nfc_mode, nfc_apply, id2_variant, index)
    rr = ablation.Settings(**{**s.__dict__, "rerank": True})
    jobs = [(row, set_) for row in ablation.row_names(fs, s) for set_ in ((s, rr) if use_rerank else (s,))]
    bar = None
    if progress:
        bar = tqdm(total=len(jobs), desc="eval rows", unit="row", delay=1.0, leave=False, file=sys.stderr,
                   disable=None)  # on a terminal only: the table follows on stdout
    results = []
    for row, set_ in jobs:
        if bar is not None:
            bar.set_postfix_str(row + (" +RR" if set_.rerank else ""))
        r = ablation.metric_row(fs, set_, row)
        results.append({**r, "setting": row + (" +RR" if set_.rerank else ""), "ID2": r["ID²"]})
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    return results


def load_for_eval(features: str, gen: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES
                  ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A feature file's arrays (:func:`pose2id_demo.featurefile.load_feature_npz`), with the generated features
    of ``gen`` attached when given (:func:`pose2id_demo.featurefile.attach_generated`: they must belong to the
    same images), and the file's recorded image paths and settings (:func:`read_file_info`).

    Raises:
        ValueError: a sentence naming what is wrong with either file.
    """
    data = load_feature_npz(features, max_bytes=max_bytes)
    info = read_file_info(features)
    if gen is not None:
        from .ipg.precompute import read_generated

        gpath = Path(gen)
        if not gpath.is_file():
            raise ValueError(f"{gpath}: no such file")
        if gpath.stat().st_size > max_bytes:
            raise ValueError(f"{gpath.name}: {gpath.stat().st_size} bytes is over the {max_bytes}-byte limit")
        try:
            generated = read_generated(gpath)
        except (OSError, KeyError) as e:
            raise ValueError(f"{gpath.name}: not a generated-feature file ({e})") from None
        data = attach_generated(data, generated, info, name=gpath.name)
    return data, info


def _table(results: list[dict]) -> str:
    head = f"{'setting':<16}{'mAP':>8}{'R-1':>8}{'R-5':>8}{'R-10':>8}{'mINP':>8}{'ID²':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['setting']:<16}{100 * r['mAP']:>8.2f}{100 * r['Rank-1']:>8.2f}{100 * r['Rank-5']:>8.2f}"
            f"{100 * r['Rank-10']:>8.2f}{100 * r['mINP']:>8.2f}{r['ID2']:>9.4f}"
        )
    return "\n".join(lines)


def _write_views(args, data: dict[str, np.ndarray]) -> list[str]:
    """``eval``'s optional outputs; returns the lines to print (one per file written)."""
    fs = FeatureSet.from_arrays(data)
    s = _settings(args.eta, args.k1, args.k2, args.nfc_mode, args.nfc_apply, args.id2, args.index)
    after = ablation.after_row(fs, s)
    lines = []
    if args.plot_distances:
        from .figures import distance_distribution_figure, save_figure

        dd = ablation.distance_distributions(fs, s)
        title = f"{Path(args.features).name}: query-gallery distances (η={args.eta:g}, k1={args.k1}, k2={args.k2})"
        path = save_figure(distance_distribution_figure(dd, title), args.plot_distances)
        overlaps = " → ".join(f"{row} {h['overlap']:.3f}" for row, h in dd["rows"].items())
        lines.append(f"wrote {path} (same/different-identity overlap: {overlaps})")
    if args.plot_identity:
        from .figures import identity_dimension_figure, save_figure

        view = ablation.identity_view(fs, s, pid=args.identity, dim=args.dim)
        title = f"{Path(args.features).name}: identity {view['pid']}, dimension {view['dim']} (paper Fig. 2)"
        path = save_figure(identity_dimension_figure(view, title), args.plot_identity)
        b, a = view["before"], view["after"]
        lines.append(f"wrote {path} (identity {view['pid']}, dimension {view['dim']}: σ {b['std']:.4f} → "
                     f"{a['std']:.4f}, mean distance to the centre {b['mean_distance_to_centre']:.3f} → "
                     f"{a['mean_distance_to_centre']:.3f} with {after})")
    if args.ranked_lists:
        path = Path(args.ranked_lists)
        path.parent.mkdir(parents=True, exist_ok=True)
        before_rows = {r["query"]: r for r in ablation.ranked_rows(fs, s, "baseline", args.top, "query")}
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["setting", "query", "pid", "camid", "AP", "first_match", "rank", "gallery", "gallery_pid",
                        "gallery_camid", "distance", "match"])
            for r in ablation.ranked_rows(fs, s, after, args.top, "worst"):
                for row in (before_rows[r["query"]], r) if after != "baseline" else (r,):
                    for k, it in enumerate(row["gallery"], 1):
                        w.writerow([row["setting"], row["query"], row["pid"], row["camid"], f"{row['AP']:.2f}",
                                    row["first match"], k, it["index"], it["pid"], it["camid"],
                                    f"{it['distance']:.6f}", int(it["match"])])
        lines.append(f"wrote {path} (top {args.top} of every query, baseline and {after}, worst {after} AP first)")
    return lines


def _eval(args) -> int:
    setup_logging(logging.WARNING)
    try:
        data, _ = load_for_eval(args.features, args.gen, args.max_bytes)
        results = run_eval(data, args.k1, args.k2, args.eta, args.nfc_mode, args.nfc_apply, args.rerank, args.id2,
                           args.index, progress=True)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print("error: not enough memory for these features", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    nq, d = data["q_feats"].shape
    ng = data["g_feats"].shape[0]
    gen = ", ".join(f"{k} M={data[k].shape[1]}" for k in ("q_gen", "g_gen") if k in data) or "none"
    source = f" (from {args.gen})" if args.gen else ""
    print(f"{args.features}: {nq} queries x {ng} gallery, d={d}; generated features: {gen}{source}")
    print(
        f"NFC k1={args.k1} k2={args.k2} mode={args.nfc_mode} applied to {args.nfc_apply}; eta={args.eta:g}; "
        f"queries evaluated: {results[0]['num_valid_queries']} of {nq} (the rest have no valid match)"
    )
    print(f"metrics in %, Market-1501 protocol; {id2_label(args.id2)}, over query+gallery without pid <= 0 "
          "(lower = denser)")
    print(_table(results))
    if "q_gen" not in data:
        print("(no generated features: add --gen GEN.npz, the file 'generate' wrote, for the rows of eq. 9)")
    try:
        for line in _write_views(args, data):
            print(line)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def _visrank(args) -> int:
    from .visrank import query_panel, split_queries

    setup_logging(logging.INFO)
    try:
        data, info = load_for_eval(args.features, args.gen, args.max_bytes)
        if info["q_paths"] is None or info["g_paths"] is None:
            raise ValueError(f"{Path(args.features).name} does not name its images (q_paths / g_paths): write it "
                             "with 'python -m pose2id_demo extract'")
        root = Path(args.data or info["settings"].get("data") or ".")
        q_paths, g_paths = [root / p for p in info["q_paths"]], [root / p for p in info["g_paths"]]
        missing = next((p for p in q_paths + g_paths if not p.is_file()), None)
        if missing is not None:
            raise ValueError(f"{missing} does not exist: pass the dataset folder with --data")
        fs = FeatureSet.from_arrays(data)
        s = _settings(args.eta, args.k1, args.k2, args.nfc_mode, args.nfc_apply, index=args.index, rerank=args.rerank)
        after = ablation.after_row(fs, s)
        rows = {name: ablation.ranked_rows(fs, s, name, args.top, "query")
                for name in dict.fromkeys(("baseline", after))}
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ap = np.array([r["AP"] for r in rows[after]])
    kinds = ("worst", "best") if args.which == "both" else (args.which,)
    chosen = split_queries(ap, args.num, kinds)
    jobs = [(kind, n, int(i)) for kind in kinds for n, i in enumerate(chosen[kind], 1)]
    valid = int(np.isfinite(ap).sum())
    if valid < args.num * len(kinds):
        print(f"only {valid} of {len(ap)} queries have a valid match, fewer than the {args.num * len(kinds)} asked "
              f"({' + '.join(f'{args.num} {k}' for k in kinds)}): drawing "
              f"{' and '.join(f'{len(chosen[k])} {k}' for k in kinds)}, no query in both")
    rr = " +RR" if args.rerank else ""
    for kind, n, i in tqdm(jobs, desc="visrank", unit="query", file=sys.stderr):
        r = rows[after][i]
        title = (f"query {i} (pid {r['pid']}, cam {r['camid']}): {kind} {n} by {after}{rr} AP; green = same identity, "
                 "red = another; under each image: rank: distance, camera")
        lists = [(name + rr, rows[name][i]) for name in rows]
        query_panel(q_paths[i], lists, g_paths, title).save(out / f"{kind}-{n:02d}-query{i:04d}.png")
    print(f"wrote {out}: {len(jobs)} PNG files ({' and '.join(f'{len(chosen[k])} {k}' for k in kinds)} queries by "
          f"{after}{rr} AP; baseline above {after})")
    return 0


def _demo_dataset(args) -> int:
    from .data import load_market
    from .data.synthped.benchmark import DEMO_TEST_IDS, write_demo_market

    setup_logging(logging.INFO)
    args.ids = DEMO_TEST_IDS if args.ids is None else args.ids
    try:
        root = write_demo_market(args.out, num_test_ids=args.ids, seed=args.seed, progress=True)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    ds = load_market(root)
    print(f"wrote {root}: {len(ds.query)} queries, {len(ds.gallery)} gallery images "
          f"({sum(r.pid == 0 for r in ds.gallery)} distractors) of {args.ids} SynthPed test identities, "
          f"{len(ds.train)} train images; junk (pid -1) in bounding_box_test/ too")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "extract":
        from .reid.extract import run

        setup_logging(logging.INFO)
        return run(args)
    if args.command == "generate":
        from .ipg.precompute import run_generate

        setup_logging(logging.INFO)
        return run_generate(args)
    if args.command == "visrank":
        return _visrank(args)
    if args.command == "demo-dataset":
        return _demo_dataset(args)
    return _eval(args)
