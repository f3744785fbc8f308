"""The official release from the Hugging Face Hub: the real resolution code (``hf_hub_download``) run offline
against a Hub cache folder the test writes (tiny architecture, released file and key names), in both layouts;
a missing file and a wrong-sized file are each one sentence naming it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hub_cache import COMMITS, TINY_UNET, release_file, snapshot, tiny_reid, write_hub_cache
from huggingface_hub import constants as hub_constants

from pose2id_demo.ipg import hub
from pose2id_demo.ipg.official import (
    OFFICIAL_FILES,
    REID_FILE,
    UNET_CONFIG_PATH,
    VAE_FOLDER,
    OfficialRelease,
    ReleaseFileError,
    load_official,
    load_official_modules,
    open_release,
)
from pose2id_demo.poses.representative import load_representative_poses


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache, with HF_HUB_CACHE and HF_HUB_OFFLINE=1 in force (the variables and the library's
    constants, which it reads once at import)."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return cache


def one_sentence(msg: str) -> bool:
    return "\n" not in msg and msg.endswith(".") and ". " not in msg.rstrip(".")


def test_hub_specs():
    assert hub.parse_hub_spec("hub") == hub.HubSpec("yuanc3/Pose2ID", None)
    assert hub.parse_hub_spec("hub:someone/Pose2ID-copy@v1.0") == hub.HubSpec("someone/Pose2ID-copy", "v1.0")
    assert str(hub.parse_hub_spec("hub:a/b@" + "f" * 40)) == "hub:a/b@" + "f" * 40
    assert hub.parse_hub_spec("/data/pose2id") is None and hub.parse_hub_spec("hubble") is None
    for bad in ("hub:no-slash", "hub:a/b@", "hub:a/b/c", "hub:../x"):
        with pytest.raises(hub.HubError, match="hub:OWNER/NAME|revision"):
            hub.parse_hub_spec(bad)


@pytest.mark.parametrize("prefix", ["", "pretrained/"])
def test_release_is_found_in_the_cache_in_both_layouts(offline_cache, prefix):
    write_hub_cache(offline_cache, prefix)
    names = [*OFFICIAL_FILES.values(), REID_FILE]
    plan = hub.plan(hub.HubSpec(), names)
    assert plan.offline and plan.download_bytes == 0
    found = {f.key: f for f in plan.files}
    assert [found[n].filename for n in names] == [prefix + n for n in names]
    assert found["unet_config"].repo == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert {found["vae/config.json"].repo, found["vae/diffusion_pytorch_model.safetensors"].repo} == {
        "stabilityai/sd-vae-ft-mse"}
    assert all(f.cached and f.commit == COMMITS[f.repo] for f in plan.files)

    handle = open_release("hub", need_reid=False)  # checks sizes too, the cache being complete
    assert handle.download_bytes == 0 and handle.progress.describe() is None
    release = handle.fetch()
    assert release.source == "hub:yuanc3/Pose2ID@" + "a" * 12
    for module, filename in OFFICIAL_FILES.items():
        assert release.weights[module].resolve() == release_file(offline_cache, filename).resolve()
    assert release.unet_architecture()["block_out_channels"] == (32, 64, 64, 64)
    assert (release.vae / "diffusion_pytorch_model.safetensors").is_file()


@pytest.mark.slow
def test_hub_release_loads_and_generates_like_the_same_files_in_a_folder(offline_cache, tmp_path):
    """The Hub path and the folder path give the same modules (exact copies of what was written) and the same
    generation; images at the release's 512 x 256."""
    written = write_hub_cache(offline_cache, "pretrained/")
    from_hub = load_official(open_release("hub", need_reid=False).fetch(), reid=tiny_reid())
    folder = tmp_path / "release"
    folder.mkdir()
    for filename in OFFICIAL_FILES.values():
        shutil.copy(release_file(offline_cache, filename), folder / filename)
    (folder / UNET_CONFIG_PATH).parent.mkdir(parents=True)
    shutil.copy(snapshot(offline_cache, "stable-diffusion-v1-5/stable-diffusion-v1-5") / "unet" / "config.json",
                folder / UNET_CONFIG_PATH)
    shutil.copytree(snapshot(offline_cache, "stabilityai/sd-vae-ft-mse"), folder / VAE_FOLDER)
    from_folder = load_official(folder, reid=tiny_reid())
    for name, module in written.items():
        for key, value in module.state_dict().items():
            assert torch.equal(getattr(from_hub, name).state_dict()[key], value), (name, key)
    poses = [p for _, p in load_representative_poses()[:2]]
    ref = np.full((128, 64, 3), 120, np.uint8)
    a = from_hub(ref, poses, num_inference_steps=1, seed=12580, output_type="np").images
    b = from_folder(ref, poses, num_inference_steps=1, seed=12580, output_type="np").images
    assert a.shape == (2, 512, 256, 3) and np.array_equal(a, b)


def test_a_missing_file_is_one_sentence(offline_cache):
    write_hub_cache(offline_cache, "pretrained/")
    release_file(offline_cache, "IFR.pth").unlink()
    with pytest.raises(hub.HubError) as err:
        open_release("hub", need_reid=False)
    msg = str(err.value)
    assert one_sentence(msg), msg
    assert "IFR.pth of yuanc3/Pose2ID@main" in msg and "HF_HUB_OFFLINE=1" in msg and str(offline_cache) in msg
    assert "reference_unet.pth" not in msg  # only what is missing
    # a missing base-model file, and another revision than the cached one
    write_hub_cache(offline_cache, "pretrained/")
    (snapshot(offline_cache, "stabilityai/sd-vae-ft-mse") / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(hub.HubError, match=r"^diffusion_pytorch_model.safetensors of stabilityai/sd-vae-ft-mse"):
        open_release("hub", need_reid=False)
    with pytest.raises(hub.HubError, match=r"reference_unet.pth, denoising_unet.pth, pose_guider.pth, IFR.pth of "
                                           r"yuanc3/Pose2ID@v2 .*not in the Hugging Face cache"):
        open_release("hub:yuanc3/Pose2ID@v2", need_reid=False)


def test_a_wrong_sized_file_is_one_sentence(offline_cache):
    write_hub_cache(offline_cache, "")
    path = release_file(offline_cache, "pose_guider.pth")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # a download that stopped early
    with pytest.raises(ReleaseFileError) as err:
        open_release("hub", need_reid=False)
    msg = str(err.value)
    assert one_sentence(msg), msg
    assert msg.startswith(f"{path} is {len(data) // 3:,} bytes but pose_guider.pth at this architecture needs ")
    assert "delete it and fetch it again" in msg
    # the right size but not a checkpoint (e.g. garbage from a bad mirror): named when it is read
    path.write_bytes(b"\0" * len(data))
    handle = open_release("hub", need_reid=False)
    with pytest.raises(ReleaseFileError, match=rf"^{path} is not a readable PyTorch checkpoint .*fetch it again\.$"):
        load_official_modules(handle.fetch())


def test_a_size_that_differs_from_the_hubs_is_named(offline_cache):
    """A cached file whose size is not the one the Hub reports (a corrupted cache) is refused by fetch."""
    write_hub_cache(offline_cache, "")
    plan = hub.plan(hub.HubSpec(), list(OFFICIAL_FILES.values()))
    f = next(f for f in plan.files if f.key == "IFR.pth")
    plan.files[plan.files.index(f)] = hub.HubFile(f.key, f.repo, f.filename, f.commit, f.size + 1, f.cached)
    with pytest.raises(hub.HubError, match=rf"is {f.size:,} bytes but the Hub's yuanc3/Pose2ID/IFR.pth is "
                                           rf"{f.size + 1:,}: delete it and run again"):
        plan.fetch()


def test_download_progress_counts_bytes_and_logs_every_tenth(caplog):
    progress = hub.DownloadProgress()
    assert progress.describe() is None
    progress.start(2_000_000_000)
    bar_class = hub._counting_bar(progress)
    caplog.set_level("INFO", logger="pose2id_demo.ipg.hub")
    bar = bar_class(total=1_500_000_000, initial=500_000_000, disable=True)  # a resumed download
    for _ in range(5):
        bar.update(100_000_000)
    bar.update_transfer(100_000_000)  # network-side counter: not counted twice
    assert progress.done == 1_000_000_000
    assert progress.describe() == "downloading the official Pose2ID weights: 1.0 GB of 2.0 GB (50 %)"
    logged = [r.getMessage() for r in caplog.records if "of 2.0 GB" in r.getMessage()]
    assert logged and logged[-1].endswith("1.0 GB of 2.0 GB (50 %)") and len(logged) == len(set(logged)) <= 6
    progress.finish()
    assert progress.describe() is None and progress.state == "done"


def test_a_folder_with_the_pretrained_layout(offline_cache, tmp_path):
    """A folder made as the release README says (files in pretrained/) is found like the flat one."""
    write_hub_cache(offline_cache, "pretrained/")
    folder = tmp_path / "dir"
    shutil.copytree(release_file(offline_cache, "IFR.pth").parent.parent, folder)
    release = OfficialRelease.from_folder(folder, need_reid=True)
    assert release.weights["ifr"] == folder / "pretrained" / "IFR.pth"
    assert release.reid == folder / "pretrained" / REID_FILE and release.unet_config is None
    with pytest.raises(ReleaseFileError, match=rf"^{folder} lacks sd-vae-ft-mse/ "):
        release.check()
    assert TINY_UNET["block_out_channels"] != release.unet_architecture()["block_out_channels"]  # built-in SD1.5


def test_fetch_downloads_only_what_is_missing_and_reports_progress(tmp_path, monkeypatch):
    """The download step at the library's boundary: ``hf_hub_download`` replaced by a stand-in that writes the file
    and drives the progress bar it is given, as the library does (the network is not reachable here)."""
    blobs = {"IFR.pth": b"i" * 3000, "pose_guider.pth": b"p" * 1000}
    calls = []

    def fake_download(repo, filename, revision=None, tqdm_class=None, **kw):
        calls.append(filename)
        path = tmp_path / filename
        if filename in blobs and tqdm_class is not None and not path.exists():
            with tqdm_class(total=len(blobs[filename]), initial=0, disable=True) as bar:
                for _ in range(0, len(blobs[filename]), 500):
                    bar.update(500)
            path.write_bytes(blobs[filename])
        return str(path)

    monkeypatch.setattr(hub, "hf_hub_download", fake_download)
    (tmp_path / "cached.json").write_text("{}")
    plan = hub.HubPlan(spec=hub.HubSpec(), files=[
        hub.HubFile("IFR.pth", "yuanc3/Pose2ID", "IFR.pth", "a" * 40, 3000, cached=False),
        hub.HubFile("pose_guider.pth", "yuanc3/Pose2ID", "pose_guider.pth", "a" * 40, 1000, cached=False),
        hub.HubFile("unet_config", "x/y", "cached.json", "b" * 40, 2, cached=True)])
    assert plan.download_bytes == 4000
    progress = hub.DownloadProgress()
    seen = []
    real_add = progress.add
    monkeypatch.setattr(progress, "add", lambda n: (real_add(n), seen.append(progress.describe())))
    paths = plan.fetch(progress)
    assert paths["IFR.pth"] == tmp_path / "IFR.pth" and calls == ["IFR.pth", "pose_guider.pth", "cached.json"]
    assert progress.done == 4000 and progress.state == "done" and progress.describe() is None
    assert seen[-1] == "downloading the official Pose2ID weights: 4.0 kB of 4.0 kB (100 %)"
    blobs["IFR.pth"] = b"i" * 2999  # a transfer that ended short
    (tmp_path / "IFR.pth").unlink()
    with pytest.raises(hub.HubError, match=r"IFR.pth is 2,999 bytes but the Hub's yuanc3/Pose2ID/IFR.pth is 3,000"):
        plan.fetch(hub.DownloadProgress())
