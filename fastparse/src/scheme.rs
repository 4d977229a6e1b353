//! Tokenization schemes. A scheme turns a file into token strings and token strings back into
//! MIDI bytes.

use std::str::FromStr;

use crate::error::{Error, Result};
use crate::notes::Notes;
use crate::sustain::Sustain;
use crate::{notes_chords, performance, remi};

// Defined in the leaf module `token` (the schemes and `error` use them too); re-exported here,
// where they have always been.
pub use crate::token::{Token, TokenId, SCHEMES};

/// A tokenization scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// The paper's scheme (Skuldur/Classical-Piano-Composer): one token per onset, a pitch name
    /// or a chord's normal order; see [`crate::notes_chords`].
    #[default]
    NotesChords,
    /// "remi": bars, positions, pitch, velocity and duration; see [`crate::remi`].
    Remi,
    /// "remi+key": "remi" with a `Key_` token first (the key signature, else estimated).
    RemiKey,
    /// "remi+key-estimated": "remi" with a `Key_` token first, always estimated.
    RemiKeyEstimated,
    /// "performance": note-on, note-off, time-shift and velocity events; see
    /// [`crate::performance`].
    Performance,
}

impl FromStr for Scheme {
    type Err = Error;

    fn from_str(s: &str) -> Result<Scheme> {
        match s {
            notes_chords::NAME => Ok(Scheme::NotesChords),
            remi::NAME => Ok(Scheme::Remi),
            remi::NAME_KEY => Ok(Scheme::RemiKey),
            remi::NAME_KEY_ESTIMATED => Ok(Scheme::RemiKeyEstimated),
            performance::NAME => Ok(Scheme::Performance),
            other => Err(Error::UnknownScheme(other.to_string())),
        }
    }
}

impl Scheme {
    /// The scheme's name, as accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Scheme::NotesChords => notes_chords::NAME,
            Scheme::Remi => remi::NAME,
            Scheme::RemiKey => remi::NAME_KEY,
            Scheme::RemiKeyEstimated => remi::NAME_KEY_ESTIMATED,
            Scheme::Performance => performance::NAME,
        }
    }

    /// The key token of a remi scheme.
    fn key_token(self) -> remi::KeyToken {
        match self {
            Scheme::NotesChords | Scheme::Remi | Scheme::Performance => remi::KeyToken::None,
            Scheme::RemiKey => remi::KeyToken::Signature,
            Scheme::RemiKeyEstimated => remi::KeyToken::Estimated,
        }
    }

    /// The tokens of one file's notes, in time order. Without the file's meta events the remi
    /// schemes see no time signature (4/4 bars) and no key signature (the key is estimated); use
    /// [`Scheme::tokenize_bytes`] for files. A file with nothing to tokenize is
    /// [`Error::NoNotes`].
    pub fn tokenize(self, notes: &Notes) -> Result<Vec<Token>> {
        match self {
            Scheme::NotesChords => notes_chords::tokenize(notes),
            Scheme::Performance => performance::tokenize(notes),
            _ => remi::tokenize(notes, &remi::Meta::default(), self.key_token()),
        }
    }

    /// The tokens of a MIDI file's bytes (notes, and for remi the first track's time and key
    /// signatures), with the sustain pedal applied ([`crate::sustain`]).
    pub fn tokenize_bytes(self, bytes: &[u8]) -> Result<Vec<Token>> {
        self.tokenize_bytes_with(bytes, Sustain::Apply)
    }

    /// [`Scheme::tokenize_bytes`], the pedal applied or ignored. "notes-chords" has no durations:
    /// the pedal changes none of its tokens, so it is not read there.
    pub fn tokenize_bytes_with(self, bytes: &[u8], sustain: Sustain) -> Result<Vec<Token>> {
        if self == Scheme::NotesChords {
            // From the onsets alone, without the notes' arrays (same tokens and errors).
            return notes_chords::tokenize_bytes(bytes);
        }
        if self == Scheme::Performance {
            return performance::tokenize_bytes(bytes, sustain);
        }
        remi::tokenize_bytes(bytes, self.key_token(), sustain)
    }

    /// Every token the scheme can write, by id: [`Scheme::tokenize_bytes_ids`] gives indices into
    /// it. Equal strings are one entry (an id is a token).
    pub fn alphabet(self) -> &'static [&'static str] {
        match self {
            Scheme::NotesChords => notes_chords::alphabet(),
            Scheme::Performance => performance::alphabet(),
            _ => remi::alphabet(),
        }
    }

    /// [`Scheme::tokenize_bytes_with`] as ids into [`Scheme::alphabet`]: the same tokens, without a
    /// string per token (a caller that numbers tokens can index a table instead of hashing).
    pub fn tokenize_bytes_ids(self, bytes: &[u8], sustain: Sustain) -> Result<Vec<TokenId>> {
        match self {
            Scheme::NotesChords => notes_chords::tokenize_ids(bytes),
            Scheme::Performance => performance::tokenize_ids(bytes, sustain),
            _ => remi::tokenize_ids(bytes, self.key_token(), sustain),
        }
    }

    /// MIDI file bytes for a token sequence, strictly: an invalid token is
    /// [`Error::InvalidToken`], a token out of place [`Error::InvalidSequence`].
    pub fn detokenize<S: AsRef<str>>(self, tokens: &[S]) -> Result<Vec<u8>> {
        self.detokenize_with(tokens, true)
    }

    /// MIDI file bytes for a token sequence. `strict` fails on the first invalid token (see
    /// [`Scheme::detokenize`]); otherwise what cannot be used is skipped: for "notes-chords" each
    /// token that is not one of the scheme (the rest keep their order, 0.5 quarter apart), for
    /// the remi schemes as [`crate::remi`] documents.
    pub fn detokenize_with<S: AsRef<str>>(self, tokens: &[S], strict: bool) -> Result<Vec<u8>> {
        match self {
            Scheme::NotesChords if strict => notes_chords::detokenize(tokens),
            Scheme::NotesChords => {
                let valid: Vec<&str> = tokens
                    .iter()
                    .map(AsRef::as_ref)
                    .filter(|t| notes_chords::token_pitches(t).is_some())
                    .collect();
                notes_chords::detokenize(&valid)
            }
            Scheme::Performance => performance::detokenize(tokens, strict),
            _ => remi::detokenize(tokens, self.key_token(), strict),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notes::parse;

    #[test]
    fn names_round_trip() {
        for name in SCHEMES {
            assert_eq!(name.parse::<Scheme>().unwrap().name(), *name);
        }
        assert!(matches!(
            "nope".parse::<Scheme>(),
            Err(Error::UnknownScheme(_))
        ));
    }

    #[test]
    fn ids_are_the_tokens() {
        for name in SCHEMES {
            let scheme: Scheme = name.parse().unwrap();
            let alphabet = scheme.alphabet();
            for file in crate::testdata::corpus().iter().take(40) {
                let ids = scheme.tokenize_bytes_ids(file, Sustain::Apply).unwrap();
                let tokens = scheme.tokenize_bytes(file).unwrap();
                assert!(ids
                    .iter()
                    .map(|&i| alphabet[i as usize])
                    .eq(tokens.iter().map(|t| &**t)));
            }
        }
    }

    #[test]
    fn lenient_notes_chords_skips_bad_tokens() {
        let s = Scheme::NotesChords;
        assert!(s.detokenize(&["C4", "nope"]).is_err());
        assert_eq!(
            s.detokenize_with(&["C4", "nope", "E4"], false).unwrap(),
            s.detokenize(&["C4", "E4"]).unwrap()
        );
    }

    #[test]
    fn bytes_carry_the_meta_events() {
        let tokens = [
            "Key_D_minor",
            "TimeSig_3/4",
            "Bar",
            "Position_3",
            "Pitch_62",
        ];
        let tokens = [&tokens[..], &["Velocity_64", "Duration_6"]].concat();
        let bytes = Scheme::RemiKey.detokenize(&tokens).unwrap();
        assert_eq!(Scheme::RemiKey.tokenize_bytes(&bytes).unwrap(), tokens);
        let plain = Scheme::Remi.tokenize_bytes(&bytes).unwrap();
        assert_eq!(plain, tokens[1..]);
        // The estimated variant ignores the signature (D minor) and estimates from one D: D major.
        let est = Scheme::RemiKeyEstimated.tokenize_bytes(&bytes).unwrap();
        assert_eq!(est[0], "Key_D_major");
        assert_eq!(est[1..], tokens[1..]);
        // From the notes alone: 4/4 and an estimated key.
        let notes = parse(&bytes).unwrap();
        assert_eq!(Scheme::Remi.tokenize(&notes).unwrap()[0], "TimeSig_4/4");
    }
}
