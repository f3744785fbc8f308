"""``python -m pose2id_demo eval FEATURES.npz`` — see :mod:`pose2id_demo.cli`."""

from .cli import main

raise SystemExit(main())
