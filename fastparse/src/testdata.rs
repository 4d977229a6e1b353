//! Helpers shared by the modules' tests (built in tests only): the shared MIDI corpus, a small
//! deterministic mutator of files, and small MIDI files built by hand.

/// The shared corpus (../shared/midi beside the repository), if it is there.
pub(crate) fn corpus() -> Vec<Vec<u8>> {
    corpus_paths()
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// The paths of the shared corpus's files (its folders' `.mid` files), sorted; none if it is not
/// there.
pub(crate) fn corpus_paths() -> Vec<std::path::PathBuf> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/midi");
    let mut paths: Vec<_> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "mid"))
        .collect();
    paths.sort();
    paths
}

/// xorshift64*: a small deterministic generator for mutations.
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

pub(crate) fn mutate(rng: &mut Rng, file: &[u8]) -> Vec<u8> {
    let mut out = file.to_vec();
    for _ in 0..1 + rng.below(4) {
        if out.is_empty() {
            break;
        }
        let at = rng.below(out.len());
        match rng.below(6) {
            0 => out[at] = rng.next() as u8,
            1 => out[at] ^= 1 << rng.below(8),
            2 => out.truncate(at),
            3 => {
                out.remove(at);
            }
            4 => out.insert(at, [0x00, 0x7F, 0x80, 0xFF, 0x90, 0x2F][rng.below(6)]),
            _ => {
                let end = (at + 1 + rng.below(64)).min(out.len());
                let chunk = out[at..end].to_vec();
                let to = rng.below(out.len());
                out.splice(to..to, chunk);
            }
        }
    }
    out
}

/// A MIDI file from raw track bodies (events without the end-of-track).
pub(crate) fn smf(format: u16, tpq: u16, tracks: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"MThd".to_vec();
    out.extend(6u32.to_be_bytes());
    out.extend(format.to_be_bytes());
    out.extend((tracks.len() as u16).to_be_bytes());
    out.extend(tpq.to_be_bytes());
    for body in tracks {
        let mut body = body.clone();
        body.extend([0x00, 0xFF, 0x2F, 0x00]);
        out.extend(b"MTrk");
        out.extend((body.len() as u32).to_be_bytes());
        out.extend(body);
    }
    out
}

pub(crate) fn on(delta: u8, ch: u8, key: u8, vel: u8) -> [u8; 4] {
    [delta, 0x90 | ch, key, vel]
}

pub(crate) fn off(delta: u8, ch: u8, key: u8) -> [u8; 4] {
    [delta, 0x80 | ch, key, 0]
}

/// A slow first tempo over many ticks, then a tempo so fast that one tick is below the float
/// resolution of the time reached: two notes one tick apart (pitches 62 then 60) get the same
/// start time.
pub(crate) fn equal_float_times_file() -> Vec<u8> {
    let mut t0 = vec![0x00, 0xFF, 0x51, 0x03, 0xFF, 0xFF, 0xFF];
    for _ in 0..16 {
        t0.extend([0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0x01, 0x00]); // max delta, empty text
    }
    t0.extend([0x00, 0xFF, 0x51, 0x03, 0x00, 0x00, 0x01]);
    t0.extend(on(1, 0, 62, 10));
    t0.extend(on(1, 0, 60, 10));
    t0.extend(off(1, 0, 62));
    t0.extend(off(0, 0, 60));
    smf(0, 32767, &[t0])
}

/// The inputs that once made a fuzz target fail (fuzz/regressions), with their paths; none in a
/// source distribution without the fuzz directory.
pub(crate) fn fuzz_regressions() -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| (entry.path(), std::fs::read(entry.path()).unwrap()))
        .collect();
    out.sort();
    out
}
