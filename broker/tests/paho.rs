//! Interop: the Eclipse Paho Python client (`paho-mqtt` from PyPI) runs the flows of Paho's
//! interoperability suite through wren-broker (`tests/paho/flows.py`: QoS 0/1/2, retained with
//! wildcards and deletion, offline queueing, overlapping subscriptions, keep-alive and will,
//! zero-length client id, `$` topics, unsubscribe, a 5.0 connection).
//! Fails, saying what to install, if `python3` cannot import `paho.mqtt`; CI installs it.

mod common;

#[test]
fn paho_interoperability_flows() {
    common::run_client_script(
        "python3",
        &["-c", "import paho.mqtt.client"],
        "tests/paho",
        "flows.py",
        "11 passed, 0 failed",
        "pip install paho-mqtt",
    );
}
