//! The broker core driven by arbitrary bytes: connections open, receive arbitrary byte chunks
//! (decoded as the runtime shell does), lose their sockets, and time passes. Checks that nothing
//! panics and that every byte the broker sends decodes as a valid packet of the connection's
//! protocol version.
//!
//! Input: a stream of operations, each an opcode byte and its operands. Opening a connection
//! also sends a valid CONNECT (client id, clean flag and version from the operands), so the
//! fuzzer reaches connected states at once; the chunks that follow are free-form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wren_broker::{Broker, Config, ConnId, Outbox};
use wren_codec::{
    Connect, DecodeOptions, Packet, ProtocolVersion, Status, decode, properties::NO_PROPERTIES,
};

struct Conn {
    id: ConnId,
    outbox: Outbox,
    options: DecodeOptions,
    /// The version the broker answers in: the first CONNECT's.
    answer_version: Option<ProtocolVersion>,
    pending: Vec<u8>,
    open: bool,
}

const MAX_PACKET: u32 = 4096;

fn config() -> Config {
    Config {
        sys_interval: 1,
        max_inflight_messages: 2,
        max_queued_messages: 4,
        max_outgoing_bytes: 2048,
        max_packet_size: MAX_PACKET,
        max_connect_packet_size: 512,
        max_connections: 8,
        queue_qos0_messages: true,
        max_subscriptions_per_client: 4,
        ..Config::default()
    }
}

/// Feed bytes to a connection the way the shell does.
fn feed(broker: &mut Broker, c: &mut Conn, bytes: &[u8], now: u64) {
    if !c.open {
        return;
    }
    c.pending.extend_from_slice(bytes);
    let mut used = 0;
    while let Some(rest) = c.pending.get(used..).filter(|r| !r.is_empty()) {
        match decode(rest, c.options) {
            Ok(Status::Complete(d)) => {
                if let Packet::Connect(connect) = &d.packet {
                    c.options.version = connect.protocol;
                    c.options.max_packet_size = MAX_PACKET;
                    c.answer_version.get_or_insert(connect.protocol);
                }
                broker.packet_received(c.id, &d.packet, d.consumed, now);
                used += d.consumed;
                if c.outbox.is_closed() {
                    c.open = false;
                    return;
                }
            }
            Ok(Status::Partial(_)) => break,
            Err(e) => {
                broker.decode_failed(c.id, e);
                c.open = false;
                return;
            }
        }
    }
    c.pending.drain(..used);
}

/// Everything the broker sent must decode, packet by packet, in the connection's version.
fn check_output(c: &Conn) {
    let mut out = Vec::new();
    c.outbox.drain_into(&mut out);
    let version = c.answer_version.unwrap_or(ProtocolVersion::V311);
    let mut rest = &out[..];
    while !rest.is_empty() {
        match decode(rest, DecodeOptions::new(version)) {
            Ok(Status::Complete(d)) => rest = &rest[d.consumed..],
            other => panic!("broker sent invalid bytes ({version:?}): {other:?} in {out:?}"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut broker = Broker::new(config(), 0);
    let mut conns: Vec<Conn> = Vec::new();
    let mut now = 0u64;
    let mut input = data;
    let mut take = |n: usize| -> &[u8] {
        let (head, tail) = input.split_at(n.min(input.len()));
        input = tail;
        head
    };
    while let [op] = take(1) {
        let op = *op;
        let arg = take(1).first().copied().unwrap_or(0);
        match op % 6 {
            0 => {
                let peer = "127.0.0.1:40000".parse().expect("address");
                let Some((id, outbox)) = broker.connection_opened(peer, 1883, now) else {
                    continue;
                };
                let mut c = Conn {
                    id,
                    outbox,
                    options: DecodeOptions::new(ProtocolVersion::V311).with_max_packet_size(512),
                    answer_version: None,
                    pending: Vec::new(),
                    open: true,
                };
                if arg & 0x80 == 0 {
                    let ids = ["a", "b", "c", ""];
                    let protocol = match arg & 0x30 {
                        0x10 => ProtocolVersion::V31,
                        0x20 => ProtocolVersion::V5,
                        _ => ProtocolVersion::V311,
                    };
                    let connect = Packet::Connect(Connect {
                        protocol,
                        clean_start: arg & 0x04 != 0,
                        keep_alive: u16::from(arg & 0x08) / 8,
                        client_id: ids[usize::from(arg & 0x03)],
                        will: None,
                        username: None,
                        password: None,
                        properties: NO_PROPERTIES,
                    });
                    let mut buf = [0u8; 64];
                    let n = connect.encode(protocol, &mut buf).expect("CONNECT encodes");
                    feed(&mut broker, &mut c, &buf[..n], now);
                }
                conns.push(c);
            }
            1 | 2 => {
                let len = usize::from(take(1).first().copied().unwrap_or(0));
                let chunk = take(len).to_vec();
                let index = usize::from(arg) % conns.len().max(1);
                if let Some(c) = conns.get_mut(index) {
                    feed(&mut broker, c, &chunk, now);
                }
            }
            3 => {
                now += u64::from(arg) * 50;
                broker.tick(now);
            }
            4 => {
                let index = usize::from(arg) % conns.len().max(1);
                if let Some(c) = conns.get_mut(index) {
                    broker.connection_lost(c.id);
                    c.open = false;
                }
            }
            _ => {
                if let Some(c) = conns.get(usize::from(arg) % conns.len().max(1)) {
                    check_output(c);
                }
            }
        }
    }
    for c in &conns {
        check_output(c);
    }
    broker.shutdown();
});
