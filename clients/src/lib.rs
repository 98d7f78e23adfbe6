//! # wren-clients
//!
//! An MQTT 3.1.1 / 5.0 client built on [`wren_codec`], in two layers:
//!
//! - [`engine`]: the protocol logic — connection state machine, packet identifiers, QoS 1/2
//!   in-flight tracking and retransmission, keep-alive, reconnect backoff — `no_std`, sans-I/O
//!   and allocation-free (only `core`, `heapless` and `wren-codec`), so firmware can link it:
//!   `cargo build -p wren-clients --no-default-features --target thumbv7em-none-eabihf`.
//! - [`client`] (feature `std`, default): an async client on smol/async-net that drives the
//!   engine over TCP, with automatic reconnection for long-running programs.
//!
//! The `std` feature also builds the tools `wren-pub`, `wren-sub` (compatible with
//! `mosquitto_pub`/`mosquitto_sub`) and `wren-sensor` (a sensor-fleet emulator).
//!
//! ```no_run
//! use wren_clients::client::{Client, ClientOptions, Event, OutgoingMessage};
//! use wren_codec::QoS;
//!
//! smol::block_on(async {
//!     let options = ClientOptions::new("localhost", 1883, "example");
//!     let (client, _connected) = Client::connect(options).await?;
//!     client.subscribe(vec![("site/#".into(), QoS::AtLeastOnce)]).await?;
//!     client
//!         .publish(OutgoingMessage::new("site/lab/temperature", "21.5", QoS::AtLeastOnce))
//!         .await?;
//!     while let Some(event) = client.next_event().await {
//!         if let Event::Message(m) = event {
//!             println!("{} {}", m.topic, String::from_utf8_lossy(&m.payload));
//!             break;
//!         }
//!     }
//!     client.disconnect().await
//! })?;
//! # Ok::<(), wren_clients::client::ClientError>(())
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod engine;

#[cfg(feature = "embedded")]
pub mod embedded;

#[cfg(feature = "std")]
pub mod cli;
#[cfg(feature = "std")]
pub mod client;
#[cfg(feature = "std")]
pub mod console;
#[cfg(feature = "std")]
pub mod format;
#[cfg(feature = "std")]
pub mod sensor;
#[cfg(feature = "std")]
pub mod socks;
#[cfg(feature = "std")]
pub mod tls;
