//! Interop: MQTT.js (the `mqtt` package from the npm registry, run by Node.js) through
//! wren-broker, 3.1.1 and 5.0 (`tests/mqttjs/flows.js`: overlapping subscriptions at every QoS,
//! retained messages replaced and deleted, will on a dropped socket and none after DISCONNECT,
//! offline queueing for a persistent session, unsubscribe, `$` topics, 5.0 properties).
//! Fails, saying what to install, if `node` cannot load `mqtt` from `tests/mqttjs/node_modules`;
//! CI installs Node.js and runs `npm ci` there.

mod common;

#[test]
fn mqttjs_flows() {
    common::run_client_script(
        "node",
        &["-e", "require('mqtt')"],
        "tests/mqttjs",
        "flows.js",
        "17 passed, 0 failed",
        "cd broker/tests/mqttjs && npm ci",
    );
}
