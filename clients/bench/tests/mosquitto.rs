//! wren-bench end to end against Debian's mosquitto on an ephemeral loopback port: every scenario
//! runs with small counts and must deliver everything it sent. Fails (never skips), naming the
//! packages, where mosquitto is not installed (`apt-get install mosquitto mosquitto-clients`;
//! `.ci/run` installs them).

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
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"),
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
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "mosquitto did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    m
}

/// Run wren-bench against `m` and return its JSON lines.
fn bench(m: &Mosquitto, args: &[&str]) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_wren-bench"))
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
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "wren-bench {args:?} failed: {stderr}");
    // The human table goes to stderr with --json.
    assert!(stderr.contains("scenario"), "no table: {stderr}");
    stdout.lines().map(str::to_owned).collect()
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

#[test]
fn qos1_completes_with_every_puback() {
    let m = start_mosquitto("qos1");
    let lines = bench(
        &m,
        &[
            "qos1",
            "--publishers",
            "3",
            "--messages",
            "2000",
            "--window",
            "10",
            "--mode",
            "unbounded",
        ],
    );
    let l = &lines[0];
    assert_eq!(num(l, "qos"), 1.0, "{l}");
    assert_eq!(num(l, "undelivered"), 0.0, "{l}");
    assert_eq!(num(l, "acked"), 2000.0, "{l}");
    assert_eq!(num(l, "stalled"), 0.0, "{l}");
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
