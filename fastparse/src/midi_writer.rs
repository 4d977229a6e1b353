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

/// A format-0 file on channel 0 with one tempo, a 4/4 time signature and one program.
/// At each tick note-offs come before note-ons, so a repeated pitch is closed before it restarts.
pub fn write_single_track(
    notes: &[WriteNote],
    ticks_per_quarter: u16,
    tempo: u32,
    program: u8,
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
    // (tick, 0 = off / 1 = on, pitch, velocity)
    let mut timeline: Vec<(u64, u8, u8, u8)> = Vec::with_capacity(notes.len() * 2);
    for n in notes {
        if n.pitch > 127 || n.velocity == 0 || n.velocity > 127 || n.end <= n.start {
            return invalid(format!("cannot write note {n:?}"));
        }
        timeline.push((n.start, 1, n.pitch, n.velocity));
        timeline.push((n.end, 0, n.pitch, 0));
    }
    timeline.sort_unstable();

    let channel = u4::new(0);
    let mut track = vec![
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::Tempo(u24::new(tempo))),
        },
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Meta(MetaMessage::TimeSignature(4, 2, 24, 8)),
        },
        TrackEvent {
            delta: u28::new(0),
            kind: TrackEventKind::Midi {
                channel,
                message: MidiMessage::ProgramChange {
                    program: u7::new(program),
                },
            },
        },
    ];
    let mut last = 0u64;
    for (tick, on, pitch, velocity) in timeline {
        let delta = tick - last;
        if delta > u28::max_value().as_int() as u64 {
            return invalid(format!("gap of {delta} ticks is too long for a MIDI file"));
        }
        last = tick;
        let key = u7::new(pitch);
        let message = if on == 1 {
            MidiMessage::NoteOn {
                key,
                vel: u7::new(velocity),
            }
        } else {
            MidiMessage::NoteOff {
                key,
                vel: u7::new(0),
            }
        };
        track.push(TrackEvent {
            delta: u28::new(delta as u32),
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
