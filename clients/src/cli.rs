//! What the tools share: the connection and will flags (one clap struct for the whole family),
//! the `--help` layout, Mosquitto-style argument errors and the exit-code rules.

use std::io::BufRead;
use std::process::ExitCode;

use clap::{Args, Parser};
use smol::channel::{self, Receiver};
use wren_codec::{PacketType, ProtocolVersion, QoS, ReasonCode};

use crate::client::{ClientError, ClientOptions, Event, MessageProperties, OutgoingMessage};

/// The `--help` layout every tool uses.
pub const HELP_TEMPLATE: &str = "\
{name} {version} - {about}

Usage: {usage}

{all-args}

Exit status: 0 on success; the broker's CONNACK code when it refuses the connection
(3.1.1: 1-5, 5.0: 128 and above); 27 when -W times out; 1 for bad arguments and other errors.
";

/// Mosquitto's exit status for a timeout (`MOSQ_ERR_TIMEOUT`), used by `-W`.
pub const EXIT_TIMEOUT: u8 = 27;

/// Connection flags shared by `wren-pub`, `wren-sub` and `wren-sensor`.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection")]
pub struct ConnArgs {
    /// MQTT host to connect to.
    #[arg(
        short = 'h',
        long = "host",
        default_value = "localhost",
        value_name = "host"
    )]
    pub host: String,
    /// Network port to connect to.
    #[arg(
        short = 'p',
        long = "port",
        default_value_t = 1883,
        value_name = "port"
    )]
    pub port: u16,
    /// Client id (default: the tool's name, `_`, the process id).
    #[arg(short = 'i', long = "id", value_name = "id")]
    pub id: Option<String>,
    /// Client id prefix; the process id is appended.
    #[arg(short = 'I', long = "id-prefix", value_name = "id_prefix")]
    pub id_prefix: Option<String>,
    /// Keep alive in seconds (0 turns it off).
    #[arg(
        short = 'k',
        long = "keepalive",
        default_value_t = 60,
        value_name = "keepalive",
        value_parser = parse_keepalive
    )]
    pub keepalive: u16,
    /// Disable clean session (persistent client mode).
    #[arg(short = 'c', long = "disable-clean-session")]
    pub persistent: bool,
    /// 5.0 session expiry interval in seconds (default: never with -c, else 0).
    #[arg(short = 'x', long = "session-expiry", value_name = "seconds")]
    pub session_expiry: Option<u32>,
    /// User name.
    #[arg(short = 'u', long = "username", value_name = "username")]
    pub username: Option<String>,
    /// Password.
    #[arg(short = 'P', long = "pw", value_name = "password")]
    pub password: Option<String>,
    /// MQTT protocol version: mqttv5, mqttv311 or mqttv31 (also 5, 311, 31).
    #[arg(short = 'V', long = "protocol-version", default_value = "mqttv311",
          value_parser = parse_version, value_name = "version")]
    pub protocol: ProtocolVersion,
    /// Print debug messages (every packet sent and received).
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
    /// Don't print error messages.
    #[arg(long = "quiet")]
    pub quiet: bool,
}

/// Will flags (`wren-pub`, `wren-sub`).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Will")]
pub struct WillArgs {
    /// Topic of the client's will, published by the broker if the connection is lost.
    #[arg(long = "will-topic", value_name = "topic")]
    pub will_topic: Option<String>,
    /// Payload of the will (default: empty).
    #[arg(long = "will-payload", value_name = "payload", requires = "will_topic")]
    pub will_payload: Option<String>,
    /// QoS of the will.
    #[arg(long = "will-qos", value_name = "qos", default_value = "0", value_parser = parse_qos)]
    pub will_qos: QoS,
    /// Make the will retained.
    #[arg(long = "will-retain")]
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

    /// Client options for these flags.
    pub fn client_options(&self, client_id: String) -> ClientOptions {
        let mut o = ClientOptions::new(self.host.clone(), self.port, client_id);
        o.version = self.protocol;
        o.keep_alive = self.keepalive;
        o.clean_start = !self.persistent;
        if self.protocol.is_v5() {
            // Mosquitto: with -c the session never expires unless -x says otherwise.
            o.session_expiry = self.session_expiry.or(self.persistent.then_some(u32::MAX));
        }
        o.username = self.username.clone();
        o.password = self.password.clone().map(String::into_bytes);
        o.debug = self.debug;
        o
    }

    /// Check what clap cannot (Mosquitto's rules); `Err` is the message.
    pub fn validate(&self) -> Result<(), String> {
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
    match T::try_parse() {
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
        ClientError::Engine(_) => 2,
        // MOSQ_ERR_CONN_LOST.
        ClientError::Closed => 7,
        ClientError::Io(_) | ClientError::InvalidTopic(_) | ClientError::NotConnected => 1,
    }
}

/// Report `err` on stderr (unless quiet) and turn it into the exit status.
pub fn fail(quiet: bool, err: &ClientError) -> ExitCode {
    if !quiet {
        match err {
            ClientError::Refused(_) => eprintln!("Connection error: {err}"),
            _ => eprintln!("Error: {err}"),
        }
    }
    ExitCode::from(exit_code(err))
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
