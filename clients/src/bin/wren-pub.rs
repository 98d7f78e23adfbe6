//! `wren-pub`: publish messages, compatible with `mosquitto_pub`; `--console` for an interactive
//! (or scripted) session.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser};
use smol::Timer;
use smol::future::FutureExt;
use wren_clients::cli::{self, ConnArgs, HELP_TEMPLATE, WillArgs};
use wren_clients::client::{Client, ClientError, Event, MessageProperties, OutgoingMessage};
use wren_clients::console::Console;
use wren_codec::{QoS, TopicName};

/// Publish a message (or many) on a topic.
#[derive(Debug, Parser)]
#[command(name = "wren-pub", version, help_template = HELP_TEMPLATE, args_override_self = true,
          disable_help_flag = true, disable_version_flag = true)]
struct Args {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    will: WillArgs,
    /// Topic to publish to.
    #[arg(short = 't', long = "topic", value_name = "topic")]
    topic: Option<String>,
    /// Message payload.
    #[arg(short = 'm', long = "message", value_name = "message")]
    message: Option<String>,
    /// Send the contents of a file as the message.
    #[arg(short = 'f', long = "file", value_name = "file")]
    file: Option<std::path::PathBuf>,
    /// Read stdin, sending each line as a message.
    #[arg(short = 'l', long = "stdin-line")]
    lines: bool,
    /// Read stdin, sending all of it as one message.
    #[arg(short = 's', long = "stdin-file")]
    stdin: bool,
    /// Send a null (zero length) message.
    #[arg(short = 'n', long = "null-message")]
    null: bool,
    /// QoS of the messages.
    #[arg(short = 'q', long = "qos", default_value = "0", value_parser = cli::parse_qos, value_name = "qos")]
    qos: QoS,
    /// Retain the message.
    #[arg(short = 'r', long = "retain")]
    retain: bool,
    /// Publish the message this many times (-m, -f, -s, -n).
    #[arg(long = "repeat", default_value_t = 1, value_name = "count")]
    repeat: u32,
    /// Seconds between repeated publishes.
    #[arg(long = "repeat-delay", default_value_t = 0.0, value_name = "seconds")]
    repeat_delay: f64,
    /// Most QoS 1/2 messages in flight at once.
    #[arg(short = 'M', value_name = "max_inflight", default_value_t = 20)]
    max_inflight: usize,
    /// 5.0 property: `-D command identifier value` (`-D publish content-type text/plain`,
    /// `-D publish user-property k v`, `-D connect session-expiry-interval 60`, `-D will …`;
    /// connect, publish, subscribe, unsubscribe, disconnect, will). Ignored before 5.0.
    #[arg(short = 'D', long = "property", num_args = 0..=4, default_missing_value = "", action = clap::ArgAction::Append,
          value_names = ["command", "identifier", "value"])]
    properties: Vec<String>,
    /// Interactive console: PUBLISH <topic> <value…>, DISCONNECT.
    #[arg(long = "console")]
    console: bool,
    /// Print this help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// Where the payloads come from.
enum Source {
    Fixed(Vec<u8>),
    Lines,
    Console,
}

fn main() -> ExitCode {
    cli::generate_if_asked(Args::command);
    let args: Args = cli::parse_or_exit("wren-pub");
    let (source, properties) = match check(&args) {
        Ok(s) => s,
        Err(e) => cli::usage_error("wren-pub", &e),
    };
    let mut options = args.conn.client_options(args.conn.client_id("wren_pub"));
    options.will = args.will.will();
    if let Ok(props) = cli::Properties::parse(&args.properties) {
        props.apply_connect(&mut options);
    }
    options.max_in_flight = args.max_inflight.max(1);
    // Ctrl-C/SIGTERM: DISCONNECT (no will) and exit 0.
    let signal = cli::interrupt_signal();
    smol::block_on(async {
        let connect = async { Some(Client::connect(options).await) };
        let (client, _) = match connect.or(cli::interrupted(&signal)).await {
            None => return ExitCode::SUCCESS,
            Some(Ok(c)) => c,
            Some(Err(e)) => return cli::fail_connect(&args.conn, &e),
        };
        let work = async {
            Some(match source {
                Source::Fixed(payload) => publish_fixed(&args, &client, payload, &properties).await,
                Source::Lines => publish_lines(&args, &client, &properties).await,
                Source::Console => console(&args, &client, &properties).await,
            })
        };
        match work.or(cli::interrupted(&signal)).await.unwrap_or(Ok(())) {
            Ok(()) => {
                let _ = client.disconnect().await;
                drain_logs(&client);
                ExitCode::SUCCESS
            }
            Err(e) => {
                let _ = client.disconnect().await;
                cli::fail(args.conn.quiet, &e)
            }
        }
    })
}

fn check(args: &Args) -> Result<(Source, MessageProperties), String> {
    args.conn.validate()?;
    let props = cli::Properties::parse(&args.properties)?;
    let sources = [
        args.message.is_some(),
        args.file.is_some(),
        args.lines,
        args.stdin,
        args.null,
    ]
    .iter()
    .filter(|&&s| s)
    .count();
    if sources > 1 || (args.console && sources > 0) {
        return Err("Only one type of message can be sent at once.".into());
    }
    if let Some(t) = &args.will.will_topic {
        TopicName::new(t).map_err(|_| format!("Invalid will topic '{t}'."))?;
    }
    // Mosquitto sends properties only with 5.0 and ignores -D otherwise.
    let properties = if args.conn.protocol.is_v5() {
        props.message("publish")
    } else {
        MessageProperties::default()
    };
    if args.console {
        return Ok((Source::Console, properties));
    }
    let url_topic = args.conn.url_topic();
    let Some(topic) = args.topic.as_ref().or(url_topic.as_ref()) else {
        return Err("Both topic and message must be supplied.".into());
    };
    if sources == 0 {
        return Err("Both topic and message must be supplied.".into());
    }
    match TopicName::new(topic) {
        Ok(t) if !t.as_str().contains(['+', '#']) => {}
        _ => {
            return Err(format!(
                "Invalid publish topic '{topic}', does it contain '+' or '#'?"
            ));
        }
    }
    let source = if let Some(m) = &args.message {
        Source::Fixed(m.clone().into_bytes())
    } else if let Some(f) = &args.file {
        Source::Fixed(
            std::fs::read(f)
                .map_err(|e| format!("Unable to read file \"{}\": {e}.", f.display()))?,
        )
    } else if args.stdin {
        let mut all = Vec::new();
        std::io::stdin()
            .read_to_end(&mut all)
            .map_err(|e| format!("Unable to read stdin: {e}."))?;
        Source::Fixed(all)
    } else if args.lines {
        Source::Lines
    } else {
        Source::Fixed(Vec::new())
    };
    Ok((source, properties))
}

/// `-t`, else the topic of `-L`'s URL.
fn topic(args: &Args) -> String {
    args.topic
        .clone()
        .or_else(|| args.conn.url_topic())
        .unwrap_or_default()
}

fn log_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Print pending debug lines (and drop other events that need no action).
fn drain_logs(client: &Client) {
    while let Some(e) = client.try_next_event() {
        if let Event::Log(l) = e {
            log_line(&l);
        }
    }
}

fn message(
    args: &Args,
    topic: &str,
    payload: Vec<u8>,
    properties: &MessageProperties,
) -> OutgoingMessage {
    OutgoingMessage {
        topic: topic.to_owned(),
        payload,
        qos: args.qos,
        retain: args.retain,
        properties: properties.clone(),
    }
}

/// Handle one event while waiting for acknowledgements; `Err` if the connection is gone.
fn on_event(
    event: Event,
    outstanding: &mut HashSet<u16>,
    console: Option<&Console>,
) -> Result<(), ClientError> {
    match &event {
        Event::Log(l) => match console {
            Some(c) => c.print(l),
            None => log_line(l),
        },
        Event::PubAck(a) | Event::PubComp(a) => {
            outstanding.remove(&a.packet_id);
        }
        Event::PubRec(a) if a.reason_code >= 0x80 => {
            outstanding.remove(&a.packet_id);
        }
        Event::Closed => return Err(ClientError::Closed),
        Event::ConnectionLost(why) => {
            return Err(ClientError::Io(std::io::Error::other(why.clone())));
        }
        _ => {}
    }
    if let Some(c) = console {
        if let Some(line) = cli::console_line(&event) {
            c.print(&line);
        }
    }
    Ok(())
}

async fn wait_acks(
    client: &Client,
    outstanding: &mut HashSet<u16>,
    console: Option<&Console>,
) -> Result<(), ClientError> {
    while !outstanding.is_empty() {
        let event = client.next_event().await.ok_or(ClientError::Closed)?;
        on_event(event, outstanding, console)?;
    }
    Ok(())
}

async fn publish_fixed(
    args: &Args,
    client: &Client,
    payload: Vec<u8>,
    properties: &MessageProperties,
) -> Result<(), ClientError> {
    let topic = &topic(args);
    let mut outstanding = HashSet::new();
    for i in 0..args.repeat.max(1) {
        if i > 0 && args.repeat_delay > 0.0 {
            Timer::after(Duration::from_secs_f64(args.repeat_delay)).await;
        }
        if let Some(id) = client
            .publish(message(args, topic, payload.clone(), properties))
            .await?
        {
            outstanding.insert(id);
        }
        while let Some(e) = client.try_next_event() {
            on_event(e, &mut outstanding, None)?;
        }
    }
    wait_acks(client, &mut outstanding, None).await
}

async fn publish_lines(
    args: &Args,
    client: &Client,
    properties: &MessageProperties,
) -> Result<(), ClientError> {
    let topic = &topic(args);
    let lines = cli::stdin_lines();
    let mut outstanding = HashSet::new();
    while let Ok(line) = lines.recv().await {
        if let Some(id) = client
            .publish(message(args, topic, line.into_bytes(), properties))
            .await?
        {
            outstanding.insert(id);
        }
        while let Some(e) = client.try_next_event() {
            on_event(e, &mut outstanding, None)?;
        }
    }
    wait_acks(client, &mut outstanding, None).await
}

enum Wake {
    Line(Option<String>),
    Event(Option<Event>),
}

async fn console(
    args: &Args,
    client: &Client,
    properties: &MessageProperties,
) -> Result<(), ClientError> {
    let console = Console::start("wren-pub", &["PUBLISH", "DISCONNECT"], PUB_HELP);
    let mut outstanding = HashSet::new();
    loop {
        let wake = async { Wake::Event(client.next_event().await) }
            .or(async { Wake::Line(console.next_line().await) })
            .await;
        let line = match wake {
            Wake::Event(Some(e)) => {
                on_event(e, &mut outstanding, Some(&console))?;
                continue;
            }
            Wake::Event(None) => return Err(ClientError::Closed),
            Wake::Line(None) => break,
            Wake::Line(Some(line)) => line,
        };
        let (command, rest) = cli::split_command(&line);
        match command.as_str() {
            "" => {}
            "DISCONNECT" => break,
            "HELP" => console.help(),
            "PUBLISH" => {
                let (topic, value) = match rest.split_once(char::is_whitespace) {
                    Some((t, v)) => (t, v),
                    None => (rest, ""),
                };
                if topic.is_empty() {
                    console.error(
                        "PUBLISH needs a topic and a value, e.g. PUBLISH site/lab/temperature 21.5",
                    );
                    continue;
                }
                if TopicName::new(topic).is_err() || topic.contains(['+', '#']) {
                    console.error(&format!("'{topic}' is not a valid topic name"));
                    continue;
                }
                if value.is_empty() {
                    console.error(&format!(
                        "PUBLISH {topic} needs a value after the topic, e.g. PUBLISH {topic} 21.5"
                    ));
                    continue;
                }
                let m = message(args, topic, value.as_bytes().to_vec(), properties);
                match client.publish(m).await {
                    Ok(id) => {
                        console.print(&format!(
                            "PUBLISH {topic} mid={} qos={}",
                            id.unwrap_or(0),
                            args.qos.bits()
                        ));
                        if let Some(id) = id {
                            outstanding.insert(id);
                        }
                    }
                    Err(ClientError::Closed) => return Err(ClientError::Closed),
                    Err(e) => console.error(&e.to_string()),
                }
            }
            other => console.error(&format!(
                "unknown command '{}' (commands: PUBLISH <topic> <value>, DISCONNECT, HELP)",
                printable(other)
            )),
        }
    }
    // A clean end: wait (briefly) for the acknowledgements of what was published.
    let wait = async { wait_acks(client, &mut outstanding, Some(&console)).await };
    let timeout = async {
        Timer::after(Duration::from_secs(5)).await;
        Ok(())
    };
    wait.or(timeout).await?;
    console.print("DISCONNECTED");
    Ok(())
}

/// What the console's `HELP` prints.
const PUB_HELP: &str = "\
Commands (case-insensitive):
  PUBLISH <topic> <value>  publish <value> (the rest of the line) on <topic>
                           with the -q QoS, -r retain and -D properties given
  DISCONNECT               wait for the acknowledgements, disconnect and exit
  HELP                     this list
Tab completes a command; Up/Down recall earlier lines; Ctrl-D or Ctrl-C disconnects.";

/// A command word as it can be shown in an error: control characters (a stray escape
/// sequence) spelled out.
fn printable(word: &str) -> String {
    word.escape_debug().to_string()
}
