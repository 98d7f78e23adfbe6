//! Opening the listeners of a [`Config`]: one socket per address of each listener, IPv6
//! sockets IPv6-only (so `0.0.0.0:1883` and `[::]:1883` can both be bound), with Mosquitto's
//! start-up log lines, and the secure default said out loud: local-only mode when nothing is
//! configured, a warning for a listener nobody can use.

use std::io;
use std::net::{SocketAddr, TcpListener};
#[cfg(unix)]
use std::sync::Arc;

use socket2::{Domain, Socket, Type};

use crate::config::Config;
#[cfg(not(unix))]
use crate::config::Listener;

#[cfg(unix)]
use super::transport::Transport;

/// Connections waiting to be accepted, per socket (Mosquitto uses 100; Linux caps it at
/// `somaxconn`).
const BACKLOG: i32 = 1024;

/// One bound socket of a listener.
#[derive(Debug)]
pub(super) struct Bound {
    pub(super) socket: TcpListener,
    pub(super) addr: SocketAddr,
    /// Which listener (index into [`Config::listeners`]).
    pub(super) listener: usize,
    /// TLS and/or WebSockets (shared by the listener's sockets); `None`: plain MQTT over TCP.
    #[cfg(unix)]
    pub(super) transport: Option<Arc<Transport>>,
}

/// Bind every listener of `config`. A listener whose addresses are all unavailable is an error;
/// one address of several that the machine cannot bind (no IPv6) is skipped with a note.
pub(super) fn bind_all(config: &Config) -> io::Result<Vec<Bound>> {
    let listeners = config.listeners();
    if config.listener.is_empty() && config.bind.is_empty() {
        log::info!(
            "Starting in local only mode. Connections will only be possible from clients \
             running on this machine."
        );
        log::info!("Create a configuration file which defines a listener to allow remote access.");
    }
    let mut bound = Vec::new();
    for (index, listener) in listeners.iter().enumerate() {
        #[cfg(not(unix))]
        refuse_unsupported(listener)?;
        #[cfg(unix)]
        let transport = Transport::for_listener(listener)?;
        let security = config.security(listener);
        if !security.allow_anonymous && security.password_file.is_none() {
            log::warn!(
                "Warning: listener on port {} admits no anonymous clients and has no \
                 password_file: nobody can connect. Set allow_anonymous true or a password_file.",
                listener.port
            );
        }
        let addrs = listener.addresses()?;
        let mut last_error = None;
        let before = bound.len();
        for addr in &addrs {
            match bind_one(*addr) {
                Ok(socket) => {
                    let addr = socket.local_addr()?;
                    log::info!(
                        "Opening {}{} listen socket on port {}.",
                        if listener.protocol == crate::config::Protocol::Websockets {
                            "websockets "
                        } else {
                            ""
                        },
                        if addr.is_ipv4() { "ipv4" } else { "ipv6" },
                        addr.port()
                    );
                    bound.push(Bound {
                        socket,
                        addr,
                        listener: index,
                        #[cfg(unix)]
                        transport: transport.clone(),
                    });
                }
                Err(e) => {
                    if addrs.len() > 1 {
                        log::info!("Not listening on {addr}: {e}.");
                    }
                    last_error = Some(e);
                }
            }
        }
        if bound.len() == before {
            return Err(last_error.unwrap_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no address to listen on for {:?}", listener.bind),
                )
            }));
        }
    }
    Ok(bound)
}

/// TLS and WebSocket listeners are served by Unix-only code (`transport.rs`: the WebSocket pump
/// needs Unix socket pairs): elsewhere, refuse them rather than serve plain MQTT where the
/// configuration asked for something else.
#[cfg(not(unix))]
fn refuse_unsupported(listener: &Listener) -> io::Result<()> {
    let what = if listener.is_tls() {
        Some("TLS")
    } else if listener.protocol != crate::config::Protocol::Mqtt {
        Some("WebSockets")
    } else {
        None
    };
    match what {
        Some(what) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "listener on port {}: {what} is supported on Unix only",
                listener.port
            ),
        )),
        None => Ok(()),
    }
}

/// A listening socket on `addr`: address reuse (a restart binds at once), IPv6-only for IPv6.
fn bind_one(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}
