//! Tokenizing many files in parallel with a deterministic vocabulary.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rayon::prelude::*;

use crate::error::{catch, Error, Result};
use crate::notes::read_file;
use crate::scheme::{Scheme, Token};

/// The tokens of a corpus. Piece `i` (from input file `files[i]`) is
/// `tokens[offsets[i]..offsets[i + 1]]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tokenized {
    /// Vocabulary ids of all pieces, concatenated.
    pub tokens: Vec<i32>,
    /// Piece boundaries: `pieces + 1` entries, starting at 0.
    pub offsets: Vec<i64>,
    /// Id -> token string.
    pub vocab: Vec<String>,
    /// For each piece, the index of its file in the input.
    pub files: Vec<usize>,
    /// Files that failed: (index in the input, why), in input order.
    pub errors: Vec<(usize, Error)>,
    /// Tokens skipped because they were not in a given vocabulary.
    pub unknown: u64,
}

/// Options for [`tokenize_files`].
#[derive(Debug, Clone, Default)]
pub struct Options<'a> {
    /// The tokenization scheme.
    pub scheme: Scheme,
    /// Threads; `None` uses rayon's default (all cores).
    pub workers: Option<usize>,
    /// A fixed vocabulary. Tokens not in it are skipped and counted in
    /// [`Tokenized::unknown`]; a string listed twice keeps its first id. `None` builds the
    /// vocabulary from the tokens found, sorted by code point (Python's `sorted`).
    pub vocab: Option<&'a [String]>,
}

/// Tokenizes `paths` on a pool of `options.workers` threads. One file's failure (unreadable, not
/// MIDI, truncated, no notes, even a panic) is recorded in [`Tokenized::errors`] and the others
/// go on. The result is in input order and does not depend on the number of threads.
pub fn tokenize_files<P: AsRef<Path> + Sync>(
    paths: &[P],
    options: &Options<'_>,
) -> Result<Tokenized> {
    let scheme = options.scheme;
    let work = || -> Vec<Result<Vec<Token>>> {
        paths
            .par_iter()
            .map(|p| catch(|| scheme.tokenize(&read_file(p.as_ref())?)))
            .collect()
    };
    let per_file = match options.workers {
        Some(0) => return Err(Error::InvalidArgument("workers must be at least 1".into())),
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| Error::Internal(format!("cannot start {n} threads: {e}")))?
            .install(work),
        None => work(),
    };
    Ok(assemble(per_file, options.vocab))
}

/// Turns per-file token lists (or errors) into ids, with the vocabulary rules of
/// [`tokenize_files`].
pub fn assemble<T: AsRef<str>>(
    per_file: Vec<Result<Vec<T>>>,
    vocab: Option<&[String]>,
) -> Tokenized {
    let (vocab, ids): (Vec<String>, HashMap<&str, i32>) = match vocab {
        Some(v) => {
            let mut ids = HashMap::with_capacity(v.len());
            for (i, t) in v.iter().enumerate() {
                ids.entry(t.as_str()).or_insert(i as i32);
            }
            (v.to_vec(), ids)
        }
        None => {
            let set: HashSet<&str> = per_file
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .flatten()
                .map(AsRef::as_ref)
                .collect();
            let mut sorted: Vec<&str> = set.into_iter().collect();
            // Byte order of UTF-8 is code-point order: Python's sorted() on str.
            sorted.sort_unstable();
            let ids = sorted
                .iter()
                .enumerate()
                .map(|(i, &t)| (t, i as i32))
                .collect();
            (sorted.into_iter().map(str::to_string).collect(), ids)
        }
    };
    let mut out = Tokenized {
        offsets: vec![0],
        vocab,
        ..Tokenized::default()
    };
    for (i, result) in per_file.iter().enumerate() {
        match result {
            Ok(tokens) => {
                for t in tokens {
                    match ids.get(t.as_ref()) {
                        Some(&id) => out.tokens.push(id),
                        None => out.unknown += 1,
                    }
                }
                out.offsets.push(out.tokens.len() as i64);
                out.files.push(i);
            }
            Err(e) => out.errors.push((i, e.clone())),
        }
    }
    out
}

/// MIDI bytes for a sequence of vocabulary ids.
pub fn detokenize_ids(ids: &[i64], vocab: &[String], scheme: Scheme) -> Result<Vec<u8>> {
    let tokens = ids
        .iter()
        .enumerate()
        .map(|(index, &id)| {
            usize::try_from(id)
                .ok()
                .and_then(|i| vocab.get(i))
                .map(String::as_str)
                .ok_or(Error::IdOutOfRange {
                    index,
                    id,
                    vocab_len: vocab.len(),
                })
        })
        .collect::<Result<Vec<&str>>>()?;
    scheme.detokenize(&tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn vocab_is_sorted_and_errors_are_kept() {
        let per_file = vec![
            Ok(s(&["E4", "0.4.7", "C4"])),
            Err(Error::NoNotes),
            Ok(s(&["C4", "B-3"])),
        ];
        let t = assemble(per_file, None);
        assert_eq!(t.vocab, s(&["0.4.7", "B-3", "C4", "E4"]));
        assert_eq!(t.tokens, vec![3, 0, 2, 2, 1]);
        assert_eq!(t.offsets, vec![0, 3, 5]);
        assert_eq!(t.files, vec![0, 2]);
        assert_eq!(t.errors, vec![(1, Error::NoNotes)]);
        assert_eq!(t.unknown, 0);
    }

    #[test]
    fn given_vocab_skips_unknown() {
        let vocab = s(&["C4", "E4", "C4"]);
        let t = assemble(vec![Ok(s(&["E4", "G4", "C4"]))], Some(&vocab));
        assert_eq!(t.vocab, vocab);
        assert_eq!(t.tokens, vec![1, 0]);
        assert_eq!(t.unknown, 1);
    }

    #[test]
    fn files_in_parallel_keep_order() {
        let dir = std::env::temp_dir().join(format!("fastparse-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.mid");
        std::fs::write(
            &good,
            Scheme::NotesChords.detokenize(&["C4", "0.4.7"]).unwrap(),
        )
        .unwrap();
        let bad = dir.join("bad.mid");
        std::fs::write(&bad, b"not midi").unwrap();
        let missing = dir.join("missing.mid");
        let paths = vec![good.clone(), bad, missing, good];
        let one = tokenize_files(
            &paths,
            &Options {
                workers: Some(1),
                ..Options::default()
            },
        )
        .unwrap();
        let two = tokenize_files(
            &paths,
            &Options {
                workers: Some(2),
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(one, two);
        assert_eq!(one.files, vec![0, 3]);
        assert_eq!(one.vocab, s(&["0.4.7", "C4"]));
        assert_eq!(one.tokens, vec![1, 0, 1, 0]);
        assert!(matches!(one.errors[0], (1, Error::NotMidi(_))));
        assert!(matches!(
            one.errors[1],
            (
                2,
                Error::Io {
                    kind: std::io::ErrorKind::NotFound,
                    ..
                }
            )
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ids_out_of_range() {
        let vocab = s(&["C4"]);
        assert!(detokenize_ids(&[0, 0], &vocab, Scheme::NotesChords).is_ok());
        let err = detokenize_ids(&[0, 1], &vocab, Scheme::NotesChords).unwrap_err();
        assert_eq!(
            err,
            Error::IdOutOfRange {
                index: 1,
                id: 1,
                vocab_len: 1
            }
        );
        assert!(detokenize_ids(&[-1], &vocab, Scheme::NotesChords).is_err());
    }
}
