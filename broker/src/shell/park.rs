//! Hibernation of quiet connections (part of the runtime shell).
//!
//! A connected client that is quiet (nothing to read, nothing to write) needs neither a task,
//! nor a registration in the async-io reactor, nor an outbox: together those cost about 500
//! bytes per connection, more than everything else an idle connection holds. A [`ParkingLot`]
//! keeps such a connection as a bare socket in an epoll set of its own (one map entry), waits
//! for all of them with one task, and gives a connection its task back ("revives" it) when its
//! socket becomes readable or closes. The core gives up the connection's outbox while it
//! hibernates ([`crate::Broker::hibernate`]); when it has something to send to it, or closes
//! it, it makes a new one and reports it (`Event::Woken` from [`crate::Broker::poll_event`]),
//! and the shell revives the connection with it. Both hand-overs happen under the broker lock, so a connection is
//! either parked here with no outbox in the core, or live with one.
//!
//! Which connections hibernate (`hibernate_after_ms`): one that has just connected or
//! subscribed (or unsubscribed), and one whose last quiet spell lasted at least that long. A
//! fleet of sensors that connect and publish now and then, or devices that connect, subscribe
//! to their command topic and wait, hold almost nothing between messages, while a connection
//! with steady traffic pays for the trip through the lot (about six system calls) at most once
//! after each SUBSCRIBE.
//!
//! Linux only (epoll); elsewhere connections keep their task while quiet.

use std::collections::HashMap;
use std::io;
use std::mem::MaybeUninit;
use std::net::TcpStream;
use std::os::fd::OwnedFd;
use std::sync::{Mutex, MutexGuard};

use rustix::event::epoll;
use smol::Async;
use wren_codec::ProtocolVersion;

use crate::core::{ConnId, IdHash};

/// A hibernating connection: what it takes to give it a task again (with the outbox the core
/// hands back).
#[derive(Debug)]
pub(crate) struct Parked {
    pub stream: TcpStream,
    pub version: ProtocolVersion,
    /// When it fell quiet (the shell's clock, ms), to tell on revival how long that lasted.
    pub since_ms: u64,
}

/// The hibernating connections and the epoll set that watches their sockets.
#[derive(Debug)]
pub(crate) struct ParkingLot {
    epoll: Async<OwnedFd>,
    parked: Mutex<HashMap<ConnId, Parked, IdHash>>,
}

impl ParkingLot {
    pub(crate) fn new() -> io::Result<ParkingLot> {
        let fd = epoll::create(epoll::CreateFlags::CLOEXEC)?;
        Ok(ParkingLot {
            epoll: Async::new(fd)?,
            parked: Mutex::new(HashMap::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ConnId, Parked, IdHash>> {
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections hibernating now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Park a connection; gives it back if its socket cannot be watched.
    pub(crate) fn park(&self, conn: ConnId, parked: Parked) -> Result<(), Parked> {
        // One-shot: the first event (bytes, EOF, error) revives it; nothing more is needed.
        let flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP | epoll::EventFlags::ONESHOT;
        let data = epoll::EventData::new_u64(conn.0);
        if epoll::add(&self.epoll, &parked.stream, data, flags).is_err() {
            return Err(parked);
        }
        self.lock().insert(conn, parked);
        Ok(())
    }

    /// Take a connection out of the lot (no longer watched); `None` if it is not here (already
    /// revived: connection ids are never reused, so a stale event finds nothing).
    pub(crate) fn unpark(&self, conn: ConnId) -> Option<Parked> {
        let parked = self.lock().remove(&conn)?;
        let _ = epoll::delete(&self.epoll, &parked.stream);
        Some(parked)
    }

    /// Wait until some parked socket has an event.
    pub(crate) async fn readable(&self) {
        let _ = self.epoll.readable().await;
    }

    /// The connections whose sockets have an event now (without waiting), appended to `out`.
    pub(crate) fn ready(&self, out: &mut Vec<ConnId>) {
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut buf = [MaybeUninit::<epoll::Event>::uninit(); 128];
        loop {
            let Ok((events, _)) = epoll::wait(&self.epoll, &mut buf, Some(&zero)) else {
                return;
            };
            let full = events.len() == 128;
            out.extend(events.iter().map(|e| ConnId(e.data.u64())));
            if !full {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;
    use std::time::Duration;

    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    fn parked(stream: TcpStream) -> Parked {
        Parked {
            stream,
            version: ProtocolVersion::V311,
            since_ms: 0,
        }
    }

    /// The ids with events, waiting up to `wait` for the first.
    fn ready(lot: &ParkingLot, wait: Duration) -> Vec<u64> {
        smol::block_on(smol::future::or(lot.readable(), async {
            smol::Timer::after(wait).await;
        }));
        let mut out = Vec::new();
        lot.ready(&mut out);
        out.iter().map(|c| c.0).collect()
    }

    #[test]
    fn bytes_and_hang_up_report_the_right_connection() {
        let lot = ParkingLot::new().unwrap();
        let (mut peer1, s1) = pair();
        let (peer2, s2) = pair();
        let (_peer3, s3) = pair();
        lot.park(ConnId(1), parked(s1)).unwrap();
        lot.park(ConnId(2), parked(s2)).unwrap();
        lot.park(ConnId(3), parked(s3)).unwrap();
        assert_eq!(lot.len(), 3);
        assert_eq!(ready(&lot, Duration::from_millis(100)), Vec::<u64>::new());
        peer1.write_all(b"\xc0\x00").unwrap();
        assert_eq!(
            ready(&lot, Duration::from_secs(5)),
            [1],
            "bytes on the socket"
        );
        // One-shot: no second report for the same socket until it is parked again.
        assert_eq!(ready(&lot, Duration::from_millis(100)), Vec::<u64>::new());
        assert!(lot.unpark(ConnId(1)).is_some());
        assert!(lot.unpark(ConnId(1)).is_none(), "gone once taken");
        drop(peer2);
        assert_eq!(ready(&lot, Duration::from_secs(5)), [2], "EOF");
        let p = lot.unpark(ConnId(3)).unwrap();
        assert_eq!(lot.len(), 1);
        // A socket taken out is no longer watched; parked again, it is.
        lot.park(ConnId(4), p).unwrap();
        assert_eq!(lot.len(), 2);
    }
}
