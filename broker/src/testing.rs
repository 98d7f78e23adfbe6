//! The test harness of the core, shared by its unit tests, the integration tests (`tests/`) and
//! the `broker_core` fuzz target, in the spirit of quinn-proto's `tests::util`:
//!
//! - [`Sent`]: an owned, comparable summary of a packet the broker sent (with the 5.0 properties
//!   tests look at), and [`decode_sent`], the one decoder of the broker's output into it, used on
//!   an [`Outbox`]'s bytes and on bytes read from a socket alike;
//! - [`Driver`]: a [`Broker`], its clock and its connections, each with its outbox and the
//!   [`Framing`] the shell would decode its bytes with. It absorbs [`Broker::poll_event`] as the
//!   shell does, checking the shell's invariants on the way, and checks that everything a
//!   connection was sent decodes in its protocol version within the Maximum Packet Size its
//!   client announced.
//!
//! Compiled for the crate's own tests and with the `testing` feature (the integration tests
//! enable it through a dev-dependency on the crate itself, the fuzz crate through its
//! dependency), never in the broker a user builds. A harness fails a test by panicking, as
//! `assert!` does: that is the one lint this module is allowed to break. The decoder returns a
//! `Result`, for callers that read bytes from anywhere.
#![allow(clippy::panic)]

use std::net::{Ipv4Addr, SocketAddr};

use wren_codec::{
    DecodeError, DecodeOptions, Packet, PayloadFormat, ProtocolVersion, QoS, Status, decode,
};

use crate::config::Config;
use crate::core::{Broker, ConnId, Event, Framing, Outbox};

// ---------------------------------------------------------------------------------------------
// The decoder
// ---------------------------------------------------------------------------------------------

/// An owned summary of a packet the broker sent. Reason codes are bytes (0 where 3.1.1 has
/// none); 5.0 properties are those the tests look at (none in 3.1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// CONNACK.
    ConnAck {
        /// Session Present.
        session_present: bool,
        /// The return code (3.1.1) or reason code (5.0).
        code: u8,
        /// The 5.0 properties.
        properties: ConnAckProperties,
    },
    /// PUBLISH.
    Publish(Publication),
    /// PUBACK: packet id, reason code.
    PubAck(u16, u8),
    /// PUBREC: packet id, reason code.
    PubRec(u16, u8),
    /// PUBREL: packet id, reason code.
    PubRel(u16, u8),
    /// PUBCOMP: packet id, reason code.
    PubComp(u16, u8),
    /// SUBACK: packet id, one code per filter.
    SubAck(u16, Vec<u8>),
    /// UNSUBACK: packet id, one reason code per filter (none in 3.1.1).
    UnsubAck(u16, Vec<u8>),
    /// PINGRESP.
    PingResp,
    /// DISCONNECT (5.0).
    Disconnect {
        /// The reason code.
        code: u8,
        /// The Reason String, if the broker could afford it.
        reason_string: Option<String>,
    },
    /// AUTH (5.0): reason code, Authentication Data.
    Auth(u8, Vec<u8>),
}

impl Sent {
    /// A CONNACK without properties (every 3.1.1 CONNACK, a 5.0 refusal).
    pub fn connack(session_present: bool, code: u8) -> Sent {
        Sent::ConnAck {
            session_present,
            code,
            properties: ConnAckProperties::default(),
        }
    }

    /// The packet without the properties tests rarely pin down: a CONNACK's and a DISCONNECT's
    /// Reason String (a PUBLISH keeps its own).
    pub fn without_properties(self) -> Sent {
        match self {
            Sent::ConnAck {
                session_present,
                code,
                ..
            } => Sent::connack(session_present, code),
            Sent::Disconnect { code, .. } => Sent::Disconnect {
                code,
                reason_string: None,
            },
            other => other,
        }
    }

    /// The PUBLISH, if this is one.
    pub fn publication(&self) -> Option<&Publication> {
        match self {
            Sent::Publish(p) => Some(p),
            _ => None,
        }
    }
}

/// A PUBLISH the broker sent; the 5.0 properties are empty in 3.1.1.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Publication {
    /// The topic (empty when only a topic alias is sent).
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
    /// The QoS, 0 to 2.
    pub qos: u8,
    /// The packet id (0 at QoS 0).
    pub pid: u16,
    /// DUP.
    pub dup: bool,
    /// RETAIN.
    pub retain: bool,
    /// Subscription Identifiers, in order.
    pub subscription_ids: Vec<u32>,
    /// Message Expiry Interval.
    pub message_expiry: Option<u32>,
    /// Topic Alias.
    pub topic_alias: Option<u16>,
    /// User Properties, in order.
    pub user_properties: Vec<(String, String)>,
    /// Content Type.
    pub content_type: Option<String>,
    /// Response Topic.
    pub response_topic: Option<String>,
    /// Correlation Data.
    pub correlation_data: Option<Vec<u8>>,
    /// Payload Format Indicator 1 (UTF-8).
    pub payload_is_utf8: bool,
}

/// The properties of a 5.0 CONNACK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    /// Assigned Client Identifier.
    pub assigned_client_identifier: Option<String>,
    /// Server Keep Alive.
    pub server_keep_alive: Option<u16>,
    /// Session Expiry Interval (the broker's cap).
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum.
    pub receive_maximum: Option<u16>,
    /// Maximum QoS.
    pub maximum_qos: Option<u8>,
    /// Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// Maximum Packet Size.
    pub maximum_packet_size: Option<u32>,
    /// Response Information.
    pub response_information: Option<String>,
    /// Retain Available.
    pub retain_available: Option<bool>,
    /// Shared Subscription Available.
    pub shared_subscription_available: Option<bool>,
}

/// Bytes from the broker that [`decode_sent`] rejects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadOutput {
    /// Not a valid packet in the version it was decoded in.
    Undecodable(DecodeError),
    /// A packet only a client sends.
    ClientPacket(&'static str),
    /// The stream ends inside a packet (`bytes` of it are there).
    Truncated {
        /// The bytes of the incomplete packet.
        bytes: usize,
    },
}

impl std::fmt::Display for BadOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadOutput::Undecodable(e) => write!(f, "undecodable output: {e}"),
            BadOutput::ClientPacket(name) => write!(f, "the broker sent a {name}"),
            BadOutput::Truncated { bytes } => write!(f, "output ends inside a packet ({bytes} B)"),
        }
    }
}

/// Decode the packets at the front of `bytes`, which the broker sent in `version`: each with its
/// length in bytes. An incomplete packet at the end is left (a socket's next read completes
/// it): the lengths add up to the bytes used. The one decoder of the broker's output.
pub fn decode_sent(
    bytes: &[u8],
    version: ProtocolVersion,
) -> Result<Vec<(Sent, usize)>, BadOutput> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let decoded = match decode(rest, DecodeOptions::new(version)) {
            Ok(Status::Complete(d)) => d,
            Ok(Status::Partial(_)) => break,
            Err(e) => return Err(BadOutput::Undecodable(e)),
        };
        out.push((summarize(&decoded.packet)?, decoded.consumed));
        rest = rest.get(decoded.consumed..).unwrap_or_default();
    }
    Ok(out)
}

/// Decode a whole stream (an outbox's bytes): [`decode_sent`], with nothing left over.
pub fn decode_all(bytes: &[u8], version: ProtocolVersion) -> Result<Vec<Sent>, BadOutput> {
    let packets = decode_sent(bytes, version)?;
    let used: usize = packets.iter().map(|(_, len)| len).sum();
    if used < bytes.len() {
        return Err(BadOutput::Truncated {
            bytes: bytes.len() - used,
        });
    }
    Ok(packets.into_iter().map(|(p, _)| p).collect())
}

fn summarize(packet: &Packet<'_>) -> Result<Sent, BadOutput> {
    Ok(match packet {
        Packet::ConnAck(c) => {
            let p = &c.properties;
            Sent::ConnAck {
                session_present: c.session_present,
                code: c.code.0,
                properties: ConnAckProperties {
                    assigned_client_identifier: p.assigned_client_identifier.map(Into::into),
                    server_keep_alive: p.server_keep_alive,
                    session_expiry_interval: p.session_expiry_interval,
                    receive_maximum: p.receive_maximum.map(|r| r.get()),
                    maximum_qos: p.maximum_qos.map(|q| q.bits()),
                    topic_alias_maximum: p.topic_alias_maximum,
                    maximum_packet_size: p.maximum_packet_size.map(|m| m.get()),
                    response_information: p.response_information.map(Into::into),
                    retain_available: p.retain_available,
                    shared_subscription_available: p.shared_subscription_available,
                },
            }
        }
        Packet::Publish(p) => {
            let props = &p.properties;
            Sent::Publish(Publication {
                topic: p.topic.as_str().into(),
                payload: p.payload.to_vec(),
                qos: p.qos_pid.qos().bits(),
                pid: p.qos_pid.packet_id().map_or(0, |id| id.get()),
                dup: p.dup,
                retain: p.retain,
                subscription_ids: props.subscription_identifiers.iter().collect(),
                message_expiry: props.message_expiry_interval,
                topic_alias: props.topic_alias.map(|a| a.get()),
                user_properties: props
                    .user_properties
                    .iter()
                    .map(|(k, v)| (k.into(), v.into()))
                    .collect(),
                content_type: props.content_type.map(Into::into),
                response_topic: props.response_topic.map(|t| t.as_str().into()),
                correlation_data: props.correlation_data.map(Into::into),
                payload_is_utf8: props.payload_format_indicator == Some(PayloadFormat::Utf8),
            })
        }
        Packet::PubAck(a) => Sent::PubAck(a.packet_id.get(), a.reason_code.0),
        Packet::PubRec(a) => Sent::PubRec(a.packet_id.get(), a.reason_code.0),
        Packet::PubRel(a) => Sent::PubRel(a.packet_id.get(), a.reason_code.0),
        Packet::PubComp(a) => Sent::PubComp(a.packet_id.get(), a.reason_code.0),
        Packet::SubAck(s) => Sent::SubAck(
            s.packet_id.get(),
            s.reason_codes.iter().map(|c| c.0).collect(),
        ),
        Packet::UnsubAck(s) => Sent::UnsubAck(
            s.packet_id.get(),
            s.reason_codes.iter().map(|c| c.0).collect(),
        ),
        Packet::PingResp => Sent::PingResp,
        Packet::Disconnect(d) => Sent::Disconnect {
            code: d.reason_code.0,
            reason_string: d.properties.reason_string.map(Into::into),
        },
        Packet::Auth(a) => Sent::Auth(
            a.reason_code.0,
            a.properties
                .authentication_data
                .unwrap_or_default()
                .to_vec(),
        ),
        Packet::Connect(_) | Packet::Subscribe(_) | Packet::Unsubscribe(_) | Packet::PingReq => {
            return Err(BadOutput::ClientPacket(packet.packet_type().name()));
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

/// A connection of the [`Driver`], as the shell keeps it.
#[derive(Debug)]
pub struct Client {
    /// Its id in the core.
    pub id: ConnId,
    /// The outbox its writer drains (a new one after a wake).
    pub outbox: Outbox,
    /// How its bytes are cut into packets ([`Driver::feed`]).
    pub framing: Framing,
    /// The bytes of an incomplete packet.
    pending: Vec<u8>,
    /// The version of its first CONNECT: the one the broker answers in (3.1.1 before).
    pub version: Option<ProtocolVersion>,
    /// The Maximum Packet Size the test's CONNECT announced ([`Driver::send`],
    /// [`Driver::send_encoded`]; raw bytes are not looked into).
    pub max_packet_size: Option<u32>,
    /// Hibernating: the core has its old outbox no more, and must put nothing in it.
    pub hibernating: bool,
    /// Neither closed by the core after a packet or a decode error nor lost (as seen by the
    /// driver's own inputs): the shell still feeds it.
    pub open: bool,
    /// A CONNACK was drained: before it, only AUTH may come ([`Driver::drain`]).
    connacked: bool,
}

/// A [`Broker`], its clock and its connections: the core as the shell drives it, for tests.
#[derive(Debug)]
pub struct Driver {
    /// The core (inputs the driver has no method for go to it directly).
    pub broker: Broker,
    /// The clock, in milliseconds.
    pub now: u64,
    clients: Vec<Client>,
    /// Connections woken since [`Driver::take_woken`], with their new outboxes.
    woken: Vec<(ConnId, Outbox)>,
    /// Congested outboxes reported since [`Driver::take_congested`], each once.
    congested: Vec<Outbox>,
}

impl Driver {
    /// A broker with `config`, started at 0.
    pub fn new(config: Config) -> Driver {
        Driver {
            broker: Broker::new(config, 0),
            now: 0,
            clients: Vec::new(),
            woken: Vec::new(),
            congested: Vec::new(),
        }
    }

    /// The address every connection comes from.
    pub fn peer() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 40000))
    }

    /// The connections opened through the driver, oldest first.
    pub fn clients(&self) -> &[Client] {
        &self.clients
    }

    /// The connection `id`.
    pub fn client(&self, id: ConnId) -> &Client {
        match self.clients.iter().find(|c| c.id == id) {
            Some(c) => c,
            None => panic!("no connection {id:?} was opened through the driver"),
        }
    }

    fn client_mut(&mut self, id: ConnId) -> &mut Client {
        match self.clients.iter_mut().find(|c| c.id == id) {
            Some(c) => c,
            None => panic!("no connection {id:?} was opened through the driver"),
        }
    }

    /// A TCP connection is accepted: its id, or `None` at `max_connections`.
    pub fn open(&mut self) -> Option<ConnId> {
        self.open_from(Self::peer())
    }

    /// A TCP connection from `peer` is accepted (by the first listener).
    pub fn open_from(&mut self, peer: SocketAddr) -> Option<ConnId> {
        let (id, outbox) = self.broker.connection_opened(peer, 0, 1883, self.now)?;
        self.clients.push(Client {
            id,
            outbox,
            framing: Framing::new(self.broker.config()),
            pending: Vec::new(),
            version: None,
            max_packet_size: None,
            hibernating: false,
            open: true,
            connacked: false,
        });
        self.absorb();
        Some(id)
    }

    /// The outbox `conn`'s writer drains now.
    pub fn outbox(&self, conn: ConnId) -> Outbox {
        self.client(conn).outbox.clone()
    }

    /// Whether the core closed `conn`'s outbox (the shell flushes it, then shuts the socket).
    pub fn is_closed(&self, conn: ConnId) -> bool {
        self.client(conn).outbox.is_closed()
    }

    /// `conn` sends `packet`, handed to the core as decoded (as if of its encoded length).
    pub fn send(&mut self, conn: ConnId, packet: Packet<'_>) {
        self.note_connect(conn, &packet, true);
        let version = self.client(conn).version.unwrap_or(ProtocolVersion::V311);
        let len = packet.encoded_len(version).unwrap_or(0);
        self.broker.packet_received(conn, &packet, len, self.now);
        self.absorb();
    }

    /// `conn` sends `packet` encoded (a CONNECT in its own version, anything else in the
    /// connection's), through [`Driver::feed`].
    pub fn send_encoded(&mut self, conn: ConnId, packet: Packet<'_>) {
        self.note_connect(conn, &packet, false);
        let version = match packet {
            Packet::Connect(c) => c.protocol,
            _ => self.client(conn).version.unwrap_or(ProtocolVersion::V311),
        };
        let mut buf = vec![0u8; packet.encoded_len(version).unwrap_or(0)];
        if let Ok(n) = packet.encode(version, &mut buf) {
            self.feed(conn, buf.get(..n).unwrap_or_default());
        }
    }

    /// A CONNECT the test built: the client's Maximum Packet Size (and, if `version`, the version
    /// the broker answers in; [`Driver::feed`] takes that from the decoded CONNECT).
    fn note_connect(&mut self, conn: ConnId, packet: &Packet<'_>, version: bool) {
        if let Packet::Connect(connect) = packet {
            let config = self.broker.config().clone();
            let c = self.client_mut(conn);
            c.max_packet_size = connect.properties.maximum_packet_size.map(|m| m.get());
            if version {
                c.version.get_or_insert(connect.protocol);
                // Bytes fed after a CONNECT handed over decoded are decoded as the shell
                // would after it: in its version.
                if !c.framing.is_connected() {
                    c.framing = Framing::connected(&config, connect.protocol);
                }
            }
        }
    }

    /// Bytes arrive on `conn`'s socket: decoded and handed to the core as the shell does (a
    /// hibernating connection is woken first; nothing more is read once the core closed it or
    /// the bytes do not decode).
    pub fn feed(&mut self, conn: ConnId, bytes: &[u8]) {
        let now = self.now;
        if self.client(conn).hibernating {
            let Some(outbox) = self.broker.wake(conn) else {
                panic!("a hibernating connection is known to the core: {conn:?}");
            };
            let c = self.client_mut(conn);
            c.outbox = outbox;
            c.hibernating = false;
        }
        let Some(c) = self.clients.iter_mut().find(|c| c.id == conn) else {
            return;
        };
        if !c.open {
            return;
        }
        c.pending.extend_from_slice(bytes);
        let mut used = 0;
        while let Some(rest) = c.pending.get(used..).filter(|r| !r.is_empty()) {
            let broker = &mut self.broker;
            let version = &mut c.version;
            let decoded = c.framing.decode(rest, |packet, len| {
                if let Packet::Connect(connect) = packet {
                    version.get_or_insert(connect.protocol);
                }
                broker.packet_received(conn, packet, len, now);
                len
            });
            match decoded {
                Ok(Status::Complete(len)) => {
                    used += len;
                    if c.outbox.is_closed() {
                        c.open = false;
                        break;
                    }
                }
                Ok(Status::Partial(_)) => break,
                Err(e) => {
                    self.broker.decode_failed(conn, e, now);
                    c.open = false;
                    break;
                }
            }
        }
        c.pending.drain(..used.min(c.pending.len()));
        self.absorb();
    }

    /// `conn`'s socket is lost now.
    pub fn lose(&mut self, conn: ConnId) {
        self.broker.connection_lost(conn, self.now);
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == conn) {
            c.open = false;
        }
        self.absorb();
    }

    /// The clock reaches `now_ms`; the core's timers run.
    pub fn tick(&mut self, now_ms: u64) {
        self.now = now_ms;
        self.broker.handle_timeout(now_ms);
        self.absorb();
    }

    /// `conn` is quiet: it hibernates if the core agrees (nothing queued).
    pub fn hibernate(&mut self, conn: ConnId) -> bool {
        let granted = self.broker.hibernate(conn);
        if granted {
            self.client_mut(conn).hibernating = true;
        }
        granted
    }

    /// `conn`'s socket has an event while it hibernates: its outbox back, or `None` if the core
    /// closed it.
    pub fn wake(&mut self, conn: ConnId) -> Option<Outbox> {
        let outbox = self.broker.wake(conn)?;
        if let Some(c) = self.clients.iter_mut().find(|c| c.id == conn) {
            c.outbox = outbox.clone();
            c.hibernating = false;
        }
        Some(outbox)
    }

    /// Graceful shutdown.
    pub fn shutdown(&mut self) {
        self.broker.shutdown();
        self.absorb();
    }

    /// The raw bytes `conn` was sent since the last drain.
    pub fn drain_bytes(&mut self, conn: ConnId) -> Vec<u8> {
        self.absorb();
        let mut buf = Vec::new();
        self.client(conn).outbox.drain_into(&mut buf);
        // (A test reading raw bytes checks them itself; a CONNACK first counts for `drain`.)
        if buf.first() == Some(&0x20) {
            self.client_mut(conn).connacked = true;
        }
        buf
    }

    /// What `conn` was sent since the last drain. Everything must decode in the connection's
    /// version, each packet within the Maximum Packet Size its client announced, and nothing
    /// but AUTH may come before the CONNACK ([MQTT-3.2.0-2], [MQTT-3.14.0-1] (5.0)).
    pub fn drain(&mut self, conn: ConnId) -> Vec<Sent> {
        let bytes = self.drain_bytes(conn);
        let sent = self.decode_drained(conn, &bytes);
        let c = self.client_mut(conn);
        for packet in &sent {
            match packet {
                Sent::ConnAck { .. } => c.connacked = true,
                Sent::Auth(..) => {}
                _ if !c.connacked => panic!("{conn:?} was sent {packet:?} before a CONNACK"),
                _ => {}
            }
        }
        sent
    }

    /// [`Driver::drain`]'s decoding and size checks.
    fn decode_drained(&self, conn: ConnId, bytes: &[u8]) -> Vec<Sent> {
        let c = self.client(conn);
        let version = c.version.unwrap_or(ProtocolVersion::V311);
        let packets = match decode_sent(bytes, version) {
            Ok(p) => p,
            Err(e) => panic!("{conn:?} ({version:?}): {e} in {bytes:?}"),
        };
        let used: usize = packets.iter().map(|(_, len)| len).sum();
        if used < bytes.len() {
            panic!("{conn:?} ({version:?}): output ends inside a packet: {bytes:?}");
        }
        let max = c.max_packet_size.unwrap_or(u32::MAX) as usize;
        packets
            .into_iter()
            .map(|(packet, len)| {
                if len > max {
                    panic!(
                        "{len} B sent to {conn:?} whose Maximum Packet Size is {max}: {packet:?}"
                    );
                }
                packet
            })
            .collect()
    }

    /// The PUBLISHes `conn` was sent since the last drain (anything else drained is dropped).
    pub fn drain_publications(&mut self, conn: ConnId) -> Vec<Publication> {
        self.drain(conn)
            .into_iter()
            .filter_map(|p| match p {
                Sent::Publish(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    /// The hibernating connections the core woke ([`Event::Woken`]) since the last call, with
    /// their new outboxes (which the driver has taken on).
    pub fn take_woken(&mut self) -> Vec<(ConnId, Outbox)> {
        self.absorb();
        std::mem::take(&mut self.woken)
    }

    /// The congested outboxes the core reported ([`Event::Congested`]) since the last call, each
    /// once.
    pub fn take_congested(&mut self) -> Vec<Outbox> {
        self.absorb();
        std::mem::take(&mut self.congested)
    }

    /// What the shell does whenever it releases the core: a woken connection takes on its new
    /// outbox; a congested outbox is a live connection's. Checks that hibernating connections'
    /// old outboxes get nothing.
    pub fn absorb(&mut self) {
        while let Some(event) = self.broker.poll_event() {
            match event {
                Event::Woken { conn, outbox } => {
                    let c = self.client_mut(conn);
                    if !c.hibernating {
                        panic!("woken but not hibernating: {conn:?}");
                    }
                    if c.outbox.queued_bytes() != 0 {
                        panic!("{conn:?}'s old outbox used while hibernating");
                    }
                    c.outbox = outbox.clone();
                    c.hibernating = false;
                    self.woken.push((conn, outbox));
                }
                Event::Congested(outbox) => {
                    let live = self
                        .clients
                        .iter()
                        .any(|c| !c.hibernating && c.outbox.same(&outbox));
                    if !live && !outbox.is_closed() {
                        panic!("congestion reported on an outbox no live connection has");
                    }
                    // Each outbox once, as the core reports it while it is not polled.
                    if !self.congested.iter().any(|o| o.same(&outbox)) {
                        self.congested.push(outbox);
                    }
                }
            }
        }
        if let Some(c) = self
            .clients
            .iter()
            .find(|c| c.hibernating && c.outbox.queued_bytes() != 0)
        {
            panic!("{:?}'s old outbox used while hibernating", c.id);
        }
    }
}

/// Assert that packets (a `Vec<Sent>` or a slice of [`Sent`]) match a slice pattern, printing
/// them if not: for packets whose properties a test does not pin down (a 5.0 CONNACK's, a
/// DISCONNECT's Reason String), e.g. `assert_sent!(out, [Sent::Disconnect { code: 0x8E, .. }])`.
#[macro_export]
macro_rules! assert_sent {
    ($sent:expr, $pattern:pat) => {{
        let sent = &$sent;
        assert!(matches!(&sent[..], $pattern), "{sent:?}");
    }};
    ($sent:expr, $pattern:pat, $($message:tt)+) => {{
        let sent = &$sent;
        assert!(matches!(&sent[..], $pattern), "{sent:?}: {}", format_args!($($message)+));
    }};
}

// ---------------------------------------------------------------------------------------------
// Hand-built packets
// ---------------------------------------------------------------------------------------------

/// Packets built byte by byte, for tests that send what the codec will not encode (control
/// characters, wrong directions, malformed bodies) or that must not depend on it.
pub mod raw {
    /// Append `n` as a Variable Byte Integer (no limit checked: tests send oversize ones too).
    pub fn varint(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let mut b = (n % 128) as u8;
            n /= 128;
            if n > 0 {
                b |= 0x80;
            }
            out.push(b);
            if n == 0 {
                return;
            }
        }
    }

    /// A packet: its first byte, the Remaining Length, `body`.
    pub fn frame(first: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![first];
        varint(body.len(), &mut out);
        out.extend_from_slice(body);
        out
    }

    /// A length-prefixed string or binary field (its length cut to 16 bits, as a test may
    /// want a wrong one).
    pub fn string(bytes: impl AsRef<[u8]>) -> Vec<u8> {
        let bytes = bytes.as_ref();
        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(bytes);
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Mosquitto, the reference broker
// ---------------------------------------------------------------------------------------------

/// Debian's Mosquitto (`/usr/sbin/mosquitto`, package `mosquitto`) on a free loopback port, for
/// tests that compare wren-broker with it; killed, and its folder removed, on drop. Panics,
/// naming the packages, when it is not installed: a test never passes by skipping.
#[derive(Debug)]
pub struct Mosquitto {
    child: std::process::Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Mosquitto {
    /// Where Debian installs the broker.
    pub const PATH: &'static str = "/usr/sbin/mosquitto";

    /// Start it with `listener <port> 127.0.0.1`, `allow_anonymous true` and `extra` (more
    /// configuration lines), and wait until it accepts connections.
    pub fn start(extra: &str) -> Mosquitto {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::{Duration, Instant};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        if !std::path::Path::new(Self::PATH).exists() {
            panic!(
                "{} is not installed: apt-get install mosquitto mosquitto-clients (.ci/run \
                 installs them)",
                Self::PATH
            );
        }
        // Mosquitto cannot listen on port 0: take a free port and hand it over.
        let port = match std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()) {
            Ok(a) => a.port(),
            Err(e) => panic!("no free port: {e}"),
        };
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("wren-mosquitto-{}-{n}", std::process::id()));
        let conf = dir.join("mosquitto.conf");
        let written = std::fs::create_dir_all(&dir).and_then(|()| {
            std::fs::write(
                &conf,
                format!("listener {port} 127.0.0.1\nallow_anonymous true\n{extra}\n"),
            )
        });
        if let Err(e) = written {
            panic!("cannot write {}: {e}", conf.display());
        }
        let child = match std::process::Command::new(Self::PATH)
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("cannot start {}: {e}", Self::PATH),
        };
        let mosquitto = Mosquitto { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !listening(mosquitto.addr()) {
            if Instant::now() > deadline {
                panic!("mosquitto did not start listening on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        mosquitto
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What must survive a restart, in a form two brokers can be compared by: each persistent
/// session (expiry interval, number of subscriptions, its QoS 1/2 messages in flight then
/// queued as (topic, payload, QoS) in order, its QoS 2 ids awaiting PUBREL) and the retained
/// messages. Messages with a Message Expiry Interval are left out (their expiry counts in the
/// broker's time before a restart and in wall-clock time after it), and so is `$SYS`. The
/// durable store's tests and the `broker_core` fuzz target check that a broker rebuilt from
/// what the store kept has the same.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DurableState {
    /// By client id.
    pub sessions: std::collections::BTreeMap<String, DurableSession>,
    /// Topic → payload.
    pub retained: std::collections::BTreeMap<String, Vec<u8>>,
}

/// One persistent session of a [`DurableState`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DurableSession {
    /// Session Expiry Interval.
    pub expiry_interval: u32,
    /// Subscriptions held.
    pub subscriptions: usize,
    /// QoS 1/2 messages, in flight then queued: (topic, payload, QoS).
    pub messages: Vec<(String, Vec<u8>, u8)>,
    /// Incoming QoS 2 ids awaiting PUBREL.
    pub awaiting_rel: std::collections::BTreeSet<u16>,
}

impl DurableState {
    /// The durable state of `broker`.
    pub fn of(broker: &Broker) -> DurableState {
        let mut out = DurableState::default();
        for (sid, s) in broker.sessions().iter().filter(|(_, s)| s.persisted) {
            let d = s.delivery();
            let messages = d
                .inflight
                .iter()
                .map(|i| (&i.message, i.qos))
                .chain(d.queued.iter().map(|q| (&q.message, q.qos)))
                .filter(|(m, qos)| *qos != QoS::AtMostOnce && !m.expires())
                .map(|(m, qos)| (m.topic().to_owned(), m.payload().to_vec(), qos.bits()))
                .collect();
            out.sessions.insert(
                s.client_id.to_string(),
                DurableSession {
                    expiry_interval: s.expiry_interval,
                    subscriptions: broker.session_subscriptions(*sid),
                    messages,
                    awaiting_rel: d.awaiting_rel.iter().copied().collect(),
                },
            );
        }
        for m in broker.retained().all() {
            if !m.topic().starts_with('$') && !m.expires() {
                out.retained
                    .insert(m.topic().to_owned(), m.payload().to_vec());
            }
        }
        out
    }
}

/// Whether something listens on `addr`: a connection is accepted, and it is not one the kernel
/// made to itself. With nothing listening on a port of the ephemeral range (where the tests'
/// free ports come from), a connection whose local port happens to be that very port connects
/// to itself (TCP simultaneous open): a test polling for its server to start would take that
/// for the server and go on before it listens.
pub fn listening(addr: impl std::net::ToSocketAddrs) -> bool {
    std::net::TcpStream::connect(addr).is_ok_and(|s| s.local_addr().ok() != s.peer_addr().ok())
}
