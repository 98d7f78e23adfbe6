//! Connection options and lifecycle, side by side with Mosquitto 2.0's `mosquitto_pub` and
//! `mosquitto_sub` (Debian's, at /usr/bin) where the flag exists there: Ctrl-C/SIGTERM send
//! DISCONNECT (no will) and exit 0; TLS against wren-broker's TLS listener and against Mosquitto
//! with the test's certificates (made by rcgen); `-L` URLs; `-A`; `--unix` through a Unix-socket
//! relay to the broker's TCP port; `--nodelay`; `--proxy` through a SOCKS5 proxy in the test; the help texts; wren-sensor
//! against a dead broker. A missing Mosquitto tool fails the test, naming the packages.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::pki::Pki;
use common::*;
use wren_broker::{Config, Listener, Server, ServerHandle};

const INSTALL: &str = "apt-get install mosquitto mosquitto-clients openssl";

/// A Mosquitto tool (`mosquitto_pub`, `mosquitto_sub`) run to its end (killed after 20 s).
fn mosquitto(tool: &str, args: &[&str]) -> (i32, String, String) {
    let path = format!("/usr/bin/{tool}");
    assert!(Path::new(&path).exists(), "{path} is missing: {INSTALL}");
    let mut child = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {path} ({e}): {INSTALL}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{tool} {args:?} did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (
        status.code().unwrap_or(-1),
        o.join().unwrap(),
        e.join().unwrap(),
    )
}

/// A wren tool run to its end: (code, stdout, stderr) with stdin empty.
fn wren(tool: &str, args: &[&str]) -> (i32, String, String) {
    let r = run(tool, args, "", Duration::from_secs(20));
    // `run` joins lines; give back the newline-terminated text as Mosquitto's tools print it.
    let nl = |s: &str| {
        if s.is_empty() {
            String::new()
        } else {
            format!("{s}\n")
        }
    };
    (r.code(), nl(&r.stdout), nl(&r.stderr))
}

/// A TLS handshake failure as wren reports it, and as Mosquitto does: MOSQ_ERR_TLS once
/// `mosquitto_connect` returned (exit 8), or, when the server's alert arrives while
/// `mosquitto_connect` is still running, "Unable to connect (A TLS error occurred.)." and exit
/// 1 — a race in libmosquitto that a faster server wins more often (since TLS is served by the
/// connection task itself, nearly always here). Mosquitto must give one of the two, run after
/// run; wren gives the first.
fn tls_failure_like_mosquitto(wren_tool: &str, args: &[&str]) {
    let mosq = wren_tool.replace("wren-", "mosquitto_");
    let w = wren(wren_tool, args);
    let after_connect = (
        8,
        String::new(),
        "Error: A TLS error occurred.\n".to_owned(),
    );
    let during_connect = (
        1,
        String::new(),
        "Unable to connect (A TLS error occurred.).\n".to_owned(),
    );
    assert_eq!(w, after_connect);
    for _ in 0..3 {
        let m = mosquitto(&mosq, args);
        assert!(m == after_connect || m == during_connect, "{mosq}: {m:?}");
    }
}

/// The wren tool and its Mosquitto counterpart with the same arguments: same exit code,
/// stdout and stderr (the tool's name replaced).
fn same_as_mosquitto(wren_tool: &str, args: &[&str]) -> (i32, String, String) {
    let mosq = wren_tool.replace("wren-", "mosquitto_");
    let w = wren(wren_tool, args);
    let m = mosquitto(&mosq, args);
    let m_named = (
        m.0,
        m.1.replace(&mosq, wren_tool),
        m.2.replace(&mosq, wren_tool),
    );
    assert_eq!(w, m_named, "{wren_tool} {args:?} differs from {mosq}");
    w
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "kill {sig} {pid} failed");
}

// ---------------------------------------------------------------------------------------------
// Ctrl-C and SIGTERM
// ---------------------------------------------------------------------------------------------

#[test]
fn sigint_and_sigterm_disconnect_without_will_and_exit_0() {
    let b = Broker::start();
    let port = b.port_arg();
    let mut watcher = subscribed(&port, &["-t", "will/#", "-v"]);
    let cases: [(&str, &[&str], &str); 4] = [
        ("wren-sub", &["-t", "x/y"], "received SUBACK"),
        ("wren-sub", &["--console"], "received CONNACK"),
        // -l prints its debug lines as it publishes: one line first.
        ("wren-pub", &["-t", "x/y", "-l"], "sending PUBLISH"),
        ("wren-pub", &["--console"], "received CONNACK"),
    ];
    for (n, (tool, extra, ready)) in cases.iter().enumerate() {
        for sig in ["-INT", "-TERM"] {
            let will = format!("will/{tool}-{n}{sig}");
            let mut args = vec![
                "-p",
                &port,
                "-d",
                "--will-topic",
                &will,
                "--will-payload",
                "died",
            ];
            args.extend_from_slice(extra);
            let mut p = Proc::spawn(tool, &args);
            if extra.contains(&"-l") {
                p.write("a line\n");
            }
            p.expect_out(|l| l.contains(ready), SECS10);
            signal(p.pid(), sig);
            let done = p.finish(SECS10);
            assert_eq!(done.code(), 0, "{tool} {extra:?} {sig}: {done:?}");
            assert!(
                done.stdout
                    .lines()
                    .any(|l| l.ends_with("sending DISCONNECT")),
                "{tool} {extra:?} {sig}: no DISCONNECT: {done:?}"
            );
        }
    }
    // mosquitto_sub does the same: exit 0 (and no will).
    let mut m = Command::new("/usr/bin/mosquitto_sub")
        .args([
            "-p",
            &port,
            "-t",
            "x/y",
            "--will-topic",
            "will/mosquitto_sub",
        ])
        .args(["--will-payload", "died", "-i", "m-sub"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("mosquitto_sub ({e}): {INSTALL}"));
    std::thread::sleep(Duration::from_millis(500));
    signal(m.id(), "-INT");
    assert_eq!(
        m.wait().unwrap().code(),
        Some(0),
        "mosquitto_sub after SIGINT"
    );
    // wren-sensor: SIGTERM publishes "offline" itself, once (no will on top of it).
    let mut s = Proc::spawn(
        "wren-sensor",
        &[
            "-p",
            &port,
            "-n",
            "1",
            "--status-topic",
            "will/sensor",
            "--interval",
            "0.2",
        ],
    );
    watcher.expect_out(|l| l == "will/sensor online", SECS10);
    signal(s.pid(), "-TERM");
    let done = std::mem::replace(&mut s, Proc::spawn("wren-pub", &["--help"])).finish(SECS10);
    assert_eq!(done.code(), 0, "{done:?}");
    // A control: a killed client's will does arrive.
    let mut k = Proc::spawn(
        "wren-sub",
        &[
            "-p",
            &port,
            "-d",
            "-t",
            "x/y",
            "--will-topic",
            "will/control",
            "--will-payload",
            "died",
        ],
    );
    k.expect_out(|l| l.contains("received SUBACK"), SECS10);
    k.kill();
    watcher.expect_out(|l| l == "will/control died", SECS10);
    let wills: Vec<&String> = watcher
        .out_lines
        .iter()
        .filter(|l| l.starts_with("will/"))
        .collect();
    assert_eq!(
        wills,
        [
            "will/sensor online",
            "will/sensor offline",
            "will/control died"
        ],
        "only the killed client's will may arrive"
    );
    watcher.kill();
}

// ---------------------------------------------------------------------------------------------
// TLS
// ---------------------------------------------------------------------------------------------

/// wren-broker with one TLS listener (`listener` over the PKI's server certificate).
fn tls_broker(listener: Listener) -> (ServerHandle, String) {
    let mut config = Config::for_tests();
    config.sys_interval = 0;
    config.listener = vec![listener];
    let broker = Server::bind(config).unwrap().start().unwrap();
    let port = broker.local_addrs()[0].port().to_string();
    (broker, port)
}

fn tls_listener(pki: &Pki) -> Listener {
    Listener {
        bind: "127.0.0.1".into(),
        certfile: Some(pki.server_cert.clone()),
        keyfile: Some(pki.server_key.clone()),
        ..Listener::default()
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn tls_publish_subscribe_against_wren_broker_like_mosquitto() {
    let pki = Pki::new();
    let (_broker, port) = tls_broker(tls_listener(&pki));
    let ca = p(&pki.ca);
    let mut sub = subscribed(&port, &["--cafile", ca, "-t", "tls/#", "-v", "-C", "3"]);
    for (tool, version) in [
        ("wren-pub", "tlsv1.3"),
        ("wren-pub", "tlsv1.2"),
        ("mosquitto_pub", "tlsv1.2"),
    ] {
        let topic = format!("tls/{tool}/{version}");
        let args = [
            "-p",
            &port,
            "--cafile",
            ca,
            "--tls-version",
            version,
            "-t",
            &topic,
            "-m",
            "hi",
            "-q",
            "1",
        ];
        let code = if tool == "wren-pub" {
            wren(tool, &args).0
        } else {
            mosquitto(tool, &args).0
        };
        assert_eq!(code, 0, "{tool} over {version}");
    }
    let done = std::mem::replace(&mut sub, Proc::spawn("wren-pub", &["--help"])).finish(SECS10);
    assert_eq!(done.code(), 0, "{done:?}");
    assert_eq!(
        messages(&done.stdout),
        [
            "tls/wren-pub/tlsv1.3 hi",
            "tls/wren-pub/tlsv1.2 hi",
            "tls/mosquitto_pub/tlsv1.2 hi"
        ]
    );
    // --capath: every PEM file of the directory (Mosquitto's OpenSSL wants c_rehash names
    // there, so only wren is run).
    let r = wren(
        "wren-pub",
        &[
            "-p",
            &port,
            "--capath",
            p(&pki.dir),
            "-t",
            "tls/capath",
            "-m",
            "x",
        ],
    );
    assert_eq!(r.0, 0, "{r:?}");
    // mosquitto_sub over TLS receives wren-pub's message.
    let mut m = Command::new("/usr/bin/mosquitto_sub")
        .args([
            "-p", &port, "--cafile", ca, "-t", "tls/m", "-C", "1", "-W", "10",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("mosquitto_sub ({e}): {INSTALL}"));
    std::thread::sleep(Duration::from_millis(700));
    let r = wren(
        "wren-pub",
        &[
            "-p",
            &port,
            "--cafile",
            ca,
            "-t",
            "tls/m",
            "-m",
            "to mosquitto",
        ],
    );
    assert_eq!(r.0, 0, "{r:?}");
    let mut out = String::new();
    m.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    assert_eq!(m.wait().unwrap().code(), Some(0));
    assert_eq!(out, "to mosquitto\n");
}

#[test]
fn tls_wrong_ca_and_wrong_name_refused_like_mosquitto() {
    let pki = Pki::new();
    let (_broker, port) = tls_broker(tls_listener(&pki));
    let rogue = p(&pki.rogue_ca);
    tls_failure_like_mosquitto(
        "wren-pub",
        &["-p", &port, "--cafile", rogue, "-t", "a", "-m", "b"],
    );
    tls_failure_like_mosquitto(
        "wren-sub",
        &["-p", &port, "--cafile", rogue, "-t", "a", "-C", "1"],
    );
    // --insecure still checks the chain.
    tls_failure_like_mosquitto(
        "wren-pub",
        &[
            "-p",
            &port,
            "--cafile",
            rogue,
            "--insecure",
            "-t",
            "a",
            "-m",
            "b",
        ],
    );
    // The system's roots do not include the test's CA: refused, by --tls-use-os-certs and by
    // an mqtts:// URL (which trusts them).
    tls_failure_like_mosquitto(
        "wren-pub",
        &["-p", &port, "--tls-use-os-certs", "-t", "a", "-m", "b"],
    );
    let url = format!("mqtts://127.0.0.1:{port}/a");
    tls_failure_like_mosquitto("wren-pub", &["-L", &url, "-m", "b"]);
    // With -d the reason follows on stdout (Mosquitto prints OpenSSL's there).
    let (code, out, _) = wren(
        "wren-pub",
        &["-p", &port, "--cafile", rogue, "-t", "a", "-m", "b", "-d"],
    );
    assert_eq!(code, 8);
    assert!(
        out.contains("TLS Error: ") && out.contains("UnknownIssuer"),
        "{out}"
    );
    // A missing CA file.
    let (code, _, err) = same_as_mosquitto(
        "wren-pub",
        &[
            "-p",
            &port,
            "--cafile",
            "/nonexistent/ca.pem",
            "-t",
            "a",
            "-m",
            "b",
        ],
    );
    assert_eq!(code, 1);
    assert_eq!(err, "Error: Problem setting TLS options: File not found.\n");
    // A TLS version that is not there (checked even without --cafile, as Mosquitto does).
    let (code, _, err) = same_as_mosquitto(
        "wren-pub",
        &[
            "-p",
            &port,
            "--tls-version",
            "tlsv1.4",
            "-t",
            "a",
            "-m",
            "b",
        ],
    );
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error: Problem setting TLS options, check the options are valid.\n"
        )
    );
    // --cert without --key.
    same_as_mosquitto(
        "wren-pub",
        &[
            "-p",
            &port,
            "--cafile",
            p(&pki.ca),
            "--cert",
            p(&pki.client_cert),
            "-t",
            "a",
            "-m",
            "b",
        ],
    );

    // A certificate for another name: refused, unless --insecure.
    let other = Listener {
        certfile: Some(pki.other_name_cert.clone()),
        keyfile: Some(pki.other_name_key.clone()),
        ..tls_listener(&pki)
    };
    let (_other, port) = tls_broker(other);
    let ca = p(&pki.ca);
    tls_failure_like_mosquitto(
        "wren-pub",
        &["-p", &port, "--cafile", ca, "-t", "a", "-m", "b"],
    );
    let (code, _, _) = same_as_mosquitto(
        "wren-pub",
        &[
            "-p",
            &port,
            "--cafile",
            ca,
            "--insecure",
            "-t",
            "a",
            "-m",
            "b",
        ],
    );
    assert_eq!(code, 0);
}

#[test]
fn tls_client_certificate_required_and_given() {
    let pki = Pki::new();
    let listener = Listener {
        cafile: Some(pki.ca.clone()),
        require_certificate: true,
        ..tls_listener(&pki)
    };
    let (_broker, port) = tls_broker(listener);
    let ca = p(&pki.ca);
    let (cert, key) = (p(&pki.client_cert), p(&pki.client_key));
    for tool in ["wren-pub", "mosquitto_pub"] {
        let args = [
            "-p", &port, "--cafile", ca, "--cert", cert, "--key", key, "-t", "c/1", "-m", "x",
        ];
        let code = if tool == "wren-pub" {
            wren(tool, &args).0
        } else {
            mosquitto(tool, &args).0
        };
        assert_eq!(code, 0, "{tool} with a client certificate");
    }
    let r = same_as_mosquitto(
        "wren-sub",
        &[
            "-p", &port, "--cafile", ca, "--cert", cert, "--key", key, "-t", "c/1", "-E",
        ],
    );
    assert_eq!(r.0, 0);
    // Without one, the broker refuses: both tools fail with status 1 (the words differ: the
    // broker's alert reaches OpenSSL and rustls at different moments of TLS 1.3).
    let args = ["-p", &port, "--cafile", ca, "-t", "c/1", "-m", "x"];
    let w = wren("wren-pub", &args);
    let m = mosquitto("mosquitto_pub", &args);
    assert_ne!(w.0, 0, "{w:?}");
    assert_ne!(m.0, 0, "{m:?}");
}

#[test]
fn tls_against_mosquitto_with_client_certificates() {
    let pki = Pki::new();
    // Mosquitto drops root for the "mosquitto" user: the PKI lives in the world-readable
    // temporary directory, its files 0644.
    let tls_port = free_port();
    let _b = Broker::with_config(&format!(
        "allow_anonymous true\nlistener {tls_port} 127.0.0.1\ncertfile {}\nkeyfile {}\ncafile {}\nrequire_certificate true\n",
        p(&pki.server_cert),
        p(&pki.server_key),
        p(&pki.ca)
    ));
    wait_port(tls_port);
    let port = tls_port.to_string();
    let ca = p(&pki.ca);
    let (cert, key) = (p(&pki.client_cert), p(&pki.client_key));
    let tls = ["-p", &port, "--cafile", ca, "--cert", cert, "--key", key];
    let mut sub_args = tls.to_vec();
    sub_args.extend(["-t", "m/#", "-v", "-C", "2"]);
    let sub = subscribed(&port, &sub_args[2..]);
    let mut pub_args = tls.to_vec();
    pub_args.extend(["-t", "m/wren", "-m", "w", "-q", "2"]);
    assert_eq!(wren("wren-pub", &pub_args).0, 0);
    let mut pub_args = tls.to_vec();
    pub_args.extend(["-t", "m/mosquitto", "-m", "m", "-q", "2"]);
    assert_eq!(mosquitto("mosquitto_pub", &pub_args).0, 0);
    let done = sub.finish(SECS10);
    assert_eq!(done.code(), 0, "{done:?}");
    assert_eq!(messages(&done.stdout), ["m/wren w", "m/mosquitto m"]);
    // Without a client certificate: refused by both tools.
    let args = ["-p", &port, "--cafile", ca, "-t", "m/x", "-m", "x"];
    assert_ne!(wren("wren-pub", &args).0, 0);
    assert_ne!(mosquitto("mosquitto_pub", &args).0, 0);
}

fn wait_port(port: u16) {
    let deadline = Instant::now() + SECS10;
    while !wren_broker::testing::listening(("127.0.0.1", port)) {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// -L, -A, --unix, --nodelay, --proxy
// ---------------------------------------------------------------------------------------------

#[test]
fn url_errors_match_mosquitto() {
    for url in [
        "http://localhost/t",
        "mqtt://localhost",
        "MQTTS://localhost:1",
        "ftp:/x",
    ] {
        same_as_mosquitto("wren-pub", &["-L", url, "-m", "x"]);
        same_as_mosquitto("wren-sub", &["-L", url]);
    }
}

#[test]
fn url_gives_host_port_topic_and_credentials() {
    let b = Broker::start();
    let port = b.port_arg();
    let url = format!("mqtt://someone:secret@127.0.0.1:{port}/url/topic");
    let sub = subscribed(&port, &["-t", "url/#", "-v", "-C", "2"]);
    assert_eq!(wren("wren-pub", &["-L", &url, "-m", "from wren"]).0, 0);
    assert_eq!(
        mosquitto("mosquitto_pub", &["-L", &url, "-m", "from mosquitto"]).0,
        0
    );
    let done = sub.finish(SECS10);
    assert_eq!(
        messages(&done.stdout),
        ["url/topic from wren", "url/topic from mosquitto"]
    );
    // wren-sub takes its topic from the URL.
    let mut s = Proc::spawn("wren-sub", &["-L", &url, "-C", "1", "-d"]);
    s.expect_out(|l| l.contains("received SUBACK"), SECS10);
    assert_eq!(
        wren("wren-pub", &["-p", &port, "-t", "url/topic", "-m", "back"]).0,
        0
    );
    let done = s.finish(SECS10);
    assert_eq!(messages(&done.stdout), ["back"]);
    // Arguments are read in order, as Mosquitto reads them: a -p after -L overrides the URL's
    // port, one before it is overridden.
    let dead_port = free_port().to_string();
    let dead_url = format!("mqtt://127.0.0.1:{dead_port}/url/topic");
    for args in [
        ["-L", &url, "-p", &dead_port, "-m", "x"],
        ["-p", &port, "-L", &dead_url, "-m", "x"],
    ] {
        let (code, _, err) = same_as_mosquitto("wren-pub", &args);
        assert_eq!((code, err.as_str()), (1, "Error: Connection refused\n"));
    }
    for args in [
        ["-L", &dead_url, "-p", &port, "-m", "x"],
        ["-p", &dead_port, "-L", &url, "-m", "x"],
    ] {
        let (code, _, _) = same_as_mosquitto("wren-pub", &args);
        assert_eq!(code, 0);
    }
    // A dead port from the URL: the same error as Mosquitto's.
    let dead = format!("mqtt://127.0.0.1:{}/t", free_port());
    same_as_mosquitto("wren-pub", &["-L", &dead, "-m", "x"]);
}

#[test]
fn bind_address_and_nodelay_like_mosquitto() {
    let b = Broker::start();
    let port = b.port_arg();
    let (code, _, _) = same_as_mosquitto(
        "wren-pub",
        &[
            "-p",
            &port,
            "-A",
            "127.0.0.1",
            "--nodelay",
            "-t",
            "a/b",
            "-m",
            "x",
        ],
    );
    assert_eq!(code, 0);
    same_as_mosquitto(
        "wren-sub",
        &[
            "-p",
            &port,
            "-A",
            "127.0.0.1",
            "--nodelay",
            "-t",
            "a/b",
            "-E",
        ],
    );
    // An address this host does not have.
    let (code, _, err) = same_as_mosquitto(
        "wren-pub",
        &["-p", &port, "-A", "192.0.2.1", "-t", "a/b", "-m", "x"],
    );
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: Cannot assign requested address\n")
    );
}

/// A Unix socket at `path` relaying each connection to 127.0.0.1:`port` (the brokers have no
/// Unix listener).
fn unix_relay(path: &Path, port: u16) {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(unix) = conn else { break };
            let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            let (mut u2, mut t2) = (unix.try_clone().unwrap(), tcp.try_clone().unwrap());
            let (mut u, mut t) = (unix, tcp);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u, &mut t);
                let _ = t.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut t2, &mut u2);
                let _ = u2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
}

#[test]
fn unix_socket_like_mosquitto() {
    let b = Broker::start();
    let port = b.port_arg();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("unix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let sock = dir.join("broker.sock");
    unix_relay(&sock, b.port);
    let sub = subscribed(&port, &["-t", "unix/#", "-v", "-C", "2"]);
    let s = p(&sock);
    let (code, _, _) = same_as_mosquitto("wren-pub", &["--unix", s, "-t", "unix/a", "-m", "u"]);
    assert_eq!(code, 0);
    let done = sub.finish(SECS10);
    assert_eq!(messages(&done.stdout), ["unix/a u", "unix/a u"]);
    same_as_mosquitto("wren-sub", &["--unix", s, "-t", "unix/a", "-E"]);
    // No socket there.
    let missing = dir.join("none.sock");
    let (code, _, err) =
        same_as_mosquitto("wren-pub", &["--unix", p(&missing), "-t", "a", "-m", "b"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "Error: No such file or directory\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A SOCKS5 proxy for the tests (RFC 1928 CONNECT, no authentication or, with `credentials`,
/// RFC 1929 user name and password): its port; every CONNECT's (host, port) is sent on `seen`.
fn socks5_proxy(
    credentials: Option<(&'static str, &'static str)>,
    seen: std::sync::mpsc::Sender<(String, u16)>,
) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut c) = conn else { break };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut head = [0u8; 2];
                c.read_exact(&mut head).unwrap();
                let mut methods = vec![0u8; usize::from(head[1])];
                c.read_exact(&mut methods).unwrap();
                match credentials {
                    None => c.write_all(&[5, 0]).unwrap(),
                    Some((user, password)) => {
                        assert!(methods.contains(&2), "{methods:?}");
                        c.write_all(&[5, 2]).unwrap();
                        let mut v = [0u8; 2];
                        c.read_exact(&mut v).unwrap();
                        let mut u = vec![0u8; usize::from(v[1])];
                        c.read_exact(&mut u).unwrap();
                        let mut n = [0u8; 1];
                        c.read_exact(&mut n).unwrap();
                        let mut p = vec![0u8; usize::from(n[0])];
                        c.read_exact(&mut p).unwrap();
                        let ok = u == user.as_bytes() && p == password.as_bytes();
                        c.write_all(&[1, if ok { 0 } else { 1 }]).unwrap();
                        if !ok {
                            return;
                        }
                    }
                }
                let mut req = [0u8; 4];
                c.read_exact(&mut req).unwrap();
                assert_eq!(&req[..3], &[5, 1, 0], "CONNECT");
                let host = match req[3] {
                    3 => {
                        let mut n = [0u8; 1];
                        c.read_exact(&mut n).unwrap();
                        let mut h = vec![0u8; usize::from(n[0])];
                        c.read_exact(&mut h).unwrap();
                        String::from_utf8(h).unwrap()
                    }
                    1 => {
                        let mut a = [0u8; 4];
                        c.read_exact(&mut a).unwrap();
                        std::net::Ipv4Addr::from(a).to_string()
                    }
                    other => panic!("address type {other}"),
                };
                let mut p = [0u8; 2];
                c.read_exact(&mut p).unwrap();
                let target_port = u16::from_be_bytes(p);
                let _ = seen.send((host.clone(), target_port));
                let Ok(target) = TcpStream::connect((host.as_str(), target_port)) else {
                    let _ = c.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
                    return;
                };
                c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).unwrap();
                let (mut c2, mut t2) = (c.try_clone().unwrap(), target.try_clone().unwrap());
                let (mut c1, mut t1) = (c, target);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut t1);
                    let _ = t1.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut t2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

#[test]
fn proxy_like_mosquitto() {
    let b = Broker::start();
    let port = b.port_arg();
    for credentials in [None, Some(("pu", "pp"))] {
        let (tx, seen) = std::sync::mpsc::channel();
        let proxy = socks5_proxy(credentials, tx);
        let url = match credentials {
            None => format!("socks5h://127.0.0.1:{proxy}"),
            Some((u, p)) => format!("socks5h://{u}:{p}@127.0.0.1:{proxy}"),
        };
        let sub = subscribed(&port, &["-t", "via/#", "-v", "-C", "2"]);
        let args = [
            "--proxy",
            &url,
            "-h",
            "localhost",
            "-p",
            &port,
            "-t",
            "via/proxy",
        ];
        let w = wren("wren-pub", &[&args[..], &["-m", "wren"]].concat());
        assert_eq!(w.0, 0, "{w:?}");
        let m = mosquitto("mosquitto_pub", &[&args[..], &["-m", "mosquitto"]].concat());
        assert_eq!(m.0, 0, "{m:?}");
        let done = sub.finish(SECS10);
        assert_eq!(
            messages(&done.stdout),
            ["via/proxy wren", "via/proxy mosquitto"]
        );
        // Both asked the proxy for the broker by name (socks5h: the proxy resolves it).
        let asked: Vec<(String, u16)> = seen.try_iter().collect();
        let broker_port: u16 = port.parse().unwrap();
        assert_eq!(
            asked,
            [
                ("localhost".to_owned(), broker_port),
                ("localhost".to_owned(), broker_port)
            ]
        );
    }
    // Errors, as Mosquitto words them.
    for (tool, rest) in [
        ("wren-pub", &["-t", "a", "-m", "b"][..]),
        ("wren-sub", &["-t", "a"]),
    ] {
        for url in ["socks4://127.0.0.1:1", "socks5h://127.0.0.1:x"] {
            same_as_mosquitto(tool, &[&["--proxy", url][..], rest].concat());
        }
    }
    // No proxy there: the connection is refused, for both.
    let dead = free_port();
    same_as_mosquitto(
        "wren-pub",
        &[
            "--proxy",
            &format!("socks5h://127.0.0.1:{dead}"),
            "-t",
            "a",
            "-m",
            "b",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Help texts and wren-sensor's errors
// ---------------------------------------------------------------------------------------------

fn help(tool: &str) -> String {
    let r = run(tool, &["--help"], "", SECS10);
    assert_eq!(r.code(), 0);
    r.stdout
}

/// The flags listed under `heading` in a help text.
fn section<'a>(help: &'a str, heading: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .filter(|l| l.trim_start().starts_with('-'))
        .collect()
}

#[test]
fn help_headings_footers_and_sensor_template() {
    let pub_help = help("wren-pub");
    let will = section(&pub_help, "Will:");
    assert!(!will.is_empty());
    assert!(
        will.iter().all(|l| l.trim_start().starts_with("--will-")),
        "{will:#?}"
    );
    let options = section(&pub_help, "Options:");
    assert!(options.iter().any(|l| l.contains("-t, --topic")));
    assert!(options.iter().any(|l| l.contains("-m, --message")));
    let tls = section(&pub_help, "TLS:");
    for flag in [
        "--cafile",
        "--capath",
        "--cert",
        "--key",
        "--insecure",
        "--tls-version",
        "--tls-use-os-certs",
    ] {
        assert!(
            tls.iter().any(|l| l.contains(flag)),
            "{flag} not under TLS:"
        );
    }
    let sub_help = help("wren-sub");
    assert!(
        section(&sub_help, "Will:")
            .iter()
            .all(|l| l.contains("--will-"))
    );
    // Only wren-sub has -W: only its footer names it.
    assert!(!pub_help.contains("-W"), "{pub_help}");
    assert!(sub_help.contains("27 when\n-W times out"), "{sub_help}");
    let sensor_help = help("wren-sensor");
    assert!(!sensor_help.contains("-W"));
    // {n} survives (a word joiner after the brace keeps clap from making it a line break).
    let t = sensor_help
        .lines()
        .skip_while(|l| !l.contains("-t, --topic"))
        .nth(1)
        .unwrap()
        .replace('\u{2060}', "");
    assert!(t.contains("and {n}"), "{t}");
}

#[test]
fn sensor_against_a_dead_broker_counts_its_errors() {
    let port = free_port().to_string();
    let r = run(
        "wren-sensor",
        &["-p", &port, "-n", "3", "--count", "1"],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 1, "{r:?}");
    assert!(r.stderr.contains("Error: Connection refused"), "{r:?}");
    assert!(r.stderr.contains(", 3 errors"), "{r:?}");
    // The same refusal from mosquitto_pub.
    let (code, _, err) = mosquitto("mosquitto_pub", &["-p", &port, "-t", "a", "-m", "b"]);
    assert_eq!((code, err.as_str()), (1, "Error: Connection refused\n"));
}
