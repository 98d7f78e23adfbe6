//! The runtime shell: a smol executor on N threads, a TCP accept loop, one task per connection
//! (reading, decoding and writing), and a ticker. It only moves bytes and fires timers; every
//! protocol decision is the core's ([`Broker`]).
//!
//! Reading: a connection waits for readability without holding a buffer, then reads into a
//! per-thread 64 KiB buffer, decodes every complete packet in place (zero-copy) and hands them
//! to the core under one lock. Only a partial packet is copied into the connection's own buffer,
//! so an idle connection holds no read buffer at all.
//!
//! Writing: the core queues items on the connection's [`Outbox`]; the writer drains everything
//! queued into one buffer and writes it with one `write` (batching).

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smol::{Async, Executor, Timer};
use wren_codec::{DecodeOptions, Packet, ProtocolVersion, Status, decode};

use crate::broker::{Broker, Stats};
use crate::config::Config;
use crate::outbox::Outbox;
use crate::session::ConnId;

/// How often the core's clock advances (keep-alive, connect timeout and `$SYS` resolution).
const TICK: Duration = Duration::from_millis(250);
/// How long a closing connection's queued bytes may take to flush before the socket is cut.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Per-thread read buffer.
const READ_BUF: usize = 64 * 1024;

thread_local! {
    static READ_BUFFER: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_BUF]);
    static WRITE_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// State shared by the shell's tasks.
#[derive(Debug)]
struct Shared {
    broker: Mutex<Broker>,
    epoch: Instant,
    config: Config,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Broker> {
        // A panic in one connection's handling must not take the broker down with it.
        self.broker.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A bound, not yet running broker.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: Config,
    authenticators: Vec<Arc<dyn crate::auth::Authenticator>>,
}

impl Server {
    /// Offer an enhanced authentication method (5.0 AUTH exchange) to clients.
    pub fn with_authenticator(mut self, a: Arc<dyn crate::auth::Authenticator>) -> Server {
        self.authenticators.push(a);
        self
    }

    /// Bind the listening socket of `config` (`bind`:`port`; port 0 picks an ephemeral port).
    pub fn bind(config: Config) -> io::Result<Server> {
        let addr = (config.bind.as_str(), config.port)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to bind"))?;
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        Ok(Server {
            listener,
            local_addr,
            config,
            authenticators: Vec::new(),
        })
    }

    /// The address the broker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Start serving on the executor threads; returns at once.
    pub fn start(self) -> io::Result<ServerHandle> {
        let threads = match self.config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let epoch = Instant::now();
        let mut broker = Broker::new(self.config.clone(), 0);
        if !self.config.auth_hmac_users.is_empty() {
            let method = self
                .config
                .auth_hmac_users
                .iter()
                .fold(crate::auth::HmacChallenge::new(), |m, (user, secret)| {
                    m.user(user, secret.as_bytes())
                });
            broker.add_authenticator(Arc::new(method));
        }
        for a in self.authenticators {
            broker.add_authenticator(a);
        }
        let shared = Arc::new(Shared {
            broker: Mutex::new(broker),
            epoch,
            config: self.config,
        });
        let listener = Async::new(self.listener)?;
        let executor = Arc::new(Executor::new());
        // Tasks hold the executor weakly, so dropping the handle's reference drops every task
        // (and with them the listener and the sockets).
        let weak = Arc::downgrade(&executor);
        executor
            .spawn(accept_loop(
                listener,
                self.local_addr.port(),
                Arc::clone(&shared),
                weak,
            ))
            .detach();
        executor.spawn(ticker(Arc::clone(&shared))).detach();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let ex = Arc::clone(&executor);
            let stopped = stopped.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("wren-broker-{i}"))
                    .spawn(move || {
                        smol::block_on(ex.run(async {
                            let _ = stopped.recv().await;
                        }))
                    })?,
            );
        }
        log::info!(
            "wren-broker version {} running on {} ({threads} threads).",
            env!("CARGO_PKG_VERSION"),
            self.local_addr
        );
        Ok(ServerHandle {
            local_addr: self.local_addr,
            shared,
            executor: Some(executor),
            stop: Some(stop),
            threads: handles,
        })
    }
}

/// A running broker. Dropping it shuts the broker down.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    executor: Option<Arc<Executor<'static>>>,
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the broker listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A snapshot of the `$SYS` counters.
    pub fn stats(&self) -> Stats {
        self.shared.lock().stats().clone()
    }

    /// Clients connected now.
    pub fn connected_clients(&self) -> usize {
        self.shared.lock().connected_clients()
    }

    /// Subscriptions held now (all sessions).
    pub fn subscription_count(&self) -> usize {
        self.shared.lock().subscriptions().len()
    }

    /// Graceful shutdown: close every connection (queued bytes are flushed; wills are not
    /// published), stop the threads, close the listener.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(stop) = self.stop.take() else {
            return;
        };
        log::info!("wren-broker shutting down.");
        self.shared.lock().shutdown();
        // Let the writers flush what the connections had queued (the handle, the accept loop
        // and the ticker hold the other three references).
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline && Arc::strong_count(&self.shared) > 3 {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(stop);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.executor = None;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

async fn ticker(shared: Arc<Shared>) {
    loop {
        Timer::after(TICK).await;
        let now = shared.now_ms();
        shared.lock().tick(now);
    }
}

async fn accept_loop(
    listener: Async<TcpListener>,
    port: u16,
    shared: Arc<Shared>,
    executor: Weak<Executor<'static>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("accept failed: {e}");
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.get_ref().set_nodelay(true);
        let now = shared.now_ms();
        let Some((conn, outbox)) = shared.lock().connection_opened(peer, port, now) else {
            continue;
        };
        let Some(ex) = executor.upgrade() else {
            return;
        };
        ex.spawn(Connection::new(Arc::clone(&shared), stream, conn, outbox))
            .detach();
    }
}

/// One connection's task: reader and writer in one hand-written future, so an idle connection
/// costs a small fixed struct (no buffers, no nested future states).
#[derive(Debug)]
struct Connection {
    shared: Arc<Shared>,
    stream: Async<TcpStream>,
    conn: ConnId,
    outbox: Outbox,
    /// How packets are decoded: the CONNECT's version, the size limit for the current state.
    options: DecodeOptions,
    /// An incomplete packet carried over between reads.
    pending: Vec<u8>,
    /// Whether the reader still runs.
    reading: bool,
    /// Whether the socket may hold unread bytes (see `poll_read`).
    readable: bool,
    writer: Writer,
}

#[derive(Debug)]
enum Writer {
    /// Waiting for the outbox.
    Idle,
    /// The socket did not take everything (boxed: rare, and it keeps the idle task small).
    Blocked(Box<Blocked>),
    /// The socket is shut down.
    Done,
}

#[derive(Debug)]
struct Blocked {
    rest: Vec<u8>,
    written: usize,
    /// The outbox was closed when `rest` was drained: shut down once it is written.
    closed: bool,
    /// Once the outbox closes, how long the peer still gets to take `rest`.
    grace: Option<Timer>,
}

enum ReadOutcome {
    /// Bytes were read and handled. `drained`: the read did not fill the buffer, so the socket
    /// most likely holds nothing more.
    Handled { drained: bool },
    /// Nothing to read now: wait for readability.
    WouldBlock,
    /// The connection is over.
    Stop,
}

/// Reads handled in one poll before the task yields to the others on its thread.
const READ_BUDGET: u32 = 2;
/// Outbox drains written in one poll before the task yields.
const WRITE_BUDGET: u32 = 8;

impl Connection {
    fn new(shared: Arc<Shared>, stream: Async<TcpStream>, conn: ConnId, outbox: Outbox) -> Self {
        // Before CONNECT only a small first packet is accepted (CVE-2017-7651, CVE-2023-0809).
        let options = DecodeOptions::new(ProtocolVersion::V311)
            .with_max_packet_size(shared.config.max_connect_packet_size);
        Connection {
            shared,
            stream,
            conn,
            outbox,
            options,
            pending: Vec::new(),
            reading: true,
            readable: false,
            writer: Writer::Idle,
        }
    }

    /// The reader is over (EOF, error, or the core closed the connection).
    fn finish_reading(&mut self) {
        if self.reading {
            self.reading = false;
            // A no-op if the core closed the connection itself.
            self.shared.lock().connection_lost(self.conn);
            self.outbox.close();
        }
    }

    /// The writer is over: shut the socket (which also ends the peer's view of it).
    fn finish_writing(&mut self) {
        self.writer = Writer::Done;
        let _ = self.stream.get_ref().shutdown(Shutdown::Both);
        self.finish_reading();
    }

    /// One non-blocking read into this thread's buffer, and everything it completes handled.
    fn try_read(&mut self) -> ReadOutcome {
        let Connection {
            shared,
            stream,
            conn,
            outbox,
            options,
            pending,
            ..
        } = self;
        READ_BUFFER.with(|buf| {
            let mut buf = buf.borrow_mut();
            let n = match stream.get_ref().read(&mut buf) {
                Ok(0) => return ReadOutcome::Stop,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    return ReadOutcome::Handled { drained: false };
                }
                Err(_) => return ReadOutcome::Stop,
            };
            let drained = n < buf.len();
            let fresh = buf.get(..n).unwrap_or_default();
            if pending.is_empty() {
                let (used, stop) = handle_bytes(shared, *conn, outbox, fresh, options);
                if stop {
                    return ReadOutcome::Stop;
                }
                // Keep only the partial packet.
                pending.extend_from_slice(fresh.get(used..).unwrap_or_default());
            } else {
                pending.extend_from_slice(fresh);
                let (used, stop) = handle_bytes(shared, *conn, outbox, pending, options);
                if stop {
                    return ReadOutcome::Stop;
                }
                pending.drain(..used.min(pending.len()));
                if pending.is_empty() && pending.capacity() > READ_BUF {
                    *pending = Vec::new();
                }
            }
            ReadOutcome::Handled { drained }
        })
    }

    fn poll_read(&mut self, cx: &mut Context<'_>) {
        let mut budget = READ_BUDGET;
        while self.reading {
            // Read only when there is reason to expect bytes: the reactor said so, or the last
            // read filled the buffer, or the read budget cut a busy connection short. A read
            // that comes back with less than the buffer has emptied the socket, so the next one
            // waits for the reactor instead of spending a system call on EAGAIN.
            if !self.readable {
                match self.stream.poll_readable(cx) {
                    Poll::Ready(Ok(())) => self.readable = true,
                    Poll::Ready(Err(_)) => self.finish_reading(),
                    Poll::Pending => {
                        // Also wake when the core closes the connection.
                        if self.outbox.poll_closed(cx).is_ready() {
                            self.finish_reading();
                        }
                        return;
                    }
                }
                continue;
            }
            match self.try_read() {
                ReadOutcome::Stop => self.finish_reading(),
                ReadOutcome::WouldBlock => self.readable = false,
                ReadOutcome::Handled { drained } => {
                    self.readable = !drained;
                    budget = budget.saturating_sub(1);
                    if budget == 0 {
                        // Let the other connections of this thread run between reads.
                        cx.waker().wake_by_ref();
                        return;
                    }
                }
            }
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>) {
        let mut budget = WRITE_BUDGET;
        loop {
            match &mut self.writer {
                Writer::Done => return,
                Writer::Idle => {
                    if self.outbox.poll_ready(cx).is_pending() {
                        return;
                    }
                    budget = budget.saturating_sub(1);
                    if budget == 0 {
                        cx.waker().wake_by_ref();
                        return;
                    }
                    match drain_and_write(&self.stream, &self.outbox) {
                        None => self.finish_writing(),
                        Some((closed, rest)) if rest.is_empty() => {
                            if closed {
                                self.finish_writing();
                            }
                        }
                        Some((closed, rest)) => {
                            self.writer = Writer::Blocked(Box::new(Blocked {
                                rest,
                                written: 0,
                                closed,
                                grace: None,
                            }));
                        }
                    }
                }
                Writer::Blocked(b) => {
                    while let Some(unwritten) = b.rest.get(b.written..).filter(|r| !r.is_empty()) {
                        match self.stream.get_ref().write(unwritten) {
                            Ok(0) => return self.finish_writing(),
                            Ok(n) => b.written = b.written.saturating_add(n),
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                match self.stream.poll_writable(cx) {
                                    Poll::Ready(Ok(())) => continue,
                                    Poll::Ready(Err(_)) => return self.finish_writing(),
                                    Poll::Pending => {}
                                }
                                // A peer that stops reading must not keep a closed connection
                                // alive forever.
                                if b.grace.is_none() && self.outbox.poll_closed(cx).is_ready() {
                                    b.grace = Some(Timer::after(CLOSE_GRACE));
                                }
                                if let Some(timer) = &mut b.grace
                                    && Pin::new(timer).poll(cx).is_ready()
                                {
                                    return self.finish_writing();
                                }
                                return;
                            }
                            Err(_) => return self.finish_writing(),
                        }
                    }
                    let closed = b.closed;
                    self.writer = Writer::Idle;
                    if closed {
                        return self.finish_writing();
                    }
                }
            }
        }
    }
}

impl Future for Connection {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.poll_read(cx);
        this.poll_write(cx);
        if !this.reading && matches!(this.writer, Writer::Done) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Drain the outbox into this thread's buffer and write what the socket takes without waiting.
/// Returns whether the outbox is closed and the bytes the socket did not take (usually none:
/// an idle connection holds no write buffer), or `None` if the socket failed.
fn drain_and_write(stream: &Async<TcpStream>, outbox: &Outbox) -> Option<(bool, Vec<u8>)> {
    WRITE_BUFFER.with(|tl| {
        let mut buf = tl.borrow_mut();
        buf.clear();
        let closed = outbox.drain_into(&mut buf);
        let mut written = 0usize;
        while let Some(unwritten) = buf.get(written..).filter(|b| !b.is_empty()) {
            match stream.get_ref().write(unwritten) {
                Ok(0) => return None,
                Ok(n) => written = written.saturating_add(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        let rest = buf.get(written..).unwrap_or_default().to_vec();
        if buf.capacity() > 16 * READ_BUF {
            *buf = Vec::new();
        }
        Some((closed, rest))
    })
}

/// Decode and handle every complete packet at the front of `data`. Returns the bytes used and
/// whether the connection is over.
fn handle_bytes(
    shared: &Shared,
    conn: ConnId,
    outbox: &Outbox,
    data: &[u8],
    options: &mut DecodeOptions,
) -> (usize, bool) {
    let mut used = 0usize;
    let mut broker: Option<MutexGuard<'_, Broker>> = None;
    let now = shared.now_ms();
    while let Some(rest) = data.get(used..).filter(|r| !r.is_empty()) {
        match decode(rest, *options) {
            Ok(Status::Complete(d)) => {
                if let Packet::Connect(c) = &d.packet {
                    // The connection now speaks the CONNECT's version, with the full size limit.
                    options.version = c.protocol;
                    options.max_packet_size = shared.config.max_packet_size;
                }
                let b = broker.get_or_insert_with(|| shared.lock());
                b.packet_received(conn, &d.packet, d.consumed, now);
                used = used.saturating_add(d.consumed);
                if outbox.is_closed() {
                    return (used, true);
                }
            }
            Ok(Status::Partial(_)) => break,
            Err(e) => {
                broker
                    .get_or_insert_with(|| shared.lock())
                    .decode_failed(conn, e);
                return (used, true);
            }
        }
    }
    if used == 0 && !data.is_empty() {
        shared.lock().bytes_arrived(conn, now);
    }
    (used, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_task_size() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let stream = Async::new(client).unwrap();
        let shared = Arc::new(Shared {
            broker: Mutex::new(Broker::new(Config::for_tests(), 0)),
            epoch: Instant::now(),
            config: Config::for_tests(),
        });
        let fut = Connection::new(shared, stream, ConnId(1), Outbox::new());
        eprintln!("connection future: {} bytes", std::mem::size_of_val(&fut));
        eprintln!(
            "Outbox shared: {} bytes",
            std::mem::size_of::<crate::outbox::Outbox>()
        );
        assert!(std::mem::size_of_val(&fut) < 4096);
    }
}
