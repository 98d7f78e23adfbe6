//! The connect timeout and the keep-alive.

use crate::testing::Driver;

#[test]
fn connect_timeout() {
    let mut t = Driver::for_tests();
    let c = t.open().unwrap();
    t.tick(9_999);
    assert!(!t.is_closed(c));
    t.tick(10_000);
    assert!(t.is_closed(c));
}

#[test]
fn partial_packets_count_as_keep_alive_activity() {
    let mut t = Driver::for_tests();
    let (c, _) = t.connect_with("slow-upload", true, 1, None);
    t.now = 1400;
    t.broker.bytes_arrived(c, t.now);
    t.tick(2000);
    assert!(!t.is_closed(c));
    t.tick(3000);
    assert!(t.is_closed(c));
}
