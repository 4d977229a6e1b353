//! Writing notes as a format-0 MIDI file with midly's writer.

use midly::num::{u15, u24, u28, u4, u7};
use midly::{Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind};

use crate::error::{Error, Result};

/// One note to write, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteNote {
    /// Onset tick.
    pub start: u64,
    /// Release tick (> start).
    pub end: u64,
    /// MIDI pitch, 0..=127.
    pub pitch: u8,
    /// Velocity, 1..=127.
    pub velocity: u8,
}

/// A time signature at a tick: `numerator / denominator`, the denominator a power of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeSignature {
    /// Tick where it takes effect.
    pub tick: u64,
    /// Beats per bar, 1..=255.
    pub numerator: u8,
    /// Beat unit: 1, 2, 4, ... 128.
    pub denominator: u8,
}

/// A format-0 file on channel 0 with one tempo, a 4/4 time signature and one program.
/// At each tick note-offs come before note-ons, so a repeated pitch is closed before it restarts.
pub fn write_single_track(
    notes: &[WriteNote],
    ticks_per_quarter: u16,
    tempo: u32,
    program: u8,
) -> Result<Vec<u8>> {
    let four_four = TimeSignature {
        tick: 0,
        numerator: 4,
        denominator: 4,
    };
    write_track(notes, ticks_per_quarter, tempo, program, &[four_four], None)
}

/// A format-0 file on channel 0: at tick 0 the tempo, the first time signatures, the key
/// signature (`(sharps_or_flats, minor)`, when given) and the program; then the notes and the
/// later time signatures. At each tick time signatures come first, then note-offs, then
/// note-ons, so a repeated pitch is closed before it restarts.
pub fn write_track(
    notes: &[WriteNote],
    ticks_per_quarter: u16,
    tempo: u32,
    program: u8,
    time_signatures: &[TimeSignature],
    key: Option<(i8, bool)>,
) -> Result<Vec<u8>> {
    let invalid = |why: String| Err(Error::InvalidArgument(why));
    if ticks_per_quarter == 0 || ticks_per_quarter > 0x7fff {
        return invalid(format!(
            "ticks per quarter {ticks_per_quarter} not in 1..=32767"
        ));
    }
    if tempo == 0 || tempo > 0xff_ffff {
        return invalid(format!("tempo {tempo} not in 1..=16777215"));
    }
    if program > 127 {
        return invalid(format!("program {program} not in 0..=127"));
    }
    if let Some((sf, _)) = key {
        if !(-7..=7).contains(&sf) {
            return invalid(format!("key signature with {sf} sharps/flats"));
        }
    }
    // (tick, 0 = time signature / 1 = off / 2 = on, pitch or numerator, velocity or log2 denominator)
    let mut timeline: Vec<(u64, u8, u8, u8)> =
        Vec::with_capacity(notes.len() * 2 + time_signatures.len());
    for ts in time_signatures {
        if ts.numerator == 0 || !ts.denominator.is_power_of_two() {
            return invalid(format!("cannot write time signature {ts:?}"));
        }
        timeline.push((
            ts.tick,
            0,
            ts.numerator,
            ts.denominator.trailing_zeros() as u8,
        ));
    }
    for n in notes {
        if n.pitch > 127 || n.velocity == 0 || n.velocity > 127 || n.end <= n.start {
            return invalid(format!("cannot write note {n:?}"));
        }
        timeline.push((n.start, 2, n.pitch, n.velocity));
        timeline.push((n.end, 1, n.pitch, 0));
    }
    // Stable: time signatures at one tick keep their order (the last one is in force).
    timeline.sort_by_key(|&(tick, kind, a, b)| {
        if kind == 0 {
            (tick, 0, 0, 0)
        } else {
            (tick, kind, a, b)
        }
    });

    let channel = u4::new(0);
    let mut track = vec![TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(tempo))),
    }];
    let mut start = 0;
    while start < timeline.len() && timeline[start].0 == 0 && timeline[start].1 == 0 {
        let (_, _, n, dd) = timeline[start];
        track.push(time_signature_event(0, n, dd));
        start += 1;
    }
    if let Some((sf, minor)) = key {
        track.push(TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::KeySignature(sf, minor)),
        });
    }
    track.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Midi {
            channel,
            message: MidiMessage::ProgramChange {
                program: u7::new(program),
            },
        },
    });
    let mut last = 0u64;
    for &(tick, kind, a, b) in &timeline[start..] {
        let mut delta = tick - last;
        last = tick;
        // A gap longer than a delta time can hold is bridged with empty marker events.
        let max = u28::max_value().as_int();
        while delta > max as u64 {
            track.push(TrackEvent {
                delta: u28::new(max),
                kind: TrackEventKind::Meta(MetaMessage::Marker(b"")),
            });
            delta -= max as u64;
        }
        let delta = delta as u32;
        if kind == 0 {
            track.push(time_signature_event(delta, a, b));
            continue;
        }
        let key = u7::new(a);
        let message = if kind == 2 {
            MidiMessage::NoteOn {
                key,
                vel: u7::new(b),
            }
        } else {
            MidiMessage::NoteOff {
                key,
                vel: u7::new(0),
            }
        };
        track.push(TrackEvent {
            delta: u28::new(delta),
            kind: TrackEventKind::Midi { channel, message },
        });
    }
    track.push(TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(MetaMessage::EndOfTrack),
    });
    let smf = Smf {
        header: Header::new(
            Format::SingleTrack,
            Timing::Metrical(u15::new(ticks_per_quarter)),
        ),
        tracks: vec![track],
    };
    let mut out = Vec::new();
    smf.write_std(&mut out)
        .map_err(|e| Error::Internal(format!("writing MIDI: {e}")))?;
    Ok(out)
}

fn time_signature_event(delta: u32, numerator: u8, log2_denominator: u8) -> TrackEvent<'static> {
    TrackEvent {
        delta: u28::new(delta),
        kind: TrackEventKind::Meta(MetaMessage::TimeSignature(
            numerator,
            log2_denominator,
            24,
            8,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_parsable_file() {
        let notes = [
            WriteNote {
                start: 0,
                end: 96,
                pitch: 60,
                velocity: 100,
            },
            WriteNote {
                start: 96,
                end: 192,
                pitch: 60,
                velocity: 90,
            },
        ];
        let bytes = write_single_track(&notes, 96, 1_000_000, 5).unwrap();
        assert_eq!(&bytes[..4], b"MThd");
        let parsed = crate::notes::parse(&bytes).unwrap();
        assert_eq!(parsed.start, vec![0.0, 1.0]);
        assert_eq!(parsed.end, vec![1.0, 2.0]);
        assert_eq!(parsed.velocity, vec![100, 90]);
        assert_eq!(parsed.program, vec![5, 5]);
    }

    #[test]
    fn bridges_long_gaps() {
        let start = 3 * (1 << 28) + 5;
        let notes = [WriteNote {
            start,
            end: start + 10,
            pitch: 60,
            velocity: 100,
        }];
        let parsed = crate::notes::parse(&write_single_track(&notes, 96, 500_000, 0).unwrap());
        assert_eq!(parsed.unwrap().start_tick, vec![start]);
    }

    #[test]
    fn rejects_bad_notes() {
        let bad = [WriteNote {
            start: 5,
            end: 5,
            pitch: 60,
            velocity: 100,
        }];
        assert!(write_single_track(&bad, 96, 500_000, 0).is_err());
    }
}
