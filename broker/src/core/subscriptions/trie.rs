//! [`SubscriptionIndex`]: a topic trie keyed by level. `+` and `#` are ordinary children named
//! `"+"` and `"#"`, so matching a topic walks one path per level plus the wildcard branches.

use std::collections::HashMap;
use std::num::NonZeroU32;

use wren_codec::QoS;

use crate::core::ids::{ProcessRandomState, SessionId};

/// One subscription as the index keeps it: the session, the granted QoS and the 5.0
/// subscription options that decide how a matching message is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sub {
    /// The subscribing session.
    pub session: SessionId,
    /// Granted QoS.
    pub qos: QoS,
    /// 5.0 No Local: not forwarded to the publisher's own session ([MQTT-3.8.3-3]).
    pub no_local: bool,
    /// 5.0 Retain As Published: RETAIN kept when forwarding ([MQTT-3.3.1-12], [MQTT-3.3.1-13]).
    pub retain_as_published: bool,
    /// 5.0 Subscription Identifier, sent with matching messages ([MQTT-3.3.4-3]).
    pub id: Option<NonZeroU32>,
}

impl Sub {
    /// A plain (3.1.1-style) subscription.
    pub fn new(session: SessionId, qos: QoS) -> Sub {
        Sub {
            session,
            qos,
            no_local: false,
            retain_as_published: false,
            id: None,
        }
    }
}

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node, ProcessRandomState>,
    /// Subscriptions whose filter ends at this node.
    subscribers: Vec<Sub>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.subscribers.is_empty()
    }
}

/// Every subscription of every session, indexed for matching.
#[derive(Debug, Default)]
pub struct SubscriptionIndex {
    root: Node,
    count: usize,
}

impl SubscriptionIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Add or replace (`[MQTT-3.8.4-3]`: a re-subscription replaces the options) a
    /// subscription. Returns `true` if it is new.
    pub fn subscribe(&mut self, filter: &str, sub: Sub) -> bool {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        if let Some(entry) = node
            .subscribers
            .iter_mut()
            .find(|s| s.session == sub.session)
        {
            *entry = sub;
            false
        } else {
            node.subscribers.push(sub);
            self.count = self.count.saturating_add(1);
            true
        }
    }

    /// Remove a subscription; returns whether it existed. Empty branches are pruned.
    pub fn unsubscribe(&mut self, filter: &str, session: SessionId) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove(&mut self.root, &levels, session);
        if removed {
            self.count = self.count.saturating_sub(1);
        }
        removed
    }

    /// Append every subscription matching `topic` (a valid topic name) to `out`: a session with
    /// several matching filters appears several times (see [`dedup_max_qos`]).
    pub fn matches(&self, topic: &str, out: &mut Vec<Sub>) {
        // [MQTT-4.7.2-1]: a leading wildcard does not match a `$` topic.
        let system = topic.starts_with('$');
        walk(&self.root, topic.split('/'), true, system, out);
    }
}

fn walk<'t>(
    node: &Node,
    mut levels: std::str::Split<'t, char>,
    first: bool,
    system: bool,
    out: &mut Vec<Sub>,
) {
    let wildcards_allowed = !(first && system);
    if wildcards_allowed && let Some(hash) = node.children.get("#") {
        // `a/#` matches `a` and everything below it.
        out.extend_from_slice(&hash.subscribers);
    }
    let Some(level) = levels.next() else {
        out.extend_from_slice(&node.subscribers);
        return;
    };
    if let Some(child) = node.children.get(level) {
        walk(child, levels.clone(), false, system, out);
    }
    if wildcards_allowed && let Some(plus) = node.children.get("+") {
        walk(plus, levels, false, system, out);
    }
}

fn remove(node: &mut Node, levels: &[&str], session: SessionId) -> bool {
    let Some((first, rest)) = levels.split_first() else {
        let before = node.subscribers.len();
        node.subscribers.retain(|s| s.session != session);
        return node.subscribers.len() != before;
    };
    let Some(child) = node.children.get_mut(*first) else {
        return false;
    };
    let removed = remove(child, rest, session);
    if child.is_empty() {
        node.children.remove(*first);
    }
    removed
}

/// Reduce matches to one per session at the highest granted QoS: overlapping subscriptions
/// deliver a message once (as Mosquitto does; allowed by `[MQTT-3.3.5-1]`).
/// (The broker itself groups matches by session with [`group_by_session`], to also collect
/// every matching subscription's identifier.)
#[cfg(test)]
fn dedup_max_qos(matches: &mut Vec<(SessionId, QoS)>) {
    if matches.len() < 2 {
        return;
    }
    // Highest QoS first within a session, so `dedup_by_key` keeps it.
    matches.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    matches.dedup_by_key(|m| m.0);
}

/// Sort matches so each session's subscriptions are adjacent (see `slice::chunk_by`).
pub fn group_by_session(matches: &mut [Sub]) {
    if matches.len() > 1 {
        matches.sort_unstable_by_key(|s| s.session);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(idx: &SubscriptionIndex, topic: &str) -> Vec<(SessionId, QoS)> {
        let mut subs = Vec::new();
        idx.matches(topic, &mut subs);
        let mut out: Vec<_> = subs.iter().map(|s| (s.session, s.qos)).collect();
        dedup_max_qos(&mut out);
        out
    }

    trait Compat {
        fn sub(&mut self, filter: &str, session: SessionId, qos: QoS) -> bool;
    }
    impl Compat for SubscriptionIndex {
        fn sub(&mut self, filter: &str, session: SessionId, qos: QoS) -> bool {
            self.subscribe(filter, Sub::new(session, qos))
        }
    }

    const A: SessionId = SessionId(1);
    const B: SessionId = SessionId(2);

    #[test]
    fn exact_plus_and_hash() {
        let mut idx = SubscriptionIndex::new();
        assert!(idx.sub("a/b/c", A, QoS::AtMostOnce));
        assert!(idx.sub("a/+/c", B, QoS::AtLeastOnce));
        assert!(idx.sub("a/#", B, QoS::ExactlyOnce));
        assert_eq!(idx.len(), 3);
        assert_eq!(
            matching(&idx, "a/b/c"),
            vec![(A, QoS::AtMostOnce), (B, QoS::ExactlyOnce)]
        );
        assert_eq!(
            matching(&idx, "a"),
            vec![(B, QoS::ExactlyOnce)],
            "a/# matches a"
        );
        assert_eq!(matching(&idx, "a/x/c/d"), vec![(B, QoS::ExactlyOnce)]);
        assert!(matching(&idx, "b").is_empty());
    }

    #[test]
    fn plus_matches_one_level_only_and_empty_levels() {
        let mut idx = SubscriptionIndex::new();
        idx.sub("sport/+", A, QoS::AtMostOnce);
        idx.sub("+/+", B, QoS::AtMostOnce);
        assert_eq!(matching(&idx, "sport/tennis").len(), 2);
        assert_eq!(
            matching(&idx, "sport/"),
            vec![(A, QoS::AtMostOnce), (B, QoS::AtMostOnce)]
        );
        assert!(matching(&idx, "sport").is_empty());
        assert_eq!(matching(&idx, "/finance"), vec![(B, QoS::AtMostOnce)]);
        assert!(matching(&idx, "sport/tennis/x").is_empty());
    }

    #[test]
    fn dollar_topics_need_a_literal_first_level() {
        let mut idx = SubscriptionIndex::new();
        idx.sub("#", A, QoS::AtMostOnce);
        idx.sub("+/broker/uptime", A, QoS::AtMostOnce);
        idx.sub("$SYS/#", B, QoS::AtMostOnce);
        assert_eq!(
            matching(&idx, "$SYS/broker/uptime"),
            vec![(B, QoS::AtMostOnce)]
        );
        assert_eq!(
            matching(&idx, "x/broker/uptime"),
            vec![(A, QoS::AtMostOnce)]
        );
    }

    #[test]
    fn resubscribe_replaces_and_unsubscribe_prunes() {
        let mut idx = SubscriptionIndex::new();
        assert!(idx.sub("a/b", A, QoS::AtMostOnce));
        assert!(!idx.sub("a/b", A, QoS::ExactlyOnce));
        assert_eq!(idx.len(), 1);
        assert_eq!(matching(&idx, "a/b"), vec![(A, QoS::ExactlyOnce)]);
        assert!(!idx.unsubscribe("a/b", B));
        assert!(!idx.unsubscribe("a/c", A));
        assert!(idx.unsubscribe("a/b", A));
        assert!(idx.is_empty());
        assert!(idx.root.is_empty(), "branches pruned");
        assert!(matching(&idx, "a/b").is_empty());
    }

    #[test]
    fn overlapping_subscriptions_dedup_to_highest_qos() {
        let mut idx = SubscriptionIndex::new();
        idx.sub("a/#", A, QoS::AtMostOnce);
        idx.sub("a/+", A, QoS::ExactlyOnce);
        idx.sub("a/b", A, QoS::AtLeastOnce);
        idx.sub("#", B, QoS::AtLeastOnce);
        assert_eq!(
            matching(&idx, "a/b"),
            vec![(A, QoS::ExactlyOnce), (B, QoS::AtLeastOnce)]
        );
    }
}
