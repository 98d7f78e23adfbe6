//! `decode` on arbitrary bytes for a 3.1.1 connection (a CONNECT names its own version).
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_codec::ProtocolVersion;

fuzz_target!(|data: &[u8]| wren_fuzz::check_decode(data, ProtocolVersion::V311));
