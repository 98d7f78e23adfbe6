//! The byte stream under a connection task ([`Stream`]): a TCP socket, and for a TLS connection
//! the rustls session over it, driven here with non-blocking calls on the socket itself (the
//! session decrypts what one read of the socket brought, and its records are written straight to
//! the socket). A TLS connection thus has one task and one socket like a plain one, rather than a
//! pump task and a socket pair (which WebSocket connections keep, `transport.rs`).
//!
//! The plain path is one variant check away from the bare socket calls it had before: the
//! connection task reads plain sockets directly through [`Stream::tcp`].

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};

use rustls::ServerConnection;
use smol::Async;

/// A connection's socket, with its TLS session if the listener speaks TLS.
#[derive(Debug)]
pub(super) enum Stream {
    Plain(Async<TcpStream>),
    /// Boxed: the variant keeps the stream (and the connection task) as small as a bare socket.
    Tls(Box<TlsStream>),
}

#[derive(Debug)]
pub(super) struct TlsStream {
    tcp: Async<TcpStream>,
    session: ServerConnection,
}

/// What one [`Stream::receive`] brought.
pub(super) enum Received {
    /// Plaintext was appended (possibly none, when only part of a record came); `drained`: the
    /// socket read did not fill the buffer, so the socket most likely holds nothing more.
    Plaintext { drained: bool },
    /// Nothing to read now: wait for readability.
    Nothing,
    /// The peer closed (close_notify or TCP EOF), or the session failed.
    Closed,
}

impl Stream {
    pub(super) fn plain(tcp: Async<TcpStream>) -> Stream {
        Stream::Plain(tcp)
    }

    /// A TLS connection whose handshake is done (`session` may already hold the client's first
    /// records: [`Stream::receive`] hands them over before reading the socket).
    pub(super) fn tls(tcp: Async<TcpStream>, session: ServerConnection) -> Stream {
        Stream::Tls(Box::new(TlsStream { tcp, session }))
    }

    /// The socket.
    #[inline]
    pub(super) fn tcp(&self) -> &Async<TcpStream> {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.tcp,
        }
    }

    /// The socket, if the connection is plain TCP.
    pub(super) fn into_plain(self) -> Option<Async<TcpStream>> {
        match self {
            Stream::Plain(tcp) => Some(tcp),
            Stream::Tls(_) => None,
        }
    }

    pub(super) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// Whether TLS records wait to be written (always false for a plain connection).
    #[inline]
    pub(super) fn wants_write(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(tls) => tls.session.wants_write(),
        }
    }

    /// Write what the socket takes of `buf` without waiting: the number of bytes taken (for
    /// TLS, plaintext taken into the session, whose records may not all be on the socket yet:
    /// [`Stream::wants_write`]). An empty `buf` only pushes waiting records.
    #[inline]
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.get_ref().write(buf),
            Stream::Tls(tls) => send(&mut tls.session, &tls.tcp, buf),
        }
    }

    /// One non-blocking read of the TLS socket into `cipher`, decrypted onto `plain`. Only for
    /// TLS connections (a plain one reads its socket directly).
    pub(super) fn receive(&mut self, cipher: &mut [u8], plain: &mut Vec<u8>) -> Received {
        match self {
            Stream::Tls(tls) => receive(&mut tls.session, &tls.tcp, cipher, plain),
            Stream::Plain(_) => Received::Closed,
        }
    }

    /// Shut the write side: for TLS, after a close_notify (pushed as far as the socket takes it
    /// now: the records before it were all written, so it normally goes at once).
    pub(super) fn shutdown_write(&mut self) -> io::Result<()> {
        if let Stream::Tls(tls) = self {
            tls.session.send_close_notify();
            let _ = flush(&mut tls.session, &tls.tcp);
        }
        self.tcp().get_ref().shutdown(Shutdown::Write)
    }

    /// Shut both sides of the socket.
    pub(super) fn shutdown(&self) {
        let _ = self.tcp().get_ref().shutdown(Shutdown::Both);
    }
}

/// Write the session's waiting records; `WouldBlock` if the socket is full before the last.
fn flush(session: &mut ServerConnection, tcp: &Async<TcpStream>) -> io::Result<()> {
    while session.wants_write() {
        if session.write_tls(&mut tcp.get_ref())? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// Plaintext into the session once the records before it are on the socket (so a slow reader
/// holds at most one batch of records, and the connection's outbox, not the session, fills up:
/// backpressure), then as many of its records onto the socket as it takes.
fn send(session: &mut ServerConnection, tcp: &Async<TcpStream>, buf: &[u8]) -> io::Result<usize> {
    flush(session, tcp)?;
    if buf.is_empty() {
        return Ok(0);
    }
    let taken = session.writer().write(buf)?;
    match flush(session, tcp) {
        // The rest goes when the socket is writable again (`wants_write`).
        Err(e)
            if !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
            ) =>
        {
            Err(e)
        }
        _ => Ok(taken),
    }
}

fn receive(
    session: &mut ServerConnection,
    tcp: &Async<TcpStream>,
    cipher: &mut [u8],
    plain: &mut Vec<u8>,
) -> Received {
    let some_or = |plain: &Vec<u8>, none: Received, drained: bool| {
        if plain.is_empty() {
            none
        } else {
            Received::Plaintext { drained }
        }
    };
    // What the session decrypted already: records that came with the end of the handshake, or
    // after a close_notify handed over last time.
    match take_plaintext(session, plain) {
        Ok(false) => {}
        // Once the plaintext before it is handed over, the next call reports the close.
        Ok(true) | Err(_) => return some_or(plain, Received::Closed, false),
    }
    let n = match tcp.get_ref().read(cipher) {
        Ok(0) => return some_or(plain, Received::Closed, false),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return some_or(plain, Received::Nothing, true);
        }
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            return Received::Plaintext { drained: false };
        }
        Err(_) => return Received::Closed,
    };
    let drained = n < cipher.len();
    let mut rest = cipher.get(..n).unwrap_or_default();
    // The session takes a few KiB per `read_tls`; each batch is decrypted before the next (its
    // plaintext buffer has a limit).
    while !rest.is_empty() {
        match session.read_tls(&mut rest) {
            // (Not after a close_notify, which ends the loop below.)
            Ok(0) => return some_or(plain, Received::Closed, false),
            Ok(_) => {}
            Err(e) => {
                log_tls_error(tcp, &e);
                return some_or(plain, Received::Closed, false);
            }
        }
        if let Err(e) = session.process_new_packets() {
            // The alert rustls queued for the peer, if the socket takes it.
            let _ = flush(session, tcp);
            log_tls_error(tcp, &e);
            return some_or(plain, Received::Closed, false);
        }
        match take_plaintext(session, plain) {
            Ok(false) => {}
            Ok(true) | Err(_) => return some_or(plain, Received::Closed, false),
        }
    }
    Received::Plaintext { drained }
}

/// A TLS failure after the handshake, in the words of the handshake's (`transport.rs`).
fn log_tls_error(tcp: &Async<TcpStream>, e: &dyn std::fmt::Display) {
    match tcp.get_ref().peer_addr() {
        Ok(peer) => log::info!("Client {peer} TLS error: {e}, closing."),
        Err(_) => log::info!("Client TLS error: {e}, closing."),
    }
}

/// Append the session's decrypted bytes to `plain`; whether the peer has closed (close_notify).
fn take_plaintext(session: &mut ServerConnection, plain: &mut Vec<u8>) -> io::Result<bool> {
    match session.reader().read_to_end(plain) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}
