"""Datasets: the bundled SynthPed benchmark (:mod:`pose2id_demo.data.synthped`) and a reader for any
Market-1501-format folder (:mod:`pose2id_demo.data.market`)."""

from pose2id_demo.data.market import MarketDataset, Record, load_market

__all__ = ["MarketDataset", "Record", "load_market"]
