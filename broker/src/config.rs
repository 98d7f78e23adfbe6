//! Broker configuration: every setting and limit with its default. Loaded from TOML (see
//! `broker/wren.toml`, which documents each key); the command line overrides `port` and `bind`.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Broker configuration. Every field has a default, so an empty file is a valid configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub bind: String,
    /// TCP port to listen on (0: an ephemeral port, for tests).
    pub port: u16,
    /// Executor threads; 0 means one per CPU core. The default is one: the protocol core is
    /// one lock, so further threads add cross-thread wake-ups and lock hand-offs rather than
    /// routing capacity (on a 2-vCPU machine one thread beat two on every `wren-bench` row);
    /// more can pay where socket work dominates (many busy connections, many cores).
    pub threads: usize,
    /// Busy polling: once an executor thread runs out of work it keeps polling for new work
    /// (runnable tasks, socket events) for up to this many microseconds before it sleeps.
    /// Waking a sleeping thread costs tens of microseconds on virtual machines, several times
    /// the work of a QoS 1 window turnaround. Adaptive: a thread whose spins find nothing
    /// halves its spin (down to none), so a quiet broker does not poll. 0: never spin.
    pub busy_poll_us: u64,
    /// Most simultaneous connections; 0 means unlimited (Mosquitto's `max_connections -1`).
    pub max_connections: usize,
    /// Largest packet accepted from a client once connected, in bytes (fixed header included).
    /// Checked from the fixed header, before the packet is buffered.
    pub max_packet_size: u32,
    /// Largest first packet (CONNECT) accepted from a connection that has not connected yet:
    /// small, so unauthenticated peers cannot make the broker buffer much (CVE-2017-7651,
    /// CVE-2023-0809).
    pub max_connect_packet_size: u32,
    /// Seconds a new connection has to send CONNECT.
    pub connect_timeout: u64,
    /// Largest keep-alive accepted, in seconds; a 3.1.1 CONNECT asking for more is refused with
    /// CONNACK 0x02 (as Mosquitto does).
    pub max_keepalive: u16,
    /// QoS 1/2 messages in flight (sent, not yet acknowledged) per client; more are queued.
    /// 0: unlimited.
    pub max_inflight_messages: usize,
    /// Messages queued per session beyond the in-flight window or while the client is offline.
    /// Once a connected client's queue holds half of this, its publishers are held back until
    /// it is down to a quarter (backpressure, see the README's drop policy). When full: a new
    /// QoS 0 message is dropped, else the oldest queued QoS 0 message makes room, else the new
    /// message is dropped. 0: unlimited (memory is then unbounded; no backpressure).
    pub max_queued_messages: usize,
    /// Whether QoS 0 messages are queued for offline persistent sessions (Mosquitto's
    /// `queue_qos0_messages`).
    pub queue_qos0_messages: bool,
    /// Bytes waiting in one connection's socket queue above which its publishers are held back
    /// until it drains (backpressure), and above twice which, or once it is stalled, QoS 0
    /// messages to it are dropped. At eight times this the connection is closed.
    pub max_outgoing_bytes: usize,
    /// Backpressure: the longest a publisher is held back in one go for congested subscribers
    /// (one that takes no bytes for a second is given up on sooner), in milliseconds. 0 turns
    /// backpressure off: messages to a congested subscriber are dropped by the limits at once.
    pub max_publisher_hold_ms: u64,
    /// Seconds between `$SYS/broker/...` updates; 0 turns `$SYS` off.
    pub sys_interval: u64,
    /// Hibernation of quiet connections (Linux): a client that has just connected or
    /// subscribed (or unsubscribed), or whose last quiet spell lasted at least this many milliseconds, gives its task and reactor
    /// registration back while it is quiet (a bare socket in an epoll set; it costs about 400
    /// bytes less). 0: connections never hibernate.
    pub hibernate_after_ms: u64,
    /// Whether a client may connect with an empty client id (clean session only); it is then
    /// assigned `auto_id_prefix` + a random id.
    pub allow_zero_length_clientid: bool,
    /// Prefix of assigned client ids.
    pub auto_id_prefix: String,
    /// Most subscriptions one session may hold; further filters get SUBACK 0x80. 0: unlimited.
    pub max_subscriptions_per_client: usize,
    /// Longest 5.0 Session Expiry Interval granted, in seconds (4294967295 = "never expires" is
    /// allowed); a longer request is shortened and CONNACK says so.
    pub max_session_expiry_interval: u32,
    /// 5.0 Receive Maximum sent in CONNACK: incoming QoS 2 messages a client may have
    /// unreleased (QoS 1 is acknowledged at once); more is DISCONNECT 0x93. 0 means 65535.
    pub receive_maximum: u16,
    /// 5.0 Topic Alias Maximum sent in CONNACK: aliases a client may set up; 0 = none.
    pub topic_alias_maximum: u16,
    /// 5.0: topic aliases the broker assigns toward a client (at most the client's Topic Alias
    /// Maximum), first come first served per connection; 0 = never assign.
    pub outbound_topic_aliases: u16,
    /// Highest QoS accepted and granted (0, 1 or 2); sent in a 5.0 CONNACK when below 2.
    pub maximum_qos: u8,
    /// Whether retained messages are supported (5.0 CONNACK Retain Available); when false a
    /// 5.0 PUBLISH with RETAIN gets DISCONNECT 0x9A and 3.1.1 retained publishes are forwarded
    /// without being stored.
    pub retain_available: bool,
    /// Whether wildcard filters are accepted (else SUBACK 0xA2 in 5.0, 0x80 in 3.1.1).
    pub wildcard_subscription_available: bool,
    /// Whether 5.0 Subscription Identifiers are accepted (else SUBACK 0xA1).
    pub subscription_identifier_available: bool,
    /// Whether `$share/{group}/{filter}` subscriptions are accepted (else SUBACK 0x9E).
    pub shared_subscription_available: bool,
    /// 5.0 Response Information sent in CONNACK to a client that requests it (the prefix of
    /// response topics it may use); empty = never sent.
    pub response_information: String,
    /// Users and secrets of the example 5.0 enhanced-authentication method `WREN-HMAC-SHA256`
    /// ([`crate::HmacChallenge`]); empty = the method is not offered.
    pub auth_hmac_users: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "0.0.0.0".into(),
            port: 1883,
            threads: 1,
            busy_poll_us: 200,
            max_connections: 0,
            max_packet_size: 1024 * 1024,
            max_connect_packet_size: 64 * 1024,
            connect_timeout: 10,
            max_keepalive: 65535,
            max_inflight_messages: 20,
            max_queued_messages: 1000,
            queue_qos0_messages: false,
            max_outgoing_bytes: 1024 * 1024,
            max_publisher_hold_ms: 2000,
            sys_interval: 10,
            hibernate_after_ms: 1000,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".into(),
            max_subscriptions_per_client: 0,
            max_session_expiry_interval: u32::MAX,
            receive_maximum: 100,
            topic_alias_maximum: 10,
            outbound_topic_aliases: 0,
            maximum_qos: 2,
            retain_available: true,
            wildcard_subscription_available: true,
            subscription_identifier_available: true,
            shared_subscription_available: true,
            response_information: String::new(),
            auth_hmac_users: BTreeMap::new(),
        }
    }
}

impl Config {
    /// Parse a TOML configuration.
    pub fn from_toml(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// A configuration for tests: loopback, an ephemeral port, two threads.
    pub fn for_tests() -> Config {
        Config {
            bind: "127.0.0.1".into(),
            port: 0,
            threads: 2,
            ..Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_defaults_and_unknown_keys_fail() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
        let c = Config::from_toml("port = 1884\nmax_inflight_messages = 5\n").unwrap();
        assert_eq!((c.port, c.max_inflight_messages), (1884, 5));
        assert!(Config::from_toml("prot = 1").is_err());
        let c = Config::from_toml("[auth_hmac_users]\nalice = \"s3cret\"\n").unwrap();
        assert_eq!(
            c.auth_hmac_users.get("alice").map(String::as_str),
            Some("s3cret")
        );
    }

    #[test]
    fn example_config_matches_defaults() {
        let text = include_str!("../wren.toml");
        assert_eq!(Config::from_toml(text).unwrap(), Config::default());
    }
}
