//! A byte stream split into pieces and fed through `StreamDecoder` and `io::read_packet` yields the
//! same packets, and ends the same way, as decoding the whole input in one go.
//!
//! The split points come from a small PRNG seeded with a hash of the input, so every mutation of
//! the input also explores a new way of cutting it; a byte-at-a-time split is always checked too.
#![no_main]

use std::convert::Infallible;

use libfuzzer_sys::fuzz_target;
use wren_codec::io::{ReadError, read_packet};
use wren_codec::stream::StreamDecoder;
use wren_codec::{DecodeError, DecodeOptions, Packet, ProtocolVersion, Status, decode};

/// Capacity of the reassembly buffer (and so the maximum packet size) under test.
const CAP: usize = 256;

/// How the whole-input decode ended.
#[derive(Debug, PartialEq)]
enum End {
    /// No error; this many bytes at the end are an incomplete packet.
    Leftover(usize),
    /// The stream is not MQTT.
    Error(DecodeError),
}

/// A CONNECT tells the rest of the connection which version it speaks.
fn next_version(packet: &Packet<'_>, current: ProtocolVersion) -> ProtocolVersion {
    match packet {
        Packet::Connect(c) => c.protocol,
        _ => current,
    }
}

fn reference(data: &[u8], version: ProtocolVersion) -> (Vec<Packet<'_>>, End) {
    let mut options = DecodeOptions::new(version).with_max_packet_size(CAP as u32);
    let mut packets = Vec::new();
    let mut offset = 0;
    loop {
        match decode(&data[offset..], options) {
            Ok(Status::Complete(d)) => {
                options.version = next_version(&d.packet, options.version);
                packets.push(d.packet);
                offset += d.consumed;
            }
            Ok(Status::Partial(_)) => return (packets, End::Leftover(data.len() - offset)),
            Err(e) => return (packets, End::Error(e)),
        }
    }
}

/// xorshift64, seeded from an FNV-1a hash of the input: chunk sizes the fuzzer steers indirectly.
struct Splits(u64);

impl Splits {
    fn new(data: &[u8], salt: u64) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ salt;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        Splits(h | 1)
    }

    /// 1..=8 most of the time (to cut inside headers and fields), sometimes up to 300.
    fn next_size(&mut self) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        if x & 3 == 0 {
            1 + (x >> 8) as usize % 300
        } else {
            1 + (x >> 8) as usize % 8
        }
    }
}

fn chunks(data: &[u8], mut sizes: impl FnMut() -> usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = sizes().min(rest.len());
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

fn check_stream_decoder(
    chunks: &[&[u8]],
    version: ProtocolVersion,
    want: &[Packet<'_>],
    end: &End,
) {
    let mut d = StreamDecoder::<CAP>::new(DecodeOptions::new(version));
    let mut current = version;
    let mut got = 0usize;
    for chunk in chunks {
        let mut rest = *chunk;
        loop {
            let fed = d.feed(rest);
            rest = &rest[fed..];
            let mut progressed = fed > 0;
            loop {
                match d.next_packet() {
                    Ok(Some(p)) => {
                        assert!(got < want.len(), "extra packet {p:?}");
                        assert_eq!(p, want[got], "packet #{got}");
                        current = next_version(&p, current);
                        got += 1;
                        progressed = true;
                        d.set_version(current);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(got, want.len(), "error {e:?} before all packets");
                        assert_eq!(*end, End::Error(e));
                        return;
                    }
                }
            }
            if rest.is_empty() {
                break;
            }
            assert!(
                progressed,
                "stream decoder stuck with {} bytes",
                d.buffered()
            );
        }
    }
    assert_eq!(got, want.len(), "packets missing at end of stream");
    assert_eq!(*end, End::Leftover(d.buffered()));
}

/// A reader that returns the stream in the given pieces.
struct Pieces<'a, F> {
    rest: &'a [u8],
    sizes: F,
}

impl<F> embedded_io::ErrorType for Pieces<'_, F> {
    type Error = Infallible;
}

impl<F: FnMut() -> usize> embedded_io::Read for Pieces<'_, F> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let n = (self.sizes)().min(buf.len()).min(self.rest.len());
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}

fn check_read_packet(data: &[u8], version: ProtocolVersion, want: &[Packet<'_>], end: &End) {
    let mut splits = Splits::new(data, 0x5eed);
    let mut reader = Pieces {
        rest: data,
        sizes: || splits.next_size(),
    };
    let mut buf = [0u8; CAP];
    let mut options = DecodeOptions::new(version).with_max_packet_size(CAP as u32);
    let mut got = 0usize;
    loop {
        match read_packet(&mut reader, &mut buf, options) {
            Ok(p) => {
                assert!(got < want.len(), "extra packet {p:?}");
                assert_eq!(p, want[got], "packet #{got}");
                options.version = next_version(&p, options.version);
                got += 1;
            }
            Err(ReadError::Decode(e)) => {
                assert_eq!(got, want.len());
                assert_eq!(*end, End::Error(e));
                return;
            }
            Err(ReadError::Eof { mid_packet }) => {
                assert_eq!(got, want.len());
                match end {
                    End::Leftover(n) => assert_eq!(mid_packet, *n > 0),
                    End::Error(e) => panic!("read_packet hit EOF where decode gave {e:?}"),
                }
                return;
            }
            Err(e) => panic!("unexpected read error {e:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let (want, end) = reference(data, version);
        for p in &want {
            wren_fuzz::touch_packet(p);
        }
        // Whole input at once, one byte at a time, and in hash-chosen pieces.
        check_stream_decoder(&[data], version, &want, &end);
        if data.len() <= 512 {
            check_stream_decoder(&chunks(data, || 1), version, &want, &end);
        }
        let mut splits = Splits::new(data, version.level().into());
        check_stream_decoder(&chunks(data, || splits.next_size()), version, &want, &end);
        check_read_packet(data, version, &want, &end);
    }
});
