//! The runtime shell: sockets, tasks and timers around the core. It only moves bytes.

#[cfg(target_os = "linux")]
mod park;
mod server;

pub use server::{Server, ServerHandle};
