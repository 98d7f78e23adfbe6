//! AUTH: 5.0 enhanced authentication (§4.12), during CONNECT and re-authentication after it.

use std::sync::Arc;

use wren_codec::{
    Auth, Packet, ReasonCode,
    properties::{NO_PROPERTIES, Properties},
};

use crate::core::Broker;
use crate::core::authenticator::AuthStep;
use crate::core::close::CloseReason;
use crate::core::conn::{PendingAuth, Phase};
use crate::core::ids::ConnId;
use crate::core::message::Out;

impl Broker {
    /// Act on one step of a CONNECT's authentication exchange.
    pub(in crate::core) fn auth_step(
        &mut self,
        conn: ConnId,
        step: AuthStep,
        pending: Box<PendingAuth>,
    ) -> Result<(), CloseReason> {
        match step {
            AuthStep::Continue(data) => {
                let auth = Packet::Auth(Auth {
                    reason_code: ReasonCode::CONTINUE_AUTHENTICATION,
                    properties: Properties {
                        authentication_method: Some(&pending.method),
                        authentication_data: Some(&data),
                        ..NO_PROPERTIES
                    },
                });
                let Some(c) = self.conns.get_mut(&conn) else {
                    return Ok(());
                };
                let out = Out::packet(&auth, c.version);
                if !c.fits(&out) {
                    return Err(self.refuse(
                        conn,
                        ReasonCode::PACKET_TOO_LARGE,
                        "authentication data above the client's Maximum Packet Size",
                    ));
                }
                c.state = Phase::Authenticating(pending);
                self.send(conn, out);
                Ok(())
            }
            AuthStep::Success(data) => {
                let PendingAuth {
                    connect, method, ..
                } = *pending;
                self.finish_connect(conn, connect, Some((method, data)))
            }
            AuthStep::Failure => {
                Err(self.refuse_login(conn, ReasonCode::NOT_AUTHORIZED, "authentication failed"))
            }
        }
    }

    /// An AUTH 0x18 during a CONNECT's authentication exchange.
    pub(in crate::core) fn on_connect_auth(
        &mut self,
        conn: ConnId,
        auth: &Auth<'_>,
    ) -> Result<(), CloseReason> {
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        let state = std::mem::replace(&mut c.state, Phase::AwaitingConnect);
        let Phase::Authenticating(mut pending) = state else {
            c.state = state;
            return Ok(());
        };
        // [MQTT-4.12.0-5]: the method must stay the same.
        if auth.properties.authentication_method != Some(&*pending.method) {
            c.state = Phase::Authenticating(pending);
            return Err(self.refuse(
                conn,
                ReasonCode::PROTOCOL_ERROR,
                "authentication method changed",
            ));
        }
        let step = pending
            .exchange
            .step(auth.properties.authentication_data.unwrap_or_default());
        self.auth_step(conn, step, pending)
    }

    /// 5.0 AUTH from a connected client: re-authentication (§4.12.1).
    pub(in crate::core) fn on_reauth(
        &mut self,
        conn: ConnId,
        a: &Auth<'_>,
    ) -> Result<(), CloseReason> {
        let Some(Phase::Connected(client)) = self.conns.get_mut(&conn).map(|c| &mut c.state) else {
            return Ok(());
        };
        let Some(auth) = client.auth.as_mut() else {
            // No enhanced authentication on this connection: AUTH is a protocol error.
            return Err(CloseReason::ProtocolError);
        };
        if a.properties.authentication_method != Some(&*auth.method) {
            return Err(CloseReason::ProtocolError);
        }
        let client_id = Arc::clone(&client.client_id);
        let data = a.properties.authentication_data.unwrap_or_default();
        let step = match (a.reason_code, auth.exchange.as_mut()) {
            (ReasonCode::RE_AUTHENTICATE, _) => {
                let Some(authenticator) = self
                    .authenticators
                    .iter()
                    .find(|x| x.method() == &*auth.method)
                else {
                    return Err(CloseReason::NotAuthorized);
                };
                let mut exchange = authenticator.begin(&client_id, None);
                let step = exchange.step(data);
                auth.exchange = Some(exchange);
                step
            }
            (ReasonCode::CONTINUE_AUTHENTICATION, Some(exchange)) => exchange.step(data),
            _ => return Err(CloseReason::ProtocolError),
        };
        let method = auth.method.clone();
        let (code, data) = match step {
            AuthStep::Continue(d) => (ReasonCode::CONTINUE_AUTHENTICATION, Some(d)),
            AuthStep::Success(d) => {
                auth.exchange = None;
                (ReasonCode::SUCCESS, d)
            }
            AuthStep::Failure => return Err(CloseReason::NotAuthorized),
        };
        let packet = Packet::Auth(Auth {
            reason_code: code,
            properties: Properties {
                authentication_method: Some(&method),
                authentication_data: data.as_deref(),
                ..NO_PROPERTIES
            },
        });
        self.send_packet(conn, &packet);
        Ok(())
    }
}
