//! Interop: the Eclipse Paho Python client (`paho-mqtt` from PyPI) runs the flows of Paho's
//! interoperability suite through wren-broker (`tests/paho/flows.py`: QoS 0/1/2, retained with
//! wildcards and deletion, offline queueing, overlapping subscriptions, keep-alive and will,
//! zero-length client id, `$` topics, unsubscribe, a 5.0 connection).
//! Skipped (with a message) only if `python3` cannot import `paho.mqtt`; CI installs it.

mod common;

use std::path::Path;
use std::process::Command;

fn available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import paho.mqtt.client"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: python3 cannot import paho.mqtt (pip install paho-mqtt)");
    }
    ok
}

#[test]
fn paho_interoperability_flows() {
    if !available() {
        return;
    }
    let broker = common::start(|_| {});
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/paho/flows.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(broker.local_addr().port().to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "paho flows failed: {stdout}");
    assert!(
        stdout.contains("11 passed, 0 failed"),
        "every check ran: {stdout}"
    );
}
