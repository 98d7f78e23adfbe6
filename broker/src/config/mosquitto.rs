//! Mosquitto's `mosquitto.conf`, read into a [`Config`], so that `wren-broker -c
//! /etc/mosquitto/mosquitto.conf` runs on the file Mosquitto 2.0 runs on.
//!
//! The syntax and scoping are those of Mosquitto 2.0's `config__read_file_core` (`src/conf.c`):
//! - one `key value` per line; `#` starts a comment line, blank lines are skipped, leading
//!   spaces and tabs are allowed (Mosquitto allows spaces only, and a comment only in the first
//!   column); words are separated by spaces or tabs;
//! - a value that is a path or free text (`password_file`, `auto_id_prefix`, `include_dir`, ...)
//!   is the rest of the line, spaces included, trimmed at both ends; a number, boolean or word
//!   is one word, which a `#...` comment may follow;
//! - `listener PORT [ADDRESS]` opens a listener block: the per-listener keys after it (and, with
//!   `per_listener_settings true`, the security keys) apply to it. Before the first `listener`
//!   line of each file they apply to the default listener, which `port` and `bind_address` open
//!   (on port 1883 and every address unless given), and so does a per-listener key that changes
//!   something (a `socket_domain`, a certificate, ...), as in Mosquitto 2.0. The default listener
//!   comes after the `listener` ones;
//! - `include_dir DIR` (main file only) reads every `*.conf` file of DIR, in Mosquitto's order
//!   (case-sensitive alphabetical, each upper-case letter just before its lower case), each
//!   starting in the default listener's scope.
//!
//! Every key of Mosquitto 2.0 is mapped onto a [`Config`] setting, reported as a [`Warning`]
//! (not supported yet and ignored: persistence, bridges, logging to files, ...), or refused with
//! an error where ignoring it would let in clients Mosquitto refuses or expose what it hides
//! (plugins, TLS-PSK, revocation lists, cipher lists, mount points, ...). So is a key Mosquitto
//! does not know, a value it would refuse (and a few it reads leniently, such as `foo` for a
//! number), and a key given twice in one scope where it has one value.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use super::{
    Bridge, Config, ConfigError, Listener, MAX_MQTT_PACKET_SIZE, MAX_MQTT_PAYLOAD, Protocol,
    SocketDomain, TopicLine,
};

/// Where a line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    pub(crate) file: String,
    pub(crate) line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}", self.file, self.line)
    }
}

/// A key read but not applied as Mosquitto would apply it; logged at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Warning {
    pub(crate) key: String,
    pub(crate) place: Place,
    text: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The value a key Wren ignores must still have, as Mosquitto would check it.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Text,
}

/// Keys of Mosquitto 2.0 that Wren reads, checks and ignores with a warning: the value's kind
/// and why ignoring them is harmless.
const IGNORED: &[(&str, Kind, &str)] = &[
    (
        "persistence_file",
        Kind::Text,
        "Wren keeps its own store (another format) as wren.db in persistence_location; \
         Mosquitto's file is left alone",
    ),
    (
        "autosave_interval",
        Kind::Int,
        "With persistence true Wren writes every change before acknowledging it (its durable \
         mode): there is nothing to save periodically",
    ),
    (
        "autosave_on_changes",
        Kind::Bool,
        "With persistence true Wren writes every change before acknowledging it (its durable \
         mode): there is nothing to save periodically",
    ),
    (
        "pid_file",
        Kind::Text,
        "Wren writes no pid file; systemd tracks the process without one",
    ),
    (
        "user",
        Kind::Text,
        "Wren does not change user: start it as the user it should run as (systemd: User=)",
    ),
    ("log_facility", Kind::Int, "Wren does not log to syslog"),
    (
        "log_timestamp",
        Kind::Bool,
        "Log lines always start with the time in seconds since the epoch",
    ),
    (
        "log_timestamp_format",
        Kind::Text,
        "Log lines always start with the time in seconds since the epoch",
    ),
    (
        "memory_limit",
        Kind::Int,
        "There is no heap limit: max_queued_messages and max_outgoing_bytes bound each client's \
         memory",
    ),
    (
        "max_inflight_bytes",
        Kind::Int,
        "Only max_inflight_messages limits the messages in flight",
    ),
    (
        "max_queued_bytes",
        Kind::Int,
        "Only max_queued_messages limits a client's queue",
    ),
    (
        "upgrade_outgoing_qos",
        Kind::Bool,
        "Messages go out at the lower of the published and the granted QoS, as MQTT says",
    ),
    (
        "allow_duplicate_messages",
        Kind::Bool,
        "Deprecated in Mosquitto; a client gets one copy of a message that matches several of \
         its subscriptions",
    ),
    (
        "check_retain_source",
        Kind::Bool,
        "There are no ACLs yet to check a retained message's publisher against",
    ),
    (
        "websockets_log_level",
        Kind::Int,
        "WebSocket listeners are not served by this build yet",
    ),
    (
        "websockets_headers_size",
        Kind::Int,
        "WebSocket listeners are not served by this build yet",
    ),
    (
        "http_dir",
        Kind::Text,
        "WebSocket listeners, and their HTTP files, are not served by this build yet",
    ),
    (
        "dhparamfile",
        Kind::Text,
        "There is no finite-field Diffie-Hellman key exchange",
    ),
];

/// Keys of Mosquitto 2.0 that Wren refuses: ignoring them would let in clients that Mosquitto
/// refuses, or expose what it keeps apart. With why.
const REFUSED: &[(&str, &str)] = &[
    (
        "auth_plugin",
        "Mosquitto plugins cannot be loaded, and without this one its checks would not be made",
    ),
    (
        "plugin",
        "Mosquitto plugins cannot be loaded, and without this one its checks would not be made",
    ),
    (
        "auth_plugin_deny_special_chars",
        "it configures a Mosquitto plugin, which cannot be loaded",
    ),
    (
        "psk_file",
        "TLS-PSK is not supported: this listener's clients would not be checked against the file",
    ),
    (
        "psk_hint",
        "TLS-PSK is not supported: this listener's clients would not be checked as configured",
    ),
    (
        "crlfile",
        "certificate revocation lists are not supported: revoked client certificates would be \
         accepted",
    ),
    (
        "ciphers",
        "the TLS cipher list cannot be restricted: ciphers this line excludes would be offered",
    ),
    (
        "ciphers_tls1.3",
        "the TLS cipher list cannot be restricted: ciphers this line excludes would be offered",
    ),
    (
        "tls_engine",
        "OpenSSL engines (keys in hardware) are not supported",
    ),
    (
        "tls_engine_kpass_sha1",
        "OpenSSL engines (keys in hardware) are not supported",
    ),
    (
        "tls_keyform",
        "OpenSSL engines (keys in hardware) are not supported",
    ),
    (
        "bind_interface",
        "binding to a network interface is not supported: the listener would be reachable \
         through every interface",
    ),
    (
        "mount_point",
        "mount points are not supported: this listener's clients would reach every topic",
    ),
    (
        "use_username_as_clientid",
        "not supported: clients could take over each other's client ids",
    ),
    (
        "clientid_prefixes",
        "not supported: clients with any client id would be admitted",
    ),
];

/// Bridge keys of Mosquitto (`connection NAME` starts a bridge) that Wren reads into its
/// [`Bridge`]. One outside a bridge is an error, as in Mosquitto.
const BRIDGE: &[&str] = &[
    "address",
    "addresses",
    "bridge_cafile",
    "bridge_certfile",
    "bridge_insecure",
    "bridge_keyfile",
    "bridge_max_packet_size",
    "bridge_protocol_version",
    "cleansession",
    "clientid",
    "keepalive_interval",
    "local_cleansession",
    "local_clientid",
    "notification_topic",
    "notifications",
    "notifications_local_only",
    "password",
    "remote_clientid",
    "remote_password",
    "remote_username",
    "restart_timeout",
    "round_robin",
    "start_type",
    "topic",
    "try_private",
    "username",
];

/// Bridge keys of Mosquitto that Wren reads and ignores, with a warning saying why.
const BRIDGE_IGNORED: &[(&str, &str)] = &[
    ("bridge_alpn", "ALPN is not offered by Wren's bridge"),
    (
        "bridge_attempt_unsubscribe",
        "the bridge does not unsubscribe",
    ),
    (
        "bridge_bind_address",
        "the bridge connects from the default address",
    ),
    ("bridge_capath", "use bridge_cafile"),
    ("bridge_ciphers", "rustls chooses the cipher suites"),
    ("bridge_ciphers_tls1.3", "rustls chooses the cipher suites"),
    (
        "bridge_max_topic_alias",
        "the bridge sets up no topic aliases",
    ),
    ("bridge_outgoing_retain", "RETAIN is always carried"),
    ("bridge_receive_maximum", "the broker's limits apply"),
    ("bridge_reload_type", "bridges are set at start"),
    ("bridge_require_ocsp", "OCSP is not checked"),
    (
        "bridge_session_expiry_interval",
        "a kept remote session does not expire",
    ),
    ("bridge_tcp_keepalive", "MQTT keep-alive is used"),
    ("bridge_tcp_user_timeout", "MQTT keep-alive is used"),
    ("bridge_tls_version", "rustls offers TLS 1.2 and 1.3"),
    ("idle_timeout", "start_type lazy is not supported"),
    ("threshold", "start_type lazy is not supported"),
    (
        "local_username",
        "the bridge's local connection needs no login",
    ),
    (
        "local_password",
        "the bridge's local connection needs no login",
    ),
];

/// Which settings a key line goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Scope {
    /// The broker's.
    Global,
    /// The default listener's (`port`, `bind_address`; per-listener keys before any
    /// `listener` line of a file).
    Default,
    /// The listener opened by the `listener` line with this index.
    Listener(usize),
    /// The bridge with this index in `Config::bridge`.
    Bridge(usize),
}

/// A listener being read: its [`Listener`] and the per-listener settings of Mosquitto that Wren
/// has once for the whole broker.
#[derive(Debug, Clone, Default)]
struct Block {
    listener: Listener,
    /// The `listener` line (none for the default listener).
    place: Option<Place>,
    /// `max_connections`: `None` inside for -1 (unlimited).
    max_connections: Option<(Option<u64>, Place)>,
    max_qos: Option<(u8, Place)>,
    max_topic_alias: Option<(u16, Place)>,
    /// With `per_listener_settings true`.
    allow_zero_length_clientid: Option<(bool, Place)>,
    /// With `per_listener_settings true`.
    auto_id_prefix: Option<(String, Place)>,
    /// The keys given for the default listener: key, line, whether a security key.
    used: Vec<(String, Place, bool)>,
}

impl Block {
    /// Whether Mosquitto 2.0 opens the default listener for what this block sets (besides
    /// `port` and `bind_address`): a setting other than its default (`config__parse_args`).
    fn opens_default(&self, per_listener_settings: bool) -> bool {
        let l = &self.listener;
        l.socket_domain.is_some()
            || l.protocol != Protocol::Mqtt
            || l.certfile.is_some()
            || l.keyfile.is_some()
            || l.cafile.is_some()
            || l.capath.is_some()
            || l.require_certificate
            || l.use_identity_as_username
            || l.use_subject_as_username
            || self
                .max_connections
                .as_ref()
                .is_some_and(|(n, _)| n.is_some())
            || self.max_qos.as_ref().is_some_and(|(q, _)| *q != 2)
            || (per_listener_settings
                && (l.password_file.is_some()
                    || self
                        .allow_zero_length_clientid
                        .as_ref()
                        .is_some_and(|(allow, _)| !allow)))
    }

    /// How messages name this listener.
    fn describe(&self) -> String {
        match &self.place {
            Some(place) => format!("the listener on port {}, {place}", self.listener.port),
            None => "the default listener".to_owned(),
        }
    }
}

/// One `key value` line.
#[derive(Debug)]
struct Line<'a> {
    key: &'a str,
    /// Everything after the key.
    rest: &'a str,
    place: Place,
}

impl Line<'_> {
    /// `what in FILE line N`.
    fn error(&self, what: impl fmt::Display) -> ConfigError {
        ConfigError::new(self.key, format!("{what} in {}", self.place))
    }

    /// `Unsupported key 'KEY' in FILE line N: why`: a key Wren refuses.
    fn refused(&self, why: &str) -> ConfigError {
        ConfigError::new(
            self.key,
            format!("Unsupported key '{}' in {}: {why}", self.key, self.place),
        )
    }

    fn empty(&self) -> ConfigError {
        self.error(format_args!("Empty {} value", self.key))
    }

    /// `Invalid KEY value (VALUE) in FILE line N[: why]`, Mosquitto's wording.
    fn invalid(&self, value: &str, why: &str) -> ConfigError {
        let mut message = format!("Invalid {} value ({value}) in {}", self.key, self.place);
        if !why.is_empty() {
            message.push_str(": ");
            message.push_str(why);
        }
        ConfigError::new(self.key, message)
    }

    /// The rest of the line, trimmed: a path or free text.
    fn text(&self) -> Result<&str, ConfigError> {
        match self.rest.trim() {
            "" => Err(self.empty()),
            value => Ok(value),
        }
    }

    /// One word, which a `#` comment may follow.
    fn word(&self) -> Result<&str, ConfigError> {
        let mut words = self.rest.split_whitespace();
        let first = words.next().ok_or_else(|| self.empty())?;
        match words.next() {
            Some(next) if !next.starts_with('#') => {
                Err(self.invalid(self.rest.trim(), "one value expected"))
            }
            _ => Ok(first),
        }
    }

    /// `true`/`false` (or `1`/`0`, as Mosquitto accepts).
    fn bool(&self) -> Result<bool, ConfigError> {
        match self.word()? {
            "true" | "1" => Ok(true),
            "false" | "0" => Ok(false),
            other => Err(self.invalid(other, "true or false expected")),
        }
    }

    /// An integer (Mosquitto reads `foo` as 0; Wren refuses it).
    fn int(&self) -> Result<i64, ConfigError> {
        let word = self.word()?;
        word.parse()
            .map_err(|_| self.invalid(word, "an integer expected"))
    }

    /// An integer from `lo` to `hi`.
    fn int_in(&self, lo: i64, hi: i64, why: &str) -> Result<i64, ConfigError> {
        let n = self.int()?;
        if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(self.invalid(&n.to_string(), why))
        }
    }
}

/// `n` as the type of a setting `n` was checked to fit.
fn fit<T: TryFrom<i64> + Default>(n: i64) -> T {
    T::try_from(n).unwrap_or_default()
}

/// The reader: the configuration being built, and what Mosquitto keeps while reading.
#[derive(Debug)]
struct Reader {
    config: Config,
    warnings: Vec<Warning>,
    /// The main file, which an `include_dir` must not contain.
    main: PathBuf,
    /// Where a relative `include_dir` starts.
    base_dir: PathBuf,
    default: Block,
    listeners: Vec<Block>,
    /// Where listener keys go: the default listener or a `listener` block.
    current: Scope,
    /// The bridge being read (`connection NAME`), if any: its index in `config.bridge`.
    bridge: Option<usize>,
    /// Where each bridge's `connection` line is.
    bridge_places: Vec<Place>,
    /// Single-valued keys already given, per scope: for duplicates.
    seen: HashMap<(Scope, String), Place>,
    /// The first security setting (for `per_listener_settings`, which must come before).
    security_seen: Option<Place>,
    port: Option<u16>,
    bind_address: Option<String>,
    /// `log_dest` lines, in order.
    log_dests: Vec<(String, Place)>,
    /// `log_type` lines, in order.
    log_types: Vec<(String, Place)>,
}

/// Read `text`, the contents of `file`, a relative `include_dir` taken from `base_dir`: see the
/// module documentation.
pub(crate) fn read(
    text: &str,
    file: &Path,
    base_dir: &Path,
) -> Result<(Config, Vec<Warning>), ConfigError> {
    let mut reader = Reader {
        // Mosquitto keeps nothing on disk unless `persistence true` says so.
        config: Config {
            persistence: false,
            ..Config::default()
        },
        warnings: Vec::new(),
        main: file.to_path_buf(),
        base_dir: base_dir.to_path_buf(),
        default: Block::default(),
        listeners: Vec::new(),
        current: Scope::Default,
        bridge: None,
        bridge_places: Vec::new(),
        seen: HashMap::new(),
        security_seen: None,
        port: None,
        bind_address: None,
        log_dests: Vec::new(),
        log_types: Vec::new(),
    };
    reader.read_file(text, file, 0)?;
    reader.finish()
}

impl Reader {
    /// Read one file's lines; `level` 0 is the main file, 1 one it includes.
    fn read_file(&mut self, text: &str, file: &Path, level: u8) -> Result<(), ConfigError> {
        // Mosquitto's scope is per file: each starts with the default listener and no bridge.
        let outer = (self.current, self.bridge.take());
        self.current = Scope::Default;
        let name = file.display().to_string();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
            let line = Line {
                key,
                rest,
                place: Place {
                    file: name.clone(),
                    line: index + 1,
                },
            };
            self.line(&line, level)?;
        }
        (self.current, self.bridge) = outer;
        Ok(())
    }

    fn warn(&mut self, line: &Line<'_>, text: impl fmt::Display) {
        self.warnings.push(Warning {
            key: line.key.to_owned(),
            place: line.place.clone(),
            text: format!("Warning: '{}' in {}: {text}.", line.key, line.place),
        });
    }

    fn warn_unsupported(&mut self, line: &Line<'_>, why: &str) {
        self.warnings.push(Warning {
            key: line.key.to_owned(),
            place: line.place.clone(),
            text: format!(
                "Warning: Unsupported key '{}' in {}: ignored. {why}.",
                line.key, line.place
            ),
        });
    }

    /// Refuse `line` if its key was already given in `scope`.
    fn once(&mut self, scope: Scope, line: &Line<'_>) -> Result<(), ConfigError> {
        let slot = (scope, line.key.to_owned());
        if let Some(first) = self.seen.get(&slot) {
            return Err(ConfigError::new(
                line.key,
                format!(
                    "Duplicate {} value in {} (already set in {first})",
                    line.key, line.place
                ),
            ));
        }
        self.seen.insert(slot, line.place.clone());
        Ok(())
    }

    /// The block listener keys go to now.
    fn block(&mut self) -> &mut Block {
        match self.current {
            Scope::Listener(i) => match self.listeners.get_mut(i) {
                Some(block) => block,
                None => &mut self.default,
            },
            Scope::Global | Scope::Default | Scope::Bridge(_) => &mut self.default,
        }
    }

    /// Check a per-listener key against duplicates and note it for the default listener:
    /// the block to set.
    fn listener_key(&mut self, line: &Line<'_>, security: bool) -> Result<&mut Block, ConfigError> {
        let scope = self.current;
        self.once(scope, line)?;
        let block = self.block();
        if scope == Scope::Default {
            block
                .used
                .push((line.key.to_owned(), line.place.clone(), security));
        }
        Ok(block)
    }

    /// Where a security key goes: the current listener with `per_listener_settings true`,
    /// else the broker. Checked against duplicates there.
    fn security_scope(&mut self, line: &Line<'_>) -> Result<Scope, ConfigError> {
        if self.security_seen.is_none() {
            self.security_seen = Some(line.place.clone());
        }
        if self.config.per_listener_settings {
            Ok(self.current)
        } else {
            self.once(Scope::Global, line)?;
            Ok(Scope::Global)
        }
    }

    fn line(&mut self, line: &Line<'_>, level: u8) -> Result<(), ConfigError> {
        let key = line.key;
        match key {
            "per_listener_settings" => {
                self.once(Scope::Global, line)?;
                let on = line.bool()?;
                if on && let Some(first) = &self.security_seen {
                    return Err(ConfigError::new(
                        key,
                        format!(
                            "per_listener_settings in {} must come before every other security \
                             setting (the first is in {first})",
                            line.place
                        ),
                    ));
                }
                self.config.per_listener_settings = on;
            }
            "allow_anonymous" => {
                let value = Some(line.bool()?);
                match self.security_scope(line)? {
                    Scope::Global => self.config.allow_anonymous = value,
                    _ => self.listener_key(line, true)?.listener.allow_anonymous = value,
                }
            }
            "password_file" | "acl_file" => {
                let path = Some(PathBuf::from(line.text()?));
                let per_listener = self.security_scope(line)? != Scope::Global;
                let is_password = key == "password_file";
                if per_listener {
                    let l = &mut self.listener_key(line, true)?.listener;
                    if is_password {
                        l.password_file = path;
                    } else {
                        l.acl_file = path;
                    }
                } else if is_password {
                    self.config.password_file = path;
                } else {
                    self.config.acl_file = path;
                }
            }
            "allow_zero_length_clientid" => {
                let allow = line.bool()?;
                match self.security_scope(line)? {
                    Scope::Global => self.config.allow_zero_length_clientid = allow,
                    _ => {
                        let place = line.place.clone();
                        self.listener_key(line, false)?.allow_zero_length_clientid =
                            Some((allow, place));
                    }
                }
            }
            "auto_id_prefix" => {
                let prefix = line.text()?.to_owned();
                match self.security_scope(line)? {
                    Scope::Global => self.config.auto_id_prefix = prefix,
                    _ => {
                        let place = line.place.clone();
                        self.listener_key(line, false)?.auto_id_prefix = Some((prefix, place));
                    }
                }
            }
            "port" => {
                self.once(Scope::Global, line)?;
                let port = line.int_in(1, 65_535, "a port is from 1 to 65535")?;
                self.port = Some(fit(port));
            }
            "bind_address" => {
                self.once(Scope::Global, line)?;
                self.bind_address = Some(line.text()?.to_owned());
            }
            "listener" => self.listener(line)?,
            "socket_domain" => {
                let domain = match line.word()? {
                    "ipv4" => SocketDomain::Ipv4,
                    "ipv6" => SocketDomain::Ipv6,
                    other => return Err(line.invalid(other, "ipv4 or ipv6 expected")),
                };
                self.listener_key(line, false)?.listener.socket_domain = Some(domain);
            }
            "protocol" => {
                let protocol = match line.word()? {
                    "mqtt" => Protocol::Mqtt,
                    "websockets" => Protocol::Websockets,
                    other => return Err(line.invalid(other, "mqtt or websockets expected")),
                };
                self.listener_key(line, false)?.listener.protocol = protocol;
            }
            "cafile" | "capath" | "certfile" | "keyfile" => {
                let path = Some(PathBuf::from(line.text()?));
                let l = &mut self.listener_key(line, false)?.listener;
                match key {
                    "cafile" => l.cafile = path,
                    "capath" => l.capath = path,
                    "certfile" => l.certfile = path,
                    _ => l.keyfile = path,
                }
            }
            "require_certificate" | "use_identity_as_username" | "use_subject_as_username" => {
                let on = line.bool()?;
                let l = &mut self.listener_key(line, false)?.listener;
                match key {
                    "require_certificate" => l.require_certificate = on,
                    "use_identity_as_username" => l.use_identity_as_username = on,
                    _ => l.use_subject_as_username = on,
                }
            }
            "tls_version" => {
                let version = match line.word()? {
                    v @ ("tlsv1.2" | "tlsv1.3") => v.to_owned(),
                    v @ ("tlsv1.1" | "tlsv1") => {
                        return Err(line.invalid(
                            v,
                            "TLS versions older than 1.2 are not offered (tlsv1.2 or tlsv1.3)",
                        ));
                    }
                    other => return Err(line.invalid(other, "tlsv1.2 or tlsv1.3 expected")),
                };
                self.listener_key(line, false)?.listener.tls_version = Some(version);
            }
            "max_connections" => {
                let n = line.int()?;
                if n == 0 {
                    return Err(line.invalid("0", "0 would refuse every client (-1 is unlimited)"));
                }
                let limit = u64::try_from(n).ok();
                let place = line.place.clone();
                self.listener_key(line, false)?.max_connections = Some((limit, place));
            }
            "max_qos" | "maximum_qos" => {
                let qos = line.int_in(0, 2, "0, 1 or 2 expected")?;
                let place = line.place.clone();
                self.listener_key(line, false)?.max_qos = Some((fit(qos), place));
            }
            "max_topic_alias" => {
                let n = line.int_in(0, 65_535, "0 to 65535 expected")?;
                let place = line.place.clone();
                self.listener_key(line, false)?.max_topic_alias = Some((fit(n), place));
            }
            "max_inflight_messages" => {
                self.once(Scope::Global, line)?;
                // Mosquitto: negative is 0, no limit.
                let n = line.int_in(i64::MIN, 65_535, "at most 65535 (0: no limit)")?;
                self.config.max_inflight_messages = fit(n.max(0));
            }
            "max_queued_messages" => {
                self.once(Scope::Global, line)?;
                let n = line.int()?;
                self.config.max_queued_messages = fit(n.max(0));
            }
            "max_packet_size" => {
                self.once(Scope::Global, line)?;
                let n = line.int()?;
                self.config.max_packet_size = match n {
                    // No limit: the largest packet MQTT can express.
                    0 => MAX_MQTT_PACKET_SIZE,
                    20.. => fit::<u32>(n.min(i64::from(MAX_MQTT_PACKET_SIZE))),
                    _ => {
                        return Err(line.invalid(&n.to_string(), "at least 20 bytes (0: no limit)"));
                    }
                };
            }
            "message_size_limit" => {
                self.once(Scope::Global, line)?;
                let n = line.int_in(
                    0,
                    i64::from(MAX_MQTT_PAYLOAD),
                    "0 (no limit) to 268435455 bytes",
                )?;
                self.config.message_size_limit = fit(n);
            }
            "max_keepalive" => {
                self.once(Scope::Global, line)?;
                let n = line.int_in(10, 65_535, "10 to 65535 seconds (as Mosquitto 2.0)")?;
                self.config.max_keepalive = fit(n);
            }
            "persistence" => {
                self.once(Scope::Global, line)?;
                self.config.persistence = line.bool()?;
            }
            "persistence_location" => {
                self.once(Scope::Global, line)?;
                self.config.persistence_location = PathBuf::from(line.text()?);
            }
            "persistent_client_expiration" => {
                self.once(Scope::Global, line)?;
                self.config.persistent_client_expiration = duration(line)?;
            }
            "sys_interval" => {
                self.once(Scope::Global, line)?;
                let n = line.int_in(0, 65_535, "0 (off) to 65535 seconds")?;
                self.config.sys_interval = fit(n);
            }
            "queue_qos0_messages" => {
                self.once(Scope::Global, line)?;
                self.config.queue_qos0_messages = line.bool()?;
            }
            "retain_available" => {
                self.once(Scope::Global, line)?;
                self.config.retain_available = line.bool()?;
            }
            "set_tcp_nodelay" => {
                // Wren sets TCP_NODELAY on every client socket: true is what it does, and
                // false (Nagle's algorithm) would only delay packets.
                self.once(Scope::Global, line)?;
                line.bool()?;
            }
            "connection_messages" => {
                self.once(Scope::Global, line)?;
                if !line.bool()? {
                    self.warn(
                        line,
                        "connections and disconnections are always logged (at the information \
                         level)",
                    );
                }
            }
            "log_dest" => {
                let dest = line.word_or_file()?;
                self.log_dests.push((dest, line.place.clone()));
            }
            "log_type" => {
                let kind = line.word()?;
                const TYPES: [&str; 11] = [
                    "none",
                    "information",
                    "notice",
                    "warning",
                    "error",
                    "debug",
                    "subscribe",
                    "unsubscribe",
                    "websockets",
                    "internal",
                    "all",
                ];
                if !TYPES.contains(&kind) {
                    return Err(line.invalid(kind, ""));
                }
                self.log_types.push((kind.to_owned(), line.place.clone()));
            }
            "include_dir" => self.include_dir(line, level)?,
            "connection" => {
                let name = line.word()?.to_owned();
                if let Some(first) = self
                    .config
                    .bridge
                    .iter()
                    .position(|b| b.name == name)
                    .and_then(|i| self.bridge_places.get(i))
                {
                    return Err(line.error(format_args!(
                        "Duplicate bridge name {name} (already in {first})"
                    )));
                }
                self.config.bridge.push(Bridge {
                    name,
                    ..Bridge::default()
                });
                self.bridge_places.push(line.place.clone());
                self.bridge = Some(self.config.bridge.len().saturating_sub(1));
            }
            _ if BRIDGE.contains(&key) || BRIDGE_IGNORED.iter().any(|(k, _)| *k == key) => {
                let Some(index) = self.bridge else {
                    return Err(line.error(format_args!(
                        "Invalid bridge configuration: {key} outside a bridge (no connection \
                         line before it in its file)"
                    )));
                };
                if let Some((_, why)) = BRIDGE_IGNORED.iter().find(|(k, _)| *k == key) {
                    let name = self.config.bridge.get(index).map(|b| b.name.clone());
                    let why = format!("{why} (bridge {})", name.unwrap_or_default());
                    self.warn_unsupported(line, &why);
                } else {
                    self.bridge_key(line, index)?;
                }
            }
            _ if key.starts_with("auth_opt_") || key.starts_with("plugin_opt_") => {
                return Err(
                    line.refused("it configures a Mosquitto plugin, which cannot be loaded")
                );
            }
            _ => {
                if let Some((_, kind, why)) = IGNORED.iter().find(|(k, _, _)| *k == key) {
                    if key == "check_retain_source" && self.security_seen.is_none() {
                        self.security_seen = Some(line.place.clone());
                    }
                    match kind {
                        Kind::Bool => {
                            line.bool()?;
                        }
                        Kind::Int => {
                            line.int()?;
                        }
                        Kind::Text => {
                            line.text()?;
                        }
                    }
                    self.warn_unsupported(line, why);
                } else if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == key) {
                    return Err(line.refused(why));
                } else {
                    return Err(
                        line.error(format_args!("Unknown configuration variable \"{key}\""))
                    );
                }
            }
        }
        Ok(())
    }

    /// A key of the bridge `index` (`connection` section).
    fn bridge_key(&mut self, line: &Line<'_>, index: usize) -> Result<(), ConfigError> {
        let key = line.key;
        // Keys that may be given several times add to a list; the others once per bridge.
        if !matches!(key, "address" | "addresses" | "topic") {
            self.once(Scope::Bridge(index), line)?;
        }
        let words = || {
            line.rest
                .split_whitespace()
                .take_while(|w| !w.starts_with('#'))
        };
        let seconds = |w: &str| match w.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(line.invalid(w, "seconds above 0 expected")),
        };
        let value = match key {
            "address" | "addresses" | "topic" | "restart_timeout" => None,
            "notification_topic" | "remote_clientid" | "clientid" | "local_clientid"
            | "remote_username" | "username" | "remote_password" | "password" => {
                Some(line.word()?.to_owned())
            }
            _ => None,
        };
        let Some(b) = self.config.bridge.get_mut(index) else {
            return Ok(());
        };
        match key {
            "address" | "addresses" => {
                let before = b.address.len();
                b.address.extend(words().map(str::to_owned));
                if b.address.len() == before {
                    return Err(line.empty());
                }
            }
            "topic" => {
                let text = line.text()?;
                TopicLine::parse(text).map_err(|why| line.invalid(text, &why))?;
                b.topic.push(text.to_owned());
            }
            "restart_timeout" => {
                let w: Vec<&str> = words().collect();
                if !(1..=2).contains(&w.len()) {
                    return Err(line.invalid(line.rest.trim(), "one or two numbers expected"));
                }
                b.restart_timeout = w.into_iter().map(seconds).collect::<Result<_, _>>()?;
            }
            "bridge_protocol_version" => {
                let v = line.word()?;
                if !matches!(v, "mqttv311" | "mqttv50") {
                    return Err(line.invalid(
                        v,
                        "mqttv311 or mqttv50 expected (Wren's bridge does not speak 3.1)",
                    ));
                }
                b.bridge_protocol_version = v.to_owned();
            }
            "start_type" => {
                let v = line.word()?;
                if !matches!(v, "automatic" | "once") {
                    return Err(
                        line.invalid(v, "automatic or once expected (lazy is not supported)")
                    );
                }
                b.start_type = v.to_owned();
            }
            "round_robin" => b.round_robin = line.bool()?,
            "cleansession" => b.cleansession = line.bool()?,
            "local_cleansession" => b.local_cleansession = Some(line.bool()?),
            "try_private" => b.try_private = line.bool()?,
            "notifications" => b.notifications = line.bool()?,
            "notifications_local_only" => b.notifications_local_only = line.bool()?,
            "bridge_insecure" => b.bridge_insecure = line.bool()?,
            "keepalive_interval" => {
                b.keepalive_interval = fit(line.int_in(0, 65_535, "0 to 65535 seconds")?);
            }
            "bridge_max_packet_size" => {
                b.bridge_max_packet_size =
                    fit(line.int_in(0, i64::from(u32::MAX), "0 to 4294967295")?);
            }
            "bridge_cafile" => b.bridge_cafile = Some(PathBuf::from(line.text()?)),
            "bridge_certfile" => b.bridge_certfile = Some(PathBuf::from(line.text()?)),
            "bridge_keyfile" => b.bridge_keyfile = Some(PathBuf::from(line.text()?)),
            "notification_topic" => b.notification_topic = value,
            "remote_clientid" | "clientid" => b.remote_clientid = value,
            "local_clientid" => b.local_clientid = value,
            "remote_username" | "username" => b.remote_username = value,
            "remote_password" | "password" => b.remote_password = value,
            _ => {}
        }
        Ok(())
    }

    /// `listener PORT [ADDRESS]`: a new listener block.
    fn listener(&mut self, line: &Line<'_>) -> Result<(), ConfigError> {
        let mut words = line
            .rest
            .split_whitespace()
            .take_while(|w| !w.starts_with('#'));
        let port = words.next().ok_or_else(|| line.empty())?;
        let address = words.next();
        if words.next().is_some() {
            return Err(line.invalid(line.rest.trim(), "listener PORT [ADDRESS] expected"));
        }
        let port: u16 = match port.parse() {
            Ok(0) => {
                return Err(match address {
                    Some(path) => line.invalid(
                        &format!("0 {path}"),
                        "Unix socket listeners are not supported",
                    ),
                    None => line.invalid("0", "a listener with port 0 needs a Unix socket path"),
                });
            }
            Ok(p) => p,
            Err(_) => return Err(line.invalid(port, "a port is from 1 to 65535")),
        };
        let bind = address.unwrap_or_default().to_owned();
        if let Some(other) = self
            .listeners
            .iter()
            .find(|b| b.listener.port == port && b.listener.bind == bind)
        {
            return Err(line.error(format_args!(
                "Duplicate listener {port}{}{bind} (already defined in {})",
                if bind.is_empty() { "" } else { " " },
                other
                    .place
                    .as_ref()
                    .map_or_else(String::new, ToString::to_string)
            )));
        }
        self.listeners.push(Block {
            listener: Listener {
                port,
                bind,
                ..Listener::default()
            },
            place: Some(line.place.clone()),
            ..Block::default()
        });
        self.current = Scope::Listener(self.listeners.len() - 1);
        Ok(())
    }

    /// `include_dir DIR`: every `*.conf` file of DIR, in Mosquitto's order.
    fn include_dir(&mut self, line: &Line<'_>, level: u8) -> Result<(), ConfigError> {
        let dir = self.base_dir.join(line.text()?);
        if level > 0 {
            self.warn(
                line,
                "include_dir is read in the main configuration file only (as Mosquitto does): \
                 ignored",
            );
            return Ok(());
        }
        let files = conf_files(&dir).map_err(|e| {
            line.error(format_args!(
                "Unable to open include_dir '{}' ({e})",
                dir.display()
            ))
        })?;
        let main = std::fs::canonicalize(&self.main).ok();
        for file in files {
            if main.is_some() && std::fs::canonicalize(&file).ok() == main {
                return Err(line.error(format_args!(
                    "include_dir '{}' contains the main configuration file",
                    dir.display()
                )));
            }
            let text = std::fs::read_to_string(&file).map_err(|e| {
                line.error(format_args!(
                    "Unable to open config file {} ({e})",
                    file.display()
                ))
            })?;
            self.read_file(&text, &file, level + 1)?;
        }
        Ok(())
    }

    /// The configuration: the default listener opened or not, per-listener settings that Wren
    /// has once for the broker merged, Mosquitto 2.0's anonymous default, logging; validated.
    fn finish(mut self) -> Result<(Config, Vec<Warning>), ConfigError> {
        let per_listener = self.config.per_listener_settings;
        let mut blocks = std::mem::take(&mut self.listeners);
        let mut default = std::mem::take(&mut self.default);
        if self.port.is_some() || self.bind_address.is_some() || default.opens_default(per_listener)
        {
            default.listener.port = self.port.unwrap_or(1883);
            default.listener.bind = self.bind_address.take().unwrap_or_default();
            if let Some(other) = blocks.iter().find(|b| {
                b.listener.port == default.listener.port && b.listener.bind == default.listener.bind
            }) {
                return Err(ConfigError::new(
                    "port",
                    format!(
                        "The default listener (port and bind_address) is {} again",
                        other.describe()
                    ),
                ));
            }
            blocks.push(default);
        } else {
            for (key, place, security) in &default.used {
                if *security {
                    return Err(ConfigError::new(
                        key,
                        format!(
                            "{key} in {place} applies to the default listener (it comes before \
                             any listener line of its file, with per_listener_settings true), \
                             which this configuration does not open: move it after the listener \
                             line it is meant for"
                        ),
                    ));
                }
                self.warnings.push(Warning {
                    key: key.clone(),
                    place: place.clone(),
                    text: format!(
                        "Warning: '{key}' in {place}: it applies to the default listener, which \
                         this configuration does not open (no port or bind_address): ignored, \
                         as Mosquitto does."
                    ),
                });
            }
        }

        // Mosquitto 2.0: once listeners are configured, anonymous clients are refused unless
        // allow_anonymous says otherwise (Wren's own default admits them on loopback listeners).
        if !blocks.is_empty() {
            if per_listener {
                for block in &mut blocks {
                    block.listener.allow_anonymous.get_or_insert(false);
                }
            } else {
                self.config.allow_anonymous.get_or_insert(false);
            }
        }
        self.merge_listener_settings(&blocks);
        self.logging();
        if self.config.message_size_limit > self.config.max_packet_size
            && let Some(place) = self
                .seen
                .get(&(Scope::Global, "message_size_limit".to_owned()))
                .cloned()
        {
            let text = format!(
                "it is more than max_packet_size ({}): messages that large are refused as \
                 oversize packets (max_packet_size 0 is no limit)",
                self.config.max_packet_size
            );
            self.note("message_size_limit", place, text);
        }

        for (b, place) in self.config.bridge.iter().zip(&self.bridge_places) {
            b.validate().map_err(|e| {
                ConfigError::new(
                    e.key(),
                    format!("Invalid bridge configuration: {e} (connection in {place})"),
                )
            })?;
        }
        let described: Vec<String> = blocks.iter().map(Block::describe).collect();
        self.config.listener = blocks.into_iter().map(|b| b.listener).collect();
        self.config.validate().map_err(|e| {
            // `listener[2].certfile ...`: name the listener as the file does.
            let mut message = e.to_string();
            let key = e.key().to_owned();
            for (i, name) in described.iter().enumerate() {
                let prefix = format!("listener[{i}].");
                if key.starts_with(&prefix) {
                    message = format!("{} ({name})", message.replace(&prefix, ""));
                }
            }
            ConfigError::new(key, message)
        })?;
        Ok((self.config, self.warnings))
    }

    /// Mosquitto's per-listener `max_connections`, `max_qos`, `max_topic_alias` (and, with
    /// `per_listener_settings`, `allow_zero_length_clientid` and `auto_id_prefix`): Wren has each
    /// once for the whole broker. One value: it; different values: the strictest, with a warning.
    fn merge_listener_settings(&mut self, blocks: &[Block]) {
        let several = blocks.len() > 1;
        if let Some(place) = blocks
            .iter()
            .find_map(|b| b.max_connections.as_ref().map(|(_, p)| p.clone()))
        {
            let limits: Option<Vec<u64>> = blocks
                .iter()
                .map(|b| b.max_connections.as_ref().and_then(|(n, _)| *n))
                .collect();
            let total = limits.map_or(0, |l| l.iter().sum());
            self.config.max_connections = usize::try_from(total).unwrap_or(usize::MAX);
            if several {
                let what = if total == 0 {
                    "unlimited, as a listener has no limit".to_owned()
                } else {
                    format!("{total}, the sum of the listeners' limits")
                };
                self.note(
                    "max_connections",
                    place,
                    format!(
                        "Mosquitto limits each listener's connections; Wren limits the \
                         connections of all listeners together: {what}"
                    ),
                );
            }
        }
        let qos: Vec<(u8, Option<&Place>)> = blocks
            .iter()
            .map(|b| b.max_qos.as_ref().map_or((2, None), |(q, p)| (*q, Some(p))))
            .collect();
        if let Some(lowest) = self.strictest("max_qos", &qos, "maximum_qos") {
            self.config.maximum_qos = lowest;
        }
        let aliases: Vec<(u16, Option<&Place>)> = blocks
            .iter()
            .map(|b| {
                b.max_topic_alias
                    .as_ref()
                    .map_or((10, None), |(n, p)| (*n, Some(p)))
            })
            .collect();
        if let Some(lowest) = self.strictest("max_topic_alias", &aliases, "topic_alias_maximum") {
            self.config.topic_alias_maximum = lowest;
        }
        let zero_length: Vec<(bool, Option<&Place>)> = blocks
            .iter()
            .map(|b| {
                b.allow_zero_length_clientid
                    .as_ref()
                    .map_or((true, None), |(a, p)| (*a, Some(p)))
            })
            .collect();
        if let Some(allow) = self.strictest(
            "allow_zero_length_clientid",
            &zero_length,
            "allow_zero_length_clientid",
        ) {
            self.config.allow_zero_length_clientid = allow;
        }
        if let Some((prefix, place)) = blocks.iter().find_map(|b| b.auto_id_prefix.as_ref()) {
            let differ = blocks.iter().any(|b| {
                b.auto_id_prefix
                    .as_ref()
                    .map_or("auto-", |(p, _)| p.as_str())
                    != prefix
            });
            self.config.auto_id_prefix = prefix.clone();
            if differ {
                self.note(
                    "auto_id_prefix",
                    place.clone(),
                    format!(
                        "the listeners' prefixes differ; Wren has one for every listener: \
                         '{prefix}'"
                    ),
                );
            }
        }
    }

    /// Of per-listener values (each with the line that set it, if any), the lowest, when any was
    /// set; a warning when they differ.
    fn strictest<T: Ord + Copy + fmt::Display>(
        &mut self,
        key: &str,
        values: &[(T, Option<&Place>)],
        wren_key: &str,
    ) -> Option<T> {
        let first = values.iter().find_map(|(_, p)| *p)?;
        let lowest = values.iter().map(|(v, _)| *v).min()?;
        if values.iter().any(|(v, _)| *v != lowest) {
            // Name the line that set the value used, if one did.
            let place = values
                .iter()
                .find_map(|(v, p)| p.filter(|_| *v == lowest))
                .unwrap_or(first)
                .clone();
            self.note(
                key,
                place,
                format!(
                    "the listeners' values differ, and Wren's {wren_key} applies to every \
                     listener: the strictest, {lowest}, is used"
                ),
            );
        }
        Some(lowest)
    }

    fn note(&mut self, key: &str, place: Place, text: String) {
        self.warnings.push(Warning {
            key: key.to_owned(),
            text: format!("Warning: '{key}' in {place}: {text}."),
            place,
        });
    }

    /// `log_dest` lines onto `log_dest` (one stream, or none), `log_type` lines onto
    /// `log_level` (the most verbose type given).
    fn logging(&mut self) {
        let dests = std::mem::take(&mut self.log_dests);
        // Mosquitto's destinations are a set; `none` empties it.
        let mut console: Vec<&str> = Vec::new();
        for (dest, _) in &dests {
            match dest.as_str() {
                "none" => console.clear(),
                "stderr" | "stdout" => console.push(dest),
                _ => {}
            }
        }
        let only_unsupported = console.is_empty()
            && dests
                .iter()
                .rev()
                .take_while(|(d, _)| d != "none")
                .any(|(d, _)| d != "stderr" && d != "stdout");
        for (dest, place) in &dests {
            if matches!(dest.as_str(), "none" | "stderr" | "stdout") {
                continue;
            }
            let word = dest.split(' ').next().unwrap_or_default();
            self.warnings.push(Warning {
                key: "log_dest".into(),
                place: place.clone(),
                text: format!(
                    "Warning: Unsupported log_dest '{word}' in {place}: ignored. Wren logs to \
                     stderr or stdout only{}.",
                    if only_unsupported {
                        " (here stderr, as no other destination is given)"
                    } else {
                        ""
                    }
                ),
            });
        }
        if let Some((_, last)) = dests.last() {
            let dest = if console.contains(&"stderr") {
                if console.contains(&"stdout") {
                    self.note(
                        "log_dest",
                        last.clone(),
                        "Wren logs to one stream: stderr".into(),
                    );
                }
                "stderr"
            } else if console.contains(&"stdout") {
                "stdout"
            } else if only_unsupported {
                "stderr"
            } else {
                "none"
            };
            self.config.log_dest = dest.into();
        }
        if !self.log_types.is_empty() {
            // Most verbose first, as in LOG_LEVELS.
            let rank = |t: &str| match t {
                "all" | "debug" | "internal" => 0,
                "information" | "notice" | "subscribe" | "unsubscribe" | "websockets" => 1,
                "warning" => 2,
                "error" => 3,
                _ => 4,
            };
            let mut level = 4;
            for (kind, _) in &self.log_types {
                level = if kind == "none" {
                    4
                } else {
                    level.min(rank(kind))
                };
            }
            self.config.log_level = super::LOG_LEVELS
                .get(level)
                .copied()
                .unwrap_or("information")
                .into();
        }
    }
}

impl Line<'_> {
    /// `log_dest`'s value: a destination word, or `file PATH`.
    fn word_or_file(&self) -> Result<String, ConfigError> {
        let rest = self.text()?;
        let (word, path) = rest
            .split_once([' ', '\t'])
            .map_or((rest, ""), |(w, p)| (w, p.trim()));
        match word {
            "file" if path.is_empty() => Err(self.error("Empty \"log_dest file\" value")),
            "file" => Ok(format!("file {path}")),
            "none" | "stderr" | "stdout" | "syslog" | "topic" | "dlt" => {
                if !path.is_empty() && !path.starts_with('#') {
                    return Err(self.invalid(rest, "one destination per line"));
                }
                Ok(word.to_owned())
            }
            other => Err(self.invalid(other, "")),
        }
    }
}

/// `persistent_client_expiration`: a number and a unit, `h` (hours), `d` (days), `w` (weeks),
/// `m` (months of 30 days) or `y` (years of 365 days), as Mosquitto reads it; in seconds.
fn duration(line: &Line<'_>) -> Result<u32, ConfigError> {
    let word = line.word()?;
    let invalid = || line.invalid(word, "a number and h, d, w, m or y expected, as 14d");
    let unit = match word.chars().last() {
        Some('h') => 3600,
        Some('d') => 86_400,
        Some('w') => 7 * 86_400,
        Some('m') => 30 * 86_400,
        Some('y') => 365 * 86_400,
        _ => return Err(invalid()),
    };
    let count: u32 = word
        .get(..word.len() - 1)
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(invalid)?;
    count
        .checked_mul(unit)
        .ok_or_else(|| line.invalid(word, "at most 136 years"))
}

/// The `*.conf` files of `dir` (names longer than `.conf`), in Mosquitto's order.
fn conf_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut names: Vec<OsString> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let bytes = name.as_encoded_bytes();
        if bytes.len() > 5 && bytes.ends_with(b".conf") {
            names.push(name);
        }
    }
    names.sort_by(|a, b| mosquitto_order(a.as_encoded_bytes(), b.as_encoded_bytes()));
    Ok(names.into_iter().map(|name| dir.join(name)).collect())
}

/// Mosquitto's `scmp_p`: letter by letter, case-insensitively, and within the same letter upper
/// case first (`00.conf`, `A.conf`, `a.conf`, `B.conf`, `b.conf`).
fn mosquitto_order(a: &[u8], b: &[u8]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = x
            .to_ascii_uppercase()
            .cmp(&y.to_ascii_uppercase())
            .then(x.cmp(y));
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "test.conf";

    fn read_ok(text: &str) -> (Config, Vec<Warning>) {
        read(text, Path::new(FILE), Path::new(""))
            .unwrap_or_else(|e| panic!("{text:?} refused: {e}"))
    }

    fn read_err(text: &str) -> ConfigError {
        match read(text, Path::new(FILE), Path::new("")) {
            Ok((c, w)) => panic!("{text:?} accepted: {c:?} {w:?}"),
            Err(e) => e,
        }
    }

    /// The one warning of `text`: its key, line and text.
    fn one_warning(text: &str) -> Warning {
        let (_, warnings) = read_ok(text);
        assert_eq!(warnings.len(), 1, "{text:?}: {warnings:#?}");
        warnings.into_iter().next().unwrap()
    }

    /// A directory of its own under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(files: &[(&str, &str)]) -> TempDir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::SeqCst);
            let dir = std::env::temp_dir()
                .join(format!("wren-mosquitto-conf-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            for (name, text) in files {
                std::fs::write(dir.join(name), text).unwrap();
            }
            TempDir(dir)
        }

        fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn empty_file_is_local_only_mode_with_wren_defaults() {
        // Wren's defaults, but persistence off as Mosquitto's default is.
        let mosquitto_default = Config {
            persistence: false,
            ..Config::default()
        };
        let (config, warnings) = read_ok("");
        assert_eq!(config, mosquitto_default);
        assert!(warnings.is_empty());
        let (config, _) = read_ok("# only comments\n\n   \n\t# indented\n");
        assert_eq!(config, mosquitto_default);
        let (config, warnings) = read_ok("persistence true\npersistence_location /var/lib/wren\n");
        assert!(warnings.is_empty());
        assert_eq!(config.persistence_kind(), crate::core::Persistence::Durable);
        assert_eq!(
            config.persistence_path(),
            Path::new("/var/lib/wren/wren.db")
        );
        assert_eq!(config.listeners().len(), 1);
        assert!(config.listeners().iter().all(Listener::is_local_only));
    }

    #[test]
    fn syntax_comments_whitespace_crlf_and_values_with_spaces() {
        let text = "# Mosquitto configuration\r\n\
                    \r\n\
                    \x20 listener 1883 127.0.0.1  # loopback\r\n\
                    \tallow_anonymous\ttrue\r\n\
                    password_file   /etc/my mosquitto/passwd  \r\n\
                    max_inflight_messages 7 # seven\n\
                    auto_id_prefix  a prefix with spaces \n";
        let (config, warnings) = read_ok(text);
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert_eq!(
            config.listener,
            [Listener {
                port: 1883,
                bind: "127.0.0.1".into(),
                ..Listener::default()
            }]
        );
        assert_eq!(config.allow_anonymous, Some(true));
        assert_eq!(
            config.password_file.as_deref(),
            Some(Path::new("/etc/my mosquitto/passwd"))
        );
        assert_eq!(config.max_inflight_messages, 7);
        assert_eq!(config.auto_id_prefix, "a prefix with spaces");
    }

    /// Each supported key, a good value, and where it lands.
    #[test]
    fn supported_keys_are_mapped() {
        let base = "listener 1883 127.0.0.1\n";
        type Check = Box<dyn Fn(&Config) -> bool>;
        let cases: Vec<(&str, Check)> = vec![
            (
                "allow_anonymous true",
                Box::new(|c| c.allow_anonymous == Some(true)),
            ),
            (
                "allow_anonymous false",
                Box::new(|c| c.allow_anonymous == Some(false)),
            ),
            (
                "allow_anonymous 1",
                Box::new(|c| c.allow_anonymous == Some(true)),
            ),
            (
                "password_file /p",
                Box::new(|c| c.password_file == Some("/p".into())),
            ),
            ("acl_file /a", Box::new(|c| c.acl_file == Some("/a".into()))),
            (
                "max_inflight_messages 0",
                Box::new(|c| c.max_inflight_messages == 0),
            ),
            (
                "max_inflight_messages -1",
                Box::new(|c| c.max_inflight_messages == 0),
            ),
            (
                "max_inflight_messages 65535",
                Box::new(|c| c.max_inflight_messages == 65535),
            ),
            (
                "max_queued_messages 5000",
                Box::new(|c| c.max_queued_messages == 5000),
            ),
            (
                "max_queued_messages -1",
                Box::new(|c| c.max_queued_messages == 0),
            ),
            ("max_packet_size 20", Box::new(|c| c.max_packet_size == 20)),
            (
                "max_packet_size 2097152",
                Box::new(|c| c.max_packet_size == 2_097_152),
            ),
            (
                "max_packet_size 0",
                Box::new(|c| c.max_packet_size == 268_435_460),
            ),
            (
                "max_packet_size 999999999",
                Box::new(|c| c.max_packet_size == 268_435_460),
            ),
            (
                "message_size_limit 1000",
                Box::new(|c| c.message_size_limit == 1000),
            ),
            (
                "message_size_limit 0",
                Box::new(|c| c.message_size_limit == 0),
            ),
            ("max_keepalive 10", Box::new(|c| c.max_keepalive == 10)),
            (
                "max_keepalive 65535",
                Box::new(|c| c.max_keepalive == 65535),
            ),
            (
                "persistent_client_expiration 1h",
                Box::new(|c| c.persistent_client_expiration == 3600),
            ),
            (
                "persistent_client_expiration 14d",
                Box::new(|c| c.persistent_client_expiration == 14 * 86_400),
            ),
            (
                "persistent_client_expiration 2w",
                Box::new(|c| c.persistent_client_expiration == 14 * 86_400),
            ),
            (
                "persistent_client_expiration 2m",
                Box::new(|c| c.persistent_client_expiration == 60 * 86_400),
            ),
            (
                "persistent_client_expiration 1y",
                Box::new(|c| c.persistent_client_expiration == 365 * 86_400),
            ),
            ("sys_interval 0", Box::new(|c| c.sys_interval == 0)),
            ("sys_interval 65535", Box::new(|c| c.sys_interval == 65535)),
            (
                "allow_zero_length_clientid false",
                Box::new(|c| !c.allow_zero_length_clientid),
            ),
            (
                "auto_id_prefix wren-",
                Box::new(|c| c.auto_id_prefix == "wren-"),
            ),
            (
                "queue_qos0_messages true",
                Box::new(|c| c.queue_qos0_messages),
            ),
            ("retain_available false", Box::new(|c| !c.retain_available)),
            (
                "set_tcp_nodelay true",
                Box::new(|c| *c == read_ok("listener 1883 127.0.0.1").0),
            ),
            (
                "set_tcp_nodelay false",
                Box::new(|c| *c == read_ok("listener 1883 127.0.0.1").0),
            ),
            (
                "connection_messages true",
                Box::new(|c| *c == read_ok("listener 1883 127.0.0.1").0),
            ),
            ("max_qos 1", Box::new(|c| c.maximum_qos == 1)),
            ("maximum_qos 0", Box::new(|c| c.maximum_qos == 0)),
            (
                "max_topic_alias 0",
                Box::new(|c| c.topic_alias_maximum == 0),
            ),
            ("max_connections 50", Box::new(|c| c.max_connections == 50)),
            ("max_connections -1", Box::new(|c| c.max_connections == 0)),
            (
                "socket_domain ipv6",
                Box::new(|c| c.listener[0].socket_domain == Some(SocketDomain::Ipv6)),
            ),
            (
                "protocol websockets",
                Box::new(|c| c.listener[0].protocol == Protocol::Websockets),
            ),
            (
                "protocol mqtt",
                Box::new(|c| c.listener[0].protocol == Protocol::Mqtt),
            ),
            ("log_dest stdout", Box::new(|c| c.log_dest == "stdout")),
            ("log_dest none", Box::new(|c| c.log_dest == "none")),
            ("log_type debug", Box::new(|c| c.log_level == "debug")),
            ("log_type all", Box::new(|c| c.log_level == "debug")),
            ("log_type error", Box::new(|c| c.log_level == "error")),
            ("log_type none", Box::new(|c| c.log_level == "none")),
        ];
        for (line, check) in cases {
            let text = format!("{base}{line}\n");
            let (config, warnings) = read_ok(&text);
            assert!(check(&config), "{line:?}: {config:#?}");
            assert!(warnings.is_empty(), "{line:?}: {warnings:#?}");
        }
        // TLS keys of a listener.
        let (config, _) = read_ok(
            "listener 8883\ncafile /ca.pem\ncapath /cas\ncertfile /c.pem\nkeyfile /k.pem\n\
             require_certificate true\nuse_identity_as_username true\ntls_version tlsv1.3\n\
             listener 8884\ncertfile /c.pem\nkeyfile /k.pem\nuse_subject_as_username true\n\
             tls_version tlsv1.2\n",
        );
        let [a, b] = &config.listener[..] else {
            panic!("{config:#?}")
        };
        assert_eq!(a.cafile.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(a.capath.as_deref(), Some(Path::new("/cas")));
        assert_eq!(a.certfile.as_deref(), Some(Path::new("/c.pem")));
        assert_eq!(a.keyfile.as_deref(), Some(Path::new("/k.pem")));
        assert!(a.require_certificate && a.use_identity_as_username && !a.use_subject_as_username);
        assert_eq!(a.tls_version.as_deref(), Some("tlsv1.3"));
        assert!(b.use_subject_as_username && !b.require_certificate);
        assert_eq!(b.tls_version.as_deref(), Some("tlsv1.2"));
    }

    /// Bad values: Mosquitto's message, with the file and the line.
    #[test]
    fn bad_values_are_errors_naming_file_and_line() {
        let cases = [
            (
                "max_inflight_messages foo",
                "Invalid max_inflight_messages value (foo) in test.conf line 3: an integer expected",
            ),
            (
                "max_inflight_messages 65536",
                "Invalid max_inflight_messages value (65536) in test.conf line 3",
            ),
            (
                "max_inflight_messages 10 20",
                "Invalid max_inflight_messages value (10 20) in test.conf line 3: one value expected",
            ),
            (
                "max_inflight_messages",
                "Empty max_inflight_messages value in test.conf line 3",
            ),
            (
                "max_queued_messages 1.5",
                "Invalid max_queued_messages value (1.5) in test.conf line 3",
            ),
            (
                "max_packet_size 19",
                "Invalid max_packet_size value (19) in test.conf line 3: at least 20 bytes (0: no limit)",
            ),
            ("max_packet_size -1", "Invalid max_packet_size value (-1)"),
            (
                "message_size_limit 268435456",
                "Invalid message_size_limit value (268435456) in test.conf line 3",
            ),
            (
                "message_size_limit -1",
                "Invalid message_size_limit value (-1)",
            ),
            (
                "max_keepalive 9",
                "Invalid max_keepalive value (9) in test.conf line 3: 10 to 65535 seconds",
            ),
            ("max_keepalive 65536", "Invalid max_keepalive value (65536)"),
            (
                "persistent_client_expiration 5x",
                "Invalid persistent_client_expiration value (5x) in test.conf line 3",
            ),
            (
                "persistent_client_expiration 0d",
                "Invalid persistent_client_expiration value (0d)",
            ),
            (
                "persistent_client_expiration d",
                "Invalid persistent_client_expiration value (d)",
            ),
            (
                "persistent_client_expiration 137y",
                "Invalid persistent_client_expiration value (137y) in test.conf line 3: at most 136 years",
            ),
            (
                "persistent_client_expiration",
                "Empty persistent_client_expiration value in test.conf line 3",
            ),
            (
                "sys_interval -1",
                "Invalid sys_interval value (-1) in test.conf line 3",
            ),
            ("sys_interval 65536", "Invalid sys_interval value (65536)"),
            (
                "allow_anonymous maybe",
                "Invalid allow_anonymous value (maybe) in test.conf line 3: true or false expected",
            ),
            (
                "allow_anonymous TRUE",
                "Invalid allow_anonymous value (TRUE)",
            ),
            (
                "allow_anonymous",
                "Empty allow_anonymous value in test.conf line 3",
            ),
            (
                "password_file",
                "Empty password_file value in test.conf line 3",
            ),
            (
                "password_file    ",
                "Empty password_file value in test.conf line 3",
            ),
            (
                "queue_qos0_messages yes",
                "Invalid queue_qos0_messages value (yes)",
            ),
            ("retain_available 2", "Invalid retain_available value (2)"),
            ("set_tcp_nodelay on", "Invalid set_tcp_nodelay value (on)"),
            (
                "connection_messages off",
                "Invalid connection_messages value (off)",
            ),
            (
                "allow_zero_length_clientid x",
                "Invalid allow_zero_length_clientid value (x)",
            ),
            (
                "auto_id_prefix",
                "Empty auto_id_prefix value in test.conf line 3",
            ),
            (
                "max_qos 3",
                "Invalid max_qos value (3) in test.conf line 3: 0, 1 or 2 expected",
            ),
            (
                "max_topic_alias 65536",
                "Invalid max_topic_alias value (65536)",
            ),
            (
                "max_connections 0",
                "Invalid max_connections value (0) in test.conf line 3: 0 would refuse every client (-1 is unlimited)",
            ),
            (
                "max_connections many",
                "Invalid max_connections value (many)",
            ),
            (
                "socket_domain ipv5",
                "Invalid socket_domain value (ipv5) in test.conf line 3: ipv4 or ipv6 expected",
            ),
            (
                "protocol http",
                "Invalid protocol value (http) in test.conf line 3: mqtt or websockets expected",
            ),
            (
                "tls_version tlsv1.1",
                "Invalid tls_version value (tlsv1.1) in test.conf line 3: TLS versions older than 1.2 are not offered",
            ),
            ("tls_version ssl3", "Invalid tls_version value (ssl3)"),
            (
                "require_certificate sure",
                "Invalid require_certificate value (sure)",
            ),
            (
                "use_identity_as_username sure",
                "Invalid use_identity_as_username value (sure)",
            ),
            (
                "use_subject_as_username sure",
                "Invalid use_subject_as_username value (sure)",
            ),
            ("certfile", "Empty certfile value in test.conf line 3"),
            (
                "log_dest paper",
                "Invalid log_dest value (paper) in test.conf line 3",
            ),
            (
                "log_dest file",
                "Empty \"log_dest file\" value in test.conf line 3",
            ),
            (
                "log_dest stderr stdout",
                "Invalid log_dest value (stderr stdout) in test.conf line 3: one destination per line",
            ),
            (
                "log_type chatty",
                "Invalid log_type value (chatty) in test.conf line 3",
            ),
            (
                "per_listener_settings perhaps",
                "Invalid per_listener_settings value (perhaps)",
            ),
            (
                "port 0",
                "Invalid port value (0) in test.conf line 3: a port is from 1 to 65535",
            ),
            ("port 65536", "Invalid port value (65536)"),
            (
                "bind_address",
                "Empty bind_address value in test.conf line 3",
            ),
            ("listener", "Empty listener value in test.conf line 3"),
            (
                "listener 70000",
                "Invalid listener value (70000) in test.conf line 3: a port is from 1 to 65535",
            ),
            ("listener x", "Invalid listener value (x)"),
            (
                "listener 0",
                "Invalid listener value (0) in test.conf line 3: a listener with port 0 needs a Unix socket path",
            ),
            (
                "listener 0 /run/mosquitto.sock",
                "Invalid listener value (0 /run/mosquitto.sock) in test.conf line 3: Unix socket listeners are not supported",
            ),
            (
                "listener 1884 127.0.0.1 ::1",
                "Invalid listener value (1884 127.0.0.1 ::1) in test.conf line 3: listener PORT [ADDRESS] expected",
            ),
            ("include_dir", "Empty include_dir value in test.conf line 3"),
            (
                "include_dir /no/such/directory",
                "Unable to open include_dir '/no/such/directory' (",
            ),
            ("connection", "Empty connection value in test.conf line 3"),
            ("pid_file", "Empty pid_file value in test.conf line 3"),
            (
                "persistence maybe",
                "Invalid persistence value (maybe) in test.conf line 3",
            ),
            (
                "autosave_interval soon",
                "Invalid autosave_interval value (soon) in test.conf line 3",
            ),
        ];
        for (line, message) in cases {
            let text = format!("# line 1\nlistener 1883 127.0.0.1\n{line}\n");
            let e = read_err(&text);
            assert!(e.to_string().starts_with(message), "{line:?}: {e}");
            let key = line.split(' ').next().unwrap();
            assert_eq!(e.key(), key, "{line:?}: {e}");
        }
    }

    #[test]
    fn duplicates_in_one_scope_are_errors_naming_both_lines() {
        let e = read_err("max_inflight_messages 10\n\nmax_inflight_messages 12\n");
        assert_eq!(
            e.to_string(),
            "Duplicate max_inflight_messages value in test.conf line 3 (already set in test.conf \
             line 1)"
        );
        assert_eq!(e.key(), "max_inflight_messages");
        for text in [
            "port 1883\nport 1884\n",
            "password_file /a\npassword_file /b\n",
            "listener 1883\nallow_anonymous true\nlistener 1884\nallow_anonymous false\n",
            "listener 1883\ncertfile /a\ncertfile /b\n",
            "listener 1883\nmax_connections 5\nmax_connections 6\n",
            "per_listener_settings false\nper_listener_settings false\n",
            "listener 1883\nlistener 1883\n",
            "listener 1883 ::1\nlistener 1884\nlistener 1883 ::1\n",
            "port 1884\nlistener 1884\n",
        ] {
            let e = read_err(text);
            assert!(
                e.to_string().contains("Duplicate") || e.to_string().contains("again"),
                "{text:?}: {e}"
            );
        }
        // Different listeners, repeatable keys, a listener on the same port elsewhere: fine.
        read_ok(
            "listener 1883 127.0.0.1\ncertfile /c\nkeyfile /k\nlistener 1883 ::1\ncertfile /c\n\
             keyfile /k\nlog_type error\nlog_type warning\nlog_dest stderr\nlog_dest stdout\n",
        );
    }

    #[test]
    fn listener_blocks_scope_the_keys_after_them() {
        let (config, warnings) = read_ok(
            "socket_domain ipv4\n\
             listener 1883 127.0.0.1\n\
             protocol websockets\n\
             listener 8883\n\
             certfile /c.pem\n\
             keyfile /k.pem\n\
             socket_domain ipv6\n",
        );
        assert!(warnings.is_empty(), "{warnings:#?}");
        let ports: Vec<(u16, &str)> = config
            .listener
            .iter()
            .map(|l| (l.port, l.bind.as_str()))
            .collect();
        // socket_domain before any listener opens the default listener (1883, every address),
        // which comes last, as in Mosquitto.
        assert_eq!(ports, [(1883, "127.0.0.1"), (8883, ""), (1883, "")]);
        let [local, tls, default] = &config.listener[..] else {
            panic!()
        };
        assert_eq!(local.protocol, Protocol::Websockets);
        assert_eq!(local.socket_domain, None);
        assert!(tls.is_tls() && !local.is_tls() && !default.is_tls());
        assert_eq!(tls.socket_domain, Some(SocketDomain::Ipv6));
        assert_eq!(default.socket_domain, Some(SocketDomain::Ipv4));
        assert_eq!(default.protocol, Protocol::Mqtt);
    }

    #[test]
    fn port_and_bind_address_define_the_default_listener() {
        let (config, _) = read_ok("port 1884\n");
        assert_eq!(
            config.listener,
            [Listener {
                port: 1884,
                ..Listener::default()
            }]
        );
        let (config, _) = read_ok("bind_address 127.0.0.1\n");
        assert_eq!(config.listener[0].port, 1883);
        assert_eq!(config.listener[0].bind, "127.0.0.1");
        // With listeners too: the default listener is one more, after them.
        let (config, _) = read_ok("listener 8883\nport 1884\nbind_address ::1\n");
        let all: Vec<(u16, &str)> = config
            .listener
            .iter()
            .map(|l| (l.port, l.bind.as_str()))
            .collect();
        assert_eq!(all, [(8883, ""), (1884, "::1")]);
        // Mosquitto 2.0: with a listener configured, anonymous clients are refused unless
        // allowed, even on loopback (Wren's own default would admit them there).
        assert_eq!(config.allow_anonymous, Some(false));
        let (config, _) = read_ok("listener 1883 127.0.0.1\n");
        assert!(!config.security(&config.listener[0]).allow_anonymous);
        // No listener at all: local-only mode, anonymous clients admitted, as Mosquitto 2.0.
        let (config, _) = read_ok("max_queued_messages 5\n");
        assert!(config.listener.is_empty() && config.allow_anonymous.is_none());
        let local = &config.listeners()[0];
        assert!(config.security(local).allow_anonymous);
    }

    #[test]
    fn keys_for_a_default_listener_that_is_not_opened_are_warnings() {
        // tls_version and max_topic_alias do not open it in Mosquitto 2.0 (nor do defaults).
        for (text, key) in [
            ("tls_version tlsv1.2\n", "tls_version"),
            ("max_topic_alias 5\n", "max_topic_alias"),
            ("max_qos 2\n", "max_qos"),
            ("protocol mqtt\n", "protocol"),
            ("max_connections -1\n", "max_connections"),
        ] {
            let w = one_warning(text);
            assert_eq!((w.key.as_str(), w.place.line), (key, 1), "{w}");
            assert!(
                w.to_string().contains(
                    "applies to the default listener, which this configuration does not open"
                ),
                "{w}"
            );
            let (config, _) = read_ok(text);
            assert!(config.listener.is_empty(), "{text:?}");
        }
        // The same keys in a listener block are not warnings.
        let (_, warnings) = read_ok("listener 1883\ntls_version tlsv1.2\nmax_topic_alias 5\n");
        assert!(warnings.is_empty());
    }

    #[test]
    fn per_listener_settings_scopes_the_security_keys() {
        let (config, warnings) = read_ok(
            "per_listener_settings true\n\
             listener 1883 127.0.0.1\n\
             allow_anonymous true\n\
             listener 8883\n\
             password_file /etc/mosquitto/passwd\n\
             acl_file /etc/mosquitto/acl\n\
             listener 8884\n",
        );
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert!(config.per_listener_settings);
        assert_eq!(
            (
                config.allow_anonymous,
                &config.password_file,
                &config.acl_file
            ),
            (None, &None, &None)
        );
        let [local, users, closed] = &config.listener[..] else {
            panic!("{config:#?}")
        };
        assert_eq!(local.allow_anonymous, Some(true));
        assert_eq!(
            users.allow_anonymous,
            Some(false),
            "Mosquitto 2.0's default"
        );
        assert_eq!(
            users.password_file.as_deref(),
            Some(Path::new("/etc/mosquitto/passwd"))
        );
        assert_eq!(
            users.acl_file.as_deref(),
            Some(Path::new("/etc/mosquitto/acl"))
        );
        assert_eq!(closed.allow_anonymous, Some(false));
        assert!(config.security(local).allow_anonymous);
        assert!(!config.security(users).allow_anonymous);

        // Without it, the same keys are global wherever they are.
        let (config, _) = read_ok(
            "listener 1883 127.0.0.1\nallow_anonymous true\nlistener 8883\npassword_file /p\n",
        );
        assert_eq!(config.allow_anonymous, Some(true));
        assert_eq!(config.password_file.as_deref(), Some(Path::new("/p")));
        assert!(config.listener.iter().all(|l| l.allow_anonymous.is_none()));

        // It must come before any security setting, as in Mosquitto.
        let e = read_err("listener 1883\nallow_anonymous true\nper_listener_settings true\n");
        assert_eq!(
            e.to_string(),
            "per_listener_settings in test.conf line 3 must come before every other security \
             setting (the first is in test.conf line 2)"
        );
        read_ok("allow_anonymous true\nper_listener_settings false\nlistener 1883\n");

        // Before any listener it applies to the default listener; password_file opens it.
        let (config, _) = read_ok("per_listener_settings true\npassword_file /p\n");
        assert_eq!(config.listener.len(), 1);
        assert_eq!(config.listener[0].port, 1883);
        assert_eq!(
            config.listener[0].password_file.as_deref(),
            Some(Path::new("/p"))
        );
        // A security key for a default listener that is not opened is refused: ignoring an
        // acl_file would widen access.
        for key in ["acl_file /a", "allow_anonymous true"] {
            let e = read_err(&format!(
                "per_listener_settings true\n{key}\nlistener 1883\n"
            ));
            assert!(
                e.to_string().starts_with(&format!(
                    "{} in test.conf line 2 applies to the default listener",
                    key.split(' ').next().unwrap()
                )),
                "{e}"
            );
        }
    }

    #[test]
    fn per_listener_values_wren_has_once_are_merged() {
        // One listener: its values.
        let (config, warnings) =
            read_ok("listener 1883\nmax_connections 10\nmax_qos 1\nmax_topic_alias 3\n");
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert_eq!(
            (
                config.max_connections,
                config.maximum_qos,
                config.topic_alias_maximum
            ),
            (10, 1, 3)
        );
        // Several: connections summed (unlimited if one has no limit), the strictest QoS and
        // alias maximum, with warnings naming the key and line.
        let (config, warnings) = read_ok(
            "listener 1883\nmax_connections 10\nmax_qos 1\nlistener 1884\nmax_connections 5\n\
             max_qos 1\n",
        );
        assert_eq!((config.max_connections, config.maximum_qos), (15, 1));
        assert_eq!(
            warnings.len(),
            1,
            "same max_qos everywhere: no warning: {warnings:#?}"
        );
        assert_eq!(
            (warnings[0].key.as_str(), warnings[0].place.line),
            ("max_connections", 2)
        );
        assert!(
            warnings[0].to_string().contains("15, the sum"),
            "{}",
            warnings[0]
        );
        let (config, warnings) = read_ok(
            "listener 1883\nmax_connections 10\nlistener 1884\nmax_qos 0\nmax_topic_alias 20\n",
        );
        assert_eq!(config.max_connections, 0, "1884 has no limit");
        assert_eq!(config.maximum_qos, 0);
        assert_eq!(
            config.topic_alias_maximum, 10,
            "the default 10 of 1883 is lower"
        );
        let keys: Vec<(&str, usize)> = warnings
            .iter()
            .map(|w| (w.key.as_str(), w.place.line))
            .collect();
        assert_eq!(
            keys,
            [
                ("max_connections", 2),
                ("max_qos", 4),
                ("max_topic_alias", 5)
            ]
        );
        let (_, warnings) = read_ok("listener 1883\nmax_qos 2\nlistener 1884\nmax_qos 0\n");
        assert_eq!(warnings.len(), 1, "{warnings:#?}");
        assert_eq!(
            (warnings[0].key.as_str(), warnings[0].place.line),
            ("max_qos", 4)
        );
        // With per_listener_settings: allow_zero_length_clientid and auto_id_prefix.
        let (config, warnings) = read_ok(
            "per_listener_settings true\nlistener 1883\nallow_zero_length_clientid false\n\
             auto_id_prefix a-\nlistener 1884\nauto_id_prefix b-\n",
        );
        assert!(!config.allow_zero_length_clientid);
        assert_eq!(config.auto_id_prefix, "a-");
        let keys: Vec<(&str, usize)> = warnings
            .iter()
            .map(|w| (w.key.as_str(), w.place.line))
            .collect();
        assert_eq!(
            keys,
            [("allow_zero_length_clientid", 3), ("auto_id_prefix", 4)]
        );
    }

    #[test]
    fn logging_keys_map_onto_destination_and_level() {
        let log = |text: &str| {
            let (c, w) = read_ok(text);
            (c.log_dest, c.log_level, w.len())
        };
        let s = |x: &str| x.to_owned();
        assert_eq!(log(""), (s("stderr"), s("information"), 0));
        assert_eq!(
            log("log_type error\nlog_type warning\n"),
            (s("stderr"), s("warning"), 0)
        );
        assert_eq!(
            log("log_type debug\nlog_type none\nlog_type error\n"),
            (s("stderr"), s("error"), 0)
        );
        for info in [
            "information",
            "notice",
            "subscribe",
            "unsubscribe",
            "websockets",
        ] {
            assert_eq!(
                log(&format!("log_type error\nlog_type {info}\n")).1,
                "information"
            );
        }
        assert_eq!(log("log_type internal\n").1, "debug");
        assert_eq!(log("log_dest stdout\n"), (s("stdout"), s("information"), 0));
        assert_eq!(log("log_dest none\n").0, "none");
        assert_eq!(log("log_dest none\nlog_dest stdout\n").0, "stdout");
        // Both streams: stderr, with a warning.
        assert_eq!(
            log("log_dest stdout\nlog_dest stderr\n"),
            (s("stderr"), s("information"), 1)
        );
        // A file (Debian's default): a warning, and stderr.
        let w = one_warning("log_dest file /var/log/mosquitto/mosquitto.log\n");
        assert_eq!(
            w.to_string(),
            "Warning: Unsupported log_dest 'file' in test.conf line 1: ignored. Wren logs to \
             stderr or stdout only (here stderr, as no other destination is given)."
        );
        assert_eq!(log("log_dest file /x.log\n").0, "stderr");
        let (config, warnings) = read_ok("log_dest syslog\nlog_dest topic\nlog_dest stdout\n");
        assert_eq!(config.log_dest, "stdout");
        assert_eq!(warnings.len(), 2);
        assert!(
            warnings[0].to_string().ends_with("stderr or stdout only."),
            "{}",
            warnings[0]
        );
        let w = one_warning("connection_messages false\n");
        assert_eq!(w.key, "connection_messages");
    }

    #[test]
    fn include_dir_reads_conf_files_in_mosquittos_order() {
        // Each file records its name in a listener of its own (port by load order below).
        let names = ["b.conf", "A.conf", "01.conf", "a.conf", "B.conf", "00.conf"];
        let files: Vec<(String, String)> = names
            .iter()
            .map(|n| (n.to_string(), format!("listener 1883 {n}\n")))
            .collect();
        let mut all: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        // Not read: not *.conf, or nothing before .conf.
        all.push(("README", "not a configuration\n"));
        all.push(("c.conf.dpkg-old", "not read\n"));
        all.push((".conf", "not read either\n"));
        let dir = TempDir::new(&all);
        let (config, warnings) = read_ok(&format!("include_dir {}\n", dir.path()));
        assert!(warnings.is_empty(), "{warnings:#?}");
        let order: Vec<&str> = config.listener.iter().map(|l| l.bind.as_str()).collect();
        // The man page's example order.
        assert_eq!(
            order,
            ["00.conf", "01.conf", "A.conf", "a.conf", "B.conf", "b.conf"]
        );

        // Two include_dir lines: each read completely, in turn.
        let one = TempDir::new(&[("B.conf", "listener 1 b\n"), ("C.conf", "listener 1 c\n")]);
        let two = TempDir::new(&[("A.conf", "listener 1 a\n"), ("D.conf", "listener 1 d\n")]);
        let (config, _) = read_ok(&format!(
            "include_dir {}\ninclude_dir {}\n",
            one.path(),
            two.path()
        ));
        let order: Vec<&str> = config.listener.iter().map(|l| l.bind.as_str()).collect();
        assert_eq!(order, ["b", "c", "a", "d"]);
    }

    #[test]
    fn included_files_have_their_own_scope_and_name_their_lines() {
        let dir = TempDir::new(&[
            // Before its own listener line, a file's listener keys are the default listener's.
            (
                "10-a.conf",
                "# a\nsocket_domain ipv4\nlistener 8883\nprotocol websockets\n",
            ),
            ("20-b.conf", "\nmax_inflight_messages nine\n"),
        ]);
        let main = format!(
            "listener 1883 127.0.0.1\ninclude_dir {}\nprotocol mqtt\n",
            dir.path()
        );
        let bad = read_err(&main);
        assert_eq!(
            bad.to_string(),
            format!(
                "Invalid max_inflight_messages value (nine) in {}/20-b.conf line 2: an integer \
                 expected",
                dir.path()
            )
        );
        std::fs::write(dir.0.join("20-b.conf"), "\nmax_inflight_messages 9\n").unwrap();
        let (config, warnings) = read_ok(&main);
        assert!(warnings.is_empty(), "{warnings:#?}");
        assert_eq!(config.max_inflight_messages, 9);
        let all: Vec<(u16, &str, Option<SocketDomain>, Protocol)> = config
            .listener
            .iter()
            .map(|l| (l.port, l.bind.as_str(), l.socket_domain, l.protocol))
            .collect();
        assert_eq!(
            all,
            [
                (1883, "127.0.0.1", None, Protocol::Mqtt),
                (8883, "", None, Protocol::Websockets),
                (1883, "", Some(SocketDomain::Ipv4), Protocol::Mqtt),
            ]
        );
        // A duplicate across files names both.
        std::fs::write(dir.0.join("20-b.conf"), "max_inflight_messages 9\n").unwrap();
        let e = read_err(&format!(
            "max_inflight_messages 8\ninclude_dir {}\n",
            dir.path()
        ));
        assert_eq!(
            e.to_string(),
            format!(
                "Duplicate max_inflight_messages value in {}/20-b.conf line 1 (already set in \
                 test.conf line 1)",
                dir.path()
            )
        );
        // include_dir in an included file: ignored with a warning, as Mosquitto ignores it.
        let nested = TempDir::new(&[("x.conf", "include_dir /no/such/dir\n")]);
        let w = one_warning(&format!("include_dir {}\n", nested.path()));
        assert_eq!((w.key.as_str(), w.place.line), ("include_dir", 1));
        assert!(w.place.file.ends_with("x.conf"), "{w:?}");
        // The directory must not hold the main file.
        let main_dir = TempDir::new(&[("mosquitto.conf", "")]);
        let main_file = main_dir.0.join("mosquitto.conf");
        let text = format!("include_dir {}\n", main_dir.path());
        std::fs::write(&main_file, &text).unwrap();
        let e = read(&text, &main_file, Path::new("")).unwrap_err();
        assert!(
            e.to_string()
                .contains("contains the main configuration file"),
            "{e}"
        );
    }

    /// Keys Wren does not support: a warning naming key and line where ignoring them is
    /// harmless; an error where it would let in clients Mosquitto refuses or expose what it
    /// hides; an error for keys Mosquitto does not know either.
    #[test]
    fn unsupported_keys_are_warnings_or_errors() {
        for (key, kind, _) in IGNORED {
            let value = match kind {
                Kind::Bool => "true",
                Kind::Int => "5",
                Kind::Text => "some text",
            };
            let w = one_warning(&format!("# one\n\n{key} {value}\n"));
            assert_eq!((w.key.as_str(), w.place.line), (*key, 3), "{w}");
            assert!(
                w.to_string().starts_with(&format!(
                    "Warning: Unsupported key '{key}' in test.conf line 3: ignored. "
                )),
                "{w}"
            );
        }
        let w = one_warning("persistence true\npersistence_file mosquitto.db\n");
        assert_eq!(
            w.to_string(),
            "Warning: Unsupported key 'persistence_file' in test.conf line 2: ignored. Wren keeps \
             its own store (another format) as wren.db in persistence_location; Mosquitto's file \
             is left alone."
        );
        for (key, _) in REFUSED {
            let e = read_err(&format!("listener 1883\n{key} /some/value\n"));
            assert_eq!(e.key(), *key);
            assert!(
                e.to_string()
                    .starts_with(&format!("Unsupported key '{key}' in test.conf line 2: ")),
                "{e}"
            );
        }
        for key in ["auth_opt_backends", "plugin_opt_x"] {
            let e = read_err(&format!("{key} files\n"));
            assert!(
                e.to_string()
                    .starts_with(&format!("Unsupported key '{key}'")),
                "{e}"
            );
        }
        let e = read_err("listener 1883\nallow_anonymus true\n");
        assert_eq!(
            e.to_string(),
            "Unknown configuration variable \"allow_anonymus\" in test.conf line 2"
        );
        assert_eq!(e.key(), "allow_anonymus");
    }

    #[test]
    fn bridges_are_read_and_bridge_keys_need_a_connection() {
        let (c, warnings) = read_ok(
            "listener 1883\nconnection cloud\naddress a.example:1883 b.example:8883\n\
             topic # both 1\ntopic cmd/# in 2 local/ \"\"\nremote_username wren\n\
             remote_password s3cret\ntry_private false\nrestart_timeout 2 10\n\
             bridge_protocol_version mqttv50\nlocal_cleansession false\nthreshold 10\n\
             allow_anonymous true\n",
        );
        assert_eq!(c.bridge.len(), 1);
        let b = &c.bridge[0];
        assert_eq!(b.name, "cloud");
        assert_eq!(b.address, ["a.example:1883", "b.example:8883"]);
        assert_eq!(b.topic, ["# both 1", "cmd/# in 2 local/ \"\""]);
        assert_eq!(b.remote_username.as_deref(), Some("wren"));
        assert_eq!(b.remote_password.as_deref(), Some("s3cret"));
        assert!(!b.try_private && b.is_v5() && !b.local_clean());
        assert_eq!(b.restart_timeout, [2, 10]);
        let keys: Vec<(&str, usize)> = warnings
            .iter()
            .map(|w| (w.key.as_str(), w.place.line))
            .collect();
        assert_eq!(keys, [("threshold", 12)]);
        assert!(
            warnings[0].to_string().contains("(bridge cloud)"),
            "{}",
            warnings[0]
        );
        let e = read_err("listener 1883\ntopic # both 1\n");
        assert!(
            e.to_string()
                .starts_with("Invalid bridge configuration: topic outside a bridge"),
            "{e}"
        );
        assert!(e.to_string().ends_with("in test.conf line 2"), "{e}");
        for (text, wanted) in [
            ("connection x\naddress h:1\ntopic a sideways\n", "line 3"),
            ("connection x\naddress h:1\n", "at least one topic"),
            ("connection x\ntopic a\n", "at least one remote address"),
            (
                "connection x\naddress h:1\ntopic a\ncleansession true\ncleansession false\n",
                "Duplicate cleansession",
            ),
            (
                "connection x\naddress h:1\ntopic a\nconnection x\n",
                "Duplicate bridge name x",
            ),
            (
                "connection x\naddress h:1\ntopic a\nstart_type lazy\n",
                "lazy is not supported",
            ),
            (
                "connection x\naddress h:1\ntopic a\nbridge_protocol_version mqttv31\n",
                "mqttv311 or mqttv50",
            ),
        ] {
            let e = read_err(text).to_string();
            assert!(e.contains(wanted), "{text:?}: {e}");
        }
    }

    #[test]
    fn validation_errors_name_the_listener_as_the_file_does() {
        let e = read_err("listener 1883\nlistener 8883\ncertfile /c.pem\n");
        assert_eq!(
            e.to_string(),
            "certfile and keyfile go together (the listener on port 8883, test.conf line 2)"
        );
        let e = read_err("listener 8883\ncertfile /c\nkeyfile /k\nrequire_certificate true\n");
        assert!(
            e.to_string()
                .ends_with("(the listener on port 8883, test.conf line 1)"),
            "{e}"
        );
        let e = read_err("certfile /c\n");
        assert!(e.to_string().ends_with("(the default listener)"), "{e}");
    }

    #[test]
    fn mosquitto_sort_order() {
        let mut names = vec!["b", "A", "01", "a", "B", "00", "Ab", "aa", "a_"];
        names.sort_by(|x, y| mosquitto_order(x.as_bytes(), y.as_bytes()));
        // `_` sorts after the letters: Mosquitto compares upper-cased bytes.
        assert_eq!(names, ["00", "01", "A", "Ab", "a", "aa", "a_", "B", "b"]);
    }
}
