"""Assemble a generator pipeline folder from a training run's weights and a separately trained autoencoder.

The diffusion model works in the autoencoder's latent space; a decoder trained afterwards on the same frozen
encoder (``pose2id_demo.ipg.autoencoder --from ... --decoder-upsample 2``) decodes the same latents at twice the
size, so the UNets, Pose Guider and IFR are kept as they are and only ``vae/`` changes::

    python -m pose2id_demo.ipg.export --pipeline RUN/milestones/step_030000 \\
        --vae training/autoencoder-l16-dec128 --out assets/models/ipg-tiny

The encoder of the new autoencoder must be the pipeline's own (checked on its weights), otherwise the
reference image would be encoded into a different latent space than the one the UNets learnt.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import torch

from pose2id_demo.ipg.pipeline import Pose2IDPipeline, load_vae
from pose2id_demo.ipg.precompute import model_hash

logger = logging.getLogger(__name__)


def _encoder_state(vae: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v for k, v in vae.state_dict().items() if k.startswith(("encoder.", "quant_conv."))}


def same_encoder(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Whether two autoencoders share their encoder (same parameter names, shapes and values)."""
    sa, sb = _encoder_state(a), _encoder_state(b)
    return bool(sa) and sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def export_pipeline(pipeline_dir: str | Path, out_dir: str | Path, vae_dir: str | Path | None = None) -> Path:
    """Write ``pipeline_dir``'s pipeline to ``out_dir`` (replaced whole), with ``vae_dir``'s autoencoder if given.

    Returns ``out_dir``. Raises ``ValueError`` if the new autoencoder's encoder differs from the pipeline's.
    """
    pipeline_dir, out_dir = Path(pipeline_dir), Path(out_dir)
    components = {}
    if vae_dir is not None:
        vae = load_vae(vae_dir)
        old = load_vae(pipeline_dir / "vae")
        if not same_encoder(vae, old):
            raise ValueError(f"{vae_dir}: its encoder is not the one {pipeline_dir} was trained with")
        components["vae"] = vae
    pipe = Pose2IDPipeline.from_pretrained(pipeline_dir, reid=None, **components)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=out_dir.parent))
    try:
        pipe.save_pretrained(tmp)
        keep = [p for p in ("README.md",) if (out_dir / p).exists()]  # the model card is written by hand
        for name in keep:
            shutil.copy2(out_dir / name, tmp / name)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out_dir


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pose2id_demo.ipg.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pipeline", type=Path, required=True, help="a saved pipeline folder (e.g. a run's milestone)")
    ap.add_argument("--vae", type=Path, default=None, help="an autoencoder folder to use instead of the pipeline's")
    ap.add_argument("--out", type=Path, required=True, help="the folder to write (replaced; its README.md is kept)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out = export_pipeline(args.pipeline, args.out, args.vae)
    pipe = Pose2IDPipeline.from_pretrained(out, reid=None)
    size = sum(f.stat().st_size for f in out.rglob("*.safetensors"))
    print(f"wrote {out}: output {pipe.output_size[0]}x{pipe.output_size[1]}, "
          f"{size / 1e6:.1f} MB of safetensors, model sha {model_hash(out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
