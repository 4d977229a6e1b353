"""service.music.page: the results page, opened from disk (file://) in real headless Chromium.

The results folders are made of real outputs: MIDI files from ../shared/midi, their audio
(service.music.audio), their engravings (service.music.render), a loss curve (service.model.report)
and quality numbers computed by service.music.quality from the files' real tokens. In the browser:
no console error, every audio element loads its metadata with the file's duration, every image
decodes, the quality table has its columns, and nothing points off the machine.

COMPOSER_UPDATE_SCREENSHOT=1 writes the job page's screenshot to docs/report.png (else into tmp_path).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser import check_page, open_page, screenshot
from conftest import REPO

from service.music.page import write_page

FF = "final-fantasy"
PIECES = {"sample-01.mid": "8.mid", "sample-02.mid": "FF6epitaph_piano.mid", "greedy-01.mid": "FFIX_Piano.mid"}
CORPUS = ["Cids.mid", "DOS.mid", "FF4.mid", "FFIXQuMarshP.mid", "FF3_Battle_(Piano).mid"]
SCHEME, LENGTH = "remi", 600  # tokens per "generated" piece, as a job's sample_length
PRIMER = "/home/me/<my & primer>.mid"  # a user's path with characters HTML must escape


def _quality(shared_midi: Path, folder: Path, names: dict[str, list[str]]) -> dict[str, dict]:
    """report.json's "quality", computed as service/job/generate.py does, from the pieces' real tokens."""
    import fastparse
    from service.music import quality

    corpus = fastparse.tokenize([str(shared_midi / FF / n) for n in CORPUS], scheme=SCHEME)
    offsets = np.asarray(corpus.offsets)
    reference = [np.asarray(corpus.tokens[a:min(b, a + LENGTH)])
                 for a, b in zip(offsets[:4], offsets[1:5], strict=True)]
    hist = quality.reference_of(reference, corpus.vocab, SCHEME)
    described = {"training": quality.describe(reference, corpus.vocab, SCHEME, hist)}
    for section, files in names.items():
        pieces = fastparse.tokenize([str(folder / n) for n in files], scheme=SCHEME, vocab=corpus.vocab)
        rows = [pieces.tokens[a:b][:LENGTH] for a, b in zip(pieces.offsets[:-1], pieces.offsets[1:], strict=True)]
        described[section] = quality.describe(rows, corpus.vocab, SCHEME, hist)
    return described


def _pieces(shared_midi: Path, folder: Path, names: list[str], scores: bool) -> None:
    from service.music.audio import render
    from service.music.render import render_sample

    for name in names:
        midi = folder / name
        shutil.copyfile(shared_midi / FF / PIECES[name], midi)
        render(midi, midi.with_suffix(".ogg"))
        if scores and name.startswith("sample-"):  # greedy pieces have no score, as in a job
            render_sample(midi)


@pytest.fixture(scope="module")
def job_folder(shared_midi: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `composer pull JOB --to DIR` brings: report.json, loss.png, metrics.jsonl, samples/."""
    from service.model.report import loss_plot, write_report
    from service.music.sampling import Sampling

    folder = tmp_path_factory.mktemp("pulled") / "job-ff"
    (folder / "samples").mkdir(parents=True)
    (folder / "model").mkdir()
    _pieces(shared_midi, folder / "samples", list(PIECES), scores=True)
    rows = [{"epoch": e, "loss": 3.2 - 0.4 * e, "val_loss": 3.3 - 0.3 * e + 0.02 * e * e} for e in range(1, 7)]
    loss_plot(rows, folder / "loss.png")
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    best = min(rows, key=lambda r: r["val_loss"])
    quality = _quality(shared_midi, folder / "samples",
                       {"sampled": ["sample-01.mid", "sample-02.mid"], "greedy": ["greedy-01.mid"]})
    write_report(folder / "report.json", {  # the keys service/job/publish.py writes
        "job_id": "job-ff", "dataset": FF, "scheme": SCHEME, "preset": "fast", "files": 61, "pieces": 61,
        "tokens": 251_904, "vocab_size": 214, "epochs_run": len(rows), "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"], "workers": 2, "key_conditioning": False, "pedal": "apply",
        "augment": {"setting": "transpose=2,stretch", "transpose_semitones": 2, "time_stretch": 0.05},
        "training_device": {"device": "CPU", "mixed_precision": False, "xla": False},
        "token_cache": {"location": "corpora/abc", "cache": "miss", "key": "abc", "seconds": {"tokenize": 0.4},
                        "shards_fetched": 1, "bytes_fetched": 812_000},
        "samples": ["sample-01.mid", "sample-02.mid"], "greedy_samples": ["greedy-01.mid"], "keys": None,
        "sampling": {**Sampling(temperature=0.9, top_k=20).describe(), "length": LENGTH, "seed": 7,
                     "primer": "random training window", "decoder": "stateful, batched", "ms_per_step": 1.8},
        "quality": quality,
        "seconds_per_phase": {"queued": 1.2, "tokenize": 3.4, "train": 60.5, "generate": 9.1},
    })
    return folder


@pytest.fixture(scope="module")
def generate_folder(shared_midi: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `composer generate --out OUT` writes: the pieces, greedy ones too, report.json and the job's
    loss curve (from its model folder) directly in OUT."""
    from service.model.report import loss_plot, write_report
    from service.music.sampling import Sampling

    folder = tmp_path_factory.mktemp("generated") / "out"
    folder.mkdir()
    names = ["sample-01.mid", "sample-02.mid"]
    _pieces(shared_midi, folder, [*names, "greedy-01.mid"], scores=True)
    loss_plot([{"epoch": e, "loss": 3.0 - 0.3 * e, "val_loss": 3.1 - 0.2 * e} for e in range(1, 5)],
              folder / "loss.png")
    quality = _quality(shared_midi, folder, {"sampled": names, "greedy": ["greedy-01.mid"]})
    write_report(folder / "report.json", {  # the keys service/model/generate.py writes
        "samples": names, "greedy_samples": ["greedy-01.mid"], "keys": ["A minor", "E-flat major"],
        "settings": {**Sampling(temperature=1.1, top_p=0.95).describe(), "length": LENGTH, "seed": 3,
                     "model": "results/job-ff/model", "primer": PRIMER, "key": None,
                     "decoder": "stateful, batched", "ms_per_step": 2.4, "corpus_excerpt_tokens": LENGTH},
        "model_job_id": "job-ff", "preset": "fast", "scheme": SCHEME, "key_conditioning": False,
        "quality": quality,
    })
    return folder


def test_job_page(chromium, job_folder: Path, tmp_path: Path) -> None:
    page = write_page(job_folder)
    assert page == job_folder / "report.html"
    open_page(chromium, page)
    seen = check_page(chromium, page)

    assert seen["pieces"] == ["sample-01", "sample-02", "greedy-01"]  # samples first, then greedy
    assert seen["audio"] == ["sample-01.ogg", "sample-02.ogg", "greedy-01.ogg"]
    assert seen["images"] == ["loss.png",
                              "samples/sample-01.roll.png", "samples/sample-01.png",
                              "samples/sample-02.roll.png", "samples/sample-02.png",
                              "samples/greedy-01.roll.png"]  # greedy pieces: no score
    assert seen["columns"] == ["metric", "training", "sampled", "greedy"]
    metrics = chromium.execute_script("return [...document.querySelectorAll('table.quality tbody tr')]"
                                      ".map(r => r.cells[0].textContent)")
    assert metrics[:3] == ["pieces", "tokens_per_piece", "distinct_4gram_ratio"] and "key_of_all" in metrics
    text = seen["text"]
    assert "composer job job-ff" in text and FF in text
    for shown in ("fast", "remi", "best validation loss", "workers", "temperature", "0.9", "top k", "20", "CPU"):
        assert shown in text, shown
    settings = chromium.execute_script("return [...document.querySelectorAll('.settings tr')].map(r => r.innerText)")
    assert "sustain pedal\tapply" in settings, settings
    assert "augmentation\ttransposed up to 2 semitones down or up and stretched in time by up to 5%" in settings
    quality = json.loads((job_folder / "report.json").read_text())["quality"]
    row = chromium.execute_script(
        "return [...document.querySelectorAll('table.quality tbody tr')].find(r => r.cells[0].textContent"
        " === 'pitch_class_js_distance_to_corpus').innerText")
    for section in ("training", "sampled", "greedy"):
        assert f"{quality[section]['pitch_class_js_distance_to_corpus']:.4g}" in row
    assert "Jensen-Shannon" in text and "lower is closer" in text

    target = (REPO / "docs" / "report.png" if os.environ.get("COMPOSER_UPDATE_SCREENSHOT") == "1"
              else tmp_path / "report.png")
    shot = screenshot(chromium, target)
    assert shot.stat().st_size < 300_000, shot.stat().st_size

    # In a narrow window (a phone, half a laptop screen) the scores shrink with it: no sideways scrolling.
    size = chromium.get_window_size()
    chromium.set_window_size(600, size["height"])
    try:
        widths = chromium.execute_script(
            "const page = document.documentElement.clientWidth;"
            "return [page, document.documentElement.scrollWidth,"
            " Math.max(...[...document.querySelectorAll('img.score')].map(i => i.getBoundingClientRect().right))]")
        assert widths[0] <= 600 and widths[1] <= widths[0] and widths[2] <= widths[0], widths
    finally:
        chromium.set_window_size(size["width"], size["height"])


def test_generate_page(chromium, generate_folder: Path) -> None:
    page = write_page(generate_folder)
    assert page == generate_folder / "report.html"
    open_page(chromium, page)
    seen = check_page(chromium, page)

    assert seen["pieces"] == ["sample-01", "sample-02", "greedy-01"]
    assert seen["images"] == ["loss.png", "sample-01.roll.png", "sample-01.png", "sample-02.roll.png",
                              "sample-02.png", "greedy-01.roll.png"]
    assert seen["columns"] == ["metric", "training", "sampled", "greedy"]
    assert "trained by job" in seen["text"] and "job-ff" in seen["text"] and "composer job" not in seen["text"]
    assert "key A minor" in seen["text"] and "key E-flat major" in seen["text"]
    # The user's primer path is shown as text, not parsed as markup.
    assert PRIMER in seen["text"]
    assert chromium.execute_script("return document.querySelectorAll('my').length") == 0  # no <my ...> element


def test_a_greedy_generate_lists_no_sampling_settings_it_did_not_use(shared_midi: Path, tmp_path: Path) -> None:
    """`composer generate --greedy`: temperature, top-k and top-p do not apply to argmax decoding."""
    from service.music.sampling import Sampling

    shutil.copyfile(shared_midi / FF / "8.mid", tmp_path / "sample-01.mid")
    for greedy, shown in ((True, False), (False, True)):
        (tmp_path / "report.json").write_text(json.dumps({"settings": {
            **Sampling(temperature=1.3, top_k=7, top_p=0.9, greedy=greedy).describe(), "seed": 3}}))
        text = write_page(tmp_path).read_text()
        settings = text[text.index("<h2>Settings</h2>"):]
        assert [label in settings for label in ("temperature", "top k", "top p")] == [shown] * 3, settings
        assert ">greedy<" in settings if greedy else ">sample<" in settings


def test_page_shows_numbers_and_skips_the_rest(shared_midi: Path, tmp_path: Path) -> None:
    """Without a browser: lists become their mean, nested dicts and missing values are skipped, and a
    folder without report.json or audio still gets its pieces."""
    shutil.copyfile(shared_midi / FF / "8.mid", tmp_path / "sample-01.mid")
    (tmp_path / "report.json").write_text(json.dumps({"job_id": "j<1>", "quality": {
        "sampled": {"pieces": 1, "per_piece": [0.5, 1.5], "nested": {"a": 1}, "key_of_all": "C major"},
        "greedy": {"pieces": 1, "nested": {"b": 2}}}}))
    text = write_page(tmp_path).read_text()
    assert "composer job j&lt;1&gt;" in text and "j<1>" not in text
    assert "mean 1 of 2" in text and "C major" in text and "nested" not in text
    assert "<audio" not in text and 'src="sample-01.roll.png"' in text and (tmp_path / "sample-01.roll.png").is_file()

    (tmp_path / "report.json").unlink()
    text = write_page(tmp_path).read_text()
    assert "sample-01" in text and "Quality" not in text and "Settings" not in text


@pytest.mark.parametrize(("pieces", "warned"), [(256.0, False), (300.0, False), (60.0, True), (900.0, True)])
def test_pieces_of_another_length_than_the_corpus_excerpts_are_flagged(tmp_path: Path, pieces: float,
                                                                       warned: bool) -> None:
    """`composer generate --length` other than the job's: the repetition measures are read with care."""
    (tmp_path / "report.json").write_text(json.dumps({"job_id": "j", "quality": {
        "training": {"tokens_per_piece": 256.0, "distinct_4gram_ratio": 0.5},
        "sampled": {"tokens_per_piece": pieces, "distinct_4gram_ratio": 0.7}}}))
    text = write_page(tmp_path).read_text()
    assert (f"These pieces are about {pieces:.0f} tokens long and the corpus excerpts 256" in text) is warned


def test_generate_into_a_pulled_jobs_folder_shows_its_own_pieces(shared_midi: Path, tmp_path: Path) -> None:
    """`composer generate --out DIR` with DIR a pulled job's folder: the page shows the pieces generate
    wrote into DIR, not the job's of the same name in DIR/samples/; without a training column it says why."""
    (tmp_path / "samples").mkdir()
    shutil.copyfile(shared_midi / FF / "8.mid", tmp_path / "samples" / "sample-01.mid")
    shutil.copyfile(shared_midi / FF / "DOS.mid", tmp_path / "sample-01.mid")
    (tmp_path / "report.json").write_text(json.dumps({"samples": ["sample-01.mid"], "settings": {"seed": 1},
                                                      "quality": {"sampled": {"pieces": 1}}}))
    text = write_page(tmp_path).read_text()
    assert 'href="sample-01.mid"' in text and "samples/sample-01" not in text
    assert "no training column" in text and "no held_out column" in text

    (tmp_path / "report.json").write_text(json.dumps({"job_id": "j", "samples": ["sample-01.mid"]}))
    text = write_page(tmp_path).read_text()  # the job's own report: its pieces are in samples/
    assert 'href="samples/sample-01.mid"' in text


def test_an_augmentation_asked_and_not_done_says_why() -> None:
    """`--augment stretch` on a remi scheme trains with none: the page said "none" alone, report.json why."""
    from service.music.page import _augmentation

    note = "no time stretch: the scheme has no TimeShift tokens (only the performance scheme does)"
    assert _augmentation({"setting": "stretch", "transpose_semitones": 0, "time_stretch": 0.0, "note": note}) == \
        f"none ({note})"
    assert _augmentation({"setting": "transpose", "transpose_semitones": 3, "time_stretch": 0.0}) == \
        "transposed up to 3 semitones down or up"
