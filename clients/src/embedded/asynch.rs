//! The async twin of [`super::Client`] (feature `embedded-async`): the same client over
//! [`embedded_io_async`]'s `Read + ReadReady + Write` — an embassy-net TCP socket, an async UART
//! — usable from embassy or any executor. Every decision is the blocking client's (one shared
//! session); only the writes are awaited.
//!
//! [`Client::poll`] still never waits for input: it reads what [`ReadReady`] says is there and
//! returns when it next wants to be called, so the application awaits its timer (or an input
//! signal) in between, and keep-alive runs while nothing arrives.
//!
//! ```
//! use wren_clients::embedded::{asynch::Client, Config};
//! use wren_codec::{Connect, ProtocolVersion, QoS};
//! # struct Socket;
//! # impl embedded_io_async::ErrorType for Socket { type Error = embedded_io_async::ErrorKind; }
//! # impl embedded_io_async::Read for Socket {
//! #     async fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> { Ok(0) }
//! # }
//! # impl embedded_io_async::ReadReady for Socket {
//! #     fn read_ready(&mut self) -> Result<bool, Self::Error> { Ok(false) }
//! # }
//! # impl embedded_io_async::Write for Socket {
//! #     async fn write(&mut self, b: &[u8]) -> Result<usize, Self::Error> { Ok(b.len()) }
//! #     async fn flush(&mut self) -> Result<(), Self::Error> { Ok(()) }
//! # }
//! # fn now_ms() -> u32 { 0 }
//! async fn sensor(socket: Socket) -> Result<(), wren_clients::embedded::Error<embedded_io_async::ErrorKind>> {
//!     let mut mqtt: Client<Socket, 256, 128, 256, 4> =
//!         Client::new(socket, Config::new(ProtocolVersion::V311));
//!     mqtt.connect(Connect::new("sensor-1"), now_ms()).await?;
//!     // ... poll (awaiting a timer in between) until `mqtt.is_connected()`, then:
//!     // let id = mqtt.publish("site/temperature", b"21.5", QoS::AtLeastOnce, now_ms()).await?;
//!     Ok(())
//! }
//! ```

use embedded_io_async::{Read, ReadReady, Write};
use wren_codec::{
    PacketId, Publish, QoS, Subscription, SubscriptionOptions, TopicFilter, TopicName,
};

use super::{Config, Due, Error, Session, Step};
use crate::engine::{Engine, Instant, Message, State};

/// [`super::Client`] over `embedded-io-async`: the same buffers (`RX`, `TX`, `OUTBOX`, `N`),
/// the same behaviour, awaited writes.
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
    #[inline(always)]
    pub const fn new(transport: T, config: Config) -> Self {
        Client {
            transport,
            session: Session::new(config),
        }
    }

    /// [`super::Client::connect`]: send CONNECT.
    pub async fn connect(
        &mut self,
        connect: wren_codec::Connect<'_>,
        now_ms: u32,
    ) -> Result<(), Error<T::Error>> {
        let bytes = self.session.connect(connect, now_ms)?;
        write(&mut self.transport, bytes).await
    }

    /// Whether the server accepted the connection (and it has not been lost since).
    pub fn is_connected(&self) -> bool {
        self.session.engine.state() == State::Connected
    }

    /// Whether the flow `id` (a publish or subscribe) still awaits its acknowledgement.
    pub fn is_pending(&self, id: impl Into<Option<PacketId>>) -> bool {
        id.into()
            .is_some_and(|id| self.session.engine.stage_of(id).is_some())
    }

    /// [`super::Client::skipped_packets`].
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

    /// Subscribe to one filter; returns the SUBSCRIBE's packet identifier.
    pub async fn subscribe(
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
        self.subscribe_all(&subscriptions, now_ms).await
    }

    /// Subscribe to several filters with their options in one SUBSCRIBE.
    pub async fn subscribe_all(
        &mut self,
        subscriptions: &[Subscription<'_>],
        now_ms: u32,
    ) -> Result<PacketId, Error<T::Error>> {
        let (id, bytes) = self.session.subscribe_all(subscriptions, now_ms)?;
        write(&mut self.transport, bytes).await?;
        Ok(id)
    }

    /// [`super::Client::publish`]: the packet identifier of a QoS 1/2 message.
    pub async fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        now_ms: u32,
    ) -> Result<Option<PacketId>, Error<T::Error>> {
        let topic = TopicName::new(topic).map_err(Error::Topic)?;
        self.publish_message(Message::new(topic, payload, qos), now_ms)
            .await
    }

    /// Publish a [`Message`] (retain flag, 5.0 properties).
    pub async fn publish_message(
        &mut self,
        message: Message<'_>,
        now_ms: u32,
    ) -> Result<Option<PacketId>, Error<T::Error>> {
        let (id, bytes) = self.session.publish_message(message, now_ms)?;
        write(&mut self.transport, bytes).await?;
        Ok(id)
    }

    /// [`super::Client::poll`]: read what the transport has ready, handle every complete packet
    /// (messages go to `on_message`), send what is due; when to poll next. Never waits for
    /// input.
    pub async fn poll(
        &mut self,
        now_ms: u32,
        mut on_message: impl FnMut(&Publish<'_>),
    ) -> Result<Option<u32>, Error<T::Error>> {
        let now = self.session.clock.instant(now_ms);
        loop {
            self.handle_buffered(now, &mut on_message).await?;
            if !self.transport.read_ready().map_err(Error::Io)? {
                break;
            }
            let scratch = self.session.read_buffer()?;
            let n = self.transport.read(scratch).await.map_err(Error::Io)?;
            self.session.received(n)?;
        }
        loop {
            match self.session.next_due(now)? {
                Due::Write(bytes) => write(&mut self.transport, bytes).await?,
                Due::Wait(next) => return Ok(next),
            }
        }
    }

    async fn handle_buffered(
        &mut self,
        now: Instant,
        on_message: &mut impl FnMut(&Publish<'_>),
    ) -> Result<(), Error<T::Error>> {
        loop {
            match self.session.handle_next(now, on_message)? {
                Step::Idle => return Ok(()),
                Step::Handled(n) => write(&mut self.transport, self.session.written(n)).await?,
                Step::Refused(n, e) => {
                    // Best effort: the connection is over whether or not it is sent.
                    let _ = write(&mut self.transport, self.session.written(n)).await;
                    return Err(Error::Decode(e));
                }
            }
        }
    }

    /// Send DISCONNECT: the connection ends cleanly (the server discards the will).
    pub async fn disconnect(&mut self, now_ms: u32) -> Result<(), Error<T::Error>> {
        let bytes = self.session.disconnect(now_ms)?;
        write(&mut self.transport, bytes).await
    }

    /// [`super::Client::reconnect`]: a new transport, the same session.
    pub fn reconnect(&mut self, transport: T) -> T {
        self.session.reconnect();
        core::mem::replace(&mut self.transport, transport)
    }

    /// Give the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }
}

/// The client's state, not its buffers or its transport (which need not be `Format`).
#[cfg(feature = "defmt")]
impl<T, const RX: usize, const TX: usize, const OUTBOX: usize, const N: usize> defmt::Format
    for Client<T, RX, TX, OUTBOX, N>
{
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "asynch::Client {{ {} }}", self.session);
    }
}

/// Write `bytes` (none: nothing to do) and flush.
async fn write<T: Write>(transport: &mut T, bytes: &[u8]) -> Result<(), Error<T::Error>> {
    if bytes.is_empty() {
        return Ok(());
    }
    transport.write_all(bytes).await.map_err(Error::Io)?;
    transport.flush().await.map_err(Error::Io)
}
