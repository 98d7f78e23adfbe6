//! WebSocket listeners (`protocol = "websockets"`), over real sockets on 127.0.0.1:
//! - MQTT.js (`tests/mqttjs/ws.js`, installed as for `mqttjs.rs`) over `ws://` on several paths
//!   with 3.1 (subprotocol `mqttv3.1`), 3.1.1 and 5.0, and over `wss://` trusting the test CA;
//! - Paho Python with `transport="websockets"` (`tests/paho/ws.py`), `ws://` and `wss://`;
//! - raw frames written by the test: an MQTT packet split over two frames and over a fragmented
//!   message, two packets in one frame, a ping answered with a pong, a Close answered with a
//!   Close, a text frame and an oversize frame closing the connection (1003, 1009), an HTTP
//!   request without upgrade answered 426, an unknown subprotocol 400, a silent client cut at
//!   `connect_timeout`; a plain listener serves others throughout.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::certs::{Pki, capture_logs, logged, plain_listener};
use common::{Incoming, Sent};
use wren_broker::{Listener, Protocol, ServerHandle};
use wren_codec::ProtocolVersion;

const WAIT: Duration = Duration::from_secs(5);
/// RFC 6455 §1.3's example key, and the accept value it must get.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

const CONNECT: &[u8] = b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04wsid";

/// A broker with a plain listener, a WebSocket one and (with `pki`) a WebSocket-over-TLS one:
/// returns the handle and their addresses in that order.
fn start(
    pki: Option<&Pki>,
    tweak: impl FnOnce(&mut wren_broker::Config),
) -> (ServerHandle, Vec<SocketAddr>) {
    capture_logs();
    let ws = Listener {
        protocol: Protocol::Websockets,
        ..plain_listener()
    };
    let mut listeners = vec![plain_listener(), ws];
    if let Some(pki) = pki {
        listeners.push(Listener {
            protocol: Protocol::Websockets,
            ..pki.listener()
        });
    }
    let broker = common::start(|c| {
        c.listener = listeners;
        tweak(c);
    });
    let addrs = broker.local_addrs().to_vec();
    (broker, addrs)
}

/// A frame: FIN, opcode, payload.
type Frame = (bool, u8, Vec<u8>);

/// A WebSocket client written for the test: masked frames out, frames in.
struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// Send `request` and read the response head; returns it and the stream.
fn http(addr: SocketAddr, request: &str) -> (String, TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let rest = buf[end + 4..].to_vec();
            return (head, stream, rest);
        }
        let n = stream.read(&mut chunk).expect("an HTTP response");
        assert!(n > 0, "closed without a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn upgrade_request(path: &str, protocols: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{protocols}\r\n"
    )
}

impl Ws {
    fn open(addr: SocketAddr, path: &str) -> Ws {
        let (head, stream, buf) = http(
            addr,
            &upgrade_request(path, "Sec-WebSocket-Protocol: mqtt\r\n"),
        );
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
            "{head}"
        );
        assert!(head.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{head}");
        Ws { stream, buf }
    }

    fn send(&mut self, fin: bool, opcode: u8, payload: &[u8]) {
        let mut frame = vec![(u8::from(fin) << 7) | opcode];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        let _ = self.stream.write_all(&frame);
    }

    fn binary(&mut self, payload: &[u8]) {
        self.send(true, 2, payload);
    }

    /// The next frame (FIN, opcode, payload); `None` on EOF or time-out.
    fn frame(&mut self) -> Option<Frame> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The MQTT packets of the next binary frames, until `count` are decoded.
    fn packets(&mut self, count: usize) -> Vec<Sent> {
        let mut incoming = Incoming::new(ProtocolVersion::V311);
        let mut out = Vec::new();
        while out.len() < count {
            let (_, opcode, payload) = self.frame().expect("a frame");
            assert_eq!(opcode, 2, "MQTT goes in binary frames");
            incoming.extend(&payload);
            while let Some(p) = incoming.next() {
                out.push(p);
            }
        }
        out
    }

    /// Whether the TCP connection is closed (EOF) within [`WAIT`], frames discarded.
    fn closed(&mut self) -> bool {
        while self.frame().is_some() {}
        let mut b = [0u8; 1];
        self.stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
            && !matches!(self.stream.read(&mut b), Ok(n) if n > 0)
    }
}

/// One server frame at the front of `buf` (unmasked, as a server sends): the frame and the bytes
/// it takes.
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    assert_eq!(b1 & 0x80, 0, "server frames are not masked");
    let (len, at) = match b1 & 0x7f {
        126 => (
            u16::from_be_bytes(buf.get(2..4)?.try_into().unwrap()) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let payload = buf.get(at..at + len)?.to_vec();
    Some(((b0 & 0x80 != 0, b0 & 0x0f, payload), at + len))
}

/// A Close frame's status code.
fn close_code(payload: &[u8]) -> u16 {
    u16::from_be_bytes([payload[0], payload[1]])
}

#[test]
fn mqtt_bytes_however_they_are_split_over_frames() {
    let (_broker, addrs) = start(None, |_| {});
    let mut ws = Ws::open(addrs[1], "/mqtt");
    // A CONNECT split over two frames.
    ws.binary(&CONNECT[..5]);
    ws.binary(&CONNECT[5..]);
    assert_eq!(ws.packets(1), [Sent::connack(false, 0)]);
    // SUBSCRIBE and a PUBLISH to it in one frame.
    let subscribe = b"\x82\x08\x00\x01\x00\x03a/b\x00";
    let publish = b"\x30\x07\x00\x03a/bhi";
    ws.binary(&[subscribe.as_slice(), publish.as_slice()].concat());
    let got = ws.packets(2);
    assert_eq!(got[0], Sent::SubAck(1, vec![0]));
    assert!(
        matches!(&got[1], Sent::Publish(p) if p.payload == b"hi"),
        "{got:?}"
    );
    // A PINGREQ split over a fragmented message (binary + continuation).
    ws.send(false, 2, b"\xc0");
    ws.send(true, 0, b"\x00");
    assert_eq!(ws.packets(1), [Sent::PingResp]);
    // Another path, another client.
    let mut other = Ws::open(addrs[1], "/");
    other.binary(
        &CONNECT
            .iter()
            .map(|&b| if b == b'w' { b'x' } else { b })
            .collect::<Vec<_>>(),
    );
    assert_eq!(other.packets(1), [Sent::connack(false, 0)]);
    common::broker_still_works(addrs[0]);
}

#[test]
fn control_frames_text_frames_and_oversize_frames() {
    let (_broker, addrs) = start(None, |c| c.max_packet_size = 1024);
    let opened = || {
        let mut ws = Ws::open(addrs[1], "/mqtt");
        ws.binary(CONNECT);
        assert_eq!(ws.packets(1), [Sent::connack(false, 0)]);
        ws
    };
    // Ping → pong with the same payload.
    let mut ws = opened();
    ws.send(true, 9, b"are you there");
    assert_eq!(ws.frame(), Some((true, 10, b"are you there".to_vec())));
    // Close → Close, then the connection ends.
    ws.send(true, 8, &1000u16.to_be_bytes());
    let (_, opcode, payload) = ws.frame().expect("a Close back");
    assert_eq!(opcode, 8);
    assert_eq!(close_code(&payload), 1000);
    assert!(ws.closed());
    // A text frame: Close 1003 (MQTT goes in binary frames), then the end.
    let mut ws = opened();
    ws.send(true, 1, b"\x10\x00");
    let (_, opcode, payload) = ws.frame().expect("a Close");
    assert_eq!((opcode, close_code(&payload)), (8, 1003));
    assert!(ws.closed());
    assert!(logged(&["sent a WebSocket text frame", "closing."], WAIT).is_some());
    // A frame larger than max_packet_size: Close 1009, then the end.
    let mut ws = opened();
    ws.binary(&vec![0u8; 4096]);
    let (_, opcode, payload) = ws.frame().expect("a Close");
    assert_eq!((opcode, close_code(&payload)), (8, 1009));
    assert!(ws.closed());
    common::broker_still_works(addrs[0]);
    // Still served on the WebSocket listener.
    let _ = opened();
}

#[test]
fn http_requests_that_are_no_mqtt_upgrade_get_an_error_status() {
    let (_broker, addrs) = start(None, |c| c.connect_timeout = 2);
    let (head, mut s, _) = http(addrs[1], "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 426 "), "{head}");
    assert!(matches!(s.read(&mut [0u8; 256]), Ok(_) | Err(_)));
    let (head, _, _) = http(
        addrs[1],
        &upgrade_request("/mqtt", "Sec-WebSocket-Protocol: chat, superchat\r\n"),
    );
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    let (head, _, _) = http(addrs[1], "garbage\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
    // The older subprotocol name.
    let (head, _, _) = http(
        addrs[1],
        &upgrade_request("/mqtt", "Sec-WebSocket-Protocol: mqttv3.1\r\n"),
    );
    assert!(
        head.contains("Sec-WebSocket-Protocol: mqttv3.1\r\n"),
        "{head}"
    );
    // A client that sends no request is cut at connect_timeout (2 s).
    let started = Instant::now();
    let mut silent = TcpStream::connect(addrs[1]).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(6)))
        .unwrap();
    assert!(matches!(silent.read(&mut [0u8; 16]), Ok(0)));
    assert!(started.elapsed() >= Duration::from_millis(1500));
    assert!(
        logged(
            &["WebSocket handshake failed: not done within connect_timeout"],
            WAIT
        )
        .is_some()
    );
    common::broker_still_works(addrs[0]);
}

/// Run `program script ARGS` in `dir`, expecting `expect` (its count of passed checks).
fn run_script(program: &std::path::Path, dir: &str, script: &str, args: &[String], expect: &str) {
    let mut cmd = Command::new(program);
    cmd.arg(script)
        .args(args)
        .current_dir(common::client_dir(dir));
    let out = common::tools::run_bounded(
        cmd,
        &common::tools::tools_dir().join("logs"),
        Duration::from_secs(120),
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

fn client_args(addrs: &[SocketAddr], pki: &Pki) -> Vec<String> {
    vec![
        addrs[1].port().to_string(),
        addrs[2].port().to_string(),
        pki.ca.to_str().unwrap().to_string(),
    ]
}

#[test]
fn mqttjs_over_ws_and_wss() {
    let node = common::tools::mqttjs_node(&common::client_dir("tests/mqttjs"));
    let pki = Pki::new();
    let (_broker, addrs) = start(Some(&pki), |_| {});
    run_script(
        &node,
        "tests/mqttjs",
        "ws.js",
        &client_args(&addrs, &pki),
        "8 passed, 0 failed",
    );
}

#[test]
fn paho_over_ws_and_wss() {
    let python = common::tools::paho_python();
    let pki = Pki::new();
    let (_broker, addrs) = start(Some(&pki), |_| {});
    run_script(
        &python,
        "tests/paho",
        "ws.py",
        &client_args(&addrs, &pki),
        "6 passed, 0 failed",
    );
}
