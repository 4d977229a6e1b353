//! Builds `loopback/loopback.rs` (see there) as its own shared library for the Python extension
//! on Linux, which carries its bytes (`loopback_library()`): a library to preload must not need
//! the extension's Python symbols, so it cannot be the extension itself.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=loopback/loopback.rs");
    println!("cargo:rustc-check-cfg=cfg(loopback_library)");
    let python = env::var_os("CARGO_FEATURE_PYTHON").is_some();
    let linux = env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os == "linux");
    if !(python && linux) {
        return;
    }
    let out =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("libloopback.so");
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let status = Command::new(rustc)
        .args([
            "--crate-type",
            "cdylib",
            "--edition",
            "2021",
            "--target",
            &target,
        ])
        .args([
            "-C",
            "opt-level=2",
            "-C",
            "panic=abort",
            "-C",
            "strip=debuginfo",
            "-o",
        ])
        .arg(&out)
        .arg("loopback/loopback.rs")
        .status()
        .expect("running rustc for loopback/loopback.rs");
    assert!(status.success(), "rustc failed on loopback/loopback.rs");
    println!("cargo:rustc-cfg=loopback_library");
}
