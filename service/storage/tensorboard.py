"""A job's training curves as a TensorBoard event file, written from its metrics rows without TensorFlow.

Rank 0 rewrites the whole file from the committed rows at every epoch (jobstate.commit_epoch), so a
resumed job holds exactly one value per epoch and per curve, and the file is readable while the job
trains. `composer pull` brings it to DIR/tensorboard/; `tensorboard --logdir DIR` shows it (a sweep's
pulled trials side by side under one folder).

The format: TFRecord framing (length, masked CRC-32C of the length, the record, its masked CRC-32C)
around `tensorflow.Event` protobuf messages, the first saying the file version, then one per epoch
with a `Summary` of scalar `simple_value`s: what TensorFlow's own summary iterator and TensorBoard read.
"""

from __future__ import annotations

import struct
from typing import Any

FOLDER = "tensorboard"
FILE = f"{FOLDER}/events.out.tfevents.0.composer"  # TensorBoard reads any file with "tfevents" in its name

# TensorBoard tag <- metrics row field, in the order written.
CURVES = (("loss", "loss"), ("val_loss", "val_loss"), ("accuracy", "accuracy"), ("val_accuracy", "val_accuracy"),
          ("learning_rate", "learning_rate"), ("epoch_seconds", "seconds"), ("tokens_per_second", "tokens_per_s"))


def _crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum of TFRecord framing."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return (length + struct.pack("<I", _masked(crc32c(length))) + data
            + struct.pack("<I", _masked(crc32c(data))))


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _bytes_field(number: int, data: bytes) -> bytes:
    return _field(number, 2) + _varint(len(data)) + data


def _event(wall_time: float, step: int, file_version: str | None = None,
           scalars: list[tuple[str, float]] = ()) -> bytes:
    """An Event message: wall_time = 1 (double), step = 2 (int64), file_version = 3, summary = 5;
    Summary.value = 1 (repeated); Value.tag = 1, Value.simple_value = 2 (float)."""
    body = _field(1, 1) + struct.pack("<d", wall_time) + _field(2, 0) + _varint(step)
    if file_version is not None:
        body += _bytes_field(3, file_version.encode())
    if scalars:
        values = b"".join(_bytes_field(1, _bytes_field(1, tag.encode()) + _field(2, 5) + struct.pack("<f", value))
                          for tag, value in scalars)
        body += _bytes_field(5, values)
    return body


def event_file(rows: list[dict[str, Any]]) -> bytes:
    """The event file of a job's epochs: one event per row, step = the epoch, the curves it has."""
    started = rows[0].get("time", 0.0) - rows[0].get("seconds", 0.0) if rows else 0.0
    out = [_record(_event(started, 0, file_version="brain.Event:2"))]
    for row in rows:
        scalars = [(tag, float(row[name])) for tag, name in CURVES if row.get(name) is not None]
        out.append(_record(_event(float(row.get("time", 0.0)), int(row["epoch"]), scalars=scalars)))
    return b"".join(out)
