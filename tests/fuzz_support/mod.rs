//! What the property tests (`tests/fuzz_*.rs`) share: a bounded case count
//! and the generators of hostile request pieces.
//!
//! Each property runs `CASES` generated inputs by default, so the whole set
//! stays well under a minute inside `cargo test`; `PROPTEST_CASES=100000`
//! runs longer. Failures are not persisted to files: a case proptest finds
//! is shrunk, printed, and then kept as a named regression test beside the
//! property.

#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
pub const CASES: u32 = 512;

pub fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Strings made of the pieces that break path, query and header parsers,
/// mixed with arbitrary printable text.
pub fn hostile(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::sample::select(pieces).prop_map(str::to_string),
        1 => "[ -~]{0,4}",
        1 => any::<char>().prop_map(|c| c.to_string()),
    ];
    proptest::collection::vec(piece, 0..max).prop_map(|v| v.concat())
}

/// Path segments and separators an attacker mixes: the passthrough and a
/// protected prefix, dot segments plain and encoded, encoded separators,
/// backslashes, `;params`, double encoding, NUL, overlong UTF-8, trailing
/// dots and spaces, case games.
pub const PATH_PIECES: &[&str] = &[
    "/",
    "/",
    "/",
    "public",
    "public/",
    "/public/",
    "admin",
    "/admin",
    ".portcullis",
    "/.portcullis/",
    "..",
    ".",
    "/..",
    "/.",
    "%2e",
    "%2E",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "\\",
    "\\..\\",
    ";",
    ";x=1",
    "..;",
    "%3b",
    "%3B",
    "%25",
    "%252e",
    "%252f",
    "%00",
    "%c0%ae",
    "%c0%af",
    "%ef%bc%8f",
    "%20",
    "..%20",
    "x",
    "a%20b",
    "a%3Fb",
    "a%3fb",
    "%70ublic",
    "PUBLIC",
    "Public",
    "public.",
    "~",
    "%7e",
    "%7E",
    "?",
    "#",
    "&",
    "=",
    "%",
    "%zz",
    "%2",
    "//",
    "é",
    "*",
    "x.css",
    "%2e%2e%2f",
    "..%2f",
    "..%5c",
    "%u002e",
];

pub fn path() -> impl Strategy<Value = String> {
    hostile(PATH_PIECES, 12).prop_map(|p| {
        if p.starts_with('/') {
            p
        } else {
            format!("/{p}")
        }
    })
}
