//! One connection's task ([`ConnectionTask`], spawned as a [`Task`]): reading, decoding (through
//! [`Framing`]) and handing packets to the core, writing what the core queued, closing
//! gracefully, and hibernating when quiet.

use std::cell::RefCell;
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use smol::{Async, Timer};
use wren_codec::{Packet, Status};

use crate::core::{ConnId, Framing, Outbox};

use super::backpressure::Pause;
#[cfg(target_os = "linux")]
use super::park::{Parked, ParkingLot};
use super::server::Shared;
use super::stream::{Received, Stream};

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
    /// TLS connections' decrypted bytes (`READ_BUFFER` holds the records they came in).
    static PLAINTEXT: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One connection's task: reader and writer in one hand-written future, so an idle connection
/// costs a small fixed struct (no buffers, no nested future states).
#[derive(Debug)]
pub(super) struct ConnectionTask {
    shared: Arc<Shared>,
    stream: Stream,
    conn: ConnId,
    outbox: Outbox,
    /// How packets are decoded: the CONNECT's version, the size limit for the current state
    /// (also whether the CONNECT was handled: only a connected client hibernates).
    framing: Framing,
    /// An incomplete packet carried over between reads.
    pending: Vec<u8>,
    /// Whether the reader still runs.
    reading: bool,
    /// Whether the socket may hold unread bytes (see `poll_read`).
    pub(super) readable: bool,
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
    pub(super) fn new(shared: Arc<Shared>, stream: Stream, conn: ConnId, outbox: Outbox) -> Self {
        let framing = Framing::new(&shared.config);
        ConnectionTask {
            shared,
            stream,
            conn,
            outbox,
            framing,
            pending: Vec::new(),
            reading: true,
            readable: false,
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
    pub(super) fn park(self, lot: &ParkingLot) -> Result<(), Option<ConnectionTask>> {
        if self.stream.is_tls() {
            // The session's state has no place in the lot: TLS connections stay live.
            return Err(Some(self));
        }
        let ConnectionTask {
            shared,
            stream,
            conn,
            outbox,
            framing,
            quiet_since_ms,
            ..
        } = self;
        let Some(Ok(stream)) = stream.into_plain().map(Async::into_inner) else {
            // The socket is gone with the failed deregistration: the connection is over (TLS
            // connections do not get here, see above).
            shared.connection_lost(conn);
            outbox.close();
            return Err(None);
        };
        let parked = Parked {
            stream,
            version: framing.version(),
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
    pub(super) fn resumed(
        shared: Arc<Shared>,
        p: Parked,
        conn: ConnId,
        outbox: Outbox,
        readable: bool,
    ) -> Result<ConnectionTask, Outbox> {
        let Ok(stream) = Async::new(p.stream) else {
            return Err(outbox);
        };
        let framing = Framing::connected(&shared.config, p.version);
        let mut c = ConnectionTask::new(shared, Stream::plain(stream), conn, outbox);
        c.framing = framing;
        c.readable = readable;
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
        if self.stream.shutdown_write().is_err() {
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
        self.stream.shutdown();
        self.finish_reading();
    }

    /// One non-blocking read into this thread's buffer, and everything it completes handled.
    fn try_read(&mut self) -> ReadOutcome {
        let mut congested = Vec::new();
        let outcome = READ_BUFFER.with(|buf| {
            let mut buf = buf.borrow_mut();
            if self.stream.is_tls() {
                return PLAINTEXT.with(|plain| {
                    let mut plain = plain.borrow_mut();
                    plain.clear();
                    let outcome = match self.stream.receive(&mut buf, &mut plain) {
                        Received::Plaintext { drained } => {
                            self.handle_fresh(&plain, drained, &mut congested)
                        }
                        Received::Nothing => ReadOutcome::WouldBlock,
                        Received::Closed => ReadOutcome::Stop,
                    };
                    if plain.capacity() > 16 * READ_BUF {
                        *plain = Vec::new();
                    }
                    outcome
                });
            }
            let n = match self.stream.tcp().get_ref().read(&mut buf) {
                Ok(0) => return ReadOutcome::Stop,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    return ReadOutcome::Handled { drained: false };
                }
                Err(_) => return ReadOutcome::Stop,
            };
            let drained = n < buf.len();
            self.handle_fresh(buf.get(..n).unwrap_or_default(), drained, &mut congested)
        });
        Pause::hold_back(
            &mut self.pause,
            congested,
            self.shared.config.max_publisher_hold_ms,
        );
        outcome
    }

    /// Handle every packet that `fresh`, the bytes just read, completes (with `pending`), and
    /// keep the rest in `pending`.
    fn handle_fresh(
        &mut self,
        fresh: &[u8],
        drained: bool,
        congested: &mut Vec<Outbox>,
    ) -> ReadOutcome {
        if fresh.is_empty() {
            // Part of a TLS record: nothing for the core yet.
            return ReadOutcome::Handled { drained };
        }
        let ConnectionTask {
            shared,
            conn,
            outbox,
            framing,
            pending,
            subscribed,
            active,
            ..
        } = self;
        *active = true;
        let mut handle =
            |data: &[u8]| handle_bytes(shared, *conn, outbox, data, framing, congested);
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
    }

    /// Handle the packets a pause kept back in `pending`, without reading. Returns whether the
    /// connection is over.
    fn handle_pending(&mut self) -> bool {
        let ConnectionTask {
            shared,
            conn,
            outbox,
            framing,
            pending,
            subscribed,
            pause,
            ..
        } = self;
        let mut congested = Vec::new();
        let h = handle_bytes(shared, *conn, outbox, pending, framing, &mut congested);
        *subscribed |= h.subscribed;
        consume_pending(pending, h.used);
        Pause::hold_back(pause, congested, shared.config.max_publisher_hold_ms);
        h.stop
    }

    /// One read now, if the socket may hold bytes, with its outcome noted as `poll_read` notes
    /// it. Returns whether the read handled bytes.
    pub(super) fn read_once(&mut self) -> bool {
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
                match self.stream.tcp().poll_readable(cx) {
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
                        self.stream.tcp().get_ref().read(&mut buf)
                    });
                    match read {
                        Ok(n) if n > 0 && l.discarded < LINGER_BYTES => {
                            l.discarded = l.discarded.saturating_add(n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            match self.stream.tcp().poll_readable(cx) {
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
                    if self.stream.wants_write() {
                        // TLS records of the session's own (a handshake's last flight, an
                        // alert, a key update): written as blocked bytes are.
                        self.writer = Writer::Blocked(Box::new(Blocked {
                            rest: Vec::new(),
                            written: 0,
                            closed: false,
                            grace: None,
                        }));
                        continue;
                    }
                    if self.outbox.poll_ready(cx).is_pending() {
                        return true;
                    }
                    budget = budget.saturating_sub(1);
                    if budget == 0 {
                        cx.waker().wake_by_ref();
                        return false;
                    }
                    self.active = true;
                    match drain_and_write(&mut self.stream, &self.outbox) {
                        None => self.finish_writing(),
                        Some((closed, rest)) if rest.is_empty() && !self.stream.wants_write() => {
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
                    loop {
                        let unwritten = b.rest.get(b.written..).unwrap_or_default();
                        // Bytes of ours first, then the TLS records they became.
                        if unwritten.is_empty() && !self.stream.wants_write() {
                            break;
                        }
                        match self.stream.write(unwritten) {
                            Ok(0) if !unwritten.is_empty() => {
                                self.finish_writing();
                                return false;
                            }
                            Ok(0) => {}
                            Ok(n) => {
                                b.written = b.written.saturating_add(n);
                                self.outbox.note_written();
                            }
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                match self.stream.tcp().poll_writable(cx) {
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
pub(super) struct Task(pub(super) Option<ConnectionTask>);

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
        if !(read_waits && write_waits && c.framing.is_connected() && c.pending.is_empty()) {
            return Poll::Pending;
        }
        if c.quiet_since_ms == NOT_QUIET {
            c.quiet_since_ms = c.shared.now_ms();
        }
        #[cfg(target_os = "linux")]
        if let Some(lot) = c
            .shared
            .lot
            .clone()
            .filter(|_| c.hibernate && !c.stream.is_tls())
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
/// an idle connection holds no write buffer; a TLS session may still hold records of them,
/// [`Stream::wants_write`]), or `None` if the socket failed.
fn drain_and_write(stream: &mut Stream, outbox: &Outbox) -> Option<(bool, Vec<u8>)> {
    WRITE_BUFFER.with(|tl| {
        let mut buf = tl.borrow_mut();
        buf.clear();
        let closed = outbox.drain_into(&mut buf);
        let mut written = 0usize;
        while let Some(unwritten) = buf.get(written..).filter(|b| !b.is_empty()) {
            match stream.write(unwritten) {
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
    framing: &mut Framing,
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
            let decoded = framing.decode(rest, |packet, len| {
                subscribed |= matches!(packet, Packet::Subscribe(_) | Packet::Unsubscribe(_));
                broker.packet_received(conn, packet, len, now);
                len
            });
            match decoded {
                Ok(Status::Complete(len)) => {
                    used = used.saturating_add(len);
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
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Mutex, Weak};
    use std::time::Instant;

    use super::*;
    use crate::config::Config;
    use crate::core::Broker;

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
            store_doorbell: None,
            handshaking: Default::default(),
        });
        let fut = ConnectionTask::new(shared, Stream::plain(stream), ConnId(1), Outbox::new());
        eprintln!("connection future: {} bytes", std::mem::size_of_val(&fut));
        eprintln!(
            "Outbox shared: {} bytes",
            std::mem::size_of::<crate::core::Outbox>()
        );
        assert!(std::mem::size_of_val(&fut) < 4096);
    }
}
