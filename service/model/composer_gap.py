"""The composer gap: held-out pieces scored under their own composer against the other composers a
conditioned model learned (model/composers.py), the check that conditioning learned a style
(benchmarks/quality.py, test_composer_conditioning.py). Its own module: scoring needs the networks, which
need composers.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from service.model.composers import ComposerTable
from service.model.decoder import LstmDecoder
from service.model.score import score_pieces


@dataclass
class Gap:
    """Held-out pieces scored under their own composer and under each other learned composer."""

    own_nats_per_second: float  # the pieces' total nats over their seconds of music, each under its own
    other_nats_per_second: float  # the same under every other learned composer, averaged over them
    own_nats_per_token: float
    other_nats_per_token: float
    pieces: int  # held-out pieces whose composer the model learned (the others have no own composer)
    own_better: int  # of those, the pieces likelier under their own composer than under the others on average

    @property
    def nats_per_second(self) -> float:
        """other - own: above 0 when the pieces are likelier under their own composer."""
        return self.other_nats_per_second - self.own_nats_per_second

    def describe(self) -> dict:
        return {"own_nats_per_second": round(self.own_nats_per_second, 6),
                "other_nats_per_second": round(self.other_nats_per_second, 6),
                "gap_nats_per_second": round(self.nats_per_second, 6),
                "own_nats_per_token": round(self.own_nats_per_token, 6),
                "other_nats_per_token": round(self.other_nats_per_token, 6), "pieces": self.pieces,
                "own_better": self.own_better}


def composer_gap(decoder: LstmDecoder, pieces: list[np.ndarray], own: np.ndarray, seconds: np.ndarray,
                 table: ComposerTable, keys: np.ndarray | None = None) -> Gap:
    """Score each held-out piece (`own`: its composer's row) under its own composer and under each of the
    other learned composers (never the "unknown" row, whose training pieces are no composer's style).
    A decoder without a composer input scores every piece the same under all of them: no gap."""
    mine = np.flatnonzero(own > 0)
    pieces, own, seconds = [pieces[i] for i in mine], own[mine], seconds[mine]
    keys = None if keys is None else keys[mine]
    tokens = float(sum(max(len(p) - 1, 0) for p in pieces))
    music = float(seconds.sum())
    if not pieces or tokens == 0 or music <= 0:
        return Gap(math.nan, math.nan, math.nan, math.nan, len(pieces), 0)
    under = {who: score_pieces(decoder, pieces, keys, composers=np.full(len(pieces), who, np.int32)).nats
             for who in range(1, len(table))}
    own_nats = np.array([under[int(who)][i] for i, who in enumerate(own)])
    # Per piece, the mean over the composers that are not its own; summed over the pieces.
    others = np.array([np.mean([under[who][i] for who in under if who != own[i]]) for i in range(len(pieces))])
    return Gap(float(own_nats.sum()) / music, float(others.sum()) / music, float(own_nats.sum()) / tokens,
               float(others.sum()) / tokens, len(pieces), int((own_nats < others).sum()))
