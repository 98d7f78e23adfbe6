//! `wren-sensor`: a fleet of emulated sensors, each its own MQTT client, publishing slowly
//! varying readings with a retained online/offline status (offline is also its will).

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{CommandFactory, Parser};
use smol::Timer;
use smol::channel::{self, Receiver, Sender};
use smol::future::FutureExt;
use wren_clients::cli::{self, ConnArgs, HELP_TEMPLATE};
use wren_clients::client::{Client, ClientError, Event, OutgoingMessage, Reconnect};
use wren_clients::sensor::{self, Format, Identity, Walk};
use wren_codec::{QoS, TopicName};

/// Emulate a fleet of sensors publishing realistic readings.
#[derive(Debug, Parser)]
#[command(name = "wren-sensor", version, help_template = HELP_TEMPLATE,
          disable_help_flag = true, disable_version_flag = true)]
struct Args {
    #[command(flatten)]
    conn: ConnArgs,
    /// Number of sensors (one MQTT connection each).
    #[arg(
        short = 'n',
        long = "sensors",
        default_value_t = 4,
        value_name = "count"
    )]
    sensors: usize,
    /// Sensor kinds, comma separated, assigned in turn: temperature, humidity, pressure, co2,
    /// motion, battery, light, noise.
    #[arg(
        long = "kinds",
        value_delimiter = ',',
        default_value = "temperature,humidity,pressure,co2",
        value_name = "kinds"
    )]
    kinds: Vec<String>,
    /// Rooms, comma separated; every room gets each kind in turn.
    #[arg(
        long = "rooms",
        value_delimiter = ',',
        default_value = "kitchen,living-room,bedroom,office",
        value_name = "rooms"
    )]
    rooms: Vec<String>,
    // clap turns every `{n}` in help text into a line break: a WORD JOINER (U+2060, invisible)
    // after the brace keeps it on screen as "{n}".
    #[arg(
        help = "Topic template: {room}, {kind}, {id} (sensor-<n>) and {\u{2060}n} (the sensor's number)",
        short = 't',
        long = "topic",
        default_value = "site/{room}/{kind}/{id}",
        value_name = "template"
    )]
    topic: String,
    /// Status topic template (retained "online"/"offline"; "offline" is the will).
    #[arg(
        long = "status-topic",
        default_value = "site/{room}/{kind}/{id}/status",
        value_name = "template"
    )]
    status_topic: String,
    /// Seconds between readings of one sensor.
    #[arg(long = "interval", default_value_t = 1.0, value_name = "seconds")]
    interval: f64,
    /// Random variation of the interval, as a fraction (0.2 = ±20%).
    #[arg(long = "jitter", default_value_t = 0.2, value_name = "fraction")]
    jitter: f64,
    /// Payload format.
    #[arg(long = "format", value_enum, default_value = "plain")]
    format: Format,
    /// QoS of the readings.
    #[arg(short = 'q', long = "qos", default_value = "0", value_parser = cli::parse_qos, value_name = "qos")]
    qos: QoS,
    /// Retain the readings.
    #[arg(short = 'r', long = "retain")]
    retain: bool,
    /// Stop after this many readings in total.
    #[arg(long = "count", value_name = "messages")]
    count: Option<u64>,
    /// Stop after this long (30, 30s, 500ms, 2m, 1h).
    #[arg(long = "duration", value_parser = sensor::parse_duration, value_name = "duration")]
    duration: Option<Duration>,
    /// Seed for the readings and jitter (deterministic values).
    #[arg(long = "seed", value_name = "seed")]
    seed: Option<u64>,
    /// Print this help.
    #[arg(long = "help", action = clap::ArgAction::Help)]
    help: Option<bool>,
}

#[derive(Debug, Default)]
struct Stats {
    connected: AtomicUsize,
    sent: AtomicU64,
    claimed: AtomicU64,
    errors: AtomicU64,
}

struct Plan {
    who: Identity,
    kind: &'static sensor::Kind,
    topic: String,
    status: String,
    client_id: String,
    seed: u64,
}

fn main() -> ExitCode {
    cli::generate_if_asked(Args::command);
    let args: Args = cli::parse_or_exit("wren-sensor");
    let plans = match plan(&args) {
        Ok(p) => p,
        Err(e) => cli::usage_error("wren-sensor", &e),
    };
    let stats = Arc::new(Stats::default());
    // Closing `stop` wakes every sensor: Ctrl-C, --duration or --count.
    let (stop_tx, stop_rx) = channel::bounded::<()>(1);
    // Ctrl-C or SIGTERM: every sensor publishes "offline" and disconnects (no will).
    {
        let stop_tx = stop_tx.clone();
        let signal = cli::interrupt_signal();
        std::thread::spawn(move || {
            let _ = signal.recv_blocking();
            stop_tx.close();
        });
    }
    let started = Instant::now();
    let code = smol::block_on(async {
        // Connect the whole fleet first, so a refusal ends the run with its CONNACK code.
        let mut clients = Vec::with_capacity(plans.len());
        let connects: Vec<_> = plans
            .iter()
            .map(|p| {
                smol::spawn(connect(
                    args.conn.clone(),
                    p.client_id.clone(),
                    p.status.clone(),
                ))
            })
            .collect();
        let mut first_error = None;
        for c in connects {
            match c.await {
                Ok(client) => clients.push(client),
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::SeqCst);
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            for c in &clients {
                let _ = c.disconnect().await;
            }
            return cli::fail_connect(&args.conn, &e);
        }
        stats.connected.store(clients.len(), Ordering::SeqCst);
        if let Some(d) = args.duration {
            let stop_tx = stop_tx.clone();
            smol::spawn(async move {
                Timer::after(d).await;
                stop_tx.close();
            })
            .detach();
        }
        let status = (std::io::stderr().is_terminal() && !args.conn.quiet)
            .then(|| smol::spawn(status_line(stats.clone(), stop_rx.clone(), plans.len())));
        let tasks: Vec<_> = plans
            .into_iter()
            .zip(clients)
            .map(|(p, c)| {
                smol::spawn(run_sensor(
                    settings(&args),
                    p,
                    c,
                    stats.clone(),
                    stop_rx.clone(),
                    stop_tx.clone(),
                ))
            })
            .collect();
        for t in tasks {
            t.await;
        }
        stop_tx.close();
        if let Some(s) = status {
            s.await;
        }
        ExitCode::SUCCESS
    });
    if !args.conn.quiet {
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "wren-sensor: {} readings from {} sensors in {secs:.1} s, {} errors",
            stats.sent.load(Ordering::SeqCst),
            args.sensors,
            stats.errors.load(Ordering::SeqCst)
        );
    }
    code
}

#[derive(Debug, Clone)]
struct Settings {
    interval: f64,
    jitter: f64,
    format: Format,
    qos: QoS,
    retain: bool,
    count: Option<u64>,
}

fn settings(args: &Args) -> Settings {
    Settings {
        interval: args.interval,
        jitter: args.jitter,
        format: args.format,
        qos: args.qos,
        retain: args.retain,
        count: args.count,
    }
}

fn plan(args: &Args) -> Result<Vec<Plan>, String> {
    args.conn.validate()?;
    if args.sensors == 0 {
        return Err("--sensors must be at least 1".into());
    }
    if !(args.interval.is_finite() && args.interval > 0.0) {
        return Err("--interval must be a positive number of seconds".into());
    }
    if !(0.0..1.0).contains(&args.jitter) {
        return Err("--jitter must be a fraction in [0, 1)".into());
    }
    if args.count == Some(0) {
        return Err("--count must be at least 1".into());
    }
    let mut kinds = Vec::new();
    for k in &args.kinds {
        kinds.push(sensor::kind(k.trim()).ok_or_else(|| {
            let known: Vec<&str> = sensor::KINDS.iter().map(|k| k.name).collect();
            format!("unknown sensor kind '{k}' (known: {})", known.join(", "))
        })?);
    }
    let rooms: Vec<&String> = args.rooms.iter().filter(|r| !r.is_empty()).collect();
    if kinds.is_empty() || rooms.is_empty() {
        return Err("--kinds and --rooms need at least one entry".into());
    }
    let mut seeder = match args.seed {
        Some(s) => fastrand::Rng::with_seed(s),
        None => fastrand::Rng::new(),
    };
    let base_id = args.conn.client_id("wren_sensor");
    (0..args.sensors)
        .map(|i| {
            let kind = kinds.get(i % kinds.len()).copied().ok_or("no kind")?;
            let room = rooms
                .get((i / kinds.len()) % rooms.len())
                .ok_or("no room")?;
            let who = Identity {
                id: format!("sensor-{}", i + 1),
                n: i + 1,
                room: (*room).clone(),
                kind: kind.name,
            };
            // -L mqtt://host/TEMPLATE: the URL's topic is the template.
            let template = args.conn.url_topic().unwrap_or_else(|| args.topic.clone());
            let topic = sensor::expand(&template, &who);
            let status = sensor::expand(&args.status_topic, &who);
            for t in [&topic, &status] {
                match TopicName::new(t) {
                    Ok(_) if !t.contains(['+', '#']) => {}
                    _ => return Err(format!("template gives an invalid topic '{t}'")),
                }
            }
            Ok(Plan {
                client_id: format!("{base_id}_{}", i + 1),
                who,
                kind,
                topic,
                status,
                seed: seeder.u64(..),
            })
        })
        .collect()
}

async fn connect(conn: ConnArgs, client_id: String, status: String) -> Result<Client, ClientError> {
    let mut options = conn.client_options(client_id);
    // If the sensor dies, the broker tells everyone it is offline.
    options.will =
        Some(OutgoingMessage::new(status.clone(), "offline", QoS::AtLeastOnce).retain(true));
    options.reconnect = Some(Reconnect::default());
    let (client, _) = Client::connect(options).await?;
    client
        .publish(OutgoingMessage::new(status, "online", QoS::AtLeastOnce).retain(true))
        .await?;
    Ok(client)
}

async fn run_sensor(
    s: Settings,
    plan: Plan,
    client: Client,
    stats: Arc<Stats>,
    stop: Receiver<()>,
    stop_all: Sender<()>,
) {
    let mut rng = fastrand::Rng::with_seed(plan.seed);
    let mut walk = Walk::new(plan.kind, rng.fork());
    let mut online = true;
    loop {
        let factor = 1.0 + s.jitter * (rng.f64() * 2.0 - 1.0);
        let delay = Duration::from_secs_f64((s.interval * factor).max(0.001));
        let stopped = async {
            Timer::after(delay).await;
            false
        }
        .or(async {
            let _ = stop.recv().await;
            true
        })
        .await;
        if stopped {
            break;
        }
        while let Some(e) = client.try_next_event() {
            track(&e, &mut online, &stats);
        }
        if let Some(limit) = s.count {
            if stats.claimed.fetch_add(1, Ordering::SeqCst) >= limit {
                stop_all.close();
                break;
            }
        }
        let value = walk.step();
        let unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let payload = sensor::payload(s.format, &plan.who, plan.kind, value, unix_ms);
        let message = OutgoingMessage::new(plan.topic.clone(), payload, s.qos).retain(s.retain);
        match client.publish(message).await {
            Ok(_) => {
                let sent = stats.sent.fetch_add(1, Ordering::SeqCst) + 1;
                if s.count.is_some_and(|limit| sent >= limit) {
                    stop_all.close();
                }
            }
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    // A clean goodbye: the will is not published on DISCONNECT, so say "offline" ourselves.
    let offline =
        OutgoingMessage::new(plan.status.clone(), "offline", QoS::AtLeastOnce).retain(true);
    if let Ok(Some(id)) = client.publish(offline).await {
        let acked = async {
            while let Some(e) = client.next_event().await {
                if matches!(&e, Event::PubAck(a) if a.packet_id == id) {
                    return;
                }
                if matches!(e, Event::Closed) {
                    return;
                }
            }
        };
        let timeout = async {
            Timer::after(Duration::from_secs(3)).await;
        };
        acked.or(timeout).await;
    }
    let _ = client.disconnect().await;
    if online {
        stats.connected.fetch_sub(1, Ordering::SeqCst);
    }
}

fn track(e: &Event, online: &mut bool, stats: &Stats) {
    match e {
        Event::ConnectionLost(_) => {
            stats.errors.fetch_add(1, Ordering::SeqCst);
            if *online {
                *online = false;
                stats.connected.fetch_sub(1, Ordering::SeqCst);
            }
        }
        Event::Connected(_) if !*online => {
            *online = true;
            stats.connected.fetch_add(1, Ordering::SeqCst);
        }
        _ => {}
    }
}

/// The live one-line status on a terminal.
async fn status_line(stats: Arc<Stats>, stop: Receiver<()>, fleet: usize) {
    let mut last = (Instant::now(), 0u64);
    let mut rate = 0.0;
    loop {
        let stopped = async {
            Timer::after(Duration::from_millis(500)).await;
            false
        }
        .or(async {
            let _ = stop.recv().await;
            true
        })
        .await;
        let sent = stats.sent.load(Ordering::SeqCst);
        let dt = last.0.elapsed().as_secs_f64();
        if dt >= 1.0 {
            rate = sent.saturating_sub(last.1) as f64 / dt;
            last = (Instant::now(), sent);
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[2Ksensors {}/{} connected | sent {} | {:.1} msg/s | errors {}",
            stats.connected.load(Ordering::SeqCst),
            fleet,
            sent,
            rate,
            stats.errors.load(Ordering::SeqCst)
        );
        let _ = err.flush();
        if stopped {
            let _ = writeln!(err);
            return;
        }
    }
}
