//! The PyO3 binding: type conversion only. Every core call runs with the GIL released and inside
//! `catch_unwind`, so a bug becomes a Python exception, never a panic across the boundary.

use std::path::PathBuf;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{
    PyFileNotFoundError, PyIsADirectoryError, PyKeyError, PyOSError, PyPermissionError,
    PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyList, PyString, PyTuple};
use pyo3::PyTypeInfo;

use crate::corpus::{
    detokenize_ids_with, tokenize_files, tokenize_spans, Options, Tokenized, MAX_WORKERS,
    TOKENS_VERSION,
};
use crate::error::{catch, Error};
use crate::grammar::Grammar;
use crate::key::{self, Key};
use crate::notes::{parse_with, read_bytes, Notes};
use crate::notes_chords::chord_token as core_chord_token;
use crate::performance_grammar::PerformanceGrammar;
use crate::scheme::{Scheme, SCHEMES};
use crate::sustain::{Sustain, SUSTAIN_MODES};

/// Rust allocations of the extension (not Python's) go through mimalloc: tokenizing many files
/// allocates and frees per file, which glibc's malloc answers with fresh page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The names of the per-note arrays, in `keys()` order.
const KEYS: [&str; 10] = [
    "pitch",
    "velocity",
    "start",
    "end",
    "track",
    "channel",
    "program",
    "is_drum",
    "start_tick",
    "end_tick",
];

/// The one way an error of the core reaches Python, as the matching exception: I/O failures as
/// the OSError subclass for their kind with `errno`, `strerror` and `filename` (the source) set,
/// a caught panic as RuntimeError, everything else (bad data, bad tokens, bad arguments) as
/// ValueError. The message is `source: message` with a source (a path, or the call for errors
/// that are not one file's), the core's one line alone without. (Only an argument of the wrong
/// Python type is refused where it is converted, with TypeError: the core never sees it.)
fn to_pyerr(source: Option<&str>, err: Error) -> PyErr {
    fn os<T: PyTypeInfo>(
        errno: Option<i32>,
        message: &str,
        source: Option<&str>,
        line: String,
    ) -> PyErr {
        match (errno, source) {
            (Some(n), Some(path)) => PyErr::new::<T, _>((n, message.to_string(), path.to_string())),
            (Some(n), None) => PyErr::new::<T, _>((n, message.to_string())),
            (None, _) => PyErr::new::<T, _>(line),
        }
    }
    let line = match source {
        Some(source) => format!("{source}: {err}"),
        None => err.to_string(),
    };
    match &err {
        Error::Io {
            kind,
            errno,
            message,
        } => match kind {
            std::io::ErrorKind::NotFound => {
                os::<PyFileNotFoundError>(*errno, message, source, line)
            }
            std::io::ErrorKind::IsADirectory => {
                os::<PyIsADirectoryError>(*errno, message, source, line)
            }
            std::io::ErrorKind::PermissionDenied => {
                os::<PyPermissionError>(*errno, message, source, line)
            }
            _ => os::<PyOSError>(*errno, message, source, line),
        },
        Error::Internal(_) => PyRuntimeError::new_err(line),
        _ => PyValueError::new_err(line),
    }
}

fn array<'py, T: numpy::Element>(py: Python<'py>, v: Vec<T>) -> Py<PyAny> {
    PyArray1::from_vec(py, v).into_any().unbind()
}

fn ints<T: Copy + Into<i64>>(v: &[T]) -> Vec<i64> {
    v.iter().map(|&x| x.into()).collect()
}

fn ticks(v: &[u64]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// The notes of a MIDI file as numpy arrays, one entry per note, sorted by (start, pitch).
///
/// Arrays by attribute or key (`n.pitch`, `n["pitch"]`); `keys()` lists them, `len(n)` is the
/// number of notes and iterating gives the keys (like a pandas DataFrame). `pitch`, `velocity`,
/// `track`, `channel`, `program`, `start_tick`, `end_tick` are int64, `start` and `end` float64
/// seconds, `is_drum` bool. `ticks_per_quarter` is the header's resolution; the sustain pedal
/// (controller 64) events are in `pedal_tick`, `pedal_time`, `pedal_value`, `pedal_channel`,
/// `pedal_track` (not in `keys()`: one entry per pedal event, not per note).
#[pyclass(name = "Notes", module = "fastparse", frozen)]
pub struct PyNotes {
    arrays: Vec<Py<PyAny>>,
    pedal: Vec<Py<PyAny>>,
    len: usize,
    #[pyo3(get)]
    ticks_per_quarter: u16,
}

impl PyNotes {
    fn new(py: Python<'_>, n: Notes) -> PyNotes {
        let len = n.len();
        let arrays = vec![
            array(py, ints(&n.pitch)),
            array(py, ints(&n.velocity)),
            array(py, n.start),
            array(py, n.end),
            array(py, ints(&n.track)),
            array(py, ints(&n.channel)),
            array(py, ints(&n.program)),
            array(py, n.is_drum),
            array(py, ticks(&n.start_tick)),
            array(py, ticks(&n.end_tick)),
        ];
        let pedal = vec![
            array(py, ticks(&n.pedal.tick)),
            array(py, n.pedal.time),
            array(py, ints(&n.pedal.value)),
            array(py, ints(&n.pedal.channel)),
            array(py, ints(&n.pedal.track)),
        ];
        PyNotes {
            arrays,
            pedal,
            len,
            ticks_per_quarter: n.ticks_per_quarter,
        }
    }

    fn get(&self, py: Python<'_>, i: usize) -> Py<PyAny> {
        self.arrays[i].clone_ref(py)
    }
}

#[pymethods]
impl PyNotes {
    #[getter]
    fn pitch(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 0)
    }
    #[getter]
    fn velocity(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 1)
    }
    #[getter]
    fn start(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 2)
    }
    #[getter]
    fn end(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 3)
    }
    #[getter]
    fn track(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 4)
    }
    #[getter]
    fn channel(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 5)
    }
    #[getter]
    fn program(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 6)
    }
    #[getter]
    fn is_drum(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 7)
    }
    #[getter]
    fn start_tick(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 8)
    }
    #[getter]
    fn end_tick(&self, py: Python<'_>) -> Py<PyAny> {
        self.get(py, 9)
    }
    #[getter]
    fn pedal_tick(&self, py: Python<'_>) -> Py<PyAny> {
        self.pedal[0].clone_ref(py)
    }
    #[getter]
    fn pedal_time(&self, py: Python<'_>) -> Py<PyAny> {
        self.pedal[1].clone_ref(py)
    }
    #[getter]
    fn pedal_value(&self, py: Python<'_>) -> Py<PyAny> {
        self.pedal[2].clone_ref(py)
    }
    #[getter]
    fn pedal_channel(&self, py: Python<'_>) -> Py<PyAny> {
        self.pedal[3].clone_ref(py)
    }
    #[getter]
    fn pedal_track(&self, py: Python<'_>) -> Py<PyAny> {
        self.pedal[4].clone_ref(py)
    }

    /// The names of the per-note arrays.
    fn keys(&self) -> Vec<&'static str> {
        KEYS.to_vec()
    }

    /// The per-note arrays, in `keys()` order.
    fn values(&self, py: Python<'_>) -> Vec<Py<PyAny>> {
        self.arrays.iter().map(|a| a.clone_ref(py)).collect()
    }

    /// `(name, array)` pairs, in `keys()` order.
    fn items(&self, py: Python<'_>) -> Vec<(&'static str, Py<PyAny>)> {
        KEYS.iter().copied().zip(self.values(py)).collect()
    }

    fn __getitem__(&self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
        KEYS.iter()
            .position(|&k| k == key)
            .map(|i| self.get(py, i))
            .ok_or_else(|| PyKeyError::new_err(key.to_string()))
    }

    fn __contains__(&self, key: &str) -> bool {
        KEYS.contains(&key)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyResult<Bound<'_, PyAny>> {
        PyList::new(slf.py(), KEYS)?
            .try_iter()
            .map(|it| it.into_any())
    }

    fn __len__(&self) -> usize {
        self.len
    }

    fn __repr__(&self) -> String {
        format!(
            "Notes({} notes, ticks_per_quarter={})",
            self.len, self.ticks_per_quarter
        )
    }
}

/// Where the MIDI data comes from: in-memory bytes or a path.
enum Source<'a> {
    /// A `bytes` object's buffer: immutable and kept alive by the caller's reference, so it is
    /// parsed in place (no copy), with the GIL released.
    Borrowed(&'a [u8]),
    Bytes(Vec<u8>),
    Path(PathBuf, String),
}

fn source_of<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Source<'a>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Source::Borrowed(b.as_bytes()));
    }
    if let Ok(b) = obj.cast::<PyByteArray>() {
        return Ok(Source::Bytes(b.to_vec()));
    }
    let (path, name) = path_of(obj).map_err(|_| {
        PyTypeError::new_err(format!(
            "expected str, os.PathLike or bytes, got {}",
            type_name(obj)
        ))
    })?;
    Ok(Source::Path(path, name))
}

/// The name of an object's type, for a TypeError's message.
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// A path-like object as a `PathBuf` and its `os.fspath` (decoded) string for messages.
fn path_of(obj: &Bound<'_, PyAny>) -> PyResult<(PathBuf, String)> {
    let path: PathBuf = if obj.is_instance_of::<PyBytes>() {
        let os = PyModule::import(obj.py(), "os")?;
        os.call_method1("fsdecode", (obj,))?.extract()?
    } else {
        obj.extract()?
    };
    let name = path.to_string_lossy().into_owned();
    Ok((path, name))
}

/// read_notes(path_or_bytes, pedal="ignore") -> Notes
///
/// Reads the notes of a MIDI file (format 0, 1 or 2) given as a path (str or os.PathLike) or as
/// bytes. With `pedal="ignore"` the notes equal pretty_midi's (key-press lengths); with
/// `pedal="apply"` the sustain pedal holds them as tokenizing does (note_seq's rule). Raises
/// ValueError for data that is not a readable MIDI file or an unknown pedal mode,
/// FileNotFoundError / IsADirectoryError / PermissionError for path problems.
#[pyfunction]
#[pyo3(signature = (path_or_bytes, pedal = "ignore"))]
fn read_notes(py: Python<'_>, path_or_bytes: &Bound<'_, PyAny>, pedal: &str) -> PyResult<PyNotes> {
    let sustain = sustain_of(pedal)?;
    let source = source_of(path_or_bytes)?;
    let (label, result) = match source {
        Source::Borrowed(bytes) => (
            "<bytes>".to_string(),
            py.detach(|| catch(|| parse_with(bytes, sustain))),
        ),
        Source::Bytes(bytes) => (
            "<bytes>".to_string(),
            py.detach(|| catch(|| parse_with(&bytes, sustain))),
        ),
        Source::Path(path, name) => (
            name,
            py.detach(|| catch(|| read_bytes(&path).and_then(|bytes| parse_with(&bytes, sustain)))),
        ),
    };
    let notes = result.map_err(|e| to_pyerr(Some(&label), e))?;
    Ok(PyNotes::new(py, notes))
}

/// The result of `tokenize`: piece i (from `files[i]`) is `tokens[offsets[i]:offsets[i+1]]`.
#[pyclass(name = "Tokenized", module = "fastparse", frozen)]
pub struct PyTokenized {
    /// Vocabulary ids of all pieces concatenated (numpy int32).
    #[pyo3(get)]
    tokens: Py<PyAny>,
    /// Piece boundaries (numpy int64), len = pieces + 1.
    #[pyo3(get)]
    offsets: Py<PyAny>,
    /// Id -> token string.
    #[pyo3(get)]
    vocab: Py<PyList>,
    /// The paths tokenized, aligned with `offsets`.
    #[pyo3(get)]
    files: Py<PyList>,
    /// `(path, message)` for each file that failed, in input order.
    #[pyo3(get)]
    errors: Py<PyList>,
    /// Tokens skipped because they were not in the given vocabulary (0 without one).
    #[pyo3(get)]
    unknown: u64,
    /// The scheme used.
    #[pyo3(get)]
    scheme: &'static str,
    pieces: usize,
}

#[pymethods]
impl PyTokenized {
    fn __len__(&self) -> usize {
        self.pieces
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Tokenized({} pieces, {} tokens, vocab {}, {} errors, scheme={:?})",
            self.pieces,
            self.tokens.bind(py).len().unwrap_or(0),
            self.vocab.bind(py).len(),
            self.errors.bind(py).len(),
            self.scheme
        )
    }
}

fn scheme_of(name: &str) -> PyResult<Scheme> {
    name.parse().map_err(|e| to_pyerr(None, e))
}

fn sustain_of(name: &str) -> PyResult<Sustain> {
    name.parse().map_err(|e| to_pyerr(None, e))
}

/// A bad argument value, as the core reports one (ValueError through [`to_pyerr`]).
fn invalid_argument(why: String) -> PyErr {
    to_pyerr(None, Error::InvalidArgument(why))
}

/// tokenize(paths, scheme="notes-chords", workers=None, vocab=None, pedal="apply") -> Tokenized
///
/// Tokenizes MIDI files in parallel on `workers` threads (None: all cores; at most 1024, and no
/// more than the files) with the GIL released. `files` and `errors` name each file as given (a
/// bytes path as `os.fsdecode` reads it). A file that fails is listed in `errors` as
/// `(path, message)` and the others go on; the result
/// is in input order and the same for any number of workers. Without `vocab` the vocabulary is
/// the sorted set of tokens found; with `vocab` (a list of str) ids index it as given and tokens
/// not in it are skipped, counted in `unknown`. `scheme` is one of `SCHEMES`: "notes-chords"
/// (the paper's), "remi" (bars, positions, pitch, velocity, duration), "remi+key" (remi with a
/// key token first: the file's key signature), "remi+key-estimated" (the key estimated from the
/// notes), "performance" (note-on, note-off, 10 ms time shifts, velocity). `pedal` is "apply"
/// (the sustain pedal holds notes, note_seq's rule) or "ignore" (key-press lengths).
#[pyfunction]
#[pyo3(signature = (paths, scheme = "notes-chords", workers = None, vocab = None, pedal = "apply"))]
fn tokenize(
    py: Python<'_>,
    paths: &Bound<'_, PyAny>,
    scheme: &str,
    workers: Option<i64>,
    vocab: Option<Vec<String>>,
    pedal: &str,
) -> PyResult<PyTokenized> {
    let scheme = scheme_of(scheme)?;
    let sustain = sustain_of(pedal)?;
    if paths.is_instance_of::<PyString>()
        || paths.is_instance_of::<PyBytes>()
        || paths.hasattr("__fspath__")?
    {
        return Err(PyTypeError::new_err(
            "paths must be a list of paths, not a single path",
        ));
    }
    let workers = workers_of(workers)?;
    let os = PyModule::import(py, "os")?;
    let mut path_bufs = Vec::new();
    let mut names = Vec::new();
    for item in paths.try_iter()? {
        let item = item?;
        if let Ok(b) = item.cast::<PyBytes>() {
            // A MIDI header holds NUL bytes (its length), which no path can: `b"MThd_notes.mid"` is a path.
            if b.as_bytes().starts_with(b"MThd") && b.as_bytes().contains(&0) {
                return Err(PyTypeError::new_err(
                    "paths must hold paths, and this is a MIDI file's data: read_notes takes \
                     bytes, tokenize_members tokenizes MIDI data in memory",
                ));
            }
        }
        // The name as given (os.fspath, bytes decoded as os.fsdecode does), and the path from it: a
        // name that is not UTF-8 comes back as the same str, which names the same file (a lossy copy
        // named none).
        let (path, name) = os
            .call_method1("fsdecode", (&item,))
            .and_then(|n| Ok((n.extract::<PathBuf>()?, n)))
            .map_err(|_| {
                PyTypeError::new_err(format!(
                    "paths must hold str, bytes or os.PathLike, got {}",
                    type_name(&item)
                ))
            })?;
        path_bufs.push(path);
        names.push(name.unbind());
    }
    let options = Options {
        scheme,
        workers,
        vocab: vocab.as_deref(),
        sustain,
    };
    let result = py
        .detach(|| catch(|| tokenize_files(&path_bufs, &options)))
        .map_err(|e| to_pyerr(Some("tokenize"), e))?;
    py_tokenized(py, result, &names, scheme)
}

/// tokenize_members(data, members, scheme="notes-chords", workers=None, vocab=None, pedal="apply")
/// -> Tokenized
///
/// `tokenize` for MIDI files that lie side by side in one `bytes` object (a dataset shard read
/// into memory): `members` lists `(name, offset, size)`, and member i is
/// `data[offset:offset + size]`, parsed in place with the GIL released (no copy). `files` and
/// `errors` carry the members' names. Raises ValueError for a member outside `data`.
#[pyfunction]
#[pyo3(signature = (data, members, scheme = "notes-chords", workers = None, vocab = None, pedal = "apply"))]
fn tokenize_members(
    py: Python<'_>,
    data: &Bound<'_, PyBytes>,
    members: Vec<(String, usize, usize)>,
    scheme: &str,
    workers: Option<i64>,
    vocab: Option<Vec<String>>,
    pedal: &str,
) -> PyResult<PyTokenized> {
    let scheme = scheme_of(scheme)?;
    let options = Options {
        scheme,
        workers: workers_of(workers)?,
        vocab: vocab.as_deref(),
        sustain: sustain_of(pedal)?,
    };
    let spans: Vec<(usize, usize)> = members.iter().map(|&(_, o, n)| (o, n)).collect();
    let names: Vec<Py<PyAny>> = members
        .into_iter()
        .map(|(name, _, _)| PyString::new(py, &name).into_any().unbind())
        .collect();
    let bytes = data.as_bytes();
    let result = py
        .detach(|| catch(|| tokenize_spans(bytes, &spans, &options)))
        .map_err(|e| to_pyerr(Some("tokenize_members"), e))?;
    py_tokenized(py, result, &names, scheme)
}

fn workers_of(workers: Option<i64>) -> PyResult<Option<usize>> {
    match workers {
        Some(n) if n < 1 => Err(invalid_argument(format!(
            "workers must be at least 1, got {n}"
        ))),
        Some(n) if n > MAX_WORKERS as i64 => Err(invalid_argument(format!(
            "workers must be at most {MAX_WORKERS}, got {n}"
        ))),
        Some(n) => Ok(Some(n as usize)),
        None => Ok(None),
    }
}

/// The core's result for Python, with the inputs' names in `files` and `errors`.
fn py_tokenized(
    py: Python<'_>,
    result: Tokenized,
    names: &[Py<PyAny>],
    scheme: Scheme,
) -> PyResult<PyTokenized> {
    let pieces = result.files.len();
    let files = PyList::new(py, result.files.iter().map(|&i| names[i].bind(py)))?;
    let errors = PyList::empty(py);
    for (i, e) in &result.errors {
        let message = PyString::new(py, &e.to_string()).into_any();
        errors.append(PyTuple::new(py, [names[*i].bind(py).clone(), message])?)?;
    }
    Ok(PyTokenized {
        tokens: array(py, result.tokens),
        offsets: array(py, result.offsets),
        vocab: PyList::new(py, &result.vocab)?.unbind(),
        files: files.unbind(),
        errors: errors.unbind(),
        unknown: result.unknown,
        scheme: scheme.name(),
        pieces,
    })
}

fn ids_of(tokens: &Bound<'_, PyAny>) -> PyResult<Vec<i64>> {
    if let Ok(a) = tokens.extract::<PyReadonlyArray1<'_, i64>>() {
        // Any strides (a reversed or sliced array), not only a contiguous one.
        return Ok(a.as_array().iter().copied().collect());
    }
    if let Ok(a) = tokens.extract::<PyReadonlyArray1<'_, i32>>() {
        return Ok(a.as_array().iter().map(|&x| x as i64).collect());
    }
    if tokens.is_instance_of::<PyString>() || tokens.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(
            "tokens must be a sequence of int ids, not a string",
        ));
    }
    tokens.extract::<Vec<i64>>().map_err(|_| {
        PyTypeError::new_err("tokens must be a sequence of int ids (list or 1-d numpy int array)")
    })
}

/// detokenize(tokens, vocab, scheme="notes-chords", strict=True) -> bytes
///
/// MIDI file bytes for a sequence of vocabulary ids. With `strict` (the default) raises
/// ValueError for an id outside `vocab`, a token string that is not valid for the scheme, or
/// (remi, performance) a token out of place, such as a performance `NoteOff` for a key that is
/// not down. With `strict=False` (for model output) what cannot be used is skipped instead: ids
/// outside `vocab`, invalid tokens, and for remi and performance the malformed parts of the
/// stream (fastparse/README.md has the rules of each).
#[pyfunction]
#[pyo3(signature = (tokens, vocab, scheme = "notes-chords", strict = true))]
fn detokenize<'py>(
    py: Python<'py>,
    tokens: &Bound<'py, PyAny>,
    vocab: Vec<String>,
    scheme: &str,
    strict: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let scheme = scheme_of(scheme)?;
    let ids = ids_of(tokens)?;
    let bytes = py
        .detach(|| catch(|| detokenize_ids_with(&ids, &vocab, scheme, strict)))
        .map_err(|e| to_pyerr(None, e))?;
    Ok(PyBytes::new(py, &bytes))
}

/// chord_token(pitches) -> str
///
/// The notes-chords token for simultaneous MIDI pitches: the pitch name (music21's
/// `nameWithOctave`) if there is one distinct pitch, else music21's `normalOrder` joined by ".".
#[pyfunction]
fn chord_token(pitches: Vec<i64>) -> PyResult<String> {
    let mut ps = Vec::with_capacity(pitches.len());
    for p in pitches {
        if !(0..=127).contains(&p) {
            return Err(invalid_argument(format!(
                "pitch {p} is not a MIDI pitch (0..127)"
            )));
        }
        ps.push(p as u8);
    }
    core_chord_token(&ps)
        .ok_or_else(|| invalid_argument("chord_token needs at least one pitch".into()))
}

/// The numbers of a histogram, item by item: PyO3's `Vec<f64>` extraction takes lists and tuples
/// but not numpy arrays (not a `collections.abc.Sequence`), and `np.bincount` gives int64 or
/// float64 arrays. Its length and values are the core's to check.
fn weights_of(histogram: &Bound<'_, PyAny>) -> PyResult<Vec<f64>> {
    let wrong_type = || {
        PyTypeError::new_err(
            "histogram must be a sequence of 12 numbers (list, tuple or 1-d numpy array)",
        )
    };
    if histogram.is_instance_of::<PyString>() || histogram.is_instance_of::<PyBytes>() {
        return Err(wrong_type());
    }
    histogram
        .try_iter()
        .map_err(|_| wrong_type())?
        .map(|item| item?.extract::<f64>().map_err(|_| wrong_type()))
        .collect()
}

/// estimate_key(histogram) -> int
///
/// The Krumhansl-Schmuckler key of a pitch-class histogram (12 weights, C first; e.g. note
/// durations summed per pitch class), as the key index `2 * tonic_pitch_class + (1 if minor)`:
/// the estimate the "remi+key" schemes use (names: `key_names()`). Raises ValueError unless there
/// are exactly 12 finite weights.
#[pyfunction]
fn estimate_key(histogram: &Bound<'_, PyAny>) -> PyResult<usize> {
    let weights = weights_of(histogram)?;
    key::estimate_checked(&weights)
        .map(Key::index)
        .map_err(|e| to_pyerr(None, e))
}

/// key_names() -> list[str]
///
/// The 24 key names by key index: "C major", "C minor", "C# major", ..., "B minor" (tonics with
/// sharps, as in the `Key_<tonic>_<mode>` tokens).
#[pyfunction]
fn key_names() -> Vec<String> {
    (0..24).map(|i| Key::from_index(i).name()).collect()
}

/// key_scale(index) -> list[int]
///
/// The 7 pitch classes of the scale of key `index` (0..24), from the tonic up: major, or natural
/// minor. Raises ValueError for an index outside 0..24.
#[pyfunction]
fn key_scale(index: i64) -> PyResult<Vec<i64>> {
    // As ints: a Vec<u8> would reach Python as bytes.
    Key::try_from_index(index)
        .map(|key| ints(&key.scale()))
        .map_err(|e| to_pyerr(None, e))
}

/// Grammar: what the sampling grammars share (`RemiGrammar`, `PerformanceGrammar`), for a batch
/// of streams sampled one token at a time: `allowed()` gives, per stream, which vocabulary ids
/// keep it a stream that `detokenize(..., strict=True)` accepts; `push(ids)` appends one id to
/// every stream (ValueError for one not allowed; -1 skips a stream, a finished one); `notes()`
/// counts each stream's complete notes; `can_end()` says which streams may stop here.
#[pyclass(name = "Grammar", module = "fastparse", subclass)]
pub struct PyGrammar {
    grammar: Box<dyn Sampled + Send + Sync>,
    /// The vocabulary, to name a refused token.
    vocab: Vec<String>,
}

/// The most streams a grammar holds: far above a batch of samples, far below a size whose state
/// (about 2 KB a stream) would not fit in memory.
const MAX_ROWS: usize = 1 << 16;

/// `rows` as a count of streams: 0..=MAX_ROWS (taken as a Python int of any sign, so that a
/// negative one is a ValueError like a huge one, not an OverflowError).
fn rows_of(rows: i64) -> PyResult<usize> {
    match usize::try_from(rows) {
        Ok(n) if n <= MAX_ROWS => Ok(n),
        _ => Err(invalid_argument(format!(
            "rows is one stream per sample: 0 to {MAX_ROWS}, not {rows}"
        ))),
    }
}

#[pymethods]
impl PyGrammar {
    /// (rows, len(vocab)) bool array: True where the id may come next.
    fn allowed<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray2<bool>> {
        let g = &self.grammar;
        let (rows, n) = (g.rows(), g.vocab_len());
        let mut flags = vec![false; rows * n];
        for (row, chunk) in flags.chunks_mut(n.max(1)).enumerate().take(rows) {
            g.allowed(row, chunk);
        }
        PyArray1::from_vec(py, flags)
            .reshape([rows, n])
            .expect("rows * n flags")
    }

    /// Appends ids[i] to stream i (a negative id leaves stream i as it is: a finished stream).
    /// Every stream or none: an id not allowed is a ValueError that names its stream and token,
    /// and leaves all the streams as they were.
    fn push(&mut self, ids: Vec<i64>) -> PyResult<()> {
        let g = &mut self.grammar;
        if ids.len() != g.rows() {
            return Err(invalid_argument(format!(
                "push takes one id per stream: {} streams, {} ids",
                g.rows(),
                ids.len()
            )));
        }
        // (stream, id) for the streams that take one (a negative id: none).
        let taken: Vec<(usize, usize)> = ids
            .iter()
            .enumerate()
            .filter_map(|(row, &id)| Some((row, usize::try_from(id).ok()?)))
            .collect();
        for &(row, id) in &taken {
            if !g.allows_id(row, id) {
                let token = match self.vocab.get(id) {
                    Some(t) => format!("{t} (id {id})"),
                    None => format!("id {id} (the vocabulary has {})", self.vocab.len()),
                };
                return Err(invalid_argument(format!(
                    "stream {row} may not take {token} next: see allowed() (a finished stream \
                     takes -1)"
                )));
            }
        }
        for (row, id) in taken {
            g.push(row, id).map_err(|e| to_pyerr(None, e))?;
        }
        Ok(())
    }

    /// Complete notes per stream (numpy int64).
    fn notes<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i64>> {
        let g = &self.grammar;
        PyArray1::from_vec(py, (0..g.rows()).map(|r| g.notes(r) as i64).collect())
    }

    /// Per stream: whether it may end here.
    fn can_end<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<bool>> {
        let g = &self.grammar;
        PyArray1::from_vec(py, (0..g.rows()).map(|r| g.can_end(r)).collect())
    }
}

/// RemiGrammar(vocab, scheme="remi", rows=1, key_first=False)
///
/// The remi grammar (a `Grammar`): a note is complete at its Duration, and a stream may end after
/// one. `key_first`: a remi+key stream whose Key the caller writes itself (the streams start after
/// it).
#[pyclass(name = "RemiGrammar", module = "fastparse", extends = PyGrammar)]
pub struct PyRemiGrammar;

#[pymethods]
impl PyRemiGrammar {
    #[new]
    #[pyo3(signature = (vocab, scheme = "remi", rows = 1, key_first = false))]
    fn new(
        vocab: Vec<String>,
        scheme: &str,
        rows: i64,
        key_first: bool,
    ) -> PyResult<(Self, PyGrammar)> {
        let with_key =
            match scheme_of(scheme)? {
                Scheme::NotesChords | Scheme::Performance => return Err(invalid_argument(
                    "RemiGrammar needs a remi scheme (notes-chords needs none, performance has \
                     PerformanceGrammar)"
                        .into(),
                )),
                Scheme::Remi => false,
                _ => true,
            };
        let rows = rows_of(rows)?;
        let grammar = Box::new(Grammar::new(&vocab, with_key, rows, key_first));
        Ok((PyRemiGrammar, PyGrammar { grammar, vocab }))
    }
}

/// PerformanceGrammar(vocab, rows=1, notes=256)
///
/// The performance grammar (a `Grammar`) for streams of `notes` notes each: a stream strikes
/// `notes` keys, then releases them; `notes()` counts released notes, so a stream is finished when
/// it reaches `notes`; `can_end()` is true where every key is up. Raises ValueError for a
/// vocabulary that cannot write a performance.
#[pyclass(name = "PerformanceGrammar", module = "fastparse", extends = PyGrammar)]
pub struct PyPerformanceGrammar;

#[pymethods]
impl PyPerformanceGrammar {
    #[new]
    #[pyo3(signature = (vocab, rows = 1, notes = 256))]
    fn new(vocab: Vec<String>, rows: i64, notes: i64) -> PyResult<(Self, PyGrammar)> {
        let rows = rows_of(rows)?;
        let notes = u64::try_from(notes)
            .map_err(|_| invalid_argument(format!("notes must be 0 or more, not {notes}")))?;
        let grammar =
            PerformanceGrammar::new(&vocab, rows, notes).map_err(|e| to_pyerr(None, e))?;
        Ok((
            PyPerformanceGrammar,
            PyGrammar {
                grammar: Box::new(grammar),
                vocab,
            },
        ))
    }
}

/// What the sampling grammars share, for [`PyGrammar`]'s methods.
trait Sampled {
    fn rows(&self) -> usize;
    fn vocab_len(&self) -> usize;
    fn allowed(&self, row: usize, out: &mut [bool]);
    fn allows_id(&self, row: usize, id: usize) -> bool;
    fn push(&mut self, row: usize, id: usize) -> crate::Result<()>;
    fn notes(&self, row: usize) -> u64;
    fn can_end(&self, row: usize) -> bool;
}

macro_rules! sampled {
    ($t:ty) => {
        impl Sampled for $t {
            fn rows(&self) -> usize {
                <$t>::rows(self)
            }
            fn vocab_len(&self) -> usize {
                <$t>::vocab_len(self)
            }
            fn allowed(&self, row: usize, out: &mut [bool]) {
                <$t>::allowed(self, row, out)
            }
            fn allows_id(&self, row: usize, id: usize) -> bool {
                <$t>::allows_id(self, row, id)
            }
            fn push(&mut self, row: usize, id: usize) -> crate::Result<()> {
                <$t>::push(self, row, id)
            }
            fn notes(&self, row: usize) -> u64 {
                <$t>::notes(self, row)
            }
            fn can_end(&self, row: usize) -> bool {
                <$t>::can_end(self, row)
            }
        }
    };
}
sampled!(Grammar);
sampled!(PerformanceGrammar);

/// The bytes of the library that keeps a process's wildcard listeners on loopback, to preload into
/// the jobs of composer's own local head (Linux builds; None elsewhere): see
/// `fastparse/loopback/loopback.rs`. Nothing of the parser: the extension is composer's one
/// compiled artifact, so it carries it.
#[pyfunction]
fn loopback_library(py: Python<'_>) -> Option<Bound<'_, PyBytes>> {
    #[cfg(loopback_library)]
    {
        let bytes = include_bytes!(concat!(env!("OUT_DIR"), "/libloopback.so"));
        Some(PyBytes::new(py, bytes))
    }
    #[cfg(not(loopback_library))]
    {
        let _ = py;
        None
    }
}

#[pymodule]
fn _fastparse(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyNotes>()?;
    m.add_class::<PyTokenized>()?;
    m.add_class::<PyGrammar>()?;
    m.add_class::<PyRemiGrammar>()?;
    m.add_class::<PyPerformanceGrammar>()?;
    m.add_function(wrap_pyfunction!(read_notes, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize_members, m)?)?;
    m.add_function(wrap_pyfunction!(detokenize, m)?)?;
    m.add_function(wrap_pyfunction!(chord_token, m)?)?;
    m.add_function(wrap_pyfunction!(estimate_key, m)?)?;
    m.add_function(wrap_pyfunction!(key_names, m)?)?;
    m.add_function(wrap_pyfunction!(key_scale, m)?)?;
    m.add_function(wrap_pyfunction!(loopback_library, m)?)?;
    m.add("SCHEMES", SCHEMES.to_vec())?;
    m.add("TOKENS_VERSION", TOKENS_VERSION)?;
    m.add("PEDAL_MODES", SUSTAIN_MODES.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
