//! One network connection's protocol state ([`Connection`]): its phase (awaiting CONNECT,
//! authenticating, connected), the connected client's state, and the 5.0 topic aliases both ways.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;

use wren_codec::{ProtocolVersion, Publish};

use super::authenticator::AuthExchange;
use super::close::CloseReason;
use super::ids::{ConnId, SessionId};
use super::message::{Message, Out};
use super::outbox::Outbox;

/// The listener index of a bridge's local connection: the broker's own bridge task connects
/// through a socket pair nobody else can reach, so it is not authenticated, no topic rules
/// apply, `max_connections` does not count it, it may publish to `$` topics (a bridge may bring
/// in a remote's `$SYS`), and its session's in-flight window is its own Receive Maximum.
pub const BRIDGE_LISTENER: usize = usize::MAX;

/// A connected client's protocol state.
#[derive(Debug)]
pub(super) struct ClientState {
    pub(super) session: SessionId,
    pub(super) client_id: Arc<str>,
    pub(super) keep_alive: u16,
    /// Mosquitto's `is_bridge`: the CONNECT had the bridge bit ([`wren_codec::Connect::bridge`]).
    /// Every subscription it makes gets No Local and Retain As Published (`on_subscribe`).
    pub(super) bridge: bool,
    pub(super) will: Option<Arc<Message>>,
    /// 5.0 Will Delay Interval, seconds.
    pub(super) will_delay: u32,
    /// 5.0 Session Expiry Interval of the CONNECT (0 forbids a non-zero one in DISCONNECT).
    pub(super) connect_expiry: u32,
    /// 5.0 inbound topic aliases (index = alias - 1), created on first use.
    pub(super) aliases: Box<[Option<Box<str>>]>,
    /// 5.0 enhanced authentication: the method, and a re-authentication in progress.
    pub(super) auth: Option<Box<ClientAuth>>,
    /// The batch the CONNACK waits for (0: none; see [`Broker::journal_connected_will`]):
    /// until it is on disk, nothing else may be sent either, a DISCONNECT included.
    pub(super) connack_batch: u64,
}

#[derive(Debug)]
pub(super) struct ClientAuth {
    pub(super) method: Box<str>,
    pub(super) exchange: Option<Box<dyn AuthExchange>>,
}

/// A CONNECT kept while its enhanced authentication exchange runs (the packet's bytes are gone
/// by then), and what `finish_connect` needs of it.
#[derive(Debug)]
pub(super) struct ConnectInfo {
    pub(super) protocol: ProtocolVersion,
    /// The bridge bit (see [`ClientState::bridge`]).
    pub(super) bridge: bool,
    pub(super) clean_start: bool,
    pub(super) keep_alive: u16,
    pub(super) client_id: String,
    pub(super) username: Option<String>,
    pub(super) will: Option<Arc<Message>>,
    pub(super) will_delay: u32,
    pub(super) session_expiry: u32,
    pub(super) receive_maximum: Option<NonZeroU16>,
    pub(super) maximum_packet_size: Option<NonZeroU32>,
    pub(super) topic_alias_maximum: u16,
    pub(super) request_response_information: bool,
    /// Who it logged in as (`access.rs`).
    pub(super) identity: super::access::Identity,
}

#[derive(Debug)]
pub(super) struct PendingAuth {
    pub(super) connect: ConnectInfo,
    pub(super) method: Box<str>,
    pub(super) exchange: Box<dyn AuthExchange>,
}

#[derive(Debug)]
pub(super) enum Phase {
    /// Waiting for CONNECT.
    AwaitingConnect,
    /// CONNECT received; 5.0 enhanced authentication in progress.
    Authenticating(Box<PendingAuth>),
    Connected(ClientState),
}

impl ClientState {
    /// Whether this client may publish on the `$` topic `topic`: only a bridge, only its own
    /// state, `$SYS/broker/connection/<its client id>/state` — what Mosquitto's bridges publish
    /// on the remote (their notifications and will), and what Mosquitto's documentation grants
    /// them in ACLs. Nothing else under `$` belongs to clients.
    pub(super) fn may_publish_dollar(&self, topic: &str) -> bool {
        self.bridge
            && topic
                .strip_prefix("$SYS/broker/connection/")
                .and_then(|t| t.strip_suffix("/state"))
                == Some(&*self.client_id)
    }

    /// The topic of a 5.0 PUBLISH, through its Topic Alias (§3.3.2.3.4) if it has one: a new
    /// alias is remembered, a known one looked up. `max` is the broker's Topic Alias Maximum.
    /// Borrowed from the packet unless the alias names it: no allocation per publish.
    pub(super) fn resolve_topic_alias<'p>(
        &mut self,
        p: &Publish<'p>,
        max: u16,
    ) -> Result<Cow<'p, str>, CloseReason> {
        let Some(alias) = p.properties.topic_alias else {
            if p.topic.is_empty() {
                // An empty topic needs an alias.
                return Err(CloseReason::ProtocolError);
            }
            return Ok(Cow::Borrowed(p.topic.as_str()));
        };
        // [MQTT-3.3.2-9], [MQTT-3.3.2-12] (5.0): 1..=Topic Alias Maximum.
        if alias.get() > max {
            return Err(CloseReason::TopicAliasInvalid);
        }
        let slot = usize::from(alias.get() - 1);
        if self.aliases.len() <= slot {
            let mut grown = std::mem::take(&mut self.aliases).into_vec();
            grown.resize(slot + 1, None);
            self.aliases = grown.into_boxed_slice();
        }
        let Some(entry) = self.aliases.get_mut(slot) else {
            return Err(CloseReason::TopicAliasInvalid);
        };
        if p.topic.is_empty() {
            // An alias within the maximum that was never set is a Protocol Error (5.0
            // §3.3.2.3.4: the receiver has no mapping for it); 0x94 is for one above the maximum.
            entry
                .as_deref()
                .map(|t| Cow::Owned(t.to_owned()))
                .ok_or(CloseReason::ProtocolError)
        } else {
            *entry = Some(p.topic.as_str().into());
            Ok(Cow::Borrowed(p.topic.as_str()))
        }
    }
}

/// Topic aliases the broker assigned toward one 5.0 client.
#[derive(Debug, Default)]
pub(super) struct OutAliases {
    pub(super) by_topic: HashMap<Box<str>, NonZeroU16>,
    pub(super) limit: u16,
}

/// One network connection.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) id: ConnId,
    pub(super) peer: SocketAddr,
    /// The listener it came through (index into `Config::listeners`).
    pub(super) listener: usize,
    pub(super) opened_ms: u64,
    pub(super) last_seen_ms: u64,
    pub(super) version: ProtocolVersion,
    /// 5.0: the client's Maximum Packet Size (larger messages are not sent, [MQTT-3.1.2-25]).
    pub(super) max_packet_size: u32,
    /// `None` while the shell has the connection hibernating (see [`Broker::hibernate`]).
    pub(super) outbox: Option<Outbox>,
    pub(super) state: Phase,
    pub(super) out_aliases: Option<Box<OutAliases>>,
    /// TLS listeners with `use_identity_as_username` / `use_subject_as_username`: the user name
    /// the client certificate gave (see [`Broker::set_certificate_user`](super::Broker::set_certificate_user)).
    pub(super) certificate_user: Option<Box<CertificateUser>>,
}

/// The user name a TLS client certificate gives a connection, on a listener that takes user names
/// from certificates (`use_identity_as_username`: its Common Name; `use_subject_as_username`:
/// its whole subject), as the shell found it after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertificateUser {
    /// The certificate's name: it replaces the CONNECT's user name (its password is ignored).
    Name(Box<str>),
    /// No certificate, or one without the name asked for: the CONNECT is refused (0x04 / 0x86
    /// Bad user name or password), as Mosquitto refuses it.
    Missing,
}

impl Connection {
    /// A connection accepted at `now_ms`, waiting for CONNECT (decoded as 3.1.1 until then).
    pub(super) fn new(
        id: ConnId,
        peer: SocketAddr,
        listener: usize,
        now_ms: u64,
        outbox: Outbox,
    ) -> Connection {
        Connection {
            id,
            peer,
            listener,
            opened_ms: now_ms,
            last_seen_ms: now_ms,
            version: ProtocolVersion::V311,
            max_packet_size: u32::MAX,
            outbox: Some(outbox),
            state: Phase::AwaitingConnect,
            out_aliases: None,
            certificate_user: None,
        }
    }

    /// The outbox to queue on. A hibernating connection gets a new one, and the shell is told
    /// (through `woken`) to give it its task back.
    pub(super) fn outbox(&mut self, woken: &mut Vec<(ConnId, Outbox)>) -> &Outbox {
        let id = self.id;
        self.outbox.get_or_insert_with(|| {
            let outbox = Outbox::new();
            woken.push((id, outbox.clone()));
            outbox
        })
    }

    /// Whether `out` is within the client's Maximum Packet Size: the one check before anything
    /// is sent ([MQTT-3.1.2-24] (5.0): the server must not send more).
    pub(super) fn fits(&self, out: &Out) -> bool {
        out.len() <= self.max_packet_size as usize
    }

    /// Whether this connection may publish on the `$` topic `topic`: a bridge's local
    /// connection ([`BRIDGE_LISTENER`]) may (a bridge may bring a remote's `$SYS` in), a client
    /// only as [`ClientState::may_publish_dollar`] says.
    pub(super) fn may_publish_dollar(&self, topic: &str) -> bool {
        self.listener == BRIDGE_LISTENER
            || matches!(&self.state, Phase::Connected(c) if c.may_publish_dollar(topic))
    }

    /// Whether the connected client is a bridge ([`ClientState::bridge`]).
    pub(super) fn is_bridge(&self) -> bool {
        matches!(&self.state, Phase::Connected(c) if c.bridge)
    }

    /// The client id for log lines (`<unknown>` before CONNECT).
    pub(super) fn client_id(&self) -> &str {
        match &self.state {
            Phase::Connected(c) => &c.client_id,
            Phase::Authenticating(p) => &p.connect.client_id,
            Phase::AwaitingConnect => "<unknown>",
        }
    }

    /// The Topic Alias to send `topic` with: an existing one (topic left out), a new one (topic
    /// sent too), or none when the client takes no aliases or they are all used.
    pub(super) fn out_alias(&mut self, topic: &str) -> Option<(NonZeroU16, bool)> {
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
