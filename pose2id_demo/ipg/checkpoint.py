"""Resumable IPG training checkpoints, without pickle.

``DIR/checkpoint/`` holds the trained modules and their EMA (safetensors), the optimizer's tensors
(safetensors) and its other state, the step, the elapsed time and the numpy / python RNG states (json), and
the torch generators' states (safetensors). A save writes ``checkpoint.tmp/`` and swaps it in with two
renames, so an interrupted save leaves one complete checkpoint (``checkpoint/`` or ``checkpoint.old/``).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

TRAINED = ("reference_unet", "denoising_unet", "pose_guider", "ifr")


def _flat_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for pid, st in sd["state"].items():
        meta["state"][str(pid)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{pid}.{k}"] = v.contiguous()
                meta["state"][str(pid)][k] = "tensor"
            else:
                meta["state"][str(pid)][k] = v
    return tensors, meta


def _unflat_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state = {}
    for pid, st in meta["state"].items():
        state[int(pid)] = {k: (tensors[f"{pid}.{k}"] if v == "tensor" else v) for k, v in st.items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(out: Path, m: dict, ema: dict | None, opt, step: int, elapsed: float, rng: np.random.Generator,
                    gen: torch.Generator, extra: dict, names: tuple[str, ...] = TRAINED) -> None:
    """Write the checkpoint of modules ``m[name]`` (and their EMA copies ``ema[name]`` unless ``ema`` is None)
    for each of ``names``, the optimizer, the step, ``elapsed`` seconds, the RNG states and ``extra``."""
    ck = out / "checkpoint.tmp"
    ck.mkdir(parents=True, exist_ok=True)
    for modules, fname in ((m, "model.safetensors"), (ema, "ema.safetensors")):
        if modules is not None:
            save_file({f"{n}.{k}": v.contiguous() for n in names for k, v in modules[n].state_dict().items()}, ck / fname)
    ot, ometa = _flat_optimizer(opt)
    save_file(ot, ck / "optimizer.safetensors")
    save_file({"torch_gen": gen.get_state(), "torch_global": torch.get_rng_state()}, ck / "rng.safetensors")
    state = {"step": step, "elapsed": elapsed, "numpy_rng": rng.bit_generator.state, "python_rng": random.getstate(),
             "optimizer": ometa, **extra}
    (ck / "state.json").write_text(json.dumps(state))
    final, old = out / "checkpoint", out / "checkpoint.old"
    if old.exists() and final.exists():  # left by an interrupted save whose new checkpoint is complete
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    ck.rename(final)  # from here on checkpoint/ is the new one; until here checkpoint.old/ was complete
    if old.exists():
        shutil.rmtree(old)


def checkpoint_dir(out: Path) -> Path | None:
    """The complete checkpoint in ``out``: ``checkpoint/``, or ``checkpoint.old/`` if a save was interrupted
    between its two renames; None if there is none."""
    for name in ("checkpoint", "checkpoint.old"):
        if (out / name / "state.json").exists():
            return out / name
    return None


def load_checkpoint(out: Path, m: dict, ema: dict | None, opt, rng: np.random.Generator, gen: torch.Generator,
                    names: tuple[str, ...] = TRAINED) -> dict:
    """Restore what :func:`save_checkpoint` wrote into the same modules, optimizer and generators; returns the
    saved state (step, elapsed and the ``extra`` keys)."""
    ck = checkpoint_dir(out)
    if ck is None:
        raise FileNotFoundError(f"{out}: no checkpoint")
    state = json.loads((ck / "state.json").read_text())
    for target, fname in ((m, "model.safetensors"), (ema, "ema.safetensors")):
        if target is None:
            continue
        flat = load_file(ck / fname)
        for n in names:
            dev = next(target[n].parameters()).device
            target[n].load_state_dict({k[len(n) + 1:]: v.to(dev) for k, v in flat.items() if k.startswith(n + ".")})
    opt.load_state_dict(_unflat_optimizer(load_file(ck / "optimizer.safetensors"), state["optimizer"]))
    r = load_file(ck / "rng.safetensors")
    gen.set_state(r["torch_gen"])
    torch.set_rng_state(r["torch_global"])
    rng.bit_generator.state = state["numpy_rng"]
    py = state["python_rng"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    return state


def truncate_loss_log(path: Path, step: int) -> None:
    """Drop the rows of ``loss.csv`` after ``step``: steps a stopped run logged after its last checkpoint,
    which a resumed run trains (and logs) again."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [ln for ln in lines if not ln[:1].isdigit() or int(ln.split(",", 1)[0]) <= step]
    if len(kept) != len(lines):
        path.write_text("".join(kept))
