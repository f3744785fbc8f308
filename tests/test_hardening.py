"""Hardening: bad uploads, bad feature files, out-of-range parameters, concurrency, determinism.

Bad inputs go through the *running app* with ``gradio_client`` (the same path a user's upload takes) and
through the engine / CLI directly. Each must get a clear message, and the app must keep serving.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pose2id_demo.ablation import Settings
from pose2id_demo.engine import (
    MAX_IMAGE_PIXELS,
    Engine,
    Pose2IDError,
    check_choice,
    check_float,
    check_int,
    check_settings,
    load_custom_pose,
    load_image,
)

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ the bad-input table
def _person_like(w: int = 64, h: int = 128) -> Image.Image:
    a = np.full((h, w, 3), 200, np.uint8)
    a[h // 8: h // 3, w // 3: 2 * w // 3] = (230, 180, 150)
    a[h // 3: 2 * h // 3, w // 4: 3 * w // 4] = (30, 60, 200)
    a[2 * h // 3:, w // 4: 3 * w // 4] = (40, 40, 40)
    return Image.fromarray(a)


def make_bad_inputs(d: Path) -> dict[str, tuple[Path, str | None]]:
    """name → (file, expected message fragment, or None when the upload must be accepted)."""
    d.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str | None]] = {}
    buf = io.BytesIO()
    _person_like().save(buf, "JPEG")
    (d / "corrupt.jpg").write_bytes(buf.getvalue()[:200] + os.urandom(300))
    out["corrupt bytes (.jpg)"] = (d / "corrupt.jpg", "damaged|corrupt")
    (d / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    out["truncated JPEG"] = (d / "truncated.jpg", "damaged")
    (d / "notimage.jpg").write_text("#!/bin/sh\necho this is a shell script, not a picture\n")
    out["non-image renamed .jpg"] = (d / "notimage.jpg", "not an image")
    (d / "empty.png").write_bytes(b"")
    out["empty file"] = (d / "empty.png", "empty")
    Image.new("RGB", (1, 1), (255, 0, 0)).save(d / "one.png")
    out["1×1 PNG"] = (d / "one.png", "1×1")
    Image.new("1", (12000, 12000)).save(d / "bomb.png", optimize=False)
    out["12,000×12,000 PNG (bomb)"] = (d / "bomb.png", "megapixels")
    Image.new("L", (12000, 12000), 128).save(d / "bomb.jpg", quality=50)
    out["12,000×12,000 JPEG (bomb)"] = (d / "bomb.jpg", None)  # decoded at 1/4 scale: accepted
    _person_like().convert("L").save(d / "grey.png")
    out["greyscale PNG"] = (d / "grey.png", None)
    rgba = _person_like().convert("RGBA")
    alpha = np.zeros((128, 64), np.uint8)
    alpha[16:112, 8:56] = 255
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(d / "rgba.png")
    out["RGBA with transparency"] = (d / "rgba.png", None)
    _person_like().convert("CMYK").save(d / "cmyk.jpg")
    out["CMYK JPEG"] = (d / "cmyk.jpg", None)
    a16 = (np.asarray(_person_like().convert("L"), np.uint16) * 257)
    Image.fromarray(a16).save(d / "deep16.png")
    out["16-bit PNG"] = (d / "deep16.png", None)
    frames = [_person_like(), Image.new("RGB", (64, 128), (0, 255, 0))]
    frames[0].save(d / "anim.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out["animated GIF"] = (d / "anim.gif", None)
    return out


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str | None]]:
    return make_bad_inputs(tmp_path_factory.mktemp("bad"))


def test_bad_images_engine(bad_inputs: dict) -> None:
    """Every bad upload gets a clear Pose2IDError; every odd-but-valid one becomes a bounded RGB image."""
    for name, (path, expected) in bad_inputs.items():
        if expected is None:
            im = load_image(path)
            assert im.mode == "RGB", name
            assert im.size[0] * im.size[1] <= MAX_IMAGE_PIXELS, name
            assert max(im.size) <= 1024, name
        else:
            with pytest.raises(Pose2IDError, match=expected):
                load_image(path)


def test_image_conversions_are_faithful(bad_inputs: dict) -> None:
    """16-bit scaled (not clipped white), transparency on white, GIF = first frame, CMYK close to RGB."""
    ref = np.asarray(_person_like(), np.int16)
    deep = np.asarray(load_image(bad_inputs["16-bit PNG"][0]), np.int16)
    grey = np.asarray(_person_like().convert("L"), np.int16)
    assert np.abs(deep[..., 0] - grey).max() <= 1
    rgba = np.asarray(load_image(bad_inputs["RGBA with transparency"][0]))
    assert (rgba[0, 0] == 255).all() and (rgba[64, 32] == ref[64, 32]).all()
    gif = np.asarray(load_image(bad_inputs["animated GIF"][0]), np.int16)
    assert np.abs(gif - ref).mean() < 8  # first frame (palette quantised), not the green second frame
    cmyk = np.asarray(load_image(bad_inputs["CMYK JPEG"][0]), np.int16)
    assert np.abs(cmyk - ref).mean() < 12


def test_bomb_jpeg_decoded_with_bounded_memory(bad_inputs: dict) -> None:
    """The 144-megapixel JPEG is decoded by the JPEG decoder at reduced scale (draft), never in full."""
    import tracemalloc

    tracemalloc.start()
    im = load_image(bad_inputs["12,000×12,000 JPEG (bomb)"][0])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert im.size == (1024, 1024)
    assert peak < 120 * 2**20  # a full 144 MP decode would need ≥ 144 MB (L) / 432 MB (RGB)


def test_no_person_photo_pose_step(tmp_path: Path) -> None:
    """A photo with no person as the custom pose: the pose step says so."""
    pytest.importorskip("mediapipe")
    rng = np.random.default_rng(0)
    sky = np.zeros((256, 256, 3), np.uint8)
    sky[..., 2] = np.linspace(120, 255, 256)[:, None].astype(np.uint8)
    sky[..., 1] = 150
    sky[200:] = rng.integers(40, 90, (56, 256, 3))
    Image.fromarray(sky).save(tmp_path / "landscape.jpg")
    with pytest.raises(Pose2IDError, match="No person was found"):
        load_custom_pose(tmp_path / "landscape.jpg")


def test_custom_pose_json(tmp_path: Path) -> None:
    kp = np.zeros((18, 3), np.float32)
    kp[:, 0], kp[:, 1], kp[:, 2] = np.linspace(10, 50, 18), np.linspace(10, 120, 18), 1
    good = {"format": "openpose18", "width": 64, "height": 128, "keypoints": kp.tolist()}
    (tmp_path / "p.json").write_text(json.dumps(good))
    pose, how = load_custom_pose(tmp_path / "p.json")
    assert how == "keypoint json" and np.allclose(pose.keypoints, kp)
    (tmp_path / "bad.json").write_text('{"keypoints": [[1, 2, "x"]]}')
    with pytest.raises(Pose2IDError, match="pose json is not valid"):
        load_custom_pose(tmp_path / "bad.json")
    (tmp_path / "nan.json").write_text(json.dumps({**good, "keypoints": [[float("nan"), 1, 1]] * 18}))
    with pytest.raises(Pose2IDError):
        load_custom_pose(tmp_path / "nan.json")


@pytest.mark.parametrize("name,value,lo,hi,frag", [
    ("k1", -3, 1, 20, "between 1 and 20"), ("k2", 2.5, 1, 20, "whole number"), ("steps", 10_000, 1, 50, "between"),
    ("seed", 2**70, 0, 2**32 - 1, "between"), ("seed", float("inf"), 0, 2**32 - 1, "finite"),
    ("k1", "drop table", 1, 20, "must be a number"), ("k1", True, 1, 20, "must be a number"),
])
def test_int_params_refused(name: str, value: object, lo: int, hi: int, frag: str) -> None:
    with pytest.raises(Pose2IDError, match=frag):
        check_int(name, value, lo, hi)


def test_float_params_refused() -> None:
    for v in (float("nan"), float("inf"), -1.0, 11.0, "abc", None):
        with pytest.raises(Pose2IDError):
            check_float("η", v, 0.0, 10.0)
    assert check_float("η", "2.5", 0.0, 10.0) == 2.5
    assert check_choice("task", "OCCLUDED", ("standard", "occluded", "infrared")) == "occluded"
    s = check_settings(k1=3.0, rerank=True, nfc_on="QUERY")
    assert isinstance(s, Settings) and (s.k1, s.rerank, s.nfc_on) == (3, True, "query")
    with pytest.raises(Pose2IDError, match="re-ranking must be true or false; got 'true'"):  # a switch: a boolean
        check_settings(rerank="true")
    with pytest.raises(Pose2IDError):
        check_choice("task", "mars", ("standard", "occluded", "infrared"))
    with pytest.raises(Pose2IDError, match="task"):  # the session checks the task before any work
        Engine().bench.benchmark("mars", "synthped-reid")
    for bad in ({"nfc_on": "everything"}, {"eta": float("nan")}, {"k2": 0}, {"nfc_mode": "both"}):
        with pytest.raises(Pose2IDError):
            check_settings(**bad)


def test_engine_generate_refuses_bad_parameters_before_work(tmp_path: Path) -> None:
    """Out-of-range generation parameters are refused before any model is loaded."""
    eng = Engine()
    _person_like().save(tmp_path / "p.png")
    for kw, frag in (({"steps": 10_000}, "steps"), ({"seed": -1}, "seed"), ({"seed": 2**64}, "seed"),
                     ({"cfg": float("nan")}, "CFG"), ({"eta": float("nan")}, "η"), ({"use_ifr": "maybe"}, "IFR")):
        with pytest.raises(Pose2IDError, match=frag):
            eng.generate(tmp_path / "p.png", **kw)
    assert "pipeline" not in eng._store


# ------------------------------------------------------------------------------ through the running app
@pytest.fixture(scope="module")
def app_client(app_url: str):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def _app_error(client, *args, api_name: str) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as exc:
        client.predict(*args, api_name=api_name)
    return str(exc.value)


def test_bad_images_through_app(app_client, bad_inputs: dict) -> None:
    """Each bad upload → a clear message from /generate; the app keeps answering."""
    from gradio_client import handle_file

    for name, (path, expected) in bad_inputs.items():
        if expected is None:
            continue
        msg = _app_error(app_client, handle_file(str(path)), "on", 2, 3.5, 0, 1.0, None, "synthped-reid",
                         api_name="/generate")
        assert re_search(expected, msg), (name, msg)
    msg = _app_error(app_client, handle_file(str(bad_inputs["greyscale PNG"][0])), "on", 10_000, 3.5, 0, 1.0, None,
                     "synthped-reid", api_name="/generate")
    assert "steps must be between 1 and 50" in msg
    msg = _app_error(app_client, handle_file(str(bad_inputs["greyscale PNG"][0])), "on", 2, 3.5, 2**64, 1.0, None,
                     "synthped-reid", api_name="/generate")
    assert "seed must be between" in msg
    assert "/generate" in app_client.view_api(return_format="dict", print_info=False)["named_endpoints"]


def re_search(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def make_bad_feature_files(d: Path) -> dict[str, tuple[Path, str]]:
    rng = np.random.default_rng(0)
    good = dict(q_feats=rng.normal(size=(6, 8)).astype(np.float32), g_feats=rng.normal(size=(12, 8)).astype(np.float32),
                q_pids=np.arange(6), g_pids=np.arange(12) % 6, q_camids=np.zeros(6, int), g_camids=np.ones(12, int))
    out = {}
    out["missing keys"] = (_npz(d / "missing.npz", q_feats=good["q_feats"]), "missing key")
    out["wrong dtype (strings)"] = (_npz(d / "dtype.npz", **{**good, "q_feats": np.array([["a"] * 8] * 6)}), "q_feats")
    out["wrong shape (3-D feats)"] = (_npz(d / "shape.npz", **{**good, "g_feats": np.zeros((12, 2, 4), np.float32)}),
                                      "g_feats")
    nan = good["q_feats"].copy()
    nan[0, 0] = np.nan
    out["NaN in features"] = (_npz(d / "nan.npz", **{**good, "q_feats": nan}), "NaN|finite|inf")
    inf = good["g_feats"].copy()
    inf[1, 1] = np.inf
    out["inf in features"] = (_npz(d / "inf.npz", **{**good, "g_feats": inf}), "NaN|finite|inf")
    out["empty arrays"] = (_npz(d / "empty.npz", **{**good, "q_feats": np.zeros((0, 8), np.float32),
                                                    "q_pids": np.zeros(0, int), "q_camids": np.zeros(0, int)}),
                           "empty")
    # A pickled object array: np.save writes it with a pickle inside; it must be refused unread.
    marker = d / "PWNED"
    payload = np.array([_Evil(str(marker)), 1], dtype=object)
    np.savez(d / "pickle.npz", **{**good, "q_pids": payload})
    out["pickled object array"] = (d / "pickle.npz", "pickle|object")
    (d / "notzip.npz").write_bytes(b"\x93NUMPY this is not a zip")
    out["not an npz"] = (d / "notzip.npz", "not an .npz")
    return out


class _Evil:
    """Unpickling this would create a marker file (the test checks it never appears)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def test_bad_feature_files_engine_and_app(app_client, tmp_path: Path) -> None:
    from gradio_client import handle_file

    files = make_bad_feature_files(tmp_path)
    eng = Engine()
    for name, (path, frag) in files.items():
        with pytest.raises(Pose2IDError) as exc:
            eng.evaluate_features(path)
        assert re_search(frag, str(exc.value)), (name, str(exc.value))
        msg = _app_error(app_client, handle_file(str(path)), 2, 2, 1.0, "both", "both", api_name="/evaluate_features")
        assert re_search(frag, msg), (name, msg)
    assert not (tmp_path / "PWNED").exists(), "a pickle in a feature file was executed"


def test_feature_file_cli_refuses_pickle(tmp_path: Path) -> None:
    """The CLI reads the same files with the same loader: the pickle is refused, nothing executes."""
    files = make_bad_feature_files(tmp_path)
    r = subprocess.run([sys.executable, "-m", "pose2id_demo", "eval", str(files["pickled object array"][0])],
                       capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.slow
def test_upload_beyond_limit_refused(app_client, tmp_path: Path) -> None:
    """A feature file beyond the documented upload limit (the largest feature file the app evaluates) is refused
    by the server, which keeps serving. (A sparse file: it takes no disk.)"""
    import httpx
    from gradio_client import handle_file

    from pose2id_demo.ui.app import MAX_UPLOAD

    big = tmp_path / "huge.npz"
    with open(big, "wb") as f:
        f.truncate(MAX_UPLOAD + 2**20)
    with pytest.raises(ValueError, match="maximum file size"):  # gradio_client checks the app's limit
        app_client.predict(handle_file(str(big)), 2, 2, 1.0, "both", "both", api_name="/evaluate_features")
    with open(big, "rb") as f:  # a raw upload that skips the client's check is refused by the server
        r = httpx.post(app_client.src.rstrip("/") + "/gradio_api/upload", files={"files": ("huge.npz", f)},
                       timeout=1800)
    assert r.status_code == 413 and "maximum allowed size" in r.text
    msg = _app_error(app_client, handle_file(str(make_bad_feature_files(tmp_path)["missing keys"][0])), 2, 2, 1.0,
                     "both", "both", api_name="/evaluate_features")
    assert "missing key" in msg


# ------------------------------------------------------------------------------ concurrency and determinism
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.slow
def test_eight_concurrent_sessions_get_their_own_results(app_client) -> None:
    """8 clients at once, each with its own settings: all complete, each result equals the serial one."""
    from gradio_client import Client
    from PIL import Image as PILImage

    from pose2id_demo.ui import render

    url = app_client.src
    settings = [dict(eta=0.5 * (i + 1), k1=1 + i % 4, k2=1 + (i * 3) % 5, q=i * 7) for i in range(8)]
    warm = app_client.predict("standard", "synthped-reid", 1.0, 2, 2, "both", "both", False, api_name="/benchmark")
    assert warm[0]["data"][0][0] == "baseline"
    rss0 = _rss_mb()
    results: dict[int, tuple] = {}
    errors: list[str] = []

    def session(i: int) -> None:
        try:
            c = Client(url, verbose=False)
            s = settings[i]
            table, _ = c.predict("standard", "synthped-reid", s["eta"], s["k1"], s["k2"], "both", "both", False,
                                 api_name="/benchmark")
            _, after, msg = c.predict("standard", "synthped-reid", s["q"], s["eta"], s["k1"], s["k2"], "both",
                                      "both", False, api_name="/ranks")
            results[i] = (table["data"], np.asarray(PILImage.open(after).convert("RGB")), msg)
        except Exception as exc:  # noqa: BLE001
            errors.append(f"{i}: {exc}")

    threads = [threading.Thread(target=session, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()  # no time limit: a busy machine only takes longer
    assert not errors and len(results) == 8
    eng = __import__("pose2id_demo.engine", fromlist=["get_engine"]).get_engine()
    for i, s in enumerate(settings):
        ref = eng.bench.benchmark('standard', 'synthped-reid', settings=Settings(eta=s['eta'], k1=s['k1'], k2=s['k2']))
        table, after_strip, msg = results[i]
        assert [r[1] for r in table] == [r["mAP"] for r in ref["rows"]], i
        assert f"Query #{s['q']} " in msg, (i, msg)
        rr = eng.bench.ranks("standard", "synthped-reid", query_index=s["q"],
                             settings=Settings(eta=s["eta"], k1=s["k1"], k2=s["k2"]))
        assert np.array_equal(after_strip, render.ranked_strip(rr, "after")), i
    assert _rss_mb() - rss0 < 500  # caches are bounded (LRU); 8 sessions do not blow memory up


def test_metrics_deterministic(app_client) -> None:
    """The app's answer equals a recomputation from scratch in a fresh engine (no shared caches)."""
    m1 = app_client.predict("standard", "synthped-reid", 2.0, 3, 3, "both", "both", True, api_name="/benchmark")
    fresh = Engine().bench.benchmark('standard', 'synthped-reid', settings=Settings(eta=2.0, k1=3, k2=3, rerank=True))
    assert [r[1:] for r in m1[0]["data"]] == [[r[c] for c in m1[0]["headers"][1:]] for r in fresh["rows"]]


@pytest.mark.slow
def test_generation_deterministic_and_queued(app_client) -> None:
    """Same image, poses, seed and settings → identical images; different seeds differ. Two clients at once
    are served one after the other (generation concurrency 1) and all complete."""
    from gradio_client import Client, handle_file

    from pose2id_demo.engine import shipped_assets

    have = shipped_assets()
    if not (have["poses"] and have["generator"]):
        pytest.skip(f"the embedded generator / representative poses are not shipped here: {have}")
    from PIL import Image as PILImage

    from pose2id_demo.ui.app import EXAMPLES_DIR

    ex = handle_file(str(sorted(EXAMPLES_DIR.glob("*.jpg"))[0]))
    url = app_client.src
    out: dict[int, list] = {}
    errors: dict[int, str] = {}

    def run(i: int, seed: int) -> None:
        try:
            r = Client(url, verbose=False).predict(ex, "on", 3, 3.5, seed, 1.0, None, "synthped-reid",
                                                   api_name="/generate")
            out[i] = [np.asarray(PILImage.open(x["image"])) for x in r[0]]
        except Exception as exc:  # noqa: BLE001 — reported by the assertion below
            errors[i] = f"{type(exc).__name__}: {exc}"

    ts = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate((7, 7, 8))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()  # no time limit: a slow or busy machine only takes longer
    assert sorted(out) == [0, 1, 2], errors
    assert all(np.array_equal(a, b) for a, b in zip(out[0], out[1]))
    assert not all(np.array_equal(a, b) for a, b in zip(out[0], out[2]))


def test_custom_pose_skeleton_image(tmp_path: Path) -> None:
    """An OpenPose skeleton render uploaded as the custom pose is read back into (about) the same keypoints."""
    from pose2id_demo.poses import Pose, draw_pose

    kp = np.array([[32, 14], [32, 30], [22, 30], [18, 50], [16, 68], [42, 30], [46, 50], [48, 68], [26, 66],
                   [26, 92], [26, 118], [38, 66], [38, 92], [38, 118], [29, 11], [35, 11], [26, 13], [38, 13]],
                  np.float32) * 2
    pose = Pose(np.concatenate([kp, np.ones((18, 1), np.float32)], 1), 128, 256)
    Image.fromarray(draw_pose(pose, 128, 256)).save(tmp_path / "skeleton.png")
    got, how = load_custom_pose(tmp_path / "skeleton.png")
    assert how == "skeleton image"
    vis = got.visible
    assert vis.sum() >= 12
    err = np.linalg.norm(got.resized(128, 256).keypoints[vis, :2] - pose.keypoints[vis, :2], axis=1)
    assert np.median(err) < 6


def _evil_checkpoint(path: Path, marker: Path) -> None:
    """A .pth whose unpickling would run code (create ``marker``): what a crafted checkpoint looks like."""
    import pickle

    import torch

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"weight": torch.zeros(1), "evil": Payload()}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)


@pytest.mark.slow
def test_crafted_pickle_checkpoints_refused(tmp_path: Path) -> None:
    """Both .pth readers (ImageNet MobileNetV2, official IPG weights) use torch.load(weights_only=True):
    a crafted pickle is refused and its code never runs."""
    import pickle

    from pose2id_demo.ipg.official import OFFICIAL_FILES, ReleaseFileError, load_official_modules
    from pose2id_demo.reid.mobilenetv2 import load_imagenet_mobilenetv2

    marker = tmp_path / "PWNED"
    _evil_checkpoint(tmp_path / "mnv2.pt", marker)
    with pytest.raises(pickle.UnpicklingError):
        load_imagenet_mobilenetv2(tmp_path / "mnv2.pt")
    official = tmp_path / "official"
    official.mkdir()
    for name in OFFICIAL_FILES.values():
        _evil_checkpoint(official / name, marker)
    with pytest.raises(ReleaseFileError, match="reference_unet.pth is .* bytes but"):  # refused by size, unread
        load_official_modules(official)
    with pytest.raises(pickle.UnpicklingError):  # read (the meta device skips the size check): refused by torch.load
        load_official_modules(official, device="meta")
    assert not marker.exists(), "a pickled checkpoint was executed"


# ------------------------------------------------------------------------------ files a request names
NOT_UPLOADED = "Please upload an image."


def _upload(url: str, path: Path) -> str:
    from conftest import upload

    return upload(url, path)


def _file(path: str, meta: bool) -> dict:
    from conftest import file_data

    return file_data(path, meta)


def _gen_args(image: object, custom_pose: object = None) -> list:
    return [image, "on", 1, 3.5, 42, 0.5, custom_pose, "synthped-reid"]


@pytest.fixture(scope="module")
def attack_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Paths an attacker could name: files on the server outside the upload cache (a secret, a text file, a real
    image), a missing one, ``..`` out of the cache, a symlink in the cache, and an image planted in the cache
    that no request uploaded."""
    from gradio.utils import get_upload_folder

    d = tmp_path_factory.mktemp("server")
    image = d / "server-image.png"
    _person_like().save(image)
    cache = Path(get_upload_folder()).resolve()
    planted = cache / f"p2i-test-planted-{os.getpid()}"
    planted.mkdir(parents=True, exist_ok=True)
    _person_like().save(planted / "person.png")
    link = planted / "link.png"
    if not link.is_symlink():
        link.symlink_to(image)
    return {"secret file": "/etc/shadow", "text file": "/etc/passwd", "missing file": "/no/such/dir/person.png",
            "image on the server": str(image), "relative path": "docs/screenshot.png",
            "`..` out of the upload cache": str(cache) + "/.." * (len(cache.parts) - 1) + str(image),
            "symlink in the upload cache": str(link), "image in the cache nobody uploaded": str(planted / "person.png")}


def _still_serving(url: str) -> None:
    from conftest import raw_call

    event, out = raw_call(url, "benchmark", ["standard", "synthped-reid", 0.5, 2, 2, "both", "both", False, "separate"])
    assert event == "complete" and out[0]["data"][0][0] == "baseline", out


def test_generate_opens_no_server_file(app_url: str, attack_paths: dict[str, str],
                                       caplog: pytest.LogCaptureFixture) -> None:
    """A raw /generate call naming a server file (no "meta": Gradio's upload check is skipped) gets the same
    sentence whether the file exists, is a secret, is an image or is missing; nothing is generated from it.
    (Before the request-file rule, /etc/shadow answered "not an image", a missing path "could not be found",
    and any image on the server was used as the reference.)"""
    from conftest import raw_call

    caplog.set_level("WARNING", logger="pose2id_demo")
    for name, path in attack_paths.items():
        assert raw_call(app_url, "generate", _gen_args(_file(path, meta=False))) == ("error", NOT_UPLOADED), name
        # With "meta", Gradio refuses paths outside its cache itself; inside it, the rule above answers.
        event, msg = raw_call(app_url, "generate", _gen_args(_file(path, meta=True)))
        assert event == "error" and msg in (None, NOT_UPLOADED), (name, msg)
    assert not [r for r in caplog.records if r.exc_info], "a refused path left a traceback in the log"
    _still_serving(app_url)


def test_uploads_and_shipped_examples_still_accepted(app_url: str, tmp_path: Path) -> None:
    """The rule lets through what the page sends: a file uploaded through Gradio, and a shipped example. (A bad
    custom pose stops each call right after the image was accepted, before any generation.)"""
    from conftest import raw_call

    from pose2id_demo.ui.app import EXAMPLES_DIR

    (tmp_path / "bad.json").write_text('{"keypoints": [[1, 2, "x"]]}')
    bad_pose = _file(_upload(app_url, tmp_path / "bad.json"), meta=True)
    example = str(sorted(EXAMPLES_DIR.glob("*.jpg"))[0])
    _person_like().save(tmp_path / "me.png")
    for image in (_file(_upload(app_url, tmp_path / "me.png"), meta=True), _file(example, meta=False)):
        event, msg = raw_call(app_url, "generate", _gen_args(image, bad_pose))
        assert event == "error" and "pose json is not valid" in str(msg), (image, msg)


def test_custom_pose_and_feature_file_open_no_server_file(app_url: str, attack_paths: dict[str, str],
                                                           tmp_path: Path) -> None:
    """The same rule for the custom pose of /generate and the feature file of /evaluate_features. (Without
    "meta", Gradio refuses a file payload itself, with no message: {"error": null}, whatever the path.)"""
    from conftest import raw_call

    _person_like().save(tmp_path / "me.png")
    me = _file(_upload(app_url, tmp_path / "me.png"), meta=True)
    for name, path in attack_paths.items():
        for meta in (False, True):
            event, msg = raw_call(app_url, "generate", _gen_args(me, _file(path, meta)))
            assert event == "error" and msg in (None, "Please upload a pose file."), (name, meta, msg)
            event, msg = raw_call(app_url, "evaluate_features", [_file(path, meta), 2, 2, 0.5, "both", "both"])
            assert event == "error", (name, meta, msg)  # Gradio's type check (by the name) may answer first
            assert msg in (None, "Please upload a feature file (.npz).") or "Invalid file type" in msg, (name, msg)
    _still_serving(app_url)


# ------------------------------------------------------------------------------ bounded work per request
def test_costly_feature_files_refused_before_work(app_url: str, tmp_path: Path) -> None:
    """A small compressed file whose arrays are huge to evaluate is priced from its headers and refused with a
    sentence saying what to do; the server keeps serving."""
    from gradio_client import Client, handle_file

    wide = tmp_path / "wide.npz"  # 2 rows × 100,000 dims: 3 KB compressed
    np.savez_compressed(wide, q_feats=np.zeros((2, 100_000), np.float32), g_feats=np.zeros((2, 100_000), np.float32),
                        q_pids=np.arange(2), g_pids=np.arange(2), q_camids=np.zeros(2, int), g_camids=np.ones(2, int))
    tall = tmp_path / "tall.npz"  # 60,000 rows × 4 dims
    n = 30_000
    np.savez_compressed(tall, q_feats=np.zeros((n, 4), np.float32), g_feats=np.zeros((n, 4), np.float32),
                        q_pids=np.arange(n), g_pids=np.arange(n), q_camids=np.zeros(n, int), g_camids=np.ones(n, int))
    client = Client(app_url, verbose=False)
    for path, frag in ((wide, "100,000 dimensions; the app evaluates up to 4,096"),
                       (tall, "= 60,000; the app evaluates up to 50,000")):
        msg = _app_error(client, handle_file(str(path)), 2, 2, 0.5, "both", "both", api_name="/evaluate_features")
        assert frag in msg and "python -m pose2id_demo eval" in msg, msg
    _still_serving(app_url)


def _feature_set(nq: int, ng: int, d: int, seed: int = 0):
    from pose2id_demo.featurefile import FeatureSet

    rng = np.random.default_rng(seed)
    ids = rng.integers(1, max(3, nq // 3), nq)
    g_ids = np.concatenate([ids, rng.integers(1, max(3, nq // 3), ng - nq)])
    centres = rng.normal(size=(int(g_ids.max()) + 1, d))
    return FeatureSet.from_arrays(dict(
        q_feats=(centres[ids] + rng.normal(size=(nq, d))).astype(np.float32),
        g_feats=(centres[g_ids] + rng.normal(size=(ng, d))).astype(np.float32),
        q_pids=ids, g_pids=g_ids, q_camids=np.zeros(nq, int), g_camids=np.ones(ng, int)))


def test_curves_on_a_subset_and_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """Curves beyond the work budget run on a subset of identities (said in a note) while the table uses every
    feature; a call past its time budget stops between evaluations: without a table it is refused, later it
    keeps what it has and says what was left out."""
    from pose2id_demo import ablation
    from pose2id_demo.engine import user_features as uf

    fs, s = _feature_set(60, 240, 16), ablation.Settings()
    full = uf.evaluate_feature_set(fs, s, 3)
    sub = uf.evaluate_feature_set(fs, s, 3, curve_budget=uf.curve_work(60, 240, 16, 0, 3) / 4)
    assert sub["rows"] == full["rows"] and sub["grid"]["map"].shape == (3, 3)
    assert any("use a random" in n and "the table uses every feature" in n for n in sub["notes"]), sub["notes"]
    part, note = uf.curve_subset(fs, 3, uf.curve_work(60, 240, 16, 0, 3) / 4)
    assert len(part.q) < len(fs.q) and set(part.q_pids) <= set(fs.q_pids) and note
    clock = iter(range(10**6))  # one second per look at the clock
    monkeypatch.setattr(uf, "time", types.SimpleNamespace(monotonic=lambda: float(next(clock)),
                                                          perf_counter=time.perf_counter))  # the module's only
    with pytest.raises(Pose2IDError, match="did not finish within the app's 0-second limit"):
        uf.evaluate_feature_set(fs, s, 3, budget_s=0)
    cut = uf.evaluate_feature_set(fs, s, 3, budget_s=4)
    assert cut["rows"] == full["rows"] and cut["grid"] is None
    assert any("Stopped at the app's 4-second limit" in n and "k1 × k2 grid" in n for n in cut["notes"]), cut["notes"]


def test_feature_file_with_nothing_to_evaluate(app_url: str, tmp_path: Path) -> None:
    """No query with a valid match (every match in the query's own camera), or every pid −1: a sentence, not a
    crash or a meaningless mAP of 100."""
    from gradio_client import Client, handle_file

    rng = np.random.default_rng(0)
    base = dict(q_feats=rng.normal(size=(6, 8)).astype(np.float32), g_feats=rng.normal(size=(12, 8)).astype(np.float32),
                q_pids=np.arange(6), g_pids=np.arange(12) % 6, q_camids=np.zeros(6, int), g_camids=np.zeros(12, int))
    client = Client(app_url, verbose=False)
    same_cam = _npz(tmp_path / "samecam.npz", **base)
    junk = _npz(tmp_path / "junk.npz", **{**base, "g_camids": np.ones(12, int), "q_pids": -np.ones(6, int),
                                          "g_pids": -np.ones(12, int)})
    for path, frag in ((same_cam, "No query has a valid match"),
                       (junk, "is −1 (junk), so there is nothing to evaluate")):
        msg = _app_error(client, handle_file(str(path)), 2, 2, 0.5, "both", "both", api_name="/evaluate_features")
        assert frag in msg, msg
    _still_serving(app_url)


# ------------------------------------------------------------------------------ temp files
@pytest.mark.slow
def test_uploads_and_exports_are_swept(tmp_path: Path) -> None:
    """With short ages (5 s, swept every second), an upload and Gradio's served copy of an export (Gradio's
    delete_cache) and the export itself (the app's own sweep) disappear; the app keeps serving. (The Gradio cache
    is this process's own folder, so a 5-second sweep touches no other app's files.)"""

    from conftest import free_port, raw_call

    from pose2id_demo.ui import tempfiles
    from pose2id_demo.ui.app import build_demo, launch

    demo = build_demo(delete_cache=(1, 5))
    _, url, _ = launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        _person_like().save(tmp_path / "me.png")
        uploaded = Path(_upload(url, tmp_path / "me.png"))
        assert uploaded.is_file()
        event, out = raw_call(url, "export_features", ["standard", "synthped-reid"])
        assert event == "complete", out
        exports = list((tempfiles.root() / "exports").glob("*/*.npz"))
        assert exports
        served = Path(out[0]["path"])  # Gradio's copy of the export, in its cache
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and (uploaded.exists() or served.exists()
                                               or any(p.exists() for p in exports)):
            time.sleep(0.5)
        assert not uploaded.exists() and not served.exists() and not any(p.exists() for p in exports)
        assert _upload(url, tmp_path / "me.png")  # still serving
    finally:
        demo.close()
    (tempfiles.images_dir() / "old").mkdir(exist_ok=True)
    assert tempfiles.sweep(age=3600, now=time.time() + 7200) >= 1 and not (tempfiles.images_dir() / "old").exists()


# ------------------------------------------------------------------------------ clear sentences
def test_raw_api_numbers_named(app_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """η "abc" / null and k1 "3" through the raw API: a sentence naming the parameter (Gradio's own slider
    answered {"error": null}); one warning line each, no traceback."""
    from conftest import raw_call

    caplog.set_level("WARNING", logger="pose2id_demo")
    bench = ["standard", "synthped-reid", 0.5, 2, 2, "both", "both", False, "separate"]
    for i, value, sentence in ((2, "abc", "η must be a number, not str 'abc'."),
                               (2, None, "η is missing: send a number."),
                               (3, "3", "k1 must be a number, not str '3'."),
                               (3, 99, "k1 must be between 1 and 20; got 99.")):
        args = list(bench)
        args[i] = value
        assert raw_call(app_url, "benchmark", args) == ("error", sentence)
    assert not [r for r in caplog.records if r.exc_info]
    assert sum("refused input" in r.getMessage() for r in caplog.records) == 4
    _still_serving(app_url)


def test_generate_checks_backbone_before_generating(app_url: str, tmp_path: Path) -> None:
    """/generate with an unknown backbone is refused before any generation (it used to fail after it)."""
    from conftest import raw_call

    _person_like().save(tmp_path / "me.png")
    me = _file(_upload(app_url, tmp_path / "me.png"), meta=True)
    args = _gen_args(me)
    args[-1] = "no-such-backbone"
    event, msg = raw_call(app_url, "generate", args)
    assert event == "error" and "Unknown backbone 'no-such-backbone'" in msg, msg
    eng = Engine()
    with pytest.raises(Pose2IDError, match="Unknown backbone"):
        eng.generate(tmp_path / "me.png", backbone="no-such-backbone")
    assert "pipeline" not in eng._store
    _still_serving(app_url)


def _pose(**over) -> dict:
    kp = np.zeros((18, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = np.linspace(10, 50, 18), np.linspace(10, 120, 18), 1
    return {"format": "openpose18", "width": 64, "height": 128, "keypoints": kp.tolist(), **over}


def test_pose_json_attacks(app_url: str, tmp_path: Path) -> None:
    """Pose json with absurd numbers, wrong types, deep nesting, no visible keypoint or no point on its canvas:
    refused with a sentence (not drawn as an empty pose, not "something went wrong")."""
    from conftest import raw_call

    kp = np.asarray(_pose()["keypoints"])
    far, huge, zero, outside = kp.copy(), kp.copy(), kp.copy(), kp.copy()
    far[3, :2] = 1e12
    huge[5, 0] = 1e30
    zero[:, 2] = 0
    outside[:, 0] += 500
    cases = {
        "coordinate 1e12": (json.dumps(_pose(keypoints=far.tolist())), "lies far outside the 64×128 canvas"),
        "coordinate 1e30": (json.dumps(_pose(keypoints=huge.tolist())), "lies far outside"),
        "width 1e999": (json.dumps(_pose()).replace('"width": 64', '"width": 1e999'), "width must be between 1 and"),
        "width [128]": (json.dumps(_pose(width=[128])), "pose width must be a number of pixels"),
        "200,000-deep nesting": ("[" * 200_000 + "]" * 200_000, "nests arrays or objects more than 8 deep"),
        "all confidences 0": (json.dumps(_pose(keypoints=zero.tolist())), "every keypoint has confidence 0"),
        "outside the canvas": (json.dumps(_pose(keypoints=outside.tolist())), "lies far outside"),
        "beside the canvas": (json.dumps(_pose(keypoints=(kp + [70, 0, 0]).tolist())),
                              "every visible keypoint lies outside the 64×128 canvas"),
    }
    _person_like().save(tmp_path / "me.png")
    me = _file(_upload(app_url, tmp_path / "me.png"), meta=True)
    for i, (name, (text, frag)) in enumerate(cases.items()):
        (tmp_path / f"pose{i}.json").write_text(text)
        pose = _file(_upload(app_url, tmp_path / f"pose{i}.json"), meta=True)
        event, msg = raw_call(app_url, "generate", _gen_args(me, pose))
        assert event == "error" and "The pose json is not valid" in str(msg) and frag in str(msg), (name, msg)
    _still_serving(app_url)


# ------------------------------------------------------------------------------ generation never starved
def test_generation_has_its_own_queue_and_cheap_work_is_bounded(app_url: str) -> None:
    """/generate has its own concurrency group (one at a time) that no cheap callback shares; the cheap
    benchmark callbacks run one at a time; NumPy's BLAS runs on one thread in the served process."""
    from threadpoolctl import threadpool_info

    from pose2id_demo.ui.app import build_demo
    from pose2id_demo.ui.common import BENCH_CONCURRENCY

    fns = build_demo().fns.values()
    groups: dict[str, set] = {}
    for fn in fns:
        groups.setdefault(fn.concurrency_id, set()).add((fn.name, fn.concurrency_limit))
    gen = [fn for fn in fns if fn.api_name == "generate"]
    assert len(gen) == 1 and gen[0].concurrency_limit == 1
    assert {name for name, _ in groups[gen[0].concurrency_id]} == {"generate"}, groups[gen[0].concurrency_id]
    assert BENCH_CONCURRENCY == 1 and all(lim == 1 for _, lim in groups["bench"])
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    assert blas and all(i["num_threads"] == 1 for i in blas), blas


def test_missing_image_sentences_read_as_english() -> None:
    from pose2id_demo.engine.errors import Pose2IDError
    from pose2id_demo.engine.inputs import load_image

    for what, sentence in (("reference image", "Please provide a reference image."),
                           ("pose image", "Please provide a pose image."),
                           ("uploaded file", "Please provide an uploaded file.")):
        for empty in (None, {"path": None}):
            with pytest.raises(Pose2IDError) as err:
                load_image(empty, what=what)
            assert str(err.value) == sentence


def test_huge_values_are_not_echoed_whole() -> None:
    from pose2id_demo.engine.errors import Pose2IDError
    from pose2id_demo.engine.inputs import check_float, check_int

    for value, start in (("9" * 100_000, "identity is far out of range, got '999"),
                         ("x" * 100_000, "identity must be a number, got 'xxx"),
                         ("nan", "identity must be a finite number, got 'nan'")):
        with pytest.raises(Pose2IDError) as err:
            check_int("identity", value, 1, 10)
        assert str(err.value).startswith(start) and len(str(err.value)) < 100
    with pytest.raises(Pose2IDError, match="far out of range"):
        check_float("η", "1e400", 0.0, 10.0)
    with pytest.raises(Pose2IDError, match="must be a number"):
        check_float("η", 10**400, 0.0, 10.0)
