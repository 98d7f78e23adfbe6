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
//!
//! Hibernation: a quiet connection gives its task and reactor registration back and waits as a
//! bare socket in the parking lot (`park.rs`, `hibernate_after_ms`).

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smol::{Async, Executor, Timer};
use wren_codec::{DecodeOptions, Packet, ProtocolVersion, Status, decode};

use crate::config::Config;
use crate::core::{Broker, ConnId, Event, Outbox, Stats};

#[cfg(target_os = "linux")]
use super::park::{Parked, ParkingLot};

/// How often the core's clock advances (keep-alive, connect timeout and `$SYS` resolution).
const TICK: Duration = Duration::from_millis(250);
/// Most bytes a closing connection reads and discards while it waits for the peer to close.
const LINGER_BYTES: usize = 1 << 20;
/// How long a closing connection's queued bytes may take to flush before the socket is cut, and
/// how long it then waits for the peer to close its side.
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
    /// Where quiet connections hibernate (`None`: they keep their task).
    #[cfg(target_os = "linux")]
    lot: Option<Arc<ParkingLot>>,
    /// To spawn revived connections (see [`Shared::with_core`]).
    me: Weak<Shared>,
    executor: Weak<Executor<'static>>,
}

impl Shared {
    /// Run `f` on the locked core, then act on what it reports ([`Broker::poll_event`]) before
    /// the lock is released: hibernating connections it woke get their task back (still under
    /// the lock, so a connection is never both parked and live), and the congested subscribers
    /// go to `congested` — the publisher being read waits for them — or, with `None`, are
    /// forgotten (nobody to hold back). Every use of the core goes through here.
    fn with_core<R>(
        &self,
        mut congested: Option<&mut Vec<Outbox>>,
        f: impl FnOnce(&mut Broker) -> R,
    ) -> R {
        // A panic in one connection's handling must not take the broker down with it.
        let mut broker = self.broker.lock().unwrap_or_else(|e| e.into_inner());
        let result = f(&mut broker);
        while let Some(event) = broker.poll_event() {
            match event {
                Event::Woken { conn, outbox } => self.revive_woken(&mut broker, conn, outbox),
                Event::Congested(outbox) => {
                    if let Some(c) = congested.as_deref_mut() {
                        c.push(outbox);
                    }
                }
            }
        }
        result
    }

    /// A hibernating connection the core woke (it has something to send, or was closed).
    fn revive_woken(&self, broker: &mut Broker, conn: ConnId, outbox: Outbox) {
        #[cfg(target_os = "linux")]
        if let Some(lot) = &self.lot
            && let Some(p) = lot.unpark(conn)
            && let Some(c) = self.revive(broker, conn, p, outbox, false)
        {
            self.spawn(c);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (broker, conn, outbox);
    }

    /// A hibernating connection, just taken out of the lot, as a live one again (with the core
    /// locked: `broker`), for [`Shared::spawn`]; `None` if it is over.
    #[cfg(target_os = "linux")]
    fn revive(
        &self,
        broker: &mut Broker,
        conn: ConnId,
        p: Parked,
        outbox: Outbox,
        readable: bool,
    ) -> Option<ConnectionTask> {
        let shared = self.me.upgrade()?;
        match ConnectionTask::resumed(shared, p, conn, outbox, readable) {
            Ok(c) => Some(c),
            Err(outbox) => {
                broker.connection_lost(conn, self.now_ms());
                outbox.close();
                None
            }
        }
    }

    /// Give a connection its task.
    #[cfg(target_os = "linux")]
    fn spawn(&self, c: ConnectionTask) {
        if let Some(ex) = self.executor.upgrade() {
            ex.spawn(Task(Some(c))).detach();
        }
    }

    /// Tell the core that `conn`'s socket is gone, now.
    fn connection_lost(&self, conn: ConnId) {
        let now = self.now_ms();
        self.with_core(None, |b| b.connection_lost(conn, now));
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Connections hibernating in the parking lot now.
    fn hibernating(&self) -> usize {
        #[cfg(target_os = "linux")]
        if let Some(lot) = &self.lot {
            return lot.len();
        }
        0
    }
}

/// A bound, not yet running broker.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    config: Config,
    authenticators: Vec<Arc<dyn crate::core::Authenticator>>,
}

impl Server {
    /// Offer an enhanced authentication method (5.0 AUTH exchange) to clients.
    pub fn with_authenticator(mut self, a: Arc<dyn crate::core::Authenticator>) -> Server {
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
        let busy_poll = Duration::from_micros(self.config.busy_poll_us);
        let epoch = Instant::now();
        let mut broker = Broker::new(self.config.clone(), 0);
        if !self.config.auth_hmac_users.is_empty() {
            let method = self
                .config
                .auth_hmac_users
                .iter()
                .fold(crate::core::HmacChallenge::new(), |m, (user, secret)| {
                    m.user(user, secret.as_bytes())
                });
            broker.add_authenticator(Arc::new(method));
        }
        for a in self.authenticators {
            broker.add_authenticator(a);
        }
        #[cfg(target_os = "linux")]
        let lot = match self.config.hibernate_after_ms {
            0 => None,
            _ => Some(Arc::new(ParkingLot::new()?)),
        };
        let executor = Arc::new(Executor::new());
        // Tasks hold the executor weakly, so dropping the handle's reference drops every task
        // (and with them the listener and the sockets).
        let weak = Arc::downgrade(&executor);
        let shared = Arc::new_cyclic(|me| Shared {
            broker: Mutex::new(broker),
            epoch,
            config: self.config,
            #[cfg(target_os = "linux")]
            lot: lot.clone(),
            me: me.clone(),
            executor: weak.clone(),
        });
        let listener = Async::new(self.listener)?;
        #[cfg(target_os = "linux")]
        if let Some(lot) = lot {
            executor
                .spawn(revive_loop(lot, Arc::downgrade(&shared)))
                .detach();
        }
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
                    .spawn(move || worker(&ex, &stopped, busy_poll))?,
            );
        }
        log::info!(
            "wren-broker version {} running on {} ({threads} thread{}).",
            env!("CARGO_PKG_VERSION"),
            self.local_addr,
            if threads == 1 { "" } else { "s" }
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
        self.shared.with_core(None, |b| b.stats().clone())
    }

    /// Clients connected now.
    pub fn connected_clients(&self) -> usize {
        self.shared.with_core(None, |b| b.connected_clients())
    }

    /// Connections hibernating now (quiet, without a task: see `hibernate_after_ms`).
    pub fn hibernating_connections(&self) -> usize {
        self.shared.hibernating()
    }

    /// Subscriptions held now (all sessions; each member of a shared group counts once, as in
    /// `$SYS/broker/subscriptions/count`).
    pub fn subscription_count(&self) -> usize {
        self.shared.with_core(None, |b| b.subscriptions().len())
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
        self.shared.with_core(None, Broker::shutdown);
        // Let the writers flush what the connections had queued (the handle, the accept loop
        // and the ticker hold the other three references).
        // Hibernating connections are revived to flush theirs first.
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline
            && (Arc::strong_count(&self.shared) > 3 || self.shared.hibernating() > 0)
        {
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

/// One executor thread: runs tasks until `stopped` closes.
///
/// Busy polling (`busy_poll_us`): out of tasks, the thread keeps looking for new ones, and
/// through the reactor for socket events, for up to its [`SpinBudget`] before it sleeps. A
/// sleeping thread takes tens of microseconds to wake on a virtual machine, while under steady
/// traffic the next event is often only microseconds away: a QoS 1 window turnaround, for one,
/// is otherwise a wake-up on each side.
fn worker(ex: &Executor<'static>, stopped: &smol::channel::Receiver<()>, busy_poll: Duration) {
    smol::block_on(async {
        let mut budget = SpinBudget::new(busy_poll);
        loop {
            if ex.try_tick() {
                continue;
            }
            if stopped.is_closed() {
                return;
            }
            let spin_start = Instant::now();
            let mut found = false;
            while spin_start.elapsed() < budget.current() {
                // Back to block_on, which polls the reactor without blocking when the future
                // has woken itself, then here again.
                smol::future::yield_now().await;
                if ex.try_tick() {
                    found = true;
                    break;
                }
            }
            if found {
                continue;
            }
            // Nothing came: sleep until a task is runnable or the broker stops.
            let slept = Instant::now();
            let run = async {
                ex.tick().await;
                true
            };
            let stop = async {
                let _ = stopped.recv().await;
                false
            };
            if !smol::future::or(run, stop).await {
                return;
            }
            budget.slept(slept.elapsed());
        }
    })
}

/// How long an executor thread spins for work before it sleeps, adapted to the traffic: work
/// that arrives soon after the thread fell asleep would have been caught by spinning, so the
/// spin grows (up to the maximum); a long sleep means the spin was wasted, so it halves, down
/// to none. A quiet broker thus stops polling after a few events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SpinBudget {
    current: Duration,
    max: Duration,
}

impl SpinBudget {
    fn new(max: Duration) -> SpinBudget {
        SpinBudget { current: max, max }
    }

    fn current(&self) -> Duration {
        self.current
    }

    /// The thread slept for `slept` before the next task came.
    fn slept(&mut self, slept: Duration) {
        self.current = if slept < self.max {
            self.current
                .saturating_mul(2)
                .saturating_add(Duration::from_micros(1))
                .min(self.max)
        } else {
            self.current / 2
        };
    }
}

async fn ticker(shared: Arc<Shared>) {
    loop {
        Timer::after(TICK).await;
        let now = shared.now_ms();
        shared.with_core(None, |b| b.handle_timeout(now));
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
        let Some((conn, outbox)) = shared.with_core(None, |b| b.connection_opened(peer, port, now))
        else {
            continue;
        };
        let Some(ex) = executor.upgrade() else {
            return;
        };
        let mut c = ConnectionTask::new(Arc::clone(&shared), stream, conn, outbox);
        // A client sends its CONNECT as soon as its connect() returns, so it is usually in the
        // socket by the time the task first runs: read at once rather than first arming the
        // reactor and waiting for it to say so (an EAGAIN when it is not there yet).
        c.readable = true;
        ex.spawn(Task(Some(c))).detach();
    }
}

/// Give hibernating connections their task back when their sockets have events.
///
/// Each revived connection's first read happens here, before its task is spawned: the reactor
/// turn that woke this loop may also have woken live connections whose packets arrived after
/// the hibernating one's, and a new task would be queued behind theirs. Reading here keeps the
/// order of arrival (a SUBSCRIBE from a hibernating client is in force for a PUBLISH another
/// client sent just after it).
#[cfg(target_os = "linux")]
async fn revive_loop(lot: Arc<ParkingLot>, shared: Weak<Shared>) {
    let mut ready = Vec::new();
    let mut revived = Vec::new();
    loop {
        lot.readable().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        shared.with_core(None, |broker| {
            lot.ready(&mut ready);
            for conn in ready.drain(..) {
                // Not there: already revived because the core woke it.
                let Some(p) = lot.unpark(conn) else {
                    continue;
                };
                match broker.wake(conn) {
                    Some(outbox) => revived.extend(shared.revive(broker, conn, p, outbox, true)),
                    // The core has forgotten it (cannot happen while it is parked): drop it.
                    None => drop(p),
                }
            }
        });
        // (Reading takes the core lock.)
        for mut c in revived.drain(..) {
            c.read_once();
            shared.spawn(c);
        }
    }
}

/// One connection's task: reader and writer in one hand-written future, so an idle connection
/// costs a small fixed struct (no buffers, no nested future states).
#[derive(Debug)]
struct ConnectionTask {
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
    /// Whether the CONNECT was handled (only a connected client hibernates).
    connected: bool,
    /// Whether to hibernate the next time the connection falls quiet: just connected, just
    /// subscribed or unsubscribed, or the last quiet spell lasted at least `hibernate_after_ms`.
    hibernate: bool,
    /// A SUBSCRIBE or UNSUBSCRIBE was handled since the last poll.
    subscribed: bool,
    /// When the connection last fell quiet after reading or writing (`NOT_QUIET` while busy).
    quiet_since_ms: u64,
    /// Whether this poll read or wrote anything.
    active: bool,
    writer: Writer,
    /// Backpressure: reading waits for the congested connections the last messages went to.
    pause: Option<Box<Pause>>,
}

/// How often a held-back publisher checks on the congested connections it waits for: one that
/// took no bytes since the last check is taken for stuck (see [`Broker::take_congested`]).
const PATIENCE: Duration = Duration::from_secs(1);
/// A publisher held back until the connections its messages went to drain.
#[derive(Debug)]
struct Pause {
    /// The congested outboxes, each with its write count at the last check.
    on: Vec<(Outbox, u64)>,
    /// The next check.
    check: Timer,
    /// When those still congested are all marked stalled.
    until: Instant,
}

impl Pause {
    /// Wait (also) for `congested` before reading on.
    /// `max_hold_ms` (`max_publisher_hold_ms`) is the longest it waits in one go, however
    /// steadily the connections it waits for make progress: one that cannot take twice
    /// `max_outgoing_bytes` (or a quarter of its queue) in that time is too slow to pace its
    /// publishers, and is dropped to instead (see [`Outbox::mark_stalled`]).
    fn hold_back(pause: &mut Option<Box<Pause>>, congested: Vec<Outbox>, max_hold_ms: u64) {
        if congested.is_empty() {
            return;
        }
        let max_hold = Duration::from_millis(max_hold_ms);
        let p = pause.get_or_insert_with(|| {
            Box::new(Pause {
                on: Vec::new(),
                check: Timer::after(PATIENCE.min(max_hold)),
                until: Instant::now() + max_hold,
            })
        });
        for o in congested {
            if !p.on.iter().any(|(q, _)| q.same(&o)) {
                let written = o.written();
                p.on.push((o, written));
            }
        }
    }

    /// Ready when the publisher may read on. `alive` is called at each check while it waits:
    /// its unread bytes show that it is alive, and its keep-alive must not run out meanwhile.
    fn poll(&mut self, cx: &mut Context<'_>, limit: usize, alive: impl Fn()) -> Poll<()> {
        self.on
            .retain(|(o, _)| o.poll_uncongested(cx, limit).is_pending());
        while !self.on.is_empty() {
            if Pin::new(&mut self.check).poll(cx).is_pending() {
                return Poll::Pending;
            }
            let over = Instant::now() >= self.until;
            self.on.retain_mut(|(o, seen)| {
                let written = o.written();
                let moved = written != *seen;
                *seen = written;
                if over || !moved {
                    o.mark_stalled();
                }
                moved && !over
            });
            alive();
            self.check
                .set_after(PATIENCE.min(self.until.saturating_duration_since(Instant::now())));
        }
        Poll::Ready(())
    }
}

const NOT_QUIET: u64 = u64::MAX;

#[derive(Debug)]
enum Writer {
    /// Waiting for the outbox.
    Idle,
    /// The socket did not take everything (boxed: rare, and it keeps the idle task small).
    Blocked(Box<Blocked>),
    /// Everything is written and the write side shut down; reading on and discarding what the
    /// peer still sends until it closes too (see [`ConnectionTask::close_gracefully`]).
    Lingering(Box<Lingering>),
    /// The socket is shut down.
    Done,
}

#[derive(Debug)]
struct Lingering {
    /// The most time the peer gets to close its side.
    until: Timer,
    /// Bytes read and discarded so far (at most [`LINGER_BYTES`]).
    discarded: usize,
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

impl ConnectionTask {
    fn new(shared: Arc<Shared>, stream: Async<TcpStream>, conn: ConnId, outbox: Outbox) -> Self {
        // Before CONNECT only a small first packet is accepted (CVE-2017-7651, CVE-2023-0809).
        let options = DecodeOptions::new(ProtocolVersion::V311)
            .with_max_packet_size(shared.config.max_connect_packet_size);
        ConnectionTask {
            shared,
            stream,
            conn,
            outbox,
            options,
            pending: Vec::new(),
            reading: true,
            readable: false,
            connected: false,
            hibernate: true,
            subscribed: false,
            quiet_since_ms: NOT_QUIET,
            active: false,
            writer: Writer::Idle,
            pause: None,
        }
    }

    /// Hand the socket to the parking lot and end the task. Gives the connection back (with a
    /// fresh reactor registration) if it may not hibernate after all; `Err(None)` if the
    /// connection is over.
    #[cfg(target_os = "linux")]
    fn park(self, lot: &ParkingLot) -> Result<(), Option<ConnectionTask>> {
        let ConnectionTask {
            shared,
            stream,
            conn,
            outbox,
            options,
            quiet_since_ms,
            ..
        } = self;
        let Ok(stream) = stream.into_inner() else {
            // The socket is gone with the failed deregistration: the connection is over.
            shared.connection_lost(conn);
            outbox.close();
            return Err(None);
        };
        let parked = Parked {
            stream,
            version: options.version,
            since_ms: quiet_since_ms,
        };
        // Both under the lock: the core drops the outbox, the lot takes the socket.
        let back = shared.with_core(None, |broker| {
            if !broker.hibernate(conn) {
                // Something was queued meanwhile.
                return Some(Some((parked, outbox)));
            }
            match lot.park(conn, parked) {
                Ok(()) => None,
                Err(p) => Some(broker.wake(conn).map(|outbox| (p, outbox))),
            }
        });
        let (p, outbox) = match back {
            None => return Ok(()),
            Some(None) => return Err(None),
            Some(Some(back)) => back,
        };
        match ConnectionTask::resumed(Arc::clone(&shared), p, conn, outbox, false) {
            Ok(c) => Err(Some(c)),
            Err(outbox) => {
                shared.connection_lost(conn);
                outbox.close();
                Err(None)
            }
        }
    }

    /// A connected client's task again, from its socket as it hibernated (`readable`: the
    /// socket had an event). Gives the outbox back if the socket cannot be registered.
    #[cfg(target_os = "linux")]
    fn resumed(
        shared: Arc<Shared>,
        p: Parked,
        conn: ConnId,
        outbox: Outbox,
        readable: bool,
    ) -> Result<ConnectionTask, Outbox> {
        let Ok(stream) = Async::new(p.stream) else {
            return Err(outbox);
        };
        let max_packet_size = shared.config.max_packet_size;
        let mut c = ConnectionTask::new(shared, stream, conn, outbox);
        c.options = DecodeOptions::new(p.version).with_max_packet_size(max_packet_size);
        c.readable = readable;
        c.connected = true;
        // `hibernate` stays set: it is decided again once the connection reads or writes (a
        // revival with nothing to do hibernates again at once).
        c.quiet_since_ms = p.since_ms;
        Ok(c)
    }

    /// The reader is over (EOF, error, or the core closed the connection).
    fn finish_reading(&mut self) {
        if self.reading {
            self.reading = false;
            // A no-op if the core closed the connection itself.
            self.shared.connection_lost(self.conn);
            self.outbox.close();
        }
    }

    /// The last packet is written and the connection is over: shut the write side only, and
    /// read (discarding) until the peer closes its side, for up to [`CLOSE_GRACE`] and
    /// [`LINGER_BYTES`]. Closing with the peer's packets still unread would answer them with a
    /// reset, and a peer that is still writing (PUBRELs for the PUBRECs it has not read yet, say)
    /// then fails on its next write before it reads the DISCONNECT and its reason code; some
    /// TCP stacks also drop received data that was not read yet when a reset arrives.
    fn close_gracefully(&mut self) {
        if self.stream.get_ref().shutdown(Shutdown::Write).is_err() {
            self.finish_writing();
            return;
        }
        self.finish_reading();
        self.writer = Writer::Lingering(Box::new(Lingering {
            until: Timer::after(CLOSE_GRACE),
            discarded: 0,
        }));
    }

    /// The writer is over: shut the socket (which also ends the peer's view of it).
    fn finish_writing(&mut self) {
        self.writer = Writer::Done;
        let _ = self.stream.get_ref().shutdown(Shutdown::Both);
        self.finish_reading();
    }

    /// One non-blocking read into this thread's buffer, and everything it completes handled.
    fn try_read(&mut self) -> ReadOutcome {
        let ConnectionTask {
            shared,
            stream,
            conn,
            outbox,
            options,
            pending,
            connected,
            subscribed,
            active,
            pause,
            ..
        } = self;
        let mut congested = Vec::new();
        let outcome = READ_BUFFER.with(|buf| {
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
            *active = true;
            let drained = n < buf.len();
            let fresh = buf.get(..n).unwrap_or_default();
            let mut handle = |data: &[u8]| {
                handle_bytes(
                    shared,
                    *conn,
                    outbox,
                    data,
                    options,
                    connected,
                    &mut congested,
                )
            };
            if pending.is_empty() {
                let h = handle(fresh);
                *subscribed |= h.subscribed;
                if h.stop {
                    return ReadOutcome::Stop;
                }
                // Keep the partial packet, and what a pause held back.
                pending.extend_from_slice(fresh.get(h.used..).unwrap_or_default());
            } else {
                pending.extend_from_slice(fresh);
                let h = handle(pending);
                *subscribed |= h.subscribed;
                if h.stop {
                    return ReadOutcome::Stop;
                }
                consume_pending(pending, h.used);
            }
            ReadOutcome::Handled { drained }
        });
        Pause::hold_back(pause, congested, shared.config.max_publisher_hold_ms);
        outcome
    }

    /// Handle the packets a pause kept back in `pending`, without reading. Returns whether the
    /// connection is over.
    fn handle_pending(&mut self) -> bool {
        let ConnectionTask {
            shared,
            conn,
            outbox,
            options,
            pending,
            connected,
            subscribed,
            pause,
            ..
        } = self;
        let mut congested = Vec::new();
        let h = handle_bytes(
            shared,
            *conn,
            outbox,
            pending,
            options,
            connected,
            &mut congested,
        );
        *subscribed |= h.subscribed;
        consume_pending(pending, h.used);
        Pause::hold_back(pause, congested, shared.config.max_publisher_hold_ms);
        h.stop
    }

    /// One read now, if the socket may hold bytes, with its outcome noted as `poll_read` notes
    /// it. Returns whether the read handled bytes.
    fn read_once(&mut self) -> bool {
        if !(self.reading && self.readable) {
            return false;
        }
        match self.try_read() {
            ReadOutcome::Stop => self.finish_reading(),
            ReadOutcome::WouldBlock => self.readable = false,
            ReadOutcome::Handled { drained } => {
                self.readable = !drained;
                return true;
            }
        }
        false
    }

    /// Returns whether the reader waits for the socket (nothing more to read now).
    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        let mut budget = READ_BUDGET;
        while self.reading {
            if let Some(p) = &mut self.pause {
                // Held back (backpressure): not quiet, and woken when the wait is over.
                let (shared, conn) = (&self.shared, self.conn);
                let alive = || shared.with_core(None, |b| b.bytes_arrived(conn, shared.now_ms()));
                if !self.outbox.is_closed()
                    && p.poll(cx, shared.config.max_outgoing_bytes, alive)
                        .is_pending()
                {
                    return false;
                }
                self.pause = None;
                if !self.pending.is_empty() && self.handle_pending() {
                    self.finish_reading();
                }
                continue;
            }
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
                            return false;
                        }
                        return true;
                    }
                }
                continue;
            }
            if self.read_once() {
                budget = budget.saturating_sub(1);
                if budget == 0 {
                    // Let the other connections of this thread run between reads.
                    cx.waker().wake_by_ref();
                    return false;
                }
            }
        }
        false
    }

    /// Returns whether the writer waits for the outbox (everything queued is written).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> bool {
        let mut budget = WRITE_BUDGET;
        loop {
            match &mut self.writer {
                Writer::Done => return false,
                Writer::Lingering(l) => {
                    let read = READ_BUFFER.with(|buf| {
                        let mut buf = buf.borrow_mut();
                        self.stream.get_ref().read(&mut buf)
                    });
                    match read {
                        Ok(n) if n > 0 && l.discarded < LINGER_BYTES => {
                            l.discarded = l.discarded.saturating_add(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            match self.stream.poll_readable(cx) {
                                Poll::Ready(Ok(())) => continue,
                                Poll::Ready(Err(_)) => {}
                                Poll::Pending => {
                                    if Pin::new(&mut l.until).poll(cx).is_pending() {
                                        return false;
                                    }
                                }
                            }
                            self.finish_writing();
                            return false;
                        }
                        // The peer closed (or reset, or sent too much): done.
                        _ => {
                            self.finish_writing();
                            return false;
                        }
                    }
                }
                Writer::Idle => {
                    if self.outbox.poll_ready(cx).is_pending() {
                        return true;
                    }
                    budget = budget.saturating_sub(1);
                    if budget == 0 {
                        cx.waker().wake_by_ref();
                        return false;
                    }
                    self.active = true;
                    match drain_and_write(&self.stream, &self.outbox) {
                        None => self.finish_writing(),
                        Some((closed, rest)) if rest.is_empty() => {
                            if closed {
                                self.close_gracefully();
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
                            Ok(0) => {
                                self.finish_writing();
                                return false;
                            }
                            Ok(n) => {
                                b.written = b.written.saturating_add(n);
                                self.outbox.note_written();
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                match self.stream.poll_writable(cx) {
                                    Poll::Ready(Ok(())) => continue,
                                    Poll::Ready(Err(_)) => {
                                        self.finish_writing();
                                        return false;
                                    }
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
                                    {
                                        self.finish_writing();
                                        return false;
                                    }
                                }
                                return false;
                            }
                            Err(_) => {
                                self.finish_writing();
                                return false;
                            }
                        }
                    }
                    let closed = b.closed;
                    self.writer = Writer::Idle;
                    if closed {
                        self.close_gracefully();
                    }
                }
            }
        }
    }
}

/// The spawned task: one connection, until it ends or hibernates.
#[derive(Debug)]
struct Task(Option<ConnectionTask>);

impl Future for Task {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(c) = this.0.as_mut() else {
            return Poll::Ready(());
        };
        let read_waits = c.poll_read(cx);
        let write_waits = c.poll_write(cx);
        if !c.reading && matches!(c.writer, Writer::Done) {
            return Poll::Ready(());
        }
        if std::mem::take(&mut c.active) && c.quiet_since_ms != NOT_QUIET {
            // Busy again after a quiet spell: hibernate next time if it was a long one.
            let quiet = c.shared.now_ms().saturating_sub(c.quiet_since_ms);
            c.hibernate = quiet >= c.shared.config.hibernate_after_ms;
            c.quiet_since_ms = NOT_QUIET;
        }
        if std::mem::take(&mut c.subscribed) {
            // Like CONNECT, SUBSCRIBE and UNSUBSCRIBE are setup: a client usually waits for
            // messages next (a device subscribes to its command topic right after
            // connecting). Hibernating costs a connection that gets busy instead one trip
            // through the lot, after which the quiet-spell rule above decides.
            c.hibernate = true;
        }
        // Quiet: nothing to read, nothing to write, no partial packet.
        if !(read_waits && write_waits && c.connected && c.pending.is_empty()) {
            return Poll::Pending;
        }
        if c.quiet_since_ms == NOT_QUIET {
            c.quiet_since_ms = c.shared.now_ms();
        }
        #[cfg(target_os = "linux")]
        if let Some(lot) = c.shared.lot.clone().filter(|_| c.hibernate)
            && let Some(conn) = this.0.take()
        {
            return match conn.park(&lot) {
                Ok(()) | Err(None) => Poll::Ready(()),
                Err(Some(back)) => {
                    // Not parked after all (something was queued meanwhile): go on.
                    this.0 = Some(back);
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            };
        }
        Poll::Pending
    }
}

/// Drop the `used` bytes of `pending`, and its storage once empty if it grew past a read.
fn consume_pending(pending: &mut Vec<u8>, used: usize) {
    pending.drain(..used.min(pending.len()));
    if pending.is_empty() && pending.capacity() > READ_BUF {
        *pending = Vec::new();
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

/// What [`handle_bytes`] did.
struct Handled {
    /// Bytes used (whole packets).
    used: usize,
    /// The connection is over.
    stop: bool,
    /// A SUBSCRIBE or UNSUBSCRIBE was among the packets.
    subscribed: bool,
}

/// Decode and handle every complete packet at the front of `data`.
fn handle_bytes(
    shared: &Shared,
    conn: ConnId,
    outbox: &Outbox,
    data: &[u8],
    options: &mut DecodeOptions,
    connected: &mut bool,
    congested: &mut Vec<Outbox>,
) -> Handled {
    let now = shared.now_ms();
    shared.with_core(Some(congested), |broker| {
        // Congestion other inputs left (wills, $SYS) is not this connection's to wait for.
        broker.clear_congested();
        let mut used = 0usize;
        let mut subscribed = false;
        let handled = |used, stop, subscribed| Handled {
            used,
            stop,
            subscribed,
        };
        while let Some(rest) = data.get(used..).filter(|r| !r.is_empty()) {
            match decode(rest, *options) {
                Ok(Status::Complete(d)) => {
                    if let Packet::Connect(c) = &d.packet {
                        // The connection now speaks the CONNECT's version, with the full size
                        // limit.
                        options.version = c.protocol;
                        options.max_packet_size = shared.config.max_packet_size;
                        *connected = true;
                    }
                    subscribed |= matches!(d.packet, Packet::Subscribe(_) | Packet::Unsubscribe(_));
                    broker.packet_received(conn, &d.packet, d.consumed, now);
                    used = used.saturating_add(d.consumed);
                    if outbox.is_closed() {
                        return handled(used, true, subscribed);
                    }
                    if broker.is_congested() {
                        // Backpressure: the rest waits (in `pending`) until the subscribers
                        // drain.
                        break;
                    }
                }
                Ok(Status::Partial(_)) => break,
                Err(e) => {
                    broker.decode_failed(conn, e, now);
                    return handled(used, true, subscribed);
                }
            }
        }
        if used == 0 && !data.is_empty() {
            broker.bytes_arrived(conn, now);
        }
        handled(used, false, subscribed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spin_budget_follows_the_traffic() {
        let us = Duration::from_micros;
        let mut b = SpinBudget::new(us(200));
        assert_eq!(b.current(), us(200));
        // Sparse traffic (sleeps longer than the maximum): halved down to no spin at all.
        for _ in 0..20 {
            b.slept(us(500));
        }
        assert_eq!(b.current(), Duration::ZERO);
        b.slept(Duration::from_secs(10));
        assert_eq!(b.current(), Duration::ZERO);
        // Work arriving soon after each sleep: back up to the maximum, never beyond.
        b.slept(us(30));
        assert_eq!(b.current(), us(1));
        for _ in 0..20 {
            b.slept(us(30));
        }
        assert_eq!(b.current(), us(200));
        // busy_poll_us = 0: never spins.
        let mut off = SpinBudget::new(Duration::ZERO);
        off.slept(us(1));
        off.slept(us(1_000));
        assert_eq!(off.current(), Duration::ZERO);
    }

    #[test]
    fn connection_task_size() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let stream = Async::new(client).unwrap();
        let shared = Arc::new(Shared {
            broker: Mutex::new(Broker::new(Config::for_tests(), 0)),
            epoch: Instant::now(),
            config: Config::for_tests(),
            #[cfg(target_os = "linux")]
            lot: None,
            me: Weak::new(),
            executor: Weak::new(),
        });
        let fut = ConnectionTask::new(shared, stream, ConnId(1), Outbox::new());
        eprintln!("connection future: {} bytes", std::mem::size_of_val(&fut));
        eprintln!(
            "Outbox shared: {} bytes",
            std::mem::size_of::<crate::core::Outbox>()
        );
        assert!(std::mem::size_of_val(&fut) < 4096);
    }
}
