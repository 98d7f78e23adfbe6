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

use crate::message::Out;

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
}

impl State {
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
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Whether nothing is queued and the outbox is open.
    pub fn is_idle(&self) -> bool {
        let s = self.lock();
        !s.closed && s.items.is_empty()
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
        drop(s);
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
