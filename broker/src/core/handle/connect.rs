//! CONNECT: validation, session takeover and resumption, CONNACK with its 5.0 properties.

use std::collections::HashMap;
use std::num::{NonZeroU16, NonZeroU32};
use std::sync::Arc;

use wren_codec::{
    ConnAck, Connect, Packet, ProtocolVersion, QoS, ReasonCode,
    properties::{NO_PROPERTIES, Properties},
};

use crate::core::Broker;
use crate::core::access::Identity;
use crate::core::close::CloseReason;
use crate::core::conn::{
    CertificateUser, ClientAuth, ClientState, ConnectInfo, OutAliases, PendingAuth, Phase,
};
use crate::core::ids::{ConnId, SessionId};
use crate::core::message::{Message, Out};
use crate::core::trace;
use crate::core::validate::{check_string, check_topic};

impl Broker {
    /// Refuse a CONNECT: log why, send the refusal CONNACK, and give the reason to close with.
    pub(in crate::core) fn refuse(
        &mut self,
        conn: ConnId,
        code: ReasonCode,
        why: &str,
    ) -> CloseReason {
        if let Some(c) = self.conns.get(&conn) {
            log::info!("Client from {} refused: {why}.", c.peer);
        }
        self.send_connack(conn, false, code);
        CloseReason::ConnectRefused
    }

    /// CONNECT: check what the broker cannot accept, then accept it at once or start its
    /// enhanced authentication exchange (5.0 §4.12, continued in `auth.rs`).
    pub(in crate::core) fn on_connect(
        &mut self,
        conn: ConnId,
        connect: &Connect<'_>,
    ) -> Result<(), CloseReason> {
        let version = connect.protocol;
        let now = self.now_ms;
        let v5 = version.is_v5();
        let p = &connect.properties;
        // Control characters (and a will topic's depth) are Malformed, as in Mosquitto
        // (`validate.rs`): the connection closes as for any malformed CONNECT, without CONNACK.
        check_string("client id", connect.client_id)?;
        if let Some(username) = connect.username {
            check_string("user name", username)?;
        }
        if let Some(w) = &connect.will {
            check_topic("will topic", w.topic.as_str())?;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.version = version;
            if v5 {
                c.max_packet_size = p.maximum_packet_size.map_or(u32::MAX, NonZeroU32::get);
            }
        }
        // A TLS client certificate's name replaces the CONNECT's user name (`set_certificate_user`).
        let certificate_user = self
            .conns
            .get(&conn)
            .and_then(|c| c.certificate_user.as_deref().cloned());
        let username: Option<&str> = match &certificate_user {
            None => connect.username,
            Some(CertificateUser::Name(name)) => Some(name),
            Some(CertificateUser::Missing) => {
                let code = if v5 {
                    ReasonCode::BAD_USER_NAME_OR_PASSWORD
                } else {
                    ReasonCode::V3_BAD_USER_NAME_OR_PASSWORD
                };
                return Err(self.refuse(conn, code, "no user name in its TLS certificate"));
            }
        };
        // Who may connect here (`access.rs`), before anything else is decided; a client named
        // by its certificate is authenticated by it (as in Mosquitto).
        let identity = match &certificate_user {
            Some(CertificateUser::Name(name)) => Identity {
                username: Some(Arc::from(&**name)),
                listener: self.conns.get(&conn).map_or(0, |c| c.listener),
                credential: None,
                by_certificate: true,
            },
            _ => self.admit(conn, connect)?,
        };
        let will_delay = connect
            .will
            .as_ref()
            .and_then(|w| w.properties.will_delay_interval)
            .unwrap_or(0);
        if let Some(w) = &connect.will
            && v5
        {
            // [MQTT-3.2.2-12], [MQTT-3.2.2-13] (5.0): a will the broker could not publish.
            if w.qos.bits() > self.config.maximum_qos {
                return Err(self.refuse(
                    conn,
                    ReasonCode::QOS_NOT_SUPPORTED,
                    "will QoS not supported",
                ));
            }
            if w.retain && !self.config.retain_available {
                return Err(self.refuse(
                    conn,
                    ReasonCode::RETAIN_NOT_SUPPORTED,
                    "will retain not supported",
                ));
            }
        }
        let info = ConnectInfo {
            protocol: version,
            bridge: connect.bridge,
            clean_start: connect.clean_start,
            keep_alive: connect.keep_alive,
            client_id: connect.client_id.into(),
            username: username.map(Into::into),
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
            identity,
        };
        let Some(method) = p.authentication_method.filter(|_| v5) else {
            // 5.0 §3.1.2.11.10: Authentication Data without a method is a Protocol Error.
            if v5 && p.authentication_data.is_some() {
                return Err(self.refuse(
                    conn,
                    ReasonCode::PROTOCOL_ERROR,
                    "authentication data without a method",
                ));
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
            return Err(self.refuse(
                conn,
                ReasonCode::BAD_AUTHENTICATION_METHOD,
                "unknown authentication method",
            ));
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
        )
    }

    /// Accept a (possibly authenticated) CONNECT: client id and keep-alive, session, CONNACK,
    /// redelivery.
    pub(in crate::core) fn finish_connect(
        &mut self,
        conn: ConnId,
        info: ConnectInfo,
        auth: Option<(Box<str>, Option<Vec<u8>>)>,
    ) -> Result<(), CloseReason> {
        let version = info.protocol;
        let v5 = version.is_v5();
        let accepted = self.accept_identity(conn, &info)?;
        let client_id = Arc::clone(&accepted.client_id);
        let attached = self.attach_session(conn, &client_id, &info);
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
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
        c.state = Phase::Connected(ClientState {
            session: attached.session,
            client_id: Arc::clone(&client_id),
            keep_alive: accepted.keep_alive,
            bridge: info.bridge,
            will: info.will.clone(),
            will_delay: info.will_delay,
            connect_expiry: info.session_expiry,
            aliases: Box::default(),
            auth: auth.as_ref().map(|(method, _)| {
                Box::new(ClientAuth {
                    method: method.clone(),
                    exchange: None,
                })
            }),
            connack_batch: 0,
        });
        self.connected = self.connected.saturating_add(1);
        self.stats.clients_maximum = self.stats.clients_maximum.max(self.connected as u64);
        let protocol = match version {
            ProtocolVersion::V31 => 1,
            ProtocolVersion::V311 => 2,
            ProtocolVersion::V5 => 5,
        };
        let user = info
            .username
            .as_ref()
            .map(|u| format!(", u'{u}'"))
            .unwrap_or_default();
        // Mosquitto's wording: a bridge (`is_bridge`) is named as one.
        let kind = if info.bridge { "bridge" } else { "client" };
        log::info!(
            "New {kind} connected from {peer} as {client_id} (p{protocol}, c{}, k{}{user}).",
            u8::from(info.clean_start),
            info.keep_alive,
        );
        if trace::enabled() {
            trace::will(info.will.as_deref());
        }
        let wait = self.journal_connected_will(conn);
        self.send_connack_accepted(conn, &info, &accepted, &attached, auth.as_ref(), wait)?;
        if attached.present {
            self.resume(attached.session);
        }
        Ok(())
    }

    /// The client id (assigned if empty) and keep-alive the connection gets, or the refusal.
    fn accept_identity(
        &mut self,
        conn: ConnId,
        info: &ConnectInfo,
    ) -> Result<AcceptedIdentity, CloseReason> {
        let version = info.protocol;
        let v5 = version.is_v5();
        let id_rejected = if v5 {
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID
        } else {
            ReasonCode::V3_IDENTIFIER_REJECTED
        };
        let assigned = info.client_id.is_empty();
        // A bridge's local session is the broker's own: a client of a listener may not take it
        // over (it would take the messages waiting for the remote and cut the bridge off).
        let from_bridge = info.identity.listener == super::super::BRIDGE_LISTENER;
        if !from_bridge
            && self
                .bridge_client_ids
                .iter()
                .any(|id| **id == *info.client_id)
        {
            return Err(self.refuse(conn, id_rejected, "client id of a bridge's local session"));
        }
        if assigned {
            // 3.1 and 3.1.1 allow an empty id only with Clean Session ([MQTT-3.1.3-7] (3.1.1),
            // answered by [MQTT-3.1.3-8] (3.1.1); 3.1 says 1–23 characters, but Mosquitto
            // treats 3.1 as 3.1.1 here and so do we); 5.0 with any Clean Start
            // ([MQTT-3.1.3-6] (5.0)). 3.1 ids longer than 23 bytes are accepted likewise.
            let allowed = self.config.allow_zero_length_clientid && (info.clean_start || v5);
            if !allowed {
                return Err(self.refuse(conn, id_rejected, "empty client id not allowed"));
            }
        }
        let mut keep_alive = info.keep_alive;
        let mut server_keep_alive = None;
        if keep_alive > self.config.max_keepalive {
            if v5 {
                // 5.0 §3.2.2.3.14: the server's keep-alive wins; the client is told.
                keep_alive = self.config.max_keepalive;
                server_keep_alive = Some(keep_alive);
            } else {
                return Err(self.refuse(conn, id_rejected, "keep-alive above max_keepalive"));
            }
        }
        let client_id: Arc<str> = if assigned {
            self.assign_client_id().into()
        } else {
            info.client_id.as_str().into()
        };
        Ok(AcceptedIdentity {
            client_id,
            assigned,
            keep_alive,
            server_keep_alive,
        })
    }

    /// Give `conn` its session: take it over from another connection ([MQTT-3.1.4-2] (3.1.1),
    /// [MQTT-3.1.4-3] (5.0)), resume it, or start a new one (Clean Session / Clean Start).
    fn attach_session(
        &mut self,
        conn: ConnId,
        client_id: &Arc<str>,
        info: &ConnectInfo,
    ) -> AttachedSession {
        let v5 = info.protocol.is_v5();
        // Takeover: the old connection's will is published (5.0: after its delay, which the
        // cancel below ends), except a 3.1/3.1.1 one when both connections continue the
        // session (Mosquitto; see will.rs).
        if let Some((old_conn, old_clean)) = self
            .sessions
            .find(client_id)
            .and_then(|sid| self.sessions.get(sid))
            .and_then(|s| Some((s.conn?, s.clean)))
        {
            if !old_clean
                && !info.clean_start
                && let Some(old) = self.conns.get_mut(&old_conn)
                && !old.version.is_v5()
                && let Phase::Connected(client) = &mut old.state
            {
                client.will = None;
            }
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
        // `persistent_client_expiration` (Mosquitto's): no session outlives its client's
        // absence by longer, 3.1.1 persistent sessions included.
        let expiry = match self.config.persistent_client_expiration {
            0 => expiry,
            cap => expiry.min(cap),
        };
        let ends_with_connection = expiry == 0;
        // [MQTT-3.1.2-8], [MQTT-3.1.3-9] (5.0): a new connection for the client id before the
        // Will Delay Interval passed: the delayed will is not sent (Clean Start or not).
        self.cancel_delayed_will(client_id);
        let (session, present) = match self.sessions.find(client_id) {
            Some(sid) if !info.clean_start => (sid, true),
            existing => {
                if let Some(old) = existing {
                    self.end_session(old);
                }
                let sid = self
                    .sessions
                    .create(Arc::clone(client_id), ends_with_connection);
                (sid, false)
            }
        };
        let receive_maximum = info
            .receive_maximum
            .map_or(usize::MAX, |r| usize::from(r.get()));
        self.cancel_expiry(session);
        if let Some(s) = self.sessions.get_mut(session) {
            s.clean = ends_with_connection;
            s.expiry_interval = expiry;
            s.conn = Some(conn);
            s.dropping = false;
            s.inflight_max = if info.identity.listener == super::super::BRIDGE_LISTENER {
                receive_maximum
            } else {
                self.config.max_inflight_messages.min(receive_maximum)
            };
            s.identity = info.identity.clone().shared();
        }
        self.journal_session(session);
        AttachedSession {
            session,
            present,
            capped_expiry,
        }
    }

    /// The CONNACK accepting a connection, with the 5.0 properties that say what the broker
    /// supports and what it changed; held until batch `wait` is on disk (0: sent now), with
    /// whatever follows it on the connection. A client whose Maximum Packet Size it exceeds is
    /// refused instead (0x95): no packet may be larger ([MQTT-3.1.2-24] (5.0)), and none may
    /// come before the CONNACK.
    fn send_connack_accepted(
        &mut self,
        conn: ConnId,
        info: &ConnectInfo,
        accepted: &AcceptedIdentity,
        attached: &AttachedSession,
        auth: Option<&(Box<str>, Option<Vec<u8>>)>,
        wait: u64,
    ) -> Result<(), CloseReason> {
        let version = info.protocol;
        let cfg = &self.config;
        let properties = if version.is_v5() {
            Properties {
                assigned_client_identifier: Some(&*accepted.client_id)
                    .filter(|_| accepted.assigned),
                server_keep_alive: accepted.server_keep_alive,
                session_expiry_interval: attached.capped_expiry,
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
                authentication_method: auth.map(|(m, _)| &**m),
                authentication_data: auth.and_then(|(_, d)| d.as_deref()),
                ..NO_PROPERTIES
            }
        } else {
            NO_PROPERTIES
        };
        let connack = |properties| {
            Out::packet(
                &Packet::ConnAck(ConnAck {
                    session_present: attached.present,
                    code: ReasonCode::SUCCESS,
                    properties,
                }),
                version,
            )
        };
        let mut out = connack(properties);
        if self.conns.get(&conn).is_some_and(|c| !c.fits(&out)) {
            // [MQTT-3.1.2-24] (5.0): a client with a tiny Maximum Packet Size gets the
            // properties it cannot do without (its id, the keep-alive it must use, the
            // authentication).
            out = connack(Properties {
                assigned_client_identifier: properties.assigned_client_identifier,
                server_keep_alive: properties.server_keep_alive,
                authentication_method: properties.authentication_method,
                authentication_data: properties.authentication_data,
                ..NO_PROPERTIES
            });
        }
        if !self.conns.get(&conn).is_some_and(|c| c.fits(&out)) {
            return Err(self.refuse(
                conn,
                ReasonCode::PACKET_TOO_LARGE,
                "its Maximum Packet Size is smaller than the CONNACK",
            ));
        }
        if let Some(out) = self.journal.hold_out(conn, out, wait) {
            self.send(conn, out);
        } else if let Some(Phase::Connected(client)) =
            self.conns.get_mut(&conn).map(|c| &mut c.state)
        {
            client.connack_batch = wait;
        }
        Ok(())
    }

    /// An id like Mosquitto's `auto-<uuid>`.
    pub(in crate::core) fn assign_client_id(&mut self) -> String {
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
}

/// What [`Broker::accept_identity`] decided.
struct AcceptedIdentity {
    client_id: Arc<str>,
    /// The client sent an empty id and got `client_id` assigned.
    assigned: bool,
    keep_alive: u16,
    /// 5.0: the keep-alive the client must use instead of its own.
    server_keep_alive: Option<u16>,
}

/// What [`Broker::attach_session`] did.
struct AttachedSession {
    session: SessionId,
    /// Session Present.
    present: bool,
    /// 5.0: the Session Expiry Interval the broker lowered the client's to, if it did.
    capped_expiry: Option<u32>,
}
