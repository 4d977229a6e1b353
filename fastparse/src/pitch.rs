//! Pitch spelling and set-class normal order, as music21 computes them.
//!
//! - [`name_with_octave`] is `music21.pitch.Pitch(midi=n).nameWithOctave`: sharps for C#, F#, G#,
//!   flats (written `-`) for E-, B-; octave `n / 12 - 1`.
//! - [`normal_order`] is `music21.chord.Chord(...).normalOrder`. music21 looks the set up in its
//!   Forte tables and transposes the table's 0-based form (the prime form, or for the inverted
//!   half of a set class the inversion's normal form) onto the chord, trying transpositions in
//!   ascending pitch-class order. That table form is exactly the *Forte* normal form of the
//!   chord's transpositional class moved to 0 (Forte's tie-break: smallest span first, then the
//!   intervals from the first note to the 2nd, 3rd, ... note, i.e. packed to the left, which is
//!   where Forte and Rahn differ), so it is computed here instead of tabulated. The Python test
//!   checks all 4095 pitch-class sets against music21.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Pitch-class names in music21's default spelling for MIDI numbers.
pub const PITCH_CLASS_NAMES: [&str; 12] = [
    "C", "C#", "D", "E-", "E", "F", "F#", "G", "G#", "A", "B-", "B",
];

/// music21's `nameWithOctave` for a MIDI pitch (0..=127), e.g. 60 -> "C4", 70 -> "B-4".
pub fn name_with_octave(midi: u8) -> String {
    let octave = (midi / 12) as i32 - 1;
    format!("{}{}", PITCH_CLASS_NAMES[(midi % 12) as usize], octave)
}

/// The MIDI pitch of a name in exactly the spelling [`name_with_octave`] produces (so "C-1" is
/// MIDI 0 and "E--1" is MIDI 3; other spellings such as "D-4" are rejected).
///
/// music21's spelling is ambiguous in octave -1: MIDI 4 (E, octave -1) and MIDI 27 (E-flat,
/// octave 1) are both "E-1", and MIDI 11 and 34 are both "B-1". Those two names are read as
/// music21's `Pitch("E-1")` reads them: 27 and 34.
pub fn parse_name_with_octave(name: &str) -> Option<u8> {
    static NAMES: OnceLock<HashMap<String, u8>> = OnceLock::new();
    NAMES
        .get_or_init(|| (0..=127u8).map(|m| (name_with_octave(m), m)).collect())
        .get(name)
        .copied()
}

/// Sorted distinct pitch classes of a bit set (bit i = pitch class i).
fn pcs_of(mask: u16) -> Vec<u8> {
    (0..12u8).filter(|&pc| mask & (1 << pc) != 0).collect()
}

/// Forte normal form of a sorted pitch-class set, transposed to start on 0.
fn forte_normal_form_at_zero(pcs: &[u8]) -> Vec<u8> {
    let n = pcs.len();
    let mut best: Option<(Vec<u8>, Vec<u8>)> = None; // (key, form)
    for r in 0..n {
        let first = pcs[r];
        let form: Vec<u8> = (0..n)
            .map(|k| (pcs[(r + k) % n] + 12 - first) % 12)
            .collect();
        // Span first, then the intervals from the first note to the 2nd, 3rd, ... note.
        let mut key = Vec::with_capacity(n);
        key.push(form[n - 1]);
        key.extend_from_slice(&form[1..n.saturating_sub(1)]);
        if best.as_ref().is_none_or(|(k, _)| key < *k) {
            best = Some((key, form));
        }
    }
    best.map(|(_, f)| f).unwrap_or_default()
}

/// music21's `normalOrder` of a set of pitch classes given as a 12-bit mask (bit i = pc i).
/// The empty set gives an empty order.
pub fn normal_order_mask(mask: u16) -> Vec<u8> {
    let pcs = pcs_of(mask & 0x0fff);
    if pcs.len() <= 1 {
        return pcs;
    }
    let form = forte_normal_form_at_zero(&pcs);
    for &t in &pcs {
        let mut m = 0u16;
        for &x in &form {
            m |= 1 << ((x + t) % 12);
        }
        if m == mask & 0x0fff {
            return form.iter().map(|&x| (x + t) % 12).collect();
        }
    }
    unreachable!("a set's normal form always transposes back onto the set")
}

/// music21's `normalOrder` of any pitches (MIDI numbers or pitch classes; taken mod 12).
pub fn normal_order(pitches: &[u8]) -> Vec<u8> {
    let mask = pitches.iter().fold(0u16, |m, &p| m | 1 << (p % 12));
    normal_order_mask(mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let expected = [
            (60, "C4"),
            (61, "C#4"),
            (63, "E-4"),
            (66, "F#4"),
            (68, "G#4"),
            (70, "B-4"),
            (58, "B-3"),
            (0, "C-1"),
            (3, "E--1"),
            (15, "E-0"),
            (27, "E-1"),
            (127, "G9"),
        ];
        for (midi, name) in expected {
            assert_eq!(name_with_octave(midi), name);
        }
    }

    #[test]
    fn names_round_trip_and_reject_other_spellings() {
        for midi in 0..=127u8 {
            let expected = match midi {
                4 => 27,
                11 => 34,
                m => m,
            };
            assert_eq!(
                parse_name_with_octave(&name_with_octave(midi)),
                Some(expected),
                "{midi}"
            );
        }
        for bad in [
            "", "H4", "D-4", "C##4", "c4", "C", "4", "C10", "G#9", "C04", "C4 ", "0.4",
        ] {
            assert_eq!(parse_name_with_octave(bad), None, "{bad}");
        }
    }

    #[test]
    fn normal_order_known_examples() {
        // From music21's own doctests.
        assert_eq!(normal_order(&[60, 63, 67]), vec![0, 3, 7]);
        assert_eq!(normal_order(&[60, 64, 67]), vec![0, 4, 7]);
        assert_eq!(normal_order(&[62, 66, 69]), vec![2, 6, 9]);
        assert_eq!(normal_order(&[70, 74, 77]), vec![10, 2, 5]);
        assert_eq!(normal_order(&[44, 45, 50, 55]), vec![7, 8, 9, 2]); // G#2 A2 D3 G3
        assert_eq!(
            normal_order(&[55, 62, 68, 69, 72, 76]),
            vec![7, 8, 9, 0, 2, 4]
        );
        assert_eq!(normal_order(&[53, 57, 61]), vec![1, 5, 9]); // E#3 A3 C#4
        assert_eq!(normal_order(&[83, 67, 74, 75, 86]), vec![11, 2, 3, 7]);
        // Forte (not Rahn) packing: 5-20.
        assert_eq!(normal_order(&[0, 1, 5, 6, 8]), vec![5, 6, 8, 0, 1]);
        // Several octaves of one pitch class.
        assert_eq!(normal_order(&[48, 60]), vec![0]);
        // Symmetric sets start on the lowest pitch class that works.
        assert_eq!(normal_order(&[0, 3, 6, 9]), vec![0, 3, 6, 9]);
        assert_eq!(
            normal_order(&(0..12).collect::<Vec<_>>()),
            (0..12).collect::<Vec<_>>()
        );
        assert!(normal_order(&[]).is_empty());
    }
}
