//! Routing: who receives a message. Retained storage, the matching subscriptions (one delivery
//! per session at the highest granted QoS, with every matching Subscription Identifier), No Local,
//! Retain As Published, and one member of each matching shared group.

use std::num::NonZeroU32;
use std::sync::Arc;

use wren_codec::QoS;

use super::Broker;
use super::delivery::Send;
use super::ids::SessionId;
use super::message::Message;
use super::persist::Change;
use super::subscriptions::{Sub, group_by_session};

impl Broker {
    /// Store or delete the message as retained, and deliver it to every matching session once
    /// (at min(its QoS, the highest granted QoS), with every matching Subscription Identifier),
    /// and to one member of every matching shared subscription. RETAIN is cleared unless a
    /// matching subscription has Retain As Published ([MQTT-3.3.1-12], [MQTT-3.3.1-13] (5.0)).
    /// `origin` is the publisher's session, for No Local. Returns the number of deliveries.
    pub(super) fn route(&mut self, message: Arc<Message>, origin: Option<SessionId>) -> usize {
        if message.retain() {
            self.retained.set(Arc::clone(&message));
            // `$SYS` is the broker's own, published again every `sys_interval`: not stored.
            if self.journal.on() && !message.topic().starts_with('$') {
                self.journal.record(Change::Retained {
                    topic: message.topic().into(),
                    message: (!message.payload().is_empty()).then(|| Arc::clone(&message)),
                });
            }
        }
        let mut matches = std::mem::take(&mut self.matches);
        let mut picks = std::mem::take(&mut self.shared_picks);
        let mut ids = std::mem::take(&mut self.sub_ids);
        matches.clear();
        picks.clear();
        let sessions = &self.sessions;
        self.subscriptions.matches(
            message.topic(),
            |sid| sessions.get(sid).is_some_and(|s| s.conn.is_some()),
            &mut matches,
            &mut picks,
        );
        if let Some(o) = origin {
            // [MQTT-3.8.3-3] (5.0): No Local.
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
            let send = Send {
                qos: qos.min(message.qos()),
                retain,
                sub_ids: &ids,
                shared: None,
            };
            self.deliver(first.session, &message, send);
            count = count.saturating_add(1);
        }
        // Shared subscriptions: each matching group gets the message once, at the member whose
        // turn it was (no No Local there: [MQTT-3.8.3-4] (5.0) makes it a protocol error).
        for (member, key) in picks.drain(..) {
            self.deliver_to_member(member, &message, &key, &mut ids);
            count = count.saturating_add(1);
        }
        self.matches = matches;
        self.shared_picks = picks;
        self.sub_ids = ids;
        count
    }

    /// Deliver `message` to the picked `member` of the shared group `key` (at its granted QoS,
    /// with its identifier; `ids` is a reused buffer).
    pub(super) fn deliver_to_member(
        &mut self,
        member: Sub,
        message: &Arc<Message>,
        key: &Arc<str>,
        ids: &mut Vec<u32>,
    ) {
        ids.clear();
        ids.extend(member.id.map(NonZeroU32::get));
        let send = Send {
            qos: member.qos.min(message.qos()),
            retain: message.retain() && member.retain_as_published,
            sub_ids: ids,
            shared: Some(key),
        };
        self.deliver(member.session, message, send);
    }
}
