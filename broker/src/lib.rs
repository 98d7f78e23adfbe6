//! # wren-broker
//!
//! An MQTT 3.1, 3.1.1 and 5.0 broker: a sans-I/O core ([`Broker`] with its [`SessionStore`],
//! [`SubscriptionIndex`] and [`RetainedStore`]) inside a thin smol runtime shell ([`Server`]).
//! See `broker/README.md` and, for MQTT 5.0, `broker/MQTT5.md`.
//!
//! Embedding the broker, e.g. in a test: bind to an ephemeral loopback port, talk MQTT to it,
//! shut it down.
//!
//! ```
//! use std::io::{Read, Write};
//! use wren_broker::{Config, Server};
//!
//! let server = Server::bind(Config { bind: "127.0.0.1".into(), port: 0, ..Config::default() })?;
//! let handle = server.start()?;
//! let mut tcp = std::net::TcpStream::connect(handle.local_addr())?;
//! // CONNECT, MQTT 3.1.1, clean session, keep-alive 60 s, client id "doc".
//! tcp.write_all(&[0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60, 0, 3, b'd', b'o', b'c'])?;
//! let mut connack = [0u8; 4];
//! tcp.read_exact(&mut connack)?;
//! assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "CONNACK: accepted, no session present");
//! handle.shutdown();
//! # Ok::<(), std::io::Error>(())
//! ```

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
#[cfg(target_os = "linux")]
mod park;
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
