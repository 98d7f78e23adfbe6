//! The sans-I/O client engine: MQTT's client-side protocol logic with no sockets, no clock, no
//! allocator — only `core`, `heapless` and `wren-codec`, so firmware can link it.
//!
//! The engine is fed what happened — a packet arrived ([`Engine::handle`]), the application
//! wants to publish ([`Engine::publish`]) or subscribe, time passed ([`Engine::poll`]) — together
//! with the current [`Instant`], and answers with the [`Packet`]s to send and the [`Event`]s to
//! report. The caller encodes packets with [`Packet::encode`] and moves the bytes.
//!
//! It owns:
//! - the connection state machine (`Disconnected → Connecting → Connected`), with CONNACK
//!   refusals surfaced as typed [`ConnectRefused`] errors;
//! - packet-identifier allocation (1..=65535, wrapping, never reusing an identifier in flight);
//! - in-flight tracking for QoS 1 and 2 publishes, subscribes and unsubscribes, bounded by the
//!   engine's capacity `N` and by the server's 5.0 Receive Maximum;
//! - the receiver side of QoS 2 (identifiers awaiting PUBREL, so duplicates are not delivered);
//! - retransmission with DUP: on reconnection to a present session (both versions) and, for
//!   3.1.1 only, after a configurable retry interval (5.0 forbids timed retries, §4.4);
//! - keep-alive bookkeeping: PINGREQ after `keep_alive` seconds without sending, and a timeout
//!   when the PINGRESP does not come;
//! - [`Backoff`] for reconnection delays.
//!
//! Message bodies are not stored: retransmitting a PUBLISH needs its topic and payload, which the
//! caller keeps (a heap map in the std shell, a static buffer in firmware). [`Poll::Republish`]
//! names the packet identifier and [`Engine::duplicate`] rebuilds the PUBLISH with DUP set.
//!
//! ```
//! use wren_clients::engine::{Config, Engine, Event, Instant, Message};
//! use wren_codec::{Ack, ConnAck, Connect, Packet, ProtocolVersion, QoS, ReasonCode, TopicName,
//!                  NO_PROPERTIES};
//!
//! let mut engine: Engine<8> = Engine::new(Config::new(ProtocolVersion::V311));
//! let t0 = Instant::from_millis(0);
//! let connect = Connect {
//!     protocol: ProtocolVersion::V311, bridge: false, clean_start: true, keep_alive: 30,
//!     client_id: "probe",
//!     will: None, username: None, password: None, properties: NO_PROPERTIES,
//! };
//! let packet = engine.connect(connect, t0).unwrap();
//! let mut buf = [0u8; 64];
//! let _n = packet.encode(ProtocolVersion::V311, &mut buf).unwrap(); // ... write to the socket
//!
//! // The server accepts.
//! let connack = Packet::ConnAck(ConnAck {
//!     session_present: false, code: ReasonCode::SUCCESS, properties: NO_PROPERTIES,
//! });
//! let handled = engine.handle(connack, t0).unwrap();
//! assert!(matches!(handled.event, Some(Event::Connected { session_present: false, .. })));
//!
//! // Publish at QoS 1: the engine picks the packet identifier and tracks the flow.
//! let msg = Message::new(TopicName::new("site/lab/temperature").unwrap(), b"21.5", QoS::AtLeastOnce);
//! let publish = engine.publish(msg, t0).unwrap();
//! let id = publish.qos_pid.packet_id().unwrap();
//! assert_eq!(engine.in_flight(), 1);
//! let handled = engine.handle(Packet::PubAck(Ack::new(id)), t0).unwrap();
//! assert!(matches!(handled.event, Some(Event::PubAck(_))));
//! assert_eq!(engine.in_flight(), 0);
//! ```

mod backoff;
mod error;

pub use backoff::Backoff;
pub use error::{ConnectRefused, ConnectReturnCode, Error};

use core::num::NonZeroU16;

use heapless::Vec;
use wren_codec::{
    Ack, ConnAck, Connect, Disconnect, EncodeError, List, Packet, PacketId, PacketType, Properties,
    ProtocolVersion, Publish, QoS, QosPid, ReasonCode, SubAck, Subscribe, Subscription,
    TopicFilter, TopicName, Unsubscribe,
};

/// A point on the caller's monotonic clock, in milliseconds. The origin is the caller's choice;
/// only differences matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Instant(u64);

impl Instant {
    /// The instant `ms` milliseconds after the caller's origin.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the caller's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later: clocks never go back here).
    pub const fn since(self, earlier: Instant) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    /// The instant `ms` milliseconds later (saturating).
    pub const fn plus(self, ms: u64) -> Instant {
        Instant(self.0.saturating_add(ms))
    }
}

/// A wrapping 32-bit millisecond counter (a SysTick count, `u32` milliseconds since boot: what a
/// part with 32-bit atomics keeps cheaply) widened to the engine's [`Instant`]. Correct as long
/// as it is read at least once every 24 days (half the counter's range); a counter that goes
/// back is taken as no time passed. [`crate::embedded::Client`] takes its time this way.
///
/// ```
/// use wren_clients::engine::WrappingClock;
/// let mut clock = WrappingClock::new();
/// assert_eq!(clock.instant(u32::MAX - 5).as_millis(), u64::from(u32::MAX) - 5);
/// assert_eq!(clock.instant(4).as_millis(), u64::from(u32::MAX) + 5); // wrapped
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct WrappingClock {
    last: u32,
    wide: u64,
    started: bool,
}

impl WrappingClock {
    /// A clock that starts at the first counter value it is given.
    pub const fn new() -> Self {
        WrappingClock {
            last: 0,
            wide: 0,
            started: false,
        }
    }

    /// The instant the counter value `now_ms` stands for.
    pub fn instant(&mut self, now_ms: u32) -> Instant {
        if !self.started {
            self.started = true;
            self.last = now_ms;
            self.wide = u64::from(now_ms);
        }
        let delta = now_ms.wrapping_sub(self.last);
        // A counter that went back (a caller bug) is treated as "no time passed".
        if delta < 1 << 31 {
            self.last = now_ms;
            self.wide = self.wide.saturating_add(u64::from(delta));
        }
        Instant(self.wide)
    }
}

/// Engine settings that do not come from the CONNECT packet itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Protocol version until [`Engine::connect`] names one.
    pub version: ProtocolVersion,
    /// 3.1.1 only: resend an unacknowledged PUBLISH/PUBREL after this many milliseconds.
    /// `None` (the default) resends only on reconnection, as 5.0 requires.
    pub retry_interval_ms: Option<u64>,
    /// How long to wait for PINGRESP; `None` means one keep-alive period.
    pub ping_timeout_ms: Option<u64>,
    /// How long to wait for CONNACK.
    pub connect_timeout_ms: u64,
}

impl Config {
    /// Defaults: no timed retries, PINGRESP within one keep-alive period, CONNACK within 30 s.
    pub const fn new(version: ProtocolVersion) -> Self {
        Config {
            version,
            retry_interval_ms: None,
            ping_timeout_ms: None,
            connect_timeout_ms: 30_000,
        }
    }
}

/// Where the connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    /// No connection (initially, after DISCONNECT, a refusal or a lost connection).
    Disconnected,
    /// CONNECT sent, waiting for CONNACK.
    Connecting,
    /// CONNACK accepted the connection.
    Connected,
}

/// Which acknowledgement an in-flight packet waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Stage {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    PubAck,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    PubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    PubComp,
    /// SUBSCRIBE sent, waiting for SUBACK.
    SubAck,
    /// UNSUBSCRIBE sent, waiting for UNSUBACK.
    UnsubAck,
}

impl Stage {
    /// Whether this is a publish flow (which a session keeps across connections).
    pub const fn is_publish(self) -> bool {
        matches!(self, Stage::PubAck | Stage::PubRec | Stage::PubComp)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
struct InFlight {
    packet_id: PacketId,
    stage: Stage,
    sent_at: Instant,
    /// Resend at the next [`Engine::poll`] (set when a session is resumed).
    due: bool,
}

/// An application message to publish (the packet identifier is the engine's business).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Message<'a> {
    /// Topic name.
    pub topic: TopicName<'a>,
    /// Payload.
    pub payload: &'a [u8],
    /// QoS.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// 5.0 PUBLISH properties (ignored by 3.1.1 encoding).
    pub properties: Properties<'a>,
}

impl<'a> Message<'a> {
    /// A non-retained message with no properties.
    pub const fn new(topic: TopicName<'a>, payload: &'a [u8], qos: QoS) -> Self {
        Message {
            topic,
            payload,
            qos,
            retain: false,
            properties: wren_codec::NO_PROPERTIES,
        }
    }
}

/// What a received packet meant to the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Event<'p> {
    /// CONNACK accepted the connection.
    Connected {
        /// Whether the server resumed a session (in-flight publishes will be resent).
        session_present: bool,
        /// The CONNACK (5.0 properties: assigned client id, server keep alive, …).
        connack: ConnAck<'p>,
    },
    /// An application message to deliver (QoS 2 duplicates are not reported again).
    Message(Publish<'p>),
    /// PUBACK: a QoS 1 flow ended (5.0: the reason code may report a failure).
    PubAck(Ack<'p>),
    /// PUBREC: a QoS 2 flow reached its second step (or ended, with a failure code).
    PubRec(Ack<'p>),
    /// PUBCOMP: a QoS 2 flow ended.
    PubComp(Ack<'p>),
    /// SUBACK with one code per filter (granted QoS, or a failure).
    SubAck(SubAck<'p>),
    /// UNSUBACK.
    UnsubAck(SubAck<'p>),
    /// PINGRESP.
    PingResp,
    /// The server sent DISCONNECT (5.0); the connection is over.
    Disconnected(Disconnect<'p>),
}

/// A packet the engine asks to send that carries nothing but a packet identifier and a reason
/// code (5.0; success in 3.1.1): 8 bytes where a [`Packet`] takes hundreds, so that [`Handled`]
/// and [`Poll`] are small (firmware keeps them on its stack). [`Control::packet`] makes the
/// [`Packet`], [`Control::encode`] writes it without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Control {
    /// PINGREQ.
    PingReq,
    /// PUBACK.
    PubAck(PacketId, ReasonCode),
    /// PUBREC.
    PubRec(PacketId, ReasonCode),
    /// PUBREL.
    PubRel(PacketId, ReasonCode),
    /// PUBCOMP.
    PubComp(PacketId, ReasonCode),
}

impl Control {
    /// The packet's type.
    pub const fn packet_type(self) -> PacketType {
        match self {
            Control::PingReq => PacketType::PingReq,
            Control::PubAck(..) => PacketType::PubAck,
            Control::PubRec(..) => PacketType::PubRec,
            Control::PubRel(..) => PacketType::PubRel,
            Control::PubComp(..) => PacketType::PubComp,
        }
    }

    /// The acknowledgement (`None` for PINGREQ).
    const fn ack(self) -> Option<Ack<'static>> {
        match self {
            Control::PingReq => None,
            Control::PubAck(id, code)
            | Control::PubRec(id, code)
            | Control::PubRel(id, code)
            | Control::PubComp(id, code) => Some(ack_with(id, code)),
        }
    }

    /// The packet to send.
    pub const fn packet(self) -> Packet<'static> {
        match self {
            Control::PingReq => Packet::PingReq,
            Control::PubAck(id, code) => Packet::PubAck(ack_with(id, code)),
            Control::PubRec(id, code) => Packet::PubRec(ack_with(id, code)),
            Control::PubRel(id, code) => Packet::PubRel(ack_with(id, code)),
            Control::PubComp(id, code) => Packet::PubComp(ack_with(id, code)),
        }
    }

    /// Encode the packet for a `version` connection into `buf` by its own encoder (no
    /// [`Packet`] built, no other packet's encoder linked); the bytes written.
    pub fn encode(self, version: ProtocolVersion, buf: &mut [u8]) -> Result<usize, EncodeError> {
        match self.ack() {
            None => wren_codec::packet::encode_pingreq(buf),
            Some(ack) => ack.encode(self.packet_type(), version, buf),
        }
    }
}

/// The result of [`Engine::handle`]: maybe an event, maybe a packet to send back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Handled<'p> {
    /// What to tell the application.
    pub event: Option<Event<'p>>,
    /// What to send to the server (PUBACK, PUBREC, PUBREL or PUBCOMP).
    pub reply: Option<Control>,
}

/// What [`Engine::poll`] wants done now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Poll {
    /// Send this packet (PINGREQ, or a retransmitted PUBREL).
    Send(Control),
    /// Resend the PUBLISH with this identifier, DUP set: build it with [`Engine::duplicate`].
    Republish(PacketId),
    /// No PINGRESP in time: the connection is dead. The engine is now `Disconnected`.
    KeepAliveTimeout,
    /// No CONNACK in time. The engine is now `Disconnected`.
    ConnectTimeout,
    /// Nothing to do before this instant (`None`: until something happens).
    Wait(Option<Instant>),
}

/// The client protocol engine, tracking up to `N` outgoing and `M` incoming QoS 2 flows.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Engine<const N: usize, const M: usize = N> {
    config: Config,
    version: ProtocolVersion,
    state: State,
    /// Keep alive in milliseconds (0: off); the server's Server Keep Alive overrides ours.
    keep_alive_ms: u64,
    last_packet_id: u16,
    in_flight: Vec<InFlight, N>,
    /// Incoming QoS 2 identifiers whose PUBLISH was delivered and whose PUBREL is awaited.
    awaiting_rel: Vec<PacketId, M>,
    last_sent: Instant,
    ping_sent: Option<Instant>,
    connect_sent: Instant,
    /// The server's 5.0 Receive Maximum: how many QoS 1/2 publishes it accepts unacknowledged.
    server_receive_maximum: u16,
    server_maximum_qos: QoS,
    server_retain_available: bool,
}

impl<const N: usize, const M: usize> Engine<N, M> {
    /// A disconnected engine.
    pub const fn new(config: Config) -> Self {
        Engine {
            config,
            version: config.version,
            state: State::Disconnected,
            keep_alive_ms: 0,
            last_packet_id: 0,
            in_flight: Vec::new(),
            awaiting_rel: Vec::new(),
            last_sent: Instant(0),
            ping_sent: None,
            connect_sent: Instant(0),
            server_receive_maximum: u16::MAX,
            server_maximum_qos: QoS::ExactlyOnce,
            server_retain_available: true,
        }
    }

    /// The connection state.
    pub const fn state(&self) -> State {
        self.state
    }

    /// The protocol version of the current (or last) connection.
    pub const fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// Packets awaiting an acknowledgement (publishes, subscribes, unsubscribes).
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Outgoing QoS 1/2 publish flows not yet complete.
    pub fn publishes_in_flight(&self) -> usize {
        self.in_flight
            .iter()
            .filter(|f| f.stage.is_publish())
            .count()
    }

    /// The stage of the flow with this identifier, if one is in flight.
    pub fn stage_of(&self, id: PacketId) -> Option<Stage> {
        self.find(id).map(|f| f.stage)
    }

    /// Whether a QoS 1/2 publish could be started now without exceeding `N` or the server's
    /// Receive Maximum.
    pub fn can_publish(&self) -> bool {
        !self.in_flight.is_full()
            && self.publishes_in_flight() < usize::from(self.server_receive_maximum)
    }

    /// Keep alive in effect, in seconds (the server's Server Keep Alive wins in 5.0).
    pub const fn keep_alive_secs(&self) -> u64 {
        self.keep_alive_ms / 1000
    }

    /// Start a connection: returns the CONNECT to send.
    ///
    /// A clean start discards the session state (in-flight flows). In 5.0 the engine advertises
    /// its incoming capacity `M` as Receive Maximum unless the caller set one.
    pub fn connect<'a>(
        &mut self,
        mut connect: Connect<'a>,
        now: Instant,
    ) -> Result<Packet<'a>, Error> {
        self.prepare_connect(&mut connect, now)?;
        Ok(Packet::Connect(connect))
    }

    /// [`Engine::connect`] in place: the caller encodes `connect` itself (with
    /// [`Connect::encode`]), so no [`Packet`] is built (firmware keeps its stack small).
    pub fn prepare_connect(
        &mut self,
        connect: &mut Connect<'_>,
        now: Instant,
    ) -> Result<(), Error> {
        if self.state != State::Disconnected {
            return Err(Error::AlreadyConnected);
        }
        if connect.clean_start {
            self.in_flight.clear();
            self.awaiting_rel.clear();
        }
        if connect.protocol.is_v5() && connect.properties.receive_maximum.is_none() {
            let cap = u16::try_from(M).unwrap_or(u16::MAX);
            connect.properties.receive_maximum = NonZeroU16::new(cap);
        }
        self.version = connect.protocol;
        self.keep_alive_ms = u64::from(connect.keep_alive).saturating_mul(1000);
        self.state = State::Connecting;
        self.connect_sent = now;
        self.last_sent = now;
        self.ping_sent = None;
        self.server_receive_maximum = u16::MAX;
        self.server_maximum_qos = QoS::ExactlyOnce;
        self.server_retain_available = true;
        Ok(())
    }

    /// The connection broke (socket closed, I/O error). In-flight publishes stay for a session
    /// to be resumed; the next CONNACK decides.
    pub fn connection_lost(&mut self) {
        self.state = State::Disconnected;
        self.ping_sent = None;
    }

    /// End the connection cleanly: returns the DISCONNECT to send.
    pub fn disconnect(&mut self, now: Instant) -> Packet<'static> {
        Packet::Disconnect(self.close(now))
    }

    /// [`Engine::disconnect`], returning the DISCONNECT itself (to encode with
    /// [`Disconnect::encode`], no [`Packet`] built).
    pub fn close(&mut self, now: Instant) -> Disconnect<'static> {
        self.state = State::Disconnected;
        self.ping_sent = None;
        self.last_sent = now;
        Disconnect::NORMAL
    }

    /// The highest QoS the server accepts (5.0 CONNACK Maximum QoS; 2 otherwise).
    pub const fn server_maximum_qos(&self) -> QoS {
        self.server_maximum_qos
    }

    /// Whether the server accepts retained messages (5.0 CONNACK Retain Available).
    pub const fn server_retain_available(&self) -> bool {
        self.server_retain_available
    }

    /// Start publishing `message`: returns the PUBLISH to send (with its packet identifier for
    /// QoS 1 and 2, whose flow is now tracked).
    pub fn publish<'a>(
        &mut self,
        message: Message<'a>,
        now: Instant,
    ) -> Result<Publish<'a>, Error> {
        self.require_connected()?;
        if message.qos > self.server_maximum_qos {
            return Err(Error::QosNotSupported(self.server_maximum_qos));
        }
        if message.retain && !self.server_retain_available {
            return Err(Error::RetainNotSupported);
        }
        let qos_pid = match message.qos {
            QoS::AtMostOnce => QosPid::AtMostOnce,
            qos => {
                if !self.can_publish() {
                    return Err(Error::InFlightFull);
                }
                let stage = if qos == QoS::AtLeastOnce {
                    Stage::PubAck
                } else {
                    Stage::PubRec
                };
                QosPid::new(qos, self.track(stage, now)?)
            }
        };
        self.last_sent = now;
        Ok(Publish {
            dup: false,
            qos_pid,
            retain: message.retain,
            topic: message.topic,
            properties: message.properties,
            payload: message.payload,
        })
    }

    /// Rebuild the PUBLISH of an in-flight flow for retransmission, DUP set. The caller supplies
    /// the message it kept; `None` if `id` is not a PUBLISH awaiting PUBACK or PUBREC.
    pub fn duplicate<'a>(&self, id: PacketId, message: Message<'a>) -> Option<Publish<'a>> {
        let stage = self.find(id)?.stage;
        let qos_pid = match stage {
            Stage::PubAck => QosPid::AtLeastOnce(id),
            Stage::PubRec => QosPid::ExactlyOnce(id),
            _ => return None,
        };
        Some(Publish {
            dup: true,
            qos_pid,
            retain: message.retain,
            topic: message.topic,
            properties: message.properties,
            payload: message.payload,
        })
    }

    /// Subscribe: returns the SUBSCRIBE to send; its SUBACK is tracked.
    pub fn subscribe<'a>(
        &mut self,
        subscriptions: &'a [Subscription<'a>],
        properties: Properties<'a>,
        now: Instant,
    ) -> Result<Subscribe<'a>, Error> {
        self.require_connected()?;
        if subscriptions.is_empty() {
            return Err(Error::EmptyRequest);
        }
        let packet_id = self.track(Stage::SubAck, now)?;
        self.last_sent = now;
        Ok(Subscribe {
            packet_id,
            properties,
            subscriptions: List::new(subscriptions),
        })
    }

    /// Unsubscribe: returns the UNSUBSCRIBE to send; its UNSUBACK is tracked.
    pub fn unsubscribe<'a>(
        &mut self,
        filters: &'a [TopicFilter<'a>],
        properties: Properties<'a>,
        now: Instant,
    ) -> Result<Unsubscribe<'a>, Error> {
        self.require_connected()?;
        if filters.is_empty() {
            return Err(Error::EmptyRequest);
        }
        let packet_id = self.track(Stage::UnsubAck, now)?;
        self.last_sent = now;
        Ok(Unsubscribe {
            packet_id,
            properties,
            filters: List::new(filters),
        })
    }

    /// A packet arrived from the server.
    pub fn handle<'p>(&mut self, packet: Packet<'p>, now: Instant) -> Result<Handled<'p>, Error> {
        let none = Handled {
            event: None,
            reply: None,
        };
        match (self.state, packet) {
            (State::Connecting, Packet::ConnAck(connack)) => self.on_connack(connack, now),
            (_, Packet::ConnAck(_)) => Err(Error::UnexpectedPacket(PacketType::ConnAck)),
            (State::Connected, Packet::Publish(p)) => self.on_publish(p),
            (State::Connected, Packet::PubAck(ack)) => {
                if self.finish(ack.packet_id, Stage::PubAck) {
                    Ok(event(Event::PubAck(ack)))
                } else {
                    // A late or repeated acknowledgement of a finished flow: nothing to do.
                    Ok(none)
                }
            }
            (State::Connected, Packet::PubRec(ack)) => Ok(self.on_pubrec(ack, now)),
            (State::Connected, Packet::PubComp(ack)) => {
                if self.finish(ack.packet_id, Stage::PubComp) {
                    Ok(event(Event::PubComp(ack)))
                } else {
                    Ok(none)
                }
            }
            (State::Connected, Packet::PubRel(ack)) => {
                let known = self.awaiting_rel.iter().position(|&id| id == ack.packet_id);
                let code = match known {
                    Some(i) => {
                        remove(&mut self.awaiting_rel, i);
                        ReasonCode::SUCCESS
                    }
                    None if self.version.is_v5() => ReasonCode::PACKET_IDENTIFIER_NOT_FOUND,
                    None => ReasonCode::SUCCESS,
                };
                self.last_sent = now;
                Ok(Handled {
                    event: None,
                    reply: Some(Control::PubComp(ack.packet_id, code)),
                })
            }
            (State::Connected, Packet::SubAck(s)) => {
                if self.finish(s.packet_id, Stage::SubAck) {
                    Ok(event(Event::SubAck(s)))
                } else {
                    Ok(none)
                }
            }
            (State::Connected, Packet::UnsubAck(s)) => {
                if self.finish(s.packet_id, Stage::UnsubAck) {
                    Ok(event(Event::UnsubAck(s)))
                } else {
                    Ok(none)
                }
            }
            (State::Connected, Packet::PingResp) => {
                self.ping_sent = None;
                Ok(event(Event::PingResp))
            }
            (State::Connecting | State::Connected, Packet::Disconnect(d))
                if self.version.is_v5() =>
            {
                self.connection_lost();
                Ok(event(Event::Disconnected(d)))
            }
            (_, p) => Err(Error::UnexpectedPacket(p.packet_type())),
        }
    }

    /// Time passed: what must be sent now, or until when nothing needs doing. Call it until it
    /// answers [`Poll::Wait`], and again by that instant.
    pub fn poll(&mut self, now: Instant) -> Poll {
        match self.state {
            State::Disconnected => Poll::Wait(None),
            State::Connecting => {
                let deadline = self.connect_sent.plus(self.config.connect_timeout_ms);
                if now >= deadline {
                    self.connection_lost();
                    Poll::ConnectTimeout
                } else {
                    Poll::Wait(Some(deadline))
                }
            }
            State::Connected => self.poll_connected(now),
        }
    }

    fn poll_connected(&mut self, now: Instant) -> Poll {
        let ping_timeout = self.config.ping_timeout_ms.unwrap_or(self.keep_alive_ms);
        if let Some(sent) = self.ping_sent {
            if now.since(sent) >= ping_timeout {
                self.connection_lost();
                return Poll::KeepAliveTimeout;
            }
        }
        // Timed retries are a 3.1.1 option only (5.0 §4.4 allows resending only on reconnect).
        let retry = self
            .config
            .retry_interval_ms
            .filter(|_| !self.version.is_v5());
        let mut next: Option<Instant> = None;
        for flight in self.in_flight.iter_mut() {
            if !flight.stage.is_publish() {
                continue;
            }
            let timed_out = retry.is_some_and(|r| now.since(flight.sent_at) >= r);
            if flight.due || timed_out {
                flight.due = false;
                flight.sent_at = now;
                self.last_sent = now;
                return match flight.stage {
                    Stage::PubComp => {
                        Poll::Send(Control::PubRel(flight.packet_id, ReasonCode::SUCCESS))
                    }
                    _ => Poll::Republish(flight.packet_id),
                };
            }
            if let Some(r) = retry {
                next = earliest(next, flight.sent_at.plus(r));
            }
        }
        if self.keep_alive_ms > 0 {
            match self.ping_sent {
                Some(sent) => next = earliest(next, sent.plus(ping_timeout)),
                None => {
                    let due = self.last_sent.plus(self.keep_alive_ms);
                    if now >= due {
                        self.ping_sent = Some(now);
                        self.last_sent = now;
                        return Poll::Send(Control::PingReq);
                    }
                    next = earliest(next, due);
                }
            }
        }
        Poll::Wait(next)
    }

    fn on_connack<'p>(&mut self, connack: ConnAck<'p>, now: Instant) -> Result<Handled<'p>, Error> {
        if !connack.code.is_success() || (!self.version.is_v5() && connack.code.0 != 0) {
            self.state = State::Disconnected;
            return Err(Error::Refused(ConnectRefused::from_code(
                self.version,
                connack.code,
            )));
        }
        self.state = State::Connected;
        self.last_sent = now;
        let props = &connack.properties;
        if let Some(max) = props.receive_maximum {
            self.server_receive_maximum = max.get();
        }
        if let Some(ka) = props.server_keep_alive {
            self.keep_alive_ms = u64::from(ka).saturating_mul(1000);
        }
        if let Some(q) = props.maximum_qos {
            self.server_maximum_qos = q;
        }
        if let Some(r) = props.retain_available {
            self.server_retain_available = r;
        }
        if connack.session_present {
            // Resume: resend unacknowledged PUBLISH (DUP) and PUBREL with their identifiers.
            // SUBSCRIBE/UNSUBSCRIBE are not part of the session and are forgotten.
            self.in_flight.retain(|f| f.stage.is_publish());
            for f in self.in_flight.iter_mut() {
                f.due = true;
            }
        } else {
            self.in_flight.clear();
            self.awaiting_rel.clear();
        }
        Ok(event(Event::Connected {
            session_present: connack.session_present,
            connack,
        }))
    }

    fn on_publish<'p>(&mut self, p: Publish<'p>) -> Result<Handled<'p>, Error> {
        // We never grant Topic Alias Maximum, so a topic-less PUBLISH is a protocol error.
        if p.topic.is_empty() {
            return Err(Error::Protocol("PUBLISH without a topic name"));
        }
        match p.qos_pid {
            QosPid::AtMostOnce => Ok(event(Event::Message(p))),
            QosPid::AtLeastOnce(id) => Ok(Handled {
                event: Some(Event::Message(p)),
                reply: Some(Control::PubAck(id, ReasonCode::SUCCESS)),
            }),
            QosPid::ExactlyOnce(id) => {
                let reply = Some(Control::PubRec(id, ReasonCode::SUCCESS));
                if self.awaiting_rel.contains(&id) {
                    // Already delivered; the server resent because our PUBREC was lost.
                    return Ok(Handled { event: None, reply });
                }
                self.awaiting_rel
                    .push(id)
                    .map_err(|_| Error::ReceiveMaximumExceeded)?;
                Ok(Handled {
                    event: Some(Event::Message(p)),
                    reply,
                })
            }
        }
    }

    fn on_pubrec<'p>(&mut self, ack: Ack<'p>, now: Instant) -> Handled<'p> {
        let id = ack.packet_id;
        let Some(pos) = self.in_flight.iter().position(|f| f.packet_id == id) else {
            // Not ours: 5.0 answers "Packet Identifier not found"; 3.1.1 just releases it.
            let code = if self.version.is_v5() {
                ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
            } else {
                ReasonCode::SUCCESS
            };
            return Handled {
                event: None,
                reply: Some(Control::PubRel(id, code)),
            };
        };
        let Some(flight) = self.in_flight.get_mut(pos) else {
            return Handled {
                event: None,
                reply: None,
            };
        };
        match flight.stage {
            Stage::PubRec if !ack.reason_code.is_success() => {
                // 5.0: a failed PUBREC ends the flow; no PUBREL follows.
                remove(&mut self.in_flight, pos);
                event(Event::PubRec(ack))
            }
            Stage::PubRec | Stage::PubComp => {
                let first = flight.stage == Stage::PubRec;
                flight.stage = Stage::PubComp;
                flight.sent_at = now;
                flight.due = false;
                self.last_sent = now;
                Handled {
                    event: first.then_some(Event::PubRec(ack)),
                    reply: Some(Control::PubRel(id, ReasonCode::SUCCESS)),
                }
            }
            _ => Handled {
                event: None,
                reply: None,
            },
        }
    }

    fn require_connected(&self) -> Result<(), Error> {
        if self.state == State::Connected {
            Ok(())
        } else {
            Err(Error::NotConnected)
        }
    }

    fn find(&self, id: PacketId) -> Option<&InFlight> {
        self.in_flight.iter().find(|f| f.packet_id == id)
    }

    /// Remove the flow `id` if it is at `stage`; whether it was.
    fn finish(&mut self, id: PacketId, stage: Stage) -> bool {
        match self
            .in_flight
            .iter()
            .position(|f| f.packet_id == id && f.stage == stage)
        {
            Some(pos) => {
                remove(&mut self.in_flight, pos);
                true
            }
            None => false,
        }
    }

    /// Allocate the next free packet identifier and track a flow with it.
    fn track(&mut self, stage: Stage, now: Instant) -> Result<PacketId, Error> {
        if self.in_flight.is_full() {
            return Err(Error::InFlightFull);
        }
        let packet_id = self.next_packet_id();
        self.in_flight
            .push(InFlight {
                packet_id,
                stage,
                sent_at: now,
                due: false,
            })
            .map_err(|_| Error::InFlightFull)?;
        Ok(packet_id)
    }

    /// The identifier after the last one that is not in flight, wrapping 65535 → 1. At most `N`
    /// identifiers are in use, so the search ends within `N + 1` steps.
    fn next_packet_id(&mut self) -> PacketId {
        let mut candidate = PacketId::new(self.last_packet_id)
            .map_or(PacketId::from(NonZeroU16::MIN), PacketId::next);
        while self.find(candidate).is_some() {
            candidate = candidate.next();
        }
        self.last_packet_id = candidate.get();
        candidate
    }
}

/// `v.swap_remove(at)` by swapping two elements borrowed apart: heapless's `swap_remove` (and a
/// slice swap, which allows the two to be one) moves the element with `memmove`, which would
/// link 1.5 KB of flash into firmware for this alone.
fn remove<T, const C: usize>(v: &mut Vec<T, C>, at: usize) {
    let last = v.len().saturating_sub(1);
    if at > last || v.is_empty() {
        return;
    }
    if let Some((head, tail)) = v.split_at_mut_checked(last) {
        if let (Some(removed), Some(moved)) = (head.get_mut(at), tail.first_mut()) {
            core::mem::swap(removed, moved);
        }
    }
    v.pop();
}

fn event(e: Event<'_>) -> Handled<'_> {
    Handled {
        event: Some(e),
        reply: None,
    }
}

const fn ack_with(packet_id: PacketId, reason_code: ReasonCode) -> Ack<'static> {
    Ack {
        reason_code,
        ..Ack::new(packet_id)
    }
}

fn earliest(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(match a {
        Some(a) if a < b => a,
        _ => b,
    })
}

#[cfg(test)]
mod tests;
