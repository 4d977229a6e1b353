//! "remi": a rhythm-aware scheme in the style of REMI (Huang & Yang, 2020) that keeps when each
//! note starts, how long it lasts and how loud it is; "remi+key" adds a key token up front.
//!
//! # Grid, bins, caps
//! - Time is quantized to a grid of [`STEPS_PER_QUARTER`] = 12 steps per quarter note (16ths
//!   are 3 steps, eighth triplets 4, 16th triplets 2): `step = round(tick * 12 / tpq)`, halves
//!   rounded up (the grid of "notes-chords").
//! - A bar lasts `numerator * 48 / denominator` steps (4/4: 48, 3/4: 36, 6/8: 36). Time
//!   signatures come from the first track (pretty_midi's rule); one takes effect at the first
//!   bar line at or after its quantized tick (the last one wins when several do); before the first
//!   one, bars are 4/4. Only signatures with a numerator in 1..=64, a denominator in
//!   1, 2, 4, ..., 64 and a whole number of steps per bar are used; others are ignored.
//! - Velocity: 32 bins of 4 values, bin `(v - 1) / 4`; the token carries the bin's top value,
//!   `min(4 * (bin + 1), 127)`: 4, 8, ..., 124, 127.
//! - Duration: `round((end_tick - start_tick) * 12 / tpq)` steps (halves up), at least 1 and at
//!   most [`MAX_DURATION`] = 192 steps (4 bars of 4/4).
//! - Notes are made canonical so that they can be written and read back unchanged: one note per
//!   (onset, pitch), the longest (then the loudest); a note that lasts past the next onset of the
//!   same pitch is cut there. Drums (channel 10) are left out.
//! - A piece spans at most [`MAX_BARS`] bars (longer ones are an error, not a huge token list).
//!
//! # Tokens
//! `Key_<tonic>_<major|minor>` (see [`crate::key`]), `TimeSig_<n>/<d>`, `Bar`, `Position_<k>`
//! (k in 0..bar length), `Pitch_<0..127>`, `Velocity_<4|8|...|124|127>`, `Duration_<1..192>`.
//!
//! # Valid streams (what the tokenizer produces; `strict` detokenizing accepts exactly these)
//! ```text
//! piece := Key? bar+            Key exactly in "remi+key", never in "remi"
//! bar   := TimeSig? Bar onset*  TimeSig in the first bar, later only where the meter changes
//! onset := Position note+       positions strictly increase in a bar and are < the bar length
//! note  := Pitch Velocity Duration   pitches strictly increase within an onset
//! ```
//! and: the last bar has a note (the stream ends with a Duration), and no note lasts past the
//! next onset of the same pitch. For every such stream, tokens -> MIDI -> tokens is the identity.
//!
//! # Lenient detokenizing (for model output)
//! Tokens that are not scheme tokens are skipped. A Key anywhere sets the key signature (the
//! first one wins). A TimeSig applies from the next Bar. A Position before any Bar opens bar 0. A
//! Position outside the bar is skipped with its notes; positions may go back. An incomplete or
//! out-of-order note (Pitch, Velocity, Duration) is dropped. Notes are then made canonical as in
//! tokenizing (one per onset and pitch, overlaps cut). A stream with no note gives a file with no
//! notes.
//!
//! # Written files
//! Format 0, 480 ticks per quarter (40 per step), 120 bpm, program 0, channel 0; a time
//! signature at tick 0 and at each bar where the meter changes, the key signature at tick 0
//! (fewest accidentals).

use std::sync::OnceLock;

use midly::{MetaMessage, TrackEventKind};

use crate::error::{Error, Result};
use crate::key::{self, Key};
use crate::midi_writer::{write_track, TimeSignature, WriteNote};
use crate::notes::Notes;
use crate::sustain::Sustain;
use crate::token::{self, Sink, Token, TokenId, Tokens};

/// The scheme's name.
pub const NAME: &str = token::REMI;
/// The scheme with a `Key_` token first: the file's key signature, else estimated.
pub const NAME_KEY: &str = token::REMI_KEY;
/// The scheme with a `Key_` token first, always estimated from the notes.
pub const NAME_KEY_ESTIMATED: &str = token::REMI_KEY_ESTIMATED;

/// Whether a piece starts with a `Key_` token and where the key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyToken {
    /// No key token ("remi").
    #[default]
    None,
    /// The first track's first key signature, else the estimate ("remi+key").
    Signature,
    /// Always the Krumhansl-Schmuckler estimate ("remi+key-estimated"): many files carry a
    /// placeholder C major signature (GiantMIDI-Piano's transcriptions do).
    Estimated,
}

impl KeyToken {
    /// The scheme's name.
    pub fn scheme(self) -> &'static str {
        match self {
            KeyToken::None => NAME,
            KeyToken::Signature => NAME_KEY,
            KeyToken::Estimated => NAME_KEY_ESTIMATED,
        }
    }
}
/// Grid steps per quarter note.
pub const STEPS_PER_QUARTER: u64 = 12;
/// Longest duration, in steps (4 bars of 4/4).
pub const MAX_DURATION: u64 = 192;
/// Number of velocity bins.
pub const VELOCITY_BINS: u8 = 32;
/// Most bars a piece may span.
pub const MAX_BARS: u64 = 100_000;
/// Largest numerator of a time signature that is used.
pub const MAX_NUMERATOR: u8 = 64;
/// Largest denominator of a time signature that is used.
pub const MAX_DENOMINATOR: u8 = 64;
/// Ticks per quarter note of written files.
pub const TICKS_PER_QUARTER: u16 = 480;
/// Ticks per grid step in written files.
pub const TICKS_PER_STEP: u64 = TICKS_PER_QUARTER as u64 / STEPS_PER_QUARTER;
/// Tempo of written files, microseconds per quarter (120 bpm).
pub const TEMPO: u32 = 500_000;

const MAX_BAR_STEPS: usize = MAX_NUMERATOR as usize * 4 * STEPS_PER_QUARTER as usize;

/// The bin of a velocity (1..=127 -> 0..32).
pub fn velocity_bin(v: u8) -> u8 {
    (v.clamp(1, 127) - 1) / 4
}

/// The velocity a bin is written with (its top value).
pub fn bin_velocity(bin: u8) -> u8 {
    (4 * (bin as u16 + 1)).min(127) as u8
}

/// Steps in a bar of `n/d`, when it is a time signature this scheme uses.
pub fn bar_steps(n: u8, d: u8) -> Option<u64> {
    if n == 0 || n > MAX_NUMERATOR || d == 0 || d > MAX_DENOMINATOR || !d.is_power_of_two() {
        return None;
    }
    let whole = n as u64 * 4 * STEPS_PER_QUARTER;
    whole.is_multiple_of(d as u64).then(|| whole / d as u64)
}

/// `round(ticks * 12 / tpq)`, halves up, saturating.
pub fn quantize(ticks: u64, ticks_per_quarter: u16) -> u64 {
    let tpq = ticks_per_quarter.max(1) as u128;
    let q = (ticks as u128 * 2 * STEPS_PER_QUARTER as u128 + tpq) / (2 * tpq);
    q.min(u64::MAX as u128) as u64
}

/// Meta information the scheme needs besides the notes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    /// Time signatures of the first track: (tick, numerator, denominator), in file order.
    pub time_signatures: Vec<(u64, u8, u8)>,
    /// The first key signature of the first track with 0..=7 sharps or flats.
    pub key: Option<Key>,
}

/// Reads the time and key signatures of the first track (pretty_midi reads them there). It is
/// lenient: it stops at anything it cannot decode and keeps what it found until then.
pub fn scan_meta(bytes: &[u8]) -> Meta {
    let mut meta = Meta::default();
    let Ok((_, mut tracks)) = midly::parse(bytes) else {
        return meta;
    };
    let Some(Ok(mut events)) = tracks.next() else {
        return meta;
    };
    let mut tick = 0u64;
    let mut channel_status: Option<u8> = None;
    while let Some(Ok(event)) = events.next() {
        tick = tick.saturating_add(event.delta.as_int() as u64);
        match event.kind {
            TrackEventKind::Midi { .. } => channel_status = events.running_status(),
            TrackEventKind::Meta(m) => {
                // mido: meta events leave running status alone (as in crate::notes).
                *events.running_status_mut() = channel_status;
                match m {
                    MetaMessage::TimeSignature(n, dd, _, _) => {
                        meta.time_signatures.push((tick, n, denominator(dd)));
                    }
                    MetaMessage::KeySignature(sf, minor) if meta.key.is_none() => {
                        meta.key = Key::from_signature(sf, minor);
                    }
                    MetaMessage::EndOfTrack => break,
                    _ => {}
                }
            }
            TrackEventKind::SysEx(_) | TrackEventKind::Escape(_) => channel_status = None,
        }
    }
    meta
}

/// A time signature's denominator from the exponent stored in the file; 0 (unused) when it does
/// not fit.
fn denominator(exponent: u8) -> u8 {
    let d = if exponent < 8 { 1u16 << exponent } else { 0 };
    u8::try_from(d).unwrap_or(0)
}

/// One note on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GridNote {
    /// Onset step from the start of the piece.
    pub start: u64,
    /// MIDI pitch.
    pub pitch: u8,
    /// Duration in steps, 1..=MAX_DURATION.
    pub duration: u64,
    /// Velocity bin, 0..32.
    pub velocity_bin: u8,
}

/// Makes notes canonical: sorted by (onset, pitch), one per (onset, pitch) (the longest, then the
/// loudest), and each cut at the next onset of its pitch.
pub fn canonicalize(notes: &mut Vec<GridNote>) {
    notes.sort_unstable_by(|a, b| {
        (a.start, a.pitch, b.duration, b.velocity_bin).cmp(&(
            b.start,
            b.pitch,
            a.duration,
            a.velocity_bin,
        ))
    });
    notes.dedup_by(|later, first| later.start == first.start && later.pitch == first.pitch);
    let mut last: [Option<usize>; 128] = [None; 128];
    for i in 0..notes.len() {
        let p = (notes[i].pitch & 0x7f) as usize;
        if let Some(j) = last[p] {
            let gap = notes[i].start - notes[j].start;
            if notes[j].duration > gap {
                notes[j].duration = gap;
            }
        }
        last[p] = Some(i);
    }
}

/// The non-drum notes of a file on the grid, canonical.
pub fn grid_notes(notes: &Notes) -> Vec<GridNote> {
    let tpq = notes.ticks_per_quarter;
    let mut out = Vec::with_capacity(notes.len());
    for i in 0..notes.len() {
        if notes.is_drum[i] {
            continue;
        }
        let ticks = notes.end_tick[i].saturating_sub(notes.start_tick[i]);
        out.push(GridNote {
            start: quantize(notes.start_tick[i], tpq),
            pitch: notes.pitch[i] & 0x7f,
            duration: quantize(ticks, tpq).clamp(1, MAX_DURATION),
            velocity_bin: velocity_bin(notes.velocity[i]),
        });
    }
    canonicalize(&mut out);
    out
}

// The alphabet ([`alphabet`]): every token the scheme writes, by id. The tokenizer writes ids,
// so that a token is an index, not a string to format, hash or compare.
const KEY_ID: TokenId = 0;
const BAR_ID: TokenId = 24;
const POSITION_ID: TokenId = BAR_ID + 1;
const PITCH_ID: TokenId = POSITION_ID + MAX_BAR_STEPS as TokenId;
const VELOCITY_ID: TokenId = PITCH_ID + 128;
/// `Duration_1` (durations start at 1).
const DURATION_ID: TokenId = VELOCITY_ID + VELOCITY_BINS as TokenId;
/// The time signatures this scheme uses follow, by numerator, then denominator.
const TIME_SIG_ID: TokenId = DURATION_ID + MAX_DURATION as TokenId;

/// The index of `n/d` (numerator 1..=64, denominator a power of two up to 64) among all such
/// signatures.
fn time_sig_index(n: u8, d: u8) -> usize {
    (n as usize - 1) * 7 + d.trailing_zeros() as usize
}

struct Alphabet {
    tokens: Vec<&'static str>,
    /// By [`time_sig_index`]; 0 for unused signatures.
    time_sig: Vec<TokenId>,
}

fn alphabet_tables() -> &'static Alphabet {
    static ALPHABET: OnceLock<Alphabet> = OnceLock::new();
    ALPHABET.get_or_init(|| {
        // Built once per process: the strings live as long as the program.
        let mut tokens: Vec<&'static str> = (0..24).map(|i| Key::from_index(i).token()).collect();
        tokens.push("Bar");
        let mut add = |s: String| tokens.push(s.leak());
        (0..MAX_BAR_STEPS).for_each(|k| add(format!("Position_{k}")));
        (0..128).for_each(|p| add(format!("Pitch_{p}")));
        (0..VELOCITY_BINS).for_each(|b| add(format!("Velocity_{}", bin_velocity(b))));
        (1..=MAX_DURATION).for_each(|d| add(format!("Duration_{d}")));
        debug_assert_eq!(tokens.len(), TIME_SIG_ID as usize);
        let mut time_sig = vec![0; MAX_NUMERATOR as usize * 7];
        for n in 1..=MAX_NUMERATOR {
            for d in (0..7).map(|dd| 1u8 << dd) {
                if bar_steps(n, d).is_some() {
                    time_sig[time_sig_index(n, d)] = tokens.len() as TokenId;
                    tokens.push(format!("TimeSig_{n}/{d}").leak());
                }
            }
        }
        Alphabet { tokens, time_sig }
    })
}

/// Every token of the remi schemes, by id (the ids of [`tokenize_ids`]).
pub fn alphabet() -> &'static [&'static str] {
    &alphabet_tables().tokens
}

fn time_sig_id(n: u8, d: u8) -> TokenId {
    let id = alphabet_tables().time_sig[time_sig_index(n, d)];
    debug_assert!(id != 0, "time signature checked by bar_steps");
    id
}

/// The time signatures in force, quantized and filtered: (step, n, d), sorted by step (stable).
fn time_signature_steps(
    signatures: impl Iterator<Item = (u64, u8, u8)>,
    ticks_per_quarter: u16,
) -> Vec<(u64, u8, u8)> {
    let mut out: Vec<(u64, u8, u8)> = signatures
        .filter(|&(_, n, d)| bar_steps(n, d).is_some())
        .map(|(tick, n, d)| (quantize(tick, ticks_per_quarter), n, d))
        .collect();
    out.sort_by_key(|t| t.0);
    out
}

/// [`quantize`] for one file, without a 128-bit division for ticks below 2^27: for a 32-bit
/// numerator `n` and divisor `d`, `n / d == (n * ceil(2^64 / d)) >> 64` (Lemire, Kaser and Kurz,
/// "Faster remainder by direct computation", 2019). Tokenizing divides once per note and onset.
#[derive(Debug, Clone, Copy)]
struct Quantizer {
    tpq: u16,
    magic: u64,
}

impl Quantizer {
    fn new(ticks_per_quarter: u16) -> Quantizer {
        let tpq = ticks_per_quarter.max(1);
        Quantizer {
            tpq,
            // ceil(2^64 / d) for d = 2 * tpq (exact when d is a power of two); below 2^64.
            magic: u64::MAX / (2 * tpq as u64) + 1,
        }
    }

    #[inline]
    fn steps(self, ticks: u64) -> u64 {
        if ticks < 1 << 27 {
            // 24 * 2^27 + 2^16 < 2^32.
            let n = ticks * 2 * STEPS_PER_QUARTER + self.tpq as u64;
            ((n as u128 * self.magic as u128) >> 64) as u64
        } else {
            quantize(ticks, self.tpq)
        }
    }

    /// Notes (start tick, end tick, pitch, velocity) on the grid. The notes of a chord share
    /// their start tick: one division per distinct tick.
    fn onsets(
        self,
        notes: impl Iterator<Item = (u64, u64, u8, u8)> + Clone,
    ) -> impl Iterator<Item = Onset> + Clone {
        let mut last = (0, self.steps(0));
        notes.map(move |(start_tick, end_tick, pitch, velocity)| {
            if start_tick != last.0 {
                last = (start_tick, self.steps(start_tick));
            }
            self.onset(last.1, start_tick, end_tick, pitch, velocity)
        })
    }

    /// A note on the grid, starting at step `start`.
    #[inline]
    fn onset(self, start: u64, start_tick: u64, end_tick: u64, pitch: u8, velocity: u8) -> Onset {
        Onset {
            start,
            pitch: pitch & 0x7f,
            duration: self
                .steps(end_tick.saturating_sub(start_tick))
                .clamp(1, MAX_DURATION) as u8,
            velocity_bin: velocity_bin(velocity),
        }
    }
}

/// A note on the grid before it is made canonical ([`GridNote`] in 16 bytes: the duration is at
/// most [`MAX_DURATION`]).
#[derive(Debug, Clone, Copy)]
struct Onset {
    start: u64,
    pitch: u8,
    duration: u8,
    velocity_bin: u8,
}

/// The key token's key, if the scheme has one: the signature for `Signature` when there is
/// one, else the estimate (computed only then).
fn choose_key(
    key_token: KeyToken,
    signature: Option<Key>,
    estimate: impl FnOnce() -> Key,
) -> Option<Key> {
    match key_token {
        KeyToken::None => None,
        KeyToken::Signature => Some(signature.unwrap_or_else(estimate)),
        KeyToken::Estimated => Some(estimate()),
    }
}

/// The tokens of one file. With a [`KeyToken`] other than `None` the key comes first: the file's
/// key signature ([`Meta::key`]) for `Signature` when it has one, else the Krumhansl-Schmuckler
/// estimate ([`key::estimate_notes`]).
pub fn tokenize(notes: &Notes, meta: &Meta, key_token: KeyToken) -> Result<Vec<Token>> {
    let tpq = notes.ticks_per_quarter;
    let onsets =
        Quantizer::new(tpq).onsets((0..notes.len()).filter(|&i| !notes.is_drum[i]).map(|i| {
            (
                notes.start_tick[i],
                notes.end_tick[i],
                notes.pitch[i],
                notes.velocity[i],
            )
        }));
    let signatures = time_signature_steps(meta.time_signatures.iter().copied(), tpq);
    let key = choose_key(key_token, meta.key, || key::estimate_notes(notes));
    let mut out = Tokens {
        alphabet: alphabet(),
        tokens: Vec::new(),
    };
    write_tokens(onsets, &signatures, key, &mut out)?;
    Ok(out.tokens)
}

/// The tokens of a MIDI file's bytes: [`tokenize`] of [`crate::notes::parse_with`] with
/// [`scan_meta`] (the same tokens and errors), straight from the parser's buffers, without
/// building the notes' arrays, their times or a second pass over the first track.
pub fn tokenize_bytes(bytes: &[u8], key_token: KeyToken, sustain: Sustain) -> Result<Vec<Token>> {
    let mut out = Tokens {
        alphabet: alphabet(),
        tokens: Vec::new(),
    };
    tokenize_bytes_into(bytes, key_token, sustain, &mut out)?;
    Ok(out.tokens)
}

/// [`tokenize_bytes`] as ids into [`alphabet`].
pub fn tokenize_ids(bytes: &[u8], key_token: KeyToken, sustain: Sustain) -> Result<Vec<TokenId>> {
    let mut out = Vec::new();
    tokenize_bytes_into(bytes, key_token, sustain, &mut out)?;
    Ok(out)
}

fn tokenize_bytes_into(
    bytes: &[u8],
    key_token: KeyToken,
    sustain: Sustain,
    out: &mut impl Sink,
) -> Result<()> {
    crate::notes::with_scan(bytes, sustain, |scan| {
        let tpq = scan.ticks_per_quarter;
        let signatures = time_signature_steps(
            scan.time_signatures
                .iter()
                .map(|&(tick, n, dd)| (tick, n, denominator(dd))),
            tpq,
        );
        let signature = scan
            .key_signatures
            .iter()
            .find_map(|&(sf, minor)| Key::from_signature(sf, minor));
        let notes = scan.notes;
        let tempo = scan.tempo;
        let key = choose_key(key_token, signature, || {
            // The histogram sums floats in the order of `Notes`: put the notes in that order.
            let start = crate::notes::order_notes(notes, tempo);
            let weights = notes
                .iter()
                .zip(start)
                .filter(|(r, _)| r.channel != 9)
                .map(|(r, start)| (r.pitch, start, tempo.seconds(r.end_tick)));
            key::estimate(&key::histogram_of(weights))
        });
        let onsets = Quantizer::new(tpq).onsets(
            notes
                .iter()
                .filter(|r| r.channel != 9)
                .map(|r| (r.start_tick, r.end_tick, r.pitch, r.velocity)),
        );
        write_tokens(onsets, &signatures, key, out)
    })?
}

/// Writes the tokens of notes on the grid, with time signatures from [`time_signature_steps`]
/// and the key token's key. The notes usually come by onset (by start tick; the writer checks);
/// otherwise they are sorted first.
fn write_tokens(
    onsets: impl Iterator<Item = Onset> + Clone,
    signatures: &[(u64, u8, u8)],
    key: Option<Key>,
    out: &mut impl Sink,
) -> Result<()> {
    // (The upper bound: the lower one of a filtered iterator is 0.)
    let notes = onsets.size_hint().1.unwrap_or(0);
    if Writer::new(signatures, key, notes, out).write(onsets.clone())? {
        return Ok(());
    }
    // Start ticks out of order: `Notes` in order of start time, where different ticks share a
    // time (huge ticks). Notes within an onset may come in any order (see `Writer::write`).
    let mut sorted: Vec<Onset> = onsets.collect();
    sorted.sort_unstable_by_key(|o| o.start);
    let done = Writer::new(signatures, key, notes, out).write(sorted.into_iter())?;
    debug_assert!(done);
    Ok(())
}

/// The last note written for a pitch: its onset, duration and the index of its Duration token.
#[derive(Debug, Clone, Copy)]
struct Written {
    start: u64,
    duration: u8,
    index: usize,
}

/// [`Writer::last`] of a pitch not written yet: starts at 0 (before any onset) and lasts 0 steps.
const NONE: Written = Written {
    start: 0,
    duration: 0,
    index: 0,
};

/// Writes the token stream of notes sorted by onset, making them canonical on the way (as
/// [`canonicalize`] does, without sorting): the bars, their time signatures, and per onset the
/// notes by pitch.
struct Writer<'a, S: Sink> {
    out: &'a mut S,
    /// Tokens in `out` before this stream (a restarted writer truncates to it).
    first: usize,
    key: Option<Key>,
    signatures: &'a [(u64, u8, u8)],
    next_sig: usize,
    /// The meter in force and the last one written.
    meter: (u8, u8),
    written_meter: Option<(u8, u8)>,
    bars: u64,
    bar_start: u64,
    bar_end: u64,
    /// Per pitch, the last note written, so that a later onset of the pitch can cut it ([`NONE`]
    /// before the first: a duration of 0 is never cut).
    last: [Written; 128],
    /// The tokens of the onset being written: a Position and three per pitch.
    pending: [TokenId; 1 + 3 * 128],
}

impl<'a, S: Sink> Writer<'a, S> {
    fn new(
        signatures: &'a [(u64, u8, u8)],
        key: Option<Key>,
        notes: usize,
        out: &'a mut S,
    ) -> Writer<'a, S> {
        out.reserve(notes * 4 + notes / 4 + 8);
        Writer {
            first: out.len(),
            out,
            key,
            signatures,
            next_sig: 0,
            meter: (4, 4),
            written_meter: None,
            bars: 0,
            bar_start: 0,
            bar_end: 0,
            last: [NONE; 128],
            pending: [0; 1 + 3 * 128],
        }
    }

    /// Writes the stream; `Ok(false)` (and nothing usable written) if the onsets are not in
    /// order.
    fn write(mut self, onsets: impl Iterator<Item = Onset>) -> Result<bool> {
        if let Some(key) = self.key {
            self.out.push(KEY_ID + key.index() as TokenId);
        }
        // The notes of the current onset: which pitches, and per pitch the best note as
        // (duration, velocity bin), compared as a number: one note per (onset, pitch), the
        // longest, then the loudest (`canonicalize`).
        let mut current: Option<u64> = None;
        let mut pitches = 0u128;
        let mut best = [0u16; 128];
        for o in onsets {
            if current != Some(o.start) {
                if let Some(start) = current {
                    if o.start < start {
                        self.out.truncate(self.first);
                        return Ok(false);
                    }
                    self.onset(start, pitches, &mut best)?;
                }
                current = Some(o.start);
                pitches = 0;
            }
            let p = o.pitch as usize;
            let rank = (o.duration as u16) << 8 | o.velocity_bin as u16;
            // Ranks are above 0 (durations are at least 1), and `best` is 0 outside the
            // onset's pitches (`onset` clears what it writes): no test of whether the pitch is
            // new.
            best[p] = best[p].max(rank);
            pitches |= 1 << p;
        }
        let Some(start) = current else {
            return Err(Error::NoNotes);
        };
        self.onset(start, pitches, &mut best)?;
        Ok(true)
    }

    /// Opens the next bar (the first one at step 0): its time signature if the meter changes,
    /// then `Bar`.
    fn open_bar(&mut self) -> Result<()> {
        if self.bars > 0 {
            self.bar_start = self.bar_end;
        }
        let signatures = self.signatures;
        while self.next_sig < signatures.len() && signatures[self.next_sig].0 <= self.bar_start {
            let (_, n, d) = signatures[self.next_sig];
            self.meter = (n, d);
            self.next_sig += 1;
        }
        let (n, d) = self.meter;
        if self.written_meter != Some((n, d)) {
            self.out.push(time_sig_id(n, d));
            self.written_meter = Some((n, d));
        }
        self.bars += 1;
        if self.bars > MAX_BARS {
            return Err(Error::Unsupported(format!(
                "the notes span more than {MAX_BARS} bars"
            )));
        }
        self.out.push(BAR_ID);
        self.bar_end = self.bar_start + bar_steps(n, d).expect("filtered");
        Ok(())
    }

    /// Writes one onset: its Position (after the bars before it), then its notes by pitch, each
    /// cutting the previous note of its pitch at this onset. The onset's tokens are gathered in
    /// `self.pending` and written at once: one length update of the sink per onset, not per token.
    fn onset(&mut self, start: u64, mut pitches: u128, best: &mut [u16; 128]) -> Result<()> {
        if self.bars == 0 {
            self.open_bar()?;
        }
        while start >= self.bar_end {
            self.open_bar()?;
        }
        let first = self.out.len();
        let buf = &mut self.pending;
        // A position is below the bar's length, at most MAX_BAR_STEPS.
        buf[0] = POSITION_ID + (start - self.bar_start) as TokenId;
        let mut len = 1;
        while pitches != 0 {
            let p = pitches.trailing_zeros() as usize;
            pitches &= pitches - 1;
            // The previous note of the pitch is in an earlier onset, already in the sink.
            let prev = self.last[p];
            let gap = start - prev.start;
            if prev.duration as u64 > gap {
                self.out.set(prev.index, DURATION_ID + gap as TokenId - 1);
            }
            let (duration, velocity_bin) = ((best[p] >> 8) as u8, best[p] as u8);
            best[p] = 0;
            buf[len] = PITCH_ID + p as TokenId;
            buf[len + 1] = VELOCITY_ID + velocity_bin as TokenId;
            buf[len + 2] = DURATION_ID + duration as TokenId - 1;
            self.last[p] = Written {
                start,
                duration,
                index: first + len + 2,
            };
            len += 3;
        }
        if len <= 16 {
            // Most onsets: a copy of a constant size (a few vector moves, not a call to memcpy
            // for a few bytes), then the length set back.
            self.out.extend(&buf[..16]);
            self.out.truncate(first + len);
        } else {
            self.out.extend(&buf[..len]);
        }
        Ok(())
    }
}

/// A token of the scheme, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `Key_<tonic>_<mode>`.
    Key(Key),
    /// `TimeSig_<n>/<d>`.
    TimeSig(u8, u8),
    /// `Bar`.
    Bar,
    /// `Position_<k>`.
    Position(u64),
    /// `Pitch_<p>`.
    Pitch(u8),
    /// `Velocity_<v>` as its bin.
    Velocity(u8),
    /// `Duration_<d>`.
    Duration(u64),
}

/// A decimal number written as the tokenizer writes it (no sign, no leading zeros).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if s.len() > 1 && s.starts_with('0') {
        return None;
    }
    s.parse().ok()
}

/// Parses a token; `None` for anything the tokenizer never writes.
pub fn parse_token(token: &str) -> Option<Event> {
    if token == "Bar" {
        return Some(Event::Bar);
    }
    let (kind, value) = token.split_once('_')?;
    match kind {
        "Position" => number(value)
            .filter(|&k| k < MAX_BAR_STEPS as u64)
            .map(Event::Position),
        "Pitch" => number(value)
            .filter(|&p| p < 128)
            .map(|p| Event::Pitch(p as u8)),
        "Velocity" => {
            let v = number(value).filter(|&v| (1..=127).contains(&v))? as u8;
            let bin = velocity_bin(v);
            (bin_velocity(bin) == v).then_some(Event::Velocity(bin))
        }
        "Duration" => number(value)
            .filter(|&d| (1..=MAX_DURATION).contains(&d))
            .map(Event::Duration),
        "TimeSig" => {
            let (n, d) = value.split_once('/')?;
            let n = u8::try_from(number(n)?).ok()?;
            let d = u8::try_from(number(d)?).ok()?;
            bar_steps(n, d).map(|_| Event::TimeSig(n, d))
        }
        "Key" => Key::from_token(token).map(Event::Key),
        _ => None,
    }
}

/// What a strict parse may see next (also the sampler's state in grammar.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// At the start: a Key ("remi+key") or a TimeSig.
    Start,
    /// After the Key: the first TimeSig.
    FirstTimeSig,
    /// After a TimeSig: a Bar.
    Bar,
    /// After a Bar: Position, TimeSig or Bar.
    Onset,
    /// After a Position: Pitch.
    Pitch,
    /// After a Pitch: Velocity.
    Velocity,
    /// After a Velocity: Duration.
    Duration,
    /// After a Duration: Pitch (same onset), Position, TimeSig, Bar or the end.
    Next,
}

impl Expect {
    /// Whether the grammar allows `event` here (strict decoding).
    fn allows(self, event: &Event) -> bool {
        matches!(
            (self, event),
            (Expect::Start, Event::Key(_) | Event::TimeSig(..))
                | (Expect::FirstTimeSig, Event::TimeSig(..))
                | (Expect::Bar, Event::Bar)
                | (
                    Expect::Onset,
                    Event::Position(_) | Event::TimeSig(..) | Event::Bar
                )
                | (Expect::Pitch, Event::Pitch(_))
                | (Expect::Velocity, Event::Velocity(_))
                | (Expect::Duration, Event::Duration(_))
                | (
                    Expect::Next,
                    Event::Pitch(_) | Event::Position(_) | Event::TimeSig(..) | Event::Bar
                )
        )
    }

    fn describe(self) -> &'static str {
        match self {
            Expect::Start => "Key or TimeSig",
            Expect::FirstTimeSig => "TimeSig",
            Expect::Bar => "Bar",
            Expect::Onset => "Position, TimeSig or Bar",
            Expect::Pitch => "Pitch",
            Expect::Velocity => "Velocity",
            Expect::Duration => "Duration",
            Expect::Next => "Pitch, Position, TimeSig or Bar",
        }
    }
}

/// A decoded stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// The notes, canonical.
    pub notes: Vec<GridNote>,
    /// Time signatures at the bars where the meter changes: (step, n, d), the first at step 0.
    pub time_signatures: Vec<(u64, u8, u8)>,
    /// The key.
    pub key: Option<Key>,
}

/// Decodes a token stream. `strict` accepts exactly the valid streams (module docs) and fails on
/// the first problem with [`Error::InvalidToken`] or [`Error::InvalidSequence`]; otherwise the
/// lenient rules apply.
pub fn decode<S: AsRef<str>>(tokens: &[S], key_token: KeyToken, strict: bool) -> Result<Decoded> {
    let mut decoder = Decoder::new(tokens, key_token, strict);
    for index in 0..tokens.len() {
        decoder.token(index)?;
    }
    decoder.finish()
}

/// The state of [`decode`] between tokens. Each event has its method; in strict mode a method
/// returns the first problem it sees, in lenient mode it skips what it cannot use.
struct Decoder<'t, S> {
    tokens: &'t [S],
    scheme: &'static str,
    with_key: bool,
    strict: bool,
    out: Decoded,
    expect: Expect,
    /// The meter in force, and one a TimeSig set for the next bar.
    meter: (u8, u8),
    pending_meter: Option<(u8, u8)>,
    /// The meter of the last time signature written to `out`.
    written_meter: Option<(u8, u8)>,
    /// The current bar: (start step, length); None before the first Bar.
    bar: Option<(u64, u64)>,
    bars: u64,
    /// The onset step of the current Position (absolute); None when there is no usable one.
    position: Option<u64>,
    /// The last usable Position in the bar, and the last Pitch written at the onset.
    last_position: Option<u64>,
    last_pitch: Option<u8>,
    /// The note being read: (pitch, token index of its Pitch), then its velocity bin.
    pitch: Option<(u8, usize)>,
    velocity: Option<u8>,
    /// Per pitch: (index in out.notes, token index of its Pitch) of its last note.
    sounding: Vec<Option<(usize, usize)>>,
}

impl<'t, S: AsRef<str>> Decoder<'t, S> {
    fn new(tokens: &'t [S], key_token: KeyToken, strict: bool) -> Self {
        Decoder {
            tokens,
            scheme: key_token.scheme(),
            with_key: key_token != KeyToken::None,
            strict,
            out: Decoded::default(),
            expect: Expect::Start,
            meter: (4, 4),
            pending_meter: None,
            written_meter: None,
            bar: None,
            bars: 0,
            position: None,
            last_position: None,
            last_pitch: None,
            pitch: None,
            velocity: None,
            sounding: vec![None; 128],
        }
    }

    /// [`Error::InvalidSequence`] for the token at `index`.
    fn invalid(&self, index: usize, why: String) -> Error {
        Error::InvalidSequence {
            index,
            token: self.tokens[index].as_ref().to_string(),
            scheme: self.scheme,
            why,
        }
    }

    /// Reads the token at `index`.
    fn token(&mut self, index: usize) -> Result<()> {
        let token = self.tokens[index].as_ref();
        let Some(event) = parse_token(token) else {
            if self.strict {
                return Err(Error::InvalidToken {
                    index,
                    token: token.to_string(),
                    scheme: self.scheme,
                });
            }
            return Ok(());
        };
        if self.strict && !self.expect.allows(&event) {
            return Err(self.out_of_place(index));
        }
        match event {
            Event::Key(key) => self.key(index, key),
            Event::TimeSig(n, d) => self.time_sig(index, n, d),
            Event::Bar => self.bar(index),
            Event::Position(k) => self.position(index, k),
            Event::Pitch(p) => self.pitch(index, p),
            Event::Velocity(bin) => {
                self.velocity = self.pitch.map(|_| bin);
                self.expect = Expect::Duration;
                Ok(())
            }
            Event::Duration(duration) => self.duration(duration),
        }
    }

    /// The error for a token the grammar does not allow where it stands.
    fn out_of_place(&self, index: usize) -> Error {
        let expected = self.expect.describe();
        let why = if index == 0 {
            format!(
                "cannot start a {} stream (expected {expected})",
                self.scheme
            )
        } else {
            let previous = self.tokens[index - 1].as_ref();
            format!("cannot follow {previous:?} (expected {expected})")
        };
        self.invalid(index, why)
    }

    fn key(&mut self, index: usize, key: Key) -> Result<()> {
        if self.strict && !self.with_key {
            return Err(self.invalid(index, "is a remi+key token, not a remi one".into()));
        }
        // Lenient: the first Key anywhere wins.
        self.out.key = self.out.key.or(Some(key));
        self.expect = Expect::FirstTimeSig;
        Ok(())
    }

    fn time_sig(&mut self, index: usize, n: u8, d: u8) -> Result<()> {
        if self.strict {
            if self.with_key && self.out.key.is_none() {
                let why = "comes before the Key (a remi+key stream starts with its Key)";
                return Err(self.invalid(index, why.into()));
            }
            if self.bar.is_some() && self.meter == (n, d) {
                let why = format!("repeats the time signature in force ({n}/{d})");
                return Err(self.invalid(index, why));
            }
        }
        // It applies from the next bar.
        self.pending_meter = Some((n, d));
        self.expect = Expect::Bar;
        Ok(())
    }

    fn bar(&mut self, index: usize) -> Result<()> {
        if self.strict && self.bar.is_none() && self.pending_meter.is_none() {
            return Err(self.invalid(index, "opens the first bar without a TimeSig".into()));
        }
        self.bars += 1;
        if self.strict && self.bars > MAX_BARS {
            let why = format!(
                "opens bar {}, more than the {MAX_BARS} a piece may span",
                self.bars
            );
            return Err(self.invalid(index, why));
        }
        self.open_bar(self.bar.map_or(0, |(start, len)| start + len));
        self.position = None;
        self.last_position = None;
        self.pitch = None;
        self.expect = Expect::Onset;
        Ok(())
    }

    /// Starts a bar at step `start` in the pending meter (else the one in force), writing a time
    /// signature where the meter changes.
    fn open_bar(&mut self, start: u64) {
        if let Some(m) = self.pending_meter.take() {
            self.meter = m;
        }
        let (n, d) = self.meter;
        if self.written_meter != Some((n, d)) {
            self.out.time_signatures.push((start, n, d));
            self.written_meter = Some((n, d));
        }
        self.bar = Some((start, bar_steps(n, d).expect("parsed")));
    }

    fn position(&mut self, index: usize, k: u64) -> Result<()> {
        self.pitch = None;
        if self.bar.is_none() {
            // Lenient only (strict has failed on the order): a Position before any Bar opens bar
            // 0. No time signature was written yet, so bar 0 gets one.
            self.open_bar(0);
        }
        let (start, len) = self.bar.expect("opened above");
        let problem = if k >= len {
            let (n, d) = self.meter;
            Some(format!("is outside a bar of {len} steps ({n}/{d})"))
        } else {
            self.last_position
                .filter(|&p| k <= p)
                .map(|p| format!("does not come after Position_{p} in its bar"))
        };
        match problem {
            Some(why) if self.strict => return Err(self.invalid(index, why)),
            // Lenient: a Position outside the bar is skipped with its notes; one that goes back
            // is used.
            Some(_) if k >= len => self.position = None,
            _ => {
                self.position = Some(start + k);
                self.last_position = Some(k);
            }
        }
        self.last_pitch = None;
        self.expect = Expect::Pitch;
        Ok(())
    }

    fn pitch(&mut self, index: usize, p: u8) -> Result<()> {
        if let Some(q) = self.last_pitch.filter(|&q| p <= q) {
            if self.strict {
                let why = format!("does not come after Pitch_{q} at its onset");
                return Err(self.invalid(index, why));
            }
        }
        // A note without a usable Position is dropped (its Velocity and Duration too).
        self.pitch = self.position.map(|_| (p, index));
        self.velocity = None;
        self.expect = Expect::Velocity;
        Ok(())
    }

    /// Completes the note being read, if it has a Position, a Pitch and a Velocity.
    fn duration(&mut self, duration: u64) -> Result<()> {
        if let (Some(start), Some((p, pitch_index)), Some(velocity_bin)) =
            (self.position, self.pitch, self.velocity)
        {
            if let Some((j, j_index)) = self.sounding[p as usize] {
                let earlier: GridNote = self.out.notes[j];
                if self.strict && earlier.start + earlier.duration > start {
                    let why = format!(
                        "starts while the Pitch_{p} of token {j_index} still sounds \
                         (a note must end by the next onset of its pitch)"
                    );
                    return Err(self.invalid(pitch_index, why));
                }
            }
            self.sounding[p as usize] = Some((self.out.notes.len(), pitch_index));
            self.out.notes.push(GridNote {
                start,
                pitch: p,
                duration,
                velocity_bin,
            });
            self.last_pitch = Some(p);
        }
        self.pitch = None;
        self.velocity = None;
        self.expect = Expect::Next;
        Ok(())
    }

    /// After the last token: the end-of-stream checks (strict), then the notes made canonical.
    fn finish(mut self) -> Result<Decoded> {
        if self.strict {
            if self.expect != Expect::Next {
                let why = match self.tokens.last() {
                    None => "the stream is empty".to_string(),
                    Some(t) => format!(
                        "the stream ends after {:?} (expected {}; a stream ends with a note's \
                         Duration)",
                        t.as_ref(),
                        self.expect.describe()
                    ),
                };
                return Err(Error::InvalidSequence {
                    index: self.tokens.len(),
                    token: String::new(),
                    scheme: self.scheme,
                    why,
                });
            }
            if self.with_key && self.out.key.is_none() {
                let why = "a remi+key stream starts with its Key";
                return Err(self.invalid(0, why.into()));
            }
        }
        canonicalize(&mut self.out.notes);
        if self.out.time_signatures.is_empty() {
            self.out.time_signatures.push((0, 4, 4));
        }
        Ok(self.out)
    }
}

/// MIDI file bytes for a decoded stream (format 0, 480 tpq, 120 bpm).
pub fn write(decoded: &Decoded) -> Result<Vec<u8>> {
    let notes: Vec<WriteNote> = decoded
        .notes
        .iter()
        .map(|g| {
            let start = g.start.saturating_mul(TICKS_PER_STEP);
            WriteNote {
                start,
                end: start.saturating_add(g.duration * TICKS_PER_STEP),
                pitch: g.pitch,
                velocity: bin_velocity(g.velocity_bin),
            }
        })
        .collect();
    let signatures: Vec<TimeSignature> = decoded
        .time_signatures
        .iter()
        .map(|&(step, numerator, denominator)| TimeSignature {
            tick: step.saturating_mul(TICKS_PER_STEP),
            numerator,
            denominator,
        })
        .collect();
    let key = decoded.key.map(Key::signature);
    write_track(&notes, TICKS_PER_QUARTER, TEMPO, 0, &signatures, key)
}

/// MIDI file bytes for a token stream ([`decode`] then [`write`]).
pub fn detokenize<S: AsRef<str>>(
    tokens: &[S],
    key_token: KeyToken,
    strict: bool,
) -> Result<Vec<u8>> {
    write(&decode(tokens, key_token, strict)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::parse;

    fn toks(s: &str) -> Vec<&str> {
        s.split_whitespace().collect()
    }

    fn round_trip(stream: &str, key_token: KeyToken) -> Vec<String> {
        let bytes = detokenize(&toks(stream), key_token, true).unwrap();
        let notes = parse(&bytes).unwrap();
        tokenize(&notes, &scan_meta(&bytes), key_token)
            .unwrap()
            .into_iter()
            .map(|t| t.into_owned())
            .collect()
    }

    #[test]
    fn bins_and_grid() {
        assert_eq!(velocity_bin(1), 0);
        assert_eq!(velocity_bin(4), 0);
        assert_eq!(velocity_bin(5), 1);
        assert_eq!(velocity_bin(127), 31);
        assert_eq!(bin_velocity(0), 4);
        assert_eq!(bin_velocity(31), 127);
        for v in 1..=127u8 {
            let b = velocity_bin(v);
            assert!(b < VELOCITY_BINS);
            assert_eq!(velocity_bin(bin_velocity(b)), b);
        }
        assert_eq!(quantize(19, 480), 0);
        assert_eq!(quantize(20, 480), 1);
        assert_eq!(quantize(480, 480), 12);
        assert_eq!(quantize(u64::MAX, 1), u64::MAX);
        assert_eq!(bar_steps(4, 4), Some(48));
        assert_eq!(bar_steps(3, 4), Some(36));
        assert_eq!(bar_steps(6, 8), Some(36));
        assert_eq!(bar_steps(3, 32), None); // 4.5 steps
        assert_eq!(bar_steps(0, 4), None);
        assert_eq!(bar_steps(4, 3), None);
        assert_eq!(bar_steps(65, 4), None);
    }

    #[test]
    fn token_parsing_is_canonical() {
        assert_eq!(parse_token("Bar"), Some(Event::Bar));
        assert_eq!(parse_token("Position_0"), Some(Event::Position(0)));
        assert_eq!(parse_token("Pitch_127"), Some(Event::Pitch(127)));
        assert_eq!(parse_token("Velocity_127"), Some(Event::Velocity(31)));
        assert_eq!(parse_token("Velocity_4"), Some(Event::Velocity(0)));
        assert_eq!(parse_token("Duration_192"), Some(Event::Duration(192)));
        assert_eq!(parse_token("TimeSig_6/8"), Some(Event::TimeSig(6, 8)));
        assert!(matches!(parse_token("Key_A_minor"), Some(Event::Key(_))));
        for bad in [
            "",
            "bar",
            "Position_07",
            "Position_-1",
            "Position_+1",
            "Position_",
            "Position_3072",
            "Pitch_128",
            "Velocity_5",
            "Velocity_0",
            "Velocity_128",
            "Duration_0",
            "Duration_193",
            "TimeSig_4/3",
            "TimeSig_0/4",
            "TimeSig_4",
            "Key_H_major",
            "C4",
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
        // Every token of the alphabet parses back, and each is there once.
        let a = alphabet();
        for s in a {
            assert!(parse_token(s).is_some(), "{s}");
        }
        let distinct: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(distinct.len(), a.len());
        assert_eq!(a[time_sig_id(6, 8) as usize], "TimeSig_6/8");
        assert_eq!(
            a[(DURATION_ID + MAX_DURATION as TokenId - 1) as usize],
            "Duration_192"
        );
    }

    #[test]
    fn round_trips() {
        let s =
            "TimeSig_4/4 Bar Position_0 Pitch_60 Velocity_80 Duration_12 Pitch_64 Velocity_100 \
                 Duration_24 Position_12 Pitch_60 Velocity_4 Duration_36 Bar Bar Position_47 \
                 Pitch_21 Velocity_127 Duration_192";
        assert_eq!(round_trip(s, KeyToken::None), toks(s));
        let s = "Key_F#_minor TimeSig_3/4 Bar Position_35 Pitch_0 Velocity_60 Duration_1 \
                 TimeSig_6/8 Bar TimeSig_3/4 Bar Position_0 Pitch_127 Velocity_60 Duration_2";
        assert_eq!(round_trip(s, KeyToken::Signature), toks(s));
        // A note that ends exactly where the same pitch starts again.
        let s = "TimeSig_4/4 Bar Position_0 Pitch_60 Velocity_80 Duration_3 Position_3 Pitch_60 \
                 Velocity_80 Duration_3";
        assert_eq!(round_trip(s, KeyToken::None), toks(s));
    }

    #[test]
    fn strict_rejects_with_clear_messages() {
        use KeyToken::{None as Plain, Signature};
        // (stream, scheme, what the message must say)
        let cases: &[(&str, KeyToken, &[&str])] = &[
            ("TimeSig_4/4 Bar Pitch_60 Velocity_80 Duration_3", Plain, &["token 2", "cannot follow \"Bar\""]),
            ("TimeSig_4/4 Bar Position_48 Pitch_60 Velocity_80 Duration_3", Plain, &["outside a bar of 48 steps"]),
            ("Bar Position_0 Pitch_60 Velocity_80 Duration_3", Plain, &["cannot start"]),
            ("TimeSig_4/4 Bar Position_0 Pitch_60 Velocity_80", Plain, &["ends after"]),
            (
                "TimeSig_4/4 Bar Position_3 Pitch_60 Velocity_80 Duration_3 Position_3 Pitch_62 Velocity_80 Duration_3",
                Plain,
                &["does not come after Position_3"],
            ),
            (
                "TimeSig_4/4 Bar Position_3 Pitch_62 Velocity_80 Duration_3 Pitch_60 Velocity_80 Duration_3",
                Plain,
                &["does not come after Pitch_62"],
            ),
            (
                "TimeSig_4/4 Bar Position_0 Pitch_60 Velocity_80 Duration_4 Position_3 Pitch_60 Velocity_80 Duration_3",
                Plain,
                &["token 7", "still sounds"],
            ),
            ("TimeSig_4/4 Bar TimeSig_4/4 Bar Position_0 Pitch_60 Velocity_80 Duration_4", Plain, &["repeats"]),
            ("Key_C_major TimeSig_4/4 Bar Position_0 Pitch_60 Velocity_80 Duration_4", Plain, &["remi+key token"]),
            ("TimeSig_4/4 Bar Position_0 Pitch_60 Velocity_80 Duration_4", Signature, &["Key"]),
            (
                "TimeSig_4/4 Bar Position_0 Pitch_60 Velocity_81 Duration_4",
                Plain,
                &["\"Velocity_81\" is not a valid remi token"],
            ),
            ("", Plain, &["empty"]),
            ("TimeSig_4/4 Bar Position_0 Pitch_60 Velocity_80 Duration_4 Bar", Plain, &["ends after \"Bar\""]),
        ];
        for (stream, key, needles) in cases {
            let e = decode(&toks(stream), *key, true).unwrap_err().to_string();
            for needle in *needles {
                assert!(e.contains(needle), "{stream:?}: {e:?} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn lenient_skips_what_it_cannot_use() {
        let s = "junk Pitch_50 Velocity_80 Duration_3 Position_2 Pitch_60 Pitch_61 Velocity_80 \
                 Duration_4 Velocity_8 Bar Position_99 Pitch_70 Velocity_80 Duration_3 Position_1 \
                 Pitch_64 Velocity_80 Duration_200 Position_0 Pitch_62 Velocity_80 Duration_3 \
                 Key_D_major TimeSig_3/4";
        let d = decode(&toks(s), KeyToken::None, false).unwrap();
        let got: Vec<(u64, u8, u64)> = d
            .notes
            .iter()
            .map(|n| (n.start, n.pitch, n.duration))
            .collect();
        assert_eq!(got, vec![(2, 61, 4), (48, 62, 3)]);
        assert_eq!(d.key.unwrap().token(), "Key_D_major");
        assert_eq!(d.time_signatures, vec![(0, 4, 4)]);
        // Overlaps are cut, duplicates merged.
        let s = "Bar Position_0 Pitch_60 Velocity_80 Duration_12 Position_0 Pitch_60 Velocity_8 \
                 Duration_2 Position_6 Pitch_60 Velocity_80 Duration_1";
        let d = decode(&toks(s), KeyToken::None, false).unwrap();
        let got: Vec<(u64, u8, u64)> = d
            .notes
            .iter()
            .map(|n| (n.start, n.pitch, n.duration))
            .collect();
        assert_eq!(got, vec![(0, 60, 6), (6, 60, 1)]);
        let bytes = write(&d).unwrap();
        assert_eq!(parse(&bytes).unwrap().len(), 2);
        // Nothing usable: a file with no notes.
        let d = decode(&toks("Bar Bar nope"), KeyToken::None, false).unwrap();
        assert!(d.notes.is_empty());
        assert!(parse(&write(&d).unwrap()).unwrap().is_empty());
    }

    #[test]
    fn tokenizes_meter_changes_at_bar_lines() {
        // 3/4 at tick 0, 2/4 in the middle of bar 1 (takes effect at bar 2), 4 bars of notes.
        let tpq = 480u16;
        let mut notes = Notes {
            ticks_per_quarter: tpq,
            ..Notes::default()
        };
        for (q, p) in [(0u64, 60u8), (3, 62), (6, 64), (8, 65)] {
            notes.pitch.push(p);
            notes.velocity.push(100);
            notes.start.push(q as f64 * 0.5);
            notes.end.push(q as f64 * 0.5 + 0.5);
            notes.start_tick.push(q * 480);
            notes.end_tick.push(q * 480 + 479);
            notes.track.push(0);
            notes.channel.push(0);
            notes.program.push(0);
            notes.is_drum.push(false);
        }
        let meta = Meta {
            time_signatures: vec![(0, 3, 4), (4 * 480, 2, 4), (0, 5, 3)],
            key: None,
        };
        let got = tokenize(&notes, &meta, KeyToken::None).unwrap();
        let want = "TimeSig_3/4 Bar Position_0 Pitch_60 Velocity_100 Duration_12 Bar Position_0 \
                    Pitch_62 Velocity_100 Duration_12 TimeSig_2/4 Bar Position_0 Pitch_64 \
                    Velocity_100 Duration_12 Bar Position_0 Pitch_65 Velocity_100 Duration_12";
        assert_eq!(got, toks(want));
        let with_key = tokenize(&notes, &meta, KeyToken::Signature).unwrap();
        assert!(with_key[0].starts_with("Key_"));
        notes.is_drum = vec![true; 4];
        assert_eq!(tokenize(&notes, &meta, KeyToken::None), Err(Error::NoNotes));
    }

    #[test]
    fn too_many_bars_is_an_error() {
        let notes = Notes {
            ticks_per_quarter: 1,
            pitch: vec![60],
            velocity: vec![64],
            start: vec![0.0],
            end: vec![1.0],
            track: vec![0],
            channel: vec![0],
            program: vec![0],
            is_drum: vec![false],
            start_tick: vec![1 << 40],
            end_tick: vec![(1 << 40) + 1],
            ..Notes::default()
        };
        let err = tokenize(&notes, &Meta::default(), KeyToken::None).unwrap_err();
        assert!(err.to_string().contains("bars"));
    }

    /// The tokenizer as it was before the streaming writer: grid notes sorted and made canonical
    /// by [`canonicalize`], then bars and onsets from the sorted list (the oracle of the tests
    /// below).
    fn reference_tokens(notes: &Notes, meta: &Meta, key_token: KeyToken) -> Result<Vec<String>> {
        let grid = grid_notes(notes);
        if grid.is_empty() {
            return Err(Error::NoNotes);
        }
        let a = alphabet();
        let signatures = time_signature_steps(
            meta.time_signatures.iter().copied(),
            notes.ticks_per_quarter,
        );
        let mut tokens: Vec<String> = Vec::new();
        let signature = meta.key.filter(|_| key_token == KeyToken::Signature);
        if key_token != KeyToken::None {
            let key = signature.unwrap_or_else(|| key::estimate_notes(notes));
            tokens.push(key.token().to_string());
        }
        let (mut n, mut d) = (4u8, 4u8);
        let mut previous: Option<(u8, u8)> = None;
        let (mut next_sig, mut bar_start, mut bars, mut i) = (0, 0u64, 0u64, 0);
        loop {
            while next_sig < signatures.len() && signatures[next_sig].0 <= bar_start {
                (n, d) = (signatures[next_sig].1, signatures[next_sig].2);
                next_sig += 1;
            }
            if previous != Some((n, d)) {
                tokens.push(format!("TimeSig_{n}/{d}"));
                previous = Some((n, d));
            }
            bars += 1;
            if bars > MAX_BARS {
                return Err(Error::Unsupported(format!(
                    "the notes span more than {MAX_BARS} bars"
                )));
            }
            tokens.push("Bar".into());
            let bar_end = bar_start + bar_steps(n, d).unwrap();
            while i < grid.len() && grid[i].start < bar_end {
                let onset = grid[i].start;
                tokens.push(format!("Position_{}", onset - bar_start));
                while i < grid.len() && grid[i].start == onset {
                    let g = grid[i];
                    tokens.push(format!("Pitch_{}", g.pitch));
                    tokens.push(a[(VELOCITY_ID + g.velocity_bin as TokenId) as usize].into());
                    tokens.push(format!("Duration_{}", g.duration));
                    i += 1;
                }
            }
            if i == grid.len() {
                return Ok(tokens);
            }
            bar_start = bar_end;
        }
    }

    fn strings(tokens: Result<Vec<Token>>) -> Result<Vec<String>> {
        tokens.map(|t| t.into_iter().map(|t| t.into_owned()).collect())
    }

    #[test]
    fn equals_the_reference_on_the_corpus_and_mutations() {
        use crate::testdata::{corpus, mutate, Rng};
        let mut rng = Rng(0x2545_F491_4F6C_DD1D);
        let mut checked = 0;
        for (i, file) in corpus().iter().enumerate() {
            let mut inputs = vec![file.clone()];
            inputs.extend((0..12).map(|_| mutate(&mut rng, file)));
            for (j, bytes) in inputs.iter().enumerate() {
                let meta = scan_meta(bytes);
                // The pedal is applied to the parsed notes in both paths (crate::sustain).
                let sustain = [Sustain::Apply, Sustain::Ignore][j % 2];
                let notes = crate::notes::parse_with(bytes, sustain);
                for key_token in [KeyToken::None, KeyToken::Signature, KeyToken::Estimated] {
                    let want = notes
                        .clone()
                        .and_then(|n| reference_tokens(&n, &meta, key_token));
                    let got = strings(tokenize_bytes(bytes, key_token, sustain));
                    assert_eq!(got, want, "file {i} input {j} {key_token:?}");
                    let ids = tokenize_ids(bytes, key_token, sustain).map(|ids| {
                        ids.iter()
                            .map(|&t| alphabet()[t as usize].to_string())
                            .collect()
                    });
                    assert_eq!(ids, want, "ids of file {i} input {j} {key_token:?}");
                    if let Ok(n) = &notes {
                        let from_notes = strings(tokenize(n, &meta, key_token));
                        assert_eq!(
                            from_notes, want,
                            "notes of file {i} input {j} {key_token:?}"
                        );
                    }
                }
                checked += notes.is_ok() as usize;
            }
        }
        // (Without the shared corpus there is nothing to compare.)
        eprintln!("{checked} parsed inputs compared");
    }

    #[test]
    fn unordered_start_ticks_are_sorted_first() {
        // Notes in order of start time need not be in order of start tick (equal times at huge
        // ticks); the writer then sorts them.
        let mut notes = Notes {
            ticks_per_quarter: 1,
            ..Notes::default()
        };
        for (start, pitch) in [(10u64, 60u8), (2, 62), (2, 61), (10, 60)] {
            notes.pitch.push(pitch);
            notes.velocity.push(pitch);
            notes.start.push(0.0);
            notes.end.push(1.0);
            notes.start_tick.push(start);
            notes.end_tick.push(start + 20);
            notes.track.push(0);
            notes.channel.push(0);
            notes.program.push(0);
            notes.is_drum.push(false);
        }
        let meta = Meta::default();
        for key_token in [KeyToken::None, KeyToken::Estimated] {
            assert_eq!(
                strings(tokenize(&notes, &meta, key_token)),
                reference_tokens(&notes, &meta, key_token)
            );
        }
    }

    #[test]
    fn scans_meta_of_written_files() {
        let s = "Key_A#_major TimeSig_6/8 Bar Position_0 Pitch_60 Velocity_80 Duration_3 \
                 TimeSig_2/2 Bar Position_0 Pitch_60 Velocity_80 Duration_3";
        let bytes = detokenize(&toks(s), KeyToken::Signature, true).unwrap();
        let meta = scan_meta(&bytes);
        assert_eq!(meta.time_signatures, vec![(0, 6, 8), (36 * 40, 2, 2)]);
        assert_eq!(meta.key.unwrap().token(), "Key_A#_major");
        assert_eq!(scan_meta(b"junk"), Meta::default());
    }
}
