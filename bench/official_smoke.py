"""Full-size smoke run of the official-weights path, end to end through the app.

Writes a stand-in of the official release — random weights at full SD1.5 size under the released file names
and key names (``reference_unet.pth``, ``denoising_unet.pth``, ``pose_guider.pth``, ``IFR.pth``,
``transformer_20.pth``, ``stable-diffusion-v1-5/unet/config.json``, ``sd-vae-ft-mse/``; about 8 GB, in a
temporary folder that is deleted afterwards and never committed) — starts ``python app.py --ipg-weights DIR``,
and calls ``/generate`` through ``gradio_client`` like a user: one shipped example, the 8 representative poses,
IFR on, CFG 3.5, seed 12580, at 512 × 256. It prints and records:

* the machine (cores, load before and after) and the commit;
* how long writing the stand-in and starting the app took, and when the generator was ready;
* the app's own timing line for the call (``pose2id_demo.engine.generation``): seconds per denoising step
  (steady state), time to the first step's end (encoders + reference pass + one step), decoding;
* the answer's wall time through the API, the size of the images received, and the peak RSS of the app
  process (``VmHWM``); on CUDA the peak GPU memory the app reports.

The random weights make noise, not people: this measures that the full-size path runs and what it costs,
not image quality. Usage::

    nice -n 10 python -m bench.official_smoke                      # CPU: 2 DDIM steps (minutes on 2 cores)
    python -m bench.official_smoke --device cuda --steps 20        # on a GPU machine: fp16, 20 steps
    python -m bench.official_smoke --json docs/official_smoke-cpu.json

The app waits for its launch-time warm-up to finish before the call (read from its log), so that the
timing is the generation's alone; the warm-up's steps use the existing feature cache (``POSE2ID_CACHE`` or
``~/.cache/pose2id-demo``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.speed import App, Caller, _commit, _example, machine
from pose2id_demo.ablation import DEFAULT_ETA

#: The architecture fields of ``stabilityai/sd-vae-ft-mse``'s ``config.json`` (diffusers ``AutoencoderKL``).
SD_VAE_FT_MSE = dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
                     act_fn="silu", sample_size=256, block_out_channels=(128, 256, 512, 512),
                     down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
TIMING = re.compile(r"generated (\d+) images of (\d+)x(\d+) \(IFR (\w+)\): (\d+) steps, ([\d.]+) s/step, first step "
                    r"done after ([\d.]+) s, decoding ([\d.]+) s, ([\d.]+) s in all(?:; peak GPU memory so far "
                    r"([\d.]+) GiB)?")


def write_standin_release(folder: Path, seed: int = 0) -> dict[str, Any]:
    """Random weights at full size under the released names; returns each file's size and the seconds taken."""
    import torch
    from diffusers import AutoencoderKL

    from pose2id_demo.ipg.configs import SD15_UNET_CONFIG
    from pose2id_demo.ipg.official import (
        OFFICIAL_FILES,
        REID_FILE,
        UNET_CONFIG_PATH,
        VAE_FOLDER,
        build_official_modules,
    )
    from pose2id_demo.reid.transreid import build_transreid

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    modules = build_official_modules(device="cpu")  # default initialisation: realistic magnitudes, no NaNs
    for name, filename in OFFICIAL_FILES.items():
        torch.save(modules[name].state_dict(), folder / filename)
    del modules
    torch.save(build_transreid(device="cpu").state_dict(), folder / REID_FILE)
    (folder / UNET_CONFIG_PATH).parent.mkdir(parents=True)
    (folder / UNET_CONFIG_PATH).write_text(json.dumps({"_class_name": "UNet2DConditionModel", **SD15_UNET_CONFIG}))
    AutoencoderKL(**SD_VAE_FT_MSE).save_pretrained(folder / VAE_FOLDER, safe_serialization=True)
    sizes = {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    return {"seconds": round(time.perf_counter() - t0, 1), "bytes": sizes,
            "total_gb": round(sum(sizes.values()) / 1e9, 2)}


def peak_rss_gib(pid: int) -> float | None:
    """The process's peak resident set size (``VmHWM``) in GiB; None where ``/proc`` has no such field."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 2**20, 2)
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds the process has used (``/proc/PID/stat``): beside wall time, what a busy machine
    does not inflate."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def wait_for_log(log: Path, needle: str, app: App, timeout: float) -> float:
    """Seconds from the app's start until ``needle`` appears in its log (the app still running)."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        if needle in log.read_text(errors="replace"):
            return time.perf_counter() - app.t0
        if app.proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {app.proc.returncode}; see {log}")
        time.sleep(2.0)
    raise RuntimeError(f"{needle!r} did not appear in {log} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cpu hides any GPU from the app; cuda needs one (fp16, as released)")
    ap.add_argument("--steps", type=int, default=2, help="DDIM steps (the paper: 20)")
    ap.add_argument("--ifr", choices=("on", "off", "both"), default="on", help="IFR setting of the call")
    ap.add_argument("--workdir", type=Path, default=None, help="where the stand-in goes (default: a temp folder)")
    ap.add_argument("--keep", action="store_true", help="keep the stand-in release afterwards")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for each stage")
    ap.add_argument("--json", type=Path, default=None, help="also write the record here")
    args = ap.parse_args(argv)

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda, but torch sees no GPU on this machine", file=sys.stderr)
        return 2
    from gradio_client import handle_file
    from PIL import Image

    from pose2id_demo.paths import cache_dir

    rec: dict[str, Any] = {"commit": _commit(), "device": args.device, "steps": args.steps, "ifr": args.ifr,
                           "machine_before": machine(), "torch": torch.__version__}
    if args.device == "cuda":
        rec["gpu"] = torch.cuda.get_device_name(0)
    print(f"official smoke run: device {args.device}, {args.steps} steps, IFR {args.ifr}; "
          f"{rec['machine_before']['nproc']} cores, load {rec['machine_before']['load']}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="pose2id-official-smoke-", dir=args.workdir))
    release = work / "release"
    app = None
    try:
        rec["standin"] = write_standin_release(release)
        print(f"  stand-in release written: {rec['standin']['total_gb']} GB in {rec['standin']['seconds']} s",
              flush=True)
        env = {"CUDA_VISIBLE_DEVICES": ""} if args.device == "cpu" else {}
        log = work / "app.log"
        app = App(cache_dir(), log, app_args=("--ipg-weights", str(release)), env=env)
        rec["served_s"] = round(app.wait_served(args.timeout), 1)
        print(f"  app serving after {rec['served_s']} s (from its start)", flush=True)
        rec["generator_loaded_s"] = round(wait_for_log(log, "loaded the official Pose2ID IPG", app, args.timeout), 1)
        rec["warm_up_finished_s"] = round(wait_for_log(log, "warm-up finished", app, args.timeout), 1)
        print(f"  official generator loaded after {rec['generator_loaded_s']} s, warm-up over after "
              f"{rec['warm_up_finished_s']} s; peak RSS so far {peak_rss_gib(app.proc.pid)} GiB", flush=True)
        rec["load_at_call"] = [round(x, 2) for x in os.getloadavg()]
        caller = Caller(app.url)
        cpu0 = cpu_seconds(app.proc.pid)
        t = time.perf_counter()
        out = caller.call("/generate", image=handle_file(_example()), use_ifr=args.ifr, steps=args.steps, cfg=3.5,
                          seed=12580, eta=DEFAULT_ETA, custom_pose=None, backbone="synthped-reid")
        rec["api_seconds"] = round(time.perf_counter() - t, 1)
        cpu1 = cpu_seconds(app.proc.pid)
        rec["app_cpu_seconds_during_call"] = round(cpu1 - cpu0, 1) if cpu0 is not None and cpu1 is not None else None
        on, off, _skel, _before, _after, message = out[:6]
        gallery = on or off
        rec["images_received"] = len(gallery)
        with Image.open(gallery[0]["image"]["path"] if isinstance(gallery[0]["image"], dict)
                        else gallery[0]["image"]) as im:
            rec["image_size_wh"] = list(im.size)
        rec["message"] = message.splitlines()[0][:300]
        rec["peak_rss_gib"] = peak_rss_gib(app.proc.pid)
        time.sleep(1.0)
        timings = [m.groups() for m in TIMING.finditer(log.read_text(errors="replace"))]
        rec["timing"] = [{"images": int(g[0]), "height": int(g[1]), "width": int(g[2]), "ifr": g[3],
                          "steps": int(g[4]), "s_per_step": float(g[5]), "first_step_done_s": float(g[6]),
                          "decode_s": float(g[7]), "total_s": float(g[8]),
                          **({"peak_gpu_gib": float(g[9])} if g[9] else {})} for g in timings]
        rec["machine_after"] = machine()
    finally:
        if app is not None:
            rec.setdefault("peak_rss_gib", peak_rss_gib(app.proc.pid))
            app.close()
            shutil.copy(work / "app.log", Path(tempfile.gettempdir()) / "pose2id-official-smoke-app.log")
        if args.keep:
            print(f"  stand-in kept in {release}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)
    for tm in rec.get("timing", []):
        gpu = f", peak GPU memory {tm['peak_gpu_gib']} GiB" if "peak_gpu_gib" in tm else ""
        print(f"  generated {tm['images']} images of {tm['height']}x{tm['width']} (IFR {tm['ifr']}): "
              f"{tm['s_per_step']:.2f} s/step over {tm['steps']} steps, first step done after "
              f"{tm['first_step_done_s']:.1f} s, decoding {tm['decode_s']:.1f} s, {tm['total_s']:.1f} s in all{gpu}",
              flush=True)
    print(f"  through the API: {rec.get('api_seconds')} s (the app used {rec.get('app_cpu_seconds_during_call')} "
          f"CPU-seconds meanwhile), {rec.get('images_received')} images of "
          f"{rec.get('image_size_wh')} (W x H), app peak RSS {rec.get('peak_rss_gib')} GiB; "
          f"load before {rec['machine_before']['load']}, after {rec.get('machine_after', {}).get('load')}", flush=True)
    print(f"  message: {rec.get('message')}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rec, indent=2) + "\n")
        print(f"  wrote {args.json}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
