//! The remi grammar as a sampler needs it: for streams written one token at a time, which
//! vocabulary ids may come next so that every stream stays one that strict decoding accepts
//! ([`crate::remi::decode`] with `strict`), whatever the model would rather write.
//!
//! The rules are strict decoding's, read forwards: the order of the kinds (a Key first for
//! remi+key, a TimeSig, then Bars, each onset a Position followed by notes of Pitch, Velocity and
//! Duration), a Position inside its bar and after the bar's last one, pitches rising at an onset,
//! no TimeSig repeating the meter in force, and no note of a pitch that still sounds. The last rule
//! looks back, so a stream never reaches a dead end: a Position is offered only where some pitch
//! of the vocabulary is free, and a Bar is always allowed after a note or an onset-less bar.
//!
//! One rule is the sampler's own, not decoding's: at most [`MAX_EMPTY_BARS`] bars in a row without
//! a note (unless no note could start in the bar), so that a stream asked for N notes gets them in
//! a bounded number of tokens however much an untrained model likes to open bars.

use crate::error::{Error, Result};
use crate::remi::{bar_steps, parse_token, Event, Expect, MAX_BARS};

/// Bars in a row without a note that a sampled stream may open (rests of two bars stay possible).
pub const MAX_EMPTY_BARS: u32 = 2;

/// One stream's state, as much as the rules need.
#[derive(Debug, Clone)]
struct Stream {
    expect: Expect,
    /// The meter in force (None before the first Bar) and one a TimeSig set for the next bar.
    meter: Option<(u8, u8)>,
    pending: Option<(u8, u8)>,
    /// The current bar: its first step and its length in steps.
    bar_start: u64,
    bar_len: u64,
    bars: u64,
    /// The last Position of the bar, and the onset (absolute step) it stands for.
    last_position: Option<u64>,
    onset: u64,
    /// The last pitch written at the onset, and the pitch of the note being written.
    last_pitch: Option<u8>,
    pitch: u8,
    /// Per pitch: the step where its last note ends (0: never played).
    ends: [u64; 128],
    notes: u64,
    /// Bars closed in a row without a note.
    empty_bars: u32,
}

impl Stream {
    fn new(key_written: bool) -> Self {
        Stream {
            expect: if key_written {
                Expect::FirstTimeSig
            } else {
                Expect::Start
            },
            meter: None,
            pending: None,
            bar_start: 0,
            bar_len: 0,
            bars: 0,
            last_position: None,
            onset: 0,
            last_pitch: None,
            pitch: 0,
            ends: [0; 128],
            notes: 0,
            empty_bars: 0,
        }
    }
}

/// The grammar for a batch of streams over one vocabulary.
#[derive(Debug, Clone)]
pub struct Grammar {
    /// Each vocabulary id's token, parsed (None: not a token of the scheme, never allowed).
    events: Vec<Option<Event>>,
    with_key: bool,
    /// The pitches and the Positions the vocabulary can write.
    pitches: Vec<u8>,
    positions: Vec<u64>,
    streams: Vec<Stream>,
}

/// Per stream and step: the earliest onset at which some pitch is free, and whether the bar may close.
#[derive(Clone, Copy)]
struct Room {
    free_from: u64,
    may_close: bool,
}

impl Grammar {
    /// `rows` empty streams of a remi scheme (`with_key`: remi+key, whose streams start with a Key;
    /// `key_written`: that Key is written by the caller, so the streams start after it).
    pub fn new<S: AsRef<str>>(vocab: &[S], with_key: bool, rows: usize, key_written: bool) -> Self {
        let events: Vec<Option<Event>> = vocab.iter().map(|t| parse_token(t.as_ref())).collect();
        let mut pitches: Vec<u8> = events
            .iter()
            .filter_map(|e| match e {
                Some(Event::Pitch(p)) => Some(*p),
                _ => None,
            })
            .collect();
        pitches.sort_unstable();
        pitches.dedup();
        let positions = events
            .iter()
            .filter_map(|e| match e {
                Some(Event::Position(k)) => Some(*k),
                _ => None,
            })
            .collect();
        Grammar {
            events,
            with_key,
            pitches,
            positions,
            streams: vec![Stream::new(key_written && with_key); rows],
        }
    }

    pub fn rows(&self) -> usize {
        self.streams.len()
    }

    pub fn vocab_len(&self) -> usize {
        self.events.len()
    }

    /// Writes into `out` (one flag per vocabulary id) which tokens stream `row` may take next.
    pub fn allowed(&self, row: usize, out: &mut [bool]) {
        let s = &self.streams[row];
        let room = self.room(s);
        for (flag, event) in out.iter_mut().zip(&self.events) {
            *flag = self.allows(s, room, event);
        }
    }

    /// What the checks of one stream's next token share, worked out once per stream and step.
    fn room(&self, s: &Stream) -> Room {
        // The earliest step at which some pitch of the vocabulary is free: a Position before it
        // would leave no note to write.
        let free_from = self
            .pitches
            .iter()
            .map(|&p| s.ends[p as usize])
            .min()
            .unwrap_or(u64::MAX);
        // In a bar without a note yet, another Bar (or a TimeSig, which leads to one) is offered
        // only within the empty-bar allowance, or when no note could start in this bar.
        let note_possible = self
            .positions
            .iter()
            .any(|&k| k < s.bar_len && s.bar_start + k >= free_from);
        let may_close =
            s.expect != Expect::Onset || s.empty_bars < MAX_EMPTY_BARS || !note_possible;
        Room {
            free_from,
            may_close,
        }
    }

    /// Whether stream `s` may take `event` next.
    fn allows(&self, s: &Stream, room: Room, event: &Option<Event>) -> bool {
        match event {
            None => false,
            Some(Event::Key(_)) => s.expect == Expect::Start && self.with_key,
            Some(Event::TimeSig(n, d)) => match s.expect {
                Expect::Start => !self.with_key,
                Expect::FirstTimeSig => true,
                Expect::Onset | Expect::Next => s.meter != Some((*n, *d)) && room.may_close,
                _ => false,
            },
            Some(Event::Bar) => {
                matches!(s.expect, Expect::Bar | Expect::Onset | Expect::Next)
                    && s.bars < MAX_BARS
                    && room.may_close
            }
            Some(Event::Position(k)) => {
                matches!(s.expect, Expect::Onset | Expect::Next)
                    && *k < s.bar_len
                    && s.last_position.is_none_or(|p| *k > p)
                    && s.bar_start + k >= room.free_from
            }
            Some(Event::Pitch(p)) => {
                let at_onset = match s.expect {
                    Expect::Pitch => true,
                    Expect::Next => s.last_pitch.is_some_and(|q| *p > q),
                    _ => false,
                };
                at_onset && s.ends[*p as usize] <= s.onset
            }
            Some(Event::Velocity(_)) => s.expect == Expect::Velocity,
            Some(Event::Duration(_)) => s.expect == Expect::Duration,
        }
    }

    /// Whether stream `row` may take vocabulary id `id` next.
    pub fn allows_id(&self, row: usize, id: usize) -> bool {
        let s = &self.streams[row];
        self.events
            .get(id)
            .is_some_and(|event| self.allows(s, self.room(s), event))
    }

    /// Stream `row` takes vocabulary id `id`; an id the grammar does not allow there is an error.
    /// Only that id is checked (not the whole vocabulary, which `allowed` has just gone through).
    pub fn push(&mut self, row: usize, id: usize) -> Result<()> {
        if !self.allows_id(row, id) {
            return Err(Error::InvalidArgument(format!(
                "token id {id} is not allowed next in stream {row}"
            )));
        }
        let event = self.events[id].expect("allowed ids are tokens");
        let s = &mut self.streams[row];
        match event {
            Event::Key(_) => s.expect = Expect::FirstTimeSig,
            Event::TimeSig(n, d) => {
                s.pending = Some((n, d));
                s.expect = Expect::Bar;
            }
            Event::Bar => {
                if s.meter.is_some() {
                    // The bar closing had a note if a Position came in it (a note follows each).
                    s.empty_bars = if s.last_position.is_some() {
                        0
                    } else {
                        s.empty_bars + 1
                    };
                }
                let start = if s.meter.is_some() {
                    s.bar_start + s.bar_len
                } else {
                    0
                };
                let (n, d) = s.pending.take().or(s.meter).expect("a TimeSig came first");
                s.meter = Some((n, d));
                s.bar_start = start;
                s.bar_len = bar_steps(n, d).expect("parsed meters have bars");
                s.bars += 1;
                s.last_position = None;
                s.expect = Expect::Onset;
            }
            Event::Position(k) => {
                s.last_position = Some(k);
                s.onset = s.bar_start + k;
                s.last_pitch = None;
                s.expect = Expect::Pitch;
            }
            Event::Pitch(p) => {
                s.pitch = p;
                s.expect = Expect::Velocity;
            }
            Event::Velocity(_) => s.expect = Expect::Duration,
            Event::Duration(d) => {
                s.ends[s.pitch as usize] = s.onset + d;
                s.last_pitch = Some(s.pitch);
                s.notes += 1;
                s.expect = Expect::Next;
            }
        }
        Ok(())
    }

    /// The notes stream `row` has written (each completed by its Duration).
    pub fn notes(&self, row: usize) -> u64 {
        self.streams[row].notes
    }

    /// Whether stream `row` may end here (strict decoding wants a note's Duration last).
    pub fn can_end(&self, row: usize) -> bool {
        self.streams[row].expect == Expect::Next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remi::{decode, KeyToken};
    use crate::scheme::Scheme;
    use crate::testdata::{corpus, Rng};

    fn vocab_of_corpus() -> Vec<String> {
        let files = corpus();
        let mut vocab: Vec<String> = files
            .iter()
            .take(40)
            .filter_map(|b| Scheme::RemiKey.tokenize_bytes(b).ok())
            .flatten()
            .map(|t| t.to_string())
            .collect();
        vocab.sort();
        vocab.dedup();
        vocab.push("<pad>".into()); // not a remi token: never allowed
        vocab
    }

    /// Random walks through the grammar: every stream it lets through decodes strictly, with one
    /// note per Duration, and no state is a dead end.
    #[test]
    fn random_streams_always_decode_strictly() {
        let vocab = vocab_of_corpus();
        if vocab.len() < 10 {
            return; // no shared corpus beside the repository
        }
        let mut rng = Rng(0x5eed);
        for (with_key, key_written) in [(false, false), (true, false), (true, true)] {
            let rows = 16;
            let mut g = Grammar::new(&vocab, with_key, rows, key_written);
            let mut streams: Vec<Vec<&str>> = vec![Vec::new(); rows];
            if key_written {
                let key = vocab.iter().find(|t| t.starts_with("Key_")).unwrap();
                streams.iter_mut().for_each(|s| s.push(key));
            }
            let mut allowed = vec![false; vocab.len()];
            for _ in 0..600 {
                for (row, stream) in streams.iter_mut().enumerate() {
                    g.allowed(row, &mut allowed);
                    let ids: Vec<usize> = (0..vocab.len()).filter(|&i| allowed[i]).collect();
                    assert!(!ids.is_empty(), "a dead end after {stream:?}");
                    let id = ids[(rng.next() % ids.len() as u64) as usize];
                    g.push(row, id).unwrap();
                    stream.push(&vocab[id]);
                }
            }
            let key_token = if with_key {
                KeyToken::Signature
            } else {
                KeyToken::None
            };
            for (row, stream) in streams.iter_mut().enumerate() {
                while !g.can_end(row) {
                    g.allowed(row, &mut allowed);
                    let id = (0..vocab.len()).find(|&i| allowed[i]).unwrap();
                    g.push(row, id).unwrap();
                    stream.push(&vocab[id]);
                }
                let decoded =
                    decode(stream, key_token, true).unwrap_or_else(|e| panic!("{e} in {stream:?}"));
                assert_eq!(decoded.notes.len() as u64, g.notes(row));
                assert!(g.notes(row) > 0);
            }
        }
    }

    #[test]
    fn bars_without_notes_are_limited() {
        let vocab = [
            "TimeSig_4/4",
            "Bar",
            "Position_0",
            "Pitch_60",
            "Velocity_80",
            "Duration_12",
        ];
        let mut g = Grammar::new(&vocab, false, 1, false);
        let mut allowed = vec![false; vocab.len()];
        for id in [0, 1, 1, 1] {
            g.push(0, id).unwrap(); // TimeSig, then three bars: two of them closed empty
        }
        g.allowed(0, &mut allowed);
        assert_eq!(
            allowed,
            [false, false, true, false, false, false],
            "a note must come now"
        );
        for id in [2, 3, 4, 5, 1, 1] {
            g.push(0, id).unwrap(); // a note, then bars again: the allowance starts over
        }
        g.allowed(0, &mut allowed);
        assert!(allowed[1]);
    }

    #[test]
    fn refuses_what_strict_decoding_refuses() {
        let vocab = [
            "TimeSig_4/4",
            "Bar",
            "Position_0",
            "Position_12",
            "Pitch_60",
            "Pitch_64",
            "Velocity_80",
            "Duration_96",
        ];
        let mut g = Grammar::new(&vocab, false, 1, false);
        assert!(g.push(0, 1).is_err(), "a Bar before any TimeSig");
        for id in [0, 1, 3, 5, 6, 7] {
            g.push(0, id).unwrap(); // Position_12 Pitch_64 for 96 steps: it sounds until step 108
        }
        assert!(
            g.push(0, 4).is_err(),
            "Pitch_60 after Pitch_64 at one onset"
        );
        assert!(g.push(0, 2).is_err(), "Position_0 after Position_12");
        g.push(0, 1).unwrap(); // the next bar starts at step 48, Pitch_64 still sounds
        let mut allowed = vec![false; vocab.len()];
        g.push(0, 2).unwrap();
        g.allowed(0, &mut allowed);
        assert_eq!(
            allowed,
            [false, false, false, false, true, false, false, false]
        );
        assert!(g.push(0, 9).is_err(), "an id outside the vocabulary");
        assert!(!g.can_end(0));
    }
}
