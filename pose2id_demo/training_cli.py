"""The command line shared by the project's small CPU trainings (the tiny IPG's autoencoder, the keypoint judge):
data and output folders, seed, a time and a step budget, batch size, learning rate and torch threads."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch


def parse_small_training(description: str, argv: Sequence[str] | None, *, minutes: float, steps: int,
                         batch_size: int, lr: float, data_help: str | None = None,
                         extra: Callable[[argparse.ArgumentParser], None] | None = None
                         ) -> tuple[argparse.Namespace, np.random.Generator]:
    """Parse the shared flags (defaults per training; ``extra`` adds a training's own), set up logging to
    stdout, torch's threads and seed.

    Returns:
        ``(args, rng)``: the flags and a numpy generator seeded with ``--seed``.
    """
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--data", required=True, help=data_help)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-minutes", type=float, default=minutes)
    ap.add_argument("--max-steps", type=int, default=steps)
    ap.add_argument("--batch-size", type=int, default=batch_size)
    ap.add_argument("--lr", type=float, default=lr)
    ap.add_argument("--threads", type=int, default=1)
    if extra is not None:
        extra(ap)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return args, np.random.default_rng(args.seed)
