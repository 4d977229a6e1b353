//! The previous implementation of [`crate::notes::parse`], over midly's event iterator: the
//! oracle that `notes::parse` must equal (differential tests, the fuzz targets in `fuzz/`). Built
//! in tests and with the `reference` feature only.
//!
//! What an oracle must do on its own is kept apart on purpose: decoding the events (midly's
//! iterator here, a hand-written loop over the bytes in `notes`), pairing note-ons with note-offs
//! (one list of open notes per key here, slots filled at the note-off there) and putting the notes
//! in order (one full sort by time here, a sort by tick with chords and float ties fixed up
//! there). What the two would only write twice is shared with `notes`: reading the header and
//! the chunk layout (both do it with midly), the definition of the order of notes with equal
//! start times, and turning sorted notes and pedal events into arrays.

use midly::{MetaMessage, MidiMessage, TrackEventKind};

use crate::error::{Error, Result};
use crate::notes::{cmp_after_start, first_line, note_arrays, read_header, Header, Notes, RawNote};
use crate::tempo::TempoMap;

/// Parses MIDI file bytes with midly's event iterator (the implementation before the
/// hand-written event loop).
pub fn parse(bytes: &[u8]) -> Result<Notes> {
    let Header {
        resolution,
        declared,
        tracks,
    } = read_header(bytes)?;

    let mut tempos: Vec<(u64, u32)> = Vec::new();
    let mut raw: Vec<RawNote> = Vec::new();
    // (tick, value, channel, track)
    let mut pedal: Vec<(u64, u8, u8, u32)> = Vec::new();
    // Open notes per (channel, pitch): (start tick, velocity), in arrival order.
    let mut open: Vec<Vec<(u64, u8)>> = vec![Vec::new(); 16 * 128];

    for (track_idx, track) in tracks.take(declared as usize).enumerate() {
        let track_idx = track_idx as u32;
        let mut events = track.map_err(|e| Error::Malformed(first_line(e)))?;
        for list in open.iter_mut() {
            list.clear();
        }
        let mut program = [0u8; 16];
        let mut tick = 0u64;
        let mut channel_status: Option<u8> = None;
        let mut seen_end = false;
        loop {
            let before = events.unread();
            if before.is_empty() {
                break;
            }
            let Some(event) = events.next() else {
                if seen_end {
                    break; // junk after end-of-track: ignore
                }
                let offset = before.as_ptr() as usize - bytes.as_ptr() as usize;
                return Err(Error::Malformed(format!(
                    "undecodable event in track {track_idx} at byte {offset}"
                )));
            };
            let event = event.map_err(|e| Error::Malformed(first_line(e)))?;
            tick += event.delta.as_int() as u64;
            match event.kind {
                TrackEventKind::Midi { channel, message } => {
                    let ch = channel.as_int();
                    channel_status = events.running_status();
                    match message {
                        MidiMessage::ProgramChange { program: p } => {
                            program[ch as usize] = p.as_int()
                        }
                        MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => {
                            open[ch as usize * 128 + key.as_int() as usize]
                                .push((tick, vel.as_int()));
                        }
                        MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                            let list = &mut open[ch as usize * 128 + key.as_int() as usize];
                            if list.is_empty() {
                                continue;
                            }
                            let mut closed = 0usize;
                            for &(start, velocity) in list.iter() {
                                if start != tick {
                                    closed += 1;
                                    raw.push(RawNote {
                                        start_tick: start,
                                        end_tick: tick,
                                        pitch: key.as_int(),
                                        velocity,
                                        track: track_idx,
                                        channel: ch,
                                        program: program[ch as usize],
                                        // The pedal is not applied to this parser's notes.
                                        pedal_at_start: 0,
                                        pedal_at_end: 0,
                                    });
                                }
                            }
                            let kept = list.len() - closed;
                            if closed > 0 && kept > 0 {
                                list.retain(|&(start, _)| start == tick);
                            } else {
                                list.clear();
                            }
                        }
                        MidiMessage::Controller { controller, value }
                            if controller.as_int() == 64 =>
                        {
                            pedal.push((tick, value.as_int(), ch, track_idx));
                        }
                        _ => {}
                    }
                }
                TrackEventKind::Meta(meta) => {
                    // mido: meta events leave running status alone.
                    *events.running_status_mut() = channel_status;
                    match meta {
                        MetaMessage::Tempo(t) if track_idx == 0 => tempos.push((tick, t.as_int())),
                        MetaMessage::EndOfTrack => seen_end = true,
                        _ => {}
                    }
                }
                TrackEventKind::SysEx(_) | TrackEventKind::Escape(_) => channel_status = None,
            }
        }
    }

    let tempo = TempoMap::new(&tempos, resolution)?;
    // One full sort by (start time, the rest of the order): the straightforward way that the fast
    // parser's sort by tick, with chords and equal float times fixed up, must agree with.
    let mut rows: Vec<(f64, RawNote)> = raw
        .into_iter()
        .map(|n| (tempo.seconds(n.start_tick), n))
        .collect();
    rows.sort_by(|(sa, a), (sb, b)| sa.total_cmp(sb).then(cmp_after_start(a, b)));
    let (start, sorted): (Vec<f64>, Vec<RawNote>) = rows.into_iter().unzip();
    Ok(note_arrays(resolution, &sorted, start, &mut pedal, &tempo))
}

// The differential tests live here, not in `notes`: `notes` never names this module, so the two
// import each other in no build.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes;
    use crate::testdata::{corpus, equal_float_times_file, fuzz_regressions, mutate, on, smf, Rng};

    #[test]
    fn equals_the_midly_reference_on_the_corpus_and_mutations() {
        let files = corpus();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for (i, file) in files.iter().enumerate() {
            assert_eq!(notes::parse(file), parse(file), "file {i}");
            for _ in 0..20 {
                let m = mutate(&mut rng, file);
                assert_eq!(notes::parse(&m), parse(&m), "mutation of file {i}");
            }
        }
    }

    #[test]
    fn equals_the_reference_on_edge_cases() {
        let cases: Vec<Vec<u8>> = vec![
            // running status after a meta event, after sysex (an error), varlen at the end
            [
                on(0, 0, 60, 10).to_vec(),
                vec![0, 0xFF, 0x01, 0x00, 5, 60, 0],
            ]
            .concat(),
            [
                on(0, 0, 60, 10).to_vec(),
                vec![0, 0xF0, 0x01, 0xF7, 5, 60, 0],
            ]
            .concat(),
            [on(0, 0, 60, 10).to_vec(), vec![0x81, 0x80]].concat(),
            // meta length past the end, bad key signature, bad SMPTE offset, valid SMPTE offset
            [on(0, 0, 60, 10).to_vec(), vec![0, 0xFF, 0x01, 0x7F, 1]].concat(),
            vec![0, 0xFF, 0x59, 0x01, 0x00],
            vec![0, 0xFF, 0x54, 0x05, 0x18, 0, 0, 0, 0],
            vec![0, 0xFF, 0x54, 0x05, 0x17, 59, 59, 23, 99],
            // system common and realtime messages, a data byte with the top bit set
            vec![0, 0xF2, 0, 0],
            vec![0, 0xFE],
            vec![0, 0x90, 0x80, 0x10],
            // a 4-byte delta followed by a fifth continuation byte, a short tempo
            [vec![0xFF, 0xFF, 0xFF, 0xFF], on(0, 0, 60, 10).to_vec()].concat(),
            vec![0, 0xFF, 0x51, 0x02, 0x07, 0xA1],
        ];
        for (i, body) in cases.iter().enumerate() {
            let file = smf(0, 96, std::slice::from_ref(body));
            assert_eq!(notes::parse(&file), parse(&file), "case {i}");
            // And with the end-of-track missing.
            let mut cut = file.clone();
            let cut_len = cut.len() - 4;
            cut.truncate(cut_len);
            let body_len = u32::from_be_bytes(cut[18..22].try_into().unwrap()) - 4;
            cut[18..22].copy_from_slice(&body_len.to_be_bytes());
            assert_eq!(notes::parse(&cut), parse(&cut), "case {i} without end");
        }
    }

    #[test]
    fn equals_the_reference_on_equal_float_times() {
        let file = equal_float_times_file();
        assert_eq!(notes::parse(&file), parse(&file));
    }

    #[test]
    fn equals_the_reference_on_the_fuzz_regressions() {
        for (path, data) in fuzz_regressions() {
            let got = crate::error::catch(|| notes::parse(&data));
            assert_eq!(got, crate::error::catch(|| parse(&data)), "{path:?}");
        }
    }
}
