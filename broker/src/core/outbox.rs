//! [`Outbox`]: the queue between the broker core and one connection's writer task.
//!
//! The core pushes encoded items while it holds the broker lock; the writer task drains everything
//! queued into one buffer and writes it with one system call (write batching). The outbox counts
//! its queued bytes so the core can bound memory per connection (see `max_outgoing_bytes`).
//! It is plain Rust (a mutex and the connection task's [`Waker`], no runtime types), so the core stays
//! testable without a runtime, and an idle connection's outbox costs one small allocation: the
//! queue's storage is given back when a small batch is drained, so a connection that is not
//! sending holds none.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::message::Out;

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Out>,
    bytes: usize,
    closed: bool,
    /// The connection task (reader and writer are one task, so one waker serves both).
    waker: Option<Waker>,
    /// The writer waits for items or the close: a push wakes the task.
    writer_waiting: bool,
    /// The reader waits for the close only: it must not wake for every push (a writer blocked
    /// on a full socket would be polled for nothing on each one).
    reader_waiting: bool,
    /// Backpressure (see [`Outbox::poll_uncongested`]): the core holds publishers back while this
    /// connection's session queue is long.
    held: bool,
    /// A publisher waited for this connection longer than it may: it is taken to be stuck or
    /// too slow, and holds no one back (messages to it are dropped by the limits instead) until
    /// it has caught up (written everything, or, for the core's hold, worked its queue down) or
    /// drained `drains_to_go` more times.
    stalled: bool,
    /// Consecutive stalls without catching up in between, and the drains still to go before a
    /// stalled connection may hold publishers back again: 1, 2, 4, … (up to 1024) for the first,
    /// second, third… stall, so a connection that was only briefly starved soon paces its
    /// publishers again, and one that is merely slow costs them a shrinking share of the time.
    stalls: u32,
    drains_to_go: u32,
    /// Publisher tasks waiting for this outbox to drain.
    waiters: Vec<Waker>,
    /// Writes to the socket so far (drains and partial writes): progress, for publishers that
    /// wait to tell a slow connection from a stuck one.
    written: u64,
}

impl State {
    /// Whether a publisher should wait before sending more to this connection.
    fn congested(&self, limit: usize) -> bool {
        !self.closed && !self.stalled && (self.held || self.bytes > limit)
    }

    /// Everything written (or the queue worked down): not stalled, and the next stall is a first.
    fn caught_up(&mut self) {
        self.stalled = false;
        self.stalls = 0;
    }

    /// The waker to wake for a push, if the writer waits for one.
    fn wake_writer(&mut self) -> Option<Waker> {
        if !self.writer_waiting {
            return None;
        }
        self.writer_waiting = false;
        self.reader_waiting = false;
        self.waker.take()
    }
}

/// Whether a QoS 0 message may be queued on an outbox (see [`Outbox::room`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// At most the limit is waiting.
    Yes,
    /// More than the limit is waiting, less than twice it, and the connection is not stalled:
    /// queue it, and let the publisher wait for the connection to drain.
    Congested,
    /// Twice the limit is waiting, or the connection is stalled: drop it.
    No,
}

/// A connection's outgoing queue (cheap to clone; clones share the queue).
#[derive(Debug, Clone, Default)]
pub struct Outbox(Arc<Mutex<State>>);

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl Outbox {
    /// An empty, open outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent: keep going.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue an item; returns the bytes now queued. Items pushed after `close` are discarded.
    pub fn push(&self, out: Out) -> usize {
        let mut s = self.lock();
        if s.closed || out.is_empty() {
            return s.bytes;
        }
        s.bytes = s.bytes.saturating_add(out.len());
        s.items.push_back(out);
        let bytes = s.bytes;
        // The writer only sleeps on an empty queue, so only the first push finds it waiting.
        let waker = s.wake_writer();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        bytes
    }

    /// Bytes queued and not yet taken by the writer.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Close: the writer flushes what is queued, then shuts the socket; the reader stops.
    pub fn close(&self) {
        let mut s = self.lock();
        if s.closed {
            return;
        }
        s.closed = true;
        s.writer_waiting = false;
        s.reader_waiting = false;
        let waker = s.waker.take();
        let waiters = std::mem::take(&mut s.waiters);
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        waiters.into_iter().for_each(Waker::wake);
    }

    /// Whether nothing is queued and the outbox is open.
    pub fn is_idle(&self) -> bool {
        let s = self.lock();
        !s.closed && s.items.is_empty()
    }

    /// Whether a QoS 0 message may be queued here, `limit` being `max_outgoing_bytes`.
    pub fn room(&self, limit: usize) -> Room {
        let s = self.lock();
        if s.bytes <= limit {
            Room::Yes
        } else if s.stalled || s.bytes > limit.saturating_mul(2) {
            Room::No
        } else {
            Room::Congested
        }
    }

    /// The writer wrote some of what it drained: the connection makes progress.
    pub fn note_written(&self) {
        let mut s = self.lock();
        s.written = s.written.wrapping_add(1);
    }

    /// Writes so far (see [`Outbox::note_written`]).
    pub fn written(&self) -> u64 {
        self.lock().written
    }

    /// Whether two handles are the same outbox.
    pub fn same(&self, other: &Outbox) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Whether a publisher should wait before sending more here: more than `limit` bytes
    /// queued, or the core holds publishers back ([`Outbox::set_held`]), and the connection is
    /// neither closed nor stalled.
    pub fn is_congested(&self, limit: usize) -> bool {
        self.lock().congested(limit)
    }

    /// Whether a publisher gave up waiting for this connection ([`Outbox::mark_stalled`]) and it
    /// has not drained since.
    pub fn is_stalled(&self) -> bool {
        self.lock().stalled
    }

    /// The core holds publishers back while this connection's session queue is long (`true`),
    /// or lets them go on (`false`: the connection made progress).
    pub fn set_held(&self, held: bool) {
        let mut s = self.lock();
        if s.held == held {
            return;
        }
        s.held = held;
        let waiters = if held {
            Vec::new()
        } else {
            s.caught_up();
            std::mem::take(&mut s.waiters)
        };
        drop(s);
        waiters.into_iter().for_each(Waker::wake);
    }

    /// A publisher waited too long for this connection: it is stuck or too slow. It holds no one
    /// back (its limits drop messages meanwhile) until it catches up or has drained 1, 2, 4, …
    /// times (see `State::stalls`), and whoever waits for it goes on.
    pub fn mark_stalled(&self) {
        let mut s = self.lock();
        if !s.stalled {
            s.stalls = s.stalls.saturating_add(1).min(11);
            s.drains_to_go = 1 << (s.stalls - 1);
        }
        s.stalled = true;
        let waiters = std::mem::take(&mut s.waiters);
        drop(s);
        waiters.into_iter().for_each(Waker::wake);
    }

    /// Poll until a publisher may send here again (see [`Outbox::is_congested`]); registers the
    /// publisher's waker, woken when the writer drains the outbox, the core lets go, the
    /// connection closes or someone marks it stalled.
    pub fn poll_uncongested(&self, cx: &Context<'_>, limit: usize) -> Poll<()> {
        let mut s = self.lock();
        if !s.congested(limit) {
            return Poll::Ready(());
        }
        if !s.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            s.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Whether the outbox was closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Poll for the close (registers the reader's waker).
    pub fn poll_closed(&self, cx: &Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.closed {
            Poll::Ready(())
        } else {
            register(&mut s.waker, cx);
            s.reader_waiting = true;
            Poll::Pending
        }
    }

    /// Wait until the outbox is closed.
    pub async fn closed(&self) {
        poll_fn(|cx| self.poll_closed(cx)).await
    }

    /// Poll for something to drain or the close (registers the writer's waker).
    pub fn poll_ready(&self, cx: &Context<'_>) -> Poll<()> {
        let mut s = self.lock();
        if s.closed || !s.items.is_empty() {
            Poll::Ready(())
        } else {
            register(&mut s.waker, cx);
            s.writer_waiting = true;
            // Everything is written: caught up.
            if !s.held {
                s.caught_up();
            }
            Poll::Pending
        }
    }

    /// Wait until there is something to drain or the outbox is closed.
    pub async fn ready(&self) {
        poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Append every queued item's bytes to `buf`; returns whether the outbox is closed.
    pub fn drain_into(&self, buf: &mut Vec<u8>) -> bool {
        let mut s = self.lock();
        buf.reserve(s.bytes);
        s.bytes = 0;
        // Take the items and copy them out after unlocking, so the core is not held up by the
        // copy. A small batch (a CONNACK, a PINGRESP, a trickle of messages) gives the storage
        // back: an idle connection then holds none. A busy one gets fresh room for a batch of
        // about the same size (capped, so a burst's memory is not kept either).
        let n = s.items.len();
        let fresh = if n > 4 {
            VecDeque::with_capacity(n.min(64))
        } else {
            VecDeque::new()
        };
        let items = std::mem::replace(&mut s.items, fresh);
        let closed = s.closed;
        s.written = s.written.wrapping_add(1);
        if s.stalled {
            s.drains_to_go = s.drains_to_go.saturating_sub(1);
            if s.drains_to_go == 0 && !s.held {
                // Another chance to pace its publishers (see `stalls`).
                s.stalled = false;
            }
        }
        // Drained: publishers waiting for this connection go on (unless the core still holds
        // them back for its session queue).
        let waiters = if s.held {
            Vec::new()
        } else {
            std::mem::take(&mut s.waiters)
        };
        drop(s);
        waiters.into_iter().for_each(Waker::wake);
        for out in items {
            out.write_to(buf);
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn ready_wakes_on_first_push() {
        let o = Outbox::new();
        let o2 = o.clone();
        let t = std::thread::spawn(move || smol::block_on(o2.ready()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        o.push(Out::Raw(Bytes::from_static(b"x")));
        t.join().unwrap();
        let o3 = o.clone();
        let t = std::thread::spawn(move || smol::block_on(o3.closed()));
        std::thread::sleep(std::time::Duration::from_millis(50));
        o.push(Out::Raw(Bytes::from_static(b"y")));
        assert!(!t.is_finished(), "pushes do not wake the reader");
        o.close();
        t.join().unwrap();
    }

    #[test]
    fn push_drain_close() {
        let o = Outbox::new();
        assert_eq!(o.push(Out::Raw(Bytes::from_static(b"abc"))), 3);
        assert_eq!(o.push(Out::Raw(Bytes::from_static(b"de"))), 5);
        let mut buf = Vec::new();
        assert!(!o.drain_into(&mut buf));
        assert_eq!(buf, b"abcde");
        assert_eq!(o.queued_bytes(), 0);
        o.close();
        assert!(o.is_closed());
        smol::block_on(o.closed());
        smol::block_on(o.ready());
        assert_eq!(o.push(Out::Raw(Bytes::from_static(b"x"))), 0, "ignored");
        buf.clear();
        assert!(o.drain_into(&mut buf));
        assert!(buf.is_empty());
    }

    #[test]
    fn a_stalled_connection_gets_another_chance_after_more_and_more_drains() {
        let o = Outbox::new();
        let mut buf = Vec::new();
        let congest = |o: &Outbox| {
            o.push(Out::Raw(Bytes::from_static(&[0u8; 200])));
        };
        // Stalled once: one drain gives it another chance.
        congest(&o);
        assert!(o.is_congested(100));
        o.mark_stalled();
        assert!(!o.is_congested(100), "stalled: holds no one back");
        o.drain_into(&mut buf);
        assert!(!o.is_stalled());
        // Stalled again without catching up in between: two drains, then four.
        for drains in [2, 4] {
            congest(&o);
            o.mark_stalled();
            for _ in 1..drains {
                o.drain_into(&mut buf);
                congest(&o);
                assert!(o.is_stalled());
            }
            o.drain_into(&mut buf);
            assert!(!o.is_stalled());
        }
        // Catching up (the writer finds nothing to write) starts the count afresh.
        let caught_up = std::future::poll_fn(|cx| Poll::Ready(o.poll_ready(cx).is_pending()));
        assert!(smol::block_on(caught_up));
        congest(&o);
        o.mark_stalled();
        o.drain_into(&mut buf);
        assert!(!o.is_stalled());
    }

    #[test]
    fn drained_outbox_gives_its_storage_back() {
        let o = Outbox::new();
        let mut buf = Vec::new();
        // A CONNACK-sized exchange: nothing kept once written (idle connections hold no queue).
        o.push(Out::Raw(Bytes::from_static(b"\x20\x02\x00\x00")));
        assert!(o.lock().items.capacity() > 0);
        o.drain_into(&mut buf);
        assert_eq!(o.lock().items.capacity(), 0);
        // A burst: the next batch gets room for a similar one, but never more than 64 items.
        for _ in 0..1000 {
            o.push(Out::Raw(Bytes::from_static(b"m")));
        }
        buf.clear();
        o.drain_into(&mut buf);
        assert_eq!(buf.len(), 1000);
        let cap = o.lock().items.capacity();
        assert!((64..128).contains(&cap), "capacity {cap}");
        o.push(Out::Raw(Bytes::from_static(b"m")));
        buf.clear();
        o.drain_into(&mut buf);
        assert_eq!(o.lock().items.capacity(), 0);
    }
}
