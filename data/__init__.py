"""Datasets bundled with LatBench (Parquet files measured by this harness)."""
