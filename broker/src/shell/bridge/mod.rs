//! Bridges (Mosquitto's `connection` sections): one task per bridge carries messages between
//! this broker and a remote one, built on the project's own client ([`wren_clients::client`]).
//!
//! The bridge is two clients joined at the hip:
//! - **remote**: a client of the remote broker (TCP or TLS), connected to the first address
//!   that accepts (fail-over in order; `round_robin`), subscribed to the inbound lines' filters;
//! - **local**: a 5.0 client of this broker over an in-process socket pair (listener
//!   [`BRIDGE_LISTENER`]: no login, no topic rules), subscribed to the outbound lines' filters
//!   with No Local (what the bridge brings in never goes back out) and Retain As Published.
//!
//! Both acknowledge by hand (`manual_acks`): a message from this broker is acknowledged to it
//! (PUBACK, or PUBREC for QoS 2) only once the remote has acknowledged its copy, and one from
//! the remote only once this broker has. So until then the sender keeps it — this broker in
//! the bridge's local session, which with `local_cleansession false` is persistent and, with
//! `persistence`, in the durable store: **nothing acknowledged is lost** while the remote is
//! down or slow, or across a `kill -9` of this broker. While the remote is unreachable the
//! local client is disconnected, so messages queue in that session, bounded by
//! `max_queued_messages` (the oldest QoS 0 message makes room first, then new ones are
//! dropped and counted in `$SYS/broker/publish/messages/dropped`). What was unacknowledged
//! when a connection broke is sent again (QoS 1 and 2 messages may arrive twice).
//!
//! Loops: `try_private` tells a Mosquitto or Wren remote that this is a bridge (it then sends
//! none of the bridge's messages back), a 5.0 remote gets No Local subscriptions, and for a
//! remote that ignores both (NATS) [`echo::EchoFilter`] drops the copies that come back.
//!
//! The bridge's state is retained on its notification topic (`1` connected, `0` not) locally
//! and, unless `notifications_local_only`, on the remote, where its will says `0`.

mod echo;
mod topics;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use smol::Timer;
use smol::future::FutureExt;
use wren_clients::client::{Client, ClientOptions, Event, OutgoingMessage, ReceivedMessage};
use wren_clients::engine::Backoff;
use wren_codec::{ProtocolVersion, QoS, SubscriptionOptions};

use crate::config::Bridge;
use crate::core::BRIDGE_LISTENER;

use super::server::Shared;
use super::transport::{Accepted, open};
use echo::EchoFilter;
use topics::Topics;

/// In-flight QoS 1/2 messages between the bridge and this broker (towards the remote the
/// window is `max_inflight_messages`, as Mosquitto's bridge).
const WINDOW: usize = 256;
/// Time allowed for TCP, TLS and CONNACK.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Start every configured bridge on `executor`.
pub(super) fn start(shared: &Arc<Shared>, executor: &smol::Executor<'static>) {
    for bridge in &shared.config.bridge {
        executor
            .spawn(run(Arc::clone(shared), bridge.clone()))
            .detach();
    }
}

/// Why a bridge connection ended.
enum Ended {
    /// The remote went away (or could not be reached): try again.
    RemoteLost(String),
    /// The local side ended (the broker is stopping).
    LocalLost,
}

/// One bridge, for the broker's lifetime.
async fn run(shared: Arc<Shared>, bridge: Bridge) {
    let name = bridge.name.clone();
    let tls = match tls_config(&bridge) {
        Ok(tls) => tls,
        Err(e) => {
            log::error!("Bridge {name}: {e}; the bridge is not started.");
            return;
        }
    };
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
        let ended = connection(&shared, &bridge, &topics, &host, port, tls.clone()).await;
        shared.with_core(None, |b| {
            b.bridge_state(&state_topic, false, shared.now_ms())
        });
        let was_up = match ended {
            Ok(Ended::LocalLost) => {
                log::info!("Bridge {name}: the broker is stopping.");
                return;
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
            failed_in_a_row = 0;
            backoff.reset();
            next = if bridge.round_robin {
                (next + 1) % count
            } else {
                0
            };
            if count == 1 {
                Timer::after(Duration::from_millis(backoff.next_delay(fastrand_u32()))).await;
            }
        } else {
            failed_in_a_row += 1;
            next = (next + 1) % count;
            // Every address tried in vain: wait before the next round.
            if failed_in_a_row >= count {
                failed_in_a_row = 0;
                let delay = Duration::from_millis(backoff.next_delay(fastrand_u32()));
                Timer::after(delay).await;
            }
        }
    }
}

fn fastrand_u32() -> u32 {
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
    o.manual_acks = true;
    o.bridge = bridge.try_private;
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
    o.manual_acks = true;
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

/// Connect the local client, subscribe, disconnect: the persistent local session then queues.
async fn prime_local_session(shared: &Arc<Shared>, bridge: &Bridge, topics: &Topics) {
    let Some(local) = connect_local(shared, bridge).await else {
        return;
    };
    let outbound: Vec<(String, SubscriptionOptions)> = topics
        .local_subscriptions()
        .into_iter()
        .map(|(f, q)| (f, options(q)))
        .collect();
    if !outbound.is_empty() && local.subscribe_with_options(outbound).await.is_ok() {
        // Wait for the SUBACK: the subscriptions are in force (and durable) from then on.
        while let Some(event) = local.next_event().await {
            match event {
                Event::SubAck { .. } | Event::Closed | Event::ConnectionLost(_) => break,
                _ => {}
            }
        }
    }
    let _ = local.disconnect().await;
}

/// The bridge's local client, over a socket pair to this broker.
async fn connect_local(shared: &Arc<Shared>, bridge: &Bridge) -> Option<Client> {
    let at = Accepted {
        peer: SocketAddr::from(([127, 0, 0, 1], 0)),
        listener: BRIDGE_LISTENER,
        port: 0,
    };
    let pair = open(shared, at, None)?;
    match Client::connect_over(pair, local_options(bridge)).await {
        Ok((client, _)) => Some(client),
        Err(e) => {
            log::warn!(
                "Bridge {}: its local session could not start: {e}.",
                bridge.name
            );
            None
        }
    }
}

/// One connection of the bridge: connect both sides, carry messages until one side ends.
async fn connection(
    shared: &Arc<Shared>,
    bridge: &Bridge,
    topics: &Topics,
    host: &str,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<Ended, String> {
    let (remote, connected) = Client::connect(remote_options(
        shared
            .config
            .max_inflight_messages
            .clamp(1, usize::from(u16::MAX)),
        bridge,
        host,
        port,
        tls,
    ))
    .await
    .map_err(|e| e.to_string())?;
    let Some(local) = connect_local(shared, bridge).await else {
        let _ = remote.disconnect().await;
        return Ok(Ended::LocalLost);
    };
    let mut link = Link {
        remote,
        local,
        topics,
        remote_max_qos: QoS::ExactlyOnce,
        out: HashMap::new(),
        inbound: HashMap::new(),
        subscribe_ids: HashMap::new(),
        echo: (!bridge.try_private && !bridge.is_v5()).then(EchoFilter::default),
        epoch: std::time::Instant::now(),
    };
    let ended = link
        .serve(shared, bridge, host, port, connected.session_present)
        .await;
    // The local session keeps what was not acknowledged; its next connection gets it again.
    let _ = link.local.disconnect().await;
    let _ = link.remote.disconnect().await;
    Ok(ended)
}

/// A bridge connection's two clients and what is in flight between them.
struct Link<'t> {
    remote: Client,
    local: Client,
    topics: &'t Topics,
    /// The highest QoS the remote granted (a SUBACK granting less than asked lowers it):
    /// messages go out at most at this QoS (NATS grants 1 for 2).
    remote_max_qos: QoS,
    /// Remote packet id of a message sent out → local packet id to acknowledge.
    out: HashMap<u16, u16>,
    /// Local packet id of a message brought in → remote packet id to acknowledge.
    inbound: HashMap<u16, u16>,
    /// SUBSCRIBE packet id → the QoS asked for each filter.
    subscribe_ids: HashMap<u16, Vec<QoS>>,
    echo: Option<EchoFilter>,
    epoch: std::time::Instant,
}

enum Side {
    Local(Option<Event>),
    Remote(Option<Event>),
}

impl Link<'_> {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn serve(
        &mut self,
        shared: &Arc<Shared>,
        bridge: &Bridge,
        host: &str,
        port: u16,
        session_present: bool,
    ) -> Ended {
        let lost = |e: wren_clients::client::ClientError| Ended::RemoteLost(e.to_string());
        let inbound = self.topics.remote_subscriptions();
        if !inbound.is_empty() {
            let asked: Vec<QoS> = inbound.iter().map(|(_, q)| *q).collect();
            let filters = inbound.into_iter().map(|(f, q)| (f, options(q))).collect();
            match self.remote.subscribe_with_options(filters).await {
                Ok(id) => {
                    self.subscribe_ids.insert(id, asked);
                }
                Err(e) => return lost(e),
            }
        }
        let outbound: Vec<(String, SubscriptionOptions)> = self
            .topics
            .local_subscriptions()
            .into_iter()
            .map(|(f, q)| (f, options(q)))
            .collect();
        if !outbound.is_empty() && self.local.subscribe_with_options(outbound).await.is_err() {
            return Ended::LocalLost;
        }
        let state_topic = bridge.notification_topic();
        shared.with_core(None, |b| {
            b.bridge_state(&state_topic, true, shared.now_ms())
        });
        if bridge.notifications && !bridge.notifications_local_only {
            let up = OutgoingMessage::new(state_topic.clone(), "1", QoS::AtLeastOnce).retain(true);
            if let Err(e) = self.remote.publish(up).await {
                return lost(e);
            }
        }
        log::info!(
            "Bridge {} connected to {host}:{port}{}.",
            bridge.name,
            if session_present {
                " (session present)"
            } else {
                ""
            }
        );
        loop {
            let local = &self.local;
            let remote = &self.remote;
            let side = async { Side::Local(local.next_event().await) }
                .or(async { Side::Remote(remote.next_event().await) })
                .await;
            match side {
                Side::Local(None | Some(Event::Closed | Event::ConnectionLost(_))) => {
                    return Ended::LocalLost;
                }
                Side::Remote(None | Some(Event::Closed)) => {
                    return Ended::RemoteLost("closed".into());
                }
                Side::Remote(Some(Event::ConnectionLost(why))) => return Ended::RemoteLost(why),
                Side::Remote(Some(Event::ServerDisconnect { reason_code, .. })) => {
                    return Ended::RemoteLost(format!("DISCONNECT 0x{reason_code:02X}"));
                }
                Side::Local(Some(Event::Message(m))) => {
                    if let Err(e) = self.send_out(m).await {
                        return lost(e);
                    }
                }
                Side::Remote(Some(Event::Message(m))) => {
                    if self.bring_in(m).await.is_err() {
                        return Ended::LocalLost;
                    }
                }
                Side::Remote(Some(Event::PubAck(a) | Event::PubRec(a))) => {
                    if a.reason_code >= 0x80 {
                        log::warn!(
                            "Bridge {}: the remote refused a message (0x{:02X}); dropped.",
                            bridge.name,
                            a.reason_code
                        );
                    }
                    if let Some(id) = self.out.remove(&a.packet_id)
                        && self.local.ack(id).await.is_err()
                    {
                        return Ended::LocalLost;
                    }
                }
                Side::Local(Some(Event::PubAck(a) | Event::PubRec(a))) => {
                    if let Some(id) = self.inbound.remove(&a.packet_id)
                        && let Err(e) = self.remote.ack(id).await
                    {
                        return lost(e);
                    }
                }
                Side::Remote(Some(Event::SubAck { packet_id, codes })) => {
                    let asked = self.subscribe_ids.remove(&packet_id).unwrap_or_default();
                    for (code, asked) in codes.iter().zip(asked) {
                        if *code >= 0x80 {
                            log::warn!(
                                "Bridge {}: the remote refused a subscription (0x{code:02X}).",
                                bridge.name
                            );
                        } else if *code < asked.bits()
                            && let Some(granted) = QoS::from_bits(*code)
                            && granted < self.remote_max_qos
                        {
                            self.remote_max_qos = granted;
                        }
                    }
                }
                Side::Local(Some(_)) | Side::Remote(Some(_)) => {}
            }
        }
    }

    /// A message from this broker: out to the remote, acknowledged here once the remote has.
    async fn send_out(
        &mut self,
        m: ReceivedMessage,
    ) -> Result<(), wren_clients::client::ClientError> {
        let Some((topic, line_qos)) = self.topics.outbound(&m.topic) else {
            return self.ack_local(m.packet_id).await;
        };
        let qos = m.qos.min(line_qos).min(self.remote_max_qos);
        let now = self.now_ms();
        if let Some(echo) = &mut self.echo
            && self.topics.comes_back(&topic)
        {
            echo.sent(&topic, &m.payload, now);
        }
        let message = OutgoingMessage {
            topic,
            payload: m.payload,
            qos,
            retain: m.retain,
            properties: m.properties,
        };
        match (self.remote.publish(message).await?, m.packet_id) {
            (Some(remote_id), Some(local_id)) => {
                self.out.insert(remote_id, local_id);
                Ok(())
            }
            // Sent at QoS 0: nothing more will come for it.
            (None, local_id) => self.ack_local(local_id).await,
            (Some(_), None) => Ok(()),
        }
    }

    async fn ack_local(&self, id: Option<u16>) -> Result<(), wren_clients::client::ClientError> {
        match id {
            // (The local side failing ends the link through its own event.)
            Some(id) => {
                let _ = self.local.ack(id).await;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// A message from the remote: in to this broker, acknowledged to the remote once this
    /// broker has. `Err`: the local side is gone.
    async fn bring_in(&mut self, m: ReceivedMessage) -> Result<(), ()> {
        let now = self.now_ms();
        let echo = self
            .echo
            .as_mut()
            .is_some_and(|e| e.is_echo(&m.topic, &m.payload, now));
        let mapped = if echo {
            None
        } else {
            self.topics.inbound(&m.topic)
        };
        let Some((topic, line_qos)) = mapped else {
            if let Some(id) = m.packet_id {
                let _ = self.remote.ack(id).await;
            }
            return Ok(());
        };
        let message = OutgoingMessage {
            topic,
            payload: m.payload,
            qos: m.qos.min(line_qos),
            retain: m.retain,
            properties: m.properties,
        };
        match (
            self.local.publish(message).await.map_err(|_| ())?,
            m.packet_id,
        ) {
            (Some(local_id), Some(remote_id)) => {
                self.inbound.insert(local_id, remote_id);
            }
            (None, Some(remote_id)) => {
                let _ = self.remote.ack(remote_id).await;
            }
            _ => {}
        }
        Ok(())
    }
}
