//! `embedded-io-async` over a `TcpStream` (smol's `Async`), for the async firmware client's
//! tests on the host.

use std::net::TcpStream;

use embedded_io_async::{ErrorKind, ErrorType, Read, ReadReady, Write};
use smol::Async;
use smol::io::{AsyncReadExt, AsyncWriteExt};

/// `embedded-io-async` over a non-blocking `TcpStream`; `read_ready` peeks. Like
/// [`super::tcp::Tcp`], it records the first byte of every write and can swallow writes to
/// simulate a link that died silently.
pub struct AsyncTcp {
    pub stream: Async<TcpStream>,
    pub swallow_writes: bool,
    pub sent: Vec<u8>,
}

impl AsyncTcp {
    pub fn connect(port: u16) -> AsyncTcp {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        AsyncTcp {
            stream: Async::new(stream).unwrap(),
            swallow_writes: false,
            sent: Vec::new(),
        }
    }

    pub fn pings_sent(&self) -> usize {
        self.sent.iter().filter(|&&b| b == 0xC0).count()
    }
}

fn kind(e: std::io::Error) -> ErrorKind {
    match e.kind() {
        std::io::ErrorKind::ConnectionReset => ErrorKind::ConnectionReset,
        std::io::ErrorKind::BrokenPipe => ErrorKind::BrokenPipe,
        _ => ErrorKind::Other,
    }
}

impl ErrorType for AsyncTcp {
    type Error = ErrorKind;
}

impl Read for AsyncTcp {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.stream.read(buf).await.map_err(kind)
    }
}

impl ReadReady for AsyncTcp {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        match self.stream.get_ref().peek(&mut [0u8; 1]) {
            Ok(_) => Ok(true), // data, or 0 at the end of the stream
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(kind(e)),
        }
    }
}

impl Write for AsyncTcp {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        if let Some(&first) = buf.first() {
            self.sent.push(first);
        }
        if self.swallow_writes {
            return Ok(buf.len());
        }
        self.stream.write_all(buf).await.map_err(kind)?;
        Ok(buf.len())
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}
