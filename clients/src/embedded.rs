//! A blocking-free MQTT client for firmware (feature `embedded`): the [`engine`]
//! driven over any byte stream implementing [`embedded_io`]'s `Read + ReadReady + Write` — a
//! UART, a TCP socket of an embedded network stack — with every buffer inside the client, sized
//! by const generics. No allocator, no `std`, no clock of its own: the application passes the
//! time (a wrapping 32-bit millisecond counter is enough) to every call.
//!
//! [`Client::poll`] never waits for input: it reads only what [`ReadReady`] says is there,
//! handles every complete packet (handing messages to the caller's closure, then acknowledging
//! QoS 1/2 deliveries), sends what the engine wants sent (PINGREQ, retransmissions) and returns
//! when it next wants to be called. Writes block until the transport has taken the bytes;
//! [`asynch::Client`] (feature `embedded-async`) is the same client with awaited writes, over
//! `embedded-io-async`.
//!
//! QoS 1/2 PUBLISH packets are kept, encoded, in a fixed-capacity outbox until acknowledged,
//! and resent with DUP set when a session is resumed after [`Client::reconnect`] (or after the
//! 3.1.1 retry interval of [`Config::retry_interval_ms`]).
//!
//! ```
//! use wren_clients::embedded::{Client, Config};
//! use wren_codec::{Connect, ProtocolVersion, QoS};
//! # struct Uart;
//! # impl embedded_io::ErrorType for Uart { type Error = embedded_io::ErrorKind; }
//! # impl embedded_io::Read for Uart {
//! #     fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> { Ok(0) }
//! # }
//! # impl embedded_io::ReadReady for Uart {
//! #     fn read_ready(&mut self) -> Result<bool, Self::Error> { Ok(false) }
//! # }
//! # impl embedded_io::Write for Uart {
//! #     fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> { Ok(b.len()) }
//! #     fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
//! # }
//! # fn now_ms() -> u32 { 0 }
//! // 256-byte receive buffer, 128-byte transmit buffer, 256 bytes of outbox, 4 flows in flight.
//! let mut mqtt: Client<Uart, 256, 128, 256, 4> = Client::new(Uart, Config::new(ProtocolVersion::V311));
//! mqtt.connect(Connect::new("sensor-1"), now_ms())?;
//! // ... poll until `mqtt.is_connected()`, then:
//! // let id = mqtt.publish("site/temperature", b"21.5", QoS::AtLeastOnce, now_ms())?;
//! // while mqtt.is_pending(id) { mqtt.poll(now_ms(), |message| { /* ... */ })?; }
//! # Ok::<(), wren_clients::embedded::Error<embedded_io::ErrorKind>>(())
//! ```

#[cfg(feature = "embedded-async")]
pub mod asynch;

use core::fmt;
use core::num::NonZeroU32;

use embedded_io::{Read, ReadReady, Write};
use wren_codec::stream::StreamDecoder;
use wren_codec::{
    DecodeError, DecodeOptions, Disconnect, EncodeError, PacketId, PacketType, Publish, QoS,
    ReasonCode, Subscription, SubscriptionOptions, TopicFilter, TopicName,
};

pub use crate::engine::Config;
use crate::engine::{self, Engine, Event, Instant, Message, Poll, Stage, State, WrappingClock};

/// Why a [`Client`] call failed. After `Io`, `Closed`, `Decode`, `KeepAliveTimeout`,
/// `ConnectTimeout`, `ServerDisconnected` or `Protocol` the connection is unusable: give the
/// client a new transport with [`Client::reconnect`] and connect again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error<E> {
    /// The transport failed.
    Io(E),
    /// The transport reached its end (the peer closed the connection).
    Closed,
    /// The server's bytes are not valid MQTT, or a packet exceeds the receive buffer where it
    /// cannot be skipped (anything but a 3.1.1 PUBLISH; in 5.0 the client has sent DISCONNECT
    /// with reason 0x95 Packet too large first).
    Decode(DecodeError),
    /// A packet could not be encoded (the transmit buffer is too small, or a field is invalid).
    Encode(EncodeError),
    /// A topic name or filter is invalid.
    Topic(DecodeError),
    /// The outbox has no room for another QoS 1/2 message: poll until some are acknowledged.
    OutboxFull,
    /// The engine refused (not connected, too many in flight, connection refused, …).
    Protocol(engine::Error),
    /// No PINGRESP in time.
    KeepAliveTimeout,
    /// No CONNACK in time.
    ConnectTimeout,
    /// The server sent DISCONNECT (5.0) with this reason.
    ServerDisconnected(ReasonCode),
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "transport failed: {e:?}"),
            Error::Closed => f.write_str("connection closed by the server"),
            Error::Decode(e) => write!(f, "bad packet from the server: {e}"),
            Error::Encode(e) => write!(f, "cannot encode: {e}"),
            Error::Topic(e) => write!(f, "invalid topic: {e}"),
            Error::OutboxFull => f.write_str("outbox full"),
            Error::Protocol(e) => e.fmt(f),
            Error::KeepAliveTimeout => f.write_str("no PINGRESP in time"),
            Error::ConnectTimeout => f.write_str("no CONNACK in time"),
            Error::ServerDisconnected(code) => {
                write!(f, "the server disconnected (reason 0x{:02x})", code.0)
            }
        }
    }
}

impl<E> From<engine::Error> for Error<E> {
    fn from(e: engine::Error) -> Self {
        Error::Protocol(e)
    }
}

/// Encoded QoS 1/2 PUBLISH packets awaiting acknowledgement, packed in `B` bytes as records of
/// a 2-byte packet identifier, a 2-byte length and the packet.
#[derive(Debug)]
struct Outbox<const B: usize> {
    buf: [u8; B],
    len: usize,
}

const RECORD_HEADER: usize = 4;

impl<const B: usize> Outbox<B> {
    const fn new() -> Self {
        Outbox {
            buf: [0; B],
            len: 0,
        }
    }

    /// The record at `at`: (identifier, start of packet, end of packet).
    fn record(&self, at: usize) -> Option<(u16, usize, usize)> {
        let h = self.buf.get(at..at.checked_add(RECORD_HEADER)?)?;
        let (id, len) = match h {
            [a, b, c, d] => (u16::from_be_bytes([*a, *b]), u16::from_be_bytes([*c, *d])),
            _ => return None,
        };
        let start = at.checked_add(RECORD_HEADER)?;
        let end = start.checked_add(usize::from(len))?;
        (end <= self.len).then_some((id, start, end))
    }

    fn find(&self, id: u16) -> Option<(usize, usize, usize)> {
        let mut at = 0;
        while let Some((rid, start, end)) = self.record(at) {
            if rid == id {
                return Some((at, start, end));
            }
            at = end;
        }
        None
    }

    fn packet_mut(&mut self, id: PacketId) -> Option<&mut [u8]> {
        let (_, start, end) = self.find(id.get())?;
        self.buf.get_mut(start..end)
    }

    /// Room for a packet of `n` bytes?
    fn fits(&self, n: usize) -> bool {
        n <= usize::from(u16::MAX)
            && self
                .len
                .checked_add(RECORD_HEADER)
                .and_then(|l| l.checked_add(n))
                .is_some_and(|l| l <= B)
    }

    /// Append a record for `id` whose packet `encode` writes; the packet's bytes.
    fn push(
        &mut self,
        id: PacketId,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<&[u8], EncodeError> {
        let start = self.len.saturating_add(RECORD_HEADER);
        let room = self.buf.get_mut(start..).unwrap_or_default();
        let n = encode(room)?;
        let end = start.saturating_add(n);
        let len = u16::try_from(n).map_err(|_| EncodeError::BufferTooSmall { needed: n })?;
        let [a, b] = id.get().to_be_bytes();
        let [c, d] = len.to_be_bytes();
        if let Some(h) = self.buf.get_mut(self.len..start) {
            h.copy_from_slice(&[a, b, c, d]);
        }
        self.len = end;
        Ok(self.buf.get(start..end).unwrap_or_default())
    }

    /// Keep only the records whose identifier `keep` accepts.
    fn retain(&mut self, keep: impl Fn(PacketId) -> bool) {
        let mut at = 0;
        while let Some((id, _, end)) = self.record(at) {
            if PacketId::new(id).is_some_and(&keep) {
                at = end;
            } else {
                if let Some(rest) = self.buf.get_mut(at..self.len) {
                    move_to_front(rest, end.saturating_sub(at));
                }
                self.len = self.len.saturating_sub(end.saturating_sub(at));
            }
        }
    }

    fn clear(&mut self) {
        self.len = 0;
    }
}

/// The client's state, not its buffers or its transport (which need not be `Format`).
#[cfg(feature = "defmt")]
impl<T, const RX: usize, const TX: usize, const OUTBOX: usize, const N: usize> defmt::Format
    for Client<T, RX, TX, OUTBOX, N>
{
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Client {{ {} }}", self.session);
    }
}

#[cfg(feature = "defmt")]
impl<const RX: usize, const TX: usize, const OUTBOX: usize, const N: usize> defmt::Format
    for Session<RX, TX, OUTBOX, N>
{
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "engine: {}, buffered: {=usize}, outbox: {=usize}, skipped: {=u32}",
            self.engine,
            self.decoder.buffered(),
            self.outbox.len,
            self.skipped
        );
    }
}

/// Checked by the compiler in every build with `defmt`: each public type of the engine and the
/// embedded client is `defmt::Format`.
#[cfg(feature = "defmt")]
const _: () = {
    const fn format<F: defmt::Format>() {}
    format::<Error<embedded_io::ErrorKind>>();
    format::<Client<(), 8, 8, 8, 1>>();
    #[cfg(feature = "embedded-async")]
    format::<asynch::Client<(), 8, 8, 8, 1>>();
    format::<Config>();
    format::<Engine<1>>();
    format::<engine::Error>();
    format::<engine::ConnectRefused>();
    format::<engine::ConnectReturnCode>();
    format::<engine::Backoff>();
    format::<engine::Control>();
    format::<Event<'static>>();
    format::<engine::Handled<'static>>();
    format::<Instant>();
    format::<WrappingClock>();
    format::<Message<'static>>();
    format::<Poll>();
    format::<Stage>();
    format::<State>();
};

/// `buf.copy_within(from.., 0)` by copies of at most `from` bytes, which never overlap, so
/// that `memmove` (1.5 KB of flash on a Cortex-M) is not linked; `memcpy` is linked anyway.
fn move_to_front(buf: &mut [u8], from: usize) {
    if from == 0 {
        return;
    }
    let mut to = 0usize;
    while let Some((head, tail)) = buf.split_at_mut_checked(to.saturating_add(from)) {
        let n = from.min(tail.len());
        let (Some(dst), Some(src)) = (head.get_mut(to..to.saturating_add(n)), tail.get(..n)) else {
            break;
        };
        if n == 0 {
            break;
        }
        dst.copy_from_slice(src);
        to = to.saturating_add(n);
    }
}

/// Everything of a client but its transport: the engine, the stream decoder, the transmit
/// buffer, the outbox, the clock. Each step leaves the bytes to write in one of its buffers and
/// returns them, so the blocking [`Client`] and the async [`asynch::Client`] share every decision
/// and differ only in how they move bytes.
#[derive(Debug)]
struct Session<const RX: usize, const TX: usize, const OUTBOX: usize, const N: usize> {
    engine: Engine<N>,
    decoder: StreamDecoder<RX>,
    tx: [u8; TX],
    outbox: Outbox<OUTBOX>,
    clock: WrappingClock,
    skipped: u32,
}

/// What [`Session::handle_next`] did with the receive buffer. The bytes to write are the
/// first ones of the transmit buffer ([`Session::written`]): a length, not a slice, so that
/// no borrow of the session outlives the step (with one, the step's frame kept a separate
/// slot for each packet-sized value it handles: four times the stack).
enum Step {
    /// No complete packet is buffered.
    Idle,
    /// A packet was handled; write this many bytes (its acknowledgement; maybe none), go on.
    Handled(usize),
    /// The connection is over because of this packet: write this many bytes (a 5.0
    /// DISCONNECT, or none), best effort, and report the error.
    Refused(usize, DecodeError),
}

/// What [`Session::next_due`] wants.
enum Due<'a> {
    /// Write these bytes (PINGREQ, PUBREL, a PUBLISH resent with DUP), then ask again.
    Write(&'a [u8]),
    /// Nothing until this wrapping millisecond time (`None`: until input arrives).
    Wait(Option<u32>),
}

impl<const RX: usize, const TX: usize, const OUTBOX: usize, const N: usize>
    Session<RX, TX, OUTBOX, N>
{
    #[inline(always)]
    const fn new(config: Config) -> Self {
        Session {
            engine: Engine::new(config),
            decoder: StreamDecoder::new(DecodeOptions::new(config.version).from_server()),
            tx: [0; TX],
            outbox: Outbox::new(),
            clock: WrappingClock::new(),
            skipped: 0,
        }
    }

    /// Encode a packet into the transmit buffer with `encode` (a per-packet encoder: no
    /// [`wren_codec::Packet`] is built and no other packet's encoder is linked); its bytes.
    fn encode<E>(
        &mut self,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<&[u8], Error<E>> {
        let n = encode(&mut self.tx).map_err(Error::Encode)?;
        Ok(self.tx.get(..n).unwrap_or_default())
    }

    // Every step out of line: inlined into one caller, their locals would share one frame
    // that is as deep as all of them together.
    #[inline(never)]
    fn connect<E>(
        &mut self,
        mut connect: wren_codec::Connect<'_>,
        now_ms: u32,
    ) -> Result<&[u8], Error<E>> {
        let now = self.clock.instant(now_ms);
        if connect.protocol.is_v5() && connect.properties.maximum_packet_size.is_none() {
            let cap = u32::try_from(RX).unwrap_or(u32::MAX);
            connect.properties.maximum_packet_size = NonZeroU32::new(cap);
        }
        self.engine.prepare_connect(&mut connect, now)?;
        if connect.clean_start {
            self.outbox.clear();
        }
        self.decoder.set_version(connect.protocol);
        self.encode(|buf| connect.encode(buf))
    }

    #[inline(never)]
    fn subscribe_all<E>(
        &mut self,
        subscriptions: &[Subscription<'_>],
        now_ms: u32,
    ) -> Result<(PacketId, &[u8]), Error<E>> {
        let now = self.clock.instant(now_ms);
        let subscribe = self
            .engine
            .subscribe(subscriptions, wren_codec::NO_PROPERTIES, now)?;
        let version = self.engine.version();
        let bytes = self.encode(|buf| subscribe.encode(version, buf))?;
        Ok((subscribe.packet_id, bytes))
    }

    #[inline(never)]
    fn publish_message<E>(
        &mut self,
        message: Message<'_>,
        now_ms: u32,
    ) -> Result<(Option<PacketId>, &[u8]), Error<E>> {
        let now = self.clock.instant(now_ms);
        let version = self.engine.version();
        if message.qos != QoS::AtMostOnce {
            // Check the room before the engine takes an identifier (the length does not
            // depend on its value).
            let probe = Publish {
                dup: false,
                qos_pid: wren_codec::QosPid::new(
                    message.qos,
                    PacketId::from(core::num::NonZeroU16::MIN),
                ),
                retain: message.retain,
                topic: message.topic,
                properties: message.properties,
                payload: message.payload,
            };
            let len = probe.encoded_len(version).map_err(Error::Encode)?;
            if !self.outbox.fits(len) {
                return Err(Error::OutboxFull);
            }
        }
        let publish = self.engine.publish(message, now)?;
        let id = publish.qos_pid.packet_id();
        let bytes = match id {
            None => self.encode(|buf| publish.encode(version, buf))?,
            Some(id) => self
                .outbox
                .push(id, |buf| publish.encode(version, buf))
                .map_err(Error::Encode)?,
        };
        Ok((id, bytes))
    }

    #[inline(never)]
    fn disconnect<E>(&mut self, now_ms: u32) -> Result<&[u8], Error<E>> {
        let now = self.clock.instant(now_ms);
        let packet = self.engine.close(now);
        let version = self.engine.version();
        self.encode(|buf| packet.encode(version, buf))
    }

    /// Where to read the next bytes into (the transmit buffer, free between steps), as much
    /// as the receive buffer has room for.
    fn read_buffer<E>(&mut self) -> Result<&mut [u8], Error<E>> {
        let want = self.decoder.room().min(TX);
        match self.tx.get_mut(..want) {
            Some(scratch) if !scratch.is_empty() => Ok(scratch),
            // A full buffer with no complete packet: the decoder refuses such a packet.
            _ => Err(Error::Decode(DecodeError::PacketTooLarge {
                size: u32::try_from(RX).unwrap_or(u32::MAX),
                max: u32::try_from(RX).unwrap_or(u32::MAX),
            })),
        }
    }

    /// `n` bytes were read into [`Session::read_buffer`]; none means the peer closed.
    fn received<E>(&mut self, n: usize) -> Result<(), Error<E>> {
        if n == 0 {
            self.engine.connection_lost();
            return Err(Error::Closed);
        }
        self.decoder.feed(self.tx.get(..n).unwrap_or_default());
        Ok(())
    }

    /// Handle the next complete packet in the receive buffer: messages go to `on_message`.
    #[inline(never)]
    fn handle_next<E>(
        &mut self,
        now: Instant,
        on_message: &mut impl FnMut(&Publish<'_>),
    ) -> Result<Step, Error<E>> {
        let version = self.engine.version();
        let refused = loop {
            let packet = match self.decoder.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => return Ok(Step::Idle),
                Err(e) => break e,
            };
            let handled = match self.engine.handle(packet, now) {
                Ok(h) => h,
                Err(e) => {
                    self.engine.connection_lost();
                    return Err(Error::Protocol(e));
                }
            };
            match handled.event {
                Some(Event::Message(p)) => on_message(&p),
                Some(Event::Disconnected(d)) => {
                    return Err(Error::ServerDisconnected(d.reason_code));
                }
                Some(Event::PubAck(_) | Event::PubRec(_) | Event::Connected { .. }) => {
                    let engine = &self.engine;
                    self.outbox.retain(|id| {
                        matches!(engine.stage_of(id), Some(Stage::PubAck | Stage::PubRec))
                    });
                }
                _ => {}
            }
            if let Some(reply) = handled.reply {
                let n = reply.encode(version, &mut self.tx).map_err(Error::Encode)?;
                return Ok(Step::Handled(n));
            }
        };
        Ok(self.refuse(refused, now))
    }

    /// A packet could not be decoded: skip it if it is a 3.1.1 PUBLISH larger than the buffer
    /// (3.1.1 has no way to tell the server the limit, and the stream stays in step; the
    /// skipped packet took the whole buffer, so nothing is left until more is read), otherwise
    /// the connection is over. In 5.0 the server was told the limit (Maximum Packet Size) and
    /// broke it: DISCONNECT with reason 0x95 Packet too large [MQTT-3.1.2-25].
    #[inline(never)]
    fn refuse(&mut self, e: DecodeError, now: Instant) -> Step {
        let version = self.engine.version();
        let mut farewell = 0;
        if let DecodeError::PacketTooLarge { .. } = e {
            if !version.is_v5() {
                let skipped = self.decoder.skip_packet();
                if skipped.is_some_and(|h| h.packet_type == PacketType::Publish) {
                    self.skipped = self.skipped.saturating_add(1);
                    return Step::Idle;
                }
            } else if self.engine.state() != State::Disconnected {
                let _ = self.engine.close(now);
                let reason = Disconnect::with_reason(ReasonCode::PACKET_TOO_LARGE);
                farewell = reason.encode(version, &mut self.tx).unwrap_or(0);
            }
        }
        self.engine.connection_lost();
        Step::Refused(farewell, e)
    }

    /// What the engine wants sent now (PINGREQ, retransmissions), or when to ask next.
    #[inline(never)]
    fn next_due<E>(&mut self, now: Instant) -> Result<Due<'_>, Error<E>> {
        let version = self.engine.version();
        match self.engine.poll(now) {
            Poll::Send(control) => Ok(Due::Write(self.encode(|buf| control.encode(version, buf))?)),
            Poll::Republish(id) => {
                let Some(bytes) = self.outbox.packet_mut(id) else {
                    // Not kept (cannot happen: the outbox keeps every QoS 1/2 PUBLISH until
                    // the engine ends its flow); nothing to resend.
                    return Ok(Due::Write(&[]));
                };
                if let Some(first) = bytes.first_mut() {
                    *first |= 0x08; // DUP
                }
                Ok(Due::Write(bytes))
            }
            Poll::KeepAliveTimeout => Err(Error::KeepAliveTimeout),
            Poll::ConnectTimeout => Err(Error::ConnectTimeout),
            Poll::Wait(next) => Ok(Due::Wait(next.map(|t| t.as_millis() as u32))),
        }
    }

    /// The first `n` bytes of the transmit buffer, where a [`Step`] left what to write.
    fn written(&self, n: usize) -> &[u8] {
        self.tx.get(..n).unwrap_or_default()
    }

    fn reconnect(&mut self) {
        self.engine.connection_lost();
        self.decoder.clear();
    }
}

/// An MQTT client over the byte stream `T`, with every buffer inside:
///
/// - `RX`: the receive buffer, which bounds the largest packet the client accepts;
/// - `TX`: the transmit buffer, which bounds the largest packet it sends at QoS 0 (and every
///   packet but QoS 1/2 PUBLISH);
/// - `OUTBOX`: bytes kept for QoS 1/2 PUBLISH packets until acknowledged (each takes its
///   encoded length plus 4);
/// - `N`: flows in flight at once (QoS 1/2 publishes, subscribes) and incoming QoS 2 messages
///   awaiting release.
#[derive(Debug)]
pub struct Client<T, const RX: usize, const TX: usize, const OUTBOX: usize, const N: usize = 4> {
    transport: T,
    session: Session<RX, TX, OUTBOX, N>,
}

impl<T, const RX: usize, const TX: usize, const OUTBOX: usize, const N: usize>
    Client<T, RX, TX, OUTBOX, N>
where
    T: Read + ReadReady + Write,
{
    /// A disconnected client owning `transport`. `const`, so it can live in a `static`.
    // Inlined, the buffers are zeroed in place (word-wise) rather than built and copied.
    #[inline(always)]
    pub const fn new(transport: T, config: Config) -> Self {
        Client {
            transport,
            session: Session::new(config),
        }
    }

    /// Send CONNECT; the connection is up once [`Client::poll`] has handled the CONNACK
    /// ([`Client::is_connected`]). A clean start drops the outbox; otherwise the messages in it
    /// are resent if the server still has the session. In 5.0 the client advertises `RX` as its
    /// Maximum Packet Size (unless `connect` names one).
    pub fn connect(
        &mut self,
        connect: wren_codec::Connect<'_>,
        now_ms: u32,
    ) -> Result<(), Error<T::Error>> {
        let bytes = self.session.connect(connect, now_ms)?;
        write(&mut self.transport, bytes)
    }

    /// Whether the server accepted the connection (and it has not been lost since).
    pub fn is_connected(&self) -> bool {
        self.session.engine.state() == State::Connected
    }

    /// Whether the flow `id` (a publish or subscribe) still awaits its acknowledgement. `None`
    /// (a QoS 0 publish) is never pending.
    pub fn is_pending(&self, id: impl Into<Option<PacketId>>) -> bool {
        id.into()
            .is_some_and(|id| self.session.engine.stage_of(id).is_some())
    }

    /// 3.1.1 PUBLISH packets larger than the receive buffer `RX`, skipped unread since the
    /// client was made. A skipped QoS 1/2 message is not acknowledged, so the server keeps it
    /// in flight (and may resend it after a reconnect, to be skipped again).
    pub const fn skipped_packets(&self) -> u32 {
        self.session.skipped
    }

    /// The engine, for its state and counters.
    pub const fn engine(&self) -> &Engine<N> {
        &self.session.engine
    }

    /// The transport.
    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Subscribe to one filter; returns the SUBSCRIBE's packet identifier (pending until the
    /// SUBACK arrives).
    pub fn subscribe(
        &mut self,
        filter: &str,
        qos: QoS,
        now_ms: u32,
    ) -> Result<PacketId, Error<T::Error>> {
        let filter = TopicFilter::new(filter).map_err(Error::Topic)?;
        let subscriptions = [Subscription {
            filter,
            options: SubscriptionOptions::qos(qos),
        }];
        self.subscribe_all(&subscriptions, now_ms)
    }

    /// Subscribe to several filters with their options in one SUBSCRIBE.
    pub fn subscribe_all(
        &mut self,
        subscriptions: &[Subscription<'_>],
        now_ms: u32,
    ) -> Result<PacketId, Error<T::Error>> {
        let (id, bytes) = self.session.subscribe_all(subscriptions, now_ms)?;
        write(&mut self.transport, bytes)?;
        Ok(id)
    }

    /// Publish `payload` on `topic`. Returns the packet identifier of a QoS 1/2 message, which
    /// [`Client::is_pending`] reports until the flow is complete; the message is kept in the
    /// outbox until then.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        now_ms: u32,
    ) -> Result<Option<PacketId>, Error<T::Error>> {
        let topic = TopicName::new(topic).map_err(Error::Topic)?;
        self.publish_message(Message::new(topic, payload, qos), now_ms)
    }

    /// Publish a [`Message`] (retain flag, 5.0 properties).
    pub fn publish_message(
        &mut self,
        message: Message<'_>,
        now_ms: u32,
    ) -> Result<Option<PacketId>, Error<T::Error>> {
        let (id, bytes) = self.session.publish_message(message, now_ms)?;
        write(&mut self.transport, bytes)?;
        Ok(id)
    }

    /// Read what the transport has ready, handle every complete packet (messages go to
    /// `on_message`), send what is due (PINGREQ, retransmissions). Never waits for input.
    ///
    /// Returns when the client next needs to be polled if nothing arrives before (a wrapping
    /// millisecond time like `now_ms`), or `None` if only input can give it work.
    #[inline(never)]
    pub fn poll(
        &mut self,
        now_ms: u32,
        mut on_message: impl FnMut(&Publish<'_>),
    ) -> Result<Option<u32>, Error<T::Error>> {
        let now = self.session.clock.instant(now_ms);
        loop {
            self.handle_buffered(now, &mut on_message)?;
            if !self.transport.read_ready().map_err(Error::Io)? {
                break;
            }
            let scratch = self.session.read_buffer()?;
            let n = self.transport.read(scratch).map_err(Error::Io)?;
            self.session.received(n)?;
        }
        loop {
            match self.session.next_due(now)? {
                Due::Write(bytes) => write(&mut self.transport, bytes)?,
                Due::Wait(next) => return Ok(next),
            }
        }
    }

    /// Handle every complete packet in the receive buffer.
    fn handle_buffered(
        &mut self,
        now: Instant,
        on_message: &mut impl FnMut(&Publish<'_>),
    ) -> Result<(), Error<T::Error>> {
        loop {
            match self.session.handle_next(now, on_message)? {
                Step::Idle => return Ok(()),
                Step::Handled(n) => write(&mut self.transport, self.session.written(n))?,
                Step::Refused(n, e) => {
                    // Best effort: the connection is over whether or not it is sent.
                    let _ = write(&mut self.transport, self.session.written(n));
                    return Err(Error::Decode(e));
                }
            }
        }
    }

    /// Send DISCONNECT: the connection ends cleanly (the server discards the will).
    pub fn disconnect(&mut self, now_ms: u32) -> Result<(), Error<T::Error>> {
        let bytes = self.session.disconnect(now_ms)?;
        write(&mut self.transport, bytes)
    }

    /// Replace a broken transport with a new one (returning the old), keeping the session:
    /// unacknowledged QoS 1/2 messages are resent after the next [`Client::connect`] with
    /// `clean_start: false` finds the session present.
    pub fn reconnect(&mut self, transport: T) -> T {
        self.session.reconnect();
        core::mem::replace(&mut self.transport, transport)
    }

    /// Give the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }
}

/// Write `bytes` (none: nothing to do) and flush.
fn write<T: Write>(transport: &mut T, bytes: &[u8]) -> Result<(), Error<T::Error>> {
    if bytes.is_empty() {
        return Ok(());
    }
    transport.write_all(bytes).map_err(Error::Io)?;
    transport.flush().map_err(Error::Io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wren_codec::ProtocolVersion;

    /// A transport over two byte queues: what the server sent, what the client wrote.
    #[derive(Debug, Default)]
    struct Wire {
        input: std::collections::VecDeque<u8>,
        output: std::vec::Vec<u8>,
    }

    impl embedded_io::ErrorType for Wire {
        type Error = embedded_io::ErrorKind;
    }

    impl Read for Wire {
        fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
            let n = buf.len().min(self.input.len());
            for (slot, b) in buf.iter_mut().zip(self.input.drain(..n)) {
                *slot = b;
            }
            Ok(n)
        }
    }

    impl ReadReady for Wire {
        fn read_ready(&mut self) -> Result<bool, Self::Error> {
            Ok(!self.input.is_empty())
        }
    }

    impl Write for Wire {
        fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> Result<(), Self::Error> {
            Ok(())
        }
    }

    type Small = Client<Wire, 32, 64, 64, 2>;

    /// A client connected over `Wire` (the CONNACK fed and handled); its CONNECT's bytes.
    fn connected(version: ProtocolVersion) -> (Small, std::vec::Vec<u8>) {
        let mut c = Small::new(Wire::default(), Config::new(version));
        let connect = wren_codec::Connect {
            protocol: version,
            bridge: false,
            ..wren_codec::Connect::new("small")
        };
        c.connect(connect, 0).unwrap();
        let connack: &[u8] = if version.is_v5() {
            &[0x20, 0x03, 0x00, 0x00, 0x00]
        } else {
            &[0x20, 0x02, 0x00, 0x00]
        };
        c.transport().input.extend(connack);
        c.poll(1, |m| panic!("unexpected {m:?}")).unwrap();
        assert!(c.is_connected());
        let sent = core::mem::take(&mut c.transport().output);
        (c, sent)
    }

    /// A QoS 0 PUBLISH on `topic` (no 5.0 properties field unless `v5`).
    fn publish_bytes(topic: &str, payload: &[u8], v5: bool) -> std::vec::Vec<u8> {
        let mut body = std::vec::Vec::new();
        body.extend((topic.len() as u16).to_be_bytes());
        body.extend(topic.as_bytes());
        if v5 {
            body.push(0);
        }
        body.extend(payload);
        assert!(body.len() < 128);
        let mut packet = std::vec![0x30, body.len() as u8];
        packet.extend(body);
        packet
    }

    #[test]
    fn a_v5_connect_advertises_the_receive_buffer_as_maximum_packet_size() {
        let (_, sent) = connected(ProtocolVersion::V5);
        let options = DecodeOptions::new(ProtocolVersion::V5).from_client();
        let Ok(wren_codec::Status::Complete(d)) = wren_codec::decode(&sent, options) else {
            panic!("not a packet: {sent:?}");
        };
        let wren_codec::Packet::Connect(connect) = d.packet else {
            panic!("{:?}", d.packet);
        };
        assert_eq!(connect.properties.maximum_packet_size, NonZeroU32::new(32));
    }

    #[test]
    fn a_v311_publish_larger_than_the_buffer_is_skipped() {
        let (mut c, _) = connected(ProtocolVersion::V311);
        let big = publish_bytes("big", &[b'x'; 60], false);
        let small = publish_bytes("small", b"ok", false);
        c.transport().input.extend(&big);
        c.transport().input.extend(&small);
        let mut got = std::vec::Vec::new();
        // Each poll reads what it can; a few take everything.
        for _ in 0..10 {
            c.poll(2, |m| {
                got.push((m.topic.as_str().to_owned(), m.payload.to_vec()))
            })
            .unwrap();
        }
        assert!(c.transport().input.is_empty());
        assert_eq!(got, [("small".to_owned(), b"ok".to_vec())]);
        assert_eq!(c.skipped_packets(), 1);
        assert!(c.is_connected());
    }

    #[test]
    fn a_v5_packet_larger_than_the_maximum_packet_size_ends_the_connection_with_0x95() {
        let (mut c, _) = connected(ProtocolVersion::V5);
        let big = publish_bytes("big", &[b'x'; 60], true);
        c.transport().input.extend(&big);
        let e = c.poll(2, |m| panic!("unexpected {m:?}")).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Decode(DecodeError::PacketTooLarge { max: 32, .. })
            ),
            "{e:?}"
        );
        assert_eq!(c.transport().output, [0xE0, 0x01, 0x95]);
        assert!(!c.is_connected());
        assert_eq!(c.skipped_packets(), 0);
    }

    #[test]
    fn moving_to_the_front_is_copy_within() {
        for len in 0..20u8 {
            for from in 0..=usize::from(len) {
                let original: std::vec::Vec<u8> = (0..len).collect();
                let mut expected = original.clone();
                expected.copy_within(from.., 0);
                let mut moved = original.clone();
                move_to_front(&mut moved, from);
                assert_eq!(moved, expected, "len {len}, from {from}");
            }
        }
    }

    #[test]
    fn outbox_packs_finds_and_drops_records() {
        let mut o = Outbox::<32>::new();
        let id = |n| PacketId::new(n).unwrap();
        assert!(o.fits(28) && !o.fits(29));
        o.push(id(1), |b| {
            b[..3].copy_from_slice(b"abc");
            Ok(3)
        })
        .unwrap();
        o.push(id(2), |b| {
            b[..2].copy_from_slice(b"de");
            Ok(2)
        })
        .unwrap();
        assert_eq!(o.packet_mut(id(2)).unwrap(), b"de");
        o.retain(|i| i.get() == 2);
        assert!(o.packet_mut(id(1)).is_none());
        assert_eq!(o.packet_mut(id(2)).unwrap(), b"de");
        assert_eq!(o.len, 6);
    }
}
