//! [`Broker`]: the sans-I/O protocol core. It owns every connection's protocol state, the
//! sessions, the subscriptions and the retained messages, and reacts to inputs the runtime shell
//! feeds it. It has no sockets, tasks or clocks: time comes in as milliseconds, bytes go out
//! through each connection's [`Outbox`], and log lines through the `log` facade.
//!
//! The API, in the spirit of quinn-proto's `Connection`:
//! - **inputs**: [`Broker::connection_opened`], [`Broker::packet_received`],
//!   [`Broker::bytes_arrived`], [`Broker::decode_failed`], [`Broker::connection_lost`],
//!   [`Broker::handle_timeout`], [`Broker::hibernate`] / [`Broker::wake`], [`Broker::publish`],
//!   [`Broker::shutdown`];
//! - **outputs**: bytes on each connection's [`Outbox`], [`Broker::poll_timeout`] (when to call
//!   `handle_timeout` next) and [`Broker::poll_event`] (hibernating connections woken,
//!   congested subscribers a publisher should wait for).
//!
//! Where things are, one module per concern: `handle/` has one file per packet family, each
//! handler returning `Err(CloseReason)` to end the connection; the dispatcher here
//! ([`Broker::packet_received`]) is the one place that turns that into a close (`close.rs`).
//! `subscriptions/` owns every subscription (each session's filters, the topic trie, the shared
//! groups) behind one API. Routing (`route.rs`) finds the receivers of a message through it,
//! `delivery.rs` is the one path that sends a PUBLISH to a session; wills (`will.rs`), session
//! expiry (`session_expiry.rs`) and the keep-alive and connect timeouts (`keep_alive.rs`) each
//! have a file; `timers.rs` runs them.
//!
//! MQTT 3.1, 3.1.1 and 5.0 share every path; the 5.0 additions (properties, reason codes, session
//! and message expiry, topic aliases, flow control, shared subscriptions, subscription options,
//! will delay, enhanced authentication) are described in `broker/MQTT5.md`.

mod access;
mod authenticator;
mod close;
mod conn;
mod delivery;
mod framing;
mod handle;
mod ids;
mod keep_alive;
mod login_failures;
mod message;
mod outbox;
mod output;
mod persist;
mod restore;
mod retained;
mod route;
mod session;
mod session_expiry;
mod subscriptions;
mod sys;
mod timers;
mod trace;
mod validate;
mod will;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;

use wren_codec::{DecodeError, ErrorKind, Packet, ReasonCode};

pub use access::{Identity, ListenerAccess, TopicAccess, TopicRules, UserStore};
pub use authenticator::{AuthExchange, AuthStep, Authenticator, HmacChallenge};
pub use close::CloseReason;
pub use conn::{BRIDGE_LISTENER, CertificateUser};
pub use framing::Framing;

pub use ids::{ConnId, SessionId};
pub use message::{Delivery, Message, MessageProperties, Out};
pub use outbox::Outbox;
pub use persist::{Change, Persistence, StoredEntry, StoredSub};
pub use restore::{Restored, RestoredEntry, RestoredSession};
pub use retained::RetainedStore;
pub use session::{OutgoingState, Session, SessionStore};
pub use subscriptions::{Sub, Subscriptions};
pub use sys::Stats;

use crate::config::Config;
use conn::{Connection, Phase};
pub(crate) use ids::IdHash;
use session_expiry::ExpiryQueue;
use will::DelayedWills;

/// The broker core.
#[derive(Debug)]
pub struct Broker {
    config: Config,
    /// Boxed: the table holds many empty slots at its load factor, so keep slots small.
    conns: HashMap<ConnId, Box<Connection>, IdHash>,
    next_conn: u64,
    connected: usize,
    sessions: SessionStore,
    subscriptions: Subscriptions,
    retained: RetainedStore,
    stats: Stats,
    /// Reused buffers for subscription matches, shared group picks (with the group's full
    /// filter) and identifiers (no allocation per publish).
    matches: Vec<Sub>,
    shared_picks: Vec<(Sub, Arc<str>)>,
    sub_ids: Vec<u32>,
    /// Connections to close once the current event is handled (found while borrowed).
    to_close: Vec<(ConnId, CloseReason)>,
    /// Hibernating connections that were given an outbox again ([`Event::Woken`]).
    woken: Vec<(ConnId, Outbox)>,
    /// Backpressure: the congested outboxes the current event's messages went to (see
    /// [`Event::Congested`]).
    congested: Vec<Outbox>,
    /// Disconnected sessions with a finite expiry, by expiry time.
    expiring: ExpiryQueue,
    delayed_wills: DelayedWills,
    /// What must survive a restart, for the durable store (`persist.rs`).
    journal: persist::Journal,
    authenticators: Vec<Arc<dyn Authenticator>>,
    /// Who may connect through each listener, by listener index (`access.rs`).
    access: Vec<ListenerAccess>,
    /// Whether any listener has topic rules (when none has, no delivery looks them up).
    any_topic_rules: bool,
    /// The client ids of the bridges' local sessions, which only the bridges may use.
    bridge_client_ids: Vec<Box<str>>,
    /// Refused logins by address (`login_failures.rs`).
    login_failures: login_failures::LoginFailures,
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
        let access = ListenerAccess::from_config(&config);
        Broker {
            access,
            any_topic_rules: false,
            bridge_client_ids: config
                .bridge
                .iter()
                .map(|b| b.local_client_id().into())
                .collect(),
            login_failures: login_failures::LoginFailures::default(),
            config,
            conns: HashMap::default(),
            next_conn: 0,
            connected: 0,
            sessions: SessionStore::new(),
            subscriptions: Subscriptions::new(),
            retained: RetainedStore::new(),
            stats: Stats::default(),
            matches: Vec::new(),
            shared_picks: Vec::new(),
            sub_ids: Vec::new(),
            to_close: Vec::new(),
            woken: Vec::new(),
            congested: Vec::new(),
            expiring: ExpiryQueue::default(),
            delayed_wills: DelayedWills::default(),
            journal: persist::Journal::default(),
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

    /// Every subscription (shared ones included).
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
    }

    /// How many subscriptions session `sid` holds.
    pub fn session_subscriptions(&self, sid: SessionId) -> usize {
        self.subscriptions.session_len(sid)
    }

    /// Members of a shared subscription (`$share/{group}/{filter}`).
    pub fn shared_subscription_members(&self, filter: &str) -> usize {
        self.subscriptions.shared_members(filter)
    }

    /// The retained messages.
    pub fn retained(&self) -> &RetainedStore {
        &self.retained
    }

    // ---------------------------------------------------------------------------------------
    // Inputs. Each goes through `input`, which advances the clock and, once the input is
    // handled, closes the connections found to need it meanwhile: no caller drains anything.
    // ---------------------------------------------------------------------------------------

    /// Run one input at `now_ms`, then the closes it deferred.
    fn input<R>(&mut self, now_ms: u64, handle: impl FnOnce(&mut Self) -> R) -> R {
        self.now_ms = self.now_ms.max(now_ms);
        self.journal.start_input();
        let result = handle(self);
        self.process_closes();
        result
    }

    /// Whether `more` connections fit within `max_connections` besides those open.
    pub fn has_room_for(&self, more: usize) -> bool {
        let max = self.config.max_connections;
        max == 0 || self.conns.len().saturating_add(more) <= max
    }

    /// A TCP connection was accepted from `peer` by listener `listener` (its index in
    /// [`Config::listeners`](crate::Config::listeners)) on `local_port`. Returns its id and the outbox
    /// its writer drains, or `None` if `max_connections` is reached (the shell drops the socket).
    pub fn connection_opened(
        &mut self,
        peer: SocketAddr,
        listener: usize,
        local_port: u16,
        now_ms: u64,
    ) -> Option<(ConnId, Outbox)> {
        self.input(now_ms, |b| {
            let max = b.config.max_connections;
            // (A bridge's local connection is the shell's own: it logs it.)
            if listener != BRIDGE_LISTENER {
                if max > 0 && b.conns.len() >= max {
                    log::warn!("Client connection from {peer} denied: max_connections exceeded.");
                    return None;
                }
                log::info!("New connection from {peer} on port {local_port}.");
            }
            b.next_conn = b.next_conn.wrapping_add(1);
            let id = ConnId(b.next_conn);
            let outbox = Outbox::new();
            b.conns.insert(
                id,
                Box::new(Connection::new(id, peer, listener, now_ms, outbox.clone())),
            );
            Some((id, outbox))
        })
    }

    /// The user name `conn`'s TLS client certificate gives it, on a listener with
    /// `use_identity_as_username` or `use_subject_as_username`: set by the shell once the
    /// handshake is over, before any packet. It is the client's user name from then on (the
    /// CONNECT's user name and password are ignored: the certificate authenticated the client,
    /// as in Mosquitto, so `allow_anonymous` does not apply); with
    /// [`CertificateUser::Missing`] the CONNECT is refused (0x04 / 0x86).
    pub fn set_certificate_user(&mut self, conn: ConnId, user: CertificateUser) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.certificate_user = Some(Box::new(user));
        }
    }

    /// A packet of `len` bytes was decoded from `conn` (by its [`Framing`]).
    pub fn packet_received(&mut self, conn: ConnId, packet: &Packet<'_>, len: usize, now_ms: u64) {
        self.input(now_ms, |b| {
            let Some(c) = b.conns.get_mut(&conn) else {
                return;
            };
            c.last_seen_ms = now_ms;
            b.stats.messages_received = b.stats.messages_received.saturating_add(1);
            b.stats.bytes_received = b.stats.bytes_received.saturating_add(len as u64);
            if let Err(reason) = b.dispatch(conn, packet) {
                b.close(conn, reason);
            }
        });
    }

    /// The one dispatcher: which handler a packet goes to in the connection's phase. A handler's
    /// `Err` is the reason the connection ends, which the caller alone turns into the close.
    fn dispatch(&mut self, conn: ConnId, packet: &Packet<'_>) -> Result<(), CloseReason> {
        let Some(c) = self.conns.get(&conn) else {
            return Ok(());
        };
        if trace::enabled() {
            trace::received(c.client_id(), packet);
        }
        let sid = match &c.state {
            Phase::AwaitingConnect => {
                return match packet {
                    Packet::Connect(connect) => self.on_connect(conn, connect),
                    // CVE-2023-0809: the first packet must be CONNECT.
                    _ => Err(CloseReason::ProtocolError),
                };
            }
            Phase::Authenticating(_) => {
                return match packet {
                    Packet::Auth(a) if a.reason_code == ReasonCode::CONTINUE_AUTHENTICATION => {
                        self.on_connect_auth(conn, a)
                    }
                    // Before CONNACK only AUTH may flow; a refusal is a CONNACK.
                    _ => Err(self.refuse(
                        conn,
                        ReasonCode::PROTOCOL_ERROR,
                        "protocol error during authentication",
                    )),
                };
            }
            Phase::Connected(client) => client.session,
        };
        match packet {
            Packet::Publish(p) => self.on_publish(conn, sid, p),
            Packet::PubAck(a) => self.on_puback(sid, a.packet_id),
            Packet::PubRec(a) => self.on_pubrec(conn, sid, a),
            Packet::PubRel(a) => self.on_pubrel(conn, sid, a),
            Packet::PubComp(a) => self.on_pubcomp(sid, a.packet_id),
            Packet::Subscribe(s) => self.on_subscribe(conn, sid, s),
            Packet::Unsubscribe(u) => self.on_unsubscribe(conn, sid, u),
            Packet::PingReq => {
                self.send_packet(conn, &Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.on_disconnect(conn, sid, d),
            Packet::Auth(a) if c.version.is_v5() => self.on_reauth(conn, a),
            // [MQTT-3.1.0-2] (the same id in 3.1.1 and 5.0): a second CONNECT is a protocol
            // violation. Packets only a server sends (CVE-2021-28166) likewise.
            Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp
            | Packet::Auth(_) => {
                log::debug!(
                    "Client {} sent {}: protocol violation.",
                    c.client_id(),
                    packet.packet_type().name()
                );
                Err(CloseReason::ProtocolError)
            }
        }
    }

    /// Part of a packet arrived from `conn`: it counts as activity for the keep-alive (a large
    /// packet on a slow link may take longer than the keep-alive to arrive).
    pub fn bytes_arrived(&mut self, conn: ConnId, now_ms: u64) {
        self.input(now_ms, |b| {
            if let Some(c) = b.conns.get_mut(&conn) {
                c.last_seen_ms = now_ms;
            }
        });
    }

    /// The bytes from `conn`, read at `now_ms`, could not be decoded; the stream cannot be
    /// resynchronised. (The will delay and session expiry count from `now_ms`, as for
    /// [`Broker::connection_lost`].)
    pub fn decode_failed(&mut self, conn: ConnId, error: DecodeError, now_ms: u64) {
        self.input(now_ms, |b| {
            let Some(c) = b.conns.get(&conn) else {
                return;
            };
            log::debug!("Decode error from {} ({}): {error}", c.client_id(), c.peer);
            let reason = match error {
                DecodeError::UnsupportedProtocolLevel(level)
                    if matches!(c.state, Phase::AwaitingConnect) =>
                {
                    // [MQTT-3.1.2-2] (3.1.1): CONNACK 0x01, then close.
                    log::info!(
                        "Client <unknown> from {} refused: unsupported protocol level {level}.",
                        c.peer
                    );
                    b.send_connack(conn, false, ReasonCode::V3_UNACCEPTABLE_PROTOCOL_VERSION);
                    CloseReason::ConnectRefused
                }
                DecodeError::PacketTooLarge { .. } => CloseReason::Oversize,
                e if e.kind() == ErrorKind::ProtocolError => CloseReason::ProtocolError,
                _ => CloseReason::Malformed,
            };
            b.close(conn, reason);
        });
    }

    /// The socket of `conn` reached EOF or failed at `now_ms`. The will delay and the session
    /// expiry count from then ([MQTT-3.1.2-8], [MQTT-3.1.3-9] (5.0)), not from the last packet or
    /// timeout the broker saw, which may be a timer interval older.
    pub fn connection_lost(&mut self, conn: ConnId, now_ms: u64) {
        self.input(now_ms, |b| b.close(conn, CloseReason::ConnectionLost));
    }

    /// The shell's connection `conn` is quiet and wants to hibernate: it gives up its outbox
    /// (the core makes a new one, and reports it as [`Event::Woken`], when it has something to
    /// send or closes the connection). Refused (`false`) when something is queued already.
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

    /// Publish a message as the broker (`$SYS`, tests): store or delete it as retained, and
    /// deliver it to every matching subscription.
    pub fn publish(&mut self, message: Arc<Message>) {
        let now = self.now_ms;
        self.input(now, |b| {
            b.route(message, None);
        });
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
    // Outputs (besides the bytes on each connection's outbox, and `poll_timeout` in timers.rs).
    // ---------------------------------------------------------------------------------------

    /// The next thing the shell must act on, or `None`: hibernating connections woken first
    /// (so that a connection is live again before anyone waits for it), then congested
    /// subscribers.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some((conn, outbox)) = self.woken.pop() {
            return Some(Event::Woken { conn, outbox });
        }
        self.congested.pop().map(Event::Congested)
    }

    /// Whether the input just handled left a congested subscriber ([`Event::Congested`]): a
    /// publisher's reader stops after the packet that did it.
    pub fn is_congested(&self) -> bool {
        !self.congested.is_empty()
    }

    /// Forget the congestion reported so far (the shell's timer and the events it does not
    /// read from a publisher have no publisher to hold back).
    pub fn clear_congested(&mut self) {
        self.congested.clear();
    }
}

/// What the core tells the shell through [`Broker::poll_event`].
#[derive(Debug)]
pub enum Event {
    /// A hibernating connection got something to send (or was closed): here is its new outbox;
    /// give the connection its task back.
    Woken {
        /// The connection.
        conn: ConnId,
        /// The outbox its task now drains.
        outbox: Outbox,
    },
    /// Backpressure: a subscriber that the messages of the last input went to is congested
    /// (more than `max_outgoing_bytes` waiting, or a session queue past half of
    /// `max_queued_messages`). The shell reads no more from the publisher until it drains (see
    /// [`Outbox::poll_uncongested`]), or, if it does not within its patience, marks it stalled
    /// and goes on: a subscriber that makes progress paces its publishers instead of losing
    /// their messages, and a stuck one only loses its own.
    Congested(Outbox),
}
