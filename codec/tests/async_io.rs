//! `io::asynch`: the async twins of `read_packet` / `write_packet` over `embedded_io_async`
//! streams (feature `async`; the README's test command enables it).
#![cfg(feature = "async")]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use wren_codec::io::ReadError;
use wren_codec::io::asynch::{read_packet, write_packet};
use wren_codec::*;

/// Drive a future that never waits (slice readers and writers are always ready).
fn run<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("future did not complete");
}

/// A reader that hands out one byte per read, to exercise the header loop.
struct Trickle<'a>(&'a [u8]);

impl embedded_io_async::ErrorType for Trickle<'_> {
    type Error = core::convert::Infallible;
}

impl embedded_io_async::Read for Trickle<'_> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        match (self.0.split_first(), buf.first_mut()) {
            (Some((b, rest)), Some(slot)) => {
                *slot = *b;
                self.0 = rest;
                Ok(1)
            }
            _ => Ok(0),
        }
    }
}

fn publish() -> Packet<'static> {
    Packet::Publish(Publish {
        dup: false,
        qos_pid: QosPid::ExactlyOnce(PacketId::new(513).unwrap()),
        retain: true,
        topic: TopicName::new("site/hall/co2").unwrap(),
        properties: Properties {
            message_expiry_interval: Some(30),
            ..NO_PROPERTIES
        },
        payload: b"612 ppm",
    })
}

#[test]
fn write_then_read_back_over_async_streams() {
    let mut wire = [0u8; 64];
    let mut scratch = [0u8; 64];
    let n = {
        let mut out: &mut [u8] = &mut wire;
        run(write_packet(
            &mut out,
            &publish(),
            ProtocolVersion::V5,
            &mut scratch,
        ))
        .unwrap()
    };
    assert_eq!(n, publish().encoded_len(ProtocolVersion::V5).unwrap());

    let opts = DecodeOptions::new(ProtocolVersion::V5);
    let mut buf = [0u8; 64];
    let got = run(read_packet(&mut Trickle(&wire[..n]), &mut buf, opts)).unwrap();
    assert_eq!(got, publish());
}

#[test]
fn async_read_reports_eof_size_and_decode_errors() {
    let opts = DecodeOptions::new(ProtocolVersion::V311);
    let mut buf = [0u8; 8];
    let r = run(read_packet(&mut Trickle(&[]), &mut buf, opts));
    assert_eq!(r.unwrap_err(), ReadError::Eof { mid_packet: false });
    let r = run(read_packet(
        &mut Trickle(&[0x30, 0x05, 0x00]),
        &mut buf,
        opts,
    ));
    assert_eq!(r.unwrap_err(), ReadError::Eof { mid_packet: true });
    let r = run(read_packet(&mut Trickle(&[0x30, 0x7F]), &mut buf, opts));
    assert_eq!(r.unwrap_err(), ReadError::BufferTooSmall { needed: 129 });
    let r = run(read_packet(
        &mut Trickle(&[0x30, 0x7F]),
        &mut buf,
        opts.with_max_packet_size(100),
    ));
    assert_eq!(
        r.unwrap_err(),
        ReadError::Decode(DecodeError::PacketTooLarge {
            size: 129,
            max: 100
        })
    );
    let r = run(read_packet(
        &mut Trickle(&[0x62, 0x02, 0x00, 0x01]),
        &mut buf,
        opts,
    ));
    assert_eq!(
        r.unwrap(),
        Packet::PubRel(Ack::new(PacketId::new(1).unwrap()))
    );
    let r = run(read_packet(
        &mut Trickle(&[0x63, 0x02, 0x00, 0x01]),
        &mut buf,
        opts,
    ));
    assert_eq!(
        r.unwrap_err(),
        ReadError::Decode(DecodeError::ReservedFlags(PacketType::PubRel))
    );
}
