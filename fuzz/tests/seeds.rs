//! The seed corpus must be what `make_corpus.py` says it is: every single-packet seed decodes,
//! whole, in the version its name gives, and passes the fuzz targets' own checks. A seed the
//! decoder refuses would start the fuzzer at the fixed header instead of deep in a parser.
//!
//! Run with `cargo test --manifest-path fuzz/Cargo.toml` (after `python3 fuzz/make_corpus.py`).

use std::path::Path;

use wren_codec::{DecodeOptions, ProtocolVersion, Status, decode};

#[test]
fn every_seed_decodes_in_its_version() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/seed");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus/seed exists (run make_corpus.py)") {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let data = std::fs::read(&path).unwrap();
        let version = if name.starts_with("v5-") || name.starts_with("stream-v5") {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V311
        };
        wren_fuzz::check_decode(&data, version);
        wren_fuzz::check_roundtrip(&data, version);
        if name.starts_with("stream-") {
            continue;
        }
        match decode(&data, DecodeOptions::new(version)) {
            Ok(Status::Complete(d)) => assert_eq!(d.consumed, data.len(), "{name}"),
            other => panic!("{name}: {other:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 50, "only {checked} single-packet seeds");
}
