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

/// One (track, channel)'s pedal: per tick with pedal events, whether the pedal is down after
/// them, and the ticks with a release among them.
struct Channel {
    track: u32,
    channel: u8,
    /// (tick, down after this tick's events), ticks increasing.
    state: Vec<(u64, bool)>,
    /// Ticks with at least one release, increasing.
    releases: Vec<u64>,
}

impl Channel {
    /// Whether the pedal is down once the pedal events of `tick` (and before) are done.
    fn down_at(&self, tick: u64) -> bool {
        let i = self.state.partition_point(|&(t, _)| t <= tick);
        i > 0 && self.state[i - 1].1
    }

    /// The first tick after `tick` with a release.
    fn release_after(&self, tick: u64) -> Option<u64> {
        let i = self.releases.partition_point(|&t| t <= tick);
        self.releases.get(i).copied()
    }
}

/// The pedal of each (track, channel) that has pedal events.
fn channels(pedal: &[PedalEvent]) -> Vec<Channel> {
    let mut events: Vec<PedalEvent> = pedal.to_vec();
    // By (track, channel, tick); within a tick the order does not matter (ups win).
    events.sort_unstable_by_key(|&(tick, _, ch, track)| (track, ch, tick));
    let mut out: Vec<Channel> = Vec::new();
    for (tick, value, ch, track) in events {
        let new_channel = out
            .last()
            .is_none_or(|c| (c.track, c.channel) != (track, ch));
        if new_channel {
            out.push(Channel {
                track,
                channel: ch,
                state: Vec::new(),
                releases: Vec::new(),
            });
        }
        let c = out.last_mut().expect("pushed above");
        let down = value >= 64;
        match c.state.last_mut() {
            // A release at a tick wins over any press at the same tick (note_seq handles presses
            // first).
            Some((t, state)) if *t == tick => *state &= down,
            _ => c.state.push((tick, down)),
        }
        if !down && c.releases.last() != Some(&tick) {
            c.releases.push(tick);
        }
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
    let channel_of = |r: &RawNote| {
        channels
            .iter()
            .position(|c| c.track == r.track && c.channel == r.channel)
    };
    // note_seq ends what the pedal still holds at its last event: the last note end (drums are not
    // events) or pedal event (of a channel that has notes: pretty_midi drops the others).
    let last_note = raw
        .iter()
        .filter(|r| r.channel != 9)
        .map(|r| r.end_tick)
        .max()
        .unwrap_or(0);
    let last_pedal = pedal
        .iter()
        .filter(|&&(_, _, ch, track)| raw.iter().any(|r| r.track == track && r.channel == ch))
        .map(|&(tick, ..)| tick)
        .max()
        .unwrap_or(0);
    let last = last_note.max(last_pedal);
    // Per (channel of `channels`, pitch): the start of the nearest later note struck with the
    // pedal down, which ends this one. Walked backwards, so "later" includes later notes of the
    // same tick.
    let mut restrike: Vec<[Option<u64>; 128]> = vec![[None; 128]; channels.len()];
    let mut dropped = false;
    for r in raw.iter_mut().rev() {
        if r.channel == 9 {
            continue;
        }
        let Some(c) = channel_of(r) else { continue };
        let pedal = &channels[c];
        let mut end = if pedal.down_at(r.end_tick) {
            pedal.release_after(r.end_tick).unwrap_or(last)
        } else {
            r.end_tick
        };
        let pitch = (r.pitch & 0x7f) as usize;
        if let Some(t) = restrike[c][pitch] {
            end = end.min(t);
        }
        r.end_tick = end;
        if end == r.start_tick && restrike[c][pitch] == Some(end) {
            // Ended by a note struck on its own start tick: note_seq removes it.
            r.end_tick = DROPPED;
            dropped = true;
        }
        if pedal.down_at(r.start_tick) {
            restrike[c][pitch] = Some(r.start_tick);
        }
    }
    if dropped {
        raw.retain(|r| r.end_tick != DROPPED);
    }
}

/// A note's end marking it for removal (no real end is this large: ticks are sums of 28-bit
/// deltas).
const DROPPED: u64 = u64::MAX;

#[cfg(test)]
mod tests {
    use super::*;

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
    fn modes_by_name() {
        for name in SUSTAIN_MODES {
            assert_eq!(name.parse::<Sustain>().unwrap().name(), *name);
        }
        assert!("on".parse::<Sustain>().is_err());
    }
}
