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
//!
//! The file never shrinks by itself (redb reuses the pages it frees): at start-up, and
//! `persistence_compact_interval` after a write when the broker is not busy, a file that is
//! mostly free space is compacted ([`compact_if_sparse`]) — a store that once held a burst of
//! queued messages gives the space back without a restart. Acknowledgements wait meanwhile;
//! compaction copies only what the tables hold, a quarter of the file at most.

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

/// A store file at least this large, mostly free space, is compacted; smaller ones are not
/// worth the time.
const COMPACT_FROM: u64 = 8 << 20;

/// Compact `store` if it is large and mostly free space ([`Store::sparse`]), and say so, before
/// (acknowledgements wait meanwhile) and after.
pub(super) fn compact_if_sparse(store: &mut Store) {
    let before = match store.sparse(COMPACT_FROM) {
        Ok(Some(before)) => before,
        Ok(None) => return,
        Err(e) => return log::warn!("Persistence: could not compact: {e}"),
    };
    log::info!(
        "Persistence: compacting {} ({before} bytes, most of it free space).",
        store.path().display()
    );
    let compacting = Instant::now();
    match store.compact() {
        Ok(after) => log::info!(
            "Persistence: compacted {} from {before} to {after} bytes in {} ms (most of it was \
             free space).",
            store.path().display(),
            compacting.elapsed().as_millis()
        ),
        // (The store is as it was: redb compacts in transactions.)
        Err(e) => log::warn!("Persistence: could not compact: {e}"),
    }
}

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
    /// Start writing `store` for the broker behind `shared`; `compact_after` a write, the
    /// broker not busy, the file is compacted if it is mostly free space.
    pub(super) fn start(
        store: Store,
        doorbell: Arc<Doorbell>,
        shared: Weak<Shared>,
        mode: Persistence,
        interval: Duration,
        compact_after: Option<Duration>,
    ) -> std::io::Result<Writer> {
        let bell = Arc::clone(&doorbell);
        let thread = std::thread::Builder::new()
            .name("wren-store".into())
            .spawn(move || run(store, &bell, &shared, mode, interval, compact_after))?;
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
    compact_after: Option<Duration>,
) {
    // Changes taken but not written yet (kept while the store fails), and their last batch.
    let mut pending: Vec<Change> = Vec::new();
    let mut last_batch = 0u64;
    let mut failing = false;
    // When the last batch started, and whether it was a busy one (see `LINGER`).
    let mut last_start = Instant::now();
    let mut busy = false;
    // When the file is looked at for compaction: `compact_after` the first write since the
    // last look.
    let mut compact_at: Option<Instant> = None;
    loop {
        let timeout = if failing {
            Some(RETRY)
        } else if mode == Persistence::Periodic {
            Some(interval)
        } else {
            None
        };
        let timeout = match compact_at {
            Some(at) => {
                let left = at.saturating_duration_since(Instant::now());
                Some(timeout.map_or(left, |t| t.min(left)))
            }
            None => timeout,
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
        let mut took = 0;
        if let Some((batch, changes)) = shared.with_core(None, Broker::take_changes) {
            took = changes.len();
            busy = took >= BUSY_BATCH;
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
                    if compact_at.is_none() {
                        compact_at = compact_after.map(|after| Instant::now() + after);
                    }
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
        // (Not while busy: the acknowledgements would wait for it.)
        if !stop
            && !failing
            && took < BUSY_BATCH
            && compact_at.is_some_and(|at| at <= Instant::now())
        {
            compact_at = None;
            compact_if_sparse(&mut store);
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
