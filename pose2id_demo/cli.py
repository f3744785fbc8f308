"""Command line: ``python -m pose2id_demo eval FEATURES.npz [--k1 2 --k2 2 --eta 1 --nfc-mode separate --rerank]``.

Prints a before/after table — baseline, +NFC (Alg. 1), +IPG (eq. 9, when the file has ``q_gen``/``g_gen``)
and +NFC+IPG — of mAP, Rank-1/5/10, mINP (Market-1501 protocol, percent) and ID² (eqs. 20-21, over
query + gallery).  With ``--rerank`` every setting gets a second row with k-reciprocal re-ranking.  A bad
file or bad option prints one ``error: ...`` line on stderr and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import numpy as np

from .centralization import centralize, l2_normalize, nfc_sets, rerank
from .featurefile import DEFAULT_MAX_BYTES, load_feature_npz
from .metrics import distance_matrix, evaluate, id2

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
        choices=("separate", "joint"),
        default="separate",
        help="neighbours within each set (published setting, default) or across query+gallery",
    )
    ev.add_argument("--nfc-apply", choices=("query", "gallery", "both"), default="both", help="sets NFC centralizes")
    ev.add_argument("--rerank", action="store_true", help="add k-reciprocal re-ranking rows (k1=20, k2=6, lambda=0.3)")
    ev.add_argument("--max-bytes", type=_nonneg_int, default=DEFAULT_MAX_BYTES, help="feature file size limit")
    return parser


def _settings(data: dict, k1: int, k2: int, eta: float, mode: str, apply_to: str):
    """(name, q, g) for each row of the table."""
    q, g = l2_normalize(data["q_feats"]), l2_normalize(data["g_feats"])
    rows = [("baseline", q, g)]
    rows.append(("+NFC", *nfc_sets(data["q_feats"], data["g_feats"], k1, k2, mode=mode, apply_to=apply_to)))
    if "q_gen" in data or "g_gen" in data:
        # Each generated feature is L2-normalised before eq. 9, as the app does, so that eta does not scale
        # with the backbone's raw feature norm and the CLI and the app's "Your features" tab agree.
        qi = centralize(data["q_feats"], l2_normalize(data["q_gen"]), eta) if "q_gen" in data else q
        gi = centralize(data["g_feats"], l2_normalize(data["g_gen"]), eta) if "g_gen" in data else g
        rows.append(("+IPG", qi, gi))
        rows.append(("+NFC+IPG", *nfc_sets(qi, gi, k1, k2, mode=mode, apply_to=apply_to)))
    return rows


def run_eval(
    data: dict,
    k1: int = 2,
    k2: int = 2,
    eta: float = 1.0,
    nfc_mode: str = "separate",
    nfc_apply: str = "both",
    use_rerank: bool = False,
) -> list[dict]:
    """Evaluate every setting; returns one dict per table row (metrics as fractions, plus ``ID2``)."""
    pids = np.concatenate([data["q_pids"], data["g_pids"]])
    ids = (data["q_pids"], data["g_pids"], data["q_camids"], data["g_camids"])
    results = []
    for name, q, g in _settings(data, k1, k2, eta, nfc_mode, nfc_apply):
        density = id2(np.concatenate([q, g]), pids)
        res = evaluate(distance_matrix(q, g), *ids)
        results.append({"setting": name, "ID2": density, **res})
        if use_rerank:
            res = evaluate(rerank(q, g), *ids)
            results.append({"setting": name + " +RR", "ID2": density, **res})
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
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        data = load_feature_npz(args.features, max_bytes=args.max_bytes)
        results = run_eval(data, args.k1, args.k2, args.eta, args.nfc_mode, args.nfc_apply, args.rerank)
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
    print("metrics in %, Market-1501 protocol; ID² over query+gallery (eq. 20, lower = denser)")
    print(_table(results))
    return 0
