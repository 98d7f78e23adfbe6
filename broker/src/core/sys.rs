//! `$SYS/broker/...`: the counters ([`Stats`]) and their periodic publication.

use wren_codec::QoS;

use super::Broker;
use super::message::Message;

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
    /// Times the durable store could not write (a full disk, an I/O error; `persist.rs`).
    pub store_failures: u64,
    /// QoS 1/2 messages refused while it could not.
    pub store_refused: u64,
}

impl Broker {
    /// A bridge's state, `1` connected or `0` not, retained on `topic` (Mosquitto's
    /// `$SYS/broker/connection/<remote client id>/state`), published by the broker itself.
    pub fn bridge_state(&mut self, topic: &str, connected: bool, now_ms: u64) {
        self.input(now_ms, |b| {
            let payload: &[u8] = if connected { b"1" } else { b"0" };
            b.route(Message::new(topic, payload, QoS::AtLeastOnce, true), None);
        });
    }

    pub(super) fn publish_sys(&mut self, now_ms: u64) {
        let uptime = now_ms.saturating_sub(self.started_ms) / 1000;
        let s = self.stats.clone();
        let items: [(&str, String); 17] = [
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
            ("subscriptions/count", self.subscriptions.len().to_string()),
            ("retained messages/count", self.retained.len().to_string()),
            ("persistence/failures", s.store_failures.to_string()),
            ("persistence/refused", s.store_refused.to_string()),
        ];
        for (name, value) in items {
            let topic = format!("$SYS/broker/{name}");
            let message = Message::new(&topic, value.as_bytes(), QoS::AtMostOnce, true);
            self.route(message, None);
        }
    }
}
