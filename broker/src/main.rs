//! `wren-broker`: run the MQTT broker.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use wren_broker::{Config, Server};

/// Wren MQTT broker: speaks MQTT 3.1, 3.1.1 and 5.0.
#[derive(Debug, Parser)]
#[command(name = "wren-broker", version)]
struct Cli {
    /// TCP port to listen on (overrides the config file; default 1883).
    #[arg(short = 'p', long)]
    port: Option<u16>,
    /// Address to listen on (overrides the config file; default 0.0.0.0).
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
    let (tx, rx) = std::sync::mpsc::channel();
    if let Err(e) = ctrlc::set_handler(move || {
        let _ = tx.send(());
    }) {
        log::error!("Error: cannot install the signal handler: {e}.");
        return ExitCode::FAILURE;
    }
    let handle = match server.start() {
        Ok(h) => h,
        Err(e) => {
            log::error!("Error: cannot start: {e}.");
            return ExitCode::FAILURE;
        }
    };
    // SIGINT or SIGTERM.
    let _ = rx.recv();
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
