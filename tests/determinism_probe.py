"""Run by tests/test_determinism.py in a subprocess whose BLAS / OpenMP thread count is set by the environment:
evaluate one feature file through the library, the CLI and the app's engine, and print every cell as JSON."""

from __future__ import annotations

import contextlib
import io
import json
import sys

import numpy as np

from pose2id_demo import ablation
from pose2id_demo.cli import main, run_eval
from pose2id_demo.engine import Engine
from pose2id_demo.featurefile import FeatureSet, load_feature_npz


def _plain(x):
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if not np.isfinite(x) else float(x)
    if isinstance(x, (np.integer, np.bool_)):
        return x.item()
    return x


def probe(path: str) -> dict:
    import threadpoolctl
    import torch

    data = load_feature_npz(path)
    # numpy's BLAS, the OpenMP runtime and torch (other packages may bundle a BLAS of their own, unused here)
    out = {"threads": [i["num_threads"] for i in threadpoolctl.threadpool_info()
                       if "numpy" in i["filepath"] or i["user_api"] == "openmp"] + [torch.get_num_threads()]}
    for mode in ("separate", "joint"):
        out[f"library {mode}"] = [{k: r[k] for k in ("setting", "mAP", "Rank-1", "Rank-5", "Rank-10", "mINP", "ID2")}
                                  for r in run_eval(data, nfc_mode=mode, use_rerank=True)]
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        assert main(["eval", path, "--rerank"]) == 0
    out["cli"] = text.getvalue()
    res = Engine(device="cpu").evaluate_features(path, ablation.Settings(k1=2, k2=2, eta=ablation.DEFAULT_ETA))
    out["app"] = {k: res[k] for k in ("rows", "grid", "eta_curve", "m_curve") if k in res}
    fs = FeatureSet.from_arrays(data)
    s = ablation.Settings()
    out["per query"] = ablation.per_query(fs, s)
    out["ranked lists"] = [(r["query"], r["AP"], [(g["index"], g["distance"]) for g in r["gallery"]])
                           for r in ablation.ranked_rows(fs, s, top=10)]
    return _plain(out)


if __name__ == "__main__":
    print(json.dumps(probe(sys.argv[1])))
