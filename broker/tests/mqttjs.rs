//! Interop: MQTT.js (the `mqtt` package from the npm registry, run by Node.js) through
//! wren-broker, 3.1.1 and 5.0 (`tests/mqttjs/flows.js`: overlapping subscriptions at every QoS,
//! retained messages replaced and deleted, will on a dropped socket and none after DISCONNECT,
//! offline queueing for a persistent session, unsubscribe, `$` topics, 5.0 properties).
//! Skipped (with a message) only if `node` cannot load `mqtt` from `tests/mqttjs/node_modules`;
//! CI installs Node.js and runs `npm ci` there.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mqttjs")
}

fn available() -> bool {
    let ok = Command::new("node")
        .args(["-e", "require('mqtt')"])
        .current_dir(dir())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIPPED: node cannot load mqtt (cd broker/tests/mqttjs && npm ci)");
    }
    ok
}

#[test]
fn mqttjs_flows() {
    if !available() {
        return;
    }
    let broker = common::start(|_| {});
    let out = Command::new("node")
        .arg("flows.js")
        .arg(broker.local_addr().port().to_string())
        .current_dir(dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "MQTT.js flows failed: {stdout}");
    assert!(
        stdout.contains("17 passed, 0 failed"),
        "every check ran: {stdout}"
    );
}
