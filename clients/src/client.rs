//! The async client: a background task on smol drives the [`crate::engine`] over a TCP
//! connection (async-net), and a cheap [`Client`] handle talks to it through channels.
//!
//! Every command (`publish`, `subscribe`, …) is a message to the task, and everything that
//! happens on the connection comes back as an [`Event`] from [`Client::next_event`]. Both sides
//! are channels, so an application can wait on events and on its own input at the same time
//! without losing anything (channel receives are cancel-safe).
//!
//! With [`ClientOptions::reconnect`] set, a lost connection is re-established with exponential
//! backoff; the session's in-flight QoS 1/2 messages are resent (DUP) when the broker resumes
//! the session, and subscriptions are renewed when it does not.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use smol::Timer;
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::TcpStream;
use wren_codec::{
    Connect, DecodeOptions, List, Packet, PacketId, PayloadFormat, Properties, ProtocolVersion,
    QoS, QosPid, ReasonCode, Status, Subscription, SubscriptionOptions, TopicFilter, TopicName,
    Will, decode,
};

use crate::engine::{self, Backoff, ConnectRefused, Engine, Message, Poll};

/// How many flows the engine can track; [`ClientOptions::max_in_flight`] limits publishes below.
/// In-flight flows each way the engine tracks at most.
pub const ENGINE_CAPACITY: usize = 256;
/// The engine [`Client`] and [`handshake`] use.
pub type ClientEngine = Engine<ENGINE_CAPACITY, ENGINE_CAPACITY>;

/// 5.0 properties of an application message, owned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageProperties {
    /// Payload Format Indicator: `Some(true)` for UTF-8 text.
    pub payload_format_utf8: Option<bool>,
    /// Message Expiry Interval, seconds.
    pub message_expiry_interval: Option<u32>,
    /// Content Type.
    pub content_type: Option<String>,
    /// Response Topic.
    pub response_topic: Option<String>,
    /// Correlation Data.
    pub correlation_data: Option<Vec<u8>>,
    /// User properties, in order.
    pub user_properties: Vec<(String, String)>,
    /// Subscription identifiers (received messages only).
    pub subscription_identifiers: Vec<u32>,
    /// Topic Alias (sent as given, as `mosquitto_pub -D publish topic-alias N` does: with the
    /// topic; wren asks the broker for no aliases, so received messages carry none).
    pub topic_alias: Option<u16>,
}

impl MessageProperties {
    /// The owned copy of a message's codec properties.
    pub fn from_codec(p: &Properties<'_>) -> Self {
        MessageProperties {
            payload_format_utf8: p.payload_format_indicator.map(|f| f == PayloadFormat::Utf8),
            message_expiry_interval: p.message_expiry_interval,
            content_type: p.content_type.map(str::to_owned),
            response_topic: p.response_topic.map(|t| t.as_str().to_owned()),
            correlation_data: p.correlation_data.map(<[u8]>::to_vec),
            user_properties: p
                .user_properties
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            subscription_identifiers: p.subscription_identifiers.iter().collect(),
            topic_alias: p.topic_alias.map(|a| a.get()),
        }
    }

    /// Codec properties borrowing from `self`; `pairs` must be `self.user_pairs()`.
    pub fn to_codec<'a>(
        &'a self,
        pairs: &'a [(&'a str, &'a str)],
    ) -> Result<Properties<'a>, ClientError> {
        let response_topic = match &self.response_topic {
            Some(t) => Some(TopicName::new(t).map_err(|_| ClientError::InvalidTopic(t.clone()))?),
            None => None,
        };
        Ok(Properties {
            payload_format_indicator: self.payload_format_utf8.map(|utf8| {
                if utf8 {
                    PayloadFormat::Utf8
                } else {
                    PayloadFormat::Unspecified
                }
            }),
            message_expiry_interval: self.message_expiry_interval,
            content_type: self.content_type.as_deref(),
            response_topic,
            correlation_data: self.correlation_data.as_deref(),
            user_properties: List::new(pairs),
            topic_alias: self.topic_alias.and_then(std::num::NonZeroU16::new),
            ..Properties::default()
        })
    }

    /// The user properties as borrowed pairs, for [`MessageProperties::to_codec`].
    pub fn user_pairs(&self) -> Vec<(&str, &str)> {
        self.user_properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }
}

/// A message to publish (also the shape of a will).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// 5.0 properties (left out on 3.1.1 connections).
    pub properties: MessageProperties,
}

impl OutgoingMessage {
    /// The engine's borrowed view of this message, for a first send or a retransmission;
    /// `pairs` is `self.properties.user_pairs()`, kept alive by the caller.
    fn to_engine<'a>(
        &'a self,
        pairs: &'a [(&'a str, &'a str)],
    ) -> Result<Message<'a>, ClientError> {
        let topic = TopicName::new(&self.topic)
            .map_err(|_| ClientError::InvalidTopic(self.topic.clone()))?;
        Ok(Message {
            topic,
            payload: &self.payload,
            qos: self.qos,
            retain: self.retain,
            properties: self.properties.to_codec(pairs)?,
        })
    }

    /// A non-retained message without properties.
    pub fn new(topic: impl Into<String>, payload: impl Into<Vec<u8>>, qos: QoS) -> Self {
        OutgoingMessage {
            topic: topic.into(),
            payload: payload.into(),
            qos,
            retain: false,
            properties: MessageProperties::default(),
        }
    }

    /// The same message with RETAIN set as given.
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }
}

/// A received application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// Topic name.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS it was delivered with.
    pub qos: QoS,
    /// RETAIN: a retained message sent because of a new subscription.
    pub retain: bool,
    /// DUP flag as received.
    pub dup: bool,
    /// Packet identifier (QoS 1 and 2), Mosquitto's "mid".
    pub packet_id: Option<u16>,
    /// 5.0 properties.
    pub properties: MessageProperties,
}

/// An acknowledgement of one of our packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckInfo {
    /// Packet identifier.
    pub packet_id: u16,
    /// Reason code (always 0 in 3.1.1).
    pub reason_code: u8,
    /// 5.0 Reason String.
    pub reason_string: Option<String>,
}

/// What an accepted connection told us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected {
    /// Whether the broker resumed a session.
    pub session_present: bool,
    /// 5.0 Assigned Client Identifier (when we connected with an empty id).
    pub assigned_client_id: Option<String>,
    /// Keep alive in effect, seconds (5.0 Server Keep Alive may override ours).
    pub keep_alive: u64,
}

/// Something that happened on the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// (Re)connected: CONNACK accepted the connection.
    Connected(Connected),
    /// An application message.
    Message(ReceivedMessage),
    /// PUBACK: a QoS 1 publish is done.
    PubAck(AckInfo),
    /// PUBREC: a QoS 2 publish reached the broker (PUBREL follows unless the code is a failure).
    PubRec(AckInfo),
    /// PUBCOMP: a QoS 2 publish is done.
    PubComp(AckInfo),
    /// SUBACK: one code per filter — granted QoS 0–2, or 0x80 and above for a refusal.
    SubAck {
        /// Packet identifier of the SUBSCRIBE.
        packet_id: u16,
        /// Granted QoS or failure code per filter.
        codes: Vec<u8>,
    },
    /// UNSUBACK (5.0: one code per filter; 3.1.1: none).
    UnsubAck {
        /// Packet identifier of the UNSUBSCRIBE.
        packet_id: u16,
        /// Codes per filter.
        codes: Vec<u8>,
    },
    /// PINGRESP.
    PingResp,
    /// The broker sent DISCONNECT (5.0) with this reason code.
    ServerDisconnect {
        /// Reason code.
        reason_code: u8,
        /// Reason String.
        reason_string: Option<String>,
    },
    /// The connection was lost; with reconnection enabled, `Reconnecting` follows.
    ConnectionLost(String),
    /// Waiting this long before the next connection attempt.
    Reconnecting(Duration),
    /// A debug line in Mosquitto's `-d` style (only with [`ClientOptions::debug`]).
    Log(String),
    /// The task ended (after [`Client::disconnect`], or a loss without reconnection). Last event.
    Closed,
}

/// Why a client operation failed.
#[derive(Debug)]
pub enum ClientError {
    /// Socket error (connect, read, write).
    Io(std::io::Error),
    /// The broker refused the connection (its CONNACK code is the tools' exit status).
    Refused(ConnectRefused),
    /// The engine refused the operation, or the broker broke the protocol.
    Engine(engine::Error),
    /// The broker sent bytes that are not a valid packet.
    Malformed(String),
    /// No CONNACK in time, or the connection could not be made in time.
    Timeout,
    /// The connection closed (cleanly or not) before the operation finished.
    Closed,
    /// A topic name or filter that MQTT does not allow.
    InvalidTopic(String),
    /// Not connected (and no reconnection configured to wait for).
    NotConnected,
    /// The TLS handshake failed (the server's certificate, or ours, was refused).
    Tls(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Refused(r) => write!(f, "{r}"),
            ClientError::Engine(e) => write!(f, "{e}"),
            ClientError::Malformed(e) => write!(f, "malformed packet from the broker: {e}"),
            ClientError::Timeout => f.write_str("timed out waiting for the broker"),
            ClientError::Closed => f.write_str("the connection is closed"),
            ClientError::InvalidTopic(t) => write!(f, "invalid topic '{t}'"),
            ClientError::NotConnected => f.write_str("not connected"),
            ClientError::Tls(e) => write!(f, "TLS handshake failed: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<engine::Error> for ClientError {
    fn from(e: engine::Error) -> Self {
        match e {
            engine::Error::Refused(r) => ClientError::Refused(r),
            e => ClientError::Engine(e),
        }
    }
}

impl From<std::io::Error> for ClientError {
    fn from(e: std::io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// Automatic reconnection with exponential backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconnect {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for Reconnect {
    fn default() -> Self {
        Reconnect {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// 5.0 properties for CONNECT (besides session expiry and user properties), every SUBSCRIBE,
/// every UNSUBSCRIBE and the DISCONNECT, as Mosquitto's tools set them with `-D`. Sent with 5.0
/// only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestProperties {
    /// CONNECT Receive Maximum.
    pub receive_maximum: Option<u16>,
    /// CONNECT Maximum Packet Size.
    pub maximum_packet_size: Option<u32>,
    /// CONNECT Request Problem Information.
    pub request_problem_information: Option<bool>,
    /// CONNECT Request Response Information.
    pub request_response_information: Option<bool>,
    /// CONNECT Authentication Method.
    pub authentication_method: Option<String>,
    /// CONNECT Authentication Data.
    pub authentication_data: Option<Vec<u8>>,
    /// SUBSCRIBE Subscription Identifier.
    pub subscription_identifier: Option<u32>,
    /// SUBSCRIBE user properties.
    pub subscribe_user_properties: Vec<(String, String)>,
    /// UNSUBSCRIBE user properties.
    pub unsubscribe_user_properties: Vec<(String, String)>,
    /// DISCONNECT Session Expiry Interval.
    pub disconnect_session_expiry: Option<u32>,
    /// DISCONNECT Reason String.
    pub disconnect_reason_string: Option<String>,
    /// DISCONNECT user properties.
    pub disconnect_user_properties: Vec<(String, String)>,
}

fn pairs_of(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Everything needed to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client identifier (may be empty in 5.0: the broker assigns one).
    pub client_id: String,
    /// Protocol version.
    pub version: ProtocolVersion,
    /// Keep alive, seconds (0: off).
    pub keep_alive: u16,
    /// Clean session (3.1.1) / clean start (5.0).
    pub clean_start: bool,
    /// 5.0 Session Expiry Interval, seconds.
    pub session_expiry: Option<u32>,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Vec<u8>>,
    /// Will message.
    pub will: Option<OutgoingMessage>,
    /// 5.0 CONNECT user properties.
    pub user_properties: Vec<(String, String)>,
    /// 5.0 properties of the other packets the client sends (the tools' `-D`).
    pub request_properties: RequestProperties,
    /// Reconnect after a lost connection (not after a refusal at the first connect).
    pub reconnect: Option<Reconnect>,
    /// Emit [`Event::Log`] lines describing every packet.
    pub debug: bool,
    /// Time allowed for TCP connect plus CONNACK.
    pub connect_timeout: Duration,
    /// Most QoS 1/2 publishes awaiting acknowledgement; more wait their turn (Mosquitto's `-M`).
    pub max_in_flight: usize,
    /// 3.1.1 only: resend an unacknowledged QoS 1/2 PUBLISH (DUP) or PUBREL after this long.
    /// `None` (default) resends only after reconnecting to a resumed session, as 5.0 requires.
    pub retry_interval: Option<Duration>,
    /// TLS over the TCP connection, verifying the server as `host` (Mosquitto's `--cafile`...).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Local address to bind before connecting (Mosquitto's `-A`).
    pub bind_address: Option<String>,
    /// Disable Nagle's algorithm (default on: small packets such as acks must not wait).
    pub nodelay: bool,
    /// Connect over this Unix socket instead of TCP (`host` and `port` unused).
    pub unix_socket: Option<PathBuf>,
    /// Connect through this SOCKS5 proxy (Mosquitto's `--proxy`).
    pub proxy: Option<crate::socks::Proxy>,
    /// Say in CONNECT that this client is a bridge (Mosquitto's `try_private`: protocol level
    /// | 0x80), so that a Mosquitto or Wren broker sends it none of its own messages back.
    pub bridge: bool,
}

/// A connection's byte stream: TCP, TLS over TCP, or a Unix socket.
/// What a connection's byte stream can do.
pub trait Io: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Io for T {}
/// A connection's byte stream.
pub type Stream = Box<dyn Io>;

/// A failed handshake, with rustls's reason.
fn tls_error(e: std::io::Error) -> ClientError {
    ClientError::Tls(e.to_string())
}

impl ClientOptions {
    /// MQTT 3.1.1, clean session, keep alive 60 s, no reconnection.
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>) -> Self {
        ClientOptions {
            host: host.into(),
            port,
            client_id: client_id.into(),
            version: ProtocolVersion::V311,
            keep_alive: 60,
            clean_start: true,
            session_expiry: None,
            username: None,
            password: None,
            will: None,
            user_properties: Vec::new(),
            request_properties: RequestProperties::default(),
            reconnect: None,
            debug: false,
            connect_timeout: Duration::from_secs(30),
            max_in_flight: 20,
            retry_interval: None,
            tls: None,
            bind_address: None,
            nodelay: true,
            unix_socket: None,
            proxy: None,
            bridge: false,
        }
    }
}

type Reply<T> = Sender<Result<T, ClientError>>;

enum Command {
    Publish(OutgoingMessage, Reply<Option<u16>>),
    Subscribe(Vec<(String, SubscriptionOptions)>, Reply<u16>),
    Unsubscribe(Vec<String>, Reply<u16>),
    Disconnect(Sender<()>),
}

/// A handle to a connection task. Cloning it gives another handle to the same connection.
#[derive(Debug, Clone)]
pub struct Client {
    commands: Sender<Command>,
    events: Receiver<Event>,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::Publish(..) => "Publish",
            Command::Subscribe(..) => "Subscribe",
            Command::Unsubscribe(..) => "Unsubscribe",
            Command::Disconnect(..) => "Disconnect",
        })
    }
}

impl Client {
    /// Connect, wait for CONNACK, and start the connection task (on smol's global executor).
    ///
    /// A refusal is [`ClientError::Refused`] with the CONNACK code; the first connection is
    /// never retried (as Mosquitto's tools), later losses are when [`ClientOptions::reconnect`]
    /// says so.
    pub async fn connect(options: ClientOptions) -> Result<(Client, Connected), ClientError> {
        Self::start(options).await
    }

    async fn start(options: ClientOptions) -> Result<(Client, Connected), ClientError> {
        let (event_tx, event_rx) = channel::unbounded();
        let (command_tx, command_rx) = channel::unbounded();
        let mut task = Task::new(options, event_tx, command_rx);
        let connected = task.establish().await?;
        task.emit(Event::Connected(connected.clone()));
        smol::spawn(task.run()).detach();
        Ok((
            Client {
                commands: command_tx,
                events: event_rx,
            },
            connected,
        ))
    }

    async fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, ClientError> {
        let (tx, rx) = channel::bounded(1);
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| ClientError::Closed)?;
        rx.recv().await.map_err(|_| ClientError::Closed)?
    }

    /// Publish: returns once the PUBLISH is written (or queued while reconnecting), with its
    /// packet identifier for QoS 1/2. Completion arrives as [`Event::PubAck`] /
    /// [`Event::PubComp`]. Waits while [`ClientOptions::max_in_flight`] flows are open.
    pub async fn publish(&self, message: OutgoingMessage) -> Result<Option<u16>, ClientError> {
        self.request(|r| Command::Publish(message, r)).await
    }

    /// Subscribe to filters with a maximum QoS each; returns the SUBSCRIBE's packet identifier.
    pub async fn subscribe(&self, filters: Vec<(String, QoS)>) -> Result<u16, ClientError> {
        let filters = filters
            .into_iter()
            .map(|(f, q)| (f, SubscriptionOptions::qos(q)))
            .collect();
        self.subscribe_with_options(filters).await
    }

    /// Subscribe with full 5.0 subscription options.
    pub async fn subscribe_with_options(
        &self,
        filters: Vec<(String, SubscriptionOptions)>,
    ) -> Result<u16, ClientError> {
        self.request(|r| Command::Subscribe(filters, r)).await
    }

    /// Unsubscribe; returns the UNSUBSCRIBE's packet identifier.
    pub async fn unsubscribe(&self, filters: Vec<String>) -> Result<u16, ClientError> {
        self.request(|r| Command::Unsubscribe(filters, r)).await
    }

    /// The next event; `None` once the task has ended and every event was taken.
    pub async fn next_event(&self) -> Option<Event> {
        self.events.recv().await.ok()
    }

    /// The next event if one is waiting (never blocks).
    pub fn try_next_event(&self) -> Option<Event> {
        self.events.try_recv().ok()
    }

    /// Send DISCONNECT and close the socket (the broker then discards the will). Returns when
    /// done; a no-op if the connection task already ended.
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        let (tx, rx) = channel::bounded(1);
        if self.commands.send(Command::Disconnect(tx)).await.is_ok() {
            let _ = rx.recv().await;
        }
        Ok(())
    }
}

/// The byte stream to the broker `o` names: Unix socket, or TCP (bound to `-A`, through the
/// proxy), then TLS.
pub async fn open(o: &ClientOptions) -> Result<Stream, ClientError> {
    #[cfg(unix)]
    if let Some(path) = &o.unix_socket {
        return Ok(Box::new(smol::net::unix::UnixStream::connect(path).await?));
    }
    #[cfg(not(unix))]
    if o.unix_socket.is_some() {
        return Err(ClientError::Io(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "Unix sockets are not available on this system",
        )));
    }
    let tcp = match (&o.proxy, &o.bind_address) {
        (Some(proxy), _) => proxy.connect(&o.host, o.port).await?,
        (None, None) => TcpStream::connect((o.host.as_str(), o.port)).await?,
        (None, Some(local)) => connect_from(local, &o.host, o.port).await?,
    };
    if o.nodelay {
        let _ = tcp.set_nodelay(true);
    }
    let Some(config) = &o.tls else {
        return Ok(Box::new(tcp));
    };
    let name = rustls::pki_types::ServerName::try_from(o.host.clone())
        .map_err(|_| ClientError::Tls(format!("'{}' is not a valid server name", o.host)))?;
    let tls = futures_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .map_err(tls_error)?;
    Ok(Box::new(tls))
}

/// CONNECT on `stream` and wait for the CONNACK, the engine tracking the connection (its clock
/// counts from `epoch`); `log` gets Mosquitto-style `-d` lines. Returns the stream, the bytes that
/// came behind the CONNACK, and what the CONNACK said. What [`Client`]'s task connects with; a
/// program that drives the engine itself (the broker's bridge) connects with it too. No time
/// limit here: the caller sets one.
pub async fn handshake(
    engine: &mut ClientEngine,
    mut stream: Stream,
    o: &ClientOptions,
    epoch: StdInstant,
    log: &(dyn Fn(String) + Sync),
) -> Result<(Stream, Vec<u8>, Connected), ClientError> {
    let now = || engine::Instant::from_millis(millis(epoch.elapsed()));
    let mut rx = Vec::new();
    let will_pairs = o
        .will
        .as_ref()
        .map(|w| w.properties.user_pairs())
        .unwrap_or_default();
    let will = match &o.will {
        Some(w) => Some(Will {
            topic: TopicName::new(&w.topic)
                .map_err(|_| ClientError::InvalidTopic(w.topic.clone()))?,
            payload: &w.payload,
            qos: w.qos,
            retain: w.retain,
            properties: w.properties.to_codec(&will_pairs)?,
        }),
        None => None,
    };
    let pairs: Vec<(&str, &str)> = o
        .user_properties
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let connect = Connect {
        protocol: o.version,
        bridge: o.bridge,
        clean_start: o.clean_start,
        keep_alive: o.keep_alive,
        client_id: &o.client_id,
        will,
        username: o.username.as_deref(),
        password: o.password.as_deref(),
        properties: Properties {
            session_expiry_interval: o.session_expiry,
            user_properties: List::new(&pairs),
            receive_maximum: o
                .request_properties
                .receive_maximum
                .and_then(std::num::NonZeroU16::new),
            maximum_packet_size: o
                .request_properties
                .maximum_packet_size
                .and_then(std::num::NonZeroU32::new),
            request_problem_information: o.request_properties.request_problem_information,
            request_response_information: o.request_properties.request_response_information,
            authentication_method: o.request_properties.authentication_method.as_deref(),
            authentication_data: o.request_properties.authentication_data.as_deref(),
            ..Properties::default()
        },
    };
    let packet = engine.connect(connect, now())?;
    // Encode here, as `send` needs `&mut self` while `packet` borrows the options.
    let mut buf = vec![
        0u8;
        packet
            .encoded_len(o.version)
            .map_err(|e| ClientError::Malformed(e.to_string()))?
    ];
    packet
        .encode(o.version, &mut buf)
        .map_err(|e| ClientError::Malformed(e.to_string()))?;
    log(describe(&o.client_id, "sending", &packet));
    stream.write_all(&buf).await?;
    let mut chunk = [0u8; 4096];
    loop {
        let options = DecodeOptions::new(engine.version()).from_server();
        if let Status::Complete(d) =
            decode(&rx, options).map_err(|e| ClientError::Malformed(e.to_string()))?
        {
            let consumed = d.consumed;
            log(describe(&o.client_id, "received", &d.packet));
            let handled = engine.handle(d.packet, now());
            let connected = match handled {
                Ok(engine::Handled {
                    event:
                        Some(engine::Event::Connected {
                            session_present,
                            connack,
                        }),
                    ..
                }) => Connected {
                    session_present,
                    assigned_client_id: connack
                        .properties
                        .assigned_client_identifier
                        .map(str::to_owned),
                    keep_alive: engine.keep_alive_secs(),
                },
                Ok(_) => {
                    return Err(ClientError::Engine(engine::Error::Protocol("no CONNACK")));
                }
                Err(e) => return Err(e.into()),
            };
            rx.drain(..consumed.min(rx.len()));
            return Ok((stream, rx, connected));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "the broker closed the connection before CONNACK",
            )));
        }
        rx.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// TCP connect from the local address `local` (Mosquitto's `-A`): bind, then connect, on a
/// blocking thread (std cannot bind before connecting; socket2 can).
async fn connect_from(local: &str, host: &str, port: u16) -> Result<TcpStream, ClientError> {
    let local = local.to_owned();
    let host = host.to_owned();
    let std = smol::unblock(move || -> std::io::Result<std::net::TcpStream> {
        use std::net::ToSocketAddrs;
        let mut last = None;
        for remote in (host.as_str(), port).to_socket_addrs()? {
            let ip = (local.as_str(), 0u16)
                .to_socket_addrs()?
                .find(|a| a.is_ipv4() == remote.is_ipv4());
            let Some(bind) = ip else {
                last = Some(std::io::Error::new(
                    std::io::ErrorKind::AddrNotAvailable,
                    "Cannot assign requested address",
                ));
                continue;
            };
            let domain = socket2::Domain::for_address(remote);
            let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
            socket.bind(&bind.into())?;
            match socket.connect(&remote.into()) {
                Ok(()) => return Ok(socket.into()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no address for the host")))
    })
    .await?;
    Ok(TcpStream::try_from(std)?)
}

enum Wake {
    Command(Option<Command>),
    Read(std::io::Result<usize>),
    Timer,
}

/// Why the connection loop stopped.
enum Stop {
    /// DISCONNECT sent on request (or every handle dropped).
    Requested(Option<Sender<()>>),
    /// The connection broke.
    Lost(String),
}

struct Task {
    options: ClientOptions,
    engine: Box<ClientEngine>,
    epoch: StdInstant,
    events: Sender<Event>,
    commands: Receiver<Command>,
    stream: Option<Stream>,
    rx: Vec<u8>,
    /// Messages of in-flight QoS 1/2 flows, kept for retransmission.
    stored: HashMap<u16, OutgoingMessage>,
    /// Publishes waiting for an in-flight slot or for the connection.
    pending: VecDeque<(OutgoingMessage, Reply<Option<u16>>)>,
    /// Subscriptions to renew when a reconnection finds no session.
    subscriptions: Vec<(String, SubscriptionOptions)>,
    backoff: Backoff,
    /// libmosquitto's message counter, for `-d` lines only: it numbers QoS 0 PUBLISHes too.
    log_mid: u16,
}

impl Task {
    fn new(options: ClientOptions, events: Sender<Event>, commands: Receiver<Command>) -> Self {
        let mut config = engine::Config::new(options.version);
        config.connect_timeout_ms = millis(options.connect_timeout);
        config.retry_interval_ms = options.retry_interval.map(millis);
        let reconnect = options.reconnect.unwrap_or_default();
        Task {
            engine: Box::new(Engine::new(config)),
            epoch: StdInstant::now(),
            events,
            commands,
            stream: None,
            rx: Vec::new(),
            stored: HashMap::new(),
            pending: VecDeque::new(),
            subscriptions: Vec::new(),
            backoff: Backoff::new(millis(reconnect.initial), millis(reconnect.max)),
            log_mid: 0,
            options,
        }
    }

    fn now(&self) -> engine::Instant {
        engine::Instant::from_millis(millis(self.epoch.elapsed()))
    }

    fn emit(&self, event: Event) {
        // Unbounded: the task never waits on a slow reader (which could be waiting on us).
        let _ = self.events.try_send(event);
    }

    fn log(&self, line: impl FnOnce() -> String) {
        if self.options.debug {
            self.emit(Event::Log(line()));
        }
    }

    async fn send(&mut self, packet: &Packet<'_>) -> Result<(), ClientError> {
        let version = self.engine.version();
        let len = packet
            .encoded_len(version)
            .map_err(|e| ClientError::Malformed(format!("cannot encode: {e}")))?;
        let mut buf = vec![0u8; len];
        packet
            .encode(version, &mut buf)
            .map_err(|e| ClientError::Malformed(format!("cannot encode: {e}")))?;
        if self.options.debug {
            let mut line = describe(&self.options.client_id, "sending", packet);
            match packet {
                Packet::Publish(p) if p.qos_pid == QosPid::AtMostOnce => {
                    self.log_mid = self.log_mid.checked_add(1).unwrap_or(1);
                    line = line.replacen(", m0, '", &format!(", m{}, '", self.log_mid), 1);
                }
                Packet::Publish(p) => {
                    if let QosPid::AtLeastOnce(id) | QosPid::ExactlyOnce(id) = p.qos_pid {
                        self.log_mid = id.get();
                    }
                }
                Packet::Subscribe(s) => self.log_mid = s.packet_id.get(),
                Packet::Unsubscribe(u) => self.log_mid = u.packet_id.get(),
                _ => {}
            }
            self.emit(Event::Log(line));
        }
        let stream = self.stream.as_mut().ok_or(ClientError::NotConnected)?;
        stream.write_all(&buf).await?;
        Ok(())
    }

    /// TCP connect, CONNECT, wait for CONNACK.
    async fn establish(&mut self) -> Result<Connected, ClientError> {
        let timeout = self.options.connect_timeout;
        let deadline = async {
            Timer::after(timeout).await;
            Err(ClientError::Timeout)
        };
        self.rx.clear();
        let result = self.establish_inner().or(deadline).await;
        if result.is_err() {
            self.engine.connection_lost();
            self.stream = None;
        }
        result
    }

    async fn establish_inner(&mut self) -> Result<Connected, ClientError> {
        let stream = open(&self.options).await?;
        let epoch = self.epoch;
        let debug = self.options.debug;
        let events = self.events.clone();
        let log = move |line: String| {
            if debug {
                let _ = events.try_send(Event::Log(line));
            }
        };
        let (stream, rx, connected) =
            handshake(&mut self.engine, stream, &self.options, epoch, &log).await?;
        self.stream = Some(stream);
        self.rx = rx;
        self.backoff.reset();
        Ok(connected)
    }

    async fn run(mut self) {
        loop {
            let stop = self.serve().await;
            self.stream = None;
            match stop {
                Stop::Requested(done) => {
                    self.close_commands();
                    self.emit(Event::Closed);
                    if let Some(done) = done {
                        let _ = done.try_send(());
                    }
                    return;
                }
                Stop::Lost(why) => {
                    self.engine.connection_lost();
                    self.emit(Event::ConnectionLost(why));
                    if self.options.reconnect.is_none() || !self.reconnect().await {
                        self.close_commands();
                        self.emit(Event::Closed);
                        return;
                    }
                }
            }
        }
    }

    fn fail_pending(&mut self) {
        for (_, reply) in self.pending.drain(..) {
            let _ = reply.try_send(Err(ClientError::Closed));
        }
    }

    /// The task is ending: refuse new commands and answer those already queued, whose reply
    /// senders would otherwise stay alive in the channel and leave their callers waiting.
    fn close_commands(&mut self) {
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Publish(_, r) => {
                    let _ = r.try_send(Err(ClientError::Closed));
                }
                Command::Subscribe(_, r) | Command::Unsubscribe(_, r) => {
                    let _ = r.try_send(Err(ClientError::Closed));
                }
                Command::Disconnect(done) => {
                    let _ = done.try_send(());
                }
            }
        }
        self.fail_pending();
    }

    /// Keep trying to connect; `false` if a disconnect was requested meanwhile.
    async fn reconnect(&mut self) -> bool {
        loop {
            let delay = Duration::from_millis(self.backoff.next_delay(fastrand::u32(..)));
            self.emit(Event::Reconnecting(delay));
            let deadline = StdInstant::now() + delay;
            // Wait out the delay, still answering commands.
            loop {
                let commands = &self.commands;
                let wake = async { Wake::Command(commands.recv().await.ok()) }
                    .or(async {
                        Timer::at(deadline).await;
                        Wake::Timer
                    })
                    .await;
                match wake {
                    Wake::Timer | Wake::Read(_) => break,
                    Wake::Command(None) => return false,
                    Wake::Command(Some(Command::Disconnect(done))) => {
                        let _ = done.try_send(());
                        return false;
                    }
                    Wake::Command(Some(Command::Publish(m, reply))) => {
                        self.pending.push_back((m, reply))
                    }
                    Wake::Command(Some(Command::Subscribe(_, reply))) => {
                        let _ = reply.try_send(Err(ClientError::NotConnected));
                    }
                    Wake::Command(Some(Command::Unsubscribe(_, reply))) => {
                        let _ = reply.try_send(Err(ClientError::NotConnected));
                    }
                }
            }
            match self.establish().await {
                Ok(c) => {
                    let renew = !c.session_present && !self.subscriptions.is_empty();
                    self.emit(Event::Connected(c));
                    if renew {
                        let subs = self.subscriptions.clone();
                        if let Err(e) = self.do_subscribe(&subs).await {
                            self.emit(Event::ConnectionLost(e.to_string()));
                            continue;
                        }
                    }
                    return true;
                }
                Err(e) => self.emit(Event::ConnectionLost(e.to_string())),
            }
        }
    }

    /// Run one connection until it stops.
    async fn serve(&mut self) -> Stop {
        let mut chunk = vec![0u8; 16 * 1024];
        // Packets that arrived right behind the CONNACK.
        if let Err(e) = self.process_rx().await {
            return Stop::Lost(e.to_string());
        }
        loop {
            if let Err(e) = self.flush_pending().await {
                return Stop::Lost(e.to_string());
            }
            let wait = loop {
                match self.engine.poll(self.now()) {
                    Poll::Wait(at) => break at,
                    Poll::Send(p) => {
                        if let Err(e) = self.send(&p.packet()).await {
                            return Stop::Lost(e.to_string());
                        }
                    }
                    Poll::Republish(id) => {
                        if let Err(e) = self.republish(id).await {
                            return Stop::Lost(e.to_string());
                        }
                    }
                    Poll::KeepAliveTimeout => {
                        return Stop::Lost(
                            "keep-alive timeout: no PINGRESP from the broker".into(),
                        );
                    }
                    Poll::ConnectTimeout => return Stop::Lost("no CONNACK".into()),
                }
            };
            let timer_at = wait.map(|at| self.epoch + Duration::from_millis(at.as_millis()));
            let commands = &self.commands;
            let Some(stream) = self.stream.as_mut() else {
                return Stop::Lost("not connected".into());
            };
            let wake = async { Wake::Command(commands.recv().await.ok()) }
                .or(async { Wake::Read(stream.read(&mut chunk).await) })
                .or(async {
                    match timer_at {
                        Some(at) => Timer::at(at).await,
                        None => Timer::never().await,
                    };
                    Wake::Timer
                })
                .await;
            match wake {
                Wake::Timer => {}
                Wake::Read(Ok(0)) => return Stop::Lost("the broker closed the connection".into()),
                Wake::Read(Err(e)) => return Stop::Lost(e.to_string()),
                Wake::Read(Ok(n)) => {
                    self.rx
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    if let Err(e) = self.process_rx().await {
                        return Stop::Lost(e.to_string());
                    }
                    if self.engine.state() != engine::State::Connected {
                        return Stop::Lost("the broker ended the connection".into());
                    }
                }
                Wake::Command(None) => {
                    let p = self.engine.disconnect(self.now());
                    let _ = self.send(&p).await;
                    return Stop::Requested(None);
                }
                Wake::Command(Some(cmd)) => match self.command(cmd).await {
                    Ok(None) => {}
                    Ok(Some(done)) => return Stop::Requested(Some(done)),
                    Err(e) => return Stop::Lost(e.to_string()),
                },
            }
        }
    }

    /// Carry out a command; `Some` when it was a disconnect (which is now done).
    async fn command(&mut self, cmd: Command) -> Result<Option<Sender<()>>, ClientError> {
        match cmd {
            Command::Publish(message, reply) => {
                self.pending.push_back((message, reply));
                self.flush_pending().await?;
            }
            Command::Subscribe(filters, reply) => match self.do_subscribe(&filters).await {
                Ok(id) => {
                    for (f, o) in filters {
                        self.subscriptions.retain(|(g, _)| *g != f);
                        self.subscriptions.push((f, o));
                    }
                    let _ = reply.try_send(Ok(id));
                }
                Err(e @ ClientError::Io(_)) => {
                    let _ = reply.try_send(Err(ClientError::Closed));
                    return Err(e);
                }
                Err(e) => {
                    let _ = reply.try_send(Err(e));
                }
            },
            Command::Unsubscribe(filters, reply) => match self.do_unsubscribe(&filters).await {
                Ok(id) => {
                    self.subscriptions.retain(|(g, _)| !filters.contains(g));
                    let _ = reply.try_send(Ok(id));
                }
                Err(e @ ClientError::Io(_)) => {
                    let _ = reply.try_send(Err(ClientError::Closed));
                    return Err(e);
                }
                Err(e) => {
                    let _ = reply.try_send(Err(e));
                }
            },
            Command::Disconnect(done) => {
                let p = self.engine.disconnect(self.now());
                let rp = self.options.request_properties.clone();
                let users = pairs_of(&rp.disconnect_user_properties);
                let p = match p {
                    Packet::Disconnect(d) if self.options.version.is_v5() => {
                        Packet::Disconnect(wren_codec::Disconnect {
                            reason_code: d.reason_code,
                            properties: Properties {
                                session_expiry_interval: rp.disconnect_session_expiry,
                                reason_string: rp.disconnect_reason_string.as_deref(),
                                user_properties: List::new(&users),
                                ..Properties::default()
                            },
                        })
                    }
                    other => other,
                };
                let _ = self.send(&p).await;
                if let Some(mut s) = self.stream.take() {
                    let _ = s.close().await;
                }
                return Ok(Some(done));
            }
        }
        Ok(None)
    }

    async fn do_subscribe(
        &mut self,
        filters: &[(String, SubscriptionOptions)],
    ) -> Result<u16, ClientError> {
        let mut subs = Vec::with_capacity(filters.len());
        for (f, options) in filters {
            let filter = TopicFilter::new(f).map_err(|_| ClientError::InvalidTopic(f.clone()))?;
            subs.push(Subscription {
                filter,
                options: *options,
            });
        }
        let now = self.now();
        let rp = self.options.request_properties.clone();
        let users = pairs_of(&rp.subscribe_user_properties);
        let ids: Vec<u32> = rp.subscription_identifier.into_iter().collect();
        let properties = if self.options.version.is_v5() {
            Properties {
                subscription_identifiers: List::new(&ids),
                user_properties: List::new(&users),
                ..Properties::default()
            }
        } else {
            Properties::default()
        };
        let packet = self.engine.subscribe(&subs, properties, now)?;
        let id = packet.packet_id.get();
        self.send(&Packet::Subscribe(packet)).await?;
        Ok(id)
    }

    async fn do_unsubscribe(&mut self, filters: &[String]) -> Result<u16, ClientError> {
        let mut list = Vec::with_capacity(filters.len());
        for f in filters {
            list.push(TopicFilter::new(f).map_err(|_| ClientError::InvalidTopic(f.clone()))?);
        }
        let now = self.now();
        let rp = self.options.request_properties.clone();
        let users = pairs_of(&rp.unsubscribe_user_properties);
        let properties = if self.options.version.is_v5() {
            Properties {
                user_properties: List::new(&users),
                ..Properties::default()
            }
        } else {
            Properties::default()
        };
        let packet = self.engine.unsubscribe(&list, properties, now)?;
        let id = packet.packet_id.get();
        self.send(&Packet::Unsubscribe(packet)).await?;
        Ok(id)
    }

    /// Send queued publishes while the connection and the in-flight window allow.
    async fn flush_pending(&mut self) -> Result<(), ClientError> {
        while self.engine.state() == engine::State::Connected {
            let Some((message, _)) = self.pending.front() else {
                return Ok(());
            };
            if message.qos != QoS::AtMostOnce
                && (!self.engine.can_publish()
                    || self.engine.publishes_in_flight() >= self.options.max_in_flight.max(1))
            {
                return Ok(());
            }
            let Some((message, reply)) = self.pending.pop_front() else {
                return Ok(());
            };
            match self.publish_now(&message).await {
                Ok(id) => {
                    if let Some(id) = id {
                        self.stored.insert(id, message);
                    }
                    let _ = reply.try_send(Ok(id));
                }
                Err(e @ ClientError::Io(_)) => {
                    // The PUBLISH may be half written; the session keeps it if tracked.
                    let _ = reply.try_send(Err(ClientError::Closed));
                    return Err(e);
                }
                Err(e) => {
                    let _ = reply.try_send(Err(e));
                }
            }
        }
        if self.options.reconnect.is_none() {
            self.fail_pending();
        }
        Ok(())
    }

    async fn publish_now(&mut self, m: &OutgoingMessage) -> Result<Option<u16>, ClientError> {
        let pairs = m.properties.user_pairs();
        let message = m.to_engine(&pairs)?;
        let now = self.now();
        let publish = self.engine.publish(message, now)?;
        let id = publish.qos_pid.packet_id().map(PacketId::get);
        let packet = Packet::Publish(publish);
        // A failed write leaves the flow tracked: keep the message for the retransmission.
        if let Err(e) = self.send(&packet).await {
            if let Some(id) = id {
                self.stored.insert(id, m.clone());
            }
            return Err(e);
        }
        Ok(id)
    }

    async fn republish(&mut self, id: PacketId) -> Result<(), ClientError> {
        let Some(m) = self.stored.get(&id.get()).cloned() else {
            return Ok(());
        };
        let pairs = m.properties.user_pairs();
        let message = m.to_engine(&pairs)?;
        if let Some(p) = self.engine.duplicate(id, message) {
            self.send(&Packet::Publish(p)).await?;
        }
        Ok(())
    }

    /// Decode and handle every complete packet in the receive buffer.
    async fn process_rx(&mut self) -> Result<(), ClientError> {
        let buf = std::mem::take(&mut self.rx);
        let mut offset = 0usize;
        let result = loop {
            let options = DecodeOptions::new(self.engine.version()).from_server();
            let rest = buf.get(offset..).unwrap_or_default();
            let decoded = match decode(rest, options) {
                Ok(Status::Partial(_)) => break Ok(()),
                Ok(Status::Complete(d)) => d,
                Err(e) => break Err(ClientError::Malformed(e.to_string())),
            };
            offset = offset.saturating_add(decoded.consumed);
            self.log(|| describe(&self.options.client_id, "received", &decoded.packet));
            let handled = match self.engine.handle(decoded.packet, self.now()) {
                Ok(h) => h,
                Err(e) => break Err(e.into()),
            };
            let event = handled.event.map(owned_event);
            if let Some(reply) = handled.reply {
                if let Err(e) = self.send(&reply.packet()).await {
                    break Err(e);
                }
            }
            if let Some(event) = event {
                let finished = match &event {
                    Event::PubAck(a) | Event::PubComp(a) => Some(a.packet_id),
                    Event::PubRec(a) if a.reason_code >= 0x80 => Some(a.packet_id),
                    _ => None,
                };
                if let Some(id) = finished {
                    self.stored.remove(&id);
                }
                self.emit(event);
            }
        };
        self.rx = buf;
        self.rx.drain(..offset.min(self.rx.len()));
        result
    }
}

fn owned_ack(a: &wren_codec::Ack<'_>) -> AckInfo {
    AckInfo {
        packet_id: a.packet_id.get(),
        reason_code: a.reason_code.0,
        reason_string: a.properties.reason_string.map(str::to_owned),
    }
}

fn owned_event(e: engine::Event<'_>) -> Event {
    match e {
        engine::Event::Connected {
            session_present,
            connack,
        } => Event::Connected(Connected {
            session_present,
            assigned_client_id: connack
                .properties
                .assigned_client_identifier
                .map(str::to_owned),
            keep_alive: connack
                .properties
                .server_keep_alive
                .map(u64::from)
                .unwrap_or_default(),
        }),
        engine::Event::Message(p) => Event::Message(ReceivedMessage {
            topic: p.topic.as_str().to_owned(),
            payload: p.payload.to_vec(),
            qos: p.qos_pid.qos(),
            retain: p.retain,
            dup: p.dup,
            packet_id: p.qos_pid.packet_id().map(PacketId::get),
            properties: MessageProperties::from_codec(&p.properties),
        }),
        engine::Event::PubAck(a) => Event::PubAck(owned_ack(&a)),
        engine::Event::PubRec(a) => Event::PubRec(owned_ack(&a)),
        engine::Event::PubComp(a) => Event::PubComp(owned_ack(&a)),
        engine::Event::SubAck(s) => Event::SubAck {
            packet_id: s.packet_id.get(),
            codes: s.reason_codes.iter().map(|c| c.0).collect(),
        },
        engine::Event::UnsubAck(s) => Event::UnsubAck {
            packet_id: s.packet_id.get(),
            codes: s.reason_codes.iter().map(|c| c.0).collect(),
        },
        engine::Event::PingResp => Event::PingResp,
        engine::Event::Disconnected(d) => Event::ServerDisconnect {
            reason_code: d.reason_code.0,
            reason_string: d.properties.reason_string.map(str::to_owned),
        },
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// One debug line in the style of libmosquitto's log (`-d`).
pub fn describe(client_id: &str, direction: &str, packet: &Packet<'_>) -> String {
    let who = format!("Client {client_id} {direction}");
    match packet {
        Packet::Connect(_) => format!("{who} CONNECT"),
        Packet::ConnAck(c) => format!("{who} CONNACK ({})", c.code.0),
        Packet::Publish(p) => {
            let mid = match p.qos_pid {
                QosPid::AtMostOnce => 0,
                QosPid::AtLeastOnce(id) | QosPid::ExactlyOnce(id) => id.get(),
            };
            format!(
                "{who} PUBLISH (d{}, q{}, r{}, m{}, '{}', ... ({} bytes))",
                u8::from(p.dup),
                p.qos_pid.qos().bits(),
                u8::from(p.retain),
                mid,
                p.topic,
                p.payload.len()
            )
        }
        // libmosquitto words acknowledgements it sends differently from those it receives.
        Packet::PubAck(a) | Packet::PubRec(a) if direction == "sending" => format!(
            "{who} {} (m{}, rc{})",
            if matches!(packet, Packet::PubAck(_)) {
                "PUBACK"
            } else {
                "PUBREC"
            },
            a.packet_id.get(),
            a.reason_code.0
        ),
        Packet::PubRel(a) | Packet::PubComp(a) if direction == "sending" => format!(
            "{who} {} (m{})",
            if matches!(packet, Packet::PubRel(_)) {
                "PUBREL"
            } else {
                "PUBCOMP"
            },
            a.packet_id.get()
        ),
        Packet::PubAck(a) => format!(
            "{who} PUBACK (Mid: {}, RC:{})",
            a.packet_id.get(),
            a.reason_code.0
        ),
        Packet::PubRec(a) => format!("{who} PUBREC (Mid: {})", a.packet_id.get()),
        Packet::PubRel(a) => format!("{who} PUBREL (Mid: {})", a.packet_id.get()),
        Packet::PubComp(a) => format!(
            "{who} PUBCOMP (Mid: {}, RC:{})",
            a.packet_id.get(),
            a.reason_code.0
        ),
        Packet::Subscribe(s) => {
            let mut line = String::new();
            for sub in s.subscriptions.iter() {
                line.push_str(&format!(
                    "{who} SUBSCRIBE (Mid: {}, Topic: {}, QoS: {}, Options: 0x{:02x})\n",
                    s.packet_id.get(),
                    sub.filter,
                    sub.options.qos.bits(),
                    sub.options.to_byte() & 0xFC
                ));
            }
            line.pop();
            line
        }
        Packet::SubAck(_) => format!("{who} SUBACK"),
        Packet::Unsubscribe(u) => {
            let lines: Vec<String> = u
                .filters
                .iter()
                .map(|f| format!("{who} UNSUBSCRIBE (Mid: {}, Topic: {f})", u.packet_id.get()))
                .collect();
            lines.join("\n")
        }
        Packet::UnsubAck(_) => format!("{who} UNSUBACK"),
        Packet::PingReq => format!("{who} PINGREQ"),
        Packet::PingResp => format!("{who} PINGRESP"),
        Packet::Disconnect(d) if d.reason_code != ReasonCode::SUCCESS => {
            format!("{who} DISCONNECT ({})", d.reason_code.0)
        }
        Packet::Disconnect(_) => format!("{who} DISCONNECT"),
        Packet::Auth(_) => format!("{who} AUTH"),
    }
}
