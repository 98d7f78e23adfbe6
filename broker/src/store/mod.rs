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
//! - `sent_up_to`: client id → the key up to which its QoS 1 messages were sent. A QoS 1
//!   message's state is not written per message (it would be one more write for each): a
//!   session sends its queue in key order, so the entries at or below this key that are still
//!   there were sent and not acknowledged — recovery puts them back in flight (re-sent with
//!   DUP, under new packet ids: their old ones are not kept). QoS 2 states are written per
//!   message: exactly-once needs the packet id;
//! - `meta`: the layout version.

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
use records::ReadMessage;

const META: TableDefinition<'static, &str, u64> = TableDefinition::new("meta");
const SESSIONS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("sessions");
const SUBSCRIPTIONS: TableDefinition<'static, (&str, &str), &[u8]> =
    TableDefinition::new("subscriptions");
// (Client ids as bytes: a `&str` key is UTF-8-checked on every comparison in the tree.)
const QUEUE: TableDefinition<'static, (&[u8], u64), &[u8]> = TableDefinition::new("queue");
const MESSAGES: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("messages");
const AWAITING_REL: TableDefinition<'static, (&str, u16), ()> =
    TableDefinition::new("awaiting_rel");
const RETAINED: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("retained");
const WILLS: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("wills");
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
}

/// The open store (see the module documentation).
pub struct Store {
    db: Database,
    path: PathBuf,
    /// How many queue entries hold each stored message.
    refs: HashMap<u64, u32>,
    next_message_id: u64,
    /// Wall-clock milliseconds (Unix epoch) at broker time 0.
    wall_at_zero: u64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
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

/// A reference-count change to undo if the transaction does not commit.
type Undo = Vec<(u64, Option<u32>)>;

impl Store {
    /// Open (or create) the store file at `path`. A file another process holds, one that is not
    /// a store, or a damaged one is refused with a message saying so.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::new(path, e))?;
        }
        // redb 2.6 asserts (panics) on some damaged files, e.g. one cut short: caught, so that
        // a damaged file is a refusal with a way out, never a crash (or a crash loop).
        // (Its panic message is not printed: the error below says what happened.)
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let opened = std::panic::catch_unwind(|| Database::create(path));
        std::panic::set_hook(hook);
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => {
                return Err(StoreError::new(
                    path,
                    "in use by another process (another wren-broker with the same \
                     persistence_location?)",
                ));
            }
            Ok(Err(e)) => return Err(StoreError::new(path, damaged(&e.to_string()))),
            Err(_) => return Err(StoreError::new(path, damaged("cut short or corrupted"))),
        };
        Ok(Store {
            db,
            path: path.to_path_buf(),
            refs: HashMap::new(),
            next_message_id: 1,
            wall_at_zero: wall_ms(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl fmt::Display) -> StoreError {
        StoreError::new(&self.path, e)
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
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let result = self.recover_in(&txn, now_wall, &mut report, &mut restored);
        match result {
            Ok(()) => txn.commit().map_err(|e| self.err(e))?,
            Err(e) => {
                let _ = txn.abort();
                return Err(e);
            }
        }
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

        // Queues, in key order within each session.
        let mut delete_entries: Vec<(Vec<u8>, u64)> = Vec::new();
        {
            let table = txn.open_table(QUEUE).map_err(|x| e(x.into()))?;
            for row in table.iter().map_err(|x| e(x.into()))? {
                let (k, v) = row.map_err(|x| e(x.into()))?;
                let (client_bytes, key) = k.value();
                restored.next_key = restored.next_key.max(key.saturating_add(1));
                let client = String::from_utf8_lossy(client_bytes);
                let Some(s) = sessions.get_mut(&*client) else {
                    delete_entries.push((client_bytes.to_vec(), key));
                    continue;
                };
                let Some(mut record) = records::read_entry(v.value()) else {
                    report.unreadable += 1;
                    log::error!("Persistence: queued message {key} of {client} is damaged.");
                    delete_entries.push((client_bytes.to_vec(), key));
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
                        report.messages += 1;
                        s.messages.push(RestoredEntry {
                            key,
                            entry: record.with(m),
                        });
                    }
                    Some(None) => {
                        report.expired_messages += 1;
                        delete_entries.push((client_bytes.to_vec(), key));
                    }
                    None => {
                        report.unreadable += 1;
                        log::error!(
                            "Persistence: queued message {key} of {client} has lost its body."
                        );
                        delete_entries.push((client_bytes.to_vec(), key));
                    }
                }
            }
        }
        {
            let mut table = txn.open_table(QUEUE).map_err(|x| e(x.into()))?;
            for (c, k) in &delete_entries {
                table.remove((c.as_slice(), *k)).map_err(|x| e(x.into()))?;
            }
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
        report.sessions = sessions.len();
        restored.sessions = sessions.into_values().collect();
        Ok(())
    }

    /// Write a batch of changes in one transaction, on disk when this returns `Ok`. On an error
    /// nothing of the batch is written (the caller keeps it and tries again).
    pub fn write(&mut self, changes: &[Change]) -> Result<(), StoreError> {
        let mut undo: Undo = Vec::new();
        let result = self.write_in(changes, &mut undo);
        if result.is_err() {
            // The transaction was dropped (aborted): the counts go back to what is on disk.
            for (id, before) in undo.into_iter().rev() {
                match before {
                    Some(n) => self.refs.insert(id, n),
                    None => self.refs.remove(&id),
                };
            }
        }
        result
    }

    fn write_in(&mut self, changes: &[Change], undo: &mut Undo) -> Result<(), StoreError> {
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
        let mut txn = self.db.begin_write().map_err(|x| e(x.into()))?;
        txn.set_durability(Durability::Immediate);
        {
            let mut sessions = txn.open_table(SESSIONS).map_err(|x| e(x.into()))?;
            let mut subs = txn.open_table(SUBSCRIPTIONS).map_err(|x| e(x.into()))?;
            let mut queue = txn.open_table(QUEUE).map_err(|x| e(x.into()))?;
            let mut messages = txn.open_table(MESSAGES).map_err(|x| e(x.into()))?;
            let mut rel = txn.open_table(AWAITING_REL).map_err(|x| e(x.into()))?;
            let mut retained = txn.open_table(RETAINED).map_err(|x| e(x.into()))?;
            let mut wills = txn.open_table(WILLS).map_err(|x| e(x.into()))?;
            let mut sent_up_to = txn.open_table(SENT_UP_TO).map_err(|x| e(x.into()))?;
            // Each session's highest QoS 1 key sent in this batch, written once at the end.
            let mut marks: Map<&str, u64> = Map::default();
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
                        let mut held: Vec<u64> = Vec::new();
                        let cb = c.as_bytes();
                        queue
                            .retain_in((cb, 0u64)..=(cb, u64::MAX), |_, v| {
                                if let Some(r) = records::read_entry(v)
                                    && r.message_id != 0
                                {
                                    held.push(r.message_id);
                                }
                                false
                            })
                            .map_err(|x| e(x.into()))?;
                        for id in held {
                            self.release(&mut messages, id, undo)
                                .map_err(|x| e(x.into()))?;
                        }
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
                        let value = if alone {
                            let body =
                                records::message(&entry.message, self.received(&entry.message));
                            records::entry(0, entry, Some(&body))
                        } else {
                            let id = self
                                .hold(&mut messages, &entry.message, undo)
                                .map_err(|x| e(x.into()))?;
                            records::entry(id, entry, None)
                        };
                        queue
                            .insert((client_id.as_bytes(), *key), &*value)
                            .map_err(|x| e(x.into()))?;
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
                        let k = (client_id.as_bytes(), *key);
                        let updated = queue
                            .get(k)
                            .map_err(|x| e(x.into()))?
                            .and_then(|v| records::with_state(v.value(), Some((*pid, *state))));
                        if let Some(v) = updated {
                            queue.insert(k, &*v).map_err(|x| e(x.into()))?;
                        }
                    }
                    Change::Done { client_id, key } => {
                        let id = queue
                            .remove((client_id.as_bytes(), *key))
                            .map_err(|x| e(x.into()))?
                            .and_then(|v| records::read_entry(v.value()))
                            .map(|r| r.message_id)
                            .filter(|&id| id != 0);
                        if let Some(id) = id {
                            self.release(&mut messages, id, undo)
                                .map_err(|x| e(x.into()))?;
                        }
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
                }
            }
            for (client_id, key) in marks {
                sent_up_to.insert(client_id, key).map_err(|x| e(x.into()))?;
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
        undo: &mut Undo,
    ) -> Result<u64, redb::StorageError> {
        let mut id = message.store_id();
        if id == 0 {
            id = self.next_message_id;
            self.next_message_id = self.next_message_id.saturating_add(1);
            message.set_store_id(id);
        }
        let before = self.refs.get(&id).copied();
        if before.is_none() {
            table.insert(id, &*records::message(message, self.received(message)))?;
        }
        undo.push((id, before));
        self.refs.insert(id, before.unwrap_or(0).saturating_add(1));
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
        undo: &mut Undo,
    ) -> Result<(), redb::StorageError> {
        let before = self.refs.get(&id).copied();
        undo.push((id, before));
        match before {
            Some(n) if n > 1 => {
                self.refs.insert(id, n - 1);
            }
            _ => {
                self.refs.remove(&id);
                table.remove(id)?;
            }
        }
        Ok(())
    }

    /// Bytes of the file.
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// Stored messages (for tests and the recovery log).
    pub fn stored_messages(&self) -> Result<u64, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(MESSAGES).map_err(|e| self.err(e))?;
        table.len().map_err(|e| self.err(e))
    }
}
