//! What the tools share: the connection and will flags (one clap struct for the whole family),
//! the `--help` layout, Mosquitto-style argument errors and the exit-code rules.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser};
use smol::channel::{self, Receiver};
use wren_codec::{PacketType, ProtocolVersion, QoS, ReasonCode};

use crate::client::{ClientError, ClientOptions, Event, MessageProperties, OutgoingMessage};
use crate::tls::TlsSettings;

/// The `--help` layout of the tools without `-W`.
pub const HELP_TEMPLATE: &str = "\
{name} {version} - {about}

Usage: {usage}

{all-args}

Exit status: 0 on success (also after Ctrl-C or SIGTERM, which disconnect cleanly); the
broker's CONNACK code when it refuses the connection (3.1.1: 1-5, 5.0: 128 and above); 1 for
bad arguments and other errors.
";

/// The `--help` layout of the tools with `-W` (a time-out).
pub const HELP_TEMPLATE_TIMEOUT: &str = "\
{name} {version} - {about}

Usage: {usage}

{all-args}

Exit status: 0 on success (also after Ctrl-C or SIGTERM, which disconnect cleanly); the
broker's CONNACK code when it refuses the connection (3.1.1: 1-5, 5.0: 128 and above); 27 when
-W times out; 1 for bad arguments and other errors.
";

/// Mosquitto's exit status for a timeout (`MOSQ_ERR_TIMEOUT`), used by `-W`.
pub const EXIT_TIMEOUT: u8 = 27;

/// Connection flags shared by `wren-pub`, `wren-sub` and `wren-sensor`.
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// MQTT host to connect to.
    #[arg(
        help_heading = "Connection",
        short = 'h',
        long = "host",
        default_value = "localhost",
        value_name = "host"
    )]
    pub host: String,
    /// Network port to connect to (default: 1883, 8883 with TLS).
    #[arg(
        help_heading = "Connection",
        short = 'p',
        long = "port",
        value_name = "port"
    )]
    pub port: Option<u16>,
    /// Broker URL: mqtt(s)://[username[:password]@]host[:port]/topic.
    #[arg(
        help_heading = "Connection",
        short = 'L',
        long = "url",
        value_name = "URL"
    )]
    pub url: Option<String>,
    /// Bind the outgoing socket to this local address (the interface's address).
    #[arg(help_heading = "Connection", short = 'A', value_name = "bind_address")]
    pub bind_address: Option<String>,
    /// Disable Nagle's algorithm (wren's tools always do; accepted for compatibility).
    #[arg(help_heading = "Connection", long = "nodelay")]
    pub nodelay: bool,
    /// Connect over this Unix domain socket instead of TCP.
    #[arg(help_heading = "Connection", long = "unix", value_name = "path")]
    pub unix: Option<std::path::PathBuf>,
    /// SOCKS5 proxy to connect through: socks5h://[username[:password]@]hostname[:port]
    /// (the proxy resolves the broker's host name; port 1080 unless given).
    #[arg(help_heading = "Connection", long = "proxy", value_name = "socks-url")]
    pub proxy: Option<String>,
    /// PEM file of trusted CA certificates; turns TLS on.
    #[arg(long = "cafile", value_name = "file", help_heading = "TLS")]
    pub cafile: Option<std::path::PathBuf>,
    /// Directory of PEM files of trusted CA certificates; turns TLS on.
    #[arg(long = "capath", value_name = "dir", help_heading = "TLS")]
    pub capath: Option<std::path::PathBuf>,
    /// Client certificate (PEM), for a broker that requires one (needs --key).
    #[arg(long = "cert", value_name = "file", help_heading = "TLS")]
    pub cert: Option<std::path::PathBuf>,
    /// Client private key (PEM) of --cert.
    #[arg(long = "key", value_name = "file", help_heading = "TLS")]
    pub key: Option<std::path::PathBuf>,
    /// Do not check that the server certificate's name matches the host.
    #[arg(long = "insecure", help_heading = "TLS")]
    pub insecure: bool,
    /// TLS protocol version: tlsv1.2 or tlsv1.3 (default: either).
    #[arg(long = "tls-version", value_name = "version", help_heading = "TLS")]
    pub tls_version: Option<String>,
    /// Trust the operating system's CA certificates; turns TLS on.
    #[arg(long = "tls-use-os-certs", help_heading = "TLS")]
    pub tls_use_os_certs: bool,
    /// Client id (default: the tool's name, `_`, the process id).
    #[arg(
        help_heading = "Connection",
        short = 'i',
        long = "id",
        value_name = "id"
    )]
    pub id: Option<String>,
    /// Client id prefix; the process id is appended.
    #[arg(
        help_heading = "Connection",
        short = 'I',
        long = "id-prefix",
        value_name = "id_prefix"
    )]
    pub id_prefix: Option<String>,
    /// Keep alive in seconds (0 turns it off).
    #[arg(
        help_heading = "Connection",
        short = 'k',
        long = "keepalive",
        default_value_t = 60,
        value_name = "keepalive",
        value_parser = parse_keepalive
    )]
    pub keepalive: u16,
    /// Disable clean session (persistent client mode).
    #[arg(
        help_heading = "Connection",
        short = 'c',
        long = "disable-clean-session"
    )]
    pub persistent: bool,
    /// 5.0 session expiry interval in seconds (default: never with -c, else 0).
    #[arg(
        help_heading = "Connection",
        short = 'x',
        long = "session-expiry",
        value_name = "seconds"
    )]
    pub session_expiry: Option<u32>,
    /// User name.
    #[arg(
        help_heading = "Connection",
        short = 'u',
        long = "username",
        value_name = "username"
    )]
    pub username: Option<String>,
    /// Password.
    #[arg(
        help_heading = "Connection",
        short = 'P',
        long = "pw",
        value_name = "password"
    )]
    pub password: Option<String>,
    /// MQTT protocol version: mqttv5, mqttv311 or mqttv31 (also 5, 311, 31).
    #[arg(help_heading = "Connection", short = 'V', long = "protocol-version", default_value = "mqttv311",
          value_parser = parse_version, value_name = "version")]
    pub protocol: ProtocolVersion,
    /// Print debug messages (every packet sent and received).
    #[arg(help_heading = "Connection", short = 'd', long = "debug")]
    pub debug: bool,
    /// Don't print error messages.
    #[arg(help_heading = "Connection", long = "quiet")]
    pub quiet: bool,
}

/// Will flags (`wren-pub`, `wren-sub`).
#[derive(Debug, Clone, Args)]
pub struct WillArgs {
    /// Topic of the client's will, published by the broker if the connection is lost.
    #[arg(help_heading = "Will", long = "will-topic", value_name = "topic")]
    pub will_topic: Option<String>,
    /// Payload of the will (default: empty).
    #[arg(
        help_heading = "Will",
        long = "will-payload",
        value_name = "payload",
        requires = "will_topic"
    )]
    pub will_payload: Option<String>,
    /// QoS of the will.
    #[arg(help_heading = "Will", long = "will-qos", value_name = "qos", default_value = "0", value_parser = parse_qos)]
    pub will_qos: QoS,
    /// Make the will retained.
    #[arg(help_heading = "Will", long = "will-retain")]
    pub will_retain: bool,
}

impl WillArgs {
    /// The will as a message, if `--will-topic` was given.
    pub fn will(&self) -> Option<OutgoingMessage> {
        let topic = self.will_topic.as_ref()?;
        Some(
            OutgoingMessage::new(
                topic.clone(),
                self.will_payload.clone().unwrap_or_default(),
                self.will_qos,
            )
            .retain(self.will_retain),
        )
    }
}

impl ConnArgs {
    /// The client id: `-i`, else `-I` + pid, else `<default_prefix>_<pid>` (as Mosquitto's
    /// `mosquitto_pub_<pid>`).
    pub fn client_id(&self, default_prefix: &str) -> String {
        if let Some(id) = &self.id {
            return id.clone();
        }
        let pid = std::process::id();
        match &self.id_prefix {
            Some(prefix) => format!("{prefix}{pid}"),
            None => format!("{default_prefix}_{pid}"),
        }
    }

    /// The parsed `-L` URL, if given (already checked by [`ConnArgs::validate`]).
    pub fn parsed_url(&self) -> Option<BrokerUrl> {
        self.url.as_deref().and_then(|u| parse_url(u).ok())
    }

    /// The topic of the `-L` URL.
    pub fn url_topic(&self) -> Option<String> {
        self.parsed_url().map(|u| u.topic)
    }

    /// The TLS flags (with `mqtts://` trusting the system's roots, as Mosquitto does).
    pub fn tls_settings(&self) -> TlsSettings {
        TlsSettings {
            cafile: self.cafile.clone(),
            capath: self.capath.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
            insecure: self.insecure,
            version: self.tls_version.clone(),
            use_os_certs: self.tls_use_os_certs || self.parsed_url().is_some_and(|u| u.tls),
        }
    }

    /// The port: `-L`'s (unless a `-p` follows it), else `-p`, else 8883 with TLS and 1883
    /// without (Mosquitto's defaults).
    pub fn port(&self) -> u16 {
        if let Some(port) = self.parsed_url().and_then(|u| u.port) {
            if !(after_url().port && self.port.is_some()) {
                return port;
            }
        }
        self.port.unwrap_or(if self.tls_settings().enabled() {
            8883
        } else {
            1883
        })
    }

    /// Client options for these flags; `Err` is an error in the TLS files, reported as
    /// Mosquitto does ("Error: Problem setting TLS options: …", exit 1).
    pub fn client_options(&self, client_id: String) -> ClientOptions {
        let url = self.parsed_url();
        let order = after_url();
        let host = match &url {
            Some(u) if !order.host => u.host.clone(),
            _ => self.host.clone(),
        };
        let mut o = ClientOptions::new(host, self.port(), client_id);
        let tls = self.tls_settings();
        // Mosquitto checks --tls-version even without TLS; rustls has no TLS 1.0 or 1.1.
        let bad_version = self
            .tls_version
            .as_deref()
            .is_some_and(|v| v != "tlsv1.2" && v != "tlsv1.3");
        let config = if tls.enabled() || bad_version {
            tls.client_config().map(Some)
        } else {
            Ok(None)
        };
        match config {
            Ok(config) => o.tls = config,
            Err(e) => {
                if !self.quiet {
                    eprintln!("Error: {e}");
                }
                std::process::exit(1);
            }
        }
        o.bind_address = self.bind_address.clone();
        o.unix_socket = self.unix.clone();
        o.proxy = self
            .proxy
            .as_deref()
            .and_then(|p| crate::socks::Proxy::parse(p).ok());
        o.version = self.protocol;
        o.keep_alive = self.keepalive;
        o.clean_start = !self.persistent;
        if self.protocol.is_v5() {
            // Mosquitto: with -c the session never expires unless -x says otherwise.
            o.session_expiry = self.session_expiry.or(self.persistent.then_some(u32::MAX));
        }
        o.username = self.username.clone();
        o.password = self.password.clone().map(String::into_bytes);
        if let Some(u) = url {
            if u.username.is_some() && !order.username {
                o.username = u.username;
            }
            if u.password.is_some() && !order.password {
                o.password = u.password.map(String::into_bytes);
            }
        }
        o.debug = self.debug;
        o
    }

    /// Check what clap cannot (Mosquitto's rules); `Err` is the message.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(p) = &self.proxy {
            crate::socks::Proxy::parse(p)?;
        }
        if let Some(u) = &self.url {
            parse_url(u)?;
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err("Both certfile and keyfile must be provided if one of them is set.".into());
        }
        if self.password.is_some() && self.username.is_none() && !self.protocol.is_v5() {
            return Err("a password (-P) needs a username (-u) before MQTT 5.0".into());
        }
        // Mosquitto 2.0 takes -x (and -D) without -V mqttv5 and leaves them out of the
        // 3.1.1 CONNECT; so does client_options().
        if self.keepalive < 5 {
            return Err(OPTION_ERROR.to_owned()
                + "Invalid keepalive given, it must be between 5 and 65535 inclusive.");
        }
        Ok(())
    }
}

/// A `-L` URL's parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    /// `mqtts://`.
    pub tls: bool,
    /// User name before `@`.
    pub username: Option<String>,
    /// Password after `user:`.
    pub password: Option<String>,
    /// Host.
    pub host: String,
    /// Port after `host:` (the scheme's default otherwise: 1883 or 8883).
    pub port: Option<u16>,
    /// The topic after the first `/`.
    pub topic: String,
}

/// Parse `mqtt(s)://[username[:password]@]host[:port]/topic` as Mosquitto's tools do (the
/// scheme case-insensitive, the topic everything after the first `/`, the port as `atoi`).
pub fn parse_url(url: &str) -> Result<BrokerUrl, String> {
    let lower = url.to_ascii_lowercase();
    let (tls, rest) = if lower.starts_with("mqtt://") {
        (false, url.get(7..).unwrap_or_default())
    } else if lower.starts_with("mqtts://") {
        (true, url.get(8..).unwrap_or_default())
    } else {
        return Err("unsupported URL scheme.\n".into());
    };
    let Some((authority, topic)) = rest.split_once('/') else {
        return Err("Invalid URL for -L argument specified - topic missing.".into());
    };
    let (username, password, hostport) = match authority.split_once('@') {
        Some((userinfo, hostport)) => match userinfo.split_once(':') {
            Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned()), hostport),
            None => (Some(userinfo.to_owned()), None, hostport),
        },
        None => (None, None, authority),
    };
    let (host, port) = match hostport.split_once(':') {
        Some((h, p)) => {
            // atoi: leading digits, 0 when none.
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            (h, Some(digits.parse::<u16>().unwrap_or(0)))
        }
        None => (hostport, None),
    };
    Ok(BrokerUrl {
        tls,
        username,
        password,
        host: host.to_owned(),
        port: port.or(Some(if tls { 8883 } else { 1883 })),
        topic: topic.to_owned(),
    })
}

/// `-V` values, as Mosquitto spells them.
pub fn parse_version(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "mqttv5" | "5" => Ok(ProtocolVersion::V5),
        "mqttv311" | "311" => Ok(ProtocolVersion::V311),
        "mqttv31" | "31" => Ok(ProtocolVersion::V31),
        other => Err(format!(
            "Invalid protocol version '{other}' (use mqttv5, mqttv311 or mqttv31)"
        )),
    }
}

/// `-k` values as Mosquitto reads them (`atoi`, then 5..=65535).
pub fn parse_keepalive(s: &str) -> Result<u16, String> {
    match u16::try_from(atoi(s)) {
        Ok(k) if k >= 5 => Ok(k),
        _ => Err(OPTION_ERROR.to_owned()
            + "Invalid keepalive given, it must be between 5 and 65535 inclusive."),
    }
}

/// `-q` values: 0, 1 or 2.
pub fn parse_qos(s: &str) -> Result<QoS, String> {
    s.parse::<u8>()
        .ok()
        .and_then(QoS::from_bits)
        .ok_or_else(|| format!("Invalid QoS given: {s}"))
}

/// Parse the command line; on bad flags print `Error: …` and the `--help` hint to stderr and
/// exit 1, as Mosquitto's tools do. `--help` prints the help and exits 0.
pub fn parse_or_exit<T: Parser>(tool: &str) -> T {
    let parsed = T::command().try_get_matches().and_then(|m| {
        remember_order(&m);
        T::from_arg_matches(&m)
    });
    match parsed {
        Ok(t) => t,
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                let _ = e.print();
                std::process::exit(0);
            }
            _ => {
                // A value parser's own Mosquitto message (see OPTION_ERROR), printed as is.
                if let Some(m) = std::error::Error::source(&e).map(ToString::to_string) {
                    if m.starts_with(OPTION_ERROR) {
                        usage_error(tool, &m)
                    }
                }
                let rendered = e.render().to_string();
                let first = rendered
                    .lines()
                    .next()
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ");
                usage_error(tool, first)
            }
        },
    }
}

/// Which of `-h`, `-p`, `-u`, `-P` came after the last `-L` on the command line: Mosquitto
/// reads its arguments in order, so a later flag overrides the URL's part and an earlier one is
/// overridden by it.
#[derive(Debug, Clone, Copy, Default)]
struct AfterUrl {
    host: bool,
    port: bool,
    username: bool,
    password: bool,
}

static AFTER_URL: OnceLock<AfterUrl> = OnceLock::new();

fn remember_order(m: &clap::ArgMatches) {
    let last = |id: &str| {
        (m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
            .then(|| m.indices_of(id).and_then(Iterator::max))
            .flatten()
    };
    let Some(url) = last("url") else { return };
    let after = |id: &str| last(id).is_some_and(|i| i > url);
    let _ = AFTER_URL.set(AfterUrl {
        host: after("host"),
        port: after("port"),
        username: after("username"),
        password: after("password"),
    });
}

fn after_url() -> AfterUrl {
    AFTER_URL.get().copied().unwrap_or_default()
}

/// Marks a message of an error Mosquitto finds while reading the options (it then prints one
/// more blank line before the `--help` hint); [`usage_error`] removes it.
pub const OPTION_ERROR: &str = "\u{1}";

/// Print a usage error Mosquitto's way and exit 1.
pub fn usage_error(tool: &str, message: &str) -> ! {
    match message.strip_prefix(OPTION_ERROR) {
        Some(m) => eprintln!("Error: {m}\n\n\nUse '{tool} --help' to see usage."),
        None => eprintln!("Error: {message}\n\nUse '{tool} --help' to see usage."),
    }
    std::process::exit(1)
}

/// The `-D command identifier value` occurrences, as clap collects them (flattened).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Properties {
    /// (command, property, value, second value for user-property), lower-case names.
    pub items: Vec<(String, String, String, Option<String>)>,
}

/// The property value types of MQTT 5.0.
#[derive(Clone, Copy)]
enum PropType {
    Byte,
    Int16,
    Int32,
    VarInt,
    Str,
    Binary,
    Pair,
}

/// Property names as Mosquitto spells them, their type and the packets 5.0 allows them in.
const PROPERTIES: &[(&str, PropType, &[&str])] = {
    use PropType::*;
    &[
        ("payload-format-indicator", Byte, &["publish", "will"]),
        ("message-expiry-interval", Int32, &["publish", "will"]),
        ("content-type", Str, &["publish", "will"]),
        ("response-topic", Str, &["publish", "will"]),
        ("correlation-data", Binary, &["publish", "will"]),
        ("subscription-identifier", VarInt, &["publish", "subscribe"]),
        (
            "session-expiry-interval",
            Int32,
            &["connect", "connack", "disconnect"],
        ),
        ("assigned-client-identifier", Str, &["connack"]),
        ("server-keep-alive", Int16, &["connack"]),
        (
            "authentication-method",
            Str,
            &["connect", "connack", "auth"],
        ),
        (
            "authentication-data",
            Binary,
            &["connect", "connack", "auth"],
        ),
        ("request-problem-information", Byte, &["connect"]),
        ("will-delay-interval", Int32, &["will"]),
        ("request-response-information", Byte, &["connect"]),
        ("response-information", Str, &["connack"]),
        ("server-reference", Str, &["connack", "disconnect"]),
        (
            "reason-string",
            Str,
            &[
                "connack",
                "puback",
                "pubrec",
                "pubrel",
                "pubcomp",
                "suback",
                "unsuback",
                "disconnect",
                "auth",
            ],
        ),
        ("receive-maximum", Int16, &["connect", "connack"]),
        ("topic-alias-maximum", Int16, &["connect", "connack"]),
        ("topic-alias", Int16, &["publish"]),
        ("maximum-qos", Byte, &["connack"]),
        ("retain-available", Byte, &["connack"]),
        (
            "user-property",
            Pair,
            &[
                "connect",
                "connack",
                "publish",
                "will",
                "puback",
                "pubrec",
                "pubrel",
                "pubcomp",
                "subscribe",
                "suback",
                "unsubscribe",
                "unsuback",
                "disconnect",
                "auth",
            ],
        ),
        ("maximum-packet-size", Int32, &["connect", "connack"]),
        ("wildcard-subscription-available", Byte, &["connack"]),
        ("subscription-identifier-available", Byte, &["connack"]),
        ("shared-subscription-available", Byte, &["connack"]),
    ]
};

/// The commands `-D` takes (Mosquitto's list).
const COMMANDS: &[&str] = &[
    "connect",
    "publish",
    "puback",
    "pubrec",
    "pubrel",
    "pubcomp",
    "subscribe",
    "unsubscribe",
    "disconnect",
    "auth",
    "will",
];

/// C's `atoi`: leading blanks, a sign, digits; anything else ends it (no digits: 0).
pub fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for c in digits.bytes().take_while(u8::is_ascii_digit) {
        v = v.saturating_mul(10).saturating_add(i64::from(c - b'0'));
    }
    if neg { -v } else { v }
}

impl Properties {
    /// Check the flattened `-D` values as Mosquitto does, with its messages (option errors).
    pub fn parse(tokens: &[String]) -> Result<Properties, String> {
        let err = |m: &str| OPTION_ERROR.to_owned() + m;
        let mut items = Vec::new();
        let mut it = tokens.iter();
        while let Some(command) = it.next() {
            let not_enough =
                || err("--property argument given but not enough arguments specified.");
            let command = command.to_ascii_lowercase();
            let name = it.next().ok_or_else(not_enough)?.to_ascii_lowercase();
            let value = it.next().ok_or_else(not_enough)?.clone();
            if !COMMANDS.contains(&command.as_str()) {
                return Err(err("Invalid command given in --property argument."));
            }
            let Some(&(_, ty, allowed)) = PROPERTIES.iter().find(|(n, _, _)| *n == name) else {
                return Err(err("Invalid property name given in --property argument."));
            };
            if !allowed.contains(&command.as_str()) {
                return Err(err(&format!(
                    "{name} property not allowed for {command} in --property argument."
                )));
            }
            let extra = match ty {
                PropType::Pair => Some(it.next().ok_or_else(not_enough)?.clone()),
                _ => None,
            };
            let max = match ty {
                PropType::Byte => Some(255),
                PropType::Int16 => Some(65_535),
                _ => None,
            };
            if let Some(max) = max {
                let v = atoi(&value);
                if !(0..=max).contains(&v) {
                    return Err(err(&format!(
                        "Property value ({v}) out of range for property {name}."
                    )));
                }
            }
            items.push((command, name, value, extra));
        }
        Ok(Properties { items })
    }

    /// The properties given for `command`: (name, value, second value).
    pub fn of<'a>(
        &'a self,
        command: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str, Option<&'a str>)> + 'a {
        self.items
            .iter()
            .filter(move |(c, ..)| c == command)
            .map(|(_, n, v, e)| (n.as_str(), v.as_str(), e.as_deref()))
    }

    /// The message properties (`publish` or `will`) wren's client sends.
    pub fn message(&self, command: &str) -> MessageProperties {
        let mut p = MessageProperties::default();
        for (name, value, extra) in self.of(command) {
            match name {
                "user-property" => p
                    .user_properties
                    .push((value.to_owned(), extra.unwrap_or_default().to_owned())),
                "content-type" => p.content_type = Some(value.to_owned()),
                "response-topic" => p.response_topic = Some(value.to_owned()),
                "correlation-data" => p.correlation_data = Some(value.as_bytes().to_vec()),
                "message-expiry-interval" => {
                    p.message_expiry_interval = Some(atoi(value) as u32);
                }
                "payload-format-indicator" => p.payload_format_utf8 = Some(atoi(value) != 0),
                "topic-alias" => p.topic_alias = u16::try_from(atoi(value)).ok(),
                _ => {}
            }
        }
        p
    }

    /// Apply the `connect`, `subscribe`, `unsubscribe`, `disconnect` and `will` properties;
    /// only with 5.0, as Mosquitto leaves them out of 3.1.1 packets.
    pub fn apply_connect(&self, o: &mut ClientOptions) {
        if !o.version.is_v5() {
            return;
        }
        let pair = |v: &str, e: Option<&str>| (v.to_owned(), e.unwrap_or_default().to_owned());
        let rp = &mut o.request_properties;
        for (name, value, extra) in self.of("connect") {
            match name {
                "user-property" => o.user_properties.push(pair(value, extra)),
                "session-expiry-interval" => o.session_expiry = Some(atoi(value) as u32),
                "receive-maximum" => rp.receive_maximum = u16::try_from(atoi(value)).ok(),
                "maximum-packet-size" => rp.maximum_packet_size = Some(atoi(value) as u32),
                "request-problem-information" => {
                    rp.request_problem_information = Some(atoi(value) != 0);
                }
                "request-response-information" => {
                    rp.request_response_information = Some(atoi(value) != 0);
                }
                "authentication-method" => rp.authentication_method = Some(value.to_owned()),
                "authentication-data" => {
                    rp.authentication_data = Some(value.as_bytes().to_vec());
                }
                // topic-alias-maximum is not sent: wren's client does not resolve aliases.
                _ => {}
            }
        }
        for (name, value, extra) in self.of("subscribe") {
            match name {
                "subscription-identifier" => {
                    rp.subscription_identifier = Some(atoi(value) as u32);
                }
                "user-property" => rp.subscribe_user_properties.push(pair(value, extra)),
                _ => {}
            }
        }
        for (_, value, extra) in self.of("unsubscribe") {
            rp.unsubscribe_user_properties.push(pair(value, extra));
        }
        for (name, value, extra) in self.of("disconnect") {
            match name {
                "session-expiry-interval" => {
                    rp.disconnect_session_expiry = Some(atoi(value) as u32);
                }
                "reason-string" => rp.disconnect_reason_string = Some(value.to_owned()),
                "user-property" => rp.disconnect_user_properties.push(pair(value, extra)),
                _ => {}
            }
        }
        if let Some(will) = o.will.as_mut() {
            will.properties = self.message("will");
        }
    }
}

/// The exit status for a failed connection or session, by Mosquitto's rules: the CONNACK code
/// for a refusal, otherwise a libmosquitto-style error number.
pub fn exit_code(err: &ClientError) -> u8 {
    match err {
        ClientError::Refused(r) => r.code(),
        ClientError::Timeout => EXIT_TIMEOUT,
        // MOSQ_ERR_MALFORMED_PACKET and MOSQ_ERR_PROTOCOL.
        ClientError::Malformed(_) => 21,
        // MOSQ_ERR_TLS.
        ClientError::Tls(_) => 8,
        ClientError::Engine(_) => 2,
        // MOSQ_ERR_CONN_LOST.
        ClientError::Closed => 7,
        ClientError::Io(_) | ClientError::InvalidTopic(_) | ClientError::NotConnected => 1,
    }
}

/// A failed connection: with `-d`, the TLS reason on stdout first (where Mosquitto prints its
/// `OpenSSL Error[0]: …` lines); then [`fail`].
pub fn fail_connect(conn: &ConnArgs, err: &ClientError) -> ExitCode {
    if let (true, ClientError::Tls(reason)) = (conn.debug, err) {
        println!("TLS Error: {reason}");
    }
    fail(conn.quiet, err)
}

/// Report `err` on stderr (unless quiet) and turn it into the exit status.
pub fn fail(quiet: bool, err: &ClientError) -> ExitCode {
    if !quiet {
        match err {
            ClientError::Refused(_) => eprintln!("Connection error: {err}"),
            // libmosquitto's words and status (MOSQ_ERR_TLS) for a handshake that fails after
            // mosquitto_connect returned, its usual case on a local network (when the server's
            // answer comes first it says "Unable to connect (A TLS error occurred.)." and exits
            // 1). rustls's reason is in `err`.
            ClientError::Tls(_) => eprintln!("Error: A TLS error occurred."),
            // strerror's words, without Rust's " (os error N)".
            ClientError::Io(e) => {
                let text = e.to_string();
                let text = match text.find(" (os error ") {
                    Some(at) => text.get(..at).unwrap_or(&text).to_owned(),
                    None => text,
                };
                eprintln!("Error: {text}");
            }
            _ => eprintln!("Error: {err}"),
        }
    }
    ExitCode::from(exit_code(err))
}

/// The packaging flags every tool takes before anything else (not shown in `--help`):
/// `--generate-man DIR` writes `DIR/<tool>.1` (clap_mangen), `--generate-completions SHELL`
/// prints the completion script for bash, zsh, fish, elvish or powershell (clap_complete). Both
/// come from the tool's clap definition, so they always match its flags. Exits when one is
/// given; returns otherwise.
pub fn generate_if_asked(command: impl FnOnce() -> clap::Command) {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let (Some(flag), Some(value), 2) = (args.first(), args.get(1), args.len()) else {
        return;
    };
    let result = match flag.to_str() {
        Some("--generate-man") => write_man(command(), std::path::Path::new(value)),
        Some("--generate-completions") => write_completions(command(), value),
        _ => return,
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("Error: {e}");
            std::process::exit(1)
        }
    }
}

/// Write `dir/<name>.1`, the man page of `command`.
pub fn write_man(command: clap::Command, dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{}.1", command.get_name()));
    let mut out = Vec::new();
    clap_mangen::Man::new(command).render(&mut out)?;
    std::fs::write(path, out)
}

/// Print the completion script of `command` for `shell` on stdout.
pub fn write_completions(
    mut command: clap::Command,
    shell: &std::ffi::OsStr,
) -> std::io::Result<()> {
    use clap::ValueEnum;
    let name = shell.to_string_lossy();
    let shell = clap_complete::Shell::from_str(&name, true).map_err(|_| {
        std::io::Error::other(format!(
            "unknown shell '{name}' (bash, zsh, fish, elvish or powershell)"
        ))
    })?;
    let bin = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, bin, &mut std::io::stdout());
    Ok(())
}

/// SIGINT (Ctrl-C) and SIGTERM: a channel that closes when the first arrives, so the tools can
/// send DISCONNECT (the broker then publishes no will) and exit 0, as `mosquitto_sub` does. A
/// second signal exits at once with status 130. Every call returns the same channel.
pub fn interrupt_signal() -> Receiver<()> {
    static SIGNAL: OnceLock<Receiver<()>> = OnceLock::new();
    SIGNAL
        .get_or_init(|| {
            let (tx, rx) = channel::bounded(1);
            let seen = AtomicBool::new(false);
            let _ = ctrlc::set_handler(move || {
                if seen.swap(true, Ordering::SeqCst) {
                    std::process::exit(130);
                }
                tx.close();
            });
            rx
        })
        .clone()
}

/// `None` once `signal` (from [`interrupt_signal`]) fires: race it with the tool's work.
pub async fn interrupted<T>(signal: &Receiver<()>) -> Option<T> {
    let _ = signal.recv().await;
    None
}

/// Lines of standard input, read on a thread so async code can wait on them; the channel closes
/// at end of input (or on a read error). Trailing `\r\n`/`\n` are removed.
pub fn stdin_lines() -> Receiver<String> {
    let (tx, rx) = channel::unbounded();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        let mut line = String::new();
        loop {
            line.clear();
            match lock.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let trimmed = line.trim_end_matches(['\n', '\r']).to_owned();
                    if tx.send_blocking(trimmed).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Split a console line into its command word (upper-cased) and the rest (leading spaces
/// removed, inner spaces kept).
pub fn split_command(line: &str) -> (String, &str) {
    let line = line.trim_start();
    match line.split_once(char::is_whitespace) {
        Some((cmd, rest)) => (cmd.to_ascii_uppercase(), rest.trim_start()),
        None => (line.to_ascii_uppercase(), ""),
    }
}

/// The console's line for an event: every acknowledgement and message as it arrives.
pub fn console_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::Connected(c) => format!(
            "CONNACK accepted, session present: {}{}",
            if c.session_present { "yes" } else { "no" },
            c.assigned_client_id
                .as_ref()
                .map(|id| format!(", assigned client id: {id}"))
                .unwrap_or_default()
        ),
        Event::Message(m) => format!(
            "MESSAGE {} {}",
            m.topic,
            String::from_utf8_lossy(&m.payload)
        ),
        Event::PubAck(a) => format!(
            "PUBACK mid={}{}",
            a.packet_id,
            reason(a.reason_code, PacketType::PubAck)
        ),
        Event::PubRec(a) => format!(
            "PUBREC mid={}{}",
            a.packet_id,
            reason(a.reason_code, PacketType::PubRec)
        ),
        Event::PubComp(a) => format!(
            "PUBCOMP mid={}{}",
            a.packet_id,
            reason(a.reason_code, PacketType::PubComp)
        ),
        Event::SubAck { packet_id, codes } => {
            let granted: Vec<String> = codes
                .iter()
                .map(|&c| {
                    if c < 0x80 {
                        format!("granted QoS {c}")
                    } else {
                        format!(
                            "refused 0x{c:02x} ({})",
                            ReasonCode(c).name(PacketType::SubAck)
                        )
                    }
                })
                .collect();
            format!("SUBACK mid={packet_id} {}", granted.join(", "))
        }
        Event::UnsubAck { packet_id, codes } => {
            let failed: Vec<String> = codes
                .iter()
                .filter(|&&c| c >= 0x80 || c == 0x11)
                .map(|&c| format!("0x{c:02x} ({})", ReasonCode(c).name(PacketType::UnsubAck)))
                .collect();
            if failed.is_empty() {
                format!("UNSUBACK mid={packet_id}")
            } else {
                format!("UNSUBACK mid={packet_id} {}", failed.join(", "))
            }
        }
        Event::ServerDisconnect {
            reason_code,
            reason_string,
        } => format!(
            "DISCONNECT from broker: 0x{reason_code:02x} ({}){}",
            ReasonCode(*reason_code).name(PacketType::Disconnect),
            reason_string
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        Event::ConnectionLost(why) => format!("CONNECTION LOST: {why}"),
        Event::Reconnecting(d) => format!("RECONNECTING in {} ms", d.as_millis()),
        Event::PingResp | Event::Log(_) | Event::Closed => return None,
    })
}

fn reason(code: u8, packet: PacketType) -> String {
    if code == 0 {
        String::new()
    } else {
        format!(" rc=0x{code:02x} ({})", ReasonCode(code).name(packet))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_like_mosquitto() {
        assert_eq!(parse_version("mqttv5"), Ok(ProtocolVersion::V5));
        assert_eq!(parse_version("5"), Ok(ProtocolVersion::V5));
        assert_eq!(parse_version("311"), Ok(ProtocolVersion::V311));
        assert_eq!(parse_version("mqttv31"), Ok(ProtocolVersion::V31));
        assert!(parse_version("4").is_err());
    }

    #[derive(Debug, Parser)]
    #[command(disable_help_flag = true)]
    struct Conn {
        #[command(flatten)]
        conn: ConnArgs,
    }

    fn conn(args: &[&str]) -> ConnArgs {
        Conn::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .conn
    }

    #[test]
    fn urls_like_mosquitto() {
        let u = parse_url("mqtt://alice:s3:cret@broker.example:1884/a/b/c").unwrap();
        assert_eq!(
            u,
            BrokerUrl {
                tls: false,
                username: Some("alice".into()),
                password: Some("s3:cret".into()),
                host: "broker.example".into(),
                port: Some(1884),
                topic: "a/b/c".into(),
            }
        );
        let u = parse_url("MQTTS://bob@h/t").unwrap();
        assert_eq!(
            (u.tls, u.username.as_deref(), u.password, u.port),
            (true, Some("bob"), None, Some(8883))
        );
        assert_eq!(parse_url("mqtt://h/").unwrap().topic, "");
        // atoi: "12ab" is 12.
        assert_eq!(parse_url("mqtt://h:12ab/t").unwrap().port, Some(12));
        assert_eq!(
            parse_url("http://h/t"),
            Err("unsupported URL scheme.\n".into())
        );
        assert!(parse_url("mqtt://h").unwrap_err().contains("topic missing"));
    }

    #[test]
    fn port_defaults_to_8883_with_tls() {
        assert_eq!(conn(&[]).port(), 1883);
        assert_eq!(conn(&["--cafile", "ca.pem"]).port(), 8883);
        assert_eq!(conn(&["--capath", "/etc/ssl/certs"]).port(), 8883);
        assert_eq!(conn(&["--tls-use-os-certs"]).port(), 8883);
        assert_eq!(conn(&["--cafile", "ca.pem", "-p", "1"]).port(), 1);
        assert_eq!(conn(&["-L", "mqtts://h/t"]).port(), 8883);
        assert!(conn(&["-L", "mqtts://h/t"]).tls_settings().use_os_certs);
        let c = conn(&["-L", "mqtt://u:p@h:7/t", "-u", "x"]);
        let o = c.client_options("id".into());
        assert_eq!(
            (o.host.as_str(), o.port, o.username.as_deref()),
            ("h", 7, Some("u"))
        );
        assert_eq!(o.password.as_deref(), Some(&b"p"[..]));
    }

    #[test]
    fn tls_flag_errors() {
        assert!(conn(&["--cert", "c.pem"]).validate().is_err());
        assert_eq!(conn(&["--proxy", "socks5h://p"]).validate(), Ok(()));
        assert_eq!(
            conn(&["--proxy", "socks4://p"]).validate(),
            Err("Unsupported proxy protocol: socks4://p".into())
        );
        assert_eq!(
            conn(&["--proxy", "socks5h://p:x"]).validate(),
            Err("Invalid proxy port 0".into())
        );
    }

    #[test]
    fn qos_values() {
        assert_eq!(parse_qos("2"), Ok(QoS::ExactlyOnce));
        assert!(parse_qos("3").is_err());
        assert!(parse_qos("x").is_err());
    }

    #[test]
    fn console_commands_split() {
        assert_eq!(
            split_command("publish a/b hello  world"),
            ("PUBLISH".to_owned(), "a/b hello  world")
        );
        assert_eq!(split_command("  disconnect"), ("DISCONNECT".to_owned(), ""));
        assert_eq!(split_command(""), (String::new(), ""));
    }

    #[test]
    fn exit_codes_follow_connack() {
        use crate::engine::{ConnectRefused, ConnectReturnCode};
        let e = ClientError::Refused(ConnectRefused::V3(ConnectReturnCode::NotAuthorized));
        assert_eq!(exit_code(&e), 5);
        let e = ClientError::Refused(ConnectRefused::V5(wren_codec::ReasonCode::NOT_AUTHORIZED));
        assert_eq!(exit_code(&e), 135);
        assert_eq!(exit_code(&ClientError::Timeout), 27);
    }
}
