"""Stage 3b: the held-out test score. The best epoch's weights score every held-out test piece whole
(model/score.py), once training is over; the pieces were never trained on, never early stopping's and
never primers (model/testsplit.py), so this is the number that says how good the model is."""

from __future__ import annotations

from service.job.context import JobRun
from service.storage import corpus as corpora
from service.storage import jobstate


def run(job: JobRun, corpus: corpora.Corpus) -> dict | None:
    """report.json's `test` block, also kept in status.json (`composer status --json`, `composer list`);
    None when the job holds nothing out (--test-share 0, or a corpus from before the split)."""
    from service.model.score import held_out_score

    spec = job.spec
    test = job.test_pieces(corpus)
    if len(test) == 0:
        why = ("no pieces held out (--test-share 0, or a job from before the held-out split)" if spec.test_share == 0
               else "its corpus was stored before composer kept file digests")
        job.say(f"no held-out test score: {why}")
        return None
    job.phase("evaluate", f"scoring the {len(test)} held-out test pieces")
    block = held_out_score(job.best_model(corpus), spec, corpus, test)
    job.say(f"held-out test score over {block['pieces']} pieces ({block['tokens']} tokens, {block['notes']} notes, "
            f"{block['seconds']:.0f} s of music): {block['nats_per_token']} nats per token, "
            f"{block['bits_per_note']} bits per note, {block['nats_per_second']} nats per second "
            f"(scored in {block['scoring_seconds']:.2f} s)")
    jobstate.update(job.store, spec.job_id, job.run_id, test=_summary(block))
    return block


def _summary(block: dict) -> dict:
    """status.json's copy: the numbers without the per-piece lists (which report.json has)."""
    return {k: v for k, v in block.items() if k not in ("files", "composers")}
