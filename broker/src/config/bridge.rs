//! Bridges: connections from this broker to another (Mosquitto's `connection` sections;
//! `[[bridge]]` tables in wren.toml, with the same key names). The bridge itself is
//! `crate::bridge`; here is what it is told and the checks of what it is told.
//!
//! A `topic` line is Mosquitto's: `PATTERN [in|out|both] [QOS] [LOCAL-PREFIX] [REMOTE-PREFIX]`
//! (`""` for an empty prefix). A message on the local topic `LOCAL-PREFIX` + `T` goes out as
//! `REMOTE-PREFIX` + `T`, and back the other way, where `T` matches `PATTERN`.

use std::path::PathBuf;

use serde::Deserialize;
use wren_codec::{QoS, TopicFilter};

use super::ConfigError;

/// One bridge.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Bridge {
    /// The bridge's name (`connection NAME`).
    pub name: String,
    /// The remote brokers, `host:port` (port 1883 if left out), tried in order: the first
    /// that accepts is used; when it is lost the next is tried (fail-over).
    pub address: Vec<String>,
    /// `false` (Mosquitto's default): after a fail-over, go back to the first address when it
    /// answers again; `true`: stay, and go on round the list only when the current one fails.
    pub round_robin: bool,
    /// Topic lines, Mosquitto's syntax (see the module documentation).
    pub topic: Vec<String>,
    /// `mqttv311` (default) or `mqttv50`: the protocol spoken to the remote.
    pub bridge_protocol_version: String,
    /// The remote session: `false` (Mosquitto's default) keeps it across reconnections, so
    /// messages for the bridge wait on the remote while it is away.
    pub cleansession: bool,
    /// The local session of the bridge (its queue of outgoing messages): defaults to
    /// `cleansession`. `false` keeps outgoing messages while the remote is down, in the
    /// durable store with `persistence`.
    pub local_cleansession: Option<bool>,
    /// Client id on the remote; default `<hostname>.<name>` as Mosquitto.
    pub remote_clientid: Option<String>,
    /// Client id of the bridge's local session; default `local.<remote_clientid>`.
    pub local_clientid: Option<String>,
    /// User name on the remote.
    pub remote_username: Option<String>,
    /// Password on the remote (never logged).
    pub remote_password: Option<String>,
    /// Keep alive towards the remote, seconds.
    pub keepalive_interval: u16,
    /// Seconds before reconnecting: one value (constant), or two, `BASE CAP`, for an
    /// exponential backoff with jitter from BASE up to CAP (Mosquitto 2.0).
    pub restart_timeout: Vec<u32>,
    /// `automatic` (default: connect at start and reconnect) or `once` (connect at start, never
    /// reconnect). Mosquitto's `lazy` is refused (not supported).
    pub start_type: String,
    /// Tell the remote this is a bridge (Mosquitto's protocol level | 0x80): a Mosquitto or Wren
    /// remote then neither sends the bridge's own messages back nor clears their RETAIN flag.
    /// Set `false` towards brokers that refuse it (NATS, most cloud brokers).
    pub try_private: bool,
    /// Publish the bridge's state, retained, `1` connected or `0` not, on
    /// `notification_topic` locally and on the remote (`0` on the remote as the bridge's will).
    pub notifications: bool,
    /// Only locally.
    pub notifications_local_only: bool,
    /// Default `$SYS/broker/connection/<remote_clientid>/state`.
    pub notification_topic: Option<String>,
    /// TLS towards the remote: the CA certificates to trust (PEM). Setting it turns TLS on.
    pub bridge_cafile: Option<PathBuf>,
    /// Client certificate (PEM) for the remote, with `bridge_keyfile`.
    pub bridge_certfile: Option<PathBuf>,
    /// Client key (PEM).
    pub bridge_keyfile: Option<PathBuf>,
    /// Do not check that the remote's certificate names the host connected to (the chain is
    /// still verified). For tests only.
    pub bridge_insecure: bool,
    /// Largest packet the bridge accepts from the remote (5.0 Maximum Packet Size); 0: no limit
    /// beyond the broker's `max_packet_size`.
    pub bridge_max_packet_size: u32,
}

impl Default for Bridge {
    fn default() -> Self {
        Bridge {
            name: String::new(),
            address: Vec::new(),
            round_robin: false,
            topic: Vec::new(),
            bridge_protocol_version: "mqttv311".into(),
            cleansession: false,
            local_cleansession: None,
            remote_clientid: None,
            local_clientid: None,
            remote_username: None,
            remote_password: None,
            keepalive_interval: 60,
            restart_timeout: vec![5, 30],
            start_type: "automatic".into(),
            try_private: true,
            notifications: true,
            notifications_local_only: false,
            notification_topic: None,
            bridge_cafile: None,
            bridge_certfile: None,
            bridge_keyfile: None,
            bridge_insecure: false,
            bridge_max_packet_size: 0,
        }
    }
}

/// Which way a topic line carries messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the remote to this broker.
    In,
    /// From this broker to the remote.
    Out,
    /// Both ways.
    Both,
}

impl Direction {
    /// Whether messages come in from the remote.
    pub fn inbound(self) -> bool {
        matches!(self, Direction::In | Direction::Both)
    }

    /// Whether messages go out to the remote.
    pub fn outbound(self) -> bool {
        matches!(self, Direction::Out | Direction::Both)
    }
}

/// A parsed `topic` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLine {
    /// The pattern (may be empty when a prefix names the whole topic).
    pub pattern: String,
    /// Which way.
    pub direction: Direction,
    /// The QoS of the subscriptions made for it (at most; the remote may grant less).
    pub qos: QoS,
    /// Local prefix.
    pub local_prefix: String,
    /// Remote prefix.
    pub remote_prefix: String,
}

impl TopicLine {
    /// Read a line in Mosquitto's syntax; the error says what is wrong.
    pub fn parse(line: &str) -> Result<TopicLine, String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let unquote = |w: &str| {
            if w == "\"\"" {
                String::new()
            } else {
                w.to_owned()
            }
        };
        let Some(pattern) = words.first() else {
            return Err("a topic pattern is needed".into());
        };
        if words.len() > 5 {
            return Err("too many words (PATTERN [in|out|both] [QOS] [LOCAL] [REMOTE])".into());
        }
        let direction = match words.get(1).copied() {
            None | Some("out") => Direction::Out,
            Some("in") => Direction::In,
            Some("both") => Direction::Both,
            Some(other) => return Err(format!("'{other}' is not in, out or both")),
        };
        let qos = match words.get(2).copied() {
            None | Some("0") => QoS::AtMostOnce,
            Some("1") => QoS::AtLeastOnce,
            Some("2") => QoS::ExactlyOnce,
            Some(other) => return Err(format!("'{other}' is not a QoS (0, 1 or 2)")),
        };
        let t = TopicLine {
            pattern: unquote(pattern),
            direction,
            qos,
            local_prefix: words.get(3).map(|w| unquote(w)).unwrap_or_default(),
            remote_prefix: words.get(4).map(|w| unquote(w)).unwrap_or_default(),
        };
        if t.pattern.is_empty() && t.local_prefix.is_empty() && t.remote_prefix.is_empty() {
            return Err("an empty pattern needs a prefix".into());
        }
        // Mosquitto 2.0.19 (crash on a crafted remapped topic): every filter the line makes
        // must be valid, and a prefix must not hold wildcards.
        for prefix in [&t.local_prefix, &t.remote_prefix] {
            if prefix.contains(['+', '#']) {
                return Err(format!("prefix '{prefix}' contains a wildcard"));
            }
        }
        for filter in [t.local_filter(), t.remote_filter()] {
            if TopicFilter::new(&filter).is_err() {
                return Err(format!("'{filter}' is not a valid topic filter"));
            }
        }
        Ok(t)
    }

    /// The filter subscribed to on this broker (outbound lines).
    pub fn local_filter(&self) -> String {
        format!("{}{}", self.local_prefix, self.pattern)
    }

    /// The filter subscribed to on the remote (inbound lines).
    pub fn remote_filter(&self) -> String {
        format!("{}{}", self.remote_prefix, self.pattern)
    }
}

impl Bridge {
    /// The parsed topic lines (checked by [`Bridge::validate`]).
    pub fn topics(&self) -> Vec<TopicLine> {
        self.topic
            .iter()
            .filter_map(|t| TopicLine::parse(t).ok())
            .collect()
    }

    /// Whether the remote is spoken to in 5.0.
    pub fn is_v5(&self) -> bool {
        self.bridge_protocol_version == "mqttv50"
    }

    /// Client id on the remote.
    pub fn remote_client_id(&self) -> String {
        self.remote_clientid
            .clone()
            .unwrap_or_else(|| format!("{}.{}", hostname(), self.name))
    }

    /// Client id of the local session.
    pub fn local_client_id(&self) -> String {
        self.local_clientid
            .clone()
            .unwrap_or_else(|| format!("local.{}", self.remote_client_id()))
    }

    /// Whether the local session starts clean at every connection.
    pub fn local_clean(&self) -> bool {
        self.local_cleansession.unwrap_or(self.cleansession)
    }

    /// The state topic.
    pub fn notification_topic(&self) -> String {
        self.notification_topic
            .clone()
            .unwrap_or_else(|| format!("$SYS/broker/connection/{}/state", self.remote_client_id()))
    }

    /// The remote addresses as `(host, port)`.
    pub fn addresses(&self) -> Vec<(String, u16)> {
        self.address
            .iter()
            .filter_map(|a| split_address(a).ok())
            .collect()
    }

    /// Refuse what cannot work, naming the bridge and the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &str, why: String| {
            ConfigError::new(
                format!("bridge.{key}"),
                format!("bridge {}: {why}", self.name),
            )
        };
        if self.name.is_empty() || self.name.contains(['/', '+', '#']) {
            return Err(err("name", format!("'{}' is not a bridge name", self.name)));
        }
        if self.address.is_empty() {
            return Err(err(
                "address",
                "at least one remote address is needed".into(),
            ));
        }
        for a in &self.address {
            split_address(a).map_err(|why| err("address", why))?;
        }
        if self.topic.is_empty() {
            return Err(err("topic", "at least one topic line is needed".into()));
        }
        for t in &self.topic {
            TopicLine::parse(t).map_err(|why| err("topic", format!("topic '{t}': {why}")))?;
        }
        if !matches!(
            self.bridge_protocol_version.as_str(),
            "mqttv311" | "mqttv50"
        ) {
            return Err(err(
                "bridge_protocol_version",
                format!(
                    "'{}' is not mqttv311 or mqttv50",
                    self.bridge_protocol_version
                ),
            ));
        }
        if !matches!(self.restart_timeout.len(), 1 | 2) || self.restart_timeout.contains(&0) {
            return Err(err(
                "restart_timeout",
                "one or two whole numbers of seconds above 0 expected".into(),
            ));
        }
        if !matches!(self.start_type.as_str(), "automatic" | "once") {
            return Err(err(
                "start_type",
                format!("'{}' is not supported (automatic or once)", self.start_type),
            ));
        }
        if self.bridge_certfile.is_some() != self.bridge_keyfile.is_some() {
            return Err(err(
                "bridge_certfile",
                "bridge_certfile and bridge_keyfile go together".into(),
            ));
        }
        if self.bridge_certfile.is_some() && self.bridge_cafile.is_none() {
            return Err(err(
                "bridge_cafile",
                "a client certificate needs TLS: set bridge_cafile".into(),
            ));
        }
        Ok(())
    }
}

/// This machine's host name (read once), for the default `remote_clientid`.
fn hostname() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "wren".into())
    })
}

/// `host:port`, `host` (port 1883) or `[v6]:port`.
fn split_address(a: &str) -> Result<(String, u16), String> {
    let bad = || format!("'{a}' is not host:port");
    if let Some(rest) = a.strip_prefix('[') {
        let (host, port) = rest.split_once(']').ok_or_else(bad)?;
        let port = match port.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if port.is_empty() => 1883,
            None => return Err(bad()),
        };
        return Ok((host.to_owned(), port));
    }
    match a.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.contains(':') => {
            Ok((host.to_owned(), port.parse().map_err(|_| bad())?))
        }
        None if !a.is_empty() => Ok((a.to_owned(), 1883)),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_lines_in_mosquittos_syntax() {
        let t = TopicLine::parse("sensors/# out 1 edge/ cloud/site1/").unwrap();
        assert_eq!(t.direction, Direction::Out);
        assert_eq!(t.qos, QoS::AtLeastOnce);
        assert_eq!(t.local_filter(), "edge/sensors/#");
        assert_eq!(t.remote_filter(), "cloud/site1/sensors/#");
        let t = TopicLine::parse("#").unwrap();
        assert_eq!((t.direction, t.qos), (Direction::Out, QoS::AtMostOnce));
        let t = TopicLine::parse("\"\" in 2 local/x remote/y").unwrap();
        assert_eq!(
            (t.local_filter(), t.remote_filter()),
            ("local/x".into(), "remote/y".into())
        );
        assert!(t.direction.inbound() && !t.direction.outbound());
        for bad in [
            "",
            "a sideways",
            "a in 3",
            "a in 1 b/+ c",
            "a in 1 b c/#",
            "a/#/b both",
            "\"\" both 1",
            "a in 1 b c d",
        ] {
            assert!(TopicLine::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn addresses_and_refusals() {
        assert_eq!(split_address("h:1").unwrap(), ("h".into(), 1));
        assert_eq!(split_address("h").unwrap(), ("h".into(), 1883));
        assert_eq!(split_address("[::1]:9").unwrap(), ("::1".into(), 9));
        for bad in ["", ":1", "h:x", "h:70000", "[::1", "::1:9"] {
            assert!(split_address(bad).is_err(), "{bad:?} accepted");
        }
        let ok = Bridge {
            name: "b".into(),
            address: vec!["127.0.0.1:1".into()],
            topic: vec!["# both 1".into()],
            ..Bridge::default()
        };
        assert!(ok.validate().is_ok());
        let refused = [
            Bridge {
                name: String::new(),
                ..ok.clone()
            },
            Bridge {
                address: vec![],
                ..ok.clone()
            },
            Bridge {
                topic: vec![],
                ..ok.clone()
            },
            Bridge {
                topic: vec!["a in 7".into()],
                ..ok.clone()
            },
            Bridge {
                bridge_protocol_version: "mqttv31".into(),
                ..ok.clone()
            },
            Bridge {
                restart_timeout: vec![],
                ..ok.clone()
            },
            Bridge {
                start_type: "lazy".into(),
                ..ok.clone()
            },
            Bridge {
                bridge_certfile: Some("c".into()),
                ..ok.clone()
            },
        ];
        for b in refused {
            assert!(b.validate().is_err(), "{b:?} accepted");
        }
        assert_eq!(
            ok.local_client_id(),
            format!("local.{}", ok.remote_client_id())
        );
        assert!(ok.remote_client_id().ends_with(".b"));
    }
}
