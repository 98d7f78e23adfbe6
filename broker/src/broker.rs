//! [`Broker`]: the sans-I/O core. It owns every connection's protocol state, the sessions, the
//! subscription index and the retained messages, and reacts to events the runtime shell feeds
//! it: a connection opened, a packet decoded, a decode error, a connection lost, a clock tick.
//! It has no sockets, tasks or clocks: time comes in as milliseconds, bytes go out through each
//! connection's [`Outbox`], and log lines through the `log` facade.
//!
//! MQTT 3.1.1 and 5.0 share every path; the 5.0 additions (properties, reason codes, session
//! and message expiry, topic aliases, flow control, shared subscriptions, subscription options,
//! will delay, enhanced authentication) are described in `broker/MQTT5.md`.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;

use wren_codec::{
    Ack, Auth, ConnAck, Connect, DecodeError, Disconnect, ErrorKind, List, Packet, PacketId,
    PayloadFormat, ProtocolVersion, Publish, QoS, QosPid, ReasonCode, RetainHandling, SubAck,
    Subscribe, TopicFilter, TopicName, Unsubscribe,
    properties::{NO_PROPERTIES, Properties},
};

use crate::auth::{AuthExchange, AuthStep, Authenticator};
use crate::config::Config;
use crate::index::{Sub, SubscriptionIndex, group_by_session};
use crate::message::{Delivery, Message, Out};
use crate::outbox::{Outbox, Room};
use crate::retained::RetainedStore;
use crate::session::{
    ConnId, IdHash, Inflight, OutgoingState, Queued, Session, SessionId, SessionStore,
};

/// Mosquitto refuses topics deeper than this (`TOPIC_HIERARCHY_LIMIT`); so do we, for filters.
const MAX_TOPIC_LEVELS: usize = 200;

/// Why a connection was closed. Decides the log line, the 5.0 DISCONNECT reason and whether the
/// will is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent DISCONNECT: the will is discarded.
    Disconnected,
    /// The client sent DISCONNECT 0x04 (5.0 Disconnect with Will Message): the will is published.
    DisconnectedWithWill,
    /// The socket reached EOF or failed.
    ConnectionLost,
    /// Nothing received for 1.5 × keep-alive.
    KeepAliveTimeout,
    /// No CONNECT within `connect_timeout`.
    ConnectTimeout,
    /// A packet broke the encoding rules.
    Malformed,
    /// A packet broke the protocol (second CONNECT, server-only packet, non-CONNECT first, …).
    ProtocolError,
    /// A packet over the maximum packet size.
    Oversize,
    /// Another connection connected with the same client id.
    TakenOver,
    /// The outgoing queue grew past its hard limit: the client does not read.
    SlowConsumer,
    /// CONNECT was answered with a refusal CONNACK.
    ConnectRefused,
    /// The broker is shutting down.
    Shutdown,
    /// 5.0: more unreleased QoS 2 messages than the broker's Receive Maximum.
    ReceiveMaximumExceeded,
    /// 5.0: a Topic Alias above the Topic Alias Maximum, or unknown.
    TopicAliasInvalid,
    /// 5.0: a QoS 0 payload that is not UTF-8 although its Payload Format Indicator says so.
    PayloadFormatInvalid,
    /// 5.0: a PUBLISH above the broker's Maximum QoS.
    QosNotSupported,
    /// 5.0: a retained PUBLISH when Retain Available is 0.
    RetainNotSupported,
    /// 5.0: re-authentication failed.
    NotAuthorized,
}

impl CloseReason {
    /// Whether the will message is published (MQTT §3.1.2.5: any close but DISCONNECT).
    /// Refused connections have no session; on shutdown the broker chooses, as Mosquitto does
    /// for a clean shutdown, not to publish wills: the clients did nothing wrong.
    pub fn publishes_will(self) -> bool {
        !matches!(
            self,
            CloseReason::Disconnected | CloseReason::ConnectRefused | CloseReason::Shutdown
        )
    }

    /// The 5.0 DISCONNECT reason (and reason string) sent before closing, if any.
    fn v5_reason(self) -> Option<(ReasonCode, &'static str)> {
        Some(match self {
            CloseReason::KeepAliveTimeout => (ReasonCode::KEEP_ALIVE_TIMEOUT, "keep alive timeout"),
            CloseReason::Malformed => (ReasonCode::MALFORMED_PACKET, "malformed packet"),
            CloseReason::ProtocolError => (ReasonCode::PROTOCOL_ERROR, "protocol error"),
            CloseReason::Oversize => (ReasonCode::PACKET_TOO_LARGE, "packet too large"),
            CloseReason::TakenOver => (ReasonCode::SESSION_TAKEN_OVER, "session taken over"),
            CloseReason::SlowConsumer => (ReasonCode::QUOTA_EXCEEDED, "outgoing queue full"),
            CloseReason::Shutdown => (ReasonCode::SERVER_SHUTTING_DOWN, "server shutting down"),
            CloseReason::ReceiveMaximumExceeded => (
                ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                "receive maximum exceeded",
            ),
            CloseReason::TopicAliasInvalid => {
                (ReasonCode::TOPIC_ALIAS_INVALID, "topic alias invalid")
            }
            CloseReason::PayloadFormatInvalid => {
                (ReasonCode::PAYLOAD_FORMAT_INVALID, "payload is not UTF-8")
            }
            CloseReason::QosNotSupported => (ReasonCode::QOS_NOT_SUPPORTED, "QoS not supported"),
            CloseReason::RetainNotSupported => {
                (ReasonCode::RETAIN_NOT_SUPPORTED, "retain not supported")
            }
            CloseReason::NotAuthorized => (ReasonCode::NOT_AUTHORIZED, "re-authentication failed"),
            _ => return None,
        })
    }
}

/// Counters behind `$SYS/broker/...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets of any type received.
    pub messages_received: u64,
    /// Packets of any type sent.
    pub messages_sent: u64,
    /// PUBLISH packets received.
    pub publish_received: u64,
    /// PUBLISH packets sent.
    pub publish_sent: u64,
    /// Messages dropped by the queue limits (and, 5.0, by a client's Maximum Packet Size).
    pub publish_dropped: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Bytes queued for sending.
    pub bytes_sent: u64,
    /// Most clients connected at once.
    pub clients_maximum: u64,
}

/// A connected client's protocol state.
#[derive(Debug)]
struct Client {
    session: SessionId,
    client_id: Arc<str>,
    keep_alive: u16,
    will: Option<Arc<Message>>,
    /// 5.0 Will Delay Interval, seconds.
    will_delay: u32,
    /// 5.0 Session Expiry Interval of the CONNECT (0 forbids a non-zero one in DISCONNECT).
    connect_expiry: u32,
    /// 5.0 inbound topic aliases (index = alias - 1), created on first use.
    aliases: Box<[Option<Box<str>>]>,
    /// 5.0 enhanced authentication: the method, and a re-authentication in progress.
    auth: Option<Box<ClientAuth>>,
}

#[derive(Debug)]
struct ClientAuth {
    method: Box<str>,
    exchange: Option<Box<dyn AuthExchange>>,
}

/// A CONNECT kept while its enhanced authentication exchange runs (the packet's bytes are gone
/// by then), and what `finish_connect` needs of it.
#[derive(Debug)]
struct ConnectInfo {
    protocol: ProtocolVersion,
    clean_start: bool,
    keep_alive: u16,
    client_id: String,
    username: Option<String>,
    will: Option<Arc<Message>>,
    will_delay: u32,
    session_expiry: u32,
    receive_maximum: Option<NonZeroU16>,
    maximum_packet_size: Option<NonZeroU32>,
    topic_alias_maximum: u16,
    request_response_information: bool,
}

#[derive(Debug)]
struct PendingAuth {
    connect: ConnectInfo,
    method: Box<str>,
    exchange: Box<dyn AuthExchange>,
}

#[derive(Debug)]
enum ConnState {
    /// Waiting for CONNECT.
    AwaitingConnect,
    /// CONNECT received; 5.0 enhanced authentication in progress.
    Authenticating(Box<PendingAuth>),
    Connected(Client),
}

/// Topic aliases the broker assigned toward one 5.0 client.
#[derive(Debug, Default)]
struct OutAliases {
    by_topic: HashMap<Box<str>, NonZeroU16>,
    limit: u16,
}

/// One network connection.
#[derive(Debug)]
struct Conn {
    id: ConnId,
    peer: SocketAddr,
    opened_ms: u64,
    last_seen_ms: u64,
    version: ProtocolVersion,
    /// 5.0: the client's Maximum Packet Size (larger messages are not sent, [MQTT-3.1.2-25]).
    max_packet_size: u32,
    /// `None` while the shell has the connection hibernating (see [`Broker::hibernate`]).
    outbox: Option<Outbox>,
    state: ConnState,
    out_aliases: Option<Box<OutAliases>>,
}

impl Conn {
    /// The outbox to queue on. A hibernating connection gets a new one, and the shell is told
    /// (through `woken`) to give it its task back.
    fn outbox(&mut self, woken: &mut Vec<(ConnId, Outbox)>) -> &Outbox {
        let id = self.id;
        self.outbox.get_or_insert_with(|| {
            let outbox = Outbox::new();
            woken.push((id, outbox.clone()));
            outbox
        })
    }

    fn client_id(&self) -> &str {
        match &self.state {
            ConnState::Connected(c) => &c.client_id,
            ConnState::Authenticating(p) => &p.connect.client_id,
            ConnState::AwaitingConnect => "<unknown>",
        }
    }

    /// The Topic Alias to send `topic` with: an existing one (topic left out), a new one (topic
    /// sent too), or none when the client takes no aliases or they are all used.
    fn out_alias(&mut self, topic: &str) -> Option<(NonZeroU16, bool)> {
        let a = self.out_aliases.as_mut()?;
        if let Some(&alias) = a.by_topic.get(topic) {
            return Some((alias, false));
        }
        let next = u16::try_from(a.by_topic.len()).ok()?.checked_add(1)?;
        if next > a.limit {
            return None;
        }
        let alias = NonZeroU16::new(next)?;
        a.by_topic.insert(topic.into(), alias);
        Some((alias, true))
    }
}

/// A shared subscription `$share/{group}/{filter}`: its members, and whose turn it is.
#[derive(Debug)]
struct SharedGroup {
    filter: Box<str>,
    members: Vec<Sub>,
    next: usize,
}

/// A will waiting for its Will Delay Interval (5.0 §3.1.3.2).
#[derive(Debug)]
struct PendingWill {
    client_id: Arc<str>,
    due_ms: u64,
    message: Arc<Message>,
}

/// The broker core.
#[derive(Debug)]
pub struct Broker {
    config: Config,
    /// Boxed: the table holds many empty slots at its load factor, so keep slots small.
    conns: HashMap<ConnId, Box<Conn>, IdHash>,
    next_conn: u64,
    connected: usize,
    sessions: SessionStore,
    index: SubscriptionIndex,
    /// Shared subscriptions by their full filter (`$share/{group}/{filter}`).
    shared: HashMap<Arc<str>, SharedGroup>,
    retained: RetainedStore,
    stats: Stats,
    /// Reused buffers for subscription matches and identifiers (no allocation per publish).
    matches: Vec<Sub>,
    sub_ids: Vec<u32>,
    /// Connections to close once the current event is handled (found while borrowed).
    to_close: Vec<(ConnId, CloseReason)>,
    /// Hibernating connections that were given an outbox again (see [`Broker::take_woken`]).
    woken: Vec<(ConnId, Outbox)>,
    /// Backpressure: the congested outboxes the current event's messages went to (see
    /// [`Broker::take_congested`]).
    congested: Vec<Outbox>,
    /// Disconnected sessions with a finite expiry, by expiry time.
    expiring: BTreeSet<(u64, SessionId)>,
    pending_wills: Vec<PendingWill>,
    authenticators: Vec<Arc<dyn Authenticator>>,
    /// The latest time an event brought (for events that carry none).
    now_ms: u64,
    started_ms: u64,
    next_sys_ms: u64,
    next_sweep_ms: u64,
    id_seed: u64,
    id_counter: u64,
}

impl Broker {
    /// A broker with this configuration, started at `now_ms`.
    pub fn new(mut config: Config, now_ms: u64) -> Broker {
        // As in Mosquitto, 0 means unlimited for these two.
        if config.max_inflight_messages == 0 {
            config.max_inflight_messages = usize::MAX;
        }
        // Leave at least one packet id free, so `Session::next_pid` always finds one.
        config.max_inflight_messages = config.max_inflight_messages.min(usize::from(u16::MAX) - 1);
        if config.max_queued_messages == 0 {
            config.max_queued_messages = usize::MAX;
        }
        if config.receive_maximum == 0 {
            config.receive_maximum = u16::MAX;
        }
        config.maximum_qos = config.maximum_qos.min(2);
        Broker {
            config,
            conns: HashMap::default(),
            next_conn: 0,
            connected: 0,
            sessions: SessionStore::new(),
            index: SubscriptionIndex::new(),
            shared: HashMap::new(),
            retained: RetainedStore::new(),
            stats: Stats::default(),
            matches: Vec::new(),
            sub_ids: Vec::new(),
            to_close: Vec::new(),
            woken: Vec::new(),
            congested: Vec::new(),
            expiring: BTreeSet::new(),
            pending_wills: Vec::new(),
            authenticators: Vec::new(),
            now_ms,
            started_ms: now_ms,
            next_sys_ms: now_ms,
            next_sweep_ms: now_ms,
            id_seed: RandomState::new().hash_one(now_ms),
            id_counter: 0,
        }
    }

    /// Offer an enhanced authentication method (5.0 §4.12) to clients that name it.
    pub fn add_authenticator(&mut self, authenticator: Arc<dyn Authenticator>) {
        self.authenticators.push(authenticator);
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The `$SYS` counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Clients connected now.
    pub fn connected_clients(&self) -> usize {
        self.connected
    }

    /// The session store.
    pub fn sessions(&self) -> &SessionStore {
        &self.sessions
    }

    /// The subscription index (shared subscriptions are kept apart, see
    /// [`Broker::shared_subscription_members`]).
    pub fn subscriptions(&self) -> &SubscriptionIndex {
        &self.index
    }

    /// Members of a shared subscription (`$share/{group}/{filter}`).
    pub fn shared_subscription_members(&self, filter: &str) -> usize {
        self.shared.get(filter).map_or(0, |g| g.members.len())
    }

    /// The retained messages.
    pub fn retained(&self) -> &RetainedStore {
        &self.retained
    }

    // ---------------------------------------------------------------------------------------
    // Events
    // ---------------------------------------------------------------------------------------

    /// A TCP connection was accepted from `peer` on `local_port`. Returns its id and the outbox
    /// its writer drains, or `None` if `max_connections` is reached (the shell drops the socket).
    pub fn connection_opened(
        &mut self,
        peer: SocketAddr,
        local_port: u16,
        now_ms: u64,
    ) -> Option<(ConnId, Outbox)> {
        self.now_ms = self.now_ms.max(now_ms);
        let max = self.config.max_connections;
        if max > 0 && self.conns.len() >= max {
            log::warn!("Client connection from {peer} denied: max_connections exceeded.");
            return None;
        }
        log::info!("New connection from {peer} on port {local_port}.");
        self.next_conn = self.next_conn.wrapping_add(1);
        let id = ConnId(self.next_conn);
        let outbox = Outbox::new();
        self.conns.insert(
            id,
            Box::new(Conn {
                id,
                peer,
                opened_ms: now_ms,
                last_seen_ms: now_ms,
                version: ProtocolVersion::V311,
                max_packet_size: u32::MAX,
                outbox: Some(outbox.clone()),
                state: ConnState::AwaitingConnect,
                out_aliases: None,
            }),
        );
        Some((id, outbox))
    }

    /// A packet of `len` bytes was decoded from `conn`.
    pub fn packet_received(&mut self, conn: ConnId, packet: &Packet<'_>, len: usize, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.last_seen_ms = now_ms;
        self.stats.messages_received = self.stats.messages_received.saturating_add(1);
        self.stats.bytes_received = self.stats.bytes_received.saturating_add(len as u64);
        match &c.state {
            ConnState::AwaitingConnect => match packet {
                Packet::Connect(connect) => self.on_connect(conn, connect),
                // CVE-2023-0809: the first packet must be CONNECT.
                _ => self.close(conn, CloseReason::ProtocolError),
            },
            ConnState::Authenticating(_) => match packet {
                Packet::Auth(a) if a.reason_code == ReasonCode::CONTINUE_AUTHENTICATION => {
                    self.on_connect_auth(conn, a)
                }
                // Before CONNACK only AUTH may flow; a refusal is a CONNACK.
                _ => self.refuse(
                    conn,
                    ReasonCode::PROTOCOL_ERROR,
                    "protocol error during authentication",
                ),
            },
            ConnState::Connected(client) => {
                let sid = client.session;
                self.on_packet(conn, sid, packet);
            }
        }
        self.process_closes();
    }

    /// Part of a packet arrived from `conn`: it counts as activity for the keep-alive (a large
    /// packet on a slow link may take longer than the keep-alive to arrive).
    pub fn bytes_arrived(&mut self, conn: ConnId, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.last_seen_ms = now_ms;
        }
    }

    /// The bytes from `conn`, read at `now_ms`, could not be decoded; the stream cannot be
    /// resynchronised. (The will delay and session expiry count from `now_ms`, as for
    /// [`Broker::connection_lost`].)
    pub fn decode_failed(&mut self, conn: ConnId, error: DecodeError, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        log::debug!("Decode error from {} ({}): {error}", c.client_id(), c.peer);
        let reason = match error {
            DecodeError::UnsupportedProtocolLevel(level)
                if matches!(c.state, ConnState::AwaitingConnect) =>
            {
                // [MQTT-3.1.2-2]: CONNACK 0x01, then close.
                log::info!(
                    "Client <unknown> from {} refused: unsupported protocol level {level}.",
                    c.peer
                );
                self.send_connack(conn, false, ReasonCode::V3_UNACCEPTABLE_PROTOCOL_VERSION);
                CloseReason::ConnectRefused
            }
            DecodeError::PacketTooLarge { .. } => CloseReason::Oversize,
            e if e.kind() == ErrorKind::ProtocolError => CloseReason::ProtocolError,
            _ => CloseReason::Malformed,
        };
        self.close(conn, reason);
        self.process_closes();
    }

    /// The socket of `conn` reached EOF or failed at `now_ms`. The will delay and the session
    /// expiry count from then ([MQTT-3.1.2-8], [MQTT-3.1.3-9]), not from the last packet or
    /// tick the broker saw, which may be a tick interval older.
    pub fn connection_lost(&mut self, conn: ConnId, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.close(conn, CloseReason::ConnectionLost);
        self.process_closes();
    }

    /// Time passed: enforce the connect timeout and keep-alives, expire sessions, publish
    /// delayed wills and `$SYS`, drop expired retained messages.
    pub fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        let connect_timeout = self.config.connect_timeout.saturating_mul(1000);
        for (&id, c) in &self.conns {
            match &c.state {
                ConnState::AwaitingConnect | ConnState::Authenticating(_)
                    if now_ms.saturating_sub(c.opened_ms) >= connect_timeout =>
                {
                    self.to_close.push((id, CloseReason::ConnectTimeout));
                }
                // [MQTT-3.1.2-24]: one and a half times the keep-alive.
                ConnState::Connected(client)
                    if client.keep_alive > 0
                        && now_ms.saturating_sub(c.last_seen_ms)
                            > u64::from(client.keep_alive) * 1500 =>
                {
                    self.to_close.push((id, CloseReason::KeepAliveTimeout));
                }
                _ => {}
            }
        }
        self.process_closes();
        // Session expiry (5.0 §3.1.2.11.2): ended sessions also release their delayed wills.
        while let Some(&(at, sid)) = self.expiring.first() {
            if at > now_ms {
                break;
            }
            self.expiring.pop_first();
            if self
                .sessions
                .get(sid)
                .is_some_and(|s| s.conn.is_none() && s.expires_at == Some(at))
            {
                if let Some(s) = self.sessions.get(sid) {
                    log::info!("Session of client {} expired.", s.client_id);
                }
                self.end_session(sid);
            }
        }
        if self.pending_wills.iter().any(|w| w.due_ms <= now_ms) {
            let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_wills)
                .into_iter()
                .partition(|w| w.due_ms <= now_ms);
            self.pending_wills = waiting;
            for w in due {
                self.route(w.message.restamped(now_ms), None);
            }
        }
        if now_ms >= self.next_sweep_ms {
            // Message expiry of retained messages ([MQTT-3.3.2-5]); once a second is plenty.
            self.retained.remove_expired(now_ms);
            self.next_sweep_ms = now_ms.saturating_add(1000);
        }
        if self.config.sys_interval > 0 && now_ms >= self.next_sys_ms {
            self.publish_sys(now_ms);
            self.next_sys_ms = now_ms.saturating_add(self.config.sys_interval.saturating_mul(1000));
        }
        self.process_closes();
    }

    /// The shell's connection `conn` is quiet and wants to hibernate: it gives up its outbox
    /// (the core makes a new one, and reports it in [`Broker::take_woken`], when it has
    /// something to send or closes the connection). Refused (`false`) when something is queued
    /// already.
    pub fn hibernate(&mut self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else {
            return false;
        };
        if let Some(o) = c.outbox.take_if(|o| o.is_idle()) {
            // A quiet client holds no publisher back (it makes no progress either).
            o.set_held(false);
            true
        } else {
            false
        }
    }

    /// A hibernating connection's socket has an event: the outbox its task drains again, or
    /// `None` if the connection is gone.
    pub fn wake(&mut self, conn: ConnId) -> Option<Outbox> {
        let c = self.conns.get_mut(&conn)?;
        Some(c.outbox.get_or_insert_with(Outbox::new).clone())
    }

    /// Hibernating connections the core has queued something for, or closed, since the last
    /// call, each with its new outbox: the shell gives them their task back.
    pub fn take_woken(&mut self) -> Vec<(ConnId, Outbox)> {
        std::mem::take(&mut self.woken)
    }

    /// Whether a call to [`Broker::take_woken`] would return anything.
    pub fn has_woken(&self) -> bool {
        !self.woken.is_empty()
    }

    /// Backpressure: the outboxes of the connections that the messages handled since the last
    /// call went to and that are congested (more than `max_outgoing_bytes` waiting, or a session
    /// queue past half of `max_queued_messages`). The shell reads no more from the publisher
    /// until they drain (see [`Outbox::poll_uncongested`]), or, if one does not within its
    /// patience, marks it stalled and goes on: a subscriber that makes progress paces its
    /// publishers instead of losing their messages, and a stuck one only loses its own.
    pub fn take_congested(&mut self) -> Vec<Outbox> {
        std::mem::take(&mut self.congested)
    }

    /// Whether [`Broker::take_congested`] would return anything.
    pub fn has_congested(&self) -> bool {
        !self.congested.is_empty()
    }

    /// Close every connection (graceful shutdown): queued bytes are flushed, no wills published;
    /// 5.0 clients get DISCONNECT 0x8B.
    pub fn shutdown(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id, CloseReason::Shutdown);
        }
        self.to_close.clear();
    }

    // ---------------------------------------------------------------------------------------
    // CONNECT
    // ---------------------------------------------------------------------------------------

    fn refuse(&mut self, conn: ConnId, code: ReasonCode, why: &str) {
        if let Some(c) = self.conns.get(&conn) {
            log::info!("Client from {} refused: {why}.", c.peer);
        }
        self.send_connack(conn, false, code);
        self.close(conn, CloseReason::ConnectRefused);
    }

    fn on_connect(&mut self, conn: ConnId, connect: &Connect<'_>) {
        let version = connect.protocol;
        let now = self.now_ms;
        let v5 = version.is_v5();
        let p = &connect.properties;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.version = version;
            if v5 {
                c.max_packet_size = p.maximum_packet_size.map_or(u32::MAX, NonZeroU32::get);
            }
        }
        let will_delay = connect
            .will
            .as_ref()
            .and_then(|w| w.properties.will_delay_interval)
            .unwrap_or(0);
        if let Some(w) = &connect.will
            && v5
        {
            // [MQTT-3.2.2-12], [MQTT-3.2.2-13]: a will the broker could not publish.
            if w.qos.bits() > self.config.maximum_qos {
                return self.refuse(
                    conn,
                    ReasonCode::QOS_NOT_SUPPORTED,
                    "will QoS not supported",
                );
            }
            if w.retain && !self.config.retain_available {
                return self.refuse(
                    conn,
                    ReasonCode::RETAIN_NOT_SUPPORTED,
                    "will retain not supported",
                );
            }
        }
        let info = ConnectInfo {
            protocol: version,
            clean_start: connect.clean_start,
            keep_alive: connect.keep_alive,
            client_id: connect.client_id.into(),
            username: connect.username.map(Into::into),
            will: connect.will.as_ref().map(|w| {
                Message::with_properties(
                    w.topic.as_str(),
                    w.payload,
                    w.qos,
                    w.retain,
                    &w.properties,
                    now,
                )
            }),
            will_delay,
            session_expiry: p.session_expiry_interval.unwrap_or(0),
            receive_maximum: p.receive_maximum,
            maximum_packet_size: p.maximum_packet_size,
            topic_alias_maximum: p.topic_alias_maximum.unwrap_or(0),
            request_response_information: p.request_response_information.unwrap_or(false),
        };
        let Some(method) = p.authentication_method.filter(|_| v5) else {
            // 5.0 §3.1.2.11.10: Authentication Data without a method is a Protocol Error.
            if v5 && p.authentication_data.is_some() {
                return self.refuse(
                    conn,
                    ReasonCode::PROTOCOL_ERROR,
                    "authentication data without a method",
                );
            }
            return self.finish_connect(conn, info, None);
        };
        // Enhanced authentication (5.0 §4.12).
        let Some(authenticator) = self
            .authenticators
            .iter()
            .find(|a| a.method() == method)
            .cloned()
        else {
            return self.refuse(
                conn,
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                "unknown authentication method",
            );
        };
        let mut exchange = authenticator.begin(&info.client_id, info.username.as_deref());
        let step = exchange.step(p.authentication_data.unwrap_or_default());
        self.auth_step(
            conn,
            step,
            Box::new(PendingAuth {
                connect: info,
                method: method.into(),
                exchange,
            }),
        );
    }

    /// Act on one step of a CONNECT's authentication exchange.
    fn auth_step(&mut self, conn: ConnId, step: AuthStep, pending: Box<PendingAuth>) {
        match step {
            AuthStep::Continue(data) => {
                let auth = Packet::Auth(Auth {
                    reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
                    properties: Properties {
                        authentication_method: Some(&pending.method),
                        authentication_data: Some(&data),
                        ..NO_PROPERTIES
                    },
                });
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                let out = Out::packet(&auth, c.version);
                if out.len() > c.max_packet_size as usize {
                    return self.refuse(
                        conn,
                        ReasonCode::PACKET_TOO_LARGE,
                        "authentication data above the client's Maximum Packet Size",
                    );
                }
                c.state = ConnState::Authenticating(pending);
                self.send(conn, out);
            }
            AuthStep::Success(data) => {
                let PendingAuth {
                    connect, method, ..
                } = *pending;
                self.finish_connect(conn, connect, Some((method, data)));
            }
            AuthStep::Failure => {
                self.refuse(conn, ReasonCode::NOT_AUTHORIZED, "authentication failed")
            }
        }
    }

    /// An AUTH 0x18 during a CONNECT's authentication exchange.
    fn on_connect_auth(&mut self, conn: ConnId, auth: &Auth<'_>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let state = std::mem::replace(&mut c.state, ConnState::AwaitingConnect);
        let ConnState::Authenticating(mut pending) = state else {
            c.state = state;
            return;
        };
        // [MQTT-4.12.0-5]: the method must stay the same.
        if auth.properties.authentication_method != Some(&*pending.method) {
            c.state = ConnState::Authenticating(pending);
            return self.refuse(
                conn,
                ReasonCode::PROTOCOL_ERROR,
                "authentication method changed",
            );
        }
        let step = pending
            .exchange
            .step(auth.properties.authentication_data.unwrap_or_default());
        self.auth_step(conn, step, pending);
    }

    /// Accept a (possibly authenticated) CONNECT: session, CONNACK, redelivery.
    fn finish_connect(
        &mut self,
        conn: ConnId,
        info: ConnectInfo,
        auth: Option<(Box<str>, Option<Vec<u8>>)>,
    ) {
        let version = info.protocol;
        let v5 = version.is_v5();
        let id_rejected = if v5 {
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
        } else {
            ReasonCode::V3_IDENTIFIER_REJECTED
        };
        let assigned = info.client_id.is_empty();
        if assigned {
            // 3.1 requires an id; 3.1.1 allows an empty one only with Clean Session
            // ([MQTT-3.1.3-8]); 5.0 with any Clean Start.
            let allowed = self.config.allow_zero_length_clientid
                && version != ProtocolVersion::V31
                && (info.clean_start || v5);
            if !allowed {
                return self.refuse(conn, id_rejected, "empty client id not allowed");
            }
        } else if version == ProtocolVersion::V31 && info.client_id.len() > 23 {
            return self.refuse(conn, id_rejected, "MQTT 3.1 client id longer than 23 bytes");
        }
        let mut keep_alive = info.keep_alive;
        let mut server_keep_alive = None;
        if keep_alive > self.config.max_keepalive {
            if v5 {
                // 5.0 §3.2.2.3.14: the server's keep-alive wins; the client is told.
                keep_alive = self.config.max_keepalive;
                server_keep_alive = Some(keep_alive);
            } else {
                return self.refuse(conn, id_rejected, "keep-alive above max_keepalive");
            }
        }
        let client_id: Arc<str> = if assigned {
            self.assign_client_id().into()
        } else {
            info.client_id.as_str().into()
        };

        // Session takeover: the old connection goes ([MQTT-3.1.4-2]) and its will is published
        // (or, 5.0, delayed — and then cancelled below when the session continues).
        if let Some(old_conn) = self
            .sessions
            .find(&client_id)
            .and_then(|sid| self.sessions.get(sid))
            .and_then(|s| s.conn)
        {
            self.close(old_conn, CloseReason::TakenOver);
        }
        // 5.0: a session outlives its connection only with a Session Expiry Interval.
        // 5.0 §3.2.2.3.2: the broker may shorten the interval, and then says so in CONNACK.
        let cap = self.config.max_session_expiry_interval;
        let capped_expiry = (v5 && info.session_expiry > cap).then_some(cap);
        let expiry = if v5 {
            info.session_expiry.min(cap)
        } else if info.clean_start {
            0
        } else {
            u32::MAX
        };
        let ends_with_connection = expiry == 0;
        if !info.clean_start {
            // [MQTT-3.1.3-9]: a new connection to the session before the Will Delay Interval
            // passed: the delayed will is not sent.
            self.pending_wills.retain(|w| w.client_id != client_id);
        }
        let (sid, session_present) = match self.sessions.find(&client_id) {
            Some(sid) if !info.clean_start => (sid, true),
            existing => {
                if let Some(old) = existing {
                    self.end_session(old);
                }
                (
                    self.sessions
                        .create(Arc::clone(&client_id), ends_with_connection),
                    false,
                )
            }
        };
        let receive_maximum = info
            .receive_maximum
            .map_or(usize::MAX, |r| usize::from(r.get()));
        if let Some(s) = self.sessions.get_mut(sid) {
            if let Some(at) = s.expires_at.take() {
                self.expiring.remove(&(at, sid));
            }
            s.clean = ends_with_connection;
            s.expiry_interval = expiry;
            s.conn = Some(conn);
            s.dropping = false;
            s.inflight_max = self.config.max_inflight_messages.min(receive_maximum);
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let peer = c.peer;
        if v5 {
            c.max_packet_size = info.maximum_packet_size.map_or(u32::MAX, NonZeroU32::get);
            let limit = self
                .config
                .outbound_topic_aliases
                .min(info.topic_alias_maximum);
            if limit > 0 {
                c.out_aliases = Some(Box::new(OutAliases {
                    by_topic: HashMap::new(),
                    limit,
                }));
            }
        }
        c.state = ConnState::Connected(Client {
            session: sid,
            client_id: Arc::clone(&client_id),
            keep_alive,
            will: info.will,
            will_delay: info.will_delay,
            connect_expiry: info.session_expiry,
            aliases: Box::default(),
            auth: auth.as_ref().map(|(method, _)| {
                Box::new(ClientAuth {
                    method: method.clone(),
                    exchange: None,
                })
            }),
        });
        self.connected = self.connected.saturating_add(1);
        self.stats.clients_maximum = self.stats.clients_maximum.max(self.connected as u64);

        let cfg = &self.config;
        let properties = if v5 {
            Properties {
                assigned_client_identifier: if assigned { Some(&client_id) } else { None },
                server_keep_alive,
                session_expiry_interval: capped_expiry,
                receive_maximum: NonZeroU16::new(cfg.receive_maximum),
                maximum_packet_size: NonZeroU32::new(cfg.max_packet_size),
                topic_alias_maximum: Some(cfg.topic_alias_maximum).filter(|&m| m > 0),
                maximum_qos: QoS::from_bits(cfg.maximum_qos).filter(|&q| q != QoS::ExactlyOnce),
                retain_available: Some(false).filter(|_| !cfg.retain_available),
                wildcard_subscription_available: Some(false)
                    .filter(|_| !cfg.wildcard_subscription_available),
                subscription_identifier_available: Some(false)
                    .filter(|_| !cfg.subscription_identifier_available),
                shared_subscription_available: Some(false)
                    .filter(|_| !cfg.shared_subscription_available),
                response_information: Some(cfg.response_information.as_str())
                    .filter(|r| info.request_response_information && !r.is_empty()),
                authentication_method: auth.as_ref().map(|(m, _)| &**m),
                authentication_data: auth.as_ref().and_then(|(_, d)| d.as_deref()),
                ..NO_PROPERTIES
            }
        } else {
            NO_PROPERTIES
        };
        let connack = |properties| {
            Out::packet(
                &Packet::ConnAck(ConnAck {
                    session_present,
                    code: ReasonCode::SUCCESS,
                    properties,
                }),
                version,
            )
        };
        let mut out = connack(properties);
        let max_size = self
            .conns
            .get(&conn)
            .map_or(u32::MAX, |c| c.max_packet_size);
        if out.len() > max_size as usize {
            // [MQTT-3.1.2-24]: a client with a tiny Maximum Packet Size gets the properties it
            // cannot do without (its id, the keep-alive it must use, the authentication).
            out = connack(Properties {
                assigned_client_identifier: properties.assigned_client_identifier,
                server_keep_alive: properties.server_keep_alive,
                authentication_method: properties.authentication_method,
                authentication_data: properties.authentication_data,
                ..NO_PROPERTIES
            });
        }
        self.send(conn, out);
        let protocol = match version {
            ProtocolVersion::V31 => 1,
            ProtocolVersion::V311 => 2,
            ProtocolVersion::V5 => 5,
        };
        let user = info
            .username
            .map(|u| format!(", u'{u}'"))
            .unwrap_or_default();
        log::info!(
            "New client connected from {peer} as {client_id} (p{protocol}, c{}, k{}{user}).",
            u8::from(info.clean_start),
            info.keep_alive,
        );
        if session_present {
            self.resume(sid);
        }
    }

    /// An id like Mosquitto's `auto-<uuid>`.
    fn assign_client_id(&mut self) -> String {
        let mut next = || {
            // splitmix64 over a random seed: unique enough for ids, no extra dependency.
            self.id_counter = self.id_counter.wrapping_add(1);
            let mut z = self
                .id_seed
                .wrapping_add(self.id_counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let (a, b) = (next(), next());
        format!(
            "{}{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            self.config.auto_id_prefix,
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0xFFFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }

    /// A resumed session: redeliver what is in flight (DUP set; PUBREL for messages whose PUBREC
    /// arrived, [MQTT-4.4.0-1]), then fill the window from the queue.
    fn resume(&mut self, sid: SessionId) {
        let now = self.now_ms;
        let Some(session) = self.sessions.get(sid) else {
            return;
        };
        let Some(conn) = session.conn else { return };
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let version = c.version;
        let max_size = c.max_packet_size;
        let outs: Vec<Out> = session
            .delivery()
            .inflight
            .iter()
            .map(|i| match i.state {
                OutgoingState::AwaitingPubComp => {
                    Out::packet(&Packet::PubRel(Ack::new(i.pid)), version)
                }
                _ => i.message.delivery_with(
                    version,
                    i.qos,
                    Some(i.pid),
                    true,
                    i.retain,
                    &Delivery {
                        now_ms: now,
                        subscription_ids: &i.sub_ids,
                        topic_alias: None,
                    },
                ),
            })
            .filter(|o| o.len() <= max_size as usize)
            .collect();
        for out in outs {
            let is_publish = !matches!(out, Out::Inline { .. });
            self.send(conn, out);
            if is_publish {
                self.stats.publish_sent = self.stats.publish_sent.saturating_add(1);
            }
        }
        self.fill_window(sid);
    }

    // ---------------------------------------------------------------------------------------
    // Packets of a connected client
    // ---------------------------------------------------------------------------------------

    fn version(&self, conn: ConnId) -> ProtocolVersion {
        self.conns
            .get(&conn)
            .map_or(ProtocolVersion::V311, |c| c.version)
    }

    fn on_packet(&mut self, conn: ConnId, sid: SessionId, packet: &Packet<'_>) {
        match packet {
            Packet::Publish(p) => self.on_publish(conn, sid, p),
            Packet::PubAck(a) => self.on_ack(sid, a.packet_id, OutgoingState::AwaitingPubAck),
            Packet::PubRec(a) => {
                let mut known = false;
                if let Some(s) = self.sessions.get_mut(sid)
                    && let Some(pos) = s.inflight_position(a.packet_id)
                    && let Some(i) = s.delivery_mut().inflight.get_mut(pos)
                    && i.state != OutgoingState::AwaitingPubAck
                {
                    known = true;
                    if a.reason_code.is_success() {
                        i.state = OutgoingState::AwaitingPubComp;
                    } else {
                        // 5.0 §4.3.3: a PUBREC with an error code ends the exchange.
                        s.delivery_mut().inflight.remove(pos);
                        self.fill_window(sid);
                        return;
                    }
                }
                let mut rel = Ack::new(a.packet_id);
                if !known && self.version(conn).is_v5() {
                    rel.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                }
                self.send_packet(conn, &Packet::PubRel(rel));
            }
            Packet::PubRel(a) => {
                let known = self
                    .sessions
                    .get_mut(sid)
                    .is_some_and(|s| s.release_awaiting_rel(a.packet_id.get()));
                // [MQTT-4.3.3-2]: PUBCOMP even for an id already released (5.0 says so with
                // 0x92 Packet Identifier not found).
                let mut comp = Ack::new(a.packet_id);
                if !known && self.version(conn).is_v5() {
                    comp.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                }
                self.send_packet(conn, &Packet::PubComp(comp));
            }
            Packet::PubComp(a) => self.on_ack(sid, a.packet_id, OutgoingState::AwaitingPubComp),
            Packet::Subscribe(s) => self.on_subscribe(conn, sid, s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(conn, sid, u),
            Packet::PingReq => self.send_packet(conn, &Packet::PingResp),
            Packet::Disconnect(d) => self.on_disconnect(conn, sid, d),
            Packet::Auth(a) if self.version(conn).is_v5() => self.on_reauth(conn, a),
            // [MQTT-3.1.0-2]: a second CONNECT is a protocol violation. Packets only a server
            // sends (CVE-2021-28166) likewise.
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp
            | Packet::Auth(_) => {
                if let Some(c) = self.conns.get(&conn) {
                    log::debug!(
                        "Client {} sent {}: protocol violation.",
                        c.client_id(),
                        packet.packet_type().name()
                    );
                }
                self.close(conn, CloseReason::ProtocolError);
            }
        }
    }

    fn on_disconnect(&mut self, conn: ConnId, sid: SessionId, d: &Disconnect<'_>) {
        if let Some(new_expiry) = d.properties.session_expiry_interval {
            let connect_expiry = match self.conns.get(&conn).map(|c| &c.state) {
                Some(ConnState::Connected(client)) => client.connect_expiry,
                _ => 0,
            };
            // [MQTT-3.14.2-2]: from 0 at CONNECT to non-zero is a protocol error.
            if connect_expiry == 0 && new_expiry != 0 {
                return self.close(conn, CloseReason::ProtocolError);
            }
            if let Some(s) = self.sessions.get_mut(sid) {
                s.expiry_interval = new_expiry.min(self.config.max_session_expiry_interval);
                s.clean = new_expiry == 0;
            }
        }
        if d.reason_code == ReasonCode::DISCONNECT_WITH_WILL {
            self.close(conn, CloseReason::DisconnectedWithWill);
        } else {
            // [MQTT-3.14.4-3]: the will is discarded.
            self.close(conn, CloseReason::Disconnected);
        }
    }

    /// 5.0 AUTH from a connected client: re-authentication (§4.12.1).
    fn on_reauth(&mut self, conn: ConnId, a: &Auth<'_>) {
        let Some(ConnState::Connected(client)) = self.conns.get_mut(&conn).map(|c| &mut c.state)
        else {
            return;
        };
        let Some(auth) = client.auth.as_mut() else {
            // No enhanced authentication on this connection: AUTH is a protocol error.
            return self.close(conn, CloseReason::ProtocolError);
        };
        if a.properties.authentication_method != Some(&*auth.method) {
            return self.close(conn, CloseReason::ProtocolError);
        }
        let client_id = Arc::clone(&client.client_id);
        let data = a.properties.authentication_data.unwrap_or_default();
        let step = match (a.reason_code, auth.exchange.as_mut()) {
            (ReasonCode::RE_AUTHENTICATE, _) => {
                let Some(authenticator) = self
                    .authenticators
                    .iter()
                    .find(|x| x.method() == &*auth.method)
                else {
                    return self.close(conn, CloseReason::NotAuthorized);
                };
                let mut exchange = authenticator.begin(&client_id, None);
                let step = exchange.step(data);
                auth.exchange = Some(exchange);
                step
            }
            (ReasonCode::CONTINUE_AUTHENTICATION, Some(exchange)) => exchange.step(data),
            _ => return self.close(conn, CloseReason::ProtocolError),
        };
        let method = auth.method.clone();
        let (code, data) = match step {
            AuthStep::Continue(d) => (ReasonCode::CONTINUE_AUTHENTICATION, Some(d)),
            AuthStep::Success(d) => {
                auth.exchange = None;
                (ReasonCode::SUCCESS, d)
            }
            AuthStep::Failure => return self.close(conn, CloseReason::NotAuthorized),
        };
        let packet = Packet::Auth(Auth {
            reason_code: code,
            properties: Properties {
                authentication_method: Some(&method),
                authentication_data: data.as_deref(),
                ..NO_PROPERTIES
            },
        });
        self.send_packet(conn, &packet);
    }

    /// Resolve a 5.0 Topic Alias (§3.3.2.3.4): `Err` closes the connection.
    fn resolve_topic<'p>(
        &mut self,
        conn: ConnId,
        p: &Publish<'p>,
    ) -> Result<Cow<'p, str>, CloseReason> {
        let max = self.config.topic_alias_maximum;
        let Some(ConnState::Connected(client)) = self.conns.get_mut(&conn).map(|c| &mut c.state)
        else {
            return Err(CloseReason::ProtocolError);
        };
        let Some(alias) = p.properties.topic_alias else {
            if p.topic.is_empty() {
                // An empty topic needs an alias.
                return Err(CloseReason::ProtocolError);
            }
            return Ok(Cow::Borrowed(p.topic.as_str()));
        };
        // [MQTT-3.3.2-9], [MQTT-3.3.2-10]: 1..=Topic Alias Maximum.
        if alias.get() > max {
            return Err(CloseReason::TopicAliasInvalid);
        }
        let slot = usize::from(alias.get() - 1);
        if client.aliases.len() <= slot {
            let mut grown = std::mem::take(&mut client.aliases).into_vec();
            grown.resize(slot + 1, None);
            client.aliases = grown.into_boxed_slice();
        }
        let Some(entry) = client.aliases.get_mut(slot) else {
            return Err(CloseReason::TopicAliasInvalid);
        };
        if p.topic.is_empty() {
            entry
                .as_deref()
                .map(|t| Cow::Owned(t.to_owned()))
                .ok_or(CloseReason::TopicAliasInvalid)
        } else {
            *entry = Some(p.topic.as_str().into());
            Ok(Cow::Borrowed(p.topic.as_str()))
        }
    }

    fn on_publish(&mut self, conn: ConnId, sid: SessionId, p: &Publish<'_>) {
        self.stats.publish_received = self.stats.publish_received.saturating_add(1);
        let v5 = self.version(conn).is_v5();
        // [MQTT-3.3.4-6]: Subscription Identifiers are the broker's to send; one from a client
        // is a protocol error (checked before a Topic Alias it carries is set up).
        if v5 && !p.properties.subscription_identifiers.is_empty() {
            return self.close(conn, CloseReason::ProtocolError);
        }
        // Borrowed from the packet unless a Topic Alias names it: no allocation per publish.
        let topic: Cow<'_, str> = if v5 {
            match self.resolve_topic(conn, p) {
                Ok(t) => t,
                Err(reason) => return self.close(conn, reason),
            }
        } else if p.topic.is_empty() {
            return self.close(conn, CloseReason::ProtocolError);
        } else {
            Cow::Borrowed(p.topic.as_str())
        };
        let qos = p.qos_pid.qos();
        if v5 {
            // [MQTT-3.2.2-11]: above the Maximum QoS the broker announced.
            if qos.bits() > self.config.maximum_qos {
                return self.close(conn, CloseReason::QosNotSupported);
            }
            // [MQTT-3.3.1-14]: RETAIN when Retain Available is 0.
            if p.retain && !self.config.retain_available {
                return self.close(conn, CloseReason::RetainNotSupported);
            }
        }
        // [MQTT-3.3.2-4]-style check: the payload must be UTF-8 if the publisher says so.
        let bad_format = v5
            && p.properties.payload_format_indicator == Some(PayloadFormat::Utf8)
            && std::str::from_utf8(p.payload).is_err();
        if bad_format && qos == QoS::AtMostOnce {
            return self.close(conn, CloseReason::PayloadFormatInvalid);
        }
        // Clients may not publish to `$` topics (`$SYS` belongs to the broker): the message is
        // acknowledged and dropped, as Mosquitto does (CVE-2018-12543: never an assert).
        let accepted = !topic.starts_with('$') && !bad_format;
        if topic.starts_with('$')
            && let Some(c) = self.conns.get(&conn)
        {
            log::debug!(
                "Denied PUBLISH from {} to '{topic}': $ topics are reserved.",
                c.client_id(),
            );
        }
        let now = self.now_ms;
        let retain = p.retain && self.config.retain_available;
        let message =
            || Message::with_properties(&topic, p.payload, qos, retain, &p.properties, now);
        // The 5.0 acknowledgement code: what happened to the message.
        let code = |matched: usize| {
            if bad_format {
                ReasonCode::PAYLOAD_FORMAT_INVALID
            } else if topic.starts_with('$') {
                ReasonCode::NOT_AUTHORIZED
            } else if matched == 0 {
                ReasonCode::NO_MATCHING_SUBSCRIBERS
            } else {
                ReasonCode::SUCCESS
            }
        };
        match p.qos_pid {
            QosPid::AtMostOnce => {
                if accepted {
                    self.route(message(), Some(sid));
                }
            }
            QosPid::AtLeastOnce(pid) => {
                let matched = if accepted {
                    self.route(message(), Some(sid))
                } else {
                    0
                };
                let mut ack = Ack::new(pid);
                if v5 {
                    ack.reason_code = code(matched);
                }
                self.send_packet(conn, &Packet::PubAck(ack));
            }
            QosPid::ExactlyOnce(pid) => {
                // Exactly once: deliver on the first PUBLISH with this id, remember the id until
                // PUBREL, and only acknowledge duplicates (MQTT §4.3.3, method B).
                let receive_maximum = usize::from(self.config.receive_maximum);
                let Some(s) = self.sessions.get_mut(sid) else {
                    return;
                };
                let duplicate = s.delivery().awaiting_rel.contains(&pid.get());
                if !duplicate && v5 && s.delivery().awaiting_rel.len() >= receive_maximum {
                    // [MQTT-3.3.4-8]: more unacknowledged QoS 2 than the Receive Maximum.
                    return self.close(conn, CloseReason::ReceiveMaximumExceeded);
                }
                let mut matched = 1;
                if !duplicate && !bad_format {
                    // A PUBREC with an error code ends the exchange, so the id is only
                    // remembered for messages that were accepted.
                    s.delivery_mut().awaiting_rel.insert(pid.get());
                    matched = if accepted {
                        self.route(message(), Some(sid))
                    } else {
                        1
                    };
                }
                let mut rec = Ack::new(pid);
                if v5 {
                    rec.reason_code = code(matched);
                }
                self.send_packet(conn, &Packet::PubRec(rec));
            }
        }
    }

    fn on_ack(&mut self, sid: SessionId, pid: PacketId, expected: OutgoingState) {
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        if let Some(pos) = s.inflight_position(pid)
            && s.delivery()
                .inflight
                .get(pos)
                .is_some_and(|i| i.state == expected)
        {
            s.delivery_mut().inflight.remove(pos);
            self.fill_window(sid);
        }
    }

    fn on_subscribe(&mut self, conn: ConnId, sid: SessionId, sub: &Subscribe<'_>) {
        let v5 = self.version(conn).is_v5();
        let max = self.config.max_subscriptions_per_client;
        let sub_id = sub
            .properties
            .subscription_identifiers
            .iter()
            .next()
            .and_then(NonZeroU32::new);
        let mut codes = Vec::new();
        // Granted filters that may receive retained messages now, with their subscription.
        let mut granted: Vec<(TopicFilter<'_>, Sub)> = Vec::new();
        for s in sub.subscriptions.iter() {
            let full = s.filter.as_str();
            let refuse = |v5_code: ReasonCode| {
                if v5 {
                    v5_code
                } else {
                    ReasonCode::V3_SUBACK_FAILURE
                }
            };
            let shared = match s.filter.shared() {
                // Shared subscriptions are a 5.0 feature; a 3.1.1 `$share/…` is refused.
                Ok(Some(_)) if !v5 => {
                    codes.push(ReasonCode::V3_SUBACK_FAILURE);
                    continue;
                }
                Ok(Some((_, inner))) => {
                    if !self.config.shared_subscription_available {
                        codes.push(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
                        continue;
                    }
                    // [MQTT-3.8.3-4]: No Local on a shared subscription is a protocol error.
                    if s.options.no_local {
                        return self.close(conn, CloseReason::ProtocolError);
                    }
                    Some(inner)
                }
                Ok(None) => None,
                Err(_) => {
                    codes.push(refuse(ReasonCode::TOPIC_FILTER_INVALID));
                    continue;
                }
            };
            let filter = shared.unwrap_or(s.filter);
            if filter.has_wildcards() && !self.config.wildcard_subscription_available {
                codes.push(refuse(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED));
                continue;
            }
            if sub_id.is_some() && !self.config.subscription_identifier_available {
                codes.push(refuse(ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED));
                continue;
            }
            if filter.as_str().split('/').count() > MAX_TOPIC_LEVELS {
                codes.push(refuse(ReasonCode::TOPIC_FILTER_INVALID));
                continue;
            }
            let Some(session) = self.sessions.get_mut(sid) else {
                return;
            };
            let existed = session.subscriptions.contains_key(full);
            if max > 0 && session.subscriptions.len() >= max && !existed {
                codes.push(refuse(ReasonCode::QUOTA_EXCEEDED));
                continue;
            }
            let qos_bits = s.options.qos.bits().min(self.config.maximum_qos);
            let qos = QoS::from_bits(qos_bits).unwrap_or(QoS::AtMostOnce);
            let entry = Sub {
                session: sid,
                qos,
                no_local: s.options.no_local,
                retain_as_published: s.options.retain_as_published,
                id: sub_id,
            };
            session.subscriptions.insert(full.into(), entry);
            match shared {
                Some(inner) => {
                    let group = self
                        .shared
                        .entry(full.into())
                        .or_insert_with(|| SharedGroup {
                            filter: inner.as_str().into(),
                            members: Vec::new(),
                            next: 0,
                        });
                    match group.members.iter_mut().find(|m| m.session == sid) {
                        Some(m) => *m = entry,
                        None => group.members.push(entry),
                    }
                }
                None => {
                    self.index.subscribe(full, entry);
                }
            }
            codes.push(ReasonCode(qos_bits));
            // [MQTT-3.3.1-10] … Retain Handling; shared subscriptions get no retained messages
            // ([MQTT-3.8.4-?]: "retained messages are not sent to a shared subscription").
            let send_retained = shared.is_none()
                && match s.options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                granted.push((filter, entry));
            }
        }
        let suback = Packet::SubAck(SubAck {
            packet_id: sub.packet_id,
            properties: NO_PROPERTIES,
            reason_codes: List::new(&codes),
        });
        self.send_packet(conn, &suback);
        // [MQTT-3.3.1-6]: matching retained messages follow, with RETAIN set, at min(QoS).
        let now = self.now_ms;
        let mut retained = Vec::new();
        for (filter, entry) in granted {
            retained.clear();
            self.retained.matching(filter, &mut retained);
            let ids: Vec<u32> = entry.id.map(NonZeroU32::get).into_iter().collect();
            for m in &retained {
                if !m.is_expired(now) {
                    self.deliver(sid, m, entry.qos.min(m.qos()), true, &ids, None);
                }
            }
        }
    }

    fn on_unsubscribe(&mut self, conn: ConnId, sid: SessionId, unsub: &Unsubscribe<'_>) {
        let mut codes = Vec::new();
        for f in unsub.filters.iter() {
            let removed = self
                .sessions
                .get_mut(sid)
                .and_then(|s| s.subscriptions.remove(f.as_str()));
            let existed = if matches!(f.shared(), Ok(Some(_))) {
                self.leave_shared(f.as_str(), sid);
                removed.is_some()
            } else {
                self.index.unsubscribe(f.as_str(), sid)
            };
            codes.push(if existed {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NO_SUBSCRIPTION_EXISTED
            });
        }
        // 3.1.1 UNSUBACK carries no codes; the codec leaves them out.
        let unsuback = Packet::UnsubAck(SubAck {
            packet_id: unsub.packet_id,
            properties: NO_PROPERTIES,
            reason_codes: List::new(&codes),
        });
        self.send_packet(conn, &unsuback);
    }

    /// Remove a session from a shared group (the group goes when empty).
    fn leave_shared(&mut self, filter: &str, sid: SessionId) {
        if let Some(group) = self.shared.get_mut(filter) {
            group.members.retain(|m| m.session != sid);
            if group.members.is_empty() {
                self.shared.remove(filter);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // Routing
    // ---------------------------------------------------------------------------------------

    /// Publish a message as the broker (`$SYS`, tests): store or delete it as retained, and
    /// deliver it to every matching subscription.
    pub fn publish(&mut self, message: Arc<Message>) {
        self.route(message, None);
    }

    /// Store or delete the message as retained, and deliver it to every matching session once
    /// (at min(its QoS, the highest granted QoS), with every matching Subscription Identifier),
    /// and to one member of every matching shared subscription. RETAIN is cleared unless a
    /// matching subscription has Retain As Published ([MQTT-3.3.1-12], [MQTT-3.3.1-13]).
    /// `origin` is the publisher's session, for No Local. Returns the number of deliveries.
    fn route(&mut self, message: Arc<Message>, origin: Option<SessionId>) -> usize {
        if message.retain() {
            self.retained.set(Arc::clone(&message));
        }
        let mut matches = std::mem::take(&mut self.matches);
        let mut ids = std::mem::take(&mut self.sub_ids);
        matches.clear();
        self.index.matches(message.topic(), &mut matches);
        if let Some(o) = origin {
            // [MQTT-3.8.3-3]: No Local.
            matches.retain(|s| !(s.no_local && s.session == o));
        }
        group_by_session(&mut matches);
        let mut count = 0usize;
        for group in matches.chunk_by(|a, b| a.session == b.session) {
            let Some(first) = group.first() else { continue };
            ids.clear();
            let (qos, retain) = if let [only] = group {
                // The common case: one matching subscription (no iterator work).
                ids.extend(only.id.map(NonZeroU32::get));
                (only.qos, message.retain() && only.retain_as_published)
            } else {
                ids.extend(group.iter().filter_map(|s| s.id.map(NonZeroU32::get)));
                (
                    group.iter().map(|s| s.qos).max().unwrap_or(QoS::AtMostOnce),
                    message.retain() && group.iter().any(|s| s.retain_as_published),
                )
            };
            self.deliver(
                first.session,
                &message,
                qos.min(message.qos()),
                retain,
                &ids,
                None,
            );
            count = count.saturating_add(1);
        }
        self.matches = matches;
        if !self.shared.is_empty() {
            count = count.saturating_add(self.route_shared(&message, &mut ids));
        }
        self.sub_ids = ids;
        count
    }

    /// Shared subscriptions: each matching group gets the message once, at the member whose turn
    /// it is (round robin), skipping members that are not connected when one is.
    fn route_shared(&mut self, message: &Arc<Message>, ids: &mut Vec<u32>) -> usize {
        let Ok(topic) = TopicName::new(message.topic()) else {
            return 0;
        };
        let mut picks: Vec<(Sub, Arc<str>)> = Vec::new();
        for (key, group) in self.shared.iter_mut() {
            if !TopicFilter::new(&group.filter).is_ok_and(|f| f.matches(topic)) {
                continue;
            }
            if let Some(i) = pick_member(group, &self.sessions) {
                if let Some(m) = group.members.get(i) {
                    picks.push((*m, Arc::clone(key)));
                }
                group.next = i.saturating_add(1);
            }
        }
        let count = picks.len();
        for (m, key) in picks {
            ids.clear();
            ids.extend(m.id.map(NonZeroU32::get));
            let retain = message.retain() && m.retain_as_published;
            self.deliver(
                m.session,
                message,
                m.qos.min(message.qos()),
                retain,
                ids,
                Some(&key),
            );
        }
        count
    }

    /// Deliver one message to one session: straight to the socket if the client is connected and
    /// the window has room, else into the session queue (bounded, see `max_queued_messages`).
    fn deliver(
        &mut self,
        sid: SessionId,
        message: &Arc<Message>,
        qos: QoS,
        retain: bool,
        sub_ids: &[u32],
        shared: Option<&Arc<str>>,
    ) {
        let now = self.now_ms;
        if message.is_expired(now) {
            return;
        }
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let conn = session
            .conn
            .and_then(|id| self.conns.get_mut(&id).map(|c| (id, c)));
        let stats = &mut self.stats;
        match conn {
            Some((_, c)) if qos == QoS::AtMostOnce => {
                let backpressure = self.config.max_publisher_hold_ms > 0;
                match c
                    .outbox
                    .as_ref()
                    .map_or(Room::Yes, |o| o.room(self.config.max_outgoing_bytes))
                {
                    Room::Yes => {}
                    Room::Congested if backpressure => {
                        if let Some(o) = &c.outbox {
                            note_congested(&mut self.congested, o);
                        }
                    }
                    Room::Congested | Room::No => return drop_message(stats, session),
                }
                session.dropping = false;
                let out = out_for(c, message, qos, None, retain, sub_ids, now);
                if out.len() > c.max_packet_size as usize {
                    // [MQTT-3.1.2-25]: too large for the client: dropped, counted.
                    return drop_message(stats, session);
                }
                push(
                    stats,
                    c,
                    out,
                    self.config.max_outgoing_bytes,
                    PushTo {
                        to_close: &mut self.to_close,
                        woken: &mut self.woken,
                    },
                );
                stats.publish_sent = stats.publish_sent.saturating_add(1);
            }
            Some((_, c))
                if session.delivery().inflight.len() < session.inflight_max
                    && session.delivery().queued.is_empty() =>
            {
                session.dropping = false;
                let pid = session.next_pid();
                let out = out_for(c, message, qos, Some(pid), retain, sub_ids, now);
                if out.len() > c.max_packet_size as usize {
                    return drop_message(stats, session);
                }
                session.delivery_mut().inflight.push_back(Inflight {
                    pid,
                    message: Arc::clone(message),
                    qos,
                    retain,
                    state: if qos == QoS::ExactlyOnce {
                        OutgoingState::AwaitingPubRec
                    } else {
                        OutgoingState::AwaitingPubAck
                    },
                    sub_ids: sub_ids.into(),
                    shared: shared.cloned(),
                });
                push(
                    stats,
                    c,
                    out,
                    self.config.max_outgoing_bytes,
                    PushTo {
                        to_close: &mut self.to_close,
                        woken: &mut self.woken,
                    },
                );
                stats.publish_sent = stats.publish_sent.saturating_add(1);
            }
            // QoS 0 is not queued for an offline session unless configured.
            None if qos == QoS::AtMostOnce && !self.config.queue_qos0_messages => {}
            conn => {
                let queued = Queued {
                    message: Arc::clone(message),
                    qos,
                    retain,
                    sub_ids: sub_ids.into(),
                    shared: shared.cloned(),
                };
                if session.delivery().queued.len() < self.config.max_queued_messages {
                    session.delivery_mut().queued.push_back(queued);
                } else if let Some(pos) = session
                    .delivery()
                    .queued
                    .iter()
                    .position(|q| q.message.is_expired(now))
                {
                    // An expired message makes room first ([MQTT-3.3.2-5]).
                    session.delivery_mut().queued.remove(pos);
                    session.delivery_mut().queued.push_back(queued);
                } else if qos != QoS::AtMostOnce
                    && let Some(pos) = session
                        .delivery()
                        .queued
                        .iter()
                        .position(|q| q.qos == QoS::AtMostOnce)
                {
                    // Drop policy: the oldest queued QoS 0 message makes room for QoS 1/2.
                    session.delivery_mut().queued.remove(pos);
                    session.delivery_mut().queued.push_back(queued);
                    drop_message(stats, session);
                } else {
                    drop_message(stats, session);
                }
                // A connected client whose queue is long holds its publishers back (an offline
                // one never does: its queue is what it will find when it comes back).
                let max = self.config.max_queued_messages;
                if let Some(o) = conn.and_then(|(_, c)| c.outbox.as_ref())
                    && max > 0
                    && self.config.max_publisher_hold_ms > 0
                    && session.delivery().queued.len() >= (max / 2).max(1)
                    && !o.is_stalled()
                {
                    o.set_held(true);
                    note_congested(&mut self.congested, o);
                }
            }
        }
    }

    /// Move queued messages into the in-flight window while it has room; expired messages are
    /// dropped on the way ([MQTT-3.3.2-5]).
    fn fill_window(&mut self, sid: SessionId) {
        let now = self.now_ms;
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some(c) = session.conn.and_then(|id| self.conns.get_mut(&id)) else {
            return;
        };
        while session.delivery().inflight.len() < session.inflight_max {
            // (Checked first so that a session with nothing queued allocates nothing here.)
            if session.delivery().queued.is_empty() {
                break;
            }
            let Some(q) = session.delivery_mut().queued.pop_front() else {
                break;
            };
            if q.message.is_expired(now) {
                continue;
            }
            let out = if q.qos == QoS::AtMostOnce {
                out_for(c, &q.message, q.qos, None, q.retain, &q.sub_ids, now)
            } else {
                let pid = session.next_pid();
                let out = out_for(c, &q.message, q.qos, Some(pid), q.retain, &q.sub_ids, now);
                if out.len() <= c.max_packet_size as usize {
                    session.delivery_mut().inflight.push_back(Inflight {
                        pid,
                        state: if q.qos == QoS::ExactlyOnce {
                            OutgoingState::AwaitingPubRec
                        } else {
                            OutgoingState::AwaitingPubAck
                        },
                        message: q.message,
                        qos: q.qos,
                        retain: q.retain,
                        sub_ids: q.sub_ids,
                        shared: q.shared,
                    });
                }
                out
            };
            if out.len() > c.max_packet_size as usize {
                drop_message(&mut self.stats, session);
                continue;
            }
            push(
                &mut self.stats,
                c,
                out,
                self.config.max_outgoing_bytes,
                PushTo {
                    to_close: &mut self.to_close,
                    woken: &mut self.woken,
                },
            );
            self.stats.publish_sent = self.stats.publish_sent.saturating_add(1);
        }
        if session.delivery().queued.is_empty() {
            session.dropping = false;
        }
        if session.delivery().queued.len() <= self.config.max_queued_messages / 4
            && let Some(o) = &c.outbox
        {
            o.set_held(false);
        }
        session.release_idle_delivery();
    }

    fn publish_sys(&mut self, now_ms: u64) {
        let uptime = now_ms.saturating_sub(self.started_ms) / 1000;
        let s = self.stats.clone();
        let items: [(&str, String); 15] = [
            (
                "version",
                format!("wren-broker version {}", env!("CARGO_PKG_VERSION")),
            ),
            ("uptime", format!("{uptime} seconds")),
            ("clients/connected", self.connected.to_string()),
            ("clients/total", self.sessions.len().to_string()),
            ("clients/maximum", s.clients_maximum.to_string()),
            (
                "clients/disconnected",
                self.sessions
                    .len()
                    .saturating_sub(self.connected)
                    .to_string(),
            ),
            ("messages/received", s.messages_received.to_string()),
            ("messages/sent", s.messages_sent.to_string()),
            ("publish/messages/dropped", s.publish_dropped.to_string()),
            ("publish/messages/received", s.publish_received.to_string()),
            ("publish/messages/sent", s.publish_sent.to_string()),
            ("bytes/received", s.bytes_received.to_string()),
            ("bytes/sent", s.bytes_sent.to_string()),
            (
                "subscriptions/count",
                self.index
                    .len()
                    .saturating_add(self.shared.values().map(|g| g.members.len()).sum())
                    .to_string(),
            ),
            ("retained messages/count", self.retained.len().to_string()),
        ];
        for (name, value) in items {
            let topic = format!("$SYS/broker/{name}");
            self.publish(Message::new(
                &topic,
                value.as_bytes(),
                QoS::AtMostOnce,
                true,
            ));
        }
    }

    // ---------------------------------------------------------------------------------------
    // Output and closing
    // ---------------------------------------------------------------------------------------

    fn send(&mut self, conn: ConnId, out: Out) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if out.len() > c.max_packet_size as usize {
                // [MQTT-3.1.2-24]: never more than the client accepts; an acknowledgement this
                // large only happens with absurdly small limits, and is left out.
                log::debug!(
                    "Not sending {} bytes to {}: above its Maximum Packet Size.",
                    out.len(),
                    c.client_id()
                );
                return;
            }
            push(
                &mut self.stats,
                c,
                out,
                self.config.max_outgoing_bytes,
                PushTo {
                    to_close: &mut self.to_close,
                    woken: &mut self.woken,
                },
            );
        }
    }

    fn send_packet(&mut self, conn: ConnId, packet: &Packet<'_>) {
        if let Some(version) = self.conns.get(&conn).map(|c| c.version) {
            self.send(conn, Out::packet(packet, version));
        }
    }

    fn send_connack(&mut self, conn: ConnId, session_present: bool, code: ReasonCode) {
        let Some(version) = self.conns.get(&conn).map(|c| c.version) else {
            return;
        };
        // A 5.0 refusal uses 5.0 codes; map the 3.1.1 ones we use.
        let code = if version.is_v5() && code == ReasonCode::V3_UNACCEPTABLE_PROTOCOL_VERSION {
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
        } else {
            code
        };
        let connack = Packet::ConnAck(ConnAck {
            session_present,
            code,
            properties: NO_PROPERTIES,
        });
        self.send(conn, Out::packet(&connack, version));
    }

    fn process_closes(&mut self) {
        while let Some((conn, reason)) = self.to_close.pop() {
            self.close(conn, reason);
        }
    }

    /// Close a connection: log why, detach (or end) its session, publish (or delay) its will if
    /// the reason calls for it, and close its outbox (the writer flushes, then shuts the socket).
    fn close(&mut self, conn: ConnId, reason: CloseReason) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        if c.version.is_v5()
            && matches!(c.state, ConnState::Connected(_))
            && let Some((code, why)) = reason.v5_reason()
        {
            // The reason string is left out if it would make the packet larger than the
            // client's Maximum Packet Size ([MQTT-3.1.2-25]).
            let with_string = Disconnect {
                reason_code: code,
                properties: Properties {
                    reason_string: Some(why),
                    ..NO_PROPERTIES
                },
            };
            let mut out = Out::packet(&Packet::Disconnect(with_string), c.version);
            if out.len() > c.max_packet_size as usize {
                out = Out::packet(
                    &Packet::Disconnect(Disconnect::with_reason(code)),
                    c.version,
                );
            }
            c.outbox(&mut self.woken).push(out);
        }
        c.outbox(&mut self.woken).close();
        let id = c.client_id();
        match reason {
            CloseReason::Disconnected => log::info!("Client {id} disconnected."),
            CloseReason::DisconnectedWithWill => {
                log::info!("Client {id} disconnected (with will).")
            }
            CloseReason::ConnectionLost => log::info!("Client {id} closed its connection."),
            CloseReason::KeepAliveTimeout => {
                log::info!("Client {id} has exceeded timeout, disconnecting.")
            }
            CloseReason::ConnectTimeout => log::info!(
                "Client {id} from {} sent no CONNECT within {} s, disconnecting.",
                c.peer,
                self.config.connect_timeout
            ),
            CloseReason::Malformed => {
                log::info!("Client {id} disconnected due to malformed packet.")
            }
            CloseReason::ProtocolError => {
                log::info!("Client {id} disconnected due to protocol error.")
            }
            CloseReason::Oversize => log::info!("Client {id} disconnected due to oversize packet."),
            CloseReason::TakenOver => {
                log::info!("Client {id} already connected, closing old connection.")
            }
            CloseReason::SlowConsumer => log::warn!(
                "Client {id} disconnected: its outgoing queue is full (it does not read)."
            ),
            CloseReason::ConnectRefused => log::debug!("Client {id} refused."),
            CloseReason::Shutdown => log::debug!("Client {id} disconnected: shutting down."),
            other => {
                let why = other.v5_reason().map_or("", |(_, w)| w);
                log::info!("Client {id} disconnected: {why}.")
            }
        }
        let ConnState::Connected(client) = c.state else {
            return;
        };
        self.connected = self.connected.saturating_sub(1);
        let now = self.now_ms;
        if reason.publishes_will()
            && let Some(will) = client.will
            && !will.topic().starts_with('$')
        {
            if client.will_delay == 0 {
                self.route(will.restamped(now), None);
            } else {
                // 5.0 §3.1.3.2: published after the delay, or when the session ends if sooner.
                self.pending_wills.push(PendingWill {
                    client_id: Arc::clone(&client.client_id),
                    due_ms: now.saturating_add(u64::from(client.will_delay).saturating_mul(1000)),
                    message: will,
                });
            }
        }
        if let Some(s) = self.sessions.get_mut(client.session)
            && s.conn == Some(conn)
        {
            s.conn = None;
            if s.clean {
                self.end_session(client.session);
            } else if s.expiry_interval != u32::MAX {
                let at = now.saturating_add(u64::from(s.expiry_interval).saturating_mul(1000));
                s.expires_at = Some(at);
                self.expiring.insert((at, client.session));
            }
        }
    }

    /// End a session: its subscriptions leave the index and the shared groups, its delayed will
    /// is published now ([MQTT-3.1.3-9]: "or the Session ends, whichever happens first"), and
    /// the messages it held for shared subscriptions go to another member of their group.
    fn end_session(&mut self, sid: SessionId) {
        let Some(session) = self.sessions.remove(sid) else {
            return;
        };
        if let Some(at) = session.expires_at {
            self.expiring.remove(&(at, sid));
        }
        for (filter, _) in session.subscriptions.iter() {
            if filter.starts_with(wren_codec::topic::SHARE_PREFIX) {
                self.leave_shared(filter, sid);
            } else {
                self.index.unsubscribe(filter, sid);
            }
        }
        if let Some(pos) = self
            .pending_wills
            .iter()
            .position(|w| w.client_id == session.client_id)
        {
            let will = self.pending_wills.swap_remove(pos);
            self.route(will.message.restamped(self.now_ms), None);
        }
        // Fail-over of shared-subscription messages not yet acknowledged (5.0 §4.8.2: "If the
        // Client's Session terminates before the Client reconnects, the Server SHOULD send the
        // Application Message to another Client that is subscribed to the same Shared
        // Subscription"). A QoS 2 message whose PUBREC arrived was received: not re-sent.
        let unacked = session
            .delivery()
            .inflight
            .iter()
            .filter(|i| i.state != OutgoingState::AwaitingPubComp)
            .filter_map(|i| Some((Arc::clone(&i.message), i.shared.clone()?)))
            .chain(
                session
                    .delivery()
                    .queued
                    .iter()
                    .filter_map(|q| Some((Arc::clone(&q.message), q.shared.clone()?))),
            )
            .collect::<Vec<_>>();
        let mut ids = Vec::new();
        for (message, key) in unacked {
            let Some(group) = self.shared.get_mut(&key) else {
                continue;
            };
            let Some(i) = pick_member(group, &self.sessions) else {
                continue;
            };
            group.next = i.saturating_add(1);
            let Some(m) = group.members.get(i).copied() else {
                continue;
            };
            ids.clear();
            ids.extend(m.id.map(NonZeroU32::get));
            let retain = message.retain() && m.retain_as_published;
            self.deliver(
                m.session,
                &message,
                m.qos.min(message.qos()),
                retain,
                &ids,
                Some(&key),
            );
        }
    }
}

/// The member of a shared group whose turn it is: the next connected member in round-robin
/// order, or (none connected) the next member, whose session queues the message.
fn pick_member(group: &SharedGroup, sessions: &SessionStore) -> Option<usize> {
    let n = group.members.len();
    if n == 0 {
        return None;
    }
    let start = group.next % n;
    let order = (0..n).map(|k| (start + k) % n);
    order
        .clone()
        .find(|&i| {
            group
                .members
                .get(i)
                .and_then(|m| sessions.get(m.session))
                .is_some_and(|s| s.conn.is_some())
        })
        .or(Some(start))
}

/// The output item delivering `message` on connection `c`: 5.0 connections get the message's
/// Subscription Identifiers, remaining expiry and an outbound Topic Alias (if assigned).
#[inline]
fn out_for(
    c: &mut Conn,
    message: &Message,
    qos: QoS,
    pid: Option<PacketId>,
    retain: bool,
    sub_ids: &[u32],
    now_ms: u64,
) -> Out {
    if !c.version.is_v5() {
        return message.delivery(c.version, qos, pid, false, retain);
    }
    let topic_alias = c.out_alias(message.topic());
    let out = message.delivery_with(
        c.version,
        qos,
        pid,
        false,
        retain,
        &Delivery {
            now_ms,
            subscription_ids: sub_ids,
            topic_alias,
        },
    );
    if out.len() > c.max_packet_size as usize
        && let Some((_, true)) = topic_alias
        && let Some(a) = c.out_aliases.as_mut()
    {
        // Not sent after all: the client never learns this alias.
        a.by_topic.remove(message.topic());
    }
    out
}

/// Remember a congested outbox once per event (see [`Broker::take_congested`]).
fn note_congested(congested: &mut Vec<Outbox>, outbox: &Outbox) {
    if !congested.iter().any(|o| o.same(outbox)) {
        congested.push(outbox.clone());
    }
}

/// Count and log (once per episode) a dropped message.
fn drop_message(stats: &mut Stats, session: &mut Session) {
    stats.publish_dropped = stats.publish_dropped.saturating_add(1);
    if !session.dropping {
        session.dropping = true;
        log::warn!(
            "Outgoing messages are being dropped for client {}.",
            session.client_id
        );
    }
}

/// Where [`push`] reports: connections to close, hibernating connections woken.
struct PushTo<'a> {
    to_close: &'a mut Vec<(ConnId, CloseReason)>,
    woken: &'a mut Vec<(ConnId, Outbox)>,
}

/// Queue `out` on a connection, counting it; a queue past its hard limit closes the connection.
fn push(stats: &mut Stats, c: &mut Conn, out: Out, max_outgoing_bytes: usize, to: PushTo<'_>) {
    stats.messages_sent = stats.messages_sent.saturating_add(1);
    stats.bytes_sent = stats.bytes_sent.saturating_add(out.len() as u64);
    let queued = c.outbox(to.woken).push(out);
    if queued > max_outgoing_bytes.saturating_mul(8) {
        to.to_close.push((c.id, CloseReason::SlowConsumer));
    }
}

#[cfg(test)]
#[path = "broker_v5_tests.rs"]
mod v5_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use wren_codec::{
        DecodeOptions, Status, Subscription, SubscriptionOptions, TopicFilter, TopicName, Will,
        decode,
    };

    /// An owned summary of a packet the broker sent.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum P {
        ConnAck(bool, u8),
        Publish {
            topic: String,
            payload: Vec<u8>,
            qos: u8,
            pid: u16,
            dup: bool,
            retain: bool,
        },
        PubAck(u16),
        PubRec(u16),
        PubRel(u16),
        PubComp(u16),
        SubAck(u16, Vec<u8>),
        UnsubAck(u16),
        PingResp,
        Disconnect(u8),
    }

    fn drain(o: &Outbox) -> Vec<P> {
        let mut buf = Vec::new();
        o.drain_into(&mut buf);
        let mut rest = &buf[..];
        let mut out = Vec::new();
        while !rest.is_empty() {
            let opts = DecodeOptions::new(ProtocolVersion::V311);
            let Ok(Status::Complete(d)) = decode(rest, opts) else {
                panic!("undecodable output {rest:?}")
            };
            out.push(match d.packet {
                Packet::ConnAck(c) => P::ConnAck(c.session_present, c.code.0),
                Packet::Publish(p) => P::Publish {
                    topic: p.topic.as_str().into(),
                    payload: p.payload.to_vec(),
                    qos: p.qos_pid.qos().bits(),
                    pid: p.qos_pid.packet_id().map_or(0, |p| p.get()),
                    dup: p.dup,
                    retain: p.retain,
                },
                Packet::PubAck(a) => P::PubAck(a.packet_id.get()),
                Packet::PubRec(a) => P::PubRec(a.packet_id.get()),
                Packet::PubRel(a) => P::PubRel(a.packet_id.get()),
                Packet::PubComp(a) => P::PubComp(a.packet_id.get()),
                Packet::SubAck(s) => P::SubAck(
                    s.packet_id.get(),
                    s.reason_codes.iter().map(|c| c.0).collect(),
                ),
                Packet::UnsubAck(s) => P::UnsubAck(s.packet_id.get()),
                Packet::PingResp => P::PingResp,
                Packet::Disconnect(d) => P::Disconnect(d.reason_code.0),
                other => panic!("unexpected {other:?}"),
            });
            rest = &rest[d.consumed..];
        }
        out
    }

    fn publishes(o: &Outbox) -> Vec<(String, Vec<u8>, u8)> {
        drain(o)
            .into_iter()
            .filter_map(|p| match p {
                P::Publish {
                    topic,
                    payload,
                    qos,
                    ..
                } => Some((topic, payload, qos)),
                _ => None,
            })
            .collect()
    }

    pub(super) fn pid(v: u16) -> PacketId {
        PacketId::new(v).unwrap()
    }

    fn peer() -> SocketAddr {
        "127.0.0.1:40000".parse().unwrap()
    }

    /// The test harness shared with the 5.0 tests (`broker_v5_tests.rs`): a core and its clock.
    pub(super) struct T {
        pub(super) b: Broker,
        pub(super) now: u64,
    }

    impl T {
        pub(super) fn new() -> T {
            Self::with(Config::for_tests())
        }
        pub(super) fn with(config: Config) -> T {
            T {
                b: Broker::new(
                    Config {
                        sys_interval: 0,
                        ..config
                    },
                    0,
                ),
                now: 0,
            }
        }
        pub(super) fn open(&mut self) -> (ConnId, Outbox) {
            self.b.connection_opened(peer(), 1883, self.now).unwrap()
        }
        pub(super) fn send(&mut self, conn: ConnId, p: Packet<'_>) {
            self.b.packet_received(conn, &p, 10, self.now);
        }
        fn connect_with(
            &mut self,
            id: &str,
            clean: bool,
            keep_alive: u16,
            will: Option<Will<'_>>,
        ) -> (ConnId, Outbox, Vec<P>) {
            let (c, o) = self.open();
            self.send(
                c,
                Packet::Connect(Connect {
                    protocol: ProtocolVersion::V311,
                    clean_start: clean,
                    keep_alive,
                    client_id: id,
                    will,
                    username: None,
                    password: None,
                    properties: NO_PROPERTIES,
                }),
            );
            let out = drain(&o);
            (c, o, out)
        }
        fn connect(&mut self, id: &str, clean: bool) -> (ConnId, Outbox) {
            let (c, o, out) = self.connect_with(id, clean, 60, None);
            assert!(matches!(out[0], P::ConnAck(_, 0)), "{out:?}");
            (c, o)
        }
        fn subscribe(&mut self, conn: ConnId, o: &Outbox, filter: &str, qos: QoS) -> Vec<P> {
            let subs = [Subscription {
                filter: TopicFilter::new(filter).unwrap(),
                options: SubscriptionOptions::qos(qos),
            }];
            self.send(
                conn,
                Packet::Subscribe(Subscribe {
                    packet_id: pid(1),
                    properties: NO_PROPERTIES,
                    subscriptions: List::new(&subs),
                }),
            );
            drain(o)
        }
        fn publish(
            &mut self,
            conn: ConnId,
            topic: &str,
            payload: &[u8],
            qos_pid: QosPid,
            retain: bool,
        ) {
            self.send(
                conn,
                Packet::Publish(Publish {
                    dup: false,
                    qos_pid,
                    retain,
                    topic: TopicName::new(topic).unwrap(),
                    properties: NO_PROPERTIES,
                    payload,
                }),
            );
        }
    }

    #[test]
    fn hibernating_connection_gives_up_its_outbox_and_is_woken_with_a_new_one() {
        let mut t = T::new();
        let (s, so) = t.connect("sub", true);
        t.subscribe(s, &so, "h/#", QoS::AtLeastOnce);
        let (p, po) = t.connect("pub", true);
        // Refused while something is queued; granted once the writer has taken it.
        t.publish(p, "h/1", b"one", QosPid::AtMostOnce, false);
        assert!(!t.b.hibernate(s), "a message is waiting");
        assert_eq!(publishes(&so), [("h/1".into(), b"one".to_vec(), 0)]);
        assert!(t.b.hibernate(s));
        assert!(!t.b.hibernate(s), "already hibernating");
        assert!(!t.b.hibernate(ConnId(999)), "unknown connection");
        assert!(!t.b.has_woken());
        // A message for it: a new outbox with the message, reported once.
        t.publish(p, "h/2", b"two", QosPid::AtLeastOnce(pid(5)), false);
        assert_eq!(drain(&po), [P::PubAck(5)]);
        assert_eq!(so.queued_bytes(), 0, "the old outbox gets nothing");
        let woken = t.b.take_woken();
        assert_eq!(woken.len(), 1);
        let (id, fresh) = &woken[0];
        assert_eq!(*id, s);
        assert!(matches!(
            &drain(fresh)[..],
            [P::Publish { topic, qos: 1, .. }] if topic == "h/2"
        ));
        assert!(t.b.take_woken().is_empty());
        // Woken by its socket instead: the core hands out the outbox it queues on from then on.
        assert!(t.b.hibernate(s));
        let back = t.b.wake(s).unwrap();
        t.publish(p, "h/3", b"three", QosPid::AtMostOnce, false);
        assert_eq!(publishes(&back), [("h/3".into(), b"three".to_vec(), 0)]);
        assert!(!t.b.has_woken(), "it was not hibernating any more");
        assert!(t.b.wake(ConnId(999)).is_none());
    }

    #[test]
    fn hibernating_connection_closed_by_the_core_is_woken_closed() {
        let mut t = T::new();
        let will = Will {
            topic: TopicName::new("w").unwrap(),
            payload: b"gone",
            qos: QoS::AtMostOnce,
            retain: false,
            properties: NO_PROPERTIES,
        };
        let (w, _wo, _) = t.connect_with("sleepy", true, 1, Some(will));
        let (s, so) = t.connect("watch", true);
        t.subscribe(s, &so, "w", QoS::AtMostOnce);
        assert!(t.b.hibernate(w));
        // Keep-alive 1 s: closed after 1.5 s without a packet, will published.
        t.now = 1600;
        t.b.tick(t.now);
        assert_eq!(publishes(&so), [("w".into(), b"gone".to_vec(), 0)]);
        let woken = t.b.take_woken();
        assert_eq!(woken.len(), 1);
        assert_eq!(woken[0].0, w);
        assert!(
            woken[0].1.is_closed(),
            "the shell flushes and shuts the socket"
        );
        // Takeover of a hibernating connection closes it the same way.
        let (old, _oo) = t.connect("twin", false);
        assert!(t.b.hibernate(old));
        let (_new, _no) = t.connect("twin", false);
        let woken = t.b.take_woken();
        assert!(woken.iter().any(|(id, o)| *id == old && o.is_closed()));
    }

    #[test]
    fn connect_and_session_present() {
        let mut t = T::new();
        let (c, _o, out) = t.connect_with("a", false, 60, None);
        assert_eq!(out, [P::ConnAck(false, 0)]);
        assert_eq!(t.b.connected_clients(), 1);
        t.send(c, Packet::Disconnect(Disconnect::NORMAL));
        assert_eq!(t.b.connected_clients(), 0);
        assert_eq!(t.b.sessions().len(), 1, "persistent session kept");
        let (_, _, out) = t.connect_with("a", false, 60, None);
        assert_eq!(out, [P::ConnAck(true, 0)]);
        let (_, _, out) = t.connect_with("b", true, 60, None);
        assert_eq!(out, [P::ConnAck(false, 0)]);
    }

    #[test]
    fn clean_session_discards_state() {
        let mut t = T::new();
        let (c, o) = t.connect("a", false);
        t.subscribe(c, &o, "x", QoS::AtLeastOnce);
        t.send(c, Packet::Disconnect(Disconnect::NORMAL));
        let (c, o, out) = t.connect_with("a", true, 60, None);
        assert_eq!(out, [P::ConnAck(false, 0)], "clean connect: no session");
        assert!(t.b.subscriptions().is_empty());
        t.send(c, Packet::Disconnect(Disconnect::NORMAL));
        assert!(
            t.b.sessions().is_empty(),
            "clean session ends with the connection"
        );
        assert!(o.is_closed());
    }

    #[test]
    fn client_id_rules() {
        let mut t = T::new();
        let (_, o, out) = t.connect_with("", false, 60, None);
        assert_eq!(out, [P::ConnAck(false, 2)]);
        assert!(o.is_closed());
        let (_, o, out) = t.connect_with("", true, 60, None);
        assert_eq!(out, [P::ConnAck(false, 0)]);
        assert!(!o.is_closed());
        let (_, id) =
            t.b.sessions()
                .iter()
                .next()
                .map(|(i, s)| (*i, s.client_id.clone()))
                .unwrap();
        assert!(id.starts_with("auto-") && id.len() == 41, "{id}");
        // 3.1: at most 23 bytes.
        let (c, o) = t.open();
        t.send(
            c,
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V31,
                clean_start: true,
                keep_alive: 0,
                client_id: "012345678901234567890123",
                will: None,
                username: None,
                password: None,
                properties: NO_PROPERTIES,
            }),
        );
        assert_eq!(drain(&o), [P::ConnAck(false, 2)]);
    }

    #[test]
    fn keepalive_above_maximum_is_refused() {
        let mut t = T::with(Config {
            max_keepalive: 100,
            ..Config::for_tests()
        });
        let (_, o, out) = t.connect_with("a", true, 101, None);
        assert_eq!(out, [P::ConnAck(false, 2)]);
        assert!(o.is_closed());
    }

    #[test]
    fn qos0_routing_clears_retain_and_skips_dollar_topics() {
        let mut t = T::new();
        let (s, so) = t.connect("sub", true);
        assert_eq!(
            t.subscribe(s, &so, "a/+", QoS::AtMostOnce),
            [P::SubAck(1, vec![0])]
        );
        t.subscribe(s, &so, "#", QoS::AtMostOnce);
        let (p, _po) = t.connect("pub", true);
        t.publish(p, "a/b", b"hi", QosPid::AtMostOnce, true);
        assert_eq!(
            drain(&so),
            [P::Publish {
                topic: "a/b".into(),
                payload: b"hi".to_vec(),
                qos: 0,
                pid: 0,
                dup: false,
                retain: false
            }],
            "delivered once, RETAIN cleared on live forwarding"
        );
        t.publish(p, "$SYS/fake", b"x", QosPid::AtMostOnce, true);
        t.subscribe(s, &so, "$SYS/#", QoS::AtMostOnce);
        assert!(publishes(&so).is_empty(), "$ publish dropped, not retained");
        assert!(t.b.retained().get("$SYS/fake").is_none());
    }

    #[test]
    fn overlapping_subscriptions_deliver_once_at_highest_qos() {
        let mut t = T::new();
        let (s, so) = t.connect("sub", true);
        t.subscribe(s, &so, "a/#", QoS::AtMostOnce);
        t.subscribe(s, &so, "a/b", QoS::ExactlyOnce);
        let (p, _) = t.connect("pub", true);
        t.publish(p, "a/b", b"1", QosPid::AtLeastOnce(pid(5)), false);
        assert_eq!(
            publishes(&so),
            [("a/b".into(), b"1".to_vec(), 1)],
            "min(1, 2)"
        );
    }

    #[test]
    fn qos1_and_qos2_flows_and_exactly_once() {
        let mut t = T::new();
        let (s, so) = t.connect("sub", true);
        t.subscribe(s, &so, "t", QoS::ExactlyOnce);
        let (p, po) = t.connect("pub", true);
        t.publish(p, "t", b"q1", QosPid::AtLeastOnce(pid(1)), false);
        assert_eq!(drain(&po), [P::PubAck(1)]);
        t.publish(p, "t", b"q2", QosPid::ExactlyOnce(pid(2)), false);
        t.publish(p, "t", b"q2", QosPid::ExactlyOnce(pid(2)), false);
        assert_eq!(drain(&po), [P::PubRec(2), P::PubRec(2)]);
        let got = drain(&so);
        assert_eq!(
            got.len(),
            2,
            "duplicate QoS 2 publish not delivered twice: {got:?}"
        );
        t.send(p, Packet::PubRel(Ack::new(pid(2))));
        assert_eq!(drain(&po), [P::PubComp(2)]);
        // After the release the id is free again: a new message with it is delivered.
        t.publish(p, "t", b"again", QosPid::ExactlyOnce(pid(2)), false);
        assert_eq!(publishes(&so).len(), 1);
        // Outgoing QoS 2 to the subscriber: PUBREC → PUBREL, PUBCOMP frees the slot.
        let sess = t.b.sessions().find("sub").unwrap();
        assert_eq!(
            t.b.sessions().get(sess).unwrap().delivery().inflight.len(),
            3
        );
        let P::Publish {
            pid: p2, qos: 2, ..
        } = got[1].clone()
        else {
            panic!("{got:?}")
        };
        t.send(s, Packet::PubRec(Ack::new(pid(p2))));
        assert_eq!(drain(&so), [P::PubRel(p2)]);
        t.send(s, Packet::PubComp(Ack::new(pid(p2))));
        assert_eq!(
            t.b.sessions().get(sess).unwrap().delivery().inflight.len(),
            2
        );
        let P::Publish {
            pid: p1, qos: 1, ..
        } = got[0].clone()
        else {
            panic!()
        };
        t.send(s, Packet::PubAck(Ack::new(pid(p1))));
        assert_eq!(
            t.b.sessions().get(sess).unwrap().delivery().inflight.len(),
            1
        );
    }

    #[test]
    fn inflight_window_queues_the_rest() {
        let mut t = T::with(Config {
            max_inflight_messages: 2,
            ..Config::for_tests()
        });
        let (s, so) = t.connect("sub", true);
        t.subscribe(s, &so, "t", QoS::AtLeastOnce);
        let (p, _) = t.connect("pub", true);
        for i in 1..=5u8 {
            t.publish(p, "t", &[i], QosPid::AtLeastOnce(pid(u16::from(i))), false);
        }
        let first = drain(&so);
        assert_eq!(first.len(), 2, "window of 2: {first:?}");
        let P::Publish { pid: id, .. } = first[0] else {
            panic!()
        };
        t.send(s, Packet::PubAck(Ack::new(pid(id))));
        assert_eq!(publishes(&so), [("t".into(), vec![3], 1)]);
    }

    #[test]
    fn offline_queue_and_redelivery_with_dup_and_pubrel() {
        let mut t = T::new();
        let (s, so) = t.connect("sub", false);
        t.subscribe(s, &so, "t/#", QoS::ExactlyOnce);
        let (p, _) = t.connect("pub", true);
        t.publish(p, "t/1", b"a", QosPid::AtLeastOnce(pid(1)), false);
        t.publish(p, "t/2", b"b", QosPid::ExactlyOnce(pid(2)), false);
        t.publish(p, "t/3", b"c", QosPid::ExactlyOnce(pid(3)), false);
        let sent = drain(&so);
        assert_eq!(sent.len(), 3);
        let P::Publish { pid: rec_pid, .. } = sent[2] else {
            panic!()
        };
        t.send(s, Packet::PubRec(Ack::new(pid(rec_pid))));
        assert_eq!(drain(&so), [P::PubRel(rec_pid)]);
        // The subscriber drops without acknowledging; meanwhile more arrives, QoS 0 is not queued.
        t.b.connection_lost(s, t.now);
        t.publish(p, "t/4", b"d", QosPid::AtLeastOnce(pid(4)), false);
        t.publish(p, "t/5", b"e", QosPid::AtMostOnce, false);
        let (_, so, out) = t.connect_with("sub", false, 60, None);
        assert_eq!(out[0], P::ConnAck(true, 0));
        let rest = &out[1..];
        assert!(
            matches!(&rest[0], P::Publish { topic, dup: true, qos: 1, .. } if topic == "t/1"),
            "{rest:?}"
        );
        assert!(matches!(&rest[1], P::Publish { topic, dup: true, qos: 2, .. } if topic == "t/2"));
        assert_eq!(rest[2], P::PubRel(rec_pid));
        assert!(matches!(&rest[3], P::Publish { topic, dup: false, qos: 1, .. } if topic == "t/4"));
        assert_eq!(rest.len(), 4, "QoS 0 not queued offline: {rest:?}");
        assert!(drain(&so).is_empty());
    }

    #[test]
    fn retained_messages() {
        let mut t = T::new();
        let (p, _) = t.connect("pub", true);
        t.publish(p, "r/a", b"1", QosPid::AtLeastOnce(pid(1)), true);
        t.publish(p, "r/b", b"2", QosPid::AtMostOnce, true);
        t.publish(p, "r/b", b"3", QosPid::AtMostOnce, true);
        let (s, so) = t.connect("sub", true);
        let out = t.subscribe(s, &so, "r/+", QoS::AtLeastOnce);
        assert_eq!(out[0], P::SubAck(1, vec![1]));
        let mut got: Vec<_> = out[1..]
            .iter()
            .map(|p| match p {
                P::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                    ..
                } => (topic.clone(), payload.clone(), *qos, *retain),
                other => panic!("{other:?}"),
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            [
                ("r/a".into(), b"1".to_vec(), 1, true),
                ("r/b".into(), b"3".to_vec(), 0, true)
            ]
        );
        t.publish(p, "r/a", b"", QosPid::AtMostOnce, true);
        assert_eq!(t.b.retained().len(), 1, "empty payload deletes");
    }

    #[test]
    fn wills() {
        let mut t = T::new();
        let (s, so) = t.connect("watcher", true);
        t.subscribe(s, &so, "will/#", QoS::AtMostOnce);
        let will = |topic| Will {
            topic: TopicName::new(topic).unwrap(),
            payload: b"gone",
            qos: QoS::AtMostOnce,
            retain: false,
            properties: NO_PROPERTIES,
        };
        let (c, ..) = t.connect_with("a", true, 60, Some(will("will/a")));
        t.b.connection_lost(c, t.now);
        assert_eq!(publishes(&so), [("will/a".into(), b"gone".to_vec(), 0)]);
        let (c, ..) = t.connect_with("b", true, 60, Some(will("will/b")));
        t.send(c, Packet::Disconnect(Disconnect::NORMAL));
        assert!(publishes(&so).is_empty(), "no will after DISCONNECT");
        let (c, ..) = t.connect_with("c", true, 60, Some(will("will/c")));
        t.send(c, Packet::PingResp);
        assert_eq!(
            publishes(&so),
            [("will/c".into(), b"gone".to_vec(), 0)],
            "protocol error"
        );
        t.connect_with("d", true, 60, Some(will("will/d")));
        t.connect_with("d", true, 60, None);
        assert_eq!(
            publishes(&so),
            [("will/d".into(), b"gone".to_vec(), 0)],
            "takeover"
        );
        // Keep-alive: 2 s → closed after 3 s of silence, not before.
        let (c, co, _) = t.connect_with("e", true, 2, Some(will("will/e")));
        t.now = 2900;
        t.b.tick(t.now);
        assert!(!co.is_closed());
        t.send(s, Packet::PingReq);
        t.now = 3100;
        t.b.tick(t.now);
        assert!(co.is_closed());
        assert_eq!(publishes(&so), [("will/e".into(), b"gone".to_vec(), 0)]);
        let _ = c;
    }

    #[test]
    fn takeover_closes_old_connection_and_keeps_session() {
        let mut t = T::new();
        let (c1, o1) = t.connect("x", false);
        t.subscribe(c1, &o1, "t", QoS::AtLeastOnce);
        let (_, o2, out) = t.connect_with("x", false, 60, None);
        assert!(o1.is_closed());
        assert!(!o2.is_closed());
        assert_eq!(out, [P::ConnAck(true, 0)]);
        assert_eq!(t.b.connected_clients(), 1);
        // The old connection's late EOF changes nothing.
        t.b.connection_lost(c1, t.now);
        assert_eq!(t.b.connected_clients(), 1);
        assert_eq!(t.b.subscriptions().len(), 1);
    }

    #[test]
    fn protocol_violations_close_the_connection() {
        let mut t = T::new();
        // Not CONNECT first.
        let (c, o) = t.open();
        t.send(c, Packet::PingReq);
        assert!(o.is_closed());
        // Second CONNECT.
        let (c, o) = t.connect("a", true);
        t.send(
            c,
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V311,
                clean_start: true,
                keep_alive: 0,
                client_id: "a",
                will: None,
                username: None,
                password: None,
                properties: NO_PROPERTIES,
            }),
        );
        assert!(o.is_closed());
        // Server-only packets.
        for p in [
            Packet::ConnAck(ConnAck {
                session_present: false,
                code: ReasonCode::SUCCESS,
                properties: NO_PROPERTIES,
            }),
            Packet::PingResp,
            Packet::SubAck(SubAck {
                packet_id: pid(1),
                properties: NO_PROPERTIES,
                reason_codes: List::new(&[ReasonCode::SUCCESS]),
            }),
        ] {
            let (c, o) = t.connect("b", true);
            t.send(c, p);
            assert!(o.is_closed(), "{p:?}");
        }
        // Decode errors.
        let (c, o) = t.connect("c", true);
        t.b.decode_failed(c, DecodeError::InvalidUtf8, t.now);
        assert!(o.is_closed());
        assert_eq!(t.b.connected_clients(), 0);
        let (c, o) = t.open();
        t.b.decode_failed(c, DecodeError::UnsupportedProtocolLevel(6), t.now);
        assert_eq!(drain(&o), [P::ConnAck(false, 1)]);
        assert!(o.is_closed());
    }

    #[test]
    fn connect_timeout() {
        let mut t = T::new();
        let (_, o) = t.open();
        t.now = 9_999;
        t.b.tick(t.now);
        assert!(!o.is_closed());
        t.now = 10_000;
        t.b.tick(t.now);
        assert!(o.is_closed());
    }

    #[test]
    fn queue_limit_drop_policy() {
        let mut t = T::with(Config {
            max_queued_messages: 2,
            queue_qos0_messages: true,
            ..Config::for_tests()
        });
        let (s, so) = t.connect("sub", false);
        t.subscribe(s, &so, "t", QoS::AtLeastOnce);
        t.b.connection_lost(s, t.now);
        let (p, _) = t.connect("pub", true);
        t.publish(p, "t", b"q0", QosPid::AtMostOnce, false);
        t.publish(p, "t", b"a", QosPid::AtLeastOnce(pid(1)), false);
        t.publish(p, "t", b"b", QosPid::AtLeastOnce(pid(2)), false); // evicts q0
        t.publish(p, "t", b"c", QosPid::AtLeastOnce(pid(3)), false); // dropped
        t.publish(p, "t", b"z", QosPid::AtMostOnce, false); // dropped
        assert_eq!(t.b.stats().publish_dropped, 3);
        let (_, _, out) = t.connect_with("sub", false, 60, None);
        let payloads: Vec<_> = out
            .iter()
            .filter_map(|p| match p {
                P::Publish { payload, .. } => Some(payload.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(payloads, [b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn slow_consumer_holds_publishers_back_then_drops_qos0_then_is_closed() {
        let mut t = T::with(Config {
            max_outgoing_bytes: 100,
            ..Config::for_tests()
        });
        let (s, so) = t.connect("slow", true);
        t.subscribe(s, &so, "t", QoS::AtMostOnce);
        let (p, _) = t.connect("pub", true);
        drop(t.b.take_congested());
        // 45-byte PUBLISHes: three fit under the limit, two more up to twice it (the publisher
        // is told to wait), the rest are dropped.
        for _ in 0..10 {
            t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
        }
        let congested = t.b.take_congested();
        assert!(
            congested.len() == 1 && congested[0].same(&so),
            "{congested:?}"
        );
        assert!(so.is_congested(100));
        assert_eq!(t.b.stats().publish_dropped, 5, "{:?}", t.b.stats());
        assert_eq!(so.queued_bytes(), 225);
        assert_eq!(publishes(&so).len(), 5);
        assert!(!so.is_congested(100), "drained");
        // A connection a publisher gave up waiting for (stalled) holds no one back, and loses
        // what goes past the limit, until it drains.
        for _ in 0..3 {
            t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
        }
        so.mark_stalled();
        t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
        assert!(t.b.take_congested().is_empty());
        assert_eq!(t.b.stats().publish_dropped, 6);
        assert_eq!(publishes(&so).len(), 3);
        // A first stall ends after one drain (see `Outbox::mark_stalled`): it paces again.
        assert!(!so.is_stalled());
        assert!(!so.is_closed());
        // Acknowledgements are never dropped; past 8× the limit the client is closed.
        for i in 1..=300u16 {
            t.publish(s, "x", b"", QosPid::AtLeastOnce(pid(i)), false);
        }
        assert!(so.is_closed());
    }

    #[test]
    fn without_backpressure_a_congested_subscriber_is_dropped_to_at_once() {
        let mut t = T::with(Config {
            max_outgoing_bytes: 100,
            max_inflight_messages: 1,
            max_queued_messages: 2,
            max_publisher_hold_ms: 0,
            ..Config::for_tests()
        });
        let (s, so) = t.connect("slow", true);
        t.subscribe(s, &so, "t", QoS::AtLeastOnce);
        let (p, _) = t.connect("pub", true);
        drop(t.b.take_congested());
        for _ in 0..10 {
            t.publish(p, "t", &[0u8; 40], QosPid::AtMostOnce, false);
        }
        for i in 1..=5u16 {
            t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(i)), false);
        }
        assert!(t.b.take_congested().is_empty(), "no one held back");
        // QoS 0: three under the limit; QoS 1: one in flight, two queued.
        assert_eq!(t.b.stats().publish_dropped, 7 + 2, "{:?}", t.b.stats());
    }

    #[test]
    fn a_long_session_queue_holds_publishers_back_until_it_drains() {
        let mut t = T::with(Config {
            max_inflight_messages: 2,
            max_queued_messages: 8,
            ..Config::for_tests()
        });
        let (s, so) = t.connect("sub", false);
        t.subscribe(s, &so, "t", QoS::AtLeastOnce);
        let (p, _) = t.connect("pub", true);
        drop(t.b.take_congested());
        // 2 in flight, then the queue: held back once it holds half of its 8.
        for i in 1..=5u16 {
            t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(i)), false);
        }
        assert!(t.b.take_congested().is_empty(), "3 queued");
        t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(6)), false);
        let congested = t.b.take_congested();
        assert!(
            congested.len() == 1 && congested[0].same(&so),
            "{congested:?}"
        );
        assert!(so.is_congested(usize::MAX));
        // Acknowledged until 2 (a quarter) are queued: the publisher goes on.
        let mut sent = drain(&so);
        while so.is_congested(usize::MAX) {
            let Some(P::Publish { pid: id, .. }) = sent.pop() else {
                panic!("no more in flight");
            };
            t.send(s, Packet::PubAck(Ack::new(pid(id))));
            sent.extend(drain(&so));
        }
        let sess = t.b.sessions().find("sub").unwrap();
        assert_eq!(t.b.sessions().get(sess).unwrap().delivery().queued.len(), 2);
        assert_eq!(t.b.stats().publish_dropped, 0);
        // An offline client holds no one back: its queue is simply bounded.
        t.b.connection_lost(s, t.now);
        for i in 7..=20u16 {
            t.publish(p, "t", b"m", QosPid::AtLeastOnce(pid(i)), false);
        }
        assert!(t.b.take_congested().is_empty());
        // 6 more fill its queue of 8; the other 8 are dropped.
        assert_eq!(t.b.stats().publish_dropped, 8, "{:?}", t.b.stats());
    }

    #[test]
    fn sys_topics_are_published_retained() {
        let mut t = T::with(Config::for_tests());
        t.b.config.sys_interval = 10;
        let (s, so) = t.connect("sub", true);
        t.subscribe(s, &so, "$SYS/broker/clients/connected", QoS::AtMostOnce);
        t.b.tick(0);
        assert_eq!(
            publishes(&so),
            [("$SYS/broker/clients/connected".into(), b"1".to_vec(), 0)]
        );
        t.b.tick(5_000);
        assert!(publishes(&so).is_empty(), "interval not reached");
        t.b.tick(10_000);
        assert_eq!(publishes(&so).len(), 1);
        assert_eq!(
            t.b.retained().get("$SYS/broker/uptime").unwrap().payload(),
            b"10 seconds"
        );
        assert!(
            t.b.retained()
                .get("$SYS/broker/retained messages/count")
                .is_some()
        );
    }

    /// Captures log lines (the logger is process-wide; tests filter by their own client ids).
    struct Capture(std::sync::Mutex<Vec<String>>);
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            self.0.lock().unwrap().push(record.args().to_string());
        }
        fn flush(&self) {}
    }
    static CAPTURE: Capture = Capture(std::sync::Mutex::new(Vec::new()));

    fn logged(needle: &str) -> Vec<String> {
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(log::LevelFilter::Trace);
        CAPTURE
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .cloned()
            .collect()
    }

    #[test]
    fn mosquitto_style_log_lines() {
        logged("");
        let mut t = T::with(Config {
            max_queued_messages: 1,
            ..Config::for_tests()
        });
        let (c, _) = t.connect("log-sensor-1", true);
        t.send(c, Packet::Disconnect(Disconnect::NORMAL));
        let (_, _, _) = t.connect_with("log-sleepy", true, 1, None);
        t.now = 2000;
        t.b.tick(t.now);
        let (c, _) = t.connect("log-malformed", true);
        t.b.decode_failed(c, DecodeError::InvalidUtf8, t.now);
        let (c, _) = t.connect("log-violator", true);
        t.send(c, Packet::PingResp);
        let (c, _) = t.connect("log-big", true);
        t.b.decode_failed(c, DecodeError::PacketTooLarge { size: 10, max: 5 }, t.now);
        let (c, o) = t.connect("log-dropper", false);
        t.subscribe(c, &o, "t", QoS::AtLeastOnce);
        t.b.connection_lost(c, t.now);
        let (p, _) = t.connect("log-pub", true);
        for i in 1..=3 {
            t.publish(p, "t", b"x", QosPid::AtLeastOnce(pid(i)), false);
        }
        assert_eq!(
            logged("log-sensor-1"),
            [
                "New client connected from 127.0.0.1:40000 as log-sensor-1 (p2, c1, k60).",
                "Client log-sensor-1 disconnected."
            ]
        );
        assert!(logged("New connection from 127.0.0.1:40000 on port 1883.").len() >= 7);
        assert_eq!(
            logged("Client log-sleepy has"),
            ["Client log-sleepy has exceeded timeout, disconnecting."]
        );
        assert_eq!(
            logged("Client log-malformed"),
            ["Client log-malformed disconnected due to malformed packet."]
        );
        assert_eq!(
            logged("Client log-violator d"),
            ["Client log-violator disconnected due to protocol error."]
        );
        assert_eq!(
            logged("Client log-big"),
            ["Client log-big disconnected due to oversize packet."]
        );
        assert_eq!(
            logged("dropped for client log-dropper"),
            ["Outgoing messages are being dropped for client log-dropper."],
            "logged once per episode"
        );
        assert_eq!(
            logged("Client log-dropper closed"),
            ["Client log-dropper closed its connection."]
        );
    }

    #[test]
    fn exactly_once_survives_reconnect() {
        let mut t = T::new();
        let (s, so) = t.connect("sub", true);
        t.subscribe(s, &so, "x", QoS::ExactlyOnce);
        let (p, po) = t.connect("pub", false);
        t.publish(p, "x", b"1", QosPid::ExactlyOnce(pid(5)), false);
        assert_eq!(drain(&po), [P::PubRec(5)]);
        t.b.connection_lost(p, t.now);
        // The publisher never saw PUBREC, so it resends with DUP on its resumed session.
        let (p, po, _) = t.connect_with("pub", false, 60, None);
        t.publish(p, "x", b"1", QosPid::ExactlyOnce(pid(5)), false);
        assert_eq!(drain(&po), [P::PubRec(5)]);
        t.send(p, Packet::PubRel(Ack::new(pid(5))));
        assert_eq!(drain(&po), [P::PubComp(5)]);
        assert_eq!(
            publishes(&so).len(),
            1,
            "delivered once across the reconnect"
        );
    }

    #[test]
    fn v5_basics() {
        let mut t = T::new();
        let (c, o) = t.open();
        t.send(
            c,
            Packet::Connect(Connect {
                protocol: ProtocolVersion::V5,
                clean_start: true,
                keep_alive: 30,
                client_id: "",
                will: None,
                username: None,
                password: None,
                properties: NO_PROPERTIES,
            }),
        );
        let mut buf = Vec::new();
        o.drain_into(&mut buf);
        let opts = DecodeOptions::new(ProtocolVersion::V5);
        let Ok(Status::Complete(d)) = decode(&buf, opts) else {
            panic!("{buf:?}")
        };
        let Packet::ConnAck(ack) = d.packet else {
            panic!()
        };
        assert_eq!(ack.code, ReasonCode::SUCCESS);
        assert!(
            ack.properties
                .assigned_client_identifier
                .is_some_and(|id| id.starts_with("auto-"))
        );
        // A protocol violation gets DISCONNECT with a reason before the close.
        t.send(c, Packet::PingResp);
        buf.clear();
        o.drain_into(&mut buf);
        let Ok(Status::Complete(d)) = decode(&buf, opts) else {
            panic!("{buf:?}")
        };
        let Packet::Disconnect(d) = d.packet else {
            panic!("{:?}", d.packet)
        };
        assert_eq!(d.reason_code, ReasonCode::PROTOCOL_ERROR);
        assert_eq!(d.properties.reason_string, Some("protocol error"));
        assert!(o.is_closed());
    }

    #[test]
    fn partial_packets_count_as_keep_alive_activity() {
        let mut t = T::new();
        let (c, o, _) = t.connect_with("slow-upload", true, 1, None);
        t.now = 1400;
        t.b.bytes_arrived(c, t.now);
        t.now = 2000;
        t.b.tick(t.now);
        assert!(!o.is_closed());
        t.now = 3000;
        t.b.tick(t.now);
        assert!(o.is_closed());
    }

    #[test]
    fn max_connections() {
        let mut t = T::with(Config {
            max_connections: 1,
            ..Config::for_tests()
        });
        let (c, _) = t.open();
        assert!(t.b.connection_opened(peer(), 1883, 0).is_none());
        t.b.connection_lost(c, t.now);
        assert!(t.b.connection_opened(peer(), 1883, 0).is_some());
    }

    #[test]
    fn unsubscribe_and_refused_filters() {
        let mut t = T::with(Config {
            max_subscriptions_per_client: 1,
            ..Config::for_tests()
        });
        let (s, so) = t.connect("sub", true);
        assert_eq!(
            t.subscribe(s, &so, "a", QoS::ExactlyOnce),
            [P::SubAck(1, vec![2])]
        );
        assert_eq!(
            t.subscribe(s, &so, "a", QoS::AtMostOnce),
            [P::SubAck(1, vec![0])],
            "replace"
        );
        assert_eq!(
            t.subscribe(s, &so, "b", QoS::AtMostOnce),
            [P::SubAck(1, vec![0x80])]
        );
        let filters = [TopicFilter::new("a").unwrap()];
        t.send(
            s,
            Packet::Unsubscribe(Unsubscribe {
                packet_id: pid(9),
                properties: NO_PROPERTIES,
                filters: List::new(&filters),
            }),
        );
        assert_eq!(drain(&so), [P::UnsubAck(9)]);
        assert!(t.b.subscriptions().is_empty());
        assert_eq!(
            t.subscribe(s, &so, "$share/g/a", QoS::AtMostOnce),
            [P::SubAck(1, vec![0x80])]
        );
        t.send(s, Packet::PingReq);
        assert_eq!(drain(&so), [P::PingResp]);
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn per_connection_state_stays_small() {
        let conn = std::mem::size_of::<super::Conn>();
        let session = std::mem::size_of::<crate::session::Session>();
        eprintln!("Conn {conn} B, Session {session} B");
        assert!(conn + session < 512, "Conn {conn} B + Session {session} B");
    }
}
