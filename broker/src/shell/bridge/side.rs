//! One side of a bridge connection: a client engine ([`wren_clients::engine`]) and its byte
//! stream, driven by hand — bytes read are decoded in place, packets to send are encoded
//! straight into one output buffer written with as few system calls as the socket allows.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant as StdInstant;

use smol::io::{AsyncRead, AsyncWrite};
use wren_clients::client::{ClientEngine, ClientError, ClientOptions, Stream, handshake};
use wren_clients::engine::{self, Config, Control, Engine};
use wren_codec::{DecodeOptions, Packet, ProtocolVersion, Status, decode};

/// Bytes read at most per read.
const READ_CHUNK: usize = 64 * 1024;

/// A connected engine and its stream.
pub(super) struct Side {
    pub(super) engine: Box<ClientEngine>,
    stream: Stream,
    pub(super) version: ProtocolVersion,
    epoch: StdInstant,
    /// Bytes read and not yet decoded: `rx[rx_start..]`.
    rx: Vec<u8>,
    rx_start: usize,
    /// Bytes to write: `tx[tx_start..]`.
    tx: Vec<u8>,
    tx_start: usize,
    /// The stream needs a flush (TLS buffers what it is given).
    unflushed: bool,
    /// The peer closed its side.
    pub(super) closed: bool,
    /// Largest packet taken from the peer (checked from its fixed header, before the rest is
    /// buffered).
    pub(super) max_packet: u32,
}

impl Side {
    /// Connect over `stream` with `options` (CONNECT, CONNACK); `Ok` with whether the server
    /// had a session.
    pub(super) async fn connect(
        stream: Stream,
        options: &ClientOptions,
        epoch: StdInstant,
    ) -> Result<(Side, bool), ClientError> {
        let mut config = Config::new(options.version);
        config.connect_timeout_ms =
            u64::try_from(options.connect_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut engine: Box<ClientEngine> = Box::new(Engine::new(config));
        let (stream, rx, connected) =
            handshake(&mut engine, stream, options, epoch, &|_| {}).await?;
        Ok((
            Side {
                engine,
                stream,
                version: options.version,
                epoch,
                rx,
                rx_start: 0,
                tx: Vec::with_capacity(64 * 1024),
                tx_start: 0,
                unflushed: false,
                closed: false,
                max_packet: u32::MAX,
            },
            connected.session_present,
        ))
    }

    /// The next complete packet in `input[at..]`, with its length; `Ok(None)` when more bytes
    /// are needed.
    pub(super) fn decode_at<'a>(
        &self,
        input: &'a [u8],
        at: usize,
    ) -> Result<Option<(Packet<'a>, usize)>, String> {
        let rest = input.get(at..).unwrap_or_default();
        let options = DecodeOptions::new(self.version)
            .from_server()
            .with_max_packet_size(self.max_packet);
        match decode(rest, options) {
            Ok(Status::Complete(d)) => Ok(Some((d.packet, d.consumed))),
            Ok(Status::Partial(_)) => Ok(None),
            Err(e) => Err(format!("invalid packet: {e}")),
        }
    }

    pub(super) fn now(&self) -> engine::Instant {
        engine::Instant::from_millis(
            u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX),
        )
    }

    /// Encode `packet` at the end of the output.
    pub(super) fn send(&mut self, packet: &Packet<'_>) -> Result<(), String> {
        let len = packet
            .encoded_len(self.version)
            .map_err(|e| e.to_string())?;
        let at = self.tx.len();
        self.tx.resize(at.saturating_add(len), 0);
        let tail = self.tx.get_mut(at..).unwrap_or_default();
        packet
            .encode(self.version, tail)
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    pub(super) fn send_control(&mut self, c: Control) -> Result<(), String> {
        self.send(&c.packet())
    }

    /// The bytes read and not yet handled, taken out (so that packets decoded from them can
    /// be handled while the side is changed); give them back with [`Side::put_input`].
    pub(super) fn take_input(&mut self) -> (Vec<u8>, usize) {
        (std::mem::take(&mut self.rx), self.rx_start)
    }

    /// Give back the input, `used` bytes of it handled.
    pub(super) fn put_input(&mut self, mut rx: Vec<u8>, used: usize) {
        if used >= rx.len() {
            rx.clear();
            self.rx_start = 0;
        } else {
            self.rx_start = used;
        }
        // (Bytes read meanwhile: none, as reading happens only in the I/O wait.)
        self.rx = rx;
    }

    /// Whether output waits to be written.
    pub(super) fn has_output(&self) -> bool {
        self.tx_start < self.tx.len() || self.unflushed
    }

    /// Write what can be written now; `Err` if the stream failed.
    pub(super) fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Result<(), String> {
        while self.tx_start < self.tx.len() {
            let out = self.tx.get(self.tx_start..).unwrap_or_default();
            match Pin::new(&mut self.stream).poll_write(cx, out) {
                Poll::Ready(Ok(0)) => return Err("the connection closed".into()),
                Poll::Ready(Ok(n)) => {
                    self.tx_start = self.tx_start.saturating_add(n);
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Err(e.to_string()),
                Poll::Pending => return Ok(()),
            }
        }
        self.tx.clear();
        self.tx_start = 0;
        if self.unflushed {
            match Pin::new(&mut self.stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(e)) => return Err(e.to_string()),
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Read what has arrived; `Ok(true)` if bytes came (or the peer closed).
    pub(super) fn poll_read_in(&mut self, cx: &mut Context<'_>) -> Result<bool, String> {
        if self.closed {
            return Ok(false);
        }
        if self.rx_start > 0 {
            self.rx.drain(..self.rx_start);
            self.rx_start = 0;
        }
        let at = self.rx.len();
        self.rx.resize(at.saturating_add(READ_CHUNK), 0);
        let buf = self.rx.get_mut(at..).unwrap_or_default();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        let n = match result {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => {
                self.rx.truncate(at);
                return Err(e.to_string());
            }
            Poll::Pending => 0,
        };
        self.rx.truncate(at.saturating_add(n));
        match result {
            Poll::Ready(Ok(0)) => {
                self.closed = true;
                Ok(true)
            }
            Poll::Ready(_) => Ok(true),
            Poll::Pending => Ok(false),
        }
    }

    /// Write everything out (at the end of a connection).
    pub(super) async fn finish(&mut self) {
        let _ = smol::future::poll_fn(|cx| match self.poll_write_out(cx) {
            Err(_) => Poll::Ready(()),
            Ok(()) if !self.has_output() => Poll::Ready(()),
            Ok(()) => Poll::Pending,
        })
        .await;
    }
}
