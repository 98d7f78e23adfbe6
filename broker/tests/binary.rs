//! The `wren-broker` binary itself: `--help`, configuration files refused or loaded at start,
//! signals (SIGHUP, SIGUSR1 and SIGUSR2 logged and survived; SIGTERM and SIGINT stop it).
//! Each broker process is killed when its test ends, passing or not, and every wait is bounded.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::process::{Output, Running};

const BIN: &str = env!("CARGO_BIN_EXE_wren-broker");
const WAIT: Duration = Duration::from_secs(10);

/// A file in a directory of its own, removed on drop.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("wren-broker-bin-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile { dir, path }
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `wren-broker ARGS`, its log lines read as they come.
fn spawn_broker(args: &[&str]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("RUST_LOG");
    Running::spawn(cmd, Output::Stderr)
}

/// Run the binary to its end (killed after `WAIT`): its status, stdout and stderr.
fn run_to_end(args: &[&str]) -> (ExitStatus, String, String) {
    let scratch = TempFile::new("output", "");
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    let ran = common::tools::run_bounded(cmd, &scratch.dir, WAIT).expect("wren-broker runs");
    (ran.status, ran.stdout, ran.stderr)
}

#[test]
fn help_says_which_mqtt_versions() {
    let (status, help, stderr) = run_to_end(&["--help"]);
    assert!(status.success(), "{status}: {stderr}");
    assert!(help.contains("MQTT 3.1, 3.1.1 and 5.0"), "--help: {help}");
    for flag in ["--port", "--bind", "--config", "--verbose", "--version"] {
        assert!(help.contains(flag), "--help lists {flag}: {help}");
    }
    assert!(
        help.contains("SIGHUP reloads the password and ACL files and the TLS certificates"),
        "{help}"
    );
}

#[test]
fn out_of_range_value_is_refused_at_start() {
    let config = TempFile::new("bad.toml", "# wren.toml\nmaximum_qos = 3\n");
    let mut broker = spawn_broker(&["-c", config.arg(), "--bind", "127.0.0.1", "-p", "0"]);
    let status = broker
        .exit_within(WAIT)
        .expect("the broker exits at once on a bad configuration");
    let stderr = broker.rest_of_output();
    assert!(!status.success(), "{status}; stderr: {stderr}");
    assert!(
        stderr.contains("Error in config file")
            && stderr.contains("maximum_qos must be 0, 1 or 2 (got 3)"),
        "{stderr}"
    );
    assert!(!stderr.contains("Config loaded from"), "{stderr}");
    assert!(!stderr.contains("running on"), "{stderr}");
}

#[test]
fn negative_value_is_refused_naming_the_key() {
    let config = TempFile::new("negative.toml", "port = 0\nconnect_timeout = -5\n");
    let mut broker = spawn_broker(&["-c", config.arg(), "--bind", "127.0.0.1"]);
    let status = broker.exit_within(WAIT).expect("exits");
    let stderr = broker.rest_of_output();
    assert!(!status.success(), "{status}; stderr: {stderr}");
    assert!(
        stderr.contains("connect_timeout: invalid value: integer `-5`, expected u64 (line 2"),
        "{stderr}"
    );
}

#[test]
fn command_line_values_are_validated_too() {
    // -p sets the default listener's port, which a configuration with listeners does not use.
    let config = TempFile::new(
        "listeners.toml",
        "[[listener]]\nport = 0\nbind = \"127.0.0.1\"\n",
    );
    let mut broker = spawn_broker(&["-c", config.arg(), "-p", "0"]);
    let status = broker.exit_within(WAIT).expect("exits");
    let stderr = broker.rest_of_output();
    assert!(!status.success(), "{status}; stderr: {stderr}");
    assert!(
        stderr.contains("Error: -p/--port and --bind set the default listener"),
        "{stderr}"
    );
}

#[test]
fn valid_config_is_loaded_and_logged() {
    let config = TempFile::new(
        "good.toml",
        "bind = \"127.0.0.1\"\nport = 0\nsys_interval = 0\nmaximum_qos = 1\n",
    );
    let mut broker = spawn_broker(&["-c", config.arg()]);
    let line = broker.wait_for_line("Config loaded from");
    assert!(
        line.ends_with(&format!(": Config loaded from {}.", config.arg())),
        "{line}"
    );
    broker.wait_for_line("running on 127.0.0.1:");
    assert_eq!(broker.exit_within(Duration::ZERO), None, "still running");
}

/// Send `signal` (a name for `kill`, e.g. "HUP") to `broker`.
fn signal(broker: &Running, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), broker.pid()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal}: {status}");
}

/// Start a broker on a free loopback port; its port, from the "running on" line.
fn start_on_free_port() -> (Running, u16) {
    let mut broker = spawn_broker(&["--bind", "127.0.0.1", "-p", "0"]);
    let port = broker.listening_port();
    (broker, port)
}

/// A raw MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s, client id `id`) is answered with
/// CONNACK accepted, no session present.
fn assert_accepts_connection(port: u16, id: &str) {
    assert_eq!(
        common::connack(port, id),
        [0x20, 0x02, 0x00, 0x00],
        "CONNACK for {id}"
    );
}

#[test]
fn sighup_sigusr1_sigusr2_are_logged_and_survived_then_sigterm_stops_it() {
    let (mut broker, port) = start_on_free_port();
    assert_accepts_connection(port, "before");
    for (name, logged) in [
        ("HUP", "Reloaded the password and ACL files."),
        ("USR1", "Received SIGUSR1: writing the persistence file now"),
        (
            "USR2",
            "Received SIGUSR2: printing the subscription tree is not supported yet",
        ),
    ] {
        signal(&broker, name);
        broker.wait_for_line(logged);
        assert_eq!(
            broker.exit_within(Duration::from_millis(200)),
            None,
            "wren-broker exited on SIG{name}: {:#?}",
            broker.drain()
        );
        assert_accepts_connection(port, &format!("after-{name}"));
    }
    signal(&broker, "TERM");
    let status = broker
        .exit_within(WAIT)
        .expect("wren-broker exits on SIGTERM");
    let stderr = broker.rest_of_output();
    assert_eq!(status.code(), Some(0), "{status}; stderr: {stderr}");
    assert!(
        stderr.contains("Received SIGTERM: shutting down."),
        "{stderr}"
    );
    assert!(stderr.contains("wren-broker stopped."), "{stderr}");
}

#[test]
fn sigint_stops_it_gracefully() {
    let (mut broker, port) = start_on_free_port();
    assert_accepts_connection(port, "before");
    signal(&broker, "INT");
    let status = broker
        .exit_within(WAIT)
        .expect("wren-broker exits on SIGINT");
    let stderr = broker.rest_of_output();
    assert_eq!(status.code(), Some(0), "{status}; stderr: {stderr}");
    assert!(
        stderr.contains("Received SIGINT: shutting down."),
        "{stderr}"
    );
}

/// #18: without a configuration the broker says it runs in local-only mode, as Mosquitto 2.0
/// does, and listens on loopback only.
#[test]
fn default_is_local_only_mode() {
    let mut broker = spawn_broker(&["-p", "0"]);
    broker.wait_for_line("Starting in local only mode.");
    broker.wait_for_line("Opening ipv4 listen socket on port");
    let line = broker.wait_for_line("running on 127.0.0.1:");
    assert!(!line.contains("0.0.0.0"), "{line}");
}

// ---------------------------------------------------------------------------------------------
// Passwords, ACLs and their reload (#18 items 4-6), with Mosquitto's own tools
// ---------------------------------------------------------------------------------------------

const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";
const MOSQUITTO_PUB: &str = "/usr/bin/mosquitto_pub";
const MOSQUITTO_SUB: &str = "/usr/bin/mosquitto_sub";

fn require(tool: &str) {
    assert!(
        std::path::Path::new(tool).exists(),
        "{tool} is not installed: apt-get install mosquitto mosquitto-clients (.ci/run installs \
         them)"
    );
}

/// `mosquitto_passwd -b FILE USER PASSWORD` (with `-c` to create the file).
fn passwd(file: &std::path::Path, create: bool, user: &str, password: &str) {
    require(MOSQUITTO_PASSWD);
    let mut cmd = Command::new(MOSQUITTO_PASSWD);
    if create {
        cmd.arg("-c");
    }
    let status = cmd
        .arg("-b")
        .arg(file)
        .args([user, password])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "mosquitto_passwd {user}: {status}");
}

/// `mosquitto_pub` to `port` as `user`/`password` (anonymous if `None`): its exit code and
/// stderr.
fn publish_as(port: u16, user: Option<(&str, &str)>, topic: &str) -> (i32, String) {
    require(MOSQUITTO_PUB);
    let mut cmd = Command::new(MOSQUITTO_PUB);
    cmd.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-t",
        topic,
        "-m",
        "m",
        "-q",
        "1",
    ]);
    if let Some((u, p)) = user {
        cmd.args(["-u", u, "-P", p]);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A raw 3.1.1 CONNECT with user name and password, kept open: the socket, after CONNACK 0.
fn login_raw(port: u16, id: &str, user: &str, password: &str) -> TcpStream {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60];
    for field in [id, user, password] {
        body.extend_from_slice(&(field.len() as u16).to_be_bytes());
        body.extend_from_slice(field.as_bytes());
    }
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.write_all(&packet).unwrap();
    let mut connack = [0u8; 4];
    tcp.read_exact(&mut connack).unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0], "{user} logs in");
    tcp
}

#[test]
fn password_and_acl_files_then_reload() {
    let files = TempFile::new("wren.toml", "");
    let passwords = files.dir.join("passwd");
    let acl = files.dir.join("acl");
    passwd(&passwords, true, "alice", "right");
    passwd(&passwords, false, "bob", "pw");
    std::fs::write(
        &acl,
        "user alice\ntopic readwrite alice/#\ntopic read public/#\nuser bob\ntopic write public/#\n",
    )
    .unwrap();
    std::fs::write(
        &files.path,
        format!(
            "bind = \"127.0.0.1\"\nport = 0\nallow_anonymous = false\npassword_file = {:?}\n\
             acl_file = {:?}\nmax_failed_logins = 0\n",
            passwords, acl
        ),
    )
    .unwrap();
    let mut broker = spawn_broker(&["-c", files.arg()]);
    let port = broker.listening_port();

    // Logins: mosquitto_pub exits 5 ("not authorised") when refused.
    assert_eq!(publish_as(port, Some(("bob", "pw")), "public/x").0, 0);
    let (code, err) = publish_as(port, None, "public/x");
    assert_eq!(code, 5, "anonymous: {err}");
    assert!(err.contains("not authorised"), "{err}");
    assert_eq!(publish_as(port, Some(("bob", "wrong")), "public/x").0, 5);
    assert_eq!(publish_as(port, Some(("eve", "pw")), "public/x").0, 5);

    // Topics: alice reads public/#, bob writes it; alice may not subscribe to secret/#.
    require(MOSQUITTO_SUB);
    let sub = Command::new(MOSQUITTO_SUB)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            "alice",
            "-P",
            "right",
        ])
        .args(["-t", "public/#", "-t", "bob/#", "-C", "1", "-W", "5", "-v"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(publish_as(port, Some(("bob", "pw")), "public/news").0, 0);
    let out = sub.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "public/news m\n");
    let denied = Command::new(MOSQUITTO_SUB)
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            "alice",
            "-P",
            "right",
        ])
        .args(["-t", "secret/#", "-C", "1", "-W", "2"])
        .output()
        .unwrap();
    // (mosquitto_sub reports the SUBACK refusal and exits.)
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("All subscription requests were denied."),
        "{stderr}"
    );

    // Reload: alice's password changes; her open connection is closed, the new one works.
    let mut alice = login_raw(port, "alice-open", "alice", "right");
    let _bob = login_raw(port, "bob-open", "bob", "pw");
    passwd(&passwords, false, "alice", "new");
    signal(&broker, "HUP");
    broker.wait_for_line("Reloaded the password and ACL files.");
    let mut rest = [0u8; 8];
    assert!(
        matches!(alice.read(&mut rest), Ok(0) | Err(_)),
        "alice's connection is closed"
    );
    assert_eq!(publish_as(port, Some(("alice", "new")), "alice/x").0, 0);
    assert_eq!(publish_as(port, Some(("alice", "right")), "alice/x").0, 5);
    assert_eq!(broker.exit_within(Duration::from_millis(100)), None);

    // A broken ACL file: the reload fails naming the file and line, the old rules stay.
    std::fs::write(
        &acl,
        "user alice\ntopic readwrite alice/#\ntopic bogus x/#\n",
    )
    .unwrap();
    signal(&broker, "HUP");
    let line = broker.wait_for_line("The reload failed");
    assert!(line.contains("acl line 3"), "{line}");
    assert_eq!(
        publish_as(port, None, "public/x").0,
        5,
        "still closed to anonymous"
    );
    assert_eq!(
        publish_as(port, Some(("bob", "pw")), "public/x").0,
        0,
        "old rules"
    );
}

#[test]
fn man_page_and_completions_are_generated() {
    let dir = std::env::temp_dir().join(format!("wren-broker-man-{}", std::process::id()));
    let out = Command::new(BIN)
        .arg("--generate-man")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let page = std::fs::read_to_string(dir.join("wren-broker.1")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(page.contains(".TH wren-broker 1"), "{page}");
    assert!(page.contains(r"\fB\-\-check\-config\fR"), "{page}");
    assert!(page.contains("SIGHUP"), "{page}");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = Command::new(BIN)
            .args(["--generate-completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("check-config"),
            "{shell}"
        );
    }
}

/// The systemd unit: a simple service run as its own user, reloaded with SIGHUP (the password
/// and ACL files), restarted on failure, sandboxed.
#[test]
fn systemd_unit_is_complete() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/wren-broker.service"),
    )
    .unwrap();
    let has = |line: &str| unit.lines().any(|l| l.trim() == line);
    for line in [
        "[Unit]",
        "[Service]",
        "[Install]",
        "Type=simple",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "User=wren-broker",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "WantedBy=multi-user.target",
    ] {
        assert!(has(line), "missing {line:?} in:\n{unit}");
    }
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("an ExecStart line");
    assert!(exec.starts_with("/usr/local/bin/wren-broker -c "), "{exec}");
}
