//! Whatever decodes re-encodes, to bytes that decode to an equal packet (both versions).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_codec::ProtocolVersion;

fuzz_target!(|data: &[u8]| {
    wren_fuzz::check_roundtrip(data, ProtocolVersion::V311);
    wren_fuzz::check_roundtrip(data, ProtocolVersion::V5);
});
