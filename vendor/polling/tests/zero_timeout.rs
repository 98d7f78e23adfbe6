//! Wren's patch (see ../../README.md): a zero-timeout wait leaves the timerfd alone, and a wait
//! re-arms the notifier only when it fired. These check that no notification and no timeout is
//! lost or invented around such waits.

use std::io;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use polling::{Event, Events, Poller};

/// A notification that lands between zero-timeout waits is seen by the next blocking wait.
#[test]
fn notify_between_zero_timeout_waits_wakes_the_next_wait() -> io::Result<()> {
    let poller = Poller::new()?;
    let mut events = Events::new();
    for round in 0..200 {
        for _ in 0..round % 7 {
            poller.wait(&mut events, Some(Duration::ZERO))?;
        }
        poller.notify()?;
        if round % 2 == 0 {
            // Sometimes a zero-timeout wait takes the notification first; the next blocking
            // wait must then time out rather than return at once on a stale one.
            poller.wait(&mut events, Some(Duration::ZERO))?;
            let start = Instant::now();
            poller.wait(&mut events, Some(Duration::from_millis(5)))?;
            assert!(start.elapsed() >= Duration::from_millis(5), "round {round}");
        } else {
            // A blocking wait without timeout returns (the test hangs otherwise).
            poller.wait(&mut events, None)?;
        }
        assert!(events.is_empty());
    }
    Ok(())
}

/// Notifications from another thread while this one spins on zero-timeout waits: the last one
/// still wakes a blocking wait.
#[test]
fn concurrent_notify_during_zero_timeout_waits() -> io::Result<()> {
    let poller = Poller::new()?;
    let mut events = Events::new();
    thread::scope(|s| -> io::Result<()> {
        let notifier = s.spawn(|| {
            for _ in 0..1000 {
                poller.notify().unwrap();
                thread::yield_now();
            }
        });
        while !notifier.is_finished() {
            poller.wait(&mut events, Some(Duration::ZERO))?;
        }
        Ok(())
    })?;
    poller.notify()?;
    poller.wait(&mut events, None)?;
    Ok(())
}

/// A wait cut short by I/O leaves its timer armed; zero-timeout waits after it do not reset
/// the timer, and later timed waits still last their full timeout.
#[test]
fn timed_waits_after_an_early_return_and_zero_timeout_waits() -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let _client = TcpStream::connect(listener.local_addr()?)?;
    let poller = Poller::new()?;
    unsafe { poller.add(&listener, Event::readable(7))? };
    let mut events = Events::new();

    // Returns at once on the pending connection; its 50 ms timer stays armed.
    poller.wait(&mut events, Some(Duration::from_millis(50)))?;
    assert_eq!(events.iter().map(|e| e.key).collect::<Vec<_>>(), [7]);

    // Zero-timeout waits across the stale timer's expiry: none blocks, none reports anything.
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(80) {
        events.clear();
        poller.wait(&mut events, Some(Duration::ZERO))?;
        assert!(events.is_empty());
    }

    for timeout in [20, 5, 30] {
        let timeout = Duration::from_millis(timeout);
        events.clear();
        let start = Instant::now();
        poller.wait(&mut events, Some(timeout))?;
        assert!(start.elapsed() >= timeout);
        assert!(events.is_empty());
    }
    Ok(())
}
