//! Helpers of the tests that kill brokers (`durability.rs`, `bridge_durability.rs`): a rumqttc
//! publisher that floods numbered QoS 1/2 messages and reports which were acknowledged, and a
//! persistent subscriber that collects them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rumqttc::{Event, MqttOptions, Outgoing, Packet, QoS};

pub fn options(id: &str, port: u16, clean: bool) -> MqttOptions {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_clean_session(clean);
    o.set_keep_alive(Duration::from_secs(30));
    // (rumqttc refuses packets over 10 kB by default; the full-disk test sends 60 kB.)
    o.set_max_packet_size(1 << 20, 1 << 20);
    o
}

/// Subscribe `id` (a persistent session) to `filter` at `qos`, wait for the SUBACK, and
/// disconnect: messages queue for it from now on.
pub fn subscribe_and_leave(port: u16, id: &str, filter: &str, qos: QoS) {
    let (client, mut conn) = rumqttc::Client::new(options(id, port, false), 10);
    client.subscribe(filter, qos).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no SUBACK");
        if let Ok(Ok(Event::Incoming(Packet::SubAck(_)))) =
            conn.recv_timeout(Duration::from_millis(100))
        {
            break;
        }
    }
    client.disconnect().unwrap();
    // Until the DISCONNECT is out (the event loop sends it).
    while let Ok(Ok(event)) = conn.recv_timeout(Duration::from_millis(500)) {
        if matches!(event, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}

/// Publish `count` messages numbered from `first` on `topic` at `qos` as fast as the window
/// allows, until done or the connection dies (the broker killed); returns the numbers whose
/// PUBACK (QoS 1) or PUBREC (QoS 2) arrived.
#[allow(clippy::too_many_arguments)] // (one test helper; a struct would only rename them)
pub fn flood(
    port: u16,
    id: &str,
    topic: &str,
    qos: QoS,
    first: u64,
    count: u64,
    killed: &AtomicBool,
    pad: usize,
) -> Vec<u64> {
    let mut opts = options(id, port, true);
    if pad > 0 {
        // Big messages a few at a time: the store fills batch by batch, not in the first one.
        opts.set_inflight(4);
    }
    let (client, mut conn) = rumqttc::Client::new(opts, 10);
    let mut next = first;
    let end = first + count;
    // Numbers in the order rumqttc sent them, and packet id -> number while in flight.
    let mut sent_order: std::collections::VecDeque<u64> = std::collections::VecDeque::new();
    let mut in_flight: HashMap<u16, u64> = HashMap::new();
    let mut acked = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    // No acknowledgement for this long: the broker stopped acknowledging (a full disk).
    let stalled = Duration::from_secs(3);
    let mut progress = Instant::now();
    while Instant::now() < deadline && progress.elapsed() < stalled {
        while next < end
            && client
                .try_publish(topic, qos, false, format!("{next} {}", "x".repeat(pad)))
                .is_ok()
        {
            sent_order.push_back(next);
            next += 1;
        }
        match conn.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                if let Some(n) = sent_order.pop_front() {
                    in_flight.insert(pkid, n);
                }
            }
            Ok(Ok(Event::Incoming(Packet::PubAck(a)))) => {
                acked.extend(in_flight.remove(&a.pkid));
                progress = Instant::now();
            }
            Ok(Ok(Event::Incoming(Packet::PubRec(r)))) => {
                acked.extend(in_flight.remove(&r.pkid));
                progress = Instant::now();
            }
            Ok(Ok(_)) => {}
            // The broker is gone.
            Ok(Err(_)) => break,
            Err(_) => {
                if (next == end && in_flight.is_empty()) || killed.load(Ordering::SeqCst) {
                    break;
                }
            }
        }
    }
    acked
}

/// Connect the persistent subscriber `id` and collect what it receives until `quiet` passes
/// with nothing: (payload number, QoS) in arrival order.
pub fn collect(port: u16, id: &str, quiet: Duration) -> Vec<(u64, QoS)> {
    let (_client, mut conn) = rumqttc::Client::new(options(id, port, false), 10);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        match conn.recv_timeout(quiet) {
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                let n = std::str::from_utf8(&p.payload)
                    .ok()
                    .and_then(|s| s.split(' ').next()?.parse().ok())
                    .unwrap_or(u64::MAX);
                got.push((n, p.qos));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("subscriber connection failed: {e}"),
            Err(_) => break,
        }
    }
    got
}
