//! [`Subscriptions`]: the one owner of every subscription — each session's filters, the topic
//! trie that matches them (`trie.rs`) and the shared groups `$share/{group}/{filter}`
//! (`shared.rs`), which hang on the trie node of their `{filter}`. The handlers go through its
//! API only, so the three views cannot drift apart.
//!
//! Who holds what:
//! - a trie node holds the subscriptions to its filter ([`Sub`], one per session) and the shared
//!   groups of that filter (each with its members and round-robin turn);
//! - `by_session` holds, per session, where its subscriptions are: the node, and for a shared
//!   one which group there (8 bytes each, the first inline). It answers the per-session
//!   questions (how many, for `max_subscriptions_per_client`; which, when the session ends)
//!   without storing any filter string a second time.

mod shared;
#[cfg(test)]
mod tests;
mod trie;

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use wren_codec::{QoS, TopicFilter};

use crate::core::ids::{IdHash, SessionId};
use shared::SharedGroup;
use trie::{NodeId, Trie};

/// One subscription as the broker keeps it: the session, the granted QoS and the 5.0
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

/// Where one of a session's subscriptions is: its trie node and, for a shared subscription,
/// the group's id at that node (0: not shared).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    node: NodeId,
    group: u32,
}

/// A session's subscriptions. Most sessions have one: it is inline. The others are behind a
/// thin box, which keeps this 16 bytes (a `Vec` would make it 24, in every session's slot).
#[derive(Debug)]
#[allow(clippy::box_collection)]
enum Filters {
    One(Entry),
    Many(Box<Vec<Entry>>),
}

impl Filters {
    fn as_slice(&self) -> &[Entry] {
        match self {
            Filters::One(e) => std::slice::from_ref(e),
            Filters::Many(v) => v,
        }
    }

    fn push(&mut self, entry: Entry) {
        match self {
            Filters::One(first) => *self = Filters::Many(Box::new(vec![*first, entry])),
            Filters::Many(v) => v.push(entry),
        }
    }
}

/// A subscription refused because its session holds `max_subscriptions_per_client` already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::core) struct QuotaExceeded;

/// Every subscription of every session (see the module documentation).
#[derive(Debug, Default)]
pub struct Subscriptions {
    trie: Trie,
    by_session: HashMap<SessionId, Filters, IdHash>,
    /// Every subscription, shared group memberships included.
    count: usize,
    /// The matched nodes holding shared groups, reused by every publish.
    matched_groups: Vec<NodeId>,
}

impl Subscriptions {
    /// None yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many subscriptions all sessions hold, each membership of a shared group counting as
    /// one (as Mosquitto counts them): the figure of `$SYS/broker/subscriptions/count` and
    /// `ServerHandle::subscription_count`.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// How many subscriptions `session` holds (shared ones included).
    pub(in crate::core) fn session_len(&self, session: SessionId) -> usize {
        self.by_session
            .get(&session)
            .map_or(0, |f| f.as_slice().len())
    }

    /// Add `sub` to `filter` (`$share/{group}/{filter}` joins that group), or replace its
    /// session's subscription there ([MQTT-3.8.4-3] (3.1.1 and 5.0): a re-subscription
    /// replaces the options). Returns whether it existed. A session holding `max_per_session`
    /// subscriptions (0: no limit) may only replace one.
    pub(in crate::core) fn subscribe(
        &mut self,
        filter: TopicFilter<'_>,
        sub: Sub,
        max_per_session: usize,
    ) -> Result<bool, QuotaExceeded> {
        let (inner, key) = split_shared(filter).ok_or(QuotaExceeded)?;
        let session = sub.session;
        if max_per_session > 0 && self.session_len(session) >= max_per_session {
            let node = self.trie.find(inner).ok_or(QuotaExceeded)?;
            let node = self.trie.node_mut(node).ok_or(QuotaExceeded)?;
            let replaced = match key {
                None => node.subscribers.replace(sub),
                Some(key) => group_mut(&mut node.shared, key)
                    .and_then(|g| g.members.iter_mut().find(|m| m.session == session))
                    .map(|m| *m = sub)
                    .is_some(),
            };
            return if replaced {
                Ok(true)
            } else {
                Err(QuotaExceeded)
            };
        }
        let id = self.trie.find_or_insert(inner).ok_or(QuotaExceeded)?;
        let node = self.trie.node_mut(id).ok_or(QuotaExceeded)?;
        let (existed, group) = match key {
            None => (node.subscribers.upsert(sub), 0),
            Some(key) => {
                let groups = node.shared.get_or_insert_default();
                let group = match groups.iter().position(|g| *g.key == *key) {
                    Some(i) => groups.get_mut(i),
                    None => {
                        // Unique among the node's groups, and never 0.
                        let id = groups.iter().map(|g| g.id).max().unwrap_or(0);
                        groups.push(SharedGroup {
                            id: id.checked_add(1).ok_or(QuotaExceeded)?,
                            key: key.into(),
                            members: Vec::new(),
                            next: 0,
                        });
                        groups.last_mut()
                    }
                };
                let group = group.ok_or(QuotaExceeded)?;
                let existed = match group.members.iter_mut().find(|m| m.session == session) {
                    Some(m) => {
                        *m = sub;
                        true
                    }
                    None => {
                        group.members.push(sub);
                        false
                    }
                };
                (existed, group.id)
            }
        };
        if !existed {
            let entry = Entry { node: id, group };
            self.by_session
                .entry(session)
                .and_modify(|f| f.push(entry))
                .or_insert(Filters::One(entry));
            self.count = self.count.saturating_add(1);
        }
        Ok(existed)
    }

    /// Remove `session`'s subscription to `filter`; returns whether it existed. Trie branches
    /// left empty are pruned, and a shared group left without members goes.
    pub(in crate::core) fn unsubscribe(
        &mut self,
        filter: TopicFilter<'_>,
        session: SessionId,
    ) -> bool {
        let Some((inner, key)) = split_shared(filter) else {
            return false;
        };
        let Some(node) = self.trie.find(inner) else {
            return false;
        };
        let group = match key {
            None => 0,
            Some(key) => {
                let group = self
                    .trie
                    .node(node)
                    .and_then(|n| n.shared.as_deref())
                    .and_then(|gs| gs.iter().find(|g| *g.key == *key));
                match group {
                    Some(g) => g.id,
                    None => return false,
                }
            }
        };
        let entry = Entry { node, group };
        if !self.leave(entry, session) {
            return false;
        }
        if let Some(filters) = self.by_session.get_mut(&session) {
            match filters {
                Filters::One(_) => {
                    self.by_session.remove(&session);
                }
                Filters::Many(v) => {
                    v.retain(|e| *e != entry);
                    if let [only] = v.as_slice() {
                        *filters = Filters::One(*only);
                    }
                }
            }
        }
        true
    }

    /// Remove every subscription of `session` (its session ended).
    pub(in crate::core) fn remove_session(&mut self, session: SessionId) {
        if let Some(filters) = self.by_session.remove(&session) {
            for &entry in filters.as_slice() {
                self.leave(entry, session);
            }
        }
    }

    /// Take `session`'s subscription at `entry` out of the trie (not out of `by_session`), and
    /// prune; whether there was one.
    fn leave(&mut self, entry: Entry, session: SessionId) -> bool {
        let Some(node) = self.trie.node_mut(entry.node) else {
            return false;
        };
        let removed = if entry.group == 0 {
            node.subscribers.remove(session)
        } else {
            let Some(groups) = node.shared.as_deref_mut() else {
                return false;
            };
            let Some(i) = groups.iter().position(|g| g.id == entry.group) else {
                return false;
            };
            let Some(group) = groups.get_mut(i) else {
                return false;
            };
            let before = group.members.len();
            group.members.retain(|m| m.session != session);
            let removed = group.members.len() != before;
            if group.members.is_empty() {
                groups.swap_remove(i);
            }
            if groups.is_empty() {
                node.shared = None;
            }
            removed
        };
        if removed {
            self.count = self.count.saturating_sub(1);
            self.trie.prune(entry.node);
        }
        removed
    }

    /// Find who receives a message on `topic` (a valid topic name): every matching
    /// non-shared subscription appended to `out` (a session with several matching filters
    /// appears once per filter: see [`group_by_session`]), and for every matching shared group
    /// the member whose turn it is appended to `picks` with the group's full filter, the turn
    /// passed on (members for whom `connected` is true are preferred). Allocates nothing once
    /// the buffers have grown.
    pub(in crate::core) fn matches(
        &mut self,
        topic: &str,
        connected: impl Fn(SessionId) -> bool,
        out: &mut Vec<Sub>,
        picks: &mut Vec<(Sub, Arc<str>)>,
    ) {
        self.matched_groups.clear();
        self.trie.matches(topic, out, &mut self.matched_groups);
        for &id in &self.matched_groups {
            let Some(shared) = self.trie.node_mut(id).and_then(|n| n.shared.as_deref_mut()) else {
                continue;
            };
            for group in shared.iter_mut() {
                if let Some(m) = group.pick(&connected) {
                    picks.push((m, Arc::clone(&group.key)));
                }
            }
        }
    }

    /// The member of the shared group `key` (`$share/{group}/{filter}`) whose turn it is, the
    /// turn passed on, as in [`Subscriptions::matches`] (for the fail-over of a message whose
    /// session ended).
    pub(in crate::core) fn pick_shared(
        &mut self,
        key: &str,
        connected: impl Fn(SessionId) -> bool,
    ) -> Option<Sub> {
        let (inner, key) = split_shared(TopicFilter::new(key).ok()?)?;
        let node = self.trie.find(inner)?;
        let shared = &mut self.trie.node_mut(node)?.shared;
        group_mut(shared, key?)?.pick(&connected)
    }

    /// Members of the shared subscription `filter` (`$share/{group}/{filter}`).
    pub fn shared_members(&self, filter: &str) -> usize {
        let Some((inner, Some(key))) = TopicFilter::new(filter).ok().and_then(split_shared) else {
            return 0;
        };
        self.trie
            .find(inner)
            .and_then(|n| self.trie.node(n))
            .and_then(|n| n.shared.as_deref())
            .and_then(|gs| gs.iter().find(|g| *g.key == *key))
            .map_or(0, |g| g.members.len())
    }
}

/// A filter's trie path (`{filter}` of a shared one) and, if shared, its full filter (which
/// names the group); `None` for a malformed `$share/` filter.
fn split_shared<'a>(filter: TopicFilter<'a>) -> Option<(&'a str, Option<&'a str>)> {
    match filter.shared() {
        Ok(None) => Some((filter.as_str(), None)),
        Ok(Some((_, inner))) => Some((inner.as_str(), Some(filter.as_str()))),
        Err(_) => None,
    }
}

#[allow(clippy::box_collection)]
fn group_mut<'g>(
    shared: &'g mut Option<Box<Vec<SharedGroup>>>,
    key: &str,
) -> Option<&'g mut SharedGroup> {
    shared.as_deref_mut()?.iter_mut().find(|g| *g.key == *key)
}

/// Sort matches so each session's subscriptions are adjacent (see `slice::chunk_by`).
pub(in crate::core) fn group_by_session(matches: &mut [Sub]) {
    if matches.len() > 1 {
        matches.sort_unstable_by_key(|s| s.session);
    }
}
