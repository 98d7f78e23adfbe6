//! The journal: every change to what must survive a restart — persistent sessions, their
//! subscriptions, their QoS 1/2 messages queued and in flight, incoming QoS 2 ids awaiting
//! PUBREL, retained messages — recorded as a [`Change`] for the durable store
//! (`crate::store`), which the shell hands them to in batches ([`Broker::take_changes`]).
//!
//! In the durable mode ([`Persistence::Durable`]) an acknowledgement (PUBACK, PUBREC, PUBREL,
//! PUBCOMP, SUBACK, UNSUBACK) is not sent while a change recorded before it is not on disk: it
//! waits, in order, until the store reports the batch committed ([`Broker::changes_committed`]).
//! That is the promise: a PUBACK from wren-broker means the message survives `kill -9`. While
//! the store cannot write (a full disk, [`Broker::store_failing`]) new QoS 1/2 messages are
//! refused rather than acknowledged and lost.
//!
//! What is journalled: only sessions that outlive their connection (clean ones end with it
//! anyway) and, of their messages, QoS 1 and 2 (QoS 0 is never acknowledged). Each queued or
//! in-flight message of a persistent session has a key (`Queued::key`, `Inflight::key`, 0 for
//! none), unique in the broker's life and its successors', in delivery order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use wren_codec::QoS;

use super::Broker;
use super::conn::Phase;
use super::delivery::Wire;
use super::ids::{ConnId, IdHash, ProcessRandomState, SessionId};
use super::message::{Message, Out};
use super::session::OutgoingState;

/// How the broker keeps what must survive a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing is kept: a restart loses sessions, queues and retained messages.
    Memory,
    /// Acknowledgements wait until what they acknowledge is on disk (group commit).
    Durable,
    /// Changes are written every so often; acknowledgements do not wait (a crash loses at most
    /// the last interval's changes, as Mosquitto's `autosave_interval`).
    Periodic,
}

/// A message of a persistent session, as the journal records it when it is queued.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// The message (stored once however many sessions hold it).
    pub message: Arc<Message>,
    /// Delivery QoS (1 or 2).
    pub qos: QoS,
    /// RETAIN as it is to be sent.
    pub retain: bool,
    /// Subscription Identifiers sent with it.
    pub sub_ids: Box<[u32]>,
    /// The shared subscription it was routed through, if any.
    pub shared: Option<Arc<str>>,
    /// Its packet id and state once sent; `None` while queued.
    pub sent: Option<(u16, OutgoingState)>,
}

/// A subscription of a persistent session, as the journal records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSub {
    /// Granted QoS.
    pub qos: QoS,
    /// 5.0 No Local.
    pub no_local: bool,
    /// 5.0 Retain As Published.
    pub retain_as_published: bool,
    /// 5.0 Subscription Identifier.
    pub id: Option<u32>,
}

/// One change to the durable state. Times are the broker's milliseconds.
#[derive(Debug, Clone)]
pub enum Change {
    /// A persistent session exists (or changed): its expiry interval, and when its client
    /// disconnected (`None`: connected).
    Session {
        client_id: Arc<str>,
        expiry_interval: u32,
        disconnected_at: Option<u64>,
    },
    /// The session ended (or will end with its connection): everything it held goes.
    SessionGone { client_id: Arc<str> },
    /// A subscription added or replaced (`filter` as subscribed, `$share/…` included).
    Subscribed {
        client_id: Arc<str>,
        filter: Box<str>,
        sub: StoredSub,
    },
    /// A subscription removed.
    Unsubscribed {
        client_id: Arc<str>,
        filter: Box<str>,
    },
    /// A message queued for (or sent to) the session, under `key`.
    Enqueued {
        client_id: Arc<str>,
        key: u64,
        entry: StoredEntry,
    },
    /// The message `key` was sent with `pid`, or its PUBREC arrived (`AwaitingPubComp`).
    Sent {
        client_id: Arc<str>,
        key: u64,
        pid: u16,
        state: OutgoingState,
    },
    /// The message `key` is acknowledged, expired or dropped.
    Done { client_id: Arc<str>, key: u64 },
    /// An incoming QoS 2 id delivered onwards and awaiting PUBREL.
    AwaitingRel { client_id: Arc<str>, pid: u16 },
    /// That id released.
    Released { client_id: Arc<str>, pid: u16 },
    /// A will waiting for its Will Delay Interval, and when it is due (`Some`), or no longer
    /// waiting (published or cancelled).
    Will {
        client_id: Arc<str>,
        will: Option<(Arc<Message>, u64)>,
    },
    /// The retained message of `topic` set (`Some`) or deleted.
    Retained {
        topic: Box<str>,
        message: Option<Arc<Message>>,
    },
    /// The will of a connected client and its Will Delay Interval in seconds (`Some`), to be
    /// published after a restart if the broker dies while the client is connected; or no
    /// longer (`None`: the connection ended and the will was dealt with).
    ConnectedWill {
        client_id: Arc<str>,
        will: Option<(Arc<Message>, u32)>,
    },
    /// Nothing: a message queued and done with before its batch was taken (see
    /// [`Journal::record_sent`]).
    Void,
}

/// The journal and the acknowledgements waiting for it (see the module documentation).
#[derive(Debug)]
pub(super) struct Journal {
    pub(super) mode: Persistence,
    changes: Vec<Change>,
    /// The number the changes recorded now get when taken; batches are taken in order.
    next_batch: u64,
    /// The last batch the store committed.
    committed: u64,
    next_key: u64,
    /// Acknowledgements waiting for a batch, oldest first.
    held: VecDeque<(u64, ConnId, Out)>,
    /// Packets of QoS 2 deliveries to persistent sessions waiting for the batch that records
    /// them, per connection, with whatever was sent after them there (see
    /// [`Journal::hold_out`]).
    held_out: HashMap<ConnId, VecDeque<(u64, Out)>, IdHash>,
    /// The changes recorded before the current input (see [`Broker::send_ack`]).
    mark: usize,
    /// The current input changed a change recorded before it (see [`Journal::record_sent`]).
    touched: bool,
    /// Where the messages queued in the batch being recorded are in `changes`: that of key
    /// `enqueued_from + i` at `enqueued[i]` (keys are handed out one after the other, and each
    /// is queued at once: see [`Journal::key`]).
    enqueued: Vec<usize>,
    enqueued_from: u64,
    /// Sessions with acknowledgements waiting, and the batch the last one waits for: a later
    /// one waits at least as long (acknowledgements go out in order; a duplicate QoS 2 PUBLISH
    /// must not be PUBREC'd before the first one's id is on disk).
    waiting: HashMap<SessionId, u64, IdHash>,
    /// The clients whose will is recorded as a connected client's ([`Change::ConnectedWill`]),
    /// and the connection that recorded it.
    pub(super) connected_wills: HashMap<Arc<str>, ConnId, ProcessRandomState>,
    /// The store cannot write (see [`Broker::store_failing`]).
    pub(super) failing: bool,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            mode: Persistence::Memory,
            changes: Vec::new(),
            next_batch: 1,
            committed: 0,
            next_key: 1,
            held: VecDeque::new(),
            held_out: HashMap::default(),
            mark: 0,
            touched: false,
            enqueued: Vec::new(),
            enqueued_from: 1,
            waiting: HashMap::default(),
            connected_wills: HashMap::default(),
            failing: false,
        }
    }
}

impl Journal {
    /// Whether changes are recorded.
    #[inline]
    pub(super) fn on(&self) -> bool {
        self.mode != Persistence::Memory
    }

    /// Record a change (nothing in memory mode); a message's sending and end go through
    /// [`Journal::record_sent`] and [`Journal::record_done`].
    #[inline]
    pub(super) fn record(&mut self, change: Change) {
        if !self.on() {
            return;
        }
        match change {
            Change::Enqueued { key, .. } => {
                if self.enqueued.is_empty() {
                    self.enqueued_from = key;
                }
                if key.wrapping_sub(self.enqueued_from) == self.enqueued.len() as u64 {
                    self.enqueued.push(self.changes.len());
                }
                self.changes.push(change);
            }
            change => self.changes.push(change),
        }
    }

    /// The stored message `key` of `client_id` was sent with `pid`, or its state changed
    /// ([`Change::Sent`]).
    ///
    /// A message queued in the batch being recorded is not recorded again when it is sent or
    /// done with: its queueing says it was sent, or is undone ([`Change::Void`]) — with a
    /// subscriber that keeps up, most messages leave nothing for the store, instead of three
    /// changes it would cancel out (and the changes are not even made).
    pub(super) fn record_sent(
        &mut self,
        client_id: &Arc<str>,
        key: u64,
        pid: u16,
        state: OutgoingState,
    ) {
        if !self.on() {
            return;
        }
        if let Some(Change::Enqueued { entry, .. }) = self.queued_here(key) {
            entry.sent = Some((pid, state));
            // (What an acknowledgement of this input promises is not on disk either. A PUBREC
            // cannot be folded so — a QoS 2 delivery waits for its batch, `hold_out` — but any
            // later state change would be.)
            self.touched = true;
            return;
        }
        self.changes.push(Change::Sent {
            client_id: Arc::clone(client_id),
            key,
            pid,
            state,
        });
    }

    /// The stored message `key` of `client_id` left its session: acknowledged, expired or
    /// dropped ([`Change::Done`]; see [`Journal::record_sent`]).
    pub(super) fn record_done(&mut self, client_id: &Arc<str>, key: u64) {
        if !self.on() {
            return;
        }
        if let Some(c) = self.queued_here(key) {
            *c = Change::Void;
            return;
        }
        self.changes.push(Change::Done {
            client_id: Arc::clone(client_id),
            key,
        });
    }

    /// The queueing of message `key`, if it is in the batch being recorded (and not undone).
    fn queued_here(&mut self, key: u64) -> Option<&mut Change> {
        let i = usize::try_from(key.checked_sub(self.enqueued_from)?).ok()?;
        let at = *self.enqueued.get(i)?;
        self.changes
            .get_mut(at)
            .filter(|c| matches!(c, Change::Enqueued { key: k, .. } if *k == key))
    }

    /// A key for a new stored message.
    pub(super) fn key(&mut self) -> u64 {
        let key = self.next_key;
        self.next_key = self.next_key.wrapping_add(1);
        key
    }

    /// An input (a packet, a timeout) starts: changes recorded from now on are its own.
    #[inline]
    pub(super) fn start_input(&mut self) {
        self.mark = self.changes.len();
        self.touched = false;
    }

    /// The batch the changes recorded now go to.
    pub(super) fn recording(&self) -> u64 {
        self.next_batch
    }

    /// The last batch that may hold changes not on disk yet.
    pub(super) fn last_unwritten(&self) -> u64 {
        if self.changes.is_empty() {
            self.next_batch.saturating_sub(1)
        } else {
            self.next_batch
        }
    }

    /// A packet to connection `conn` that may go only once batch `batch` is on disk (0: at
    /// once): returned if it may go now; else kept until then (durable mode), and so is
    /// whatever is sent to `conn` after it, in order ([`Journal::behind_held`], which every
    /// packet to a connection passes).
    ///
    /// For QoS 2 PUBLISHes and PUBRELs to persistent sessions: exactly once across a crash. A
    /// subscriber that PUBREC'd a message keeps its packet id until the PUBREL, and takes
    /// another PUBLISH under that id as a duplicate — but had the broker lost the message's
    /// record (or its packet id) in the crash, the publisher, not acknowledged either, would
    /// send it again and the subscriber would get it a second time under another id. A
    /// PUBREL whose state was lost would let it forget the id before the PUBLISH came again.
    /// And for the CONNACK of a client whose will is kept for a crash: told it is connected,
    /// it counts on its will.
    pub(super) fn hold_out(&mut self, conn: ConnId, out: Out, batch: u64) -> Option<Out> {
        if self.mode == Persistence::Durable && batch > self.committed {
            self.held_out
                .entry(conn)
                .or_default()
                .push_back((batch, out));
            return None;
        }
        Some(out)
    }

    /// `out` to connection `conn`, queued behind what is held for it if anything is (see
    /// [`Journal::hold_out`]): returned if nothing is.
    #[inline]
    pub(super) fn behind_held(&mut self, conn: ConnId, out: Out) -> Option<Out> {
        if !self.held_out.is_empty()
            && let Some(q) = self.held_out.get_mut(&conn)
        {
            q.push_back((0, out));
            return None;
        }
        Some(out)
    }

    /// An acknowledgement to `conn` that waits for batch `batch`: behind what is held for the
    /// connection, if anything is (in order), else with the other acknowledgements (released
    /// together, by batch).
    fn hold_ack(&mut self, conn: ConnId, out: Out, batch: u64) {
        match self.held_out.get_mut(&conn) {
            Some(q) => q.push_back((batch, out)),
            None => self.held.push_back((batch, conn, out)),
        }
    }

    /// Whether batch `batch` is on disk (0 is).
    pub(super) fn is_committed(&self, batch: u64) -> bool {
        batch <= self.committed
    }

    /// The batch an acknowledgement to session `sid` sent now must wait for, if any: the one
    /// being recorded if the current input recorded changes (what the acknowledgement promises),
    /// and at least the one its session's previous acknowledgement waits for.
    fn wait_for(&self, sid: SessionId) -> Option<u64> {
        if self.mode != Persistence::Durable {
            return None;
        }
        let mut batch = self.waiting.get(&sid).copied().unwrap_or(0);
        if self.changes.len() > self.mark || self.touched {
            batch = batch.max(self.next_batch);
        }
        (batch > self.committed).then_some(batch)
    }
}

impl Broker {
    /// Keep what must survive a restart as `mode` says (the shell sets this before the first
    /// connection, after [`Broker::restore`]).
    pub fn set_persistence(&mut self, mode: Persistence) {
        self.journal.mode = mode;
    }

    /// How the broker keeps its state.
    pub fn persistence(&self) -> Persistence {
        self.journal.mode
    }

    /// Whether changes wait to be taken.
    pub fn has_changes(&self) -> bool {
        !self.journal.changes.is_empty()
    }

    /// How many changes wait to be taken.
    pub fn pending_changes(&self) -> usize {
        self.journal.changes.len()
    }

    /// The changes recorded since the last call, as batch number and changes (`None`: none).
    pub fn take_changes(&mut self) -> Option<(u64, Vec<Change>)> {
        if self.journal.changes.is_empty() {
            return None;
        }
        let batch = self.journal.next_batch;
        self.journal.next_batch = batch.saturating_add(1);
        self.journal.enqueued.clear();
        // The next batch is likely as large: its room now, rather than growing to it by
        // doubling (copying everything recorded so far each time).
        let room = self.journal.changes.len();
        Some((
            batch,
            std::mem::replace(&mut self.journal.changes, Vec::with_capacity(room)),
        ))
    }

    /// The store committed every batch up to `batch`: the acknowledgements waiting for them go
    /// out, in order, and a store that was failing is writing again.
    pub fn changes_committed(&mut self, batch: u64, now_ms: u64) {
        self.input(now_ms, |b| {
            b.journal.committed = b.journal.committed.max(batch);
            if b.journal.failing {
                b.journal.failing = false;
                log::warn!("Persistence: writing again; QoS 1 and 2 messages are accepted.");
            }
            let committed = b.journal.committed;
            let due = b
                .journal
                .held
                .iter()
                .take_while(|&&(n, _, _)| n <= committed)
                .count();
            let mut released: Vec<(u64, ConnId, Out)> = b.journal.held.drain(..due).collect();
            b.journal.held_out.retain(|&conn, q| {
                while q.front().is_some_and(|(n, _)| *n <= committed) {
                    if let Some((n, out)) = q.pop_front() {
                        released.push((n, conn, out));
                    }
                }
                !q.is_empty()
            });
            b.release(released);
            b.journal.waiting.retain(|_, n| *n > committed);
        });
    }

    /// Send what a batch released (acknowledgements, QoS 2 deliveries): each connection's, in
    /// order, as one item (a busy batch releases thousands, under the broker lock: one push per
    /// connection, not per packet). With the packet trace on, one by one, as it prints one per item.
    fn release(&mut self, released: Vec<(u64, ConnId, Out)>) {
        if super::trace::enabled() {
            for (_, conn, out) in released {
                self.send_released(conn, out);
            }
            return;
        }
        let mut order: Vec<ConnId> = Vec::new();
        let mut grouped: HashMap<ConnId, (Vec<u8>, u64), IdHash> = HashMap::default();
        for (_, conn, out) in released {
            // (Each acknowledgement fits the client's Maximum Packet Size, or is left out, as
            // `send` does; together they are not one packet.)
            if !self.conns.get(&conn).is_some_and(|c| c.fits(&out)) {
                continue;
            }
            let (bytes, count) = grouped.entry(conn).or_insert_with(|| {
                order.push(conn);
                (Vec::new(), 0)
            });
            out.write_to(bytes);
            *count += 1;
        }
        let now = self.now_ms;
        for conn in order {
            let (Some((bytes, count)), Some(c)) =
                (grouped.remove(&conn), self.conns.get_mut(&conn))
            else {
                continue;
            };
            let mut wire = Wire::new(
                &mut self.stats,
                &mut self.to_close,
                &mut self.woken,
                &mut self.journal,
                &self.config,
                now,
            );
            wire.push_released(c, Out::Raw(bytes.into()));
            // (`push` counted one packet.)
            self.stats.messages_sent = self.stats.messages_sent.saturating_add(count - 1);
        }
    }

    /// The store could not write its last batch (it keeps the changes and tries again): until
    /// it can, new QoS 1/2 messages are refused rather than acknowledged and lost.
    pub fn store_failing(&mut self) {
        if !self.journal.failing {
            self.journal.failing = true;
            self.stats.store_failures = self.stats.store_failures.saturating_add(1);
            log::error!(
                "Persistence: cannot write the store; QoS 1 and 2 messages are refused until it can."
            );
        }
    }

    /// Send an acknowledgement: now, or once what it acknowledges is on disk (durable mode).
    pub(super) fn send_ack(&mut self, conn: ConnId, out: Out) {
        if self.journal.mode != Persistence::Durable {
            return self.send(conn, out);
        }
        let session = match self.conns.get(&conn).map(|c| &c.state) {
            Some(Phase::Connected(client)) => client.session,
            _ => return self.send(conn, out),
        };
        match self.journal.wait_for(session) {
            Some(batch) => {
                self.journal.waiting.insert(session, batch);
                self.journal.hold_ack(conn, out, batch);
            }
            None => self.send(conn, out),
        }
    }

    /// [`Broker::send_ack`] for a packet.
    pub(super) fn send_ack_packet(&mut self, conn: ConnId, packet: &wren_codec::Packet<'_>) {
        if let Some(version) = self.conns.get(&conn).map(|c| c.version) {
            self.send_ack(conn, Out::packet(packet, version));
        }
    }

    /// Tell the store what a session now is: persistent (its expiry interval, and when its
    /// client left), or one that ends with its connection (the store forgets it: a crash must
    /// not bring back a session its client was told would end).
    pub(super) fn journal_session(&mut self, sid: SessionId) {
        if !self.journal.on() {
            return;
        }
        let Some(s) = self.sessions.get_mut(sid) else {
            return;
        };
        if s.clean {
            if s.persisted {
                s.persisted = false;
                self.journal.record(Change::SessionGone {
                    client_id: Arc::clone(&s.client_id),
                });
            }
            return;
        }
        s.persisted = true;
        self.journal.record(Change::Session {
            client_id: Arc::clone(&s.client_id),
            expiry_interval: s.expiry_interval,
            disconnected_at: s.conn.is_none().then_some(self.now_ms),
        });
    }

    /// Next key for stored messages after the ones restored.
    pub(super) fn keys_from(&mut self, next: u64) {
        self.journal.next_key = self.journal.next_key.max(next);
    }
}
