//! Interop: Debian's `mosquitto_pub` / `mosquitto_sub` talk through wren-broker.
//! Fails (never skips), naming the packages, if the binaries are absent: the tests cannot install
//! Debian packages themselves (`apt-get install mosquitto mosquitto-clients`; `.ci/run` does).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SUB: &str = "/usr/bin/mosquitto_sub";
const PUB: &str = "/usr/bin/mosquitto_pub";

fn require_clients() {
    assert!(
        Path::new(SUB).exists() && Path::new(PUB).exists(),
        "{SUB} / {PUB} not installed: apt-get install mosquitto mosquitto-clients (.ci/run \
         installs them)"
    );
}

fn publish(port: u16, args: &[&str]) {
    let status = Command::new(PUB)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_pub {args:?}: {status}");
}

#[test]
fn mosquitto_clients_through_wren() {
    require_clients();
    let broker = common::start(|_| {});
    let port = broker.local_addr().port();
    let sub = Command::new(SUB)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-t",
            "interop/#",
            "-q",
            "2",
            "-v",
            "-C",
            "5",
            "-W",
            "10",
            "-i",
            "interop-sub",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while broker.subscription_count() == 0 {
        assert!(Instant::now() < deadline, "mosquitto_sub never subscribed");
        std::thread::sleep(Duration::from_millis(20));
    }
    publish(port, &["-t", "interop/q0", "-m", "zero", "-q", "0"]);
    publish(port, &["-t", "interop/q1", "-m", "one", "-q", "1"]);
    publish(port, &["-t", "interop/q2", "-m", "two", "-q", "2"]);
    publish(
        port,
        &[
            "-t",
            "interop/v31",
            "-m",
            "old",
            "-q",
            "1",
            "-V",
            "mqttv31",
            "-i",
            "v31",
        ],
    );
    publish(
        port,
        &["-t", "interop/v5", "-m", "new", "-q", "1", "-V", "mqttv5"],
    );
    let out = sub.wait_with_output().unwrap();
    assert!(out.status.success(), "mosquitto_sub: {:?}", out.status);
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "interop/q0 zero",
            "interop/q1 one",
            "interop/q2 two",
            "interop/v31 old",
            "interop/v5 new"
        ]
    );

    // Retained: set, read back with the retain flag, delete.
    publish(
        port,
        &["-t", "interop/retained", "-m", "kept", "-r", "-q", "1"],
    );
    let out = Command::new(SUB)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "interop/+", "-C", "1", "-W", "5", "-F", "%r %t %p"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1 interop/retained kept"
    );
    publish(port, &["-t", "interop/retained", "-n", "-r"]);
    let out = Command::new(SUB)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-t", "interop/+", "-C", "1", "-W", "1"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(27),
        "timed out: nothing retained any more"
    );
}
