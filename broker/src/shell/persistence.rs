//! The store writer: a thread of its own that takes the core's journal in batches
//! ([`Broker::take_changes`]) and writes each in one transaction ([`Store::write`]), then tells
//! the core ([`Broker::changes_committed`]), which lets the acknowledgements waiting for it go.
//!
//! Group commit: while one batch is being written and synced, the executor threads go on and
//! the changes of every connection pile up for the next one — one fsync per batch, not per
//! message. In the durable mode the writer wakes as soon as there are changes; in the periodic
//! mode every `autosave_interval` seconds (and on SIGUSR1, and at shutdown). A batch that
//! cannot be written (a full disk) is kept and tried again every second, the core refusing new
//! QoS 1/2 messages meanwhile ([`Broker::store_failing`]). Under load batches are at least
//! [`LINGER`] apart, so that they grow large enough to pay for themselves.

use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::{Broker, Change, Persistence};
use crate::store::Store;

use super::server::Shared;

/// How often a failing store is tried again.
const RETRY: Duration = Duration::from_secs(1);

/// Under load (the last batch held at least [`BUSY_BATCH`] changes) a batch starts at most this
/// long after the previous one, so that more changes share its fixed costs (the commit, the
/// fsync, waking the connections whose acknowledgements it releases): measured on the
/// `qos1 durable` row (2 vCPUs, 2026-12-05): 186-267k msg/s without, 398k with 4 ms, 436k with
/// 8 ms, 307k with 16 ms (the generator's 5,000 messages in flight then wait for the batches).
/// A quiet broker writes at once, so a lone publisher's PUBACK waits one fsync, not this.
const LINGER: Duration = Duration::from_millis(8);
const BUSY_BATCH: usize = 256;

#[derive(Debug, Default)]
struct Signals {
    /// Changes wait (or a checkpoint was asked for).
    wake: bool,
    /// Write what is left, then stop.
    stop: bool,
}

/// The writer's doorbell, which the executor threads ring (see [`Shared::with_core`]).
#[derive(Debug, Default)]
pub(super) struct Doorbell {
    signals: Mutex<Signals>,
    ring: Condvar,
}

impl Doorbell {
    /// Wake the writer.
    pub(super) fn ring(&self) {
        let mut s = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        if !s.wake {
            s.wake = true;
            drop(s);
            self.ring.notify_one();
        }
    }

    fn stop(&self) {
        let mut s = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        s.stop = true;
        drop(s);
        self.ring.notify_one();
    }

    /// Wait for a ring, a stop or `timeout`; returns whether to stop.
    fn wait(&self, timeout: Option<Duration>) -> bool {
        let mut s = self.signals.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = timeout.map(|t| Instant::now() + t);
        while !s.wake && !s.stop {
            match deadline {
                None => s = self.ring.wait(s).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    s = self
                        .ring
                        .wait_timeout(s, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            }
        }
        s.wake = false;
        s.stop
    }
}

/// The running writer.
#[derive(Debug)]
pub(super) struct Writer {
    doorbell: Arc<Doorbell>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Start writing `store` for the broker behind `shared`.
    pub(super) fn start(
        store: Store,
        doorbell: Arc<Doorbell>,
        shared: Weak<Shared>,
        mode: Persistence,
        interval: Duration,
    ) -> std::io::Result<Writer> {
        let bell = Arc::clone(&doorbell);
        let thread = std::thread::Builder::new()
            .name("wren-store".into())
            .spawn(move || run(store, &bell, &shared, mode, interval))?;
        Ok(Writer {
            doorbell,
            thread: Some(thread),
        })
    }

    /// Write now (SIGUSR1; the periodic mode's checkpoint).
    pub(super) fn checkpoint(&self) {
        self.doorbell.ring();
    }

    /// Write what is left and stop.
    pub(super) fn stop(&mut self) {
        self.doorbell.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    mut store: Store,
    doorbell: &Doorbell,
    shared: &Weak<Shared>,
    mode: Persistence,
    interval: Duration,
) {
    // Changes taken but not written yet (kept while the store fails), and their last batch.
    let mut pending: Vec<Change> = Vec::new();
    let mut last_batch = 0u64;
    let mut failing = false;
    // When the last batch started, and whether it was a busy one (see `LINGER`).
    let mut last_start = Instant::now();
    let mut busy = false;
    loop {
        let timeout = if failing {
            Some(RETRY)
        } else if mode == Persistence::Periodic {
            Some(interval)
        } else {
            None
        };
        let stop = doorbell.wait(timeout);
        if busy && !stop {
            let wait = (last_start + LINGER).saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                std::thread::sleep(wait);
            }
        }
        last_start = Instant::now();
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if let Some((batch, changes)) = shared.with_core(None, Broker::take_changes) {
            busy = changes.len() >= BUSY_BATCH;
            if pending.is_empty() {
                pending = changes;
            } else {
                pending.extend(changes);
            }
            last_batch = batch;
        }
        if !pending.is_empty() {
            match store.write(&pending) {
                Ok(()) => {
                    failing = false;
                    let now = shared.now_ms();
                    shared.with_core(None, |b| b.changes_committed(last_batch, now));
                    // Dropped once the acknowledgements are out: the last references to many
                    // messages are here, and freeing them takes a while.
                    pending.clear();
                }
                Err(e) => {
                    if !failing {
                        log::error!("Persistence: {e}");
                    }
                    failing = true;
                    shared.with_core(None, Broker::store_failing);
                }
            }
        }
        if stop {
            if failing {
                log::error!(
                    "Persistence: {} changes could not be written before shutdown.",
                    pending.len()
                );
            }
            return;
        }
    }
}
