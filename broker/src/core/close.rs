//! Closing a connection: [`CloseReason`] (its log line and 5.0 DISCONNECT reason), the will, the
//! session's detach or end, and the fail-over of shared-subscription messages when a session ends.

use std::sync::Arc;

use wren_codec::{
    Disconnect, Packet, ReasonCode,
    properties::{NO_PROPERTIES, Properties},
};

use super::Broker;
use super::conn::Phase;
use super::ids::{ConnId, SessionId};
use super::message::Out;
use super::persist::Change;
use super::session::OutgoingState;

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
    /// 5.0: re-authentication failed; or a reload left the client without the right to be
    /// connected (its user removed or its password changed).
    NotAuthorized,
    /// A QoS 1/2 PUBLISH from a 3.1/3.1.1 client while the durable store cannot write: it
    /// cannot be refused any other way (`persist.rs`).
    StoreFailing,
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
    pub(super) fn v5_reason(self) -> Option<(ReasonCode, &'static str)> {
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
            CloseReason::NotAuthorized => (ReasonCode::NOT_AUTHORIZED, "not authorized"),
            CloseReason::StoreFailing => (ReasonCode::QUOTA_EXCEEDED, "persistence store failing"),
            _ => return None,
        })
    }
}

impl Broker {
    pub(super) fn process_closes(&mut self) {
        while let Some((conn, reason)) = self.to_close.pop() {
            self.close(conn, reason);
        }
    }

    /// Close a connection: log why, detach (or end) its session, publish (or delay) its will if
    /// the reason calls for it, and close its outbox (the writer flushes, then shuts the socket).
    pub(super) fn close(&mut self, conn: ConnId, reason: CloseReason) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        // Not before the CONNACK ([MQTT-3.14.0-1] (5.0)), which may still wait for the disk.
        let connack_sent = match &c.state {
            Phase::Connected(client) => self.journal.is_committed(client.connack_batch),
            _ => false,
        };
        if c.version.is_v5()
            && connack_sent
            && let Some((code, why)) = reason.v5_reason()
        {
            // The reason string is left out if it would make the packet larger than the
            // client's Maximum Packet Size ([MQTT-3.1.2-25] (5.0)).
            let with_string = Disconnect {
                reason_code: code,
                properties: Properties {
                    reason_string: Some(why),
                    ..NO_PROPERTIES
                },
            };
            let mut out = Out::packet(&Packet::Disconnect(with_string), c.version);
            if !c.fits(&out) {
                out = Out::packet(
                    &Packet::Disconnect(Disconnect::with_reason(code)),
                    c.version,
                );
            }
            if super::trace::enabled() {
                super::trace::sent(c.client_id(), c.version, &out);
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
        let Phase::Connected(mut client) = c.state else {
            return;
        };
        self.connected = self.connected.saturating_sub(1);
        // (A shutdown leaves it in the store: published after the restart unless the client
        // comes back in time, as after a crash — `will.rs`.)
        if !matches!(reason, CloseReason::Shutdown) {
            self.forget_connected_will(conn, &client.client_id);
        }
        self.will_on_close(&mut client, reason);
        self.detach_session(client.session, conn);
    }

    /// End a session: its subscriptions go, and the messages it held for shared subscriptions go
    /// to another member of their group. (A delayed will is not its business: an expiring session
    /// publishes it (`session_expiry.rs`), a new connection for the client id cancels it, and a
    /// session that ends with its connection (expiry 0) leaves it waiting its delay, as
    /// Mosquitto does: see `will.rs`.)
    pub(super) fn end_session(&mut self, sid: SessionId) {
        let Some(session) = self.sessions.remove(sid) else {
            return;
        };
        if session.persisted {
            self.journal.record(Change::SessionGone {
                client_id: Arc::clone(&session.client_id),
            });
        }
        if let Some(at) = session.expires_at {
            self.expiring.cancel(at, sid);
        }
        self.subscriptions.remove_session(sid);
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
            let sessions = &self.sessions;
            let Some(m) = self
                .subscriptions
                .pick_shared(&key, |s| sessions.get(s).is_some_and(|s| s.conn.is_some()))
            else {
                continue;
            };
            self.deliver_to_member(m, &message, &key, &mut ids);
        }
    }
}
