"""pose2id-demo: the runnable form of Pose2ID (CVPR 2025), "From Poses to Identity: Training-Free Person
Re-Identification via Feature Centralization".

One module per paper concept:

- :mod:`pose2id_demo.centralization` — NFC (Alg. 1, eqs. 26-28), eq. 9 feature centralization, re-ranking.
- :mod:`pose2id_demo.metrics` — Market-1501 protocol (mAP, CMC, mINP) and ID² (eqs. 20-21).
- :mod:`pose2id_demo.cleansing` — Mahalanobis data cleansing (eqs. 29-31).
- :mod:`pose2id_demo.poses` — OpenPose-18 keypoints, drawing, PoseValid (eq. 32), estimator, representative
  poses (eqs. 7-8).
- :mod:`pose2id_demo.ipg` — identity-guided pedestrian generation: IFR, pose encoder, reference attention,
  pipeline, training.
- :mod:`pose2id_demo.data` — the bundled SynthPed benchmark and the Market-1501-format reader.
- :mod:`pose2id_demo.reid` — ReID backbones (registry) and the project's ReID training.
- :mod:`pose2id_demo.engine` — the one API the UI calls; :mod:`pose2id_demo.ui` — the Gradio app.
"""

__version__ = "0.1.0"
