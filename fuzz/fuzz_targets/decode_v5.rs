//! `decode` on arbitrary bytes for an MQTT 5.0 connection.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_codec::ProtocolVersion;

fuzz_target!(|data: &[u8]| wren_fuzz::check_decode(data, ProtocolVersion::V5));
