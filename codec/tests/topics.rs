//! Topic names, topic filters and `TopicFilter::matches`: the examples of MQTT §4.7 (identical in
//! 3.1.1 and 5.0), an exhaustive comparison over a small alphabet, and a property test against an
//! independent reference implementation.

use proptest::prelude::*;
use wren_codec::{DecodeError, TopicFilter, TopicName};

fn m(filter: &str, topic: &str) -> bool {
    TopicFilter::new(filter)
        .unwrap_or_else(|e| panic!("filter {filter:?}: {e:?}"))
        .matches(TopicName::new(topic).unwrap_or_else(|e| panic!("topic {topic:?}: {e:?}")))
}

/// The reference: a filter ending in `#` matches every topic that starts with the levels before
/// it (the parent included); any other filter matches topics with exactly as many levels; `+`
/// matches any one level; a `$` topic is not matched by a leading wildcard ([MQTT-4.7.2-1]).
/// Written by level counting, not by the codec's walk.
fn reference(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    let level_ok = |(fl, tl): (&&str, &&str)| *fl == "+" || fl == tl;
    if f.last() == Some(&"#") {
        let prefix = &f[..f.len() - 1];
        t.len() >= prefix.len() && prefix.iter().zip(&t).all(level_ok)
    } else {
        t.len() == f.len() && f.iter().zip(&t).all(level_ok)
    }
}

#[test]
fn section_4_7_1_2_multi_level_wildcard() {
    // "sport/tennis/player1/#" matches these three.
    for topic in [
        "sport/tennis/player1",
        "sport/tennis/player1/ranking",
        "sport/tennis/player1/score/wimbledon",
    ] {
        assert!(m("sport/tennis/player1/#", topic), "{topic}");
    }
    // "sport/#" also matches the singular "sport", since # includes the parent level.
    assert!(m("sport/#", "sport"));
    // "#" is valid and matches every application message.
    for topic in ["sport", "sport/tennis", "/", "a//b", "finance/"] {
        assert!(m("#", topic), "{topic}");
    }
    // Valid and invalid filters named by the section.
    assert!(TopicFilter::new("sport/tennis/#").is_ok());
    assert_eq!(
        TopicFilter::new("sport/tennis#"),
        Err(DecodeError::InvalidTopicFilter)
    );
    assert_eq!(
        TopicFilter::new("sport/tennis/#/ranking"),
        Err(DecodeError::InvalidTopicFilter)
    );
}

#[test]
fn section_4_7_1_3_single_level_wildcard() {
    assert!(m("sport/tennis/+", "sport/tennis/player1"));
    assert!(m("sport/tennis/+", "sport/tennis/player2"));
    assert!(!m("sport/tennis/+", "sport/tennis/player1/ranking"));
    // "sport/+" does not match "sport" but does match "sport/".
    assert!(!m("sport/+", "sport"));
    assert!(m("sport/+", "sport/"));
    for ok in ["+", "+/tennis/#", "sport/+/player1"] {
        assert!(TopicFilter::new(ok).is_ok(), "{ok}");
    }
    assert_eq!(
        TopicFilter::new("sport+"),
        Err(DecodeError::InvalidTopicFilter)
    );
    // "/finance" is matched by "+/+" and "/+", not by "+".
    assert!(m("+/+", "/finance"));
    assert!(m("/+", "/finance"));
    assert!(!m("+", "/finance"));
}

#[test]
fn section_4_7_2_topics_beginning_with_dollar() {
    // [MQTT-4.7.2-1]: wildcards at the start of a filter do not match $ topics.
    assert!(!m("#", "$SYS/broker/clients"));
    assert!(!m("+/monitor/Clients", "$SYS/monitor/Clients"));
    assert!(!m("+", "$SYS"));
    assert!(!m("#", "$"));
    assert!(m("$SYS/#", "$SYS/monitor/Clients"));
    assert!(m("$SYS/monitor/+", "$SYS/monitor/Clients"));
    assert!(m("$SYS/#", "$SYS"));
    // Only the first character counts: a $ further in is an ordinary character.
    assert!(m("+/$x", "a/$x"));
    assert!(m("#", "a/$SYS"));
}

#[test]
fn section_4_7_3_topic_semantics() {
    // Case-sensitive, spaces allowed, leading '/' makes a distinct topic, "/" is valid.
    assert!(!m("ACCOUNTS", "Accounts"));
    assert!(m("Accounts payable", "Accounts payable"));
    assert!(!m("finance", "/finance"));
    assert!(!m("/finance", "finance"));
    assert!(TopicName::new("/").is_ok());
    assert!(m("/", "/"));
    assert!(m("+/+", "/"));
    assert!(m("#", "/"));
    // Topic names never hold wildcards; no topic is empty [MQTT-4.7.3-1]; no U+0000 [MQTT-4.7.3-2].
    for bad in ["a/+", "#", "a/#", "+", "sport+"] {
        assert_eq!(
            TopicName::new(bad),
            Err(DecodeError::WildcardInTopicName),
            "{bad}"
        );
    }
    assert_eq!(TopicName::new(""), Err(DecodeError::EmptyTopic));
    assert_eq!(TopicFilter::new(""), Err(DecodeError::EmptyTopic));
    assert_eq!(TopicName::new("a\0"), Err(DecodeError::NullCharacter));
    assert_eq!(TopicFilter::new("a/\0/+"), Err(DecodeError::NullCharacter));
    // The longest topic is 65,535 bytes [MQTT-4.7.3-3].
    let long = "x".repeat(65_535);
    assert!(m(&long, &long));
    assert!(TopicName::new(&"x".repeat(65_536)).is_err());
}

/// Every string of up to `max` levels over `alphabet`.
fn strings(alphabet: &[&str], max: usize) -> Vec<String> {
    let mut out: Vec<Vec<&str>> = alphabet.iter().map(|l| vec![*l]).collect();
    let mut frontier = out.clone();
    for _ in 1..max {
        let mut next = Vec::new();
        for s in &frontier {
            for l in alphabet {
                let mut s2 = s.clone();
                s2.push(l);
                next.push(s2);
            }
        }
        out.extend(next.iter().cloned());
        frontier = next;
    }
    out.into_iter().map(|levels| levels.join("/")).collect()
}

#[test]
fn exhaustive_small_alphabet_matches_reference() {
    let topics: Vec<String> = strings(&["a", "b", "", "$s"], 4)
        .into_iter()
        .filter(|t| TopicName::new(t).is_ok())
        .collect();
    let mut filters: Vec<String> = strings(&["a", "b", "", "+", "$s"], 3)
        .into_iter()
        .filter(|f| !f.is_empty())
        .collect();
    let with_hash: Vec<String> = filters.iter().map(|f| format!("{f}/#")).collect();
    filters.extend(with_hash);
    filters.push("#".to_owned());
    let (mut yes, mut no) = (0, 0);
    for f in &filters {
        let filter = TopicFilter::new(f).unwrap_or_else(|e| panic!("{f:?}: {e:?}"));
        for t in &topics {
            let got = filter.matches(TopicName::new(t).unwrap());
            assert_eq!(got, reference(f, t), "filter {f:?} topic {t:?}");
            if got { yes += 1 } else { no += 1 }
        }
    }
    assert!(yes > 1000 && no > 1000, "{yes} matches, {no} non-matches");
}

#[test]
fn const_constructors_agree_with_new() {
    let mut strings = strings(&["a", "", "+", "#", "a+", "#b", "\u{0}", "$s"], 3);
    strings.push("x".repeat(65_536));
    for s in &strings {
        assert_eq!(TopicName::new_const(s), TopicName::new(s), "name {s:?}");
        assert_eq!(
            TopicFilter::new_const(s),
            TopicFilter::new(s),
            "filter {s:?}"
        );
    }
}

fn level() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "", "$SYS", "x y", "é"]).prop_map(str::to_owned),
        1 => proptest::string::string_regex("[^\\x00/+#]{0,4}").unwrap(),
    ]
}

fn topic() -> impl Strategy<Value = String> {
    // A topic is never empty [MQTT-4.7.3-1].
    prop::collection::vec(level(), 1..6).prop_map(|l| {
        let t = l.join("/");
        if t.is_empty() { "t".to_owned() } else { t }
    })
}

/// A filter derived from a topic (some levels replaced by `+`, maybe cut and ended by `#`), so
/// that matches are common; or an unrelated one.
fn filter_for(topic: String) -> impl Strategy<Value = (String, String)> {
    let n = topic.split('/').count();
    (
        prop::collection::vec(any::<bool>(), n),
        0..=n + 1,
        any::<bool>(),
        topic_like_filter(),
    )
        .prop_map(move |(plus, cut, derived, other)| {
            if !derived {
                return (other, topic.clone());
            }
            let mut levels: Vec<&str> = topic
                .split('/')
                .zip(&plus)
                .map(|(l, &p)| if p { "+" } else { l })
                .collect();
            if cut <= levels.len() {
                levels.truncate(cut);
                levels.push("#");
            }
            (levels.join("/"), topic.clone())
        })
}

fn topic_like_filter() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop_oneof![3 => level(), 1 => Just("+".to_owned())], 1..5),
        any::<bool>(),
    )
        .prop_map(|(levels, hash)| {
            let f = levels.join("/");
            if hash {
                format!("{f}/#")
            } else if f.is_empty() {
                "f".to_owned()
            } else {
                f
            }
        })
}

proptest! {
    #[test]
    fn matches_agrees_with_the_reference((f, t) in topic().prop_flat_map(filter_for)) {
        let filter = TopicFilter::new(&f).unwrap();
        let topic = TopicName::new(&t).unwrap();
        prop_assert_eq!(filter.matches(topic), reference(&f, &t), "filter {:?} topic {:?}", f, t);
    }

    #[test]
    fn a_filter_without_wildcards_matches_only_its_own_topic(a in topic(), b in topic()) {
        let fa = TopicFilter::new(&a).unwrap();
        prop_assert!(fa.matches(TopicName::new(&a).unwrap()));
        prop_assert_eq!(fa.matches(TopicName::new(&b).unwrap()), a == b);
    }

    #[test]
    fn hash_matches_every_topic_but_dollar_ones(t in topic()) {
        let all = TopicFilter::new("#").unwrap();
        prop_assert_eq!(all.matches(TopicName::new(&t).unwrap()), !t.starts_with('$'));
    }
}
