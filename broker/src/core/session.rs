//! Sessions (§4.1) and the [`SessionStore`]: what the broker keeps for a client id across
//! connections — QoS 1/2 messages in flight, messages queued beyond the in-flight
//! window (or while the client is away), and QoS 2 packet ids received but not yet released.
//! (Its subscriptions are kept by [`crate::Subscriptions`], by session id.)

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::sync::Arc;

use wren_codec::{PacketId, QoS};

use super::ids::{ConnId, IdHash, SessionId};
use super::message::Message;

/// Where an outgoing QoS 1/2 message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// The names are the protocol's ("awaiting PUBACK"), common prefix and all.
#[allow(clippy::enum_variant_names)]
pub enum OutgoingState {
    /// QoS 1 PUBLISH sent, waiting for PUBACK.
    AwaitingPubAck,
    /// QoS 2 PUBLISH sent, waiting for PUBREC.
    AwaitingPubRec,
    /// PUBREL sent, waiting for PUBCOMP.
    AwaitingPubComp,
}

/// An outgoing QoS 1/2 message that has a packet id and is not yet acknowledged.
#[derive(Debug, Clone)]
pub struct Inflight {
    /// Its packet identifier on this session.
    pub pid: PacketId,
    /// The message.
    pub message: Arc<Message>,
    /// Delivery QoS (1 or 2).
    pub qos: QoS,
    /// RETAIN flag as sent.
    pub retain: bool,
    /// Protocol state.
    pub state: OutgoingState,
    /// Subscription Identifiers sent with it (5.0; sent again with a redelivery).
    pub sub_ids: Box<[u32]>,
    /// The shared subscription (`$share/{group}/{filter}`) it was sent through, if any: when
    /// this session ends unacknowledged, it goes to another member of the group.
    pub shared: Option<Arc<str>>,
    /// Its key in the durable store (`persist.rs`); 0: not stored.
    pub key: u64,
}

/// A message waiting for room in the in-flight window (or for the client to come back).
#[derive(Debug, Clone)]
pub struct Queued {
    /// The message.
    pub message: Arc<Message>,
    /// Delivery QoS.
    pub qos: QoS,
    /// RETAIN flag to send it with.
    pub retain: bool,
    /// Subscription Identifiers to send with it.
    pub sub_ids: Box<[u32]>,
    /// The shared subscription it was routed through, if any.
    pub shared: Option<Arc<str>>,
    /// Its key in the durable store (`persist.rs`); 0: not stored.
    pub key: u64,
}

/// A session's QoS 1/2 state. Boxed apart from the [`Session`] and there only while it holds
/// something: most connected clients have nothing in flight most of the time, and these three
/// collections are half a session's size.
#[derive(Debug, Default)]
pub struct QosState {
    /// Outgoing QoS 1/2 messages in flight, oldest first (redelivered in this order).
    pub inflight: VecDeque<Inflight>,
    /// Messages waiting for the window, oldest first.
    pub queued: VecDeque<Queued>,
    /// Incoming QoS 2 packet ids delivered onwards but not released (PUBREL) yet: a duplicate
    /// PUBLISH with one of these ids is not delivered again (exactly once).
    pub awaiting_rel: HashSet<u16, IdHash>,
}

impl QosState {
    fn is_empty(&self) -> bool {
        self.inflight.is_empty() && self.queued.is_empty() && self.awaiting_rel.is_empty()
    }
}

/// What [`Session::delivery`] shows while a session holds no QoS 1/2 state.
static NO_DELIVERY: QosState = QosState {
    inflight: VecDeque::new(),
    queued: VecDeque::new(),
    awaiting_rel: HashSet::with_hasher(IdHash::new()),
};

/// One client's session.
#[derive(Debug)]
pub struct Session {
    /// The client identifier.
    pub client_id: Arc<str>,
    /// The session ends with the connection (3.1.1 Clean Session, 5.0 Session Expiry
    /// Interval 0).
    pub clean: bool,
    /// 5.0 Session Expiry Interval in seconds (`u32::MAX`: never; 3.1.1 persistent sessions).
    pub expiry_interval: u32,
    /// When a disconnected session expires (broker milliseconds).
    pub expires_at: Option<u64>,
    /// Most QoS 1/2 messages in flight to the client: the broker's limit, lowered to the
    /// client's 5.0 Receive Maximum ([MQTT-3.3.4-9]).
    pub inflight_max: usize,
    /// The connection the client is on, if connected.
    pub conn: Option<ConnId>,
    /// Messages in flight and queued, allocated while there are any (see [`QosState`]).
    delivery: Option<Box<QosState>>,
    /// Whether outgoing messages are currently being dropped (logged once per episode).
    pub dropping: bool,
    /// Whether the durable store holds this session (`persist.rs`).
    pub persisted: bool,
    /// Who the client last logged in as (user name, listener), for the topic rules.
    pub identity: std::sync::Arc<super::access::Identity>,
    last_pid: u16,
}

impl Session {
    /// A new, empty session.
    pub fn new(client_id: Arc<str>, clean: bool) -> Self {
        Session {
            client_id,
            clean,
            expiry_interval: if clean { 0 } else { u32::MAX },
            expires_at: None,
            inflight_max: usize::MAX,
            conn: None,
            delivery: None,
            dropping: false,
            persisted: false,
            identity: super::access::Identity::anonymous(),
            last_pid: 0,
        }
    }

    /// The session's QoS 1/2 state (empty if it holds none).
    pub fn delivery(&self) -> &QosState {
        self.delivery.as_deref().unwrap_or(&NO_DELIVERY)
    }

    /// The session's QoS 1/2 state, to change (allocated on first use).
    pub fn delivery_mut(&mut self) -> &mut QosState {
        self.delivery.get_or_insert_with(Box::default)
    }

    /// Forget an incoming QoS 2 packet id on its PUBREL; whether it was awaiting release. A
    /// session with no QoS 1/2 state allocates none for an unknown id.
    pub fn release_awaiting_rel(&mut self, id: u16) -> bool {
        let known = self
            .delivery
            .as_mut()
            .is_some_and(|d| d.awaiting_rel.remove(&id));
        self.release_idle_delivery();
        known
    }

    /// Give the QoS 1/2 state's memory back once it holds nothing (after acknowledgements).
    pub fn release_idle_delivery(&mut self) {
        if self.delivery.as_deref().is_some_and(QosState::is_empty) {
            self.delivery = None;
        }
    }

    /// The next free outgoing packet id (skipping ids still in flight).
    pub fn next_pid(&mut self) -> PacketId {
        loop {
            self.last_pid = self.last_pid.wrapping_add(1);
            let Some(pid) = PacketId::new(self.last_pid) else {
                continue;
            };
            // At most 65,535 ids can be in flight and the window is far smaller, so this ends.
            if !self.delivery().inflight.iter().any(|i| i.pid == pid) {
                return pid;
            }
        }
    }

    /// Position of the in-flight message with this id.
    pub fn inflight_position(&self, pid: PacketId) -> Option<usize> {
        self.delivery().inflight.iter().position(|i| i.pid == pid)
    }
}

/// All sessions, by id and by client id.
#[derive(Debug, Default)]
pub struct SessionStore {
    /// Boxed: the table holds many empty slots at its load factor, so keep slots small.
    sessions: HashMap<SessionId, Box<Session>, IdHash>,
    /// Session ids by their session's client id: the table holds only the ids (8 bytes a slot)
    /// and compares through `sessions`, so the client id is stored once, in the session.
    by_client_id: hashbrown::HashTable<SessionId>,
    /// Keyed (random) hashing of client ids, which clients choose.
    client_id_hasher: std::hash::RandomState,
    next_id: u64,
}

impl SessionStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of sessions (connected or not).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn hash(&self, client_id: &str) -> u64 {
        self.client_id_hasher.hash_one(client_id)
    }

    /// The session of a client id.
    pub fn find(&self, client_id: &str) -> Option<SessionId> {
        let sessions = &self.sessions;
        self.by_client_id
            .find(self.hash(client_id), |sid| {
                sessions
                    .get(sid)
                    .is_some_and(|s| &*s.client_id == client_id)
            })
            .copied()
    }

    /// Create a session (replacing the client id's old one, which the caller removed first).
    pub fn create(&mut self, client_id: Arc<str>, clean: bool) -> SessionId {
        self.next_id = self.next_id.wrapping_add(1);
        let id = SessionId(self.next_id);
        let hash = self.hash(&client_id);
        let Self {
            sessions,
            by_client_id,
            client_id_hasher,
            ..
        } = self;
        let same_id = |sid: &SessionId| sessions.get(sid).is_some_and(|s| s.client_id == client_id);
        match by_client_id.find_entry(hash, same_id) {
            Ok(mut old) => *old.get_mut() = id,
            Err(_) => {
                // Every id in the table has its session in `sessions` (rehashing needs it).
                by_client_id.insert_unique(hash, id, |sid| {
                    sessions
                        .get(sid)
                        .map_or(0, |s| client_id_hasher.hash_one(&*s.client_id))
                });
            }
        }
        self.sessions
            .insert(id, Box::new(Session::new(client_id, clean)));
        id
    }

    /// Remove a session and return it.
    pub fn remove(&mut self, id: SessionId) -> Option<Box<Session>> {
        let session = self.sessions.remove(&id)?;
        let hash = self.hash(&session.client_id);
        if let Ok(entry) = self.by_client_id.find_entry(hash, |sid| *sid == id) {
            entry.remove();
        }
        Some(session)
    }

    /// A session.
    pub fn get(&self, id: SessionId) -> Option<&Session> {
        self.sessions.get(&id).map(|s| &**s)
    }

    /// A session, mutably.
    pub fn get_mut(&mut self, id: SessionId) -> Option<&mut Session> {
        self.sessions.get_mut(&id).map(|s| &mut **s)
    }

    /// Every session.
    pub fn iter(&self) -> impl Iterator<Item = (&SessionId, &Session)> {
        self.sessions.iter().map(|(id, s)| (id, &**s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_find_remove() {
        let mut store = SessionStore::new();
        let a = store.create("a".into(), false);
        let b = store.create("b".into(), true);
        assert_ne!(a, b);
        assert_eq!(store.find("a"), Some(a));
        assert_eq!(store.len(), 2);
        assert_eq!(store.remove(a).unwrap().client_id.as_ref(), "a");
        assert_eq!(store.find("a"), None);
        assert!(store.get(a).is_none());
        assert!(store.get(b).unwrap().clean);
        let a2 = store.create("a".into(), false);
        assert_ne!(a, a2, "ids are never reused");
    }

    #[test]
    fn client_id_index_through_growth_replacement_and_removal() {
        let mut store = SessionStore::new();
        let ids: Vec<SessionId> = (0..5000)
            .map(|i| store.create(format!("client-{i}").into(), i % 2 == 0))
            .collect();
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(store.find(&format!("client-{i}")), Some(*id));
        }
        // Create for a client id whose session is still there points the id at the new one.
        let again = store.create("client-7".into(), true);
        assert_eq!(store.find("client-7"), Some(again));
        // Removing the replaced session leaves the new one findable.
        store.remove(ids[7]);
        assert_eq!(store.find("client-7"), Some(again));
        for (i, id) in ids.iter().enumerate().step_by(3) {
            store.remove(*id);
            let expect = if i == 7 { Some(again) } else { None };
            assert_eq!(store.find(&format!("client-{i}")), expect);
        }
        assert_eq!(store.find("client-4"), Some(ids[4]));
        assert_eq!(store.find("client-5000"), None);
    }

    #[test]
    fn packet_ids_skip_those_in_flight_and_wrap() {
        let mut s = Session::new("c".into(), false);
        let m = Message::new("t", b"x", QoS::AtLeastOnce, false);
        assert_eq!(s.next_pid().get(), 1);
        s.delivery_mut().inflight.push_back(Inflight {
            pid: PacketId::new(2).unwrap(),
            message: m,
            qos: QoS::AtLeastOnce,
            retain: false,
            state: OutgoingState::AwaitingPubAck,
            sub_ids: Box::default(),
            shared: None,
            key: 0,
        });
        assert_eq!(s.next_pid().get(), 3, "2 is in flight");
        s.last_pid = u16::MAX;
        assert_eq!(s.next_pid().get(), 1, "wraps past 0");
        assert_eq!(s.inflight_position(PacketId::new(2).unwrap()), Some(0));
    }
}
