//! `wren-sub`: subscribe and print messages, compatible with `mosquitto_sub`; `--console` for an
//! interactive (or scripted) session.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{CommandFactory, Parser};
use smol::Timer;
use smol::future::FutureExt;
use wren_clients::cli::{self, ConnArgs, HELP_TEMPLATE_TIMEOUT, WillArgs};
use wren_clients::client::{
    Client, ClientError, Event, OutgoingMessage, ReceivedMessage, Reconnect,
};
use wren_clients::console::Console;
use wren_clients::format::Format;
use wren_codec::{QoS, TopicFilter, TopicName};

/// Subscribe to topics and print the messages received.
#[derive(Debug, Parser)]
#[command(name = "wren-sub", version, help_template = HELP_TEMPLATE_TIMEOUT, args_override_self = true,
          disable_help_flag = true, disable_version_flag = true)]
struct Args {
    #[command(flatten)]
    conn: ConnArgs,
    #[command(flatten)]
    will: WillArgs,
    /// Topic filter to subscribe to (repeat for several).
    #[arg(short = 't', long = "topic", value_name = "topic")]
    topics: Vec<String>,
    /// Topic filter to leave out of the output (repeatable).
    #[arg(short = 'T', long = "filter-out", value_name = "filter_out")]
    filter_out: Vec<String>,
    /// Topic filter to unsubscribe from after subscribing (repeatable; with -c cleans a session).
    #[arg(short = 'U', long = "unsubscribe", value_name = "topic")]
    unsubscribe: Vec<String>,
    /// Maximum QoS of the subscriptions.
    #[arg(short = 'q', long = "qos", default_value = "0", value_parser = cli::parse_qos, value_name = "qos")]
    qos: QoS,
    /// Print the topic before the payload.
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    /// Do not print a newline after each message.
    #[arg(short = 'N')]
    no_eol: bool,
    /// Output format (see the -F codes in the README).
    #[arg(short = 'F', value_name = "format")]
    format: Option<String>,
    /// Disconnect and exit after this many messages.
    #[arg(short = 'C', value_name = "msg_count")]
    count: Option<u64>,
    /// Exit with status 27 if this many seconds pass (from the connection) before -C is reached.
    #[arg(short = 'W', value_name = "secs")]
    timeout: Option<u64>,
    /// Do not print stale (retained) messages.
    #[arg(short = 'R')]
    no_retained: bool,
    /// Exit once the subscriptions are acknowledged.
    #[arg(short = 'E')]
    exit_after_sub: bool,
    /// With -F %j or %J: print the JSON indented over several lines.
    #[arg(long = "pretty")]
    pretty: bool,
    /// Print only the retained messages; exit at the first message that is not retained.
    #[arg(long = "retained-only")]
    retained_only: bool,
    /// Clear each retained message received (publish an empty retained message to its topic);
    /// use -T to leave some alone.
    #[arg(long = "remove-retained")]
    remove_retained: bool,
    /// Print each message with this chance, in percent (0.1 to 100).
    #[arg(long = "random-filter", value_name = "chance", num_args = 0..=1, allow_hyphen_values = true)]
    random_filter: Option<Option<String>>,
    /// 5.0 property: `-D command identifier value` (`-D subscribe subscription-identifier 5`,
    /// `-D connect user-property k v`; connect, subscribe, unsubscribe, disconnect, will).
    /// Ignored before 5.0.
    #[arg(short = 'D', long = "property", num_args = 0..=4, default_missing_value = "", action = clap::ArgAction::Append,
          value_names = ["command", "identifier", "value"])]
    properties: Vec<String>,
    /// Interactive console: SUBSCRIBE <topic>, UNSUBSCRIBE <topic>, DISCONNECT.
    #[arg(long = "console")]
    console: bool,
    /// Print this help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
}

/// What `check` derives from the flags.
struct Checked {
    format: Option<Format>,
    /// `--random-filter` as a chance per 10 000.
    chance: Option<u32>,
}

fn main() -> ExitCode {
    cli::generate_if_asked(Args::command);
    let args: Args = cli::parse_or_exit("wren-sub");
    let checked = match check(&args) {
        Ok(c) => c,
        Err(e) => cli::usage_error("wren-sub", &e),
    };
    if args.no_retained && args.retained_only {
        eprintln!("\nError: Combining '-R' and '--retained-only' makes no sense.");
        return ExitCode::from(1);
    }
    let mut options = args.conn.client_options(args.conn.client_id("wren_sub"));
    options.will = args.will.will();
    if let Ok(props) = cli::Properties::parse(&args.properties) {
        props.apply_connect(&mut options);
    }
    // Long-running like mosquitto_sub: survive broker restarts.
    options.reconnect = Some(Reconnect::default());
    // Ctrl-C/SIGTERM: DISCONNECT (no will) and exit 0, as mosquitto_sub.
    let signal = cli::interrupt_signal();
    smol::block_on(async {
        let connect = async { Some(Client::connect(options).await) };
        let (client, _) = match connect.or(cli::interrupted(&signal)).await {
            None => return ExitCode::SUCCESS,
            Some(Ok(c)) => c,
            Some(Err(e)) => return cli::fail_connect(&args.conn, &e),
        };
        let work = async {
            Some(if args.console {
                console(&args, &client).await
            } else {
                subscribe(&args, &checked, &client).await
            })
        };
        let Some(result) = work.or(cli::interrupted(&signal)).await else {
            let _ = client.disconnect().await;
            while let Some(e) = client.try_next_event() {
                if let Event::Log(line) = e {
                    log_line(&line);
                }
            }
            return ExitCode::SUCCESS;
        };
        match result {
            Ok(code) => {
                // The debug line of the DISCONNECT just sent, last as in mosquitto_sub -d.
                // Packets that arrived after the decision to stop are not shown: mosquitto_sub
                // disconnects from its callback, before it reads them.
                if !args.console {
                    while let Some(e) = client.try_next_event() {
                        if let Event::Log(line) = e {
                            if !line.contains(" received ") {
                                log_line(&line);
                            }
                        }
                    }
                }
                code
            }
            Err(e) => {
                let _ = client.disconnect().await;
                cli::fail(args.conn.quiet, &e)
            }
        }
    })
}

fn check(args: &Args) -> Result<Checked, String> {
    // Mosquitto's order: what it finds while reading the options first.
    if args.count == Some(0) {
        return Err(cli::OPTION_ERROR.to_owned() + "Invalid message count \"0\".");
    }
    if args.timeout == Some(0) {
        return Err(cli::OPTION_ERROR.to_owned() + "Invalid timeout \"0\".");
    }
    let chance = match &args.random_filter {
        None => None,
        Some(None) => {
            return Err(cli::OPTION_ERROR.to_owned()
                + "--random-filter argument given but no chance specified.");
        }
        Some(Some(v)) => match v.trim().parse::<f64>() {
            Ok(p) if (0.1..=100.0).contains(&p) => Some((p * 100.0).round() as u32),
            _ => {
                return Err(cli::OPTION_ERROR.to_owned()
                    + "--random-filter chance must be between 0.1-100.0");
            }
        },
    };
    cli::Properties::parse(&args.properties)?;
    args.conn.validate()?;
    if !args.console && args.topics.is_empty() && args.conn.url.is_none() {
        return Err("You must specify a topic to subscribe to.".into());
    }
    for t in args
        .topics
        .iter()
        .chain(&args.filter_out)
        .chain(&args.unsubscribe)
    {
        TopicFilter::new(t).map_err(|_| {
            format!("Invalid subscription topic '{t}', are all '+' and '#' wildcards correct?")
        })?;
    }
    if let Some(t) = &args.will.will_topic {
        TopicName::new(t).map_err(|_| format!("Invalid will topic '{t}'."))?;
    }
    let format = args.format.as_deref().map(Format::parse).transpose()?;
    Ok(Checked { format, chance })
}

fn print_message(args: &Args, checked: &Checked, m: &ReceivedMessage) {
    if let Some(chance) = checked.chance {
        if fastrand::u32(0..10_000) >= chance {
            return;
        }
    }
    let mut out = match &checked.format {
        Some(f) => {
            let r = f.render(m, SystemTime::now(), args.pretty);
            if !args.conn.quiet {
                for e in &r.errors {
                    eprintln!("{e}");
                }
            }
            r.out
        }
        // mosquitto_sub prints nothing for an empty payload without -v, and with -v -N.
        None if args.verbose && m.payload.is_empty() && args.no_eol => return,
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
        None if m.payload.is_empty() => return,
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

enum Wake {
    Event(Option<Event>),
    Timeout,
}

/// Before disconnecting, wait (up to 5 s) for the PUBACK of the last `--remove-retained`
/// publish, as mosquitto_sub does.
async fn settle(client: &Client, last_removal: Option<u16>) {
    let Some(id) = last_removal else { return };
    let wait = async {
        while let Some(e) = client.next_event().await {
            match e {
                Event::Log(line) => log_line(&line),
                Event::PubAck(a) if a.packet_id == id => break,
                Event::Closed => break,
                _ => {}
            }
        }
    };
    wait.or(async {
        Timer::after(Duration::from_secs(5)).await;
    })
    .await;
}

async fn subscribe(
    args: &Args,
    checked: &Checked,
    client: &Client,
) -> Result<ExitCode, ClientError> {
    let filters = args
        .topics
        .iter()
        .cloned()
        .chain(args.conn.url_topic())
        .map(|t| (t, args.qos))
        .collect();
    if args.unsubscribe.is_empty() {
        client.subscribe(filters).await?;
    } else {
        // Both requests at once, as mosquitto_sub sends them (so -d shows both before SUBACK).
        let (s, u) = smol::future::zip(
            client.subscribe(filters),
            client.unsubscribe(args.unsubscribe.clone()),
        )
        .await;
        s?;
        u?;
    }
    let filter_out: Vec<TopicFilter<'_>> = args
        .filter_out
        .iter()
        .filter_map(|f| TopicFilter::new(f).ok())
        .collect();
    let deadline = args
        .timeout
        .map(|secs| std::time::Instant::now() + Duration::from_secs(secs));
    let mut received = 0u64;
    let mut last_removal: Option<u16> = None;
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
                client.disconnect().await?;
                return Ok(ExitCode::from(cli::EXIT_TIMEOUT));
            }
            Wake::Event(None) | Wake::Event(Some(Event::Closed)) => {
                return Err(ClientError::Closed);
            }
            Wake::Event(Some(e)) => e,
        };
        match event {
            Event::Log(line) => log_line(&line),
            Event::SubAck { packet_id, codes } => {
                if args.conn.debug {
                    let granted: Vec<String> = codes.iter().map(u8::to_string).collect();
                    log_line(&format!(
                        "Subscribed (mid: {packet_id}): {}",
                        granted.join(", ")
                    ));
                }
                if !codes.is_empty() && codes.iter().all(|&c| c >= 0x80) {
                    if !args.conn.quiet {
                        eprintln!("All subscription requests were denied.");
                    }
                    client.disconnect().await?;
                    return Ok(ExitCode::from(1));
                }
                if args.exit_after_sub {
                    client.disconnect().await?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Event::Message(m) => {
                // mosquitto_sub's order: --retained-only, -R, -T, --remove-retained, print.
                if args.retained_only && !m.retain {
                    settle(client, last_removal).await;
                    client.disconnect().await?;
                    return Ok(ExitCode::SUCCESS);
                }
                if args.no_retained && m.retain {
                    continue;
                }
                if let Ok(topic) = TopicName::new(&m.topic) {
                    if filter_out.iter().any(|f| f.matches(topic)) {
                        continue;
                    }
                }
                if args.remove_retained && m.retain {
                    let clear = OutgoingMessage::new(m.topic.clone(), Vec::new(), QoS::AtLeastOnce)
                        .retain(true);
                    last_removal = client.publish(clear).await?;
                }
                print_message(args, checked, &m);
                // -C counts the messages --random-filter leaves out too, as Mosquitto does.
                received += 1;
                if args.count.is_some_and(|c| received >= c) {
                    settle(client, last_removal).await;
                    client.disconnect().await?;
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Event::ConnectionLost(why) if !args.conn.quiet => {
                eprintln!("Connection lost: {why}");
            }
            Event::ServerDisconnect { .. } if !args.conn.quiet => {
                if let Some(line) = cli::console_line(&event) {
                    eprintln!("{line}");
                }
            }
            _ => {}
        }
    }
}

enum ConsoleWake {
    Line(Option<String>),
    Event(Option<Event>),
    Timeout,
}

async fn console(args: &Args, client: &Client) -> Result<ExitCode, ClientError> {
    let console = Console::start(
        "wren-sub",
        &["SUBSCRIBE", "UNSUBSCRIBE", "DISCONNECT"],
        SUB_HELP,
    );
    let mut pending: Vec<u16> = Vec::new();
    let mut draining: Option<std::time::Instant> = None;
    loop {
        if draining.is_some() && pending.is_empty() {
            break;
        }
        let wake = async { ConsoleWake::Event(client.next_event().await) }
            .or(async {
                if draining.is_some() {
                    Timer::never().await;
                }
                ConsoleWake::Line(console.next_line().await)
            })
            .or(async {
                match draining {
                    Some(at) => Timer::at(at).await,
                    None => Timer::never().await,
                };
                ConsoleWake::Timeout
            })
            .await;
        match wake {
            ConsoleWake::Timeout => break,
            ConsoleWake::Event(None | Some(Event::Closed)) => return Err(ClientError::Closed),
            ConsoleWake::Event(Some(Event::Log(line))) => console.print(&line),
            ConsoleWake::Event(Some(e)) => {
                if let Event::SubAck { packet_id, .. } | Event::UnsubAck { packet_id, .. } = &e {
                    pending.retain(|id| id != packet_id);
                }
                if let Some(line) = cli::console_line(&e) {
                    console.print(&line);
                }
            }
            // End of input means DISCONNECT: first let outstanding acknowledgements arrive.
            ConsoleWake::Line(None) => {
                draining = Some(std::time::Instant::now() + Duration::from_secs(5));
            }
            ConsoleWake::Line(Some(line)) => {
                let (command, rest) = cli::split_command(&line);
                match command.as_str() {
                    "" => {}
                    "HELP" => console.help(),
                    "SUBSCRIBE" | "UNSUBSCRIBE" if rest.trim().is_empty() => {
                        console.error(&format!(
                            "{command} needs a topic filter, e.g. {command} site/#"
                        ));
                    }
                    "SUBSCRIBE" | "UNSUBSCRIBE" => {
                        let filter = rest.trim();
                        if TopicFilter::new(filter).is_err() {
                            console.error(&format!("'{filter}' is not a valid topic filter"));
                            continue;
                        }
                        let result = if command == "SUBSCRIBE" {
                            client.subscribe(vec![(filter.to_owned(), args.qos)]).await
                        } else {
                            client.unsubscribe(vec![filter.to_owned()]).await
                        };
                        match result {
                            Ok(id) => pending.push(id),
                            Err(ClientError::Closed) => return Err(ClientError::Closed),
                            Err(e) => console.error(&e.to_string()),
                        }
                    }
                    "DISCONNECT" => {
                        draining = Some(std::time::Instant::now() + Duration::from_secs(5));
                    }
                    other => console.error(&format!(
                        "unknown command '{}' (commands: SUBSCRIBE <topic>, UNSUBSCRIBE <topic>, DISCONNECT, HELP)",
                        other.escape_debug()
                    )),
                }
            }
        }
    }
    client.disconnect().await?;
    console.print("DISCONNECTED");
    Ok(ExitCode::SUCCESS)
}

/// What the console's `HELP` prints.
const SUB_HELP: &str = "\
Commands (case-insensitive):
  SUBSCRIBE <filter>    subscribe to a topic filter (with the -q QoS given)
  UNSUBSCRIBE <filter>  unsubscribe from it
  DISCONNECT            wait for the acknowledgements, disconnect and exit
  HELP                  this list
Messages print as MESSAGE <topic> <payload>, above the line being typed.
Tab completes a command; Up/Down recall earlier lines; Ctrl-D or Ctrl-C disconnects.";
