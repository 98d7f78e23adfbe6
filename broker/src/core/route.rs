//! Routing: who receives a message. Retained storage, the matching subscriptions (one delivery
//! per session at the highest granted QoS, with every matching Subscription Identifier), No Local,
//! Retain As Published, and one member of each matching shared group.

use std::num::NonZeroU32;
use std::sync::Arc;

use wren_codec::{QoS, TopicFilter, TopicName};

use super::Broker;
use super::delivery::Send;
use super::ids::SessionId;
use super::message::Message;
use super::subscriptions::{Sub, group_by_session, pick_member};

impl Broker {
    /// Store or delete the message as retained, and deliver it to every matching session once
    /// (at min(its QoS, the highest granted QoS), with every matching Subscription Identifier),
    /// and to one member of every matching shared subscription. RETAIN is cleared unless a
    /// matching subscription has Retain As Published ([MQTT-3.3.1-12], [MQTT-3.3.1-13]).
    /// `origin` is the publisher's session, for No Local. Returns the number of deliveries.
    pub(super) fn route(&mut self, message: Arc<Message>, origin: Option<SessionId>) -> usize {
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
            let send = Send {
                qos: qos.min(message.qos()),
                retain,
                sub_ids: &ids,
                shared: None,
            };
            self.deliver(first.session, &message, send);
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
    pub(super) fn route_shared(&mut self, message: &Arc<Message>, ids: &mut Vec<u32>) -> usize {
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
            let send = Send {
                qos: m.qos.min(message.qos()),
                retain,
                sub_ids: ids,
                shared: Some(&key),
            };
            self.deliver(m.session, message, send);
        }
        count
    }
}
