//! Unit tests of the core, driven through [`Driver`] (the harness in `src/testing.rs`) with
//! packets built here, output decoded by the harness in each connection's protocol version. One
//! file per concern, 3.1.1 and 5.0 side by side; `broker/MQTT5.md` maps 5.0 spec sections to
//! the tests by name.

mod access;
mod auth;
mod backpressure;
mod bridge;
mod close;
mod connect;
mod hibernation;
mod keep_alive;
mod log_lines;
mod persist;
mod publish;
mod qos_flows;
mod retained;
mod session_expiry;
mod state_size;
mod strings;
mod subscribe;
mod sys;
mod topic_alias;
mod will;

use wren_codec::properties::{NO_PROPERTIES, Properties};
use wren_codec::{
    Connect, List, Packet, PacketId, ProtocolVersion, Publish, QoS, QosPid, Subscribe,
    Subscription, SubscriptionOptions, TopicFilter, TopicName, Will,
};

use super::ConnId;
use crate::config::Config;
use crate::testing::{ConnAckProperties, Driver, Sent};

pub(super) fn pid(v: u16) -> PacketId {
    PacketId::new(v).unwrap()
}

/// The clients of the tests: CONNECT, SUBSCRIBE and PUBLISH built from a few arguments.
impl Driver {
    /// A broker with the test configuration, no `$SYS` updates.
    fn for_tests() -> Driver {
        Self::for_tests_with(Config::for_tests())
    }

    /// A broker with `config`, no `$SYS` updates.
    fn for_tests_with(config: Config) -> Driver {
        Driver::new(Config {
            sys_interval: 0,
            ..config
        })
    }

    /// A 3.1.1 client connects: its id and what it was sent.
    fn connect_with(
        &mut self,
        id: &str,
        clean: bool,
        keep_alive: u16,
        will: Option<Will<'_>>,
    ) -> (ConnId, Vec<Sent>) {
        self.connect_as(
            ProtocolVersion::V311,
            id,
            clean,
            keep_alive,
            will,
            NO_PROPERTIES,
        )
    }

    /// A client of `protocol` connects: its id and what it was sent.
    fn connect_as(
        &mut self,
        protocol: ProtocolVersion,
        id: &str,
        clean: bool,
        keep_alive: u16,
        will: Option<Will<'_>>,
        properties: Properties<'_>,
    ) -> (ConnId, Vec<Sent>) {
        let c = self.open().unwrap();
        self.send(
            c,
            Packet::Connect(Connect {
                protocol,
                bridge: false,
                clean_start: clean,
                keep_alive,
                client_id: id,
                will,
                username: None,
                password: None,
                properties,
            }),
        );
        (c, self.drain(c))
    }

    /// A 3.1.1 client connects, keep-alive 60 s, and is accepted.
    fn connect(&mut self, id: &str, clean: bool) -> ConnId {
        let (c, out) = self.connect_with(id, clean, 60, None);
        assert!(matches!(out[0], Sent::ConnAck { code: 0, .. }), "{out:?}");
        c
    }

    /// A 5.0 client connects, keep-alive 60 s: its id and what it was sent.
    fn connect_v5_with(
        &mut self,
        id: &str,
        clean: bool,
        properties: Properties<'_>,
        will: Option<Will<'_>>,
    ) -> (ConnId, Vec<Sent>) {
        self.connect_as(ProtocolVersion::V5, id, clean, 60, will, properties)
    }

    /// A 5.0 client with a clean start and no properties connects and is accepted.
    fn connect_v5(&mut self, id: &str) -> ConnId {
        let (c, out) = self.connect_v5_with(id, true, NO_PROPERTIES, None);
        assert!(matches!(out[0], Sent::ConnAck { code: 0, .. }), "{out:?}");
        c
    }

    /// `conn` subscribes (packet id 1, with a Subscription Identifier if `id`): what it was sent.
    fn subscribe_with(
        &mut self,
        conn: ConnId,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> Vec<Sent> {
        let subs = [Subscription {
            filter: TopicFilter::new(filter).unwrap(),
            options,
        }];
        let ids: Vec<u32> = id.into_iter().collect();
        self.send(
            conn,
            Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                properties: Properties {
                    subscription_identifiers: List::new(&ids),
                    ..NO_PROPERTIES
                },
                subscriptions: List::new(&subs),
            }),
        );
        self.drain(conn)
    }

    /// `conn` subscribes to `filter` at `qos`: what it was sent.
    fn subscribe(&mut self, conn: ConnId, filter: &str, qos: QoS) -> Vec<Sent> {
        self.subscribe_with(conn, filter, SubscriptionOptions::qos(qos), None)
    }

    /// `conn` publishes with `properties`.
    fn publish_with(
        &mut self,
        conn: ConnId,
        topic: &str,
        payload: &[u8],
        qos_pid: QosPid,
        retain: bool,
        properties: Properties<'_>,
    ) {
        self.send(
            conn,
            Packet::Publish(Publish {
                dup: false,
                qos_pid,
                retain,
                topic: TopicName::new(topic).unwrap(),
                properties,
                payload,
            }),
        );
    }

    /// `conn` publishes.
    fn publish(
        &mut self,
        conn: ConnId,
        topic: &str,
        payload: &[u8],
        qos_pid: QosPid,
        retain: bool,
    ) {
        self.publish_with(conn, topic, payload, qos_pid, retain, NO_PROPERTIES);
    }

    /// The QoS 1/2 state of `client_id`'s session (in flight, queued, awaiting release).
    fn qos_state(&self, client_id: &str) -> &crate::core::session::QosState {
        let sid = self.broker.sessions().find(client_id).unwrap();
        self.broker.sessions().get(sid).unwrap().delivery()
    }

    /// The PUBLISHes `conn` was sent since the last drain, as (topic, payload, QoS).
    fn publishes(&mut self, conn: ConnId) -> Vec<(String, Vec<u8>, u8)> {
        self.drain_publications(conn)
            .into_iter()
            .map(|p| (p.topic, p.payload, p.qos))
            .collect()
    }
}

/// The properties of the CONNACK in `sent`.
fn connack_properties(sent: &[Sent]) -> &ConnAckProperties {
    match sent.iter().find(|p| matches!(p, Sent::ConnAck { .. })) {
        Some(Sent::ConnAck { properties, .. }) => properties,
        _ => panic!("no CONNACK in {sent:?}"),
    }
}
