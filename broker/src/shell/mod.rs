//! The runtime shell: a smol executor on N threads (`executor.rs`), the listeners' sockets
//! (`listen.rs`), an accept loop per socket and a timer (`server.rs`), one task per connection reading, decoding and writing
//! (`connection.rs`), publishers held back by congested subscribers (`backpressure.rs`), and
//! quiet connections hibernating (`park.rs`). It only moves bytes and fires timers; every
//! protocol decision is the core's ([`crate::Broker`]).
//!
//! Reading: a connection waits for readability without holding a buffer, then reads into a
//! per-thread 64 KiB buffer, decodes every complete packet in place (zero-copy) and hands them
//! to the core under one lock. Only a partial packet is copied into the connection's own buffer,
//! so an idle connection holds no read buffer at all.
//!
//! Writing: the core queues items on the connection's [`crate::Outbox`]; the writer drains
//! everything queued into one buffer and writes it with one `write` (batching).
//!
//! Hibernation: a quiet connection gives its task and reactor registration back and waits as a
//! bare socket in the parking lot (`park.rs`, `hibernate_after_ms`).

mod backpressure;
mod connection;
mod executor;
mod listen;
#[cfg(target_os = "linux")]
mod park;
mod server;
#[cfg(unix)]
mod tls;
#[cfg(unix)]
mod transport;
#[cfg(unix)]
mod websocket;

pub use server::{Server, ServerHandle};
