//! The tools and the library against the project's own broker, started in-process on port 0.

mod common;

use common::*;
use wren_broker::{Config, Server};

fn start() -> wren_broker::ServerHandle {
    let mut config = Config::for_tests();
    config.sys_interval = 0;
    Server::bind(config).unwrap().start().unwrap()
}

#[test]
fn pub_sub_retained_and_live_against_wren_broker() {
    let broker = start();
    let port = broker.local_addr().port().to_string();
    let r = run(
        "wren-pub",
        &[
            "-p", &port, "-t", "wb/kept", "-m", "retained", "-r", "-q", "1",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let sub = subscribed(&port, &["-t", "wb/#", "-v", "-C", "3", "-q", "2"]);
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "wb/live", "-m", "now", "-q", "2"],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "wb/lines", "-l"],
        "a b\n",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let done = sub.finish(SECS10);
    assert_eq!(done.code(), 0, "{done:?}");
    assert_eq!(
        messages(&done.stdout),
        ["wb/kept retained", "wb/live now", "wb/lines a b"]
    );
}

#[test]
fn consoles_and_sensor_against_wren_broker() {
    let broker = start();
    let port = broker.local_addr().port().to_string();
    let mut c = Proc::spawn("wren-sub", &["-p", &port, "--console", "-q", "1"]);
    c.expect_out(|l| l.starts_with("CONNACK accepted"), SECS10);
    c.write("SUBSCRIBE site/#\n");
    c.expect_out(|l| l == "SUBACK mid=1 granted QoS 1", SECS10);
    let r = run(
        "wren-sensor",
        &[
            "-p",
            &port,
            "-n",
            "2",
            "--interval",
            "0.05",
            "--count",
            "4",
            "--seed",
            "1",
            "--rooms",
            "hall",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    c.expect_out(
        |l| l.starts_with("MESSAGE site/hall/temperature/sensor-1 "),
        SECS10,
    );
    c.expect_out(
        |l| l == "MESSAGE site/hall/humidity/sensor-2/status offline",
        SECS10,
    );
    let r = run(
        "wren-pub",
        &["-p", &port, "--console", "-q", "1"],
        "PUBLISH site/x a b c\n",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stdout.contains("PUBACK mid=1"), "{}", r.stdout);
    c.expect_out(|l| l == "MESSAGE site/x a b c", SECS10);
    c.close_stdin();
    let done = c.finish(SECS10);
    assert_eq!(done.code(), 0, "{done:?}");
}

#[test]
fn wait_timeout_and_will_against_wren_broker() {
    let broker = start();
    let port = broker.local_addr().port().to_string();
    let r = run(
        "wren-sub",
        &["-p", &port, "-t", "none", "-W", "1"],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 27, "{r:?}");
    let watcher = subscribed(&port, &["-t", "wills/#", "-v", "-C", "1"]);
    let mut doomed = subscribed(
        &port,
        &[
            "-t",
            "x",
            "--will-topic",
            "wills/a",
            "--will-payload",
            "bye",
        ],
    );
    doomed.kill();
    let done = watcher.finish(SECS10);
    assert_eq!(messages(&done.stdout), ["wills/a bye"]);
}
