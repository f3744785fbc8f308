"""`python -m pose2id_demo eval` and the feature-file validation it shares with the UI."""

from __future__ import annotations

import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from pose2id_demo.centralization import centralize, l2_normalize, nfc
from pose2id_demo.cli import main, run_eval
from pose2id_demo.featurefile import load_feature_npz
from pose2id_demo.metrics import distance_matrix, evaluate, id2

REPO = Path(__file__).resolve().parent.parent


def make_arrays(rng, nq=30, ng=120, d=16, n_ids=10, m=3) -> dict:
    centers = rng.standard_normal((n_ids, d))
    qp, gp = rng.integers(0, n_ids, nq), rng.integers(0, n_ids, ng)
    return {
        "q_feats": (centers[qp] + rng.standard_normal((nq, d))).astype(np.float32),
        "g_feats": (centers[gp] + rng.standard_normal((ng, d))).astype(np.float32),
        "q_pids": qp,
        "g_pids": gp,
        "q_camids": rng.integers(0, 4, nq),
        "g_camids": rng.integers(0, 4, ng),
        "q_gen": (centers[qp][:, None] + rng.standard_normal((nq, m, d))).astype(np.float32),
        "g_gen": (centers[gp][:, None] + rng.standard_normal((ng, m, d))).astype(np.float32),
    }


@pytest.fixture
def arrays():
    return make_arrays(np.random.default_rng())


def run_main(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_eval_table_numbers_are_the_library_numbers(tmp_path, arrays, capsys):
    path = tmp_path / "f.npz"
    np.savez(path, **arrays)
    code, out, err = run_main(capsys, ["eval", str(path), "--k1", "3", "--k2", "2", "--eta", "1.5"])
    assert code == 0 and err == ""
    for name in ("baseline", "+NFC", "+IPG", "+NFC+IPG"):
        assert f"\n{name} " in out
    ids = (arrays["q_pids"], arrays["g_pids"], arrays["q_camids"], arrays["g_camids"])
    # the "+NFC+IPG" row, recomputed by hand from the library pieces
    qi = centralize(arrays["q_feats"], l2_normalize(arrays["q_gen"]), 1.5)
    gi = centralize(arrays["g_feats"], l2_normalize(arrays["g_gen"]), 1.5)
    qc, gc = nfc(qi, 3, 2), nfc(gi, 3, 2)
    ref = evaluate(distance_matrix(qc, gc), *ids)
    pids = np.concatenate([arrays["q_pids"], arrays["g_pids"]])
    dens = id2(np.concatenate([qc, gc])[pids > 0], pids[pids > 0])  # ID² leaves out distractors/junk (pid <= 0)
    line = next(x for x in out.splitlines() if x.startswith("+NFC+IPG"))
    vals = [float(v) for v in line.split()[1:]]
    assert vals[0] == pytest.approx(100 * ref["mAP"], abs=0.006)
    assert vals[1] == pytest.approx(100 * ref["Rank-1"], abs=0.006)
    assert vals[4] == pytest.approx(100 * ref["mINP"], abs=0.006)
    assert vals[5] == pytest.approx(dens, abs=6e-5)
    # baseline row: plain normalised features
    base = run_eval(load_feature_npz(path))[0]
    assert (
        base["mAP"]
        == evaluate(distance_matrix(l2_normalize(arrays["q_feats"]), l2_normalize(arrays["g_feats"])), *ids)["mAP"]
    )


def test_eval_without_generated_features_and_with_rerank(tmp_path, arrays, capsys):
    arrays = {k: v for k, v in arrays.items() if not k.endswith("_gen")}
    path = tmp_path / "f.npz"
    np.savez_compressed(path, **arrays)
    code, out, _ = run_main(capsys, ["eval", str(path), "--rerank", "--nfc-mode", "joint"])
    assert code == 0
    assert "+IPG" not in out and "baseline +RR" in out and "+NFC +RR" in out


def _bad_files(tmp_path: Path, a: dict) -> dict[str, Path]:
    files = {}

    def save(name, **changes):
        arrs = {**a, **changes}
        arrs = {k: v for k, v in arrs.items() if v is not None}
        p = tmp_path / f"{name}.npz"
        np.savez(p, **arrs)
        files[name] = p

    save("missing_key", g_camids=None)
    save("feats_1d", q_feats=a["q_feats"][:, 0])
    save("pids_len", q_pids=a["q_pids"][:-1])
    save("dim_mismatch", g_feats=a["g_feats"][:, :-1], g_gen=None)
    save("gen_shape", q_gen=a["q_gen"][:, :, :-1])
    save("pids_float", g_pids=a["g_pids"].astype(np.float64))
    save("pids_str", q_pids=a["q_pids"].astype(str))
    save("feats_complex", q_feats=a["q_feats"].astype(np.complex64))
    nan = a["g_feats"].copy()
    nan[3, 2] = np.nan
    save("nan", g_feats=nan)
    inf = a["q_gen"].copy()
    inf[0, 0, 0] = np.inf
    save("inf_gen", q_gen=inf)
    save("empty", q_feats=a["q_feats"][:0], q_pids=a["q_pids"][:0], q_camids=a["q_camids"][:0], q_gen=None)
    obj = np.empty(len(a["q_pids"]), dtype=object)
    obj[:] = [int(x) for x in a["q_pids"]]
    save("object_array", q_pids=obj)
    # no valid match anywhere: every gallery item shares the query's camera
    save(
        "no_valid_match",
        q_pids=np.zeros_like(a["q_pids"]),
        g_pids=np.zeros_like(a["g_pids"]),
        q_camids=np.zeros_like(a["q_camids"]),
        g_camids=np.zeros_like(a["g_camids"]),
    )
    p = tmp_path / "pickle.npz"
    p.write_bytes(pickle.dumps(a))
    files["pickle"] = p
    p = tmp_path / "plain.npy"
    np.save(p, a["q_feats"])
    files["npy"] = p
    p = tmp_path / "text.npz"
    p.write_text("q_feats,g_feats\n1,2\n")
    files["text"] = p
    p = tmp_path / "zero.npz"
    p.write_bytes(b"")
    files["zero_bytes"] = p
    good = tmp_path / "good.npz"
    np.savez(good, **a)
    p = tmp_path / "truncated.npz"
    p.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    files["truncated"] = p
    p = tmp_path / "badmember.npz"
    with zipfile.ZipFile(p, "w") as zf:
        for k in a:
            zf.writestr(f"{k}.npy", b"not an npy file")
    files["bad_member"] = p
    files["directory"] = tmp_path
    files["missing_file"] = tmp_path / "nope.npz"
    return files


def test_bad_files_give_one_error_line_and_status_2(tmp_path, arrays, capsys):
    files = _bad_files(tmp_path, arrays)
    for name, path in files.items():
        code, out, err = run_main(capsys, ["eval", str(path)])
        assert code == 2, name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, err)
        assert "Traceback" not in err and out == "", name
        if name != "no_valid_match":
            with pytest.raises(ValueError):
                load_feature_npz(path)


def test_size_limit_counts_uncompressed_arrays(tmp_path, arrays, capsys):
    big = tmp_path / "bomb.npz"
    np.savez_compressed(big, **{**arrays, "g_gen": np.zeros((len(arrays["g_pids"]), 2000, 16), np.float32)})
    assert big.stat().st_size < 200_000
    with pytest.raises(ValueError, match="uncompressed"):
        load_feature_npz(big, max_bytes=1_000_000)
    code, _, err = run_main(capsys, ["eval", str(big), "--max-bytes", "1000000"])
    assert code == 2 and err.startswith("error: ")
    with pytest.raises(ValueError, match="limit"):
        load_feature_npz(big, max_bytes=1000)


def test_loader_types_and_extra_keys(tmp_path, arrays):
    path = tmp_path / "f.npz"
    np.savez(path, **{**arrays, "q_feats": arrays["q_feats"].astype(np.float64), "q_paths": np.array(["a"] * 30)})
    data = load_feature_npz(path)
    assert data["q_feats"].dtype == np.float32 and data["q_pids"].dtype == np.int64
    assert set(data) == {"q_feats", "g_feats", "q_pids", "g_pids", "q_camids", "g_camids", "q_gen", "g_gen"}


def test_bad_options(tmp_path, arrays, capsys):
    path = tmp_path / "f.npz"
    np.savez(path, **arrays)
    for argv in (["eval", str(path), "--eta", "nan"], ["eval", str(path), "--nfc-mode", "sideways"], ["eval"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and err.startswith("error: ")


def test_module_entry_point(tmp_path, arrays):
    def module(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pose2id_demo", *args], capture_output=True, text=True,
                              check=False, cwd=REPO, timeout=1800)

    path = tmp_path / "f.npz"
    np.savez(path, **arrays)
    ok = module("eval", str(path))
    assert ok.returncode == 0 and "+NFC+IPG" in ok.stdout
    bad = tmp_path / "bad.npz"
    bad.write_bytes(pickle.dumps({"q_feats": 1}))
    res = module("eval", str(bad))
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
