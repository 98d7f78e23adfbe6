//! Retained messages.

use super::pid;
use crate::testing::{Driver, Publication, Sent};
use wren_codec::*;

#[test]
fn retained_messages() {
    let mut t = Driver::for_tests();
    let p = t.connect("pub", true);
    t.publish(p, "r/a", b"1", QosPid::AtLeastOnce(pid(1)), true);
    t.publish(p, "r/b", b"2", QosPid::AtMostOnce, true);
    t.publish(p, "r/b", b"3", QosPid::AtMostOnce, true);
    let s = t.connect("sub", true);
    let out = t.subscribe(s, "r/+", QoS::AtLeastOnce);
    assert_eq!(out[0], Sent::SubAck(1, vec![1]));
    let mut got: Vec<_> = out[1..]
        .iter()
        .map(|p| match p {
            Sent::Publish(Publication {
                topic,
                payload,
                qos,
                retain,
                ..
            }) => (topic.clone(), payload.clone(), *qos, *retain),
            other => panic!("{other:?}"),
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("r/a".into(), b"1".to_vec(), 1, true),
            ("r/b".into(), b"3".to_vec(), 0, true)
        ]
    );
    t.publish(p, "r/a", b"", QosPid::AtMostOnce, true);
    assert_eq!(t.broker.retained().len(), 1, "empty payload deletes");
}
