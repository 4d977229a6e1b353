"""Reads a TensorBoard event file with TensorFlow's own summary iterator (not composer's writer)."""

from __future__ import annotations

import os
from pathlib import Path


def curves(path: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value), ...] in file order; the reader checks every record's CRC."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    found: dict[str, list[tuple[int, float]]] = {}
    for event in tf.compat.v1.train.summary_iterator(str(path)):
        for value in event.summary.value:
            found.setdefault(value.tag, []).append((event.step, value.simple_value))
    return found
