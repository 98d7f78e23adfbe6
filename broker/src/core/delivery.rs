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
use super::session::{Inflight, OutgoingState, Queued, Session};
use super::sys::Stats;

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
    if out.len() > c.max_packet_size as usize
        && let Some((_, true)) = topic_alias
        && let Some(a) = c.out_aliases.as_mut()
    {
        // Not sent after all: the client never learns this alias.
        a.by_topic.remove(message.topic());
    }
    out
}

/// Remember a congested outbox once per event (see [`Broker::take_congested`]).
pub(super) fn note_congested(congested: &mut Vec<Outbox>, outbox: &Outbox) {
    if !congested.iter().any(|o| o.same(outbox)) {
        congested.push(outbox.clone());
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

/// Where [`push`] reports: connections to close, hibernating connections woken.
pub(super) struct PushTo<'a> {
    pub(super) to_close: &'a mut Vec<(ConnId, CloseReason)>,
    pub(super) woken: &'a mut Vec<(ConnId, Outbox)>,
}

/// Queue `out` on a connection, counting it; a queue past its hard limit closes the connection.
pub(super) fn push(
    stats: &mut Stats,
    c: &mut Connection,
    out: Out,
    max_outgoing_bytes: usize,
    to: PushTo<'_>,
) {
    stats.messages_sent = stats.messages_sent.saturating_add(1);
    stats.bytes_sent = stats.bytes_sent.saturating_add(out.len() as u64);
    let queued = c.outbox(to.woken).push(out);
    if queued > max_outgoing_bytes.saturating_mul(8) {
        to.to_close.push((c.id, CloseReason::SlowConsumer));
    }
}

impl Broker {
    /// A resumed session: redeliver what is in flight (DUP set; PUBREL for messages whose PUBREC
    /// arrived, [MQTT-4.4.0-1]), then fill the window from the queue.
    pub(super) fn resume(&mut self, sid: SessionId) {
        let now = self.now_ms;
        let Some(session) = self.sessions.get(sid) else {
            return;
        };
        let Some(conn) = session.conn else { return };
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let version = c.version;
        let max_size = c.max_packet_size;
        let outs: Vec<Out> = session
            .delivery()
            .inflight
            .iter()
            .map(|i| match i.state {
                OutgoingState::AwaitingPubComp => {
                    Out::packet(&Packet::PubRel(Ack::new(i.pid)), version)
                }
                _ => i.message.delivery_with(
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
            })
            .filter(|o| o.len() <= max_size as usize)
            .collect();
        for out in outs {
            let is_publish = !matches!(out, Out::Inline { .. });
            self.send(conn, out);
            if is_publish {
                self.stats.publish_sent = self.stats.publish_sent.saturating_add(1);
            }
        }
        self.fill_window(sid);
    }

    /// Deliver one message to one session: straight to the socket if the client is connected and
    /// the window has room, else into the session queue (bounded, see `max_queued_messages`).
    pub(super) fn deliver(
        &mut self,
        sid: SessionId,
        message: &Arc<Message>,
        qos: QoS,
        retain: bool,
        sub_ids: &[u32],
        shared: Option<&Arc<str>>,
    ) {
        let now = self.now_ms;
        if message.is_expired(now) {
            return;
        }
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let conn = session
            .conn
            .and_then(|id| self.conns.get_mut(&id).map(|c| (id, c)));
        let stats = &mut self.stats;
        match conn {
            Some((_, c)) if qos == QoS::AtMostOnce => {
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
                    Room::Congested | Room::No => return drop_message(stats, session),
                }
                session.dropping = false;
                let out = out_for(c, message, qos, None, retain, sub_ids, now);
                if out.len() > c.max_packet_size as usize {
                    // [MQTT-3.1.2-25]: too large for the client: dropped, counted.
                    return drop_message(stats, session);
                }
                push(
                    stats,
                    c,
                    out,
                    self.config.max_outgoing_bytes,
                    PushTo {
                        to_close: &mut self.to_close,
                        woken: &mut self.woken,
                    },
                );
                stats.publish_sent = stats.publish_sent.saturating_add(1);
            }
            Some((_, c))
                if session.delivery().inflight.len() < session.inflight_max
                    && session.delivery().queued.is_empty() =>
            {
                session.dropping = false;
                let pid = session.next_pid();
                let out = out_for(c, message, qos, Some(pid), retain, sub_ids, now);
                if out.len() > c.max_packet_size as usize {
                    return drop_message(stats, session);
                }
                session.delivery_mut().inflight.push_back(Inflight {
                    pid,
                    message: Arc::clone(message),
                    qos,
                    retain,
                    state: if qos == QoS::ExactlyOnce {
                        OutgoingState::AwaitingPubRec
                    } else {
                        OutgoingState::AwaitingPubAck
                    },
                    sub_ids: sub_ids.into(),
                    shared: shared.cloned(),
                });
                push(
                    stats,
                    c,
                    out,
                    self.config.max_outgoing_bytes,
                    PushTo {
                        to_close: &mut self.to_close,
                        woken: &mut self.woken,
                    },
                );
                stats.publish_sent = stats.publish_sent.saturating_add(1);
            }
            // QoS 0 is not queued for an offline session unless configured.
            None if qos == QoS::AtMostOnce && !self.config.queue_qos0_messages => {}
            conn => {
                let queued = Queued {
                    message: Arc::clone(message),
                    qos,
                    retain,
                    sub_ids: sub_ids.into(),
                    shared: shared.cloned(),
                };
                if session.delivery().queued.len() < self.config.max_queued_messages {
                    session.delivery_mut().queued.push_back(queued);
                } else if let Some(pos) = session
                    .delivery()
                    .queued
                    .iter()
                    .position(|q| q.message.is_expired(now))
                {
                    // An expired message makes room first ([MQTT-3.3.2-5]).
                    session.delivery_mut().queued.remove(pos);
                    session.delivery_mut().queued.push_back(queued);
                } else if qos != QoS::AtMostOnce
                    && let Some(pos) = session
                        .delivery()
                        .queued
                        .iter()
                        .position(|q| q.qos == QoS::AtMostOnce)
                {
                    // Drop policy: the oldest queued QoS 0 message makes room for QoS 1/2.
                    session.delivery_mut().queued.remove(pos);
                    session.delivery_mut().queued.push_back(queued);
                    drop_message(stats, session);
                } else {
                    drop_message(stats, session);
                }
                // A connected client whose queue is long holds its publishers back (an offline
                // one never does: its queue is what it will find when it comes back).
                let max = self.config.max_queued_messages;
                if let Some(o) = conn.and_then(|(_, c)| c.outbox.as_ref())
                    && max > 0
                    && self.config.max_publisher_hold_ms > 0
                    && session.delivery().queued.len() >= (max / 2).max(1)
                    && !o.is_stalled()
                {
                    o.set_held(true);
                    note_congested(&mut self.congested, o);
                }
            }
        }
    }

    /// Move queued messages into the in-flight window while it has room; expired messages are
    /// dropped on the way ([MQTT-3.3.2-5]).
    pub(super) fn fill_window(&mut self, sid: SessionId) {
        let now = self.now_ms;
        let Some(session) = self.sessions.get_mut(sid) else {
            return;
        };
        let Some(c) = session.conn.and_then(|id| self.conns.get_mut(&id)) else {
            return;
        };
        while session.delivery().inflight.len() < session.inflight_max {
            // (Checked first so that a session with nothing queued allocates nothing here.)
            if session.delivery().queued.is_empty() {
                break;
            }
            let Some(q) = session.delivery_mut().queued.pop_front() else {
                break;
            };
            if q.message.is_expired(now) {
                continue;
            }
            let out = if q.qos == QoS::AtMostOnce {
                out_for(c, &q.message, q.qos, None, q.retain, &q.sub_ids, now)
            } else {
                let pid = session.next_pid();
                let out = out_for(c, &q.message, q.qos, Some(pid), q.retain, &q.sub_ids, now);
                if out.len() <= c.max_packet_size as usize {
                    session.delivery_mut().inflight.push_back(Inflight {
                        pid,
                        state: if q.qos == QoS::ExactlyOnce {
                            OutgoingState::AwaitingPubRec
                        } else {
                            OutgoingState::AwaitingPubAck
                        },
                        message: q.message,
                        qos: q.qos,
                        retain: q.retain,
                        sub_ids: q.sub_ids,
                        shared: q.shared,
                    });
                }
                out
            };
            if out.len() > c.max_packet_size as usize {
                drop_message(&mut self.stats, session);
                continue;
            }
            push(
                &mut self.stats,
                c,
                out,
                self.config.max_outgoing_bytes,
                PushTo {
                    to_close: &mut self.to_close,
                    woken: &mut self.woken,
                },
            );
            self.stats.publish_sent = self.stats.publish_sent.saturating_add(1);
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
