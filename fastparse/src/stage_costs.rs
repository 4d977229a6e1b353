//! What each stage of tokenizing costs, in nanoseconds per note, on the shared corpus
//! (`../shared/midi`): a timing run, not a test (`#[ignore]`), for work on speed:
//!
//! ```text
//! cargo test --release --lib stage_costs -- --ignored --nocapture
//! ```
//!
//! Rows: reading the files; two floors of any parser of these files ([`decode_events`] alone, then
//! with [`pair_events`]); the parser alone (notes sorted by start, the pedal ignored, then
//! applied); each scheme's tokens from bytes in memory (pedal ignored and applied); and the
//! whole of [`crate::tokenize_files`] on one thread (files read, tokens, vocabulary, the id
//! array), the corpus listed 13 times as `benchmarks/tokenize_speed.py` lists it. Each row is the
//! best of 10 runs, the rows taking turns, so that a busy moment of a shared machine does not
//! land on one row. The differences between rows are the stages' costs, but for the
//! `tokenize_files` rows: this test binary runs on the system allocator (only the extension links
//! mimalloc), which makes their cost over the bytes rows about twice the extension's.
//!
//! [`perf_loop`] is the loop to profile one scheme with; [`note_event_branch`] times the parser's
//! one unpredictable branch (note-on or note-off) on this host.

use std::path::PathBuf;
use std::time::Instant;

use crate::corpus::{tokenize_files, Options};
use crate::scheme::Scheme;
use crate::sustain::Sustain;
use crate::testdata::corpus_paths;

#[test]
#[ignore]
fn stage_costs() {
    let paths = corpus_paths();
    let files: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    let notes: usize = files
        .iter()
        .map(|f| crate::notes::parse(f).map(|n| n.len()).unwrap_or(0))
        .sum();
    assert!(notes > 0, "no shared corpus beside the repository");
    // The parser's notes and pedal events, for the pedal pass alone.
    let parsed: Vec<_> = files
        .iter()
        .filter_map(|f| crate::notes::raw_notes(f).ok())
        .collect();
    // Each file's track chunks, for the floors.
    let tracks: Vec<&[u8]> = files
        .iter()
        .flat_map(|f| {
            let header = crate::notes::read_header(f).unwrap();
            let declared = header.declared as usize;
            header.tracks.take(declared).map(|t| t.unwrap().unread())
        })
        .collect();
    let listed: Vec<PathBuf> = paths
        .iter()
        .cycle()
        .take(paths.len() * 13)
        .cloned()
        .collect();
    let schemes = [Scheme::NotesChords, Scheme::Remi, Scheme::Performance];
    type Row<'a> = (String, usize, Box<dyn Fn() + 'a>);
    let mut rows: Vec<Row> = vec![(
        "read the files".into(),
        notes,
        Box::new(|| {
            let mut buffer = Vec::new();
            for p in &paths {
                crate::notes::read_into(p, &mut buffer).unwrap();
                std::hint::black_box(&buffer);
            }
        }),
    )];
    let tracks = &tracks;
    for pair in [false, true] {
        rows.push((
            if pair {
                "floor: decode and pair the note events"
            } else {
                "floor: decode the note events"
            }
            .into(),
            notes,
            Box::new(move || {
                let (mut events, mut paired) = (Vec::new(), Vec::new());
                for t in tracks {
                    events.clear();
                    decode_events(t, &mut events);
                    if pair {
                        paired.clear();
                        pair_events(&events, &mut paired);
                    }
                    std::hint::black_box((&events, &paired));
                }
            }),
        ));
    }
    let files = &files;
    let parsed = &parsed;
    for pass in [false, true] {
        rows.push((
            if pass {
                "the pedal pass (and a copy)"
            } else {
                "a copy of the parser's notes"
            }
            .into(),
            notes,
            // The pedal pass alone, on copies of the parser's notes (less a row that only
            // copies them).
            Box::new(move || {
                let mut copy = Vec::new();
                for (raw, pedal) in parsed {
                    copy.clear();
                    copy.extend_from_slice(raw);
                    if pass {
                        crate::sustain::apply(&mut copy, pedal);
                    }
                    std::hint::black_box(&copy);
                }
            }),
        ));
    }
    for sustain in [Sustain::Ignore, Sustain::Apply] {
        rows.push((
            format!("parse, pedal {}", sustain.name()),
            notes,
            Box::new(move || {
                for f in files {
                    let _ = std::hint::black_box(crate::notes::with_scan(f, sustain, |s| {
                        s.notes.len()
                    }));
                }
            }),
        ));
    }
    for scheme in schemes {
        for sustain in [Sustain::Ignore, Sustain::Apply] {
            rows.push((
                format!("{}, pedal {}", scheme.name(), sustain.name()),
                notes,
                Box::new(move || {
                    for f in files {
                        let _ = std::hint::black_box(scheme.tokenize_bytes_ids(f, sustain));
                    }
                }),
            ));
        }
        let listed = &listed;
        rows.push((
            format!("tokenize_files {}, 1 worker", scheme.name()),
            notes * 13,
            Box::new(move || {
                let options = Options {
                    scheme,
                    workers: Some(1),
                    ..Options::default()
                };
                std::hint::black_box(tokenize_files(listed, &options).unwrap());
            }),
        ));
    }
    let mut best = vec![f64::MAX; rows.len()];
    for _ in 0..10 {
        for (row, (_, count, run)) in rows.iter().enumerate() {
            let start = Instant::now();
            run();
            best[row] = best[row].min(start.elapsed().as_nanos() as f64 / *count as f64);
        }
    }
    println!("{notes} notes in {} files", paths.len());
    for ((name, _, _), ns) in rows.iter().zip(best) {
        println!("{name:40} {ns:6.1} ns/note");
    }
}

/// A floor of any parser of these files: a track's note events decoded (delta times, running
/// status, note-on and note-off, other events skipped by their length) as `tick << 16 | pitch << 8
/// | velocity` (0 for a note-off), with none of the checks, rules or results of the parser. Each
/// event's start depends on the one before it, so this chain is the least a byte-at-a-time
/// decoder pays.
#[inline(never)]
fn decode_events(raw: &[u8], out: &mut Vec<u64>) {
    let (mut p, mut tick, mut running) = (0usize, 0u64, 0u8);
    while p < raw.len() {
        tick += crate::notes::varlen(raw, &mut p) as u64;
        let Some(&b) = raw.get(p) else { break };
        let status = if b < 0x80 {
            running
        } else {
            p += 1;
            b
        };
        match status {
            0x80..=0xEF => {
                running = status;
                let (Some(&pitch), second) = (raw.get(p), raw.get(p + 1).copied().unwrap_or(0))
                else {
                    break;
                };
                // Program change and channel pressure have one data byte.
                p += if matches!(status >> 4, 0xC | 0xD) {
                    1
                } else {
                    2
                };
                if status & 0xE0 == 0x80 {
                    let velocity = if status < 0x90 { 0 } else { second };
                    out.push(tick << 16 | (pitch as u64) << 8 | velocity as u64);
                }
            }
            0xFF | 0xF0 | 0xF7 => {
                p += (status == 0xFF) as usize;
                let len = crate::notes::varlen(raw, &mut p) as usize;
                p += len;
                if status != 0xFF {
                    running = 0;
                }
            }
            _ => break,
        }
    }
}

/// The second floor: [`decode_events`]' events paired into notes `[start << 8 | velocity, end]`
/// with one open note per pitch (no channels, no repeated keys, no dropped notes): the branch on
/// whether an event is a note-on or a note-off, which a performance makes a coin toss.
#[inline(never)]
fn pair_events(events: &[u64], notes: &mut Vec<[u64; 2]>) {
    let mut open = [u32::MAX; 128];
    for &e in events {
        let (pitch, velocity) = ((e >> 8 & 0x7f) as usize, e & 0xff);
        if velocity > 0 {
            open[pitch] = notes.len() as u32;
            notes.push([e >> 16 << 8 | velocity, u64::MAX]);
        } else if let Some(note) = notes.get_mut(open[pitch] as usize) {
            note[1] = e >> 16;
            open[pitch] = u32::MAX;
        }
    }
}

/// One scheme's tokens from bytes in memory (the pedal applied), the shared corpus over and over:
/// a steady loop to profile (`perf record`, `valgrind --tool=cachegrind`) and to time two builds
/// against each other, taking turns. `SCHEME` (default "performance") and `ROUNDS` (default 40)
/// choose; it prints the time of one round.
///
/// ```text
/// SCHEME=remi cargo test --release --lib perf_loop -- --ignored --nocapture
/// ```
#[test]
#[ignore]
fn perf_loop() {
    let scheme: Scheme = std::env::var("SCHEME")
        .as_deref()
        .unwrap_or("performance")
        .parse()
        .unwrap();
    let rounds: u32 = std::env::var("ROUNDS").map_or(40, |r| r.parse().unwrap());
    let files: Vec<Vec<u8>> = corpus_paths()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let start = Instant::now();
    for _ in 0..rounds {
        for f in &files {
            let _ = std::hint::black_box(scheme.tokenize_bytes_ids(f, Sustain::Apply));
        }
    }
    println!("{:?} a round", start.elapsed() / rounds);
}

/// What the parser's branch on whether a note event is a note-on or a note-off costs on this host:
/// a loop that takes that branch for every note event of the shared GiantMIDI files (in file
/// order, as the parser does), against the same loop on a sequence where on and off take turns
/// (which a branch predictor follows). The difference is the mispredictions' cost per event. (It
/// relies on the compiler keeping `run`'s `if` a branch, as rustc 1.95 does; were it made selects,
/// both rows would take the same time.)
///
/// ```text
/// cargo test --release --lib note_event_branch -- --ignored --nocapture
/// ```
#[test]
#[ignore]
fn note_event_branch() {
    use midly::{MidiMessage, Smf, TrackEventKind};
    let mut is_on: Vec<bool> = Vec::new();
    for path in corpus_paths() {
        if !path.to_string_lossy().contains("giantmidi") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let smf = Smf::parse(&bytes).unwrap();
        for event in smf.tracks.iter().flatten() {
            match event.kind {
                TrackEventKind::Midi {
                    message: MidiMessage::NoteOn { vel, .. },
                    ..
                } => is_on.push(vel > 0),
                TrackEventKind::Midi {
                    message: MidiMessage::NoteOff { .. },
                    ..
                } => is_on.push(false),
                _ => {}
            }
        }
    }
    assert!(
        !is_on.is_empty(),
        "no shared GiantMIDI files beside the repository"
    );
    let turns: Vec<bool> = (0..is_on.len()).map(|i| i % 2 == 0).collect();
    // The branch guards work of the parser's kind: a key table written on a note-on, read and
    // cleared on a note-off (keys spread over the table, as a piece's are).
    #[inline(never)]
    fn run(is_on: &[bool]) -> u64 {
        let mut table = [0u32; 128];
        let (mut notes, mut sum) = (0u32, 0u64);
        for (i, &on) in is_on.iter().enumerate() {
            let key = i * 37 % 128;
            if on {
                table[key] = notes;
                notes += 1;
            } else {
                sum += table[key] as u64;
                table[key] = 0;
            }
        }
        sum + notes as u64
    }
    let mut best = [f64::MAX; 2];
    for _ in 0..10 {
        for (b, events) in best.iter_mut().zip([&is_on, &turns]) {
            let start = Instant::now();
            std::hint::black_box(run(std::hint::black_box(events)));
            *b = b.min(start.elapsed().as_nanos() as f64 / events.len() as f64);
        }
    }
    println!(
        "{} note events: {:.2} ns an event in file order, {:.2} taking turns",
        is_on.len(),
        best[0],
        best[1]
    );
}
