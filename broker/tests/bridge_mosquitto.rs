//! Mosquitto's own bridge connecting INTO wren-broker: Debian's Mosquitto 2.0.11
//! (`/usr/sbin/mosquitto`) runs with a `connection` section whose `address` is a wren-broker
//! process, both on free loopback ports, with `topic` lines in each direction (`out`: Mosquitto
//! to wren, `in`: wren to Mosquitto, `both`), QoS 1 and local/remote prefixes (`site/` on
//! Mosquitto is `hq/site/` on wren), `try_private` left at its default (true). Independent
//! clients (rumqttc) on each side check what crosses:
//! - a message published on Mosquitto under an `out` topic reaches a subscriber on wren, remapped
//!   by the prefixes, and one published on wren under an `in` topic reaches Mosquitto;
//! - a retained message arrives retained (a subscriber that comes later still gets it), both
//!   ways;
//! - a `both` topic does not loop: a message published once arrives exactly once on each side
//!   (counted for a bounded time);
//! - 200 QoS 1 messages each way all arrive.
//!
//! With `bridge_protocol_version mqttv311` the bridge sets the bridge bit (CONNECT level 0x84),
//! which wren takes as Mosquitto does (`is_bridge`: No Local and Retain As Published on its
//! subscriptions); with `mqttv50`, Mosquitto 2.0 sends level 5 without the bit and asks for No
//! Local and Retain As Published in its subscription options instead.
//!
//! Every child process is killed when its test ends, and every wait is bounded; nothing is
//! skipped (a missing Mosquitto fails the test, naming the package).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::process::{Output, Running};
use common::{Mq, TempDir, free_port};
use rumqttc::QoS::AtLeastOnce;

const BIN: &str = env!("CARGO_BIN_EXE_wren-broker");
const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// How long the bridge may take to carry a message across (generous: CI runs the tests two at a
/// time on two cores).
const CROSS: Duration = Duration::from_secs(10);
/// How long a side is watched for copies that should not come (the `both` topic's loop).
const WATCH: Duration = Duration::from_secs(2);
/// How many QoS 1 messages are counted each way.
const MESSAGES: usize = 200;

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The two brokers of one test, the bridge between them up in both directions.
struct Bridged {
    wren: Running,
    wren_addr: SocketAddr,
    /// Kept for its output in failure messages, and killed on drop.
    mosquitto: Running,
    mosquitto_addr: SocketAddr,
    _dir: TempDir,
}

/// wren-broker on a free loopback port, then Mosquitto on another with a bridge into it
/// (`bridge_protocol_version` = `version`, remote client id `bridge-<version>`), and wait until
/// messages cross both ways.
fn bridged(version: &str) -> Bridged {
    assert!(
        std::path::Path::new(MOSQUITTO).exists(),
        "{MOSQUITTO} is not installed: apt-get install mosquitto mosquitto-clients (.ci/run \
         installs them)"
    );
    let dir = TempDir::new(&format!("bridge-mosquitto-{version}"));
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "127.0.0.1", "-p", "0"])
        .current_dir(&dir.0)
        .env_remove("RUST_LOG");
    let mut wren = Running::spawn(cmd, Output::Stderr);
    let wren_port = wren.listening_port();
    let mosquitto_port = free_port();
    // The `both` line comes first: Mosquitto subscribes on wren in the order of the lines, and
    // wren handles one connection's packets in order, so once the `in` topic works the `both`
    // one does too.
    let conf = format!(
        "listener {mosquitto_port} 127.0.0.1\n\
         allow_anonymous true\n\
         log_dest stderr\n\
         connection_messages true\n\
         \n\
         connection wren\n\
         address 127.0.0.1:{wren_port}\n\
         bridge_protocol_version {version}\n\
         remote_clientid bridge-{version}\n\
         restart_timeout 1\n\
         topic chat/# both 1 site/ hq/site/\n\
         topic sensors/# out 1 site/ hq/site/\n\
         topic cmd/# in 1 site/ hq/site/\n"
    );
    let conf_path = dir.0.join("mosquitto.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut cmd = Command::new(MOSQUITTO);
    cmd.arg("-c").arg(&conf_path).current_dir(&dir.0);
    let mut mosquitto = Running::spawn(cmd, Output::Stderr);
    mosquitto.wait_for_port(mosquitto_port, "mosquitto");
    let mut b = Bridged {
        wren,
        wren_addr: loopback(wren_port),
        mosquitto,
        mosquitto_addr: loopback(mosquitto_port),
        _dir: dir,
    };
    let line = b.wren.wait_for_line(&format!(" as bridge-{version} "));
    // Mosquitto 2.0 sets the bridge bit (try_private) in 3.1.1 only; wren names the
    // connection as Mosquitto would.
    let (kind, protocol) = if version == "mqttv311" {
        ("bridge", 2)
    } else {
        ("client", 5)
    };
    assert!(
        line.contains(&format!("New {kind} connected from 127.0.0.1:"))
            && line.ends_with(&format!(" as bridge-{version} (p{protocol}, c0, k60).")),
        "{line}"
    );
    b.until_crossing(
        b.mosquitto_addr,
        "site/sensors/probe",
        b.wren_addr,
        "hq/site/sensors/#",
    );
    b.until_crossing(
        b.wren_addr,
        "hq/site/cmd/probe",
        b.mosquitto_addr,
        "site/cmd/#",
    );
    b
}

impl Bridged {
    /// Publish `topic` on `from` every 200 ms until a subscriber to `filter` on `to` gets one
    /// (the bridge is up that way), within `CROSS`.
    fn until_crossing(&mut self, from: SocketAddr, topic: &str, to: SocketAddr, filter: &str) {
        let (sub, _) = Mq::connect(to, "probe-sub", true);
        sub.subscribe(filter, AtLeastOnce);
        let (publisher, _) = Mq::connect(from, "probe-pub", true);
        let deadline = Instant::now() + CROSS;
        loop {
            publisher.publish(topic, AtLeastOnce, false, b"probe");
            if sub
                .next_publish_within(Duration::from_millis(200))
                .is_some()
            {
                break;
            }
            self.wren.assert_running("wren-broker");
            self.mosquitto.assert_running("mosquitto");
            assert!(
                Instant::now() < deadline,
                "nothing published on {from} as {topic} reached {filter} on {to} within \
                 {CROSS:?}; wren: {:#?}; mosquitto: {:#?}",
                self.wren.drain(),
                self.mosquitto.drain()
            );
        }
        publisher.disconnect();
        sub.disconnect();
    }
}

/// A client of `addr` subscribed to `filter` at QoS 1.
fn subscriber(addr: SocketAddr, id: &str, filter: &str) -> Mq {
    let (mq, _) = Mq::connect(addr, id, true);
    mq.subscribe(filter, AtLeastOnce);
    mq
}

/// A client of `addr`.
fn publisher(addr: SocketAddr, id: &str) -> Mq {
    Mq::connect(addr, id, true).0
}

/// Everything `mq` receives until `quiet` passes without a message, as (topic, payload,
/// retain); bounded by `CROSS` in all.
fn received(mq: &Mq, quiet: Duration) -> Vec<(String, String, bool)> {
    let deadline = Instant::now() + CROSS;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        let Some(p) = mq.next_publish_within(quiet) else {
            break;
        };
        if is_probe(&p) {
            continue;
        }
        out.push((
            p.topic.clone(),
            String::from_utf8_lossy(&p.payload).into_owned(),
            p.retain,
        ));
    }
    out
}

/// A late copy of the probes `until_crossing` sent (it stops at the first that crosses).
fn is_probe(p: &rumqttc::Publish) -> bool {
    p.topic.ends_with("/probe")
}

/// The next message `mq` receives within `CROSS`, as (topic, payload, retain).
fn next(mq: &Mq, what: &str) -> (String, String, bool) {
    let deadline = Instant::now() + CROSS;
    let p = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match mq.next_publish_within(left) {
            Some(p) if is_probe(&p) => continue,
            Some(p) => break p,
            None => panic!("{what}: nothing within {CROSS:?}"),
        }
    };
    (
        p.topic.clone(),
        String::from_utf8_lossy(&p.payload).into_owned(),
        p.retain,
    )
}

fn owned(topic: &str, payload: &str, retain: bool) -> (String, String, bool) {
    (topic.to_owned(), payload.to_owned(), retain)
}

/// `out` and `in` topics, remapped by the prefixes.
fn messages_cross_with_the_prefixes(b: &Bridged) {
    let on_wren = subscriber(b.wren_addr, "wren-sub", "hq/#");
    let on_mosquitto = subscriber(b.mosquitto_addr, "mosquitto-sub", "site/#");
    let from_mosquitto = publisher(b.mosquitto_addr, "mosquitto-pub");
    let from_wren = publisher(b.wren_addr, "wren-pub");
    from_mosquitto.publish("site/sensors/t1", AtLeastOnce, false, b"out-1");
    assert_eq!(
        next(&on_wren, "out topic on wren"),
        owned("hq/site/sensors/t1", "out-1", false)
    );
    from_wren.publish("hq/site/cmd/valve", AtLeastOnce, false, b"in-1");
    // Mosquitto's own subscriber saw its local message first.
    assert_eq!(
        received(&on_mosquitto, WATCH),
        [
            owned("site/sensors/t1", "out-1", false),
            owned("site/cmd/valve", "in-1", false)
        ]
    );
    // Not bridged: `in` topics do not go out, `out` topics do not come in, other topics stay.
    from_mosquitto.publish("site/cmd/local", AtLeastOnce, false, b"stays");
    from_mosquitto.publish("site/other", AtLeastOnce, false, b"stays");
    from_wren.publish("hq/site/sensors/remote", AtLeastOnce, false, b"stays");
    from_wren.publish("hq/other", AtLeastOnce, false, b"stays");
    assert_eq!(
        received(&on_wren, WATCH),
        [
            // wren's own subscriber saw wren's local message.
            owned("hq/site/cmd/valve", "in-1", false),
            owned("hq/site/sensors/remote", "stays", false),
            owned("hq/other", "stays", false)
        ]
    );
    assert_eq!(
        received(&on_mosquitto, WATCH),
        [
            owned("site/cmd/local", "stays", false),
            owned("site/other", "stays", false)
        ]
    );
    for mq in [on_wren, on_mosquitto, from_mosquitto, from_wren] {
        mq.disconnect();
    }
}

/// A retained message crosses retained, both ways: a subscriber that comes after it crossed
/// gets it from its own broker with RETAIN set.
fn retained_messages_arrive_retained(b: &Bridged) {
    let on_wren = subscriber(b.wren_addr, "wren-live", "hq/site/sensors/#");
    let on_mosquitto = subscriber(b.mosquitto_addr, "mosquitto-live", "site/cmd/#");
    let from_mosquitto = publisher(b.mosquitto_addr, "mosquitto-pub");
    let from_wren = publisher(b.wren_addr, "wren-pub");
    from_mosquitto.publish("site/sensors/temp", AtLeastOnce, true, b"21.5");
    from_wren.publish("hq/site/cmd/mode", AtLeastOnce, true, b"auto");
    // Live: RETAIN cleared toward a 3.1.1 subscriber, on either broker.
    assert_eq!(
        next(&on_wren, "retained out topic, live on wren"),
        owned("hq/site/sensors/temp", "21.5", false)
    );
    assert_eq!(
        next(&on_mosquitto, "retained in topic, live on Mosquitto"),
        owned("site/cmd/mode", "auto", false)
    );
    // Later subscribers: the message was stored as retained where it arrived.
    let late = subscriber(b.wren_addr, "wren-late", "hq/site/sensors/temp");
    assert_eq!(
        next(&late, "retained out topic, stored on wren"),
        owned("hq/site/sensors/temp", "21.5", true)
    );
    let late_m = subscriber(b.mosquitto_addr, "mosquitto-late", "site/cmd/mode");
    assert_eq!(
        next(&late_m, "retained in topic, stored on Mosquitto"),
        owned("site/cmd/mode", "auto", true)
    );
    for mq in [
        on_wren,
        on_mosquitto,
        from_mosquitto,
        from_wren,
        late,
        late_m,
    ] {
        mq.disconnect();
    }
}

/// A `both` topic does not loop: published once on either side, a message arrives exactly once
/// on each side (counted for `WATCH` after it stopped arriving).
fn both_does_not_loop(b: &Bridged) {
    let on_wren = subscriber(b.wren_addr, "wren-chat", "hq/site/chat/#");
    let on_mosquitto = subscriber(b.mosquitto_addr, "mosquitto-chat", "site/chat/#");
    let from_mosquitto = publisher(b.mosquitto_addr, "mosquitto-pub");
    from_mosquitto.publish("site/chat/m1", AtLeastOnce, false, b"from-mosquitto");
    assert_eq!(
        received(&on_wren, WATCH),
        [owned("hq/site/chat/m1", "from-mosquitto", false)],
        "on wren"
    );
    assert_eq!(
        received(&on_mosquitto, WATCH),
        [owned("site/chat/m1", "from-mosquitto", false)],
        "on Mosquitto"
    );
    let from_wren = publisher(b.wren_addr, "wren-pub");
    from_wren.publish("hq/site/chat/m2", AtLeastOnce, false, b"from-wren");
    assert_eq!(
        received(&on_mosquitto, WATCH),
        [owned("site/chat/m2", "from-wren", false)],
        "on Mosquitto"
    );
    assert_eq!(
        received(&on_wren, WATCH),
        [owned("hq/site/chat/m2", "from-wren", false)],
        "on wren"
    );
    for mq in [on_wren, on_mosquitto, from_mosquitto, from_wren] {
        mq.disconnect();
    }
}

/// `MESSAGES` QoS 1 messages published on `from` as `<topic>/<i>` all reach `to` as
/// `<arrives_as>/<i>`, each once.
fn qos1_all_arrive(from: SocketAddr, topic: &str, to: SocketAddr, arrives_as: &str) {
    let sub = subscriber(to, "count-sub", &format!("{arrives_as}/#"));
    let publisher = publisher(from, "count-pub");
    for i in 0..MESSAGES {
        publisher.publish(
            &format!("{topic}/{i}"),
            AtLeastOnce,
            false,
            i.to_string().as_bytes(),
        );
    }
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    let deadline = Instant::now() + CROSS * 2;
    while seen.len() < MESSAGES && Instant::now() < deadline {
        let Some(p) = sub.next_publish_within(Duration::from_millis(500)) else {
            continue;
        };
        let i: usize = String::from_utf8_lossy(&p.payload).parse().unwrap();
        assert_eq!(p.topic, format!("{arrives_as}/{i}"));
        *seen.entry(i).or_default() += 1;
    }
    // Stragglers (copies) would come now.
    for (topic, payload, _) in received(&sub, WATCH) {
        let i: usize = payload.parse().unwrap();
        assert_eq!(topic, format!("{arrives_as}/{i}"));
        *seen.entry(i).or_default() += 1;
    }
    let missing: Vec<usize> = (0..MESSAGES).filter(|i| !seen.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "{} of {MESSAGES} from {topic} on {from} missing at {to}: {missing:?}",
        missing.len()
    );
    let copies: Vec<(usize, usize)> = seen.into_iter().filter(|&(_, n)| n != 1).collect();
    assert!(copies.is_empty(), "(message, copies): {copies:?}");
    publisher.disconnect();
    sub.disconnect();
}

/// Everything above over one bridge of `version`.
fn bridge_into_wren(version: &str) {
    let mut b = bridged(version);
    messages_cross_with_the_prefixes(&b);
    retained_messages_arrive_retained(&b);
    both_does_not_loop(&b);
    qos1_all_arrive(
        b.mosquitto_addr,
        "site/sensors/n",
        b.wren_addr,
        "hq/site/sensors/n",
    );
    qos1_all_arrive(b.wren_addr, "hq/site/cmd/n", b.mosquitto_addr, "site/cmd/n");
    b.wren.assert_running("wren-broker");
    b.mosquitto.assert_running("mosquitto");
}

/// A 3.1.1 bridge (CONNECT level 0x84: the bridge bit): wren logs it as a bridge and gives its
/// subscriptions No Local and Retain As Published, which the `both` and retained checks need.
#[test]
fn mosquitto_bridge_mqttv311_into_wren() {
    bridge_into_wren("mqttv311");
}

/// A 5.0 bridge: No Local and Retain As Published asked for in its subscription options.
#[test]
fn mosquitto_bridge_mqttv50_into_wren() {
    bridge_into_wren("mqttv50");
}
