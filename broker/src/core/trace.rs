//! The packet trace of `-v` (debug level), in the words of Mosquitto's `log_type all`: one line
//! per packet received (`Received PUBLISH from c1 (d0, q1, r0, m1, 'a/b', ... (5 bytes))`) and
//! sent (`Sending PUBACK to c1 (m1, rc0)`), plus the lines Mosquitto adds around SUBSCRIBE,
//! UNSUBSCRIBE and CONNECT (`\ta/b (QoS 1)`, `c1 1 a/b`, `No will message specified.`).
//!
//! Every function here is called behind `log::log_enabled!(log::Level::Debug)`: with debug
//! logging off nothing is formatted, decoded or copied.

use wren_codec::{DecodeOptions, Packet, ProtocolVersion, QosPid, Status, decode};

use super::message::{Message, Out};

/// Whether the trace is on (`-v`, or a debug log level).
pub(super) fn enabled() -> bool {
    log::log_enabled!(log::Level::Debug)
}

/// `Received … from <id>` for a packet from a client (the per-filter lines of SUBSCRIBE and
/// UNSUBSCRIBE come from their handlers, [`filter`] and [`subscribed`], as each is decided).
pub(super) fn received(client_id: &str, packet: &Packet<'_>) {
    match packet {
        // Mosquitto logs "New client connected …" for a CONNECT, no "Received" line.
        Packet::Connect(_) => {}
        Packet::Publish(p) => log::debug!(
            "Received PUBLISH from {client_id} (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            u8::from(p.dup),
            p.qos_pid.qos().bits(),
            u8::from(p.retain),
            mid(p.qos_pid),
            p.topic.as_str(),
            p.payload.len()
        ),
        Packet::PubAck(a) | Packet::PubComp(a) => log::debug!(
            "Received {} from {client_id} (Mid: {}, RC:{})",
            packet.packet_type().name(),
            a.packet_id.get(),
            a.reason_code.0
        ),
        Packet::PubRec(a) | Packet::PubRel(a) => log::debug!(
            "Received {} from {client_id} (Mid: {})",
            packet.packet_type().name(),
            a.packet_id.get()
        ),
        Packet::Auth(a) => log::debug!(
            "Received AUTH from {client_id} (rc{}, {})",
            a.reason_code.0,
            a.properties.authentication_method.unwrap_or_default()
        ),
        other => log::debug!("Received {} from {client_id}", other.packet_type().name()),
    }
}

/// `Sending … to <id>` for bytes queued on a connection (decoded again: only when tracing).
pub(super) fn sent(client_id: &str, version: ProtocolVersion, out: &Out) {
    let mut bytes = Vec::with_capacity(out.len());
    out.write_to(&mut bytes);
    let Ok(Status::Complete(decoded)) = decode(&bytes, DecodeOptions::new(version)) else {
        return;
    };
    let packet = &decoded.packet;
    match packet {
        Packet::ConnAck(c) => log::debug!(
            "Sending CONNACK to {client_id} ({}, {})",
            u8::from(c.session_present),
            c.code.0
        ),
        Packet::Publish(p) => log::debug!(
            "Sending PUBLISH to {client_id} (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
            u8::from(p.dup),
            p.qos_pid.qos().bits(),
            u8::from(p.retain),
            mid(p.qos_pid),
            p.topic.as_str(),
            p.payload.len()
        ),
        Packet::PubAck(a) | Packet::PubRec(a) => log::debug!(
            "Sending {} to {client_id} (m{}, rc{})",
            packet.packet_type().name(),
            a.packet_id.get(),
            a.reason_code.0
        ),
        Packet::PubRel(a) | Packet::PubComp(a) => log::debug!(
            "Sending {} to {client_id} (m{})",
            packet.packet_type().name(),
            a.packet_id.get()
        ),
        Packet::Disconnect(d) => {
            log::debug!("Sending DISCONNECT to {client_id} (rc{})", d.reason_code.0)
        }
        Packet::Auth(a) => log::debug!(
            "Sending AUTH to {client_id} (rc{}, {})",
            a.reason_code.0,
            a.properties.authentication_method.unwrap_or_default()
        ),
        other => log::debug!("Sending {} to {client_id}", other.packet_type().name()),
    }
}

/// Mosquitto's line for a filter of a SUBSCRIBE (`\ta/b (QoS 1)`) or UNSUBSCRIBE (`\ta/b`), before
/// it is decided.
pub(super) fn filter(filter: &str, qos: Option<u8>) {
    match qos {
        Some(q) => log::debug!("\t{filter} (QoS {q})"),
        None => log::debug!("\t{filter}"),
    }
}

/// Mosquitto's line for a filter added (`c1 1 a/b`) or removed (`c1 a/b`).
pub(super) fn subscribed(client_id: &str, qos: Option<u8>, filter: &str) {
    match qos {
        Some(q) => log::debug!("{client_id} {q} {filter}"),
        None => log::debug!("{client_id} {filter}"),
    }
}

/// The will lines Mosquitto prints after "New client connected".
pub(super) fn will(will: Option<&Message>) {
    match will {
        None => log::debug!("No will message specified."),
        Some(w) => {
            log::debug!(
                "Will message specified ({} bytes) (r{}, q{}).",
                w.payload().len(),
                u8::from(w.retain()),
                w.qos().bits()
            );
            log::debug!("\t{}", w.topic());
        }
    }
}

fn mid(q: QosPid) -> u16 {
    match q {
        QosPid::AtMostOnce => 0,
        QosPid::AtLeastOnce(id) | QosPid::ExactlyOnce(id) => id.get(),
    }
}
