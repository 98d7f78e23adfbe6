//! The async firmware client (`wren_clients::embedded::asynch::Client`) on the host, against
//! wren-broker started in-process on 127.0.0.1:0, through an `embedded-io-async` adapter over a
//! `TcpStream` (smol's `Async`; `ReadReady` by peeking without blocking), run by
//! `smol::block_on`. The blocking client is checked by `embedded.rs`; the two share their
//! session, so these tests follow the same flows through the awaited writes.

mod common;

use std::time::{Duration, Instant};

use common::tcp_async::AsyncTcp;
use wren_broker::{Config as BrokerConfig, Server, ServerHandle};
use wren_clients::embedded::Config;
use wren_clients::embedded::asynch::Client;
use wren_codec::{Connect, ProtocolVersion, Publish, QoS};

type Mqtt = Client<AsyncTcp, 1024, 512, 1024, 8>;
type Received = Vec<(String, Vec<u8>)>;

fn start_broker() -> ServerHandle {
    let mut config = BrokerConfig::for_tests();
    config.sys_interval = 0;
    Server::bind(config).unwrap().start().unwrap()
}

/// Milliseconds since `t0`, as a firmware tick counter would give them.
fn ms(t0: Instant) -> u32 {
    t0.elapsed().as_millis() as u32
}

/// Poll `client` until `done` holds (10 s at most), collecting messages; between polls the task
/// sleeps on a timer, as firmware awaits its tick.
async fn until(
    client: &mut Mqtt,
    t0: Instant,
    got: &mut Received,
    done: impl Fn(&Mqtt, &Received) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(client, got) {
        assert!(Instant::now() < deadline, "timed out; received {got:?}");
        client
            .poll(ms(t0), |m: &Publish<'_>| {
                got.push((m.topic.as_str().to_owned(), m.payload.to_vec()))
            })
            .await
            .unwrap();
        smol::Timer::after(Duration::from_millis(2)).await;
    }
}

async fn connected(port: u16, connect: Connect<'_>, t0: Instant) -> Mqtt {
    let mut client = Mqtt::new(AsyncTcp::connect(port), Config::new(connect.protocol));
    client.connect(connect, ms(t0)).await.unwrap();
    until(&mut client, t0, &mut Vec::new(), |c, _| c.is_connected()).await;
    client
}

#[test]
fn async_connect_subscribe_and_publish_at_qos1_and_qos2() {
    smol::block_on(async {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let broker = start_broker();
            let port = broker.local_addr().port();
            let t0 = Instant::now();
            let connect = Connect {
                protocol: version,
                bridge: false,
                ..Connect::new("async-loop")
            };
            let mut c = connected(port, connect, t0).await;
            let sub = c
                .subscribe("async/#", QoS::ExactlyOnce, ms(t0))
                .await
                .unwrap();
            assert!(c.is_pending(sub));
            let mut got = Vec::new();
            until(&mut c, t0, &mut got, |c, _| !c.is_pending(sub)).await;
            let one = c
                .publish("async/one", b"21.5", QoS::AtLeastOnce, ms(t0))
                .await
                .unwrap();
            let two = c
                .publish("async/two", b"22.0", QoS::ExactlyOnce, ms(t0))
                .await
                .unwrap();
            assert!(c.is_pending(one) && c.is_pending(two));
            until(&mut c, t0, &mut got, |c, got| {
                !c.is_pending(one) && !c.is_pending(two) && got.len() == 2
            })
            .await;
            got.sort();
            assert_eq!(
                got,
                [
                    ("async/one".to_owned(), b"21.5".to_vec()),
                    ("async/two".to_owned(), b"22.0".to_vec())
                ],
                "{version:?}"
            );
            c.disconnect(ms(t0)).await.unwrap();
            assert!(!c.is_connected());
        }
    });
}

#[test]
fn async_keep_alive_pings_while_idle_and_the_connection_survives() {
    smol::block_on(async {
        let broker = start_broker();
        let port = broker.local_addr().port();
        let t0 = Instant::now();
        let connect = Connect {
            keep_alive: 1,
            ..Connect::new("async-idle")
        };
        let mut c = connected(port, connect, t0).await;
        // 2.5 keep-alive periods with nothing to send: the broker drops a client silent for 1.5
        // periods, so the connection survives only if the client pinged.
        let idle_until = Instant::now() + Duration::from_millis(2500);
        while Instant::now() < idle_until {
            let next = c
                .poll(ms(t0), |m| panic!("unexpected {m:?}"))
                .await
                .unwrap();
            assert!(next.is_some(), "keep-alive schedules a wake-up");
            smol::Timer::after(Duration::from_millis(20)).await;
        }
        assert!(c.transport().pings_sent() >= 1);
        assert!(c.is_connected());
        let id = c
            .publish("async/alive", b"yes", QoS::AtLeastOnce, ms(t0))
            .await
            .unwrap();
        until(&mut c, t0, &mut Vec::new(), |c, _| !c.is_pending(id)).await;
    });
}

#[test]
fn async_qos1_and_qos2_lost_with_the_link_are_resent_after_reconnect() {
    smol::block_on(async {
        let broker = start_broker();
        let port = broker.local_addr().port();
        let t0 = Instant::now();
        let mut sub = connected(port, Connect::new("async-watcher"), t0).await;
        let s = sub
            .subscribe("async/retry/#", QoS::ExactlyOnce, ms(t0))
            .await
            .unwrap();
        until(&mut sub, t0, &mut Vec::new(), |c, _| !c.is_pending(s)).await;

        let session = Connect {
            clean_start: false,
            ..Connect::new("async-retry")
        };
        // Start with no session, then resume one.
        let mut c = connected(port, Connect::new("async-retry"), t0).await;
        c.disconnect(ms(t0)).await.unwrap();
        c.reconnect(AsyncTcp::connect(port));
        c.connect(session, ms(t0)).await.unwrap();
        until(&mut c, t0, &mut Vec::new(), |c, _| c.is_connected()).await;

        // The link dies silently: the PUBLISH packets go nowhere, no acknowledgement comes.
        c.transport().swallow_writes = true;
        let one = c
            .publish("async/retry/1", b"at least once", QoS::AtLeastOnce, ms(t0))
            .await
            .unwrap();
        let two = c
            .publish("async/retry/2", b"exactly once", QoS::ExactlyOnce, ms(t0))
            .await
            .unwrap();
        for _ in 0..10 {
            c.poll(ms(t0), |_| {}).await.unwrap();
        }
        assert!(c.is_pending(one) && c.is_pending(two));

        // A new link, the same session: both are resent (DUP) from the outbox and complete.
        drop(c.reconnect(AsyncTcp::connect(port)));
        c.connect(session, ms(t0)).await.unwrap();
        until(&mut c, t0, &mut Vec::new(), |c, _| {
            c.is_connected() && !c.is_pending(one) && !c.is_pending(two)
        })
        .await;
        assert!(
            c.transport().sent.contains(&0x3A),
            "no QoS 1 PUBLISH with DUP"
        );
        assert!(
            c.transport().sent.contains(&0x3C),
            "no QoS 2 PUBLISH with DUP"
        );
        let mut got = Vec::new();
        until(&mut sub, t0, &mut got, |_, got| got.len() == 2).await;
        got.sort();
        assert_eq!(
            got,
            [
                ("async/retry/1".to_owned(), b"at least once".to_vec()),
                ("async/retry/2".to_owned(), b"exactly once".to_vec())
            ]
        );
        // Exactly once each: nothing else follows (the subscriber drains what is there).
        for _ in 0..20 {
            sub.poll(ms(t0), |m| {
                got.push((m.topic.as_str().to_owned(), m.payload.to_vec()))
            })
            .await
            .unwrap();
            smol::Timer::after(Duration::from_millis(10)).await;
        }
        assert_eq!(got.len(), 2, "{got:?}");
    });
}
