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

/// One (track, channel)'s pedal: the ticks with pedal events, whether the pedal is down after
/// each, and the first release at or after each.
struct Channel {
    track: u32,
    channel: u8,
    /// Ticks with pedal events, increasing.
    ticks: Vec<u64>,
    /// Whether the pedal is down once the events of `ticks[i]` are done.
    down: Vec<bool>,
    /// The first tick at `ticks[i..]` with a release ([`NEVER`] if none).
    next_release: Vec<u64>,
    /// Indexed by [`Channel::seek`]'s answer `i` (the event ticks at or before a tick), so
    /// without a branch: whether the pedal is down after the tick (`down[i - 1]`, false for 0)...
    down_after: Vec<bool>,
    /// ... and the first release after it (`next_release[i]`, [`NEVER`] for the last).
    release_after: Vec<u64>,
    /// Per bucket of `2^shift` ticks, the index of its first event tick (or the next bucket's).
    bucket: Vec<u32>,
    shift: u32,
}

/// No such tick.
const NEVER: u64 = u64::MAX;

impl Channel {
    /// The number of event ticks at or before `tick`: a table lookup by the tick's high bits,
    /// then a step or two (the table has a few buckets per event tick).
    fn seek(&self, tick: u64) -> usize {
        let b = (tick >> self.shift) as usize;
        let Some(&first) = self.bucket.get(b) else {
            return self.ticks.len();
        };
        let mut i = first as usize;
        while i < self.ticks.len() && self.ticks[i] <= tick {
            i += 1;
        }
        i
    }

    /// Fills `next_release` (from which ticks have a release) and the lookup table of
    /// [`Channel::seek`].
    fn finish(&mut self, releases: &[bool]) {
        let mut next = NEVER;
        self.next_release = vec![NEVER; self.ticks.len()];
        for i in (0..self.ticks.len()).rev() {
            if releases[i] {
                next = self.ticks[i];
            }
            self.next_release[i] = next;
        }
        self.down_after = std::iter::once(false)
            .chain(self.down.iter().copied())
            .collect();
        self.release_after = self.next_release.iter().copied().chain([NEVER]).collect();
        // Buckets of 2^shift ticks, about four per event tick.
        let last = self.ticks.last().copied().unwrap_or(0);
        let wanted = 4 * self.ticks.len() as u64 + 16;
        self.shift = (u64::BITS - (last / wanted).leading_zeros()).min(63);
        let buckets = (last >> self.shift) as usize + 1;
        // bucket[b] = the number of event ticks in buckets before b.
        self.bucket = vec![0; buckets];
        for &t in &self.ticks {
            self.bucket[(t >> self.shift) as usize] += 1;
        }
        let mut before = 0u32;
        for b in self.bucket.iter_mut() {
            let here = *b;
            *b = before;
            before += here;
        }
    }
}

/// The pedal of each (track, channel) that has pedal events.
fn channels(pedal: &[PedalEvent]) -> Vec<Channel> {
    // By (track, channel, tick); within a tick the order does not matter (ups win). The parser
    // gives them by track, each track's in tick order: one pedalled channel is sorted already.
    let key = |&(tick, _, ch, track): &PedalEvent| (track, ch, tick);
    let sorted;
    let events = if pedal.is_sorted_by_key(key) {
        pedal
    } else {
        let mut events = pedal.to_vec();
        events.sort_unstable_by_key(key);
        sorted = events;
        &sorted[..]
    };
    let mut out: Vec<Channel> = Vec::new();
    let mut releases: Vec<bool> = Vec::new();
    for &(tick, value, ch, track) in events {
        if out
            .last()
            .is_none_or(|c| (c.track, c.channel) != (track, ch))
        {
            if let Some(c) = out.last_mut() {
                c.finish(&releases);
            }
            releases.clear();
            out.push(Channel {
                track,
                channel: ch,
                ticks: Vec::new(),
                down: Vec::new(),
                next_release: Vec::new(),
                down_after: Vec::new(),
                release_after: Vec::new(),
                bucket: Vec::new(),
                shift: 0,
            });
        }
        let c = out.last_mut().expect("pushed above");
        let down = value >= 64;
        if c.ticks.last() == Some(&tick) {
            // A release at a tick wins over any press at the same tick (note_seq handles presses
            // first).
            *c.down.last_mut().expect("one per tick") &= down;
            *releases.last_mut().expect("one per tick") |= !down;
        } else {
            c.ticks.push(tick);
            c.down.push(down);
            releases.push(!down);
        }
    }
    if let Some(c) = out.last_mut() {
        c.finish(&releases);
    }
    out
}

/// Applies the pedal to `raw` (notes sorted by start tick, in the parser's order within a tick):
/// lengthens the notes it holds and drops notes struck twice at once under it.
pub(crate) fn apply(raw: &mut Vec<RawNote>, pedal: &[PedalEvent]) {
    if pedal.is_empty() || raw.is_empty() {
        return;
    }
    let channels = channels(pedal);
    // Most files have one pedalled channel: its state is a local value (kept in registers),
    // found without a search.
    let (last_note, dropped, to_last, states) = if let [one] = &channels[..] {
        let mut state = [State::new(one)];
        let key = (one.track, one.channel);
        let (last_note, dropped, to_last) = pass(raw, &channels, &mut state, |r| {
            ((r.track, r.channel) == key).then_some(0)
        });
        (last_note, dropped, to_last, state.to_vec())
    } else {
        let mut states: Vec<State> = channels.iter().map(State::new).collect();
        let (last_note, dropped, to_last) = pass(raw, &channels, &mut states, |r| {
            channels
                .iter()
                .position(|c| c.track == r.track && c.channel == r.channel)
        });
        (last_note, dropped, to_last, states)
    };
    if to_last {
        // note_seq ends what the pedal still holds at its last event: the last note end or pedal
        // event (of a channel that has notes: pretty_midi drops the others).
        let last_pedal = channels
            .iter()
            .zip(&states)
            .filter(|(_, s)| s.has_notes)
            .filter_map(|(c, _)| c.ticks.last().copied())
            .max()
            .unwrap_or(0);
        let last = last_note.max(last_pedal);
        for r in raw.iter_mut().filter(|r| r.end_tick == TO_LAST) {
            r.end_tick = last;
        }
    }
    if dropped {
        raw.retain(|r| r.end_tick != DROPPED);
    }
}

/// [`apply`]'s backward pass over the notes: each note of a pedalled channel (`channel_of` finds
/// its index in `channels` and `states`) held ([`hold`]). Returns the last note end (drums are not
/// events to note_seq), whether a note was dropped, and whether one is held to the last event.
#[inline(always)]
fn pass(
    raw: &mut [RawNote],
    channels: &[Channel],
    states: &mut [State],
    channel_of: impl Fn(&RawNote) -> Option<usize>,
) -> (u64, bool, bool) {
    let mut last_note = 0u64;
    let (mut dropped, mut to_last) = (false, false);
    for r in raw.iter_mut().rev() {
        if r.channel != 9 {
            last_note = last_note.max(r.end_tick);
        }
        let Some(c) = channel_of(r) else {
            continue;
        };
        states[c].has_notes = true;
        if r.channel == 9 {
            continue;
        }
        let (gone, held_to_last) = hold(r, &channels[c], &mut states[c]);
        dropped |= gone;
        to_last |= held_to_last;
    }
    (last_note, dropped, to_last)
}

/// What [`apply`]'s backward pass keeps per pedalled (track, channel).
#[derive(Clone)]
struct State {
    /// Per pitch: the start of the nearest later note struck with the pedal down.
    restrike: [u64; 128],
    /// The number of the channel's pedal event ticks at or before the last start seen.
    at_start: usize,
    /// Whether a note (drums too) is on the channel.
    has_notes: bool,
}

impl State {
    fn new(pedal: &Channel) -> State {
        State {
            restrike: [NEVER; 128],
            at_start: pedal.ticks.len(),
            has_notes: false,
        }
    }
}

/// Ends the note `r` where the pedal lets it go or its key is struck again (notes come in
/// decreasing order of start). A note held to the last event gets [`TO_LAST`] (that event is
/// known at the end of the pass; NEVER is more than any restrike, so the minimum is the same).
/// Returns whether the note is dropped (struck twice at once) and whether it is held to the last.
#[inline(always)]
fn hold(r: &mut RawNote, pedal: &Channel, state: &mut State) -> (bool, bool) {
    // Written to compile to conditional moves: whether the pedal holds a note is a coin toss
    // in a pedalled piece, too costly to branch on.
    let at_end = pedal.seek(r.end_tick);
    let pitch = (r.pitch & 0x7f) as usize;
    let struck_again = state.restrike[pitch];
    let released = if pedal.down_after[at_end] {
        pedal.release_after[at_end] // NEVER: held to the last event
    } else {
        r.end_tick
    };
    let end = released.min(struck_again);
    // Ended by a note struck on its own start tick: note_seq removes it.
    let gone = end == r.start_tick && struck_again == end;
    r.end_tick = match end {
        _ if gone => DROPPED,
        NEVER => TO_LAST,
        _ => end,
    };
    // Starts come in decreasing order here: a cursor per channel walks back to each.
    let mut at_start = state.at_start;
    while at_start > 0 && pedal.ticks[at_start - 1] > r.start_tick {
        at_start -= 1;
    }
    state.at_start = at_start;
    if pedal.down_after[at_start] {
        state.restrike[pitch] = r.start_tick;
    }
    (gone, end == NEVER)
}

/// A note's end while [`apply`] has not yet found the last event, which ends it.
const TO_LAST: u64 = u64::MAX - 1;

/// A note's end marking it for removal (no real end is this large: ticks are sums of 28-bit
/// deltas).
const DROPPED: u64 = u64::MAX;

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
    fn seeking_finds_the_partition_point() {
        let c = &channels(&[(5, 127, 0, 0), (9, 0, 0, 0), (9, 127, 0, 0), (20, 0, 0, 0)])[0];
        assert_eq!(c.ticks, [5, 9, 20]);
        assert_eq!(c.down, [true, false, false]);
        assert_eq!(c.next_release, [9, 9, 20]);
        assert_eq!(c.down_after, [false, true, false, false]);
        assert_eq!(c.release_after, [9, 9, 20, NEVER]);
        for tick in 0..25 {
            assert_eq!(c.seek(tick), c.ticks.partition_point(|&t| t <= tick));
        }
        // Ticks far apart, and near the top of the range.
        let events: Vec<PedalEvent> = [0u64, 3, 1 << 20, (1 << 20) + 1, 1 << 40, u64::MAX - 1]
            .iter()
            .map(|&t| (t, 127, 0, 0))
            .collect();
        let c = &channels(&events)[0];
        for &t in &[
            0u64,
            1,
            3,
            4,
            1 << 20,
            (1 << 20) + 2,
            1 << 39,
            1 << 40,
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(c.seek(t), c.ticks.partition_point(|&x| x <= t), "{t}");
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
