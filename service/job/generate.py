"""Stage 4: the best epoch's network writes the job's samples, with the job's sampling and with the
paper's greedy argmax from the same primers, as MIDI and audio, engraved and scored against the corpus."""

from __future__ import annotations

import numpy as np

from service.job.context import JobRun
from service.storage import corpus as corpora
from service.storage import jobstate


def run(job: JobRun, corpus: corpora.Corpus) -> dict:
    """Writes work/out/model/ and work/out/samples/; returns the report's generation part."""
    from service.model.architecture import build_model
    from service.model.generate import decoder_for, describe_samples, generate, pick_primers, save_model_dir
    from service.model.windows import train_val_starts
    from service.music import quality
    from service.music.keys import key_name
    from service.music.sampling import Sampling

    spec, out = job.spec, job.work / "out"
    job.phase("generate", f"generating {spec.samples} samples")
    model = build_model(spec, len(corpus.vocab))
    model.set_weights(jobstate.best_weights(job.store, spec.job_id))
    train_starts, _ = train_val_starts(corpus.offsets, spec.seq_len, spec.validation_fraction, spec.seed)
    rng = np.random.default_rng(spec.seed)
    bank = pick_primers(corpus.tokens, corpus.offsets, corpus.vocab, train_starts, 64, spec.seq_len, rng)
    save_model_dir(model, spec, corpus.vocab, spec.scheme, bank, out / "model")
    trained = decoder_for(model, spec, corpus.vocab, spec.scheme)
    primers = bank.take(rng.choice(len(bank.tokens), size=spec.samples))
    sampled = generate(trained, primers, spec.sample_length, spec.sampling(), rng, out / "samples")
    job.say(f"wrote {len(sampled.paths)} samples of {spec.sample_length} notes in {sampled.seconds:.2f} s "
            f"({sampled.ms_per_step:.2f} ms per step for the batch), with their audio (OGG), engraved as MusicXML, "
            "SVG and PNG")
    greedy = generate(trained, primers, spec.sample_length, Sampling(greedy=True), rng, out / "samples",
                      sheet_music=False, prefix="greedy")
    # Corpus excerpts as long (in tokens) as the samples, to compare like with like.
    excerpt = max(1, round(float(np.mean([len(t) for t in sampled.tokens]))))
    reference, measures = quality.corpus_reference(corpus.tokens, corpus.offsets, corpus.vocab, spec.scheme,
                                               excerpt, 32, np.random.default_rng(spec.seed))
    return {
        "samples": [p.name for p in sampled.paths],
        "greedy_samples": [p.name for p in greedy.paths],
        "keys": None if sampled.keys is None else [key_name(int(k)) for k in sampled.keys],
        "sampling": {**spec.sampling().describe(), "notes": spec.sample_length, "seed": spec.seed,
                     "primer": "random training window", "decoder": "stateful, batched",
                     "ms_per_step": sampled.ms_per_step},
        "quality": {
            "corpus": quality.describe(reference, corpus.vocab, spec.scheme, measures),
            "sampled": describe_samples(trained, sampled.tokens, sampled.keys, measures),
            "greedy": describe_samples(trained, greedy.tokens, greedy.keys, measures),
        },
    }
