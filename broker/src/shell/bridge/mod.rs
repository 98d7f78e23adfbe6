//! Bridges (Mosquitto's `connection` sections): one task per bridge carries messages between
//! this broker and a remote one. It drives two of the project's client engines
//! ([`wren_clients::engine`], connected with [`wren_clients::client::handshake`]) by hand, one
//! per side ([`side::Side`]), in the sans-I/O style: packets are decoded where they were read,
//! forwarded packets encoded straight into the other side's output, and each side's output
//! written with as few system calls as its socket allows — no channel or task between the two.
//!
//! - **remote**: a client of the remote broker (TCP or TLS), connected to the first address
//!   that accepts (fail-over in order; `round_robin`), subscribed to the inbound lines' filters;
//! - **local**: a 5.0 client of this broker over an in-process socket pair (listener
//!   [`BRIDGE_LISTENER`]: no login, no topic rules), subscribed to the outbound lines' filters
//!   with No Local (what the bridge brings in never goes back out) and Retain As Published.
//!
//! A message from this broker is acknowledged to it (PUBACK, or PUBREC for QoS 2) only once the
//! remote has acknowledged its copy, and one from the remote only once this broker has. Until
//! then the sender keeps it — this broker in the bridge's local session, which with
//! `local_cleansession false` is persistent and, with `persistence`, in the durable store: so
//! **nothing acknowledged is lost** while the remote is down or slow, or across a `kill -9` of
//! this broker. While the remote is unreachable the local side is disconnected and messages
//! queue in that session, bounded by `max_queued_messages` (the oldest QoS 0 message makes
//! room first, then new ones are dropped, counted in `$SYS/broker/publish/messages/dropped`).
//! What was not acknowledged when a connection broke is sent again: QoS 1 and 2 messages may
//! arrive twice. Towards the remote at most `max_inflight_messages` are in flight, as in
//! Mosquitto.
//!
//! Loops: `try_private` tells a Mosquitto or Wren remote that this is a bridge (it then sends
//! none of the bridge's messages back), a 5.0 remote gets No Local subscriptions, and for a
//! remote that ignores both (NATS) [`echo::EchoFilter`] drops the copies that come back.
//!
//! The bridge's state is retained on its notification topic (`1` connected, `0` not) locally
//! and, unless `notifications_local_only`, on the remote, where its will says `0`.

mod echo;
mod side;
mod topics;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smol::Timer;
use smol::future::{Future, FutureExt};
use wren_clients::client::{ClientOptions, ENGINE_CAPACITY, MessageProperties, OutgoingMessage};
use wren_clients::engine::{self, Backoff, Control, Message};
use wren_codec::{
    Packet, Properties, ProtocolVersion, QoS, Subscription, SubscriptionOptions, TopicFilter,
    TopicName,
};

use crate::config::Bridge;
use crate::core::BRIDGE_LISTENER;

use super::server::Shared;
use super::transport::{Accepted, open};
use echo::EchoFilter;
use side::Side;
use topics::Topics;

/// In-flight QoS 1/2 messages between the bridge and this broker (towards the remote the
/// window is `max_inflight_messages`, as Mosquitto's bridge).
const WINDOW: usize = 256;
/// Time allowed for TCP, TLS and CONNACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Start every configured bridge on `executor`; a bridge's TLS files that cannot be loaded stop
/// the start (as a listener's do), naming the bridge.
pub(super) fn start(
    shared: &Arc<Shared>,
    executor: &smol::Executor<'static>,
) -> std::io::Result<()> {
    let mut bridges = Vec::with_capacity(shared.config.bridge.len());
    for bridge in &shared.config.bridge {
        let tls = tls_config(bridge)
            .map_err(|e| std::io::Error::other(format!("bridge {}: {e}", bridge.name)))?;
        bridges.push((bridge.clone(), tls));
    }
    for (bridge, tls) in bridges {
        executor
            .spawn(run(Arc::clone(shared), bridge, tls))
            .detach();
    }
    Ok(())
}

/// Why a bridge connection ended.
enum Ended {
    /// The remote went away (or could not be reached): try again.
    RemoteLost(String),
    /// The local side ended (the broker is stopping, or its local session could not start).
    LocalLost,
}

/// One bridge, for the broker's lifetime.
async fn run(shared: Arc<Shared>, bridge: Bridge, tls: Option<Arc<rustls::ClientConfig>>) {
    let name = bridge.name.clone();
    let addresses = bridge.addresses();
    let topics = Topics::new(bridge.topics());
    let state_topic = bridge.notification_topic();
    let (base, cap) = match bridge.restart_timeout.as_slice() {
        [constant] => (*constant, *constant),
        [base, cap, ..] => (*base, (*cap).max(*base)),
        [] => (5, 30),
    };
    let mut backoff = Backoff::new(u64::from(base) * 1000, u64::from(cap) * 1000);
    let mut next = 0usize;
    let mut failed_in_a_row = 0usize;
    shared.with_core(None, |b| {
        b.bridge_state(&state_topic, false, shared.now_ms())
    });
    if !bridge.local_clean() {
        // The local session and its subscriptions exist from the start, so that messages for
        // the remote queue while it has not been reached yet.
        prime_local_session(&shared, &bridge, &topics).await;
    }
    loop {
        let Some((host, port)) = addresses.get(next).cloned() else {
            return;
        };
        log::info!("Connecting bridge {name} ({host}:{port})");
        // On a backup address without round_robin: go back to the main one when it answers.
        let main = match addresses.first() {
            Some(main) if next > 0 && !bridge.round_robin => Some(main.clone()),
            _ => None,
        };
        let probe = main.map(|(h, p)| main_answers(h, p, Duration::from_secs(u64::from(base))));
        let started = std::time::Instant::now();
        let ended = connection(&shared, &bridge, &topics, &host, port, tls.clone(), probe).await;
        shared.with_core(None, |b| {
            b.bridge_state(&state_topic, false, shared.now_ms())
        });
        let was_up = match ended {
            Ok(Ended::LocalLost) if shared.executor.upgrade().is_none() => {
                log::info!("Bridge {name}: the broker is stopping.");
                return;
            }
            Ok(Ended::LocalLost) => {
                // (Cannot be a client taking the local session over: the core refuses its id.)
                // A broker that is stopping drops this task meanwhile: nothing is logged then.
                Timer::after(Duration::from_secs(1)).await;
                log::warn!("Bridge {name}: its local session ended; connecting again.");
                continue;
            }
            Ok(Ended::RemoteLost(why)) => {
                log::warn!("Bridge {name} lost its connection to {host}:{port}: {why}.");
                true
            }
            Err(why) => {
                log::warn!("Bridge {name} could not connect to {host}:{port}: {why}.");
                false
            }
        };
        if bridge.start_type == "once" {
            log::warn!("Bridge {name} (start_type once) will not reconnect.");
            return;
        }
        let count = addresses.len().max(1);
        if was_up {
            // Fail-over: round_robin goes on to the next address, otherwise back to the first.
            // A connection that did not last BASE seconds does not reset the backoff: a remote
            // that accepts and drops the bridge at once is not hammered.
            failed_in_a_row = 0;
            let brief = started.elapsed() < Duration::from_secs(u64::from(base));
            if !brief {
                backoff.reset();
            }
            next = if bridge.round_robin {
                (next + 1) % count
            } else {
                0
            };
            if count == 1 || brief {
                Timer::after(Duration::from_millis(backoff.next_delay(jitter()))).await;
            }
        } else {
            failed_in_a_row += 1;
            next = (next + 1) % count;
            // Every address tried in vain: wait before the next round.
            if failed_in_a_row >= count {
                failed_in_a_row = 0;
                let delay = Duration::from_millis(backoff.next_delay(jitter()));
                Timer::after(delay).await;
            }
        }
    }
}

/// A random number for the backoff's jitter.
fn jitter() -> u32 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    u32::from_le_bytes(bytes)
}

fn tls_config(bridge: &Bridge) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
    if bridge.bridge_cafile.is_none() {
        return Ok(None);
    }
    let settings = wren_clients::tls::TlsSettings {
        cafile: bridge.bridge_cafile.clone(),
        cert: bridge.bridge_certfile.clone(),
        key: bridge.bridge_keyfile.clone(),
        insecure: bridge.bridge_insecure,
        ..Default::default()
    };
    settings.client_config().map(Some)
}

/// Resolves once a TCP connection to the main address `host:port` succeeds, trying every
/// `every`: a bridge on a backup address then goes back to the main one (Mosquitto's
/// `round_robin false`).
fn main_answers(host: String, port: u16, every: Duration) -> FailBack {
    Box::pin(async move {
        loop {
            Timer::after(every).await;
            let attempt = async {
                smol::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .is_ok()
            }
            .or(async {
                Timer::after(Duration::from_secs(2)).await;
                false
            });
            if attempt.await {
                return;
            }
        }
    })
}

/// See [`main_answers`].
type FailBack = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The remote client's options.
fn remote_options(
    window: usize,
    bridge: &Bridge,
    host: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> ClientOptions {
    let mut o = ClientOptions::new(host, port, bridge.remote_client_id());
    o.version = if bridge.is_v5() {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V311
    };
    o.keep_alive = bridge.keepalive_interval;
    o.clean_start = bridge.cleansession;
    if bridge.is_v5() && !bridge.cleansession {
        // A kept session in 5.0 needs an expiry: as long as possible (Mosquitto's default).
        o.session_expiry = Some(u32::MAX);
    }
    o.username = bridge.remote_username.clone();
    o.password = bridge.remote_password.clone().map(String::into_bytes);
    o.tls = tls;
    o.connect_timeout = CONNECT_TIMEOUT;
    o.max_in_flight = window;
    // Mosquitto 2.0 closes a 5.0 CONNECT with the bridge bit (level 0x85) as malformed: in 5.0
    // the bridge says it with No Local and Retain As Published on its subscriptions instead.
    o.bridge = bridge.try_private && !bridge.is_v5();
    if bridge.bridge_max_packet_size > 0 {
        o.request_properties.maximum_packet_size = Some(bridge.bridge_max_packet_size);
    }
    if bridge.notifications && !bridge.notifications_local_only {
        o.will = Some(
            OutgoingMessage::new(bridge.notification_topic(), "0", QoS::AtLeastOnce).retain(true),
        );
    }
    o
}

/// The local client's options.
fn local_options(bridge: &Bridge) -> ClientOptions {
    let mut o = ClientOptions::new("", 0, bridge.local_client_id());
    o.version = ProtocolVersion::V5;
    o.keep_alive = 0;
    o.clean_start = bridge.local_clean();
    if !bridge.local_clean() {
        o.session_expiry = Some(u32::MAX);
    }
    o.connect_timeout = CONNECT_TIMEOUT;
    o.max_in_flight = WINDOW;
    o.request_properties.receive_maximum = u16::try_from(WINDOW).ok();
    o
}

/// Subscription options of one side: No Local and Retain As Published (5.0 only; on 3.1.1 the
/// remote sees just the QoS).
fn options(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        no_local: true,
        retain_as_published: true,
        ..SubscriptionOptions::qos(qos)
    }
}

/// Connect the local side, subscribe, disconnect: the persistent local session then queues.
async fn prime_local_session(shared: &Arc<Shared>, bridge: &Bridge, topics: &Topics) {
    let epoch = std::time::Instant::now();
    let Some(mut local) = connect_local(shared, bridge, epoch).await else {
        return;
    };
    let subscribed = subscribe(&mut local, &topics.local_subscriptions());
    let done = async {
        if subscribed.is_err() {
            return;
        }
        // Until the SUBACK: the subscriptions are in force (and durable) from then on.
        loop {
            local.finish().await;
            let read = smol::future::poll_fn(|cx| match local.poll_read_in(cx) {
                Ok(true) => std::task::Poll::Ready(true),
                Ok(false) => std::task::Poll::Pending,
                Err(_) => std::task::Poll::Ready(false),
            })
            .await;
            if !read || local.closed {
                return;
            }
            let (input, at) = local.take_input();
            let mut done = at;
            let mut suback = false;
            while let Ok(Some((packet, used))) = local.decode_at(&input, done) {
                suback |= matches!(packet, Packet::SubAck(_));
                done = done.saturating_add(used);
            }
            local.put_input(input, done);
            if suback {
                return;
            }
        }
    };
    done.or(async {
        Timer::after(CONNECT_TIMEOUT).await;
    })
    .await;
    let close = local.engine.close(local.now());
    let _ = local.send(&Packet::Disconnect(close));
    local.finish().await;
}

/// The bridge's local side, over a socket pair to this broker.
async fn connect_local(
    shared: &Arc<Shared>,
    bridge: &Bridge,
    epoch: std::time::Instant,
) -> Option<Side> {
    let at = Accepted {
        peer: SocketAddr::from(([127, 0, 0, 1], 0)),
        listener: BRIDGE_LISTENER,
        port: 0,
    };
    let pair = open(shared, at, None)?;
    let connected = Side::connect(Box::new(pair), &local_options(bridge), epoch)
        .or(async {
            Timer::after(CONNECT_TIMEOUT).await;
            Err(wren_clients::client::ClientError::Timeout)
        })
        .await;
    match connected {
        Ok((side, _)) => Some(side),
        Err(e) => {
            log::warn!(
                "Bridge {}: its local session could not start: {e}.",
                bridge.name
            );
            None
        }
    }
}

/// Send a SUBSCRIBE for `filters` (none: nothing).
fn subscribe(side: &mut Side, filters: &[(String, QoS)]) -> Result<Option<u16>, String> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut subs = Vec::with_capacity(filters.len());
    for (f, q) in filters {
        let filter = TopicFilter::new(f).map_err(|_| format!("invalid filter {f}"))?;
        subs.push(Subscription {
            filter,
            options: options(*q),
        });
    }
    let now = side.now();
    let packet = side
        .engine
        .subscribe(&subs, Properties::default(), now)
        .map_err(|e| e.to_string())?;
    let id = packet.packet_id.get();
    side.send(&Packet::Subscribe(packet))?;
    Ok(Some(id))
}

/// One connection of the bridge: connect both sides, carry messages until one side ends.
async fn connection(
    shared: &Arc<Shared>,
    bridge: &Bridge,
    topics: &Topics,
    host: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    fail_back: Option<FailBack>,
) -> Result<Ended, String> {
    let epoch = std::time::Instant::now();
    let options = remote_options(
        shared
            .config
            .max_inflight_messages
            .clamp(1, ENGINE_CAPACITY),
        bridge,
        host,
        port,
        tls,
    );
    let window = options.max_in_flight;
    let remote = async {
        let stream = wren_clients::client::open(&options).await?;
        Side::connect(stream, &options, epoch).await
    }
    .or(async {
        Timer::after(CONNECT_TIMEOUT).await;
        Err(wren_clients::client::ClientError::Timeout)
    })
    .await;
    let (mut remote, session_present) = remote.map_err(|e| e.to_string())?;
    // A remote's packet larger than this broker takes (or than bridge_max_packet_size) ends
    // the connection before it is buffered.
    remote.max_packet = match (bridge.bridge_max_packet_size, shared.config.max_packet_size) {
        (0, 0) => u32::MAX,
        (0, broker) => broker,
        (own, _) => own,
    };
    let Some(local) = connect_local(shared, bridge, epoch).await else {
        return Ok(Ended::LocalLost);
    };
    let mut link = Link {
        name: &bridge.name,
        remote,
        local,
        remote_window: window,
        topics,
        remote_max_qos: QoS::ExactlyOnce,
        out_acks: HashMap::new(),
        in_acks: HashMap::new(),
        to_remote: VecDeque::new(),
        to_local: VecDeque::new(),
        remote_subscribe: None,
        echo: (!bridge.try_private && !bridge.is_v5()).then(EchoFilter::default),
        dropped: 0,
        fail_back,
    };
    let ended = link
        .start(shared, bridge, host, port, session_present)
        .await;
    if link.dropped > 0 {
        log::warn!(
            "Bridge {}: {} QoS 0 messages dropped while waiting behind QoS 1/2 ones for a window.",
            bridge.name,
            link.dropped
        );
    }
    // The local session keeps what was not acknowledged; its next connection gets it again.
    if let Ended::RemoteLost(_) = ended {
        let close = link.local.engine.close(link.local.now());
        let _ = link.local.send(&Packet::Disconnect(close));
        link.local.finish().await;
    }
    Ok(ended)
}

/// A message waiting for the window of the side it goes to, and the acknowledgement owed to
/// the side it came from once it is through (`None`: QoS 0).
struct Waiting {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
    properties: MessageProperties,
    ack: Option<Control>,
}

/// Messages waiting for a window at most (QoS 0 ones beyond it are dropped; QoS 1/2 ones are
/// bounded by the sender's own window, as they are not acknowledged until forwarded).
const MAX_WAITING_QOS0: usize = 10_000;

/// A bridge connection's two sides and what is in flight between them.
struct Link<'t> {
    name: &'t str,
    remote: Side,
    local: Side,
    /// QoS 1/2 messages in flight towards the remote at most.
    remote_window: usize,
    topics: &'t Topics,
    /// The highest QoS the remote takes (5.0 Maximum QoS, or a SUBACK granting less than asked):
    /// messages go out at most at this QoS (NATS grants 1 for 2).
    remote_max_qos: QoS,
    /// Remote packet id of a message sent out → the acknowledgement owed to this broker.
    out_acks: HashMap<u16, Control>,
    /// Local packet id of a message brought in → the acknowledgement owed to the remote.
    in_acks: HashMap<u16, Control>,
    to_remote: VecDeque<Waiting>,
    to_local: VecDeque<Waiting>,
    /// The inbound SUBSCRIBE's packet id and the QoS asked per filter.
    remote_subscribe: Option<(u16, Vec<QoS>)>,
    echo: Option<EchoFilter>,
    /// QoS 0 messages dropped for want of room.
    dropped: u64,
    /// On a backup address: resolves when the main one answers again.
    fail_back: Option<FailBack>,
}

/// What woke the link.
enum Woke {
    Io,
    Timer,
    /// The main address answers again (see [`main_answers`]).
    MainIsBack,
}

impl Link<'_> {
    async fn start(
        &mut self,
        shared: &Arc<Shared>,
        bridge: &Bridge,
        host: &str,
        port: u16,
        session_present: bool,
    ) -> Ended {
        let inbound = self.topics.remote_subscriptions();
        match subscribe(&mut self.remote, &inbound) {
            Ok(Some(id)) => {
                self.remote_subscribe = Some((id, inbound.iter().map(|(_, q)| *q).collect()));
            }
            Ok(None) => {}
            Err(e) => return Ended::RemoteLost(e),
        }
        if subscribe(&mut self.local, &self.topics.local_subscriptions()).is_err() {
            return Ended::LocalLost;
        }
        let state_topic = bridge.notification_topic();
        if bridge.notifications && !bridge.notifications_local_only {
            let up = Waiting {
                topic: state_topic.clone(),
                payload: b"1".to_vec(),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: MessageProperties::default(),
                ack: None,
            };
            self.to_remote.push_back(up);
        }
        shared.with_core(None, |b| {
            b.bridge_state(&state_topic, true, shared.now_ms())
        });
        log::info!(
            "Bridge {} connected to {host}:{port}{}.",
            bridge.name,
            if session_present {
                " (session present)"
            } else {
                ""
            }
        );
        self.serve().await
    }

    /// Carry messages until one side ends.
    async fn serve(&mut self) -> Ended {
        loop {
            if let Err(e) = self.process(true) {
                return Ended::RemoteLost(e);
            }
            if let Err(e) = self.process(false) {
                log::debug!("Bridge {}: local side: {e}.", self.name);
                return Ended::LocalLost;
            }
            if let Err(e) = self.forward() {
                return Ended::RemoteLost(e);
            }
            if self.local.closed {
                return Ended::LocalLost;
            }
            if self.remote.closed {
                return Ended::RemoteLost("the remote closed the connection".into());
            }
            // Keep-alive (and the PUBRELs the engines retransmit).
            let mut wake_at = None;
            for remote in [true, false] {
                let side = if remote {
                    &mut self.remote
                } else {
                    &mut self.local
                };
                loop {
                    let now = side.now();
                    match side.engine.poll(now) {
                        engine::Poll::Wait(at) => {
                            wake_at = match (wake_at, at) {
                                (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                                (a, b) => a.or(b),
                            };
                            break;
                        }
                        engine::Poll::Send(c) => {
                            if let Err(e) = side.send_control(c) {
                                return lost(remote, e);
                            }
                        }
                        // Retransmission needs a retry interval, which the bridge does not set.
                        engine::Poll::Republish(_) => {}
                        engine::Poll::KeepAliveTimeout => {
                            return lost(remote, "keep-alive timeout".into());
                        }
                        engine::Poll::ConnectTimeout => return lost(remote, "no CONNACK".into()),
                    }
                }
            }
            let epoch_now = self.remote.now();
            let timer =
                wake_at.map(|at| Timer::after(Duration::from_millis(at.since(epoch_now).max(1))));
            match self.io(timer).await {
                Ok(Woke::MainIsBack) => {
                    return Ended::RemoteLost(
                        "the main address answers again: going back to it".into(),
                    );
                }
                Ok(Woke::Io | Woke::Timer) => {}
                Err((remote, e)) => return lost(remote, e),
            }
        }
    }

    /// Write what waits on both sides and read what came, until something came (or the timer).
    async fn io(&mut self, timer: Option<Timer>) -> Result<Woke, (bool, String)> {
        let mut timer = timer;
        smol::future::poll_fn(|cx| {
            self.remote.poll_write_out(cx).map_err(|e| (true, e))?;
            self.local.poll_write_out(cx).map_err(|e| (false, e))?;
            let remote = self.remote.poll_read_in(cx).map_err(|e| (true, e))?;
            let local = self.local.poll_read_in(cx).map_err(|e| (false, e))?;
            if remote || local {
                return std::task::Poll::Ready(Ok(Woke::Io));
            }
            if let Some(t) = timer.as_mut()
                && std::pin::Pin::new(t).poll(cx).is_ready()
            {
                return std::task::Poll::Ready(Ok(Woke::Timer));
            }
            if let Some(probe) = self.fail_back.as_mut()
                && probe.as_mut().poll(cx).is_ready()
            {
                self.fail_back = None;
                return std::task::Poll::Ready(Ok(Woke::MainIsBack));
            }
            std::task::Poll::Pending
        })
        .await
    }

    /// Handle every packet one side sent (`from_remote`: the remote; else this broker).
    fn process(&mut self, from_remote: bool) -> Result<(), String> {
        let side = if from_remote {
            &mut self.remote
        } else {
            &mut self.local
        };
        let (input, mut at) = side.take_input();
        let result = self.packets(from_remote, &input, &mut at);
        let side = if from_remote {
            &mut self.remote
        } else {
            &mut self.local
        };
        side.put_input(input, at);
        result
    }

    /// The packets of `input[at..]` from one side, `at` advanced past those handled.
    fn packets(&mut self, from_remote: bool, input: &[u8], at: &mut usize) -> Result<(), String> {
        loop {
            let (from, to) = if from_remote {
                (&mut self.remote, &mut self.local)
            } else {
                (&mut self.local, &mut self.remote)
            };
            let Some((packet, used)) = from.decode_at(input, *at)? else {
                return Ok(());
            };
            let now = from.now();
            let handled = from.engine.handle(packet, now).map_err(|e| e.to_string())?;
            let mut reply = handled.reply;
            match handled.event {
                Some(engine::Event::Message(p)) => {
                    // Its acknowledgement waits until the other side has the message.
                    let ack = reply
                        .take()
                        .filter(|c| matches!(c, Control::PubAck(..) | Control::PubRec(..)));
                    match self.destination(from_remote, &p, now.as_millis()) {
                        Some((topic, line_qos)) => {
                            let queue = if from_remote {
                                &mut self.to_local
                            } else {
                                &mut self.to_remote
                            };
                            queue.push_back(Waiting {
                                topic,
                                payload: p.payload.to_vec(),
                                qos: p.qos_pid.qos().min(line_qos),
                                retain: p.retain,
                                properties: owned_properties(&p),
                                ack,
                            });
                        }
                        None => reply = ack,
                    }
                }
                // One of the messages forwarded to this side: the other side's acknowledgement
                // of it can go now.
                Some(engine::Event::PubAck(a) | engine::Event::PubRec(a)) => {
                    if from_remote && a.reason_code.0 >= 0x80 {
                        log::warn!(
                            "Bridge {}: the remote refused a message (0x{:02X}); dropped.",
                            self.name,
                            a.reason_code.0
                        );
                    }
                    let owed = if from_remote {
                        self.out_acks.remove(&a.packet_id.get())
                    } else {
                        self.in_acks.remove(&a.packet_id.get())
                    };
                    if let Some(c) = owed {
                        to.send_control(c)?;
                    }
                }
                Some(engine::Event::SubAck(s)) if from_remote => {
                    if let Some((id, asked)) = self.remote_subscribe.take() {
                        if id == s.packet_id.get() {
                            self.granted(&asked, &s);
                        } else {
                            self.remote_subscribe = Some((id, asked));
                        }
                    }
                }
                Some(engine::Event::Disconnected(d)) => {
                    return Err(format!("DISCONNECT 0x{:02X}", d.reason_code.0));
                }
                _ => {}
            }
            if let Some(c) = reply {
                let from = if from_remote {
                    &mut self.remote
                } else {
                    &mut self.local
                };
                from.send_control(c)?;
            }
            *at = at.saturating_add(used);
        }
    }

    /// Where a message from one side goes: its topic on the other side and its line's QoS;
    /// `None` if no line carries it, or it is the echo of one sent out (see [`EchoFilter`]).
    fn destination(
        &mut self,
        from_remote: bool,
        p: &wren_codec::Publish<'_>,
        now_ms: u64,
    ) -> Option<(String, QoS)> {
        let topic = p.topic.as_str();
        if from_remote {
            if let Some(echo) = &mut self.echo
                && echo.is_echo(topic, p.payload, now_ms)
            {
                return None;
            }
            return self.topics.inbound(topic);
        }
        let out = self.topics.outbound(topic)?;
        if let Some(echo) = &mut self.echo
            && self.topics.comes_back(&out.0)
        {
            echo.sent(&out.0, p.payload, now_ms);
        }
        Some(out)
    }

    /// A SUBACK granting less than asked lowers the QoS messages go out at.
    fn granted(&mut self, asked: &[QoS], s: &wren_codec::SubAck<'_>) {
        for (code, asked) in s.reason_codes.iter().zip(asked) {
            if code.0 >= 0x80 {
                log::warn!(
                    "Bridge {}: the remote refused a subscription (0x{:02X}).",
                    self.name,
                    code.0
                );
            } else if let Some(granted) = QoS::from_bits(code.0)
                && granted < *asked
                && granted < self.remote_max_qos
            {
                self.remote_max_qos = granted;
            }
        }
    }

    /// Send what waits, as far as each side's window allows; QoS 0 messages beyond
    /// [`MAX_WAITING_QOS0`] are dropped (oldest first).
    fn forward(&mut self) -> Result<(), String> {
        pump(
            &mut self.to_remote,
            &mut self.remote,
            &mut self.local,
            &mut self.out_acks,
            self.remote_window,
            self.remote_max_qos,
            &mut self.dropped,
        )?;
        pump(
            &mut self.to_local,
            &mut self.local,
            &mut self.remote,
            &mut self.in_acks,
            ENGINE_CAPACITY,
            QoS::ExactlyOnce,
            &mut self.dropped,
        )
        .map_err(|e| format!("local: {e}"))
    }
}

/// `Err` of the side that failed: the remote's ends the connection, the local one the bridge.
fn lost(remote: bool, why: String) -> Ended {
    if remote {
        Ended::RemoteLost(why)
    } else {
        log::debug!("Bridge local side: {why}.");
        Ended::LocalLost
    }
}

fn owned_properties(p: &wren_codec::Publish<'_>) -> MessageProperties {
    let mut props = MessageProperties::from_codec(&p.properties);
    // Per connection: never carried over.
    props.topic_alias = None;
    props.subscription_identifiers.clear();
    props
}

/// Publish the messages of `queue` on `to` while its window allows, recording for each QoS
/// 1/2 one the acknowledgement owed to `from` under its new packet id (sent to `from` at once
/// for one that goes out at QoS 0).
fn pump(
    queue: &mut VecDeque<Waiting>,
    to: &mut Side,
    from: &mut Side,
    owed: &mut HashMap<u16, Control>,
    window: usize,
    max_qos: QoS,
    dropped: &mut u64,
) -> Result<(), String> {
    let max_qos = max_qos.min(to.engine.server_maximum_qos());
    while let Some(w) = queue.front() {
        let qos = w.qos.min(max_qos);
        if qos != QoS::AtMostOnce
            && (!to.engine.can_publish() || to.engine.publishes_in_flight() >= window)
        {
            break;
        }
        let Some(w) = queue.pop_front() else {
            break;
        };
        let id = {
            let pairs = w.properties.user_pairs();
            let properties = if to.version.is_v5() {
                w.properties.to_codec(&pairs).unwrap_or_default()
            } else {
                Properties::default()
            };
            match TopicName::new(&w.topic) {
                Ok(topic) => {
                    let message = Message {
                        topic,
                        payload: &w.payload,
                        qos,
                        retain: w.retain && to.engine.server_retain_available(),
                        properties,
                    };
                    let now = to.now();
                    let publish = to.engine.publish(message, now).map_err(|e| e.to_string())?;
                    let id = publish.qos_pid.packet_id().map(|p| p.get());
                    to.send(&Packet::Publish(publish))?;
                    id
                }
                // (Topic lines are checked at start; a remapped topic that is not one is not
                // forwarded.)
                Err(_) => None,
            }
        };
        match (id, w.ack) {
            (Some(id), Some(ack)) => {
                owed.insert(id, ack);
            }
            (None, Some(ack)) => from.send_control(ack)?,
            _ => {}
        }
    }
    // QoS 0 messages waiting behind QoS 1/2 ones for a window: bounded, oldest dropped.
    while queue.len() > MAX_WAITING_QOS0 {
        let Some(pos) = queue.iter().position(|w| w.qos == QoS::AtMostOnce) else {
            break;
        };
        queue.remove(pos);
        *dropped = dropped.saturating_add(1);
    }
    Ok(())
}
