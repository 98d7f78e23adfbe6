//! #18 item 8: wren-broker runs on Mosquitto's configuration file. The fixtures in
//! `tests/mosquitto_conf/` (`mosquitto.conf` with `conf.d/`, and `anonymous.conf`) are
//! - read into the expected [`Config`] and warnings (the same configuration as a wren.toml);
//! - run by Debian's Mosquitto 2.0.11 (`/usr/sbin/mosquitto`), their listeners moved to free
//!   loopback ports: it stays up, listens on each, and answers a CONNECT as wren-broker does;
//! - checked by `wren-broker --check-config` (exit codes, warnings, listener summary), which
//!   also refuses bad files with Mosquitto-like errors;
//! - run by `wren-broker -c`, which accepts an anonymous CONNECT where the fixture allows it.
//!
//! Every child process is killed when its test ends, and every wait is bounded.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::process::{Output, Running};
use common::{TempDir, free_port};
use wren_broker::Config;
use wren_broker::testing::Mosquitto;

const BIN: &str = env!("CARGO_BIN_EXE_wren-broker");
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mosquitto_conf");
const WAIT: Duration = Duration::from_secs(10);

/// The fixtures copied into a temporary directory with every listener moved to a free port on
/// 127.0.0.1: `listener P [ADDRESS]` becomes `listener Q 127.0.0.1`, `port P` becomes
/// `port Q`, `bind_address` becomes 127.0.0.1; lines keep their numbers. With the mapping
/// from each fixture port to its new one.
fn fixtures_on_free_ports() -> (TempDir, Vec<(u16, u16)>) {
    let copy = TempDir::new("mosquitto-conf-test");
    let mut moved = Vec::new();
    let mut files = vec![PathBuf::new()];
    while let Some(rel) = files.pop() {
        for entry in std::fs::read_dir(Path::new(FIXTURES).join(&rel)).unwrap() {
            let entry = entry.unwrap();
            let rel = rel.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                files.push(rel);
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).unwrap();
            let is_conf = rel.extension().is_some_and(|e| e == "conf");
            let text = if is_conf {
                rewrite_ports(&text, &mut moved)
            } else {
                text
            };
            copy.write(rel.to_str().unwrap(), &text);
        }
    }
    (copy, moved)
}

fn rewrite_ports(text: &str, moved: &mut Vec<(u16, u16)>) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let rewritten = match (words.next(), words.next()) {
            (Some(key @ ("listener" | "port")), Some(port)) => {
                let old: u16 = port.parse().unwrap();
                let new = free_port();
                moved.push((old, new));
                if key == "listener" {
                    format!("listener {new} 127.0.0.1")
                } else {
                    format!("port {new}")
                }
            }
            (Some("bind_address"), Some(_)) => "bind_address 127.0.0.1".to_owned(),
            _ => line.to_owned(),
        };
        out.push_str(&rewritten);
        out.push('\n');
    }
    out
}

const ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];
/// 3.1.1 CONNACK 0x05, not authorized.
const NOT_AUTHORIZED: [u8; 4] = [0x20, 0x02, 0x00, 0x05];

/// `cmd` started without the tests' `RUST_LOG` (each sets its own log level), `output` read.
fn start(mut cmd: Command, output: Output) -> Running {
    cmd.env_remove("RUST_LOG");
    Running::spawn(cmd, output)
}

/// `wren-broker ARGS` run to its end from `dir`: exit code, stdout, stderr.
fn run_wren(args: &[&str], dir: &Path) -> (Option<i32>, String, String) {
    let scratch = TempDir::new("mosquitto-conf-test");
    let mut cmd = Command::new(BIN);
    cmd.args(args).current_dir(dir).env_remove("RUST_LOG");
    let ran = common::tools::run_bounded(cmd, &scratch.0, WAIT).expect("wren-broker runs");
    (ran.status.code(), ran.stdout, ran.stderr)
}

/// The main fixture's configuration, as a wren.toml says it.
const EXPECTED_TOML: &str = r#"
per_listener_settings = true
max_connections = 1120
max_inflight_messages = 40
max_queued_messages = 5000
queue_qos0_messages = true
max_packet_size = 2097152
message_size_limit = 1048576
max_keepalive = 600
persistent_client_expiration = 1209600
sys_interval = 30
maximum_qos = 1
auto_id_prefix = "wren-"
log_dest = "stderr"
log_level = "information"
persistence_location = "./"

[[listener]]
port = 1883
bind = "127.0.0.1"
socket_domain = "ipv4"
allow_anonymous = true

[[listener]]
port = 8883
certfile = "certs/server.crt"
keyfile = "certs/server.key"
cafile = "certs/ca.crt"
capath = "certs"
require_certificate = true
use_identity_as_username = true
tls_version = "tlsv1.2"
allow_anonymous = false

[[listener]]
port = 8884
certfile = "certs/server.crt"
keyfile = "certs/server.key"
tls_version = "tlsv1.3"
password_file = "passwd"
acl_file = "acl"
allow_anonymous = false

[[listener]]
port = 1884
bind = "127.0.0.1"
allow_anonymous = true

[[bridge]]
name = "cloud"
address = ["127.0.0.1:1"]
topic = ["sensors/# out 1", "commands/# in 1"]
"#;

/// (a) The realistic fixture (every supported key, comments, include_dir with two files and a
/// README that is not read) loads into the expected configuration, with a warning for each key
/// read but not applied as Mosquitto would, naming file and line.
#[test]
fn fixture_loads_with_the_expected_config_and_warnings() {
    let main = Path::new(FIXTURES).join("mosquitto.conf");
    let text = std::fs::read_to_string(&main).unwrap();
    let (config, warnings) =
        Config::from_mosquitto_conf(&text, Path::new("mosquitto.conf"), Path::new(FIXTURES))
            .unwrap_or_else(|e| panic!("the fixture is refused: {e}"));
    let expected = Config::from_toml(EXPECTED_TOML).unwrap();
    assert_eq!(config, expected);
    assert_eq!(config.validate(), Ok(()));

    let conf_d = Path::new(FIXTURES).join("conf.d");
    let tls = format!("{}", conf_d.join("20-tls.conf").display());
    let plain = format!("{}", conf_d.join("10-plain.conf").display());
    let autosave = "With persistence true Wren writes every change before acknowledging it \
                    (its durable mode): there is nothing to save periodically.";
    let expected_warnings = [
        "Warning: Unsupported key 'persistence_file' in mosquitto.conf line 43: ignored. Wren \
         keeps its own store (another format) as wren.db in persistence_location; Mosquitto's \
         file is left alone."
            .to_owned(),
        format!(
            "Warning: Unsupported key 'autosave_interval' in mosquitto.conf line 44: ignored. \
             {autosave}"
        ),
        format!(
            "Warning: Unsupported key 'autosave_on_changes' in mosquitto.conf line 45: \
             ignored. {autosave}"
        ),
        format!(
            "Warning: 'max_connections' in {plain} line 5: Mosquitto limits each listener's \
             connections; Wren limits the connections of all listeners together: 1120, the sum \
             of the listeners' limits."
        ),
        format!(
            "Warning: 'max_qos' in {tls} line 12: the listeners' values differ, and Wren's \
             maximum_qos applies to every listener: the strictest, 1, is used."
        ),
        format!(
            "Warning: 'auto_id_prefix' in {plain} line 9: the listeners' prefixes differ; Wren \
             has one for every listener: 'wren-'."
        ),
    ];
    assert_eq!(warnings, expected_warnings);
    assert_eq!(
        (
            config.message_size_limit,
            config.persistent_client_expiration
        ),
        (1_048_576, 14 * 24 * 3600),
        "enforced by the core"
    );
}

/// (b) Debian's Mosquitto 2.0.11 runs on both fixtures, their listeners moved to free loopback
/// ports: it loads them, listens on every port, stays up, and admits or refuses an anonymous
/// client where wren-broker does (see (d)). The TLS ports are only checked to listen.
#[test]
fn real_mosquitto_runs_on_the_fixtures() {
    assert!(
        Path::new(Mosquitto::PATH).exists(),
        "{} is not installed: apt-get install mosquitto (.ci/run installs it)",
        Mosquitto::PATH
    );
    let (copy, moved) = fixtures_on_free_ports();
    // Mosquitto started as root runs as the user mosquitto, which writes the pid file here.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&copy.0, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    for (file, anonymous_ok, anonymous_refused) in [
        ("mosquitto.conf", vec![1883, 1884], vec![]),
        ("anonymous.conf", vec![1883], vec![1884]),
    ] {
        let mut cmd = Command::new(Mosquitto::PATH);
        cmd.args(["-c", file]).current_dir(&copy.0);
        let mut mosquitto = start(cmd, Output::Stderr);
        let what = format!("mosquitto -c {file}");
        mosquitto.wait_for_line(&format!("Config loaded from {file}."));
        // Each file's own listeners (the fixture ports of the two files overlap).
        let text = std::fs::read_to_string(copy.0.join(file)).unwrap();
        let mut ports: Vec<u16> = text
            .lines()
            .filter_map(|l| l.strip_prefix("listener ").or(l.strip_prefix("port ")))
            .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
            .collect();
        if file == "mosquitto.conf" {
            for name in ["10-plain.conf", "20-tls.conf"] {
                let text = std::fs::read_to_string(copy.0.join("conf.d").join(name)).unwrap();
                ports.extend(text.lines().filter_map(|l| {
                    l.strip_prefix("listener ")
                        .map(|rest| rest.split(' ').next().unwrap().parse::<u16>().unwrap())
                }));
            }
        }
        assert_eq!(ports.len(), if file == "mosquitto.conf" { 4 } else { 2 });
        for port in &ports {
            mosquitto.wait_for_port(*port, &what);
        }
        let file_port = |old: u16| {
            *ports
                .iter()
                .find(|p| moved.contains(&(old, **p)))
                .unwrap_or_else(|| panic!("{file}: fixture port {old} not found"))
        };
        for old in anonymous_ok {
            assert_eq!(
                common::connack(file_port(old), "anonymous"),
                ACCEPTED,
                "{what}, port {old}"
            );
        }
        for old in anonymous_refused {
            assert_eq!(
                common::connack(file_port(old), "anonymous"),
                NOT_AUTHORIZED,
                "{what}, {old}"
            );
        }
        std::thread::sleep(Duration::from_millis(500));
        mosquitto.assert_running(&what);
        let log = mosquitto.drain().join("\n");
        assert!(!log.contains("Error found at"), "{log}");
    }
}

/// (c) `--check-config` on the fixtures: exit 0, the warnings on stderr, each listener with
/// who may connect on stdout; nothing is bound (the fixture's ports may be in use).
#[test]
fn check_config_accepts_the_fixtures_and_summarises_them() {
    let (code, stdout, stderr) =
        run_wren(&["--check-config", "mosquitto.conf"], Path::new(FIXTURES));
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert_eq!(
        stdout,
        "mosquitto.conf (mosquitto.conf): usable, 6 warnings.\n\
         Listeners:\n\
         \x20 port 1883 on 127.0.0.1 (MQTT): anonymous clients; every topic (no ACL file)\n\
         \x20 port 8883 on every address (MQTT, TLS, client certificate required): clients with \
         a certificate (its Common Name is the user name); every topic (no ACL file)\n\
         \x20 port 8884 on every address (MQTT, TLS): users in password file passwd; topics as \
         ACL file acl allows\n\
         \x20 port 1884 on 127.0.0.1 (MQTT): anonymous clients; every topic (no ACL file)\n\
         Bridges:\n\
         \x20 cloud to 127.0.0.1:1 (MQTT 3.1.1): sensors/# out 1; commands/# in 1\n"
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 6, "{stderr}");
    for expected in [
        "Warning: Unsupported key 'persistence_file' in mosquitto.conf line 43: ignored.",
        "Warning: 'max_qos' in conf.d/20-tls.conf line 12: the listeners' values differ",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(expected)),
            "{expected}: {stderr}"
        );
    }

    let (code, stdout, stderr) =
        run_wren(&["--check-config", "anonymous.conf"], Path::new(FIXTURES));
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.ends_with(
            "  port 1883 on 127.0.0.1 (MQTT): anonymous clients; every topic (no ACL file)\n  \
             port 1884 on 127.0.0.1 (MQTT): nobody (anonymous clients refused, no password \
             file); every topic (no ACL file)\n"
        ),
        "{stdout}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // The TOML example, by its extension: no warnings, local-only mode.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (code, stdout, stderr) = run_wren(&["--check-config", "wren.toml"], manifest);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert_eq!(
        stdout,
        "wren.toml (TOML): usable, 0 warnings.\nLocal-only mode: clients on this machine \
         only.\nListeners:\n  port 1883 on 127.0.0.1 and ::1 (MQTT): anonymous clients; every \
         topic (no ACL file)\n"
    );
    assert_eq!(stderr, "");

    // Nothing is bound: a listener whose port is taken still checks.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = TempDir::new("mosquitto-conf-test");
    // No extension: mosquitto.conf by its first line.
    dir.write(
        "broker.cfg",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\n"),
    );
    let (code, stdout, stderr) = run_wren(&["--check-config", "broker.cfg"], &dir.0);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with("broker.cfg (mosquitto.conf): usable, 0 warnings."),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "port {port} on 127.0.0.1 (MQTT): anonymous clients"
    )));
}

/// (c) `--check-config` on bad files: exit 1, the error on stderr naming file and line, nothing
/// on stdout.
#[test]
fn check_config_refuses_bad_files_with_mosquitto_like_errors() {
    let dir = TempDir::new("mosquitto-conf-test");
    dir.write("conf.d/ok.conf", "listener 1884 127.0.0.1\n");
    dir.write(
        "conf.d/zz-bad.conf",
        "# a comment\nlistener 1885\nsocket_domain ipv5\n",
    );
    let cases = [
        (
            "bad-value.conf",
            "listener 1883 127.0.0.1\nmax_inflight_messages foo\n",
            "Error: Invalid max_inflight_messages value (foo) in bad-value.conf line 2: an \
             integer expected.",
        ),
        (
            "duplicate.conf",
            "listener 1883\nmax_queued_messages 10\n\nmax_queued_messages 20\n",
            "Error: Duplicate max_queued_messages value in duplicate.conf line 4 (already set in \
             duplicate.conf line 2).",
        ),
        (
            "plugin.conf",
            "listener 1883\nauth_plugin /usr/lib/mosquitto-go-auth.so\n",
            "Error: Unsupported key 'auth_plugin' in plugin.conf line 2: Mosquitto plugins \
             cannot be loaded, and without this one its checks would not be made.",
        ),
        (
            "psk.conf",
            "listener 8883\npsk_hint wren\npsk_file /etc/mosquitto/psk\n",
            "Error: Unsupported key 'psk_hint' in psk.conf line 2: TLS-PSK is not supported",
        ),
        (
            "crl.conf",
            "listener 8883\ncrlfile /etc/mosquitto/crl.pem\n",
            "Error: Unsupported key 'crlfile' in crl.conf line 2: certificate revocation lists \
             are not supported: revoked client certificates would be accepted.",
        ),
        (
            "unknown.conf",
            "listener 1883\nallow_anonymus true\n",
            "Error: Unknown configuration variable \"allow_anonymus\" in unknown.conf line 2.",
        ),
        (
            "included.conf",
            "include_dir conf.d\n",
            "Error: Invalid socket_domain value (ipv5) in conf.d/zz-bad.conf line 3: ipv4 or \
             ipv6 expected.",
        ),
        (
            "old-tls.conf",
            "listener 8883\ncertfile c.pem\nkeyfile k.pem\ntls_version tlsv1.1\n",
            "Error: Invalid tls_version value (tlsv1.1) in old-tls.conf line 4: TLS versions \
             older than 1.2 are not offered",
        ),
        (
            "bad.toml",
            "maximum_qos = 3\n",
            "Error in config file bad.toml: maximum_qos must be 0, 1 or 2 (got 3).",
        ),
    ];
    for (name, text, message) in cases {
        dir.write(name, text);
        let (code, stdout, stderr) = run_wren(&["--check-config", name], &dir.0);
        assert_eq!(code, Some(1), "{name}: {stdout}{stderr}");
        assert_eq!(stdout, "", "{name}");
        assert!(stderr.starts_with(message), "{name}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
    }
    let (code, _, stderr) = run_wren(&["--check-config", "missing.conf"], &dir.0);
    assert_eq!(code, Some(1));
    assert!(
        stderr.starts_with("Error: Unable to open config file missing.conf: "),
        "{stderr}"
    );
}

/// (d) `wren-broker -c anonymous.conf`, its listeners on free loopback ports: it logs the
/// fixture's warnings and 'Config loaded', listens on both, admits an anonymous client where
/// the fixture allows it (CONNACK 20 02 00 00) and, as Mosquitto 2.0, refuses one where it does
/// not say (CONNACK 0x05).
#[test]
fn wren_broker_runs_on_a_mosquitto_conf() {
    let (copy, moved) = fixtures_on_free_ports();
    let mut cmd = Command::new(BIN);
    cmd.args(["-c", "anonymous.conf"]).current_dir(&copy.0);
    let mut broker = start(cmd, Output::Stderr);
    broker.wait_for_line("Warning: Unsupported key 'pid_file' in anonymous.conf line 5: ignored.");
    broker.wait_for_line("Config loaded from anonymous.conf.");
    // `persistence true`, `persistence_location ./`: Wren's durable store there.
    broker.wait_for_line("Persistence: ./wren.db (durable:");
    let text = std::fs::read_to_string(copy.0.join("anonymous.conf")).unwrap();
    let ports: Vec<u16> = text
        .lines()
        .filter_map(|l| l.strip_prefix("listener "))
        .map(|rest| rest.split(' ').next().unwrap().parse().unwrap())
        .collect();
    let [open, closed] = ports[..] else {
        panic!("{ports:?}")
    };
    assert!(moved.contains(&(1883, open)) && moved.contains(&(1884, closed)));
    let running = broker.wait_for_line("running on");
    assert!(
        running.contains(&format!("127.0.0.1:{open}"))
            && running.contains(&format!("127.0.0.1:{closed}")),
        "{running}"
    );
    assert_eq!(common::connack(open, "anonymous"), ACCEPTED);
    assert_eq!(common::connack(closed, "anonymous"), NOT_AUTHORIZED);
    broker.assert_running("wren-broker -c anonymous.conf");
}

/// The logging keys steer the running broker: `log_dest stdout` moves the log lines to stdout,
/// `log_type error` keeps only errors.
#[test]
fn log_dest_and_log_type_apply_to_the_running_broker() {
    let dir = TempDir::new("mosquitto-conf-test");
    let port = free_port();
    dir.write(
        "stdout.conf",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\nlog_dest stdout\n"),
    );
    let stderr = dir.write("stderr", "");
    let mut cmd = Command::new(BIN);
    cmd.args(["-c", "stdout.conf"])
        .current_dir(&dir.0)
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut broker = start(cmd, Output::Stdout);
    broker.wait_for_line("Config loaded from stdout.conf.");
    broker.wait_for_line("running on");
    assert_eq!(common::connack(port, "to-stdout"), ACCEPTED);
    broker.wait_for_line("New client connected from 127.0.0.1:");
    drop(broker);
    assert_eq!(
        std::fs::read_to_string(&stderr).unwrap(),
        "",
        "nothing on stderr"
    );

    let port = free_port();
    dir.write(
        "quiet.conf",
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\nlog_type error\n"),
    );
    let mut cmd = Command::new(BIN);
    cmd.args(["-c", "quiet.conf"]).current_dir(&dir.0);
    let mut broker = start(cmd, Output::Stderr);
    broker.wait_for_port(port, "wren-broker -c quiet.conf");
    assert_eq!(common::connack(port, "quiet"), ACCEPTED);
    std::thread::sleep(Duration::from_millis(300));
    broker.assert_running("wren-broker -c quiet.conf");
    assert_eq!(broker.drain(), [] as [String; 0], "only errors are logged");
}
