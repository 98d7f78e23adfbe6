//! Enhanced authentication (5.0 §4.12): the pluggable [`Authenticator`] trait the core drives
//! through CONNECT → AUTH 0x18 ↔ AUTH 0x18 → CONNACK, and re-authentication (AUTH 0x19), plus an
//! example method, [`HmacChallenge`].
//!
//! The core knows nothing about any method: it finds the [`Authenticator`] whose
//! [`Authenticator::method`] equals the CONNECT's Authentication Method (none: CONNACK 0x8C),
//! starts an [`AuthExchange`] and feeds it each Authentication Data the client sends.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, RandomState};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// What an exchange says after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send AUTH 0x18 (Continue authentication) with this Authentication Data.
    Continue(Vec<u8>),
    /// Authenticated: CONNACK 0x00 (or AUTH 0x00 after re-authentication), with this
    /// Authentication Data if any.
    Success(Option<Vec<u8>>),
    /// Refused: CONNACK 0x87 (or DISCONNECT 0x87 after re-authentication).
    Failure,
}

/// One authentication exchange of one connection.
pub trait AuthExchange: Send + fmt::Debug {
    /// The next step, given the Authentication Data the client sent (CONNECT's first, then each
    /// AUTH's; empty if the packet had none).
    fn step(&mut self, data: &[u8]) -> AuthStep;
}

/// An authentication method the broker offers.
pub trait Authenticator: Send + Sync + fmt::Debug {
    /// The Authentication Method name (e.g. `SCRAM-SHA-256`).
    fn method(&self) -> &str;
    /// Start an exchange for this client (its User Name, if it sent one).
    fn begin(&self, client_id: &str, username: Option<&str>) -> Box<dyn AuthExchange>;
}

/// Example method `WREN-HMAC-SHA256`, a challenge-response over a shared secret:
///
/// 1. CONNECT's Authentication Data is the user name.
/// 2. The broker answers AUTH 0x18 with a fresh 16-byte nonce.
/// 3. The client answers AUTH 0x18 with HMAC-SHA256(secret, nonce) ([`HmacChallenge::respond`]).
/// 4. The broker checks it (in constant time) and sends CONNACK 0x00, or CONNACK 0x87.
///
/// The secret never crosses the network; a recorded response is useless for another nonce.
#[derive(Debug, Default)]
pub struct HmacChallenge {
    secrets: HashMap<String, Vec<u8>>,
    seed: RandomState,
}

impl HmacChallenge {
    /// The method name.
    pub const METHOD: &'static str = "WREN-HMAC-SHA256";

    /// A method with no users yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a user and its secret.
    pub fn user(mut self, name: &str, secret: &[u8]) -> Self {
        self.secrets.insert(name.into(), secret.into());
        self
    }

    /// The client's answer to `nonce`.
    pub fn respond(secret: &[u8], nonce: &[u8]) -> Vec<u8> {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return Vec::new();
        };
        mac.update(nonce);
        mac.finalize().into_bytes().to_vec()
    }
}

impl Authenticator for HmacChallenge {
    fn method(&self) -> &str {
        Self::METHOD
    }

    fn begin(&self, client_id: &str, _username: Option<&str>) -> Box<dyn AuthExchange> {
        // 16 bytes from two keyed hashes of the client id and a counter-free random state:
        // unpredictable to the client, which is all a nonce needs here.
        let a = self.seed.hash_one((client_id, 1u8));
        let b = RandomState::new().hash_one((client_id, a));
        let mut nonce = a.to_be_bytes().to_vec();
        nonce.extend_from_slice(&b.to_be_bytes());
        Box::new(HmacExchange {
            secrets: self.secrets.clone(),
            nonce,
            secret: None,
        })
    }
}

#[derive(Debug)]
struct HmacExchange {
    secrets: HashMap<String, Vec<u8>>,
    nonce: Vec<u8>,
    /// The user's secret once the user name arrived.
    secret: Option<Vec<u8>>,
}

impl AuthExchange for HmacExchange {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        match &self.secret {
            None => {
                let user = String::from_utf8_lossy(data);
                match self.secrets.get(user.as_ref()) {
                    Some(secret) => {
                        self.secret = Some(secret.clone());
                        AuthStep::Continue(self.nonce.clone())
                    }
                    None => AuthStep::Failure,
                }
            }
            Some(secret) => {
                let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
                    return AuthStep::Failure;
                };
                mac.update(&self.nonce);
                if mac.verify_slice(data).is_ok() {
                    AuthStep::Success(None)
                } else {
                    AuthStep::Failure
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_challenge_accepts_the_right_secret_only() {
        let m = HmacChallenge::new().user("alice", b"s3cret");
        let mut x = m.begin("c1", None);
        let AuthStep::Continue(nonce) = x.step(b"alice") else {
            panic!()
        };
        assert_eq!(nonce.len(), 16);
        assert_eq!(
            x.step(&HmacChallenge::respond(b"s3cret", &nonce)),
            AuthStep::Success(None)
        );
        let mut y = m.begin("c1", None);
        let AuthStep::Continue(nonce2) = y.step(b"alice") else {
            panic!()
        };
        assert_ne!(nonce, nonce2, "fresh nonce per exchange");
        assert_eq!(
            y.step(&HmacChallenge::respond(b"wrong", &nonce2)),
            AuthStep::Failure
        );
        assert_eq!(m.begin("c", None).step(b"mallory"), AuthStep::Failure);
    }
}
