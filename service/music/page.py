"""One self-contained HTML page per results folder, opened from disk: report.html.

    from service.music.page import write_page
    page = write_page(Path("results"))   # results/report.html, plus a piano-roll PNG per piece

It reads report.json and the files beside it, in either layout: a pulled job (samples/, loss.png,
report.json with training settings) or `composer generate`'s output (the pieces directly in the
folder, report.json with "settings", the job's loss.png copied from its model folder). Both have the
training, held-out, sampled and greedy quality sections (music/evaluation.py; a model pulled before
jobs kept their reference gives `composer generate` no training section, and no loss curve). Shown:
the title, the settings, the held-out test score, the composers a composer-conditioned model learned
(with the samples written in each one's style), the loss curve, each piece (samples first, then
greedy) with its audio, engraved score, piano roll and MIDI link (and its key and composer when the
model was conditioned on them), and the quality table with a paragraph on its meaning.

The page has no JavaScript and no external URL: everything is referenced by a relative path, so it
works offline, from a copied folder, and from a file:// URL. Every text from report.json is escaped.
The piano rolls are drawn here (matplotlib's Agg canvas, no pyplot: no global backend switch in
the caller's process) as PIECE.roll.png beside each MIDI file; the engraving keeps PIECE.png.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["write_page"]

PAGE = "report.html"
QUALITY_SECTIONS = ("training", "held_out", "sampled", "greedy")
# report.json sorts its keys; the table reads better grouped: against the held-out set first, then size,
# repetition, pitch, rhythm, texture, key.
METRIC_ORDER = ("overlap_mean", "kl_mean", "pieces", "tokens_per_piece", "distinct_4gram_ratio",
                "longest_loop_tokens", "longest_loop_period",
                "mean_longest_loop_tokens", "pitch_class_entropy_bits", "pitch_class_js_distance_to_corpus",
                "duration_js_distance_to_corpus", "ioi_js_distance_to_corpus", "onsets_on_beat_share",
                "min_distinct_durations", "dropped_tokens", "notes_per_bar", "notes_per_onset", "polyphony",
                "in_key_share", "in_conditioned_key_share", "key_of_all", "pitch_range", "scale_consistency",
                "duration_median", "duration_mean", "median_duration", "ioi_median", "ioi_mean", "median_ioi",
                "time_unit", "empty_beat_rate", "groove_consistency")
# Training settings in reading order, with their labels; absent ones are skipped.
TRAINING = (("model_job_id", "trained by job"), ("preset", "preset"), ("scheme", "token scheme"),
            ("pedal", "sustain pedal"), ("augment", "augmentation"), ("files", "MIDI files"), ("pieces", "pieces"),
            ("tokens", "tokens"), ("vocab_size", "vocabulary"), ("epochs_run", "epochs run"),
            ("best_epoch", "best epoch"), ("best_val_loss", "best validation loss"), ("workers", "workers"),
            ("key_conditioning", "key conditioning"), ("condition", "conditioned on"),
            ("training_device", "training device"))
# Sampling keys shown first (the rest follow in the report's order); "greedy" repeats "method".
SAMPLING_FIRST = ("method", "temperature", "top_k", "top_p", "notes", "seed", "primer", "key", "composer", "model")
SAMPLING_HIDDEN = {"greedy"}
# Greedy decoding takes the likeliest token: these settings do not apply to it (report.json keeps them).
GREEDY_HIDDEN = {"temperature", "top_k", "top_p"}

QUALITY_NOTE = (
    "Each column describes a set of pieces as long in notes as the job's samples: <b>training</b> is excerpts "
    "of the training pieces, <b>held_out</b> excerpts of the held-out test pieces, music of the same corpus the "
    "model never saw (both kept with the model); <b>sampled</b> the pieces above, drawn with the sampling "
    "settings; <b>greedy</b> the paper's argmax decoding from the same primers. "
    "<code>overlap_mean</code> and <code>kl_mean</code> compare a set with the held-out set by mgeval's "
    "protocol (Yang and Lerch 2020): per feature (pitch-class histogram and entropy, pitch range, polyphony, "
    "scale consistency, note-length histogram, mean inter-onset interval, and with a meter the empty-beat "
    "rate and groove consistency) the overlapping area (1: the same) and the KL divergence (0: the same) of "
    "the distances between the set's pieces and the held-out pieces against the distances among the "
    "held-out pieces; the held_out column's are the training excerpts' compared with the held-out set in the "
    "same way: what real music of the corpus scores. <code>pitch_range</code>, <code>polyphony</code> "
    "(pitches sounding together, when any sounds), <code>scale_consistency</code>, <code>pitch_class_entropy</code>, "
    "<code>empty_beat_rate</code> and <code>groove_consistency</code> are MusPy's (muspy.metrics), means over "
    "the pieces; <code>duration_*</code> and <code>ioi_*</code> are the notes' sounding durations and the "
    "intervals between onsets, in <code>time_unit</code>, over every note of the set pooled (long pieces "
    "weigh more); <code>median_duration</code> and <code>median_ioi</code> are each piece's median, averaged "
    "over the pieces. "
    "<code>distinct_4gram_ratio</code> is the share of a piece's token 4-grams that are distinct (1: it never "
    "repeats itself); <code>longest_loop_tokens</code> is the longest stretch of tokens, in the worst piece, "
    "that is one pattern repeated back to back (<code>longest_loop_period</code>: that pattern's length; "
    "<code>mean_longest_loop_tokens</code>: the mean over pieces). A low ratio with long loops is the "
    "paper's failure: music stuck in a loop. <code>pitch_class_entropy_bits</code> is the entropy of the "
    "pitch classes of all the pieces' notes together (at most 3.58 bits: all twelve equally often), and "
    "<code>pitch_class_js_distance_to_corpus</code> the Jensen-Shannon distance between that distribution "
    "and the corpus's (0: the same, 1: disjoint; lower is closer; 0 in the corpus column, which is the "
    "reference). <code>duration_js_distance_to_corpus</code> and <code>ioi_js_distance_to_corpus</code> are "
    "the same distance for the rhythm: the distributions of note durations and of the time between "
    "onsets, in note values from a 32nd to two whole notes; <code>onsets_on_beat_share</code> is the "
    "share of onsets on a quarter-note beat and <code>min_distinct_durations</code> the number of "
    "different note lengths in the least varied piece (the paper's model wrote every note the same). "
    "<code>dropped_tokens</code> counts tokens a decoder would have to skip (composer's grammar keeps it "
    "at 0). "
    "<code>notes_per_bar</code> counts notes per 4/4 bar, <code>notes_per_onset</code> notes per distinct "
    "onset, <code>in_key_share</code> the share of notes in "
    "the key estimated from the piece's own notes "
    "(Krumhansl-Schmuckler profiles), <code>in_conditioned_key_share</code> the share in the key the piece "
    "was asked for (key-conditioned models): means over the pieces. <code>key_of_all</code> is the key "
    "estimated from all notes together. The distances <code>*_to_corpus</code> are to the training "
    "excerpts. Read the sampled and greedy columns against the held_out column: the closer, the more the "
    "pieces resemble music of the corpus the model never saw."
)
NO_CORPUS_NOTE = (
    "There is no training column here, and no distance to the corpus: the model comes from a job that did not "
    "keep its corpus reference in its model folder (<code>reference.json</code>); that job's own report.html "
    "has its corpus column."
)
NO_HELD_OUT_NOTE = (
    "There is no held_out column and no comparison with held-out music: the job held no pieces out "
    "(<code>--test-share 0</code>, or a job from before the held-out split)."
)

CSS = """
:root { color-scheme: light; --ink: #1d232a; --muted: #5d6b78; --line: #dde3e8; --accent: #2f5f8a; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f7f9; color: var(--ink);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1080px; margin: 0 auto; padding: 24px 28px 48px; }
h1 { font-size: 1.6rem; margin: 0 0 2px; }
h2 { font-size: 1.2rem; margin: 32px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 1.05rem; margin: 0; }
.sub, .muted { color: var(--muted); }
a { color: var(--accent); }
code { font: 0.85em/1.4 ui-monospace, "DejaVu Sans Mono", monospace; background: #eceff3; padding: 0 3px;
       border-radius: 3px; }
.settings { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 16px; }
table { border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { padding: 4px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { font-weight: 600; } caption { text-align: left; font-weight: 600; padding: 0 0 4px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.piece { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 14px 16px; margin: 14px 0; }
.piece header { display: flex; gap: 14px; align-items: baseline; flex-wrap: wrap; margin-bottom: 8px; }
.piece audio { width: 100%; max-width: 520px; display: block; margin: 6px 0; }
img { max-width: 100%; height: auto; display: block; }
.roll { margin: 8px 0; }
.score { margin: 8px 0; border: 1px solid var(--line); background: #fff; max-width: min(860px, 100%);
         box-sizing: border-box; }
.quality td:first-child { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.9em; }
.note { max-width: 80ch; }
"""


def write_page(folder: Path) -> Path:
    """Writes folder/report.html (and a piano roll per piece beside its MIDI file); returns the page's path."""
    folder = Path(folder)
    report = _read_report(folder / "report.json")
    pieces_dir = folder / "samples" if (folder / "samples").is_dir() else folder
    keys = dict(zip(report.get("samples") or [], report.get("keys") or [], strict=False))
    # A greedy piece shares its sample's primer and composer (greedy-01 with sample-01).
    composers = {name: who for names in (report.get("samples"), report.get("greedy_samples"))
                 for name, who in zip(names or [], report.get("sample_composers") or [], strict=False)}

    body = [_title(report, folder), _settings(report), _test(report), _composers(report)]
    if (folder / "loss.png").is_file():
        body.append('<h2>Loss</h2>\n<img src="loss.png" alt="training and validation loss per epoch">')
    # The pieces report.json names (a folder written to again may hold older ones), else what is there.
    listed = [*(report.get("samples") or []), *(report.get("greedy_samples") or [])]
    # `composer generate` ("settings") writes them into the folder itself, which may be a pulled job's.
    places = [folder, folder / "samples"] if "settings" in report else [pieces_dir]
    midis = ([found for name in listed if (found := next((d / name for d in places if (d / name).is_file()), None))]
             if listed else sorted(pieces_dir.glob("sample-*.mid")) + sorted(pieces_dir.glob("greedy-*.mid")))
    if midis:
        body.append("<h2>Pieces</h2>")
        body.extend(_piece(midi, "" if midi.parent == folder else "samples/", keys.get(midi.name),
                           composers.get(midi.name)) for midi in midis)
    body.append(_quality(report.get("quality"), report.get("meter")))
    links = [name for name in ("report.json", "metrics.jsonl") if (folder / name).is_file()]
    if links:
        body.append('<p class="muted">Files: ' + ", ".join(f'<a href="{_url(n)}">{_esc(n)}</a>' for n in links)
                    + "</p>")

    page = folder / PAGE
    title = _esc(_heading(report, folder))
    page.write_text(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        # An empty data: icon, so the browser asks for no favicon.ico beside the page.
        f"<link rel=\"icon\" href=\"data:,\">\n<title>{title}</title>\n<style>{CSS}</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(part for part in body if part) + "\n</main>\n</body>\n</html>\n",
        encoding="utf-8",
    )
    return page


def _read_report(path: Path) -> dict[str, Any]:
    # A folder without a (readable) report still gets a page of its pieces.
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return report if isinstance(report, dict) else {}


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _url(relative: str) -> str:
    """A relative URL for a file name (escaped for an attribute)."""
    return _esc(quote(relative))


def _heading(report: dict[str, Any], folder: Path) -> str:
    if report.get("job_id"):
        return f"composer job {report['job_id']}"
    return f"composer samples: {folder.resolve().name}"


def _title(report: dict[str, Any], folder: Path) -> str:
    sub = []
    if report.get("dataset"):
        sub.append(f"dataset <b>{_esc(report['dataset'])}</b>")
    model = (report.get("settings") or {}).get("model") if isinstance(report.get("settings"), dict) else None
    if model:
        sub.append(f"model <code>{_esc(model)}</code>")
    line = f'<p class="sub">{" · ".join(sub)}</p>' if sub else ""
    return f"<header>\n<h1>{_esc(_heading(report, folder))}</h1>\n{line}\n</header>"


def _fmt(value: Any) -> str | None:
    """A setting or metric as text; None for what a cell cannot show (nested structures, missing values)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, int | float) and not isinstance(v, bool)
                                                 for v in value):
        return f"mean {sum(value) / len(value):.4g} of {len(value)}"  # per-piece lists: their mean
    return None


def _device(value: Any) -> str | None:
    """training_device ({"device", "mixed_precision", "xla", ...}) as one line."""
    if not isinstance(value, dict):
        return _fmt(value)
    extras = [name for name, key in (("mixed precision", "mixed_precision"), ("XLA", "xla")) if value.get(key)]
    return ", ".join([str(value.get("device", "?")), *extras])


def _augmentation(value: Any) -> str | None:
    """report.json's `augment` (what the training windows got) as one cell."""
    from service.music.transpose import augmentation_in_words

    if not isinstance(value, dict):
        return None
    done = augmentation_in_words(value.get("transpose_semitones") or 0, value.get("time_stretch") or 0.0)
    # What was asked and not done (a time stretch of a scheme without time shifts) says why beside it.
    return f"{done} ({value['note']})" if value.get("note") else done


def _table(caption: str, rows: list[tuple[str, str]]) -> str:
    cells = "\n".join(f"<tr><th>{_esc(label)}</th><td>{_esc(text)}</td></tr>" for label, text in rows)
    return f"<table>\n<caption>{_esc(caption)}</caption>\n{cells}\n</table>"


def _settings(report: dict[str, Any]) -> str:
    training = []
    for key, label in TRAINING:
        shown = {"training_device": _device, "augment": _augmentation}.get(key, _fmt)
        text = shown(report.get(key))
        if text is not None:
            training.append((label, text))
    # A job's report has "sampling"; `composer generate`'s has "settings".
    sampling_raw = report.get("sampling") if isinstance(report.get("sampling"), dict) else report.get("settings")
    sampling_raw = sampling_raw if isinstance(sampling_raw, dict) else {}
    order = [k for k in SAMPLING_FIRST if k in sampling_raw] + [k for k in sampling_raw if k not in SAMPLING_FIRST]
    hidden = SAMPLING_HIDDEN | (GREEDY_HIDDEN if sampling_raw.get("method") == "greedy" else set())
    sampling = [(k.replace("_", " "), text) for k in order
                if k not in hidden and (text := _fmt(sampling_raw[k])) is not None]
    tables = [_table(caption, rows) for caption, rows in (("Training", training), ("Sampling", sampling)) if rows]
    if not tables:
        return ""
    return "<h2>Settings</h2>\n<div class=\"settings\">\n" + "\n".join(tables) + "\n</div>"


TEST_ROWS = (("nats_per_second", "nats per second of music"), ("bits_per_note", "bits per note"),
             ("nats_per_token", "nats per token"), ("pieces", "held-out pieces"), ("tokens", "tokens"),
             ("notes", "notes"), ("seconds", "seconds of music"), ("scoring_seconds", "seconds to score"))


def _test(report: dict[str, Any]) -> str:
    """The held-out test score (report.json -> test), or why there is none."""
    test = report.get("test")
    if not isinstance(test, dict):
        note = report.get("test_note")
        return f'<h2>Held-out test score</h2>\n<p class="note">{_esc(note)}</p>' if note else ""
    rows = [(label, text) for key, label in TEST_ROWS if (text := _fmt(test.get(key))) is not None]
    return ("<h2>Held-out test score</h2>\n" + _table("negative log-likelihood of the held-out pieces", rows)
            + '\n<p class="note">The best weights score every held-out piece whole (its first token unscored); '
            "lower is better. Bits per note and nats per second compare jobs, presets and schemes on the same "
            "held-out pieces; nats per token compare with published numbers of the same scheme.</p>")


def _composers(report: dict[str, Any]) -> str:
    """A composer-conditioned model's composers (report.json -> composers), each with its training pieces
    and the samples written in its style (-> sample_composers)."""
    learned = report.get("composers")
    if not isinstance(learned, list) or not learned:
        return ""
    named = [c for c in learned if isinstance(c, dict) and c.get("composer") != "unknown"]
    written: dict[str, list[str]] = {}
    for name, who in zip(report.get("samples") or [], report.get("sample_composers") or [], strict=False):
        written.setdefault(str(who), []).append(Path(str(name)).stem)
    rows = "\n".join(
        f"<tr><td>{_esc(c.get('composer'))}</td><td class=\"num\">{_esc(c.get('pieces'))}</td>"
        f"<td>{_esc(', '.join(written.get(str(c.get('composer')), [])) or '–')}</td></tr>"
        for c in learned if isinstance(c, dict))
    return ("<h2>Composers</h2>\n<table>\n<thead><tr><th scope=\"col\">composer</th>"
            "<th class=\"num\" scope=\"col\">training pieces</th><th scope=\"col\">samples</th></tr></thead>\n"
            f"<tbody>\n{rows}\n</tbody>\n</table>\n"
            f'<p class="note">The model learned {len(named)} composers from its training pieces\' file names '
            "(<code>--condition composer</code>"
            f"{'; unknown: the pieces whose names gave none' if len(named) < len(learned) else ''}"
            "): each sample is written with one of them as its composer, and "
            "<code>composer generate --composer NAME</code> asks for one.</p>")


def _piece(midi: Path, prefix: str, key: Any, composer: Any = None) -> str:
    stem = midi.stem
    parts = [f"<section class=\"piece\" id=\"{_esc(stem)}\">\n<header><h3>{_esc(stem)}</h3>"]
    if stem.startswith("greedy-"):
        parts.append('<span class="muted">greedy (argmax)</span>')
    if key:
        parts.append(f'<span class="muted">key {_esc(key)}</span>')
    if composer:
        parts.append(f'<span class="muted">composer {_esc(composer)}</span>')
    links = [f'<a href="{_url(prefix + midi.name)}">MIDI</a>']
    if midi.with_suffix(".musicxml").is_file():
        links.append(f'<a href="{_url(prefix + stem + ".musicxml")}">MusicXML</a>')
    parts.append(f"<span>{' · '.join(links)}</span></header>")
    if midi.with_suffix(".ogg").is_file():
        parts.append(f'<audio controls preload="metadata"><source src="{_url(prefix + stem + ".ogg")}" '
                     'type="audio/ogg">Your browser cannot play OGG Vorbis.</audio>')
    roll = _piano_roll(midi)
    if roll is not None:
        parts.append(f'<img class="roll" src="{_url(prefix + roll.name)}" alt="piano roll of {_esc(stem)}">')
    score = next((p for p in (midi.with_suffix(".png"), midi.with_suffix(".svg")) if p.is_file()), None)
    if score is not None:
        parts.append(f'<img class="score" src="{_url(prefix + score.name)}" '
                     f'alt="score of {_esc(stem)}, first page">')
    return "\n".join(parts) + "\n</section>"


def _quality(quality: Any, meter: Any = None) -> str:
    """The quality table: a row per metric, a column per section present (training, held_out, sampled,
    greedy); `meter` (report.json's) says why beat-grid measures are missing."""
    if not isinstance(quality, dict):
        return ""
    sections = [s for s in QUALITY_SECTIONS if isinstance(quality.get(s), dict)]
    sections += [s for s, v in quality.items() if s not in sections and isinstance(v, dict)]  # future sections
    metrics = dict.fromkeys(m for m in METRIC_ORDER if any(m in quality[s] for s in sections))
    for section in sections:  # metrics this page does not know yet: after the known ones
        metrics.update(dict.fromkeys(quality[section]))
    rows = []
    for metric in metrics:
        texts = [_fmt(quality[s].get(metric)) for s in sections]
        if all(t is None for t in texts):
            continue  # nested structures only: nothing a cell can show
        cells = "".join(f'<td class="num">{_esc(t) if t is not None else "–"}</td>' for t in texts)
        rows.append(f"<tr><td>{_esc(metric)}</td>{cells}</tr>")
    if not rows:
        return ""
    head = "".join(f'<th class="num" scope="col">{_esc(s)}</th>' for s in sections)
    note = QUALITY_NOTE if "training" in sections else f"{QUALITY_NOTE} {NO_CORPUS_NOTE}"
    if "held_out" not in sections:
        note += f" {NO_HELD_OUT_NOTE}"
    if isinstance(meter, dict) and meter.get("has_meter") is False:
        note += f" Measures on a beat grid are left out: {_esc(meter.get('reason') or 'no meter')}."
    note += _length_note(quality)
    return (f'<h2>Quality</h2>\n<table class="quality">\n<thead><tr><th scope="col">metric</th>{head}</tr></thead>\n'
            "<tbody>\n" + "\n".join(rows) + f'\n</tbody>\n</table>\n<p class="note">{note}</p>')


def _length_note(quality: dict) -> str:
    """A warning when the pieces are much longer or shorter than the corpus excerpts (a `composer
    generate --length` other than the job's): the repetition measures depend on length, the
    distributions compared by the distances do not."""
    corpus, sampled = quality.get("training"), quality.get("sampled")
    if not isinstance(corpus, dict) or not isinstance(sampled, dict):
        return ""
    excerpt, pieces = corpus.get("tokens_per_piece"), sampled.get("tokens_per_piece")
    if not isinstance(excerpt, int | float) or not isinstance(pieces, int | float) or excerpt <= 0:
        return ""
    if abs(pieces - excerpt) <= 0.25 * excerpt:
        return ""
    return (f" These pieces are about {pieces:.0f} tokens long and the corpus excerpts {excerpt:.0f}: read "
            "<code>distinct_4gram_ratio</code>, the loop measures, <code>overlap_mean</code> and <code>kl_mean</code> "
            "with that in mind (they depend on length: pitch range, groove, a piece's histograms); the "
            "Jensen-Shannon distances compare pooled distributions and depend on it less.")


def _piano_roll(midi: Path) -> Path | None:
    """PIECE.roll.png beside the MIDI file: a bar per note, time (s) across, pitch up, shade by velocity.
    None for a file fastparse cannot read (the rest of the page still shows)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PolyCollection
    from matplotlib.figure import Figure

    import fastparse

    try:
        notes = fastparse.read_notes(midi)
    except (ValueError, OSError):
        return None
    keep = ~np.asarray(notes.is_drum, dtype=bool)  # drums have no pitch to draw
    pitch, start, end = notes.pitch[keep], notes.start[keep], notes.end[keep]
    velocity = notes.velocity[keep]

    fig = Figure(figsize=(9, 2.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if len(pitch):
        # One polygon collection, not a patch per note: quick for the thousands of notes of a long piece.
        lo, hi = pitch - 0.4, pitch + 0.4
        boxes = np.stack([np.stack([start, lo], 1), np.stack([end, lo], 1),
                          np.stack([end, hi], 1), np.stack([start, hi], 1)], 1)
        ax.add_collection(PolyCollection(boxes, array=velocity.astype(float), cmap="Blues", clim=(-40, 127),
                                         edgecolors="none"))
        ax.set_xlim(0, max(float(end.max()), 1e-3))
        ax.set_ylim(int(pitch.min()) - 2, int(pitch.max()) + 2)
        cs = range((int(pitch.min()) - 2) // 12 * 12 + 12, int(pitch.max()) + 3, 12)
        ax.set_yticks(list(cs), [f"C{c // 12 - 1}" for c in cs])
    else:
        ax.text(0.5, 0.5, "no notes", ha="center", va="center", transform=ax.transAxes)
        ax.set_yticks([])
    ax.set_facecolor("#f4f6f8")
    ax.grid(axis="y", color="#d0d6dc", linewidth=0.6)
    ax.set_xlabel("seconds", fontsize=8)
    ax.tick_params(labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout(pad=0.4)
    out = midi.with_name(midi.stem + ".roll.png")
    fig.savefig(out)
    return out
