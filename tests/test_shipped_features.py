"""The shipped float16 SynthPed features (assets/features/synthped-<backbone>.npz) equal a fresh extraction.

A random sample of images of every split and task is rendered again (the renderer is deterministic, so the
JPEG bytes are the cache's), run through the backbone, and compared with the shipped rows within float16
rounding. Rebuild a failing file with ``python -m pose2id_demo.reid.build_shipped``.
"""

from __future__ import annotations

import numpy as np
import pytest

from pose2id_demo import shipped_features as sf

BACKBONES = [bb for bb in sf.SHIPPED_BACKBONES if sf.shipped_path(bb).is_file()]
pytestmark = pytest.mark.skipif(not BACKBONES, reason="no shipped SynthPed feature files in assets/features/")


@pytest.fixture(scope="module")
def planned():
    from pose2id_demo.data.synthped import _identities_for, plan

    items = plan(0)
    return {(it.folder, it.filename): it for it in items}, _identities_for(0, items)


def _fresh(backbone: str, task: str, names: list[str], folder: str, planned, tmp_path) -> np.ndarray:
    from PIL import Image

    from pose2id_demo.data.synthped import _write, render_item
    from pose2id_demo.reid import get_backbone

    by_name, idents = planned
    images = []
    for n in names:
        item = by_name[(folder, n)]
        path = tmp_path / f"{task}-{n}"
        _write(path, render_item(0, item, task, idents.get(item.source_pid)))
        with Image.open(path) as im:
            images.append(im.convert("RGB"))
    return get_backbone(backbone).extract(images, batch_size=16)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", BACKBONES)
def test_shipped_file_matches_fresh_extraction(backbone: str, planned, tmp_path) -> None:
    from pose2id_demo.data.synthped import TASKS

    z = sf._load(backbone)
    assert z is not None, f"{sf.shipped_path(backbone).name} does not match this installation (version, " \
                          "weights or image list); rebuild it with python -m pose2id_demo.reid.build_shipped"
    seed = int(np.random.SeedSequence().entropy % 2**32)
    rng = np.random.default_rng(seed)
    checks = [("train", "standard", "bounding_box_train", z["train_feats"], z["train_names"]),
              ("gallery", "standard", "bounding_box_test", z["g_feats"], z["g_names"])]
    checks += [(f"{t} query", t, "query", z[f"{t}_q_feats"], z[f"{t}_q_names"]) for t in TASKS]
    for what, task, folder, feats, names in checks:
        assert feats.dtype == np.float16 and len(feats) == len(names)
        idx = np.sort(rng.choice(len(names), size=6, replace=False))
        fresh = _fresh(backbone, task, [str(names[i]) for i in idx], folder, planned, tmp_path)
        shipped = feats[idx].astype(np.float32)
        # float16 keeps 11 significant bits: relative error ≤ 2^-11, plus a floor for values near zero.
        tol = 2.0 ** -11 * np.abs(fresh) + 1e-4 * np.abs(fresh).max()
        bad = np.abs(shipped - fresh) > tol
        assert not bad.any(), (f"{backbone} {what} (sample seed {seed}): {int(bad.sum())} of {bad.size} values "
                               f"differ beyond float16 rounding, max {np.abs(shipped - fresh).max():.3g}")


def test_loader_gives_the_readers_records() -> None:
    """Identities, cameras and paths of the shipped file are the reader's (parsed from the planned names)."""
    from pose2id_demo.data.market import parse_name

    for bb in BACKBONES:
        d = sf.dataset_features(bb, "standard")
        assert d is not None
        names = sf.expected_names()
        assert [p.rsplit("/", 1)[-1] for p in d["q_paths"]] == names["query"]
        assert [p.rsplit("/", 1)[-1] for p in d["g_paths"]] == names["gallery"]
        for s in ("q", "g"):
            assert d[f"{s}_feats"].dtype == np.float32 and np.isfinite(d[f"{s}_feats"]).all()
            parsed = [parse_name(p.rsplit("/", 1)[-1]) for p in d[f"{s}_paths"]]
            assert d[f"{s}_pids"].tolist() == [p[0] for p in parsed]
            assert d[f"{s}_camids"].tolist() == [p[1] for p in parsed]
        recs, feats = sf.train_features(bb)
        assert len(recs) == len(feats) == len(names["train"])


@pytest.mark.parametrize("task", ["standard", "occluded", "infrared"])
def test_generated_features_are_shipped_for_every_task_with_the_shipped_generator(task):
    """IPG on all three tasks: for each backbone the shipped generated features fit the task's image lists
    (the engine attaches them, so the Benchmark tab has its IPG rows) and were made by the shipped generator
    with the paper's settings — a retrained generator fails this until they are remade."""
    from pose2id_demo.engine import Engine
    from pose2id_demo.ipg.precompute import model_hash, read_generated
    from pose2id_demo.paths import ASSETS, MODELS_DIR

    shipped = model_hash(MODELS_DIR / "ipg-tiny")
    eng = Engine()
    for bb in BACKBONES:
        data = eng.features.bench_data(task, bb)
        assert data.q_gen is not None and data.g_gen is not None, data.gen_note
        assert data.q_gen.shape[:2] == (len(data.q), 8) and data.g_gen.shape[:2] == (len(data.g), 8)
        s = read_generated(ASSETS / "features" / f"synthped-{task}-{bb}-gen.npz")["settings"]
        recorded = (s["model_sha"], s["steps"], s["guidance_scale"], s["seed"], s["use_ifr"])
        assert recorded == (shipped, 20, 3.5, 42, True)
