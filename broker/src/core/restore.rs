//! Recovery: the state the durable store kept (`crate::store`), given back to a new broker
//! before its first connection — persistent sessions with their subscriptions, their QoS 1/2
//! messages (in flight ones keep their packet id and state, and go again with DUP when the
//! client comes back), their incoming QoS 2 ids awaiting PUBREL, and the retained messages.

use std::num::NonZeroU32;
use std::sync::Arc;

use wren_codec::{PacketId, TopicFilter};

use super::Broker;
use super::message::Message;
use super::persist::{StoredEntry, StoredSub};
use super::session::{Inflight, Queued};
use super::subscriptions::Sub;

/// A stored message of a session, with its key.
#[derive(Debug, Clone)]
pub struct RestoredEntry {
    /// Its key in the store (keeps its place in the session's order).
    pub key: u64,
    /// The message and how it goes to the session.
    pub entry: StoredEntry,
}

/// A persistent session as the store kept it.
#[derive(Debug, Clone)]
pub struct RestoredSession {
    /// The client identifier.
    pub client_id: Arc<str>,
    /// Session Expiry Interval in seconds (`u32::MAX`: never).
    pub expiry_interval: u32,
    /// Milliseconds left until it expires, the time the broker was down counted (ignored for
    /// sessions that never expire).
    pub expires_in_ms: u64,
    /// Its subscriptions, filters as subscribed.
    pub subscriptions: Vec<(Box<str>, StoredSub)>,
    /// Its QoS 1/2 messages, oldest first.
    pub messages: Vec<RestoredEntry>,
    /// Incoming QoS 2 packet ids awaiting PUBREL.
    pub awaiting_rel: Vec<u16>,
}

/// Everything the store gives back.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// The persistent sessions (every one disconnected).
    pub sessions: Vec<RestoredSession>,
    /// The retained messages, expiry counted.
    pub retained: Vec<Arc<Message>>,
    /// The wills waiting for their delay: client id, will, milliseconds until due (the time
    /// the broker was down counted; 0: due now).
    pub wills: Vec<(Arc<str>, Arc<Message>, u64)>,
    /// The key after the largest one stored.
    pub next_key: u64,
}

impl Broker {
    /// Take back what the store kept, at `now_ms`, before any connection. Returns the number
    /// of subscriptions that could not be restored (a filter the broker no longer accepts).
    pub fn restore(&mut self, restored: Restored, now_ms: u64) -> usize {
        self.now_ms = now_ms;
        self.keys_from(restored.next_key);
        let mut refused = 0usize;
        for r in restored.sessions {
            let sid = self.sessions.create(Arc::clone(&r.client_id), false);
            for (filter, stored) in &r.subscriptions {
                let Ok(filter) = TopicFilter::new(filter) else {
                    refused = refused.saturating_add(1);
                    continue;
                };
                let sub = Sub {
                    session: sid,
                    qos: stored.qos,
                    no_local: stored.no_local,
                    retain_as_published: stored.retain_as_published,
                    id: stored.id.and_then(NonZeroU32::new),
                };
                if self.subscriptions.subscribe(filter, sub, 0).is_err() {
                    refused = refused.saturating_add(1);
                }
            }
            let Some(s) = self.sessions.get_mut(sid) else {
                continue;
            };
            s.expiry_interval = r.expiry_interval;
            s.persisted = true;
            if r.expiry_interval != u32::MAX {
                let at = now_ms.saturating_add(r.expires_in_ms);
                s.expires_at = Some(at);
                self.expiring.insert(at, sid);
            }
            for RestoredEntry { key, entry } in r.messages {
                match entry
                    .sent
                    .and_then(|(pid, state)| Some((PacketId::new(pid)?, state)))
                {
                    Some((pid, state)) => s.delivery_mut().inflight.push_back(Inflight {
                        pid,
                        message: entry.message,
                        qos: entry.qos,
                        retain: entry.retain,
                        state,
                        sub_ids: entry.sub_ids,
                        shared: entry.shared,
                        key,
                    }),
                    None => s.delivery_mut().queued.push_back(Queued {
                        message: entry.message,
                        qos: entry.qos,
                        retain: entry.retain,
                        sub_ids: entry.sub_ids,
                        shared: entry.shared,
                        key,
                    }),
                }
            }
            for pid in r.awaiting_rel {
                s.delivery_mut().awaiting_rel.insert(pid);
            }
            s.release_idle_delivery();
        }
        for message in restored.retained {
            self.retained.set(message);
        }
        for (client_id, will, due_in) in restored.wills {
            self.delay_will(client_id, will, now_ms.saturating_add(due_in));
        }
        refused
    }
}
