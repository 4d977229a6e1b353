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

/// Note-on, note-off, time-shift and velocity events of a performance (see
/// [`crate::performance`]).
pub const PERFORMANCE: &str = "performance";

/// Names of the available schemes.
pub const SCHEMES: &[&str] = &[
    NOTES_CHORDS,
    REMI,
    REMI_KEY,
    REMI_KEY_ESTIMATED,
    PERFORMANCE,
];

/// A token as an index into its scheme's alphabet ([`crate::scheme::Scheme::alphabet`]).
pub type TokenId = u16;

/// Where a tokenizer writes its tokens: as strings ([`Tokens`]) or as alphabet ids
/// (`Vec<TokenId>`). One tokenizer serves both without a conversion pass.
pub(crate) trait Sink {
    /// Appends the token with this id.
    fn push(&mut self, id: TokenId);
    /// Appends the tokens with these ids.
    fn extend(&mut self, ids: &[TokenId]);
    /// Replaces the token at `index` (a tokenizer correcting what it wrote).
    fn set(&mut self, index: usize, id: TokenId);
    /// Tokens written so far.
    fn len(&self) -> usize;
    /// Room for `additional` more tokens.
    fn reserve(&mut self, additional: usize);
    /// Keeps the first `len` tokens.
    fn truncate(&mut self, len: usize);
}

impl Sink for Vec<TokenId> {
    #[inline]
    fn push(&mut self, id: TokenId) {
        Vec::push(self, id);
    }
    #[inline]
    fn extend(&mut self, ids: &[TokenId]) {
        self.extend_from_slice(ids);
    }
    #[inline]
    fn set(&mut self, index: usize, id: TokenId) {
        self[index] = id;
    }
    #[inline]
    fn len(&self) -> usize {
        Vec::len(self)
    }
    fn reserve(&mut self, additional: usize) {
        Vec::reserve(self, additional);
    }
    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }
}

/// Token strings of an alphabet, written by id.
pub(crate) struct Tokens {
    pub(crate) alphabet: &'static [&'static str],
    pub(crate) tokens: Vec<Token>,
}

impl Sink for Tokens {
    #[inline]
    fn push(&mut self, id: TokenId) {
        self.tokens.push(Cow::Borrowed(self.alphabet[id as usize]));
    }
    #[inline]
    fn extend(&mut self, ids: &[TokenId]) {
        let alphabet = self.alphabet;
        self.tokens
            .extend(ids.iter().map(|&id| Cow::Borrowed(alphabet[id as usize])));
    }
    #[inline]
    fn set(&mut self, index: usize, id: TokenId) {
        self.tokens[index] = Cow::Borrowed(self.alphabet[id as usize]);
    }
    #[inline]
    fn len(&self) -> usize {
        self.tokens.len()
    }
    fn reserve(&mut self, additional: usize) {
        self.tokens.reserve(additional);
    }
    fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
    }
}
