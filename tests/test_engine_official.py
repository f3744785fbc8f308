"""`python app.py --ipg-weights DIR [--reid-extractor M:F]` routes generation to the official loader."""

import subprocess
import sys
from pathlib import Path

import pytest

import pose2id_demo.ipg.official as official
from pose2id_demo.engine import Engine, Pose2IDError

REPO = Path(__file__).resolve().parent.parent


def _fake_release(tmp_path: Path) -> Path:
    for name in official.OFFICIAL_FILES.values():
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_folder_and_extractor_are_checked(tmp_path):
    eng = Engine(device="cpu")
    with pytest.raises(Pose2IDError, match="not a folder"):
        eng.use_official_ipg(tmp_path / "missing", "x:y")
    with pytest.raises(Pose2IDError, match="lacks reference_unet.pth"):
        eng.use_official_ipg(tmp_path, "x:y")
    with pytest.raises(Pose2IDError, match="lacks transformer_20.pth.*reid-extractor"):
        eng.use_official_ipg(_fake_release(tmp_path), None)
    with pytest.raises(Pose2IDError, match="MODULE:CALLABLE"):
        eng.use_official_ipg(tmp_path, "no-colon")


def test_built_in_transreid_when_transformer_20_is_present(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(official, "load_official",
                        lambda directory, device="cpu", reid=None, **kw: calls.append((Path(directory), reid)))
    (_fake_release(tmp_path) / official.REID_FILE).write_bytes(b"")
    eng = Engine(device="cpu")
    eng.use_official_ipg(tmp_path)  # no --reid-extractor needed
    eng.pipeline()
    assert calls == [(tmp_path, None)]  # reid=None: load_official reads DIR/transformer_20.pth itself


def test_pipeline_comes_from_the_official_loader(tmp_path, monkeypatch):
    calls = []
    sentinel = object()

    def fake_load_official(directory, device="cpu", reid=None, **kw):
        calls.append((Path(directory), device, reid))
        return sentinel

    monkeypatch.setattr(official, "load_official", fake_load_official)
    eng = Engine(device="cpu")
    # any importable factory will do for the plumbing: collections:OrderedDict() stands in for the extractor
    eng.use_official_ipg(_fake_release(tmp_path), "collections:OrderedDict")
    assert eng.pipeline() is sentinel and eng.pipeline() is sentinel  # loaded once
    assert len(calls) == 1 and calls[0][0] == tmp_path and calls[0][1] == "cpu"
    assert type(calls[0][2]).__name__ == "OrderedDict"


def test_app_refuses_a_bad_weights_folder(tmp_path):
    r = subprocess.run([sys.executable, "app.py", "--ipg-weights", str(tmp_path)], cwd=REPO,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 2 and "lacks reference_unet.pth" in r.stderr and "Traceback" not in r.stderr
