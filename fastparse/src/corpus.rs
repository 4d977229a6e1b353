//! Tokenizing many files in parallel with a deterministic vocabulary.

use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::error::{catch, Error, Result};
use crate::notes::read_into;
use crate::scheme::{Scheme, TokenId};
use crate::sustain::Sustain;

/// The version of what tokenizing gives: raise it with any change to any scheme's tokens or to
/// which files fail. Stored tokens (composer's token cache) are keyed by it, so a tokenizer that
/// changed its output never reuses tokens made by an older one.
pub const TOKENS_VERSION: u32 = 2;

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
    /// Whether the sustain pedal lengthens the notes it holds (default: it does).
    pub sustain: Sustain,
}

/// Tokenizes `paths` on a pool of `options.workers` threads. One file's failure (unreadable, not
/// MIDI, truncated, no notes, even a panic) is recorded in [`Tokenized::errors`] and the others
/// go on. The result is in input order and does not depend on the number of threads.
pub fn tokenize_files<P: AsRef<Path> + Sync>(
    paths: &[P],
    options: &Options<'_>,
) -> Result<Tokenized> {
    let (scheme, sustain) = (options.scheme, options.sustain);
    tokenize_each(paths, options, |p: &P| {
        // One read buffer per worker thread, reused from file to file.
        thread_local! {
            static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
        }
        BUFFER.with(|cell| {
            let mut bytes = cell.take();
            let result = read_into(p.as_ref(), &mut bytes)
                .and_then(|()| scheme.tokenize_bytes_ids(&bytes, sustain));
            // Keep a buffer for the next file, but not one grown for a huge file.
            if bytes.capacity() <= 16 << 20 {
                *cell.borrow_mut() = bytes;
            }
            result
        })
    })
}

/// Tokenizes MIDI files that lie side by side in one buffer (a dataset shard held in memory):
/// file `i` is `data[spans[i].0..spans[i].0 + spans[i].1]`, parsed in place, with the rules of
/// [`tokenize_files`]. A span outside `data` is an invalid argument for the whole call.
pub fn tokenize_spans(
    data: &[u8],
    spans: &[(usize, usize)],
    options: &Options<'_>,
) -> Result<Tokenized> {
    if let Some((i, &(start, len))) = spans
        .iter()
        .enumerate()
        .find(|(_, &(start, len))| start.checked_add(len).is_none_or(|end| end > data.len()))
    {
        return Err(Error::InvalidArgument(format!(
            "member {i} ({len} bytes at {start}) lies outside the {} bytes given",
            data.len()
        )));
    }
    let (scheme, sustain) = (options.scheme, options.sustain);
    tokenize_each(spans, options, |&(start, len)| {
        scheme.tokenize_bytes_ids(&data[start..start + len], sustain)
    })
}

/// The shared core of [`tokenize_files`] and [`tokenize_spans`]: each item's alphabet ids, in
/// parallel, with what the worker that made them can tell while they are in its cache (which ids
/// the file used, or how many are not in the given vocabulary). The vocabulary then numbers the
/// alphabet once, and the final parallel copy writes every id through that one table.
fn tokenize_each<I: Sync>(
    items: &[I],
    options: &Options<'_>,
    tokens_of: impl Fn(&I) -> Result<Vec<TokenId>> + Sync,
) -> Result<Tokenized> {
    let alphabet = options.scheme.alphabet();
    let work = || -> Tokenized {
        match options.vocab {
            None => {
                // Which alphabet ids the files used, marked by each worker thread in its own
                // table while the file's ids are in its cache (a byte each: plain stores).
                let used: Vec<Mutex<Vec<u8>>> = (0..rayon::current_num_threads())
                    .map(|_| Mutex::new(vec![0; alphabet.len()]))
                    .collect();
                let per_file = items
                    .par_iter()
                    .map(|item| {
                        catch(|| {
                            tokens_of(item).map(|mut ids| {
                                let thread = rayon::current_thread_index().unwrap_or(0);
                                let mut seen = used[thread % used.len()]
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner());
                                for &t in &ids {
                                    seen[t as usize] = 1;
                                }
                                // Kept until the merge, without the room reserved for the worst
                                // case.
                                ids.shrink_to_fit();
                                ids
                            })
                        })
                    })
                    .collect();
                let used = used
                    .into_iter()
                    .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
                    .reduce(|mut all, one| {
                        all.iter_mut().zip(one).for_each(|(a, o)| *a |= o);
                        all
                    })
                    .unwrap_or_default();
                merge_used(per_file, &used, alphabet)
            }
            Some(vocab) => {
                let ids = vocab_ids(vocab);
                // Alphabet id -> vocabulary id, once.
                let table: Vec<i32> = alphabet
                    .iter()
                    .map(|t| ids.get(t).copied().unwrap_or(UNKNOWN))
                    .collect();
                let per_file = items
                    .par_iter()
                    .map(|item| {
                        catch(|| {
                            tokens_of(item).map(|ids| {
                                let unknown = ids
                                    .iter()
                                    .filter(|&&t| table[t as usize] == UNKNOWN)
                                    .count();
                                (ids, unknown)
                            })
                        })
                    })
                    .collect();
                let mut out = write_ids(per_file, &table);
                out.vocab = vocab.to_vec();
                out
            }
        }
    };
    match options.workers {
        Some(0) => Err(Error::InvalidArgument("workers must be at least 1".into())),
        Some(n) if n > MAX_WORKERS => Err(Error::InvalidArgument(format!(
            "workers must be at most {MAX_WORKERS}, got {n}"
        ))),
        // More threads than items would have nothing to do: a pool of a million threads took
        // minutes to start for one file, and ignored Ctrl-C meanwhile.
        Some(n) => Ok(pool(n.min(items.len()).max(1))?.install(work)),
        None => Ok(work()),
    }
}

/// The most threads a call may ask for.
pub const MAX_WORKERS: usize = 1024;

/// In a table from alphabet ids to vocabulary ids: a token that is not in the vocabulary.
const UNKNOWN: i32 = -1;

/// The vocabulary of files' alphabet ids (`used`: whether any file has each id): the tokens
/// they used, sorted by string as [`merge_local`] sorts them, and their global ids.
fn merge_used(
    per_file: Vec<Result<Vec<TokenId>>>,
    used: &[u8],
    alphabet: &'static [&'static str],
) -> Tokenized {
    let mut ids: Vec<usize> = (0..alphabet.len()).filter(|&i| used[i] != 0).collect();
    // Byte order of UTF-8 is code-point order: Python's sorted() on str. An alphabet holds each
    // string once, so the order is total.
    ids.sort_unstable_by_key(|&i| alphabet[i]);
    let mut table = vec![UNKNOWN; alphabet.len()];
    for (global, &i) in ids.iter().enumerate() {
        table[i] = global as i32;
    }
    let mut out = write_ids(
        per_file
            .into_iter()
            .map(|r| r.map(|ids| (ids, 0)))
            .collect(),
        &table,
    );
    out.vocab = ids.iter().map(|&i| alphabet[i].to_string()).collect();
    out
}

/// Lays out files' alphabet ids (each with how many of them `table` does not know) and writes
/// their vocabulary ids through `table`, skipping the unknown ones and counting them.
fn write_ids(per_file: Vec<Result<(Vec<TokenId>, usize)>>, table: &[i32]) -> Tokenized {
    let (mut out, pieces, total) = layout_pieces(per_file, |(ids, unknown)| ids.len() - unknown);
    // Every token is written below: the array is not zeroed first (a pass over all of it).
    let mut tokens: Vec<i32> = Vec::with_capacity(total);
    let slices = split_by(
        &mut tokens.spare_capacity_mut()[..total],
        pieces.iter().map(|(ids, unknown)| ids.len() - unknown),
    );
    slices
        .into_par_iter()
        .zip(pieces.par_iter())
        .for_each(|(dst, (ids, unknown))| {
            if *unknown == 0 {
                // Every id is known (always so without a given vocabulary): a plain copy
                // through the table, without a test per token.
                assert_eq!(ids.len(), dst.len(), "a file's tokens fill its slice");
                for (d, &t) in dst.iter_mut().zip(ids) {
                    d.write(table[t as usize]);
                }
                return;
            }
            let known = ids
                .iter()
                .map(|&t| table[t as usize])
                .filter(|&id| id != UNKNOWN);
            let mut written = 0;
            for (d, id) in dst.iter_mut().zip(known) {
                d.write(id);
                written += 1;
            }
            assert_eq!(written, dst.len(), "a file's known tokens fill its slice");
        });
    // SAFETY: the slices cover `..total` (their lengths sum to it) and each was filled whole
    // (checked above; a failed check panics before this point).
    unsafe { tokens.set_len(total) };
    out.tokens = tokens;
    out.unknown = pieces.iter().map(|&(_, unknown)| unknown as u64).sum();
    out
}

/// A pool of `n` threads, kept for the next call with the same `n` (a few sizes are kept): the
/// threads, and their allocator caches and read buffers, live across calls.
fn pool(n: usize) -> Result<Arc<rayon::ThreadPool>> {
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());
    let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = pools.iter().find(|(size, _)| *size == n) {
        return Ok(p.clone());
    }
    let p = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("fastparse-{i}"))
            .build()
            .map_err(|e| Error::Internal(format!("cannot start {n} threads: {e}")))?,
    );
    if pools.len() >= 4 {
        pools.remove(0);
    }
    pools.push((n, p.clone()));
    Ok(p)
}

/// Turns per-file token lists (or errors) into ids, with the vocabulary rules of
/// [`tokenize_files`].
pub fn assemble<T: AsRef<str> + Send + Sync>(
    per_file: Vec<Result<Vec<T>>>,
    vocab: Option<&[String]>,
) -> Tokenized {
    match vocab {
        None => merge_local(per_file.into_par_iter().map(|r| r.map(intern)).collect()),
        Some(vocab) => {
            let ids = vocab_ids(vocab);
            merge_fixed(
                per_file
                    .into_par_iter()
                    .map(|r| r.map(|t| lookup(&t, &ids)))
                    .collect(),
                vocab,
            )
        }
    }
}

/// One file's tokens as ids into its own vocabulary: the distinct tokens in first-seen order.
struct Local<T> {
    distinct: Vec<T>,
    ids: Vec<u32>,
}

/// Ids into a per-file vocabulary. Tokens are told apart by address and length, not by hashing
/// their text: the schemes hand out shared static strings, so equal tokens share an address.
/// Equal strings at different addresses get separate local ids and meet again in
/// [`merge_local`], which merges by text; the result is the same either way.
fn intern<T: AsRef<str>>(tokens: Vec<T>) -> Local<T> {
    // One map per thread, reused from file to file (it holds addresses, no borrows).
    thread_local! {
        static SEEN: RefCell<FxHashMap<(usize, usize), u32>> = RefCell::new(FxHashMap::default());
    }
    SEEN.with(|cell| {
        let mut seen = cell.take();
        seen.clear();
        let local = intern_with(tokens, &mut seen);
        seen.clear();
        *cell.borrow_mut() = seen;
        local
    })
}

fn intern_with<T: AsRef<str>>(
    tokens: Vec<T>,
    seen: &mut FxHashMap<(usize, usize), u32>,
) -> Local<T> {
    let mut firsts = Vec::new();
    let ids = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let t = t.as_ref();
            let next = seen.len() as u32;
            *seen
                .entry((t.as_ptr() as usize, t.len()))
                .or_insert_with(|| {
                    firsts.push(i);
                    next
                })
        })
        .collect();
    // `firsts` is increasing: keep those tokens, without copying any string.
    let mut firsts = firsts.into_iter().peekable();
    let mut distinct: Vec<T> = tokens
        .into_iter()
        .enumerate()
        .filter_map(|(i, t)| firsts.next_if_eq(&i).map(|_| t))
        .collect();
    // The collect reuses the token vector's allocation in place: give back all but the distinct
    // tokens, or every file would keep its whole token list until the merge.
    distinct.shrink_to_fit();
    Local { distinct, ids }
}

/// Token string -> id of a given vocabulary; a string listed twice keeps its first id.
fn vocab_ids(vocab: &[String]) -> FxHashMap<&str, i32> {
    let mut ids = FxHashMap::with_capacity_and_hasher(vocab.len(), Default::default());
    for (i, t) in vocab.iter().enumerate() {
        ids.entry(t.as_str()).or_insert(i as i32);
    }
    ids
}

/// The ids of `tokens` in a given vocabulary, and how many were not in it.
fn lookup<T: AsRef<str>>(tokens: &[T], ids: &FxHashMap<&str, i32>) -> (Vec<i32>, u64) {
    let mut out = Vec::with_capacity(tokens.len());
    let mut unknown = 0u64;
    for t in tokens {
        match ids.get(t.as_ref()) {
            Some(&id) => out.push(id),
            None => unknown += 1,
        }
    }
    (out, unknown)
}

/// Offsets, files and errors of per-file results, and one slice of the token array per piece.
fn layout<R>(per_file: Vec<Result<R>>, len: impl Fn(&R) -> usize) -> (Tokenized, Vec<R>) {
    let (mut out, pieces, total) = layout_pieces(per_file, len);
    out.tokens = vec![0; total];
    (out, pieces)
}

/// [`layout`] without the token array: the result so far, the pieces and their total length.
fn layout_pieces<R>(
    per_file: Vec<Result<R>>,
    len: impl Fn(&R) -> usize,
) -> (Tokenized, Vec<R>, usize) {
    let mut out = Tokenized {
        offsets: vec![0],
        ..Tokenized::default()
    };
    let mut pieces = Vec::with_capacity(per_file.len());
    let mut total = 0usize;
    for (i, result) in per_file.into_iter().enumerate() {
        match result {
            Ok(piece) => {
                total += len(&piece);
                out.offsets.push(total as i64);
                out.files.push(i);
                pieces.push(piece);
            }
            Err(e) => out.errors.push((i, e)),
        }
    }
    (out, pieces, total)
}

/// Splits `tokens` into consecutive slices of the given lengths.
fn split_by<T>(mut tokens: &mut [T], lens: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    lens.map(|n| {
        let (head, tail) = std::mem::take(&mut tokens).split_at_mut(n);
        tokens = tail;
        head
    })
    .collect()
}

/// Merges per-file vocabularies into the sorted global one and writes the global ids.
fn merge_local<T: AsRef<str> + Send + Sync>(per_file: Vec<Result<Local<T>>>) -> Tokenized {
    let (mut out, pieces) = layout(per_file, |l| l.ids.len());
    let mut all: Vec<&str> = {
        let mut set: FxHashSet<&str> = FxHashSet::default();
        for l in &pieces {
            set.extend(l.distinct.iter().map(AsRef::as_ref));
        }
        set.into_iter().collect()
    };
    // Byte order of UTF-8 is code-point order: Python's sorted() on str.
    all.sort_unstable();
    let global: FxHashMap<&str, i32> = all
        .iter()
        .enumerate()
        .map(|(i, &t)| (t, i as i32))
        .collect();
    let slices = split_by(&mut out.tokens, pieces.iter().map(|l| l.ids.len()));
    slices
        .into_par_iter()
        .zip(pieces.par_iter())
        .for_each(|(dst, l)| {
            let remap: Vec<i32> = l.distinct.iter().map(|t| global[t.as_ref()]).collect();
            for (d, &id) in dst.iter_mut().zip(&l.ids) {
                *d = remap[id as usize];
            }
        });
    out.vocab = all.into_iter().map(str::to_string).collect();
    out
}

/// Concatenates per-file ids of a given vocabulary.
fn merge_fixed(per_file: Vec<Result<(Vec<i32>, u64)>>, vocab: &[String]) -> Tokenized {
    let (mut out, pieces) = layout(per_file, |(ids, _)| ids.len());
    let slices = split_by(&mut out.tokens, pieces.iter().map(|(ids, _)| ids.len()));
    slices
        .into_par_iter()
        .zip(pieces.par_iter())
        .for_each(|(dst, (ids, _))| dst.copy_from_slice(ids));
    out.unknown = pieces.iter().map(|(_, u)| u).sum();
    out.vocab = vocab.to_vec();
    out
}

/// MIDI bytes for a sequence of vocabulary ids.
pub fn detokenize_ids(ids: &[i64], vocab: &[String], scheme: Scheme) -> Result<Vec<u8>> {
    detokenize_ids_with(ids, vocab, scheme, true)
}

/// MIDI bytes for a sequence of vocabulary ids; with `strict` false, ids outside the vocabulary
/// are skipped and the scheme detokenizes leniently ([`Scheme::detokenize_with`]).
pub fn detokenize_ids_with(
    ids: &[i64],
    vocab: &[String],
    scheme: Scheme,
    strict: bool,
) -> Result<Vec<u8>> {
    let token = |id: i64| usize::try_from(id).ok().and_then(|i| vocab.get(i));
    let tokens = if strict {
        ids.iter()
            .enumerate()
            .map(|(index, &id)| {
                token(id).map(String::as_str).ok_or(Error::IdOutOfRange {
                    index,
                    id,
                    vocab_len: vocab.len(),
                })
            })
            .collect::<Result<Vec<&str>>>()?
    } else {
        ids.iter()
            .filter_map(|&id| token(id).map(String::as_str))
            .collect()
    };
    scheme.detokenize_with(&tokens, strict)
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
    fn spans_of_one_buffer_equal_files() {
        let a = Scheme::NotesChords.detokenize(&["C4", "0.4.7"]).unwrap();
        let b = Scheme::NotesChords.detokenize(&["D4"]).unwrap();
        let mut data = a.clone();
        data.extend_from_slice(b"not midi");
        data.extend_from_slice(&b);
        let spans = [
            (0, a.len()),
            (a.len(), 8),
            (a.len() + 8, b.len()),
            (0, a.len()),
        ];
        let options = Options {
            workers: Some(2),
            ..Options::default()
        };
        let t = tokenize_spans(&data, &spans, &options).unwrap();
        assert_eq!(t.files, vec![0, 2, 3]);
        assert_eq!(t.vocab, s(&["0.4.7", "C4", "D4"]));
        assert_eq!(t.tokens, vec![1, 0, 2, 1, 0]);
        assert!(matches!(t.errors[..], [(1, Error::NotMidi(_))]));
        // A span past the end (or one whose end overflows) refuses the whole call.
        for bad in [(data.len() - 2, 3), (1, usize::MAX)] {
            let err = tokenize_spans(&data, &[(0, a.len()), bad], &options).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(ref m) if m.starts_with("member 1 ")));
        }
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
