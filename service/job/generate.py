"""Stage 4: the best epoch's network writes the job's samples, with the job's sampling and with the
paper's greedy argmax from the same primers, as MIDI and audio, engraved and scored against the corpus.
The corpus reference is kept in the model folder, so that `composer generate` scores against it too."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from service.job.context import JobRun
from service.storage import corpus as corpora
from service.storage import jobstate

if TYPE_CHECKING:
    from service.model.generate import CorpusReference


def run(job: JobRun, corpus: corpora.Corpus) -> dict:
    """Writes work/out/model/ (with the corpus reference, for `composer generate`) and work/out/samples/;
    returns the report's generation part."""
    from service.model.architecture import build_model
    from service.model.generate import decoder_for, generate_pieces, pick_primers, save_model_dir

    spec, out = job.spec, job.work / "out"
    job.phase("generate", f"generating {spec.samples} samples")
    model = build_model(spec, len(corpus.vocab))
    model.set_weights(jobstate.best_weights(job.store, spec.job_id))
    rng = np.random.default_rng(spec.seed)
    bank = pick_primers(corpus.tokens, corpus.offsets, corpus.vocab, job.windows(corpus), 64, spec.seq_len, rng)
    save_model_dir(model, spec, corpus.vocab, spec.scheme, bank, out / "model")
    trained = decoder_for(model, spec, corpus.vocab, spec.scheme)
    primers = bank.take(rng.choice(len(bank.tokens), size=spec.samples))
    pieces = generate_pieces(trained, primers, spec.sample_length, spec.sampling(), rng, out / "samples")
    sampled = pieces.sampled
    job.say(f"wrote {len(sampled.paths)} samples of {spec.sample_length} notes in {sampled.seconds:.2f} s "
            f"({sampled.ms_per_step:.2f} ms per step for the batch), with their audio (OGG), engraved as MusicXML, "
            "SVG and PNG, and as many greedy pieces from the same primers")
    reference = _corpus_reference(corpus, spec.scheme, sampled.tokens, spec.seed)
    reference.save(out / "model")
    return {
        **pieces.report(trained, reference),
        "sampling": {**spec.sampling().describe(), "notes": spec.sample_length, "seed": spec.seed,
                     "primer": "random training window", "decoder": "stateful, batched",
                     "ms_per_step": sampled.ms_per_step},
    }


def _corpus_reference(corpus: corpora.Corpus, scheme: str, samples: list[np.ndarray],
                      seed: int) -> CorpusReference:
    """The corpus column: corpus excerpts as long (in tokens) as the samples, to compare like with like."""
    from service.model.generate import CorpusReference
    from service.music import quality

    excerpt = max(1, round(float(np.mean([len(t) for t in samples]))))
    excerpts, measures = quality.corpus_reference(corpus.tokens, corpus.offsets, corpus.vocab, scheme, excerpt, 32,
                                                  np.random.default_rng(seed))
    return CorpusReference(quality.describe(excerpts, corpus.vocab, scheme, measures), measures, excerpt)
