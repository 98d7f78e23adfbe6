//! # wren-codec
//!
//! A `no_std`, allocation-free, zero-copy codec for every MQTT 3.1.1 and 5.0 control packet.
//!
//! - **Decode** with one entry point, [`decode`]: bytes and the connection's protocol version in,
//!   a [`Packet`] borrowing from the input and the bytes it took out — or
//!   [`Status::Partial`] for a proper prefix, or a [`DecodeError`] naming the rule broken.
//!   Lists (SUBSCRIBE filters, SUBACK codes, user properties, …) are validated lazy views with no
//!   capacity limit.
//! - **Encode** any [`Packet`] into a caller buffer with [`Packet::encode`];
//!   [`Packet::encoded_len`] says how long it will be.
//! - **I/O** over any [`embedded_io`] stream with [`io::read_packet`] / [`io::write_packet`]
//!   (and `io::asynch` with the `async` feature); [`stream::StreamDecoder`] reassembles packets
//!   from arbitrary chunks in a fixed `heapless` buffer.
//! - **Topics**: [`TopicName`], [`TopicFilter`] and [`TopicFilter::matches`] (§4.7).
//!
//! ```
//! use wren_codec::*;
//!
//! // A sensor publishes a reading at QoS 1 on an MQTT 5 connection.
//! let publish = Packet::Publish(Publish {
//!     dup: false,
//!     qos_pid: QosPid::AtLeastOnce(PacketId::new(7).unwrap()),
//!     retain: false,
//!     topic: TopicName::new("site/kitchen/temperature").unwrap(),
//!     properties: Properties { content_type: Some("text/plain"), ..Properties::default() },
//!     payload: b"21.5",
//! });
//! let mut buf = [0u8; 64];
//! let n = publish.encode(ProtocolVersion::V5, &mut buf).unwrap();
//!
//! // The broker decodes it without copying: the topic and payload point into `buf`.
//! let opts = DecodeOptions::new(ProtocolVersion::V5);
//! match decode(&buf[..n], opts) {
//!     Ok(Status::Complete(Decoded { packet: Packet::Publish(p), consumed })) => {
//!         assert_eq!(consumed, n);
//!         assert_eq!(p.payload, b"21.5");
//!         assert!(TopicFilter::new("site/+/temperature").unwrap().matches(p.topic));
//!     }
//!     other => panic!("{other:?}"),
//! }
//! // Every proper prefix is incomplete, never an error.
//! assert!(matches!(decode(&buf[..n - 1], opts), Ok(Status::Partial(1))));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects
    )
)]
// A codec without `v5` or `server` leaves code unused on purpose (that is the point).
#![cfg_attr(
    not(all(feature = "v5", feature = "server")),
    allow(dead_code, unused_imports, unused_variables)
)]

// The unit tests use `std` (proptest, `Vec`); the library itself does not.
#[cfg(test)]
extern crate std;

pub mod ack;
pub mod connack;
pub mod connect;
pub mod data;
pub mod disconnect;
pub mod error;
pub mod header;
pub mod io;
pub mod list;
pub mod packet;
pub mod properties;
pub mod publish;
pub mod reason;
pub mod stream;
pub mod suback;
pub mod subscribe;
pub mod topic;
pub mod unsubscribe;
mod wire;

pub use ack::Ack;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use data::{PacketId, QoS};
pub use disconnect::{Auth, Disconnect};
pub use error::{DecodeError, EncodeError, ErrorKind};
pub use header::{FixedHeader, PacketType};
pub use list::{List, SubscriptionIdentifiers, UserProperties, UserProperty};
pub use packet::{DecodeOptions, Decoded, Packet, Status, decode};
pub use properties::{NO_PROPERTIES, PayloadFormat, Properties};
pub use publish::{Publish, QosPid};
pub use reason::ReasonCode;
pub use suback::SubAck;
pub use subscribe::{RetainHandling, Subscribe, Subscription, SubscriptionOptions};
pub use topic::{TopicFilter, TopicName};
pub use unsubscribe::Unsubscribe;
pub use wire::{Direction, ProtocolVersion, Sender};
