//! Errors as values: every failure of the core is one [`Error`] whose `Display` is one line.

use std::fmt;
use std::io;

/// Everything that can go wrong in the core. `Display` gives one line without the path; the
/// callers that know the path (the Python layer, [`crate::corpus`]) prefix it.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The file could not be read (missing, a directory, no permission, ...).
    Io {
        /// The kind of I/O failure, used by the binding to pick the Python exception.
        kind: io::ErrorKind,
        /// The OS error number, when there is one.
        errno: Option<i32>,
        /// The OS's description of the failure.
        message: String,
    },
    /// The bytes do not start with an `MThd` chunk.
    NotMidi(String),
    /// The file ends before a chunk or event it declares.
    Truncated(String),
    /// The file is MIDI but contains data that cannot be decoded.
    Malformed(String),
    /// Valid MIDI this crate does not handle (SMPTE time division, zero tempo, ...).
    Unsupported(String),
    /// The file is larger than the reader's limit ([`crate::notes::MAX_FILE_BYTES`]).
    TooLarge {
        /// The file's size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file has no notes the scheme can use.
    NoNotes,
    /// The scheme name is not known.
    UnknownScheme(String),
    /// A token string is not valid for the scheme.
    InvalidToken {
        /// Position of the token in the input sequence.
        index: usize,
        /// The offending token string.
        token: String,
        /// The scheme it was checked against.
        scheme: &'static str,
    },
    /// A token that is valid alone but not at its place in the stream (scheme grammar).
    InvalidSequence {
        /// Position of the token in the input sequence (the length for the end of the stream).
        index: usize,
        /// The offending token string (empty for the end of the stream).
        token: String,
        /// The scheme it was checked against.
        scheme: &'static str,
        /// Why, e.g. `cannot follow "Bar" (expected Position, TimeSig or Bar)`.
        why: String,
    },
    /// A token id is outside the vocabulary.
    IdOutOfRange {
        /// Position of the token in the input sequence.
        index: usize,
        /// The offending id.
        id: i64,
        /// The vocabulary size.
        vocab_len: usize,
    },
    /// A bad argument (e.g. zero workers).
    InvalidArgument(String),
    /// A bug: the core panicked. Caught so that it never crosses into Python or kills a batch.
    Internal(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { message, .. } => write!(f, "cannot read file: {message}"),
            Error::NotMidi(why) => write!(f, "not a MIDI file: {why}"),
            Error::Truncated(why) => write!(f, "truncated MIDI file: {why}"),
            Error::Malformed(why) => write!(f, "malformed MIDI file: {why}"),
            Error::Unsupported(why) => write!(f, "unsupported MIDI file: {why}"),
            Error::TooLarge { size, limit } => write!(
                f,
                "file too large: {size} bytes (the limit is {limit} bytes)"
            ),
            Error::NoNotes => write!(f, "no notes to tokenize"),
            Error::UnknownScheme(name) => {
                write!(
                    f,
                    "unknown scheme {name:?} (available: {})",
                    crate::token::SCHEMES.join(", ")
                )
            }
            Error::InvalidToken {
                index,
                token,
                scheme,
            } => {
                write!(f, "token {index}: {token:?} is not a valid {scheme} token")
            }
            Error::InvalidSequence {
                index, token, why, ..
            } if token.is_empty() => write!(f, "token {index}: {why}"),
            Error::InvalidSequence {
                index, token, why, ..
            } => write!(f, "token {index}: {token:?} {why}"),
            Error::IdOutOfRange {
                index,
                id,
                vocab_len,
            } => write!(
                f,
                "token {index}: id {id} is outside the vocabulary (valid ids are 0..{vocab_len})"
            ),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::Internal(why) => write!(f, "internal error: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        // `io::Error`'s Display appends " (os error N)"; keep the plain description.
        let errno = err.raw_os_error();
        let mut message = err.to_string();
        if let Some(n) = errno {
            let suffix = format!(" (os error {n})");
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
        }
        Error::Io {
            kind: err.kind(),
            errno,
            message,
        }
    }
}

/// Turns a caught panic payload into [`Error::Internal`].
pub(crate) fn from_panic(payload: Box<dyn std::any::Any + Send>) -> Error {
    let msg = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    };
    Error::Internal(msg.lines().next().unwrap_or("panic").to_string())
}

/// Runs `f`, turning a panic into [`Error::Internal`].
pub fn catch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| Err(from_panic(p)))
}
