"""Stage 4: the best epoch's network writes the job's samples, with the job's sampling and with the
paper's greedy argmax from the same primers, as MIDI and audio, engraved and measured against excerpts of
the training pieces and of the held-out test pieces (music/evaluation.py). That reference is kept in the
model folder, so that `composer generate` fills the same table."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from service.job.context import JobRun
from service.storage import corpus as corpora
from service.storage.joblog import count

if TYPE_CHECKING:
    from service.model.generate import CorpusReference


def run(job: JobRun, corpus: corpora.Corpus) -> dict:
    """Writes work/out/model/ (with the corpus reference, for `composer generate`) and work/out/samples/;
    returns the report's generation part."""
    from service.model.composers import rows_per_composer
    from service.model.generate import decoder_for, generate_pieces, pick_primers, save_model_dir
    from service.music.beat import on_transcription_clock

    spec, out = job.spec, job.work / "out"
    job.phase("generate", f"generating {count(spec.samples, 'sample')}")
    model = job.best_model(corpus)
    rng = np.random.default_rng(spec.seed)
    table = job.composer_table(corpus)  # None unless conditioned on composers
    bank = pick_primers(corpus.tokens, corpus.offsets, corpus.vocab, job.windows(corpus), 64, spec.seq_len, rng,
                        None if table is None else table.ids(corpus.names))
    save_model_dir(model, spec, corpus.vocab, spec.scheme, bank, out / "model", table)
    trained = decoder_for(model, spec, corpus.vocab, spec.scheme, table)
    if table is None:
        primers = bank.take(rng.choice(len(bank.tokens), size=spec.samples))
    else:  # one sample per composer learned, as far as --samples goes
        rows, composers = rows_per_composer(bank.composers, table, spec.samples, rng)
        primers = bank.take(rows).by_composer(composers)
    # The reference first: its meter says whether the samples are engraved on the beat estimated from their
    # onsets (a corpus on a transcription clock). It draws from its own generator: the samples are as before.
    reference = corpus_reference(corpus, job.test_pieces(corpus), spec.scheme, spec.sample_length, spec.seed)
    reference.save(out / "model")
    pieces = generate_pieces(trained, primers, spec.sample_length, spec.sampling(), rng, out / "samples",
                             beat=on_transcription_clock(reference.evaluation.meter, spec.scheme))
    sampled = pieces.sampled
    job.say(f"wrote {count(len(sampled.paths), 'sample')} of {spec.sample_length} notes in "
            f"{sampled.seconds:.2f} s "
            f"({sampled.ms_per_step:.2f} ms per step for the batch), with their audio (OGG), engraved as MusicXML, "
            "SVG and PNG, and as many greedy pieces from the same primers"
            + ("" if sampled.composers is None else f"; composers {', '.join(sampled.composers)}"))
    return {
        **pieces.report(trained, reference, out),
        "sampling": {**spec.sampling().describe(), "notes": spec.sample_length, "seed": spec.seed,
                     "primer": "random training window", "decoder": "stateful, batched",
                     "ms_per_step": sampled.ms_per_step},
    }


# Excerpts per column: enough for mgeval's distance distributions (the held-out set's intra-set distances
# are every pair of its excerpts), few enough that the columns take seconds, whatever the corpus's size.
TRAINING_EXCERPTS = 32
HELD_OUT_EXCERPTS = 64


def corpus_reference(corpus: corpora.Corpus, test: np.ndarray, scheme: str, notes: int, seed: int) -> CorpusReference:
    """The training and held-out columns: TRAINING_EXCERPTS excerpts of the training (and validation) pieces
    and HELD_OUT_EXCERPTS of the `test` pieces, each as long in notes as the samples (music/evaluation.py)."""
    from service.model.generate import CorpusReference
    from service.model.testsplit import train_pieces
    from service.music import evaluation, quality

    rng = np.random.default_rng(seed)

    def excerpts(pieces: np.ndarray, count: int) -> list[np.ndarray]:
        """`count` excerpts of different pieces, or of the few there are at several places each: mgeval's
        distance distributions need more than a couple of pieces."""
        chosen = np.resize(rng.permutation(pieces), count) if len(pieces) else pieces
        return [evaluation.excerpt_by_notes(corpus.tokens[corpus.offsets[p]:corpus.offsets[p + 1]], corpus.vocab,
                                            scheme, notes, rng) for p in chosen]

    training = excerpts(train_pieces(corpus.pieces, test), TRAINING_EXCERPTS)
    held_out = excerpts(test, HELD_OUT_EXCERPTS)
    measures = quality.reference_of(training, corpus.vocab, scheme)
    measured = evaluation.build_reference(training, held_out, corpus.vocab, scheme, measures)
    excerpt_tokens = max(1, round(float(np.mean([len(t) for t in training]))))
    return CorpusReference(measures, measured, excerpt_tokens)
