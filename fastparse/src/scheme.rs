//! Tokenization schemes. A scheme turns a file's [`Notes`] into token strings and token strings
//! back into MIDI bytes.

use std::borrow::Cow;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::notes::Notes;
use crate::notes_chords;

/// A token string; schemes with a fixed alphabet hand out borrowed statics (no allocation).
pub type Token = Cow<'static, str>;

/// Names of the available schemes.
pub const SCHEMES: &[&str] = &[notes_chords::NAME];

/// A tokenization scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Scheme {
    /// The paper's scheme (Skuldur/Classical-Piano-Composer): one token per onset, a pitch name
    /// or a chord's normal order; see [`crate::notes_chords`].
    #[default]
    NotesChords,
}

impl FromStr for Scheme {
    type Err = Error;

    fn from_str(s: &str) -> Result<Scheme> {
        match s {
            notes_chords::NAME => Ok(Scheme::NotesChords),
            other => Err(Error::UnknownScheme(other.to_string())),
        }
    }
}

impl Scheme {
    /// The scheme's name, as accepted by [`FromStr`].
    pub fn name(self) -> &'static str {
        match self {
            Scheme::NotesChords => notes_chords::NAME,
        }
    }

    /// The tokens of one file, in time order. A file with nothing to tokenize is
    /// [`Error::NoNotes`].
    pub fn tokenize(self, notes: &Notes) -> Result<Vec<Token>> {
        match self {
            Scheme::NotesChords => notes_chords::tokenize(notes),
        }
    }

    /// MIDI file bytes for a token sequence; an invalid token is [`Error::InvalidToken`].
    pub fn detokenize<S: AsRef<str>>(self, tokens: &[S]) -> Result<Vec<u8>> {
        match self {
            Scheme::NotesChords => notes_chords::detokenize(tokens),
        }
    }
}
