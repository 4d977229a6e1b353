//! Tokenizing arbitrary bytes with every scheme, then assembling the ids and writing the tokens
//! back to MIDI (strict and lenient): none of it may panic, and errors are one line.
#![no_main]

use libfuzzer_sys::fuzz_target;

use fastparse::corpus::assemble;
use fastparse::{Scheme, SCHEMES};

fuzz_target!(|data: &[u8]| {
    for name in SCHEMES {
        let scheme: Scheme = name.parse().unwrap();
        let result = scheme.tokenize_bytes(data);
        if let Err(e) = &result {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
        }
        let Ok(tokens) = result else { continue };
        let t = assemble(vec![Ok(tokens.clone())], None);
        assert_eq!(t.tokens.len(), tokens.len());
        // Back to MIDI; a strict failure must be an error value, and lenient must not fail on
        // its own tokens.
        let _ = scheme.detokenize(&tokens);
        let _ = scheme.detokenize_with(&tokens, false);
    }
});
