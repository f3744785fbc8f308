"""`python app.py --ipg-weights hub|DIR [--reid-extractor M:F]` routes generation to the official loader: the
source is checked at start (one sentence), the weights load on first use, and the seed default becomes the
official inference's 12580."""

import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from hub_cache import release_file, write_hub_cache
from huggingface_hub import constants as hub_constants

import pose2id_demo.ipg.official as official
from pose2id_demo.engine import Engine, Pose2IDError

REPO = Path(__file__).resolve().parent.parent


def _fake_release(tmp_path: Path) -> Path:
    """File names only (sizes are checked at start: the loader itself is replaced in these tests)."""
    for name in official.OFFICIAL_FILES.values():
        (tmp_path / name).write_bytes(b"")
    return tmp_path


@pytest.fixture
def unchecked_sizes(monkeypatch):
    monkeypatch.setattr(official.OfficialRelease, "check", lambda self, vae=True: None)


def test_folder_and_extractor_are_checked(tmp_path, unchecked_sizes):
    eng = Engine(device="cpu")
    with pytest.raises(Pose2IDError, match="is not a folder"):
        eng.use_official_ipg(tmp_path / "missing", "x:y")
    with pytest.raises(Pose2IDError, match=r"lacks reference_unet.pth, denoising_unet.pth, pose_guider.pth, IFR.pth "
                                           r"\(looked in it and in its pretrained/ subfolder\)\.$"):
        eng.use_official_ipg(tmp_path, "x:y")
    with pytest.raises(Pose2IDError, match="lacks transformer_20.pth .*--reid-extractor"):
        eng.use_official_ipg(_fake_release(tmp_path), None)
    with pytest.raises(Pose2IDError, match="MODULE:CALLABLE"):
        eng.use_official_ipg(tmp_path, "no-colon")
    assert eng.default_seed == 42 and eng.generator_is_embedded


def test_built_in_transreid_when_transformer_20_is_present(tmp_path, monkeypatch, unchecked_sizes):
    calls = []
    monkeypatch.setattr(official, "load_official",
                        lambda source, device="cpu", reid=None, **kw: calls.append((source, reid)) or _Pipe())
    (_fake_release(tmp_path) / official.REID_FILE).write_bytes(b"")
    eng = Engine(device="cpu")
    eng.use_official_ipg(tmp_path)  # no --reid-extractor needed
    eng.pipeline()
    (release, reid), = calls
    assert release.reid == tmp_path / official.REID_FILE and reid is None  # load_official reads it itself


class _Pipe:
    def set_progress_bar_config(self, **kw):
        pass


def test_pipeline_comes_from_the_official_loader(tmp_path, monkeypatch, unchecked_sizes):
    calls = []
    sentinel = _Pipe()

    def fake_load_official(source, device="cpu", reid=None, **kw):
        calls.append((source, device, reid))
        return sentinel

    monkeypatch.setattr(official, "load_official", fake_load_official)
    eng = Engine(device="cpu")
    # any importable factory will do for the plumbing: collections:OrderedDict() stands in for the extractor
    eng.use_official_ipg(_fake_release(tmp_path), "collections:OrderedDict")
    assert eng.pipeline() is sentinel and eng.pipeline() is sentinel  # loaded once
    assert len(calls) == 1 and calls[0][0].weights["ifr"] == tmp_path / "IFR.pth" and calls[0][1] == "cpu"
    assert type(calls[0][2]).__name__ == "OrderedDict"
    assert eng.default_seed == 12580 and not eng.generator_is_embedded and eng.generator_status() is None


def test_app_refuses_a_bad_weights_folder(tmp_path):
    r = subprocess.run([sys.executable, "app.py", "--ipg-weights", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 2 and "lacks reference_unet.pth" in r.stderr and "Traceback" not in r.stderr


def test_app_names_a_file_missing_from_the_hub_cache_offline(tmp_path):
    """HF_HUB_OFFLINE=1 and a cache without IFR.pth: one line naming it, status 2 (read from the environment, as a
    Space or a user sets it; POSE2ID_IPG_WEIGHTS=hub is the Space variable for --ipg-weights hub)."""
    cache = tmp_path / "hub"
    write_hub_cache(cache, "pretrained/")
    release_file(cache, "IFR.pth").unlink()
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1", POSE2ID_IPG_WEIGHTS="hub")
    r = subprocess.run([sys.executable, "app.py"], cwd=REPO, capture_output=True, text=True, timeout=1800, env=env)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(errors) == 1, r.stderr[-2000:]
    assert errors[0].startswith("error: --ipg-weights: IFR.pth of yuanc3/Pose2ID@main (at its root or under "
                                "pretrained/) is not in the Hugging Face cache") and "HF_HUB_OFFLINE=1" in errors[0]


@pytest.mark.slow
def test_official_weights_from_the_hub_cache_generate_with_seed_12580(tmp_path, monkeypatch):
    """The whole engine path offline: the Hub cache (tiny architecture), --reid-extractor, a generation whose
    default seed is the official 12580, images at 512 x 256."""
    cache = tmp_path / "hub"
    write_hub_cache(cache, "")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    eng = Engine(device="cpu")
    eng.use_official_ipg("hub", "hub_cache:tiny_reid")
    assert eng.default_seed == 12580 and eng.generator_status() is None
    image = np.full((128, 64, 3), 90, np.uint8)
    res = eng.generate(image, use_ifr="on", steps=1)
    assert res["seed"] == 12580 and len(res["images"]["on"]) == 8 and res["images"]["on"][0].size == (256, 512)
    again = eng.generate(image, use_ifr="on", steps=1, seed=12580)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(res["images"]["on"], again["images"]["on"]))
    other = eng.generate(image, use_ifr="on", steps=1, seed=42)
    assert not np.array_equal(np.asarray(res["images"]["on"][0]), np.asarray(other["images"]["on"][0]))


def test_the_seed_box_defaults_to_12580_and_says_why_with_the_official_weights(monkeypatch):
    from pose2id_demo.engine import get_engine
    from pose2id_demo.ui import build_demo

    def seed_box():
        demo = build_demo()
        (box,) = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "seed"]
        return box

    box = seed_box()
    assert box.value == 42 and not box.info  # the embedded generator
    models = get_engine().models
    monkeypatch.setattr(models, "_pipeline_factory", lambda: None)  # as use_official_ipg leaves it
    monkeypatch.setattr(models, "official", object())
    monkeypatch.setattr(models, "default_seed", official.OFFICIAL_SEED)
    box = seed_box()
    assert box.value == 12580 and "12580: the official inference's seed" in box.info


class _SlowHandle:
    """A release whose download runs until ``gate`` opens (or fails once with ``fail``), 250 of 1,000 bytes in."""

    def __init__(self, gate, fail: str = "") -> None:
        from pose2id_demo.ipg import hub

        self.gate, self.fail, self.fetches, self.download_bytes = gate, fail, 0, 1000
        self.progress, self.release = hub.DownloadProgress(), None

    def fetch(self):  # like the real handle, the files once fetched are kept
        from pose2id_demo.ipg import hub

        if self.release is not None:
            return self.release
        self.fetches += 1
        self.progress.start(1000)
        self.progress.add(250)
        assert self.gate.wait(60)
        if self.fail:
            self.fail, error = "", self.fail
            self.progress.finish(error)
            raise hub.HubError(error)
        self.progress.add(750)
        self.progress.finish()
        self.release = types.SimpleNamespace(source="hub:yuanc3/Pose2ID@test")
        return self.release


def test_a_generation_waits_for_the_download_saying_so_without_holding_the_cpu(monkeypatch):
    """A generation asked while the official weights download: its input is checked first, then it waits for the
    one shared download (its progress says how far it is) holding no CPU slot, then generates; a failed download
    is one sentence, and the next request starts it again."""
    import threading

    from pose2id_demo.engine.scheduler import CPU

    gate = threading.Event()
    handle = _SlowHandle(gate, fail="IFR.pth of yuanc3/Pose2ID could not be downloaded (timeout); run again to resume.")
    monkeypatch.setattr(official, "open_release", lambda source, need_reid=True: handle)
    monkeypatch.setattr(official, "load_official", lambda release, device="cpu", reid=None, **kw: _StopPipe())
    eng = Engine(device="cpu")
    eng.use_official_ipg("hub", "collections:OrderedDict")
    assert eng.generator_download_pending
    image = np.full((128, 64, 3), 90, np.uint8)
    with pytest.raises(Pose2IDError, match="steps"):  # checked before any waiting
        eng.generate(image, steps=0)

    said: list[str] = []
    outcome: dict = {}

    def catch(name, fn) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            outcome[name] = exc

    first = threading.Thread(target=catch, args=("generate", lambda: eng.generate(
        image, use_ifr="on", steps=1, progress=lambda f, d: said.append(d))))
    second = threading.Thread(target=catch, args=("warm-up", eng.fetch_generator))
    first.start()
    second.start()
    deadline = 60
    while "Waiting for the generator: downloading the official Pose2ID weights: 250 B of 1.0 kB (25 %) …" not in said:
        assert deadline > 0, said
        deadline -= 0.1
        first.join(0.1)
    assert "a generation" not in CPU.running  # waiting for the network, not on a CPU slot
    gate.set()
    first.join(60)
    second.join(60)
    for name in ("generate", "warm-up"):
        assert isinstance(outcome[name], Pose2IDError) and str(outcome[name]) == (
            "The official Pose2ID weights are not usable: IFR.pth of yuanc3/Pose2ID could not be downloaded "
            "(timeout); run again to resume.")
    assert handle.fetches == 1  # two waiters, one download
    with pytest.raises(_Stop):  # the next request downloads again, loads the weights and generates
        eng.generate(image, use_ifr="on", steps=1)
    assert handle.fetches == 2 and not eng.generator_download_pending


class _Stop(Exception):
    pass


class _StopPipe(_Pipe):
    def __call__(self, **kw):
        raise _Stop  # reached the generation itself


def test_the_generate_tab_shows_the_download_in_its_progress(monkeypatch, tmp_path):
    """The Generate tab's own callback, with the official weights still downloading: its progress bar says how
    far the download is (bytes of the total, percent) while it waits, and then the answer is the generation's
    (here the stand-in pipeline's stop), never a placeholder."""
    import threading

    from PIL import Image

    from pose2id_demo.ui import generate_tab

    gate = threading.Event()
    handle = _SlowHandle(gate)
    monkeypatch.setattr(official, "open_release", lambda source, need_reid=True: handle)
    monkeypatch.setattr(official, "load_official", lambda release, device="cpu", reid=None, **kw: _StopPipe())
    eng = Engine(device="cpu")
    eng.use_official_ipg("hub", "collections:OrderedDict")
    monkeypatch.setattr(generate_tab, "get_engine", lambda: eng)
    monkeypatch.setattr("pose2id_demo.ui.common.get_engine", lambda: eng)
    image = tmp_path / "person.png"
    Image.fromarray(np.full((128, 64, 3), 90, np.uint8)).save(image)
    shown: list[str] = []

    class Progress:  # what gr.Progress receives
        def __call__(self, frac, desc=None, **kw):
            shown.append(desc)

    outcome: dict = {}

    def run() -> None:
        try:
            generate_tab.generate(str(image), "on", 1, 3.5, 42, 0.5, None, "synthped-reid", progress=Progress())
        except Exception as exc:  # noqa: BLE001
            outcome["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    want = "Waiting for the generator: downloading the official Pose2ID weights: 250 B of 1.0 kB (25 %) …"
    for _ in range(600):
        if want in shown:
            break
        t.join(0.1)
    assert want in shown, shown
    gate.set()
    t.join(60)
    assert "Something went wrong" in str(outcome["error"])  # the stand-in pipeline's stop, reported as an error
