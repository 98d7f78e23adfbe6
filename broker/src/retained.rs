//! [`RetainedStore`]: the last retained message of each topic.

use std::collections::HashMap;
use std::sync::Arc;

use wren_codec::{TopicFilter, TopicName};

use crate::message::Message;

/// Retained messages by topic.
#[derive(Debug, Default)]
pub struct RetainedStore {
    by_topic: HashMap<Box<str>, Arc<Message>>,
    /// Whether a stored message may have a Message Expiry Interval (so the sweep can be skipped
    /// for a large store without any).
    has_expiring: bool,
}

impl RetainedStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.by_topic.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }

    /// Store `message` as its topic's retained message, replacing the previous one; an empty
    /// payload deletes it instead (`[MQTT-3.3.1-10]`, `[MQTT-3.3.1-11]`).
    pub fn set(&mut self, message: Arc<Message>) {
        if message.payload().is_empty() {
            self.by_topic.remove(message.topic());
        } else {
            self.has_expiring |= message.expires();
            self.by_topic.insert(message.topic().into(), message);
        }
    }

    /// Drop messages whose Message Expiry Interval has passed ([MQTT-3.3.2-5]).
    pub fn remove_expired(&mut self, now_ms: u64) {
        if !self.has_expiring {
            return;
        }
        self.by_topic.retain(|_, m| !m.is_expired(now_ms));
        self.has_expiring = self.by_topic.values().any(|m| m.expires());
    }

    /// The retained message of one topic.
    pub fn get(&self, topic: &str) -> Option<&Arc<Message>> {
        self.by_topic.get(topic)
    }

    /// Append every retained message matching `filter` to `out`. A filter without wildcards is
    /// one lookup; a wildcard filter scans the store (subscribing is rare next to publishing).
    pub fn matching(&self, filter: TopicFilter<'_>, out: &mut Vec<Arc<Message>>) {
        if !filter.has_wildcards() {
            out.extend(self.by_topic.get(filter.as_str()).cloned());
            return;
        }
        out.extend(
            self.by_topic
                .iter()
                .filter(|(topic, _)| TopicName::new(topic).is_ok_and(|t| filter.matches(t)))
                .map(|(_, m)| Arc::clone(m)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_codec::QoS;

    fn topics(store: &RetainedStore, filter: &str) -> Vec<String> {
        let mut out = Vec::new();
        store.matching(TopicFilter::new(filter).unwrap(), &mut out);
        let mut t: Vec<String> = out.iter().map(|m| m.topic().to_owned()).collect();
        t.sort();
        t
    }

    #[test]
    fn store_replace_delete_and_match() {
        let mut s = RetainedStore::new();
        s.set(Message::new("a/b", b"1", QoS::AtMostOnce, true));
        s.set(Message::new("a/c", b"2", QoS::AtLeastOnce, true));
        s.set(Message::new("$SYS/x", b"3", QoS::AtMostOnce, true));
        assert_eq!(s.len(), 3);
        s.set(Message::new("a/b", b"new", QoS::AtMostOnce, true));
        assert_eq!(s.len(), 3);
        assert_eq!(s.get("a/b").unwrap().payload(), b"new");
        assert_eq!(topics(&s, "a/+"), ["a/b", "a/c"]);
        assert_eq!(topics(&s, "#"), ["a/b", "a/c"], "no $ topics for leading #");
        assert_eq!(topics(&s, "$SYS/#"), ["$SYS/x"]);
        assert_eq!(topics(&s, "a/c"), ["a/c"]);
        s.set(Message::new("a/b", b"", QoS::AtMostOnce, true));
        assert_eq!(topics(&s, "a/#"), ["a/c"]);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn expired_messages_are_swept() {
        let mut s = RetainedStore::new();
        let props = wren_codec::Properties {
            message_expiry_interval: Some(2),
            ..wren_codec::properties::NO_PROPERTIES
        };
        s.set(Message::with_properties(
            "e",
            b"1",
            QoS::AtMostOnce,
            true,
            &props,
            1000,
        ));
        s.set(Message::new("keep", b"2", QoS::AtMostOnce, true));
        s.remove_expired(2999);
        assert_eq!(s.len(), 2);
        s.remove_expired(3000);
        assert_eq!(topics(&s, "#"), ["keep"]);
        assert!(!s.has_expiring);
    }
}
