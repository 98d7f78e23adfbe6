//! #20: wren-broker's bridge between two wren-brokers started in this process on ephemeral
//! loopback ports, checked with rumqttc clients on both sides: topic remapping both ways,
//! retained messages, loop prevention with and without `try_private`, the state topic, fail-over
//! across the address list, and messages queued while the remote is down delivered in order
//! once it is back. (Mosquitto on either side: `bridge_mosquitto.rs`; kill -9 and NATS:
//! `bridge_durability.rs`, `nats_cluster.rs`.)

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Mq, QUIET, WAIT, free_port, start};
use rumqttc::QoS;
use wren_broker::{Bridge, ServerHandle};

/// A bridge named `b` to `addresses` with `topics`, reconnecting every second.
fn bridge(addresses: &[SocketAddr], topics: &[&str]) -> Bridge {
    Bridge {
        name: "b".into(),
        address: addresses.iter().map(ToString::to_string).collect(),
        topic: topics.iter().map(|t| (*t).to_owned()).collect(),
        remote_clientid: Some("edge.b".into()),
        restart_timeout: vec![1],
        ..Bridge::default()
    }
}

/// A broker with `bridge` (started on its own port).
fn edge(bridge: Bridge) -> ServerHandle {
    start(move |c| c.bridge = vec![bridge])
}

/// Wait until the edge's bridge state topic says `want`.
fn wait_state(edge: &ServerHandle, want: &[u8]) {
    let (mq, _) = Mq::connect(edge.local_addr(), "state-watcher", true);
    mq.subscribe("$SYS/broker/connection/edge.b/state", QoS::AtLeastOnce);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let p = mq
            .next_publish_within(left)
            .unwrap_or_else(|| panic!("bridge state never became {want:?}"));
        if p.payload.as_ref() == want {
            break;
        }
    }
    mq.disconnect();
}

/// A remote on `port` keeping its sessions in `dir` (so that a subscriber's session outlives a
/// restart of the remote, and what the bridge sends while it is away waits for it).
fn durable_remote(port: u16, dir: &common::TempDir) -> ServerHandle {
    let location = dir.0.clone();
    start(move |c| {
        c.port = port;
        c.persistence = true;
        c.persistence_location = location;
    })
}

/// Every payload received within `quiet` of the previous one.
fn drain(mq: &Mq, quiet: Duration) -> Vec<(String, Vec<u8>, bool)> {
    let mut got = Vec::new();
    while let Some(p) = mq.next_publish_within(quiet) {
        got.push((p.topic.clone(), p.payload.to_vec(), p.retain));
    }
    got
}

#[test]
fn topics_are_remapped_both_ways_and_retained_messages_stay_retained() {
    let remote = start(|_| {});
    let a = edge(bridge(
        &[remote.local_addr()],
        &["sensors/# out 1 edge/ site1/", "cmd/# in 1 \"\" fleet/"],
    ));
    wait_state(&a, b"1");
    let (on_remote, _) = Mq::connect(remote.local_addr(), "cloud-sub", true);
    on_remote.subscribe("#", QoS::AtLeastOnce);
    let (on_edge, _) = Mq::connect(a.local_addr(), "device", true);
    on_edge.subscribe("cmd/#", QoS::AtLeastOnce);

    on_edge.publish("edge/sensors/t1", QoS::AtLeastOnce, false, b"21.5");
    on_edge.publish("edge/other", QoS::AtLeastOnce, false, b"not bridged");
    on_edge.publish("edge/sensors/t2", QoS::AtLeastOnce, true, b"kept");
    let got = drain(&on_remote, Duration::from_secs(2));
    let sensors: Vec<_> = got
        .iter()
        .filter(|(t, _, _)| t.starts_with("site1/"))
        .collect();
    assert_eq!(
        sensors,
        [
            &("site1/sensors/t1".to_owned(), b"21.5".to_vec(), false),
            // (Live, so not retained for this subscriber; stored retained, below.)
            &("site1/sensors/t2".to_owned(), b"kept".to_vec(), false)
        ],
        "{got:?}"
    );
    assert!(!got.iter().any(|(t, _, _)| t.contains("other")), "{got:?}");
    // The retained one is stored on the remote, retained.
    let (late, _) = Mq::connect(remote.local_addr(), "late", true);
    late.subscribe("site1/sensors/t2", QoS::AtLeastOnce);
    let p = late.next_publish();
    assert!(p.retain && p.payload.as_ref() == b"kept");

    let (cloud, _) = Mq::connect(remote.local_addr(), "cloud-pub", true);
    cloud.publish("fleet/cmd/reboot", QoS::AtLeastOnce, false, b"now");
    cloud.publish("cmd/reboot", QoS::AtLeastOnce, false, b"not under fleet/");
    let got = drain(&on_edge, Duration::from_secs(2));
    assert_eq!(got, [("cmd/reboot".to_owned(), b"now".to_vec(), false)]);
}

/// `both` lines, towards a broker told it is a bridge (`try_private`) and one not told (3.1.1
/// without it, as NATS): a message goes round once, never back.
#[test]
fn both_ways_without_loops_with_and_without_try_private() {
    for try_private in [true, false] {
        let remote = start(|_| {});
        let mut b = bridge(&[remote.local_addr()], &["room/# both 1"]);
        b.try_private = try_private;
        let a = edge(b);
        wait_state(&a, b"1");
        let (here, _) = Mq::connect(a.local_addr(), "here", true);
        here.subscribe("room/#", QoS::AtLeastOnce);
        let (there, _) = Mq::connect(remote.local_addr(), "there", true);
        there.subscribe("room/#", QoS::AtLeastOnce);
        here.publish("room/1", QoS::AtLeastOnce, false, b"from here");
        there.publish("room/2", QoS::AtLeastOnce, false, b"from there");
        let mut on_here = drain(&here, Duration::from_secs(2));
        let mut on_there = drain(&there, QUIET);
        on_here.sort();
        on_there.sort();
        let both = vec![
            ("room/1".to_owned(), b"from here".to_vec(), false),
            ("room/2".to_owned(), b"from there".to_vec(), false),
        ];
        assert_eq!(on_here, both, "try_private {try_private}");
        assert_eq!(on_there, both, "try_private {try_private}");
    }
}

/// The first address is dead: the bridge goes on to the next; when that one is lost, messages
/// queue in the bridge's session and arrive, in order, when a remote answers again.
#[test]
fn fail_over_and_messages_queued_while_the_remote_is_down() {
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let port = free_port();
    let remote_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let store = common::TempDir::new("bridge-remote");
    let remote = durable_remote(port, &store);
    let mut b = bridge(&[dead, remote_addr], &["data/# out 1"]);
    b.local_cleansession = Some(false);
    let a = edge(b);
    wait_state(&a, b"1");
    let (sub, _) = Mq::connect(remote_addr, "far", false);
    sub.subscribe("data/#", QoS::AtLeastOnce);
    let (publisher, _) = Mq::connect(a.local_addr(), "near", true);
    publisher.publish("data/0", QoS::AtLeastOnce, false, b"0");
    assert_eq!(sub.next_publish().payload.as_ref(), b"0");
    sub.disconnect();

    drop(remote);
    wait_state(&a, b"0");
    for i in 1..=50u32 {
        publisher.publish("data/x", QoS::AtLeastOnce, false, i.to_string().as_bytes());
    }
    std::thread::sleep(QUIET);
    // Back on the same port (the second address), with the far subscriber's session.
    let remote = durable_remote(port, &store);
    wait_state(&a, b"1");
    let (sub, present) = Mq::connect(remote.local_addr(), "far", false);
    assert!(
        present,
        "the far subscriber's session survived the remote's restart"
    );
    let got: Vec<u32> = drain(&sub, Duration::from_secs(3))
        .into_iter()
        .map(|(_, p, _)| String::from_utf8(p).unwrap().parse().unwrap())
        .collect();
    let mut unique = got.clone();
    unique.dedup();
    assert_eq!(unique, (1..=50).collect::<Vec<_>>(), "got {got:?}");
    drop(a);
}

#[test]
fn state_topic_says_when_the_bridge_is_down() {
    let port = free_port();
    let a = edge(bridge(
        &[format!("127.0.0.1:{port}").parse().unwrap()],
        &["# out 0"],
    ));
    wait_state(&a, b"0");
    let remote = start(|c| c.port = port);
    wait_state(&a, b"1");
    // The remote has the state too (notifications).
    let (mq, _) = Mq::connect(remote.local_addr(), "watch", true);
    mq.subscribe("$SYS/broker/connection/edge.b/state", QoS::AtLeastOnce);
    assert_eq!(mq.next_publish_within(WAIT).unwrap().payload.as_ref(), b"1");
}

/// wren-broker bridging to Mosquitto (Debian's 2.0), in 3.1.1 and 5.0, with `try_private`:
/// both ways, prefixes, no loop on a `both` line, and the bridge's state on Mosquitto.
#[test]
fn bridging_to_mosquitto_in_both_protocol_versions() {
    for version in ["mqttv311", "mqttv50"] {
        let mosquitto = wren_broker::testing::Mosquitto::start("");
        let mut b = bridge(
            &[mosquitto.addr()],
            &[
                "room/# both 1",
                "up/# out 1 local/ remote/",
                "down/# in 1 local/ remote/",
            ],
        );
        b.bridge_protocol_version = version.into();
        let a = edge(b);
        wait_state(&a, b"1");
        let (here, _) = Mq::connect(a.local_addr(), "here", true);
        here.subscribe("#", QoS::AtLeastOnce);
        let (there, _) = Mq::connect(mosquitto.addr(), "there", true);
        there.subscribe("$SYS/broker/connection/#", QoS::AtLeastOnce);
        let state = there.next_publish();
        assert_eq!(
            (state.topic.as_str(), state.payload.as_ref()),
            ("$SYS/broker/connection/edge.b/state", &b"1"[..]),
            "{version}"
        );
        there.subscribe("#", QoS::AtLeastOnce);
        here.publish("room/1", QoS::AtLeastOnce, false, b"from wren");
        here.publish("local/up/t", QoS::AtLeastOnce, false, b"up");
        there.publish("room/2", QoS::AtLeastOnce, false, b"from mosquitto");
        there.publish("remote/down/c", QoS::AtLeastOnce, false, b"down");
        let mut on_here = drain(&here, Duration::from_secs(2));
        let mut on_there = drain(&there, QUIET);
        on_here.sort();
        on_there.sort();
        let room = [
            ("room/1".to_owned(), b"from wren".to_vec(), false),
            ("room/2".to_owned(), b"from mosquitto".to_vec(), false),
        ];
        let mut want_here = room.to_vec();
        want_here.push(("local/down/c".into(), b"down".to_vec(), false));
        want_here.push(("local/up/t".into(), b"up".to_vec(), false));
        want_here.sort();
        let mut want_there = room.to_vec();
        want_there.push(("remote/down/c".into(), b"down".to_vec(), false));
        want_there.push(("remote/up/t".into(), b"up".to_vec(), false));
        want_there.sort();
        assert_eq!(on_here, want_here, "{version}");
        assert_eq!(on_there, want_there, "{version}");
    }
}

/// The edge can reach the remote's listener and nothing more: a subscriber of the remote sees
/// whether messages cross.
fn crosses(edge: &ServerHandle, remote: SocketAddr, remote_login: Option<(&str, &str)>) -> bool {
    let mut opts = rumqttc::MqttOptions::new("far-sub", "127.0.0.1", remote.port());
    if let Some((u, p)) = remote_login {
        opts.set_credentials(u, p);
    }
    let (client, mut conn) = rumqttc::Client::new(opts, 10);
    client.subscribe("t/#", QoS::AtLeastOnce).unwrap();
    let (near, _) = Mq::connect(edge.local_addr(), "near", true);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut published = false;
    while Instant::now() < deadline {
        match conn.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_)))) if !published => {
                near.publish("t/1", QoS::AtLeastOnce, false, b"x");
                published = true;
            }
            Ok(Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(_)))) => return true,
            Ok(Err(e)) => panic!("the remote's subscriber failed: {e}"),
            _ => {}
        }
    }
    assert!(published, "the remote's subscriber never subscribed");
    false
}

/// `bridge_cafile` (and a client certificate for a listener that requires one): the bridge
/// connects over TLS to a remote whose certificate the CA signed, and refuses one it did not.
#[test]
fn tls_towards_the_remote_with_and_without_the_right_ca() {
    common::certs::capture_logs();
    let pki = common::certs::Pki::new();
    let mut tls = pki.listener();
    tls.cafile = Some(pki.ca.clone());
    tls.require_certificate = true;
    tls.allow_anonymous = Some(true);
    let remote = start(|c| c.listener = vec![common::certs::plain_listener(), tls]);
    let (plain, tls_addr) = (remote.local_addrs()[0], remote.local_addrs()[1]);
    let mut good = bridge(&[tls_addr], &["t/# out 1"]);
    good.bridge_cafile = Some(pki.ca.clone());
    good.bridge_certfile = Some(pki.client_cert.clone());
    good.bridge_keyfile = Some(pki.client_key.clone());
    let a = edge(good.clone());
    wait_state(&a, b"1");
    assert!(crosses(&a, plain, None), "nothing crossed the TLS bridge");
    drop(a);

    for (what, b) in [
        (
            "a CA that did not sign the remote's certificate",
            Bridge {
                name: "rogue-ca".into(),
                bridge_cafile: Some(pki.rogue_ca.clone()),
                ..good.clone()
            },
        ),
        (
            "no client certificate where one is required",
            Bridge {
                name: "no-cert".into(),
                bridge_certfile: None,
                bridge_keyfile: None,
                ..good.clone()
            },
        ),
    ] {
        let name = b.name.clone();
        let a = edge(b);
        let line = common::certs::logged(
            &[&format!("Bridge {name} could not connect")],
            Duration::from_secs(10),
        );
        assert!(line.is_some(), "{what}: no refusal logged");
        assert!(!crosses(&a, plain, None), "{what}: a message crossed");
    }
}

/// `remote_username`/`remote_password` against a remote with a password file: the right ones
/// get through, a wrong password does not (and is not logged).
#[test]
fn remote_credentials_are_checked_by_the_remote() {
    common::certs::capture_logs();
    let dir = std::env::temp_dir().join(format!("wren-bridge-passwd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let passwords = dir.join("passwords");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_wren-passwd"))
        .arg("-c")
        .arg("-b")
        .arg(&passwords)
        .args(["edge", "s3cret-bridge"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let remote = start(|c| {
        c.allow_anonymous = Some(false);
        c.password_file = Some(passwords.clone());
    });
    let login = Some(("edge", "s3cret-bridge"));
    let mut right = bridge(&[remote.local_addr()], &["t/# out 1"]);
    right.remote_username = Some("edge".into());
    right.remote_password = Some("s3cret-bridge".into());
    let a = edge(right.clone());
    wait_state(&a, b"1");
    assert!(crosses(&a, remote.local_addr(), login));
    drop(a);

    let wrong = Bridge {
        name: "wrong".into(),
        remote_password: Some("guess-1234".into()),
        ..right
    };
    let a = edge(wrong);
    let line = common::certs::logged(&["Bridge wrong could not connect"], Duration::from_secs(10))
        .expect("the refusal is logged");
    assert!(
        !line.contains("guess-1234"),
        "the password was logged: {line}"
    );
    assert!(!crosses(&a, remote.local_addr(), login));
    let _ = std::fs::remove_dir_all(&dir);
}

/// QoS per topic line, and downgraded to what the remote takes: a remote whose maximum QoS is
/// 1 (5.0 CONNACK Maximum QoS) gets QoS 2 messages at QoS 1, and a `topic ... 0` line sends at 0.
#[test]
fn qos_follows_the_line_and_what_the_remote_takes() {
    let remote = start(|c| c.maximum_qos = 1);
    let mut b = bridge(&[remote.local_addr()], &["two/# out 2", "zero/# out 0"]);
    b.bridge_protocol_version = "mqttv50".into();
    let a = edge(b);
    wait_state(&a, b"1");
    let (far, _) = Mq::connect(remote.local_addr(), "far", true);
    far.subscribe("#", QoS::AtLeastOnce);
    let (near, _) = Mq::connect(a.local_addr(), "near", true);
    near.publish("two/a", QoS::ExactlyOnce, false, b"2");
    near.publish("zero/a", QoS::AtLeastOnce, false, b"0");
    let mut got: Vec<(String, QoS)> = Vec::new();
    while let Some(p) = far.next_publish_within(Duration::from_secs(2)) {
        got.push((p.topic.clone(), p.qos));
    }
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        [
            ("two/a".to_owned(), QoS::AtLeastOnce),
            ("zero/a".to_owned(), QoS::AtMostOnce)
        ]
    );
}

/// A remote that answers with garbage — before the CONNACK, after a valid CONNACK, or a
/// CONNACK refusing — is logged and retried; the broker serves its own clients meanwhile.
#[test]
fn a_hostile_remote_is_logged_and_retried_and_the_broker_carries_on() {
    use std::io::{Read, Write};
    common::certs::capture_logs();
    for (name, answer, expect, why) in [
        (
            "garbage",
            vec![0xFFu8; 16],
            "could not connect",
            "malformed",
        ),
        (
            "refusal",
            vec![0x20, 0x02, 0x00, 0x05],
            "could not connect",
            "",
        ),
        // A CONNACK, then a PUBLISH with a Remaining Length past the end of MQTT's range.
        (
            "bad-after-connack",
            vec![0x20, 0x02, 0x00, 0x00, 0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
            "lost its connection",
            "invalid packet",
        ),
        // A CONNACK, then a PUBLISH announcing 64 MiB: larger than the broker's max_packet_size
        // (1 MiB), refused from its header, before anything is buffered.
        (
            "oversize",
            vec![0x20, 0x02, 0x00, 0x00, 0x30, 0x80, 0x80, 0x80, 0x20],
            "lost its connection",
            "exceeds the maximum of 1048576",
        ),
    ] {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let served = std::thread::spawn(move || {
            let mut served = 0;
            listener.set_nonblocking(false).unwrap();
            // Two connection attempts, then stop.
            for stream in listener.incoming().take(2) {
                let mut s = stream.unwrap();
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 256];
                let _ = s.read(&mut buf);
                let _ = s.write_all(&answer);
                std::thread::sleep(Duration::from_millis(100));
                served += 1;
            }
            served
        });
        let mut b = bridge(&[addr], &["x/# both 1"]);
        b.name = name.into();
        let a = edge(b);
        let line = common::certs::logged(
            &[&format!("Bridge {name} {expect}"), why],
            Duration::from_secs(10),
        );
        assert!(line.is_some(), "{name}: not logged");
        assert_eq!(served.join().unwrap(), 2, "{name}: the bridge tried again");
        common::broker_still_works(a.local_addr());
    }
}

/// `round_robin false` (the default): on a backup address, the bridge goes back to the main
/// (first) address once it answers again.
#[test]
fn back_to_the_main_address_when_it_answers_again() {
    let main_port = free_port();
    let main_addr: SocketAddr = format!("127.0.0.1:{main_port}").parse().unwrap();
    let backup = start(|_| {});
    let a = edge(bridge(&[main_addr, backup.local_addr()], &["t/# out 1"]));
    wait_state(&a, b"1");
    let (near, _) = Mq::connect(a.local_addr(), "near", true);
    let (on_backup, _) = Mq::connect(backup.local_addr(), "on-backup", true);
    on_backup.subscribe("t/#", QoS::AtLeastOnce);
    near.publish("t/1", QoS::AtLeastOnce, false, b"via backup");
    assert_eq!(on_backup.next_publish().payload.as_ref(), b"via backup");

    let main = start(|c| c.port = main_port);
    let (on_main, _) = Mq::connect(main.local_addr(), "on-main", true);
    on_main.subscribe("t/#", QoS::AtLeastOnce);
    // The bridge tries the main address every second (restart_timeout 1): publish until a
    // message comes through it, within a bounded time.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut arrived = false;
    while !arrived && Instant::now() < deadline {
        near.publish("t/2", QoS::AtLeastOnce, false, b"via main");
        arrived = on_main
            .next_publish_within(Duration::from_millis(500))
            .is_some();
    }
    assert!(arrived, "the bridge did not go back to the main address");
}

/// The bridge's queue while the remote is down is its local session's: bounded by
/// `max_queued_messages`, the oldest queued QoS 0 message making room first, then new messages
/// dropped — counted in `$SYS/broker/publish/messages/dropped`.
#[test]
fn the_queue_for_a_remote_that_is_down_is_bounded_and_counts_what_it_drops() {
    let port = free_port();
    let remote_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    // The far subscriber's persistent session, made before the bridge exists.
    let store = common::TempDir::new("bridge-remote");
    let remote = durable_remote(port, &store);
    let (far, _) = Mq::connect(remote_addr, "far", false);
    far.subscribe("q/#", QoS::AtLeastOnce);
    far.disconnect();
    drop(remote);
    let mut b = bridge(&[remote_addr], &["q/# out 1"]);
    b.local_cleansession = Some(false);
    let a = start(move |c| {
        c.bridge = vec![b];
        c.max_queued_messages = 10;
        c.queue_qos0_messages = true;
        c.sys_interval = 1;
    });
    wait_state(&a, b"0");
    let (near, _) = Mq::connect(a.local_addr(), "near", true);
    near.publish("q/0", QoS::AtMostOnce, false, b"qos0");
    for i in 1..=12u32 {
        near.publish("q/x", QoS::AtLeastOnce, false, i.to_string().as_bytes());
    }
    std::thread::sleep(QUIET);
    let (sys, _) = Mq::connect(a.local_addr(), "sys", true);
    sys.subscribe("$SYS/broker/publish/messages/dropped", QoS::AtMostOnce);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut dropped = 0;
    while dropped < 3 && Instant::now() < deadline {
        if let Some(p) = sys.next_publish_within(Duration::from_secs(2)) {
            dropped = String::from_utf8_lossy(&p.payload).parse().unwrap_or(0);
        }
    }
    // 13 messages for 10 places: the QoS 0 one made room first, then two QoS 1 were dropped.
    assert_eq!(dropped, 3, "dropped count");

    let remote = durable_remote(port, &store);
    wait_state(&a, b"1");
    let (far, present) = Mq::connect(remote.local_addr(), "far", false);
    assert!(present);
    let got: Vec<String> = drain(&far, Duration::from_secs(2))
        .into_iter()
        .map(|(_, p, _)| String::from_utf8(p).unwrap())
        .collect();
    let want: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    assert_eq!(got, want, "the first ten QoS 1 messages, in order");
}

/// `bridge_insecure`: a remote whose certificate does not name the address connected to
/// (127.0.0.2, not in its names) is refused by default, and accepted with it — the chain is
/// still checked (a certificate from another CA stays refused).
#[test]
fn bridge_insecure_skips_only_the_name_check() {
    common::certs::capture_logs();
    let pki = common::certs::Pki::new();
    let mut tls = pki.listener();
    tls.bind = "127.0.0.2".into();
    tls.allow_anonymous = Some(true);
    let remote = start(|c| c.listener = vec![common::certs::plain_listener(), tls]);
    let (plain, tls_addr) = (remote.local_addrs()[0], remote.local_addrs()[1]);
    assert_eq!(tls_addr.ip().to_string(), "127.0.0.2");
    let named = |name: &str, insecure: bool, ca: &std::path::Path| Bridge {
        name: name.into(),
        bridge_cafile: Some(ca.to_path_buf()),
        bridge_insecure: insecure,
        ..bridge(&[tls_addr], &["t/# out 1"])
    };

    let a = edge(named("strict", false, &pki.ca));
    assert!(
        common::certs::logged(
            &["Bridge strict could not connect"],
            Duration::from_secs(10)
        )
        .is_some(),
        "the name check did not refuse"
    );
    assert!(!crosses(&a, plain, None));
    drop(a);

    let a = edge(named("rogue", true, &pki.rogue_ca));
    assert!(
        common::certs::logged(&["Bridge rogue could not connect"], Duration::from_secs(10))
            .is_some(),
        "insecure accepted a chain it should not"
    );
    drop(a);

    let a = edge(named("insecure", true, &pki.ca));
    assert!(crosses(&a, plain, None), "bridge_insecure did not connect");
}

/// The bridge's local session is the broker's own: a client of a listener that names its
/// client id (`local.<remote_clientid>`) is refused (CONNACK 0x02) and the bridge carries on.
#[test]
fn no_client_can_take_the_bridges_local_session_over() {
    let remote = start(|_| {});
    let a = edge(bridge(&[remote.local_addr()], &["t/# out 1"]));
    wait_state(&a, b"1");
    assert_eq!(
        common::connack(a.local_addr().port(), "local.edge.b"),
        [0x20, 0x02, 0x00, 0x02]
    );
    assert_eq!(
        common::connack(a.local_addr().port(), "local.edge.c"),
        [0x20, 0x02, 0x00, 0x00],
        "another id is accepted"
    );
    assert!(crosses(&a, remote.local_addr(), None), "the bridge stopped");
}

/// A bridge's TLS file that cannot be loaded stops the start, naming the bridge (as a
/// listener's does), rather than leaving a bridge that never connects.
#[test]
fn a_missing_bridge_cafile_stops_the_start() {
    let mut config = wren_broker::Config::for_tests();
    config.bridge = vec![Bridge {
        bridge_cafile: Some("/nonexistent/ca.pem".into()),
        ..bridge(&["127.0.0.1:1".parse().unwrap()], &["t/# out 1"])
    }];
    let e = wren_broker::Server::bind(config)
        .unwrap()
        .start()
        .expect_err("refused");
    assert!(e.to_string().starts_with("bridge b: "), "{e}");
}
