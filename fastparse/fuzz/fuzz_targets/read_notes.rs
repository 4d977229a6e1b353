//! `notes::parse` on arbitrary bytes: it must never panic (or hang, or allocate without bound),
//! every error must be one line, and the result must equal the midly-based reference parser.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let got = fastparse::notes::parse(data);
    if let Err(e) = &got {
        assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
    }
    if let Ok(n) = &got {
        let len = n.len();
        for v in [
            n.velocity.len(),
            n.start.len(),
            n.end.len(),
            n.start_tick.len(),
        ] {
            assert_eq!(v, len);
        }
        assert!(
            n.start.windows(2).all(|w| w[0] <= w[1]),
            "not sorted by start"
        );
    }
    assert_eq!(
        got,
        fastparse::reference::parse(data),
        "differs from the reference"
    );
});
