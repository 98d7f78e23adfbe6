//! One file per packet family, as Mosquitto's `handle_*.c`: each handler does its packet's work
//! and returns `Err(CloseReason)` when the connection must end; the dispatcher
//! ([`Broker::packet_received`](crate::core::Broker::packet_received)) alone closes it.

mod ack;
mod auth;
mod connect;
mod disconnect;
mod publish;
mod subscribe;
