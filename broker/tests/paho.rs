//! Interop: the Eclipse Paho Python client (`paho-mqtt` from PyPI) runs the flows of Paho's
//! interoperability suite through wren-broker (`tests/paho/flows.py`: QoS 0/1/2, retained with
//! wildcards and deletion, offline queueing, overlapping subscriptions, keep-alive and will,
//! zero-length client id, `$` topics, unsubscribe, a 5.0 connection).
//! Paho is installed on first use into a virtualenv under the target directory
//! (`target/test-tools/python`, see `common/tools.rs`); the test fails, saying what to install,
//! where that cannot be done (no python3 or venv module, PyPI unreachable).

mod common;

#[test]
fn paho_interoperability_flows() {
    let python = common::tools::paho_python();
    common::run_client_script(&python, "tests/paho", "flows.py", "11 passed, 0 failed");
}
