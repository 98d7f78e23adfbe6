//! [`RetainedStore`]: the last retained message of each topic, in a level trie.
//!
//! Subscribing with a wildcard filter walks only the branches the filter can match, so its cost
//! follows what it finds, not the size of the store: a SUBSCRIBE of many wildcard filters that
//! match little no longer scans every retained message once per filter while the broker lock
//! is held (which let one packet stall every client for seconds).
//!
//! The trie is path-compressed: a node's label holds every level down to the next branch or
//! message, so a topic costs one or two nodes however many levels it has (a 65,535-level topic
//! is not 65,535 nodes). Nothing here recurses: topics may be deeper than any stack.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use wren_codec::TopicFilter;

use super::ids::ProcessRandomState;
use super::message::Message;

#[derive(Default)]
struct Node {
    /// The levels this node adds below its parent, joined by `/` (at least one level; the
    /// parent's key for it is the first). Empty for the root.
    label: Box<str>,
    message: Option<Arc<Message>>,
    /// Children by the first level of their label.
    children: HashMap<Box<str>, Node, ProcessRandomState>,
}

impl Node {
    fn new(label: &[&str], message: Option<Arc<Message>>) -> Node {
        Node {
            label: label.join("/").into_boxed_str(),
            message,
            children: HashMap::default(),
        }
    }

    /// How many of `levels` this node's label matches from the start, and whether it matched
    /// the whole label.
    fn common_prefix(&self, levels: &[&str]) -> (usize, bool) {
        let mut n = 0;
        for level in self.label.split('/') {
            if levels.get(n) != Some(&level) {
                return (n, false);
            }
            n += 1;
        }
        (n, true)
    }

    /// Cut the label after `at` levels (0 < `at` < label levels): this node keeps the first
    /// ones, and a new child takes the rest with the message and children.
    fn split(&mut self, at: usize) {
        let label = std::mem::take(&mut self.label);
        let levels: Vec<&str> = label.split('/').collect();
        let (head, tail) = levels.split_at(at.min(levels.len()));
        let Some(&first) = tail.first() else {
            self.label = label;
            return;
        };
        let lower = Node {
            label: tail.join("/").into_boxed_str(),
            message: self.message.take(),
            children: std::mem::take(&mut self.children),
        };
        self.children.insert(first.into(), lower);
        self.label = head.join("/").into_boxed_str();
    }

    /// Keep the invariant (every node but the root holds a message or branches): a node left
    /// with neither a message nor more than one child absorbs its only child.
    fn absorb_only_child(&mut self) {
        if self.message.is_some() || self.children.len() != 1 {
            return;
        }
        let Some(key) = self.children.keys().next().cloned() else {
            return;
        };
        let Some(mut child) = self.children.remove(&key) else {
            return;
        };
        let label = format!("{}/{}", self.label, child.label);
        self.label = label.into_boxed_str();
        self.message = child.message.take();
        self.children = std::mem::take(&mut child.children);
    }
}

/// Retained messages by topic.
#[derive(Default)]
pub struct RetainedStore {
    root: Node,
    len: usize,
    /// Whether a stored message may have a Message Expiry Interval (so the sweep can be skipped
    /// for a large store without any).
    has_expiring: bool,
}

impl fmt::Debug for RetainedStore {
    // Not derived: a derived Debug would recurse down the trie.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetainedStore")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl Drop for RetainedStore {
    // Not the derived drop: that recurses once per trie level.
    fn drop(&mut self) {
        let mut stack: Vec<Node> = self.root.children.drain().map(|(_, n)| n).collect();
        while let Some(mut node) = stack.pop() {
            stack.extend(node.children.drain().map(|(_, n)| n));
        }
    }
}

impl RetainedStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a retained message may expire (so [`RetainedStore::remove_expired`] has work).
    pub fn has_expiring(&self) -> bool {
        self.has_expiring
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Store `message` as its topic's retained message, replacing the previous one; an empty
    /// payload deletes it instead (`[MQTT-3.3.1-10]`, `[MQTT-3.3.1-11]` (3.1.1); `[MQTT-3.3.1-6]`,
    /// `[MQTT-3.3.1-7]` (5.0)).
    pub fn set(&mut self, message: Arc<Message>) {
        if message.payload().is_empty() {
            self.remove(message.topic());
            return;
        }
        self.has_expiring |= message.expires();
        let topic = message.topic().to_owned();
        let levels: Vec<&str> = topic.split('/').collect();
        let mut node = &mut self.root;
        let mut i = 0;
        loop {
            let rest = levels.get(i..).unwrap_or_default();
            let Some(&first) = rest.first() else {
                if node.message.replace(message).is_none() {
                    self.len += 1;
                }
                return;
            };
            if !node.children.contains_key(first) {
                node.children
                    .insert(first.into(), Node::new(rest, Some(message)));
                self.len += 1;
                return;
            }
            let Some(child) = node.children.get_mut(first) else {
                return;
            };
            let (common, whole) = child.common_prefix(rest);
            if common == 0 {
                // Cannot happen (the key is the label's first level); never loop on it.
                return;
            }
            if !whole {
                child.split(common);
            }
            node = child;
            i += common;
        }
    }

    /// Delete the retained message of `topic`, if any.
    fn remove(&mut self, topic: &str) {
        let levels: Vec<&str> = topic.split('/').collect();
        let mut path: Vec<&str> = Vec::new();
        if self.exact_node(&levels, Some(&mut path)).is_none() {
            return;
        }
        let Some((&last, above)) = path.split_last() else {
            return;
        };
        // Walk to the parent again, mutably, and fix up the node and its parent.
        let mut parent = &mut self.root;
        for key in above {
            let Some(next) = parent.children.get_mut(*key) else {
                return;
            };
            parent = next;
        }
        let Some(target) = parent.children.get_mut(last) else {
            return;
        };
        if target.message.take().is_none() {
            return;
        }
        self.len = self.len.saturating_sub(1);
        if target.children.is_empty() {
            parent.children.remove(last);
            if !above.is_empty() {
                parent.absorb_only_child();
            }
        } else {
            target.absorb_only_child();
        }
    }

    /// Drop messages whose Message Expiry Interval has passed (5.0 §3.3.1.3).
    pub fn remove_expired(&mut self, now_ms: u64) {
        if !self.has_expiring {
            return;
        }
        let mut expired = Vec::new();
        let mut expiring = false;
        each_message(&self.root, |m| {
            if m.is_expired(now_ms) {
                expired.push(Arc::clone(m));
            } else {
                expiring |= m.expires();
            }
        });
        for m in expired {
            self.remove(m.topic());
        }
        self.has_expiring = expiring;
    }

    /// The node whose path is exactly `levels`, if there is one; `path` gets the key of each
    /// node on the way down.
    fn exact_node<'t>(
        &self,
        levels: &[&'t str],
        mut path: Option<&mut Vec<&'t str>>,
    ) -> Option<&Node> {
        let mut node = &self.root;
        let mut i = 0;
        while let Some(&first) = levels.get(i) {
            let child = node.children.get(first)?;
            let (common, whole) = child.common_prefix(levels.get(i..).unwrap_or_default());
            if !whole {
                return None;
            }
            if let Some(path) = path.as_deref_mut() {
                path.push(first);
            }
            node = child;
            i += common;
        }
        Some(node)
    }

    /// Every retained message.
    pub fn all(&self) -> Vec<Arc<Message>> {
        let mut out = Vec::new();
        subtree(&self.root, &mut out);
        out
    }

    /// The retained message of `topic`.
    pub fn get(&self, topic: &str) -> Option<&Arc<Message>> {
        let levels: Vec<&str> = topic.split('/').collect();
        self.exact_node(&levels, None)?.message.as_ref()
    }

    /// Append every retained message matching `filter` to `out` (§4.7: `+` one level, `#` the
    /// parent level and everything below, and no `$` topic for a filter that starts with a
    /// wildcard). Only the branches the filter can match are visited.
    pub fn matching(&self, filter: TopicFilter<'_>, out: &mut Vec<Arc<Message>>) {
        let levels: Vec<&str> = filter.levels().collect();
        // (node, filter levels its path has matched)
        let mut stack: Vec<(&Node, usize)> = vec![(&self.root, 0)];
        while let Some((node, i)) = stack.pop() {
            #[cfg(test)]
            tests::VISITS.with(|v| v.set(v.get() + 1));
            let at_root = std::ptr::eq(node, &self.root);
            match levels.get(i) {
                None => out.extend(node.message.iter().cloned()),
                Some(&"#") => {
                    // 3.1.1 and 5.0 §4.7.1.2: `#` also matches the parent level (`a/#`
                    // matches `a`).
                    if !at_root {
                        out.extend(node.message.iter().cloned());
                    }
                    for (key, child) in &node.children {
                        if !(at_root && key.starts_with('$')) {
                            subtree(child, out);
                        }
                    }
                }
                Some(&"+") => {
                    for (key, child) in &node.children {
                        // [MQTT-4.7.2-1] (the same id in 3.1.1 and 5.0): no `$` topic for a
                        // filter starting with a wildcard.
                        if !(at_root && key.starts_with('$')) {
                            descend(child, &levels, i, out, &mut stack);
                        }
                    }
                }
                Some(&level) => {
                    if let Some(child) = node.children.get(level) {
                        descend(child, &levels, i, out, &mut stack);
                    }
                }
            }
        }
    }
}

/// Match `child`'s label against the filter from level `i`: push it to go on below, or take its
/// whole subtree if a `#` is reached inside the label.
fn descend<'n>(
    child: &'n Node,
    levels: &[&str],
    i: usize,
    out: &mut Vec<Arc<Message>>,
    stack: &mut Vec<(&'n Node, usize)>,
) {
    let mut j = i;
    for level in child.label.split('/') {
        match levels.get(j) {
            // The topic has more levels than the filter.
            None => return,
            Some(&"#") => return subtree(child, out),
            Some(&"+") => {}
            Some(&l) if l == level => {}
            Some(_) => return,
        }
        j += 1;
    }
    stack.push((child, j));
}

/// Every message at or below `node`.
fn subtree(node: &Node, out: &mut Vec<Arc<Message>>) {
    each_message(node, |m| out.push(Arc::clone(m)));
}

/// Call `f` for every message at or below `node` (a loop: the trie may be deeper than a stack).
fn each_message(node: &Node, mut f: impl FnMut(&Arc<Message>)) {
    let mut stack = vec![node];
    while let Some(n) = stack.pop() {
        #[cfg(test)]
        tests::VISITS.with(|v| v.set(v.get() + 1));
        if let Some(m) = &n.message {
            f(m);
        }
        stack.extend(n.children.values());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_codec::{QoS, TopicName};

    thread_local! {
        /// Trie nodes visited by `matching` on this thread.
        pub(super) static VISITS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    fn visits(f: impl FnOnce()) -> usize {
        VISITS.with(|v| v.set(0));
        f();
        VISITS.with(|v| v.get())
    }

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

    /// Every node but the root holds a message or branches, and `len` counts the messages.
    fn check_shape(s: &RetainedStore) {
        let mut stack: Vec<&Node> = s.root.children.values().collect();
        let mut messages = usize::from(s.root.message.is_some());
        while let Some(n) = stack.pop() {
            assert!(!n.label.is_empty() || n.message.is_some() || !n.children.is_empty());
            assert!(
                n.message.is_some() || n.children.len() >= 2,
                "node {:?} neither holds a message nor branches",
                n.label
            );
            for (key, child) in &n.children {
                assert_eq!(child.label.split('/').next(), Some(&**key));
            }
            messages += usize::from(n.message.is_some());
            stack.extend(n.children.values());
        }
        assert_eq!(messages, s.len());
    }

    /// The trie against a plain map and `TopicFilter::matches`, over random sets and deletes of
    /// short topics (empty levels and `$` topics included) and every short filter.
    #[test]
    fn trie_matches_the_flat_model() {
        const LEVELS: [&str; 5] = ["a", "b", "", "$s", "c"];
        const FILTER_LEVELS: [&str; 6] = ["a", "b", "", "$s", "+", "#"];
        let mut filters = Vec::new();
        let mut partial: Vec<String> = FILTER_LEVELS.iter().map(|l| l.to_string()).collect();
        for _ in 0..3 {
            filters.extend(
                partial
                    .iter()
                    .filter(|f| TopicFilter::new(f).is_ok())
                    .cloned(),
            );
            partial = partial
                .iter()
                .flat_map(|f| FILTER_LEVELS.iter().map(move |l| format!("{f}/{l}")))
                .collect();
        }
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut store = RetainedStore::new();
        let mut model: HashMap<String, Vec<u8>> = HashMap::new();
        for step in 0..3000 {
            let depth = 1 + next(4);
            let topic = (0..depth)
                .map(|_| LEVELS[next(LEVELS.len() as u64) as usize])
                .collect::<Vec<_>>()
                .join("/");
            if topic.is_empty() {
                continue;
            }
            if next(3) == 0 {
                store.set(Message::new(&topic, b"", QoS::AtMostOnce, true));
                model.remove(&topic);
            } else {
                let payload = step.to_string().into_bytes();
                store.set(Message::new(&topic, &payload, QoS::AtMostOnce, true));
                model.insert(topic, payload);
            }
            if step % 100 != 99 {
                continue;
            }
            check_shape(&store);
            assert_eq!(store.len(), model.len());
            for (topic, payload) in &model {
                assert_eq!(store.get(topic).map(|m| m.payload()), Some(&payload[..]));
            }
            for f in &filters {
                let filter = TopicFilter::new(f).unwrap();
                let mut want: Vec<&str> = model
                    .keys()
                    .filter(|t| filter.matches(TopicName::new(t).unwrap()))
                    .map(String::as_str)
                    .collect();
                want.sort_unstable();
                assert_eq!(topics(&store, f), want, "filter {f:?}");
            }
        }
        assert!(model.len() > 20, "the walk kept a sizeable store");
    }

    #[test]
    fn deep_topics_are_stored_matched_and_deleted() {
        let mut s = RetainedStore::new();
        // 65,535 empty levels: the deepest topic a packet can carry, in one node.
        let deep = "/".repeat(65_534);
        s.set(Message::new(&deep, b"deep", QoS::AtMostOnce, true));
        // A chain of topics each one level below the last: one node per message.
        let mut chain = String::from("c");
        for _ in 0..2000 {
            s.set(Message::new(&chain, b"x", QoS::AtMostOnce, true));
            chain.push_str("/c");
        }
        check_shape(&s);
        assert_eq!(s.len(), 2001);
        assert_eq!(s.get(&deep).unwrap().payload(), b"deep");
        assert!(
            topics(&s, "/+/#") == [deep.clone()],
            "only the deep topic starts empty"
        );
        let mut all = Vec::new();
        s.matching(TopicFilter::new("#").unwrap(), &mut all);
        assert_eq!(all.len(), 2001);
        let mut c = Vec::new();
        s.matching(TopicFilter::new("c/c/c/+").unwrap(), &mut c);
        assert_eq!(c.len(), 1);
        s.set(Message::new(&deep, b"", QoS::AtMostOnce, true));
        assert!(s.get(&deep).is_none());
        assert_eq!(s.len(), 2000);
        check_shape(&s);
        // Dropping the store does not recurse down the chain.
        drop(s);
    }

    #[test]
    fn nothing_is_visited_for_filters_that_match_nothing() {
        let mut s = RetainedStore::new();
        for i in 0..1000 {
            s.set(Message::new(
                &format!("n{i}/x"),
                b"1",
                QoS::AtMostOnce,
                true,
            ));
        }
        // Each of these is one lookup at the first level, whatever the store holds (the scan
        // of every message per wildcard filter let one SUBSCRIBE stall the broker).
        for i in 0..1000 {
            let f = format!("m{i}/#");
            assert_eq!(visits(|| assert!(topics(&s, &f).is_empty())), 1);
        }
        assert_eq!(visits(|| assert_eq!(topics(&s, "n7/#"), ["n7/x"])), 2);
        assert_eq!(
            visits(|| assert_eq!(topics(&s, "n7/+/+"), [] as [&str; 0])),
            2
        );
        assert_eq!(topics(&s, "+/y").len(), 0);
        assert_eq!(topics(&s, "+/x").len(), 1000);
    }
}
