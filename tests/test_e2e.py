"""End to end on real parts: CLI -> Ray Job API -> fastparse -> Ray Train (2 TF workers) -> S3 -> pull."""

from __future__ import annotations

import datetime
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FIVE_GIANTMIDI, legacy_dataset, run_cli

import fastparse

TINY = ["--preset", "tiny", "--epochs", "3", "--steps-per-epoch", "6", "--workers", "2", "--samples", "2"]


@pytest.fixture(scope="module")
def s3_job(s3_server, ray_head, composer_home, five_files, tmp_path_factory) -> dict:
    """One job on five GiantMIDI files with an S3 store, submitted and pulled through the CLI, on a machine
    where another Ray head runs beside composer's and Ray's last-started-cluster file names a head that is
    gone (as after a third was started and stopped here). With two heads running, Ray's job supervisor
    gives the driver that file's address: see test_a_stale_last_started_cluster_file_does_not_stall_the_job
    and test_composer_s_own_head_runs_the_driver_with_the_submitting_python."""
    from ray._private.utils import get_ray_address_file
    from ray_heads import Head

    store = f"s3://{s3_server.bucket}/e2e"
    env = {**s3_server.env(), "COMPOSER_HOME": str(composer_home)}
    last_started = Path(get_ray_address_file(None))
    kept = last_started.read_text() if last_started.exists() else None
    other, started = Head(tmp_path_factory.mktemp("other-head")), False
    try:
        other.start()
        started = True
        last_started.write_text("127.0.0.1:9")  # nothing listens there
        submitted = run_cli("submit", "--dataset", str(five_files), "--store", store, *TINY, "--price-per-hour",
                            "0.5", "--wait", "--json", env=env)
    finally:
        if started:
            other.lose()
        if kept is None:
            last_started.unlink(missing_ok=True)
        else:
            last_started.write_text(kept)
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    result = json.loads(submitted.stdout.strip().splitlines()[-1])
    out = tmp_path_factory.mktemp("pulled")
    pulled = run_cli("pull", result["job_id"], "--to", str(out), "--store", store, "--json", env=env)
    assert pulled.returncode == 0, pulled.stderr
    return {"result": result, "out": out, "store": store, "env": env, "pulled": json.loads(pulled.stdout),
            "progress": submitted.stderr}


def test_job_succeeds_with_progress(s3_job):
    result = s3_job["result"]
    assert result["state"] == "SUCCEEDED"
    assert result["phase"] == "done"
    # The epoch status reports is the last one trained: one row of metrics.jsonl per epoch (a status stuck at
    # an earlier epoch, or counting from 0, fails here).
    rows = (s3_job["out"] / "metrics.jsonl").read_text().splitlines()
    report = json.loads((s3_job["out"] / "report.json").read_text())
    assert result["epoch"] == len(rows) == report["epochs_run"] and result["epochs"] == 3
    assert result["best_val_loss"] is not None and np.isfinite(result["best_val_loss"])
    assert result["error"] is None


def test_waiting_without_a_terminal_prints_a_line_per_phase_and_epoch(s3_job):
    """--wait with stderr captured (CI, nohup, a log file): one timestamped line per phase and per epoch."""
    import re

    job = s3_job["result"]["job_id"]
    lines = s3_job["progress"].splitlines()
    assert lines and all(re.match(rf"\d{{4}}-\d\d-\d\dT[\d:.]+Z {job}: ", line) for line in lines), lines
    for phase in ("dataset", "tokenize", "generate", "publish"):
        assert any(f", {phase}" in line for line in lines), (phase, lines)
    for epoch in (1, 2, 3):
        assert any(f"train: epoch {epoch}/3, loss " in line for line in lines), (epoch, lines)
    assert len(lines) == len(set(line.split(" ", 1)[1] for line in lines)), "no line twice"


def test_status_and_report_give_seconds_per_phase(s3_job):
    report = json.loads((s3_job["out"] / "report.json").read_text())
    phases = report["seconds_per_phase"]
    assert {"queued", "dataset", "tokenize", "train", "generate"} <= set(phases)
    assert all(seconds >= 0 for seconds in phases.values()) and phases["train"] > 0
    # In the order they ran, as status gives them (report.json was sorted by name: dataset, evaluate, ...)
    assert [p for p in phases if p in ("queued", "dataset", "tokenize", "train", "generate")] == [
        "queued", "dataset", "tokenize", "train", "generate"]
    status = run_cli("status", s3_job["result"]["job_id"], "--store", s3_job["store"], "--json", env=s3_job["env"])
    assert list(phases) == [p for p in json.loads(status.stdout)["phase_seconds"] if p in phases]


def test_credential_files_are_gone_after_success(s3_job, composer_home):
    assert not (composer_home / "credentials" / s3_job["result"]["job_id"]).exists()


def test_pulled_layout_matches_the_contract(s3_job):
    out: Path = s3_job["out"]
    files = set(s3_job["pulled"]["files"])
    assert {"model/model.keras", "model/composer.json", "model/reference.json", "model/loss.png", "report.json",
            "loss.png", "metrics.jsonl"} <= files
    assert sorted(p.name for p in (out / "samples").glob("sample-*.mid")) == ["sample-01.mid", "sample-02.mid"]
    assert sorted(p.name for p in (out / "samples").glob("greedy-*.mid")) == ["greedy-01.mid", "greedy-02.mid"]
    for stem in ("sample-01", "sample-02"):
        assert {f"samples/{stem}.{ext}" for ext in ("musicxml", "svg", "png")} <= files
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    report = json.loads((out / "report.json").read_text())
    assert report["files"] == 5 and report["pieces"] == 5 and report["workers"] == 2
    assert report["best_val_loss"] == pytest.approx(min(r["val_loss"] for r in rows))
    quality = report["quality"]
    assert set(quality) == {"training", "held_out", "sampled", "greedy"}
    for stats in quality.values():
        assert {"distinct_4gram_ratio", "longest_loop_tokens", "pitch_class_entropy_bits", "polyphony",
                "notes_per_onset", "in_key_share", "pitch_range", "scale_consistency", "duration_median",
                "ioi_median"} <= set(stats)
        # notes-chords keeps no rhythm: nothing is measured on a beat grid
        assert not {"notes_per_bar", "onsets_on_beat_share", "empty_beat_rate", "groove_consistency"} & set(stats)
        assert stats["time_unit"] == "second"
    assert report["meter"]["has_meter"] is False and "keeps no rhythm" in report["meter"]["reason"]
    # The JS distance recomputed here from the pulled samples' notes and the training excerpts' pitch classes
    # kept in the model folder (a distance against the wrong reference or pieces, or not Jensen-Shannon in
    # base 2, fails).
    pitches = np.concatenate([fastparse.read_notes(p).pitch for p in sorted((out / "samples").glob("sample-*.mid"))])
    mine = np.bincount(pitches % 12, minlength=12) / len(pitches)
    corpus = np.array(json.loads((out / "model" / "reference.json").read_text())["measures"]["pitch_class"])
    middle = (mine + corpus) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        return float(sum(x * np.log2(x / y) for x, y in zip(a, b, strict=True) if x > 0))

    expected = np.sqrt((kl(mine, middle) + kl(corpus, middle)) / 2)
    assert 0 < expected < 1 and quality["sampled"]["pitch_class_js_distance_to_corpus"] == pytest.approx(expected)
    for column in ("held_out", "sampled", "greedy"):
        assert 0.0 <= quality[column]["overlap_mean"] <= 1.0 and quality[column]["kl_mean"] >= 0.0
    assert report["sampling"]["method"] == "sample" and report["sampling"]["temperature"] == 1.0
    # CPU workers: no float16, no XLA (accelerate.py switches them on for GPUs only).
    assert report["training_device"] == {"device": "CPU", "mixed_precision": False, "xla": False}  # no GPU fields
    assert report["key_conditioning"] is False and report["keys"] is None
    # on by default: notes-chords windows transposed; no TimeShift tokens, so nothing stretched
    augmented = report["augment"]
    assert {k: augmented[k] for k in ("setting", "transpose_semitones", "time_stretch")} == {
        "setting": "transpose,stretch", "transpose_semitones": 3, "time_stretch": 0.0}
    assert "no time stretch" in augmented["note"]


def test_every_piece_has_audio_that_decodes_to_the_midi_s_length(s3_job):
    """sample-NN.ogg and greedy-NN.ogg beside each MIDI file with notes: OGG Vorbis that a decoder reads,
    as long as the music (within 1 s), neither silent nor clipped; listed in the pulled manifest."""
    import soundfile

    samples = s3_job["out"] / "samples"
    midis = sorted(p for p in samples.glob("*.mid") if len(fastparse.read_notes(p)))
    assert len(midis) >= 2
    for midi in midis:
        audio = midi.with_suffix(".ogg")
        assert f"samples/{audio.name}" in s3_job["pulled"]["files"]
        info = soundfile.info(str(audio))
        assert (info.format, info.subtype, info.samplerate) == ("OGG", "VORBIS", 44100)
        wave, rate = soundfile.read(str(audio))
        assert abs(len(wave) / rate - float(fastparse.read_notes(midi).end.max())) <= 1.0
        assert np.sqrt(np.mean(wave ** 2)) > 0.01 and np.abs(wave).max() < 1.0


def test_the_pulled_job_s_page_plays_and_shows_everything_offline(s3_job, chromium, tmp_path):
    """report.html opened from the pulled folder in headless Chromium: every audio element loads with its
    file's duration, every image decodes, nothing points off the machine, no console error.
    COMPOSER_UPDATE_SCREENSHOT=1 writes its screenshot to docs/report.png (README shows it)."""
    import os

    from browser import check_page, open_page, screenshot
    from conftest import REPO

    page = s3_job["out"] / "report.html"
    assert "report.html" in s3_job["pulled"]["files"]
    open_page(chromium, page)
    seen = check_page(chromium, page)
    pieces = sorted(p.stem for p in (s3_job["out"] / "samples").glob("*.mid"))
    assert sorted(seen["pieces"]) == pieces
    assert sorted(seen["audio"]) == sorted(p.name for p in (s3_job["out"] / "samples").glob("*.ogg"))
    assert "loss.png" in seen["images"] and "samples/sample-01.png" in seen["images"]
    assert seen["columns"] == ["metric", "training", "held_out", "sampled", "greedy"]
    assert s3_job["result"]["job_id"] in seen["text"] and "Held-out test score" in seen["text"]
    update = os.environ.get("COMPOSER_UPDATE_SCREENSHOT") == "1"
    shot = screenshot(chromium, REPO / "docs" / "report.png" if update else tmp_path / "report.png")
    assert shot.stat().st_size < 400_000


def test_sheet_music_is_real_notation(s3_job):
    from music21 import converter

    samples = s3_job["out"] / "samples"
    score = converter.parse(samples / "sample-01.musicxml")
    assert len(score.parts) == 2 and len(score.recurse().notes) > 20
    assert (samples / "sample-01.svg").read_text().count('class="note"') > 20
    assert (samples / "sample-01.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_generated_midi_has_notes_with_the_paper_timing(s3_job):
    import pretty_midi

    vocab = json.loads((s3_job["out"] / "model" / "composer.json").read_text())["vocab"]
    for path in sorted((s3_job["out"] / "samples").glob("*.mid")):
        notes = fastparse.read_notes(path)
        assert len(notes) > 0
        # One token every half quarter note at 120 bpm: onsets on a 0.25 s grid.
        assert np.allclose(notes.start * 4, np.round(notes.start * 4), atol=1e-6)
        assert len(np.unique(np.round(notes.start * 4))) > 100  # 256 notes, not a handful
        assert len(pretty_midi.PrettyMIDI(str(path)).instruments[0].notes) == len(notes)
        # Every note is one the vocabulary can spell.
        again = fastparse.tokenize([str(path)], vocab=vocab)
        assert again.errors == [] and again.unknown == 0


def test_model_directory_loads_and_predicts(s3_job):
    code = (
        "import sys, numpy as np, tf_keras as k;"
        "m = k.models.load_model(sys.argv[1], compile=False);"
        "y = m.predict(np.zeros((1, 8), 'int32'), verbose=0);"
        "print(y.shape[-1])"
    )
    model = s3_job["out"] / "model" / "model.keras"
    proc = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    vocab = json.loads((s3_job["out"] / "model" / "composer.json").read_text())["vocab"]
    assert int(proc.stdout.strip().splitlines()[-1]) == len(vocab)


def test_generate_locally_is_reproducible(s3_job, tmp_path):
    model = str(s3_job["out"] / "model")
    runs = []
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        proc = run_cli("generate", "--model", model, "--out", str(tmp_path / name), "--samples", "2",
                       "--length", "40", "--seed", seed)
        assert proc.returncode == 0, proc.stderr
        runs.append([p.read_bytes() for p in sorted((tmp_path / name).glob("sample-*.mid"))])
    assert len(runs[0]) == 2
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_the_model_records_what_made_it_and_generate_says_so(s3_job, s3_server, tmp_path, monkeypatch):
    """report.json's provenance equals model/provenance.json and holds what really made the model: this
    installation's versions, the tokenizer's version, the stored dataset's digest, the stored spec, the seed
    and the cluster; `composer generate` prints it first (a model folder without it says so)."""
    import platform
    import shutil
    from importlib import metadata

    from conftest import REPO

    import service
    from service.storage import datasets, jobstate
    from service.storage.store import open_store

    out, job = s3_job["out"], s3_job["result"]["job_id"]
    report = json.loads((out / "report.json").read_text())
    made = json.loads((out / "model" / "provenance.json").read_text())
    assert report["provenance"] == made
    assert made["versions"] == {"python": platform.python_version(), "tensorflow": metadata.version("tensorflow"),
                                "ray": metadata.version("ray"), "numpy": metadata.version("numpy"),
                                "fastparse": fastparse.__version__}
    assert made["tokens_version"] == fastparse.TOKENS_VERSION
    assert made["composer"]["version"] == metadata.version("composer")
    installed = Path(service.__file__).resolve().parent
    if REPO in installed.parents:  # an editable install: the checkout's commit
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert made["composer"]["git_commit"].removesuffix("-dirty") == head.strip()
    else:  # a wheel (CI's `pip install .`): no checkout to ask, and no image said one
        assert made["composer"]["git_commit"] is None
    assert made["image"] == {"tag": None, "digest": None}  # not in an image
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    store = open_store(s3_job["store"])
    spec = jobstate.load_spec(store, job)
    stored = datasets.info(store, spec.dataset)
    assert made["dataset"] == {"name": spec.dataset, "digest": stored.digest, "files": 5} and stored.files == 5
    assert made["spec"] == json.loads(spec.to_json()) and made["seed"] == spec.seed == 0
    assert made["cluster"]["nodes"] == 1 and made["cluster"]["cpus"] >= 2 and made["cluster"]["gpus"] == 0

    proc = run_cli("generate", "--model", str(out / "model"), "--out", str(tmp_path / "g"), "--samples", "1",
                   "--length", "20", "--no-sheet-music", "--no-audio")
    assert proc.returncode == 0, proc.stderr
    first = proc.stdout.splitlines()[0]
    assert first.startswith(f"model: job {job} on dataset {spec.dataset} (digest {stored.digest[:12]}), notes-chords "
                            f"tokens v{fastparse.TOKENS_VERSION}, seed 0; composer {metadata.version('composer')}"
                            ), first
    assert f"TensorFlow {metadata.version('tensorflow')}, Ray {metadata.version('ray')}" in first
    assert first.endswith(f"trained on 1 node(s) with {made['cluster']['cpus']:g} CPUs and 0 GPUs"), first
    older = tmp_path / "older-model"
    shutil.copytree(out / "model", older)
    (older / "provenance.json").unlink()
    proc = run_cli("generate", "--model", str(older), "--out", str(tmp_path / "h"), "--samples", "1",
                   "--length", "20", "--no-sheet-music", "--no-audio")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == (
        "model: made before composer kept a record of what made it (no model/provenance.json)")


def test_generate_greedy_top_k_and_primer(s3_job, five_files, tmp_path):
    model = str(s3_job["out"] / "model")
    vocab = json.loads((s3_job["out"] / "model" / "composer.json").read_text())["vocab"]
    primer = sorted(five_files.glob("*.mid"))[0]
    greedy = []
    for name in ("g1", "g2"):  # argmax from a fixed primer: the seed cannot matter
        proc = run_cli("generate", "--model", model, "--out", str(tmp_path / name), "--samples", "2",
                       "--length", "30", "--greedy", "--primer", str(primer), "--seed", name[-1],
                       "--no-sheet-music")
        assert proc.returncode == 0, proc.stderr
        greedy.append([p.read_bytes() for p in sorted((tmp_path / name).glob("*.mid"))])
    assert greedy[0] == greedy[1] and greedy[0][0] == greedy[0][1]
    proc = run_cli("generate", "--model", model, "--out", str(tmp_path / "p"), "--samples", "2", "--length", "30",
                   "--top-k", "3", "--primer", str(primer))
    assert proc.returncode == 0, proc.stderr
    for path in sorted((tmp_path / "p").glob("sample-*.mid")):
        assert len(fastparse.tokenize([str(path)], vocab=vocab).tokens) > 0
        assert path.with_suffix(".png").is_file() and path.with_suffix(".musicxml").is_file()
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    assert report["settings"]["top_k"] == 3 and report["settings"]["primer"] == str(primer)
    assert report["samples"] == ["sample-01.mid", "sample-02.mid"]
    assert report["quality"]["sampled"]["pieces"] == 2 and report["settings"]["ms_per_step"] > 0
    bad = run_cli("generate", "--model", model, "--out", str(tmp_path / "x"), "--top-p", "2")
    assert bad.returncode == 2 and "--top-p" in bad.stderr
    unkeyed = run_cli("generate", "--model", model, "--out", str(tmp_path / "x"), "--key", "D minor")
    assert unkeyed.returncode == 2 and "--key-conditioning" in unkeyed.stderr
    assert len(unkeyed.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


def test_status_and_list_report_the_job(s3_job):
    job = s3_job["result"]["job_id"]
    status = run_cli("status", job, "--store", s3_job["store"], "--json", env=s3_job["env"])
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["state"] == "SUCCEEDED"
    report = json.loads((s3_job["out"] / "report.json").read_text())
    assert state["test"] == {k: v for k, v in report["test"].items() if k != "files"}
    # Asked without --store (the default store has no such job), the cluster names the job's S3 store: the
    # same record, not an empty "queued" one.
    bare = run_cli("status", job, "--json", env=s3_job["env"])
    assert bare.returncode == 0, bare.stderr
    assert json.loads(bare.stdout) == state
    # What the job trains on and how, as submitted (README: status gives the augmentation as spelled).
    settings = state["settings"]
    assert (settings["dataset"], settings["scheme"], settings["augment"], settings["workers"]) == (
        report["dataset"], report["scheme"], report["augment"]["setting"], report["workers"])
    shown = run_cli("status", job, "--store", s3_job["store"], env=s3_job["env"]).stdout
    assert (f"settings: dataset {report['dataset']}, preset tiny, scheme {report['scheme']}, pedal "
            f"{settings['pedal']}, augment {report['augment']['setting']}, condition none") in shown, shown
    listed = run_cli("list", "--store", s3_job["store"], "--json", env=s3_job["env"])
    row = next(row for row in json.loads(listed.stdout) if row["job_id"] == job)
    assert row["nats_per_second"] == report["test"]["nats_per_second"]
    assert (row["dataset"], row["scheme"], row["phase"]) == (report["dataset"], report["scheme"], "done")
    shown = run_cli("list", "--store", s3_job["store"], env=s3_job["env"])
    header, *lines = shown.stdout.splitlines()
    assert re.split(r"\s{2,}", header) == ["job", "dataset", "scheme", "phase", "epoch", "best val loss",
                                           "test nats/s", "wall", "cost", "message"], shown.stdout
    cells = re.split(r"\s{2,}", next(line for line in lines if line.startswith(job + " ")))
    assert cells[:7] == [job, report["dataset"], report["scheme"], "done", f"{row['epoch']}/{row['epochs']}",
                         f"{report['best_val_loss']:.4f}", f"{report['test']['nats_per_second']:.4f}"], cells
    assert cells[8] == f"${row['cost']:.4f}", cells


def test_the_job_records_its_cost_and_its_curves_for_tensorboard(s3_job):
    """Device-seconds = 2 CPU workers x the train phase's seconds; cost = device-seconds x --price-per-hour
    (0.5 per device-hour), the same in report.json, `status --json` and `list`; the pulled TensorBoard file,
    read by TensorFlow, holds one value per epoch of every curve, equal to metrics.jsonl's rows."""
    from tensorboard_events import curves

    from service.spec import PRESETS

    out, job = s3_job["out"], s3_job["result"]["job_id"]
    report = json.loads((out / "report.json").read_text())
    spent = report["cost"]
    assert spent["device"] == "CPU" and spent["devices"] == 2
    assert spent["device_seconds"] == pytest.approx(2 * report["seconds_per_phase"]["train"], abs=0.1)
    assert spent["cost"] == pytest.approx(spent["device_seconds"] * 0.5 / 3600, abs=1e-4) and spent["cost"] > 0
    assert spent["price_source"] == "--price-per-hour" and "savings" not in spent
    status = json.loads(run_cli("status", job, "--store", s3_job["store"], "--json", env=s3_job["env"]).stdout)
    assert status["cost"]["device_seconds"] == spent["device_seconds"] and status["cost"]["cost"] == spent["cost"]
    shown = run_cli("status", job, "--store", s3_job["store"], env=s3_job["env"]).stdout
    assert f"cost: {spent['device_seconds']:g} CPU-seconds, ${spent['cost']:.4f} at $0.5 per CPU-hour" in shown
    listed = next(r for r in json.loads(run_cli("list", "--store", s3_job["store"], "--json", env=s3_job["env"])
                                        .stdout) if r["job_id"] == job)
    assert listed["cost"] == spent["cost"] and listed["best_val_loss"] == report["best_val_loss"]
    assert listed["device_seconds"] == spent["device_seconds"]

    assert "tensorboard/events.out.tfevents.0.composer" in s3_job["pulled"]["files"]
    found = curves(out / "tensorboard" / "events.out.tfevents.0.composer")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for tag, field in (("loss", "loss"), ("val_loss", "val_loss"), ("epoch_seconds", "seconds"),
                       ("learning_rate", "learning_rate")):
        assert found[tag] == [(r["epoch"], pytest.approx(r[field], rel=1e-6)) for r in rows], tag
    rate = PRESETS["tiny"].get("learning_rate", 1e-3)
    assert all(value == pytest.approx(rate) for _, value in found["learning_rate"])


def test_the_held_out_pieces_are_scored_and_never_trained_on(s3_job, five_files):
    """The job holds out pieces chosen by their files' sha256 (at least one of five), scores them whole,
    and the numbers add up: nats per second is the summed log-loss over the pieces' seconds of music."""
    import hashlib

    from service.model.testsplit import digest_fraction

    report = json.loads((s3_job["out"] / "report.json").read_text())
    test = report["test"]
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in five_files.glob("*.mid")}
    below = sorted(name for name, d in digests.items() if digest_fraction(d) < 0.1)
    expected = below or [min(digests, key=lambda name: digest_fraction(digests[name]))]
    assert sorted(test["files"]) == expected and test["pieces"] == len(expected) and test["share"] == 0.1
    for field in ("nats_per_token", "bits_per_note", "nats_per_second"):
        assert np.isfinite(test[field]) and test[field] > 0, (field, test)
    assert test["nats_per_second"] == pytest.approx(test["nats"] / test["seconds"], rel=1e-4)
    assert test["nats_per_token"] == pytest.approx(test["nats"] / test["tokens"], rel=1e-4)
    assert test["notes"] > 100 and test["seconds"] > 10  # whole pieces, not windows


def test_secrets_never_leave_the_callers_environment(s3_job, s3_server, ray_head):
    """Not in `ray job list`, not in the job's log, not in any object the job stored."""
    secret = s3_server.secret_key
    job = s3_job["result"]["job_id"]
    listing = _ray_job_list(ray_head)
    assert job in listing.stdout
    assert secret not in listing.stdout + listing.stderr
    logs = run_cli("logs", job, env=s3_job["env"])
    assert logs.returncode == 0 and " driver: done: results in " in logs.stdout
    assert secret not in logs.stdout
    import boto3

    client = boto3.client("s3", **{k: v for k, v in {
        "endpoint_url": s3_server.endpoint, "aws_access_key_id": s3_server.access_key,
        "aws_secret_access_key": secret, "region_name": "us-east-1"}.items()})
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_server.bucket, Prefix="e2e/jobs/")["Contents"]]
    assert any(k.endswith("MANIFEST.json") for k in keys)
    for key in keys:
        body = client.get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
        assert secret.encode() not in body, key


def test_the_log_says_when_each_worker_trained_its_first_step(s3_job):
    """The time to training, from the log's timestamps: each worker says when its first step ended,
    after its own start lines and before its first epoch's line."""
    logs = run_cli("logs", s3_job["result"]["job_id"], env=s3_job["env"])
    assert logs.returncode == 0, logs.stderr
    # composer's lines alone, from the store, while the cluster still knows the job: no Ray start-up lines,
    # worker prefixes or colour codes (Ray's log had them all).
    assert all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z (driver|worker-[01]): ", line)
               for line in logs.stdout.splitlines()), logs.stdout[:3000]
    for rank in (0, 1):
        lines = [line for line in logs.stdout.splitlines() if f" worker-{rank}: " in line]
        first = [i for i, line in enumerate(lines) if re.search(r"first training step done, \d+\.\d s after", line)]
        epoch = next(i for i, line in enumerate(lines) if ": epoch 1/" in line)
        assert first and 0 < first[0] < epoch, lines  # once per start of the worker group


def test_logs_ray_is_the_cluster_s_own_log_without_colours_in_a_pipe(s3_job):
    """`--ray`: what the job's process printed as Ray keeps it (its workers' lines under Ray's prefix), with
    the colour codes of Ray's prefixes left out of a pipe."""
    job = s3_job["result"]["job_id"]
    raw = run_cli("logs", job, "--ray", env=s3_job["env"])
    assert raw.returncode == 0, raw.stderr
    assert "(RayTrainWorker pid=" in raw.stdout and "\x1b[" not in raw.stdout, raw.stdout[:3000]
    assert re.search(r"^\S+Z driver: done: results in ", raw.stdout, re.M), raw.stdout[-3000:]


def test_a_stale_last_started_cluster_file_does_not_stall_the_job(s3_job):
    """Ray Train's placement group cleaner asks Ray's state API with no address from the job's actors;
    left to itself that reads the last-started-cluster file, which named a dead head here (s3_job), and
    the job stalled 13 to 14 s after its last epoch. The job's environment names its own head instead,
    so the driver goes on within a few seconds (1 to 7 s in a CI run, the worker group's teardown)."""
    logs = run_cli("logs", s3_job["result"]["job_id"], env=s3_job["env"])
    assert logs.returncode == 0, logs.stderr

    # Lines as composer stamps them, after Ray's "(RayTrainWorker pid=...)" prefix where Ray adds one.
    stamped = [(datetime.datetime.fromisoformat(m[1].replace("Z", "+00:00")), m[2])
               for m in re.finditer(r"(\d{4}-\d\d-\d\dT[\d:.]+Z) ((?:driver|worker-\d+): .*)$", logs.stdout, re.M)]
    last_epoch = max(t for t, text in stamped if re.match(r"worker-\d+: epoch \d+/\d+:", text))
    scoring = next(t for t, text in stamped if text.startswith("driver: scoring the "))
    assert 0 < (scoring - last_epoch).total_seconds() < 10, [text for t, text in stamped if t >= last_epoch]


def test_composer_s_own_head_runs_the_driver_with_the_submitting_python(s3_job, ray_head):
    """The local direction of "local by identity" (the remote one, `python` of the cluster's image, is in
    test_container.py): composer's own head is this machine, so the driver runs in this very Python, told
    its head's GCS (with another head running, Ray's supervisor names the dead one of s3_job's file)."""
    from service.client import cluster

    job = s3_job["result"]["job_id"]
    listing = _ray_job_list(ray_head).stdout
    found = re.search(r"entrypoint='(\S+) -P -m service\.job\.driver --store \S+ --store-timeout 300 "
                      r"--ray-address (\S+) --job " + re.escape(job) + "'", listing)
    assert found, listing[-3000:]
    python = Path(found.group(1))
    assert python.is_absolute() and python.resolve() == Path(sys.executable).resolve(), python
    assert found.group(2) == cluster.own_head_gcs_address() != "127.0.0.1:9"


def _ray_job_list(ray_head: str) -> subprocess.CompletedProcess:
    listing = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "job", "list", "--address", ray_head],
                             capture_output=True, text=True, env={**_ray_env(), "RAY_AUTH_MODE": "token"})
    assert listing.returncode == 0, listing.stderr[-2000:]
    return listing


def _ray_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}


def _readme_demo() -> list[str]:
    """The demo command as README.md gives it (`pip install . && composer submit ...`), after `composer`."""
    import re
    import shlex

    from conftest import REPO

    found = re.search(r"^pip install \. && composer (submit .*)$", (REPO / "README.md").read_text(), re.M)
    assert found, "README.md lost its demo command"
    return shlex.split(found[1])


def test_the_readme_demo_writes_music_with_rhythm_that_a_browser_plays(ray_head, composer_home, request, tmp_path):
    """The README demo, as written there (rhythm-aware remi on the built-in `bach` dataset, the embedded
    local store, composer's own local Ray head): the sampled pieces are closer to the corpus than the
    greedy ones in pitch classes, durations and inter-onset intervals, each uses at least 3 durations,
    and the pulled report.html works in a browser. COMPOSER_UPDATE_SCREENSHOT=1 writes its screenshot
    to docs/report.png, which the README shows. The browser is asked for only after every other check,
    so a machine without one still runs those (then skips; CI fails instead)."""
    import os

    from browser import check_page, open_page, screenshot
    from conftest import REPO
    from music21 import corpus as music21_corpus

    from service.storage import builtin_bach

    store = tmp_path / "store"
    env = {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(store)}
    command = _readme_demo()
    assert command[command.index("--to") + 1] == "demo"
    out = tmp_path / "demo"
    command[command.index("--to") + 1] = str(out)
    proc = run_cli(*command, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"open {out / 'report.html'} to hear and see it" in proc.stdout
    meta = json.loads((store / "datasets" / "bach" / "dataset.json").read_text())
    assert meta["files"] > 300  # the chorales bundled with music21, exported once
    # The export (a minute on 2 cores) says what it does, how far it got, and what it stored.
    driver_log = next(store.glob("jobs/*/logs/driver.log")).read_text()
    chorales = len(builtin_bach.chorale_scores([str(p) for p in music21_corpus.getComposer("bach")]))
    assert f"driver: exporting the {chorales} Bach chorales bundled with music21 to MIDI" in driver_log
    assert re.search(rf"driver: exported {meta['files']} of {chorales} chorales in \d+ s", driver_log), driver_log
    index = json.loads((store / "datasets" / "bach" / "index.json").read_text())
    assert len(index["files"]) == meta["files"]
    first = index["files"][0]
    shard = (store / "datasets" / "bach" / index["shards"][first["shard"]]["key"]).read_bytes()
    assert len(fastparse.read_notes(shard[first["offset"]:first["offset"] + first["size"]])) > 20

    report = json.loads((out / "report.json").read_text())
    assert report["dataset"] == "bach" and report["scheme"] == "remi"
    quality = report["quality"]
    for distance in ("pitch_class_js_distance_to_corpus", "duration_js_distance_to_corpus",
                     "ioi_js_distance_to_corpus"):
        assert quality["sampled"][distance] < quality["greedy"][distance], (distance, quality)
    assert quality["sampled"]["min_distinct_durations"] >= 3, quality["sampled"]
    assert quality["sampled"]["dropped_tokens"] == quality["greedy"]["dropped_tokens"] == 0
    # the held-out test score and the held-out column; the chorales have a meter, measured on their beat
    assert report["test"]["pieces"] >= 20 and np.isfinite(report["test"]["nats_per_second"])
    assert set(quality) == {"training", "held_out", "sampled", "greedy"}
    assert report["meter"] == {"has_meter": True, "reason": ""}
    assert quality["held_out"]["time_unit"] == "quarter" and 0 < quality["held_out"]["groove_consistency"] <= 1
    samples = sorted((out / "samples").glob("sample-*.mid"))
    assert len(samples) == 4
    for midi in samples:  # 256 notes each, and at least 3 distinct durations (in ticks)
        notes = fastparse.read_notes(midi)
        assert len(notes) == 256 and len(np.unique(notes.end_tick - notes.start_tick)) >= 3

    page = out / "report.html"
    chromium = request.getfixturevalue("chromium")
    open_page(chromium, page)
    seen = check_page(chromium, page)
    assert len(seen["audio"]) == len(list((out / "samples").glob("*.ogg"))) >= 4
    update = os.environ.get("COMPOSER_UPDATE_SCREENSHOT") == "1"
    # The README's picture: settings, loss curve, the first pieces.
    shot = screenshot(chromium, REPO / "docs" / "report.png" if update else tmp_path / "report.png", top=2200)
    assert shot.stat().st_size < 250_000


def test_failed_job_exits_1_with_the_reason(ray_head, composer_home, five_files, tmp_path):
    env = {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(tmp_path / "store")}
    proc = run_cli("submit", "--dataset", str(five_files), *TINY, "--seq-len", "50000", "--pedal", "ignore", "--wait",
                   env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "too small for --seq-len 50000" in lines[0], proc.stderr
    job = lines[0].split()[2]
    status = json.loads(run_cli("status", job, "--json", env=env).stdout)
    assert status["state"] == "FAILED" and status["phase"] == "failed"
    assert "too small for --seq-len 50000" in status["error"]
    spec = json.loads((tmp_path / "store" / "jobs" / job / "job.json").read_text())
    assert spec["pedal"] == "ignore"  # --pedal reached the job (tokenized before the windows failed)


def test_cancel_stops_a_running_job(ray_head, composer_home, five_files, tmp_path):
    import time

    env = {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(tmp_path / "store")}
    proc = run_cli("submit", "--dataset", str(five_files), "--preset", "tiny", "--epochs", "500", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    job = json.loads(proc.stdout)["job_id"]
    deadline = time.monotonic() + 120
    while json.loads(run_cli("status", job, "--json", env=env).stdout)["state"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(1)
    cancelled = run_cli("cancel", job, env=env)
    assert cancelled.returncode == 0 and "stopping" in cancelled.stdout
    while (state := json.loads(run_cli("status", job, "--json", env=env).stdout))["state"] == "RUNNING":
        assert time.monotonic() < deadline + 60
        time.sleep(1)
    assert state["state"] == "STOPPED"
    assert not (tmp_path / "store" / "jobs" / job / "MANIFEST.json").exists()
    # Its clock stopped with it: the time in its phase (device-seconds, cost) no longer grows
    recorded = json.loads((tmp_path / "store" / "jobs" / job / "status.json").read_text())
    assert recorded["message"] == "stopped" and recorded["phase_started"] == 0, recorded
    time.sleep(1.5)
    again = json.loads(run_cli("status", job, "--json", env=env).stdout)
    assert again["phase_seconds"] == state["phase_seconds"] and again["cost"] == state["cost"], (state, again)
    listed = {run["job_id"]: run for run in json.loads(run_cli("list", "--json", env=env).stdout)}
    assert listed[job]["wall_seconds"] == round(sum(state["phase_seconds"].values()), 1)


def test_rhythm_aware_key_conditioned_job(ray_head, composer_home, five_files, tmp_path):
    """--key-conditioning: remi+key-estimated tokens with real rhythm (not the paper's even half-quarter
    spacing), samples in their primers' keys, and `generate --key` writes in the key asked for. With
    --condition composer too: the composers of the files trained on are learned, a sample each, and
    `generate --composer` writes as the one asked for."""
    import mido

    from service.music.keys import key_name, key_token, parse_key

    env = {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(tmp_path / "store")}
    out = tmp_path / "out"
    proc = run_cli("submit", "--dataset", str(five_files), *TINY, "--key-conditioning", "--seq-len", "64",
                   "--condition", "composer", "--wait", "--to", str(out), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "model" / "composer.json").read_text())
    assert meta["scheme"] == "remi+key-estimated" and "Bar" in meta["vocab"] and meta["spec"]["key_conditioning"]
    report = json.loads((out / "report.json").read_text())
    assert np.isfinite(report["test"]["nats_per_token"])  # scored with each piece's key
    # GiantMIDI in remi: a transcription on a fixed clock, so no beat-grid measures (the chorales have them)
    assert report["meter"]["has_meter"] is False and "transcription clock" in report["meter"]["reason"]
    assert "groove_consistency" not in report["quality"]["held_out"]
    notes = [fastparse.read_notes(p) for p in sorted((out / "samples").glob("sample-*.mid"))]
    assert sum(len(n) for n in notes) > 0
    durations = np.concatenate([n.end - n.start for n in notes])
    assert len(np.unique(np.round(durations, 3))) > 1
    assert (out / "samples" / "sample-01.png").is_file()

    def signatures(folder: Path) -> list[int]:
        return [next(parse_key(m.key) for m in mido.MidiFile(p).tracks[0] if m.type == "key_signature")
                for p in sorted(folder.glob("sample-*.mid"))]

    report = json.loads((out / "report.json").read_text())
    assert report["key_conditioning"] is True
    assert report["augment"]["transpose_semitones"] == 3  # keys moved with the windows
    assert [key_name(k) for k in signatures(out / "samples")] == report["keys"]
    # The share recomputed from the pulled pieces: their notes whose pitch class is in the scale of the key
    # each was asked for (a share over the wrong keys or pieces fails).
    for column, pattern in (("sampled", "sample-*.mid"), ("greedy", "greedy-*.mid")):
        inside = total = 0
        for path, name in zip(sorted((out / "samples").glob(pattern)), report["keys"], strict=True):
            pitches = fastparse.read_notes(path).pitch
            inside += int(np.isin(pitches % 12, fastparse.key_scale(parse_key(name))).sum())
            total += len(pitches)
        assert total > 0 and report["quality"][column]["in_conditioned_key_share"] == pytest.approx(inside / total)

    known = next(t for t in meta["vocab"] if t.startswith("Key_"))  # a key the model saw
    wanted = key_name(parse_key(known.removeprefix("Key_").replace("_", " ")))  # as reports spell it
    composer = meta["composers"]["names"][-1]  # in any case: --composer DEBUSSY is Debussy
    gen = run_cli("generate", "--model", str(out / "model"), "--out", str(tmp_path / "k"), "--samples", "2",
                  "--length", "60", "--key", wanted.lower(), "--composer", composer.upper(), "--no-sheet-music")
    assert gen.returncode == 0, gen.stderr
    assert signatures(tmp_path / "k") == [parse_key(wanted)] * 2
    generated = json.loads((tmp_path / "k" / "report.json").read_text())
    assert generated["keys"] == [wanted] * 2 and generated["settings"]["key"] == wanted  # as spelled everywhere
    # A primer in a key the model never saw, without --key: one line, exit 2.
    unseen = next(k for k in range(24) if key_token(k) not in meta["vocab"])
    scale = fastparse.key_scale(unseen)
    tonic = [scale[0], scale[2], scale[4]]
    track = mido.MidiTrack()
    for pc in [*scale, *tonic, *tonic, *tonic]:
        track += [mido.Message("note_on", note=60 + pc, velocity=80, time=0),
                  mido.Message("note_off", note=60 + pc, velocity=0, time=240)]
    primer = mido.MidiFile(ticks_per_beat=480)
    primer.tracks.append(track)
    primer.save(tmp_path / "unseen.mid")
    assert fastparse.estimate_key(np.bincount([60 + pc for pc in [*scale, *tonic * 3]], minlength=72)[60:72]) == unseen
    refused = run_cli("generate", "--model", str(out / "model"), "--out", str(tmp_path / "u"), "--primer",
                      str(tmp_path / "unseen.mid"))
    assert refused.returncode == 2 and "a key this model never saw" in refused.stderr, refused.stderr
    for bad_key, message in (("H major", "is not a key"), ("C lydian", "is not a key")):
        bad = run_cli("generate", "--model", str(out / "model"), "--out", str(tmp_path / "b"), "--key", bad_key)
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr
    _composers_learned(meta, report, out, generated, tmp_path)


def _composers_learned(meta: dict, report: dict, out: Path, generated: dict, tmp_path: Path) -> None:
    """--condition composer: five files of five composers (GiantMIDI's names), one held out; the others
    learned, a sample each for the first two (--samples 2), the held-out piece scored as "unknown" (its
    composer has no other piece), and the page and `generate --composer` (`generated`) know them."""
    from service.model.composers import UNKNOWN, composer_of

    held_out = [composer_of(f) for f in report["test"]["files"]]
    learned = sorted({composer_of(f) for f in FIVE_GIANTMIDI} - set(held_out))
    assert meta["spec"]["condition"] == report["condition"] == "composer" and len(learned) == 5 - len(held_out)
    assert meta["composers"]["names"] == [UNKNOWN, *learned]
    assert report["composers"] == [{"composer": c, "pieces": 1} for c in learned]
    assert report["sample_composers"] == learned[:2] and report["test"]["composers"] == [UNKNOWN] * len(held_out)
    page = (out / "report.html").read_text()
    assert "<h2>Composers</h2>" in page and f"composer {learned[0]}</span>" in page
    assert generated["sample_composers"] == [learned[-1]] * 2
    assert generated["settings"]["composer"] == learned[-1]  # as the model knows it, not as typed (upper case)
    refused = run_cli("generate", "--model", str(out / "model"), "--out", str(tmp_path / "n"), "--composer", "Satie")
    assert refused.returncode == 2 and f"it knows {', '.join(learned)}" in refused.stderr, refused.stderr


QUICK = ["--preset", "tiny", "--epochs", "1", "--steps-per-epoch", "2", "--workers", "1", "--samples", "1"]


def test_a_second_job_on_the_same_files_reuses_the_cached_tokens(s3_job, five_files):
    """The same folder again: the staged dataset is found by content and its tokens come from the cache."""
    first = json.loads((s3_job["out"] / "report.json").read_text())["token_cache"]
    assert first["cache"] == "miss" and first["shards_fetched"] == 1 and first["bytes_fetched"] > 0
    again = run_cli("submit", "--dataset", str(five_files), "--store", s3_job["store"], *QUICK, "--instance-type",
                    "m5.2xlarge", "--spot", "--wait", "--json", env=s3_job["env"])
    assert again.returncode == 0, again.stderr[-3000:]
    job = json.loads(again.stdout.strip().splitlines()[-1])
    assert job["state"] == "SUCCEEDED" and job["token_cache"] == "hit"
    status = run_cli("status", job["job_id"], "--store", s3_job["store"], env=s3_job["env"])
    assert "tokens: from the token cache (nothing fetched or tokenized)" in status.stdout
    pulled = run_cli("pull", job["job_id"], "--to", str(s3_job["out"].parent / "again"), "--store", s3_job["store"],
                     env=s3_job["env"])
    assert pulled.returncode == 0, pulled.stderr
    report = json.loads((s3_job["out"].parent / "again" / "report.json").read_text())
    assert report["token_cache"]["cache"] == "hit" and report["token_cache"]["key"] == first["key"]
    first_report = json.loads((s3_job["out"] / "report.json").read_text())
    assert report["token_cache"]["shards_fetched"] == 0 and report["tokens"] == first_report["tokens"]
    # the cached corpus keeps each file's digest: the same pieces are held out in another job
    assert report["test"]["files"] == first_report["test"]["files"]
    # priced from the table: m5.2xlarge spot, per CPU of its 8, with the savings against on-demand
    spent = report["cost"]
    assert spent["price_per_device_hour"] == pytest.approx(0.15 / 8) and spent["spot"] is True
    assert spent["savings"] == pytest.approx(spent["device_seconds"] * (0.384 - 0.15) / 8 / 3600, abs=1e-4)

    # the two runs side by side: exactly the options that differ, and each run's numbers
    compared = run_cli("compare", s3_job["result"]["job_id"], job["job_id"], "--store", s3_job["store"], "--json",
                       env=s3_job["env"])
    assert compared.returncode == 0, compared.stderr
    table = json.loads(compared.stdout)
    assert table["differing"] == ["epochs", "steps-per-epoch", "workers", "price-per-hour", "instance-type", "spot",
                                  "samples"]
    assert [r["job_id"] for r in table["runs"]] == [s3_job["result"]["job_id"], job["job_id"]]
    assert table["runs"][1]["options"] == {"instance-type": "m5.2xlarge", "spot": True, "epochs": 1,
                                           "steps-per-epoch": 2, "workers": 1, "price-per-hour": None, "samples": 1}
    assert table["runs"][0]["best_val_loss"] == first_report["best_val_loss"]
    assert table["runs"][1]["cost"] == spent["cost"] and table["runs"][1]["epoch"] == 1
    shown = run_cli("compare", s3_job["result"]["job_id"], job["job_id"], "--store", s3_job["store"],
                    env=s3_job["env"]).stdout
    assert "steps-per-epoch" in shown.splitlines()[0] and "m5.2xlarge" in shown, shown
    assert "None" not in shown, shown  # an option one run has not set reads -, as the other columns' gaps do


def test_a_dataset_stored_one_object_per_file_still_trains(ray_head, composer_home, shared_midi, tmp_path):
    from service.storage.store import open_store

    store = tmp_path / "store"
    count = legacy_dataset(open_store(str(store)), "old-ff", shared_midi / "final-fantasy")
    env = {"COMPOSER_HOME": str(composer_home), "COMPOSER_STORE": str(store)}
    proc = run_cli("submit", "--dataset", "old-ff", *QUICK, "--wait", "--json", "--to", str(tmp_path / "out"),
                   env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = json.loads(proc.stdout.strip().splitlines()[-1])
    assert job["state"] == "SUCCEEDED" and job["token_cache"] == "off"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["files"] == count and report["pieces"] > 0
    # the per-file layout's pieces are held out by their files' sha256 too (hashed on the head)
    import hashlib

    from service.model.testsplit import digest_fraction

    below = sorted(p.name for p in (shared_midi / "final-fantasy").glob("*.mid")
                   if digest_fraction(hashlib.sha256(p.read_bytes()).hexdigest()) < 0.1)
    assert below and sorted(Path(f).name for f in report["test"]["files"]) == below
    assert len(list((tmp_path / "out" / "samples").glob("sample-*.mid"))) == 1


def test_performance_scheme_job(s3_server, ray_head, composer_home, five_files, tmp_path):
    """--scheme performance, --pedal and --augment through the real CLI, SeaweedFS and the local head:
    pedalled GiantMIDI as note-on/off events, the samples decode strictly with the notes asked for, and
    engrave on their own estimated beat."""
    env = {**s3_server.env(), "COMPOSER_HOME": str(composer_home)}
    out = tmp_path / "out"
    proc = run_cli("submit", "--dataset", str(five_files), "--store", f"s3://{s3_server.bucket}/performance", *TINY,
                   "--scheme", "performance", "--pedal", "apply", "--augment", "transpose,stretch", "--length", "40",
                   "--wait", "--to", str(out), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = json.loads((out / "model" / "composer.json").read_text())
    assert meta["scheme"] == "performance" and meta["spec"]["pedal"] == "apply"
    assert {t.split("_")[0] for t in meta["vocab"]} == {"NoteOn", "NoteOff", "TimeShift", "Velocity"}
    report = json.loads((out / "report.json").read_text())
    assert np.isfinite(report["test"]["nats_per_second"])
    assert report["meter"]["has_meter"] is False  # the performance keeps the transcription's clock
    assert report["augment"] == {"setting": "transpose,stretch", "transpose_semitones": 3, "time_stretch": 0.05}
    assert report["pedal"] == "apply"  # shown on the page beside the augmentation
    for path in sorted((out / "samples").glob("sample-*.mid")):
        notes = fastparse.read_notes(path)
        assert len(notes) == 40 and (notes.end > notes.start).all()
        tokens = fastparse.tokenize([str(path)], scheme="performance", vocab=meta["vocab"])
        assert tokens.unknown == 0  # the sample is a stream of the model's own tokens
    assert (out / "samples" / "sample-01.png").is_file()
