//! The firmware client (`wren_clients::embedded::Client`) on the host, against wren-broker
//! started in-process on 127.0.0.1:0, through an `embedded-io` adapter over a `TcpStream`
//! (`ReadReady` by peeking the socket without blocking).

mod common;

use std::time::{Duration, Instant};

use common::tcp::Tcp;
use wren_broker::{Config as BrokerConfig, Server, ServerHandle};
use wren_clients::embedded::{Client, Config};
use wren_codec::{Connect, ProtocolVersion, Publish, QoS};

type Mqtt = Client<Tcp, 1024, 512, 1024, 8>;

fn start_broker() -> ServerHandle {
    let mut config = BrokerConfig::for_tests();
    config.sys_interval = 0;
    Server::bind(config).unwrap().start().unwrap()
}

/// Milliseconds since `t0`, as a firmware tick counter would give them.
fn ms(t0: Instant) -> u32 {
    t0.elapsed().as_millis() as u32
}

/// Poll `client` until `done` holds (10 s at most), collecting messages as (topic, payload, dup).
fn until(
    client: &mut Mqtt,
    t0: Instant,
    got: &mut Vec<(String, Vec<u8>, bool)>,
    done: impl Fn(&Mqtt, &[(String, Vec<u8>, bool)]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(client, got) {
        assert!(Instant::now() < deadline, "timed out; received {got:?}");
        client
            .poll(ms(t0), |m: &Publish<'_>| {
                got.push((m.topic.as_str().to_owned(), m.payload.to_vec(), m.dup))
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn connected(port: u16, connect: Connect<'_>, t0: Instant) -> Mqtt {
    let mut client = Mqtt::new(Tcp::connect(port), Config::new(connect.protocol));
    client.connect(connect, ms(t0)).unwrap();
    until(&mut client, t0, &mut Vec::new(), |c, _| c.is_connected());
    client
}

#[test]
fn connect_subscribe_publish_and_receive_at_qos1() {
    for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
        let broker = start_broker();
        let port = broker.local_addr().port();
        let t0 = Instant::now();
        let connect = Connect {
            protocol: version,
            bridge: false,
            ..Connect::new("emb-loop")
        };
        let mut c = connected(port, connect, t0);
        let sub = c.subscribe("emb/#", QoS::AtLeastOnce, ms(t0)).unwrap();
        assert!(c.is_pending(sub));
        let mut got = Vec::new();
        until(&mut c, t0, &mut got, |c, _| !c.is_pending(sub));
        let id = c
            .publish("emb/reading", b"21.5", QoS::AtLeastOnce, ms(t0))
            .unwrap();
        assert!(id.is_some() && c.is_pending(id));
        until(&mut c, t0, &mut got, |c, got| {
            !c.is_pending(id) && !got.is_empty()
        });
        assert_eq!(got, [("emb/reading".into(), b"21.5".to_vec(), false)]);
        // QoS 0 has no identifier and nothing pending.
        let none = c
            .publish("emb/reading", b"22", QoS::AtMostOnce, ms(t0))
            .unwrap();
        assert_eq!(none, None);
        until(&mut c, t0, &mut got, |_, got| got.len() == 2);
        assert_eq!(got[1].1, b"22");
        c.disconnect(ms(t0)).unwrap();
        assert!(!c.is_connected());
    }
}

#[test]
fn keep_alive_pings_while_idle_and_the_connection_survives() {
    let broker = start_broker();
    let port = broker.local_addr().port();
    let t0 = Instant::now();
    let connect = Connect {
        keep_alive: 1,
        ..Connect::new("emb-idle")
    };
    let mut c = connected(port, connect, t0);
    // 3.5 keep-alive periods with nothing to send: the broker would drop a silent client after
    // 1.5 periods; poll reads nothing that is not there, so it never blocks the PINGREQ.
    let idle_until = Instant::now() + Duration::from_millis(3500);
    let mut longest_wait = 0u32;
    while Instant::now() < idle_until {
        let now = ms(t0);
        let next = c.poll(now, |m| panic!("unexpected {m:?}")).unwrap();
        let next = next.expect("keep-alive schedules a wake-up");
        longest_wait = longest_wait.max(next.wrapping_sub(now));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(longest_wait <= 1000, "wake-up {longest_wait} ms away");
    let pings = c.transport().pings_sent();
    assert!((3..=4).contains(&pings), "{pings} PINGREQ in 3.5 s");
    assert!(c.is_connected());
    let id = c
        .publish("emb/alive", b"yes", QoS::AtLeastOnce, ms(t0))
        .unwrap();
    until(&mut c, t0, &mut Vec::new(), |c, _| !c.is_pending(id));
}

#[test]
fn qos1_message_lost_with_the_link_is_resent_after_reconnect() {
    let broker = start_broker();
    let port = broker.local_addr().port();
    let t0 = Instant::now();
    let mut sub = connected(port, Connect::new("emb-watcher"), t0);
    let s = sub
        .subscribe("emb/retry", QoS::AtLeastOnce, ms(t0))
        .unwrap();
    until(&mut sub, t0, &mut Vec::new(), |c, _| !c.is_pending(s));

    let session = Connect {
        clean_start: false,
        ..Connect::new("emb-retry")
    };
    let mut c = connected(port, Connect::new("emb-retry"), t0); // start with no session
    c.disconnect(ms(t0)).unwrap();
    c.reconnect(Tcp::connect(port));
    c.connect(session, ms(t0)).unwrap();
    until(&mut c, t0, &mut Vec::new(), |c, _| c.is_connected());

    // The link dies silently: the PUBLISH goes nowhere and no PUBACK comes.
    c.transport().swallow_writes = true;
    let id = c
        .publish("emb/retry", b"must arrive", QoS::AtLeastOnce, ms(t0))
        .unwrap();
    for _ in 0..10 {
        c.poll(ms(t0), |_| {}).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(c.is_pending(id));
    let mut got = Vec::new();
    for _ in 0..20 {
        sub.poll(ms(t0), |m| got.push(m.payload.to_vec())).unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(got.is_empty(), "{got:?}");

    // A new link, the same session: the engine resends the PUBLISH (DUP) from the outbox.
    let old = c.reconnect(Tcp::connect(port));
    drop(old);
    c.connect(session, ms(t0)).unwrap();
    until(&mut c, t0, &mut Vec::new(), |c, _| !c.is_pending(id));
    assert!(
        c.transport().sent.contains(&0x3A),
        "no PUBLISH QoS 1 with DUP was sent"
    );
    let mut got = Vec::new();
    until(&mut sub, t0, &mut got, |_, got| !got.is_empty());
    assert_eq!(got[0].0, "emb/retry");
    assert_eq!(got[0].1, b"must arrive");
    // Exactly once here: nothing else follows.
    for _ in 0..20 {
        sub.poll(ms(t0), |m| {
            got.push((String::new(), m.payload.to_vec(), m.dup))
        })
        .unwrap();
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(got.len(), 1, "{got:?}");
}

#[test]
fn outbox_full_is_reported_before_an_identifier_is_taken() {
    let broker = start_broker();
    let port = broker.local_addr().port();
    let t0 = Instant::now();
    let mut c: Client<Tcp, 256, 128, 40, 4> =
        Client::new(Tcp::connect(port), Config::new(ProtocolVersion::V311));
    c.connect(Connect::new("emb-full"), ms(t0)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.is_connected() {
        assert!(Instant::now() < deadline);
        c.poll(ms(t0), |_| {}).unwrap();
    }
    // 2 + 2 + 5 + 2 + 20 = 31 bytes, plus a 4-byte record header: one fits in 40, two do not.
    let first = c
        .publish("emb/f", &[7; 20], QoS::AtLeastOnce, ms(t0))
        .unwrap();
    let second = c.publish("emb/f", &[7; 20], QoS::AtLeastOnce, ms(t0));
    assert_eq!(second, Err(wren_clients::embedded::Error::OutboxFull));
    assert_eq!(c.engine().in_flight(), 1);
    while c.is_pending(first) {
        assert!(Instant::now() < deadline);
        c.poll(ms(t0), |_| {}).unwrap();
    }
    // Acknowledged: the room is back.
    c.publish("emb/f", &[7; 20], QoS::AtLeastOnce, ms(t0))
        .unwrap();
}
