"""Choosing the next token from logits: greedy (the paper's argmax), temperature, top-k, top-p.

Pure numpy over a batch of rows, so it is cheap to test and independent of the model.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from service.errors import UserError


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_k: int = 0  # 0: no limit
    top_p: float = 1.0  # 1.0: no nucleus cut
    greedy: bool = False

    def __post_init__(self) -> None:
        # `not x > 0` and `not x <= 1`: NaN fails them; typer reads "nan" and "inf" as floats.
        if not 0 < self.temperature < math.inf:
            raise UserError(f"--temperature must be a finite number above 0, got {self.temperature}")
        if self.top_k < 0:
            raise UserError(f"--top-k must be 0 (off) or more, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:  # NaN fails it too
            raise UserError(f"--top-p must be in (0, 1], got {self.top_p}")

    def describe(self) -> dict:
        return {"method": "greedy" if self.greedy else "sample", **asdict(self)}

    def refuse_unused(self) -> None:
        """What a user asked for: --greedy with a sampling setting, which argmax would ignore (and
        report.json would record as if used), is refused in one line."""
        given = [flag for flag, on in (("--temperature", self.temperature != 1.0), ("--top-k", self.top_k != 0),
                                       ("--top-p", self.top_p != 1.0)) if on]
        if self.greedy and given:
            raise UserError(f"--greedy always takes the likeliest token: {', '.join(given)} would change nothing; "
                            "give one or the other")


def probabilities(logits: np.ndarray, sampling: Sampling) -> np.ndarray:
    """Row-wise distribution after temperature, top-k and top-p (renormalized)."""
    scaled = logits.astype(np.float64) / sampling.temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    probs = np.exp(scaled)
    probs /= probs.sum(axis=1, keepdims=True)
    vocab = probs.shape[1]
    if 0 < sampling.top_k < vocab:
        kth = -np.partition(-probs, sampling.top_k - 1, axis=1)[:, sampling.top_k - 1 : sampling.top_k]
        probs = np.where(probs >= kth, probs, 0.0)
    if sampling.top_p < 1.0:
        order = np.argsort(-probs, axis=1)
        sorted_probs = np.take_along_axis(probs, order, axis=1)
        sorted_probs /= sorted_probs.sum(axis=1, keepdims=True)
        # Keep the smallest prefix whose mass reaches top_p (always at least the best token).
        keep_sorted = np.cumsum(sorted_probs, axis=1) - sorted_probs < sampling.top_p
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=1)
        probs = np.where(keep, probs, 0.0)
    return probs / probs.sum(axis=1, keepdims=True)


def choose(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> np.ndarray:
    """One token id per row."""
    if sampling.greedy:
        return np.argmax(logits, axis=1).astype(np.int32)
    probs = probabilities(logits, sampling)
    # Inverse-CDF sampling for all rows at once.
    cdf = np.cumsum(probs, axis=1)
    draws = rng.random((probs.shape[0], 1)) * cdf[:, -1:]
    return np.minimum((cdf < draws).sum(axis=1), probs.shape[1] - 1).astype(np.int32)
