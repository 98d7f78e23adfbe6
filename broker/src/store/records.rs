//! The byte layout of the store's values (little-endian, length-prefixed strings), one
//! encode/decode pair per table. Keys are redb tuples (see `mod.rs`). A value that does not
//! decode is reported and skipped by recovery, never a panic.

use std::sync::Arc;

use bytes::Bytes;
use wren_codec::{PayloadFormat, QoS};

use crate::core::{Message, MessageProperties, OutgoingState, StoredEntry, StoredSub};

/// The layout version, in the `meta` table: a store written by a later layout is refused.
pub(super) const FORMAT: u64 = 1;

/// Appends values to a buffer.
#[derive(Default)]
pub(super) struct Writer(pub(super) Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(super) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    /// What `f` writes, after its 32-bit length.
    pub(super) fn sized(&mut self, f: impl FnOnce(&mut Self)) {
        let at = self.0.len();
        self.u32(0);
        f(self);
        let len = u32::try_from(self.0.len().saturating_sub(at + 4)).unwrap_or(u32::MAX);
        if let Some(slot) = self.0.get_mut(at..at + 4) {
            slot.copy_from_slice(&len.to_le_bytes());
        }
    }

    /// Bytes with a 32-bit length.
    fn bytes(&mut self, v: &[u8]) {
        self.u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(v);
    }
    fn opt_bytes(&mut self, v: Option<&[u8]>) {
        match v {
            Some(b) => {
                self.u8(1);
                self.bytes(b);
            }
            None => self.u8(0),
        }
    }
}

/// Reads values back; `None` when the value is too short or malformed.
pub(super) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(super) fn new(b: &'a [u8]) -> Self {
        Reader(b)
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1)?.first().copied()
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.bytes()?).ok()
    }
    fn opt_bytes(&mut self) -> Option<Option<&'a [u8]>> {
        match self.u8()? {
            0 => Some(None),
            1 => Some(Some(self.bytes()?)),
            _ => None,
        }
    }
    fn opt_str(&mut self) -> Option<Option<&'a str>> {
        match self.opt_bytes()? {
            None => Some(None),
            Some(b) => Some(Some(std::str::from_utf8(b).ok()?)),
        }
    }
}

/// A session: its expiry interval and when its client disconnected (wall-clock ms since the
/// Unix epoch; 0: connected when last written).
pub(super) fn session(expiry_interval: u32, disconnected_at_wall_ms: u64) -> Vec<u8> {
    let mut w = Writer::default();
    w.u32(expiry_interval);
    w.u64(disconnected_at_wall_ms);
    w.0
}

pub(super) fn read_session(b: &[u8]) -> Option<(u32, u64)> {
    let mut r = Reader::new(b);
    Some((r.u32()?, r.u64()?))
}

pub(super) fn sub(s: &StoredSub) -> Vec<u8> {
    let mut w = Writer::default();
    w.u8(s.qos.bits());
    w.u8(u8::from(s.no_local) | (u8::from(s.retain_as_published) << 1));
    w.u32(s.id.unwrap_or(0));
    w.0
}

pub(super) fn read_sub(b: &[u8]) -> Option<StoredSub> {
    let mut r = Reader::new(b);
    let qos = QoS::from_bits(r.u8()?)?;
    let flags = r.u8()?;
    let id = r.u32()?;
    Some(StoredSub {
        qos,
        no_local: flags & 1 != 0,
        retain_as_published: flags & 2 != 0,
        id: (id != 0).then_some(id),
    })
}

fn state_byte(sent: Option<(u16, OutgoingState)>) -> (u8, u16) {
    match sent {
        None => (0, 0),
        Some((pid, OutgoingState::AwaitingPubAck)) => (1, pid),
        Some((pid, OutgoingState::AwaitingPubRec)) => (2, pid),
        Some((pid, OutgoingState::AwaitingPubComp)) => (3, pid),
    }
}

/// A queue entry: the stored message's id and how it goes to the session. Message id 0: the
/// message is held by this entry alone and its body (`inline`, a [`message`] record) follows.
#[cfg(test)]
pub(super) fn entry(message_id: u64, e: &StoredEntry, inline: Option<&[u8]>) -> Vec<u8> {
    let mut w = Writer::default();
    entry_into(&mut w, message_id, e, |w| {
        w.bytes(inline.unwrap_or_default())
    });
    w.0
}

/// [`entry`], appended to `w`; `inline` writes the message's record (message id 0).
pub(super) fn entry_into(
    w: &mut Writer,
    message_id: u64,
    e: &StoredEntry,
    inline: impl FnOnce(&mut Writer),
) {
    w.u64(message_id);
    w.u8(e.qos.bits());
    w.u8(u8::from(e.retain));
    let (state, pid) = state_byte(e.sent);
    w.u8(state);
    w.u16(pid);
    // (A PUBLISH holds far fewer identifiers than 2^32.)
    w.u32(u32::try_from(e.sub_ids.len()).unwrap_or(u32::MAX));
    for id in e.sub_ids.iter() {
        w.u32(*id);
    }
    w.opt_bytes(e.shared.as_deref().map(str::as_bytes));
    if message_id == 0 {
        inline(w);
    }
}

/// A queue entry as stored, its message not yet looked up.
pub(super) struct EntryRecord {
    pub(super) message_id: u64,
    pub(super) qos: QoS,
    pub(super) retain: bool,
    pub(super) sent: Option<(u16, OutgoingState)>,
    pub(super) sub_ids: Box<[u32]>,
    pub(super) shared: Option<Arc<str>>,
    /// The message's record, for an entry that holds it alone (message id 0).
    pub(super) inline: Option<Box<[u8]>>,
}

impl EntryRecord {
    /// The entry with its message.
    pub(super) fn with(self, message: Arc<Message>) -> StoredEntry {
        StoredEntry {
            message,
            qos: self.qos,
            retain: self.retain,
            sub_ids: self.sub_ids,
            shared: self.shared,
            sent: self.sent,
        }
    }
}

pub(super) fn read_entry(b: &[u8]) -> Option<EntryRecord> {
    let mut r = Reader::new(b);
    let message_id = r.u64()?;
    let qos = QoS::from_bits(r.u8()?)?;
    let retain = r.u8()? != 0;
    let state = r.u8()?;
    let pid = r.u16()?;
    let sent = match state {
        0 => None,
        1 => Some((pid, OutgoingState::AwaitingPubAck)),
        2 => Some((pid, OutgoingState::AwaitingPubRec)),
        3 => Some((pid, OutgoingState::AwaitingPubComp)),
        _ => return None,
    };
    let n = r.u32()?;
    let mut sub_ids = Vec::new();
    for _ in 0..n {
        sub_ids.push(r.u32()?);
    }
    let shared = r.opt_str()?.map(Arc::from);
    let inline = match message_id {
        0 => Some(r.bytes()?.into()),
        _ => None,
    };
    Some(EntryRecord {
        message_id,
        qos,
        retain,
        sent,
        sub_ids: sub_ids.into(),
        shared,
        inline,
    })
}

/// A message: topic, payload, QoS, RETAIN, its 5.0 properties and expiry (the interval and
/// when it was received, wall-clock ms).
pub(super) fn message(m: &Message, received_wall_ms: Option<u64>) -> Vec<u8> {
    let mut w = Writer::default();
    message_into(&mut w, m, received_wall_ms);
    w.0
}

/// [`message`], appended to `w`.
pub(super) fn message_into(w: &mut Writer, m: &Message, received_wall_ms: Option<u64>) {
    w.bytes(m.topic().as_bytes());
    w.bytes(m.payload());
    w.u8(m.qos().bits());
    w.u8(u8::from(m.retain()));
    match (m.expiry(), received_wall_ms) {
        (Some((secs, _)), Some(at)) => {
            w.u8(1);
            w.u32(secs);
            w.u64(at);
        }
        _ => w.u8(0),
    }
    match m.properties() {
        None => w.u8(0),
        Some(p) => {
            w.u8(1);
            w.u8(match p.payload_format {
                None => 0,
                Some(PayloadFormat::Unspecified) => 1,
                Some(PayloadFormat::Utf8) => 2,
            });
            w.opt_bytes(p.content_type.as_deref().map(str::as_bytes));
            w.opt_bytes(p.response_topic.as_deref().map(str::as_bytes));
            w.opt_bytes(p.correlation_data.as_deref());
            w.u32(u32::try_from(p.user_properties.len()).unwrap_or(0));
            for (k, v) in &p.user_properties {
                w.bytes(k.as_bytes());
                w.bytes(v.as_bytes());
            }
        }
    }
}

/// A stored message, with what is left of its Message Expiry Interval at `now_wall_ms` (and
/// `None` if it has passed), as received at `now_ms` (broker ms).
pub(super) enum ReadMessage {
    Live(Arc<Message>),
    Expired,
}

pub(super) fn read_message(b: &[u8], now_wall_ms: u64, now_ms: u64) -> Option<ReadMessage> {
    let mut r = Reader::new(b);
    let topic = r.str()?;
    let payload = Bytes::copy_from_slice(r.bytes()?);
    let qos = QoS::from_bits(r.u8()?)?;
    let retain = r.u8()? != 0;
    let expiry = match r.u8()? {
        0 => None,
        1 => {
            let secs = r.u32()?;
            let received = r.u64()?;
            let waited = now_wall_ms.saturating_sub(received) / 1000;
            let left = u64::from(secs).saturating_sub(waited);
            if left == 0 {
                return Some(ReadMessage::Expired);
            }
            Some((u32::try_from(left).unwrap_or(secs), now_ms))
        }
        _ => return None,
    };
    let properties = match r.u8()? {
        0 => None,
        1 => {
            let payload_format = match r.u8()? {
                0 => None,
                1 => Some(PayloadFormat::Unspecified),
                2 => Some(PayloadFormat::Utf8),
                _ => return None,
            };
            let content_type = r.opt_str()?.map(Into::into);
            let response_topic = r.opt_str()?.map(Into::into);
            let correlation_data = r.opt_bytes()?.map(Into::into);
            let n = r.u32()?;
            let mut user_properties = Vec::new();
            for _ in 0..n {
                user_properties.push((r.str()?.into(), r.str()?.into()));
            }
            Some(Box::new(MessageProperties {
                payload_format,
                content_type,
                response_topic,
                correlation_data,
                user_properties,
            }))
        }
        _ => return None,
    };
    Some(ReadMessage::Live(Message::from_parts(
        topic, payload, qos, retain, properties, expiry,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_round_trips_and_short_values_are_refused() {
        let s = session(3600, 1_700_000_000_000);
        assert_eq!(read_session(&s), Some((3600, 1_700_000_000_000)));
        assert_eq!(read_session(&s[..5]), None);
        let sb = StoredSub {
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: false,
            id: Some(7),
        };
        assert_eq!(read_sub(&sub(&sb)), Some(sb));
        let props = MessageProperties {
            payload_format: Some(PayloadFormat::Utf8),
            content_type: Some("text/plain".into()),
            response_topic: Some("r/t".into()),
            correlation_data: Some(vec![1, 2, 3].into()),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
        };
        let m = Message::from_parts(
            "a/b",
            Bytes::from_static(b"22.5"),
            QoS::AtLeastOnce,
            true,
            Some(Box::new(props.clone())),
            Some((60, 0)),
        );
        let bytes = message(&m, Some(1_000_000));
        // 20 s later: 40 s left.
        let Some(ReadMessage::Live(back)) = read_message(&bytes, 1_020_000, 5) else {
            panic!("not read back");
        };
        assert_eq!(back.topic(), "a/b");
        assert_eq!(back.payload(), b"22.5");
        assert_eq!(back.qos(), QoS::AtLeastOnce);
        assert!(back.retain());
        assert_eq!(back.properties(), Some(&props));
        assert_eq!(back.expiry(), Some((40, 5)));
        assert!(matches!(
            read_message(&bytes, 1_060_000, 5),
            Some(ReadMessage::Expired)
        ));
        for cut in 0..bytes.len() {
            assert!(read_message(&bytes[..cut], 0, 0).is_none(), "cut at {cut}");
        }
        let e = StoredEntry {
            message: m,
            qos: QoS::ExactlyOnce,
            retain: false,
            sub_ids: vec![1, 9].into(),
            shared: Some("$share/g/a/#".into()),
            sent: Some((12, OutgoingState::AwaitingPubComp)),
        };
        let enc = entry(42, &e, None);
        let back = read_entry(&enc).expect("entry");
        assert_eq!(back.message_id, 42);
        assert_eq!(back.sent, Some((12, OutgoingState::AwaitingPubComp)));
        assert_eq!(&*back.sub_ids, &[1, 9]);
        assert_eq!(back.shared.as_deref(), Some("$share/g/a/#"));
        assert!(back.inline.is_none());
        for cut in 0..enc.len() {
            assert!(read_entry(&enc[..cut]).is_none(), "cut at {cut}");
        }
        // Held alone: the body inline.
        let alone = entry(
            0,
            &StoredEntry {
                sent: None,
                ..e.clone()
            },
            Some(&bytes),
        );
        let back = read_entry(&alone).expect("inline entry");
        assert_eq!(back.inline.as_deref(), Some(&bytes[..]));
        assert_eq!(back.sent, None);
        for cut in 0..alone.len() {
            assert!(read_entry(&alone[..cut]).is_none(), "cut at {cut}");
        }
    }
}
