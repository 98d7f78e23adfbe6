//! Incomplete input: every proper prefix of every vector is `Partial`, never an error, with the
//! exact number of missing bytes once the fixed header is complete; the stream decoder and the
//! blocking reader reassemble every vector from arbitrary pieces.

mod common;

use std::convert::Infallible;

use common::*;
use wren_codec::io::{ReadError, read_packet};
use wren_codec::stream::StreamDecoder;
use wren_codec::*;

/// Length of the fixed header: the type byte and the Remaining Length bytes.
fn header_len(bytes: &[u8]) -> usize {
    1 + bytes[1..].iter().position(|&b| b & 0x80 == 0).unwrap() + 1
}

/// Vectors up to this size are split at every position in the quadratic loops.
const EXHAUSTIVE: usize = 4096;

/// The split points tried for a vector: all of them for vectors up to [`EXHAUSTIVE`] bytes; for
/// the longer ones (long filters, Remaining Length boundaries, 2 MiB), the header region, the end,
/// and points spread in between, which keeps these loops (each split costs the whole vector)
/// fast.
fn split_points(v: &Vector) -> Vec<usize> {
    let len = v.bytes.len();
    if len <= EXHAUSTIVE {
        return (0..=len).collect();
    }
    let (edge, spread) = if v.is_large() { (8, 16) } else { (64, 200) };
    let mut points: Vec<usize> = (0..edge).chain(len - edge..=len).collect();
    points.extend((1..spread).map(|i| i * (len / spread)));
    points.sort_unstable();
    points.dedup();
    points
}

#[test]
fn every_proper_prefix_is_partial() {
    for v in vectors() {
        let len = v.bytes.len();
        let hlen = header_len(v.bytes);
        for k in 0..len {
            match decode(&v.bytes[..k], v.options()) {
                Ok(Status::Partial(n)) => {
                    assert!(n >= 1, "{}: prefix {k}: Partial(0)", v.name);
                    if k >= hlen {
                        assert_eq!(n, len - k, "{}: prefix {k}", v.name);
                    } else {
                        assert!(k + n <= len, "{}: prefix {k} asks for too much", v.name);
                    }
                }
                other => panic!("{}: prefix {k} of {len}: {other:?}", v.name),
            }
        }
    }
}

#[test]
fn prefixes_of_a_header_claiming_the_maximum_are_partial() {
    // 268,435,455 bytes announced, none of them present.
    let bytes = [0x30, 0xFF, 0xFF, 0xFF, 0x7F];
    assert_eq!(
        decode(&bytes, DecodeOptions::new(V5)),
        Ok(Status::Partial(268_435_455))
    );
    for k in 0..bytes.len() {
        assert_eq!(
            decode(&bytes[..k], DecodeOptions::new(V5)),
            Ok(Status::Partial(1))
        );
    }
}

fn check_stream_splits<const N: usize>(v: &Vector) {
    for i in split_points(v) {
        let mut d = StreamDecoder::<N>::new(v.options());
        assert_eq!(d.feed(&v.bytes[..i]), i);
        if i < v.bytes.len() {
            assert_eq!(d.next_packet(), Ok(None), "{}: split {i}", v.name);
        }
        assert_eq!(d.feed(&v.bytes[i..]), v.bytes.len() - i);
        assert_eq!(d.buffered(), v.bytes.len());
        match d.next_packet() {
            Ok(Some(p)) => assert_packet_eq(v.name, &p, &v.packet),
            other => panic!("{}: split {i}: {other:?}", v.name),
        }
        assert_eq!(d.buffered(), 0);
        assert_eq!(d.next_packet(), Ok(None));
    }
}

#[test]
fn stream_decoder_reassembles_every_vector_split_anywhere() {
    for v in small_vectors() {
        check_stream_splits::<{ LARGE + 16 }>(v);
    }
    // The multi-megabyte vectors need a decoder (and a stack) of their size.
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(|| {
            for v in vectors().iter().filter(|v| v.is_large()) {
                check_stream_splits::<{ 3 << 20 }>(v);
            }
        })
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn stream_decoder_reads_the_whole_table_in_small_chunks() {
    for version in [V311, V5] {
        let table: Vec<&Vector> = small_vectors().filter(|v| v.version == version).collect();
        let stream: Vec<u8> = table.iter().flat_map(|v| v.bytes.iter().copied()).collect();
        for chunk in [1usize, 2, 3, 7, 64, 1000] {
            let mut d = StreamDecoder::<{ LARGE + 16 }>::new(DecodeOptions::new(version));
            let mut expected = table.iter();
            let mut rest = &stream[..];
            let mut seen = 0;
            loop {
                while let Some(p) = d.next_packet().unwrap() {
                    let v = expected.next().expect("more packets than vectors");
                    assert_packet_eq(v.name, &p, &v.packet);
                    seen += 1;
                }
                if rest.is_empty() {
                    break;
                }
                let n = d.feed(&rest[..chunk.min(rest.len())]);
                assert!(n > 0);
                rest = &rest[n..];
            }
            assert_eq!(seen, table.len(), "chunk {chunk}");
            assert_eq!(d.buffered(), 0);
        }
    }
}

#[test]
fn stream_decoder_refuses_a_packet_larger_than_its_buffer_from_the_header() {
    let mut d = StreamDecoder::<16>::new(DecodeOptions::new(V311));
    // A PUBLISH announcing 100 bytes: refused as soon as its header is in.
    assert_eq!(d.feed(&[0x30]), 1);
    assert_eq!(d.next_packet(), Ok(None));
    assert_eq!(d.feed(&[100]), 1);
    assert_eq!(
        d.next_packet(),
        Err(DecodeError::PacketTooLarge { size: 102, max: 16 })
    );
    // A full buffer takes no more bytes than it has room for.
    let mut d = StreamDecoder::<4>::new(DecodeOptions::new(V311));
    assert_eq!(d.feed(&[0xC0, 0x00, 0xD0, 0x00, 0xC0, 0x00]), 4);
    assert_eq!(d.next_packet(), Ok(Some(Packet::PingReq)));
    assert_eq!(d.next_packet(), Ok(Some(Packet::PingResp)));
    assert_eq!(d.feed(&[0xC0, 0x00]), 2);
    assert_eq!(d.next_packet(), Ok(Some(Packet::PingReq)));
}

/// A reader that hands out one byte per `read`.
struct OneByte<'a> {
    data: &'a [u8],
    reads: usize,
}

impl embedded_io::ErrorType for OneByte<'_> {
    type Error = Infallible;
}

impl embedded_io::Read for OneByte<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        if buf.is_empty() {
            return Ok(0);
        }
        let Some((&first, rest)) = self.data.split_first() else {
            return Ok(0);
        };
        buf[0] = first;
        self.data = rest;
        self.reads += 1;
        Ok(1)
    }
}

#[test]
fn read_packet_over_a_one_byte_reader_reads_every_vector() {
    let mut buf = vec![0u8; 3 << 20];
    for v in vectors() {
        let mut r = OneByte {
            data: v.bytes,
            reads: 0,
        };
        match read_packet(&mut r, &mut buf, v.options()) {
            Ok(p) => assert_packet_eq(v.name, &p, &v.packet),
            Err(e) => panic!("{}: {e:?}", v.name),
        }
        assert_eq!(r.reads, v.bytes.len(), "{}: every byte read once", v.name);
        assert_eq!(
            read_packet(&mut r, &mut buf, v.options()),
            Err(ReadError::Eof { mid_packet: false })
        );
    }
}

#[test]
fn read_packet_reads_the_whole_table_back_to_back() {
    let mut buf = vec![0u8; 3 << 20];
    for version in [V311, V5] {
        let table: Vec<&Vector> = vectors().iter().filter(|v| v.version == version).collect();
        let stream: Vec<u8> = table.iter().flat_map(|v| v.bytes.iter().copied()).collect();
        // Over a slice (many bytes per read) and over the one-byte reader.
        let mut slice = &stream[..];
        for v in &table {
            let p = read_packet(&mut slice, &mut buf, DecodeOptions::new(version)).unwrap();
            assert_packet_eq(v.name, &p, &v.packet);
        }
        assert!(slice.is_empty());
        let mut r = OneByte {
            data: &stream,
            reads: 0,
        };
        for v in &table {
            let p = read_packet(&mut r, &mut buf, DecodeOptions::new(version)).unwrap();
            assert_packet_eq(v.name, &p, &v.packet);
        }
        assert_eq!(r.reads, stream.len());
    }
}

#[test]
fn read_packet_reports_a_stream_cut_inside_a_packet() {
    let mut buf = vec![0u8; 3 << 20];
    for v in vectors() {
        for k in split_points(v)
            .into_iter()
            .filter(|&k| k > 0 && k < v.bytes.len())
        {
            let mut r = OneByte {
                data: &v.bytes[..k],
                reads: 0,
            };
            // A byte at a time costs a call per byte: the large vectors use the slice reader.
            let got = if v.is_large() {
                read_packet(&mut &v.bytes[..k], &mut buf, v.options())
            } else {
                read_packet(&mut r, &mut buf, v.options())
            };
            assert_eq!(
                got,
                Err(ReadError::Eof { mid_packet: true }),
                "{}: cut at {k}",
                v.name
            );
        }
    }
}

#[test]
fn read_packet_checks_buffer_and_maximum_size_before_the_body() {
    for v in small_vectors() {
        let len = v.bytes.len();
        let hlen = header_len(v.bytes);
        if len == hlen {
            continue;
        }
        // Only the header is available: the limits must be enforced without the body.
        let mut buf = vec![0u8; len - 1];
        let mut r = OneByte {
            data: &v.bytes[..hlen],
            reads: 0,
        };
        assert_eq!(
            read_packet(&mut r, &mut buf, v.options()),
            Err(ReadError::BufferTooSmall { needed: len }),
            "{}",
            v.name
        );
        assert_eq!(r.reads, hlen);
        let mut buf = vec![0u8; len];
        let mut r = OneByte {
            data: &v.bytes[..hlen],
            reads: 0,
        };
        let max = len as u32 - 1;
        assert_eq!(
            read_packet(&mut r, &mut buf, v.options().with_max_packet_size(max)),
            Err(ReadError::Decode(DecodeError::PacketTooLarge {
                size: len as u32,
                max
            })),
            "{}",
            v.name
        );
    }
}
