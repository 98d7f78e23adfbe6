//! `$SYS` topics.

use crate::config::Config;
use crate::testing::Driver;
use wren_codec::*;

#[test]
fn sys_topics_are_published_retained() {
    let mut t = Driver::for_tests_with(Config::for_tests());
    t.broker.config.sys_interval = 10;
    let s = t.connect("sub", true);
    t.subscribe(s, "$SYS/broker/clients/connected", QoS::AtMostOnce);
    t.broker.handle_timeout(0);
    assert_eq!(
        t.publishes(s),
        [("$SYS/broker/clients/connected".into(), b"1".to_vec(), 0)]
    );
    t.broker.handle_timeout(5_000);
    assert!(t.publishes(s).is_empty(), "interval not reached");
    t.broker.handle_timeout(10_000);
    assert_eq!(t.publishes(s).len(), 1);
    assert_eq!(
        t.broker
            .retained()
            .get("$SYS/broker/uptime")
            .unwrap()
            .payload(),
        b"10 seconds"
    );
    assert!(
        t.broker
            .retained()
            .get("$SYS/broker/retained messages/count")
            .is_some()
    );
}
