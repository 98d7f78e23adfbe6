//! wren-bench end to end against Debian's mosquitto on an ephemeral loopback port: every scenario
//! runs with small counts and must deliver everything it sent. Fails (never skips), naming the
//! packages, where mosquitto is not installed (`apt-get install mosquitto mosquitto-clients`;
//! `.ci/run` installs them).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A mosquitto process on its own port, killed on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_mosquitto(tag: &str) -> Mosquitto {
    start_mosquitto_with(tag, "")
}

/// A mosquitto with `extra` lines of mosquitto.conf (e.g. a bridge).
fn start_mosquitto_with(tag: &str, extra: &str) -> Mosquitto {
    assert!(
        Path::new(MOSQUITTO).exists(),
        "{MOSQUITTO} not installed: apt-get install mosquitto mosquitto-clients (.ci/run \
         installs them)"
    );
    // mosquitto cannot listen on port 0: take a free ephemeral port and release it for it.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("wren-bench-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n{extra}"
        ),
    )
    .unwrap();
    let child = Command::new(MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let m = Mosquitto {
        child,
        port,
        _dir: TempDir(dir),
    };
    let end = Instant::now() + Duration::from_secs(10);
    while !wren_broker::testing::listening(("127.0.0.1", port)) {
        assert!(Instant::now() < end, "mosquitto did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    m
}

/// Run wren-bench against `m` and return its JSON lines.
fn bench(m: &Mosquitto, args: &[&str]) -> Vec<String> {
    let out = bench_output(m, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wren-bench {args:?} failed: {stderr}");
    // The human table goes to stderr with --json.
    assert!(stderr.contains("scenario"), "no table: {stderr}");
    stdout.lines().map(str::to_owned).collect()
}

fn bench_output(m: &Mosquitto, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wren-bench"))
        .args([
            "--json",
            "--timeout",
            "20",
            "--idle-timeout",
            "2",
            "--label",
            "mosq",
        ])
        .args(["--port", &m.port.to_string()])
        .args(["--broker-pid", &m.child.id().to_string()])
        .args(args)
        .output()
        .unwrap()
}

fn field<'a>(line: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let start = line
        .find(&pat)
        .unwrap_or_else(|| panic!("no {key} in {line}"))
        + pat.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap();
    rest[..end].trim_matches('"')
}

fn num(line: &str, key: &str) -> f64 {
    field(line, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} not a number in {line}"))
}

#[test]
fn fan_in_bounded_and_unbounded_deliver_everything() {
    let m = start_mosquitto("fanin");
    let lines = bench(
        &m,
        &[
            "fan-in",
            "--publishers",
            "5",
            "--messages",
            "3000",
            "--bound",
            "200",
        ],
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(field(&lines[0], "mode"), "bounded");
    assert_eq!(field(&lines[1], "mode"), "unbounded");
    for l in &lines {
        assert_eq!(field(l, "scenario"), "fan-in");
        assert_eq!(field(l, "broker"), "mosq");
        assert_eq!(num(l, "delivered"), 3000.0, "{l}");
        assert_eq!(num(l, "undelivered"), 0.0, "{l}");
        assert_eq!(num(l, "duplicates"), 0.0, "{l}");
        assert!(num(l, "rate") > 0.0, "{l}");
        assert_eq!(field(l, "errors"), "null", "{l}");
        assert!(num(l, "broker_cpu") >= 0.0, "{l}");
    }
}

#[test]
fn fan_out_counts_deliveries_per_subscriber() {
    let m = start_mosquitto("fanout");
    let lines = bench(
        &m,
        &[
            "fan-out",
            "--subscribers",
            "4",
            "--messages",
            "1000",
            "--mode",
            "bounded",
        ],
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert_eq!(num(l, "expected"), 4000.0, "{l}");
    assert_eq!(num(l, "delivered"), 4000.0, "{l}");
    assert_eq!(field(l, "unit"), "deliveries/s");
    assert_eq!(num(l, "reordered"), 0.0, "{l}");
}

/// A small QoS 1 job: 2,000 messages from 3 publishers, window 10 (bounded and unbounded,
/// unless a `--mode` follows).
const SMALL_QOS1: [&str; 7] = [
    "qos1",
    "--publishers",
    "3",
    "--messages",
    "2000",
    "--window",
    "10",
];

#[test]
fn qos1_completes_with_every_puback() {
    let m = start_mosquitto("qos1");
    let lines = bench(&m, &[&SMALL_QOS1[..], &["--mode", "unbounded"]].concat());
    let l = &lines[0];
    assert_eq!(num(l, "qos"), 1.0, "{l}");
    assert_eq!(num(l, "undelivered"), 0.0, "{l}");
    assert_eq!(num(l, "acked"), 2000.0, "{l}");
    assert_eq!(num(l, "stalled"), 0.0, "{l}");
}

/// `--spin`: the same runs, every message accounted for, and the generator busy the whole time
/// (a paced run leaves a sleeping generator nearly idle; a spinning one uses its thread).
#[test]
fn spin_keeps_the_generator_polling_and_the_runs_whole() {
    let m = start_mosquitto("spin");
    for threads in ["1", "2"] {
        let mut args = vec!["--spin", "--threads", threads];
        args.extend(SMALL_QOS1);
        args.extend(["--mode", "unbounded"]);
        let lines = bench(&m, &args);
        let l = &lines[0];
        assert_eq!(num(l, "undelivered"), 0.0, "{l}");
        assert_eq!(num(l, "acked"), 2000.0, "{l}");
    }
    let paced = [
        "--threads",
        "1",
        "latency",
        "--rate",
        "200",
        "--duration",
        "1",
    ];
    let sleeping = bench(&m, &paced);
    let spinning = bench(&m, &[&["--spin"][..], &paced[..]].concat());
    let (slept, spun) = (num(&sleeping[0], "gen_cpu"), num(&spinning[0], "gen_cpu"));
    assert_eq!(num(&spinning[0], "delivered"), 200.0, "{}", spinning[0]);
    assert!(
        spun > 4.0 * slept,
        "gen_cpu {spun} spinning against {slept} sleeping"
    );
}

#[test]
fn latency_reports_ordered_percentiles() {
    let m = start_mosquitto("latency");
    let lines = bench(&m, &["latency", "--rate", "1000", "--duration", "0.5"]);
    let l = &lines[0];
    assert_eq!(num(l, "delivered"), 500.0, "{l}");
    let (p50, p99, p999) = (num(l, "p50_us"), num(l, "p99_us"), num(l, "p999_us"));
    assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{l}");
    // Paced at 1000/s, 500 messages take about half a second.
    let secs = num(l, "elapsed_s");
    assert!((0.4..3.0).contains(&secs), "{l}");
}

#[test]
fn idle_measures_broker_memory_per_connection() {
    let m = start_mosquitto("idle");
    let lines = bench(&m, &["idle", "--connections", "200", "--settle", "0.2"]);
    let l = &lines[0];
    assert_eq!(num(l, "connected"), 200.0, "{l}");
    assert_eq!(num(l, "alive"), 200.0, "{l}");
    assert!(num(l, "connect_rate") > 0.0, "{l}");
    assert!(num(l, "rss_after") > 0.0, "{l}");
    // mosquitto holds its connections in a few hundred bytes to a few KiB each.
    let per = num(l, "bytes_per_conn");
    assert!((-100_000.0..100_000.0).contains(&per), "{l}");
}

#[test]
fn idle_sub_subscribes_every_connection_to_its_own_topic() {
    let m = start_mosquitto("idlesub");
    for (qos, extra) in [("1", &[][..]), ("0", &["--qos", "0"][..])] {
        let mut args = vec!["idle-sub", "--connections", "200", "--settle", "0.2"];
        args.extend_from_slice(extra);
        let lines = bench(&m, &args);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let l = &lines[0];
        assert_eq!(field(l, "scenario"), "idle-sub", "{l}");
        assert_eq!(field(l, "topics"), "idle/<i>", "{l}");
        assert_eq!(field(l, "qos"), qos, "{l}");
        assert_eq!(num(l, "connected"), 200.0, "{l}");
        assert_eq!(num(l, "subscribed"), 200.0, "{l}");
        // Each connection got its own message back through its subscription, and PINGRESP.
        assert_eq!(num(l, "routed"), 200.0, "{l}");
        assert_eq!(num(l, "alive"), 200.0, "{l}");
        assert_eq!(field(l, "errors"), "null", "{l}");
        assert!(num(l, "rss_after") > 0.0, "{l}");
        let per = num(l, "bytes_per_conn");
        assert!((-100_000.0..100_000.0).contains(&per), "{l}");
    }
}

#[test]
fn duration_stops_publishing_and_drains_what_was_sent() {
    let m = start_mosquitto("duration");
    let lines = bench(
        &m,
        &[
            "fan-out",
            "--subscribers",
            "3",
            "--mode",
            "bounded",
            "--duration",
            "0.3",
            "--messages",
            "100000000",
        ],
    );
    let l = &lines[0];
    let sent = num(l, "sent");
    // Far fewer than the cap were sent, and every subscriber got every one of them.
    assert!(sent > 0.0 && sent < 100_000_000.0, "{l}");
    assert_eq!(num(l, "expected"), 3.0 * sent, "{l}");
    assert_eq!(num(l, "delivered"), 3.0 * sent, "{l}");
    assert_eq!(num(l, "stalled"), 0.0, "{l}");
    assert!(num(l, "elapsed_s") < 5.0, "{l}");
}

/// An MQTT packet whose body is under 128 bytes.
fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![first, u8::try_from(body.len()).unwrap()];
    p.extend_from_slice(body);
    p
}

fn with_str(mut body: Vec<u8>, s: &str) -> Vec<u8> {
    body.extend_from_slice(&u16::try_from(s.len()).unwrap().to_be_bytes());
    body.extend_from_slice(s.as_bytes());
    body
}

/// An MQTT 3.1.1 connection (clean session) whose CONNACK has arrived.
fn mqtt_connect(port: u16, client_id: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Protocol name, level 4 (3.1.1), flags: clean session, keep-alive 60 s.
    let mut body = with_str(Vec::new(), "MQTT");
    body.extend_from_slice(&[4, 0x02, 0, 60]);
    s.write_all(&packet(0x10, &with_str(body, client_id)))
        .unwrap();
    let mut connack = [0; 4];
    s.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "CONNACK");
    s
}

/// Wait until `near`'s bridge forwards to `far`: a QoS 1 message on bench/probe (shorter than
/// wren-bench's stamp, so a late copy is ignored) published on `near` every 0.2 s until one
/// reaches a subscriber on `far` (as compare.py's start_bridge).
fn wait_bridge(near: &Mosquitto, far: &Mosquitto) {
    let mut sub = mqtt_connect(far.port, "probe-sub");
    sub.write_all(&packet(
        0x82,
        &[with_str(vec![0, 1], "bench/probe"), vec![1]].concat(),
    ))
    .unwrap();
    let mut suback = [0; 5];
    sub.read_exact(&mut suback).unwrap();
    let mut publ = mqtt_connect(near.port, "probe-pub");
    sub.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    for pid in 1u16.. {
        assert!(Instant::now() < end, "the bridge forwarded nothing in 10 s");
        let body = [
            with_str(Vec::new(), "bench/probe"),
            pid.to_be_bytes().to_vec(),
        ]
        .concat();
        publ.write_all(&packet(0x32, &[body, b"probe".to_vec()].concat()))
            .unwrap();
        let mut buf = [0; 256];
        match sub.read(&mut buf) {
            Ok(n) if n > 0 && buf[0] >> 4 == 3 => return,
            Ok(0) => panic!("the far broker closed the probe subscriber"),
            _ => {}
        }
    }
}

#[test]
fn sub_port_subscribes_on_a_second_broker_through_a_bridge() {
    let far = start_mosquitto("bridge-far");
    let bridge = format!(
        "connection bench\naddress 127.0.0.1:{}\ntopic bench/# out 1\ncleansession true\n\
         try_private true\nbridge_protocol_version mqttv311\n",
        far.port
    );
    let near = start_mosquitto_with("bridge-near", &bridge);
    wait_bridge(&near, &far);
    let (far_port, far_pid) = (far.port.to_string(), far.child.id().to_string());
    let lines = bench(
        &near,
        &[
            &["--sub-port", &far_port, "--sub-broker-pid", &far_pid][..],
            &SMALL_QOS1[..],
        ]
        .concat(),
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        assert_eq!(num(l, "undelivered"), 0.0, "{l}");
        assert_eq!(num(l, "delivered"), 2000.0, "{l}");
        assert_eq!(num(l, "acked"), 2000.0, "{l}");
        assert_eq!(num(l, "stalled"), 0.0, "{l}");
        assert_eq!(field(l, "errors"), "null", "{l}");
        assert_eq!(field(l, "sub_addr"), format!("127.0.0.1:{far_port}"), "{l}");
        // Both brokers' CPU: the far one's alone is part of it.
        assert!(num(l, "broker_cpu") >= num(l, "sub_broker_cpu"), "{l}");
    }
}

#[test]
fn sub_port_without_a_bridge_delivers_nothing_and_idle_refuses_it() {
    // Two brokers with nothing between them: the subscriber really is on the second one.
    let (a, b) = (start_mosquitto("nobridge-a"), start_mosquitto("nobridge-b"));
    let b_port = b.port.to_string();
    let lines = bench(
        &a,
        &[
            "--sub-port",
            &b_port,
            "qos1",
            "--publishers",
            "2",
            "--messages",
            "100",
            "--mode",
            "unbounded",
        ],
    );
    let l = &lines[0];
    assert_eq!(num(l, "acked"), 100.0, "{l}");
    assert_eq!(num(l, "delivered"), 0.0, "{l}");
    assert_eq!(num(l, "undelivered"), 100.0, "{l}");
    assert_eq!(num(l, "stalled"), 1.0, "{l}");
    let out = bench_output(&a, &["--sub-port", &b_port, "idle", "--connections", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("idle"));
}
