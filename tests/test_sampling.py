"""Token choice from logits: greedy, temperature, top-k, top-p."""

from __future__ import annotations

import numpy as np
import pytest

from service.errors import UserError
from service.music.sampling import Sampling, choose, probabilities

LOGITS = np.log(np.array([[0.5, 0.25, 0.125, 0.0625, 0.0625]]))


def draws(sampling: Sampling, n: int = 20000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return choose(np.repeat(LOGITS, n, axis=0), sampling, rng)


def test_greedy_is_argmax():
    logits = np.random.default_rng(1).normal(size=(64, 30))
    assert (choose(logits, Sampling(greedy=True), np.random.default_rng(0)) == logits.argmax(axis=1)).all()


def test_plain_sampling_follows_the_distribution():
    counts = np.bincount(draws(Sampling()), minlength=5) / 20000
    np.testing.assert_allclose(counts, [0.5, 0.25, 0.125, 0.0625, 0.0625], atol=0.015)


def test_top_k_and_top_p_cut_the_tail():
    assert set(draws(Sampling(top_k=2)).tolist()) == {0, 1}
    np.testing.assert_allclose(probabilities(LOGITS, Sampling(top_k=2)), [[2 / 3, 1 / 3, 0, 0, 0]])
    # 0.5 + 0.25 reaches 0.7: the nucleus is the first two tokens.
    np.testing.assert_allclose(probabilities(LOGITS, Sampling(top_p=0.7)), [[2 / 3, 1 / 3, 0, 0, 0]])
    np.testing.assert_allclose(probabilities(LOGITS, Sampling(top_p=0.3)), [[1, 0, 0, 0, 0]])


def test_temperature_sharpens_and_flattens():
    def entropy(p):
        return float(-(p * np.log(p)).sum())

    cold, warm = probabilities(LOGITS, Sampling(temperature=0.5)), probabilities(LOGITS, Sampling(temperature=2))
    assert entropy(cold[0]) < entropy(probabilities(LOGITS, Sampling())[0]) < entropy(warm[0])


def test_seeded_draws_repeat():
    assert (draws(Sampling(), 500, seed=3) == draws(Sampling(), 500, seed=3)).all()
    assert (draws(Sampling(), 500, seed=3) != draws(Sampling(), 500, seed=4)).any()


@pytest.mark.parametrize("kwargs", [{"temperature": 0}, {"top_k": -1}, {"top_p": 0}, {"top_p": 1.5}])
def test_bad_settings_are_user_errors(kwargs):
    with pytest.raises(UserError):
        Sampling(**kwargs)


@pytest.mark.parametrize("kwargs", [{"top_k": 5}, {"top_p": 0.9}, {"temperature": 0.5}])
def test_greedy_with_a_sampling_setting_is_refused(kwargs):
    """argmax ignores them, and report.json recorded them as if used (`--greedy --top-k 5`)."""
    with pytest.raises(UserError, match=f"--greedy always takes the likeliest token: --{next(iter(kwargs))}"
                                        .replace("_", "-")):
        Sampling(greedy=True, **kwargs).refuse_unused()
    Sampling(greedy=True).refuse_unused()
    Sampling(**kwargs).refuse_unused()
