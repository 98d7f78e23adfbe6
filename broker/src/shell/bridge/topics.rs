//! A bridge's topic lines as a mapping: which local topics go out and under which remote name,
//! which remote topics come in and under which local name, and the QoS each line allows.

use wren_codec::{QoS, TopicFilter, TopicName};

use crate::config::TopicLine;

/// The topic lines of one bridge, with the filters each makes (built once: they are matched
/// against every message the bridge carries).
#[derive(Debug, Clone)]
pub(super) struct Topics {
    lines: Vec<Line>,
}

#[derive(Debug, Clone)]
struct Line {
    line: TopicLine,
    /// `line.local_filter()`.
    local_filter: String,
    /// `line.remote_filter()`.
    remote_filter: String,
}

impl Topics {
    pub(super) fn new(lines: Vec<TopicLine>) -> Topics {
        let lines = lines
            .into_iter()
            .map(|line| Line {
                local_filter: line.local_filter(),
                remote_filter: line.remote_filter(),
                line,
            })
            .collect();
        Topics { lines }
    }

    fn outbound_lines(&self) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter(|l| l.line.direction.outbound())
    }

    fn inbound_lines(&self) -> impl Iterator<Item = &Line> {
        self.lines.iter().filter(|l| l.line.direction.inbound())
    }

    /// The filters to subscribe to on this broker: `(filter, qos)` of the outbound lines.
    pub(super) fn local_subscriptions(&self) -> Vec<(String, QoS)> {
        self.outbound_lines()
            .map(|l| (l.local_filter.clone(), l.line.qos))
            .collect()
    }

    /// The filters to subscribe to on the remote: `(filter, qos)` of the inbound lines.
    pub(super) fn remote_subscriptions(&self) -> Vec<(String, QoS)> {
        self.inbound_lines()
            .map(|l| (l.remote_filter.clone(), l.line.qos))
            .collect()
    }

    /// The remote topic and the line's QoS for a message on the local `topic`, if a line
    /// sends it out (the first line that matches decides, as in Mosquitto).
    pub(super) fn outbound(&self, topic: &str) -> Option<(String, QoS)> {
        let name = TopicName::new(topic).ok()?;
        self.outbound_lines().find_map(|l| {
            remap(
                name,
                &l.local_filter,
                &l.line.local_prefix,
                &l.line.remote_prefix,
                l.line.qos,
            )
        })
    }

    /// The local topic and the line's QoS for a message on the remote `topic`, if a line
    /// brings it in.
    pub(super) fn inbound(&self, topic: &str) -> Option<(String, QoS)> {
        let name = TopicName::new(topic).ok()?;
        self.inbound_lines().find_map(|l| {
            remap(
                name,
                &l.remote_filter,
                &l.line.remote_prefix,
                &l.line.local_prefix,
                l.line.qos,
            )
        })
    }

    /// Whether a message sent out on the remote `topic` could come back in (a remote that
    /// sends a client its own messages would loop it): some inbound filter matches it.
    pub(super) fn comes_back(&self, remote_topic: &str) -> bool {
        let Ok(name) = TopicName::new(remote_topic) else {
            return false;
        };
        self.inbound_lines()
            .any(|l| TopicFilter::new(&l.remote_filter).is_ok_and(|f| f.matches(name)))
    }
}

/// `topic` with prefix `from` replaced by `to`, if it matches `filter`; `None` when the result
/// would not be a valid topic name (an empty one, a too long one).
fn remap(
    topic: TopicName<'_>,
    filter: &str,
    from: &str,
    to: &str,
    qos: QoS,
) -> Option<(String, QoS)> {
    if !TopicFilter::new(filter).ok()?.matches(topic) {
        return None;
    }
    let rest = topic.as_str().strip_prefix(from)?;
    let mapped = format!("{to}{rest}");
    TopicName::new(&mapped).ok()?;
    Some((mapped, qos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(lines: &[&str]) -> Topics {
        Topics::new(lines.iter().map(|l| TopicLine::parse(l).unwrap()).collect())
    }

    #[test]
    fn prefixes_are_swapped_both_ways() {
        let t = topics(&[
            "sensors/# out 1 edge/ site1/",
            "cmd/+ in 2 \"\" fleet/",
            "x both 0",
        ]);
        assert_eq!(
            t.local_subscriptions(),
            [
                ("edge/sensors/#".into(), QoS::AtLeastOnce),
                ("x".into(), QoS::AtMostOnce)
            ]
        );
        assert_eq!(
            t.remote_subscriptions(),
            [
                ("fleet/cmd/+".into(), QoS::ExactlyOnce),
                ("x".into(), QoS::AtMostOnce)
            ]
        );
        assert_eq!(
            t.outbound("edge/sensors/t/1"),
            Some(("site1/sensors/t/1".into(), QoS::AtLeastOnce))
        );
        assert_eq!(t.outbound("sensors/t"), None);
        assert_eq!(
            t.inbound("fleet/cmd/reboot"),
            Some(("cmd/reboot".into(), QoS::ExactlyOnce))
        );
        assert_eq!(t.inbound("fleet/cmd/a/b"), None);
        assert_eq!(t.inbound("x"), Some(("x".into(), QoS::AtMostOnce)));
        assert!(t.comes_back("x") && !t.comes_back("site1/sensors/t/1"));
    }

    #[test]
    fn exact_remapping_with_an_empty_pattern() {
        let t = topics(&["\"\" both 1 local/status remote/status"]);
        assert_eq!(
            t.outbound("local/status"),
            Some(("remote/status".into(), QoS::AtLeastOnce))
        );
        assert_eq!(
            t.inbound("remote/status"),
            Some(("local/status".into(), QoS::AtLeastOnce))
        );
        assert_eq!(t.outbound("local/status/x"), None);
    }

    #[test]
    fn a_remapped_topic_that_is_not_a_topic_is_not_forwarded() {
        // "" pattern with a prefix that maps onto an empty remote topic cannot happen (parse
        // refuses an empty result), but an over-long one can: refused, not forwarded.
        let t = topics(&["# out 0 \"\" long/"]);
        let topic = "a".repeat(65_535 - 2);
        assert_eq!(t.outbound(&topic), None);
        assert!(t.outbound("a").is_some());
    }
}
