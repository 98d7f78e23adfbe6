//! `parse_fixed_header` on arbitrary bytes, for 3.1.1 and 5.0 connections.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_codec::ProtocolVersion;
use wren_codec::header::{MAX_REMAINING_LENGTH, parse_fixed_header};

fuzz_target!(|data: &[u8]| {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        match parse_fixed_header(data, version) {
            Ok((rest, h)) => {
                let header_len = usize::from(h.header_len);
                assert!((2..=5).contains(&header_len), "header_len {header_len}");
                assert!(h.remaining_length <= MAX_REMAINING_LENGTH);
                // The header took exactly header_len bytes from the front.
                assert_eq!(data.len() - rest.len(), header_len);
                assert_eq!(&data[header_len..], rest);
                assert_eq!(data[0] >> 4, h.packet_type as u8);
                assert_eq!(data[0] & 0x0F, h.flags);
                // The Remaining Length bytes spell the value (7 bits each, low group first).
                let mut value = 0u32;
                for (i, b) in data[1..header_len].iter().enumerate() {
                    value |= u32::from(b & 0x7F) << (7 * i);
                    assert_eq!(b & 0x80 != 0, i + 2 < header_len, "continuation bits");
                }
                assert_eq!(value, h.remaining_length);
                assert_eq!(h.packet_len(), h.remaining_length + h.header_len as u32);
                // Every proper prefix of the header is incomplete, never an error.
                for cut in 0..header_len {
                    let r = parse_fixed_header(&data[..cut], version);
                    assert!(
                        matches!(r, Err(ref e) if e.is_incomplete()),
                        "prefix {cut}: {r:?}"
                    );
                }
            }
            Err(nom::Err::Incomplete(_)) => {
                // Only a short input can be incomplete: a header is at most 5 bytes.
                assert!(data.len() < 5, "incomplete on {} bytes", data.len());
            }
            Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
                wren_fuzz::touch_error(&e);
                // Errors are found from the first bytes: appending bytes does not cure them.
                let mut longer = data.to_vec();
                longer.extend_from_slice(&[0u8; 5]);
                assert!(parse_fixed_header(&longer, version).is_err());
            }
        }
    }
});
