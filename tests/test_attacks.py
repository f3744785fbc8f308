"""Red-team cases that once broke the app, each kept as a test: the attack, the sentence it must get, and the
bound it must stay within (a hang guard, how much is decompressed, how many evaluations run, how many zip
entries are parsed, how many bytes the app keeps on disk).

Requests go through the raw HTTP API (what a script sends: no client-side checks), the engine, or both. Before
these fixes: an 80 KB pose json held the server for 79 s (the 1 MB one for about two hours); pose numbers of 400
digits answered "Something went wrong"; server paths and ``k1 = 10**400`` answered ``{"error": null}``; an empty
upload file name answered HTTP 500; an extensionless twin of ``q_feats.npy`` loaded 1 GB the price never saw; a
file with 80,000 generated features per image ran 3 · 80,001 evaluations past the time limit; a zip listing 2
million entries was parsed for 41 s before its refusal; and uploads stayed on disk after the app ended.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
import types
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from pose2id_demo import ablation, featurefile
from pose2id_demo.engine import Engine, Pose2IDError, load_custom_pose
from pose2id_demo.engine import user_features as uf
from pose2id_demo.engine.scheduler import BACKGROUND, CPU
from pose2id_demo.poses.keypoints import MAX_JSON_DEPTH

ROOT = Path(__file__).resolve().parent.parent
HANG_GUARD_S = 60  # generous: a bounded case takes well under a second; the old code took minutes to hours
GEN = ["on", 1, 3.5, 42, 0.5]  # /generate's IFR, steps, CFG, seed, η


def _person(path: Path) -> Path:
    a = np.full((128, 64, 3), 200, np.uint8)
    a[16:42, 21:43] = (230, 180, 150)
    a[42:85, 16:48] = (30, 60, 200)
    a[85:, 16:48] = (40, 40, 40)
    Image.fromarray(a).save(path)
    return path


def _pose(**over) -> dict:
    kp = np.zeros((18, 3))
    kp[:, 0], kp[:, 1], kp[:, 2] = np.linspace(10, 50, 18), np.linspace(10, 120, 18), 1
    return {"format": "openpose18", "width": 64, "height": 128, "keypoints": kp.tolist(), **over}


@pytest.fixture(scope="module")
def me(app_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    from conftest import file_data, upload

    return file_data(upload(app_url, _person(tmp_path_factory.mktemp("me") / "me.png")))


def _generate_with_pose(url: str, me: dict, path: Path, timeout: float = HANG_GUARD_S) -> tuple[str, object]:
    from conftest import file_data, raw_call, upload

    return raw_call(url, "generate", [me, *GEN, file_data(upload(url, path)), "synthped-reid"], timeout=timeout)


# ------------------------------------------------------------------------------------------- pose json (linear)
@pytest.mark.parametrize("n", [40_000, 500_000], ids=["80 KB", "1 MB"])
def test_escaped_quotes_pose_json_is_parsed_in_linear_time(tmp_path: Path, n: int) -> None:
    """``'"' + '\\\\"' * n``: an unterminated string of escaped quotes. Bound: the engine's answer within the hang
    guard, in a subprocess (the backtracking pattern took 79 s on 80 KB and four times longer per doubling)."""
    path = tmp_path / "quotes.json"
    path.write_text('"' + '\\"' * n)
    assert path.stat().st_size == 2 * n + 1
    code = ("import sys\nfrom pose2id_demo.engine import Pose2IDError, load_custom_pose\n"
            "try:\n    load_custom_pose(sys.argv[1])\nexcept Pose2IDError as exc:\n    print(exc)\n")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT,
                       timeout=HANG_GUARD_S)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("The pose json is not valid: not a valid pose json: Unterminated string"), r.stdout


def test_escaped_quotes_pose_json_through_the_app(app_url: str, me: dict, tmp_path: Path) -> None:
    """The 80 KB case through /generate: a sentence within the hang guard, and the server answers meanwhile."""
    path = tmp_path / "quotes.json"
    path.write_text('"' + '\\"' * 40_000)
    event, msg = _generate_with_pose(app_url, me, path)
    assert event == "error" and str(msg).startswith("The pose json is not valid: not a valid pose json: "
                                                    "Unterminated string"), msg


@pytest.mark.parametrize("over,sentence", [
    ({"width": 10**400}, "The pose json is not valid: pose width must be between 1 and 100000 pixels, got a far "
                         "larger number"),
    ({"keypoints": [[10**400, 20, 1]] + _pose()["keypoints"][1:]},
     "The pose json is not valid: pose keypoints must be pixel coordinates; one is a whole number too large for "
     "any float"),
    ({"keypoints": [[1e39, 20, 1]] + _pose()["keypoints"][1:]},
     "The pose json is not valid: pose keypoints must be pixel coordinates; one is beyond the float32 range"),
    ({"height": "1" * 5000}, "The pose json is not valid: pose height must be a number of pixels"),
], ids=["width 10**400", "keypoint 10**400", "keypoint 1e39", "height of 5,000 digits as text"])
def test_pose_numbers_beyond_any_float(app_url: str, me: dict, tmp_path: Path, over: dict, sentence: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """Numbers no float holds: a sentence (it was "Something went wrong inside the demo (TypeError /
    OverflowError)"), one warning line, no traceback."""
    caplog.set_level("WARNING", logger="pose2id_demo")
    path = tmp_path / "pose.json"
    path.write_text(json.dumps(_pose(**over)))
    event, msg = _generate_with_pose(app_url, me, path)
    assert event == "error" and str(msg).startswith(sentence), msg
    assert not [r for r in caplog.records if r.exc_info]


def test_pose_integer_of_5000_digits(tmp_path: Path) -> None:
    """json refuses integers of over 4,300 digits with a ValueError of its own: a sentence too."""
    path = tmp_path / "pose.json"
    path.write_text(json.dumps(_pose()).replace('"width": 64', '"width": ' + "9" * 5000))
    with pytest.raises(Pose2IDError, match="The pose json is not valid: not a valid pose json: Exceeds the limit"):
        load_custom_pose(path)


def test_deep_nesting_still_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text('{"a": "[[[[", "keypoints": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(Pose2IDError, match=f"nests arrays or objects more than {MAX_JSON_DEPTH} deep"):
        load_custom_pose(path)


# ------------------------------------------------------------------------------------- every refusal a sentence
def test_benchmark_k1_beyond_any_float(app_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """``k1 = 10**400`` as a raw JSON integer (it was ``{"error": null}``)."""
    from conftest import raw_call

    caplog.set_level("WARNING", logger="pose2id_demo")
    for i, name in ((3, "k1"), (4, "k2")):
        args = ["standard", "synthped-reid", 0.5, 2, 2, "both", "both", False, "separate"]
        args[i] = 10**400
        assert raw_call(app_url, "benchmark", args) == (
            "error", f"{name} is far out of range: a whole number of about 401 digits was sent.")
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("endpoint,index,sentence", [
    ("generate", 0, "Please upload an image."),
    ("generate", 6, "Please upload a pose file."),
    ("evaluate_features", 0, "Please upload a feature file (.npz)."),
])
@pytest.mark.parametrize("meta", [True, False], ids=["meta", "no meta"])
@pytest.mark.parametrize("path", ["/etc/passwd", "/no/such/file.npz", "../../../../etc/hostname"])
def test_refused_server_paths_get_the_sentence(app_url: str, me: dict, endpoint: str, index: int, sentence: str,
                                               meta: bool, path: str, caplog: pytest.LogCaptureFixture) -> None:
    """A server path in any file input, with or without Gradio's "meta": the engine's sentence, the same whether
    the file exists or not, through the raw API (Gradio's own refusals answered ``{"error": null}``)."""
    from conftest import file_data, raw_call

    caplog.set_level("WARNING", logger="pose2id_demo")
    args = ([me, *GEN, None, "synthped-reid"] if endpoint == "generate" else [None, 2, 2, 0.5, "both", "both"])
    args[index] = file_data(path, meta)
    assert raw_call(app_url, endpoint, args) == ("error", sentence)
    assert not [r for r in caplog.records if r.exc_info]


def test_too_few_inputs_get_a_sentence(app_url: str) -> None:
    from conftest import raw_call

    assert raw_call(app_url, "benchmark", ["standard", "synthped-reid"]) == (
        "error", "This endpoint takes 9 inputs; 2 were sent.")


def test_refusals_reach_the_queue_route_too(app_url: str) -> None:
    """The page's own route (``/gradio_api/queue/join`` + its event stream) carries the same sentence."""
    import httpx
    from gradio_client import Client

    base = app_url.rstrip("/")
    fn_index = {d["api_name"]: d["id"] for d in Client(app_url, verbose=False).config["dependencies"]
                if d.get("api_name")}["benchmark"]
    session = "attack-queue-route"
    r = httpx.post(f"{base}/gradio_api/queue/join", json={
        "data": ["standard", "synthped-reid", 0.5, 10**400, 2, "both", "both", False, "separate"], "fn_index": fn_index,
        "session_hash": session, "event_data": None, "trigger_id": None}, timeout=HANG_GUARD_S)
    r.raise_for_status()
    with httpx.stream("GET", f"{base}/gradio_api/queue/data", params={"session_hash": session},
                      timeout=HANG_GUARD_S) as s:
        for line in s.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    assert msg["success"] is False
                    assert msg["output"]["error"] == "k1 is far out of range: a whole number of about 401 digits " \
                                                     "was sent."
                    return
    raise AssertionError("no process_completed message")


def _one_warning(caplog: pytest.LogCaptureFixture, since: int) -> list[str]:
    """The warning lines logged since record ``since``."""
    return [r.getMessage() for r in caplog.records[since:] if r.levelname == "WARNING"]


def _bad_values_for(dep: dict) -> list:
    n = len(dep["inputs"])
    return [[None] * n, [-1] * n, [10**9] * n, ["x"] * n]


def test_every_event_answers_values_no_control_sends_with_a_sentence(app_url: str, caplog: pytest.LogCaptureFixture,
                                                                    capfd: pytest.CaptureFixture) -> None:
    """Every event of the page answers ``/gradio_api/call/<api_name>`` — the private ones too, Gradio's own for the
    cached examples (``load_example_input``, ``load_example``: an index of -1 picked the last example, null or
    10**9 answered ``{"error": null}``), the ones that run in the browser only (``IndexError``) and the table-row
    clicks (``TypeError`` without the click's data). Values no control sends get a sentence and exactly one
    warning line, never ``{"error": null}`` or a traceback. Events without inputs or click data cannot be sent a
    bad value and are left out."""
    from conftest import raw_call
    from gradio_client import Client

    caplog.set_level("WARNING", logger="pose2id_demo")
    deps = [d for d in Client(app_url, verbose=False).config["dependencies"] if d.get("api_name")
            and (d["inputs"] or not d["backend_fn"] or d["collects_event_data"])]
    names = {d["api_name"] for d in deps}
    assert {"load_example_input", "load_example", "generate", "identity", "js_fn", "_pick_query"} <= names, names
    capfd.readouterr()
    for dep in deps:
        for values in _bad_values_for(dep):
            since = len(caplog.records)
            event, answer = raw_call(app_url, dep["api_name"], values, timeout=HANG_GUARD_S)
            if event == "error":
                assert isinstance(answer, str) and answer.endswith("."), (dep["api_name"], values, answer)
                assert len(_one_warning(caplog, since)) == 1, (dep["api_name"], values, _one_warning(caplog, since))
            else:
                assert event == "complete", (dep["api_name"], values, event)
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    assert not [r for r in caplog.records if r.exc_info]


@pytest.mark.parametrize("api_name", ["load_example_input", "load_example"])
@pytest.mark.parametrize("index", [-1, -8, None, 10**9, "x", True, 2.0, 10**400],
                         ids=["-1", "-8", "null", "10**9", "x", "true", "2.0", "10**400"])
def test_example_events_take_an_example_index_only(app_url: str, api_name: str, index: object,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Gradio's events of a click on a cached example: an index that is not an example's gets the sentence and
    one warning line (-1 loaded the last example, -8 the first; null, 10**9 and "x" answered ``{"error": null}``
    with an IndexError or TypeError traceback)."""
    from conftest import raw_call

    from pose2id_demo.ui.common import EXAMPLES_DIR

    n = len([p for p in EXAMPLES_DIR.iterdir() if p.suffix == ".jpg"])
    caplog.set_level("WARNING", logger="pose2id_demo")
    since = len(caplog.records)
    event, msg = raw_call(app_url, api_name, [index], timeout=HANG_GUARD_S)
    assert event == "error" and msg.startswith(f"The example is chosen by its index, a whole number from 0 to {n - 1}; "
                                               "got "), msg
    assert len(_one_warning(caplog, since)) == 1


def test_example_index_reaches_the_example(app_url: str) -> None:
    """A valid index still fills the inputs with that example (what a click in the page sends)."""
    from conftest import raw_call

    from pose2id_demo.ui.common import EXAMPLES_DIR

    names = sorted(p.name for p in EXAMPLES_DIR.iterdir() if p.suffix == ".jpg")
    for i in (0, len(names) - 1):
        event, out = raw_call(app_url, "load_example_input", [i], timeout=HANG_GUARD_S)
        assert event == "complete" and Path(out[0]["path"]).name == names[i], out
        assert out[1:] == ["both", 20, 3.5, 42, 0.5, "synthped-reid"], out


def test_generate_without_an_image_logs_one_warning(app_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """/generate and /evaluate_features with no file: the sentence, and one warning line (there was none)."""
    from conftest import raw_call

    caplog.set_level("WARNING", logger="pose2id_demo")
    for api_name, args, sentence in (
            ("generate", [None, *GEN, None, "synthped-reid"],
             "Please upload a person image or pick one of the examples first."),
            ("evaluate_features", [None, 2, 2, 0.5, "both", "both"], "Please upload a feature file (.npz) first.")):
        since = len(caplog.records)
        assert raw_call(app_url, api_name, args) == ("error", sentence)
        assert _one_warning(caplog, since) == [f"{api_name}: {sentence}"]


def test_input_count_in_words(app_url: str) -> None:
    """"takes 1 inputs; 1 were sent" read wrong: singular and plural as they should be."""
    from conftest import raw_call

    assert raw_call(app_url, "load_example_input", []) == ("error", "This endpoint takes 1 input; 0 were sent.")
    assert raw_call(app_url, "generate", [None]) == ("error", "This endpoint takes 8 inputs; 1 was sent.")


def _endpoint_defaults(url: str, me: dict) -> dict[str, dict[str, object]]:
    """Every named endpoint's parameters with the values the page starts with (the image: an upload)."""
    from gradio_client import Client

    api = Client(url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    out = {}
    for name, ep in api.items():
        values = {p["parameter_name"]: p["parameter_default"] for p in ep["parameters"]}
        if name == "/generate":
            values["image"] = me
        out[name.lstrip("/")] = values
    return out


@pytest.mark.parametrize("param,value,sentence", [
    ("eta", -1, "η must be between 0 and 10; got -1."),
    ("eta", 10.5, "η must be between 0 and 10; got 10.5."),
    ("k1", 99, "k1 must be between 1 and 20; got 99."),
    ("k2", 0, "k2 must be between 1 and 20; got 0."),
])
def test_one_sentence_for_a_setting_out_of_range_on_every_endpoint(app_url: str, me: dict, param: str, value: float,
                                                                    sentence: str) -> None:
    """Every endpoint that takes η (or k1, k2) answers a value out of its range with the engine's sentence:
    /generate, which reads its values raw, and the others, whose sliders answered Gradio's "Value -1 is less
    than minimum value 0.0" before."""
    from conftest import raw_call

    takers = {name: values for name, values in _endpoint_defaults(app_url, me).items() if param in values}
    expected = {"benchmark", "distances", "per_query", "ranked_lists", "ranks", "identity", "tsne",
                "evaluate_features"} | ({"generate"} if param == "eta" else set())
    assert set(takers) == expected
    for name, values in takers.items():
        values = {**values, param: value}
        assert raw_call(app_url, name, list(values.values()), timeout=HANG_GUARD_S) == ("error", sentence), name


@pytest.mark.parametrize("value", ["yes", "no", "true", 1, 0, None, [True]])
def test_a_switch_takes_a_boolean_only(app_url: str, value: object) -> None:
    """``rerank="yes"`` was read as True (and "no" as False): a boolean parameter takes true or false only."""
    from conftest import raw_call

    from pose2id_demo.engine import check_settings

    args = ["standard", "synthped-reid", 0.5, 2, 2, "both", "both", value, "separate"]
    assert raw_call(app_url, "benchmark", args) == ("error", f"re-ranking must be true or false; got {value!r}.")
    if value is not None:  # None keeps the field, as for every setting of check_settings
        with pytest.raises(Pose2IDError, match="re-ranking must be true or false"):
            check_settings(rerank=value)
    assert check_settings(rerank=np.bool_(True)).rerank is True and check_settings(rerank=False).rerank is False


def test_identity_parameter_is_a_number_and_its_refusal_names_the_valid_ones(app_url: str) -> None:
    """/identity's pid showed as ``Literal[]`` (an empty choice list) and identity 7 got "between 1 and 1056"
    though the ids are 1001-1056: the API info says int, and the sentence says which ids are valid."""
    from conftest import raw_call
    from gradio_client import Client

    from pose2id_demo.engine import get_engine

    api = Client(app_url, verbose=False).view_api(print_info=False, return_format="dict")["named_endpoints"]
    pid = next(p for p in api["/identity"]["parameters"] if p["parameter_name"] == "pid")
    assert pid["python_type"]["type"] == "int", pid
    ids = sorted(p for p, n in get_engine().bench.identities("standard", "synthped-reid") if n >= 2)
    tail = (f"choose one of its {len(ids)} identities with two or more images: {ids[0]}, {ids[1]}, {ids[2]} … "
            f"{ids[-1]}.")
    args = ["standard", "synthped-reid", None, 0.5, 2, 2, "both", "both", False, "separate"]
    for value, sentence in ((7, f"identity 7 is not an identity of the standard task; {tail}"),
                            (0, f"identity 0 is not an identity of the standard task; {tail}"),
                            (2.5, "identity must be a whole number; got 2.5."),
                            ("1e3", "identity must be a whole number; got '1e3'."),
                            (True, "identity must be a number, not bool True.")):
        args[2] = value
        assert raw_call(app_url, "identity", args, timeout=HANG_GUARD_S) == ("error", sentence), value
    for value in (ids[1], f" {ids[1]} "):  # a number, or the text the page sends for an id typed into the box
        args[2] = value
        event, out = raw_call(app_url, "identity", args, timeout=HANG_GUARD_S)
        assert event == "complete" and out[1].startswith(f"Identity {ids[1]}:"), out


def test_identity_with_one_image_named_so() -> None:
    from pose2id_demo.engine.inputs import check_identity

    counts = {1: 3, 2: 2, 3: 5, 5: 1}
    assert check_identity(3, counts, "t") == 3 and check_identity(2.0, counts, "t") == 2
    with pytest.raises(Pose2IDError) as exc:
        check_identity(5, counts, "market")
    assert str(exc.value) == ("identity 5 has only one image in the market task's query and gallery; choose one of "
                              "its 3 identities with two or more images: 1, 2, 3.")
    with pytest.raises(Pose2IDError, match="^the t task has no identity with two or more images.$"):
        check_identity(5, {5: 1}, "t")


def _post_upload(url: str, name: str, body: bytes) -> tuple[int, str]:
    import httpx

    r = httpx.post(url.rstrip("/") + "/gradio_api/upload", files={"files": (name, body)}, timeout=HANG_GUARD_S)
    return r.status_code, r.text


def test_upload_with_an_empty_file_name(app_url: str) -> None:
    """A multipart part with ``filename=""`` (it was HTTP 500): HTTP 400 and a sentence; the app keeps serving."""
    status, text = _post_upload(app_url, "", b"\x89PNG not really")
    assert status == 400 and text.startswith("The upload could not be read: send each file as a multipart"), text
    assert _post_upload(app_url, "ok.txt", b"fine")[0] == 200


def test_upload_over_the_limit_refused_before_it_is_read(app_url: str) -> None:
    """A request stating more than the limit is answered 413 before its body is read (none is sent here)."""
    from pose2id_demo.ui.app import MAX_UPLOAD

    u = urlparse(app_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=HANG_GUARD_S)
    conn.putrequest("POST", "/gradio_api/upload")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(MAX_UPLOAD + 2**20))
    conn.endheaders()
    r = conn.getresponse()
    assert r.status == 413 and r.read().decode().startswith("The upload is 514.0 MiB, over the maximum allowed size")
    conn.close()


# ---------------------------------------------------------------------------------- feature files: exact members
def _zero_member(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...]) -> None:
    """A member holding a .npy of zeros of ``shape``, streamed (the whole array never sits in memory)."""
    with zf.open(name, "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        chunk = bytes(1 << 20)
        left = int(np.prod(shape)) * 4
        while left:
            f.write(chunk[: min(left, len(chunk))])
            left -= min(left, len(chunk))


def _valid_arrays(nq: int = 6, ng: int = 12, d: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return dict(q_feats=rng.normal(size=(nq, d)).astype(np.float32),
                g_feats=rng.normal(size=(ng, d)).astype(np.float32), q_pids=np.arange(nq), g_pids=np.arange(ng) % nq,
                q_camids=np.zeros(nq, int), g_camids=np.ones(ng, int))


def _npz_with(path: Path, extra: dict[str, bytes] | None = None, **arrays: np.ndarray) -> Path:
    np.savez_compressed(path, **(arrays or _valid_arrays()))
    if extra:
        with zipfile.ZipFile(path, "a") as zf:
            for name, data in extra.items():
                zf.writestr(name, data)
    return path


def test_extensionless_twin_member_refused_unread(tmp_path: Path) -> None:
    """The six valid members plus ``q_feats`` — no ``.npy`` — declaring 65,000 × 4,000 zeros (1 GB; numpy.load
    read it instead of the priced ``q_feats.npy``: 18 s, RSS 1.4 → 3.6 GB). Bound: refused with under 64 MB of
    memory allocated."""
    path = _npz_with(tmp_path / "twin.npz")
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        _zero_member(zf, "q_feats", (65_000, 4_000))
    assert path.stat().st_size < 8 * 2**20
    tracemalloc.start()
    try:
        with pytest.raises(Pose2IDError) as exc:
            Engine().evaluate_features(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(exc.value).startswith("The feature file cannot be used: twin.npz: holds 'q_feats', which a feature "
                                     "file may not: its members are q_feats.npy, g_feats.npy"), exc.value
    assert peak < 64 * 2**20, peak


@pytest.mark.parametrize("name", ["./q_feats.npy", "Q_FEATS.npy", "q_feats.NPY", "q_feats.npy/", "q_feats.npy.npy",
                                  "notes.txt"])
def test_other_member_spellings_refused(tmp_path: Path, name: str) -> None:
    path = _npz_with(tmp_path / "odd.npz", extra={name: b"\x93NUMPY"})
    with pytest.raises(Pose2IDError, match=re.escape(f"holds {name!r}, which a feature file may not")):
        Engine().evaluate_features(path)


def test_member_twice_refused(tmp_path: Path) -> None:
    """The same name twice: zipfile reads the last one, a directory listing shows both."""
    path = _npz_with(tmp_path / "twice.npz")
    with zipfile.ZipFile(path, "a") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        _zero_member(zf, "q_feats.npy", (6, 8))
    with pytest.raises(Pose2IDError, match="holds q_feats.npy more than once"):
        Engine().evaluate_features(path)


def test_project_extract_output_still_accepted(tmp_path: Path) -> None:
    """``q_paths`` / ``g_paths`` (what the extract command writes) are allowed and never read."""
    arrays = _valid_arrays()
    np.savez(tmp_path / "f.npz", **arrays, q_paths=np.array(["q.jpg"] * 6), g_paths=np.array(["g.jpg"] * 12))
    res = Engine().evaluate_features(tmp_path / "f.npz")
    assert [r["setting"] for r in res["rows"]] == ["baseline", "+NFC"]


@pytest.mark.parametrize("entries", [1_000, 70_000], ids=["1,000 entries", "70,000 entries (zip64)"])
def test_zip_directory_bounded_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 entries: int) -> None:
    """A zip listing thousands of (directory) entries: refused from its end record, before ``zipfile`` parses
    the directory (2 million entries took 41 s to parse). Bound: ``zipfile.ZipFile`` is never opened on it."""
    path = _npz_with(tmp_path / "many.npz")
    with zipfile.ZipFile(path, "a") as zf:
        for i in range(entries):
            zf.writestr(zipfile.ZipInfo(f"d{i}/"), b"")

    def no_parse(*a, **k):
        raise AssertionError("the zip directory was parsed")

    monkeypatch.setattr(featurefile.zipfile, "ZipFile", no_parse)
    with pytest.raises(Pose2IDError) as exc:
        Engine().evaluate_features(path)
    text = str(exc.value)
    if entries < 65_535:
        assert f"its zip directory lists {entries + 6:,} entries in" in text, text
    else:
        assert "a zip64 archive, which a feature file never needs" in text, text


# ------------------------------------------------------------------------------ the cost model sees every loop
def _gen_file(path: Path, m: int, nq: int = 6, ng: int = 12, d: int = 8) -> Path:
    """Valid features and M generated features per image, all ones: a file of a few MB at M = 80,000."""
    arrays = _valid_arrays(nq, ng, d)
    arrays["q_gen"] = np.ones((nq, m, d), np.float32)
    arrays["g_gen"] = np.ones((ng, m, d), np.float32)
    np.savez_compressed(path, **arrays)
    return path


def _count_evaluations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = ablation.evaluate

    def counted(*a, **k):
        calls[0] += 1
        return real(*a, **k)

    monkeypatch.setattr(ablation, "evaluate", counted)
    return calls


def test_m_curve_of_80000_generated_features_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """M = 80,000 per image (it ran 3 · 80,001 evaluations, 352 s past the 300 s limit, answered as complete).
    Bound: the M curve evaluates at most 3 · MAX_M_POINTS values (0, …, 80,000), and its price counts them."""
    path = _gen_file(tmp_path / "m.npz", 80_000)
    calls = _count_evaluations(monkeypatch)
    res = Engine().evaluate_features(path, grid_max=1)
    ms = res["m_curve"]["M"]
    assert ms[0] == 0 and ms[-1] == 80_000 and len(ms) <= ablation.MAX_M_POINTS and ms == sorted(set(ms))
    table, grid, etas = 4, 1, len(ablation.ETAS)
    assert calls[0] == table + grid + etas + 3 * len(ms)
    # The price includes eq. 9 over every M for the η curve and the first M of each point of the M curve.
    m_part = sum(3 * (uf._eval_work(6, 12, 8) + uf._ipg_work(6, 12, 8, k, k)) for k in ms)
    assert uf.curve_work(6, 12, 8, 80_000, 1) == pytest.approx(
        uf._eval_work(6, 12, 8) + uf._nfc_work(6, 12, 8) + etas * (uf._eval_work(6, 12, 8) +
                                                                    uf._ipg_work(6, 12, 8, 80_000, 80_000)) + m_part)


def test_m_points_spread() -> None:
    assert ablation.m_points(8) == list(range(9))
    assert ablation.m_points(11) == list(range(12))
    pts = ablation.m_points(80_000)
    assert len(pts) == 12 and pts[:3] == [0, 1, 3] and pts[-1] == 80_000


def test_generated_features_priced_before_loading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table's price counts eq. 9 over each image's M generated features: a file whose generated features
    alone exceed the table's budget is refused from its headers."""
    monkeypatch.setattr(uf, "TABLE_WORK", uf.table_work(6, 12, 8, 1000))
    path = _gen_file(tmp_path / "m.npz", 2000)
    loaded = []
    monkeypatch.setattr(featurefile, "_read_array", lambda *a: loaded.append(a) or None)
    with pytest.raises(Pose2IDError, match="with 2,000 generated each is 1.[0-9]× the most the app takes"):
        Engine().evaluate_features(path)
    assert not loaded


@pytest.mark.parametrize("budget,stopped_in,kept", [
    (7, "k1 × k2 grid", []),
    (12, "η curve", ["grid"]),
    (23, "M curve", ["grid", "eta_curve"]),
])
def test_deadline_checked_inside_every_curve(monkeypatch: pytest.MonkeyPatch, budget: int, stopped_in: str,
                                             kept: list[str]) -> None:
    """A fake clock (one second per look) stops the call inside the grid, the η curve or the M curve; the note
    says where, what is left out, and no evaluation runs after the limit."""
    arrays = _valid_arrays(12, 24, 8)
    fs = featurefile.FeatureSet.from_arrays({**arrays, "q_gen": np.random.default_rng(1).normal(size=(12, 4, 8)),
                                             "g_gen": np.random.default_rng(2).normal(size=(24, 4, 8))})
    clock = iter(range(10**6))
    # The module's own clock only (the CPU pool and every other thread keep the real one).
    monkeypatch.setattr(uf, "time", types.SimpleNamespace(monotonic=lambda: float(next(clock)),
                                                          perf_counter=time.perf_counter))
    calls = _count_evaluations(monkeypatch)
    res = uf.evaluate_feature_set(fs, ablation.Settings(), 2, budget_s=budget)
    note = [n for n in res["notes"] if n.startswith(f"Stopped at the app's {budget}-second limit")]
    assert note and f"at {stopped_in}" in note[0], res["notes"]
    for name in ("grid", "eta_curve", "m_curve"):
        assert (res[name] is not None) == (name in kept), (name, res[name])
    # One clock look per check: the calls before the limit are the evaluations that ran (at most one per check).
    assert calls[0] <= budget


# ------------------------------------------------------------------------------------------ no placeholder answers
def test_requests_during_the_warm_up_get_checks_then_real_results(app_url: str, me: dict, tmp_path: Path) -> None:
    """While a warm-up step holds the CPU (a warm-up step holds every slot), a bad request is refused at once
    (its input is checked before it waits) and a good one waits, then returns its real result — never a
    "preparing" placeholder."""
    from conftest import raw_call

    release, holding = threading.Event(), threading.Event()

    def warm_up_step() -> None:
        with CPU.hold(BACKGROUND, "the warm-up (test)"):
            holding.set()
            release.wait(HANG_GUARD_S)

    step = threading.Thread(target=warm_up_step)
    step.start()
    try:
        assert holding.wait(HANG_GUARD_S)
        path = tmp_path / "far.json"
        kp = np.asarray(_pose()["keypoints"])
        kp[5, 0] = 1e30
        path.write_text(json.dumps(_pose(keypoints=kp.tolist())))
        event, msg = _generate_with_pose(app_url, me, path)
        assert event == "error" and "lies far outside" in str(msg), msg
        assert CPU.running == ["the warm-up (test)"]  # refused while the step still held the CPU
        result: dict = {}
        good = threading.Thread(target=lambda: result.update(
            answer=raw_call(app_url, "benchmark",
                            ["standard", "synthped-reid", 0.5, 2, 2, "both", "both", False, "separate"])))
        good.start()
        good.join(1.0)
        assert "answer" not in result  # it waits for the CPU instead of answering with a placeholder
    finally:
        release.set()
        step.join(HANG_GUARD_S)
    good.join(HANG_GUARD_S)
    event, out = result["answer"]
    assert event == "complete" and [r[0] for r in out[0]["data"]] == ["baseline", "+NFC", "+IPG", "+NFC+IPG"]
    assert "preparing" not in json.dumps(out, ensure_ascii=False).lower()


# ---------------------------------------------------------------------------------------------- disk bounded
def test_uploads_beyond_the_quota_remove_the_oldest(app_url: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Distinct uploads past the quota: the oldest files go first and the app's temporary files stay within it
    (10 uploads of 99 MiB stayed for an hour: about 200 GiB/h against the disk). Last in this module: it
    removes the module's earlier uploads."""
    from conftest import upload

    from pose2id_demo.ui import tempfiles

    quota = tempfiles.usage() + 3 * 2**20 + 2**19  # three and a half 1 MiB uploads more than now
    monkeypatch.setattr(tempfiles, "QUOTA_BYTES", quota)
    seen: dict[Path, float] = {}
    paths = []
    for i in range(6):
        seen.update({p: m for m, _, p in tempfiles._files()})
        f = tmp_path / f"blob{i}.bin"
        f.write_bytes(os.urandom(2**20))
        paths.append(Path(upload(app_url, f)))
        assert tempfiles.usage() <= quota
    seen.update({p: m for m, _, p in tempfiles._files()})
    assert all(p.is_file() for p in paths[-3:])
    by_age = sorted(seen, key=lambda p: seen[p])
    kept = [p.exists() for p in by_age]
    assert not all(kept) and kept == sorted(kept), "what was removed is not the oldest"


_SERVE = textwrap.dedent("""
    import signal, sys, time
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal (a background shell ignores it)
    from pose2id_demo.ui import tempfiles
    from pose2id_demo.ui.app import build_demo, launch
    demo = build_demo()
    launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=int(sys.argv[1]), quiet=True)
    (tempfiles.images_dir() / "x.png").write_bytes(b"png")
    print(tempfiles.root(), flush=True)
    demo.block_thread()
""")


def _printed_folder(stdout) -> Path:
    """The folder _SERVE prints: the first output line that is a bare absolute path (Gradio prints notes of its
    own first, e.g. where the examples will be cached)."""
    for _ in range(100):
        line = stdout.readline()
        if not line:
            break
        line = line.strip()
        if line.startswith("/") and " " not in line:
            return Path(line)
    raise AssertionError("the app printed no folder")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_temporary_files_removed_when_the_app_is_stopped(tmp_path: Path, sig: int) -> None:
    """Stopped by SIGTERM or SIGINT, the app removes its folder (uploads, images, exports); a later start also
    removes the folder of a run that could not (its process is gone, so its lock is free)."""
    from conftest import free_port

    env = dict(os.environ, GRADIO_TEMP_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    p = subprocess.Popen([sys.executable, "-c", _SERVE, str(free_port())], cwd=ROOT, env=env, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        folder = _printed_folder(p.stdout)
        assert folder.parent == tmp_path and (folder / "images" / "x.png").is_file()
        p.send_signal(sig)
        p.wait(HANG_GUARD_S)
    finally:
        if p.poll() is None:
            p.kill()
    assert not folder.exists(), list(folder.rglob("*"))


def test_stale_folders_removed_at_start(tmp_path: Path) -> None:
    """At start: this version's folders whose process is gone go, a live one's stays; an older version's folder
    goes once untouched for a day."""
    from pose2id_demo.ui import tempfiles

    dead = tmp_path / "pose2id-999999-dead"
    (dead / "gradio").mkdir(parents=True)
    (dead / ".lock").touch()
    (dead / "gradio" / "upload.bin").write_bytes(b"x" * 100)
    legacy_old, legacy_new = tmp_path / "pose2id-ui-old", tmp_path / "pose2id-ui-new"
    for d in (legacy_old, legacy_new):
        d.mkdir()
        (d / "a.png").write_bytes(b"png")
    old = time.time() - 2 * 86400
    for p in (dead, dead / "gradio", dead / "gradio" / "upload.bin", dead / ".lock", legacy_old, legacy_old / "a.png"):
        os.utime(p, (old, old))
    live = tmp_path / "pose2id-1-live"
    live.mkdir()
    (live / ".lock").touch()
    os.utime(live, (old, old))
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl,sys,time; f=open(sys.argv[1],'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)",
                               str(live / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert tempfiles.remove_stale(tmp_path) == 2
    finally:
        holder.kill()
        holder.wait()
    assert not dead.exists() and not legacy_old.exists() and live.exists() and legacy_new.exists()
