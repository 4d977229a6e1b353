//! MIDI bytes -> notes as a struct of arrays, with pretty_midi 0.2's conventions
//! (`PrettyMIDI._load_instruments`), so that the notes equal pretty_midi's exactly.
//!
//! Conventions reproduced (see also [`crate::tempo`]):
//! - Tracks are paired independently; a note-on with velocity 0 is a note-off.
//! - A note-off for (channel, pitch) closes *every* open note of that key whose start tick differs
//!   from the note-off's tick. Open notes that started on the note-off's own tick stay open only if
//!   at least one earlier note was closed; otherwise they are dropped with the rest of the key.
//! - Notes still open at the end of a track are dropped; spurious note-offs are ignored.
//! - The program of a note is the channel's program (per track, starting at 0) *when the note-off*
//!   *arrives*; `is_drum` is channel 9 (0-based).
//! - A meta event does not cancel running status (mido keeps it; plain midly resets it).
//!
//! Parsing itself is midly's, lenient for what real files get wrong (data bytes with the top bit
//! set, missing end-of-track, unknown chunks), but a chunk running past the end of the file, fewer
//! tracks than the header declares, or an undecodable event before the track's end-of-track is an
//! error, as it is for mido (and so for pretty_midi).
//!
//! Deliberate difference: pretty_midi refuses files whose largest tick exceeds 10^7 (a memory
//! guard for its dense tick table); this parser has no such table and reads them.

use std::path::Path;

use midly::{MetaMessage, MidiMessage, Timing, TrackEventKind};

use crate::error::{Error, Result};
use crate::tempo::TempoMap;

/// Sustain pedal (controller 64) events, sorted by tick (stable: track order within a tick).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pedal {
    /// Absolute tick.
    pub tick: Vec<u64>,
    /// Seconds (same tempo map as the notes).
    pub time: Vec<f64>,
    /// Controller value, 0..=127 (>= 64 is down by convention).
    pub value: Vec<u8>,
    /// MIDI channel, 0..=15.
    pub channel: Vec<u8>,
    /// Track index.
    pub track: Vec<u32>,
}

/// The notes of a MIDI file, one entry per note in every array, sorted by
/// (start, pitch, end, track, channel, program, velocity).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notes {
    /// Ticks per quarter note from the header.
    pub ticks_per_quarter: u16,
    /// MIDI pitch, 0..=127.
    pub pitch: Vec<u8>,
    /// Note-on velocity, 1..=127.
    pub velocity: Vec<u8>,
    /// Onset in seconds.
    pub start: Vec<f64>,
    /// Release in seconds.
    pub end: Vec<f64>,
    /// Track index in the file.
    pub track: Vec<u32>,
    /// MIDI channel, 0..=15.
    pub channel: Vec<u8>,
    /// General MIDI program, 0..=127.
    pub program: Vec<u8>,
    /// Channel 9 (percussion).
    pub is_drum: Vec<bool>,
    /// Onset in ticks.
    pub start_tick: Vec<u64>,
    /// Release in ticks.
    pub end_tick: Vec<u64>,
    /// Sustain pedal events.
    pub pedal: Pedal,
}

impl Notes {
    /// Number of notes.
    pub fn len(&self) -> usize {
        self.pitch.len()
    }

    /// Whether there are no notes.
    pub fn is_empty(&self) -> bool {
        self.pitch.is_empty()
    }
}

#[derive(Debug, Clone, Copy)]
struct RawNote {
    start_tick: u64,
    end_tick: u64,
    pitch: u8,
    velocity: u8,
    track: u32,
    channel: u8,
    program: u8,
}

/// Reads and parses a file.
pub fn read_file(path: impl AsRef<Path>) -> Result<Notes> {
    let bytes = std::fs::read(path.as_ref())?;
    parse(&bytes)
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Checks the chunk layout the way mido reads it: `MThd` first, then as many track chunks as the
/// header declares, none of them running past the end of the file. Returns the declared count.
fn check_chunks(bytes: &[u8]) -> Result<u16> {
    if bytes.is_empty() {
        return Err(Error::NotMidi("file is empty".into()));
    }
    if bytes.len() < 4 || &bytes[..4] != b"MThd" {
        return Err(Error::NotMidi("no MThd header".into()));
    }
    if bytes.len() < 14 {
        return Err(Error::Truncated("header chunk is incomplete".into()));
    }
    let header_len = be_u32(&bytes[4..8]) as usize;
    if header_len < 6 {
        return Err(Error::Malformed(format!(
            "header chunk of {header_len} bytes"
        )));
    }
    let declared = u16::from_be_bytes([bytes[10], bytes[11]]);
    let mut pos = 8usize.saturating_add(header_len);
    let mut found = 0u16;
    while found < declared {
        if pos >= bytes.len() {
            return Err(Error::Truncated(format!(
                "header declares {declared} tracks, file ends after {found}"
            )));
        }
        if bytes.len() - pos < 8 {
            return Err(Error::Truncated(format!(
                "chunk header at byte {pos} is incomplete"
            )));
        }
        let len = be_u32(&bytes[pos + 4..pos + 8]) as usize;
        let available = bytes.len() - pos - 8;
        if len > available {
            return Err(Error::Truncated(format!(
                "chunk at byte {pos} declares {len} bytes, only {available} remain"
            )));
        }
        if &bytes[pos..pos + 4] == b"MTrk" {
            found += 1;
        }
        pos += 8 + len;
    }
    Ok(declared)
}

fn first_line(s: impl std::fmt::Display) -> String {
    s.to_string().lines().next().unwrap_or("").to_string()
}

/// Parses MIDI file bytes (format 0, 1 or 2).
pub fn parse(bytes: &[u8]) -> Result<Notes> {
    let declared = check_chunks(bytes)?;
    let (header, tracks) = midly::parse(bytes).map_err(|e| Error::Malformed(first_line(e)))?;
    let resolution = match header.timing {
        Timing::Metrical(tpq) => tpq.as_int(),
        Timing::Timecode(fps, sub) => {
            return Err(Error::Unsupported(format!(
                "SMPTE time division ({} fps, {sub} ticks per frame)",
                fps.as_int()
            )))
        }
    };
    if resolution == 0 {
        return Err(Error::Unsupported("ticks per quarter note is 0".into()));
    }
    if declared == 0 {
        return Err(Error::Malformed("the file has no tracks".into()));
    }

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
    let time = |tick: u64| tempo.seconds(tick);

    let mut rows: Vec<(f64, RawNote)> = raw.into_iter().map(|n| (time(n.start_tick), n)).collect();
    rows.sort_by(|(sa, a), (sb, b)| {
        sa.total_cmp(sb)
            .then(a.pitch.cmp(&b.pitch))
            .then(a.end_tick.cmp(&b.end_tick))
            .then(a.track.cmp(&b.track))
            .then(a.channel.cmp(&b.channel))
            .then(a.program.cmp(&b.program))
            .then(a.velocity.cmp(&b.velocity))
            .then(a.start_tick.cmp(&b.start_tick))
    });

    let n = rows.len();
    let mut notes = Notes {
        ticks_per_quarter: resolution,
        pitch: Vec::with_capacity(n),
        velocity: Vec::with_capacity(n),
        start: Vec::with_capacity(n),
        end: Vec::with_capacity(n),
        track: Vec::with_capacity(n),
        channel: Vec::with_capacity(n),
        program: Vec::with_capacity(n),
        is_drum: Vec::with_capacity(n),
        start_tick: Vec::with_capacity(n),
        end_tick: Vec::with_capacity(n),
        pedal: Pedal::default(),
    };
    for (start, r) in rows {
        notes.pitch.push(r.pitch);
        notes.velocity.push(r.velocity);
        notes.start.push(start);
        notes.end.push(time(r.end_tick));
        notes.track.push(r.track);
        notes.channel.push(r.channel);
        notes.program.push(r.program);
        notes.is_drum.push(r.channel == 9);
        notes.start_tick.push(r.start_tick);
        notes.end_tick.push(r.end_tick);
    }
    pedal.sort_by_key(|p| p.0);
    for (tick, value, channel, track) in pedal {
        notes.pedal.tick.push(tick);
        notes.pedal.time.push(time(tick));
        notes.pedal.value.push(value);
        notes.pedal.channel.push(channel);
        notes.pedal.track.push(track);
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MIDI file from raw track bodies (events without the end-of-track).
    fn smf(format: u16, tpq: u16, tracks: &[Vec<u8>]) -> Vec<u8> {
        let mut out = b"MThd".to_vec();
        out.extend(6u32.to_be_bytes());
        out.extend(format.to_be_bytes());
        out.extend((tracks.len() as u16).to_be_bytes());
        out.extend(tpq.to_be_bytes());
        for body in tracks {
            let mut body = body.clone();
            body.extend([0x00, 0xFF, 0x2F, 0x00]);
            out.extend(b"MTrk");
            out.extend((body.len() as u32).to_be_bytes());
            out.extend(body);
        }
        out
    }

    fn on(delta: u8, ch: u8, key: u8, vel: u8) -> [u8; 4] {
        [delta, 0x90 | ch, key, vel]
    }
    fn off(delta: u8, ch: u8, key: u8) -> [u8; 4] {
        [delta, 0x80 | ch, key, 0]
    }

    #[test]
    fn pairs_notes_and_converts_times() {
        let body = [
            on(0, 0, 60, 100),
            on(0, 0, 64, 90),
            off(96, 0, 60),
            [0, 0x90, 64, 0],
        ]
        .concat();
        let n = parse(&smf(0, 96, &[body])).unwrap();
        assert_eq!(n.pitch, vec![60, 64]);
        assert_eq!(n.velocity, vec![100, 90]);
        assert_eq!(n.start, vec![0.0, 0.0]);
        assert_eq!(n.end, vec![0.5, 0.5]); // 120 bpm default
        assert_eq!(n.start_tick, vec![0, 0]);
        assert_eq!(n.end_tick, vec![96, 96]);
        assert_eq!(n.ticks_per_quarter, 96);
    }

    #[test]
    fn one_off_closes_all_earlier_notes_of_the_key() {
        let body = [on(0, 0, 60, 10), on(10, 0, 60, 20), off(10, 0, 60)].concat();
        let n = parse(&smf(0, 96, &[body])).unwrap();
        assert_eq!(n.velocity, vec![10, 20]);
        assert_eq!(n.end_tick, vec![20, 20]);
    }

    #[test]
    fn same_tick_note_on_survives_only_if_something_closed() {
        // on@0, on@10 (same key), off@10: closes the 0 note, keeps the 10 one, closed by off@20.
        let body = [
            on(0, 0, 60, 10),
            on(10, 0, 60, 20),
            off(0, 0, 60),
            off(10, 0, 60),
        ]
        .concat();
        let n = parse(&smf(0, 96, &[body])).unwrap();
        assert_eq!(n.start_tick, vec![0, 10]);
        assert_eq!(n.end_tick, vec![10, 20]);
        // on@0 then off@0: nothing closed, so the key is dropped entirely (pretty_midi).
        let body = [on(0, 0, 60, 10), off(0, 0, 60), off(10, 0, 60)].concat();
        assert!(parse(&smf(0, 96, &[body])).unwrap().is_empty());
    }

    #[test]
    fn unclosed_and_spurious_notes_are_dropped() {
        let body = [
            off(0, 0, 50),
            on(0, 0, 60, 10),
            on(0, 1, 61, 10),
            off(5, 1, 61),
        ]
        .concat();
        let n = parse(&smf(0, 96, &[body])).unwrap();
        assert_eq!(n.pitch, vec![61]);
        assert_eq!(n.channel, vec![1]);
    }

    #[test]
    fn program_at_note_off_and_per_track() {
        let t0 = [
            [0u8, 0xC0, 5].to_vec(),
            on(0, 0, 60, 10).to_vec(),
            [0, 0xC0, 7].to_vec(),
            off(10, 0, 60).to_vec(),
        ]
        .concat();
        let t1 = [on(0, 0, 62, 10), off(10, 0, 62)].concat();
        let t2 = [on(0, 9, 36, 10), off(10, 9, 36)].concat();
        let n = parse(&smf(1, 96, &[t0, t1, t2])).unwrap();
        assert_eq!(n.pitch, vec![36, 60, 62]);
        assert_eq!(n.program, vec![0, 7, 0]);
        assert_eq!(n.track, vec![2, 0, 1]);
        assert_eq!(n.is_drum, vec![true, false, false]);
    }

    #[test]
    fn tempo_only_from_the_first_track() {
        // 1 s per quarter in track 0 from tick 0; a tempo event in track 1 is ignored.
        let t0 = vec![0x00, 0xFF, 0x51, 0x03, 0x0F, 0x42, 0x40];
        let t1 = [
            vec![0x00, 0xFF, 0x51, 0x03, 0x07, 0xA1, 0x20],
            on(0, 0, 60, 10).to_vec(),
            off(96, 0, 60).to_vec(),
        ]
        .concat();
        let n = parse(&smf(1, 96, &[t0, t1])).unwrap();
        assert_eq!(n.end, vec![1.0]);
    }

    #[test]
    fn running_status_survives_meta_events() {
        // note-on, then a text meta event, then a note-off in running status (vel 0).
        let body = [
            on(0, 0, 60, 10).to_vec(),
            vec![0, 0xFF, 0x01, 0x01, b'x'],
            vec![10, 60, 0],
        ]
        .concat();
        let n = parse(&smf(0, 96, &[body])).unwrap();
        assert_eq!(n.end_tick, vec![10]);
    }

    #[test]
    fn pedal_events() {
        let body = [
            vec![0, 0xB0, 64, 127],
            on(0, 0, 60, 10).to_vec(),
            vec![5, 0xB0, 64, 0],
            off(5, 0, 60).to_vec(),
        ]
        .concat();
        let n = parse(&smf(0, 96, &[body])).unwrap();
        assert_eq!(n.pedal.tick, vec![0, 5]);
        assert_eq!(n.pedal.value, vec![127, 0]);
    }

    #[test]
    fn errors() {
        let good = smf(0, 96, &[[on(0, 0, 60, 10), off(10, 0, 60)].concat()]);
        assert!(matches!(parse(b""), Err(Error::NotMidi(_))));
        assert!(matches!(parse(b"RIFF1234"), Err(Error::NotMidi(_))));
        assert!(matches!(parse(&good[..10]), Err(Error::Truncated(_))));
        for cut in 14..good.len() {
            assert!(
                matches!(parse(&good[..cut]), Err(Error::Truncated(_))),
                "cut at {cut}"
            );
        }
        // An event cut short inside a complete chunk.
        let body = vec![0, 0x90, 60];
        let mut bad = smf(0, 96, &[]);
        bad[11] = 1;
        bad.extend(b"MTrk");
        bad.extend((body.len() as u32).to_be_bytes());
        bad.extend(&body);
        assert!(matches!(parse(&bad), Err(Error::Malformed(_))));
        // SMPTE division and zero resolution.
        let mut smpte = good.clone();
        smpte[12] = 0xE7;
        smpte[13] = 40;
        assert!(matches!(parse(&smpte), Err(Error::Unsupported(_))));
        let mut zero = good.clone();
        zero[12] = 0;
        zero[13] = 0;
        assert!(matches!(parse(&zero), Err(Error::Unsupported(_))));
        // Every message is one line.
        assert!(!parse(&good[..20]).unwrap_err().to_string().contains('\n'));
    }

    #[test]
    fn junk_after_end_of_track_is_ignored() {
        let mut body = [on(0, 0, 60, 10), off(10, 0, 60)].concat();
        body.extend([0x00, 0xFF, 0x2F, 0x00, 0x00, 0x90]);
        let mut file = smf(0, 96, &[]);
        file[11] = 1;
        file.extend(b"MTrk");
        file.extend((body.len() as u32).to_be_bytes());
        file.extend(&body);
        assert_eq!(parse(&file).unwrap().len(), 1);
    }
}
