//! Subscriptions: the topic trie ([`SubscriptionIndex`]) and the shared subscription groups
//! (`$share/{group}/{filter}`, [`SharedGroup`]).

mod shared;
mod trie;

pub(super) use shared::{SharedGroup, pick_member};
pub(super) use trie::group_by_session;
pub use trie::{Sub, SubscriptionIndex};
