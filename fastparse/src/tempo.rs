//! Tick -> seconds, built exactly like pretty_midi 0.2 (`_load_tempo_changes` and
//! `_update_tick_to_time`), so that times agree bit for bit.
//!
//! pretty_midi's conventions, reproduced here:
//! - Tempo events are read from the first track only (for every format, 0, 1 and 2).
//! - The map starts at 120 bpm. A tempo event at tick 0 *replaces* the whole map.
//! - A later tempo event is appended only if its tick scale differs from the last one.
//! - Seconds per tick is `60.0 / ((6e7 / tempo) * resolution)`, in that float order.
//! - Within a segment starting at `s` with time `t_s`: `time(tick) = t_s + scale * (tick - s)`,
//!   and the next segment's `t_s` is this formula at its start tick.

use crate::error::{Error, Result};

/// One constant-tempo stretch: from `tick` on, `seconds = start + scale * (t - tick)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// First tick of the segment.
    pub tick: u64,
    /// Seconds per tick.
    pub scale: f64,
    /// Seconds at `tick`.
    pub start: f64,
}

impl Segment {
    /// Seconds at `tick` (at or after the segment's start): pretty_midi's
    /// `start + scale * (tick - start_tick)`.
    #[inline(always)]
    fn at(&self, tick: u64) -> f64 {
        let delta = tick - self.tick;
        // Ticks are sums of 28-bit deltas, far below 2^63, where i64 -> f64 (one instruction)
        // rounds exactly as u64 -> f64 does.
        let delta = if delta < 1 << 63 {
            delta as i64 as f64
        } else {
            delta as f64
        };
        self.start + self.scale * delta
    }
}

/// A piecewise-linear tick -> seconds map.
#[derive(Debug, Clone, PartialEq)]
pub struct TempoMap {
    segments: Vec<Segment>,
}

fn tick_scale(tempo_us: u32, resolution: u16) -> f64 {
    60.0 / ((6e7 / tempo_us as f64) * resolution as f64)
}

impl TempoMap {
    /// Builds the map from `(absolute tick, microseconds per quarter)` tempo events of the first
    /// track, in track order, and the file's ticks per quarter note.
    pub fn new(tempos: &[(u64, u32)], resolution: u16) -> Result<TempoMap> {
        if resolution == 0 {
            return Err(Error::Unsupported("ticks per quarter note is 0".into()));
        }
        let mut scales: Vec<(u64, f64)> = vec![(0, 60.0 / (120.0 * resolution as f64))];
        for &(tick, tempo) in tempos {
            if tempo == 0 {
                return Err(Error::Unsupported(format!("tempo of 0 at tick {tick}")));
            }
            let scale = tick_scale(tempo, resolution);
            if tick == 0 {
                scales = vec![(0, scale)];
            } else if scale != scales[scales.len() - 1].1 {
                scales.push((tick, scale));
            }
        }
        let mut segments = Vec::with_capacity(scales.len());
        let mut last_end = 0.0f64;
        for (i, &(tick, scale)) in scales.iter().enumerate() {
            segments.push(Segment {
                tick,
                scale,
                start: last_end,
            });
            if let Some(&(next_tick, _)) = scales.get(i + 1) {
                last_end += scale * (next_tick - tick) as f64;
            }
        }
        Ok(TempoMap { segments })
    }

    /// A constant tempo map (used by tests and the writer).
    pub fn constant(tempo_us: u32, resolution: u16) -> Result<TempoMap> {
        TempoMap::new(&[(0, tempo_us)], resolution)
    }

    /// The segments, first at tick 0.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Seconds at `tick`.
    #[inline]
    pub fn seconds(&self, tick: u64) -> f64 {
        // Last segment starting at or before `tick` (segments are sorted; equal ticks give
        // zero-length segments whose start equals the next one's, as in pretty_midi).
        let i = match self.segments.len() {
            1 => 0,
            _ => self.segments.partition_point(|s| s.tick <= tick) - 1,
        };
        self.segments[i].at(tick)
    }

    /// [`TempoMap::seconds`] for ticks visited in non-decreasing order: `cursor` (start at 0)
    /// remembers the segment, so a sorted pass costs O(ticks + segments). Any tick is still
    /// answered exactly (a tick before the cursor's segment searches again).
    #[inline]
    pub fn seconds_from(&self, tick: u64, cursor: &mut usize) -> f64 {
        let segments = &self.segments;
        let mut i = (*cursor).min(segments.len() - 1);
        if segments[i].tick > tick {
            i = segments.partition_point(|s| s.tick <= tick) - 1;
        } else {
            while i + 1 < segments.len() && segments[i + 1].tick <= tick {
                i += 1;
            }
        }
        *cursor = i;
        segments[i].at(tick)
    }

    /// [`TempoMap::seconds`] for ticks that come near one another but in any order (the ends of
    /// notes taken by onset): `cursor` remembers the last segment, and the search walks from it,
    /// backwards or forwards. The same segment as [`TempoMap::seconds`], so the same seconds.
    #[inline]
    pub fn seconds_near(&self, tick: u64, cursor: &mut usize) -> f64 {
        let segments = &self.segments;
        let mut i = (*cursor).min(segments.len() - 1);
        while i > 0 && segments[i].tick > tick {
            i -= 1;
        }
        while i + 1 < segments.len() && segments[i + 1].tick <= tick {
            i += 1;
        }
        *cursor = i;
        segments[i].at(tick)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_near_is_seconds_in_any_order() {
        let map = TempoMap::new(
            &[(0, 500_000), (10, 400_000), (10, 300_000), (50, 600_000)],
            96,
        )
        .unwrap();
        let mut cursor = 0;
        for &tick in &[60u64, 5, 10, 9, 11, 50, 49, 0, 1000, 10, 51] {
            assert_eq!(
                map.seconds_near(tick, &mut cursor),
                map.seconds(tick),
                "{tick}"
            );
        }
    }

    #[test]
    fn default_is_120_bpm() {
        let m = TempoMap::new(&[], 480).unwrap();
        assert_eq!(m.seconds(480), 0.5);
        assert_eq!(m.seconds(0), 0.0);
    }

    #[test]
    fn tempo_at_zero_replaces() {
        let m = TempoMap::new(&[(0, 1_000_000), (0, 250_000)], 100).unwrap();
        assert_eq!(m.segments().len(), 1);
        assert!((m.seconds(100) - 0.25).abs() < 1e-15);
    }

    #[test]
    fn repeated_tempo_is_ignored_and_changes_accumulate() {
        let m = TempoMap::new(&[(0, 500_000), (96, 500_000), (96, 1_000_000)], 96).unwrap();
        assert_eq!(m.segments().len(), 2);
        assert_eq!(m.seconds(96), 0.5);
        assert_eq!(m.seconds(192), 1.5);
        // pretty_midi: 120 bpm default, a change to the same value later is dropped.
        let m = TempoMap::new(&[(10, 500_000)], 96).unwrap();
        assert_eq!(m.segments().len(), 1);
    }

    #[test]
    fn same_float_order_as_pretty_midi() {
        let res = 384u16;
        let m = TempoMap::new(&[(0, 652_174), (1000, 545_455), (1777, 600_000)], res).unwrap();
        let s0 = 60.0 / ((6e7 / 652_174.0) * 384.0);
        let s1 = 60.0 / ((6e7 / 545_455.0) * 384.0);
        let t1 = 0.0 + s0 * 1000.0;
        assert_eq!(m.seconds(1000), t1);
        assert_eq!(m.seconds(1500), t1 + s1 * 500.0);
    }

    #[test]
    fn cursor_agrees_with_search() {
        let m = TempoMap::new(&[(0, 652_174), (10, 545_455), (10, 1), (500, 600_000)], 7).unwrap();
        let mut cursor = 0;
        for tick in (0..700).chain([3, 10, 9, 600, u64::MAX >> 8]) {
            assert_eq!(
                m.seconds_from(tick, &mut cursor),
                m.seconds(tick),
                "tick {tick}"
            );
        }
    }

    #[test]
    fn zero_resolution_and_zero_tempo_are_errors() {
        assert!(TempoMap::new(&[], 0).is_err());
        assert!(TempoMap::new(&[(5, 0)], 96).is_err());
    }
}
