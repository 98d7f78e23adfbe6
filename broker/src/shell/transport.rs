//! TLS and WebSocket connections: a task per accepted connection does the handshake(s), within
//! `connect_timeout` together (a failure or a time-out is logged, `Client <peer> TLS handshake
//! failed: <reason>, closing.`, and closes that connection only; the core never hears of it);
//! then the core is told of the connection ([`crate::Broker::connection_opened`], with the
//! certificate's user name if the listener takes one).
//!
//! A TLS connection's task then becomes an ordinary [`ConnectionTask`] driving the rustls
//! session over the socket itself (`stream.rs`): no extra task, copy or system call per message.
//!
//! A WebSocket connection (over TCP or TLS) keeps a small *pump*: the connection task gets the
//! inner end of a Unix socket pair, while the pump moves bytes both ways between the client's
//! frames and the outer end until both directions are over (see the module documentation of
//! `shell` for why). Closing mirrors the plain TCP path: when the client closes (or fails), the
//! pump shuts the inner end's write side, so the connection task reads EOF; when the connection
//! task has written its last bytes and shut its side, the pump flushes them, ends the session
//! (WebSocket Close frame, TLS close_notify) and shuts the TCP write side, then gives the client
//! [`LINGER`] to close its side before dropping everything.

use std::io;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use async_tungstenite::WebSocketStream;
use async_tungstenite::tungstenite::Message;
use async_tungstenite::tungstenite::protocol::CloseFrame;
use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use smol::future::{or, zip};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::stream::StreamExt;
use smol::{Async, Timer};

use crate::config::{Listener, Protocol};
use crate::core::CertificateUser;

use super::connection::{ConnectionTask, Task};
use super::server::{HandshakeSlot, Shared};
use super::stream::Stream;
use super::tls::TlsListener;
use super::websocket;

/// How long the client gets to close its side once the connection is over (the connection task
/// waits as long, `CLOSE_GRACE`, for the same).
const LINGER: Duration = Duration::from_secs(2);
/// The pump's buffer towards the client.
const PUMP_BUF: usize = 16 * 1024;
/// The socket pair's send buffers: the bytes in flight between the pump and the connection task
/// on top of the TCP socket's own, so that a slow client holds back the connection task (and
/// through its outbox the publishers: backpressure) nearly as soon as on plain TCP.
const PAIR_BUF: usize = 64 * 1024;

/// What a listener speaks above TCP, when it is not plain MQTT.
#[derive(Debug)]
pub(super) struct Transport {
    pub(super) tls: Option<Arc<TlsListener>>,
    pub(super) websockets: bool,
}

impl Transport {
    /// The transport of `listener`, `None` for plain MQTT over TCP (the fast path); the TLS
    /// configuration is loaded here, so a bad file stops the start.
    pub(super) fn for_listener(listener: &Listener) -> io::Result<Option<Arc<Transport>>> {
        let websockets = listener.protocol == Protocol::Websockets;
        let tls = if listener.is_tls() {
            Some(Arc::new(TlsListener::new(listener)?))
        } else {
            None
        };
        if tls.is_none() && !websockets {
            return Ok(None);
        }
        Ok(Some(Arc::new(Transport { tls, websockets })))
    }
}

/// Where the connection came in.
#[derive(Debug, Clone, Copy)]
pub(super) struct Accepted {
    pub(super) peer: SocketAddr,
    pub(super) listener: usize,
    pub(super) port: u16,
}

/// Serve one accepted connection of a TLS and/or WebSocket listener: the handshakes, then the
/// connection task (TLS) or the pump (WebSockets). `slot` counts it for `max_connections` until
/// the core does.
pub(super) async fn serve(
    shared: Arc<Shared>,
    transport: Arc<Transport>,
    stream: Async<TcpStream>,
    at: Accepted,
    slot: HandshakeSlot,
) {
    let deadline = Instant::now() + Duration::from_secs(shared.config.connect_timeout);
    let max_frame = usize::try_from(shared.config.max_packet_size).unwrap_or(usize::MAX);
    let peer = at.peer;
    let Some(tls) = &transport.tls else {
        if let Some(ws) = websocket::accept(stream, peer, max_frame, deadline).await {
            drop(slot);
            if let Some(outer) = open(&shared, at, None) {
                bridge_websocket(ws, outer, peer).await;
            }
        }
        return;
    };
    let acceptor = tls.acceptor();
    let accepted = or(async { Some(acceptor.accept(stream).await) }, async {
        Timer::at(deadline).await;
        None
    })
    .await;
    let stream = match accepted {
        Some(Ok(stream)) => stream,
        Some(Err(e)) => {
            log::info!("Client {peer} TLS handshake failed: {e}, closing.");
            return;
        }
        None => {
            log::info!(
                "Client {peer} TLS handshake failed: not done within connect_timeout ({} s), \
                 closing.",
                shared.config.connect_timeout
            );
            return;
        }
    };
    let user = tls.certificate_user(stream.get_ref().1);
    if transport.websockets {
        if let Some(ws) = websocket::accept(stream, peer, max_frame, deadline).await {
            drop(slot);
            if let Some(outer) = open(&shared, at, user) {
                bridge_websocket(ws, outer, peer).await;
            }
        }
    } else {
        // The connection task drives the session over the socket itself (`stream.rs`).
        let (tcp, session) = stream.into_inner();
        drop(slot);
        open_tls(&shared, at, user, Stream::tls(tcp, session));
    }
}

/// Open the connection of a TLS listener (handshake done) in the core and spawn its task on
/// `stream` (nothing if `max_connections` refuses it).
fn open_tls(shared: &Arc<Shared>, at: Accepted, user: Option<CertificateUser>, stream: Stream) {
    let now = shared.now_ms();
    let Some((conn, outbox)) = shared.with_core(None, |b| {
        let opened = b.connection_opened(at.peer, at.listener, at.port, now)?;
        if let Some(user) = user {
            b.set_certificate_user(opened.0, user);
        }
        Some(opened)
    }) else {
        return;
    };
    let mut task = ConnectionTask::new(Arc::clone(shared), stream, conn, outbox);
    // The session may hold the client's first records already (a CONNECT sent with the end of
    // the handshake), which no readiness event would announce.
    task.readable = true;
    let Some(ex) = shared.executor.upgrade() else {
        shared.connection_lost(conn);
        return;
    };
    ex.spawn(Task(Some(task))).detach();
}

/// The connection, handshakes done, for the core: a socket pair whose inner end gets a
/// [`ConnectionTask`] (spawned here); returns the outer end for the pump, or `None` if the
/// connection is refused (`max_connections`) or the pair cannot be made.
pub(super) fn open(
    shared: &Arc<Shared>,
    at: Accepted,
    user: Option<CertificateUser>,
) -> Option<Async<UnixStream>> {
    let (inner, outer) = match socket_pair() {
        Ok(pair) => pair,
        Err(e) => {
            log::warn!("Client {} closed: no socket pair for it: {e}.", at.peer);
            return None;
        }
    };
    let now = shared.now_ms();
    let (conn, outbox) = shared.with_core(None, |b| {
        let opened = b.connection_opened(at.peer, at.listener, at.port, now)?;
        if let Some(user) = user {
            b.set_certificate_user(opened.0, user);
        }
        Some(opened)
    })?;
    let task = ConnectionTask::new(Arc::clone(shared), Stream::plain(inner), conn, outbox);
    let Some(ex) = shared.executor.upgrade() else {
        shared.connection_lost(conn);
        return None;
    };
    ex.spawn(Task(Some(task))).detach();
    Some(outer)
}

/// A connected pair of Unix stream sockets: the inner end, for the [`ConnectionTask`], as a
/// `TcpStream` (the task only reads, writes and shuts down, the same system calls on any
/// stream socket, so its code and the plain TCP path stay as they are; hibernation parks it
/// like a TCP socket), and the outer end for the pump.
fn socket_pair() -> io::Result<(Async<TcpStream>, Async<UnixStream>)> {
    let (inner, outer) = UnixStream::pair()?;
    for end in [&inner, &outer] {
        socket2::SockRef::from(end).set_send_buffer_size(PAIR_BUF)?;
    }
    let inner = TcpStream::from(OwnedFd::from(inner));
    Ok((Async::new(inner)?, Async::new(outer)?))
}

/// Run `up` (client to core) and `down` (core to client) together until both are over, or
/// until [`LINGER`] after `down` is (the client did not close its side).
async fn pump(up: impl Future<Output = ()>, down: impl Future<Output = ()>) {
    let (down_done, down_over) = smol::channel::bounded::<()>(1);
    let down = async move {
        down.await;
        drop(down_done);
    };
    let linger = async {
        let _ = down_over.recv().await;
        Timer::after(LINGER).await;
    };
    or(
        async {
            zip(up, down).await;
        },
        linger,
    )
    .await;
}

/// Bridge a WebSocket and the outer end of the pair: binary messages carry the MQTT bytes
/// (however they are split over frames); a text message ends the connection (MQTT 5.0 §6.0,
/// [MQTT-6.0.0-1]: only binary frames), with Close code 1003; pings are answered by tungstenite.
async fn bridge_websocket<S>(ws: WebSocketStream<S>, outer: Async<UnixStream>, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut to_client, mut from_client) = ws.split();
    let outer = &outer;
    let close_code = AtomicU16::new(0);
    let close_code = &close_code;
    let up = async move {
        while let Some(message) = from_client.next().await {
            match message {
                Ok(Message::Binary(data)) => {
                    let mut w = outer;
                    if w.write_all(&data).await.is_err() {
                        break;
                    }
                }
                Ok(Message::Text(_)) => {
                    log::info!(
                        "Client {peer} sent a WebSocket text frame (MQTT is sent in binary \
                         frames), closing."
                    );
                    close_code.store(u16::from(CloseCode::Unsupported), Ordering::Relaxed);
                    break;
                }
                // Pings are answered, and the answer to a Close is sent, by the next read.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_)) => {
                }
                Err(e) => {
                    log::info!("Client {peer} WebSocket error: {e}, closing.");
                    let code = match e {
                        async_tungstenite::tungstenite::Error::Capacity(_) => CloseCode::Size,
                        _ => CloseCode::Protocol,
                    };
                    close_code.store(u16::from(code), Ordering::Relaxed);
                    break;
                }
            }
        }
        let _ = outer.get_ref().shutdown(Shutdown::Write);
    };
    let down = async move {
        let mut buf = vec![0u8; PUMP_BUF];
        let mut r = outer;
        loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let data = buf.get(..n).unwrap_or_default().to_vec();
            if to_client.send(Message::binary(data)).await.is_err() {
                break;
            }
        }
        let frame = match close_code.load(Ordering::Relaxed) {
            0 => None,
            code => Some(CloseFrame {
                code: CloseCode::from(code),
                reason: "".into(),
            }),
        };
        // The Close frame; the TCP connection is dropped after the linger.
        let _ = to_client.close(frame).await;
    };
    pump(up, down).await;
}
