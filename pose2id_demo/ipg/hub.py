"""The official Pose2ID release fetched from the Hugging Face Hub, into the Hub's own cache.

``--ipg-weights hub[:REPO[@REVISION]]`` (default repo ``yuanc3/Pose2ID``, revision ``main``) names these files,
and nothing else is downloaded:

- ``REPO``: the release's ``.pth`` files (:data:`pose2id_demo.ipg.official.OFFICIAL_FILES` and
  ``transformer_20.pth``), each at the repo's root or under ``pretrained/`` (the layout the release README
  tells users to make, which some copies of the repo carry);
- ``stable-diffusion-v1-5/stable-diffusion-v1-5``: ``unet/config.json`` only (the UNets' architecture; SD1.5's
  own weights are not used);
- ``stabilityai/sd-vae-ft-mse``: ``config.json`` and ``diffusion_pytorch_model.safetensors``.

Two steps, so that an app can check at start and download in the background: :func:`plan` asks the Hub
(``hf_hub_download(..., dry_run=True)``: which layout, which commit, how many bytes, what is already cached) —
offline it only looks into the cache — and :meth:`HubPlan.fetch` downloads what is missing with
``hf_hub_download`` (resumable; ``HF_HUB_CACHE`` / ``HF_HOME`` say where the cache is, shared with every other
tool that uses it), reporting bytes to a :class:`DownloadProgress` (a log line every 10 % and the sentence the
app shows) and then comparing each file's size with the one the Hub reported. ``HF_HUB_OFFLINE=1`` is
respected: nothing is requested from the network and a file missing from the cache is named in one sentence.
Every failure is a :class:`HubError` whose message is one sentence naming the file or repository.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from huggingface_hub import constants as hub_constants
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import tqdm as hub_tqdm

logger = logging.getLogger(__name__)

DEFAULT_REPO = "yuanc3/Pose2ID"
#: Where the release README tells users to put the files; some copies of the repo carry it.
RELEASE_SUBFOLDERS = ("", "pretrained/")
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SD15_UNET_CONFIG = "unet/config.json"
VAE_REPO = "stabilityai/sd-vae-ft-mse"
VAE_FILES = ("config.json", "diffusion_pytorch_model.safetensors")
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]*$")


class HubError(OSError):
    """A release file that cannot be had from the Hub or its cache; the message is one sentence naming it."""


@dataclass(frozen=True)
class HubSpec:
    """``hub[:REPO[@REVISION]]`` parsed."""

    repo: str = DEFAULT_REPO
    revision: str | None = None

    def __str__(self) -> str:
        return f"hub:{self.repo}" + (f"@{self.revision}" if self.revision else "")


def parse_hub_spec(text: str | os.PathLike) -> HubSpec | None:
    """``"hub"``, ``"hub:OWNER/NAME"`` or ``"hub:OWNER/NAME@REVISION"`` → :class:`HubSpec`; None for anything
    else (a folder). Raises :class:`HubError` for a malformed repo id or revision."""
    text = str(text).strip()
    if text != "hub" and not text.startswith("hub:"):
        return None
    repo, at, revision = text[4:].partition("@")
    repo = repo.strip() or DEFAULT_REPO
    if not _REPO_ID.match(repo) or len(repo) > 96:
        raise HubError(f"{text!r} does not name a Hub repository: use hub, hub:OWNER/NAME or hub:OWNER/NAME@REVISION.")
    if at and (not _REVISION.match(revision) or len(revision) > 128):
        raise HubError(f"{text!r} has no usable revision after '@' (a branch, tag or commit hash).")
    return HubSpec(repo, revision or None)


def human_bytes(n: float) -> str:
    """``3_440_000_000`` → ``"3.4 GB"`` (decimal units, as the Hub shows sizes)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


class DownloadProgress:
    """Bytes downloaded so far out of a known total, shared between the downloading thread and readers.

    ``describe()`` is the sentence an app shows; a log line is written every 10 % (the Hub's own progress bars
    only draw on a terminal, so a server log would otherwise show nothing for minutes).
    """

    def __init__(self, what: str = "the official Pose2ID weights") -> None:
        self.what = what
        self.total = 0
        self.done = 0
        self.state = "idle"  # idle | downloading | done | failed
        self.error = ""
        self._lock = threading.Lock()
        self._logged_decile = -1

    def start(self, total: int) -> None:
        with self._lock:
            self.total, self.done, self.state = int(total), 0, "downloading"
        logger.info("downloading %s: %s into the Hugging Face cache %s (resumable)", self.what, human_bytes(total),
                    hub_constants.HF_HUB_CACHE)

    def add(self, n: float) -> None:
        with self._lock:
            self.done += int(n)
            decile = int(10 * self.done / self.total) if self.total else 10
            log_now = decile > self._logged_decile and decile < 10
            if log_now:
                self._logged_decile = decile
        if log_now:
            logger.info("downloading %s: %s", self.what, self._amount())

    def finish(self, error: str = "") -> None:
        with self._lock:
            self.state, self.error = ("failed", error) if error else ("done", "")

    def _amount(self) -> str:
        pct = 100.0 * self.done / self.total if self.total else 100.0
        return f"{human_bytes(self.done)} of {human_bytes(self.total)} ({pct:.0f} %)"

    def describe(self) -> str | None:
        """``"downloading the official Pose2ID weights: 1.2 GB of 7.8 GB (15 %)"`` while downloading, else None."""
        if self.state != "downloading":
            return None
        return f"downloading {self.what}: {self._amount()}"


def _counting_bar(progress: DownloadProgress) -> type:
    """A Hub progress-bar class that also reports the bytes written to ``progress`` (resumed bytes included)."""

    class CountingBar(hub_tqdm):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            progress.add(kwargs.get("initial") or 0)

        def update(self, n: float | None = 1) -> bool | None:
            progress.add(n or 0)
            return super().update(n)

        # Network-side counters of Xet downloads: the bytes are counted once, when written, by update().
        def update_transfer(self, n: float | None = 1) -> None:
            pass

        def set_transfer_postfix_str(self, postfix: str, refresh: bool = False) -> None:
            pass

    return CountingBar


@dataclass(frozen=True)
class HubFile:
    """One file to have: ``key`` (what the caller calls it), where on the Hub, and what the Hub said of it."""

    key: str
    repo: str
    filename: str
    commit: str
    size: int | None
    cached: bool


@dataclass
class HubPlan:
    """What :func:`plan` found: the files (one commit per repo) and which of them must still be downloaded."""

    spec: HubSpec
    files: list[HubFile] = field(default_factory=list)
    offline: bool = False

    @property
    def download_bytes(self) -> int:
        return sum(f.size or 0 for f in self.files if not f.cached)

    def fetch(self, progress: DownloadProgress | None = None) -> dict[str, Path]:
        """Download what is not cached (resumable), then ``{key: local path}``; sizes checked against the Hub's."""
        progress = progress or DownloadProgress()
        todo = [f for f in self.files if not f.cached]
        bar = _counting_bar(progress)
        if todo:
            progress.start(self.download_bytes)
        t0 = time.perf_counter()
        paths: dict[str, Path] = {}
        try:
            for f in self.files:
                try:
                    local = hf_hub_download(f.repo, f.filename, revision=f.commit, tqdm_class=bar)
                except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
                    raise HubError(f"{f.filename} of {f.repo} could not be downloaded ({_reason(exc)}); run again "
                                   "to resume.") from None
                paths[f.key] = Path(local)
                actual = os.path.getsize(local)
                if f.size is not None and actual != f.size:
                    raise HubError(f"{local} is {actual:,} bytes but the Hub's {f.repo}/{f.filename} is {f.size:,}: "
                                   "delete it and run again to download it afresh.")
        except HubError as exc:
            progress.finish(str(exc))
            raise
        progress.finish()
        if todo:
            logger.info("downloaded %s in %.0f s", human_bytes(self.download_bytes), time.perf_counter() - t0)
        return paths


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__


def _probe(repo: str, filename: str, revision: str | None):
    """The Hub's (or, offline, the cache's) record of ``repo/filename``; None if it is not there."""
    try:
        return hf_hub_download(repo, filename, revision=revision, dry_run=True)
    except RepositoryNotFoundError:
        raise HubError(f"The Hub has no repository {repo} (or it is private or gated and no token is set).") from None
    except RevisionNotFoundError:
        raise HubError(f"The Hub repository {repo} has no revision {revision!r}.") from None
    except EntryNotFoundError:  # not in the repo, or (offline / no network) not in the cache
        return None


def _missing_sentence(repo: str, revision: str | None, names: Sequence[str], offline: bool,
                      subfolders: bool) -> str:
    what = ", ".join(names)
    where = " (at its root or under pretrained/)" if subfolders else ""
    at = f"{repo}@{revision or 'main'}"
    if offline:
        return (f"{what} of {at}{where} is not in the Hugging Face cache {hub_constants.HF_HUB_CACHE} and "
                "HF_HUB_OFFLINE=1 forbids downloading it: run once with network access, or unset HF_HUB_OFFLINE.")
    return (f"{what} could not be found in the Hub repository {at}{where} nor in the Hugging Face cache "
            f"{hub_constants.HF_HUB_CACHE} (is the Hub reachable, and is this the Pose2ID release?).")


def plan(spec: HubSpec, release_files: Sequence[str]) -> HubPlan:
    """Find every file of the release and its base models on the Hub (offline: in the cache) without
    downloading them.

    Args:
        spec: the release repository and revision.
        release_files: file names of the release to find at the repo's root or under ``pretrained/``; they get
            their own name as key. The SD1.5 UNet config gets the key ``"unet_config"`` and the VAE files
            ``"vae/<name>"``.

    Raises:
        HubError: one sentence naming every missing file, or the repository / revision that does not exist.
    """
    offline = bool(hub_constants.HF_HUB_OFFLINE)
    out = HubPlan(spec=spec, offline=offline)
    missing: list[str] = []
    for name in release_files:
        info = next((i for sub in RELEASE_SUBFOLDERS if (i := _probe(spec.repo, sub + name, spec.revision))), None)
        if info is None:
            missing.append(name)
            continue
        out.files.append(HubFile(name, spec.repo, info.filename, info.commit_hash, info.file_size, info.is_cached))
    if missing:
        raise HubError(_missing_sentence(spec.repo, spec.revision, missing, offline, subfolders=True))
    base = [("unet_config", SD15_REPO, SD15_UNET_CONFIG)] + [(f"vae/{n}", VAE_REPO, n) for n in VAE_FILES]
    for key, repo, filename in base:
        info = _probe(repo, filename, None)
        if info is None:
            raise HubError(_missing_sentence(repo, None, [filename], offline, subfolders=False))
        out.files.append(HubFile(key, repo, filename, info.commit_hash, info.file_size, info.is_cached))
    logger.info("%s: %d files, %s to download%s", spec, len(out.files), human_bytes(out.download_bytes),
                " (offline: cache only)" if offline else "")
    return out
