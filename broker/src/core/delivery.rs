//! Delivery: the one path that sends a PUBLISH to a session. Straight to the connection while
//! the in-flight window has room, else into the session queue (bounded, with its drop policy);
//! window refill as acknowledgements arrive; redelivery when a session resumes.

use std::sync::Arc;

use wren_codec::{Ack, Packet, PacketId, QoS};

use super::Broker;
use super::close::CloseReason;
use super::conn::Connection;
use super::ids::{ConnId, SessionId};
use super::message::{Delivery, Message, Out};
use super::outbox::{Outbox, Room};
use super::persist::{Change, Journal, StoredEntry};
use super::session::{Inflight, OutgoingState, Queued, Session};
use super::sys::Stats;
use crate::config::Config;

/// The output item delivering `message` on connection `c`: 5.0 connections get the message's
/// Subscription Identifiers, remaining expiry and an outbound Topic Alias (if assigned).
#[inline]
pub(super) fn out_for(
    c: &mut Connection,
    message: &Message,
    qos: QoS,
    pid: Option<PacketId>,
    retain: bool,
    sub_ids: &[u32],
    now_ms: u64,
) -> Out {
    if !c.version.is_v5() {
        return message.delivery(c.version, qos, pid, false, retain);
    }
    let topic_alias = c.out_alias(message.topic());
    let out = message.delivery_with(
        c.version,
        qos,
        pid,
        false,
        retain,
        &Delivery {
            now_ms,
            subscription_ids: sub_ids,
            topic_alias,
        },
    );
    if !c.fits(&out)
        && let Some((_, true)) = topic_alias
        && let Some(a) = c.out_aliases.as_mut()
    {
        // Not sent after all: the client never learns this alias.
        a.by_topic.remove(message.topic());
    }
    out
}

/// Remember a congested outbox once per input (see [`super::Event::Congested`]).
pub(super) fn note_congested(congested: &mut Vec<Outbox>, outbox: &Outbox) {
    if !congested.iter().any(|o| o.same(outbox)) {
        congested.push(outbox.clone());
    }
}

/// A persistent session's QoS 1/2 message goes to the durable store (`persist.rs`), queued
/// (`sent` none) or sent with its packet id: its key there (0: not stored — QoS 0, or a session
/// that ends with its connection).
fn store_entry(
    journal: &mut Journal,
    session: &Session,
    message: &Arc<Message>,
    send: &Send<'_>,
    sent: Option<(u16, OutgoingState)>,
) -> u64 {
    if !session.persisted || !journal.on() || send.qos == QoS::AtMostOnce {
        return 0;
    }
    let key = journal.key();
    journal.record(Change::Enqueued {
        client_id: Arc::clone(&session.client_id),
        key,
        entry: StoredEntry {
            message: Arc::clone(message),
            qos: send.qos,
            retain: send.retain,
            sub_ids: send.sub_ids.into(),
            shared: send.shared.cloned(),
            sent,
        },
    });
    key
}

/// A stored message of the session of `client_id` leaves it (acknowledged, expired, dropped):
/// the store forgets it too (`key` 0: it was never stored).
pub(super) fn forget(journal: &mut Journal, client_id: &Arc<str>, key: u64) {
    if key != 0 {
        journal.record_done(client_id, key);
    }
}

/// Count and log (once per episode) a dropped message.
pub(super) fn drop_message(stats: &mut Stats, session: &mut Session) {
    stats.publish_dropped = stats.publish_dropped.saturating_add(1);
    if !session.dropping {
        session.dropping = true;
        log::warn!(
            "Outgoing messages are being dropped for client {}.",
            session.client_id
        );
    }
}

/// What putting bytes on a connection touches besides the connection: the counters, the
/// connections to close, the hibernating connections woken. Borrowed apart from the [`Broker`]
/// so that a session and its connection can be borrowed at the same time.
pub(super) struct Wire<'a> {
    stats: &'a mut Stats,
    to_close: &'a mut Vec<(ConnId, CloseReason)>,
    woken: &'a mut Vec<(ConnId, Outbox)>,
    /// Where a persistent session's message sent with a packet id is recorded.
    journal: &'a mut Journal,
    max_outgoing_bytes: usize,
    now_ms: u64,
}

impl<'a> Wire<'a> {
    /// The wire of a broker whose fields are borrowed apart.
    pub(super) fn new(
        stats: &'a mut Stats,
        to_close: &'a mut Vec<(ConnId, CloseReason)>,
        woken: &'a mut Vec<(ConnId, Outbox)>,
        journal: &'a mut Journal,
        config: &Config,
        now_ms: u64,
    ) -> Self {
        Wire {
            stats,
            to_close,
            woken,
            journal,
            max_outgoing_bytes: config.max_outgoing_bytes,
            now_ms,
        }
    }

    /// Queue `out` on a connection (behind what is held for it, if anything is: see
    /// [`Journal::hold_out`]), counting it; a queue past its hard limit closes the connection.
    pub(super) fn push(&mut self, c: &mut Connection, out: Out) {
        if let Some(out) = self.journal.behind_held(c.id, out) {
            self.push_released(c, out);
        }
    }

    /// [`Wire::push`] for what a committed batch released (see [`Journal::hold_out`]): ahead
    /// of whatever is still held for the connection.
    pub(super) fn push_released(&mut self, c: &mut Connection, out: Out) {
        if super::trace::enabled() {
            super::trace::sent(c.client_id(), c.version, &out);
        }
        self.stats.messages_sent = self.stats.messages_sent.saturating_add(1);
        self.stats.bytes_sent = self.stats.bytes_sent.saturating_add(out.len() as u64);
        let queued = c.outbox(self.woken).push(out);
        if queued > self.max_outgoing_bytes.saturating_mul(8) {
            self.to_close.push((c.id, CloseReason::SlowConsumer));
        }
    }

    /// The one step that sends a PUBLISH: `message` to `session` on its connection `c`, at QoS
    /// 1/2 with a new packet identifier and recorded in flight. A PUBLISH larger than the
    /// client's Maximum Packet Size is discarded as if sent, and counted as dropped
    /// ([MQTT-3.1.2-25] (5.0)). `key` is the message's key in the durable store if it was
    /// queued there (0: not stored yet; a persistent session's QoS 1/2 message is stored now).
    pub(super) fn publish(
        &mut self,
        session: &mut Session,
        c: &mut Connection,
        message: &Arc<Message>,
        send: Send<'_>,
        key: u64,
    ) {
        let pid = (send.qos != QoS::AtMostOnce).then(|| session.next_pid());
        let out = out_for(
            c,
            message,
            send.qos,
            pid,
            send.retain,
            send.sub_ids,
            self.now_ms,
        );
        if !c.fits(&out) {
            forget(self.journal, &session.client_id, key);
            return drop_message(self.stats, session);
        }
        // The batch a QoS 2 delivery to a persistent session waits for (`Journal::hold_out`).
        let mut wait = 0;
        if let Some(pid) = pid {
            let state = if send.qos == QoS::ExactlyOnce {
                OutgoingState::AwaitingPubRec
            } else {
                OutgoingState::AwaitingPubAck
            };
            let key = if key != 0 {
                self.journal
                    .record_sent(&session.client_id, key, pid.get(), state);
                key
            } else {
                store_entry(
                    self.journal,
                    session,
                    message,
                    &send,
                    Some((pid.get(), state)),
                )
            };
            if send.qos == QoS::ExactlyOnce && key != 0 {
                wait = self.journal.recording();
            }
            session.delivery_mut().inflight.push_back(Inflight {
                pid,
                message: Arc::clone(message),
                qos: send.qos,
                retain: send.retain,
                state,
                sub_ids: send.sub_ids.into(),
                shared: send.shared.cloned(),
                key,
            });
        }
        if let Some(out) = self.journal.hold_out(c.id, out, wait) {
            self.push(c, out);
        }
        self.stats.publish_sent = self.stats.publish_sent.saturating_add(1);
    }
}

/// How a message goes to one session: what the matching subscriptions decided.
#[derive(Debug, Clone, Copy)]
pub(super) struct Send<'a> {
    /// min(the message's QoS, the granted QoS).
    pub(super) qos: QoS,
    /// RETAIN as sent (Retain As Published, or a retained message at subscribe time).
    pub(super) retain: bool,
    /// The matching subscriptions' identifiers (5.0).
    pub(super) sub_ids: &'a [u32],
    /// The shared subscription it goes through, if any (for fail-over when the session ends).
    pub(super) shared: Option<&'a Arc<str>>,
}

impl Broker {
    /// A resumed session: redeliver what is in flight (DUP set; PUBREL for messages whose PUBREC
    /// arrived, [MQTT-4.4.0-1], the same id in 3.1.1 and 5.0), then fill the window from the queue.
    /// A message that no longer fits the client's Maximum Packet Size (it may have reconnected
    /// with a smaller one) leaves the window and is counted as dropped, as when first sent.
    pub(super) fn resume(&mut self, sid: SessionId) {
        let now = self.now_ms;
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some(conn) = session.conn else { return };
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let version = c.version;
        // (Each with the batch it waits for: a QoS 2 one of a persistent session — a stored one,
        // key not 0 — for whatever may not be on disk yet: `Journal::hold_out`.)
        let mut outs: Vec<(Out, bool, u64)> = Vec::new();
        let mut dropped = 0;
        let journal = &mut self.journal;
        let client_id = Arc::clone(&session.client_id);
        let unwritten = journal.last_unwritten();
        session.delivery_mut().inflight.retain(|i| {
            let (out, is_publish) = match i.state {
                OutgoingState::AwaitingPubComp => (
                    Out::packet(&Packet::PubRel(Ack::new(i.pid)), version),
                    false,
                ),
                _ => (
                    i.message.delivery_with(
                        version,
                        i.qos,
                        Some(i.pid),
                        true,
                        i.retain,
                        &Delivery {
                            now_ms: now,
                            subscription_ids: &i.sub_ids,
                            topic_alias: None,
                        },
                    ),
                    true,
                ),
            };
            if c.fits(&out) {
                let wait = if i.qos == QoS::ExactlyOnce && i.key != 0 {
                    unwritten
                } else {
                    0
                };
                outs.push((out, is_publish, wait));
                true
            } else {
                dropped += 1;
                forget(journal, &client_id, i.key);
                false
            }
        });
        for _ in 0..dropped {
            drop_message(&mut self.stats, session);
        }
        for (out, is_publish, wait) in outs {
            if let Some(out) = self.journal.hold_out(conn, out, wait) {
                self.send(conn, out);
            }
            if is_publish {
                self.stats.publish_sent = self.stats.publish_sent.saturating_add(1);
            }
        }
        self.fill_window(sid);
    }

    /// Deliver one message to one session, if it may read the topic: straight to the connection
    /// if the client is connected and the window has room, else into the session queue
    /// ([`Broker::enqueue`]).
    pub(super) fn deliver(&mut self, sid: SessionId, message: &Arc<Message>, send: Send<'_>) {
        let now = self.now_ms;
        if message.is_expired(now) {
            return;
        }
        // The receiver's read access (`access.rs`): free when no topic rules are configured.
        if !self.may_read(sid, message.topic()) {
            return;
        }
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some(c) = session.conn.and_then(|id| self.conns.get_mut(&id)) else {
            // QoS 0 is not queued for an offline session unless configured.
            if send.qos != QoS::AtMostOnce || self.config.queue_qos0_messages {
                self.enqueue(sid, message, send);
            }
            return;
        };
        if send.qos == QoS::AtMostOnce {
            let backpressure = self.config.max_publisher_hold_ms > 0;
            match c
                .outbox
                .as_ref()
                .map_or(Room::Yes, |o| o.room(self.config.max_outgoing_bytes))
            {
                Room::Yes => {}
                Room::Congested if backpressure => {
                    if let Some(o) = &c.outbox {
                        note_congested(&mut self.congested, o);
                    }
                }
                Room::Congested | Room::No => return drop_message(&mut self.stats, session),
            }
        } else if session.delivery().inflight.len() >= session.inflight_max
            || !session.delivery().queued.is_empty()
        {
            return self.enqueue(sid, message, send);
        }
        session.dropping = false;
        let mut wire = Wire::new(
            &mut self.stats,
            &mut self.to_close,
            &mut self.woken,
            &mut self.journal,
            &self.config,
            now,
        );
        wire.publish(session, c, message, send, 0);
    }

    /// Queue a message for a session whose window is full or whose client is away, within
    /// `max_queued_messages`: an expired message makes room first ([MQTT-3.3.2-5] (5.0)), then
    /// the oldest queued QoS 0 message for a QoS 1/2 one; otherwise the new one is dropped and
    /// counted. A connected client whose queue is long holds its publishers back.
    fn enqueue(&mut self, sid: SessionId, message: &Arc<Message>, send: Send<'_>) {
        let now = self.now_ms;
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let stats = &mut self.stats;
        let journal = &mut self.journal;
        let queued = |key| Queued {
            message: Arc::clone(message),
            qos: send.qos,
            retain: send.retain,
            sub_ids: send.sub_ids.into(),
            shared: send.shared.cloned(),
            key,
        };
        if session.delivery().queued.len() < self.config.max_queued_messages {
            let key = store_entry(journal, session, message, &send, None);
            session.delivery_mut().queued.push_back(queued(key));
        } else if let Some(pos) = session
            .delivery()
            .queued
            .iter()
            .position(|q| q.message.is_expired(now))
        {
            if let Some(old) = session.delivery_mut().queued.remove(pos) {
                forget(journal, &session.client_id, old.key);
            }
            let key = store_entry(journal, session, message, &send, None);
            session.delivery_mut().queued.push_back(queued(key));
        } else if send.qos != QoS::AtMostOnce
            && let Some(pos) = session
                .delivery()
                .queued
                .iter()
                .position(|q| q.qos == QoS::AtMostOnce)
        {
            // (QoS 0 messages are never stored: nothing to forget.)
            session.delivery_mut().queued.remove(pos);
            let key = store_entry(journal, session, message, &send, None);
            session.delivery_mut().queued.push_back(queued(key));
            drop_message(stats, session);
        } else {
            drop_message(stats, session);
        }
        // (An offline client never holds anyone back: its queue is what it will find when it
        // comes back.)
        let max = self.config.max_queued_messages;
        if let Some(o) = session
            .conn
            .and_then(|id| self.conns.get(&id))
            .and_then(|c| c.outbox.as_ref())
            && max > 0
            && self.config.max_publisher_hold_ms > 0
            && session.delivery().queued.len() >= (max / 2).max(1)
            && !o.is_stalled()
        {
            o.set_held(true);
            note_congested(&mut self.congested, o);
        }
    }

    /// Move queued messages into the in-flight window while it has room; expired messages are
    /// dropped on the way ([MQTT-3.3.2-5] (5.0)).
    pub(super) fn fill_window(&mut self, sid: SessionId) {
        let now = self.now_ms;
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some(c) = session.conn.and_then(|id| self.conns.get_mut(&id)) else {
            return;
        };
        let mut wire = Wire::new(
            &mut self.stats,
            &mut self.to_close,
            &mut self.woken,
            &mut self.journal,
            &self.config,
            now,
        );
        while session.delivery().inflight.len() < session.inflight_max {
            // (Checked first so that a session with nothing queued allocates nothing here.)
            if session.delivery().queued.is_empty() {
                break;
            }
            let Some(q) = session.delivery_mut().queued.pop_front() else {
                break;
            };
            if q.message.is_expired(now) {
                forget(wire.journal, &session.client_id, q.key);
                continue;
            }
            let send = Send {
                qos: q.qos,
                retain: q.retain,
                sub_ids: &q.sub_ids,
                shared: q.shared.as_ref(),
            };
            wire.publish(session, c, &q.message, send, q.key);
        }
        if session.delivery().queued.is_empty() {
            session.dropping = false;
        }
        if session.delivery().queued.len() <= self.config.max_queued_messages / 4
            && let Some(o) = &c.outbox
        {
            o.set_held(false);
        }
        session.release_idle_delivery();
    }
}
