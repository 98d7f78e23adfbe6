//! `wren-broker`: run the MQTT broker.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use wren_broker::{Config, Server};

/// Wren MQTT broker: speaks MQTT 3.1, 3.1.1 and 5.0.
#[derive(Debug, Parser)]
#[command(
    name = "wren-broker",
    version,
    after_help = "Signals: SIGINT and SIGTERM shut the broker down gracefully. SIGHUP reloads the \
                  password and ACL files (a file that fails keeps the previous rules). SIGUSR1 \
                  and SIGUSR2 (Mosquitto's persistence and subscription-dump signals) are \
                  logged and the broker carries on."
)]
struct Cli {
    /// TCP port of the default listener (overrides the config file's `port`; default 1883).
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// Address of the default listener (overrides the config file's `bind`). Default: local-only
    /// mode, 127.0.0.1 and ::1; other hosts can connect only to an address given here or in a
    /// listener, and then need `allow_anonymous = true` or a password file.
    #[arg(long)]
    bind: Option<String>,
    /// Configuration file (TOML; see wren.toml for every key and its default).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// More logging: -v debug, -vv trace. RUST_LOG, if set, takes precedence.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // Mosquitto's log format: "<epoch seconds>: <message>".
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format(|f, record| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            writeln!(f, "{secs}: {}", record.args())
        })
        .init();

    let mut config = match &cli.config {
        Some(path) => match load(path) {
            Ok(c) => c,
            Err(message) => {
                log::error!("{message}");
                return ExitCode::FAILURE;
            }
        },
        None => Config::default(),
    };
    if (cli.port.is_some() || cli.bind.is_some()) && !config.listener.is_empty() {
        log::error!(
            "Error: -p/--port and --bind set the default listener, and the configuration defines \
             listeners: change their port or bind there."
        );
        return ExitCode::FAILURE;
    }
    if let Some(port) = cli.port {
        config.port = port;
    }
    if let Some(bind) = cli.bind {
        config.bind = bind;
    }
    // Again with the command line's values (and for the defaults, when there is no file).
    if let Err(e) = config.validate() {
        log::error!("Error: {e}.");
        return ExitCode::FAILURE;
    }

    // Before anything listens: from here on, SIGHUP, SIGUSR1 and SIGUSR2 never kill the process.
    let stop = match stop::Stop::install() {
        Ok(s) => s,
        Err(e) => {
            log::error!("Error: cannot install the signal handlers: {e}.");
            return ExitCode::FAILURE;
        }
    };
    let server = match Server::bind(config.clone()) {
        Ok(s) => s,
        Err(e) => {
            log::error!(
                "Error: unable to listen on {}:{}: {e}.",
                config.bind,
                config.port
            );
            return ExitCode::FAILURE;
        }
    };
    let handle = match server.start() {
        Ok(h) => h,
        Err(e) => {
            log::error!("Error: cannot start: {e}.");
            return ExitCode::FAILURE;
        }
    };
    stop.wait(&handle);
    handle.shutdown();
    log::info!("wren-broker stopped.");
    ExitCode::SUCCESS
}

/// Read, parse and validate the configuration file `path`; logs "Config loaded from PATH." as
/// Mosquitto does. The error is the line to log.
fn load(path: &Path) -> Result<Config, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Error: Unable to open config file {}: {e}.", path.display()))?;
    let config = Config::from_toml(&text)
        .and_then(|c| c.validate().map(|()| c))
        .map_err(|e| format!("Error in config file {}: {e}.", path.display()))?;
    log::info!("Config loaded from {}.", path.display());
    Ok(config)
}

/// What stops the broker: SIGINT or SIGTERM. Mosquitto's other signals (SIGHUP: reload the
/// configuration; SIGUSR1: write the persistence database; SIGUSR2: print the subscription
/// tree) are logged, with what was not done, and the broker carries on.
#[cfg(unix)]
mod stop {
    use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};
    use signal_hook::iterator::Signals;
    use wren_broker::ServerHandle;

    #[derive(Debug)]
    pub(crate) struct Stop(Signals);

    impl Stop {
        /// Catch the five signals (their default action would end the process).
        pub(crate) fn install() -> std::io::Result<Stop> {
            Signals::new([SIGHUP, SIGUSR1, SIGUSR2, SIGINT, SIGTERM]).map(Stop)
        }

        /// Block until SIGINT or SIGTERM, logging the others as they come.
        pub(crate) fn wait(mut self, handle: &ServerHandle) {
            for signal in self.0.forever() {
                match signal {
                    SIGHUP => {
                        // Mosquitto's "Reloading config.": here the password and ACL files
                        // (the other settings stay as loaded at start).
                        log::info!("Reloading config.");
                        match handle.reload_security() {
                            Ok(()) => log::info!("Reloaded the password and ACL files."),
                            Err(e) => log::error!(
                                "{e}. The reload failed: the previous password and ACL rules \
                                 stay in force."
                            ),
                        }
                    }
                    SIGUSR1 => log::info!(
                        "Received SIGUSR1: there is no persistence database to write \
                         (sessions are kept in memory only); carrying on."
                    ),
                    SIGUSR2 => log::info!(
                        "Received SIGUSR2: printing the subscription tree is not supported yet \
                         (subscriptions: {}, connected clients: {}); carrying on.",
                        handle.subscription_count(),
                        handle.connected_clients()
                    ),
                    SIGINT | SIGTERM => {
                        let name = if signal == SIGINT {
                            "SIGINT"
                        } else {
                            "SIGTERM"
                        };
                        log::info!("Received {name}: shutting down.");
                        return;
                    }
                    other => log::warn!("Received signal {other}; carrying on."),
                }
            }
        }
    }
}

/// What stops the broker where there are no Unix signals: Ctrl-C, or the console closing.
#[cfg(not(unix))]
mod stop {
    use std::sync::mpsc::{Receiver, channel};
    use wren_broker::ServerHandle;

    #[derive(Debug)]
    pub(crate) struct Stop(Receiver<()>);

    impl Stop {
        pub(crate) fn install() -> std::io::Result<Stop> {
            let (tx, rx) = channel();
            ctrlc::set_handler(move || {
                let _ = tx.send(());
            })
            .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(Stop(rx))
        }

        /// Block until Ctrl-C.
        pub(crate) fn wait(self, _handle: &ServerHandle) {
            let _ = self.0.recv();
        }
    }
}
