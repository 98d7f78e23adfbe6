//! "A PUBACK or PUBREC from wren-broker means the message survives `kill -9`" (#19), tested by
//! killing the broker binary for real: an independent client (rumqttc) floods QoS 1 and QoS 2
//! messages at a broker that is killed with SIGKILL at a random moment, again and again; after
//! each restart every message whose PUBACK/PUBREC the publisher received must reach the
//! persistent subscriber — QoS 1 at least once, QoS 2 exactly once, in order — and retained
//! messages and subscriptions are back. Also: a damaged store file is refused with a message
//! naming it, and nothing of the broker's is written in memory mode.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::TempDir;
use common::flood::{collect, flood, options, subscribe_and_leave};
use common::process::{Output, Running};
use rumqttc::{Event, Packet, QoS};

const BIN: &str = env!("CARGO_BIN_EXE_wren-broker");

/// wren-broker in `dir` (default configuration: durable persistence in `./wren.db`) on a free
/// port; its process and port.
fn start(dir: &Path, args: &[&str]) -> (Running, u16) {
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "127.0.0.1", "-p", "0"])
        .args(args)
        .current_dir(dir)
        .env_remove("RUST_LOG");
    let mut broker = Running::spawn(cmd, Output::Stderr);
    let port = broker.listening_port();
    (broker, port)
}

/// Deterministic pseudo-random delays (no test depends on a random seed it does not print).
fn delays(seed: u64, n: usize) -> Vec<Duration> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Duration::from_millis(30 + x % 400)
        })
        .collect()
}

#[test]
fn acknowledged_qos1_and_qos2_messages_survive_kill_9_at_random_moments() {
    let t0 = Instant::now();
    let dir = TempDir::new("durability-kill9");
    // Unbounded queues: the offline subscribers must not drop by `max_queued_messages`.
    std::fs::write(dir.0.join("wren.toml"), "max_queued_messages = 0\n").unwrap();
    let (broker, port) = start(&dir.0, &["-c", "wren.toml"]);
    subscribe_and_leave(port, "device-q1", "plant/q1/#", QoS::AtLeastOnce);
    subscribe_and_leave(port, "device-q2", "plant/q2/#", QoS::ExactlyOnce);
    drop(broker); // SIGKILL

    eprintln!("set up at {:?}", t0.elapsed());
    let seed = 0x5eed_0019;
    eprintln!("kill delays from seed {seed:#x}");
    let mut acked_q1: Vec<u64> = Vec::new();
    let mut acked_q2: Vec<u64> = Vec::new();
    let mut next = 0u64;
    for (round, delay) in delays(seed, 4).into_iter().enumerate() {
        let (broker, port) = start(&dir.0, &["-c", "wren.toml"]);
        let killed = Arc::new(AtomicBool::new(false));
        // The killer: SIGKILL after `delay`, while both floods run.
        let killer = {
            let killed = Arc::clone(&killed);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                drop(broker);
                killed.store(true, Ordering::SeqCst);
            })
        };
        let q2 = {
            let killed = Arc::clone(&killed);
            std::thread::spawn(move || {
                let id = format!("pub-q2-{round}");
                let topic = "plant/q2/x";
                flood(
                    port,
                    &id,
                    topic,
                    QoS::ExactlyOnce,
                    next + 500_000,
                    100_000,
                    &killed,
                    0,
                )
            })
        };
        let id = format!("pub-q1-{round}");
        acked_q1.extend(flood(
            port,
            &id,
            "plant/q1/x",
            QoS::AtLeastOnce,
            next,
            100_000,
            &killed,
            0,
        ));
        acked_q2.extend(q2.join().unwrap());
        killer.join().unwrap();
        next += 100_000;
        eprintln!(
            "round {round} ({:?}): killed after {delay:?}; acknowledged so far: {} QoS 1, {} QoS 2",
            t0.elapsed(),
            acked_q1.len(),
            acked_q2.len()
        );
    }
    assert!(
        acked_q1.len() > 100 && acked_q2.len() > 100,
        "the floods ran ({} and {} acknowledged)",
        acked_q1.len(),
        acked_q2.len()
    );

    let (_broker, port) = start(&dir.0, &["-c", "wren.toml"]);
    let got_q1 = collect(port, "device-q1", Duration::from_secs(2));
    eprintln!("q1 collected at {:?}", t0.elapsed());
    let got_q2 = collect(port, "device-q2", Duration::from_secs(2));
    eprintln!("q2 collected at {:?}", t0.elapsed());

    // QoS 1: every acknowledged message at least once, first deliveries in publish order.
    let received_q1: BTreeSet<u64> = got_q1.iter().map(|(n, _)| *n).collect();
    let lost: Vec<&u64> = acked_q1
        .iter()
        .filter(|n| !received_q1.contains(n))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged QoS 1 messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let mut seen = BTreeSet::new();
    let firsts: Vec<u64> = got_q1
        .iter()
        .filter(|(n, _)| seen.insert(*n))
        .map(|(n, _)| *n)
        .collect();
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "QoS 1 messages out of order"
    );
    // QoS 2: every acknowledged message exactly once.
    assert!(got_q2.iter().all(|(_, qos)| *qos == QoS::ExactlyOnce));
    let order: Vec<u64> = got_q2.iter().map(|(n, _)| *n).collect();
    assert_exactly_once_in_order(&acked_q2, &order);
    eprintln!(
        "delivered after the kills: {} QoS 1 ({} acknowledged), {} QoS 2 ({} acknowledged)",
        got_q1.len(),
        acked_q1.len(),
        got_q2.len(),
        acked_q2.len()
    );
}

/// QoS 2 as received (`got`: message numbers in arrival order): every `acked` one there, none
/// twice, in order.
fn assert_exactly_once_in_order(acked: &[u64], got: &[u64]) {
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for n in got {
        *counts.entry(*n).or_default() += 1;
    }
    let lost: Vec<&u64> = acked.iter().filter(|n| !counts.contains_key(n)).collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged QoS 2 messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let twice: Vec<(&u64, &usize)> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(twice.is_empty(), "QoS 2 delivered twice: {twice:?}");
    assert!(got.windows(2).all(|w| w[0] < w[1]), "QoS 2 out of order");
}

/// wren-broker in `dir` on `port` (the same one after each restart, for a client that
/// reconnects by itself).
fn start_on(dir: &Path, port: u16) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args([
        "--bind",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-c",
        "wren.toml",
    ])
    .current_dir(dir)
    .env_remove("RUST_LOG");
    let mut broker = Running::spawn(cmd, Output::Stderr);
    broker.wait_for_port(port, "wren-broker");
    broker
}

/// Exactly once to a subscriber that is online when the broker dies: Eclipse Paho (Python), a
/// persistent QoS 2 session that reconnects by itself (`tests/paho/qos2_subscriber.py`),
/// receives while a publisher floods QoS 2 and the broker is killed with SIGKILL at random
/// moments and started again on the same port. Every message whose PUBREC the publisher
/// received is handed over, once, in order, and no message twice.
///
/// (Not mosquitto_sub: libmosquitto 2.0.11 keeps a second entry for a QoS 2 message sent again
/// with DUP after a reconnection, as every broker must, and hands it over at the next PUBREL
/// of that packet id — printing one message twice and never the new one.)
#[test]
fn an_online_qos2_subscriber_gets_each_message_once_across_kill_9() {
    let t0 = Instant::now();
    let dir = TempDir::new("durability-online-q2");
    std::fs::write(dir.0.join("wren.toml"), "max_queued_messages = 0\n").unwrap();
    let port = common::free_port();
    let mut first = Some(start_on(&dir.0, port));
    subscribe_and_leave(port, "device-online", "plant/online/#", QoS::ExactlyOnce);
    // (The session's first connection, rumqttc's: the rounds wait for Paho's.)
    first.as_mut().unwrap().wait_for_line("as device-online");
    let mut sub = {
        let mut cmd = Command::new(common::tools::paho_python());
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/paho/qos2_subscriber.py"))
            .args([&port.to_string(), "device-online"]);
        Running::spawn(cmd, Output::Stdout)
    };
    let seed = 0x0021_1e02;
    eprintln!("kill delays from seed {seed:#x}");
    let mut acked: Vec<u64> = Vec::new();
    let mut next = 0u64;
    for (round, delay) in delays(seed, 4).into_iter().enumerate() {
        let mut broker = first.take().unwrap_or_else(|| start_on(&dir.0, port));
        // The subscriber back (it retries every second) before the flood starts.
        broker.wait_for_line("as device-online");
        let killed = Arc::new(AtomicBool::new(false));
        let killer = {
            let killed = Arc::clone(&killed);
            std::thread::spawn(move || {
                std::thread::sleep(delay);
                drop(broker); // SIGKILL
                killed.store(true, Ordering::SeqCst);
            })
        };
        acked.extend(flood(
            port,
            &format!("pub-online-{round}"),
            "plant/online/x",
            QoS::ExactlyOnce,
            next,
            100_000,
            &killed,
            0,
        ));
        killer.join().unwrap();
        next += 100_000;
        eprintln!(
            "round {round} ({:?}): killed after {delay:?}; {} acknowledged so far",
            t0.elapsed(),
            acked.len()
        );
    }
    assert!(
        acked.len() > 100,
        "the flood ran ({} acknowledged)",
        acked.len()
    );
    let mut broker = start_on(&dir.0, port);
    broker.wait_for_line("as device-online");
    // Until the subscriber has had everything: nothing new for 2 s (at most a minute).
    let (mut printed, mut since) = (0, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(60);
    while since.elapsed() < Duration::from_secs(2) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let n = sub.drain().len();
        if n != printed {
            (printed, since) = (n, Instant::now());
        }
    }
    sub.assert_running("the Paho subscriber");
    let got: Vec<u64> = sub
        .drain()
        .iter()
        .map(|l| l.split(' ').next().and_then(|n| n.parse().ok()))
        .collect::<Option<_>>()
        .unwrap_or_else(|| panic!("not a flood message: {:?}", sub.drain()));
    assert_exactly_once_in_order(&acked, &got);
    eprintln!(
        "{} handed over by Paho, {} acknowledged, in {:?}",
        got.len(),
        acked.len(),
        t0.elapsed()
    );
}

/// The will of a client connected when the broker is killed is published after the restart
/// (to a persistent subscriber that was away), and the log says so; a client that left with
/// DISCONNECT leaves no will behind. (Mosquitto loses such wills in a crash.)
#[test]
fn the_will_of_a_client_connected_at_kill_9_is_published_after_the_restart() {
    let dir = TempDir::new("durability-connected-will");
    let (mut broker, port) = start(&dir.0, &[]);
    subscribe_and_leave(port, "watcher", "state/#", QoS::AtLeastOnce);
    let connect = |id: &str, payload: &str| {
        let mut o = options(id, port, true);
        o.set_last_will(rumqttc::LastWill::new(
            format!("state/{id}"),
            payload.to_owned(),
            QoS::AtLeastOnce,
            false,
        ));
        let (client, mut conn) = rumqttc::Client::new(o, 10);
        loop {
            match conn.recv_timeout(Duration::from_secs(5)) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => break,
                Ok(Ok(_)) => {}
                other => panic!("no CONNACK: {other:?}"),
            }
        }
        (client, conn)
    };
    let (polite, mut polite_conn) = connect("polite", "8 offline");
    polite.disconnect().unwrap();
    while let Ok(Ok(event)) = polite_conn.recv_timeout(Duration::from_millis(500)) {
        if matches!(event, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
            break;
        }
    }
    broker.wait_for_line("Client polite disconnected");
    // (That its will is gone is written with the next batch: a few milliseconds.)
    std::thread::sleep(Duration::from_millis(300));
    // The CONNACK comes once the lamp's will is on disk: killed right after it.
    let (_lamp, _lamp_conn) = connect("lamp", "7 offline");
    drop(broker); // SIGKILL, the lamp still connected

    let (mut broker, port) = start(&dir.0, &[]);
    // (Logged before the `running on` line `start` waited for.)
    let log = broker.drain().join("\n");
    assert!(
        log.contains("Persistence: 1 wills of clients connected when the broker stopped"),
        "{log}"
    );
    let got = collect(port, "watcher", Duration::from_secs(2));
    assert_eq!(got, [(7, QoS::AtLeastOnce)], "the lamp's will, once");
}

/// The persistent session `keeper` (subscribed to `big/#`, then away) gets `count` QoS 1
/// messages of 60 kB from a publisher: the numbers of those acknowledged.
fn fill_keeper(port: u16, count: u64) -> Vec<u64> {
    subscribe_and_leave(port, "keeper", "big/#", QoS::AtLeastOnce);
    let never = AtomicBool::new(false);
    flood(
        port,
        "filler",
        "big/x",
        QoS::AtLeastOnce,
        0,
        count,
        &never,
        60_000,
    )
}

/// [`start`] with `persistence_compact_interval = 1`: the store is looked at for space to give
/// back a second after a write.
fn start_compacting(dir: &Path) -> (Running, u16) {
    std::fs::write(dir.join("wren.toml"), "persistence_compact_interval = 1\n").unwrap();
    start(dir, &["-c", "wren.toml"])
}

/// A store that held a burst of queued messages gives the space back while the broker runs:
/// once the messages are delivered, `persistence_compact_interval` after the last write, the
/// file is compacted (redb never shrinks it by itself).
#[test]
fn a_store_emptied_while_running_is_compacted() {
    let dir = TempDir::new("durability-compact");
    let (mut broker, port) = start_compacting(&dir.0);
    // 250 messages of 60 kB: 15 MB queued for the keeper.
    let acked = fill_keeper(port, 250);
    assert_eq!(acked.len(), 250);
    let file = dir.0.join("wren.db");
    let full = std::fs::metadata(&file).unwrap().len();
    assert!(full > 15 << 20, "{full} bytes");
    let got = collect(port, "keeper", Duration::from_secs(1));
    assert_eq!(got.len(), 250);
    let line = broker.wait_for_line("Persistence: compacted");
    let after = std::fs::metadata(&file).unwrap().len();
    assert!(after < full / 4, "{full} -> {after} bytes: {line}");
    eprintln!("{line}");
}

/// A `kill -9` as the store is being compacted loses nothing: killed the moment the broker
/// says it starts compacting, restarted, every message queued for an away session is there.
#[test]
fn a_kill_during_compaction_loses_nothing() {
    let dir = TempDir::new("durability-compact-kill");
    let (mut broker, port) = start_compacting(&dir.0);
    // What must survive: 400 messages of 10 kB queued for an away session (what the
    // compaction copies: 4 MB, so that it takes a while).
    subscribe_and_leave(port, "archive", "keep/#", QoS::AtLeastOnce);
    let never = AtomicBool::new(false);
    let kept = flood(
        port,
        "recorder",
        "keep/x",
        QoS::AtLeastOnce,
        0,
        400,
        &never,
        10_000,
    );
    assert_eq!(kept.len(), 400);
    // Space to give back: 30 MB queued for the keeper, delivered while this thread waits for
    // the compaction to start (it may start before they all are).
    assert_eq!(fill_keeper(port, 500).len(), 500);
    let (_keeper, mut deliveries) = rumqttc::Client::new(options("keeper", port, false), 10);
    let draining = std::thread::spawn(move || {
        // Until the broker is killed (or a minute, bounded).
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Err(_)) = deliveries.recv_timeout(Duration::from_millis(200)) {
                return;
            }
        }
    });
    broker.wait_for_line("Persistence: compacting");
    broker.kill();
    let log = broker.rest_of_output();
    draining.join().unwrap();
    match log.lines().find(|l| l.contains("Persistence: compacted")) {
        Some(line) => eprintln!("killed after the compaction finished: {line}"),
        None => eprintln!("killed before the compaction finished"),
    }

    let (_broker, port) = start(&dir.0, &[]);
    let got: Vec<u64> = collect(port, "archive", Duration::from_secs(1))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(got, kept);
}

/// A store file that is damaged — garbage, or a real one cut short — or held by another broker
/// is refused at start with a message naming the file and the way out, and a non-zero exit:
/// never a panic, never a start on an empty store that would silently drop what it held.
#[test]
fn a_damaged_or_busy_store_is_refused_with_the_way_out() {
    let dir = TempDir::new("durability-damaged");
    let (broker, port) = start(&dir.0, &[]);
    subscribe_and_leave(port, "keeper", "k/#", QoS::AtLeastOnce);
    // The same file, from a second broker: in use.
    let (code, log) = refused(&dir.0);
    assert!(code != Some(0), "{log}");
    assert!(
        log.contains("Error: persistence file wren.db: in use by another process"),
        "{log}"
    );
    drop(broker);
    let good = std::fs::read(dir.0.join("wren.db")).unwrap();
    let mut garbage = vec![0x5au8; 100_000];
    garbage[..16].copy_from_slice(b"not a redb file!");
    for (what, bytes) in [
        ("garbage", garbage),
        ("cut short", good[..good.len() / 2].to_vec()),
    ] {
        std::fs::write(dir.0.join("wren.db"), &bytes).unwrap();
        let (code, log) = refused(&dir.0);
        assert_eq!(code, Some(1), "{what}: {log}");
        assert!(
            log.contains("Error: persistence file wren.db: cannot be read (")
                && log.contains("Move the file away to start with an empty store"),
            "{what}: {log}"
        );
        assert!(!log.contains("panicked"), "{what}: {log}");
    }
    // The way out works: the file moved away, the broker starts.
    std::fs::rename(dir.0.join("wren.db"), dir.0.join("wren.db.damaged")).unwrap();
    let (_broker, _) = start(&dir.0, &[]);
}

/// Start a broker in `dir` that is expected to refuse to start: its exit code and log.
fn refused(dir: &Path) -> (Option<i32>, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["--bind", "127.0.0.1", "-p", "0"])
        .current_dir(dir)
        .env_remove("RUST_LOG");
    let mut broker = Running::spawn(cmd, Output::Stderr);
    let status = broker.exit_within(Duration::from_secs(10));
    let log = broker.rest_of_output();
    (status.and_then(|s| s.code()), log)
}

/// A full disk while running (the broker's file size limited with `ulimit -f`, SIGXFSZ
/// ignored: writes past it fail with EFBIG as on a full disk): the write fails, the broker says
/// so, stops acknowledging — the 3.1.1 publisher whose message could not be written gets no
/// PUBACK and its next QoS 1 PUBLISH closes the connection — and stays up; every message it
/// did acknowledge is on disk and delivered after a restart.
#[test]
fn a_full_disk_stops_acknowledgements_and_loses_nothing_acknowledged() {
    let dir = TempDir::new("durability-full");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f 20000; exec {BIN} --bind 127.0.0.1 -p 0"
        ))
        .current_dir(&dir.0)
        .env_remove("RUST_LOG");
    let mut broker = Running::spawn(cmd, Output::Stderr);
    let port = broker.listening_port();
    // The 3 MB limit is reached after a few dozen.
    let acked = fill_keeper(port, 500);
    assert!(
        !acked.is_empty() && acked.len() < 500,
        "{} acknowledged: {:#?}",
        acked.len(),
        broker.drain()
    );
    broker.wait_for_line("Persistence: cannot write the store; QoS 1 and 2 messages are refused");
    // Still up for everyone else.
    let (client, mut conn) = rumqttc::Client::new(options("still-here", port, true), 10);
    client.subscribe("other", QoS::AtMostOnce).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(
            Instant::now() < deadline,
            "no SUBACK from the broker with a full disk"
        );
        if let Ok(Ok(Event::Incoming(Packet::SubAck(_)))) =
            conn.recv_timeout(Duration::from_millis(100))
        {
            break;
        }
    }
    drop(broker);
    let (_broker, port) = start(&dir.0, &[]);
    let got: BTreeSet<u64> = collect(port, "keeper", Duration::from_secs(2))
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let lost: Vec<&u64> = acked.iter().filter(|n| !got.contains(n)).collect();
    assert!(lost.is_empty(), "acknowledged and lost: {lost:?}");
    eprintln!(
        "{} acknowledged before the disk was full, all delivered",
        acked.len()
    );
}
