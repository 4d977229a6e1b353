"""What a job cost: the device-seconds its training workers held, and their price.

The bill of a training run is its workers' devices (infra/README.md, Cost): every worker holds its GPUs
(or, on a CPU cluster, its CPU) for the whole train phase, so

    device-seconds = workers x devices per worker x seconds of the train phase
    cost           = device-seconds x price of one device for an hour / 3600

The driver's phases (dataset, tokenize, evaluate, generate, publish) run on the head, which is up
whatever the jobs do: their wall time is reported beside (`driver_seconds`), not priced.

The price: `--price-per-hour` (one device for an hour: a worker with one GPU, the price of its
instance), or `--instance-type` from the table below, whose spot price is used with `--spot` (what the
launcher's `InstanceMarketOptions: MarketType: spot` buys), with the savings against on-demand.
"""

from __future__ import annotations

from typing import Any

# The instance types infra/ names (cluster-launcher/aws-gpu.yaml, kuberay/eks-cluster.yaml): USD per
# instance-hour in us-east-1, on-demand (AWS's price list, 2026) and a typical spot price (spot prices
# move hourly: give --price-per-hour for yours). `devices`: what one worker on it holds.
PRICE_TABLE: dict[str, dict[str, Any]] = {
    "g5.xlarge": {"device": "GPU", "devices": 1, "on_demand": 1.006, "spot": 0.40},
    "m5.2xlarge": {"device": "CPU", "devices": 8, "on_demand": 0.384, "spot": 0.15},
}
TABLE_NOTE = "USD, us-east-1; spot prices move hourly"


def check(price_per_hour: float | None, instance_type: str, spot: bool) -> str | None:
    """What is wrong with the price settings, in one line (None when nothing is)."""
    if price_per_hour is not None and not price_per_hour >= 0:
        return f"--price-per-hour must be 0 or more, got {price_per_hour:g}"
    if instance_type and instance_type not in PRICE_TABLE:
        return (f"composer has no price for --instance-type {instance_type!r} (it knows "
                f"{', '.join(sorted(PRICE_TABLE))}): give --price-per-hour instead")
    if spot and not instance_type and price_per_hour is None:
        return "--spot needs --instance-type (the table's spot price) or --price-per-hour (the price you pay)"
    return None


def devices_per_worker(gpus_per_worker: float, cpus_per_worker: int = 1) -> tuple[str, float]:
    """("GPU" or "CPU", how many a worker holds): its GPUs, else the CPU it trains on."""
    return ("GPU", gpus_per_worker) if gpus_per_worker > 0 else ("CPU", float(cpus_per_worker))


def price(price_per_hour: float | None, instance_type: str, spot: bool) -> dict[str, Any] | None:
    """The price of one device for an hour, where it comes from, and the on-demand price beside a spot one."""
    row = PRICE_TABLE.get(instance_type)
    on_demand = row["on_demand"] / row["devices"] if row else None
    if price_per_hour is not None:
        return {"per_device_hour": price_per_hour, "source": "--price-per-hour", "spot": spot,
                "on_demand_per_device_hour": on_demand if spot else None}
    if row is None:
        return None
    market = "spot" if spot else "on_demand"
    return {"per_device_hour": row[market] / row["devices"], "spot": spot,
            "source": f"{instance_type} {market.replace('_', '-')} ${row[market]:g}/h for {row['devices']} "
                      f"{row['device']} ({TABLE_NOTE})",
            "on_demand_per_device_hour": on_demand if spot else None}


def of(spec: Any, phase_seconds: dict[str, float]) -> dict[str, Any]:
    """The cost record of a job (a JobSpec) from the seconds of its phases so far."""
    device, per_worker = devices_per_worker(spec.gpus_per_worker)
    train = phase_seconds.get("train", 0.0)
    device_seconds = round(spec.workers * per_worker * train, 1)
    record: dict[str, Any] = {
        "device": device, "devices": spec.workers * per_worker, "device_seconds": device_seconds,
        "driver_seconds": round(sum(s for phase, s in phase_seconds.items() if phase != "train"), 1),
        "cost": None,
    }
    priced = price(spec.price_per_hour, spec.instance_type, spec.spot)
    if priced is None:
        return record
    record.update(price_per_device_hour=priced["per_device_hour"], price_source=priced["source"], spot=priced["spot"],
                  cost=round(device_seconds * priced["per_device_hour"] / 3600, 4))
    if priced["on_demand_per_device_hour"] is not None:
        on_demand = round(device_seconds * priced["on_demand_per_device_hour"] / 3600, 4)
        record.update(on_demand_cost=on_demand, savings=round(on_demand - record["cost"], 4))
    return record


def line(record: dict[str, Any]) -> str:
    """One line for people: device-seconds, and the cost where there is a price."""
    held = f"{record['device_seconds']:g} {record['device']}-seconds"
    if record.get("cost") is None:
        return f"{held} (no price: submit with --price-per-hour or --instance-type)"
    saved = f", {record['savings']:.4f} saved against on-demand" if record.get("savings") is not None else ""
    return f"{held}, ${record['cost']:.4f} at ${record['price_per_device_hour']:g} per {record['device']}-hour{saved}"
