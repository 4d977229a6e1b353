"""What a job hands back besides the model: the loss curve and report.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def loss_plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    epochs = [r["epoch"] for r in rows]
    ax.plot(epochs, [r["loss"] for r in rows], marker="o", label="train")
    ax.plot(epochs, [r["val_loss"] for r in rows], marker="o", label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# Kept in the order given: the phases in the order they last ran (README).
IN_ORDER = frozenset({"seconds_per_phase"})


def write_report(path: Path, body: dict[str, Any]) -> None:
    """report.json with its keys sorted at every level, but where the order says something (IN_ORDER)."""
    def sorted_keys(value: Any, name: str = "") -> Any:
        if isinstance(value, dict):
            keys = list(value) if name in IN_ORDER else sorted(value)
            return {k: sorted_keys(value[k], k) for k in keys}
        if isinstance(value, (list, tuple)):
            return [sorted_keys(v) for v in value]
        return value

    path.write_text(json.dumps(sorted_keys(body), indent=2))
