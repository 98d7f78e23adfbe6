//! TLS listeners, over real sockets on 127.0.0.1, with certificates made by the test (rcgen,
//! `common/certs.rs`): Debian's `mosquitto_pub`/`mosquitto_sub` publish and receive through
//! wren-broker over TLS; `require_certificate` admits a client certificate signed by the CA and
//! refuses no certificate and one from another CA; `use_identity_as_username` and
//! `use_subject_as_username` name the client (the "New client connected ... u'NAME'" log line;
//! the subject checked against `openssl x509 -nameopt RFC2253`); `tls_version = "tlsv1.3"`
//! refuses a TLS 1.2 client (`openssl s_client -tls1_2`), the default takes 1.2 and 1.3; garbage, a plaintext CONNECT, an HTTP request and a silent client
//! on the TLS port each close only that connection (with a logged reason) while the broker
//! serves others; `ServerHandle::reload_tls` puts new certificates in force and keeps the old
//! ones when a file is bad; a TLS subscriber gets a refusal CONNACK before the close, and when
//! slow paces its publisher (nothing dropped); packets cut over records and records cut over
//! reads are put together; a corrupt record after the handshake closes that connection with a
//! logged reason. A missing Mosquitto client or openssl fails the test, naming the package.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::certs::{CLIENT_CN, CLIENT_SUBJECT, Pki, capture_logs, logged, plain_listener};
use common::tools::{Ran, run_bounded, tools_dir};
use wren_broker::{Listener, ServerHandle};

const TOOL_TIMEOUT: Duration = Duration::from_secs(30);
const INSTALL: &str = "install Debian's Mosquitto and its clients: apt-get install mosquitto \
                       mosquitto-clients";

/// A broker with a plain listener (for `broker_still_works`) and `tls`: returns the handle, the
/// plain address and the TLS address.
fn start(tls: Listener, connect_timeout: u64) -> (ServerHandle, SocketAddr, SocketAddr) {
    capture_logs();
    let broker = common::start(|c| {
        c.listener = vec![plain_listener(), tls];
        c.connect_timeout = connect_timeout;
    });
    let addrs = broker.local_addrs().to_vec();
    (broker, addrs[0], addrs[1])
}

/// `mosquitto_pub` or `mosquitto_sub` with `args`, to its end.
fn run(tool: &str, args: &[String]) -> Ran {
    let mut cmd = Command::new(tool);
    cmd.args(args);
    run_bounded(cmd, &tools_dir().join("logs"), TOOL_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}): {INSTALL}"))
}

fn s(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Arguments to reach `addr` over TLS trusting `ca`, as client `id`.
fn tls_args(addr: SocketAddr, ca: &Path, id: &str) -> Vec<String> {
    s(&[
        "-h",
        "127.0.0.1",
        "-p",
        &addr.port().to_string(),
        "--cafile",
        path(ca),
        "-i",
        id,
    ])
}

/// One QoS 1 publish by `mosquitto_pub` with `args` (+ `extra`); whether it succeeded.
fn publish(args: &[String], extra: &[&str]) -> Ran {
    let mut all = args.to_vec();
    all.extend(s(&["-t", "tls/test", "-m", "hello over tls", "-q", "1"]));
    all.extend(s(extra));
    run("mosquitto_pub", &all)
}

/// A `mosquitto_sub` running in the background, killed on drop.
struct Sub {
    child: Child,
    out: std::path::PathBuf,
}

impl Sub {
    fn spawn(args: &[String], broker: &ServerHandle) -> Sub {
        let before = broker.subscription_count();
        let dir = tools_dir().join("logs");
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(format!(
            "tls-sub-{}-{}",
            std::process::id(),
            args.join("_").len()
        ));
        let child = Command::new("mosquitto_sub")
            .args(args)
            .args(["-t", "tls/test", "-C", "1", "-W", "20", "-q", "1"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run mosquitto_sub ({e}): {INSTALL}"));
        let sub = Sub { child, out };
        let deadline = Instant::now() + Duration::from_secs(10);
        while broker.subscription_count() == before {
            assert!(Instant::now() < deadline, "mosquitto_sub never subscribed");
            std::thread::sleep(Duration::from_millis(20));
        }
        sub
    }

    /// What it printed once it exited (after one message, or its -W time-out).
    fn output(mut self) -> String {
        let deadline = Instant::now() + TOOL_TIMEOUT;
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "mosquitto_sub did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(&self.out).unwrap()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}

#[test]
fn mosquitto_clients_publish_and_receive_over_tls() {
    let pki = Pki::new();
    let (broker, plain, tls) = start(pki.listener(), 10);
    let sub = Sub::spawn(&tls_args(tls, &pki.ca, "tls-sub"), &broker);
    // (The subscriber stays live while it waits: TLS connections do not hibernate, their
    // session has no place in the parking lot.)
    // TLS 1.2 is accepted by default (tlsv1.2 and later).
    let ran = publish(
        &tls_args(tls, &pki.ca, "tls-pub"),
        &["--tls-version", "tlsv1.2"],
    );
    assert!(ran.status.success(), "publish over TLS: {}", ran.output());
    assert_eq!(sub.output().trim(), "hello over tls");
    assert!(logged(&["as tls-pub (p2"], Duration::from_secs(3)).is_some());
    // A client that does not trust the broker's CA gives up.
    let ran = publish(&tls_args(tls, &pki.rogue_ca, "tls-distrust"), &[]);
    assert!(!ran.status.success(), "{}", ran.output());
    common::broker_still_works(plain);
}

#[test]
fn require_certificate_admits_the_cas_clients_only_and_names_them() {
    let pki = Pki::new();
    let listener = Listener {
        cafile: Some(pki.ca.clone()),
        require_certificate: true,
        use_identity_as_username: true,
        ..pki.listener()
    };
    let (broker, plain, tls) = start(listener, 10);
    let with_cert = |id: &str, cert: &Path, key: &Path| {
        let mut args = tls_args(tls, &pki.ca, id);
        args.extend(s(&["--cert", path(cert), "--key", path(key)]));
        args
    };
    let sub = Sub::spawn(
        &with_cert("tls-cert-sub", &pki.client_cert, &pki.client_key),
        &broker,
    );
    // The CONNECT's user name gives way to the certificate's Common Name.
    let ran = publish(
        &with_cert("tls-cert-pub", &pki.client_cert, &pki.client_key),
        &["-u", "alice", "-P", "secret"],
    );
    assert!(ran.status.success(), "{}", ran.output());
    assert_eq!(sub.output().trim(), "hello over tls");
    let line = logged(&["as tls-cert-pub (p2"], Duration::from_secs(3)).unwrap();
    assert!(line.contains(&format!("u'{CLIENT_CN}'")), "{line}");
    // No certificate, or one from another CA: the handshake fails, logged.
    let ran = publish(&tls_args(tls, &pki.ca, "tls-no-cert"), &[]);
    assert!(!ran.status.success(), "{}", ran.output());
    let ran = publish(
        &with_cert("tls-rogue", &pki.rogue_cert, &pki.rogue_key),
        &[],
    );
    assert!(!ran.status.success(), "{}", ran.output());
    assert!(logged(&["as tls-no-cert"], Duration::from_millis(100)).is_none());
    assert!(logged(&["as tls-rogue"], Duration::from_millis(100)).is_none());
    let failed = logged(
        &["TLS handshake failed", "certificate", "closing."],
        Duration::from_secs(3),
    );
    assert!(failed.is_some(), "a refused certificate is logged");
    common::broker_still_works(plain);
}

#[test]
fn a_refusal_connack_crosses_the_tls_session_before_the_close() {
    // use_identity_as_username without require_certificate: no certificate is asked for, so
    // the CONNECT is refused with 0x04, which must reach the client before the connection ends.
    let pki = Pki::new();
    let listener = Listener {
        use_identity_as_username: true,
        ..pki.listener()
    };
    let (_broker, _plain, tls) = start(listener, 10);
    let ran = publish(&tls_args(tls, &pki.ca, "tls-no-identity"), &[]);
    assert!(!ran.status.success(), "{}", ran.output());
    assert!(
        ran.output().contains("bad user name or password"),
        "{}",
        ran.output()
    );
    assert!(
        logged(
            &["refused: no user name in its TLS certificate"],
            Duration::from_secs(3)
        )
        .is_some()
    );
}

#[test]
fn use_subject_as_username_takes_the_rfc2253_subject() {
    let pki = Pki::new();
    // What OpenSSL prints (Mosquitto uses X509_NAME_print_ex with XN_FLAG_RFC2253).
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
        .arg(&pki.client_cert);
    let ran = run_bounded(cmd, &tools_dir().join("logs"), TOOL_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
    assert_eq!(
        ran.stdout.trim(),
        format!("subject={CLIENT_SUBJECT}"),
        "{}",
        ran.output()
    );
    let listener = Listener {
        cafile: Some(pki.ca.clone()),
        require_certificate: true,
        use_subject_as_username: true,
        ..pki.listener()
    };
    let (_broker, _plain, tls) = start(listener, 10);
    let mut args = tls_args(tls, &pki.ca, "tls-subject");
    args.extend(s(&[
        "--cert",
        path(&pki.client_cert),
        "--key",
        path(&pki.client_key),
    ]));
    let ran = publish(&args, &[]);
    assert!(ran.status.success(), "{}", ran.output());
    let line = logged(&["as tls-subject (p2"], Duration::from_secs(3)).unwrap();
    assert!(line.contains(&format!("u'{CLIENT_SUBJECT}'")), "{line}");
}

/// `openssl s_client` limited to one TLS version (`-tls1_2`, `-tls1_3`) against `addr`, trusting
/// `ca`: whether the handshake succeeded. (`mosquitto_pub --tls-version tlsv1.2` cannot be the
/// 1.2 client: libmosquitto takes it as the oldest version, and negotiates 1.3 with a 1.3 server.)
fn s_client(addr: SocketAddr, ca: &Path, version: &str) -> bool {
    let mut cmd = Command::new("openssl");
    cmd.args([
        "s_client",
        version,
        "-brief",
        "-verify_return_error",
        "-connect",
    ])
    .arg(addr.to_string())
    .arg("-CAfile")
    .arg(ca);
    let ran = run_bounded(cmd, &tools_dir().join("logs"), TOOL_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): apt-get install openssl"));
    eprintln!("openssl s_client {version}: {}", ran.output());
    ran.status.success()
}

#[test]
fn tls13_only_listener_refuses_a_tls12_client() {
    let pki = Pki::new();
    let listener = Listener {
        tls_version: Some("tlsv1.3".into()),
        ..pki.listener()
    };
    let (_broker, plain, tls) = start(listener, 10);
    assert!(!s_client(tls, &pki.ca, "-tls1_2"), "TLS 1.2 is refused");
    assert!(
        logged(
            &["TLS handshake failed: peer is incompatible", ", closing."],
            Duration::from_secs(3)
        )
        .is_some()
    );
    assert!(s_client(tls, &pki.ca, "-tls1_3"), "TLS 1.3 is accepted");
    let ran = publish(
        &tls_args(tls, &pki.ca, "tls13-client"),
        &["--tls-version", "tlsv1.3"],
    );
    assert!(ran.status.success(), "{}", ran.output());
    common::broker_still_works(plain);
    // The default (tlsv1.2) listener takes both.
    let (_broker, _plain, tls) = start(pki.listener(), 10);
    assert!(s_client(tls, &pki.ca, "-tls1_2"), "TLS 1.2 by default");
    assert!(s_client(tls, &pki.ca, "-tls1_3"), "TLS 1.3 by default");
}

/// Whether the broker closes `stream` within `wait` (EOF or reset), discarding what it sends.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn hostile_clients_on_a_tls_port_close_only_their_connection() {
    let pki = Pki::new();
    let (_broker, plain, tls) = start(pki.listener(), 2);
    let connect = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd".as_slice();
    let get = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".as_slice();
    let garbage = b"\x16\x03\x01\x00\x05\xff\xff\xff\xff\xff garbage".as_slice();
    for (what, bytes) in [("garbage", garbage), ("CONNECT", connect), ("GET", get)] {
        let mut s = TcpStream::connect(tls).unwrap();
        let port = s.local_addr().unwrap().port();
        s.write_all(bytes).unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(5)),
            "{what} on the TLS port closes the connection"
        );
        let line = logged(
            &[
                &format!("Client 127.0.0.1:{port} TLS handshake failed: "),
                ", closing.",
            ],
            Duration::from_secs(3),
        );
        assert!(line.is_some(), "{what}: the failure is logged");
        common::broker_still_works(plain);
    }
    // A client that never starts the handshake is cut at connect_timeout (2 s).
    let started = Instant::now();
    let mut silent = TcpStream::connect(tls).unwrap();
    let port = silent.local_addr().unwrap().port();
    common::broker_still_works(plain);
    assert!(closed_within(&mut silent, Duration::from_secs(6)));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let line = logged(
        &[&format!(
            "Client 127.0.0.1:{port} TLS handshake failed: not done within connect_timeout"
        )],
        Duration::from_secs(3),
    );
    assert!(line.is_some());
    // TLS still works.
    let ran = publish(&tls_args(tls, &pki.ca, "tls-after-hostile"), &[]);
    assert!(ran.status.success(), "{}", ran.output());
}

/// Connections still in their TLS handshake count for `max_connections`: with two silent ones
/// on the TLS port and a limit of two, a third connection — TLS or plain — is refused at once,
/// and once the silent ones are cut at `connect_timeout` clients get in again.
#[test]
fn connections_in_their_handshake_count_for_max_connections() {
    let pki = Pki::new();
    capture_logs();
    let broker = common::start(|c| {
        c.listener = vec![plain_listener(), pki.listener()];
        c.connect_timeout = 2;
        c.max_connections = 2;
    });
    let addrs = broker.local_addrs().to_vec();
    let (plain, tls) = (addrs[0], addrs[1]);
    let mut silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(tls).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    for (what, addr) in [("TLS", tls), ("plain", plain)] {
        let mut third = TcpStream::connect(addr).unwrap();
        let port = third.local_addr().unwrap().port();
        assert!(
            closed_within(&mut third, Duration::from_secs(1)),
            "a third ({what}) connection is refused while two handshake"
        );
        let line = logged(
            &[&format!(
                "Client connection from 127.0.0.1:{port} denied: max_connections exceeded."
            )],
            Duration::from_secs(3),
        );
        assert!(line.is_some(), "{what}: the refusal is logged");
    }
    for s in &mut silent {
        assert!(
            closed_within(s, Duration::from_secs(6)),
            "cut at connect_timeout"
        );
    }
    common::broker_still_works(plain);
    let ran = publish(&tls_args(tls, &pki.ca, "tls-after-the-limit"), &[]);
    assert!(ran.status.success(), "{}", ran.output());
}

#[test]
fn reload_tls_puts_new_certificates_in_force_and_keeps_them_on_a_bad_file() {
    let pki = Pki::new();
    let live_cert = pki.dir.join("live.pem");
    let live_key = pki.dir.join("live.key");
    std::fs::copy(&pki.server_cert, &live_cert).unwrap();
    std::fs::copy(&pki.server_key, &live_key).unwrap();
    let listener = Listener {
        certfile: Some(live_cert.clone()),
        keyfile: Some(live_key.clone()),
        ..pki.listener()
    };
    let (broker, _plain, tls) = start(listener, 10);
    assert!(
        publish(&tls_args(tls, &pki.ca, "before-reload"), &[])
            .status
            .success()
    );
    // A certificate from the other CA.
    std::fs::copy(&pki.rogue_server_cert, &live_cert).unwrap();
    std::fs::copy(&pki.rogue_server_key, &live_key).unwrap();
    assert_eq!(broker.reload_tls().unwrap(), 1);
    assert!(
        !publish(&tls_args(tls, &pki.ca, "old-ca"), &[])
            .status
            .success()
    );
    assert!(
        publish(&tls_args(tls, &pki.rogue_ca, "new-ca"), &[])
            .status
            .success()
    );
    // A bad key file: the reload fails naming it, and the certificate in force stays.
    std::fs::write(&live_key, "not a key").unwrap();
    let e = broker.reload_tls().unwrap_err().to_string();
    assert!(e.contains(live_key.to_str().unwrap()), "{e}");
    assert!(
        publish(&tls_args(tls, &pki.rogue_ca, "kept"), &[])
            .status
            .success()
    );
}

/// A blocking TLS client of the test's own (rustls), trusting `ca`.
fn tls_client(
    addr: SocketAddr,
    ca: &Path,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    #[allow(deprecated)]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::from(addr.ip());
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

#[test]
fn a_slow_tls_subscriber_paces_its_publisher_instead_of_losing_messages() {
    // As broker.rs's plain TCP test: 20 MB of QoS 0 to a subscriber that starts reading late,
    // through a 64 KiB limit, here over TLS: the TLS session must pass the subscriber's
    // slowness back to the publisher (its outbox) rather than let messages be dropped.
    use common::{Incoming, Publication, Raw, Sent};
    use wren_codec::{ProtocolVersion, QosPid};
    let pki = Pki::new();
    capture_logs();
    let broker = common::start(|c| {
        c.listener = vec![plain_listener(), pki.listener()];
        c.max_outgoing_bytes = 64 * 1024;
    });
    let (plain, tls) = (broker.local_addrs()[0], broker.local_addrs()[1]);
    let mut sub = tls_client(tls, &pki.ca);
    sub.write_all(b"\x10\x14\x00\x04MQTT\x04\x02\x00\x3c\x00\x08tls-slow")
        .unwrap();
    sub.write_all(b"\x82\x0a\x00\x01\x00\x05flood\x00").unwrap();
    let mut incoming = Incoming::new(ProtocolVersion::V311);
    let mut next = |sub: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>| loop {
        if let Some(p) = incoming.next() {
            return Some(p);
        }
        let mut buf = [0u8; 16 * 1024];
        match sub.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => incoming.extend(&buf[..n]),
        }
    };
    assert_eq!(next(&mut sub), Some(Sent::connack(false, 0)));
    assert_eq!(next(&mut sub), Some(Sent::SubAck(1, vec![0])));
    let n: u32 = 20_000;
    let publisher = std::thread::spawn(move || {
        let (mut p, _) = Raw::connect(plain, "tls-fast", true, 60);
        for i in 0..n {
            let mut payload = vec![0u8; 1024];
            payload[..4].copy_from_slice(&i.to_be_bytes());
            p.publish("flood", &payload, QosPid::AtMostOnce, false);
        }
        p.send(&wren_codec::Packet::PingReq);
        while !matches!(
            p.recv_within(Duration::from_secs(30)),
            Some(Sent::PingResp) | None
        ) {}
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut got = Vec::new();
    while got.len() < n as usize {
        match next(&mut sub) {
            Some(Sent::Publish(Publication { payload, .. })) => {
                got.push(u32::from_be_bytes(payload[..4].try_into().unwrap()));
            }
            Some(other) => panic!("{other:?}"),
            None => break,
        }
    }
    publisher.join().unwrap();
    assert_eq!(broker.stats().publish_dropped, 0, "{:?}", broker.stats());
    assert_eq!(got.len(), n as usize);
    assert!(got.iter().copied().eq(0..n), "in order");
}

/// The packets `client` receives, read as 3.1.1, one at a time (`None` once it is closed).
fn tls_packets(
    client: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    incoming: &mut common::Incoming,
) -> Option<common::Sent> {
    loop {
        if let Some(p) = incoming.next() {
            return Some(p);
        }
        let mut buf = [0u8; 16 * 1024];
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return None,
            Ok(n) => incoming.extend(&buf[..n]),
        }
    }
}

#[test]
fn packets_split_across_tls_records_and_records_split_across_reads_reassemble() {
    // The connection task decrypts what each socket read brings: a record cut in two by the
    // reads gives no plaintext until its second half comes, and a packet cut over records is
    // put together from the plaintext of several reads.
    use common::{Incoming, Publication, Sent};
    use wren_codec::ProtocolVersion;
    let pki = Pki::new();
    let (_broker, plain, tls) = start(pki.listener(), 10);
    let mut client = tls_client(tls, &pki.ca);
    client.sock.set_nodelay(true).unwrap();
    while client.conn.is_handshaking() {
        client.conn.complete_io(&mut client.sock).unwrap();
    }
    // The CONNECT one byte per record, each record written to the socket in two halves.
    let connect = b"\x10\x13\x00\x04MQTT\x04\x02\x00\x3c\x00\x07splitme";
    for byte in connect {
        client.conn.writer().write_all(&[*byte]).unwrap();
        let mut record = Vec::new();
        while client.conn.wants_write() {
            client.conn.write_tls(&mut record).unwrap();
        }
        let (first, second) = record.split_at(record.len() / 2);
        client.sock.write_all(first).unwrap();
        // (Most likely a read of its own on the broker's side; either way must work.)
        std::thread::sleep(Duration::from_millis(2));
        client.sock.write_all(second).unwrap();
    }
    // SUBSCRIBE and a PUBLISH to it in one record.
    client
        .write_all(b"\x82\x0a\x00\x01\x00\x05split\x00\x30\x0c\x00\x05splitwhole")
        .unwrap();
    client.flush().unwrap();
    let mut incoming = Incoming::new(ProtocolVersion::V311);
    assert_eq!(
        tls_packets(&mut client, &mut incoming),
        Some(Sent::connack(false, 0))
    );
    assert_eq!(
        tls_packets(&mut client, &mut incoming),
        Some(Sent::SubAck(1, vec![0]))
    );
    match tls_packets(&mut client, &mut incoming) {
        Some(Sent::Publish(Publication { topic, payload, .. })) => {
            assert_eq!(
                (topic.as_str(), payload.as_slice()),
                ("split", &b"whole"[..])
            );
        }
        other => panic!("{other:?}"),
    }
    common::broker_still_works(plain);
}

#[test]
fn a_corrupt_record_after_the_handshake_closes_that_connection_with_a_logged_reason() {
    use common::{Incoming, Sent};
    use wren_codec::ProtocolVersion;
    let pki = Pki::new();
    let (_broker, plain, tls) = start(pki.listener(), 10);
    let mut client = tls_client(tls, &pki.ca);
    client
        .write_all(b"\x10\x13\x00\x04MQTT\x04\x02\x00\x3c\x00\x07corrupt")
        .unwrap();
    let mut incoming = Incoming::new(ProtocolVersion::V311);
    assert_eq!(
        tls_packets(&mut client, &mut incoming),
        Some(Sent::connack(false, 0))
    );
    let port = client.sock.local_addr().unwrap().port();
    // An application-data record whose authentication tag cannot match.
    let mut record = b"\x17\x03\x03\x00\x20".to_vec();
    record.extend([0x5a; 32]);
    client.sock.write_all(&record).unwrap();
    assert!(closed_within(&mut client.sock, Duration::from_secs(5)));
    let line = logged(
        &[
            &format!("Client 127.0.0.1:{port} TLS error: "),
            ", closing.",
        ],
        Duration::from_secs(3),
    );
    assert!(line.is_some(), "the failure is logged");
    common::broker_still_works(plain);
}
