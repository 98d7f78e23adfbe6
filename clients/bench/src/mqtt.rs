//! Raw MQTT 3.1.1 over TCP (or TLS) with wren-codec: connect, subscribe, read packets from a
//! buffer, and PUBLISH templates that are copied and patched instead of encoded per message.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_rustls::TlsConnector;
use futures_rustls::client::TlsStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::net::TcpStream;
use wren_codec::{
    Ack, Connect, DecodeOptions, Packet, PacketId, ProtocolVersion, Publish, QoS, QosPid, Status,
    Subscribe, Subscription, SubscriptionOptions, TopicFilter, TopicName, decode,
};

/// Every connection speaks 3.1.1: all three brokers serve it, and it has no properties to skip.
pub const VERSION: ProtocolVersion = ProtocolVersion::V311;

/// Bytes of the payload header every benchmark message carries (see [`Stamp`]).
pub const STAMP_LEN: usize = 24;

/// What a benchmark payload starts with: who sent it, which one it was and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Index of the publisher.
    pub publisher: u32,
    /// Sequence number within that publisher, from 0.
    pub seq: u64,
    /// Send time in nanoseconds since the run's time base.
    pub sent_ns: u64,
}

impl Stamp {
    /// Write the stamp into the first [`STAMP_LEN`] bytes of `payload`.
    pub fn write(&self, payload: &mut [u8]) {
        if let Some(p) = payload.get_mut(..STAMP_LEN) {
            p[0..8].copy_from_slice(&self.seq.to_le_bytes());
            p[8..12].copy_from_slice(&self.publisher.to_le_bytes());
            p[12..16].copy_from_slice(&[0; 4]);
            p[16..24].copy_from_slice(&self.sent_ns.to_le_bytes());
        }
    }

    /// Read a stamp from the front of a received payload; `None` if it is too short (not ours).
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let seq = payload.get(0..8)?.try_into().ok()?;
        let publisher = payload.get(8..12)?.try_into().ok()?;
        let sent_ns = payload.get(16..24)?.try_into().ok()?;
        Some(Stamp {
            publisher: u32::from_le_bytes(publisher),
            seq: u64::from_le_bytes(seq),
            sent_ns: u64::from_le_bytes(sent_ns),
        })
    }
}

fn proto_err(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A TLS client configuration (`--tls`).
#[derive(Clone)]
pub struct Tls(TlsConnector);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

/// A TLS client configuration trusting the CA certificates of a PEM file (`--tls`), with the
/// ring provider (TLS 1.2 and 1.3).
pub fn tls_connector(ca: &Path) -> io::Result<Tls> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| proto_err(format!("{e}")))? {
        roots
            .add(cert.map_err(|e| proto_err(format!("{e}")))?)
            .map_err(|e| proto_err(format!("{e}")))?;
    }
    #[allow(deprecated)] // rustls 0.23.48 deprecates ring for lacking post-quantum key exchange
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| proto_err(format!("{e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Tls(TlsConnector::from(Arc::new(config))))
}

/// A connection's byte stream: TCP, or TLS over it. Clones share it (one task may write while
/// another reads): the TLS session is locked for the length of one poll.
#[derive(Debug, Clone)]
pub struct Stream {
    tcp: TcpStream,
    tls: Option<Arc<Mutex<TlsStream<TcpStream>>>>,
}

impl Stream {
    /// Shut the TCP connection down (ends every task using it).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.tcp.shutdown(how)
    }
}

fn lock(t: &Mutex<TlsStream<TcpStream>>) -> std::sync::MutexGuard<'_, TlsStream<TcpStream>> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &this.tls {
            Some(t) => Pin::new(&mut *lock(t)).poll_read(cx, buf),
            None => Pin::new(&mut this.tcp).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &this.tls {
            Some(t) => Pin::new(&mut *lock(t)).poll_write(cx, buf),
            None => Pin::new(&mut this.tcp).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &this.tls {
            Some(t) => Pin::new(&mut *lock(t)).poll_flush(cx),
            None => Pin::new(&mut this.tcp).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &this.tls {
            Some(t) => Pin::new(&mut *lock(t)).poll_close(cx),
            None => Pin::new(&mut this.tcp).poll_close(cx),
        }
    }
}

/// One connection with its receive buffer (bytes read but not yet decoded stay in it).
#[derive(Debug)]
pub struct Conn {
    /// The socket (clones share it: one task may write while another reads).
    pub stream: Stream,
    /// Receive buffer.
    pub buf: Vec<u8>,
    /// How much of `buf` holds received bytes.
    pub filled: usize,
}

impl Conn {
    /// Open a TCP connection (and a TLS session over it, with `tls`: the broker's certificate
    /// must name `addr`'s IP address), send CONNECT (`clean`: a clean session, else a persistent
    /// one) and wait for a successful CONNACK.
    pub async fn connect(
        addr: SocketAddr,
        tls: Option<&Tls>,
        client_id: &str,
        keep_alive: u16,
        clean: bool,
    ) -> io::Result<Conn> {
        let tcp = TcpStream::connect(addr).await?;
        // Latency is measured per message: Nagle's algorithm would hold small packets back.
        tcp.set_nodelay(true)?;
        let tls = match tls {
            None => None,
            Some(Tls(connector)) => {
                let name = ServerName::from(addr.ip());
                let session = connector.connect(name, tcp.clone()).await?;
                Some(Arc::new(Mutex::new(session)))
            }
        };
        let mut conn = Conn {
            stream: Stream { tcp, tls },
            buf: vec![0; 4096],
            filled: 0,
        };
        let connect = Packet::Connect(Connect {
            protocol: VERSION,
            bridge: false,
            clean_start: clean,
            keep_alive,
            client_id,
            will: None,
            username: None,
            password: None,
            properties: wren_codec::NO_PROPERTIES,
        });
        conn.send(&connect).await?;
        conn.expect(|p| match p {
            Packet::ConnAck(c) if c.code.0 == 0 => Ok(()),
            Packet::ConnAck(c) => Err(proto_err(format!("CONNACK refused: code {}", c.code.0))),
            other => Err(proto_err(format!(
                "expected CONNACK, got {:?}",
                other.packet_type()
            ))),
        })
        .await?;
        Ok(conn)
    }

    /// Subscribe to one filter and wait for its SUBACK; an error if the broker refused it.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> io::Result<()> {
        let filter = TopicFilter::new(filter).map_err(|e| proto_err(format!("{e:?}")))?;
        let subs = [Subscription {
            filter,
            options: SubscriptionOptions::qos(qos),
        }];
        let packet = Packet::Subscribe(Subscribe {
            packet_id: PacketId::new(1).ok_or_else(|| proto_err("packet id"))?,
            properties: wren_codec::NO_PROPERTIES,
            subscriptions: wren_codec::List::new(&subs),
        });
        self.send(&packet).await?;
        self.expect(|p| match p {
            Packet::SubAck(s) => match s.reason_codes.iter().next() {
                Some(code) if code.0 <= 2 => Ok(()),
                other => Err(proto_err(format!("SUBSCRIBE refused: {other:?}"))),
            },
            other => Err(proto_err(format!(
                "expected SUBACK, got {:?}",
                other.packet_type()
            ))),
        })
        .await
    }

    /// Send PINGREQ and wait for PINGRESP.
    pub async fn ping(&mut self) -> io::Result<()> {
        self.send(&Packet::PingReq).await?;
        self.expect(|p| match p {
            Packet::PingResp => Ok(()),
            other => Err(proto_err(format!(
                "expected PINGRESP, got {:?}",
                other.packet_type()
            ))),
        })
        .await
    }

    /// Encode and send one packet.
    pub async fn send(&mut self, packet: &Packet<'_>) -> io::Result<()> {
        let mut out = vec![0; packet.encoded_len(VERSION).map_err(encode_err)?];
        let n = packet.encode(VERSION, &mut out).map_err(encode_err)?;
        self.stream.write_all(out.get(..n).unwrap_or(&out)).await
    }

    /// Read until one whole packet is buffered, hand it to `check`, and drop it from the buffer.
    async fn expect(&mut self, check: impl Fn(&Packet<'_>) -> io::Result<()>) -> io::Result<()> {
        self.next(check).await?
    }

    /// Read until one whole packet is buffered, drop it from the buffer and return what `look`
    /// made of it.
    pub async fn next<T>(&mut self, look: impl FnOnce(&Packet<'_>) -> T) -> io::Result<T> {
        loop {
            let status = decode(self.filled_bytes(), DecodeOptions::new(VERSION))
                .map_err(|e| proto_err(format!("decode: {e:?}")))?;
            match status {
                Status::Complete(d) => {
                    let seen = look(&d.packet);
                    let consumed = d.consumed;
                    self.consume(consumed);
                    return Ok(seen);
                }
                Status::Partial(_) => {
                    if self.fill().await? == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                }
            }
        }
    }

    /// The buffered, not yet decoded bytes.
    pub fn filled_bytes(&self) -> &[u8] {
        self.buf.get(..self.filled).unwrap_or(&[])
    }

    /// Drop `n` decoded bytes from the front of the buffer.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.filled);
        self.buf.copy_within(n..self.filled, 0);
        self.filled -= n;
    }

    /// Read more bytes (growing the buffer when it is full); 0 at end of stream.
    pub async fn fill(&mut self) -> io::Result<usize> {
        if self.filled == self.buf.len() {
            let len = self.buf.len().max(4096);
            self.buf.resize(len * 2, 0);
        }
        let free = self.buf.get_mut(self.filled..).unwrap_or_default();
        let n = self.stream.read(free).await?;
        self.filled += n;
        Ok(n)
    }
}

fn encode_err(e: wren_codec::EncodeError) -> io::Error {
    proto_err(format!("encode: {e:?}"))
}

/// A PUBLISH encoded once; each message is a copy with its stamp (and packet id) patched in.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Vec<u8>,
    payload_at: usize,
    /// Where the packet identifier sits, for QoS 1.
    pid_at: Option<usize>,
}

impl Template {
    /// Encode a PUBLISH on `topic` with a `payload_len`-byte payload (at least [`STAMP_LEN`]).
    pub fn new(topic: &str, qos: QoS, payload_len: usize) -> io::Result<Template> {
        let payload = vec![b'x'; payload_len.max(STAMP_LEN)];
        let topic = TopicName::new(topic).map_err(|e| proto_err(format!("topic: {e:?}")))?;
        let qos_pid = QosPid::new(qos, PacketId::new(1).ok_or_else(|| proto_err("pid"))?);
        let packet = Packet::Publish(Publish {
            dup: false,
            qos_pid,
            retain: false,
            topic,
            properties: wren_codec::NO_PROPERTIES,
            payload: &payload,
        });
        let mut bytes = vec![0; packet.encoded_len(VERSION).map_err(encode_err)?];
        let n = packet.encode(VERSION, &mut bytes).map_err(encode_err)?;
        bytes.truncate(n);
        // 3.1.1 PUBLISH: header, topic, [packet id], payload — the payload is the tail.
        let payload_at = n - payload.len();
        let pid_at = (qos != QoS::AtMostOnce).then(|| payload_at - 2);
        Ok(Template {
            bytes,
            payload_at,
            pid_at,
        })
    }

    /// Length of one encoded message.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Append one message with `stamp` (and packet id `pid` at QoS 1) to `out`.
    pub fn append(&self, out: &mut Vec<u8>, stamp: &Stamp, pid: u16) {
        let start = out.len();
        out.extend_from_slice(&self.bytes);
        if let Some(payload) = out.get_mut(start + self.payload_at..) {
            stamp.write(payload);
        }
        if let Some(at) = self.pid_at
            && let Some(slot) = out.get_mut(start + at..start + at + 2)
        {
            slot.copy_from_slice(&pid.to_be_bytes());
        }
    }
}

/// Encode a PUBACK for `pid` into `out`.
pub fn append_puback(out: &mut Vec<u8>, pid: PacketId) {
    let mut buf = [0u8; 4];
    if let Ok(n) = Packet::PubAck(Ack::new(pid)).encode(VERSION, &mut buf) {
        out.extend_from_slice(buf.get(..n).unwrap_or(&buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_messages_decode_with_their_stamp_and_packet_id() {
        let t = Template::new("bench/7", QoS::AtLeastOnce, 40).unwrap();
        let mut out = Vec::new();
        let stamp = Stamp {
            publisher: 7,
            seq: 123_456,
            sent_ns: 987_654_321,
        };
        t.append(&mut out, &stamp, 513);
        t.append(
            &mut out,
            &Stamp {
                seq: 123_457,
                ..stamp
            },
            514,
        );
        assert_eq!(out.len(), 2 * t.len());
        let opts = DecodeOptions::new(VERSION);
        let Ok(Status::Complete(d)) = decode(&out, opts) else {
            panic!("first message did not decode");
        };
        let Packet::Publish(p) = d.packet else {
            panic!("not a PUBLISH")
        };
        assert_eq!(p.topic.as_str(), "bench/7");
        assert_eq!(p.payload.len(), 40);
        assert_eq!(p.qos_pid.packet_id().map(|id| id.get()), Some(513));
        assert_eq!(Stamp::read(p.payload), Some(stamp));
        let Ok(Status::Complete(d2)) = decode(&out[d.consumed..], opts) else {
            panic!("second message did not decode");
        };
        let Packet::Publish(p2) = d2.packet else {
            panic!("not a PUBLISH")
        };
        assert_eq!(p2.qos_pid.packet_id().map(|id| id.get()), Some(514));
        assert_eq!(Stamp::read(p2.payload).map(|s| s.seq), Some(123_457));
    }

    #[test]
    fn qos0_template_has_no_packet_id_and_short_payloads_are_not_stamps() {
        let t = Template::new("bench/fanout", QoS::AtMostOnce, 0).unwrap();
        // Payload is padded to the stamp's length; 2 + 1 + 2 + 12 + 24 bytes.
        assert_eq!(t.len(), 2 + 2 + "bench/fanout".len() + STAMP_LEN);
        assert_eq!(Stamp::read(&[0u8; STAMP_LEN - 1]), None);
    }

    #[test]
    fn puback_encodes_as_four_bytes() {
        let mut out = Vec::new();
        append_puback(&mut out, PacketId::new(0x0102).unwrap());
        assert_eq!(out, [0x40, 0x02, 0x01, 0x02]);
    }
}
