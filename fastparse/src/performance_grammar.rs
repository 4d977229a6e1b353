//! The performance grammar as a sampler needs it: for streams written one token at a time, which
//! vocabulary ids may come next so that every stream stays one that strict decoding accepts
//! ([`crate::performance::decode`] with `strict`) and ends with exactly the notes asked for.
//!
//! The rules are strict decoding's ([`Stream::refuses`]: a velocity before the first note-on and a
//! note-on after every velocity, a note-on only for a key that is up, a note-off only for a key
//! down since an earlier step, no note held past 10 s), and the sampler's own:
//! - a stream asked for N notes strikes N keys, then only releases them (and waits): it is
//!   finished when its N notes are complete, with every key up;
//! - a `Velocity` is offered only where a note-on can follow, and not the one in force;
//! - at most [`MAX_SHIFTS_IN_A_ROW`] `TimeShift`s in a row (3 s of silence or holding), so that
//!   N notes come in a bounded number of tokens however much an untrained model likes to wait;
//! - a `TimeShift` leaves a step for each note still to strike and one more before the 10-hour end
//!   of a piece ([`MAX_STEPS`]), where no note may be struck.
//!
//! No stream reaches a dead end: a key down since an earlier step can be released, a key that went
//! down on this step can wait (`TimeShift_1` is in every usable vocabulary, a note-on resets the
//! count of waits, and the steps kept for the notes to strike leave room for it), and with every
//! key up a velocity or a note-on can come while notes are to be struck (the kept steps put them
//! before the end); when none are, the stream is finished.

use crate::error::{Error, Result};
use crate::performance::{parse_token, Event, Stream, MAX_STEPS, NAME};

/// `TimeShift`s in a row that a sampled stream may write.
pub const MAX_SHIFTS_IN_A_ROW: u32 = 3;

/// One stream: the decoder's state and the sampler's count of waits.
#[derive(Debug, Clone, Default)]
struct Row {
    stream: Stream,
    shifts_in_a_row: u32,
}

/// The grammar for a batch of streams over one vocabulary.
#[derive(Debug, Clone)]
pub struct PerformanceGrammar {
    /// Each vocabulary id's token, parsed (None: not a token of the scheme, never allowed).
    events: Vec<Option<Event>>,
    /// The pitches the vocabulary can both strike and release.
    playable: [bool; 128],
    /// Notes each stream is to write.
    notes: u64,
    rows: Vec<Row>,
}

impl PerformanceGrammar {
    /// `rows` empty streams, each to write `notes` notes. A vocabulary that cannot write a
    /// performance (no pitch with both its `NoteOn` and `NoteOff`, no `Velocity`, no
    /// `TimeShift_1`) is [`Error::InvalidArgument`], and so are more notes than a piece has steps.
    pub fn new<S: AsRef<str>>(vocab: &[S], rows: usize, notes: u64) -> Result<Self> {
        if notes >= MAX_STEPS {
            return Err(Error::InvalidArgument(format!(
                "a {NAME} stream holds fewer than {MAX_STEPS} notes (one 10 ms step each at least), \
                 not {notes}"
            )));
        }
        let events: Vec<Option<Event>> = vocab.iter().map(|t| parse_token(t.as_ref())).collect();
        let mut on = [false; 128];
        let mut off = [false; 128];
        for e in events.iter().flatten() {
            match *e {
                Event::NoteOn(p) => on[p as usize] = true,
                Event::NoteOff(p) => off[p as usize] = true,
                _ => {}
            }
        }
        let playable: [bool; 128] = std::array::from_fn(|p| on[p] && off[p]);
        let has = |f: fn(&Event) -> bool| events.iter().flatten().any(f);
        if !playable.contains(&true)
            || !has(|e| matches!(e, Event::Velocity(_)))
            || !has(|e| *e == Event::TimeShift(1))
        {
            return Err(Error::InvalidArgument(format!(
                "this vocabulary cannot write a {NAME} stream: it needs a NoteOn and NoteOff of one \
                 pitch, a Velocity and TimeShift_1"
            )));
        }
        Ok(PerformanceGrammar {
            events,
            playable,
            notes,
            rows: vec![Row::default(); rows],
        })
    }

    /// The number of streams.
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// The vocabulary's size.
    pub fn vocab_len(&self) -> usize {
        self.events.len()
    }

    /// Whether stream `row` may take `event` next; `free`: some playable key is up.
    fn allows(&self, row: &Row, free: bool, event: Event) -> bool {
        let s = &row.stream;
        if s.refuses(event).is_some() {
            return false;
        }
        let strike = s.ons < self.notes;
        match event {
            Event::NoteOn(p) => strike && self.playable[p as usize],
            Event::Velocity(b) => strike && free && s.velocity != Some(b),
            Event::NoteOff(_) => true,
            Event::TimeShift(k) => {
                // Invariant: now + (notes to strike) + 1 <= MAX_STEPS, so that the notes still to
                // come, and a wait for keys struck on this step, fit before the end.
                let kept = self.notes - s.ons + 1;
                row.shifts_in_a_row < MAX_SHIFTS_IN_A_ROW && s.now + k + kept <= MAX_STEPS
            }
        }
    }

    /// Writes into `out` (one flag per vocabulary id) which tokens stream `row` may take next. A
    /// finished stream allows everything (the sampler discards its choice).
    pub fn allowed(&self, row: usize, out: &mut [bool]) {
        let r = &self.rows[row];
        if self.finished(row) {
            out.fill(true);
            return;
        }
        let free = (0..128).any(|p| self.playable[p] && r.stream.down[p].is_none());
        for (flag, event) in out.iter_mut().zip(&self.events) {
            *flag = event.is_some_and(|e| self.allows(r, free, e));
        }
    }

    /// Whether stream `row` may take vocabulary id `id` next (a finished stream takes none).
    pub fn allows_id(&self, row: usize, id: usize) -> bool {
        let Some(event) = self.events.get(id).copied().flatten() else {
            return false;
        };
        let r = &self.rows[row];
        let free = (0..128).any(|p| self.playable[p] && r.stream.down[p].is_none());
        !self.finished(row) && self.allows(r, free, event)
    }

    /// Appends vocabulary id `id` to stream `row`: [`Error::InvalidSequence`] if it is not
    /// allowed there.
    pub fn push(&mut self, row: usize, id: usize) -> Result<()> {
        if !self.allows_id(row, id) {
            return Err(Error::InvalidSequence {
                index: id,
                token: String::new(),
                scheme: NAME,
                why: format!("id {id} is not allowed next in stream {row}"),
            });
        }
        let event = self.events[id].expect("allowed ids are tokens");
        let r = &mut self.rows[row];
        r.shifts_in_a_row = match event {
            Event::TimeShift(_) => r.shifts_in_a_row + 1,
            _ => 0,
        };
        r.stream.take(event);
        Ok(())
    }

    /// The notes stream `row` has completed (struck and released).
    pub fn notes(&self, row: usize) -> u64 {
        self.rows[row].stream.offs
    }

    /// Whether stream `row` may end here: every key up, no velocity waiting for its note.
    pub fn can_end(&self, row: usize) -> bool {
        let s = &self.rows[row].stream;
        s.sounding == 0 && !s.after_velocity
    }

    fn finished(&self, row: usize) -> bool {
        self.rows[row].stream.offs >= self.notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::performance::{alphabet, decode};
    use crate::testdata::Rng;

    #[test]
    fn random_streams_decode_strictly_with_the_notes_asked_for() {
        // The whole alphabet, and a small vocabulary of a few pitches.
        let full: Vec<&str> = alphabet().to_vec();
        let small: Vec<&str> = vec![
            "NoteOn_60",
            "NoteOff_60",
            "NoteOn_62",
            "NoteOff_62",
            "NoteOn_70",
            "TimeShift_1",
            "TimeShift_100",
            "Velocity_64",
            "Velocity_100",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for vocab in [&full, &small] {
            for notes in [1u64, 7, 40] {
                let mut g = PerformanceGrammar::new(vocab, 4, notes).unwrap();
                let mut streams: Vec<Vec<&str>> = vec![Vec::new(); 4];
                let mut flags = vec![false; vocab.len()];
                let cap = 9 * notes as usize + 3;
                for _ in 0..cap {
                    for (row, stream) in streams.iter_mut().enumerate() {
                        if g.notes(row) >= notes {
                            continue;
                        }
                        g.allowed(row, &mut flags);
                        let ids: Vec<usize> = (0..flags.len()).filter(|&i| flags[i]).collect();
                        assert!(!ids.is_empty(), "a dead end after {stream:?}");
                        let id = ids[rng.next() as usize % ids.len()];
                        g.push(row, id).unwrap();
                        stream.push(vocab[id]);
                    }
                }
                for (row, stream) in streams.iter().enumerate() {
                    // Within 9 tokens a note (and 3 more): a velocity, on, off, 3 waits each side.
                    assert_eq!(g.notes(row), notes, "{stream:?}");
                    assert!(g.can_end(row));
                    assert_eq!(decode(stream, true).unwrap().len() as u64, notes);
                }
                if vocab.len() == small.len() {
                    // "NoteOn_70" has no NoteOff in the small vocabulary: never struck.
                    assert!(streams.iter().flatten().all(|t| *t != "NoteOn_70"));
                }
            }
        }
    }

    #[test]
    fn refuses_what_breaks_the_rules_and_vocabularies_that_cannot_play() {
        let vocab = ["Velocity_64", "NoteOn_60", "NoteOff_60", "TimeShift_1"];
        let mut g = PerformanceGrammar::new(&vocab, 1, 1).unwrap();
        assert!(g.push(0, 1).is_err()); // a note-on before any velocity
        g.push(0, 0).unwrap();
        assert!(g.push(0, 0).is_err()); // the velocity in force, and a velocity after a velocity
        g.push(0, 1).unwrap();
        assert!(g.push(0, 2).is_err()); // released on the step it was struck
        g.push(0, 3).unwrap();
        assert!(!g.can_end(0));
        g.push(0, 2).unwrap();
        assert!(g.can_end(0) && g.notes(0) == 1);
        assert!(
            PerformanceGrammar::new(&["NoteOn_60", "Velocity_64", "TimeShift_1"], 1, 1).is_err()
        );
        assert!(
            PerformanceGrammar::new(&["NoteOn_60", "NoteOff_60", "TimeShift_1"], 1, 1).is_err()
        );
    }

    /// A model that waits as long as it may between notes reaches the 10-hour end of a piece
    /// before its notes are all struck: the steps kept for them leave no dead end, and the stream
    /// still has the notes asked for.
    #[test]
    fn the_ten_hour_end_leaves_room_for_the_notes_asked_for() {
        let vocab = [
            "TimeShift_100",
            "NoteOff_60",
            "TimeShift_1",
            "Velocity_64",
            "NoteOn_60",
        ];
        // 6 s a note (3 s held, 3 s of silence): 6,002 notes would take 36,012 s.
        let notes = 6_002;
        let mut g = PerformanceGrammar::new(&vocab, 1, notes).unwrap();
        let mut flags = [false; 5];
        let mut stream = Vec::new();
        while g.notes(0) < notes {
            g.allowed(0, &mut flags);
            // The first allowed in the order above: the longest wait first.
            let id = flags.iter().position(|&f| f).expect("a dead end");
            g.push(0, id).unwrap();
            stream.push(vocab[id]);
        }
        assert!(g.can_end(0));
        let decoded = decode(&stream, true).unwrap();
        assert_eq!(decoded.len() as u64, notes);
        assert!(decoded.iter().all(|n| n.end <= MAX_STEPS));
        assert!(stream.iter().filter(|&&t| t == "TimeShift_1").count() > 0);
        assert!(PerformanceGrammar::new(&vocab, 1, MAX_STEPS).is_err());
    }

    #[test]
    fn a_note_is_released_before_it_sounds_ten_seconds() {
        let vocab = [
            "Velocity_64",
            "NoteOn_60",
            "NoteOff_60",
            "TimeShift_1",
            "TimeShift_100",
        ];
        let mut g = PerformanceGrammar::new(&vocab, 1, 1).unwrap();
        g.push(0, 0).unwrap();
        g.push(0, 1).unwrap();
        let mut flags = [false; 5];
        for _ in 0..10 {
            g.allowed(0, &mut flags);
            if flags[4] {
                g.push(0, 4).unwrap();
            } else {
                g.push(0, 2).unwrap(); // 3 waits in a row: release (or the 10 s are up)
                break;
            }
        }
        assert_eq!(g.notes(0), 1);
    }
}
