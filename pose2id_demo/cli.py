"""Command line: ``python -m pose2id_demo eval FEATURES.npz [--k1 2 --k2 2 --eta 1 --nfc-mode separate --rerank]``.

Prints a before/after table — baseline, +NFC (Alg. 1), +IPG (eq. 9, when the file has ``q_gen``/``g_gen``)
and +NFC+IPG — of mAP, Rank-1/5/10, mINP (Market-1501 protocol, percent) and ID² (over query + gallery,
distractors and junk — pid <= 0 — left out; ``--id2 paper`` eqs. 20-21, ``--id2 official`` the official
ID2.py).  The rows are :func:`pose2id_demo.ablation.table`'s, the same the app shows.  With ``--rerank``
every setting gets a second row with k-reciprocal re-ranking.  A bad file or bad option prints one
``error: ...`` line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import numpy as np

from . import ablation
from .featurefile import DEFAULT_MAX_BYTES, FeatureSet, load_feature_npz
from .metrics import ID2_VARIANTS, id2_label

__all__ = ["build_parser", "main", "run_eval"]

EXIT_BAD_INPUT = 2


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="pose2id_demo", description="Pose2ID feature centralization tools.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    ev = sub.add_parser("eval", help="evaluate a feature file before/after feature centralization")
    ev.add_argument("features", help=".npz with q_feats, g_feats, q_pids, g_pids, q_camids, g_camids [, q_gen, g_gen]")
    ev.add_argument("--k1", type=_nonneg_int, default=2, help="NFC k1 (Alg. 1; default 2)")
    ev.add_argument("--k2", type=_nonneg_int, default=2, help="NFC k2 (Alg. 1; default 2)")
    ev.add_argument("--eta", type=_finite_float, default=1.0, help="IPG quality coefficient eta of eq. 9 (default 1)")
    ev.add_argument(
        "--nfc-mode",
        choices=ablation.NFC_MODES,
        default="separate",
        help="neighbours within each set (published setting, default) or across query+gallery",
    )
    ev.add_argument("--nfc-apply", choices=("query", "gallery", "both"), default="both", help="sets NFC centralizes")
    ev.add_argument("--index", choices=("exact", "faiss"), default="exact",
                    help="NFC neighbour search: exact, or faiss (approximate, for >= 10^6 images; requirements-scale.txt)")
    ev.add_argument("--rerank", action="store_true", help="add k-reciprocal re-ranking rows (k1=20, k2=6, lambda=0.3)")
    ev.add_argument("--id2", choices=ID2_VARIANTS, default="paper",
                    help="ID² reading: paper (eqs. 20-21, default) or official (ID2.py: squared distance, per sample)")
    ev.add_argument("--max-bytes", type=_nonneg_int, default=DEFAULT_MAX_BYTES, help="feature file size limit")
    _add_dataset_commands(sub)
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


def run_eval(
    data: dict,
    k1: int = 2,
    k2: int = 2,
    eta: float = 1.0,
    nfc_mode: str = "separate",
    nfc_apply: str = "both",
    use_rerank: bool = False,
    id2_variant: str = "paper",
    index: str = "exact",
) -> list[dict]:
    """Evaluate every setting (:func:`pose2id_demo.ablation.table`); one dict per table row: the metrics as
    fractions (:func:`pose2id_demo.metrics.evaluate`'s keys) plus ``ID2``; with ``use_rerank`` each row is
    followed by its re-ranked twin (``setting`` + `` +RR``)."""
    fs = FeatureSet.from_arrays(data)
    s = ablation.Settings(eta=eta, k1=k1, k2=k2, nfc_on=nfc_apply, ipg_on="both", nfc_mode=nfc_mode,
                          id2_variant=id2_variant, nfc_index=index)
    rr = ablation.Settings(**{**s.__dict__, "rerank": True})
    results = []
    for row in ablation.row_names(fs, s):
        r = ablation.metric_row(fs, s, row)
        results.append({**r, "ID2": r["ID²"]})
        if use_rerank:
            r = ablation.metric_row(fs, rr, row)
            results.append({**r, "setting": row + " +RR", "ID2": r["ID²"]})
    return results


def _table(results: list[dict]) -> str:
    head = f"{'setting':<16}{'mAP':>8}{'R-1':>8}{'R-5':>8}{'R-10':>8}{'mINP':>8}{'ID²':>9}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r['setting']:<16}{100 * r['mAP']:>8.2f}{100 * r['Rank-1']:>8.2f}{100 * r['Rank-5']:>8.2f}"
            f"{100 * r['Rank-10']:>8.2f}{100 * r['mINP']:>8.2f}{r['ID2']:>9.4f}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "extract":
        from .reid.extract import run
        return run(args)
    if args.command == "generate":
        from .ipg.precompute import run_generate
        return run_generate(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        data = load_feature_npz(args.features, max_bytes=args.max_bytes)
        results = run_eval(data, args.k1, args.k2, args.eta, args.nfc_mode, args.nfc_apply, args.rerank, args.id2,
                           args.index)
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
    print(f"{args.features}: {nq} queries x {ng} gallery, d={d}; generated features: {gen}")
    print(
        f"NFC k1={args.k1} k2={args.k2} mode={args.nfc_mode} applied to {args.nfc_apply}; eta={args.eta:g}; "
        f"queries evaluated: {results[0]['num_valid_queries']} of {nq} (the rest have no valid match)"
    )
    print(f"metrics in %, Market-1501 protocol; {id2_label(args.id2)}, over query+gallery without pid <= 0 "
          "(lower = denser)")
    print(_table(results))
    return 0
