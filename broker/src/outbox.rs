//! [`Outbox`]: the queue between the broker core and one connection's writer task.
//!
//! The core pushes encoded items while it holds the broker lock; the writer task drains everything
//! queued into one buffer and writes it with one system call (write batching). The outbox counts
//! its queued bytes so the core can bound memory per connection (see `max_outgoing_bytes`).
//! It is plain Rust (a mutex and two stored [`Waker`]s, no runtime types), so the core stays
//! testable without a runtime, and an idle connection's outbox costs one small allocation.

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
    /// The writer, waiting for items or the close.
    writer: Option<Waker>,
    /// The reader, waiting for the close only (it must not wake for every push).
    reader: Option<Waker>,
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
        // The writer only sleeps on an empty queue, so only the first push finds it registered.
        let writer = s.writer.take();
        drop(s);
        if let Some(w) = writer {
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
        let (writer, reader) = (s.writer.take(), s.reader.take());
        drop(s);
        for w in [writer, reader].into_iter().flatten() {
            w.wake();
        }
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
            register(&mut s.reader, cx);
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
            register(&mut s.writer, cx);
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
        for out in s.items.drain(..) {
            out.write_to(buf);
        }
        s.bytes = 0;
        // Release the memory of a queue that once held a burst.
        if s.items.capacity() > 64 {
            s.items.shrink_to(16);
        }
        s.closed
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
}
