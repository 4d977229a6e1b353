//! What every scheme shares: the token type and the scheme names. A leaf module (it uses no other
//! module of the crate), so that [`crate::error`], the schemes ([`crate::notes_chords`],
//! [`crate::remi`]) and the dispatch over them ([`crate::scheme`]) can all name these without
//! importing one another.

use std::borrow::Cow;

/// A token string; schemes with a fixed alphabet hand out borrowed statics (no allocation).
pub type Token = Cow<'static, str>;

/// The paper's scheme (see [`crate::notes_chords`]).
pub const NOTES_CHORDS: &str = "notes-chords";
/// Bars, positions, pitch, velocity and duration (see [`crate::remi`]).
pub const REMI: &str = "remi";
/// "remi" with a `Key_` token first: the file's key signature, else estimated.
pub const REMI_KEY: &str = "remi+key";
/// "remi" with a `Key_` token first, always estimated from the notes.
pub const REMI_KEY_ESTIMATED: &str = "remi+key-estimated";

/// Names of the available schemes.
pub const SCHEMES: &[&str] = &[NOTES_CHORDS, REMI, REMI_KEY, REMI_KEY_ESTIMATED];
