//! The "notes-chords" scheme of the paper (Skuldur/Classical-Piano-Composer, via music21).
//!
//! Tokenize: take every non-drum note; group notes whose onsets fall on the same step of a grid
//! of 1/12 quarter note (`round(onset_tick * 12 / ticks_per_quarter)`, halves rounded up; 1/12
//! is the common refinement of music21's default `quarterLengthDivisors` (4, 3)); in onset
//! order, a group with one distinct pitch becomes its name ("C4", "E-4", "F#4", music21's
//! `nameWithOctave`), a group with several distinct pitches becomes music21's `normalOrder`
//! of the chord joined by "." ("4.9", "0.4.7"; C3 + C4 gives "0").
//!
//! Detokenize (as the paper did): token i starts at i * 0.5 quarter note and lasts 0.5 quarter,
//! velocity 80; a note token is that pitch, a chord token's pitch classes are put in octave 4
//! (MIDI 60 + pc). Written as a format 0 file, 480 ticks per quarter, 120 bpm, program 0.

use crate::error::{Error, Result};
use crate::midi_writer::{write_single_track, WriteNote};
use crate::notes::Notes;
use std::sync::OnceLock;

use crate::pitch::{name_with_octave, normal_order_mask, parse_name_with_octave};
use crate::token::{self, Sink, Token, TokenId, Tokens};

/// The scheme's name.
pub const NAME: &str = token::NOTES_CHORDS;

/// Grid steps per quarter note used to group onsets.
pub const STEPS_PER_QUARTER: u64 = 12;

/// Ticks per quarter note of detokenized files.
pub const TICKS_PER_QUARTER: u16 = 480;
/// Tempo of detokenized files, microseconds per quarter (120 bpm).
pub const TEMPO: u32 = 500_000;
/// Spacing and length of each detokenized token, in ticks (half a quarter note).
pub const STEP_TICKS: u64 = TICKS_PER_QUARTER as u64 / 2;
/// Velocity of detokenized notes.
pub const VELOCITY: u8 = 80;

/// The token for a set of simultaneous MIDI pitches (any order, repeats allowed); `None` if
/// there are none.
pub fn chord_token(pitches: &[u8]) -> Option<String> {
    group_token(pitches).map(str::to_string)
}

/// [`chord_token`] from tables built once: 128 note names and the 4095 chords by pitch-class set.
pub fn group_token(pitches: &[u8]) -> Option<&'static str> {
    group_id(pitches).map(|id| alphabet()[id as usize])
}

/// Every token of the scheme, by id (the ids of [`tokenize_ids`]): the 128 note names by MIDI
/// pitch, then the chords by their pitch-class set as a 12-bit mask (1..4096, C = bit 0).
pub fn alphabet() -> &'static [&'static str] {
    static ALPHABET: OnceLock<Vec<&'static str>> = OnceLock::new();
    ALPHABET.get_or_init(|| {
        // Built once per process: the strings live as long as the program.
        let notes = (0..=127u8).map(|p| name_with_octave(p).leak() as &str);
        let chords = (1..4096u16).map(|mask| {
            let order = normal_order_mask(mask);
            let name = order
                .iter()
                .map(|pc| pc.to_string())
                .collect::<Vec<_>>()
                .join(".");
            name.leak() as &str
        });
        notes.chain(chords).collect()
    })
}

/// The id of [`group_token`].
fn group_id(pitches: &[u8]) -> Option<TokenId> {
    let first = *pitches.first()?;
    if pitches.iter().all(|&p| p == first) {
        return Some((first & 0x7f) as TokenId);
    }
    let mask = pitches.iter().fold(0u16, |m, &p| m | 1 << (p % 12));
    Some(127 + mask)
}

/// The MIDI pitches a token stands for when written back: a note name gives its pitch, a chord
/// gives 60 + each pitch class. `None` for anything else (including repeated pitch classes).
pub fn token_pitches(token: &str) -> Option<Vec<u8>> {
    if let Some(p) = parse_name_with_octave(token) {
        return Some(vec![p]);
    }
    let mut seen = 0u16;
    let mut out = Vec::new();
    for part in token.split('.') {
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if part.len() == 2 && part.starts_with('0') {
            return None;
        }
        let pc: u8 = part.parse().ok()?;
        if pc >= 12 || seen & (1 << pc) != 0 {
            return None;
        }
        seen |= 1 << pc;
        out.push(60 + pc);
    }
    Some(out)
}

/// Grid step of an onset tick (round half up).
fn step(tick: u64, ticks_per_quarter: u16) -> u64 {
    let tpq = ticks_per_quarter as u64;
    (tick * STEPS_PER_QUARTER * 2 + tpq) / (2 * tpq)
}

/// [`step`] for one file, without a hardware division for ticks below about 10^8: for a 32-bit
/// numerator `n` and divisor `d`, `n / d == (n * ceil(2^64 / d)) >> 64` (Lemire, Kaser and Kurz,
/// "Faster remainder by direct computation", 2019).
struct Steps {
    tpq: u64,
    magic: u128,
}

impl Steps {
    fn new(ticks_per_quarter: u16) -> Steps {
        let tpq = ticks_per_quarter as u64;
        Steps {
            tpq,
            magic: (u64::MAX / (2 * tpq)) as u128 + 1,
        }
    }

    #[inline]
    fn of(&self, tick: u64) -> u64 {
        let n = tick * STEPS_PER_QUARTER * 2 + self.tpq;
        if n < 1 << 32 {
            ((n as u128 * self.magic) >> 64) as u64
        } else {
            step(tick, self.tpq as u16)
        }
    }
}

/// The tokens of one file.
pub fn tokenize(notes: &Notes) -> Result<Vec<Token>> {
    let onsets = (0..notes.len()).map(|i| (notes.is_drum[i], notes.start_tick[i], notes.pitch[i]));
    let mut out = Tokens {
        alphabet: alphabet(),
        tokens: Vec::new(),
    };
    tokens_of(notes.ticks_per_quarter, onsets, &mut out)?;
    Ok(out.tokens)
}

/// The tokens of a file's bytes: [`tokenize`] of [`crate::notes::parse`], computed from the
/// onsets alone ([`crate::notes::parse_onsets`]) when their tick order is their time order, which
/// skips building the notes' arrays.
pub fn tokenize_bytes(bytes: &[u8]) -> Result<Vec<Token>> {
    let mut out = Tokens {
        alphabet: alphabet(),
        tokens: Vec::new(),
    };
    tokenize_bytes_into(bytes, &mut out)?;
    Ok(out.tokens)
}

/// [`tokenize_bytes`] as ids into [`alphabet`].
pub fn tokenize_ids(bytes: &[u8]) -> Result<Vec<TokenId>> {
    let mut out = Vec::new();
    tokenize_bytes_into(bytes, &mut out)?;
    Ok(out)
}

fn tokenize_bytes_into(bytes: &[u8], out: &mut impl Sink) -> Result<()> {
    let done = crate::notes::with_onsets(bytes, |tpq, notes| {
        tokens_of(
            tpq,
            notes
                .iter()
                .map(|n| (n.channel == 9, n.start_tick, n.pitch)),
            &mut *out,
        )
    })?;
    match done {
        Some(done) => done,
        None => {
            let notes = crate::notes::parse(bytes)?;
            let onsets =
                (0..notes.len()).map(|i| (notes.is_drum[i], notes.start_tick[i], notes.pitch[i]));
            tokens_of(notes.ticks_per_quarter, onsets, out)
        }
    }
}

/// Tokens from (is drum, start tick, pitch) in order of start time. Within a grid step the order
/// does not matter: a group's token depends only on its set of pitches.
fn tokens_of(
    tpq: u16,
    onsets: impl ExactSizeIterator<Item = (bool, u64, u8)>,
    tokens: &mut impl Sink,
) -> Result<()> {
    let steps = Steps::new(tpq);
    tokens.reserve(onsets.len());
    let mut group: Vec<u8> = Vec::new();
    let mut current: Option<u64> = None;
    // The notes of a chord share their tick: one division per distinct tick.
    let (mut last_tick, mut s) = (None, 0);
    for (is_drum, tick, pitch) in onsets {
        if is_drum {
            continue;
        }
        if last_tick != Some(tick) {
            s = steps.of(tick);
            last_tick = Some(tick);
        }
        if current != Some(s) {
            if let Some(id) = group_id(&group) {
                tokens.push(id);
            }
            group.clear();
            current = Some(s);
        }
        group.push(pitch);
    }
    if let Some(id) = group_id(&group) {
        tokens.push(id);
    }
    if tokens.len() == 0 {
        return Err(Error::NoNotes);
    }
    Ok(())
}

/// MIDI file bytes for a token sequence.
pub fn detokenize<S: AsRef<str>>(tokens: &[S]) -> Result<Vec<u8>> {
    let mut notes = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let token = token.as_ref();
        let pitches = token_pitches(token).ok_or_else(|| Error::InvalidToken {
            index: i,
            token: token.to_string(),
            scheme: NAME,
        })?;
        let start = i as u64 * STEP_TICKS;
        for pitch in pitches {
            notes.push(WriteNote {
                start,
                end: start + STEP_TICKS,
                pitch,
                velocity: VELOCITY,
            });
        }
    }
    write_single_track(&notes, TICKS_PER_QUARTER, TEMPO, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::{parse, parse_onsets};
    use crate::testdata::{corpus, mutate, Rng};

    #[test]
    fn chord_tokens() {
        assert_eq!(chord_token(&[60]).unwrap(), "C4");
        assert_eq!(chord_token(&[60, 60]).unwrap(), "C4");
        assert_eq!(chord_token(&[48, 60]).unwrap(), "0");
        assert_eq!(chord_token(&[64, 69]).unwrap(), "4.9");
        assert_eq!(chord_token(&[67, 60, 64]).unwrap(), "0.4.7");
        assert_eq!(chord_token(&[]), None);
    }

    #[test]
    fn token_pitches_accepts_scheme_tokens_only() {
        assert_eq!(token_pitches("E4"), Some(vec![64]));
        assert_eq!(token_pitches("4.9"), Some(vec![64, 69]));
        assert_eq!(token_pitches("11.2"), Some(vec![71, 62]));
        assert_eq!(token_pitches("0"), Some(vec![60]));
        for bad in ["", ".", "4.", "4..9", "12", "4.4", "04", "x", "E4.9", "D-4"] {
            assert_eq!(token_pitches(bad), None, "{bad}");
        }
    }

    #[test]
    fn steps_without_division_are_exact() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for tpq in (1..=40u16).chain([96, 120, 192, 220, 384, 480, 960, 1024, 32767, 65535]) {
            let steps = Steps::new(tpq);
            let limit = (1u64 << 32) / 24 + 10;
            for tick in (0..2000).chain([limit - 20, limit, limit + 5, 1 << 40]) {
                assert_eq!(steps.of(tick), step(tick, tpq), "tick {tick} tpq {tpq}");
            }
            for _ in 0..2000 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let tick = x % limit;
                assert_eq!(steps.of(tick), step(tick, tpq), "tick {tick} tpq {tpq}");
            }
        }
    }

    #[test]
    fn grid_rounds_to_nearest_twelfth() {
        assert_eq!(step(0, 480), 0);
        assert_eq!(step(19, 480), 0); // 0.475 of a step
        assert_eq!(step(20, 480), 1); // exactly half a step rounds up
        assert_eq!(step(40, 480), 1);
        assert_eq!(step(480, 480), 12);
    }

    #[test]
    fn detokenize_round_trip() {
        let tokens = ["C4", "4.9", "B-3", "C4"];
        let bytes = detokenize(&tokens).unwrap();
        let notes = parse(&bytes).unwrap();
        assert_eq!(notes.ticks_per_quarter, 480);
        assert_eq!(notes.pitch, vec![60, 64, 69, 58, 60]);
        assert_eq!(notes.start, vec![0.0, 0.25, 0.25, 0.5, 0.75]);
        assert_eq!(notes.end, vec![0.25, 0.5, 0.5, 0.75, 1.0]);
        assert!(notes.velocity.iter().all(|&v| v == 80));
        assert!(notes.program.iter().all(|&p| p == 0));
        assert_eq!(tokenize(&notes).unwrap(), tokens);
    }

    #[test]
    fn detokenize_rejects_bad_tokens() {
        let err = detokenize(&["C4", "nope"]).unwrap_err();
        assert_eq!(
            err,
            Error::InvalidToken {
                index: 1,
                token: "nope".into(),
                scheme: NAME
            }
        );
        assert!(err.to_string().contains("\"nope\""));
    }

    #[test]
    fn drums_only_is_no_notes() {
        let mut notes = parse(&detokenize(&["C4"]).unwrap()).unwrap();
        notes.is_drum[0] = true;
        assert_eq!(tokenize(&notes), Err(Error::NoNotes));
    }

    #[test]
    fn notes_chords_from_onsets_equals_from_notes() {
        let tokens = |b: &[u8]| tokenize(&parse(b)?);
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        for (i, file) in corpus().iter().enumerate() {
            assert!(parse_onsets(file).unwrap().is_some());
            assert_eq!(tokenize_bytes(file), tokens(file), "file {i}");
            for _ in 0..10 {
                let m = mutate(&mut rng, file);
                assert_eq!(tokenize_bytes(&m), tokens(&m), "mutation of {i}");
            }
        }
    }
}
