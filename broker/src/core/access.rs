//! Who may connect through each listener: the core's side of `allow_anonymous` (Mosquitto 2.0's
//! rules), decided at CONNECT before anything else about the client is looked at.
//!
//! A client without a user name is admitted where the listener allows anonymous clients. A
//! client with one is admitted there too when no password file is configured (there is nothing
//! to check it against), and refused elsewhere, as Mosquitto does. Refusals are CONNACK 0x05
//! Not authorized (3.1.1) or 0x87 Not authorized (5.0), as Mosquitto answers them.

use wren_codec::{Connect, ReasonCode};

use super::Broker;
use super::close::CloseReason;
use super::ids::ConnId;
use super::login_failures::Limits;
use crate::config::Config;

/// One listener's admission rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerAccess {
    /// Clients without a user name are admitted.
    pub allow_anonymous: bool,
}

impl ListenerAccess {
    /// The rules of every listener of `config`, by listener index.
    pub fn from_config(config: &Config) -> Vec<ListenerAccess> {
        config
            .listeners()
            .iter()
            .map(|l| ListenerAccess {
                allow_anonymous: config.security(l).allow_anonymous,
            })
            .collect()
    }
}

impl Broker {
    /// Replace the admission rules (a reload): they apply to the next CONNECT.
    pub fn set_listener_access(&mut self, access: Vec<ListenerAccess>) {
        self.access = access;
    }

    /// Admit `connect` on `conn`'s listener, or refuse it with CONNACK 0x05 / 0x87.
    pub(super) fn admit(&mut self, conn: ConnId, connect: &Connect<'_>) -> Result<(), CloseReason> {
        let Some(c) = self.conns.get(&conn) else {
            return Ok(());
        };
        if self.login_failures.is_blocked(c.peer.ip(), self.now_ms) {
            let code = if connect.protocol.is_v5() {
                ReasonCode::BANNED
            } else {
                ReasonCode::V3_NOT_AUTHORIZED
            };
            return Err(self.refuse(conn, code, "too many failed logins from its address"));
        }
        // A connection from a listener the rules do not cover (a core driven without a
        // configuration's listeners) is refused rather than let in.
        let allowed = self
            .access
            .get(c.listener)
            .is_some_and(|a| a.allow_anonymous);
        if allowed {
            return Ok(());
        }
        let code = if connect.protocol.is_v5() {
            ReasonCode::NOT_AUTHORIZED
        } else {
            ReasonCode::V3_NOT_AUTHORIZED
        };
        Err(self.refuse_login(conn, code, "not authorised"))
    }

    /// Refuse a login (CONNACK `code`) and count it against the client's address; the failure
    /// that starts a block says so, once.
    pub(super) fn refuse_login(
        &mut self,
        conn: ConnId,
        code: ReasonCode,
        why: &str,
    ) -> CloseReason {
        if let Some(c) = self.conns.get(&conn) {
            let ip = c.peer.ip();
            let limits = Limits {
                max_failures: self.config.max_failed_logins,
                window_ms: self.config.failed_login_window.saturating_mul(1000),
                block_ms: self.config.failed_login_block.saturating_mul(1000),
            };
            if let Some(secs) = self.login_failures.failed(ip, self.now_ms, limits) {
                log::warn!(
                    "Too many failed logins from {ip} ({} within {} s): its CONNECTs are refused \
                     for {secs} s.",
                    limits.max_failures,
                    self.config.failed_login_window
                );
            }
        }
        self.refuse(conn, code, why)
    }
}
