"""What a job cost (service/model/cost.py): device-seconds of the training workers, priced per device-hour."""

from __future__ import annotations

import pytest

from service.model import cost
from service.spec import build_spec


def _spec(**settings):
    return build_spec("priced", "d", "/tmp/s", "tiny", **settings)


def test_gpu_workers_on_spot_are_priced_with_their_savings():
    spec = _spec(workers=4, gpus_per_worker=1.0, instance_type="g5.xlarge", spot=True)
    record = cost.of(spec, {"queued": 3.0, "tokenize": 20.0, "train": 600.0, "generate": 30.0})
    assert record["device"] == "GPU" and record["devices"] == 4
    assert record["device_seconds"] == 2400.0 and record["driver_seconds"] == 53.0
    assert record["cost"] == pytest.approx(2400 * 0.40 / 3600, abs=1e-4)
    assert record["on_demand_cost"] == pytest.approx(2400 * 1.006 / 3600, abs=1e-4)
    assert record["savings"] == pytest.approx(record["on_demand_cost"] - record["cost"], abs=1e-4)
    assert "g5.xlarge spot $0.4/h for 1 GPU" in record["price_source"]


def test_a_cpu_instance_is_priced_per_cpu_and_a_given_price_wins():
    table = cost.of(_spec(workers=2, instance_type="m5.2xlarge"), {"train": 360.0})
    assert table["device"] == "CPU" and table["price_per_device_hour"] == pytest.approx(0.384 / 8)
    assert table["cost"] == pytest.approx(720 * 0.384 / 8 / 3600, abs=1e-4) and "savings" not in table
    given = cost.of(_spec(workers=2, instance_type="m5.2xlarge", price_per_hour=2.0), {"train": 360.0})
    assert given["cost"] == pytest.approx(0.4) and given["price_source"] == "--price-per-hour"


def test_without_a_price_only_device_seconds():
    record = cost.of(_spec(workers=3), {"train": 10.0})
    assert record["device_seconds"] == 30.0 and record["cost"] is None
    assert cost.line(record) == "30 CPU-seconds (no price: submit with --price-per-hour or --instance-type)"
