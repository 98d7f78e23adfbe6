//! [`Server`] and [`ServerHandle`]: binding, starting and stopping the broker; the state the
//! shell's tasks share ([`Shared`], through which every use of the core goes); the accept loop,
//! the timer that drives [`Broker::handle_timeout`], and the loop that revives hibernating
//! connections.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use smol::{Async, Executor, Timer};

use crate::config::Config;
use crate::core::{Broker, ConnId, Event, ListenerAccess, Outbox, Persistence, Stats};
use crate::store::Store;

use super::connection::{ConnectionTask, Task};
use super::executor::worker;
use super::listen::{Bound, bind_all};
#[cfg(target_os = "linux")]
use super::park::{Parked, ParkingLot};
use super::persistence::{Doorbell, Writer};
use super::stream::Stream;
#[cfg(unix)]
use super::tls::TlsListener;
#[cfg(unix)]
use super::transport::{Accepted, Transport, serve};

/// The timer runs the core's timers ([`Broker::handle_timeout`]) when [`Broker::poll_timeout`]
/// says, but at most this often: keep-alive deadlines of many connections are spread over
/// time, and each run looks at every connection, so they are batched (a deadline is met at most
/// this late).
const MIN_TIMER_INTERVAL: Duration = Duration::from_millis(250);
/// ... and at least this often: a deadline set by an input after the timer went to sleep is at
/// least a second away (every MQTT interval is in whole seconds), so it is never missed.
const MAX_TIMER_INTERVAL: Duration = Duration::from_secs(1);

/// The periodic persistence mode writes early once this many changes wait: `autosave_interval`
/// bounds what a crash loses in time, this bounds the memory the journal holds meanwhile.
const PERIODIC_MAX_CHANGES: usize = 100_000;

/// State shared by the shell's tasks.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) broker: Mutex<Broker>,
    pub(super) epoch: Instant,
    pub(super) config: Config,
    /// Where quiet connections hibernate (`None`: they keep their task).
    #[cfg(target_os = "linux")]
    pub(super) lot: Option<Arc<ParkingLot>>,
    /// To spawn revived connections (see [`Shared::with_core`]).
    pub(super) me: Weak<Shared>,
    pub(super) executor: Weak<Executor<'static>>,
    /// The durable store's writer, rung when the core holds at least this many changes: one in
    /// the durable mode; in the periodic mode [`PERIODIC_MAX_CHANGES`], so that the journal
    /// (and the messages it holds) cannot grow for a whole `autosave_interval`.
    pub(super) store_doorbell: Option<(Arc<Doorbell>, usize)>,
    /// TLS and WebSocket connections still in their handshakes: they count for
    /// `max_connections` before the core knows them (see [`HandshakeSlot`]).
    pub(super) handshaking: std::sync::atomic::AtomicUsize,
}

/// A connection counted in [`Shared::handshaking`] until its handshakes are over (dropped:
/// handed to the core, which counts it from then on, or closed).
#[derive(Debug)]
pub(super) struct HandshakeSlot(Arc<Shared>);

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.0
            .handshaking
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Shared {
    /// Run `f` on the locked core, then act on what it reports ([`Broker::poll_event`]) before
    /// the lock is released: hibernating connections it woke get their task back (still under
    /// the lock, so a connection is never both parked and live), and the congested subscribers
    /// go to `congested` — the publisher being read waits for them — or, with `None`, are
    /// forgotten (nobody to hold back). Every use of the core goes through here.
    pub(super) fn with_core<R>(
        &self,
        mut congested: Option<&mut Vec<Outbox>>,
        f: impl FnOnce(&mut Broker) -> R,
    ) -> R {
        // A panic in one connection's handling must not take the broker down with it.
        let mut broker = self.broker.lock().unwrap_or_else(|e| e.into_inner());
        let result = f(&mut broker);
        if let Some((bell, at)) = &self.store_doorbell
            && broker.pending_changes() >= *at
        {
            bell.ring();
        }
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
    pub(super) fn revive(
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
    pub(super) fn spawn(&self, c: ConnectionTask) {
        if let Some(ex) = self.executor.upgrade() {
            ex.spawn(Task(Some(c))).detach();
        }
    }

    /// Tell the core that `conn`'s socket is gone, now.
    pub(super) fn connection_lost(&self, conn: ConnId) {
        let now = self.now_ms();
        self.with_core(None, |b| b.connection_lost(conn, now));
    }

    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Connections hibernating in the parking lot now.
    pub(super) fn hibernating(&self) -> usize {
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
    /// Every bound socket, the first listener's first.
    sockets: Vec<Bound>,
    /// Each listener's users and topic rules, loaded from its files.
    access: Vec<ListenerAccess>,
    config: Config,
    authenticators: Vec<Arc<dyn crate::core::Authenticator>>,
    /// The durable store, opened by `bind` (`persistence`).
    store: Option<Store>,
}

impl Server {
    /// Offer an enhanced authentication method (5.0 AUTH exchange) to clients.
    pub fn with_authenticator(mut self, a: Arc<dyn crate::core::Authenticator>) -> Server {
        self.authenticators.push(a);
        self
    }

    /// Bind the listeners of `config` ([`Config::listeners`]; port 0 picks an ephemeral port,
    /// one per socket).
    pub fn bind(config: Config) -> io::Result<Server> {
        // The files first: a broker whose password or ACL file is unusable does not listen.
        let access = crate::security::load_listener_access(&config)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        // The store next: a file another broker holds, or a damaged one, stops the start.
        let store = if config.persistence {
            Some(Store::open(&config.persistence_path()).map_err(io::Error::other)?)
        } else {
            None
        };
        let sockets = bind_all(&config)?;
        Ok(Server {
            sockets,
            access,
            config,
            authenticators: Vec::new(),
            store,
        })
    }

    /// The address of the first listener's first socket (the one a test connects to).
    pub fn local_addr(&self) -> SocketAddr {
        first(&self.local_addrs())
    }

    /// The address of every socket the broker listens on.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|b| b.addr).collect()
    }

    /// Start serving on the executor threads; returns at once.
    pub fn start(self) -> io::Result<ServerHandle> {
        let threads = match self.config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let busy_poll = Duration::from_micros(self.config.busy_poll_us);
        let mut broker = Broker::new(self.config.clone(), 0);
        // Recovery, before the first connection: the broker's time 0 is now.
        let store = match self.store {
            Some(mut store) => {
                restore(&mut store, &mut broker, &self.config).map_err(io::Error::other)?;
                Some(store)
            }
            None => None,
        };
        let epoch = Instant::now();
        let mode = self.config.persistence_kind();
        let autosave = Duration::from_secs(self.config.autosave_interval.max(1));
        let compact_after = (self.config.persistence_compact_interval > 0)
            .then(|| Duration::from_secs(self.config.persistence_compact_interval));
        let store_doorbell = store.is_some().then(|| {
            let at = match mode {
                Persistence::Periodic => PERIODIC_MAX_CHANGES,
                _ => 1,
            };
            (Arc::new(Doorbell::default()), at)
        });
        broker.set_persistence(if store.is_some() {
            mode
        } else {
            Persistence::Memory
        });
        broker.set_listener_access(self.access);
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
            store_doorbell: store_doorbell.clone(),
            handshaking: Default::default(),
        });
        let writer = match store {
            Some(store) => Some(Writer::start(
                store,
                store_doorbell.map(|(bell, _)| bell).unwrap_or_default(),
                Arc::downgrade(&shared),
                mode,
                autosave,
                compact_after,
            )?),
            None => None,
        };
        #[cfg(target_os = "linux")]
        if let Some(lot) = lot {
            executor
                .spawn(revive_loop(lot, Arc::downgrade(&shared)))
                .detach();
        }
        let local_addrs: Vec<SocketAddr> = self.sockets.iter().map(|b| b.addr).collect();
        let accept_loops = self.sockets.len();
        #[cfg(unix)]
        let mut tls: Vec<Arc<TlsListener>> = Vec::new();
        for bound in self.sockets {
            let socket = Async::new(bound.socket)?;
            #[cfg(unix)]
            if let Some(t) = bound.transport.as_ref().and_then(|t| t.tls.as_ref())
                && !tls.iter().any(|known| Arc::ptr_eq(known, t))
            {
                tls.push(Arc::clone(t));
            }
            executor
                .spawn(accept_loop(
                    socket,
                    bound.listener,
                    bound.addr.port(),
                    #[cfg(unix)]
                    bound.transport,
                    Arc::clone(&shared),
                    weak.clone(),
                ))
                .detach();
        }
        executor.spawn(timer(Arc::clone(&shared))).detach();
        #[cfg(unix)]
        super::bridge::start(&shared, &executor)?;
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
            local_addrs
                .iter()
                .map(SocketAddr::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            if threads == 1 { "" } else { "s" }
        );
        Ok(ServerHandle {
            local_addrs,
            accept_loops,
            #[cfg(unix)]
            tls,
            shared,
            executor: Some(executor),
            stop: Some(stop),
            threads: handles,
            writer,
        })
    }
}

/// A running broker. Dropping it shuts the broker down.
#[derive(Debug)]
pub struct ServerHandle {
    /// Every socket listened on, the first listener's first.
    local_addrs: Vec<SocketAddr>,
    /// Tasks holding a reference to the shared state for good (one per socket).
    accept_loops: usize,
    /// The TLS listeners, for [`ServerHandle::reload_tls`].
    #[cfg(unix)]
    tls: Vec<Arc<TlsListener>>,
    shared: Arc<Shared>,
    executor: Option<Arc<Executor<'static>>>,
    stop: Option<smol::channel::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
    /// The durable store's writer (`persistence`).
    writer: Option<Writer>,
}

impl ServerHandle {
    /// The address of the first listener's first socket (the one a test connects to).
    pub fn local_addr(&self) -> SocketAddr {
        first(&self.local_addrs)
    }

    /// The address of every socket the broker listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
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

    /// Reload every listener's password and ACL files (SIGHUP): the new rules apply at once,
    /// and clients who lost the right to be connected are disconnected. If a file cannot be
    /// used, the error names it (and its line) and the previous rules stay: a failed reload
    /// never opens the broker up.
    pub fn reload_security(&self) -> Result<(), String> {
        let access = crate::security::load_listener_access(&self.shared.config)?;
        self.shared
            .with_core(None, |b| b.set_listener_access(access));
        Ok(())
    }

    /// Subscriptions held now (all sessions).
    pub fn subscription_count(&self) -> usize {
        self.shared.with_core(None, |b| b.subscriptions().len())
    }

    /// Read every TLS listener's certificate, key and CA files again (SIGHUP): connections
    /// accepted from then on use them, those already open keep theirs. All or nothing: if a file
    /// cannot be used, the error names it and every listener keeps its configuration. Returns
    /// how many TLS listeners were reloaded.
    #[cfg(unix)]
    pub fn reload_tls(&self) -> io::Result<usize> {
        let fresh = self
            .tls
            .iter()
            .map(|t| t.prepare_reload())
            .collect::<io::Result<Vec<_>>>()
            .inspect_err(|e| {
                log::error!("Error: TLS reload failed, keeping the current certificates: {e}.")
            })?;
        for (t, config) in self.tls.iter().zip(fresh) {
            t.install(config);
            log::info!(
                "Reloaded the TLS certificates of the listener on port {}.",
                t.port()
            );
        }
        Ok(self.tls.len())
    }

    /// Write what the durable store has not yet written now (SIGUSR1, as Mosquitto saves its
    /// database); returns whether there is a store.
    pub fn checkpoint(&self) -> bool {
        self.writer.as_ref().map(Writer::checkpoint).is_some()
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
        // Let the writers flush what the connections had queued (the handle, the accept loops
        // and the timer hold the other references).
        // Hibernating connections are revived to flush theirs first.
        let held = 2 + self.accept_loops;
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline
            && (Arc::strong_count(&self.shared) > held || self.shared.hibernating() > 0)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        // What the shutdown changed (sessions disconnected) goes to the store before it closes.
        if let Some(mut w) = self.writer.take() {
            w.stop();
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

/// Give `broker` what `store` kept, and say what that was.
fn restore(
    store: &mut Store,
    broker: &mut Broker,
    config: &Config,
) -> Result<(), crate::store::StoreError> {
    let started = Instant::now();
    let (restored, report) = store.recover()?;
    let refused = broker.restore(restored, 0);
    let how = match config.persistence_kind() {
        Persistence::Periodic => format!(
            "periodic: written every {} s, acknowledgements do not wait",
            config.autosave_interval
        ),
        _ => "durable: acknowledgements wait until what they acknowledge is on disk".to_owned(),
    };
    log::info!("Persistence: {} ({how}).", store.path().display());
    log::info!(
        "Persistence: restored {} sessions, {} queued messages and {} retained messages in {} ms \
         ({} sessions and {} messages expired while the broker was down).",
        report.sessions,
        report.messages,
        report.retained,
        started.elapsed().as_millis(),
        report.expired_sessions,
        report.expired_messages
    );
    super::persistence::compact_if_sparse(store);
    if report.connected_wills > 0 {
        log::info!(
            "Persistence: {} wills of clients connected when the broker stopped are published \
             after their Will Delay Interval unless their clients connect again first.",
            report.connected_wills
        );
    }
    if report.unreadable > 0 || refused > 0 {
        log::error!(
            "Persistence: {} damaged records could not be restored and were deleted; {refused} \
             subscriptions were refused (see above).",
            report.unreadable
        );
    }
    Ok(())
}

/// The first of `addrs` (a bound server has at least one socket).
fn first(addrs: &[SocketAddr]) -> SocketAddr {
    addrs
        .first()
        .copied()
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// Drive the core's timers: run what is due, then sleep until the next deadline, within
/// [`MIN_TIMER_INTERVAL`] and [`MAX_TIMER_INTERVAL`].
async fn timer(shared: Arc<Shared>) {
    loop {
        let now = shared.now_ms();
        let next = shared.with_core(None, |b| {
            b.handle_timeout(now);
            b.poll_timeout()
        });
        let wait = next.map_or(MAX_TIMER_INTERVAL, |at| {
            Duration::from_millis(at.saturating_sub(now))
                .clamp(MIN_TIMER_INTERVAL, MAX_TIMER_INTERVAL)
        });
        Timer::after(wait).await;
    }
}

async fn accept_loop(
    listener: Async<TcpListener>,
    listener_index: usize,
    port: u16,
    #[cfg(unix)] transport: Option<Arc<Transport>>,
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
        #[cfg(unix)]
        if let Some(t) = &transport {
            // TLS or WebSockets: a task does the handshakes, then becomes the connection task
            // (TLS) or bridges to one (WebSockets, `transport.rs`).
            let Some(ex) = executor.upgrade() else {
                return;
            };
            // Connections in their handshakes count for `max_connections` too: a flood of
            // handshakes that never finish is bounded like one of connections.
            let handshaking = shared
                .handshaking
                .load(std::sync::atomic::Ordering::Relaxed);
            if !shared.with_core(None, |b| b.has_room_for(handshaking.saturating_add(1))) {
                log::warn!("Client connection from {peer} denied: max_connections exceeded.");
                continue;
            }
            shared
                .handshaking
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let slot = HandshakeSlot(Arc::clone(&shared));
            let at = Accepted {
                peer,
                listener: listener_index,
                port,
            };
            ex.spawn(serve(Arc::clone(&shared), Arc::clone(t), stream, at, slot))
                .detach();
            continue;
        }
        let now = shared.now_ms();
        let handshaking = shared
            .handshaking
            .load(std::sync::atomic::Ordering::Relaxed);
        let Some((conn, outbox)) = shared.with_core(None, |b| {
            // (Those in TLS/WebSocket handshakes count too; the core counts the others.)
            if !b.has_room_for(handshaking.saturating_add(1)) {
                log::warn!("Client connection from {peer} denied: max_connections exceeded.");
                return None;
            }
            b.connection_opened(peer, listener_index, port, now)
        }) else {
            continue;
        };
        let Some(ex) = executor.upgrade() else {
            return;
        };
        let mut c = ConnectionTask::new(Arc::clone(&shared), Stream::plain(stream), conn, outbox);
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
