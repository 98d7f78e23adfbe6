//! [`SubscriptionIndex`]: a topic trie keyed by level. `+` and `#` are ordinary children named
//! `"+"` and `"#"`, so matching a topic walks one path per level plus the wildcard branches.

use std::collections::HashMap;

use wren_codec::QoS;

use crate::session::SessionId;

#[derive(Debug, Default)]
struct Node {
    children: HashMap<Box<str>, Node>,
    /// Subscriptions whose filter ends at this node, with their granted QoS.
    subscribers: Vec<(SessionId, QoS)>,
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

    /// Add or replace (`[MQTT-3.8.4-3]`: a re-subscription replaces the QoS) a subscription.
    /// Returns `true` if it is new.
    pub fn subscribe(&mut self, filter: &str, session: SessionId, qos: QoS) -> bool {
        let mut node = &mut self.root;
        for level in filter.split('/') {
            node = node.children.entry(level.into()).or_default();
        }
        if let Some(entry) = node.subscribers.iter_mut().find(|(s, _)| *s == session) {
            entry.1 = qos;
            false
        } else {
            node.subscribers.push((session, qos));
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
    pub fn matches(&self, topic: &str, out: &mut Vec<(SessionId, QoS)>) {
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
    out: &mut Vec<(SessionId, QoS)>,
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
        node.subscribers.retain(|(s, _)| *s != session);
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
pub fn dedup_max_qos(matches: &mut Vec<(SessionId, QoS)>) {
    if matches.len() < 2 {
        return;
    }
    // Highest QoS first within a session, so `dedup_by_key` keeps it.
    matches.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    matches.dedup_by_key(|m| m.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matching(idx: &SubscriptionIndex, topic: &str) -> Vec<(SessionId, QoS)> {
        let mut out = Vec::new();
        idx.matches(topic, &mut out);
        dedup_max_qos(&mut out);
        out
    }

    const A: SessionId = SessionId(1);
    const B: SessionId = SessionId(2);

    #[test]
    fn exact_plus_and_hash() {
        let mut idx = SubscriptionIndex::new();
        assert!(idx.subscribe("a/b/c", A, QoS::AtMostOnce));
        assert!(idx.subscribe("a/+/c", B, QoS::AtLeastOnce));
        assert!(idx.subscribe("a/#", B, QoS::ExactlyOnce));
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
        idx.subscribe("sport/+", A, QoS::AtMostOnce);
        idx.subscribe("+/+", B, QoS::AtMostOnce);
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
        idx.subscribe("#", A, QoS::AtMostOnce);
        idx.subscribe("+/broker/uptime", A, QoS::AtMostOnce);
        idx.subscribe("$SYS/#", B, QoS::AtMostOnce);
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
        assert!(idx.subscribe("a/b", A, QoS::AtMostOnce));
        assert!(!idx.subscribe("a/b", A, QoS::ExactlyOnce));
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
        idx.subscribe("a/#", A, QoS::AtMostOnce);
        idx.subscribe("a/+", A, QoS::ExactlyOnce);
        idx.subscribe("a/b", A, QoS::AtLeastOnce);
        idx.subscribe("#", B, QoS::AtLeastOnce);
        assert_eq!(
            matching(&idx, "a/b"),
            vec![(A, QoS::ExactlyOnce), (B, QoS::AtLeastOnce)]
        );
    }
}
