//! The firmware example `examples/qemu-sensor` in QEMU (mps2-an385, Cortex-M3) against
//! wren-broker started in-process on 127.0.0.1: a subscriber (the firmware client on the host)
//! answers the sensor's first reading with the command `led on` and checks that the three
//! readings and the LED's `on` arrive, and that the firmware exits 0.
//!
//! Needs `qemu-system-arm` (apt-get install qemu-system-arm) and the Rust target
//! (rustup target add thumbv7m-none-eabi); `.ci/run` installs both. Without them it fails.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::tcp::Tcp;
use wren_broker::{Config as BrokerConfig, Server};
use wren_clients::embedded::{Client, Config};
use wren_codec::{Connect, ProtocolVersion, QoS};

fn ms(t0: Instant) -> u32 {
    t0.elapsed().as_millis() as u32
}

#[test]
fn qemu_sensor_publishes_readings_and_obeys_the_command() {
    let qemu = Command::new("qemu-system-arm").arg("--version").output();
    assert!(
        qemu.is_ok_and(|o| o.status.success()),
        "qemu-system-arm is missing: apt-get install qemu-system-arm (.ci/run installs it)"
    );
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .expect("rustup");
    assert!(
        String::from_utf8_lossy(&targets.stdout)
            .lines()
            .any(|l| l == "thumbv7m-none-eabi"),
        "the firmware target is missing: rustup target add thumbv7m-none-eabi (.ci/run adds it)"
    );

    let mut config = BrokerConfig::for_tests();
    config.sys_interval = 0;
    let broker = Server::bind(config).unwrap().start().unwrap();
    let port = broker.local_addr().port();

    let t0 = Instant::now();
    let mut watcher: Client<Tcp, 512, 256, 256, 4> =
        Client::new(Tcp::connect(port), Config::new(ProtocolVersion::V311));
    watcher
        .connect(Connect::new("qemu-watcher"), ms(t0))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !watcher.is_connected() {
        assert!(Instant::now() < deadline, "no CONNACK");
        watcher.poll(ms(t0), |_| {}).unwrap();
    }
    let sub = watcher
        .subscribe("wren/qemu/#", QoS::AtLeastOnce, ms(t0))
        .unwrap();
    while watcher.is_pending(sub) {
        assert!(Instant::now() < deadline, "no SUBACK");
        watcher.poll(ms(t0), |_| {}).unwrap();
    }

    let run_sh = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/qemu-sensor/run.sh");
    let child = Command::new(&run_sh)
        .args(["--port", &port.to_string(), "--timeout", "120"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", run_sh.display()));
    let run = std::thread::spawn(move || child.wait_with_output().unwrap());

    // The build inside run.sh may take minutes on a cold cache; QEMU itself, seconds.
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut got: Vec<(String, String)> = Vec::new();
    let mut commanded = false;
    let mut finished_at: Option<Instant> = None;
    loop {
        watcher
            .poll(ms(t0), |m| {
                got.push((
                    m.topic.as_str().to_owned(),
                    String::from_utf8_lossy(m.payload).into_owned(),
                ))
            })
            .unwrap();
        if !commanded && got.iter().any(|(t, _)| t == "wren/qemu/temperature") {
            watcher
                .publish("wren/qemu/cmd", b"led on", QoS::AtLeastOnce, ms(t0))
                .unwrap();
            commanded = true;
        }
        // Once QEMU has exited, give in-flight deliveries a moment to arrive.
        match finished_at {
            Some(at) if at.elapsed() > Duration::from_millis(300) => break,
            None if run.is_finished() => finished_at = Some(Instant::now()),
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "run.sh did not finish; got {got:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = run.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "run.sh failed ({:?})\nstdout: {stdout}\nstderr: {stderr}\nreceived: {got:?}",
        out.status
    );
    assert!(stdout.contains("scenario complete"), "{stdout}");
    let readings: Vec<&str> = got
        .iter()
        .filter(|(t, _)| t == "wren/qemu/temperature")
        .map(|(_, p)| p.as_str())
        .collect();
    assert_eq!(readings, ["21.5", "21.7", "22.0"], "{got:?}");
    let led: Vec<&str> = got
        .iter()
        .filter(|(t, _)| t == "wren/qemu/led")
        .map(|(_, p)| p.as_str())
        .collect();
    assert_eq!(led, ["on"], "{got:?}");
    watcher.disconnect(ms(t0)).unwrap();
}
