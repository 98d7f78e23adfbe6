//! Shared subscriptions (5.0 §4.8.2): each group gets a matching message once, at one member.

use super::trie::Sub;
use crate::core::session::SessionStore;

/// A shared subscription `$share/{group}/{filter}`: its members, and whose turn it is.
#[derive(Debug)]
pub(in crate::core) struct SharedGroup {
    pub(in crate::core) filter: Box<str>,
    pub(in crate::core) members: Vec<Sub>,
    pub(in crate::core) next: usize,
}

/// The member of a shared group whose turn it is: the next connected member in round-robin
/// order, or (none connected) the next member, whose session queues the message.
pub(in crate::core) fn pick_member(group: &SharedGroup, sessions: &SessionStore) -> Option<usize> {
    let n = group.members.len();
    if n == 0 {
        return None;
    }
    let start = group.next % n;
    let order = (0..n).map(|k| (start + k) % n);
    order
        .clone()
        .find(|&i| {
            group
                .members
                .get(i)
                .and_then(|m| sessions.get(m.session))
                .is_some_and(|s| s.conn.is_some())
        })
        .or(Some(start))
}
