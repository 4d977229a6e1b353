//! The sustain pedal (controller 64) applied to the notes, by note_seq's rule
//! (`sequences_lib.apply_sustain_control_changes`, the rule of Performance RNN and Music
//! Transformer): a note whose key is released while the pedal is down sounds until the pedal is
//! released, or until its key is struck again while the pedal is down, whichever comes first.
//!
//! Exactly as note_seq processes its events, in ticks instead of seconds (the same order: seconds
//! are a non-decreasing function of ticks):
//! - Events are sorted by (time, kind) with pedal-down before pedal-up before note-on before
//!   note-off, so after the pedal events of a tick the pedal is up if any of them is up (value
//!   < 64), else down if any is down (>= 64).
//! - A note-off with the pedal up ends the note there; with the pedal down the note sounds on and
//!   ends at the first pedal-up after its release (at a later tick), or at the last event of the
//!   file (the last note end or pedal event) if the pedal is never released.
//! - A note-on with the pedal down ends every sounding note of its key at its tick; a note so
//!   ended on its own start tick (struck twice at once) is dropped.
//! - Drums (channel 10) are left alone. The pedal of a (track, channel) holds that channel's
//!   notes: pretty_midi groups by (track, channel, program) instead, the same wherever a channel
//!   keeps one program (every file of composer's test corpora).
//!
//! A file without controller 64 is left exactly as it is.

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::notes::RawNote;

/// Whether the sustain pedal lengthens the notes it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sustain {
    /// Notes sound while the pedal holds them (the default: what a listener hears).
    #[default]
    Apply,
    /// Key-press lengths, the pedal ignored.
    Ignore,
}

/// The names of [`Sustain`]'s values, as [`FromStr`] accepts them.
pub const SUSTAIN_MODES: &[&str] = &["apply", "ignore"];

impl FromStr for Sustain {
    type Err = Error;

    fn from_str(s: &str) -> Result<Sustain> {
        match s {
            "apply" => Ok(Sustain::Apply),
            "ignore" => Ok(Sustain::Ignore),
            other => Err(Error::InvalidArgument(format!(
                "unknown pedal mode {other:?}: apply or ignore"
            ))),
        }
    }
}

impl Sustain {
    /// The mode's name, as [`FromStr`] accepts it.
    pub fn name(self) -> &'static str {
        match self {
            Sustain::Apply => "apply",
            Sustain::Ignore => "ignore",
        }
    }
}

/// A pedal event as the parser records it: (tick, value, channel, track).
pub(crate) type PedalEvent = (u64, u8, u8, u32);

/// One (track, channel)'s pedal, indexed by a number of its events in the track (the parser
/// gives each note the number before its note-on and before its note-off: [`RawNote`]).
struct Channel {
    track: u32,
    channel: u8,
    /// The events' ticks, in the track's order (non-decreasing).
    ticks: Vec<u64>,
    /// At `i` where a tick's events end (`ticks[i - 1] < ticks[i]`, or 0, or the last): 0 if
    /// the pedal is up after `ticks[..i]`, else the tick of the first release among
    /// `ticks[i..]` ([`NEVER`] if none), which is after `ticks[i - 1]`, so never 0. One table,
    /// so that a note's end is one lookup: the later of its release and this.
    held_until: Vec<u64>,
}

/// No such tick.
const NEVER: u64 = u64::MAX;

impl Channel {
    /// The number of events at or before `tick`, from `before`, the number before a note event
    /// of that tick: pedal events after it in the track on its own tick count too (note_seq
    /// handles the pedal before the notes of a tick).
    #[inline(always)]
    fn settle(&self, before: u32, tick: u64) -> usize {
        let mut i = before as usize;
        while i < self.ticks.len() && self.ticks[i] <= tick {
            i += 1;
        }
        i
    }

    /// The tables of one (track, channel)'s events, in the track's order.
    fn new(events: &[PedalEvent]) -> Channel {
        let n = events.len();
        let (_, _, channel, track) = events[0];
        let mut held_until = vec![0; n + 1];
        // Back over the ticks: `release` is the first release after the tick at hand.
        let mut release = NEVER;
        let mut end = n;
        while end > 0 {
            let tick = events[end - 1].0;
            // A release at a tick wins over any press at the same tick (note_seq handles
            // presses first).
            let mut up = events[end - 1].1 < 64;
            let mut start = end - 1;
            while start > 0 && events[start - 1].0 == tick {
                start -= 1;
                up |= events[start].1 < 64;
            }
            if up {
                release = tick;
            } else {
                held_until[end] = release;
            }
            end = start;
        }
        Channel {
            track,
            channel,
            ticks: events.iter().map(|e| e.0).collect(),
            held_until,
        }
    }
}

/// The pedal of each (track, channel) that has pedal events.
fn channels(pedal: &[PedalEvent]) -> Vec<Channel> {
    // By (track, channel), each in the track's order. The parser gives them by track, each
    // track's in order: one pedalled channel is in order already.
    let key = |&(_, _, ch, track): &PedalEvent| (track, ch);
    let sorted;
    let events = if pedal.is_sorted_by_key(key) {
        pedal
    } else {
        let mut events = pedal.to_vec();
        events.sort_by_key(key);
        sorted = events;
        &sorted[..]
    };
    events
        .chunk_by(|a, b| key(a) == key(b))
        .map(Channel::new)
        .collect()
}

/// Applies the pedal to `raw` (notes sorted by start tick, in the parser's order within a tick):
/// lengthens the notes it holds and drops notes struck twice at once under it.
pub(crate) fn apply(raw: &mut Vec<RawNote>, pedal: &[PedalEvent]) {
    if pedal.is_empty() || raw.is_empty() {
        return;
    }
    let channels = channels(pedal);
    let mut restrikes = vec![[NEVER; 128]; channels.len()];
    // Most files have one pedalled channel: found without a search.
    let (last_note, marked) = if let [one] = &channels[..] {
        if one.channel == 9 {
            return;
        }
        let key = (one.track, one.channel);
        pass(raw, &channels, &mut restrikes, |r| {
            ((r.track, r.channel) == key).then_some(0)
        })
    } else {
        pass(raw, &channels, &mut restrikes, |r| {
            channels
                .iter()
                .position(|c| c.track == r.track && c.channel == r.channel && c.channel != 9)
        })
    };
    if !marked {
        return;
    }
    if raw.iter().any(|r| r.end_tick == NEVER) {
        // note_seq ends what the pedal still holds at its last event: the last note end or pedal
        // event (of a channel that has notes, drums too: pretty_midi drops the others).
        let has_notes = |c: &Channel| {
            raw.iter()
                .any(|r| (r.track, r.channel) == (c.track, c.channel))
        };
        let last_pedal = channels
            .iter()
            .filter(|c| has_notes(c))
            .filter_map(|c| c.ticks.last().copied())
            .max()
            .unwrap_or(0);
        let last = last_note.max(last_pedal);
        for r in raw.iter_mut().filter(|r| r.end_tick == NEVER) {
            r.end_tick = last;
        }
    }
    raw.retain(|r| r.end_tick != DROPPED);
}

/// [`apply`]'s backward pass over the notes: each note of a pedalled channel other than drums
/// (`channel_of` finds its index in `channels`, and its table of restrikes) held ([`hold`]).
/// Returns the last note end (drums are not events to note_seq) and whether a note was marked
/// ([`hold`]).
#[inline(always)]
fn pass(
    raw: &mut [RawNote],
    channels: &[Channel],
    restrikes: &mut [[u64; 128]],
    channel_of: impl Fn(&RawNote) -> Option<usize>,
) -> (u64, bool) {
    let mut last_note = 0u64;
    let mut marked = false;
    for r in raw.iter_mut().rev() {
        match channel_of(r) {
            // Never drums: `channel_of` leaves them out.
            Some(c) => {
                last_note = last_note.max(r.end_tick);
                marked |= hold(r, &channels[c], &mut restrikes[c]);
            }
            None if r.channel != 9 => last_note = last_note.max(r.end_tick),
            None => {}
        }
    }
    (last_note, marked)
}

/// Ends the note `r` where the pedal lets it go or its key is struck again (notes come in
/// decreasing order of start; `restrike` has per pitch the start of the nearest later note
/// struck with the pedal down). A note held to the last event (known at the end of the pass)
/// ends at [`NEVER`] meanwhile, more than any restrike, so the minimum is the same; one struck
/// twice at once is [`DROPPED`]. Returns whether the note is either.
#[inline(always)]
fn hold(r: &mut RawNote, pedal: &Channel, restrike: &mut [u64; 128]) -> bool {
    // Written without a branch on the data: whether the pedal holds a note, or is down when
    // a key is struck, is a coin toss in a pedalled piece.
    let at_end = pedal.settle(r.pedal_at_end, r.end_tick);
    let pitch = (r.pitch & 0x7f) as usize;
    let struck_again = restrike[pitch];
    // Held by the pedal: a later tick (NEVER: held to the last event).
    let end = r.end_tick.max(pedal.held_until[at_end]).min(struck_again);
    // Ended by a note struck on its own start tick: note_seq removes it.
    let gone = (end == r.start_tick) & (struck_again == end);
    r.end_tick = if gone { DROPPED } else { end };
    let down = pedal.held_until[pedal.settle(r.pedal_at_start, r.start_tick)] != 0;
    restrike[pitch] = if down { r.start_tick } else { struck_again };
    r.end_tick >= DROPPED
}

/// A note's end marking it for removal, below [`NEVER`] (no real end is this large: ticks are
/// sums of 28-bit deltas).
const DROPPED: u64 = u64::MAX - 1;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{off, on, smf, Rng};

    /// note_seq's `apply_sustain_control_changes`, event by event: (tick, kind) sorted stably
    /// (press, release, note-on, note-off; notes in their order, then the pedal events), the
    /// sounding notes per (track, channel) in a list, what is still sounding ended at the last
    /// event. Drums are not events. Returns the notes kept.
    fn note_seq(notes: &[RawNote], pedal: &[PedalEvent]) -> Vec<RawNote> {
        let mut notes = notes.to_vec();
        let mut events: Vec<(u64, u8, usize)> = Vec::new();
        for (i, n) in notes.iter().enumerate().filter(|(_, n)| n.channel != 9) {
            events.push((n.start_tick, 2, i));
            events.push((n.end_tick, 3, i));
        }
        // pretty_midi keeps the pedal events of a (track, channel) with notes (drums too).
        for (i, &(tick, value, ch, track)) in pedal.iter().enumerate() {
            if notes.iter().any(|n| (n.track, n.channel) == (track, ch)) {
                events.push((tick, if value >= 64 { 0 } else { 1 }, i));
            }
        }
        events.sort_by_key(|&(tick, kind, _)| (tick, kind));
        let owner = |track: u32, channel: u8| (track, channel);
        let mut active: std::collections::HashMap<(u32, u8), Vec<usize>> = Default::default();
        let mut down: std::collections::HashMap<(u32, u8), bool> = Default::default();
        let mut removed = vec![false; notes.len()];
        let mut time = 0;
        for &(tick, kind, i) in &events {
            time = tick;
            match kind {
                0 | 1 => {
                    let (_, _, ch, track) = pedal[i];
                    let key = owner(track, ch);
                    down.insert(key, kind == 0);
                    if kind == 1 {
                        let list = active.entry(key).or_default();
                        list.retain(|&n| {
                            if notes[n].end_tick < tick {
                                notes[n].end_tick = tick;
                                false
                            } else {
                                true
                            }
                        });
                    }
                }
                2 => {
                    let key = owner(notes[i].track, notes[i].channel);
                    let list = active.entry(key).or_default();
                    if down.get(&key).copied().unwrap_or(false) {
                        let pitch = notes[i].pitch;
                        list.retain(|&n| {
                            if notes[n].pitch != pitch {
                                return true;
                            }
                            notes[n].end_tick = tick;
                            if notes[n].start_tick == tick {
                                removed[n] = true;
                            }
                            false
                        });
                    }
                    list.push(i);
                }
                _ => {
                    let key = owner(notes[i].track, notes[i].channel);
                    if !down.get(&key).copied().unwrap_or(false) {
                        active.entry(key).or_default().retain(|&n| n != i);
                    }
                }
            }
        }
        for list in active.values() {
            for &n in list {
                notes[n].end_tick = time;
            }
        }
        notes
            .into_iter()
            .zip(removed)
            .filter(|(_, r)| !r)
            .map(|(n, _)| n)
            .collect()
    }

    /// [`apply`] is note_seq's rule on tracks of random events crowded on a few ticks and keys
    /// (pedal events before and after notes of their tick, keys struck again held or still down,
    /// notes never released, two channels, drums, two tracks).
    #[test]
    fn apply_is_note_seqs_rule_on_crowded_ticks() {
        let mut rng = Rng(11);
        let mut held = 0;
        for case in 0..20_000 {
            let mut tracks = Vec::new();
            for _ in 0..1 + rng.below(2) {
                let mut track = Vec::new();
                for _ in 0..rng.below(40) {
                    let delta = if rng.below(4) <= case % 4 {
                        1 + rng.below(3) as u8
                    } else {
                        0
                    };
                    let ch = [0u8, 0, 0, 1, 9][rng.below(5)];
                    let key = 60 + rng.below(3) as u8;
                    match rng.below(5) {
                        0 | 1 => track.extend(on(delta, ch, key, 1 + rng.below(127) as u8)),
                        2 => track.extend(off(delta, ch, key)),
                        3 => track.extend(on(delta, ch, key, 0)),
                        _ => track.extend([delta, 0xB0 | ch, 64, [0u8, 63, 64, 127][rng.below(4)]]),
                    }
                }
                tracks.push(track);
            }
            let (raw, pedal) = crate::notes::raw_notes(&smf(1, 96, &tracks)).unwrap();
            let expected = note_seq(&raw, &pedal);
            let mut applied = raw.clone();
            apply(&mut applied, &pedal);
            held += (applied != raw) as usize;
            assert_eq!(applied, expected, "case {case}");
        }
        // The pedal changed most cases: the comparison is not of untouched notes.
        assert!(held > 5_000, "{held}");
    }

    fn note(start: u64, end: u64, pitch: u8) -> RawNote {
        RawNote {
            start_tick: start,
            end_tick: end,
            pitch,
            velocity: 80,
            track: 0,
            channel: 0,
            program: 0,
            // Counted from the first event: settle finds the rest.
            pedal_at_start: 0,
            pedal_at_end: 0,
        }
    }

    fn ends(raw: &[RawNote]) -> Vec<(u64, u64, u8)> {
        raw.iter()
            .map(|r| (r.start_tick, r.end_tick, r.pitch))
            .collect()
    }

    #[test]
    fn held_notes_last_until_the_pedal_is_released() {
        // Pedal down 0..100: a note released at 50 sounds to 100; one released at 150 is its own.
        let mut raw = vec![note(0, 50, 60), note(10, 150, 64), note(120, 130, 67)];
        apply(&mut raw, &[(0, 127, 0, 0), (100, 0, 0, 0)]);
        assert_eq!(
            ends(&raw),
            vec![(0, 100, 60), (10, 150, 64), (120, 130, 67)]
        );
    }

    #[test]
    fn a_key_struck_again_under_the_pedal_ends_its_note() {
        let mut raw = vec![note(0, 10, 60), note(40, 50, 60)];
        apply(&mut raw, &[(0, 100, 0, 0), (200, 0, 0, 0)]);
        assert_eq!(ends(&raw), vec![(0, 40, 60), (40, 200, 60)]);
        // Struck twice at once: the first is dropped.
        let mut raw = vec![note(0, 10, 60), note(0, 20, 60)];
        apply(&mut raw, &[(0, 100, 0, 0), (200, 0, 0, 0)]);
        assert_eq!(ends(&raw), vec![(0, 200, 60)]);
    }

    #[test]
    fn a_release_and_a_press_on_one_tick_leave_the_pedal_up() {
        let mut raw = vec![note(0, 60, 60)];
        apply(&mut raw, &[(0, 127, 0, 0), (50, 127, 0, 0), (50, 0, 0, 0)]);
        assert_eq!(ends(&raw), vec![(0, 60, 60)]);
    }

    #[test]
    fn a_pedal_never_released_holds_to_the_last_event() {
        let mut raw = vec![note(0, 10, 60), note(5, 80, 62)];
        apply(&mut raw, &[(0, 127, 0, 0)]);
        assert_eq!(ends(&raw), vec![(0, 80, 60), (5, 80, 62)]);
    }

    #[test]
    fn other_channels_and_drums_are_not_held() {
        let mut other = note(0, 10, 60);
        other.channel = 1;
        let mut drum = note(0, 10, 38);
        drum.channel = 9;
        let mut raw = vec![other, drum];
        let before = raw.clone();
        apply(&mut raw, &[(0, 127, 0, 0), (100, 0, 0, 0), (0, 127, 9, 0)]);
        assert_eq!(raw, before);
    }

    #[test]
    fn the_tables_follow_the_events_of_each_tick() {
        let c = &channels(&[(5, 127, 0, 0), (9, 0, 0, 0), (9, 127, 0, 0), (20, 0, 0, 0)])[0];
        assert_eq!(c.ticks, [5, 9, 9, 20]);
        // Read where a tick's events end: 0, 1, 3, 4 (index 2 is inside tick 9). Down only
        // after tick 5, until tick 9.
        assert_eq!([0, 1, 3, 4].map(|i| c.held_until[i]), [0, 9, 0, 0]);
        let c = &channels(&[(5, 127, 0, 0), (7, 100, 0, 0), (9, 127, 0, 0), (9, 0, 0, 0)])[0];
        assert_eq!([0, 1, 2, 4].map(|i| c.held_until[i]), [0, 9, 9, 0]);
        let c = &channels(&[(5, 127, 0, 0), (7, 0, 0, 0), (9, 127, 0, 0)])[0];
        assert_eq!([0, 1, 2, 3].map(|i| c.held_until[i]), [0, 7, 0, NEVER]);
        // From any count of events before a tick, settle finds the count at or before it.
        for tick in 0..25 {
            let at = c.ticks.partition_point(|&t| t <= tick);
            for before in 0..=c.ticks.partition_point(|&t| t < tick) {
                assert_eq!(c.settle(before as u32, tick), at, "{tick} {before}");
            }
        }
    }

    #[test]
    fn modes_by_name() {
        for name in SUSTAIN_MODES {
            assert_eq!(name.parse::<Sustain>().unwrap().name(), *name);
        }
        assert!("on".parse::<Sustain>().is_err());
    }
}
