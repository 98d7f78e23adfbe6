//! Who may connect through each listener, and what each client may publish, subscribe to and
//! receive: the core's side of `allow_anonymous`, `password_file` and `acl_file` (Mosquitto
//! 2.0's rules). The core reads no files: the shell loads them and hands them over as a
//! [`UserStore`] and [`TopicRules`] per listener ([`ListenerAccess`]), again on every reload.
//!
//! - **Admission** (at CONNECT, before anything else is decided): a client without a user name
//!   is admitted where the listener allows anonymous clients. One with a user name is checked
//!   against the listener's users when it has a password file; without one it is admitted where
//!   anonymous clients are (there is nothing to check it against), as Mosquitto does. A client
//!   that authenticates with a 5.0 Authentication Method the broker offers is that method's
//!   business (`authenticator.rs`). Refusals are CONNACK 0x05 (3.1.1), 5.0 0x87 Not authorized
//!   (no user name where one is needed, as Mosquitto) or 0x86 Bad User Name or Password (wrong
//!   credentials; Mosquitto 2.0 answers 0x87 there too), and count as failed logins of the
//!   client's address (`login_failures.rs`), which a blocked address is refused by first.
//! - **Topics** (`acl_file`): a SUBSCRIBE filter needs Subscribe access (refused: SUBACK 0x80,
//!   5.0 0x87); a PUBLISH without Write access is acknowledged and dropped (5.0 PUBACK/PUBREC
//!   0x87); every delivery, retained messages and wills included, needs the receiver's Read
//!   access (checked in `delivery.rs`, the one path a PUBLISH takes to a session); a will needs
//!   its client's Write access when its connection ends (`will.rs`).
//! - **Reload** ([`Broker::set_listener_access`]): the new rules apply at once; a connected
//!   client whose user is gone or whose password changed, or who would no longer be admitted,
//!   is disconnected (5.0 DISCONNECT 0x87; its will goes as for any close it did not ask for,
//!   if its client may still write it) — Mosquitto leaves them connected.

use std::fmt;
use std::sync::Arc;

use wren_codec::{Connect, ReasonCode};

use super::Broker;
use super::close::CloseReason;
use super::conn::Phase;
use super::ids::{ConnId, SessionId};
use super::login_failures::Limits;
use crate::config::Config;

/// Users and their passwords (the password file).
pub trait UserStore: fmt::Debug + Send + Sync {
    /// Whether `username` may log in with `password`. Implementations compare in constant time
    /// and take about as long for unknown users.
    fn verify(&self, username: &str, password: &[u8]) -> bool;

    /// A fingerprint of `username`'s stored credential (`None`: no such user); when it changes
    /// on a reload, the user's connected clients are disconnected.
    fn credential(&self, username: &str) -> Option<u64>;
}

/// What a client does with a topic, for [`TopicRules`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicAccess {
    /// Receive a message published to it.
    Read,
    /// Publish to it.
    Write,
    /// Subscribe with this filter.
    Subscribe,
}

/// Who may do what with which topic (the ACL file).
pub trait TopicRules: fmt::Debug + Send + Sync {
    /// Whether the client `client_id` (user `username`) may `access` `topic` (a topic name, or
    /// a filter for [`TopicAccess::Subscribe`]).
    fn allows(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        access: TopicAccess,
    ) -> bool;
}

/// One listener's rules.
#[derive(Debug, Clone, Default)]
pub struct ListenerAccess {
    /// Clients without a user name are admitted.
    pub allow_anonymous: bool,
    /// The users clients with a user name are checked against (`None`: no password file).
    pub users: Option<Arc<dyn UserStore>>,
    /// Topic rules (`None`: everyone may do everything).
    pub rules: Option<Arc<dyn TopicRules>>,
}

impl ListenerAccess {
    /// The rules `config` gives every listener, by listener index, without its files (the
    /// shell loads those: [`ListenerAccess::users`], [`ListenerAccess::rules`]).
    pub fn from_config(config: &Config) -> Vec<ListenerAccess> {
        config
            .listeners()
            .iter()
            .map(|l| ListenerAccess {
                allow_anonymous: config.security(l).allow_anonymous,
                users: None,
                rules: None,
            })
            .collect()
    }
}

/// Who a client is, for the topic rules: what a session keeps of its last login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The user name it logged in with (or its certificate gave).
    pub username: Option<Arc<str>>,
    /// The listener it came through (index into the configuration's listeners).
    pub listener: usize,
    /// [`UserStore::credential`] when it logged in with a password (`None` otherwise).
    pub credential: Option<u64>,
    /// Its user name came from its TLS client certificate (a reload of the password file
    /// does not concern it).
    pub by_certificate: bool,
}

impl Identity {
    /// The identity of a session that has not logged in with a name (anonymous, first
    /// listener): one shared copy, so a session costs a pointer for it.
    pub fn anonymous() -> Arc<Identity> {
        static ANONYMOUS: std::sync::LazyLock<Arc<Identity>> =
            std::sync::LazyLock::new(|| Arc::new(Identity::default()));
        Arc::clone(&ANONYMOUS)
    }

    /// This identity shared: the anonymous one's copy when it is that, else a new one.
    pub fn shared(self) -> Arc<Identity> {
        if self == Identity::default() {
            Identity::anonymous()
        } else {
            Arc::new(self)
        }
    }
}

impl Broker {
    /// Replace every listener's rules (a reload): they apply at once. A connected client who
    /// would no longer be admitted — its user gone or its password changed, anonymous where
    /// that is no longer allowed — is disconnected.
    pub fn set_listener_access(&mut self, access: Vec<ListenerAccess>) {
        self.any_topic_rules = access.iter().any(|a| a.rules.is_some());
        self.access = access;
        let mut gone = Vec::new();
        for (id, c) in &self.conns {
            let Phase::Connected(client) = &c.state else {
                continue;
            };
            if client.auth.is_some() {
                continue;
            }
            let Some(session) = self.sessions.get(client.session) else {
                continue;
            };
            let who = &session.identity;
            if who.by_certificate {
                continue;
            }
            let still = match (self.access.get(who.listener), &who.username) {
                (None, _) => false,
                (Some(a), None) => a.allow_anonymous,
                (Some(a), Some(user)) => match &a.users {
                    Some(users) => {
                        who.credential.is_some() && users.credential(user) == who.credential
                    }
                    None => a.allow_anonymous,
                },
            };
            if !still {
                log::info!(
                    "Client {} disconnected: no longer authorised after a reload.",
                    client.client_id
                );
                gone.push(*id);
            }
        }
        for id in gone {
            self.close(id, CloseReason::NotAuthorized);
        }
    }

    /// Admit `connect` on `conn`'s listener, or refuse it (CONNACK): the identity it logs in
    /// with.
    pub(super) fn admit(
        &mut self,
        conn: ConnId,
        connect: &Connect<'_>,
    ) -> Result<Identity, CloseReason> {
        let Some(c) = self.conns.get(&conn) else {
            return Ok(Identity::default());
        };
        let v5 = connect.protocol.is_v5();
        let listener = c.listener;
        if self.login_failures.is_blocked(c.peer.ip(), self.now_ms) {
            let code = if v5 {
                ReasonCode::BANNED
            } else {
                ReasonCode::V3_NOT_AUTHORIZED
            };
            return Err(self.refuse(conn, code, "too many failed logins from its address"));
        }
        let identity = Identity {
            username: connect.username.map(Arc::from),
            listener,
            credential: None,
            by_certificate: false,
        };
        if listener == super::BRIDGE_LISTENER {
            return Ok(identity);
        }
        // A listener the rules do not cover (a core driven without the configuration's
        // listeners) admits nobody.
        let Some(access) = self.access.get(listener) else {
            return Err(self.refuse_not_authorised(conn, v5));
        };
        let offered_method = v5
            && connect
                .properties
                .authentication_method
                .is_some_and(|m| self.authenticators.iter().any(|a| a.method() == m));
        if offered_method {
            return Ok(identity);
        }
        match (connect.username, &access.users) {
            (Some(user), Some(users)) => {
                let users = Arc::clone(users);
                if users.verify(user, connect.password.unwrap_or_default()) {
                    Ok(Identity {
                        credential: users.credential(user),
                        ..identity
                    })
                } else {
                    let code = if v5 {
                        ReasonCode::BAD_USER_NAME_OR_PASSWORD
                    } else {
                        ReasonCode::V3_NOT_AUTHORIZED
                    };
                    Err(self.refuse_login(conn, code, "bad user name or password"))
                }
            }
            _ if access.allow_anonymous => Ok(identity),
            _ => Err(self.refuse_not_authorised(conn, v5)),
        }
    }

    fn refuse_not_authorised(&mut self, conn: ConnId, v5: bool) -> CloseReason {
        let code = if v5 {
            ReasonCode::NOT_AUTHORIZED
        } else {
            ReasonCode::V3_NOT_AUTHORIZED
        };
        self.refuse_login(conn, code, "not authorised")
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

    /// Whether `identity` (client `client_id`) may `access` `topic`; always when no topic
    /// rules are configured.
    pub(super) fn may(
        &self,
        client_id: &str,
        identity: &Identity,
        topic: &str,
        access: TopicAccess,
    ) -> bool {
        if !self.any_topic_rules {
            return true;
        }
        match self
            .access
            .get(identity.listener)
            .and_then(|a| a.rules.as_ref())
        {
            None => true,
            Some(rules) => rules.allows(client_id, identity.username.as_deref(), topic, access),
        }
    }

    /// Whether session `sid` may receive a message on `topic` (see [`Broker::may`]).
    pub(super) fn may_read(&self, sid: SessionId, topic: &str) -> bool {
        if !self.any_topic_rules {
            return true;
        }
        self.sessions
            .get(sid)
            .is_some_and(|s| self.may(&s.client_id, &s.identity, topic, TopicAccess::Read))
    }
}
