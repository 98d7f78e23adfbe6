//! Sending a packet that is not a PUBLISH (acknowledgements, CONNACK, AUTH) on a connection,
//! within the client's Maximum Packet Size.

use wren_codec::{ConnAck, Packet, ProtocolVersion, ReasonCode, properties::NO_PROPERTIES};

use super::Broker;
use super::delivery::Wire;
use super::ids::ConnId;
use super::message::Out;

impl Broker {
    /// The protocol version `conn` speaks (3.1.1 until its CONNECT says otherwise).
    pub(super) fn version(&self, conn: ConnId) -> ProtocolVersion {
        self.conns
            .get(&conn)
            .map_or(ProtocolVersion::V311, |c| c.version)
    }

    /// Queue a packet for `conn`, unless it is larger than the client's Maximum Packet Size
    /// ([MQTT-3.1.2-24] (5.0): the server must not send it).
    pub(super) fn send(&mut self, conn: ConnId, out: Out) {
        self.put(conn, out, false);
    }

    /// [`Broker::send`] for what a committed batch released (see `Journal::hold_out`).
    pub(super) fn send_released(&mut self, conn: ConnId, out: Out) {
        self.put(conn, out, true);
    }

    fn put(&mut self, conn: ConnId, out: Out, released: bool) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.fits(&out) {
                // An acknowledgement this large only happens with absurdly small limits, and is
                // left out.
                log::debug!(
                    "Not sending {} bytes to {}: above its Maximum Packet Size.",
                    out.len(),
                    c.client_id()
                );
                return;
            }
            let mut wire = Wire::new(
                &mut self.stats,
                &mut self.to_close,
                &mut self.woken,
                &mut self.journal,
                &self.config,
                self.now_ms,
            );
            if released {
                wire.push_released(c, out);
            } else {
                wire.push(c, out);
            }
        }
    }

    pub(super) fn send_packet(&mut self, conn: ConnId, packet: &Packet<'_>) {
        if let Some(version) = self.conns.get(&conn).map(|c| c.version) {
            self.send(conn, Out::packet(packet, version));
        }
    }

    pub(super) fn send_connack(&mut self, conn: ConnId, session_present: bool, code: ReasonCode) {
        let Some(version) = self.conns.get(&conn).map(|c| c.version) else {
            return;
        };
        // A 5.0 refusal uses 5.0 codes; map the 3.1.1 ones we use.
        let code = if version.is_v5() && code == ReasonCode::V3_UNACCEPTABLE_PROTOCOL_VERSION {
            ReasonCode::UNSUPPORTED_PROTOCOL_VERSION
        } else {
            code
        };
        let connack = Packet::ConnAck(ConnAck {
            session_present,
            code,
            properties: NO_PROPERTIES,
        });
        self.send(conn, Out::packet(&connack, version));
    }
}
