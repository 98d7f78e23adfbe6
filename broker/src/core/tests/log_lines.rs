//! Mosquitto-style log lines.

use super::pid;
use crate::config::Config;
use crate::testing::Driver;
use wren_codec::*;

/// Captures log lines (the logger is process-wide; tests filter by their own client ids).
struct Capture(std::sync::Mutex<Vec<String>>);
impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0.lock().unwrap().push(record.args().to_string());
    }
    fn flush(&self) {}
}
static CAPTURE: Capture = Capture(std::sync::Mutex::new(Vec::new()));

fn logged(needle: &str) -> Vec<String> {
    let _ = log::set_logger(&CAPTURE);
    log::set_max_level(log::LevelFilter::Trace);
    CAPTURE
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

#[test]
fn mosquitto_style_log_lines() {
    logged("");
    let mut t = Driver::for_tests_with(Config {
        max_queued_messages: 1,
        ..Config::for_tests()
    });
    let c = t.connect("log-sensor-1", true);
    t.send(c, Packet::Disconnect(Disconnect::NORMAL));
    let (_, _) = t.connect_with("log-sleepy", true, 1, None);
    t.tick(2000);
    let c = t.connect("log-malformed", true);
    t.broker.decode_failed(c, DecodeError::InvalidUtf8, t.now);
    let c = t.connect("log-violator", true);
    t.send(c, Packet::PingResp);
    let c = t.connect("log-big", true);
    t.broker
        .decode_failed(c, DecodeError::PacketTooLarge { size: 10, max: 5 }, t.now);
    let c = t.connect("log-dropper", false);
    t.subscribe(c, "t", QoS::AtLeastOnce);
    t.lose(c);
    let p = t.connect("log-pub", true);
    for i in 1..=3 {
        t.publish(p, "t", b"x", QosPid::AtLeastOnce(pid(i)), false);
    }
    assert_eq!(
        logged("log-sensor-1"),
        [
            "New client connected from 127.0.0.1:40000 as log-sensor-1 (p2, c1, k60).",
            // The packet trace (debug level, `-v`), as Mosquitto's log_type all.
            "Sending CONNACK to log-sensor-1 (0, 0)",
            "Received DISCONNECT from log-sensor-1",
            "Client log-sensor-1 disconnected."
        ]
    );
    assert!(logged("New connection from 127.0.0.1:40000 on port 1883.").len() >= 7);
    assert_eq!(
        logged("Client log-sleepy has"),
        ["Client log-sleepy has exceeded timeout, disconnecting."]
    );
    assert_eq!(
        logged("Client log-malformed"),
        ["Client log-malformed disconnected due to malformed packet."]
    );
    assert_eq!(
        logged("Client log-violator d"),
        ["Client log-violator disconnected due to protocol error."]
    );
    assert_eq!(
        logged("Client log-big"),
        ["Client log-big disconnected due to oversize packet."]
    );
    assert_eq!(
        logged("dropped for client log-dropper"),
        ["Outgoing messages are being dropped for client log-dropper."],
        "logged once per episode"
    );
    assert_eq!(
        logged("Client log-dropper closed"),
        ["Client log-dropper closed its connection."]
    );
}

/// A bridge's connection is logged as Mosquitto logs it (`New bridge connected …`); a client's
/// with the same CONNECT but no bridge bit as a client.
#[test]
fn a_bridge_is_logged_as_a_bridge() {
    logged("");
    let mut t = Driver::for_tests();
    for (id, bridge, version) in [
        ("logbr-311", true, ProtocolVersion::V311),
        ("logbr-31", true, ProtocolVersion::V31),
        ("logbr-plain", false, ProtocolVersion::V311),
    ] {
        let c = t.open().unwrap();
        t.send(
            c,
            Packet::Connect(Connect {
                protocol: version,
                bridge,
                clean_start: false,
                keep_alive: 30,
                client_id: id,
                will: None,
                username: Some("br"),
                password: None,
                properties: NO_PROPERTIES,
            }),
        );
    }
    assert_eq!(
        logged("connected from 127.0.0.1:40000 as logbr-"),
        [
            "New bridge connected from 127.0.0.1:40000 as logbr-311 (p2, c0, k30, u'br').",
            "New bridge connected from 127.0.0.1:40000 as logbr-31 (p1, c0, k30, u'br').",
            "New client connected from 127.0.0.1:40000 as logbr-plain (p2, c0, k30, u'br').",
        ]
    );
}
