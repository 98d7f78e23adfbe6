//! The durable store: what the core's journal (`core/persist.rs`) records, kept in one redb
//! file (`persistence_location`/`persistence_file`) so that it survives a restart or a crash,
//! and given back at start-up ([`Store::recover`]).
//!
//! redb: a pure-Rust, single-file, copy-on-write B-tree store with ACID transactions; a commit
//! with `Durability::Immediate` is on disk when it returns (checksummed pages, one fsync per
//! commit), and a file left by a crash opens at its last commit. The shell writes each batch
//! of changes in one transaction (group commit: the changes of every connection since the last
//! commit, one fsync).
//!
//! Tables (keys are redb tuples, in order):
//! - `sessions`: client id → expiry interval, when its client disconnected;
//! - `subscriptions`: (client id, filter) → options;
//! - `queue`: (client id, key) → message id, QoS, RETAIN, state and packet id, identifiers —
//!   and the message itself when no other entry holds it (message id 0: one write, not two);
//! - `messages`: message id → a message several entries hold (stored once, however many
//!   queues hold it; deleted when none does — the counts are kept in memory, rebuilt by
//!   recovery);
//! - `awaiting_rel`: (client id, packet id) → (): incoming QoS 2 ids not yet released;
//! - `retained`: topic → the message;
//! - `wills`: client id → a will waiting for its Will Delay Interval, and when it is due;
//! - `connected_wills`: client id → the will of a connected client and its Will Delay
//!   Interval: recovery makes each a will waiting for that delay from the restart;
//! - `sent_up_to`: client id → the key up to which its QoS 1 messages were sent. A QoS 1
//!   message's state is not written per message (it would be one more write for each): a
//!   session sends its queue in key order, so the entries at or below this key that are still
//!   there were sent and not acknowledged — recovery puts them back in flight (re-sent with
//!   DUP, under new packet ids: their old ones are not kept). QoS 2 states are written per
//!   message: exactly-once needs the packet id;
//! - `meta`: the layout version.

mod queues;
mod records;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{
    Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};

use crate::core::{
    Change, Message, OutgoingState, Restored, RestoredEntry, RestoredSession, StoredEntry,
};
use queues::{DONE_BELOW, QOS2_STATE, SEGMENTS, TOMBSTONES};
use records::ReadMessage;

const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
const SESSIONS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("sessions");
const SUBSCRIPTIONS: TableDefinition<'static, (&str, &str), &[u8]> =
    TableDefinition::new("subscriptions");
const MESSAGES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("messages");
const AWAITING_REL: TableDefinition<'static, (&str, u16), ()> =
    TableDefinition::new("awaiting_rel");
const RETAINED: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("retained");
const WILLS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("wills");
const CONNECTED_WILLS: TableDefinition<'static, &str, &[u8]> =
    TableDefinition::new("connected_wills");
const SENT_UP_TO: TableDefinition<'static, &str, u64> = TableDefinition::new("sent_up_to");

/// Why the store cannot be opened or written, naming the file.
#[derive(Debug)]
pub struct StoreError {
    path: PathBuf,
    message: String,
}

impl StoreError {
    fn new(path: &Path, e: impl fmt::Display) -> StoreError {
        StoreError {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "persistence file {}: {}",
            self.path.display(),
            self.message
        )
    }
}

impl std::error::Error for StoreError {}

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Sessions restored.
    pub sessions: usize,
    /// Queued and in-flight messages restored (one per session holding one).
    pub messages: usize,
    /// Retained messages restored.
    pub retained: usize,
    /// Sessions whose expiry passed while the broker was down.
    pub expired_sessions: usize,
    /// Messages whose Message Expiry Interval passed while the broker was down.
    pub expired_messages: usize,
    /// Records that could not be read (damaged): named in the log, then deleted.
    pub unreadable: usize,
    /// Wills of clients that were connected when the broker stopped, now waiting for their
    /// delay.
    pub connected_wills: usize,
}

/// The open store (see the module documentation).
pub struct Store {
    /// The database; `None` after a write failed until it is opened again (redb refuses every
    /// write after an I/O error until then).
    db: Option<Database>,
    /// In memory (nothing to open again).
    in_memory: bool,
    path: PathBuf,
    /// How many queue entries hold each stored message.
    refs: HashMap<u64, u32>,
    /// What is on disk of each session's queue, by client id (see `queues.rs`).
    queues: HashMap<Box<[u8]>, queues::SessionQueue>,
    next_message_id: u64,
    /// Wall-clock milliseconds (Unix epoch) at broker time 0.
    wall_at_zero: u64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// Open (or create) the redb file at `path`. redb 2.6 asserts (panics) on some damaged files,
/// e.g. one cut short: caught, so that a damaged file is a refusal with a way out, never a
/// crash (or a crash loop). (Its panic message is not printed: the error says what happened.)
fn open_file(path: &Path) -> Result<Database, StoreError> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(|| Database::create(path));
    std::panic::set_hook(hook);
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(StoreError::new(
            path,
            "in use by another process (another wren-broker with the same \
             persistence_location?)",
        )),
        Ok(Err(e)) => Err(StoreError::new(path, damaged(&e.to_string()))),
        Err(_) => Err(StoreError::new(path, damaged("cut short or corrupted"))),
    }
}

/// The message for a file that cannot be opened: what is wrong, and the way out.
fn damaged(what: &str) -> String {
    format!(
        "cannot be read ({what}); the broker does not start on a damaged store. Move the file \
         away to start with an empty store (its sessions, queued and retained messages are then \
         lost), or put back a copy made while the broker was stopped"
    )
}

/// Milliseconds since the Unix epoch, now.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The QoS 1 messages of `session` sent up to key `up_to` and still there go back in flight,
/// under packet ids its QoS 2 messages in flight do not use (those that find none stay queued).
fn back_in_flight(session: &mut RestoredSession, up_to: u64) {
    let used: std::collections::HashSet<u16> = session
        .messages
        .iter()
        .filter_map(|m| m.entry.sent.map(|(pid, _)| pid))
        .collect();
    let mut free = (1..=u16::MAX).filter(|pid| !used.contains(pid));
    for m in &mut session.messages {
        if m.key <= up_to && m.entry.sent.is_none() && m.entry.qos == wren_codec::QoS::AtLeastOnce {
            let Some(pid) = free.next() else { return };
            m.entry.sent = Some((pid, OutgoingState::AwaitingPubAck));
        }
    }
}

/// `client_id` sent its QoS 1 messages up to `key` (see `sent_up_to`).
fn mark<'a>(marks: &mut Map<&'a str, u64>, client_id: &'a str, key: u64) {
    let m = marks.entry(client_id).or_insert(0);
    *m = (*m).max(key);
}

/// The writer's own maps (keys it made itself: no hash flooding to fear).
type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::FixedState>;

/// One session's queue changes in a batch (see `queues.rs`).
#[derive(Default)]
struct Batch {
    /// The segment of the messages queued (see `queues::append`), written as they come.
    segment: records::Writer,
    /// Their keys and what the index keeps of them.
    queued: Vec<(u64, queues::Live)>,
    /// Keys done.
    done: Vec<u64>,
}

impl Store {
    /// Open (or create) the store file at `path`. A file another process holds, one that is not
    /// a store, or a damaged one is refused with a message saying so.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::new(path, e))?;
        }
        Ok(Store::on(open_file(path)?, path, false))
    }

    /// A store on the opened database `db`, before recovery.
    fn on(db: Database, path: &Path, in_memory: bool) -> Store {
        Store {
            db: Some(db),
            in_memory,
            path: path.to_path_buf(),
            refs: HashMap::new(),
            queues: HashMap::new(),
            next_message_id: 1,
            wall_at_zero: wall_ms(),
        }
    }

    /// A store in memory (redb's in-memory backend): the same code without a file, for the
    /// fuzz target and tests that write many batches.
    pub fn in_memory() -> Result<Store, StoreError> {
        let path = Path::new("(memory)");
        let db = Database::builder()
            .set_cache_size(1 << 20)
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| StoreError::new(path, e))?;
        Ok(Store::on(db, path, true))
    }

    /// Delete everything, as if the store were new (the fuzz target reuses one in-memory store
    /// across its inputs: making one costs milliseconds, this microseconds).
    pub fn clear(&mut self) -> Result<(), StoreError> {
        let txn = self.db()?.begin_write().map_err(|e| self.err(e))?;
        let e = |x: redb::TableError| StoreError::new(&self.path, x);
        txn.delete_table(META).map_err(e)?;
        txn.delete_table(SESSIONS).map_err(e)?;
        txn.delete_table(SUBSCRIPTIONS).map_err(e)?;
        txn.delete_table(MESSAGES).map_err(e)?;
        txn.delete_table(AWAITING_REL).map_err(e)?;
        txn.delete_table(RETAINED).map_err(e)?;
        txn.delete_table(WILLS).map_err(e)?;
        txn.delete_table(CONNECTED_WILLS).map_err(e)?;
        txn.delete_table(SENT_UP_TO).map_err(e)?;
        txn.delete_table(SEGMENTS).map_err(e)?;
        txn.delete_table(DONE_BELOW).map_err(e)?;
        txn.delete_table(TOMBSTONES).map_err(e)?;
        txn.delete_table(QOS2_STATE).map_err(e)?;
        txn.commit().map_err(|e| self.err(e))?;
        self.refs.clear();
        self.queues.clear();
        self.next_message_id = 1;
        self.wall_at_zero = wall_ms();
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The database, opened again first if a write failed (a full disk: redb refuses every
    /// write after an I/O error until the file is opened again).
    fn db(&mut self) -> Result<&Database, StoreError> {
        if self.db.is_none() {
            let db = open_file(&self.path)?;
            self.db = Some(db);
            self.index_from_disk()?;
        }
        self.db.as_ref().ok_or_else(|| self.err("not open"))
    }

    fn err(&self, e: impl fmt::Display) -> StoreError {
        StoreError::new(&self.path, e)
    }

    /// The file's size if it is at least `min_bytes` and mostly free space, which
    /// [`Store::compact`] would give back: redb reuses the pages it frees but never shrinks its
    /// file, so a store that once held a million queued messages would keep their size.
    pub fn sparse(&mut self, min_bytes: u64) -> Result<Option<u64>, StoreError> {
        if self.in_memory {
            return Ok(None);
        }
        let size = file_size(&self.path)?;
        if size < min_bytes {
            return Ok(None);
        }
        // What the tables hold (the pages freed by the last commit are only counted free after
        // the next, so allocated pages say little); a file four times that is mostly free space
        // (redb's own overhead stays well under that: about 3x for a store of queued messages).
        let live = {
            let txn = self.db()?.begin_write().map_err(|e| self.err(e))?;
            let stats = txn.stats().map_err(|e| self.err(e))?;
            txn.abort().map_err(|e| self.err(e))?;
            stats.stored_bytes().saturating_add(stats.metadata_bytes())
        };
        Ok((live.saturating_mul(4) <= size).then_some(size))
    }

    /// Give the file back its free space (in transactions: a crash leaves it as it was or
    /// compacted); returns its new size. Needs the store to itself (the writer thread's).
    pub fn compact(&mut self) -> Result<u64, StoreError> {
        let path = self.path.clone();
        let db = self
            .db
            .as_mut()
            .ok_or_else(|| StoreError::new(&path, "not open"))?;
        db.compact().map_err(|e| StoreError::new(&path, e))?;
        file_size(&path)
    }

    /// Read everything back for a broker whose time 0 is now, counting expiry intervals down by
    /// the time since it was written; what expired or cannot be read is deleted.
    pub fn recover(&mut self) -> Result<(Restored, RecoveryReport), StoreError> {
        self.wall_at_zero = wall_ms();
        let now_wall = self.wall_at_zero;
        let mut report = RecoveryReport::default();
        let mut restored = Restored {
            next_key: 1,
            ..Restored::default()
        };
        let txn = self.db()?.begin_write().map_err(|e| self.err(e))?;
        let result = self.recover_in(&txn, now_wall, &mut report, &mut restored);
        match result {
            Ok(()) => txn.commit().map_err(|e| self.err(e))?,
            Err(e) => {
                let _ = txn.abort();
                return Err(e);
            }
        }
        self.index_from_disk()?;
        Ok((restored, report))
    }

    fn recover_in(
        &mut self,
        txn: &WriteTransaction,
        now_wall: u64,
        report: &mut RecoveryReport,
        restored: &mut Restored,
    ) -> Result<(), StoreError> {
        let e = |e: redb::Error| StoreError::new(&self.path, e);
        let mut meta = txn.open_table(META).map_err(|x| e(x.into()))?;
        let format = meta
            .get("format")
            .map_err(|x| e(x.into()))?
            .map(|v| v.value());
        match format {
            Some(f) if f > records::FORMAT => {
                return Err(self.err(format!(
                    "written by a later wren-broker (layout {f}, this one reads {})",
                    records::FORMAT
                )));
            }
            Some(_) => {}
            None => {
                meta.insert("format", records::FORMAT)
                    .map_err(|x| e(x.into()))?;
            }
        }
        drop(meta);

        // Messages first: the queues refer to them.
        let mut messages: HashMap<u64, Option<Arc<Message>>> = HashMap::new();
        let mut delete_messages = Vec::new();
        {
            let table = txn.open_table(MESSAGES).map_err(|x| e(x.into()))?;
            for row in table.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                let id = k.value();
                self.next_message_id = self.next_message_id.max(id.saturating_add(1));
                match records::read_message(v.value(), now_wall, 0) {
                    Some(ReadMessage::Live(m)) => {
                        m.set_store_id(id);
                        messages.insert(id, Some(m));
                    }
                    Some(ReadMessage::Expired) => {
                        messages.insert(id, None);
                    }
                    None => {
                        report.unreadable += 1;
                        log::error!("Persistence: stored message {id} is damaged: not restored.");
                        delete_messages.push(id);
                    }
                }
            }
        }

        // Sessions, expiry counted down by the time the broker was down.
        let mut sessions: BTreeMap<String, RestoredSession> = BTreeMap::new();
        let mut gone: Vec<String> = Vec::new();
        {
            let table = txn.open_table(SESSIONS).map_err(|x| e(x.into()))?;
            for row in table.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                let client_id = k.value().to_owned();
                let Some((expiry, disconnected_at)) = records::read_session(v.value()) else {
                    report.unreadable += 1;
                    log::error!("Persistence: session of {client_id} is damaged: not restored.");
                    gone.push(client_id);
                    continue;
                };
                // A client connected when the broker stopped: its expiry counts from now.
                let left_ms = if expiry == u32::MAX {
                    u64::MAX
                } else {
                    let interval = u64::from(expiry).saturating_mul(1000);
                    let away = match disconnected_at {
                        0 => 0,
                        at => now_wall.saturating_sub(at),
                    };
                    interval.saturating_sub(away)
                };
                if left_ms == 0 {
                    report.expired_sessions += 1;
                    log::info!("Session of client {client_id} expired while the broker was down.");
                    gone.push(client_id);
                    continue;
                }
                sessions.insert(
                    client_id.clone(),
                    RestoredSession {
                        client_id: client_id.as_str().into(),
                        expiry_interval: expiry,
                        expires_in_ms: left_ms,
                        subscriptions: Vec::new(),
                        messages: Vec::new(),
                        awaiting_rel: Vec::new(),
                    },
                );
            }
        }
        {
            let mut table = txn.open_table(SESSIONS).map_err(|x| e(x.into()))?;
            for c in &gone {
                table.remove(c.as_str()).map_err(|x| e(x.into()))?;
            }
        }

        // Subscriptions.
        let mut delete_subs: Vec<(String, String)> = Vec::new();
        {
            let table = txn.open_table(SUBSCRIPTIONS).map_err(|x| e(x.into()))?;
            for row in table.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                let (client, filter) = k.value();
                let sub = records::read_sub(v.value());
                match (sessions.get_mut(client), sub) {
                    (Some(s), Some(sub)) => s.subscriptions.push((filter.into(), sub)),
                    (Some(_), None) => {
                        report.unreadable += 1;
                        log::error!(
                            "Persistence: subscription {filter} of {client} is damaged: not restored."
                        );
                        delete_subs.push((client.to_owned(), filter.to_owned()));
                    }
                    (None, _) => delete_subs.push((client.to_owned(), filter.to_owned())),
                }
            }
        }
        {
            let mut table = txn.open_table(SUBSCRIPTIONS).map_err(|x| e(x.into()))?;
            for (c, f) in &delete_subs {
                table
                    .remove((c.as_str(), f.as_str()))
                    .map_err(|x| e(x.into()))?;
            }
        }

        // Queues (see `queues.rs`): the marks, tombstones and QoS 2 states, then the segments
        // in key order within each session.
        let mut below: HashMap<Vec<u8>, u64> = HashMap::new();
        let mut tombs: std::collections::HashSet<(Vec<u8>, u64)> = Default::default();
        let mut states: HashMap<(Vec<u8>, u64), (u16, OutgoingState)> = HashMap::new();
        {
            let t = txn.open_table(DONE_BELOW).map_err(|x| e(x.into()))?;
            for row in t.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                below.insert(k.value().to_vec(), v.value());
            }
            let t = txn.open_table(TOMBSTONES).map_err(|x| e(x.into()))?;
            for row in t.iter().map_err(|x| e(x.into()))? {
                let (k, _) = row.map_err(|x| e(x.into()))?;
                let (c, key) = k.value();
                tombs.insert((c.to_vec(), key));
            }
            let t = txn.open_table(QOS2_STATE).map_err(|x| e(x.into()))?;
            for row in t.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                let (c, key) = k.value();
                if let Some(state) = queues::read_qos2_state(v.value()) {
                    states.insert((c.to_vec(), key), state);
                }
            }
        }
        // Segments to delete (their session is gone, or nothing in them is live), and messages
        // dropped now (expired while the broker was down, or damaged): tombstones.
        let mut delete_segments: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut dropped: Vec<(Vec<u8>, u64)> = Vec::new();
        {
            let table = txn.open_table(SEGMENTS).map_err(|x| e(x.into()))?;
            for row in table.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                let (client_bytes, first) = k.value();
                let client = String::from_utf8_lossy(client_bytes);
                let Some(s) = sessions.get_mut(&*client) else {
                    delete_segments.push((client_bytes.to_vec(), first));
                    continue;
                };
                let Some(entries) = queues::read_segment(v.value()) else {
                    report.unreadable += 1;
                    log::error!("Persistence: messages queued for {client} are damaged.");
                    delete_segments.push((client_bytes.to_vec(), first));
                    continue;
                };
                let mark = below.get(client_bytes).copied().unwrap_or(0);
                let mut live = 0usize;
                for (key, entry) in entries {
                    restored.next_key = restored.next_key.max(key.saturating_add(1));
                    if key < mark || tombs.contains(&(client_bytes.to_vec(), key)) {
                        continue;
                    }
                    let Some(mut record) = records::read_entry(entry) else {
                        report.unreadable += 1;
                        log::error!("Persistence: queued message {key} of {client} is damaged.");
                        dropped.push((client_bytes.to_vec(), key));
                        continue;
                    };
                    let message = match record.inline.take() {
                        Some(body) => match records::read_message(&body, now_wall, 0) {
                            Some(ReadMessage::Live(m)) => Some(Some(m)),
                            Some(ReadMessage::Expired) => Some(None),
                            None => None,
                        },
                        None => messages.get(&record.message_id).cloned(),
                    };
                    match message {
                        Some(Some(m)) => {
                            if record.message_id != 0 {
                                *self.refs.entry(record.message_id).or_insert(0) += 1;
                            }
                            if let Some(state) = states.get(&(client_bytes.to_vec(), key)) {
                                record.sent = Some(*state);
                            }
                            report.messages += 1;
                            live += 1;
                            s.messages.push(RestoredEntry {
                                key,
                                entry: record.with(m),
                            });
                        }
                        Some(None) => {
                            report.expired_messages += 1;
                            dropped.push((client_bytes.to_vec(), key));
                        }
                        None => {
                            report.unreadable += 1;
                            log::error!(
                                "Persistence: queued message {key} of {client} has lost its body."
                            );
                            dropped.push((client_bytes.to_vec(), key));
                        }
                    }
                }
                if live == 0 {
                    delete_segments.push((client_bytes.to_vec(), first));
                }
            }
        }
        {
            let mut segments = txn.open_table(SEGMENTS).map_err(|x| e(x.into()))?;
            for (c, first) in &delete_segments {
                segments
                    .remove((c.as_slice(), *first))
                    .map_err(|x| e(x.into()))?;
            }
            let mut t = txn.open_table(TOMBSTONES).map_err(|x| e(x.into()))?;
            for (c, key) in &dropped {
                t.insert((c.as_slice(), *key), ())
                    .map_err(|x| e(x.into()))?;
            }
            // What sessions that are gone left behind.
            let gone = |c: &[u8]| !sessions.contains_key(&*String::from_utf8_lossy(c));
            t.retain(|(c, _), _| !gone(c)).map_err(|x| e(x.into()))?;
            let mut t = txn.open_table(QOS2_STATE).map_err(|x| e(x.into()))?;
            t.retain(|(c, _), _| !gone(c)).map_err(|x| e(x.into()))?;
            let mut t = txn.open_table(DONE_BELOW).map_err(|x| e(x.into()))?;
            t.retain(|c, _| !gone(c)).map_err(|x| e(x.into()))?;
        }
        // QoS 1 messages sent and not acknowledged: in flight again (see `sent_up_to`).
        let mut delete_marks: Vec<String> = Vec::new();
        {
            let table = txn.open_table(SENT_UP_TO).map_err(|x| e(x.into()))?;
            for row in table.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                match sessions.get_mut(k.value()) {
                    Some(s) => back_in_flight(s, v.value()),
                    None => delete_marks.push(k.value().to_owned()),
                }
            }
        }
        {
            let mut table = txn.open_table(SENT_UP_TO).map_err(|x| e(x.into()))?;
            for c in &delete_marks {
                table.remove(c.as_str()).map_err(|x| e(x.into()))?;
            }
        }
        // Messages no queue holds any more (expired, or left by a damaged entry).
        {
            let mut table = txn.open_table(MESSAGES).map_err(|x| e(x.into()))?;
            for id in messages.keys().filter(|id| !self.refs.contains_key(id)) {
                table.remove(*id).map_err(|x| e(x.into()))?;
            }
            for id in &delete_messages {
                table.remove(*id).map_err(|x| e(x.into()))?;
            }
        }

        // Incoming QoS 2 ids awaiting PUBREL.
        let mut delete_rel: Vec<(String, u16)> = Vec::new();
        {
            let table = txn.open_table(AWAITING_REL).map_err(|x| e(x.into()))?;
            for row in table.iter().map_err(|x| e(x.into()))? {
                let (k, _) = row.map_err(|x| e(x.into()))?;
                let (client, pid) = k.value();
                match sessions.get_mut(client) {
                    Some(s) => s.awaiting_rel.push(pid),
                    None => delete_rel.push((client.to_owned(), pid)),
                }
            }
        }
        {
            let mut table = txn.open_table(AWAITING_REL).map_err(|x| e(x.into()))?;
            for (c, p) in &delete_rel {
                table.remove((c.as_str(), *p)).map_err(|x| e(x.into()))?;
            }
        }

        // Retained messages.
        let mut delete_retained: Vec<String> = Vec::new();
        {
            let table = txn.open_table(RETAINED).map_err(|x| e(x.into()))?;
            for row in table.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                match records::read_message(v.value(), now_wall, 0) {
                    Some(ReadMessage::Live(m)) => {
                        report.retained += 1;
                        restored.retained.push(m);
                    }
                    Some(ReadMessage::Expired) => {
                        report.expired_messages += 1;
                        delete_retained.push(k.value().to_owned());
                    }
                    None => {
                        report.unreadable += 1;
                        log::error!(
                            "Persistence: retained message of {} is damaged: not restored.",
                            k.value()
                        );
                        delete_retained.push(k.value().to_owned());
                    }
                }
            }
        }
        {
            let mut table = txn.open_table(RETAINED).map_err(|x| e(x.into()))?;
            for t in &delete_retained {
                table.remove(t.as_str()).map_err(|x| e(x.into()))?;
            }
        }
        // Wills waiting for their delay (due now if the delay passed while the broker was down).
        let mut delete_wills: Vec<String> = Vec::new();
        {
            let table = txn.open_table(WILLS).map_err(|x| e(x.into()))?;
            for row in table.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                let client = k.value();
                let bytes = v.value();
                let due = bytes
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes);
                let message = bytes
                    .get(8..)
                    .and_then(|b| records::read_message(b, now_wall, 0));
                match (due, message) {
                    (Some(due), Some(ReadMessage::Live(m))) => {
                        restored
                            .wills
                            .push((client.into(), m, due.saturating_sub(now_wall)));
                    }
                    (Some(_), Some(ReadMessage::Expired)) => {
                        report.expired_messages += 1;
                        delete_wills.push(client.to_owned());
                    }
                    _ => {
                        report.unreadable += 1;
                        log::error!("Persistence: the will of {client} is damaged: not restored.");
                        delete_wills.push(client.to_owned());
                    }
                }
            }
        }
        {
            let mut table = txn.open_table(WILLS).map_err(|x| e(x.into()))?;
            for c in &delete_wills {
                table.remove(c.as_str()).map_err(|x| e(x.into()))?;
            }
        }
        // Wills of clients connected when the broker stopped: due their delay from now, kept
        // as such (moved to `wills` in this transaction).
        let mut moved: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        {
            let table = txn.open_table(CONNECTED_WILLS).map_err(|x| e(x.into()))?;
            for row in table.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                let client = k.value();
                let bytes = v.value();
                let delay_ms = bytes
                    .get(..4)
                    .and_then(|b| b.try_into().ok())
                    .map(|b| u64::from(u32::from_le_bytes(b)).saturating_mul(1000));
                let body = bytes.get(4..).unwrap_or_default();
                match (delay_ms, records::read_message(body, now_wall, 0)) {
                    (Some(delay_ms), Some(ReadMessage::Live(m))) => {
                        // (A will of an earlier connection, waiting for its delay, is replaced:
                        // that connection ended before this one began.)
                        restored.wills.retain(|(c, _, _)| &**c != client);
                        restored.wills.push((client.into(), m, delay_ms));
                        report.connected_wills += 1;
                        let mut will = now_wall.saturating_add(delay_ms).to_le_bytes().to_vec();
                        will.extend_from_slice(body);
                        moved.push((client.to_owned(), Some(will)));
                    }
                    (Some(_), Some(ReadMessage::Expired)) => {
                        report.expired_messages += 1;
                        moved.push((client.to_owned(), None));
                    }
                    _ => {
                        report.unreadable += 1;
                        log::error!("Persistence: the will of {client} is damaged: not restored.");
                        moved.push((client.to_owned(), None));
                    }
                }
            }
        }
        if !moved.is_empty() {
            let mut connected = txn.open_table(CONNECTED_WILLS).map_err(|x| e(x.into()))?;
            let mut wills = txn.open_table(WILLS).map_err(|x| e(x.into()))?;
            for (client, will) in &moved {
                connected.remove(client.as_str()).map_err(|x| e(x.into()))?;
                if let Some(will) = will {
                    wills
                        .insert(client.as_str(), will.as_slice())
                        .map_err(|x| e(x.into()))?;
                }
            }
        }
        report.sessions = sessions.len();
        restored.sessions = sessions.into_values().collect();
        Ok(())
    }

    /// Write a batch of changes in one transaction, on disk when this returns `Ok`. On an error
    /// nothing of the batch is written (the caller keeps it and tries again).
    pub fn write(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let result = self.write_in(changes);
        if result.is_err() {
            // The transaction was dropped (aborted). A file is opened again before the next
            // write (which rebuilds the index from what is on disk); in memory, the index is
            // rebuilt now.
            if self.in_memory {
                if let Err(e) = self.index_from_disk() {
                    log::error!("Persistence: {e}");
                }
            } else {
                self.db = None;
            }
        }
        result
    }

    fn write_in(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let e = |x: redb::Error| StoreError::new(&path, x);
        // A message queued and acknowledged within the batch is never written; one queued and
        // then sent is written in its last state; a state change followed by the
        // acknowledgement in the same batch is not written either.
        let mut queued_here: Map<u64, usize> = Map::default();
        let mut sent_here: Map<u64, usize> = Map::default();
        let mut skip = vec![false; changes.len()];
        let mut last_sent: Map<u64, (u16, OutgoingState)> = Map::default();
        let skip_at = |skip: &mut Vec<bool>, at: usize| {
            if let Some(s) = skip.get_mut(at) {
                *s = true;
            }
        };
        for (i, c) in changes.iter().enumerate() {
            match c {
                Change::Enqueued { key, .. } => {
                    queued_here.insert(*key, i);
                }
                Change::Sent {
                    key, pid, state, ..
                } => {
                    if queued_here.contains_key(key) {
                        last_sent.insert(*key, (*pid, *state));
                        skip_at(&mut skip, i);
                    } else if let Some(earlier) = sent_here.insert(*key, i) {
                        skip_at(&mut skip, earlier);
                    }
                }
                Change::Done { key, .. } => {
                    if let Some(first) = queued_here.remove(key) {
                        skip_at(&mut skip, first);
                        skip_at(&mut skip, i);
                    }
                    if let Some(sent) = sent_here.remove(key) {
                        skip_at(&mut skip, sent);
                    }
                }
                _ => {}
            }
        }
        // Messages not stored yet, by how many entries of this batch hold them: one held by a
        // single entry is written inline, in the entry.
        let mut holders: Map<*const Message, u32> = Map::default();
        for (i, c) in changes.iter().enumerate() {
            if let Change::Enqueued { entry, .. } = c
                && !skip.get(i).copied().unwrap_or(true)
                && entry.message.store_id() == 0
            {
                *holders.entry(Arc::as_ptr(&entry.message)).or_insert(0) += 1;
            }
        }
        let mut txn = self.db()?.begin_write().map_err(|x| e(x.into()))?;
        txn.set_durability(Durability::Immediate);
        {
            let mut sessions = txn.open_table(SESSIONS).map_err(|x| e(x.into()))?;
            let mut subs = txn.open_table(SUBSCRIPTIONS).map_err(|x| e(x.into()))?;
            let mut segments = txn.open_table(SEGMENTS).map_err(|x| e(x.into()))?;
            let mut done_below = txn.open_table(DONE_BELOW).map_err(|x| e(x.into()))?;
            let mut tombstones = txn.open_table(TOMBSTONES).map_err(|x| e(x.into()))?;
            let mut qos2 = txn.open_table(QOS2_STATE).map_err(|x| e(x.into()))?;
            let mut messages = txn.open_table(MESSAGES).map_err(|x| e(x.into()))?;
            let mut rel = txn.open_table(AWAITING_REL).map_err(|x| e(x.into()))?;
            let mut retained = txn.open_table(RETAINED).map_err(|x| e(x.into()))?;
            let mut wills = txn.open_table(WILLS).map_err(|x| e(x.into()))?;
            let mut connected_wills = txn.open_table(CONNECTED_WILLS).map_err(|x| e(x.into()))?;
            let mut sent_up_to = txn.open_table(SENT_UP_TO).map_err(|x| e(x.into()))?;
            // Each session's highest QoS 1 key sent in this batch, written once at the end.
            let mut marks: Map<&str, u64> = Map::default();
            // Each session's messages queued and done in this batch, written at the end: one
            // segment, the mark, tombstones (see `queues.rs`).
            let mut batch: Map<&str, Batch> = Map::default();
            for (i, change) in changes.iter().enumerate() {
                if skip.get(i).copied().unwrap_or(false) {
                    continue;
                }
                match change {
                    Change::Session {
                        client_id,
                        expiry_interval,
                        disconnected_at,
                    } => {
                        let at = disconnected_at.map_or(0, |t| self.wall_at_zero.saturating_add(t));
                        sessions
                            .insert(&**client_id, &*records::session(*expiry_interval, at))
                            .map_err(|x| e(x.into()))?;
                    }
                    Change::SessionGone { client_id } => {
                        let c: &str = client_id;
                        sessions.remove(c).map_err(|x| e(x.into()))?;
                        marks.remove(c);
                        sent_up_to.remove(c).map_err(|x| e(x.into()))?;
                        let filters: Vec<String> = subs
                            .range((c, "")..)
                            .map_err(|x| e(x.into()))?
                            .map_while(|r| {
                                let (k, _) = r.ok()?;
                                let (client, filter) = k.value();
                                (client == c).then(|| filter.to_owned())
                            })
                            .collect();
                        for f in &filters {
                            subs.remove((c, f.as_str())).map_err(|x| e(x.into()))?;
                        }
                        batch.remove(c);
                        let cb = c.as_bytes();
                        if let Some(q) = self.queues.remove(cb) {
                            for live in q.live.values().filter(|l| l.message_id != 0) {
                                self.release(&mut messages, live.message_id)
                                    .map_err(|x| e(x.into()))?;
                            }
                        }
                        let all = (cb, 0u64)..=(cb, u64::MAX);
                        segments
                            .retain_in(all.clone(), |_, _| false)
                            .map_err(|x| e(x.into()))?;
                        tombstones
                            .retain_in(all.clone(), |_, _| false)
                            .map_err(|x| e(x.into()))?;
                        qos2.retain_in(all, |_, _| false).map_err(|x| e(x.into()))?;
                        done_below.remove(cb).map_err(|x| e(x.into()))?;
                        rel.retain_in((c, 0u16)..=(c, u16::MAX), |_, _| false)
                            .map_err(|x| e(x.into()))?;
                    }
                    Change::Subscribed {
                        client_id,
                        filter,
                        sub,
                    } => {
                        subs.insert((&**client_id, &**filter), &*records::sub(sub))
                            .map_err(|x| e(x.into()))?;
                    }
                    Change::Unsubscribed { client_id, filter } => {
                        subs.remove((&**client_id, &**filter))
                            .map_err(|x| e(x.into()))?;
                    }
                    Change::Enqueued {
                        client_id,
                        key,
                        entry,
                    } => {
                        let sent = last_sent.get(key).copied().or(entry.sent);
                        let stored;
                        let entry = match sent {
                            // QoS 1: the key is the state (see `sent_up_to`).
                            Some((_, OutgoingState::AwaitingPubAck)) => {
                                mark(&mut marks, client_id, *key);
                                stored = StoredEntry {
                                    sent: None,
                                    ..entry.clone()
                                };
                                &stored
                            }
                            _ if sent != entry.sent => {
                                stored = StoredEntry {
                                    sent,
                                    ..entry.clone()
                                };
                                &stored
                            }
                            _ => entry,
                        };
                        let alone = entry.message.store_id() == 0
                            && holders.get(&Arc::as_ptr(&entry.message)) == Some(&1);
                        let id = if alone {
                            0
                        } else {
                            self.hold(&mut messages, &entry.message)
                                .map_err(|x| e(x.into()))?
                        };
                        let is_qos2 = entry.qos == wren_codec::QoS::ExactlyOnce;
                        if let Some((pid, state)) = entry.sent.filter(|_| is_qos2) {
                            qos2.insert(
                                (client_id.as_bytes(), *key),
                                &queues::qos2_state(pid, state)[..],
                            )
                            .map_err(|x| e(x.into()))?;
                        }
                        let received = self.received(&entry.message);
                        let b = batch.entry(&**client_id).or_default();
                        queues::append(&mut b.segment, *key, |w| {
                            records::entry_into(w, id, entry, |w| {
                                w.sized(|w| records::message_into(w, &entry.message, received));
                            });
                        });
                        b.queued.push((
                            *key,
                            queues::Live {
                                message_id: id,
                                qos2: is_qos2,
                            },
                        ));
                    }
                    Change::Sent {
                        client_id,
                        key,
                        state: OutgoingState::AwaitingPubAck,
                        ..
                    } => mark(&mut marks, client_id, *key),
                    Change::Sent {
                        client_id,
                        key,
                        pid,
                        state,
                    } => {
                        qos2.insert(
                            (client_id.as_bytes(), *key),
                            &queues::qos2_state(*pid, *state)[..],
                        )
                        .map_err(|x| e(x.into()))?;
                    }
                    Change::Done { client_id, key } => {
                        batch.entry(&**client_id).or_default().done.push(*key);
                    }
                    Change::AwaitingRel { client_id, pid } => {
                        rel.insert((&**client_id, *pid), ())
                            .map_err(|x| e(x.into()))?;
                    }
                    Change::Released { client_id, pid } => {
                        rel.remove((&**client_id, *pid)).map_err(|x| e(x.into()))?;
                    }
                    Change::Will { client_id, will } => match will {
                        Some((m, due)) => {
                            let received = m.expiry().map(|(_, at)| self.wall_at_zero + at);
                            let mut value = self
                                .wall_at_zero
                                .saturating_add(*due)
                                .to_le_bytes()
                                .to_vec();
                            value.extend_from_slice(&records::message(m, received));
                            wills
                                .insert(&**client_id, &*value)
                                .map_err(|x| e(x.into()))?;
                        }
                        None => {
                            wills.remove(&**client_id).map_err(|x| e(x.into()))?;
                        }
                    },
                    Change::Retained { topic, message } => match message {
                        Some(m) => {
                            retained
                                .insert(&**topic, &*records::message(m, self.received(m)))
                                .map_err(|x| e(x.into()))?;
                        }
                        None => {
                            retained.remove(&**topic).map_err(|x| e(x.into()))?;
                        }
                    },
                    Change::ConnectedWill { client_id, will } => match will {
                        Some((m, delay)) => {
                            let received = m.expiry().map(|(_, at)| self.wall_at_zero + at);
                            let mut value = delay.to_le_bytes().to_vec();
                            value.extend_from_slice(&records::message(m, received));
                            connected_wills
                                .insert(&**client_id, &*value)
                                .map_err(|x| e(x.into()))?;
                        }
                        None => {
                            connected_wills
                                .remove(&**client_id)
                                .map_err(|x| e(x.into()))?;
                        }
                    },
                    Change::Void => {}
                }
            }
            for (client_id, key) in marks {
                sent_up_to.insert(client_id, key).map_err(|x| e(x.into()))?;
            }
            for (client_id, b) in batch {
                let cb = client_id.as_bytes();
                let q = self.queues.entry(cb.into()).or_default();
                if let Some(&(first, _)) = b.queued.first() {
                    segments
                        .insert((cb, first), &*b.segment.0)
                        .map_err(|x| e(x.into()))?;
                    q.segments
                        .insert(first, u32::try_from(b.queued.len()).unwrap_or(u32::MAX));
                    for (k, live) in &b.queued {
                        q.live.insert(*k, *live);
                        q.next_key = q.next_key.max(k.saturating_add(1));
                    }
                }
                let mut released = Vec::new();
                let mut done_here = Vec::new();
                for k in &b.done {
                    let Some((live, empty)) = q.done(*k) else {
                        continue;
                    };
                    done_here.push(*k);
                    if live.message_id != 0 {
                        released.push(live.message_id);
                    }
                    if live.qos2 {
                        qos2.remove((cb, *k)).map_err(|x| e(x.into()))?;
                    }
                    if let Some(first) = empty {
                        segments.remove((cb, first)).map_err(|x| e(x.into()))?;
                    }
                }
                let mark = q.mark();
                if mark != q.done_below {
                    done_below.insert(cb, mark).map_err(|x| e(x.into()))?;
                    q.done_below = mark;
                    let below: Vec<u64> = q.tombstones.range(..mark).copied().collect();
                    for t in below {
                        q.tombstones.remove(&t);
                        tombstones.remove((cb, t)).map_err(|x| e(x.into()))?;
                    }
                }
                // Done out of order, above the mark: a tombstone says so.
                for k in done_here.into_iter().filter(|&k| k >= mark) {
                    q.tombstones.insert(k);
                    tombstones.insert((cb, k), ()).map_err(|x| e(x.into()))?;
                }
                for id in released {
                    self.release(&mut messages, id).map_err(|x| e(x.into()))?;
                }
            }
        }
        txn.commit().map_err(|x| e(x.into()))?;
        Ok(())
    }

    /// A queue entry holds `message`: stored now if no entry held it yet. Returns its id.
    fn hold(
        &mut self,
        table: &mut redb::Table<'_, u64, &[u8]>,
        message: &Arc<Message>,
    ) -> Result<u64, redb::StorageError> {
        let mut id = message.store_id();
        if id == 0 {
            id = self.next_message_id;
            self.next_message_id = self.next_message_id.saturating_add(1);
            message.set_store_id(id);
        }
        if !self.refs.contains_key(&id) {
            table.insert(id, &*records::message(message, self.received(message)))?;
        }
        *self.refs.entry(id).or_insert(0) += 1;
        Ok(id)
    }

    /// When `message` was received, in wall-clock ms, if its expiry counts from it.
    fn received(&self, message: &Message) -> Option<u64> {
        message
            .expiry()
            .map(|(_, at)| self.wall_at_zero.saturating_add(at))
    }

    /// A queue entry no longer holds message `id`: deleted when none does.
    fn release(
        &mut self,
        table: &mut redb::Table<'_, u64, &[u8]>,
        id: u64,
    ) -> Result<(), redb::StorageError> {
        match self.refs.get_mut(&id) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                self.refs.remove(&id);
                table.remove(id)?;
            }
        }
        Ok(())
    }

    /// Rebuild the writer's index of the queues and the message counts from the file (after
    /// recovery, and after a write that failed).
    fn index_from_disk(&mut self) -> Result<(), StoreError> {
        let txn = self
            .db
            .as_ref()
            .ok_or_else(|| self.err("not open"))?
            .begin_read()
            .map_err(|e| self.err(e))?;
        let e = |x: redb::Error| StoreError::new(&self.path, x);
        let mut index: HashMap<Box<[u8]>, queues::SessionQueue> = HashMap::new();
        let mut refs: HashMap<u64, u32> = HashMap::new();
        {
            let t = txn.open_table(DONE_BELOW).map_err(|x| e(x.into()))?;
            for row in t.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                index.entry(k.value().into()).or_default().done_below = v.value();
            }
            let t = txn.open_table(TOMBSTONES).map_err(|x| e(x.into()))?;
            for row in t.iter().map_err(|x| e(x.into()))? {
                let (k, _) = row.map_err(|x| e(x.into()))?;
                let (c, key) = k.value();
                index.entry(c.into()).or_default().tombstones.insert(key);
            }
            let t = txn.open_table(SEGMENTS).map_err(|x| e(x.into()))?;
            for row in t.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                let (c, first) = k.value();
                let q = index.entry(c.into()).or_default();
                let mut count = 0u32;
                for (key, entry) in queues::read_segment(v.value()).unwrap_or_default() {
                    q.next_key = q.next_key.max(key.saturating_add(1));
                    if key < q.done_below || q.tombstones.contains(&key) {
                        continue;
                    }
                    let Some(r) = records::read_entry(entry) else {
                        continue;
                    };
                    if r.message_id != 0 {
                        *refs.entry(r.message_id).or_insert(0) += 1;
                    }
                    q.live.insert(
                        key,
                        queues::Live {
                            message_id: r.message_id,
                            qos2: r.qos == wren_codec::QoS::ExactlyOnce,
                        },
                    );
                    count += 1;
                }
                q.segments.insert(first, count);
            }
        }
        self.queues = index;
        self.refs = refs;
        Ok(())
    }

    /// Bytes of the file.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Stored messages (for tests and the recovery log).
    pub fn stored_messages(&self) -> Result<u64, StoreError> {
        let txn = self
            .db
            .as_ref()
            .ok_or_else(|| self.err("not open"))?
            .begin_read()
            .map_err(|e| self.err(e))?;
        let table = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }
}

/// The length of the file at `path`.
fn file_size(path: &Path) -> Result<u64, StoreError> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| StoreError::new(path, e))
}
