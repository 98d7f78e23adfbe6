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
//!
//! TLS (`transport.rs`, `tls.rs`, `stream.rs`; Unix only): a connection accepted by a TLS
//! listener does its handshake (within `connect_timeout`) in a task of its own, which then opens
//! the connection in the core and becomes an ordinary connection task whose [`stream::Stream`]
//! holds the rustls session: reads decrypt what one `read` of the socket brought (from the
//! per-thread buffer into a second per-thread buffer, so packets are still decoded in place),
//! writes encrypt the drained outbox into records written straight to the socket. The plain path
//! is one `Option` check away from the bare socket. TLS connections do not hibernate (the
//! session's state has no place in the parking lot).
//!
//! WebSockets (`transport.rs`, `websocket.rs`; Unix only): a connection accepted by a WebSocket
//! listener (with or without TLS) gets a small *pump* task, which does the handshakes (within
//! `connect_timeout`), then opens the connection in the core and gives an ordinary connection
//! task the inner end of a Unix socket pair, and moves the MQTT bytes between the client (frames
//! through async-tungstenite, over rustls through futures-rustls for WSS) and the outer end. Why
//! a socket pair rather than a connection task aware of frames:
//! - the connection task, its close, flush and backpressure behaviour, and hibernation (the inner
//!   end parks like any socket, while the pump waits) are the same code as for TCP: nothing to
//!   keep in step, and the pump holds no protocol state (every protocol decision stays in the
//!   core);
//! - closing and backpressure follow from socket semantics: the connection task's EOF and
//!   shutdowns cross the pair (the pump turns them into a WebSocket Close (and TLS close_notify)
//!   and the TCP shutdown, and the client's EOF into the inner end's), and a slow client fills
//!   the pair's 64 KiB buffer, so the connection task sees a full socket and its outbox
//!   congestion holds back publishers as on TCP.
//!
//! The cost, for WebSocket connections only: two more file descriptors, one more copy and two
//! more system calls per chunk each way, and the pump's buffer plus the frame state held while
//! the connection hibernates.

mod backpressure;
#[cfg(unix)]
mod bridge;
mod connection;
mod executor;
mod listen;
#[cfg(target_os = "linux")]
mod park;
mod persistence;
mod server;
mod stream;
#[cfg(unix)]
mod tls;
#[cfg(unix)]
mod transport;
#[cfg(unix)]
mod websocket;

pub use server::{Server, ServerHandle};
