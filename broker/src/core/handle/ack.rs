//! PUBACK, PUBREC, PUBREL, PUBCOMP: the QoS 1 and 2 acknowledgement flows (MQTT §4.3).

use wren_codec::{Ack, Packet, PacketId, ReasonCode};

use crate::core::Broker;
use crate::core::close::CloseReason;
use crate::core::delivery::forget;
use crate::core::ids::{ConnId, SessionId};
use crate::core::persist::Change;
use crate::core::session::OutgoingState;

impl Broker {
    /// PUBACK: a QoS 1 message the broker sent is delivered.
    pub(in crate::core) fn on_puback(
        &mut self,
        sid: SessionId,
        pid: PacketId,
    ) -> Result<(), CloseReason> {
        self.complete_outgoing(sid, pid, OutgoingState::AwaitingPubAck)
    }

    /// PUBCOMP: a QoS 2 message the broker sent is complete.
    pub(in crate::core) fn on_pubcomp(
        &mut self,
        sid: SessionId,
        pid: PacketId,
    ) -> Result<(), CloseReason> {
        self.complete_outgoing(sid, pid, OutgoingState::AwaitingPubComp)
    }

    /// PUBREC: a QoS 2 message the broker sent was received; PUBREL goes back (5.0: 0x92 for an
    /// unknown id). A PUBREC with an error code ends the exchange (5.0 §4.3.3).
    pub(in crate::core) fn on_pubrec(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        a: &Ack<'_>,
    ) -> Result<(), CloseReason> {
        let mut known = false;
        if let Some(s) = self.sessions.get_mut(sid)
            && let Some(pos) = s.inflight_position(a.packet_id)
            && let client_id = std::sync::Arc::clone(&s.client_id)
            && let Some(i) = s.delivery_mut().inflight.get_mut(pos)
        {
            // PUBREC for a message sent at QoS 1 (Mosquitto: a protocol error too).
            if i.state == OutgoingState::AwaitingPubAck {
                return Err(wrong_ack("PUBREC", i.state));
            }
            known = true;
            if a.reason_code.is_success() {
                if i.state != OutgoingState::AwaitingPubComp && i.key != 0 {
                    let key = i.key;
                    self.journal.record_sent(
                        &client_id,
                        key,
                        a.packet_id.get(),
                        OutgoingState::AwaitingPubComp,
                    );
                }
                i.state = OutgoingState::AwaitingPubComp;
            } else {
                if let Some(i) = s.delivery_mut().inflight.remove(pos) {
                    forget(&mut self.journal, &s.client_id, i.key);
                }
                self.fill_window(sid);
                return Ok(());
            }
        }
        let mut rel = Ack::new(a.packet_id);
        if !known && self.version(conn).is_v5() {
            rel.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        self.send_ack_packet(conn, &Packet::PubRel(rel));
        Ok(())
    }

    /// PUBREL: an incoming QoS 2 message is released; PUBCOMP goes back even for an id already
    /// released ([MQTT-4.3.3-2] in 3.1.1, [MQTT-4.3.3-11] in 5.0, which says so with 0x92
    /// Packet Identifier not found).
    pub(in crate::core) fn on_pubrel(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        a: &Ack<'_>,
    ) -> Result<(), CloseReason> {
        let mut known = false;
        if let Some(s) = self.sessions.get_mut(sid) {
            known = s.release_awaiting_rel(a.packet_id.get());
            if known && s.persisted {
                self.journal.record(Change::Released {
                    client_id: std::sync::Arc::clone(&s.client_id),
                    pid: a.packet_id.get(),
                });
            }
        }
        let mut comp = Ack::new(a.packet_id);
        if !known && self.version(conn).is_v5() {
            comp.reason_code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
        }
        self.send_ack_packet(conn, &Packet::PubComp(comp));
        Ok(())
    }

    /// The in-flight message `pid` is acknowledged: it leaves the window, and the window refills
    /// from the queue. An acknowledgement of the wrong kind for it (PUBACK for a QoS 2 message,
    /// PUBCOMP for a QoS 1 message or before PUBREC) is a Protocol Error (Mosquitto's
    /// `db__message_delete_outgoing` refuses them alike); one for an id not in flight is
    /// ignored (a late duplicate).
    fn complete_outgoing(
        &mut self,
        sid: SessionId,
        pid: PacketId,
        expected: OutgoingState,
    ) -> Result<(), CloseReason> {
        let Some(s) = self.sessions.get_mut(sid) else {
            return Ok(());
        };
        let Some(pos) = s.inflight_position(pid) else {
            return Ok(());
        };
        match s.delivery().inflight.get(pos).map(|i| i.state) {
            Some(state) if state == expected => {
                if let Some(i) = s.delivery_mut().inflight.remove(pos) {
                    forget(&mut self.journal, &s.client_id, i.key);
                }
                self.fill_window(sid);
                Ok(())
            }
            Some(state) => Err(wrong_ack(
                match expected {
                    OutgoingState::AwaitingPubAck => "PUBACK",
                    _ => "PUBCOMP",
                },
                state,
            )),
            None => Ok(()),
        }
    }
}

/// The close for an acknowledgement of the wrong kind: `got` for a message in `state`.
fn wrong_ack(got: &str, state: OutgoingState) -> CloseReason {
    log::debug!("{got} for a message awaiting {state:?}: protocol error.");
    CloseReason::ProtocolError
}
