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
//! The header and the chunk layout are read with midly; the events of each track are decoded by a
//! hand-written loop over the borrowed track bytes that follows midly's lenient reading rules
//! exactly (missing end-of-track, unknown chunks, a short variable-length number at the end of a
//! track, a meta or sysex length running past the track's end), but a chunk running past the end
//! of the file, fewer tracks than the header declares, or an undecodable event before the
//! track's end-of-track is an error, as it is for mido (and so for pretty_midi). The earlier
//! implementation over midly's event iterator is kept as `crate::reference::parse` (feature
//! `reference`, and in tests): it is the oracle of the differential tests and fuzz targets.
//!
//! Robustness: no allocation is sized by a length read from the file; every declared length is
//! checked against the bytes actually there. [`read_file`] reads a file once, after checking that
//! it is a regular file of at most [`MAX_FILE_BYTES`] (FIFOs and devices are refused before any
//! read, so nothing blocks).
//!
//! Deliberate difference: pretty_midi refuses files whose largest tick exceeds 10^7 (a memory
//! guard for its dense tick table); this parser has no such table and reads them.

use std::cell::RefCell;
use std::io::Read;
use std::path::Path;

use midly::Timing;

use crate::error::{Error, Result};
use crate::sustain::Sustain;
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

/// The largest file [`read_file`] reads (bytes). A larger file is [`Error::TooLarge`]: parsing
/// needs up to about 20 bytes of memory per byte of input, and no real MIDI file comes close.
pub const MAX_FILE_BYTES: u64 = 128 << 20;

/// `end_tick` of a note slot that no note-off closed: dropped, as pretty_midi drops it.
const OPEN: u64 = u64::MAX;

/// A note while parsing (a slot given at its note-on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RawNote {
    pub(crate) start_tick: u64,
    pub(crate) end_tick: u64,
    pub(crate) pitch: u8,
    pub(crate) velocity: u8,
    pub(crate) track: u32,
    pub(crate) channel: u8,
    pub(crate) program: u8,
    /// The number of sustain pedal events of the note's track and channel before its note-on,
    /// and before its note-off, in the track: where [`crate::sustain`] starts to look for the
    /// pedal's state at either end, without a search.
    pub(crate) pedal_at_start: u32,
    pub(crate) pedal_at_end: u32,
}

/// Reads and parses a file.
pub fn read_file(path: impl AsRef<Path>) -> Result<Notes> {
    let bytes = read_bytes(path.as_ref())?;
    parse(&bytes)
}

/// Reads a whole file into memory, once. Only regular files are read: a directory is
/// `IsADirectory`, a FIFO, socket or device is refused before reading (it could block forever or
/// never end), and a file larger than [`MAX_FILE_BYTES`] is [`Error::TooLarge`].
pub fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    read_into(path, &mut bytes)?;
    Ok(bytes)
}

/// [`read_bytes`] into `bytes` (cleared first), reusing its allocation: a worker reading many
/// files allocates for the largest one only.
pub fn read_into(path: &Path, bytes: &mut Vec<u8>) -> Result<()> {
    bytes.clear();
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO without a writer would block; non-blocking open returns at once and the
        // file type check below refuses it.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if meta.is_dir() {
        #[cfg(unix)]
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR).into());
        #[cfg(not(unix))]
        return Err(Error::Io {
            kind: std::io::ErrorKind::IsADirectory,
            errno: None,
            message: "Is a directory".into(),
        });
    }
    if !meta.is_file() {
        return Err(Error::Io {
            kind: std::io::ErrorKind::InvalidInput,
            errno: None,
            message: "not a regular file (a FIFO, socket or device)".into(),
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::TooLarge {
            size: meta.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    // The size from fstat is real (the file exists and is at most the limit), so it can size the
    // buffer; `take` still bounds a file that grows (or a /proc file that reports 0).
    bytes.reserve(meta.len() as usize + 1);
    file.take(MAX_FILE_BYTES + 1).read_to_end(bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::TooLarge {
            size: bytes.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(())
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
    if bytes[12] == 0x80 {
        // SMPTE division of -128 frames per second: midly's `-(fps as i8)` would overflow
        // (a panic with overflow checks). Found by the read_notes fuzz target.
        return Err(Error::Malformed(
            "invalid SMPTE frame rate (-128) in the header".into(),
        ));
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

/// The first line of a message (midly's errors can span several; ours are one line).
pub(crate) fn first_line(s: impl std::fmt::Display) -> String {
    s.to_string().lines().next().unwrap_or("").to_string()
}

/// The first open note of a key (its start tick is in its slot: the table stays small, 8 bytes a
/// key, and a note-off reads the slot it writes anyway).
#[derive(Debug, Clone, Copy, Default)]
struct Open {
    /// Its slot in [`Scratch::raw`] + 1; 0 if no note is open.
    slot: u32,
    /// Whether more notes of the key are open ([`Scratch::rest`]).
    more: bool,
}

/// Reusable per-thread buffers, so that parsing many files allocates only the results.
#[derive(Default)]
struct Scratch {
    /// The first open note per (channel, pitch).
    first: Vec<Open>,
    /// Further open notes of a key (a key struck again before its note-off), in arrival order.
    rest: Vec<Vec<u32>>,
    /// The keys whose `rest` was used in the current track.
    touched: Vec<u16>,
    /// How many slots of `raw` a note-off closed (the others are dropped).
    closed: usize,
    /// How many tracks gave notes (one: `raw` is sorted by start already).
    tracks_with_notes: u32,
    raw: Vec<RawNote>,
    tempos: Vec<(u64, u32)>,
    /// (tick, value, channel, track)
    pedal: Vec<(u64, u8, u8, u32)>,
    /// The first track's signatures up to its end-of-track (see [`Scan`]).
    time_signatures: Vec<(u64, u8, u8)>,
    key_signatures: Vec<(i8, bool)>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// A midly-compatible variable-length number: at most 4 bytes, and at the end of the data the
/// bytes read so far ("stay with what was read", midly's lenient rule).
#[inline(always)]
pub(crate) fn varlen(raw: &[u8], p: &mut usize) -> u32 {
    if let Some(&b) = raw.get(*p) {
        if b < 0x80 {
            *p += 1;
            return b as u32;
        }
    }
    let mut value = 0u32;
    for _ in 0..4 {
        let Some(&b) = raw.get(*p) else { break };
        *p += 1;
        value = value << 7 | (b & 0x7F) as u32;
        if b & 0x80 == 0 {
            break;
        }
    }
    value
}

/// Whether a 5-byte SMPTE offset meta event is one midly accepts (`SmpteTime::new`).
fn valid_smpte(d: &[u8]) -> bool {
    let fps = [24u8, 25, 29, 30][((d[0] >> 5) & 3) as usize];
    (d[0] & 0x1F) < 24 && d[1] < 60 && d[2] < 60 && d[3] < fps && d[4] < 100
}

/// Decodes one track's events into `s` (notes, tempos, pedal). `base` is the offset of the track
/// data in the file, for messages.
///
/// Note-ons and note-offs are most events: they are decoded here, with the key's one open note
/// (the common case) inline; everything else is in functions kept out of this loop
/// ([`other_event`], [`close_key`]), so that the loop's state (position, tick, running status)
/// stays in registers instead of being spilled around branches it rarely takes.
fn scan_track(raw: &[u8], base: usize, track: u32, s: &mut Scratch) -> Result<()> {
    let n = raw.len();
    let track_start = s.raw.len();
    let mut p = 0usize;
    let mut tick = 0u64;
    // Running status, 0 for none: set by channel messages, cleared by sysex, untouched by meta
    // events (mido).
    let mut running = 0u8;
    let mut rare = Rare {
        track,
        program: [0; 16],
        pedal: [0; 16],
        seen_end: false,
    };
    let mut result = Ok(());
    while p < n {
        let start = p;
        // A `break` out of this block with `false` is an undecodable event.
        let ok = 'event: {
            tick += varlen(raw, &mut p) as u64;
            let Some(&b) = raw.get(p) else {
                break 'event false;
            };
            let status = if b < 0x80 {
                running
            } else {
                p += 1;
                b
            };
            if status & 0xE0 != 0x80 {
                // A sustain pedal event (most other events of a performance) here, without a
                // call.
                if status & 0xF0 == 0xB0 {
                    if let (Some(&64), Some(&value)) = (raw.get(p), raw.get(p + 1)) {
                        if value < 0x80 {
                            pedal_event(s, &mut rare, tick, status & 0x0F, value);
                            p += 2;
                            running = status;
                            break 'event true;
                        }
                    }
                }
                // Not a note-on or note-off (or no running status: 0 is no event).
                match other_event(raw, p, status, running, tick, &mut rare, s) {
                    Some((next, next_running)) => {
                        p = next;
                        running = next_running;
                        break 'event true;
                    }
                    None => break 'event false,
                }
            }
            running = status;
            let (Some(&key), Some(&velocity)) = (raw.get(p), raw.get(p + 1)) else {
                break 'event false;
            };
            if (key | velocity) & 0x80 != 0 {
                break 'event false;
            }
            p += 2;
            let ch = status & 0x0F;
            let pedal = rare.pedal[ch as usize];
            if status >= 0x90 && velocity > 0 {
                note_on(s, tick, ch, key, velocity, track, pedal);
            } else {
                note_off(s, tick, ch, key, rare.program[ch as usize], pedal);
            }
            true
        };
        if !ok {
            if !rare.seen_end {
                result = Err(Error::Malformed(format!(
                    "undecodable event in track {track} at byte {}",
                    base + start
                )));
            }
            break; // junk after end-of-track: ignored
        }
    }
    // Notes still open at the end of the track are dropped. Only keys of this track's notes can
    // be open: reset those (most tracks use far fewer than the 2048 keys), so that the next track
    // and the next file start clean.
    let Scratch {
        first,
        rest,
        touched,
        raw: notes,
        ..
    } = s;
    let track_notes = &notes[track_start..];
    if track_notes.len() < first.len() / 4 {
        for r in track_notes {
            first[key_index(r.channel, r.pitch)] = Open::default();
        }
    } else {
        first.fill(Open::default());
    }
    for &k in touched.iter() {
        rest[k as usize].clear();
    }
    touched.clear();
    result
}

/// What a track's rarer events read and set, for [`scan_track`].
struct Rare {
    /// The track's index in the file.
    track: u32,
    /// The program of each channel (per track, starting at 0).
    program: [u8; 16],
    /// The number of sustain pedal events of each channel so far in the track.
    pedal: [u32; 16],
    /// Whether the track's end-of-track has been read (later junk is ignored).
    seen_end: bool,
}

/// A sustain pedal event (controller 64) of channel `ch`: recorded, and counted for the notes
/// that follow it in the track ([`RawNote::pedal_at_start`]).
#[inline(always)]
fn pedal_event(s: &mut Scratch, rare: &mut Rare, tick: u64, ch: u8, value: u8) {
    s.pedal.push((tick, value, ch, rare.track));
    rare.pedal[ch as usize & 0x0F] += 1;
}

/// The index of a (channel, pitch) key in [`Scratch::first`] and [`Scratch::rest`].
#[inline(always)]
fn key_index(channel: u8, pitch: u8) -> usize {
    (channel as usize & 0x0F) << 7 | (pitch as usize & 0x7F)
}

/// A note-on (velocity above 0): the note gets its slot now, in note-on order (sorted by start
/// within the track); the note-off fills in its end.
#[inline(always)]
fn note_on(s: &mut Scratch, tick: u64, ch: u8, key: u8, velocity: u8, track: u32, pedal: u32) {
    let k = key_index(ch, key);
    let slot = s.raw.len() as u32;
    let head = &mut s.first[k];
    if head.slot == 0 {
        *head = Open {
            slot: slot + 1,
            more: false,
        };
    } else {
        if !head.more {
            head.more = true;
            s.touched.push(k as u16);
        }
        s.rest[k].push(slot);
    }
    s.raw.push(RawNote {
        start_tick: tick,
        end_tick: OPEN,
        pitch: key,
        velocity,
        track,
        channel: ch,
        program: 0,
        pedal_at_start: pedal,
        pedal_at_end: 0,
    });
}

/// A note-off (or a note-on with velocity 0), with the channel's program now.
#[inline(always)]
fn note_off(s: &mut Scratch, tick: u64, ch: u8, key: u8, program: u8, pedal: u32) {
    let k = key_index(ch, key);
    let head = s.first[k];
    if head.slot == 0 {
        // nothing open: a spurious note-off
    } else if !head.more {
        // One open note (the common case): closed unless it started on this tick, and then
        // dropped either way.
        let note = &mut s.raw[head.slot as usize - 1];
        if note.start_tick != tick {
            note.end_tick = tick;
            note.program = program;
            note.pedal_at_end = pedal;
            s.closed += 1;
        }
        s.first[k].slot = 0;
    } else {
        close_key(s, k, head, tick, program, pedal);
    }
}

/// A note-off for a key with several open notes: closes every open note that started before this
/// tick. Those that started on it stay open only if an earlier one was closed; otherwise they are
/// dropped (their slots stay OPEN).
#[inline(never)]
fn close_key(s: &mut Scratch, k: usize, head: Open, tick: u64, program: u8, pedal: u32) {
    let others = std::mem::take(&mut s.rest[k]);
    let mut kept: Vec<u32> = Vec::new();
    let mut closed = 0usize;
    for slot in std::iter::once(head.slot - 1).chain(others.iter().copied()) {
        let note = &mut s.raw[slot as usize];
        if note.start_tick != tick {
            closed += 1;
            s.closed += 1;
            note.end_tick = tick;
            note.program = program;
            note.pedal_at_end = pedal;
        } else {
            kept.push(slot);
        }
    }
    s.first[k] = Open::default();
    if closed > 0 && !kept.is_empty() {
        s.first[k] = Open {
            slot: kept[0] + 1,
            more: kept.len() > 1,
        };
        kept.remove(0);
        s.rest[k] = kept;
    } else {
        // Keep the allocation for the next use of the key.
        let mut others = others;
        others.clear();
        s.rest[k] = others;
    }
}

/// Decodes an event that is not a note-on or note-off, whose status (0: none) has been read and
/// whose data starts at `p`, with `running` the running status before it. Returns where the next
/// event starts and the running status after it; `None` if the event is undecodable.
#[inline(never)]
fn other_event(
    raw: &[u8],
    mut p: usize,
    status: u8,
    running: u8,
    tick: u64,
    rare: &mut Rare,
    s: &mut Scratch,
) -> Option<(usize, u8)> {
    let n = raw.len();
    let track = rare.track;
    match status {
        0xA0..=0xEF => {
            let kind = status >> 4;
            let ch = status & 0x0F;
            let len = if kind == 0xC || kind == 0xD { 1 } else { 2 };
            if n - p < len {
                return None;
            }
            let d0 = raw[p];
            let d1 = if len == 2 { raw[p + 1] } else { 0 };
            if (d0 | d1) & 0x80 != 0 {
                return None;
            }
            p += len;
            match kind {
                0xB if d0 == 64 => pedal_event(s, rare, tick, ch, d1),
                0xC => rare.program[ch as usize] = d0,
                _ => {}
            }
            Some((p, status))
        }
        0xFF => {
            let kind = *raw.get(p)?;
            p += 1;
            let len = varlen(raw, &mut p) as usize;
            let data = &raw[p..p + len.min(n - p)];
            p += data.len();
            match kind {
                0x2F => rare.seen_end = true,
                0x51 if data.len() >= 3 && track == 0 => {
                    let t = u32::from_be_bytes([0, data[0], data[1], data[2]]);
                    s.tempos.push((tick, t));
                }
                0x54 if data.len() >= 5 && !valid_smpte(data) => return None,
                0x59 if data.len() < 2 => return None,
                // The signatures remi reads (midly's reading: a time signature has at least 4
                // bytes, else it is an unknown meta event), up to the first end-of-track, as
                // `crate::remi::scan_meta` reads them.
                0x58 if data.len() >= 4 && track == 0 && !rare.seen_end => {
                    s.time_signatures.push((tick, data[0], data[1]));
                }
                0x59 if track == 0 && !rare.seen_end => {
                    s.key_signatures.push((data[0] as i8, data[1] != 0));
                }
                _ => {}
            }
            // A meta event keeps the running status (mido).
            Some((p, running))
        }
        0xF0 | 0xF7 => {
            let len = varlen(raw, &mut p) as usize;
            p += len.min(n - p);
            Some((p, 0))
        }
        // System common and realtime messages cannot appear in a file (nor can a data byte
        // without a running status).
        _ => None,
    }
}

/// The order of [`Notes`] when start times are equal: (pitch, end, track, channel, program,
/// velocity), then start tick.
pub(crate) fn cmp_after_start(a: &RawNote, b: &RawNote) -> std::cmp::Ordering {
    a.pitch
        .cmp(&b.pitch)
        .then(a.end_tick.cmp(&b.end_tick))
        .then(a.track.cmp(&b.track))
        .then(a.channel.cmp(&b.channel))
        .then(a.program.cmp(&b.program))
        .then(a.velocity.cmp(&b.velocity))
        .then(a.start_tick.cmp(&b.start_tick))
}

/// Parses MIDI file bytes (format 0, 1 or 2).
pub fn parse(bytes: &[u8]) -> Result<Notes> {
    scan_file(bytes, Sustain::Ignore, build_notes)
}

/// [`parse`] with the sustain pedal applied or not ([`crate::sustain`]): with
/// [`Sustain::Apply`] the notes the pedal holds sound until it lets them go.
pub fn parse_with(bytes: &[u8], sustain: Sustain) -> Result<Notes> {
    scan_file(bytes, sustain, build_notes)
}

/// The onsets of a file's notes, for tokenizers that need only when each note starts and which
/// pitch it is: the notes of [`parse`] (same pairing, same errors) in order of start tick, without
/// building the per-note arrays or sorting chords. `Ok(None)` when order by start tick is not order
/// by start time (different ticks rounding to the same float time, at huge ticks): use [`parse`].
pub fn parse_onsets(bytes: &[u8]) -> Result<Option<Onsets>> {
    with_onsets(bytes, |tpq, notes| Onsets {
        ticks_per_quarter: tpq,
        start_tick: notes.iter().map(|r| r.start_tick).collect(),
        pitch: notes.iter().map(|r| r.pitch).collect(),
        is_drum: notes.iter().map(|r| r.channel == 9).collect(),
    })
}

/// [`parse_onsets`] without building its arrays: `f` gets the ticks per quarter note and the
/// notes in order of start tick (while they sit in the thread's scratch buffer).
pub(crate) fn with_onsets<R>(
    bytes: &[u8],
    f: impl FnOnce(u16, &[RawNote]) -> R,
) -> Result<Option<R>> {
    scan_file(bytes, Sustain::Ignore, |s, resolution, tempo| {
        time_order_is_tick_order(&s.raw, tempo).then(|| f(resolution, &s.raw))
    })
}

/// See [`parse_onsets`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Onsets {
    /// Ticks per quarter note from the header.
    pub ticks_per_quarter: u16,
    /// Onset in ticks, non-decreasing.
    pub start_tick: Vec<u64>,
    /// MIDI pitch, 0..=127.
    pub pitch: Vec<u8>,
    /// Channel 9 (percussion).
    pub is_drum: Vec<bool>,
}

/// What [`with_scan`] hands a tokenizer: the notes of [`parse`] (same pairing, same errors) in
/// order of start tick, before any per-note array is built, and the first track's signatures.
pub(crate) struct Scan<'a> {
    /// Ticks per quarter note from the header.
    pub(crate) ticks_per_quarter: u16,
    /// The notes, sorted by start tick only; [`order_notes`] gives the order of [`Notes`].
    pub(crate) notes: &'a mut [RawNote],
    /// The file's tick -> seconds map.
    pub(crate) tempo: &'a TempoMap,
    /// Time signature events of the first track before its end-of-track: (tick, numerator,
    /// log2 of the denominator as stored in the file).
    pub(crate) time_signatures: &'a [(u64, u8, u8)],
    /// Key signature events of the first track before its end-of-track: (sharps, minor).
    pub(crate) key_signatures: &'a [(i8, bool)],
}

/// Scans a file like [`parse`] and lets `f` read the result from the thread's scratch buffers.
pub(crate) fn with_scan<R>(
    bytes: &[u8],
    sustain: Sustain,
    f: impl FnOnce(Scan<'_>) -> R,
) -> Result<R> {
    scan_file(bytes, sustain, |s, resolution, tempo| {
        f(Scan {
            ticks_per_quarter: resolution,
            notes: &mut s.raw,
            tempo,
            time_signatures: &s.time_signatures,
            key_signatures: &s.key_signatures,
        })
    })
}

/// A file's header and chunk layout, checked by [`read_header`].
pub(crate) struct Header<'a> {
    /// Ticks per quarter note, at least 1.
    pub(crate) resolution: u16,
    /// The number of tracks the header declares (and the file has), at least 1.
    pub(crate) declared: u16,
    /// midly's iterator over the track chunks.
    pub(crate) tracks: midly::TrackIter<'a>,
}

/// Checks the chunk layout ([`check_chunks`]) and reads the header with midly. Also the first
/// step of `crate::reference`: both parsers read the header the same way, only the events are
/// decoded independently.
pub(crate) fn read_header(bytes: &[u8]) -> Result<Header<'_>> {
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
    Ok(Header {
        resolution,
        declared,
        tracks,
    })
}

/// Checks the header, decodes every track into the thread's scratch buffers, applies the sustain
/// pedal if asked, and builds the result from them with `build`.
fn scan_file<T>(
    bytes: &[u8],
    sustain: Sustain,
    build: impl FnOnce(&mut Scratch, u16, &TempoMap) -> T,
) -> Result<T> {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::TooLarge {
            size: bytes.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    let Header {
        resolution,
        declared,
        tracks,
    } = read_header(bytes)?;
    SCRATCH.with(|cell| {
        // A panic while the scratch was borrowed (caught by the caller) must not poison it.
        let mut taken = cell.take();
        let result = scan_tracks(bytes, tracks, declared, &mut taken).and_then(|()| {
            let tempo = TempoMap::new(&taken.tempos, resolution)?;
            // Notes that no note-off closed are dropped (pretty_midi).
            if taken.closed != taken.raw.len() {
                taken.raw.retain(|r| r.end_tick != OPEN);
            }
            // Each track's notes are in note-on order, so sorted by start tick: a stable sort by
            // start tick merges the tracks (a single track is already sorted).
            if taken.tracks_with_notes > 1 && !taken.raw.is_sorted_by_key(|r| r.start_tick) {
                taken.raw.sort_by_key(|r| r.start_tick);
            }
            if sustain == Sustain::Apply {
                crate::sustain::apply(&mut taken.raw, &taken.pedal);
            }
            Ok(build(&mut taken, resolution, &tempo))
        });
        taken.raw.clear();
        taken.tempos.clear();
        taken.pedal.clear();
        taken.time_signatures.clear();
        taken.key_signatures.clear();
        *cell.borrow_mut() = taken;
        result
    })
}

/// Whether no two different start ticks (sorted) map to the same time.
fn time_order_is_tick_order(raw: &[RawNote], tempo: &TempoMap) -> bool {
    let mut cursor = 0usize;
    let mut last: Option<(u64, f64)> = None;
    for r in raw {
        if last.is_some_and(|(tick, _)| tick == r.start_tick) {
            continue;
        }
        let t = tempo.seconds_from(r.start_tick, &mut cursor);
        if last.is_some_and(|(_, time)| time == t) {
            return false;
        }
        last = Some((r.start_tick, t));
    }
    true
}

fn scan_tracks<'a>(
    bytes: &'a [u8],
    tracks: midly::TrackIter<'a>,
    declared: u16,
    s: &mut Scratch,
) -> Result<()> {
    if s.first.len() != 16 * 128 {
        s.first = vec![Open::default(); 16 * 128];
        s.rest = vec![Vec::new(); 16 * 128];
    }
    // `scan_track` leaves `first`, `rest` and `touched` clean at the end of every track (a panic
    // drops the scratch instead of putting it back), so they need no reset here.
    debug_assert!(s.first.iter().all(|o| o.slot == 0) && s.rest.iter().all(Vec::is_empty));
    debug_assert!(s.touched.is_empty());
    s.closed = 0;
    s.tracks_with_notes = 0;
    s.raw.clear();
    s.tempos.clear();
    s.pedal.clear();
    s.time_signatures.clear();
    s.key_signatures.clear();
    for (track_idx, track) in tracks.take(declared as usize).enumerate() {
        let events = track.map_err(|e| Error::Malformed(first_line(e)))?;
        let raw = events.unread();
        let base = raw.as_ptr() as usize - bytes.as_ptr() as usize;
        let before = s.raw.len();
        scan_track(raw, base, track_idx as u32, s)?;
        s.tracks_with_notes += (s.raw.len() > before) as u32;
    }
    Ok(())
}

/// The parser's notes (sorted by start tick, the pedal not applied) and pedal events of a file,
/// for the tests of [`crate::sustain`].
#[cfg(test)]
pub(crate) fn raw_notes(bytes: &[u8]) -> Result<(Vec<RawNote>, Vec<crate::sustain::PedalEvent>)> {
    scan_file(bytes, Sustain::Ignore, |s, _, _| {
        (s.raw.clone(), s.pedal.clone())
    })
}

/// The notes of the scanned tracks ([`scan_file`] has sorted them by start tick).
fn build_notes(s: &mut Scratch, resolution: u16, tempo: &TempoMap) -> Notes {
    let start = order_notes(&mut s.raw, tempo);
    note_arrays(resolution, &s.raw, start, &mut s.pedal, tempo)
}

/// Puts notes sorted by start tick in the order of [`Notes`] and returns their start times.
pub(crate) fn order_notes(raw: &mut [RawNote], tempo: &TempoMap) -> Vec<f64> {
    // Each group of notes starting on the same tick (a chord: a few notes) is put in full order.
    let mut i = 0;
    while i + 1 < raw.len() {
        if raw[i + 1].start_tick != raw[i].start_tick {
            i += 1;
            continue;
        }
        let tick = raw[i].start_tick;
        let mut j = i + 2;
        while j < raw.len() && raw[j].start_tick == tick {
            j += 1;
        }
        raw[i..j].sort_unstable_by(cmp_after_start);
        i = j;
    }
    // Start times are a non-decreasing function of start ticks, so the order by start tick is the
    // order by start time, except where different ticks give equal times (float rounding at huge
    // ticks): then the notes are sorted again with the full order.
    let mut cursor = 0usize;
    let mut start: Vec<f64> = raw
        .iter()
        .map(|r| tempo.seconds_from(r.start_tick, &mut cursor))
        .collect();
    let ties = raw
        .windows(2)
        .zip(start.windows(2))
        .any(|(r, t)| t[0] == t[1] && r[0].start_tick != r[1].start_tick);
    if ties {
        let mut rows: Vec<(f64, RawNote)> =
            start.iter().copied().zip(raw.iter().copied()).collect();
        rows.sort_by(|(sa, a), (sb, b)| sa.total_cmp(sb).then(cmp_after_start(a, b)));
        for (i, (t, r)) in rows.into_iter().enumerate() {
            start[i] = t;
            raw[i] = r;
        }
    }
    start
}

/// [`Notes`] from notes in their final order with their start times, and the pedal events
/// `(tick, value, channel, track)` in track order (sorted here by tick, stably). Shared with
/// `crate::reference`: it only lays out what both parsers found.
pub(crate) fn note_arrays(
    resolution: u16,
    raw: &[RawNote],
    start: Vec<f64>,
    pedal: &mut [(u64, u8, u8, u32)],
    tempo: &TempoMap,
) -> Notes {
    // One tight pass per array (vectorizable; the notes are in cache).
    let mut notes = Notes {
        ticks_per_quarter: resolution,
        pitch: raw.iter().map(|r| r.pitch).collect(),
        velocity: raw.iter().map(|r| r.velocity).collect(),
        start,
        end: raw.iter().map(|r| tempo.seconds(r.end_tick)).collect(),
        track: raw.iter().map(|r| r.track).collect(),
        channel: raw.iter().map(|r| r.channel).collect(),
        program: raw.iter().map(|r| r.program).collect(),
        is_drum: raw.iter().map(|r| r.channel == 9).collect(),
        start_tick: raw.iter().map(|r| r.start_tick).collect(),
        end_tick: raw.iter().map(|r| r.end_tick).collect(),
        pedal: Pedal::default(),
    };
    pedal.sort_by_key(|p| p.0);
    let p = &mut notes.pedal;
    p.tick.reserve_exact(pedal.len());
    for &(tick, value, channel, track) in pedal.iter() {
        p.tick.push(tick);
        p.time.push(tempo.seconds(tick));
        p.value.push(value);
        p.channel.push(channel);
        p.track.push(track);
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{equal_float_times_file, fuzz_regressions, off, on, smf};

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

    #[test]
    fn equal_times_from_different_ticks_keep_pretty_midi_order() {
        // Notes one tick apart with the same start time (testdata::equal_float_times_file) must be
        // ordered by pitch, as pretty_midi orders them. (reference.rs checks the oracle agrees.)
        let file = equal_float_times_file();
        assert_eq!(parse_onsets(&file), Ok(None)); // the onsets' fast path declines
        let n = parse(&file).unwrap();
        assert_eq!(n.len(), 2);
        assert_eq!(n.start[0], n.start[1]);
        assert_eq!(n.pitch, vec![60, 62]);
    }

    #[test]
    fn files_that_are_not_regular_are_refused_without_blocking() {
        let dir = std::env::temp_dir().join(format!("fastparse-notes-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        match read_file(&dir) {
            Err(Error::Io { kind, .. }) => assert_eq!(kind, std::io::ErrorKind::IsADirectory),
            other => panic!("{other:?}"),
        }
        #[cfg(unix)]
        {
            let fifo = dir.join("fifo.mid");
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
            assert!(matches!(read_file(&fifo), Err(Error::Io { .. })));
            assert!(matches!(read_file("/dev/zero"), Err(Error::Io { .. })));
        }
        let big = dir.join("big.mid");
        let f = std::fs::File::create(&big).unwrap();
        f.set_len(MAX_FILE_BYTES + 1).unwrap(); // sparse: no disk used
        assert!(matches!(read_file(&big), Err(Error::TooLarge { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fuzz_regressions_are_errors_not_panics() {
        // Inputs that once made a fuzz target fail (fastparse/fuzz/regressions).
        for (path, data) in fuzz_regressions() {
            let got = crate::error::catch(|| parse(&data));
            assert!(!matches!(got, Err(Error::Internal(_))), "{path:?}");
        }
        let mut smpte = smf(0, 96, &[on(0, 0, 60, 10).to_vec()]);
        smpte[12] = 0x80;
        assert!(matches!(parse(&smpte), Err(Error::Malformed(_))));
    }
}
