//! # wren-broker
//!
//! An MQTT 3.1.1 (and 3.1) broker: a sans-I/O core ([`Broker`] with its [`SessionStore`],
//! [`SubscriptionIndex`] and [`RetainedStore`]) inside a thin smol runtime shell ([`Server`]).
//! See `broker/README.md`.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod auth;
pub mod broker;
pub mod config;
pub mod index;
pub mod message;
pub mod outbox;
pub mod retained;
pub mod server;
pub mod session;

pub use auth::{AuthExchange, AuthStep, Authenticator, HmacChallenge};
pub use broker::{Broker, CloseReason, Stats};
pub use config::Config;
pub use index::{Sub, SubscriptionIndex};
pub use message::{Delivery, Message, MessageProperties, Out};
pub use outbox::Outbox;
pub use retained::RetainedStore;
pub use server::{Server, ServerHandle};
pub use session::{ConnId, Session, SessionId, SessionStore};
