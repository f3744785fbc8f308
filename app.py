"""Pose2ID demo: builds the Gradio app from :mod:`pose2id_demo.ui` and launches it.

``python app.py`` serves the embedded CPU models. With the official release on a GPU:
``python app.py --ipg-weights hub`` (fetched from the Hugging Face repo yuanc3/Pose2ID into the Hub cache on first
use; ``hub:REPO@REVISION`` for another copy) or ``--ipg-weights DIR`` (a folder with the released files).
``python app.py --dataset market=/data/Market-1501`` (repeatable) adds a Market-layout folder as a Benchmark task.
"""

import argparse
import logging
import os

from pose2id_demo.engine import Pose2IDError, get_engine

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Pose2ID demo (Gradio app)")
    parser.add_argument("--ipg-weights", metavar="hub[:REPO[@REV]]|DIR", default=os.environ.get("POSE2ID_IPG_WEIGHTS"),
                        help="the official Pose2ID generator: 'hub' fetches it from the Hugging Face repo "
                        "yuanc3/Pose2ID (or hub:REPO@REVISION) into the Hub cache on first use, with progress; DIR "
                        "is a folder with reference_unet.pth, denoising_unet.pth, pose_guider.pth, IFR.pth, "
                        "transformer_20.pth and sd-vae-ft-mse/ (pose2id_demo.ipg.official). Default: "
                        "$POSE2ID_IPG_WEIGHTS (a Space variable), else the embedded tiny generator")
    parser.add_argument("--reid-extractor", metavar="MODULE:CALLABLE",
                        help="optional: factory of a 3840-d ReID extractor to feed IFR instead of the release's "
                        "transformer_20.pth (with --ipg-weights)")
    parser.add_argument("--backbone", action="append", default=[], metavar="hf:MODEL",
                        help="add a ReID backbone to every backbone menu: hf:<model id or local folder> is a "
                        "transformers image model, e.g. hf:google/vit-base-patch16-224 (paper Table 5; repeatable)")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=ROOT",
                        help="add a Market-layout folder (bounding_box_train/, query/, bounding_box_test/) as the "
                        "Benchmark task NAME; its features are extracted once per backbone on first use and cached "
                        "on disk; its IPG rows use ROOT/*.npz from 'python -m pose2id_demo generate --data ROOT "
                        "--backbone B --out ROOT/gen-B.npz' (repeatable)")
    args = parser.parse_args()
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pose2id_demo").setLevel(logging.INFO)  # loading, download progress, warm-up, timings
    for name in args.backbone:
        try:
            get_engine().add_backbone(name)
        except Pose2IDError as exc:
            parser.exit(2, f"error: {exc}\n")
    for spec in args.dataset:
        name, sep, root = spec.partition("=")
        if not sep or not name.strip() or not root.strip():
            parser.exit(2, f"error: --dataset expects NAME=ROOT, got {spec!r}\n")
        try:
            get_engine().features.add_dataset(name, root)
        except Pose2IDError as exc:
            parser.exit(2, f"error: --dataset {spec}: {exc}\n")
    if args.ipg_weights:
        try:
            get_engine().use_official_ipg(args.ipg_weights, args.reid_extractor)
        except Pose2IDError as exc:
            parser.exit(2, f"error: {exc}\n")
    from pose2id_demo.ui import build_demo, launch  # Gradio loads after the flags are checked (bad ones fail fast)

    demo = build_demo()
    launch(demo, prevent_thread_lock=True)  # serve the page first ...
    # ... then prepare in the background what first clicks would wait for (pose2id_demo.engine.warmup).
    get_engine().warm_up(background=True)
    demo.block_thread()
