//! Wills (MQTT §3.1.2.5, 5.0 §3.1.3.2): published when a connection ends without DISCONNECT, at
//! once or after the Will Delay Interval.
//!
//! - A delayed will is cancelled by any new connection for its client id before the delay has
//!   passed, Clean Start or not ([MQTT-3.1.2-8] "a new Network Connection for the ClientID",
//!   [MQTT-3.1.3-9]; Mosquitto's `will_delay__remove` on CONNECT).
//! - It is published early when its session expires first ([MQTT-3.1.2-8] "or the Session
//!   ends"). A session that ends with its connection (Session Expiry 0) leaves the will waiting
//!   its delay, so a client that reconnects within it sends no will: Mosquitto keeps such a
//!   client's state until the will is due; broker/MQTT5.md lists this choice.
//! - Session takeover: a 5.0 client's will goes as 5.0 §3.1.4 says (published, after its
//!   delay, which the new connection then cancels); a 3.1/3.1.1 client's will is not published
//!   when the new connection continues the session (Clean Session 0 both times), as in
//!   Mosquitto (`connect__on_authorised`), and is otherwise.
//! - The broker dying: with persistence on, a connected client's will is in the durable store
//!   from its CONNECT until its connection ends ([`Change::ConnectedWill`]) — in the durable
//!   mode on disk before its CONNACK goes out ([`Broker::journal_connected_will`]); after a
//!   crash (or a shutdown, which closes connections without their wills) it comes back as a
//!   delayed will due its Will Delay Interval after the restart, and is published then unless
//!   the client connects again first — the connection ended without DISCONNECT, but it was the
//!   broker's doing. (Mosquitto loses them in a crash, and publishes them all, delays ignored,
//!   at a shutdown, with a FIXME saying they should be kept.)

use std::sync::Arc;

use super::Broker;
use super::close::CloseReason;
use super::conn::{ClientState, Phase};
use super::ids::ConnId;
use super::message::Message;
use super::persist::{Change, Journal};

/// A will waiting for its Will Delay Interval.
#[derive(Debug)]
struct PendingWill {
    client_id: Arc<str>,
    due_ms: u64,
    message: Arc<Message>,
}

/// The wills waiting for their delay, the only owner of them.
#[derive(Debug, Default)]
pub(super) struct DelayedWills(Vec<PendingWill>);

impl DelayedWills {
    /// Take the delayed will of `client_id`, if one waits (the durable store forgets it).
    fn take(&mut self, client_id: &str, journal: &mut Journal) -> Option<Arc<Message>> {
        let pos = self.0.iter().position(|w| &*w.client_id == client_id)?;
        let will = self.0.swap_remove(pos);
        journal.record(Change::Will {
            client_id: will.client_id,
            will: None,
        });
        Some(will.message)
    }

    /// When the next delayed will is due.
    pub(super) fn next_due(&self) -> Option<u64> {
        self.0.iter().map(|w| w.due_ms).min()
    }
}

impl Broker {
    /// A connected client's connection ended for `reason`: publish its will now, or hold it for
    /// its Will Delay Interval. Wills on `$` topics are never published (clients may not publish
    /// there).
    pub(super) fn will_on_close(&mut self, client: &mut ClientState, reason: CloseReason) {
        if !reason.publishes_will() {
            return;
        }
        let Some(will) = client.will.take() else {
            return;
        };
        // `$` topics, and the client's write access (`access.rs`).
        if !self.will_allowed(client, &will) {
            log::debug!(
                "Denied will of {} on '{}': not authorised.",
                client.client_id,
                will.topic()
            );
            return;
        }
        let now = self.now_ms;
        if client.will_delay == 0 {
            self.route(will.restamped(now), None);
        } else {
            let due_ms = now.saturating_add(u64::from(client.will_delay).saturating_mul(1000));
            self.delay_will(Arc::clone(&client.client_id), will, due_ms);
        }
    }

    /// Whether `client` may publish `will` (`$` topics, and its write access).
    fn will_allowed(&self, client: &ClientState, will: &Message) -> bool {
        if will.topic().starts_with('$') && !client.may_publish_dollar(will.topic()) {
            return false;
        }
        self.sessions.get(client.session).is_none_or(|s| {
            self.may(
                &s.client_id,
                &s.identity,
                will.topic(),
                super::access::TopicAccess::Write,
            )
        })
    }

    /// A client connected on `conn`: its will, if it has one it may publish, goes to the
    /// durable store until the connection ends (see the module documentation); a will an
    /// earlier connection of its client id left there goes. Returns the batch the CONNACK
    /// waits for (0: none): a client told it is connected counts on its will, so in the
    /// durable mode the CONNACK goes once the will is on disk.
    pub(super) fn journal_connected_will(&mut self, conn: ConnId) -> u64 {
        if !self.journal.on() {
            return 0;
        }
        let Some(Phase::Connected(client)) = self.conns.get(&conn).map(|c| &c.state) else {
            return 0;
        };
        let will = client
            .will
            .as_ref()
            .filter(|w| self.will_allowed(client, w))
            .map(|w| (Arc::clone(w), client.will_delay));
        let client_id = Arc::clone(&client.client_id);
        let wait = if will.is_some() {
            self.journal
                .connected_wills
                .insert(Arc::clone(&client_id), conn);
            self.journal.recording()
        } else if self.journal.connected_wills.remove(&client_id).is_some() {
            0
        } else {
            return 0;
        };
        self.journal
            .record(Change::ConnectedWill { client_id, will });
        wait
    }

    /// The connection `conn` of `client_id` ended (not by a shutdown): the will it left in the
    /// durable store goes — published, delayed (and stored as such) or discarded by now —
    /// unless a newer connection of the client id put its own there.
    pub(super) fn forget_connected_will(&mut self, conn: ConnId, client_id: &Arc<str>) {
        if self.journal.connected_wills.get(client_id) != Some(&conn) {
            return;
        }
        self.journal.connected_wills.remove(client_id);
        self.journal.record(Change::ConnectedWill {
            client_id: Arc::clone(client_id),
            will: None,
        });
    }

    /// Hold `will` of `client_id` until `due_ms` (kept by the durable store meanwhile).
    pub(super) fn delay_will(&mut self, client_id: Arc<str>, will: Arc<Message>, due_ms: u64) {
        self.journal.record(Change::Will {
            client_id: Arc::clone(&client_id),
            will: Some((Arc::clone(&will), due_ms)),
        });
        self.delayed_wills.0.push(PendingWill {
            client_id,
            due_ms,
            message: will,
        });
    }

    /// A new connection for the client id before its will's delay passed: the will is not sent
    /// ([MQTT-3.1.2-8], [MQTT-3.1.3-9] (5.0)).
    pub(super) fn cancel_delayed_will(&mut self, client_id: &str) {
        self.delayed_wills.take(client_id, &mut self.journal);
    }

    /// The session of `client_id` expired: its delayed will goes out now ("or the Session ends,
    /// whichever happens first").
    pub(super) fn will_on_session_end(&mut self, client_id: &str) {
        if let Some(will) = self.delayed_wills.take(client_id, &mut self.journal) {
            self.route(will.restamped(self.now_ms), None);
        }
    }

    /// Publish the delayed wills whose time has come.
    pub(super) fn publish_due_wills(&mut self, now_ms: u64) {
        if self.delayed_wills.next_due().is_none_or(|due| due > now_ms) {
            return;
        }
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.delayed_wills.0)
            .into_iter()
            .partition(|w| w.due_ms <= now_ms);
        self.delayed_wills.0 = waiting;
        for w in due {
            self.journal.record(Change::Will {
                client_id: Arc::clone(&w.client_id),
                will: None,
            });
            self.route(w.message.restamped(now_ms), None);
        }
    }
}
