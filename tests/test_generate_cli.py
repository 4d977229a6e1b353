"""`composer generate` makes the same page a job does: the job's loss curve, each piece (samples and
greedy ones) with audio, score and piano roll, and the quality table with the training and held-out columns and the
distances to the corpus, from what the job kept in its model folder (reference.json, loss.png).

The model folder is made by the job's own stages (service/job/generate.py and publish.py) on a local
store, after a few real training steps of the tiny network, and pulled as `composer pull` does
(every file checked against MANIFEST.json); then the installed `composer generate` runs on it. A
model folder from before jobs kept the reference still generates, without the training column.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from browser import check_page, open_page
from conftest import run_cli
from test_cli_errors import assert_one_line_error

JOB = "composer-generate-page"
FILES = 6  # final-fantasy pieces the tiny corpus is made of
NOTES = "12"  # notes per generated piece: enough to measure, quick to render
JS_FIELDS = ("pitch_class_js_distance_to_corpus", "duration_js_distance_to_corpus", "ioi_js_distance_to_corpus")


def _train(spec, corpus, store) -> None:
    """Two real epochs of a few steps, committed as the training stage commits them."""
    from service.model import testsplit
    from service.model.architecture import build_model
    from service.model.windows import make_dataset, split_for
    from service.storage import jobstate

    starts, _ = split_for(corpus.offsets, spec, testsplit.of(corpus, spec))
    model = build_model(spec, len(corpus.vocab))
    rows = []
    for epoch in (1, 2):
        fit = model.fit(make_dataset(corpus.tokens, starts, spec.seq_len, 16, epoch), epochs=1, steps_per_epoch=3,
                        verbose=0)
        loss = float(fit.history["loss"][-1])
        rows.append({"epoch": epoch, "loss": loss, "val_loss": loss * 1.05, "seconds": 1.0})
        jobstate.commit_epoch(store, spec, model.get_weights(), [], 3 * epoch, rows, stopped=False)
    jobstate.save_training_device(store, spec.job_id, {"device": "CPU", "mixed_precision": False, "xla": False})


@pytest.fixture(scope="module")
def pulled(shared_midi: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A job's results folder, as `composer pull` writes it, and the files its manifest lists."""
    import hashlib

    import fastparse
    from service.job import evaluate, generate, publish
    from service.job.context import JobRun
    from service.spec import build_spec
    from service.storage import jobstate
    from service.storage.corpus import Corpus
    from service.storage.joblog import JobLog
    from service.storage.manifest import pull
    from service.storage.store import open_store

    root = tmp_path_factory.mktemp("generate-cli")
    paths = sorted((shared_midi / "final-fantasy").glob("*.mid"))[:FILES]
    tokens = fastparse.tokenize([str(p) for p in paths], scheme="remi")
    corpus = Corpus(np.asarray(tokens.tokens), np.asarray(tokens.offsets), list(tokens.vocab), "remi",
                    len(paths), [p.name for p in paths], [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths])
    store = open_store(str(root / "store"))
    spec = build_spec(JOB, "final-fantasy", store.uri, "tiny", scheme="remi", samples=2, sample_length=int(NOTES),
                      epochs=2, test_share=0.34)
    jobstate.save_spec(store, spec)
    _train(spec, corpus, store)
    log = JobLog(store, JOB, "driver")
    try:
        job = JobRun(spec, store, root / "work", log)
        test = evaluate.run(job, corpus)
        publish.run(job, corpus, generate.run(job, corpus), test)
    finally:
        log.close()
    files = pull(store, JOB, root / "pulled")
    return root / "pulled", files


def _generate(model: Path, out: Path, *extra: str) -> dict:
    proc = run_cli("generate", "--model", str(model), "--out", str(out), "--samples", "2", "--length", NOTES,
                   "--seed", "5", *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # TensorFlow's start-up lines (absl's, oneDNN's, "cuInit" without an NVIDIA driver) stay off the terminal
    assert not any(word in proc.stderr for word in ("absl", "oneDNN", "cuda", "cuInit")), proc.stderr[-3000:]
    # Off a terminal, a timestamped line a stage on stderr (client/generate_progress.py), none a step
    audio, sheet, greedy = "--no-audio" not in extra, "--no-sheet-music" not in extra, "--greedy" not in extra
    expected = ([f"sampling 2 pieces of {NOTES} notes"] + ["engraving 2 pieces as sheet music"] * sheet
                + ["rendering the audio of 2 pieces"] * audio
                + [f"greedy pieces (the paper's argmax), {NOTES} notes each"] * greedy
                + ["rendering the audio of the 2 greedy pieces"] * (audio and greedy)
                + ["measuring the pieces and writing the report"])
    stages = [line.split(" generate: ", 1) for line in proc.stderr.splitlines() if " generate: " in line]
    assert [text for _, text in stages] == expected, proc.stderr[-3000:]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp) for stamp, _ in stages)
    assert proc.stdout.strip().splitlines()[-1].startswith("wrote 2 samples to ")  # stdout: the result only
    assert (out / "report.html").is_file()
    return json.loads((out / "report.json").read_text())


def test_the_job_keeps_what_generate_needs_in_its_model_folder(pulled):
    folder, files = pulled
    assert {"model/reference.json", "model/loss.png", "loss.png"} <= set(files)  # in the manifest: verified
    assert (folder / "model" / "loss.png").read_bytes() == (folder / "loss.png").read_bytes()
    kept = json.loads((folder / "model" / "reference.json").read_text())
    job = json.loads((folder / "report.json").read_text())
    assert kept["evaluation"]["training"] == job["quality"]["training"]
    assert kept["evaluation"]["held_out"] == job["quality"]["held_out"]
    from service.job.generate import HELD_OUT_EXCERPTS

    # excerpts of the held-out pieces, several of each when there are few
    assert job["test"]["pieces"] >= 1 and len(kept["evaluation"]["features"]) == HELD_OUT_EXCERPTS
    assert len(kept["measures"]["pitch_class"]) == 12 and sum(kept["measures"]["pitch_class"]) == pytest.approx(1)


def test_generate_writes_the_jobs_page(pulled, chromium, tmp_path):
    folder, _ = pulled
    out = tmp_path / "out"
    report = _generate(folder / "model", out)

    job = json.loads((folder / "report.json").read_text())
    quality = report["quality"]
    assert set(quality) == {"training", "held_out", "sampled", "greedy"}
    assert quality["training"] == job["quality"]["training"]  # the job's reference, kept with the model
    assert quality["held_out"] == job["quality"]["held_out"]
    for section in ("sampled", "greedy"):
        assert quality[section]["pieces"] == 2 and quality[section]["dropped_tokens"] == 0
        for field in JS_FIELDS:
            assert 0.0 <= quality[section][field] <= 1.0, (section, field)
        # mgeval's comparison with the held-out excerpts the job kept, one number per feature
        assert set(quality[section]["overlap"]) == set(quality["held_out"]["overlap"])
        assert quality[section]["overlap_mean"] == pytest.approx(np.mean(list(quality[section]["overlap"].values())),
                                                                 abs=1e-3)
    # each generated piece's own measures, by file, as the page links them
    assert [row["file"] for row in report["piece_metrics"]] == [*report["samples"], *report["greedy_samples"]]
    assert all(0 < row["scale_consistency"] <= 1 for row in report["piece_metrics"])
    assert report["samples"] == ["sample-01.mid", "sample-02.mid"]
    assert report["greedy_samples"] == ["greedy-01.mid", "greedy-02.mid"]
    for name in report["greedy_samples"]:
        assert (out / name).is_file() and (out / name).with_suffix(".ogg").is_file()
        assert not (out / name).with_suffix(".png").exists()  # greedy pieces are not engraved
    assert report["model_job_id"] == JOB and report["settings"]["method"] == "sample"
    assert (out / "loss.png").read_bytes() == (folder / "model" / "loss.png").read_bytes()

    page = out / "report.html"
    open_page(chromium, page)
    seen = check_page(chromium, page)
    assert seen["columns"] == ["metric", "training", "held_out", "sampled", "greedy"]
    assert seen["pieces"] == ["sample-01", "sample-02", "greedy-01", "greedy-02"]
    assert seen["audio"] == ["sample-01.ogg", "sample-02.ogg", "greedy-01.ogg", "greedy-02.ogg"]
    assert seen["images"] == ["loss.png", "sample-01.roll.png", "sample-01.png", "sample-02.roll.png",
                              "sample-02.png", "greedy-01.roll.png", "greedy-02.roll.png"]
    for shown in ("Loss", "Settings", JOB, "Jensen-Shannon", "duration_js_distance_to_corpus"):
        assert shown in seen["text"], shown
    assert "no training column" not in seen["text"] and "no held_out column" not in seen["text"]
    assert "overlap_mean" in seen["text"] and "kl_mean" in seen["text"]


def test_an_older_model_folder_still_generates(pulled, chromium, tmp_path):
    """A model folder pulled before jobs kept reference.json and loss.png: no training column, no
    distances to the corpus, no loss curve; the rest as before. With --greedy, no second greedy set."""
    folder, _ = pulled
    old = tmp_path / "old-model"
    shutil.copytree(folder / "model", old)
    (old / "reference.json").unlink()
    (old / "loss.png").unlink()
    out = tmp_path / "out"
    report = _generate(old, out)

    assert set(report["quality"]) == {"sampled", "greedy"}
    assert not any(field in report["quality"][s] for s in ("sampled", "greedy") for field in JS_FIELDS)
    assert (out / "greedy-02.mid").is_file() and not (out / "loss.png").exists()
    open_page(chromium, out / "report.html")
    seen = check_page(chromium, out / "report.html")
    assert seen["columns"] == ["metric", "sampled", "greedy"]
    assert "loss.png" not in seen["images"] and "no training column" in seen["text"]

    greedy = _generate(old, tmp_path / "greedy", "--greedy", "--no-sheet-music", "--no-audio")
    assert set(greedy["quality"]) == {"sampled"} and greedy["greedy_samples"] == []
    assert not list((tmp_path / "greedy").glob("greedy-*"))


def test_a_damaged_reference_is_one_line(pulled, tmp_path):
    folder, _ = pulled
    model = tmp_path / "model"
    shutil.copytree(folder / "model", model)
    (model / "reference.json").write_text('{"corpus": {}, "measures": {"pitch_class": [1]}}')
    proc = run_cli("generate", "--model", str(model), "--out", str(tmp_path / "out"), "--length", NOTES)
    assert proc.returncode == 2 and "reference.json is damaged" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("damage", "says"), [
    (lambda m: (m / "composer.json").write_text('{"spec": '), "composer.json cannot be read (Expecting value"),
    (lambda m: (m / "model.keras").write_bytes(b"not a model"), "model.keras cannot be read ("),
    (lambda m: (m / "primers.npy").unlink(), "primers.npy cannot be read ("),
])
def test_a_damaged_model_folder_is_one_line_and_force_keeps_the_earlier_pieces(pulled, tmp_path, damage, says):
    """A model folder cut short or edited was a raw JSONDecodeError, OSError or FileNotFoundError (exit 1),
    and with --force the earlier pieces were gone by then: now one line, exit 2, and they stay."""
    folder, _ = pulled
    model, out = tmp_path / "model", tmp_path / "out"
    shutil.copytree(folder / "model", model)
    out.mkdir()
    (out / "sample-01.mid").write_bytes(b"an earlier piece")
    damage(model)
    proc = run_cli("generate", "--model", str(model), "--out", str(out), "--length", NOTES, "--force")
    line = assert_one_line_error(proc, 2, says, "it is damaged (pull the job again")
    assert "Traceback" not in proc.stderr, line
    assert (out / "sample-01.mid").read_bytes() == b"an earlier piece"


def test_a_key_for_a_model_without_key_conditioning_is_refused_before_the_model_loads(pulled, tmp_path):
    """It was refused after the model line and TensorFlow's load (some 6 s): a wrong request is one line."""
    folder, _ = pulled
    proc = run_cli("generate", "--model", str(folder / "model"), "--out", str(tmp_path / "out"), "--key", "D minor")
    assert_one_line_error(proc, 2, "--key needs a model trained with key conditioning")
    assert proc.stdout == "" and not (tmp_path / "out").exists()


def test_a_folder_inside_a_file_is_refused_in_one_line(pulled, tmp_path):
    folder, _ = pulled
    (tmp_path / "a-file").write_text("mine")
    proc = run_cli("generate", "--model", str(folder / "model"), "--out", str(tmp_path / "a-file" / "sub"))
    assert_one_line_error(proc, 2, f"--out {tmp_path / 'a-file' / 'sub'}: {tmp_path / 'a-file'} is a file")
    proc = run_cli("pull", "composer-x", "--to", str(tmp_path / "a-file" / "sub"),
                   env={"COMPOSER_STORE": str(tmp_path / "store"), "COMPOSER_HOME": str(tmp_path / "home")})
    assert_one_line_error(proc, 2, f"--to {tmp_path / 'a-file' / 'sub'}: {tmp_path / 'a-file'} is a file")
    assert (tmp_path / "a-file").read_text() == "mine"


def test_generate_never_mixes_its_pieces_with_an_earlier_runs(pulled, tmp_path):
    """A folder holding generated pieces is refused before the model loads, and left as it was; --force
    removes those pieces first (only those), so a smaller run (fewer samples, no audio) leaves none of
    them. A pulled job's folder (its pieces in samples/) is an --out as README shows."""
    folder, _ = pulled
    model, out = str(folder / "model"), tmp_path / "out"
    a_file = tmp_path / "a-file"
    a_file.write_text("mine")
    refused = run_cli("generate", "--model", model, "--out", str(a_file))
    assert_one_line_error(refused, 2, f"--out {a_file} is a file, not a folder")
    assert refused.stdout == "" and a_file.read_text() == "mine"

    first = run_cli("generate", "--model", model, "--out", str(out), "--samples", "2", "--length", NOTES,
                    "--no-sheet-music")
    assert first.returncode == 0, first.stderr[-3000:]
    for own in ("notes.txt", "sample-notes.txt"):
        (out / own).write_text("the user's own file")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    generated = [name for name in before if name.startswith(("sample-0", "greedy-0"))]
    assert {"sample-02.mid", "sample-01.ogg", "greedy-02.roll.png"} <= set(generated)

    again = run_cli("generate", "--model", model, "--out", str(out), "--samples", "1", "--length", NOTES)
    line = assert_one_line_error(again, 2, f"--out {out} already holds {len(generated)} file(s) of generated pieces",
                                 "add --force")
    assert again.stdout == "" and {p.name: p.read_bytes() for p in out.iterdir()} == before, line

    forced = run_cli("generate", "--model", model, "--out", str(out), "--samples", "1", "--length", NOTES,
                     "--no-audio", "--no-sheet-music", "--force")
    assert forced.returncode == 0, forced.stderr[-3000:]
    assert "wrote 1 sample to" in forced.stdout
    assert sorted(p.name for p in out.iterdir()) == ["greedy-01.mid", "greedy-01.roll.png", "loss.png", "notes.txt",
                                                     "report.html", "report.json", "sample-01.mid",
                                                     "sample-01.roll.png", "sample-notes.txt"]
    assert (out / "sample-notes.txt").read_text() == "the user's own file"
    assert json.loads((out / "report.json").read_text())["samples"] == ["sample-01.mid"]

    job = tmp_path / "job"
    shutil.copytree(folder, job)
    into_job = run_cli("generate", "--model", str(job / "model"), "--out", str(job), "--samples", "1", "--length",
                       NOTES, "--no-audio", "--no-sheet-music")
    assert into_job.returncode == 0, into_job.stderr[-3000:]
    assert (job / "sample-01.mid").is_file() and (job / "samples" / "sample-01.mid").is_file()
