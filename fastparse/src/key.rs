//! Musical keys: the `Key_<tonic>_<mode>` token, the MIDI key-signature meta event, and key
//! estimation with the Krumhansl-Schmuckler algorithm.
//!
//! - Tonics are named with sharps only: `C C# D D# E F F# G G# A A# B` (one name per pitch
//!   class, so a key has exactly one token; music21 reads these names).
//! - A key signature `(sharps_or_flats, minor)` names the key whose tonic is
//!   `7 * sf mod 12` (major) or that plus 9 (minor). Writing a key back picks the signature with
//!   the fewest accidentals, sharps on a tie (F# major, D# minor: 6 sharps).
//! - Estimation: the duration-weighted pitch-class histogram of the non-drum notes is correlated
//!   (Pearson) with the Krumhansl-Kessler major and minor profiles rotated to each of the 12
//!   tonics; the best of the 24 wins, ties going to the first in the order C major, C minor,
//!   C# major, C# minor, ... A piece whose histogram is flat (or empty) is C major.
//! - Names and scales, for callers that show or use a key: "C major", "F# minor" (the tonic
//!   spelled as in the token), and the 7 pitch classes of the major or natural minor scale.

use crate::error::{Error, Result};
use crate::notes::Notes;

/// Tonic names by pitch class.
pub const TONICS: [&str; 12] = [
    "C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B",
];

/// Krumhansl-Kessler probe-tone profile for major keys, tonic first.
pub const MAJOR_PROFILE: [f64; 12] = [
    6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
];
/// Krumhansl-Kessler probe-tone profile for minor keys, tonic first.
pub const MINOR_PROFILE: [f64; 12] = [
    6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
];

/// Scale steps from the tonic: major, and natural minor.
const MAJOR_STEPS: [u8; 7] = [0, 2, 4, 5, 7, 9, 11];
const MINOR_STEPS: [u8; 7] = [0, 2, 3, 5, 7, 8, 10];

/// A key: tonic pitch class and mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    /// Pitch class of the tonic, 0 (C) ..= 11 (B).
    pub tonic: u8,
    /// Minor (true) or major (false).
    pub minor: bool,
}

impl Key {
    /// The key index 0..24: `2 * tonic + minor`.
    pub fn index(self) -> usize {
        2 * self.tonic as usize + self.minor as usize
    }

    /// The key with index `i` (0..24).
    pub fn from_index(i: usize) -> Key {
        Key {
            tonic: (i / 2 % 12) as u8,
            minor: i % 2 == 1,
        }
    }

    /// The key with index `index` from outside the crate, checked: [`Error::InvalidArgument`]
    /// outside 0..24.
    pub fn try_from_index(index: i64) -> Result<Key> {
        match usize::try_from(index) {
            Ok(i) if i < 24 => Ok(Key::from_index(i)),
            _ => Err(Error::InvalidArgument(format!(
                "key index {index} is outside 0 to 23 (2 * tonic pitch class + 1 if minor)"
            ))),
        }
    }

    /// "major" or "minor".
    pub fn mode(self) -> &'static str {
        if self.minor {
            "minor"
        } else {
            "major"
        }
    }

    /// The name, e.g. "C major", "F# minor": the token's tonic and mode (the token is
    /// `Key_<tonic>_<mode>`).
    pub fn name(self) -> String {
        format!("{} {}", TONICS[self.tonic as usize], self.mode())
    }

    /// The 7 pitch classes of the scale, from the tonic up: major, or natural minor.
    pub fn scale(self) -> [u8; 7] {
        let steps = if self.minor { MINOR_STEPS } else { MAJOR_STEPS };
        steps.map(|step| (self.tonic + step) % 12)
    }

    /// The token, e.g. `Key_C_major`, `Key_F#_minor`.
    pub fn token(self) -> &'static str {
        KEY_TOKENS[self.index()]
    }

    /// Parses a token made by [`Key::token`].
    pub fn from_token(token: &str) -> Option<Key> {
        KEY_TOKENS
            .iter()
            .position(|&t| t == token)
            .map(Key::from_index)
    }

    /// The key of a MIDI key signature (`sf` in -7..=7, `minor`); `None` for an `sf` outside.
    pub fn from_signature(sf: i8, minor: bool) -> Option<Key> {
        if !(-7..=7).contains(&sf) {
            return None;
        }
        let major_tonic = (sf as i32 * 7).rem_euclid(12) as u8;
        let tonic = if minor {
            (major_tonic + 9) % 12
        } else {
            major_tonic
        };
        Some(Key { tonic, minor })
    }

    /// The key signature (`sf`, `minor`) written for this key: fewest accidentals, sharps on a tie.
    pub fn signature(self) -> (i8, bool) {
        let major_tonic = if self.minor {
            (self.tonic + 3) % 12
        } else {
            self.tonic
        };
        // sf * 7 == tonic (mod 12)  <=>  sf == 7 * tonic (mod 12), since 7 * 7 == 1 (mod 12).
        let sf = (major_tonic as i32 * 7).rem_euclid(12);
        let sf = if sf > 6 { sf - 12 } else { sf };
        (sf as i8, self.minor)
    }
}

const KEY_TOKENS: [&str; 24] = [
    "Key_C_major",
    "Key_C_minor",
    "Key_C#_major",
    "Key_C#_minor",
    "Key_D_major",
    "Key_D_minor",
    "Key_D#_major",
    "Key_D#_minor",
    "Key_E_major",
    "Key_E_minor",
    "Key_F_major",
    "Key_F_minor",
    "Key_F#_major",
    "Key_F#_minor",
    "Key_G_major",
    "Key_G_minor",
    "Key_G#_major",
    "Key_G#_minor",
    "Key_A_major",
    "Key_A_minor",
    "Key_A#_major",
    "Key_A#_minor",
    "Key_B_major",
    "Key_B_minor",
];

fn pearson(x: &[f64; 12], y: &[f64; 12]) -> f64 {
    let mx = x.iter().sum::<f64>() / 12.0;
    let my = y.iter().sum::<f64>() / 12.0;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for i in 0..12 {
        let (dx, dy) = (x[i] - mx, y[i] - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return 0.0;
    }
    sxy / (sxx * syy).sqrt()
}

/// Krumhansl-Schmuckler: the key whose rotated profile correlates best with `histogram`
/// (weight per pitch class, C first). A flat histogram gives C major.
pub fn estimate(histogram: &[f64; 12]) -> Key {
    let mut best = (Key::from_index(0), f64::NEG_INFINITY);
    for i in 0..24 {
        let key = Key::from_index(i);
        let profile = if key.minor {
            &MINOR_PROFILE
        } else {
            &MAJOR_PROFILE
        };
        // rotated[pc] = profile[(pc - tonic) mod 12]
        let mut rotated = [0.0; 12];
        for (pc, r) in rotated.iter_mut().enumerate() {
            *r = profile[(pc + 12 - key.tonic as usize) % 12];
        }
        let r = pearson(histogram, &rotated);
        if r > best.1 {
            best = (key, r);
        }
    }
    best.0
}

/// [`estimate`] of a histogram from outside the crate, checked: exactly 12 weights, all finite,
/// else [`Error::InvalidArgument`]. Negative weights are allowed (the correlation does not need
/// a distribution).
pub fn estimate_checked(histogram: &[f64]) -> Result<Key> {
    let Ok(weights) = <&[f64; 12]>::try_from(histogram) else {
        return Err(Error::InvalidArgument(format!(
            "a pitch-class histogram has 12 weights (C first), got {}",
            histogram.len()
        )));
    };
    if let Some(pc) = weights.iter().position(|w| !w.is_finite()) {
        return Err(Error::InvalidArgument(format!(
            "histogram weight {pc} is {}; the weights must be finite",
            weights[pc]
        )));
    }
    Ok(estimate(weights))
}

/// The duration-weighted (seconds) pitch-class histogram of the non-drum notes.
pub fn histogram(notes: &Notes) -> [f64; 12] {
    histogram_of(
        (0..notes.len())
            .filter(|&i| !notes.is_drum[i])
            .map(|i| (notes.pitch[i], notes.start[i], notes.end[i])),
    )
}

/// [`histogram`] of non-drum notes given as (pitch, start, end) in seconds, in the order of
/// [`Notes`] (the sums are of floats: the order is part of the result).
pub(crate) fn histogram_of(notes: impl Iterator<Item = (u8, f64, f64)>) -> [f64; 12] {
    let mut h = [0.0; 12];
    for (pitch, start, end) in notes {
        let d = end - start;
        if d.is_finite() && d > 0.0 {
            h[(pitch % 12) as usize] += d;
        }
    }
    h
}

/// [`estimate`] over [`histogram`].
pub fn estimate_notes(notes: &Notes) -> Key {
    estimate(&histogram(notes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(pcs: &[(u8, f64)]) -> [f64; 12] {
        let mut h = [0.0; 12];
        for &(pc, w) in pcs {
            h[pc as usize] += w;
        }
        h
    }

    #[test]
    fn tokens_round_trip() {
        for i in 0..24 {
            let k = Key::from_index(i);
            assert_eq!(Key::from_token(k.token()), Some(k));
            let (sf, minor) = k.signature();
            assert!((-6..=6).contains(&sf));
            assert_eq!(Key::from_signature(sf, minor), Some(k));
        }
        assert_eq!(Key::from_token("Key_H_major"), None);
        assert_eq!(Key::from_token("Key_C"), None);
    }

    #[test]
    fn signatures() {
        let k = |sf, mi| Key::from_signature(sf, mi).unwrap().token();
        assert_eq!(k(0, false), "Key_C_major");
        assert_eq!(k(0, true), "Key_A_minor");
        assert_eq!(k(-1, false), "Key_F_major");
        assert_eq!(k(-3, true), "Key_C_minor");
        assert_eq!(k(2, false), "Key_D_major");
        assert_eq!(k(6, false), "Key_F#_major");
        assert_eq!(k(-6, false), "Key_F#_major"); // G-flat major: same pitch class
        assert_eq!(k(7, false), "Key_C#_major");
        assert_eq!(k(-7, true), "Key_G#_minor"); // A-flat minor
        assert_eq!(Key::from_signature(8, false), None);
        assert_eq!(
            Key::from_token("Key_A#_major").unwrap().signature(),
            (-2, false)
        );
        assert_eq!(
            Key::from_token("Key_D#_minor").unwrap().signature(),
            (6, true)
        );
    }

    #[test]
    fn names_match_the_tokens() {
        let names: Vec<String> = (0..24).map(|i| Key::from_index(i).name()).collect();
        assert_eq!(names[..4], ["C major", "C minor", "C# major", "C# minor"]);
        assert_eq!(names[23], "B minor");
        for (i, name) in names.iter().enumerate() {
            let key = Key::from_index(i);
            assert_eq!(key.index(), i);
            assert_eq!(key.token(), format!("Key_{}", name.replace(' ', "_")));
        }
    }

    #[test]
    fn scales() {
        let scale = |token| Key::from_token(token).unwrap().scale();
        assert_eq!(scale("Key_C_major"), [0, 2, 4, 5, 7, 9, 11]);
        assert_eq!(scale("Key_C_minor"), [0, 2, 3, 5, 7, 8, 10]);
        assert_eq!(scale("Key_A_minor"), [9, 11, 0, 2, 4, 5, 7]);
        assert_eq!(scale("Key_F#_major"), [6, 8, 10, 11, 1, 3, 5]);
        // A relative major and minor share their pitch classes.
        for tonic in 0..12u8 {
            let mut major = Key {
                tonic,
                minor: false,
            }
            .scale();
            let mut minor = Key {
                tonic: (tonic + 9) % 12,
                minor: true,
            }
            .scale();
            major.sort();
            minor.sort();
            assert_eq!(major, minor);
        }
    }

    #[test]
    fn checked_index_and_histogram() {
        assert_eq!(Key::try_from_index(0), Ok(Key::from_index(0)));
        assert_eq!(Key::try_from_index(23), Ok(Key::from_index(23)));
        for bad in [-1, 24, i64::MAX, i64::MIN] {
            let err = Key::try_from_index(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad}");
            assert!(
                err.to_string().contains(&format!("key index {bad}")),
                "{err}"
            );
        }
        let c_major = [3.0, 0.0, 1.0, 0.0, 2.0, 1.0, 0.0, 2.0, 0.0, 1.0, 0.0, 1.0];
        assert_eq!(estimate_checked(&c_major), Ok(estimate(&c_major)));
        assert_eq!(estimate_checked(&c_major).unwrap().token(), "Key_C_major");
        let short = estimate_checked(&c_major[..11]).unwrap_err().to_string();
        assert!(
            short.contains("12 weights") && short.contains("got 11"),
            "{short}"
        );
        assert!(estimate_checked(&[]).is_err());
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut h = c_major;
            h[4] = bad;
            let err = estimate_checked(&h).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)));
            assert!(err.to_string().contains("weight 4"), "{err}");
        }
    }

    #[test]
    fn estimates_major_and_minor() {
        // C major scale, tonic triad weighted.
        let c_major = hist(&[
            (0, 3.0),
            (2, 1.0),
            (4, 2.0),
            (5, 1.0),
            (7, 2.0),
            (9, 1.0),
            (11, 1.0),
        ]);
        assert_eq!(estimate(&c_major).token(), "Key_C_major");
        // A harmonic minor, tonic triad weighted.
        let a_minor = hist(&[
            (9, 3.0),
            (11, 1.0),
            (0, 2.0),
            (2, 1.0),
            (4, 2.0),
            (5, 1.0),
            (8, 1.0),
        ]);
        assert_eq!(estimate(&a_minor).token(), "Key_A_minor");
        // Transposition moves the tonic.
        let mut d_major = [0.0; 12];
        for pc in 0..12 {
            d_major[(pc + 2) % 12] = c_major[pc];
        }
        assert_eq!(estimate(&d_major).token(), "Key_D_major");
        // The profiles themselves.
        assert_eq!(estimate(&MAJOR_PROFILE).token(), "Key_C_major");
        assert_eq!(estimate(&MINOR_PROFILE).token(), "Key_C_minor");
        assert_eq!(estimate(&[0.0; 12]).token(), "Key_C_major");
        assert_eq!(estimate(&[1.0; 12]).token(), "Key_C_major");
    }
}
