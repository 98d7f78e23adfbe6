//! Interop: MQTT.js (the `mqtt` package from the npm registry, run by Node.js) through
//! wren-broker, 3.1.1 and 5.0 (`tests/mqttjs/flows.js`: overlapping subscriptions at every QoS,
//! retained messages replaced and deleted, will on a dropped socket and none after DISCONNECT,
//! offline queueing for a persistent session, unsubscribe, `$` topics, 5.0 properties).
//! MQTT.js is installed on first use by `npm ci` into `tests/mqttjs/node_modules` (see
//! `common/tools.rs`); the test fails, saying what to install, where that cannot be done (no
//! node or npm, the npm registry unreachable).

mod common;

#[test]
fn mqttjs_flows() {
    let node = common::tools::mqttjs_node(&common::client_dir("tests/mqttjs"));
    common::run_client_script(&node, "tests/mqttjs", "flows.js", "17 passed, 0 failed");
}
