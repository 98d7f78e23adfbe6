//! `wren-rr`: publish a request and wait for its response, compatible with `mosquitto_rr`.
//!
//! MQTT 5.0 request/response: subscribe to the response topic (`-e`), publish the request on
//! `-t` with the Response Topic property set to it (and Correlation Data when `-D publish
//! correlation-data …` gives one), print the first message that arrives on the response topic
//! the way `wren-sub` prints messages (`-v`, `-N`, `-F`), disconnect. `-W` bounds the wait
//! (exit 27 and "Timed out", as Mosquitto).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use clap::{CommandFactory, FromArgMatches, Parser};
use smol::Timer;
use smol::future::FutureExt;
use wren_clients::cli::{self, ConnArgs, HELP_TEMPLATE, WillArgs};
use wren_clients::client::{
    Client, ClientError, Event, MessageProperties, OutgoingMessage, ReceivedMessage,
};
use wren_clients::format::format_message;
use wren_codec::{QoS, TopicName};

/// Publish a request message and wait for the response (MQTT 5.0 request/response).
#[derive(Debug, Parser)]
#[command(name = "wren-rr", version, help_template = HELP_TEMPLATE,
          disable_help_flag = true, disable_version_flag = true)]
struct Args {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    will: WillArgs,
    /// Topic the request is published to.
    #[arg(short = 't', long = "topic", value_name = "topic")]
    topic: Option<String>,
    /// Response topic: subscribed to, and sent in the request's Response Topic property.
    #[arg(short = 'e', value_name = "response-topic")]
    response_topic: Option<String>,
    /// Request payload.
    #[arg(short = 'm', long = "message", value_name = "message")]
    message: Option<String>,
    /// Send the contents of a file as the request.
    #[arg(short = 'f', long = "file", value_name = "file")]
    file: Option<std::path::PathBuf>,
    /// Read stdin, sending all of it as the request.
    #[arg(short = 's', long = "stdin-file")]
    stdin: bool,
    /// Send a null (zero length) request.
    #[arg(short = 'n', long = "null-message")]
    null: bool,
    /// QoS of the request and of the response subscription.
    #[arg(short = 'q', long = "qos", default_value = "0", value_parser = cli::parse_qos, value_name = "qos")]
    qos: QoS,
    /// Print the response's topic before its payload.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Do not print a newline after the response.
    #[arg(short = 'N')]
    no_eol: bool,
    /// Output format (the -F codes of wren-sub).
    #[arg(short = 'F', value_name = "format")]
    format: Option<String>,
    /// Do not print stale (retained) messages.
    #[arg(short = 'R')]
    no_retained: bool,
    /// Seconds to wait for the response; exit 27 ("Timed out") after that.
    #[arg(short = 'W', value_name = "secs")]
    timeout: Option<u64>,
    /// 5.0 PUBLISH property of the request: `-D publish correlation-data 42`,
    /// `-D publish user-property k v`, content-type, message-expiry-interval,
    /// payload-format-indicator.
    #[arg(short = 'D', long = "property", num_args = 3..=4, action = clap::ArgAction::Append,
          value_names = ["command", "identifier", "value"])]
    properties: Vec<String>,
    /// Print this help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// The command line: `Args` with MQTT 5.0 as the default protocol, as `mosquitto_rr`.
fn command() -> clap::Command {
    Args::command().mut_arg("protocol", |a| a.default_value("mqttv5"))
}

fn parse() -> Args {
    let parsed = command()
        .try_get_matches()
        .and_then(|m| Args::from_arg_matches(&m));
    match parsed {
        Ok(args) => args,
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                let _ = e.print();
                std::process::exit(0);
            }
            _ => {
                let rendered = e.render().to_string();
                let first = rendered
                    .lines()
                    .next()
                    .unwrap_or("invalid arguments")
                    .trim_start_matches("error: ")
                    .to_owned();
                cli::usage_error("wren-rr", &first)
            }
        },
    }
}

fn main() -> ExitCode {
    cli::generate_if_asked(command);
    let args = parse();
    let (payload, properties) = match check(&args) {
        Ok(p) => p,
        Err(e) => cli::usage_error("wren-rr", &e),
    };
    let mut options = args.conn.client_options(args.conn.client_id("wren_rr"));
    options.will = args.will.will();
    smol::block_on(async {
        let deadline = args
            .timeout
            .map(|secs| Instant::now() + Duration::from_secs(secs));
        let (client, _) = match Client::connect(options).await {
            Ok(c) => c,
            Err(e) => return cli::fail(args.conn.quiet, &e),
        };
        match request(&args, &client, payload, properties, deadline).await {
            // No debug line for the DISCONNECT: mosquitto_rr -d prints none either.
            Ok(code) => {
                let _ = client.disconnect().await;
                code
            }
            Err(e) => {
                let _ = client.disconnect().await;
                cli::fail(args.conn.quiet, &e)
            }
        }
    })
}

fn check(args: &Args) -> Result<(Vec<u8>, MessageProperties), String> {
    args.conn.validate()?;
    let sources = [
        args.message.is_some(),
        args.file.is_some(),
        args.stdin,
        args.null,
    ]
    .iter()
    .filter(|&&s| s)
    .count();
    if sources > 1 {
        return Err("Only one type of message can be sent at once.".into());
    }
    let (Some(topic), Some(response)) = (&args.topic, &args.response_topic) else {
        return Err("All of topic, message, and response topic must be supplied.".into());
    };
    if sources == 0 {
        return Err("All of topic, message, and response topic must be supplied.".into());
    }
    if TopicName::new(topic).is_err() || topic.contains(['+', '#']) {
        return Err(format!(
            "Invalid publish topic '{topic}', does it contain '+' or '#'?"
        ));
    }
    // The response topic goes into the request's Response Topic property: a topic name.
    if TopicName::new(response).is_err() || response.contains(['+', '#']) {
        return Err(format!(
            "Invalid response topic '{response}', does it contain '+' or '#'?"
        ));
    }
    if args.timeout == Some(0) {
        return Err("Invalid timeout \"0\".".into());
    }
    if let Some(t) = &args.will.will_topic {
        TopicName::new(t).map_err(|_| format!("Invalid will topic '{t}'."))?;
    }
    let mut properties = parse_properties(args)?;
    if args.conn.protocol.is_v5() {
        properties.response_topic = Some(response.clone());
    }
    let payload = if let Some(m) = &args.message {
        m.clone().into_bytes()
    } else if let Some(f) = &args.file {
        std::fs::read(f).map_err(|e| format!("Unable to read file \"{}\": {e}.", f.display()))?
    } else if args.stdin {
        let mut all = Vec::new();
        std::io::stdin()
            .read_to_end(&mut all)
            .map_err(|e| format!("Unable to read stdin: {e}."))?;
        all
    } else {
        Vec::new()
    };
    Ok((payload, properties))
}

/// `-D publish …` for the request (the same spellings as wren-pub).
fn parse_properties(args: &Args) -> Result<MessageProperties, String> {
    let mut p = MessageProperties::default();
    let mut tokens = args.properties.iter();
    while let Some(command) = tokens.next() {
        let missing = || "-D needs a command, a property and a value.".to_owned();
        let id = tokens.next().ok_or_else(missing)?;
        let value = tokens.next().ok_or_else(missing)?;
        let extra = if id == "user-property" {
            Some(tokens.next().ok_or_else(missing)?)
        } else {
            None
        };
        if !args.conn.protocol.is_v5() {
            return Err("-D/--property is only available with MQTT 5.0 (-V mqttv5).".into());
        }
        if !command.eq_ignore_ascii_case("publish") {
            return Err(format!(
                "Unsupported -D command '{command}' (only 'publish')."
            ));
        }
        match (id.as_str(), extra) {
            ("user-property", Some(v)) => p.user_properties.push((value.clone(), v.clone())),
            ("content-type", None) => p.content_type = Some(value.clone()),
            ("correlation-data", None) => p.correlation_data = Some(value.clone().into_bytes()),
            ("message-expiry-interval", None) => {
                p.message_expiry_interval = Some(
                    value
                        .parse()
                        .map_err(|_| format!("Invalid expiry '{value}'."))?,
                )
            }
            ("payload-format-indicator", None) => p.payload_format_utf8 = Some(value == "1"),
            _ => return Err(format!("Invalid or unsupported property '{id}'.")),
        }
    }
    Ok(p)
}

enum Wake {
    Event(Option<Event>),
    Timeout,
}

/// Subscribe to the response topic, publish the request once the subscription is acknowledged,
/// print the first response.
async fn request(
    args: &Args,
    client: &Client,
    payload: Vec<u8>,
    properties: MessageProperties,
    deadline: Option<Instant>,
) -> Result<ExitCode, ClientError> {
    let response = args.response_topic.clone().unwrap_or_default();
    let sub_id = client.subscribe(vec![(response, args.qos)]).await?;
    let mut request = Some(OutgoingMessage {
        topic: args.topic.clone().unwrap_or_default(),
        payload,
        qos: args.qos,
        retain: false,
        properties,
    });
    loop {
        let wake = async { Wake::Event(client.next_event().await) }
            .or(async {
                match deadline {
                    Some(at) => Timer::at(at).await,
                    None => Timer::never().await,
                };
                Wake::Timeout
            })
            .await;
        let event = match wake {
            Wake::Timeout => {
                if !args.conn.quiet {
                    eprintln!("Timed out");
                }
                return Ok(ExitCode::from(cli::EXIT_TIMEOUT));
            }
            Wake::Event(None | Some(Event::Closed)) => return Err(ClientError::Closed),
            Wake::Event(Some(e)) => e,
        };
        match event {
            Event::Log(line) => log_line(&line),
            Event::SubAck { packet_id, codes } if packet_id == sub_id => {
                if codes.iter().all(|&c| c >= 0x80) {
                    if !args.conn.quiet {
                        eprintln!("All subscription requests were denied.");
                    }
                    return Ok(ExitCode::from(1));
                }
                if let Some(m) = request.take() {
                    client.publish(m).await?;
                }
            }
            Event::Message(m) if request.is_none() => {
                if args.no_retained && m.retain {
                    continue;
                }
                print_message(args, &m);
                return Ok(ExitCode::SUCCESS);
            }
            Event::ConnectionLost(why) => {
                return Err(ClientError::Io(std::io::Error::other(why)));
            }
            _ => {}
        }
    }
}

fn print_message(args: &Args, m: &ReceivedMessage) {
    let mut out = match &args.format {
        Some(f) => format_message(f, m, SystemTime::now()),
        None if args.verbose => {
            let mut line = m.topic.as_bytes().to_vec();
            line.push(b' ');
            if m.payload.is_empty() {
                line.extend_from_slice(b"(null)");
            } else {
                line.extend_from_slice(&m.payload);
            }
            line
        }
        None => m.payload.clone(),
    };
    if !args.no_eol {
        out.push(b'\n');
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(&out);
    let _ = stdout.flush();
}

fn log_line(line: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}
