//! `embedded-io` over a `TcpStream`, for the firmware client's tests on the host.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write};

/// `embedded-io` over a blocking `TcpStream`; `read_ready` peeks in non-blocking mode. It
/// records the first byte of every write (one packet per `write_all`), and can swallow writes
/// to simulate a link that died silently.
pub struct Tcp {
    pub stream: TcpStream,
    pub swallow_writes: bool,
    pub sent: Vec<u8>,
}

impl Tcp {
    pub fn connect(port: u16) -> Tcp {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        Tcp {
            stream,
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

impl ErrorType for Tcp {
    type Error = ErrorKind;
}

impl Read for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.stream.read(buf).map_err(kind)
    }
}

impl ReadReady for Tcp {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        self.stream.set_nonblocking(true).map_err(kind)?;
        let ready = match self.stream.peek(&mut [0u8; 1]) {
            Ok(_) => Ok(true), // data, or 0 at the end of the stream
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(kind(e)),
        };
        self.stream.set_nonblocking(false).map_err(kind)?;
        ready
    }
}

impl Write for Tcp {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        if let Some(&first) = buf.first() {
            self.sent.push(first);
        }
        if self.swallow_writes {
            return Ok(buf.len());
        }
        self.stream.write_all(buf).map_err(kind)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}
