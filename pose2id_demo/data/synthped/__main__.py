"""``python -m pose2id_demo.data.synthped``."""

from pose2id_demo.data.synthped.cli import main

raise SystemExit(main())
