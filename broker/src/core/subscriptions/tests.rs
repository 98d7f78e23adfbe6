use std::collections::HashSet;

use super::*;

const A: SessionId = SessionId(1);
const B: SessionId = SessionId(2);
const C: SessionId = SessionId(3);

fn f(filter: &str) -> TopicFilter<'_> {
    TopicFilter::new(filter).unwrap()
}

fn sub(s: &mut Subscriptions, filter: &str, session: SessionId, qos: QoS) -> bool {
    s.subscribe(f(filter), Sub::new(session, qos), 0).unwrap()
}

/// Non-shared matches, one per session at the highest QoS (as the broker delivers them).
fn matching(s: &mut Subscriptions, topic: &str) -> Vec<(SessionId, QoS)> {
    let (mut out, mut picks) = (Vec::new(), Vec::new());
    s.matches(topic, |_| true, &mut out, &mut picks);
    let mut m: Vec<_> = out.iter().map(|s| (s.session, s.qos)).collect();
    // Highest QoS first within a session, so `dedup_by_key` keeps it.
    m.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    m.dedup_by_key(|m| m.0);
    m
}

/// Shared picks: (session, group's full filter), sorted.
fn picks(s: &mut Subscriptions, topic: &str, connected: &[SessionId]) -> Vec<(SessionId, String)> {
    let (mut out, mut picks) = (Vec::new(), Vec::new());
    s.matches(topic, |sid| connected.contains(&sid), &mut out, &mut picks);
    let mut p: Vec<_> = picks
        .iter()
        .map(|(m, key)| (m.session, key.to_string()))
        .collect();
    p.sort();
    p
}

/// The counts agree with what the trie holds, and an empty index has nothing but its root.
fn check_counts(s: &Subscriptions) {
    let per_session: usize = s.by_session.keys().map(|&sid| s.session_len(sid)).sum();
    assert_eq!(per_session, s.len());
    if s.is_empty() {
        assert!(s.by_session.is_empty());
        assert_eq!(s.trie.nodes_in_use(), 1, "branches pruned");
    }
}

/// The layout the memory figures rely on (see trie.rs): a node with its first subscriber and a
/// short level inline, a session's list 16 bytes with its first entry inline.
#[test]
fn compact_layout() {
    assert_eq!(std::mem::size_of::<Sub>(), 16);
    assert!(std::mem::size_of::<trie::Node>() <= 72);
    assert_eq!(std::mem::size_of::<Filters>(), 16);
}

#[test]
fn exact_plus_and_hash() {
    let mut s = Subscriptions::new();
    assert!(!sub(&mut s, "a/b/c", A, QoS::AtMostOnce));
    assert!(!sub(&mut s, "a/+/c", B, QoS::AtLeastOnce));
    assert!(!sub(&mut s, "a/#", B, QoS::ExactlyOnce));
    assert_eq!(s.len(), 3);
    assert_eq!(
        matching(&mut s, "a/b/c"),
        vec![(A, QoS::AtMostOnce), (B, QoS::ExactlyOnce)]
    );
    assert_eq!(
        matching(&mut s, "a"),
        vec![(B, QoS::ExactlyOnce)],
        "a/# matches a"
    );
    assert_eq!(matching(&mut s, "a/x/c/d"), vec![(B, QoS::ExactlyOnce)]);
    assert!(matching(&mut s, "b").is_empty());
    check_counts(&s);
}

#[test]
fn plus_matches_one_level_only_and_empty_levels() {
    let mut s = Subscriptions::new();
    sub(&mut s, "sport/+", A, QoS::AtMostOnce);
    sub(&mut s, "+/+", B, QoS::AtMostOnce);
    assert_eq!(matching(&mut s, "sport/tennis").len(), 2);
    assert_eq!(
        matching(&mut s, "sport/"),
        vec![(A, QoS::AtMostOnce), (B, QoS::AtMostOnce)]
    );
    assert!(matching(&mut s, "sport").is_empty());
    assert_eq!(matching(&mut s, "/finance"), vec![(B, QoS::AtMostOnce)]);
    assert!(matching(&mut s, "sport/tennis/x").is_empty());
}

#[test]
fn dollar_topics_need_a_literal_first_level() {
    let mut s = Subscriptions::new();
    sub(&mut s, "#", A, QoS::AtMostOnce);
    sub(&mut s, "+/broker/uptime", A, QoS::AtMostOnce);
    sub(&mut s, "$SYS/#", B, QoS::AtMostOnce);
    sub(&mut s, "$share/g/#", C, QoS::AtMostOnce);
    assert_eq!(
        matching(&mut s, "$SYS/broker/uptime"),
        vec![(B, QoS::AtMostOnce)]
    );
    assert!(picks(&mut s, "$SYS/broker/uptime", &[C]).is_empty());
    assert_eq!(
        matching(&mut s, "x/broker/uptime"),
        vec![(A, QoS::AtMostOnce)]
    );
    assert_eq!(
        picks(&mut s, "x/broker/uptime", &[C]),
        vec![(C, "$share/g/#".into())]
    );
}

#[test]
fn long_and_odd_levels() {
    let mut s = Subscriptions::new();
    let long = "a-level-longer-than-twenty-two-bytes/0123456789abcdef0123456789abcdef";
    sub(&mut s, long, A, QoS::AtMostOnce);
    sub(
        &mut s,
        "a-level-longer-than-twenty-two-bytes/+",
        B,
        QoS::AtMostOnce,
    );
    sub(&mut s, "//", C, QoS::AtMostOnce);
    assert_eq!(
        matching(&mut s, long),
        vec![(A, QoS::AtMostOnce), (B, QoS::AtMostOnce)]
    );
    assert_eq!(matching(&mut s, "//"), vec![(C, QoS::AtMostOnce)]);
    assert!(matching(&mut s, "/").is_empty());
    assert!(s.unsubscribe(f(long), A));
    assert!(s.unsubscribe(f("a-level-longer-than-twenty-two-bytes/+"), B));
    assert!(s.unsubscribe(f("//"), C));
    check_counts(&s);
}

#[test]
fn resubscribe_replaces_options_and_unsubscribe_prunes() {
    let mut s = Subscriptions::new();
    assert!(!sub(&mut s, "a/b", A, QoS::AtMostOnce));
    assert!(sub(&mut s, "a/b", A, QoS::ExactlyOnce), "existed");
    let mut with_id = Sub::new(A, QoS::AtLeastOnce);
    with_id.id = NonZeroU32::new(7);
    assert!(s.subscribe(f("a/b"), with_id, 0).unwrap());
    assert_eq!(s.len(), 1);
    assert_eq!(s.session_len(A), 1);
    let (mut out, mut p) = (Vec::new(), Vec::new());
    s.matches("a/b", |_| true, &mut out, &mut p);
    assert_eq!(out, [with_id]);
    assert!(!s.unsubscribe(f("a/b"), B));
    assert!(!s.unsubscribe(f("a/c"), A));
    assert!(!s.unsubscribe(f("$share/g/a/b"), A), "not the shared one");
    assert!(s.unsubscribe(f("a/b"), A));
    assert!(!s.unsubscribe(f("a/b"), A));
    assert!(s.is_empty());
    check_counts(&s);
    assert!(matching(&mut s, "a/b").is_empty());
}

#[test]
fn unsubscribe_keeps_what_others_need() {
    let mut s = Subscriptions::new();
    sub(&mut s, "a/b/c", A, QoS::AtMostOnce);
    sub(&mut s, "a/b", B, QoS::AtMostOnce);
    sub(&mut s, "a/+/c", B, QoS::AtMostOnce);
    sub(&mut s, "a/b/c", B, QoS::AtMostOnce);
    assert!(s.unsubscribe(f("a/b"), B));
    assert_eq!(
        matching(&mut s, "a/b/c"),
        vec![(A, QoS::AtMostOnce), (B, QoS::AtMostOnce)]
    );
    assert!(s.unsubscribe(f("a/b/c"), A));
    assert_eq!(matching(&mut s, "a/b/c"), vec![(B, QoS::AtMostOnce)]);
    // Freed nodes are reused.
    sub(&mut s, "x/y", A, QoS::AtMostOnce);
    assert_eq!(matching(&mut s, "x/y"), vec![(A, QoS::AtMostOnce)]);
    assert!(matching(&mut s, "a/b").is_empty());
    check_counts(&s);
}

#[test]
fn overlapping_subscriptions_dedup_to_highest_qos() {
    let mut s = Subscriptions::new();
    sub(&mut s, "a/#", A, QoS::AtMostOnce);
    sub(&mut s, "a/+", A, QoS::ExactlyOnce);
    sub(&mut s, "a/b", A, QoS::AtLeastOnce);
    sub(&mut s, "#", B, QoS::AtLeastOnce);
    assert_eq!(
        matching(&mut s, "a/b"),
        vec![(A, QoS::ExactlyOnce), (B, QoS::AtLeastOnce)]
    );
    let (mut out, mut p) = (Vec::new(), Vec::new());
    s.matches("a/b", |_| true, &mut out, &mut p);
    assert_eq!(out.len(), 4, "one match per filter");
    group_by_session(&mut out);
    assert_eq!(out.chunk_by(|a, b| a.session == b.session).count(), 2);
}

#[test]
fn many_subscribers_on_one_filter() {
    let mut s = Subscriptions::new();
    for i in 0..50 {
        sub(&mut s, "t", SessionId(i), QoS::AtMostOnce);
    }
    assert_eq!(matching(&mut s, "t").len(), 50);
    for i in (0..50).step_by(2) {
        assert!(s.unsubscribe(f("t"), SessionId(i)));
    }
    let got: HashSet<u64> = matching(&mut s, "t").iter().map(|m| m.0.0).collect();
    assert_eq!(got, (1..50).step_by(2).collect());
    for i in (1..50).step_by(2) {
        s.remove_session(SessionId(i));
    }
    check_counts(&s);
}

#[test]
fn remove_session_and_counts() {
    let mut s = Subscriptions::new();
    sub(&mut s, "a", A, QoS::AtMostOnce);
    sub(&mut s, "a/+", A, QoS::AtMostOnce);
    sub(&mut s, "$share/g/a", A, QoS::AtMostOnce);
    sub(&mut s, "$share/h/a", A, QoS::AtMostOnce);
    sub(&mut s, "a", B, QoS::AtMostOnce);
    sub(&mut s, "$share/g/a", B, QoS::AtMostOnce);
    assert_eq!((s.session_len(A), s.session_len(B), s.len()), (4, 2, 6));
    assert_eq!(s.shared_members("$share/g/a"), 2);
    check_counts(&s);
    s.remove_session(A);
    assert_eq!((s.session_len(A), s.len()), (0, 2));
    assert_eq!(s.shared_members("$share/g/a"), 1);
    assert_eq!(s.shared_members("$share/h/a"), 0);
    assert_eq!(matching(&mut s, "a"), vec![(B, QoS::AtMostOnce)]);
    assert_eq!(picks(&mut s, "a", &[]), vec![(B, "$share/g/a".into())]);
    s.remove_session(A);
    s.remove_session(B);
    check_counts(&s);
}

#[test]
fn quota_allows_only_replacing() {
    let mut s = Subscriptions::new();
    let max = 2;
    let new =
        |s: &mut Subscriptions, filter: &str, qos| s.subscribe(f(filter), Sub::new(A, qos), max);
    assert_eq!(new(&mut s, "a", QoS::AtMostOnce), Ok(false));
    assert_eq!(new(&mut s, "$share/g/b", QoS::AtMostOnce), Ok(false));
    assert_eq!(new(&mut s, "c", QoS::AtMostOnce), Err(QuotaExceeded));
    assert_eq!(
        new(&mut s, "$share/h/b", QoS::AtMostOnce),
        Err(QuotaExceeded)
    );
    assert_eq!(new(&mut s, "a", QoS::ExactlyOnce), Ok(true));
    assert_eq!(new(&mut s, "$share/g/b", QoS::AtLeastOnce), Ok(true));
    assert_eq!(matching(&mut s, "a"), vec![(A, QoS::ExactlyOnce)]);
    let (mut out, mut p) = (Vec::new(), Vec::new());
    s.matches("b", |_| true, &mut out, &mut p);
    assert_eq!(p.first().map(|p| p.0.qos), Some(QoS::AtLeastOnce));
    assert_eq!(s.len(), 2);
    assert!(matching(&mut s, "c").is_empty(), "refused: nothing created");
    s.remove_session(A);
    check_counts(&s);
}

#[test]
fn shared_groups_round_robin_preferring_connected_members() {
    let mut s = Subscriptions::new();
    for sid in [A, B, C] {
        assert!(!sub(&mut s, "$share/g/job/+", sid, QoS::AtLeastOnce));
    }
    sub(&mut s, "$share/other/job/#", A, QoS::AtMostOnce);
    assert!(
        matching(&mut s, "job/1").is_empty(),
        "shared ones are picked, not matched"
    );
    let all = [A, B, C];
    let mut turns = Vec::new();
    for _ in 0..6 {
        let p = picks(&mut s, "job/1", &all);
        assert_eq!(p.len(), 2, "one pick per group: {p:?}");
        turns.extend(p.iter().filter(|p| p.1 == "$share/g/job/+").map(|p| p.0));
    }
    // (The `matching` call above took A's turn.)
    assert_eq!(turns, [B, C, A, B, C, A]);
    // Only B connected: B gets every message of the group.
    for _ in 0..3 {
        assert!(picks(&mut s, "job/1", &[B]).contains(&(B, "$share/g/job/+".into())));
    }
    // None connected: the round robin goes on, and the session queues it.
    let p: Vec<_> = (0..3).map(|_| picks(&mut s, "job/1", &[])[1].0).collect();
    assert_eq!(HashSet::<SessionId>::from_iter(p), HashSet::from(all));
    assert!(picks(&mut s, "work/1", &all).is_empty());
    check_counts(&s);
}

#[test]
fn fail_over_picks_another_member() {
    let mut s = Subscriptions::new();
    sub(&mut s, "$share/g/job/+", A, QoS::AtLeastOnce);
    sub(&mut s, "$share/g/job/+", B, QoS::ExactlyOnce);
    // A's session ends: a message it held goes to the group's other member.
    s.remove_session(A);
    let m = s.pick_shared("$share/g/job/+", |_| true).unwrap();
    assert_eq!((m.session, m.qos), (B, QoS::ExactlyOnce));
    assert_eq!(s.shared_members("$share/g/job/+"), 1);
    s.remove_session(B);
    assert_eq!(
        s.pick_shared("$share/g/job/+", |_| true),
        None,
        "group gone"
    );
    assert_eq!(s.pick_shared("not-shared", |_| true), None);
    check_counts(&s);
}

#[test]
fn unsubscribing_a_shared_group_keeps_the_others() {
    let mut s = Subscriptions::new();
    sub(&mut s, "$share/g/a/b", A, QoS::AtMostOnce);
    sub(&mut s, "$share/h/a/b", A, QoS::AtMostOnce);
    sub(&mut s, "a/b", A, QoS::AtMostOnce);
    assert!(s.unsubscribe(f("$share/g/a/b"), A));
    assert!(!s.unsubscribe(f("$share/g/a/b"), A));
    assert_eq!(picks(&mut s, "a/b", &[A]), vec![(A, "$share/h/a/b".into())]);
    assert_eq!(matching(&mut s, "a/b"), vec![(A, QoS::AtMostOnce)]);
    // A group created again after it went gets a fresh id; the old entries are gone.
    sub(&mut s, "$share/g/a/b", B, QoS::AtMostOnce);
    assert_eq!(s.len(), 3);
    assert!(s.unsubscribe(f("$share/h/a/b"), A));
    assert!(s.unsubscribe(f("a/b"), A));
    assert_eq!(s.session_len(A), 0);
    assert_eq!(picks(&mut s, "a/b", &[]), vec![(B, "$share/g/a/b".into())]);
    s.remove_session(B);
    check_counts(&s);
}

/// Against a flat model (every filter checked with `TopicFilter::matches`), over random
/// subscribes, unsubscribes and session ends.
#[test]
fn matches_the_flat_model() {
    use wren_codec::TopicName;
    let levels = ["a", "b", "+", "#", "$x", ""];
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut s = Subscriptions::new();
    let mut model: HashSet<(String, u64)> = HashSet::new();
    for round in 0..4000 {
        let depth = 1 + next(3);
        let mut filter: Vec<&str> = (0..depth).map(|_| levels[next(levels.len())]).collect();
        filter.retain(|l| *l != "#");
        if next(4) == 0 {
            filter.push("#");
        }
        let filter = filter.join("/");
        let Ok(tf) = TopicFilter::new(&filter) else {
            continue;
        };
        let session = next(8) as u64;
        match next(5) {
            0..=2 => {
                let existed = sub(&mut s, &filter, SessionId(session), QoS::AtMostOnce);
                assert_eq!(existed, !model.insert((filter.clone(), session)));
            }
            3 => {
                let removed = s.unsubscribe(tf, SessionId(session));
                assert_eq!(removed, model.remove(&(filter.clone(), session)));
            }
            _ if round % 7 == 0 => {
                s.remove_session(SessionId(session));
                model.retain(|(_, sid)| *sid != session);
            }
            _ => {}
        }
        assert_eq!(s.len(), model.len());
        for topic in ["a", "a/b", "b/a/", "$x/a", "a/$x/b", "/", "a//b"] {
            let t = TopicName::new(topic).unwrap();
            let mut expected: Vec<u64> = model
                .iter()
                .filter(|(f, _)| TopicFilter::new(f).unwrap().matches(t))
                .map(|(_, sid)| *sid)
                .collect();
            expected.sort();
            let (mut out, mut p) = (Vec::new(), Vec::new());
            s.matches(topic, |_| true, &mut out, &mut p);
            let mut got: Vec<u64> = out.iter().map(|m| m.session.0).collect();
            got.sort();
            assert_eq!(got, expected, "{topic}");
        }
    }
    for session in 0..8 {
        s.remove_session(SessionId(session));
    }
    check_counts(&s);
}
