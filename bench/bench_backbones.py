"""mAP / Rank-1 / ID² of every SynthPed task × ReID backbone, without and with NFC (k1 = k2 = 2).

    python -m bench.bench_backbones [--backbones imagenet-mobilenetv2 synthped-reid] [--tasks ...]
                                     [--json runs/bench_backbones.json]

Features come from :func:`pose2id_demo.reid.features.dataset_features` (extracted once, cached on disk).
Evaluation is the Market-1501 protocol (:func:`pose2id_demo.metrics.evaluate`: same-id same-camera
gallery images removed, distractors kept). NFC is Pose2ID's neighbour feature centralization (Alg. 1)
in the published setting: query and gallery centralized separately (``nfc_sets(mode="separate",
apply_to="both")``), on the gallery only, and jointly (neighbours searched in query ∪ gallery). ID² (paper
variant, eq. 20, mean over identities) is measured on the query + gallery features of the test identities
(distractors and junk excluded), before and after NFC. Every row is
:func:`pose2id_demo.ablation.metric_row`'s, the same the app and the CLI show. After the per-setting rows
the script prints the README's summary table (baseline / separate / joint / ID²) and the machine's load.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from pose2id_demo import ablation
from pose2id_demo.data.synthped import TASKS, VERSION
from pose2id_demo.featurefile import FeatureSet
from pose2id_demo.reid import list_backbones
from pose2id_demo.reid.features import dataset_features


def measure(d: dict, k1: int, k2: int) -> list[dict]:
    fs = FeatureSet.from_arrays(d)
    s = ablation.Settings(k1=k1, k2=k2, nfc_on="both", ipg_on="none", nfc_mode="separate")
    settings = (("baseline", s, "baseline"),
                (f"NFC k1={k1} k2={k2}", s, "+NFC"),
                ("NFC gallery only", ablation.Settings(**{**s.__dict__, "nfc_on": "gallery"}), "+NFC"),
                ("NFC joint q+g", ablation.Settings(**{**s.__dict__, "nfc_mode": "joint"}), "+NFC"))
    rows = []
    for name, st, row in settings:
        r = ablation.metric_row(fs, st, row)
        rows.append({"setting": name, "mAP": 100 * float(r["mAP"]), "Rank-1": 100 * float(r["Rank-1"]),
                     "mINP": 100 * float(r["mINP"]), "ID2": float(r["ID²"])})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbones", nargs="+", default=[b for b in list_backbones() if not b.startswith("test-")])
    ap.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    ap.add_argument("--k1", type=int, default=2)
    ap.add_argument("--k2", type=int, default=2)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)
    results = []
    print(f"load at start {os.getloadavg()[0]:.1f}")
    print("ID²: paper variant (eqs. 20-21), query + gallery, pid <= 0 left out")
    print("| task | backbone | setting | mAP | Rank-1 | mINP | ID² |\n|---|---|---|---|---|---|---|")
    for task in args.tasks:
        for bb in args.backbones:
            t = time.time()
            d = dataset_features(bb, task, progress=True)
            for r in measure(d, args.k1, args.k2):
                r.update(task=task, backbone=bb, nq=len(d["q_pids"]), ng=len(d["g_pids"]),
                         seconds=round(time.time() - t, 1))
                results.append(r)
                print(f"| {task} | {bb} | {r['setting']} | {r['mAP']:.1f} | {r['Rank-1']:.1f} | {r['mINP']:.1f} "
                      f"| {r['ID2']:.3f} |", flush=True)
    print(f"\nSynthPed v{VERSION}; load {os.getloadavg()[0]:.1f}; mAP / Rank-1 in %, ID² of the test features\n")
    print("| task | backbone | baseline | NFC separate | NFC joint | ID² baseline → NFC |\n|---|---|---|---|---|---|")
    label = {"imagenet-mobilenetv2": "ImageNet MobileNetV2"}
    for task in args.tasks:
        for bb in args.backbones:
            by = {r["setting"]: r for r in results if r["task"] == task and r["backbone"] == bb}
            base, sep = by["baseline"], by[f"NFC k1={args.k1} k2={args.k2}"]
            cell = lambda r: f"{r['mAP']:.1f} / {r['Rank-1']:.1f}"  # noqa: E731
            print(f"| {task} | {label.get(bb, bb)} | {cell(base)} | {cell(sep)} | {cell(by['NFC joint q+g'])} "
                  f"| {base['ID2']:.3f} → {sep['ID2']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
