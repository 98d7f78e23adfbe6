//! wren-sensor against Mosquitto.

mod common;

use common::*;

#[test]
fn fleet_publishes_json_readings_and_status() {
    let b = Broker::start();
    let port = b.port_arg();
    let sub = subscribed(&port, &["-t", "site/#", "-v", "-C", "14"]);
    let r = run(
        "wren-sensor",
        &[
            "-p",
            &port,
            "-n",
            "3",
            "--kinds",
            "temperature,co2,motion",
            "--rooms",
            "lab",
            "--interval",
            "0.05",
            "--count",
            "8",
            "--format",
            "json",
            "--seed",
            "7",
            "-q",
            "1",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(
        r.stderr.contains("wren-sensor: 8 readings from 3 sensors"),
        "{}",
        r.stderr
    );
    // Not a terminal: no live status line.
    assert!(!r.stderr.contains("msg/s"), "{}", r.stderr);
    let done = sub.finish(SECS10);
    let lines = messages(&done.stdout);
    assert_eq!(lines.len(), 14, "{lines:?}");
    let online = lines
        .iter()
        .filter(|l| l.ends_with("/status online"))
        .count();
    let offline = lines
        .iter()
        .filter(|l| l.ends_with("/status offline"))
        .count();
    assert_eq!((online, offline), (3, 3), "{lines:?}");
    let readings: Vec<&&str> = lines.iter().filter(|l| !l.contains("/status ")).collect();
    assert_eq!(readings.len(), 8);
    for l in readings {
        let (topic, json) = l.split_once(' ').unwrap();
        assert!(topic.starts_with("site/lab/"), "{topic}");
        assert!(json.starts_with("{\"sensor\":\"sensor-"), "{json}");
        assert!(json.contains("\"room\":\"lab\""), "{json}");
        if topic.contains("/temperature/") {
            let v: f64 = json
                .split("\"value\":")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!((-10.0..=40.0).contains(&v), "{v}");
            assert!(json.contains("\"unit\":\"°C\""), "{json}");
        }
    }
}

#[test]
fn seeded_runs_give_the_same_values() {
    let b = Broker::start();
    let port = b.port_arg();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let sub = subscribed(&port, &["-t", "s/#", "-C", "4"]);
        let r = run(
            "wren-sensor",
            &[
                "-p",
                &port,
                "-n",
                "1",
                "--kinds",
                "pressure",
                "-t",
                "s/{kind}",
                "--status-topic",
                "st/{id}",
                "--interval",
                "0.02",
                "--jitter",
                "0",
                "--count",
                "4",
                "--seed",
                "99",
            ],
            "",
            SECS10,
        );
        assert_eq!(r.code(), 0, "{r:?}");
        let done = sub.finish(SECS10);
        let values: Vec<String> = messages(&done.stdout)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(values.len(), 4);
        for v in &values {
            let x: f64 = v.parse().unwrap();
            assert!((950.0..=1050.0).contains(&x), "{x}");
        }
        runs.push(values);
    }
    assert_eq!(runs[0], runs[1]);
}

#[test]
fn offline_will_when_a_sensor_dies_and_duration_stops() {
    let b = Broker::start();
    let port = b.port_arg();
    let status = subscribed(&port, &["-t", "site/+/+/+/status", "-v", "-C", "2"]);
    let mut fleet = Proc::spawn(
        "wren-sensor",
        &["-p", &port, "-n", "1", "--interval", "10", "-k", "5"],
    );
    // Wait for "online", then kill the process: the broker publishes the will.
    std::thread::sleep(std::time::Duration::from_millis(300));
    fleet.kill();
    let done = status.finish(SECS10);
    let lines = messages(&done.stdout);
    assert_eq!(
        lines,
        [
            "site/kitchen/temperature/sensor-1/status online",
            "site/kitchen/temperature/sensor-1/status offline"
        ]
    );
    // --duration ends a run by itself.
    let r = run(
        "wren-sensor",
        &[
            "-p",
            &port,
            "-n",
            "2",
            "--interval",
            "0.1",
            "--duration",
            "500ms",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(r.stderr.contains("from 2 sensors in 0."), "{}", r.stderr);
}
