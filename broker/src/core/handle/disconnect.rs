//! DISCONNECT from a client: a last Session Expiry Interval, and whether the will goes out.

use wren_codec::{Disconnect, ReasonCode};

use crate::core::Broker;
use crate::core::close::CloseReason;
use crate::core::conn::Phase;
use crate::core::ids::{ConnId, SessionId};

impl Broker {
    /// DISCONNECT always ends the connection: `Err` carries how (with or without the will).
    pub(in crate::core) fn on_disconnect(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        d: &Disconnect<'_>,
    ) -> Result<(), CloseReason> {
        if let Some(new_expiry) = d.properties.session_expiry_interval {
            let connect_expiry = match self.conns.get(&conn).map(|c| &c.state) {
                Some(Phase::Connected(client)) => client.connect_expiry,
                _ => 0,
            };
            // 5.0 §3.14.2.2.2: from 0 at CONNECT to non-zero is a protocol error.
            if connect_expiry == 0 && new_expiry != 0 {
                return Err(CloseReason::ProtocolError);
            }
            if let Some(s) = self.sessions.get_mut(sid) {
                s.expiry_interval = new_expiry.min(self.config.max_session_expiry_interval);
                s.clean = new_expiry == 0;
            }
            self.journal_session(sid);
        }
        if d.reason_code == ReasonCode::DISCONNECT_WITH_WILL {
            Err(CloseReason::DisconnectedWithWill)
        } else {
            // [MQTT-3.1.2-10], [MQTT-3.14.4-3] (the same ids in 3.1.1 and 5.0): the will is
            // discarded.
            Err(CloseReason::Disconnected)
        }
    }
}
