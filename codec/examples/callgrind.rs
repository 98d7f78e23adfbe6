//! Instruction counts for the rows of `benches/codec.rs`, under callgrind (stable on a shared
//! machine, unlike wall-clock times). Each measured function is called 1,000 times; run
//! callgrind collecting only inside one of them and divide the total by 1,000:
//!
//! ```sh
//! cargo build --profile bench -p wren-codec --example callgrind
//! env -i PATH=/usr/bin:/bin valgrind --tool=callgrind --callgrind-out-file=cg.out \
//!     --toggle-collect=callgrind::measure_wren_encode \
//!     target/release/examples/callgrind publish_v5_qos1_64B
//! grep '^summary:' cg.out
//! ```
//!
//! Functions: `measure_wren_encode`, `measure_mqttbytes_encode`, `measure_wren_decode`,
//! `measure_mqttbytes_decode`; rows: the names of the bench's rows. The packets are built as in
//! the bench (the `mqttbytes` ones by decoding wren's bytes). Run with the same environment and
//! binary path when comparing builds (`env -i` above): the decoders return their packet by
//! value, and what `memcpy` costs for it depends on the stack's alignment, which the size of
//! the environment moves (about 12 instructions on a decode).

use std::hint::black_box;

use bytes::BytesMut;
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use wren_codec::{DecodeOptions, Packet, ProtocolVersion, Status, decode};

#[path = "../benches/common/mod.rs"]
mod common;
use common::*;

const CALLS: usize = 1000;
#[allow(clippy::large_enum_variant, dead_code)]
enum Reference {
    V4(v4::Packet),
    V5(v5::Packet),
}

#[inline(never)]
fn measure_wren_encode(p: &Packet<'_>, v: ProtocolVersion, buf: &mut [u8]) -> usize {
    p.encode(v, buf).unwrap_or(0)
}

#[inline(never)]
fn measure_wren_decode(bytes: &[u8], opts: DecodeOptions) -> usize {
    match decode(bytes, opts) {
        Ok(Status::Complete(d)) => read_lists(&d.packet) + d.consumed,
        _ => 0,
    }
}

#[inline(never)]
fn measure_mqttbytes_encode(r: &Reference, out: &mut BytesMut) -> usize {
    out.clear();
    match r {
        Reference::V5(p) => p.write(out).unwrap_or(0),
        Reference::V4(v4::Packet::Publish(p)) => p.write(out).unwrap_or(0),
        Reference::V4(v4::Packet::Connect(p)) => p.write(out).unwrap_or(0),
        Reference::V4(v4::Packet::Subscribe(p)) => p.write(out).unwrap_or(0),
        Reference::V4(_) => 0,
    }
}

#[inline(never)]
fn measure_mqttbytes_decode(buf: &mut BytesMut, v5: bool) -> Reference {
    if v5 {
        Reference::V5(v5::Packet::read(buf, None).expect("decodes"))
    } else {
        Reference::V4(v4::read(buf, usize::MAX).expect("decodes"))
    }
}

fn main() {
    let row = std::env::args().nth(1).unwrap_or_default();
    let payload_64 = vec![0x5Au8; 64];
    let payload_1k = vec![0xA5u8; 1024];
    let subs_v311 = subscriptions(false);
    let subs_v5 = subscriptions(true);
    let (version, packet) = match row.as_str() {
        "publish_v311_qos1_64B" => (ProtocolVersion::V311, publish(&payload_64)),
        "publish_v311_qos1_1KiB" => (ProtocolVersion::V311, publish(&payload_1k)),
        "publish_v5_qos1_64B" => (ProtocolVersion::V5, publish(&payload_64)),
        "publish_v5_qos1_1KiB" => (ProtocolVersion::V5, publish(&payload_1k)),
        "connect_v311_will" => (ProtocolVersion::V311, connect(ProtocolVersion::V311)),
        "connect_v5_will_props" => (ProtocolVersion::V5, connect(ProtocolVersion::V5)),
        "subscribe_v311_8_filters" => (ProtocolVersion::V311, subscribe(false, &subs_v311)),
        "subscribe_v5_8_filters" => (ProtocolVersion::V5, subscribe(true, &subs_v5)),
        other => panic!("unknown row {other:?}"),
    };
    let v5 = version.is_v5();
    let mut bytes = vec![0u8; packet.encoded_len(version).expect("encodable")];
    packet.encode(version, &mut bytes).expect("encodes");
    let opts = DecodeOptions::new(version);
    let reference = {
        let mut buf = BytesMut::from(&bytes[..]);
        measure_mqttbytes_decode(&mut buf, v5)
    };
    let mut out = BytesMut::with_capacity(4096);
    // (`mqttbytes`' `write` returns the body length for some packets, so compare the buffer.)
    measure_mqttbytes_encode(&reference, &mut out);
    assert_eq!(out.len(), bytes.len());

    let mut sum = 0usize;
    let mut wren_buf = vec![0u8; 4096];
    for _ in 0..CALLS {
        sum += measure_wren_encode(black_box(&packet), version, &mut wren_buf);
    }
    assert_eq!(&wren_buf[..bytes.len()], &bytes[..]);
    for _ in 0..CALLS {
        sum += measure_mqttbytes_encode(black_box(&reference), &mut out);
    }
    for _ in 0..CALLS {
        sum += measure_wren_decode(black_box(&bytes), opts);
    }
    let mut inputs: Vec<BytesMut> = (0..CALLS).map(|_| BytesMut::from(&bytes[..])).collect();
    let mut decoded = Vec::with_capacity(CALLS);
    for buf in &mut inputs {
        decoded.push(measure_mqttbytes_decode(black_box(buf), v5));
    }
    black_box(&decoded);
    println!("{row}: {sum}");
}
