//! Shared subscriptions (5.0 §4.8.2): each group gets a matching message once, at one member.

use std::sync::Arc;

use super::Sub;
use crate::core::ids::SessionId;

/// A shared subscription `$share/{group}/{filter}`: its members, and whose turn it is. Kept on
/// the trie node of `{filter}`.
#[derive(Debug)]
pub(in crate::core) struct SharedGroup {
    /// Names the group among those of its node, in the per-session lists (never 0, which
    /// stands for a non-shared subscription there).
    pub(super) id: u32,
    /// The full filter `$share/{group}/{filter}`; a message delivered through the group keeps
    /// it, to find the group again for the fail-over when its session ends.
    pub(super) key: Arc<str>,
    pub(super) members: Vec<Sub>,
    /// Where the round robin goes on from.
    pub(super) next: usize,
}

impl SharedGroup {
    /// The member whose turn it is, and the turn passed on: the next connected member in
    /// round-robin order or, none being connected, the next member, whose session queues the
    /// message.
    pub(super) fn pick(&mut self, connected: &impl Fn(SessionId) -> bool) -> Option<Sub> {
        let n = self.members.len();
        if n == 0 {
            return None;
        }
        let start = self.next % n;
        let i = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| self.members.get(i).is_some_and(|m| connected(m.session)))
            .unwrap_or(start);
        self.next = i.saturating_add(1);
        self.members.get(i).copied()
    }
}
