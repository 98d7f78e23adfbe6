//! Shared helpers for the integration tests: an in-process broker on an ephemeral loopback
//! port, a `rumqttc` client wrapper, and a raw TCP client speaking through `wren-codec`, whose
//! answers the core's test harness decodes (`wren_broker::testing`).
#![allow(dead_code)]

pub mod certs;
pub mod flood;
pub mod nats;
pub mod process;
pub mod tools;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use wren_broker::testing::decode_sent;
pub use wren_broker::testing::{Publication, Sent};
use wren_broker::{Config, Server, ServerHandle};
use wren_codec::{
    Ack, Connect, Packet, PacketId, ProtocolVersion, Publish, QoS, QosPid, Subscribe, Subscription,
    SubscriptionOptions, TopicFilter, TopicName, Will, properties::NO_PROPERTIES,
};

pub const WAIT: Duration = Duration::from_secs(3);

/// A directory of its own under the system's temporary directory (`wren-<name>-<pid>-<n>`),
/// removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("wren-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Write `text` to `name` in the directory (making the folders on its way).
    pub fn write(&self, name: &str, text: &str) -> std::path::PathBuf {
        let path = self.0.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on now (the listener that found it is closed at once), for
/// a process that cannot listen on port 0 or must come back on the same port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port()
}
pub const QUIET: Duration = Duration::from_millis(300);

/// Start a broker on 127.0.0.1:0 with `tweak` applied to the test configuration.
pub fn start(tweak: impl FnOnce(&mut Config)) -> ServerHandle {
    let mut config = Config::for_tests();
    config.sys_interval = 0;
    tweak(&mut config);
    Server::bind(config).unwrap().start().unwrap()
}

// ---------------------------------------------------------------------------------------------
// rumqttc
// ---------------------------------------------------------------------------------------------

pub struct Mq {
    pub client: rumqttc::Client,
    pub rx: Receiver<rumqttc::Packet>,
}

impl Mq {
    /// Connect and wait for the CONNACK; returns the client and its session-present flag.
    pub fn connect(addr: SocketAddr, id: &str, clean: bool) -> (Mq, bool) {
        Self::connect_with(addr, id, clean, None)
    }

    pub fn connect_with(
        addr: SocketAddr,
        id: &str,
        clean: bool,
        will: Option<rumqttc::LastWill>,
    ) -> (Mq, bool) {
        let mut opts = rumqttc::MqttOptions::new(id, addr.ip().to_string(), addr.port());
        opts.set_clean_session(clean);
        opts.set_keep_alive(Duration::from_secs(30));
        if let Some(w) = will {
            opts.set_last_will(w);
        }
        let (client, mut connection) = rumqttc::Client::new(opts, 100);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Incoming(p)) => {
                        if tx.send(p).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                    // No automatic reconnection: a test reconnects explicitly.
                    Err(_) => break,
                }
            }
        });
        let mq = Mq { client, rx };
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match mq.rx.recv_timeout(left) {
                Ok(rumqttc::Packet::ConnAck(ack)) => {
                    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
                    return (mq, ack.session_present);
                }
                Ok(_) => {}
                Err(e) => panic!("no CONNACK for {id}: {e:?}"),
            }
        }
    }

    /// Subscribe and wait for the SUBACK.
    pub fn subscribe(&self, filter: &str, qos: rumqttc::QoS) {
        self.client.subscribe(filter, qos).unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(rumqttc::Packet::SubAck(_)) => return,
                Ok(_) => {}
                Err(e) => panic!("no SUBACK for {filter}: {e:?}"),
            }
        }
    }

    pub fn publish(&self, topic: &str, qos: rumqttc::QoS, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .unwrap();
    }

    /// The next PUBLISH within `timeout`.
    pub fn next_publish_within(&self, timeout: Duration) -> Option<rumqttc::Publish> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(rumqttc::Packet::Publish(p)) => return Some(p),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    pub fn next_publish(&self) -> rumqttc::Publish {
        self.next_publish_within(WAIT).expect("a PUBLISH")
    }

    pub fn disconnect(self) {
        let _ = self.client.disconnect();
        // Give the DISCONNECT time to leave before the event loop thread is dropped.
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Raw TCP + wren-codec
// ---------------------------------------------------------------------------------------------

/// The bytes read from the broker, decoded in `version` by the harness as packets complete.
pub struct Incoming {
    version: ProtocolVersion,
    buf: Vec<u8>,
    packets: VecDeque<Sent>,
}

impl Incoming {
    pub fn new(version: ProtocolVersion) -> Incoming {
        Incoming {
            version,
            buf: Vec::new(),
            packets: VecDeque::new(),
        }
    }

    /// Bytes read from the socket.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        let packets = decode_sent(&self.buf, self.version)
            .unwrap_or_else(|e| panic!("broker sent bad bytes ({:?}): {e}", self.version));
        let used: usize = packets.iter().map(|(_, len)| len).sum();
        self.buf.drain(..used);
        self.packets.extend(packets.into_iter().map(|(p, _)| p));
    }

    /// The next complete packet.
    pub fn next(&mut self) -> Option<Sent> {
        self.packets.pop_front()
    }
}

pub struct Raw {
    pub stream: TcpStream,
    incoming: Incoming,
    /// How packets are encoded and decoded (3.1.1 unless [`Raw::v5`]).
    version: ProtocolVersion,
}

pub fn pid(v: u16) -> PacketId {
    PacketId::new(v).unwrap()
}

impl Raw {
    pub fn tcp(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw {
            stream,
            incoming: Incoming::new(ProtocolVersion::V311),
            version: ProtocolVersion::V311,
        }
    }

    /// The same connection speaking 5.0 from now on (send a 5.0 CONNECT with [`Raw::send`]).
    pub fn v5(mut self) -> Raw {
        self.version = ProtocolVersion::V5;
        self.incoming = Incoming::new(ProtocolVersion::V5);
        self
    }

    pub fn connect(addr: SocketAddr, id: &str, clean: bool, keep_alive: u16) -> (Raw, Sent) {
        Self::connect_with(addr, id, clean, keep_alive, None)
    }

    pub fn connect_with(
        addr: SocketAddr,
        id: &str,
        clean: bool,
        keep_alive: u16,
        will: Option<(&str, &[u8])>,
    ) -> (Raw, Sent) {
        let mut raw = Raw::tcp(addr);
        raw.send(&Packet::Connect(Connect {
            protocol: ProtocolVersion::V311,
            bridge: false,
            clean_start: clean,
            keep_alive,
            client_id: id,
            will: will.map(|(t, p)| Will {
                topic: TopicName::new(t).unwrap(),
                payload: p,
                qos: QoS::AtMostOnce,
                retain: false,
                properties: NO_PROPERTIES,
            }),
            username: None,
            password: None,
            properties: NO_PROPERTIES,
        }));
        let ack = raw.recv().expect("CONNACK");
        (raw, ack)
    }

    pub fn write(&mut self, bytes: &[u8]) {
        // The broker may already have closed the socket; tests then check for the close.
        let _ = self.stream.write_all(bytes);
    }

    pub fn send(&mut self, p: &Packet<'_>) {
        let mut buf = vec![0u8; p.encoded_len(self.version).unwrap()];
        p.encode(self.version, &mut buf).unwrap();
        self.write(&buf);
    }

    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Sent {
        let subs = [Subscription {
            filter: TopicFilter::new(filter).unwrap(),
            options: SubscriptionOptions::qos(qos),
        }];
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: pid(1),
            properties: NO_PROPERTIES,
            subscriptions: wren_codec::List::new(&subs),
        }));
        self.recv().expect("SUBACK")
    }

    pub fn publish(&mut self, topic: &str, payload: &[u8], qos_pid: QosPid, retain: bool) {
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos_pid,
            retain,
            topic: TopicName::new(topic).unwrap(),
            properties: NO_PROPERTIES,
            payload,
        }));
    }

    pub fn ack(&mut self, p: Packet<'_>) {
        self.send(&p);
    }

    pub fn puback(&mut self, id: u16) {
        self.send(&Packet::PubAck(Ack::new(pid(id))));
    }

    /// The next packet within `timeout`; `None` on timeout or close.
    pub fn recv_within(&mut self, timeout: Duration) -> Option<Sent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.incoming.next() {
                return Some(p);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.incoming.extend(&chunk[..n]),
            }
        }
    }

    pub fn recv(&mut self) -> Option<Sent> {
        self.recv_within(WAIT)
    }

    /// Whether the broker closes the connection within `timeout` (packets before are skipped).
    pub fn closed_within(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
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

    pub fn is_closed(&mut self) -> bool {
        self.closed_within(WAIT)
    }
}

/// A raw MQTT 3.1.1 CONNECT without a user name (clean session, keep-alive 60 s, client id
/// `id`) to 127.0.0.1:`port`: the CONNACK's four bytes (`20 02 00 00` when accepted).
pub fn connack(port: u16, id: &str) -> [u8; 4] {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    tcp.set_write_timeout(Some(WAIT)).unwrap();
    let mut connect = vec![
        0x10,
        (12 + id.len()) as u8,
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        4,
        0x02,
    ];
    connect.extend_from_slice(&[0, 60, 0, id.len() as u8]);
    connect.extend_from_slice(id.as_bytes());
    tcp.write_all(&connect).unwrap();
    let mut answer = [0u8; 4];
    tcp.read_exact(&mut answer)
        .unwrap_or_else(|e| panic!("no CONNACK on port {port} for {id}: {e}"));
    answer
}

/// A client that proves the broker still serves others: connect, subscribe, publish, receive.
pub fn broker_still_works(addr: SocketAddr) {
    let (mut c, ack) = Raw::connect(addr, "bystander-check", true, 30);
    assert_eq!(ack, Sent::connack(false, 0));
    assert_eq!(
        c.subscribe("still/works", QoS::AtMostOnce),
        Sent::SubAck(1, vec![0])
    );
    c.publish("still/works", b"yes", QosPid::AtMostOnce, false);
    assert!(
        matches!(c.recv(), Some(Sent::Publish(Publication { payload, .. })) if payload == b"yes")
    );
}

/// An independent client's test script against a fresh broker: runs `program script PORT` in
/// `dir` (relative to the crate; killed after five minutes) and checks that it exits 0 and
/// printed `expect` (its count of passed checks, so a script that silently ran fewer fails).
/// `program` comes from [`tools`], which installs the client first if it must, or fails saying
/// what to install: a test never passes by skipping.
pub fn run_client_script(program: &std::path::Path, dir: &str, script: &str, expect: &str) {
    use std::process::Command;
    let dir = client_dir(dir);
    let broker = start(|_| {});
    let mut cmd = Command::new(program);
    cmd.arg(script)
        .arg(broker.local_addr().port().to_string())
        .current_dir(&dir);
    let out = tools::run_bounded(
        cmd,
        &tools::tools_dir().join("logs"),
        Duration::from_secs(300),
    )
    .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    eprintln!("{}", out.output());
    assert!(out.status.success(), "{script} failed: {}", out.stdout);
    assert!(
        out.stdout.contains(expect),
        "every check ran: {}",
        out.stdout
    );
}

/// A directory of the crate's tests (`tests/paho`, `tests/mqttjs`).
pub fn client_dir(dir: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir)
}
