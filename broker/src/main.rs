//! `wren-broker`: run the MQTT broker.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use wren_broker::{Config, Listener, Protocol, Server, SocketDomain};

/// Wren MQTT broker: speaks MQTT 3.1, 3.1.1 and 5.0.
#[derive(Debug, Parser)]
#[command(
    name = "wren-broker",
    version,
    after_help = "Configuration files: a file ending in .toml is read as TOML (wren.toml), one \
                  ending in .conf as Mosquitto's mosquitto.conf; any other is read as \
                  mosquitto.conf unless its first line that is not blank or a # comment looks \
                  like TOML (key = value, or a [table] header).\n\n\
                  Signals: SIGINT and SIGTERM shut the broker down gracefully. SIGHUP reloads the \
                  password and ACL files and the TLS certificates (a file that fails keeps the \
                  previous ones). SIGUSR1 \
                  writes the persistence file now (Mosquitto's save signal) and SIGUSR2 \
                  (Mosquitto's subscription dump) is logged; the broker carries on."
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
    /// Configuration file: TOML (see wren.toml for every key and its default) or Mosquitto's
    /// mosquitto.conf.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check a configuration file (either format) and exit without listening: print its
    /// warnings and, per listener, who may connect; exit 0 if the broker can run on it, 1 with
    /// the errors otherwise.
    #[arg(long = "check-config", value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
    /// More logging: -v debug, -vv trace (whatever the configuration's log level). RUST_LOG, if
    /// set, takes precedence.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    verbose: u8,
}

fn main() -> ExitCode {
    generate_if_asked();
    let cli = Cli::parse();
    if let Some(path) = &cli.check_config {
        return check_config(&cli, path);
    }
    let loaded = cli.config.as_deref().map(load).transpose();
    // Logging as the configuration says (the defaults when it cannot be read).
    let defaults = Config::default();
    let config_for_logging = match &loaded {
        Ok(Some(l)) => &l.config,
        _ => &defaults,
    };
    init_logging(config_for_logging, cli.verbose);

    let mut config = match loaded {
        Ok(Some(loaded)) => {
            for warning in &loaded.warnings {
                log::warn!("{warning}");
            }
            log::info!("Config loaded from {}.", loaded.path.display());
            loaded.config
        }
        Ok(None) => Config::default(),
        Err(message) => {
            log::error!("{message}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(message) = apply_command_line(&cli, &mut config) {
        log::error!("{message}");
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
        Err(e)
            if e.get_ref()
                .is_some_and(|inner| inner.is::<wren_broker::store::StoreError>()) =>
        {
            log::error!("Error: {e}.");
            return ExitCode::FAILURE;
        }
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

/// Mosquitto's log format, "<epoch seconds>: <message>", to the configuration's `log_dest` at
/// its `log_level` (`-v`: debug, `-vv`: trace; `RUST_LOG`, if set, decides instead).
fn init_logging(config: &Config, verbose: u8) {
    let level = match (verbose, config.log_level.as_str()) {
        (0, "debug") => "debug",
        (0, "warning") => "warn",
        (0, "error") => "error",
        (0, "none") => "off",
        (0, _) => "info",
        (1, _) => "debug",
        _ => "trace",
    };
    let level = if config.log_dest == "none" {
        "off"
    } else {
        level
    };
    let target = if config.log_dest == "stdout" {
        env_logger::Target::Stdout
    } else {
        env_logger::Target::Stderr
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .target(target)
        .format(|f, record| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            writeln!(f, "{secs}: {}", record.args())
        })
        .init();
}

/// `-p/--port` and `--bind` onto the configuration, validated again (also for the defaults,
/// when there is no file). The error is the line to log.
fn apply_command_line(cli: &Cli, config: &mut Config) -> Result<(), String> {
    if (cli.port.is_some() || cli.bind.is_some()) && !config.listener.is_empty() {
        return Err(
            "Error: -p/--port and --bind set the default listener, and the configuration \
             defines listeners: change their port or bind there."
                .into(),
        );
    }
    if let Some(port) = cli.port {
        config.port = port;
    }
    if let Some(bind) = &cli.bind {
        config.bind.clone_from(bind);
    }
    config.validate().map_err(|e| format!("Error: {e}."))
}

/// Which syntax a configuration file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// wren.toml.
    Toml,
    /// Mosquitto's mosquitto.conf.
    Mosquitto,
}

impl Format {
    /// `.toml`: TOML; `.conf`: mosquitto.conf; otherwise TOML if the first line that is not
    /// blank or a `#` comment looks like TOML (`key = value`, `[table]`), else mosquitto.conf
    /// (whose lines are `key value`).
    fn of(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => return Format::Toml,
            Some("conf") => return Format::Mosquitto,
            _ => {}
        }
        let first = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'));
        let Some(first) = first else {
            // Empty: the defaults either way.
            return Format::Toml;
        };
        let toml_key = |k: &str| {
            let k = k.trim();
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.\"'".contains(c))
        };
        if first.starts_with('[') || first.split_once('=').is_some_and(|(k, _)| toml_key(k)) {
            Format::Toml
        } else {
            Format::Mosquitto
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Toml => "TOML",
            Format::Mosquitto => "mosquitto.conf",
        }
    }
}

/// A configuration file read, parsed and validated.
#[derive(Debug)]
struct Loaded {
    path: PathBuf,
    format: Format,
    config: Config,
    /// Keys read but not applied as written, and settings not in effect yet: one line each.
    warnings: Vec<String>,
}

/// Read, parse and validate the configuration file `path`, in either format. The error is the
/// line to log.
fn load(path: &Path) -> Result<Loaded, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Error: Unable to open config file {}: {e}.", path.display()))?;
    let format = Format::of(path, &text);
    let (config, warnings) = match format {
        Format::Toml => Config::from_toml(&text)
            .and_then(|c| c.validate().map(|()| (c, Vec::new())))
            .map_err(|e| format!("Error in config file {}: {e}.", path.display()))?,
        Format::Mosquitto => {
            // A relative include_dir is taken from the working directory, as Mosquitto does.
            Config::from_mosquitto_conf(&text, path, Path::new(""))
                .map_err(|e| format!("Error: {e}."))?
        }
    };
    Ok(Loaded {
        path: path.to_path_buf(),
        format,
        config,
        warnings,
    })
}

/// `--check-config FILE`: load and validate as at start (with `-p`/`--bind` applied), print the
/// warnings and the listeners with who may connect through each; bind nothing.
fn check_config(cli: &Cli, path: &Path) -> ExitCode {
    let mut loaded = match load(path) {
        Ok(l) => l,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(message) = apply_command_line(cli, &mut loaded.config) {
        eprintln!("{message}");
        return ExitCode::FAILURE;
    }
    for warning in &loaded.warnings {
        eprintln!("{warning}");
    }
    // The password and ACL files too: a file the broker could not use stops it at start.
    if let Err(message) = wren_broker::security::load_listener_access(&loaded.config) {
        eprintln!("{message}.");
        return ExitCode::FAILURE;
    }
    println!(
        "{} ({}): usable, {} warning{}.",
        path.display(),
        loaded.format.name(),
        loaded.warnings.len(),
        if loaded.warnings.len() == 1 { "" } else { "s" }
    );
    let config = &loaded.config;
    if config.listener.is_empty() && config.bind.is_empty() {
        println!("Local-only mode: clients on this machine only.");
    }
    println!("Listeners:");
    for listener in config.listeners() {
        println!("  {}", describe_listener(config, &listener));
    }
    if !config.bridge.is_empty() {
        println!("Bridges:");
        for b in &config.bridge {
            println!(
                "  {} to {} ({}{}): {}",
                b.name,
                b.address.join(", "),
                if b.is_v5() { "MQTT 5.0" } else { "MQTT 3.1.1" },
                if b.bridge_cafile.is_some() {
                    ", TLS"
                } else {
                    ""
                },
                b.topic.join("; ")
            );
        }
    }
    ExitCode::SUCCESS
}

/// One listener: where, what, and who may connect through it.
fn describe_listener(config: &Config, l: &Listener) -> String {
    let place = match (l.bind.as_str(), l.socket_domain) {
        ("localhost", _) => "127.0.0.1 and ::1".to_owned(),
        ("", Some(SocketDomain::Ipv4)) => "every IPv4 address".to_owned(),
        ("", Some(SocketDomain::Ipv6)) => "every IPv6 address".to_owned(),
        ("", None) => "every address".to_owned(),
        (bind, _) => bind.to_owned(),
    };
    let mut what = vec![match l.protocol {
        Protocol::Mqtt => "MQTT",
        Protocol::Websockets => "MQTT over WebSockets",
    }];
    if l.is_tls() {
        what.push("TLS");
    }
    if l.require_certificate {
        what.push("client certificate required");
    }
    let security = config.security(l);
    let mut who = Vec::new();
    if l.use_identity_as_username {
        who.push("clients with a certificate (its Common Name is the user name)".to_owned());
    } else if l.use_subject_as_username {
        who.push("clients with a certificate (its subject is the user name)".to_owned());
    } else {
        if security.allow_anonymous {
            who.push("anonymous clients".to_owned());
        }
        if let Some(passwords) = &security.password_file {
            who.push(format!("users in password file {}", passwords.display()));
        }
    }
    let who = if who.is_empty() {
        "nobody (anonymous clients refused, no password file)".to_owned()
    } else {
        who.join(" and ")
    };
    let topics = match &security.acl_file {
        Some(acl) => format!("topics as ACL file {} allows", acl.display()),
        None => "every topic (no ACL file)".to_owned(),
    };
    format!(
        "port {} on {place} ({}): {who}; {topics}",
        l.port,
        what.join(", ")
    )
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
                        // Certificates, for new connections (each listener all or nothing).
                        if let Err(e) = handle.reload_tls() {
                            log::error!(
                                "{e}. The TLS reload failed: the previous certificates stay in \
                                 use."
                            );
                        }
                    }
                    SIGUSR1 => {
                        if handle.checkpoint() {
                            log::info!(
                                "Received SIGUSR1: writing the persistence file now; carrying on."
                            );
                        } else {
                            log::info!(
                                "Received SIGUSR1: there is no persistence database to write \
                                 (persistence is off: sessions are kept in memory only); \
                                 carrying on."
                            );
                        }
                    }
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

/// The packaging flags, taken before anything else and not shown in `--help` (as wren-pub,
/// wren-sub, wren-rr and wren-sensor take them): `--generate-man DIR` writes
/// `DIR/wren-broker.1` (clap_mangen), `--generate-completions SHELL` prints the completion
/// script for bash, zsh, fish, elvish or powershell (clap_complete). Exits when one is given.
fn generate_if_asked() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let (Some(flag), Some(value), 2) = (args.first(), args.get(1), args.len()) else {
        return;
    };
    let result = match flag.to_str() {
        Some("--generate-man") => write_man(Path::new(value)),
        Some("--generate-completions") => write_completions(value),
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

fn write_man(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out)?;
    std::fs::write(dir.join("wren-broker.1"), out)
}

fn write_completions(shell: &std::ffi::OsStr) -> std::io::Result<()> {
    use clap::ValueEnum;
    let name = shell.to_string_lossy();
    let shell = clap_complete::Shell::from_str(&name, true).map_err(|_| {
        std::io::Error::other(format!(
            "unknown shell '{name}' (bash, zsh, fish, elvish or powershell)"
        ))
    })?;
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "wren-broker", &mut std::io::stdout());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_by_extension_then_by_first_meaningful_line() {
        let of = |name: &str, text: &str| Format::of(Path::new(name), text);
        // The extension decides.
        assert_eq!(of("wren.toml", "listener 1883\n"), Format::Toml);
        assert_eq!(
            of("/etc/mosquitto/mosquitto.conf", "port = 1883\n"),
            Format::Mosquitto
        );
        // Otherwise the first line that is not blank or a comment.
        for toml in [
            "port = 1883\n",
            "# comment\n\n  bind = \"127.0.0.1\"\n",
            "[[listener]]\nport = 1\n",
            "[auth_hmac_users]\n",
            "\"quoted-key\" = 1\n",
            "listener.port=1\n",
            "",
            "# only a comment\n",
        ] {
            assert_eq!(of("config", toml), Format::Toml, "{toml:?}");
        }
        for conf in [
            "listener 1883\n",
            "# Mosquitto\n\nper_listener_settings true\n",
            "\tlistener 1883\n",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S\n",
            "topic sensors/# out 1 a=b\n",
            "auto_id_prefix a = b\n",
        ] {
            assert_eq!(of("mosquitto.cfg", conf), Format::Mosquitto, "{conf:?}");
        }
    }
}
