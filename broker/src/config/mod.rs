//! Broker configuration: every setting and limit with its default. Loaded from TOML (see
//! `broker/wren.toml`, which documents each key) or from Mosquitto's `mosquitto.conf`
//! (`mosquitto.rs`); the command line overrides `port` and `bind`. Listeners and who may use
//! them are in `listener.rs`.

mod bridge;
mod listener;
mod mosquitto;

use std::collections::BTreeMap;
use std::path::PathBuf;

pub use bridge::{Bridge, TopicLine};
pub use listener::{Listener, ListenerSecurity, Protocol, SocketDomain};

use serde::Deserialize;

/// Broker configuration. Every field has a default, so an empty file is a valid configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address of the default listener, used when no `[[listener]]` is configured. Empty (the
    /// default): local-only mode, the loopback addresses only, as Mosquitto 2.0 without a
    /// listener.
    pub bind: String,
    /// TCP port of the default listener (0: an ephemeral port, for tests).
    pub port: u16,
    /// The listeners (`[[listener]]` tables); none: the default listener (`bind`, `port`).
    pub listener: Vec<Listener>,
    /// Each listener has its own `allow_anonymous`, `password_file` and `acl_file` (Mosquitto's
    /// `per_listener_settings`); otherwise the global ones below apply to every listener.
    pub per_listener_settings: bool,
    /// Admit clients that send no user name. Unset: only on a listener that just this machine
    /// can reach (loopback addresses), as Mosquitto 2.0's local-only mode.
    pub allow_anonymous: Option<bool>,
    /// Users and password hashes, in mosquitto_passwd's format.
    pub password_file: Option<PathBuf>,
    /// Topic access rules, in Mosquitto's acl_file syntax.
    pub acl_file: Option<PathBuf>,
    /// Refused logins from one IP address within `failed_login_window` seconds after which its
    /// CONNECTs are refused for `failed_login_block` seconds; 0: never.
    pub max_failed_logins: u32,
    /// Seconds over which refused logins are counted.
    pub failed_login_window: u64,
    /// Seconds an address that reached `max_failed_logins` is refused for.
    pub failed_login_block: u64,
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
    /// Largest PUBLISH payload accepted, in bytes (Mosquitto's `message_size_limit`: a larger
    /// message is not forwarded, the publisher stays connected); 0: no limit but
    /// `max_packet_size`. A larger payload is acknowledged (5.0: 0x97 Quota exceeded) and dropped.
    pub message_size_limit: u32,
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
    /// Where log lines go: `stderr`, `stdout` or `none` (Mosquitto's `log_dest`).
    pub log_dest: String,
    /// Which log lines are written: `debug`, `information`, `warning`, `error` or `none`, each
    /// with those after it (Mosquitto's `log_type`, as a level). `-v` means `debug`.
    pub log_level: String,
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
    /// Seconds a disconnected client's session is kept at most, 3.1.1 persistent sessions
    /// included (Mosquitto's `persistent_client_expiration`; a 5.0 session ends at the earlier
    /// of this and its own Session Expiry Interval); 0: no such limit.
    pub persistent_client_expiration: u32,
    /// Keep persistent sessions, their QoS 1/2 messages and retained messages in a file, so
    /// that they survive a restart or a crash (`persistence_mode` says how); false: memory only.
    pub persistence: bool,
    /// `durable` (the default): a PUBACK, PUBREC or SUBACK goes out only once what it
    /// acknowledges is on disk (group commit: one fsync per batch); `periodic`: changes are
    /// written every `autosave_interval` seconds and acknowledgements do not wait (a crash
    /// loses at most that long's changes, as Mosquitto's `autosave_interval`).
    pub persistence_mode: String,
    /// Directory of the persistence file (created if missing); empty: the working directory.
    pub persistence_location: PathBuf,
    /// Name of the persistence file in `persistence_location`.
    pub persistence_file: String,
    /// Seconds between writes in the `periodic` persistence mode.
    pub autosave_interval: u64,
    /// Seconds after a write at which, the broker not being busy, the persistence file is
    /// compacted if it is mostly free space (as at start-up); 0: only at start-up.
    pub persistence_compact_interval: u64,
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
    /// Bridges to other brokers (`[[bridge]]` tables; Mosquitto's `connection` sections).
    pub bridge: Vec<Bridge>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: String::new(),
            port: 1883,
            listener: Vec::new(),
            per_listener_settings: false,
            allow_anonymous: None,
            password_file: None,
            acl_file: None,
            max_failed_logins: 5,
            failed_login_window: 60,
            failed_login_block: 60,
            threads: 1,
            busy_poll_us: 200,
            max_connections: 0,
            max_packet_size: 1024 * 1024,
            message_size_limit: 0,
            max_connect_packet_size: 64 * 1024,
            connect_timeout: 10,
            max_keepalive: 65535,
            max_inflight_messages: 20,
            max_queued_messages: 1000,
            queue_qos0_messages: false,
            max_outgoing_bytes: 1024 * 1024,
            max_publisher_hold_ms: 2000,
            sys_interval: 10,
            log_dest: "stderr".into(),
            log_level: "information".into(),
            hibernate_after_ms: 1000,
            allow_zero_length_clientid: true,
            auto_id_prefix: "auto-".into(),
            max_subscriptions_per_client: 0,
            persistent_client_expiration: 0,
            persistence: true,
            persistence_mode: "durable".into(),
            persistence_location: PathBuf::new(),
            persistence_file: "wren.db".into(),
            autosave_interval: 1800,
            persistence_compact_interval: 60,
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
            bridge: Vec::new(),
        }
    }
}

/// The largest MQTT packet: a Remaining Length of 268435455 after a 5-byte fixed header.
const MAX_MQTT_PACKET_SIZE: u32 = 268_435_455 + 5;

/// The largest PUBLISH payload: a Remaining Length of 268435455 with nothing else in it.
const MAX_MQTT_PAYLOAD: u32 = 268_435_455;

/// Values of `log_dest`.
const LOG_DESTS: [&str; 3] = ["stderr", "stdout", "none"];

/// Values of `log_level`, most verbose first.
const LOG_LEVELS: [&str; 5] = ["debug", "information", "warning", "error", "none"];

/// The smallest CONNECT: a 3.1.1 one with an empty client id and no will, user or password
/// (fixed header 2, protocol name 6, level 1, flags 1, keep-alive 2, client id length 2).
const MIN_CONNECT_PACKET_SIZE: u32 = 14;

/// Longest MQTT UTF-8 string, in bytes (a two-byte length prefix).
const MAX_MQTT_STRING: usize = 65_535;

/// Length of the random part of an assigned client id (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`).
const ASSIGNED_ID_SUFFIX: usize = 36;

/// A configuration refused: a value serde cannot read (wrong type, negative, too large for its
/// type, unknown key) or one outside its meaningful range ([`Config::validate`]). The message
/// names the key and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    key: String,
    message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }

    /// The key refused (`auth_hmac_users.alice` for a table entry; empty when the file is not
    /// TOML at all or the error concerns no one key).
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// `key` within `lo..=hi`, else "`key` must be from `lo` to `hi``what` (got `value`)".
fn in_range<T: PartialOrd + std::fmt::Display>(
    key: &str,
    value: T,
    lo: T,
    hi: T,
    what: &str,
) -> Result<(), ConfigError> {
    if lo <= value && value <= hi {
        Ok(())
    } else {
        Err(ConfigError::new(
            key,
            format!("{key} must be from {lo} to {hi}{what} (got {value})"),
        ))
    }
}

/// `value` usable as (part of) an MQTT UTF-8 string of at most `max` bytes: no U+0000
/// (\[MQTT-1.5.4-2\]).
fn mqtt_string(key: &str, value: &str, max: usize) -> Result<(), ConfigError> {
    if value.contains('\0') {
        return Err(ConfigError::new(
            key,
            format!("{key} must not contain U+0000 (MQTT strings cannot)"),
        ));
    }
    if value.len() > max {
        return Err(ConfigError::new(
            key,
            format!(
                "{key} must be at most {max} bytes long (got {})",
                value.len()
            ),
        ));
    }
    Ok(())
}

impl Config {
    /// The persistence file (`persistence_location`/`persistence_file`).
    pub fn persistence_path(&self) -> PathBuf {
        self.persistence_location.join(&self.persistence_file)
    }

    /// How the broker keeps its state, by `persistence` and `persistence_mode`.
    pub fn persistence_kind(&self) -> crate::core::Persistence {
        use crate::core::Persistence;
        match (self.persistence, self.persistence_mode.as_str()) {
            (false, _) => Persistence::Memory,
            (true, "periodic") => Persistence::Periodic,
            (true, _) => Persistence::Durable,
        }
    }

    /// Parse a TOML configuration (values are not range-checked here: see
    /// [`Config::validate`]). An error names the key, e.g. `maximum_qos: invalid value:
    /// integer `-1`, expected u8 (line 3, column 15)`.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let key = e.path().to_string();
            let key = if key == "." { String::new() } else { key };
            let inner = e.into_inner();
            let mut message = if key.is_empty() {
                inner.message().to_owned()
            } else {
                format!("{key}: {}", inner.message())
            };
            if let Some(span) = inner.span() {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                message.push_str(&format!(" (line {line}, column {column})"));
            }
            ConfigError::new(key, message)
        })
    }

    /// The listeners the broker opens: the `[[listener]]` tables, or the default listener
    /// (`bind`:`port`; local-only mode when `bind` is empty).
    pub fn listeners(&self) -> Vec<Listener> {
        if !self.listener.is_empty() {
            return self.listener.clone();
        }
        if self.bind.is_empty() {
            return vec![listener::local_only(self.port)];
        }
        vec![Listener {
            port: self.port,
            bind: self.bind.clone(),
            ..Listener::default()
        }]
    }

    /// Who may connect through `listener`: its own settings with `per_listener_settings`, the
    /// global ones otherwise; anonymous clients by default only where just this machine can
    /// connect.
    pub fn security(&self, listener: &Listener) -> ListenerSecurity {
        let (anonymous, password_file, acl_file) = if self.per_listener_settings {
            (
                listener.allow_anonymous,
                &listener.password_file,
                &listener.acl_file,
            )
        } else {
            (self.allow_anonymous, &self.password_file, &self.acl_file)
        };
        ListenerSecurity {
            allow_anonymous: anonymous.unwrap_or_else(|| listener.is_local_only()),
            password_file: password_file.clone(),
            acl_file: acl_file.clone(),
        }
    }

    /// Refuse any value outside its meaningful range; the error names the key and the range.
    /// Where the documentation gives 0 a meaning (unlimited, off, never, one per core) 0 is
    /// accepted; where 0 would break the broker (no packet fits, every connection times out
    /// at once) it is refused.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, b) in self.bridge.iter().enumerate() {
            b.validate()?;
            if self.bridge.iter().take(i).any(|a| a.name == b.name) {
                return Err(ConfigError::new(
                    "bridge.name",
                    format!("two bridges are named {}", b.name),
                ));
            }
        }
        if !["durable", "periodic"].contains(&self.persistence_mode.as_str()) {
            return Err(ConfigError::new(
                "persistence_mode",
                format!(
                    "persistence_mode must be \"durable\" or \"periodic\", not {:?}",
                    self.persistence_mode
                ),
            ));
        }
        if self.persistence_file.is_empty() || self.persistence_file.contains('/') {
            return Err(ConfigError::new(
                "persistence_file",
                "persistence_file must be a file name (the directory is persistence_location)",
            ));
        }
        if self.persistence && self.persistence_mode == "periodic" && self.autosave_interval == 0 {
            return Err(ConfigError::new(
                "autosave_interval",
                "autosave_interval must be at least 1 second in the periodic persistence mode",
            ));
        }
        for (i, l) in self.listener.iter().enumerate() {
            let key = |k: &str| format!("listener[{i}].{k}");
            if !self.per_listener_settings {
                for (k, set) in [
                    ("allow_anonymous", l.allow_anonymous.is_some()),
                    ("password_file", l.password_file.is_some()),
                    ("acl_file", l.acl_file.is_some()),
                ] {
                    if set {
                        return Err(ConfigError::new(
                            key(k),
                            format!(
                                "{} is read only with per_listener_settings = true (set it at \
                                 the top level, or turn per_listener_settings on)",
                                key(k)
                            ),
                        ));
                    }
                }
            }
            if l.certfile.is_some() != l.keyfile.is_some() {
                return Err(ConfigError::new(
                    key("certfile"),
                    format!("{} and {} go together", key("certfile"), key("keyfile")),
                ));
            }
            let client_certs =
                l.require_certificate || l.use_identity_as_username || l.use_subject_as_username;
            if client_certs && !l.is_tls() {
                return Err(ConfigError::new(
                    key("require_certificate"),
                    format!("client certificates need TLS: set {}", key("certfile")),
                ));
            }
            if l.require_certificate && l.cafile.is_none() && l.capath.is_none() {
                return Err(ConfigError::new(
                    key("cafile"),
                    format!(
                        "require_certificate needs the CAs to check against: set {} or {}",
                        key("cafile"),
                        key("capath")
                    ),
                ));
            }
            if let Some(v) = &l.tls_version
                && v != "tlsv1.2"
                && v != "tlsv1.3"
            {
                return Err(ConfigError::new(
                    key("tls_version"),
                    format!(
                        "{} must be tlsv1.2 or tlsv1.3 (got {v:?})",
                        key("tls_version")
                    ),
                ));
            }
        }
        in_range("threads", self.threads, 0, 1024, " (0: one per CPU core)")?;
        in_range(
            "failed_login_window",
            self.failed_login_window,
            1,
            86_400,
            "",
        )?;
        in_range("failed_login_block", self.failed_login_block, 1, 86_400, "")?;
        in_range(
            "busy_poll_us",
            self.busy_poll_us,
            0,
            1_000_000,
            " (0: never spin)",
        )?;
        in_range(
            "max_packet_size",
            self.max_packet_size,
            2,
            MAX_MQTT_PACKET_SIZE,
            " (2 is the smallest MQTT packet; 0 does not mean unlimited here)",
        )?;
        in_range(
            "message_size_limit",
            self.message_size_limit,
            0,
            MAX_MQTT_PAYLOAD,
            " (0: no limit but max_packet_size)",
        )?;
        in_range(
            "max_connect_packet_size",
            self.max_connect_packet_size,
            MIN_CONNECT_PACKET_SIZE,
            MAX_MQTT_PACKET_SIZE,
            " (14 is the smallest CONNECT)",
        )?;
        in_range("connect_timeout", self.connect_timeout, 1, 65_535, "")?;
        in_range(
            "max_keepalive",
            self.max_keepalive,
            1,
            u16::MAX,
            " (0 would refuse every client that uses keep-alive)",
        )?;
        in_range(
            "max_inflight_messages",
            self.max_inflight_messages,
            0,
            usize::from(u16::MAX),
            " (0: unlimited; packet identifiers are 16-bit)",
        )?;
        if self.max_outgoing_bytes == 0 {
            return Err(ConfigError::new(
                "max_outgoing_bytes",
                "max_outgoing_bytes must be at least 1 (got 0): 0 would close every connection \
                 on its first packet",
            ));
        }
        for (key, value, allowed) in [
            ("log_dest", &self.log_dest, &LOG_DESTS[..]),
            ("log_level", &self.log_level, &LOG_LEVELS[..]),
        ] {
            if !allowed.contains(&value.as_str()) {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "{key} must be one of {} (got {value:?})",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        mqtt_string(
            "auto_id_prefix",
            &self.auto_id_prefix,
            MAX_MQTT_STRING - ASSIGNED_ID_SUFFIX,
        )?;
        if self.maximum_qos > 2 {
            return Err(ConfigError::new(
                "maximum_qos",
                format!("maximum_qos must be 0, 1 or 2 (got {})", self.maximum_qos),
            ));
        }
        mqtt_string(
            "response_information",
            &self.response_information,
            MAX_MQTT_STRING,
        )?;
        for (user, secret) in &self.auth_hmac_users {
            let key = format!("auth_hmac_users.{user}");
            if user.is_empty() {
                return Err(ConfigError::new(
                    "auth_hmac_users",
                    "auth_hmac_users: a user name must not be empty",
                ));
            }
            mqtt_string(&key, user, MAX_MQTT_STRING)?;
            if secret.is_empty() {
                return Err(ConfigError::new(
                    &key,
                    format!("{key}: the secret must not be empty"),
                ));
            }
        }
        Ok(())
    }

    /// Read Mosquitto's configuration file syntax (`mosquitto.conf`): `file` is the file `text`
    /// was read from, named in messages; a relative `include_dir` is taken from `base_dir`
    /// (an empty path: the working directory, which is where Mosquitto takes it from). Besides
    /// the configuration: one warning line per key read but not applied as Mosquitto would
    /// apply it (`Warning: Unsupported key 'persistence' in mosquitto.conf line 4: ignored.
    /// ...`), to be logged at start. An error (an invalid value, a duplicate, an unknown key,
    /// or a key whose omission would let in clients Mosquitto refuses) names the file and line:
    /// `Invalid max_inflight_messages value (foo) in mosquitto.conf line 12: ...`. The result
    /// is validated ([`Config::validate`]). See `broker/README.md`, "Your mosquitto.conf".
    pub fn from_mosquitto_conf(
        text: &str,
        file: &std::path::Path,
        base_dir: &std::path::Path,
    ) -> Result<(Config, Vec<String>), ConfigError> {
        mosquitto::read(text, file, base_dir)
            .map(|(config, warnings)| (config, warnings.iter().map(|w| w.to_string()).collect()))
    }

    /// A configuration for tests: loopback, an ephemeral port, two threads.
    pub fn for_tests() -> Config {
        Config {
            bind: "127.0.0.1".into(),
            port: 0,
            threads: 2,
            // In-process test brokers share a working directory: memory only unless a test
            // gives one its own persistence directory.
            persistence: false,
            ..Config::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> ConfigError {
        let c = Config::from_toml(text).unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"));
        c.validate()
            .expect_err(&format!("{text:?} should be refused"))
    }

    fn accepted(text: &str) {
        let c = Config::from_toml(text).unwrap_or_else(|e| panic!("{text:?} does not parse: {e}"));
        if let Err(e) = c.validate() {
            panic!("{text:?} refused: {e}");
        }
    }

    #[test]
    fn empty_file_is_defaults_and_unknown_keys_fail() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
        let c = Config::from_toml("port = 1884\nmax_inflight_messages = 5\n").unwrap();
        assert_eq!((c.port, c.max_inflight_messages), (1884, 5));
        let e = Config::from_toml("prot = 1").unwrap_err();
        assert!(e.to_string().contains("unknown field `prot`"), "{e}");
        let c = Config::from_toml("[auth_hmac_users]\nalice = \"s3cret\"\n").unwrap();
        assert_eq!(
            c.auth_hmac_users.get("alice").map(String::as_str),
            Some("s3cret")
        );
    }

    #[test]
    fn example_config_matches_defaults_and_is_valid() {
        let text = include_str!("../../wren.toml");
        let c = Config::from_toml(text).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(Config::for_tests().validate(), Ok(()));
    }

    /// wren.toml documents every key: it sets each one (the unknown-key error lists them all).
    #[test]
    fn example_config_sets_every_key() {
        let text = include_str!("../../wren.toml");
        let e = Config::from_toml("no_such_key = 1")
            .unwrap_err()
            .to_string();
        let listed = e.split_once("expected one of").unwrap().1;
        let keys: Vec<&str> = listed.split('`').skip(1).step_by(2).collect();
        assert_eq!(keys.len(), 49, "{listed}");
        for key in keys {
            // Keys without a default value (and the listener tables) are shown commented out.
            let set = text.lines().any(|l| {
                let l = l.trim_start_matches("# ");
                l.starts_with(&format!("{key} = "))
                    || l.trim() == format!("[{key}]")
                    || l.trim() == format!("[[{key}]]")
            });
            assert!(set, "wren.toml does not set {key}");
        }
    }

    /// Values serde refuses (negative, too large for the type, wrong type) name the key and
    /// the line, on one line.
    #[test]
    fn parse_errors_name_the_key_and_line() {
        let cases = [
            (
                "maximum_qos = -1",
                "maximum_qos",
                "maximum_qos: invalid value: integer `-1`, expected u8 (line 1, column 15)",
            ),
            (
                "port = 1883\n\nthreads = -2\n",
                "threads",
                "threads: invalid value: integer `-2`, expected usize (line 3, column 11)",
            ),
            (
                "port = 70000",
                "port",
                "port: invalid value: integer `70000`, expected u16 (line 1, column 8)",
            ),
            (
                "max_keepalive = 65536",
                "max_keepalive",
                "max_keepalive: invalid value: integer `65536`, expected u16",
            ),
            (
                "connect_timeout = \"10\"",
                "connect_timeout",
                "connect_timeout: invalid type: string \"10\", expected u64",
            ),
            (
                "retain_available = 1",
                "retain_available",
                "retain_available: invalid type: integer `1`, expected a boolean",
            ),
            (
                "[auth_hmac_users]\nalice = 5\n",
                "auth_hmac_users.alice",
                "auth_hmac_users.alice: invalid type: integer `5`, expected a string (line 2, column 9)",
            ),
        ];
        for (text, key, message) in cases {
            let e = Config::from_toml(text).unwrap_err();
            assert_eq!(e.key(), key, "{text:?}: {e}");
            assert!(e.to_string().starts_with(message), "{text:?}: {e}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
        // Not TOML at all: no key, but the place.
        let e = Config::from_toml("port = ").unwrap_err();
        assert_eq!(e.key(), "");
        assert!(e.to_string().contains("(line 1, column 8)"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_refused_naming_key_and_range() {
        let cases = [
            (
                "maximum_qos = 3",
                "maximum_qos",
                "maximum_qos must be 0, 1 or 2 (got 3)",
            ),
            (
                "maximum_qos = 255",
                "maximum_qos",
                "maximum_qos must be 0, 1 or 2 (got 255)",
            ),
            (
                "[[listener]]\nport = 1\nallow_anonymous = true",
                "listener[0].allow_anonymous",
                "listener[0].allow_anonymous is read only with per_listener_settings = true",
            ),
            (
                "[[listener]]\nport = 1\ncertfile = \"c.pem\"",
                "listener[0].certfile",
                "listener[0].certfile and listener[0].keyfile go together",
            ),
            (
                "[[listener]]\nport = 1\nrequire_certificate = true",
                "listener[0].require_certificate",
                "client certificates need TLS",
            ),
            (
                "[[listener]]\nport = 1\ncertfile = \"c\"\nkeyfile = \"k\"\nrequire_certificate = true",
                "listener[0].cafile",
                "require_certificate needs the CAs",
            ),
            (
                "[[listener]]\nport = 1\ncertfile = \"c\"\nkeyfile = \"k\"\ntls_version = \"tlsv1\"",
                "listener[0].tls_version",
                "listener[0].tls_version must be tlsv1.2 or tlsv1.3 (got \"tlsv1\")",
            ),
            (
                "threads = 1025",
                "threads",
                "threads must be from 0 to 1024 (0: one per CPU core) (got 1025)",
            ),
            (
                "busy_poll_us = 1000001",
                "busy_poll_us",
                "busy_poll_us must be from 0 to 1000000 (0: never spin) (got 1000001)",
            ),
            (
                "max_packet_size = 0",
                "max_packet_size",
                "max_packet_size must be from 2 to 268435460 (2 is the smallest MQTT packet; 0 does not mean unlimited here) (got 0)",
            ),
            (
                "max_packet_size = 1",
                "max_packet_size",
                "max_packet_size must be from 2 to 268435460",
            ),
            (
                "max_packet_size = 268435461",
                "max_packet_size",
                "(got 268435461)",
            ),
            (
                "max_connect_packet_size = 0",
                "max_connect_packet_size",
                "max_connect_packet_size must be from 14 to 268435460 (14 is the smallest CONNECT) (got 0)",
            ),
            (
                "max_connect_packet_size = 13",
                "max_connect_packet_size",
                "(got 13)",
            ),
            (
                "max_connect_packet_size = 4294967295",
                "max_connect_packet_size",
                "(got 4294967295)",
            ),
            (
                "connect_timeout = 0",
                "connect_timeout",
                "connect_timeout must be from 1 to 65535 (got 0)",
            ),
            (
                "connect_timeout = 65536",
                "connect_timeout",
                "connect_timeout must be from 1 to 65535 (got 65536)",
            ),
            (
                "max_keepalive = 0",
                "max_keepalive",
                "max_keepalive must be from 1 to 65535 (0 would refuse every client that uses keep-alive) (got 0)",
            ),
            (
                "max_inflight_messages = 65536",
                "max_inflight_messages",
                "max_inflight_messages must be from 0 to 65535 (0: unlimited; packet identifiers are 16-bit) (got 65536)",
            ),
            (
                "max_outgoing_bytes = 0",
                "max_outgoing_bytes",
                "max_outgoing_bytes must be at least 1 (got 0)",
            ),
            (
                "message_size_limit = 268435456",
                "message_size_limit",
                "message_size_limit must be from 0 to 268435455 (0: no limit but max_packet_size) \
                 (got 268435456)",
            ),
            (
                "log_dest = \"file\"",
                "log_dest",
                "log_dest must be one of stderr, stdout, none (got \"file\")",
            ),
            (
                "log_level = \"info\"",
                "log_level",
                "log_level must be one of debug, information, warning, error, none (got \"info\")",
            ),
            (
                "auto_id_prefix = \"a\\u0000b\"",
                "auto_id_prefix",
                "auto_id_prefix must not contain U+0000",
            ),
            (
                "response_information = \"\\u0000\"",
                "response_information",
                "response_information must not contain U+0000",
            ),
            (
                "[auth_hmac_users]\nalice = \"\"\n",
                "auth_hmac_users.alice",
                "auth_hmac_users.alice: the secret must not be empty",
            ),
            (
                "[auth_hmac_users]\n\"\" = \"s\"\n",
                "auth_hmac_users",
                "auth_hmac_users: a user name must not be empty",
            ),
            (
                "[auth_hmac_users]\n\"a\\u0000\" = \"s\"\n",
                "auth_hmac_users.a\0",
                "must not contain U+0000",
            ),
        ];
        for (text, key, message) in cases {
            let e = refused(text);
            assert_eq!(e.key(), key, "{text:?}: {e}");
            assert!(e.to_string().contains(message), "{text:?}: {e}");
        }
        // Strings too long for MQTT.
        let long = "x".repeat(65_535 - 36 + 1);
        let e = refused(&format!("auto_id_prefix = \"{long}\""));
        assert_eq!(
            e.to_string(),
            "auto_id_prefix must be at most 65499 bytes long (got 65500)"
        );
        let long = "x".repeat(65_536);
        let e = refused(&format!("response_information = \"{long}\""));
        assert_eq!(e.key(), "response_information");
    }

    /// The edges of each range, and every key where 0 means unlimited, off or never.
    #[test]
    fn edges_and_documented_zeros_are_accepted() {
        for text in [
            "port = 0",
            "port = 65535",
            "bind = \"localhost\"",
            "threads = 0",
            "threads = 1024",
            "busy_poll_us = 0",
            "busy_poll_us = 1000000",
            "max_connections = 0",
            "max_packet_size = 2",
            "max_packet_size = 268435460",
            "max_connect_packet_size = 14",
            "max_connect_packet_size = 268435460",
            "connect_timeout = 1",
            "connect_timeout = 65535",
            "max_keepalive = 1",
            "max_inflight_messages = 0",
            "max_inflight_messages = 65535",
            "max_queued_messages = 0",
            "max_outgoing_bytes = 1",
            "max_publisher_hold_ms = 0",
            "sys_interval = 0",
            "hibernate_after_ms = 0",
            "auto_id_prefix = \"\"",
            "max_subscriptions_per_client = 0",
            "max_session_expiry_interval = 0",
            "receive_maximum = 0",
            "topic_alias_maximum = 0",
            "outbound_topic_aliases = 65535",
            "maximum_qos = 0",
            "maximum_qos = 1",
            "response_information = \"resp/\"",
            "[auth_hmac_users]\nalice = \"s3cret\"\n",
            "message_size_limit = 0",
            "message_size_limit = 268435455",
            "persistent_client_expiration = 4294967295",
            "log_dest = \"stdout\"",
            "log_dest = \"none\"",
            "log_level = \"debug\"",
            "log_level = \"warning\"",
            "log_level = \"error\"",
            "log_level = \"none\"",
        ] {
            accepted(text);
        }
        accepted(&format!("auto_id_prefix = \"{}\"", "x".repeat(65_499)));
    }

    /// A mosquitto.conf setting and its wren.toml key give the same configuration.
    #[test]
    fn mosquitto_conf_and_toml_meet() {
        let (from_conf, warnings) = Config::from_mosquitto_conf(
            "listener 1883 127.0.0.1\nallow_anonymous true\nlog_type debug\n\
             persistent_client_expiration 1h\nmessage_size_limit 100\npersistence true\n\
             persistence_location /var/lib/wren/\n",
            std::path::Path::new("m.conf"),
            std::path::Path::new(""),
        )
        .unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let from_toml = Config::from_toml(
            "allow_anonymous = true\nlog_level = \"debug\"\npersistent_client_expiration = 3600\n\
             message_size_limit = 100\npersistence_location = \"/var/lib/wren/\"\n\
             [[listener]]\nport = 1883\nbind = \"127.0.0.1\"\n",
        )
        .unwrap();
        assert_eq!(from_conf, from_toml);
    }
}
