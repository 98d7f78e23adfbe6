//! The async client library against Mosquitto: flows, pings, refusals, reconnection.

mod common;

use std::time::Duration;

use common::*;
use smol::future::FutureExt;
use wren_clients::client::{Client, ClientError, ClientOptions, Event, OutgoingMessage, Reconnect};
use wren_clients::engine::{ConnectRefused, ConnectReturnCode};
use wren_codec::{ProtocolVersion, QoS};

/// The next event that `pred` accepts (others are skipped), or a panic after `secs`.
async fn wait_for(client: &Client, secs: u64, pred: impl Fn(&Event) -> bool) -> Event {
    let find = async {
        while let Some(e) = client.next_event().await {
            if pred(&e) {
                return e;
            }
        }
        panic!("event stream ended");
    };
    let timeout = async {
        smol::Timer::after(Duration::from_secs(secs)).await;
        panic!("timed out waiting for an event");
    };
    find.or(timeout).await
}

fn options(port: u16, id: &str, version: ProtocolVersion) -> ClientOptions {
    let mut o = ClientOptions::new("127.0.0.1", port, id);
    o.version = version;
    o.connect_timeout = Duration::from_secs(5);
    o
}

#[test]
fn qos_flows_round_trip_in_both_versions() {
    let b = Broker::start();
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        smol::block_on(async {
            let (c, connected) = Client::connect(options(b.port, "lib-flows", version))
                .await
                .unwrap();
            assert!(!connected.session_present);
            let sub = c
                .subscribe(vec![("lib/#".into(), QoS::ExactlyOnce)])
                .await
                .unwrap();
            let e = wait_for(&c, 5, |e| matches!(e, Event::SubAck { .. })).await;
            assert_eq!(
                e,
                Event::SubAck {
                    packet_id: sub,
                    codes: vec![2]
                }
            );
            for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
                let mut m = OutgoingMessage::new("lib/q", vec![qos.bits()], qos);
                m.properties.content_type = Some("application/octet-stream".into());
                m.properties.user_properties.push(("k".into(), "v".into()));
                let id = c.publish(m).await.unwrap();
                assert_eq!(id.is_some(), qos != QoS::AtMostOnce);
                let got = wait_for(&c, 5, |e| matches!(e, Event::Message(_))).await;
                let Event::Message(got) = got else {
                    unreachable!()
                };
                assert_eq!(got.payload, vec![qos.bits()]);
                assert_eq!(got.qos, qos);
                if version.is_v5() {
                    assert_eq!(
                        got.properties.content_type.as_deref(),
                        Some("application/octet-stream")
                    );
                    assert_eq!(
                        got.properties.user_properties,
                        vec![("k".to_owned(), "v".to_owned())]
                    );
                } else {
                    assert_eq!(got.properties.content_type, None);
                }
                if let Some(id) = id {
                    // The flow completes with PUBACK or PUBCOMP.
                    let done = wait_for(&c, 5, |e| match e {
                        Event::PubAck(a) | Event::PubComp(a) => a.packet_id == id,
                        _ => false,
                    })
                    .await;
                    assert!(matches!(
                        (qos, done),
                        (QoS::AtLeastOnce, Event::PubAck(_))
                            | (QoS::ExactlyOnce, Event::PubComp(_))
                    ));
                }
            }
            let u = c.unsubscribe(vec!["lib/#".into()]).await.unwrap();
            let e = wait_for(&c, 5, |e| matches!(e, Event::UnsubAck { .. })).await;
            assert!(matches!(e, Event::UnsubAck { packet_id, .. } if packet_id == u));
            c.disconnect().await.unwrap();
            assert_eq!(wait_for(&c, 5, |_| true).await, Event::Closed);
            // After disconnect, requests fail cleanly.
            assert!(matches!(
                c.publish(OutgoingMessage::new("x", "y", QoS::AtMostOnce))
                    .await,
                Err(ClientError::Closed)
            ));
        });
    }
}

#[test]
fn keep_alive_pings_the_broker() {
    let b = Broker::start();
    smol::block_on(async {
        let mut o = options(b.port, "lib-ping", ProtocolVersion::V311);
        o.keep_alive = 1;
        let (c, _) = Client::connect(o).await.unwrap();
        assert_eq!(
            wait_for(&c, 4, |e| matches!(e, Event::PingResp)).await,
            Event::PingResp
        );
        c.disconnect().await.unwrap();
    });
}

#[test]
fn refusals_are_typed() {
    let b = Broker::with_config("allow_anonymous false\n");
    smol::block_on(async {
        let err = Client::connect(options(b.port, "lib-refused", ProtocolVersion::V311))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ClientError::Refused(ConnectRefused::V3(ConnectReturnCode::NotAuthorized))
            ),
            "{err:?}"
        );
        let err = Client::connect(options(b.port, "lib-refused", ProtocolVersion::V5))
            .await
            .unwrap_err();
        let ClientError::Refused(r) = err else {
            panic!("{err:?}")
        };
        assert_eq!(r.code(), 0x87);
        assert!(r.to_string().contains("Not authorized"), "{r}");
    });
}

#[test]
fn reconnects_with_backoff_and_renews_subscriptions() {
    let port = free_port();
    let mut b = Broker::on_port(port, "allow_anonymous true\n");
    smol::block_on(async {
        let mut o = options(port, "lib-reconnect", ProtocolVersion::V311);
        o.reconnect = Some(Reconnect {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(200),
        });
        let (c, _) = Client::connect(o).await.unwrap();
        c.subscribe(vec![("again/#".into(), QoS::AtLeastOnce)])
            .await
            .unwrap();
        wait_for(&c, 5, |e| matches!(e, Event::SubAck { .. })).await;

        b.stop();
        wait_for(&c, 5, |e| matches!(e, Event::ConnectionLost(_))).await;
        wait_for(&c, 5, |e| matches!(e, Event::Reconnecting(_))).await;
        // A publish while disconnected waits for the connection instead of failing.
        let queued = {
            let c = c.clone();
            smol::spawn(async move {
                c.publish(OutgoingMessage::new("again/queued", "q", QoS::AtLeastOnce))
                    .await
            })
        };
        let _b2 = Broker::on_port(port, "allow_anonymous true\n");
        let e = wait_for(&c, 10, |e| matches!(e, Event::Connected(_))).await;
        assert!(
            matches!(e, Event::Connected(ref x) if !x.session_present),
            "{e:?}"
        );
        // The new broker has no session: the subscription is renewed by the client.
        wait_for(&c, 5, |e| matches!(e, Event::SubAck { .. })).await;
        assert!(queued.await.unwrap().is_some());
        let r = run(
            "wren-pub",
            &["-p", &port.to_string(), "-t", "again/x", "-m", "back"],
            "",
            SECS10,
        );
        assert_eq!(r.code(), 0, "{r:?}");
        let e = wait_for(
            &c,
            5,
            |e| matches!(e, Event::Message(m) if m.topic == "again/x"),
        )
        .await;
        assert!(matches!(e, Event::Message(m) if m.payload == b"back"));
        c.disconnect().await.unwrap();
    });
}

#[test]
fn lost_connection_without_reconnect_closes() {
    let mut b = Broker::start();
    smol::block_on(async {
        let (c, _) = Client::connect(options(b.port, "lib-lost", ProtocolVersion::V311))
            .await
            .unwrap();
        b.stop();
        wait_for(&c, 5, |e| matches!(e, Event::ConnectionLost(_))).await;
        assert_eq!(wait_for(&c, 5, |_| true).await, Event::Closed);
        assert!(c.next_event().await.is_none());
    });
}
