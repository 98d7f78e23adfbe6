//! #20 item 3, "nothing acknowledged is lost across the bridge", with the edge broker's binary
//! killed for real: messages for the remote wait in the bridge's persistent local session, in
//! the durable store, while the remote is down — also across `kill -9` of the edge — and are
//! delivered, in order, once the remote is back; a `kill -9` of the edge in the middle of a
//! stream loses no message the edge acknowledged. The edge reads a mosquitto.conf with a
//! `connection` section; the remote is a wren-broker in this process.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use common::flood::{collect, flood, subscribe_and_leave};
use common::process::{Output, Running};
use common::{TempDir, free_port};
use rumqttc::QoS;

const BIN: &str = env!("CARGO_BIN_EXE_wren-broker");

/// The edge: wren-broker on `port` with durable persistence in `dir`, bridging `data/#` out at
/// QoS 1 to 127.0.0.1:`remote`.
fn edge(dir: &Path, port: u16, remote: u16) -> Running {
    let conf = dir.join("edge.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
             persistence_location {}\n\
             connection up\naddress 127.0.0.1:{remote}\ntopic data/# out 1\n\
             cleansession false\nremote_clientid edge.up\nrestart_timeout 1\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("-c").arg(&conf).env_remove("RUST_LOG");
    let mut broker = Running::spawn(cmd, Output::Stderr);
    broker.wait_for_port(port, "the edge broker");
    broker
}

fn numbers(got: &[(u64, QoS)]) -> BTreeSet<u64> {
    got.iter().map(|(n, _)| *n).collect()
}

/// Numbers of `got` in arrival order with repeats of a number (QoS 1 resends) removed.
fn first_arrivals(got: &[(u64, QoS)]) -> Vec<u64> {
    let mut seen = BTreeSet::new();
    got.iter()
        .map(|(n, _)| *n)
        .filter(|n| seen.insert(*n))
        .collect()
}

#[test]
fn queued_for_the_remote_across_kill_9_of_the_edge_and_delivered_in_order() {
    let dir = TempDir::new("bridge-durability");
    let remote_port = free_port();
    let edge_port = free_port();
    let never = AtomicBool::new(false);

    // 1. The remote is down: the edge acknowledges 300 messages, keeps them, and is killed.
    let mut a = edge(&dir.0, edge_port, remote_port);
    a.wait_for_line("Connecting bridge up");
    let acked = flood(
        edge_port,
        "sensor",
        "data/x",
        QoS::AtLeastOnce,
        0,
        300,
        &never,
        0,
    );
    assert_eq!(acked.len(), 300, "the edge acknowledged every message");
    a.kill();
    drop(a);

    // 2. The remote comes up with a persistent subscriber; the edge restarts and delivers.
    // (Room for everything on the remote for its offline subscriber: its own limit is not
    // what this test is about.)
    let remote = common::start(|c| {
        c.port = remote_port;
        c.max_queued_messages = 100_000;
    });
    subscribe_and_leave(remote_port, "far", "data/#", QoS::AtLeastOnce);
    let mut a = edge(&dir.0, edge_port, remote_port);
    a.wait_for_line("Bridge up connected");

    // 3. While it delivers, another stream, and the edge is killed in the middle of it.
    let killed = AtomicBool::new(false);
    let acked_during = std::thread::scope(|s| {
        let publisher = s.spawn(|| {
            flood(
                edge_port,
                "sensor",
                "data/x",
                QoS::AtLeastOnce,
                1000,
                30_000,
                &killed,
                0,
            )
        });
        std::thread::sleep(Duration::from_millis(500));
        a.kill();
        killed.store(true, std::sync::atomic::Ordering::SeqCst);
        publisher.join().unwrap()
    });
    drop(a);
    let mut a = edge(&dir.0, edge_port, remote_port);

    let got = collect(remote_port, "far", Duration::from_secs(4));
    let log = a.drain().join("\n");
    let have = numbers(&got);
    let lost: Vec<u64> = acked
        .iter()
        .chain(&acked_during)
        .filter(|n| !have.contains(n))
        .copied()
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost, e.g. {:?}; the edge's log after its restart:\n{log}",
        lost.len(),
        acked.len() + acked_during.len(),
        &lost[..lost.len().min(10)]
    );
    // In order: the first arrival of each number comes after those of the smaller ones.
    let order = first_arrivals(&got);
    let mut sorted = order.clone();
    sorted.sort_unstable();
    assert_eq!(order, sorted, "out of order");
    eprintln!(
        "acknowledged {} before and {} during the kill; {} arrived ({} distinct)",
        acked.len(),
        acked_during.len(),
        got.len(),
        have.len()
    );
    drop(remote);
}
