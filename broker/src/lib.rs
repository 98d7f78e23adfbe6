//! # wren-broker
//!
//! An MQTT 3.1, 3.1.1 and 5.0 broker: a sans-I/O core ([`Broker`] with its [`SessionStore`],
//! [`Subscriptions`] and [`RetainedStore`]) inside a thin smol runtime shell ([`Server`]).
//! `src/core/` is the protocol (no sockets, no clock: time comes in as an argument), `src/shell/`
//! the sockets, tasks and timers.
//! See `broker/README.md` and, for MQTT 5.0, `broker/MQTT5.md`.
//!
//! Embedding the broker, e.g. in a test: bind to an ephemeral loopback port, talk MQTT to it,
//! shut it down.
//!
//! ```
//! use std::io::{Read, Write};
//! use wren_broker::{Config, Server};
//!
//! // (Memory only: the default keeps sessions in ./wren.db.)
//! let config = Config { bind: "127.0.0.1".into(), port: 0, persistence: false, ..Config::default() };
//! let server = Server::bind(config)?;
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

mod config;
mod core;
pub mod security;
mod shell;
pub mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use config::{Bridge, Config, ConfigError, Listener, ListenerSecurity, Protocol, SocketDomain};
pub use core::{
    AuthExchange, AuthStep, Authenticator, Broker, CertificateUser, CloseReason, ConnId, Delivery,
    Event, Framing, HmacChallenge, Identity, ListenerAccess, Message, MessageProperties, Out,
    Outbox, Persistence, RetainedStore, Session, SessionId, SessionStore, Stats, Sub,
    Subscriptions, TopicAccess, TopicRules, UserStore,
};
pub use shell::{Server, ServerHandle};
