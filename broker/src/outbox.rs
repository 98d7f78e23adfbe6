//! [`Outbox`]: the queue between the broker core and one connection's writer task.
//!
//! The core pushes encoded items while it holds the broker lock; the writer task drains everything
//! queued into one buffer and writes it with one system call (write batching). The outbox counts
//! its queued bytes so the core can bound memory per connection (see `max_outgoing_bytes`).
//! It is plain Rust (a mutex and an `event_listener::Event`), so the core stays testable without
//! a runtime.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use event_listener::{Event, EventListener};

use crate::message::Out;

#[derive(Debug, Default)]
struct State {
    items: VecDeque<Out>,
    bytes: usize,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// Notified when the queue becomes non-empty and when the outbox closes (the writer).
    event: Event,
    /// Notified only when the outbox closes (the reader, which must not wake for every push).
    closed: Event,
}

/// A connection's outgoing queue (cheap to clone; clones share the queue).
#[derive(Debug, Clone, Default)]
pub struct Outbox(Arc<Shared>);

impl Outbox {
    /// An empty, open outbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent: keep going.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queue an item; returns the bytes now queued. Items pushed after `close` are discarded.
    pub fn push(&self, out: Out) -> usize {
        let mut s = self.lock();
        if s.closed || out.is_empty() {
            return s.bytes;
        }
        let was_empty = s.items.is_empty();
        s.bytes = s.bytes.saturating_add(out.len());
        s.items.push_back(out);
        let bytes = s.bytes;
        drop(s);
        // The writer only sleeps on an empty queue, so only the first push needs to wake it.
        if was_empty {
            self.0.event.notify(usize::MAX);
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
        if !s.closed {
            s.closed = true;
            drop(s);
            self.0.event.notify(usize::MAX);
            self.0.closed.notify(usize::MAX);
        }
    }

    /// Whether the outbox was closed.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// A listener for the next push into an empty queue or the close. Create it *before*
    /// draining, then await it only if the drain found nothing, so no wake-up is lost.
    pub fn listen(&self) -> EventListener {
        self.0.event.listen()
    }

    /// A listener for the close only. Create it before checking [`Outbox::is_closed`].
    pub fn listen_closed(&self) -> EventListener {
        self.0.closed.listen()
    }

    /// Wait until the outbox is closed.
    pub async fn closed(&self) {
        loop {
            let listener = self.listen_closed();
            if self.is_closed() {
                return;
            }
            listener.await;
        }
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
        assert_eq!(o.push(Out::Raw(Bytes::from_static(b"x"))), 0, "ignored");
        buf.clear();
        assert!(o.drain_into(&mut buf));
        assert!(buf.is_empty());
    }
}
