//! "performance": the event scheme of Performance RNN and Music Transformer (Oore et al., 2018;
//! Huang et al., 2018) for music played rather than written: when each key goes down and up, in
//! seconds, and how hard it was struck. No bars or beats: a transcription's clock (GiantMIDI-Piano's
//! 120 bpm) is not the music's.
//!
//! # Grid, bins, caps
//! - Time is quantized to [`STEP_SECONDS`] = 10 ms: `step = round(seconds * 100)`.
//! - Velocity: 32 bins of 4 values as in remi (`Velocity_4` .. `Velocity_124`, `Velocity_127`).
//! - Notes are made canonical so that they can be written and read back unchanged: drums (channel
//!   10) left out, a note lasts at least one step and at most [`MAX_NOTE_STEPS`] (10 s), one note
//!   per (onset, pitch) (the longest, then the loudest), a note that lasts past the next onset of
//!   its pitch is cut there.
//! - A piece lasts at most [`MAX_STEPS`] (10 hours; longer is an error, not a huge token list).
//!
//! # Tokens
//! `NoteOn_<0..127>`, `NoteOff_<0..127>`, `TimeShift_<1..100>` (steps of 10 ms, up to 1 s; a longer
//! wait is several), `Velocity_<v>` (the velocity of the note-ons that follow).
//!
//! # Valid streams (what the tokenizer writes; `strict` detokenizing accepts exactly these rules)
//! The stream starts at time 0 with no key down and no velocity. A `TimeShift` moves time on; a
//! `NoteOn_p` needs a velocity set before and `p` up; a `NoteOff_p` needs `p` down since an
//! earlier step; a `Velocity` is followed by a `NoteOn`; no note sounds longer than
//! [`MAX_NOTE_STEPS`]; a stream has a note, and ends on a `NoteOff` with every key up (no wait
//! after the last release: a MIDI file would not keep it). The tokenizer writes, at each step with events,
//! the note-offs by pitch, then per note-on by pitch its `Velocity` (when it changes) and `NoteOn`;
//! for every such stream tokens -> MIDI -> tokens is the identity.
//!
//! # Lenient detokenizing (for model output)
//! Tokens that are not scheme tokens are skipped; a `NoteOn` before any `Velocity` plays at 64; a
//! `NoteOn` of a key that is down ends its note first; a `NoteOff` of a key that is up (or went down
//! on this step) is skipped; a `TimeShift` past [`MAX_STEPS`], and a `NoteOn` or `Velocity` at it,
//! are skipped (so that the file written tokenizes again); notes still down at the end end there
//! (at least one step long); notes are then made canonical as in tokenizing.
//!
//! # Written files
//! Format 0, [`TICKS_PER_QUARTER`] = 500 ticks per quarter at 120 bpm (a tick is a millisecond, a
//! step 10 ticks), program 0, channel 0, 4/4.

use std::hint::select_unpredictable;
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::midi_writer::{write_single_track, WriteNote};
use crate::notes::{Notes, RawNote};
use crate::remi::{bin_velocity, velocity_bin, VELOCITY_BINS};
use crate::sustain::Sustain;
use crate::tempo::TempoMap;
use crate::token::{self, Sink, Token, TokenId, Tokens};

/// The scheme's name.
pub const NAME: &str = token::PERFORMANCE;
/// Seconds per time step.
pub const STEP_SECONDS: f64 = 0.01;
/// The longest `TimeShift`, in steps (1 s).
pub const MAX_SHIFT: u64 = 100;
/// The longest note, in steps (10 s): longer ones are cut (0.15% of GiantMIDI-Piano's notes with
/// the pedal held).
pub const MAX_NOTE_STEPS: u64 = 1000;
/// The longest piece, in steps (10 hours).
pub const MAX_STEPS: u64 = 3_600_000;
/// Ticks per quarter note of written files: at 120 bpm a tick is 1 ms.
pub const TICKS_PER_QUARTER: u16 = 500;
/// Ticks per step of written files.
pub const TICKS_PER_STEP: u64 = 10;
/// Tempo of written files (microseconds per quarter: 120 bpm).
pub const TEMPO: u32 = 500_000;
/// The velocity bin of a `NoteOn` with no `Velocity` before it (lenient decoding): 64's.
const DEFAULT_VELOCITY_BIN: u8 = 15;

// The alphabet ([`alphabet`]), by id.
const NOTE_ON_ID: TokenId = 0;
const NOTE_OFF_ID: TokenId = 128;
/// `TimeShift_1` (shifts start at 1).
const TIME_SHIFT_ID: TokenId = 256;
const VELOCITY_ID: TokenId = TIME_SHIFT_ID + MAX_SHIFT as TokenId;
const ALPHABET_LEN: usize = VELOCITY_ID as usize + VELOCITY_BINS as usize;

/// Every token of the scheme, by id (the ids of [`tokenize_ids`]).
pub fn alphabet() -> &'static [&'static str] {
    static ALPHABET: OnceLock<Vec<&'static str>> = OnceLock::new();
    ALPHABET.get_or_init(|| {
        // Built once per process: the strings live as long as the program.
        let mut tokens: Vec<&'static str> = Vec::with_capacity(ALPHABET_LEN);
        let mut add = |s: String| tokens.push(s.leak());
        (0..128).for_each(|p| add(format!("NoteOn_{p}")));
        (0..128).for_each(|p| add(format!("NoteOff_{p}")));
        (1..=MAX_SHIFT).for_each(|k| add(format!("TimeShift_{k}")));
        (0..VELOCITY_BINS).for_each(|b| add(format!("Velocity_{}", bin_velocity(b))));
        debug_assert_eq!(tokens.len(), ALPHABET_LEN);
        tokens
    })
}

/// One token, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A key goes down.
    NoteOn(u8),
    /// A key goes up.
    NoteOff(u8),
    /// Time moves on by this many steps (1..=100).
    TimeShift(u64),
    /// The velocity bin of the note-ons that follow.
    Velocity(u8),
}

/// The event of a token string, if it is one of the scheme's.
pub fn parse_token(token: &str) -> Option<Event> {
    let (kind, value) = token.split_once('_')?;
    // Canonical numbers only ("NoteOn_060" is not a token).
    let n: u64 = value.parse().ok()?;
    if n.to_string() != value {
        return None;
    }
    match kind {
        "NoteOn" if n < 128 => Some(Event::NoteOn(n as u8)),
        "NoteOff" if n < 128 => Some(Event::NoteOff(n as u8)),
        "TimeShift" if (1..=MAX_SHIFT).contains(&n) => Some(Event::TimeShift(n)),
        "Velocity" => (0..VELOCITY_BINS)
            .find(|&b| bin_velocity(b) as u64 == n)
            .map(Event::Velocity),
        _ => None,
    }
}

/// One note on the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StepNote {
    /// Onset step.
    pub start: u64,
    /// MIDI pitch.
    pub pitch: u8,
    /// Release step, `start + 1 ..= start + MAX_NOTE_STEPS`.
    pub end: u64,
    /// Velocity bin, 0..32.
    pub velocity_bin: u8,
}

/// The step of a time in seconds.
pub fn step(seconds: f64) -> u64 {
    // Times are finite and non-negative (tempo maps only go forwards). `f64::round` (halves away
    // from zero), without its libm call: from 0.5 to 2^52, `x + 0.5` is exact (0.5 is a whole
    // number of x's units in the last place, and a sum that reaches the next power of two is
    // rounded onto a multiple of it, never below it), so truncating it rounds. Below 0.5 the sum
    // may round up to 1.0 (0.5 - 2^-54). Larger (absurd) times saturate, as a float-to-int cast
    // does; negative ones (none) would be 0.
    let x = seconds * 100.0;
    if (0.5..4_503_599_627_370_496.0).contains(&x) {
        // SAFETY: 0.5 <= x < 2^52, so x + 0.5 is finite and below 2^63: the truncation fits an
        // i64, without the checks of a saturating cast (two conversions a note).
        return unsafe { (x + 0.5).to_int_unchecked::<i64>() } as u64;
    }
    if x < 0.5 {
        return 0;
    }
    x.round() as u64
}

/// Makes notes canonical: sorted by (onset, pitch), one per (onset, pitch) (the longest, then the
/// loudest), each 1..=MAX_NOTE_STEPS long and cut at the next onset of its pitch.
pub fn canonicalize(notes: &mut Vec<StepNote>) {
    for n in notes.iter_mut() {
        n.end = n.end.clamp(n.start + 1, n.start + MAX_NOTE_STEPS);
    }
    notes.sort_unstable_by(|a, b| {
        (a.start, a.pitch, b.end, b.velocity_bin).cmp(&(b.start, b.pitch, a.end, a.velocity_bin))
    });
    notes.dedup_by(|later, first| later.start == first.start && later.pitch == first.pitch);
    let mut last: [Option<usize>; 128] = [None; 128];
    for i in 0..notes.len() {
        let p = (notes[i].pitch & 0x7f) as usize;
        if let Some(j) = last[p] {
            notes[j].end = notes[j].end.min(notes[i].start);
        }
        last[p] = Some(i);
    }
}

/// The non-drum notes of parsed notes on the grid, canonical.
pub fn step_notes(notes: &Notes) -> Vec<StepNote> {
    let mut out: Vec<StepNote> = (0..notes.len())
        .filter(|&i| !notes.is_drum[i])
        .map(|i| StepNote {
            start: step(notes.start[i]),
            pitch: notes.pitch[i] & 0x7f,
            end: step(notes.end[i]),
            velocity_bin: velocity_bin(notes.velocity[i]),
        })
        .collect();
    canonicalize(&mut out);
    out
}

/// The tokens of parsed notes (their pedal as the caller parsed them).
pub fn tokenize(notes: &Notes) -> Result<Vec<Token>> {
    let mut out = Tokens {
        alphabet: alphabet(),
        tokens: Vec::new(),
    };
    write_tokens(&step_notes(notes), &mut out)?;
    Ok(out.tokens)
}

/// The tokens of a MIDI file's bytes: [`tokenize`] of [`crate::notes::parse_with`], straight from
/// the parser's buffers.
pub fn tokenize_bytes(bytes: &[u8], sustain: Sustain) -> Result<Vec<Token>> {
    let mut out = Tokens {
        alphabet: alphabet(),
        tokens: Vec::new(),
    };
    out.extend(&tokenize_ids(bytes, sustain)?);
    Ok(out.tokens)
}

/// [`tokenize_bytes`] as ids into [`alphabet`].
pub fn tokenize_ids(bytes: &[u8], sustain: Sustain) -> Result<Vec<TokenId>> {
    crate::notes::with_scan(bytes, sustain, |scan| write_raw(scan.notes, scan.tempo))?
}

/// [`write_tokens`] of the parser's notes (sorted by start tick, so by step), as a few passes over
/// flat arrays of packed keys rather than one loop that branches on what the music does next (a
/// performance's next velocity, chord size or release is a coin toss to a branch predictor):
///
/// 1. each note's key `(onset, pitch, length, velocity bin)`, kept in order by an insertion that
///    only moves the notes of a chord ([`note_on_keys`]);
/// 2. one per (onset, pitch), the last of its run (the longest, then the loudest); each cuts the
///    note before it of its pitch at its onset, and gives its note-off key `(end, pitch)`;
/// 3. the note-offs sorted ([`radix_sort`]);
/// 4. the two sorted streams merged by a select, offs first at a step, each event written with
///    its `TimeShift` and `Velocity` kept or dropped by a flag ([`Out::put_if`]).
///
/// The same tokens and errors as canonicalizing first ([`step_notes`]; the tests compare them on
/// every shared file and on mutations of them). The arrays are kept per thread from file to file.
fn write_raw(raw: &[RawNote], tempo: &TempoMap) -> Result<Vec<TokenId>> {
    KEYS.with(|cell| {
        let mut keys = cell.take();
        let result = keys.write(raw, tempo);
        // Keep the arrays for the next file, but not ones grown for a huge file.
        if keys.ons.capacity() <= 1 << 20 {
            *cell.borrow_mut() = keys;
        }
        result
    })
}

thread_local! {
    /// See [`write_raw`].
    static KEYS: std::cell::RefCell<Keys> = const {
        std::cell::RefCell::new(Keys { ons: Vec::new(), offs: Vec::new(), spare: Vec::new() })
    };
}

/// The packed keys of [`write_raw`]. Each orders as the tokens do: a note-on
/// `onset << 13 | 1 << 12 | pitch << 5 | velocity bin`, a note-off `end << 13 | pitch << 5`
/// (kept as `end << 7 | pitch` while sorted, then as `end << 8 | pitch`), so that at one step the
/// offs come first, each kind by pitch. Onsets are below [`MAX_STEPS`] here and ends within
/// [`MAX_NOTE_STEPS`] of them, both below 2^22: a key fits 35 bits, a sorted note-off 29.
#[derive(Default)]
struct Keys {
    ons: Vec<u64>,
    offs: Vec<u32>,
    /// The other buffer of [`radix_sort`].
    spare: Vec<u32>,
}

/// A note-on key's bit above its pitch: after the offs of its step.
const ON_BIT: u64 = 1 << 12;
/// Past every key: the ends of the two streams (a note-off key as sorted, and a note-on key).
const END_OF_OFFS: u32 = u32::MAX;
const END_OF_ONS: u64 = 1 << 41;

impl Keys {
    fn write(&mut self, raw: &[RawNote], tempo: &TempoMap) -> Result<Vec<TokenId>> {
        // 1. Keys in (onset, pitch, length, velocity bin) order: onset << 22 | pitch << 15 |
        //    length << 5 | bin (lengths are 1..=MAX_NOTE_STEPS < 2^10).
        let ons = &mut self.ons;
        // Each kind of clock in a loop of its own (most pieces have one tempo: no segment to
        // look up, and no test of the kind a tick).
        let sorted = match Clock::new(tempo) {
            Clock::One { scale } => {
                let steps = |tick: u64| Clock::One { scale }.step(tick);
                note_on_keys(raw, ons, steps, steps)
            }
            Clock::Map { .. } => {
                let (mut starts, mut ends) = (Clock::new(tempo), Clock::new(tempo));
                note_on_keys(raw, ons, |t| starts.step(t), |t| ends.step(t))
            }
        };
        let Some(sorted) = sorted else {
            // A note struck at the 10-hour end or past it: its end is too late whatever else the
            // piece holds. Canonicalizing says how late the last note ends.
            return write_steps(raw, tempo);
        };
        if !sorted {
            ons.sort_unstable();
        }
        if ons.is_empty() {
            return Err(Error::NoNotes);
        }
        // 2. The last key of each (onset, pitch) run, rewritten in place as a note-on key; its
        //    note-off key at the same index + 1 of `offs` (0 is a slot for cuts of nothing).
        ons.push(u64::MAX);
        let offs = &mut self.offs;
        offs.clear();
        offs.resize(ons.len() + 2, 0);
        let mut last = [0usize; 128];
        let mut kept = 0;
        for i in 0..ons.len() - 1 {
            let (key, next) = (ons[i], ons[i + 1]);
            let (at, p) = (key >> 22, key >> 15 & 0x7f);
            let end = at + (key >> 5 & 0x3ff);
            // The note before of this pitch ends here at the latest (a pitch's earlier note of
            // this same onset, in the slot about to be written again, too: harmless).
            let before = &mut offs[last[p as usize]];
            *before = (*before).min((at << 7 | p) as u32);
            ons[kept] = at << 13 | ON_BIT | p << 5 | (key & 0x1f);
            offs[kept + 1] = (end << 7 | p) as u32;
            last[p as usize] = kept + 1;
            // Kept when it is the last of its run: the next key has another onset or pitch.
            kept += (key >> 15 != next >> 15) as usize;
        }
        // 3. The note-offs in order. None ends past the last onset's longest note.
        self.spare.resize(kept + 3, 0);
        let last_onset = ons[kept - 1] >> 13;
        let bound = ((last_onset + MAX_NOTE_STEPS) << 7 | 0x7f) as u32;
        let offs = if radix_sort(&mut offs[1..=kept], &mut self.spare[1..=kept], bound) {
            &mut self.spare
        } else {
            &mut self.offs
        };
        let last_end = (offs[kept] >> 8) as u64;
        if last_end > MAX_STEPS {
            return Err(too_long(last_end));
        }
        // 4. The merge. Each stream ends in its end key, and one slot more for the merge's
        //    look-ahead (never taken: the merge ends when both streams are at their ends).
        let ons = &mut self.ons;
        ons.truncate(kept);
        ons.extend([END_OF_ONS; 2]);
        offs[kept + 1] = END_OF_OFFS;
        Ok(merge(ons, &offs[..kept + 3], last_end))
    }
}

/// Step 4 of [`Keys::write`]: the tokens of the note-on keys `ons` and the note-off keys `offs`
/// (from index 1), each sorted and ending in its end key and one slot more, where `last_end` is
/// the last note-off's step: 2 events a note, a `Velocity` at most a note-on, and the
/// `TimeShift`s (one write an event, and one more per 100 steps of the piece). A function of its
/// own, so that its values have the registers to themselves.
#[inline(never)]
fn merge(ons: &[u64], offs: &[u32], last_end: u64) -> Vec<TokenId> {
    let kept = ons.len() - 2;
    assert!(offs.len() == kept + 3 && ons[kept] == END_OF_ONS && offs[kept + 1] == END_OF_OFFS);
    let mut out = Out::with_capacity(5 * kept + (last_end / MAX_SHIFT) as usize + 1);
    let (mut on, mut off) = (0, 1);
    let (mut now, mut velocity) = (0u64, NO_VELOCITY);
    // The two streams' next keys, held across iterations: an iteration loads the key after each
    // before it compares them, so the loads are not on the loop's chain of dependences (a
    // comparison and two selects an event, not a comparison and the load it chooses).
    let (mut a, mut b) = ((offs[off] as u64) << 5, ons[on]);
    for _ in 0..2 * kept {
        // SAFETY: each stream's index stops at its end key (the events are as many as the keys
        // before the two end keys), whose next slot is within the slice (asserted above).
        let (next_a, next_b) = unsafe {
            (
                (*offs.get_unchecked(off + 1) as u64) << 5,
                *ons.get_unchecked(on + 1),
            )
        };
        let is_off = a < b;
        let key = select_unpredictable(is_off, a, b);
        a = select_unpredictable(is_off, next_a, a);
        b = select_unpredictable(is_off, b, next_b);
        let (at, p, bin) = (key >> 13, (key >> 5 & 0x7f) as TokenId, (key & 0x1f) as u32);
        out.shift(at - now);
        now = at;
        let is_on = !is_off;
        out.put_if(VELOCITY_ID + bin as TokenId, is_on & (bin != velocity));
        velocity = if is_on { bin } else { velocity };
        out.put(if is_off { NOTE_OFF_ID } else { NOTE_ON_ID } + p);
        off += is_off as usize;
        on += is_on as usize;
    }
    out.finish()
}

/// Sorts note-off keys `end << 7 | pitch` (each at most `bound`, below 2^29) by a stable counting
/// sort on as few digits as `bound` needs, of at most [`DIGIT_BITS`] bits each and equal widths
/// (two passes of 11 bits for pieces under 5.3 minutes), between `keys` and `spare` (as long), and
/// writes them as `end << 8 | pitch` in the last pass (the merge's form, whose bit 7 is the
/// note-on's: packing the pitch in 7 bits while sorting saves a pass for pieces of 2.7 to 5.3
/// minutes). Returns whether the sorted keys ended in `spare`. A pass but the last where every
/// key has the same digit is skipped.
fn radix_sort(keys: &mut [u32], spare: &mut [u32], bound: u32) -> bool {
    let bits = u32::BITS - bound.leading_zeros();
    let passes = bits.div_ceil(DIGIT_BITS).max(1) as usize;
    let width = bits.div_ceil(passes as u32);
    let mask = (1u32 << width) - 1;
    let buckets = 1usize << width;
    let mut counts = [[0u32; 1 << DIGIT_BITS]; 3];
    for &k in keys.iter() {
        counts[0][(k & mask) as usize] += 1;
        counts[1][(k >> width & mask) as usize] += 1;
        counts[2][(k >> (2 * width) & mask) as usize] += 1;
    }
    let (mut from, mut to) = (keys, spare);
    let mut swapped = false;
    for (pass, count) in counts.iter_mut().take(passes).enumerate() {
        let shift = width * pass as u32;
        let Some(&first) = from.first() else {
            break;
        };
        let last = pass + 1 == passes;
        if !last && count[(first >> shift & mask) as usize] as usize == from.len() {
            continue;
        }
        let mut sum = 0;
        for c in count[..buckets].iter_mut() {
            (*c, sum) = (sum, sum + *c);
        }
        if last {
            for &k in from.iter() {
                let d = (k >> shift & mask) as usize;
                to[count[d] as usize] = k + (k & !0x7f);
                count[d] += 1;
            }
        } else {
            for &k in from.iter() {
                let d = (k >> shift & mask) as usize;
                to[count[d] as usize] = k;
                count[d] += 1;
            }
        }
        (from, to) = (to, from);
        swapped = !swapped;
    }
    swapped
}

/// The widest digit of [`radix_sort`]: three of them cover every key.
const DIGIT_BITS: u32 = 11;

/// Step 1 of [`Keys::write`]: the note-on keys of the non-drum notes in `keys` (cleared first),
/// with `start` and `end` the steps of their ticks: whether they came in order, or `None` for a
/// note struck at [`MAX_STEPS`] or later.
///
/// Each key goes into its place among the keys so far by an insertion that moves at most
/// [`MAX_MOVES`] keys. The parser's notes come by onset tick, so only a chord's notes (one onset
/// step) move, past the few struck with it; a file made to move more (thousands of notes at one
/// tick in falling pitch) would take quadratic time, and is sorted once at the end instead.
#[inline(always)]
fn note_on_keys(
    raw: &[RawNote],
    keys: &mut Vec<u64>,
    mut start: impl FnMut(u64) -> u64,
    mut end: impl FnMut(u64) -> u64,
) -> Option<bool> {
    keys.clear();
    // With room for the end keys that steps 2 and 4 append.
    keys.reserve(raw.len() + 2);
    // The insertion works on the reserved room by pointer: `len` stays below `raw.len()`, within
    // the capacity, and no length or capacity is stored or tested a note.
    let base = keys.as_mut_ptr();
    let mut len = 0usize;
    let mut sorted = true;
    for r in raw.iter().filter(|r| r.channel != 9) {
        let at = start(r.start_tick);
        if at >= MAX_STEPS {
            return None;
        }
        let end = end(r.end_tick).clamp(at + 1, at + MAX_NOTE_STEPS);
        let key = at << 22
            | ((r.pitch & 0x7f) as u64) << 15
            | (end - at) << 5
            | velocity_bin(r.velocity) as u64;
        // SAFETY: slots `..=len` are within the capacity (above), and `..len` were written.
        unsafe {
            let mut i = len;
            let floor = i.saturating_sub(MAX_MOVES);
            while i > floor && *base.add(i - 1) > key {
                *base.add(i) = *base.add(i - 1);
                i -= 1;
            }
            *base.add(i) = key;
            sorted &= i == 0 || *base.add(i - 1) <= key;
        }
        len += 1;
    }
    // SAFETY: the first `len` slots were written.
    unsafe { keys.set_len(len) };
    Some(sorted)
}

/// See [`note_on_keys`]: more than a chord of every key moves.
const MAX_MOVES: usize = 256;

/// [`write_tokens`] of the notes canonicalized first: for what the packed keys of [`Keys`] cannot
/// hold (a note struck 10 hours in or later: an error).
#[cold]
fn write_steps(raw: &[RawNote], tempo: &TempoMap) -> Result<Vec<TokenId>> {
    let mut notes: Vec<StepNote> = raw
        .iter()
        .filter(|r| r.channel != 9)
        .map(|r| StepNote {
            start: step(tempo.seconds(r.start_tick)),
            pitch: r.pitch & 0x7f,
            end: step(tempo.seconds(r.end_tick)),
            velocity_bin: velocity_bin(r.velocity),
        })
        .collect();
    canonicalize(&mut notes);
    let mut out = Vec::new();
    write_tokens(&notes, &mut out)?;
    Ok(out)
}

/// No `Velocity` written yet.
const NO_VELOCITY: u32 = u32::MAX;

/// The token buffer of [`write_raw`], written without a capacity test per token: its capacity is
/// set once for the most the piece can write.
struct Out {
    ids: Vec<TokenId>,
    /// Tokens written (`ids` is kept at length 0 until [`Out::finish`]).
    len: usize,
}

impl Out {
    fn with_capacity(capacity: usize) -> Self {
        Out {
            ids: Vec::with_capacity(capacity),
            len: 0,
        }
    }

    #[inline(always)]
    fn put(&mut self, id: TokenId) {
        self.put_if(id, true);
    }

    /// Writes `id`, and keeps it only if `keep`: a write either way, a branch neither way.
    #[inline(always)]
    fn put_if(&mut self, id: TokenId, keep: bool) {
        debug_assert!(self.len < self.ids.capacity());
        // SAFETY: `len` is below the capacity, which is set for the most tokens the piece can
        // keep, plus one (where `Out` is made), and a write only follows a kept token.
        unsafe { self.ids.as_mut_ptr().add(self.len).write(id) };
        self.len += keep as usize;
    }

    /// `TimeShift`s for `steps`: whole seconds first, then the rest. At most `steps / 100 + 1`
    /// writes.
    #[inline(always)]
    fn shift(&mut self, mut steps: u64) {
        while steps > MAX_SHIFT {
            self.put(TIME_SHIFT_ID + (MAX_SHIFT - 1) as TokenId);
            steps -= MAX_SHIFT;
        }
        // With no steps the id written (and dropped) wraps around: any value will do.
        let id = TIME_SHIFT_ID.wrapping_add(steps.wrapping_sub(1) as TokenId);
        self.put_if(id, steps > 0);
    }

    fn finish(mut self) -> Vec<TokenId> {
        // SAFETY: the first `len` slots were written (`put_if` writes before it counts).
        unsafe { self.ids.set_len(self.len) };
        self.ids
    }
}

/// The step of a tick ([`step`] of [`TempoMap::seconds`]), for ticks that come near one another.
enum Clock<'a> {
    /// One tempo from tick 0: seconds are `scale * tick`, without looking up a segment.
    One { scale: f64 },
    /// Tempo changes: the segment found from the last one.
    Map { tempo: &'a TempoMap, cursor: usize },
}

impl<'a> Clock<'a> {
    fn new(tempo: &'a TempoMap) -> Self {
        match tempo.segments() {
            // `start + scale * delta` with start 0.0 and delta = tick: `scale * tick` exactly.
            [only] if only.tick == 0 && only.start == 0.0 => Clock::One { scale: only.scale },
            _ => Clock::Map { tempo, cursor: 0 },
        }
    }

    #[inline(always)]
    fn step(&mut self, tick: u64) -> u64 {
        match self {
            Clock::One { scale } if tick < 1 << 63 => step(*scale * tick as i64 as f64),
            Clock::One { scale } => step(*scale * tick as f64),
            Clock::Map { tempo, cursor } => step(tempo.seconds_near(tick, cursor)),
        }
    }
}

/// A piece longer than [`MAX_STEPS`].
fn too_long(end: u64) -> Error {
    Error::Unsupported(format!(
        "the notes last {:.0} s, more than {} hours",
        end as f64 * STEP_SECONDS,
        MAX_STEPS / 360_000
    ))
}

/// Writes the event stream of canonical notes: at each step with events the note-offs by pitch,
/// then the note-ons by pitch, each after its `Velocity` when that changes; `TimeShift`s between.
fn write_tokens(notes: &[StepNote], out: &mut impl Sink) -> Result<()> {
    if notes.is_empty() {
        return Err(Error::NoNotes);
    }
    let last = notes.iter().map(|n| n.end).max().unwrap_or(0);
    if last > MAX_STEPS {
        return Err(too_long(last));
    }
    // Note-offs as (end, pitch) keys in one u64, sorted: the note-ons are sorted already.
    let mut offs: Vec<u64> = notes.iter().map(|n| n.end << 8 | n.pitch as u64).collect();
    offs.sort_unstable();
    out.reserve(notes.len() * 3 + last as usize / MAX_SHIFT as usize + 8);
    let (mut now, mut velocity) = (0u64, None);
    let (mut on, mut off) = (0usize, 0usize);
    while off < offs.len() {
        let off_step = offs[off] >> 8;
        // Offs first at a step: a key struck again is released before it goes down.
        let (at, is_off) = match notes.get(on) {
            Some(n) if n.start < off_step => (n.start, false),
            _ => (off_step, true),
        };
        shift(out, at - now);
        now = at;
        if is_off {
            out.push(NOTE_OFF_ID + (offs[off] & 0x7f) as TokenId);
            off += 1;
        } else {
            let n = notes[on];
            if velocity != Some(n.velocity_bin) {
                out.push(VELOCITY_ID + n.velocity_bin as TokenId);
                velocity = Some(n.velocity_bin);
            }
            out.push(NOTE_ON_ID + n.pitch as TokenId);
            on += 1;
        }
    }
    Ok(())
}

/// `TimeShift`s for `steps`: whole seconds first, then the rest.
fn shift(out: &mut impl Sink, mut steps: u64) {
    while steps > 0 {
        let k = steps.min(MAX_SHIFT);
        out.push(TIME_SHIFT_ID + (k - 1) as TokenId);
        steps -= k;
    }
}

/// Where a stream stands: what strict decoding, lenient decoding and the sampling grammar share.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The current step.
    pub now: u64,
    /// Per pitch: the step its key went down, if it is down.
    pub down: [Option<u64>; 128],
    /// Per pitch: the velocity bin of its last note-on.
    on_velocity: [u8; 128],
    /// Keys down.
    pub sounding: u32,
    /// The velocity bin in force.
    pub velocity: Option<u8>,
    /// Whether the last token was a `Velocity` (a `NoteOn` must follow).
    pub after_velocity: bool,
    /// Note-ons and note-offs written.
    pub ons: u64,
    /// Notes completed (note-offs).
    pub offs: u64,
}

impl Default for Stream {
    fn default() -> Self {
        Stream {
            now: 0,
            down: [None; 128],
            on_velocity: [DEFAULT_VELOCITY_BIN; 128],
            sounding: 0,
            velocity: None,
            after_velocity: false,
            ons: 0,
            offs: 0,
        }
    }
}

impl Stream {
    /// The step of the earliest key still down.
    pub fn earliest_down(&self) -> Option<u64> {
        if self.sounding == 0 {
            return None;
        }
        self.down.iter().flatten().min().copied()
    }

    /// The longest `TimeShift` that keeps every sounding note within [`MAX_NOTE_STEPS`] (and the
    /// piece within [`MAX_STEPS`]).
    pub fn shift_room(&self) -> u64 {
        let limit = self
            .earliest_down()
            .map_or(MAX_STEPS, |start| start + MAX_NOTE_STEPS)
            .min(MAX_STEPS);
        limit.saturating_sub(self.now).min(MAX_SHIFT)
    }

    /// Why `event` may not come next in a strict stream, or None if it may.
    pub fn refuses(&self, event: Event) -> Option<&'static str> {
        match event {
            _ if self.after_velocity && !matches!(event, Event::NoteOn(_)) => {
                Some("cannot follow a Velocity (expected NoteOn)")
            }
            // A note struck at the end of the longest piece could never be released.
            Event::NoteOn(_) | Event::Velocity(_) if self.now >= MAX_STEPS => {
                Some("comes at the 10-hour end of a piece (no room for a note)")
            }
            Event::NoteOn(_) if self.velocity.is_none() => Some("comes before any Velocity"),
            Event::NoteOn(p) if self.down[p as usize].is_some() => {
                Some("is for a key that is down already")
            }
            Event::NoteOff(p) => match self.down[p as usize] {
                None => Some("is for a key that is not down"),
                Some(start) if start == self.now => {
                    Some("ends a note on the step it began (no length)")
                }
                Some(_) => None,
            },
            Event::TimeShift(k) if k > self.shift_room() => {
                Some("holds a note longer than 10 s (or the piece past 10 hours)")
            }
            _ => None,
        }
    }

    /// Takes `event` (which [`Stream::refuses`] allows); a completed note is returned as
    /// (start, pitch, end, velocity bin).
    pub fn take(&mut self, event: Event) -> Option<StepNote> {
        self.after_velocity = false;
        match event {
            Event::NoteOn(p) => {
                self.down[p as usize] = Some(self.now);
                self.sounding += 1;
                self.ons += 1;
                // The velocity travels with the note until its note-off.
                self.on_velocity[p as usize] = self.velocity.unwrap_or(DEFAULT_VELOCITY_BIN);
                None
            }
            Event::NoteOff(p) => {
                let start = self.down[p as usize].take()?;
                self.sounding -= 1;
                self.offs += 1;
                Some(StepNote {
                    start,
                    pitch: p,
                    end: self.now,
                    velocity_bin: self.on_velocity[p as usize],
                })
            }
            Event::TimeShift(k) => {
                self.now += k;
                None
            }
            Event::Velocity(b) => {
                self.velocity = Some(b);
                self.after_velocity = true;
                None
            }
        }
    }
}

/// The notes of a token stream. `strict` fails on the first token that is not the scheme's
/// ([`Error::InvalidToken`]) or breaks the rules of valid streams ([`Error::InvalidSequence`]);
/// otherwise decoding is lenient (see the module's documentation).
pub fn decode<S: AsRef<str>>(tokens: &[S], strict: bool) -> Result<Vec<StepNote>> {
    let mut s = Stream::default();
    let mut notes = Vec::new();
    // Whether the last scheme token was a TimeShift (strict: the tokenizer ends on a NoteOff).
    let mut shifted_last = false;
    for (index, token) in tokens.iter().enumerate() {
        let token = token.as_ref();
        let Some(event) = parse_token(token) else {
            if strict {
                return Err(Error::InvalidToken {
                    index,
                    token: token.to_string(),
                    scheme: NAME,
                });
            }
            continue;
        };
        if strict {
            if let Some(why) = s.refuses(event) {
                return Err(Error::InvalidSequence {
                    index,
                    token: token.to_string(),
                    scheme: NAME,
                    why: why.to_string(),
                });
            }
        } else {
            match event {
                // Past the 10-hour limit no note fits (the piece's time shifts stop there too).
                Event::NoteOn(_) | Event::Velocity(_) if s.now >= MAX_STEPS => continue,
                Event::NoteOn(p) => {
                    if let Some(start) = s.down[p as usize] {
                        if start < s.now {
                            if let Some(n) = s.take(Event::NoteOff(p)) {
                                notes.push(n);
                            }
                        } else {
                            // Struck twice on one step: the later note-on wins.
                            s.down[p as usize] = None;
                            s.sounding -= 1;
                        }
                    }
                }
                Event::NoteOff(p) if s.down[p as usize].is_none_or(|start| start == s.now) => {
                    continue;
                }
                Event::TimeShift(k) if s.now + k > MAX_STEPS => continue,
                _ => {}
            }
        }
        shifted_last = matches!(event, Event::TimeShift(_));
        if let Some(n) = s.take(event) {
            notes.push(n);
        }
    }
    if strict && (notes.is_empty() || shifted_last) && !s.after_velocity && s.sounding == 0 {
        // Streams the tokenizer writes have notes and end on their last release: a wait after it (or
        // a stream of waits) would be lost by the MIDI file, and tokens -> MIDI -> tokens would not
        // be the identity.
        return Err(Error::InvalidSequence {
            index: tokens.len(),
            token: String::new(),
            scheme: NAME,
            why: if notes.is_empty() {
                "the stream has no notes".into()
            } else {
                "the stream ends with a TimeShift (expected the end after the last NoteOff)".into()
            },
        });
    }
    if strict && (s.after_velocity || s.sounding > 0) {
        return Err(Error::InvalidSequence {
            index: tokens.len(),
            token: String::new(),
            scheme: NAME,
            why: if s.after_velocity {
                "the stream ends after a Velocity (expected NoteOn)".into()
            } else {
                format!(
                    "the stream ends with {} {} down (expected NoteOff)",
                    s.sounding,
                    if s.sounding == 1 { "key" } else { "keys" }
                )
            },
        });
    }
    for p in 0..128u8 {
        if let Some(start) = s.down[p as usize] {
            notes.push(StepNote {
                start,
                pitch: p,
                end: s.now.max(start + 1),
                velocity_bin: s.on_velocity[p as usize],
            });
        }
    }
    canonicalize(&mut notes);
    Ok(notes)
}

/// MIDI file bytes of notes on the grid (see the module's documentation).
pub fn write(notes: &[StepNote]) -> Result<Vec<u8>> {
    let notes: Vec<WriteNote> = notes
        .iter()
        .map(|n| WriteNote {
            start: n.start * TICKS_PER_STEP,
            end: n.end * TICKS_PER_STEP,
            pitch: n.pitch,
            velocity: bin_velocity(n.velocity_bin),
        })
        .collect();
    write_single_track(&notes, TICKS_PER_QUARTER, TEMPO, 0)
}

/// MIDI file bytes for a token stream ([`decode`], then [`write`]).
pub fn detokenize<S: AsRef<str>>(tokens: &[S], strict: bool) -> Result<Vec<u8>> {
    write(&decode(tokens, strict)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::parse_with;

    fn strings(tokens: &[Token]) -> Vec<String> {
        tokens.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn the_off_sort_orders_keys_of_every_length_of_piece() {
        let mut rng = crate::testdata::Rng(0x9E37_79B9_7F4A_7C15);
        // Pieces from 10 s to the 10-hour end: two passes of the sort or three, of every width,
        // and passes skipped (ends crowded on a few steps).
        for last_onset in [0, 200, 16_000, 40_000, 300_000, MAX_STEPS - 1] {
            for spread in [1, 3, last_onset + MAX_NOTE_STEPS] {
                let n = 1 + rng.below(3000);
                let mut keys: Vec<u32> = (0..n)
                    .map(|_| {
                        let end = last_onset + MAX_NOTE_STEPS - rng.below(spread as usize) as u64;
                        (end << 7 | rng.below(128) as u64) as u32
                    })
                    .collect();
                let bound = ((last_onset + MAX_NOTE_STEPS) << 7 | 0x7f) as u32;
                let mut want: Vec<u32> = keys.iter().map(|&k| k + (k & !0x7f)).collect();
                want.sort_unstable();
                let mut spare = vec![0; n];
                let sorted = if radix_sort(&mut keys, &mut spare, bound) {
                    spare
                } else {
                    keys
                };
                assert_eq!(sorted, want, "last onset {last_onset}, spread {spread}");
            }
        }
    }

    /// `step` is `f64::round` of the steps, on halves, their neighbours and random times.
    #[test]
    fn steps_round_halves_away_from_zero() {
        let round = |seconds: f64| (seconds * 100.0).round().max(0.0) as u64;
        let mut times: Vec<f64> = vec![0.0, 0.004_999_999_999_999_999, 0.005, 1e300, f64::NAN];
        for x in [
            0.5f64,
            1.5,
            2.5,
            1e3 + 0.5,
            4.5e6 + 0.5,
            2f64.powi(51) + 0.5,
            2f64.powi(52),
        ] {
            for x in [x, x.next_down(), x.next_up(), x.next_down().next_down()] {
                times.push(x / 100.0);
                // The times whose steps are near x: the product seconds * 100 rounds onto them.
                times.push((x / 100.0).next_down());
                times.push((x / 100.0).next_up());
            }
        }
        times.push(0.499_999_999_999_999_94 / 100.0);
        let mut rng = crate::testdata::Rng(3);
        for _ in 0..200_000 {
            let ticks = rng.below(1 << 24) as f64;
            let scale =
                60.0 / ((6e7 / (1 + rng.below(1 << 24)) as f64) * (1 + rng.below(960)) as f64);
            times.push(scale * ticks);
        }
        for t in times {
            if t.is_nan() {
                assert_eq!(step(t), (t * 100.0).round() as u64);
            } else {
                assert_eq!(step(t), round(t), "{t:e}");
            }
        }
    }

    #[test]
    fn writes_offs_before_ons_and_velocity_only_when_it_changes() {
        let notes = vec![
            StepNote {
                start: 0,
                pitch: 60,
                end: 50,
                velocity_bin: 20,
            },
            StepNote {
                start: 0,
                pitch: 64,
                end: 150,
                velocity_bin: 20,
            },
            StepNote {
                start: 50,
                pitch: 60,
                end: 60,
                velocity_bin: 10,
            },
        ];
        let mut out = Tokens {
            alphabet: alphabet(),
            tokens: Vec::new(),
        };
        write_tokens(&notes, &mut out).unwrap();
        assert_eq!(
            strings(&out.tokens),
            [
                "Velocity_84",
                "NoteOn_60",
                "NoteOn_64",
                "TimeShift_50",
                "NoteOff_60",
                "Velocity_44",
                "NoteOn_60",
                "TimeShift_10",
                "NoteOff_60",
                "TimeShift_90",
                "NoteOff_64"
            ]
        );
        assert_eq!(decode(&out.tokens, true).unwrap(), notes);
    }

    #[test]
    fn the_round_trip_is_exact_on_the_grid() {
        let mut checked = 0;
        for file in crate::testdata::corpus().iter() {
            let Ok(tokens) = tokenize_bytes(file, Sustain::Apply) else {
                continue;
            };
            let bytes = detokenize(&tokens, true).unwrap();
            assert_eq!(tokenize_bytes(&bytes, Sustain::Apply).unwrap(), tokens);
            // The file's own notes, on the grid, are the decoded ones.
            let notes = parse_with(file, Sustain::Apply).unwrap();
            assert_eq!(step_notes(&notes), decode(&tokens, true).unwrap());
            // The streaming writer of the bytes path writes what canonicalizing first does.
            assert_eq!(tokenize(&notes).unwrap(), tokens);
            checked += 1;
        }
        assert!(checked > 0 || crate::testdata::corpus().is_empty());
    }

    #[test]
    fn the_bytes_path_writes_what_canonicalizing_first_does_on_mutated_files_too() {
        // Mutations make the notes no real file has: chords of one key, notes of no length,
        // notes past the end of the piece, absurd tempos. Errors must agree too.
        let mut rng = crate::testdata::Rng(0x005E_ED0F_5EED);
        for (i, file) in crate::testdata::corpus().iter().enumerate() {
            for sustain in [Sustain::Apply, Sustain::Ignore] {
                let canonical = |b: &[u8]| tokenize(&parse_with(b, sustain)?);
                assert_eq!(tokenize_bytes(file, sustain), canonical(file), "file {i}");
                for _ in 0..5 {
                    let m = crate::testdata::mutate(&mut rng, file);
                    assert_eq!(
                        tokenize_bytes(&m, sustain),
                        canonical(&m),
                        "mutation of {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_piece_past_the_ten_hour_end_is_refused_as_canonicalizing_first_refuses_it() {
        let note = |start, pitch, end| StepNote {
            start,
            pitch,
            end,
            velocity_bin: 20,
        };
        let pieces = [
            // The longest note is cut by its key struck again: the later end is the one named.
            vec![
                note(MAX_STEPS - 500, 60, MAX_STEPS + 400),
                note(MAX_STEPS - 300, 62, MAX_STEPS + 20),
                note(MAX_STEPS - 100, 60, MAX_STEPS + 50),
            ],
            // A note struck past the end (keys that do not fit the packed keys).
            vec![note(10, 60, 20), note(MAX_STEPS + 10, 61, MAX_STEPS + 30)],
        ];
        for (i, notes) in pieces.iter().enumerate() {
            let bytes = write(notes).unwrap();
            let canonical = tokenize(&parse_with(&bytes, Sustain::Apply).unwrap());
            let got = tokenize_bytes(&bytes, Sustain::Apply);
            assert_eq!(got, canonical, "piece {i}");
            let why = got.unwrap_err().to_string();
            assert!(why.contains("more than 10 hours"), "{why}");
        }
    }

    #[test]
    fn every_key_struck_again_and_again_in_falling_pitch_at_one_tick_is_written_in_order() {
        // 768 notes at tick 0, each run of 128 from the top key down: past a few hundred, the
        // insertion gives up and the keys are sorted once (the same tokens).
        use crate::testdata::{off, on, smf};
        let mut body: Vec<u8> = Vec::new();
        for run in 0..6u8 {
            for p in (0..128u8).rev() {
                body.extend_from_slice(&on(0, 0, p, 20 + run));
            }
        }
        for run in 0..6u8 {
            for p in 0..128u8 {
                body.extend_from_slice(&off(if run == 0 && p == 0 { 96 } else { 0 }, 0, p));
            }
        }
        let bytes = smf(0, 96, &[body]);
        let got = tokenize_bytes(&bytes, Sustain::Apply).unwrap();
        assert_eq!(
            Ok(got.clone()),
            tokenize(&parse_with(&bytes, Sustain::Apply).unwrap())
        );
        assert_eq!(got.iter().filter(|t| t.starts_with("NoteOn_")).count(), 128);
    }

    #[test]
    fn strict_refuses_what_breaks_the_rules() {
        let bad: &[(&[&str], usize)] = &[
            (&["NoteOn_60"], 0),
            (&["Velocity_64", "TimeShift_1"], 1),
            (&["Velocity_64", "NoteOn_60", "NoteOn_60"], 2),
            (&["Velocity_64", "NoteOn_60", "NoteOff_60"], 2),
            (&["NoteOff_60"], 0),
            (&["Velocity_64", "NoteOn_60", "TimeShift_5"], 3),
            (&["Velocity_64"], 1),
            (&["Velocity_65"], 0),
            (&["NoteOn_060"], 0),
            // No note, or a wait after the last release: the tokenizer writes neither.
            (&[], 0),
            (&["TimeShift_5"], 1),
            (
                &[
                    "Velocity_64",
                    "NoteOn_60",
                    "TimeShift_5",
                    "NoteOff_60",
                    "TimeShift_3",
                ],
                5,
            ),
        ];
        for (tokens, at) in bad {
            match decode(tokens, true) {
                Err(Error::InvalidSequence { index, .. } | Error::InvalidToken { index, .. }) => {
                    assert_eq!(index, *at, "{tokens:?}")
                }
                other => panic!("{tokens:?}: {other:?}"),
            }
        }
        // Held past 10 s.
        let mut long = vec!["Velocity_64", "NoteOn_60"];
        long.extend(std::iter::repeat_n("TimeShift_100", 10));
        long.push("NoteOff_60");
        assert!(decode(&long, true).is_ok());
        long.insert(2, "TimeShift_1");
        assert!(matches!(
            decode(&long, true),
            Err(Error::InvalidSequence { index: 12, .. })
        ));
    }

    /// At the 10-hour end of a piece no note may be struck: strict decoding refuses it, lenient
    /// decoding skips it, so that the file it writes tokenizes again.
    #[test]
    fn nothing_is_struck_at_the_ten_hour_end() {
        let mut stream: Vec<&str> = vec![
            "Velocity_64",
            "NoteOn_60",
            "TimeShift_1",
            "NoteOff_60",
            "TimeShift_99",
        ];
        // To the end exactly: 1 + 99 + 35,999 * 100 steps.
        stream.extend(std::iter::repeat_n("TimeShift_100", 35_999));
        let at_end = stream.len();
        stream.extend(["Velocity_100", "NoteOn_61", "TimeShift_1", "NoteOff_61"]);
        match decode(&stream, true) {
            Err(Error::InvalidSequence { index, why, .. }) => {
                assert_eq!(index, at_end);
                assert!(why.contains("10-hour end"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let notes = decode(&stream, false).unwrap();
        assert_eq!(notes.len(), 1, "{notes:?}");
        let again = tokenize_bytes(&write(&notes).unwrap(), Sustain::Apply).unwrap();
        assert_eq!(
            strings(&again),
            ["Velocity_64", "NoteOn_60", "TimeShift_1", "NoteOff_60"]
        );
        // A piece that ends at the limit with a key down: released there.
        let mut held = vec!["Velocity_64", "NoteOn_60"];
        held.extend(std::iter::repeat_n("TimeShift_100", 36_001));
        let notes = decode(&held, false).unwrap();
        assert_eq!((notes[0].start, notes[0].end), (0, MAX_NOTE_STEPS));
        assert!(tokenize_bytes(&write(&notes).unwrap(), Sustain::Apply).is_ok());
    }

    #[test]
    fn lenient_decoding_keeps_what_it_can() {
        let tokens = [
            "NoteOn_60",
            "nope",
            "NoteOff_61",
            "TimeShift_10",
            "NoteOn_60",
            "TimeShift_5",
            "NoteOff_60",
            "NoteOn_62",
        ];
        let notes = decode(&tokens, false).unwrap();
        let want = vec![
            StepNote {
                start: 0,
                pitch: 60,
                end: 10,
                velocity_bin: DEFAULT_VELOCITY_BIN,
            },
            StepNote {
                start: 10,
                pitch: 60,
                end: 15,
                velocity_bin: DEFAULT_VELOCITY_BIN,
            },
            StepNote {
                start: 15,
                pitch: 62,
                end: 16,
                velocity_bin: DEFAULT_VELOCITY_BIN,
            },
        ];
        assert_eq!(notes, want);
        // Every lenient decode writes a file that strict tokens come back from.
        let bytes = detokenize(&tokens, false).unwrap();
        let again = tokenize_bytes(&bytes, Sustain::Apply).unwrap();
        assert_eq!(decode(&again, true).unwrap(), want);
    }
}
