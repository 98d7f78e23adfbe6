//! wren-bench: a load generator for MQTT brokers, on raw wren-codec packets over smol TCP.
//!
//! Scenarios (each bounded in messages and time, loopback only): `fan-in`, `fan-out`, `qos1`,
//! `latency`, `idle`, `idle-sub`, or `all`. See README.md.

mod mqtt;
mod report;
mod run;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use smol::Executor;
use wren_codec::QoS;

use crate::report::Report;
use crate::run::{Flood, Target, Topology};

/// The executor every task runs on; `--threads` threads drive it.
static EX: Executor<'static> = Executor::new();

#[derive(Debug, Parser)]
#[command(
    name = "wren-bench",
    version,
    about = "Load generator for MQTT brokers (3.1.1)"
)]
struct Cli {
    /// Broker host; loopback only.
    #[arg(long, global = true, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Broker port.
    #[arg(short, long, global = true, default_value_t = 1883)]
    port: u16,
    /// Subscribers connect to the broker on this host instead (default: --host); loopback only.
    #[arg(long, global = true)]
    sub_host: Option<IpAddr>,
    /// Subscribers connect to this port instead (default: --port): publishers on one broker,
    /// subscribers on a second one that a bridge forwards to (compare.sh's `qos1 bridge` row).
    #[arg(long, global = true)]
    sub_port: Option<u16>,
    /// Connect over TLS, trusting the CA certificates of this PEM file (the broker's certificate
    /// must name the host's IP address).
    #[arg(long, global = true, value_name = "CAFILE")]
    tls: Option<std::path::PathBuf>,
    /// Broker name in the reports.
    #[arg(long, global = true, default_value = "broker")]
    label: String,
    /// Broker process id: its CPU time per run, and its memory for `idle`.
    #[arg(long, global = true)]
    broker_pid: Option<u32>,
    /// Process id of the subscribers' broker (with --sub-port): its CPU time is added to
    /// `broker_cpu` (and reported alone as `sub_broker_cpu`).
    #[arg(long, global = true)]
    sub_broker_pid: Option<u32>,
    /// Print one JSON object per run on stdout (the table goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Generator threads. With one, 50 subscriber sockets were served slowly enough to halve
    /// rumqttd's bounded fan-out at little generator CPU; the generator's CPU use is reported.
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    /// The generator's threads poll for work without ever sleeping while the runs last (busy
    /// polling, a core each). On loopback a send to a socket whose reader sleeps makes the
    /// sender's own system call wake the reader (on a VM, an inter-processor interrupt): a
    /// sleeping generator charges the broker for its wake-ups, work a broker sending over a
    /// real network does not do. compare.sh tries it as one more generator setting (`1s`).
    #[arg(long, global = true)]
    spin: bool,
    /// Longest time one run may take once connected, in seconds.
    #[arg(long, global = true, default_value_t = 30.0)]
    timeout: f64,
    /// A run with no progress for this many seconds is over.
    #[arg(long, global = true, default_value_t = 2.0)]
    idle_timeout: f64,
    /// Subscribers use persistent sessions (Clean Session 0): with a broker's persistence on,
    /// their QoS 1 messages go to disk until acknowledged (compare.sh's `qos1 durable` row).
    #[arg(long, global = true)]
    persistent_subscribers: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// P publishers on bench/<i>, one subscriber on bench/#, QoS 0: messages/s delivered.
    FanIn {
        /// Publisher connections.
        #[arg(long, default_value_t = 50)]
        publishers: usize,
        #[command(flatten)]
        flood: FloodArgs,
    },
    /// One publisher, S subscribers on the same topic, QoS 0: deliveries/s (messages × S).
    FanOut {
        /// Subscriber connections.
        #[arg(long, default_value_t = 50)]
        subscribers: usize,
        #[command(flatten)]
        flood: FloodArgs,
    },
    /// P QoS 1 publishers with a PUBACK window, one QoS 1 subscriber that acknowledges.
    Qos1 {
        /// Publisher connections.
        #[arg(long, default_value_t = 50)]
        publishers: usize,
        /// Most PUBACKs outstanding per publisher.
        #[arg(long, default_value_t = 100)]
        window: u64,
        #[command(flatten)]
        flood: FloodArgs,
    },
    /// One publisher at a fixed rate, one subscriber: end-to-end latency percentiles.
    Latency(LatencyArgs),
    /// N idle connections: connect rate and the broker's resident memory per connection.
    Idle(IdleArgs),
    /// N idle connections, each subscribed to its own topic idle/<i> (like a fleet of devices
    /// each listening on its command topic): the broker's memory per connection and subscription.
    IdleSub {
        #[command(flatten)]
        idle: IdleArgs,
        /// QoS of each subscription (0 or 1).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
        qos: u8,
    },
    /// Every scenario with its defaults (and the given --messages scale, if any).
    All {
        /// Multiply every scenario's default message count by this.
        #[arg(long, default_value_t = 1.0)]
        scale: f64,
    },
}

#[derive(Debug, Clone, Args)]
struct FloodArgs {
    /// Messages published in total (default: 200000 fan-in, 20000 fan-out, 100000 qos1); with
    /// --duration, the most.
    #[arg(long)]
    messages: Option<u64>,
    /// Stop publishing after this many seconds, then wait for what was sent to arrive: runs of
    /// about the same length whatever the broker's speed.
    #[arg(long)]
    duration: Option<f64>,
    /// Payload bytes (at least 24: sequence, publisher and timestamp).
    #[arg(long, default_value_t = 32)]
    payload: usize,
    /// Bounded mode: publishers stay at most this many messages ahead of the slowest subscriber.
    #[arg(long, default_value_t = 1000)]
    bound: u64,
    /// Bounded, unbounded (flood) or both, one report each.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Most messages per write (pipelining).
    #[arg(long, default_value_t = 64)]
    batch: usize,
}

#[derive(Debug, Clone, Args)]
struct LatencyArgs {
    /// Messages per second.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Payload bytes (at least 24).
    #[arg(long, default_value_t = 32)]
    payload: usize,
}

#[derive(Debug, Clone, Args)]
struct IdleArgs {
    /// Connections to open and hold.
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds to wait after the last CONNACK (`idle-sub`: the last SUBACK) before reading the
    /// broker's memory.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    Bounded,
    Unbounded,
    Both,
}

impl Mode {
    fn bounds(self, bound: u64) -> Vec<Option<u64>> {
        match self {
            Mode::Bounded => vec![Some(bound)],
            Mode::Unbounded => vec![None],
            Mode::Both => vec![Some(bound), None],
        }
    }
}

/// The runs a scenario expands to (flooding ones once per mode).
fn plan(scenario: &Scenario) -> Vec<Job> {
    let flood = |name, topology, publishers, subscribers, qos, window, default, a: &FloodArgs| {
        a.mode
            .bounds(a.bound)
            .into_iter()
            .map(|bound| {
                Job::Flood(Flood {
                    scenario: name,
                    topology,
                    publishers,
                    subscribers,
                    messages: a.messages.unwrap_or(default),
                    duration: a.duration.map(seconds),
                    qos,
                    payload: a.payload,
                    bound,
                    batch: a.batch,
                    window,
                    pace: None,
                    record_latency: false,
                })
            })
            .collect::<Vec<_>>()
    };
    match scenario {
        Scenario::FanIn {
            publishers,
            flood: a,
        } => flood(
            "fan-in",
            Topology::PerPublisher,
            *publishers,
            1,
            QoS::AtMostOnce,
            0,
            200_000,
            a,
        ),
        Scenario::FanOut {
            subscribers,
            flood: a,
        } => flood(
            "fan-out",
            Topology::Shared,
            1,
            *subscribers,
            QoS::AtMostOnce,
            0,
            20_000,
            a,
        ),
        Scenario::Qos1 {
            publishers,
            window,
            flood: a,
        } => flood(
            "qos1",
            Topology::PerPublisher,
            *publishers,
            1,
            QoS::AtLeastOnce,
            *window,
            100_000,
            a,
        ),
        Scenario::Latency(a) => vec![Job::Flood(Flood {
            scenario: "latency",
            topology: Topology::Shared,
            publishers: 1,
            subscribers: 1,
            messages: (a.rate * a.duration).round().max(1.0) as u64,
            duration: None,
            qos: QoS::AtMostOnce,
            payload: a.payload,
            bound: None,
            batch: 1,
            window: 0,
            pace: Some(a.rate),
            record_latency: true,
        })],
        Scenario::Idle(a) => vec![Job::Idle(a.clone(), None)],
        Scenario::IdleSub { idle, qos } => {
            let qos = if *qos == 0 {
                QoS::AtMostOnce
            } else {
                QoS::AtLeastOnce
            };
            vec![Job::Idle(idle.clone(), Some(qos))]
        }
        Scenario::All { scale } => {
            let scaled = |n: f64| FloodArgs {
                messages: Some((n * scale).round().max(1.0) as u64),
                duration: None,
                payload: 32,
                bound: 1000,
                mode: Mode::Both,
                batch: 64,
            };
            let mut jobs = Vec::new();
            for s in [
                Scenario::FanIn {
                    publishers: 50,
                    flood: scaled(200_000.0),
                },
                Scenario::FanOut {
                    subscribers: 50,
                    flood: scaled(20_000.0),
                },
                Scenario::Qos1 {
                    publishers: 50,
                    window: 100,
                    flood: scaled(100_000.0),
                },
                Scenario::Latency(LatencyArgs {
                    rate: 2000.0,
                    duration: 5.0,
                    payload: 32,
                }),
                Scenario::Idle(IdleArgs {
                    connections: 2000,
                    concurrency: 32,
                    settle: 1.0,
                }),
                Scenario::IdleSub {
                    idle: IdleArgs {
                        connections: 2000,
                        concurrency: 32,
                        settle: 1.0,
                    },
                    qos: 1,
                },
            ] {
                jobs.extend(plan(&s));
            }
            jobs
        }
    }
}

#[derive(Debug)]
enum Job {
    Flood(Flood),
    /// Idle connections; with a QoS, each subscribes to its own topic at it.
    Idle(IdleArgs, Option<QoS>),
}

fn seconds(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::from_secs(1))
}

/// What a generator thread does between tasks, for ever: sleep until one is woken or, with
/// `spin` (`--spin`), hand control back at once so that the executor looks for work again
/// (async-io's `block_on` polls the reactor without blocking when its future woke itself).
async fn idle(spin: bool) {
    if spin {
        loop {
            smol::future::yield_now().await;
        }
    }
    smol::future::pending::<()>().await
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let addr = SocketAddr::new(cli.host, cli.port);
    let sub_addr = SocketAddr::new(
        cli.sub_host.unwrap_or(cli.host),
        cli.sub_port.unwrap_or(cli.port),
    );
    for host in [addr.ip(), sub_addr.ip()] {
        if !host.is_loopback() {
            eprintln!("wren-bench: refusing {host}: loopback addresses only");
            return ExitCode::FAILURE;
        }
    }
    let jobs = plan(&cli.scenario);
    if sub_addr != addr && jobs.iter().any(|j| matches!(j, Job::Idle(..))) {
        eprintln!(
            "wren-bench: --sub-host/--sub-port apply to publish/subscribe scenarios only, not \
             to idle or idle-sub"
        );
        return ExitCode::FAILURE;
    }
    if cli.sub_broker_pid.is_some() && sub_addr == addr {
        eprintln!("wren-bench: --sub-broker-pid needs --sub-port or --sub-host (another broker)");
        return ExitCode::FAILURE;
    }
    let spin = cli.spin;
    for _ in 1..cli.threads.max(1) {
        std::thread::spawn(move || smol::block_on(EX.run(idle(spin))));
    }
    let tls = match cli.tls.as_deref().map(mqtt::tls_connector).transpose() {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("wren-bench: --tls: {e}");
            return ExitCode::FAILURE;
        }
    };
    let target = Target {
        addr,
        sub_addr,
        tls,
        label: cli.label.clone(),
        broker_pid: cli.broker_pid,
        sub_broker_pid: cli.sub_broker_pid,
        deadline: seconds(cli.timeout),
        idle_timeout: seconds(cli.idle_timeout),
        persistent_subscribers: cli.persistent_subscribers,
    };
    let mut reports: Vec<Report> = Vec::new();
    let mut failed = false;
    let runs = async {
        for job in &jobs {
            let result = match job {
                Job::Flood(f) => run::flood(&EX, &target, f).await,
                Job::Idle(a, subscribe) => {
                    run::idle(
                        &EX,
                        &target,
                        a.connections,
                        a.concurrency,
                        seconds(a.settle),
                        *subscribe,
                    )
                    .await
                }
            };
            match result {
                Ok(r) => {
                    if cli.json {
                        println!("{}", r.to_json());
                    }
                    reports.push(r);
                }
                Err(e) => {
                    eprintln!("wren-bench: {job:?}: {e}");
                    failed = true;
                }
            }
            // Let the broker tear the last run's sessions down before the next one connects.
            smol::Timer::after(Duration::from_millis(200)).await;
        }
    };
    smol::block_on(EX.run(smol::future::or(runs, idle(cli.spin))));
    let table = report::table(&reports);
    if cli.json {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
