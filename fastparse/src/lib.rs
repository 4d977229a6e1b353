//! `fastparse`: fast, exact MIDI parsing and tokenization for composer.
//!
//! A pure-Rust core (no Python in it) over borrowed bytes with errors as values, and a thin PyO3
//! binding (`python` feature, [`python`] module) that only converts types.
//!
//! - [`notes::parse`]: MIDI bytes -> [`notes::Notes`] (struct of arrays), equal to pretty_midi's
//!   notes, with its tick -> seconds map ([`tempo`]).
//! - [`scheme::Scheme`]: tokenization schemes; "notes-chords" ([`notes_chords`]) is the paper's,
//!   with music21's pitch names and chord normal order ([`pitch`]).
//!   "remi" / "remi+key" ([`remi`]) keep onsets, durations and velocities on a grid, with
//!   time-signature and key ([`key`]) tokens. "performance" ([`performance`]) writes note-on,
//!   note-off, 10 ms time-shift and velocity events (Performance RNN's), with its sampling grammar
//!   ([`performance_grammar`]).
//! - [`sustain`]: the sustain pedal, applied while tokenizing by default.
//! - [`corpus::tokenize_files`]: many files on a rayon pool, deterministic vocabulary.
//! - [`corpus::detokenize_ids`]: ids -> MIDI bytes ([`midi_writer`]).
//! - [`token`]: the token type and the scheme names, a leaf that the schemes, [`error`] and
//!   [`scheme`] share, so that no two modules import each other.

pub mod corpus;
pub mod error;
pub mod grammar;
pub mod key;
pub mod midi_writer;
pub mod notes;
pub mod notes_chords;
pub mod performance;
pub mod performance_grammar;
pub mod pitch;
/// The parser over midly's event iterator: the oracle of `notes::parse` in tests and fuzz targets.
#[cfg(any(test, feature = "reference"))]
#[doc(hidden)]
pub mod reference;
pub mod remi;
pub mod scheme;
#[cfg(test)]
mod stage_costs;
pub mod sustain;
pub mod tempo;
#[cfg(test)]
mod testdata;
pub mod token;

#[cfg(feature = "python")]
mod python;

pub use corpus::{detokenize_ids, detokenize_ids_with, tokenize_files, Options, Tokenized};
pub use error::{Error, Result};
pub use notes::{parse, parse_with, read_file, Notes, Pedal};
pub use scheme::{Scheme, SCHEMES};
pub use sustain::Sustain;
