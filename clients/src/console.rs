//! The consoles' input and output (`wren-pub --console`, `wren-sub --console`).
//!
//! When stdin and stdout are terminals a person is typing: lines are read through `rustyline`
//! (a prompt, line editing, history with the arrow keys, completion of the commands with Tab),
//! and every line the tool prints goes through rustyline's `ExternalPrinter`, which clears the
//! line being typed, prints above it and redraws it — a message arriving mid-line never lands in
//! the middle of what is being typed. Otherwise (a script, a pipe) stdin is read line by line
//! with no prompt, output goes to stdout and errors to stderr, exactly as before.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use rustyline::completion::Completer;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Context, Editor, ExternalPrinter, Helper};
use smol::channel::{self, Receiver};

use crate::cli;

/// A console's line source and printer.
pub struct Console {
    lines: Receiver<String>,
    /// Set when a person is typing at a terminal.
    printer: Option<Mutex<Box<dyn ExternalPrinter + Send>>>,
    help: &'static str,
    /// The terminal's settings before the line editor changed them, put back on drop.
    #[cfg(unix)]
    saved: Option<nix::sys::termios::Termios>,
}

impl Drop for Console {
    /// A tool that ends while the line editor waits for a line (the connection lost) must not
    /// leave the terminal in raw mode.
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(saved) = &self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("terminal", &self.printer.is_some())
            .finish_non_exhaustive()
    }
}

impl Console {
    /// Start reading commands. `tool` names the prompt (`wren-pub> `), `commands` are completed
    /// with Tab (`HELP` is always one), `help` is what `HELP` prints.
    pub fn start(
        tool: &'static str,
        commands: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            #[cfg(unix)]
            let saved = nix::sys::termios::tcgetattr(std::io::stdin()).ok();
            if let Some((lines, printer)) = start_editor(tool, commands) {
                return Self {
                    lines,
                    printer: Some(Mutex::new(printer)),
                    help,
                    #[cfg(unix)]
                    saved,
                };
            }
        }
        Self {
            lines: cli::stdin_lines(),
            printer: None,
            help,
            #[cfg(unix)]
            saved: None,
        }
    }

    /// Whether a person is typing at a terminal (prompt, editing, history).
    pub fn is_terminal(&self) -> bool {
        self.printer.is_some()
    }

    /// The next line typed; `None` at end of input (Ctrl-D, Ctrl-C at the prompt, EOF).
    pub async fn next_line(&self) -> Option<String> {
        self.lines.recv().await.ok()
    }

    /// Print one output line (stdout), above the line being typed at a terminal.
    pub fn print(&self, line: &str) {
        match &self.printer {
            Some(p) => external(p, line),
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
    }

    /// Print a one-line error (`error: …`): stderr, or above the line being typed.
    pub fn error(&self, message: &str) {
        match &self.printer {
            Some(p) => external(p, &format!("error: {message}")),
            None => eprintln!("error: {message}"),
        }
    }

    /// Print the `HELP` text.
    pub fn help(&self) {
        for line in self.help.lines() {
            self.print(line);
        }
    }
}

fn external(printer: &Mutex<Box<dyn ExternalPrinter + Send>>, line: &str) {
    if let Ok(mut p) = printer.lock() {
        // Always end the message with a newline: printed while not in raw mode (between
        // two prompts) it is written as is.
        let _ = p.print(format!("{line}\n"));
    }
}

/// Start the line editor on a thread; `None` if the terminal cannot be driven (the caller then
/// falls back to plain lines).
fn start_editor(
    tool: &'static str,
    commands: &'static [&'static str],
) -> Option<(Receiver<String>, Box<dyn ExternalPrinter + Send>)> {
    let (tx, rx) = channel::unbounded();
    let (ready_tx, ready_rx) =
        std::sync::mpsc::channel::<Option<Box<dyn ExternalPrinter + Send>>>();
    std::thread::spawn(move || {
        let config = Config::builder()
            .auto_add_history(true)
            .history_ignore_dups(true)
            .and_then(|c| c.history_ignore_space(true).max_history_size(1000))
            .map(|c| c.completion_type(CompletionType::List).build());
        let Ok(config) = config else {
            let _ = ready_tx.send(None);
            return;
        };
        let Ok(mut editor) = Editor::<Commands, DefaultHistory>::with_config(config) else {
            let _ = ready_tx.send(None);
            return;
        };
        editor.set_helper(Some(Commands(commands)));
        match editor.create_external_printer() {
            Ok(p) => {
                if ready_tx.send(Some(Box::new(p))).is_err() {
                    return;
                }
            }
            Err(_) => {
                let _ = ready_tx.send(None);
                return;
            }
        }
        let prompt = format!("{tool}> ");
        // Ctrl-C, Ctrl-D at the prompt, or a terminal error end the input, which the consoles
        // take as DISCONNECT.
        while let Ok(line) = editor.readline(&prompt) {
            // DISCONNECT ends the session: stop reading so the terminal is left in its normal
            // mode when the tool exits.
            let last = cli::split_command(&line).0 == "DISCONNECT";
            if tx.send_blocking(line).is_err() || last {
                break;
            }
        }
    });
    let printer = ready_rx.recv().ok().flatten()?;
    Some((rx, printer))
}

/// The line editor's helper: completes the command word (case-insensitively, in upper case).
struct Commands(&'static [&'static str]);

impl Completer for Commands {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = line.get(..pos).unwrap_or(line);
        let start = before.len() - before.trim_start().len();
        let word = &before[start..];
        if word.contains(char::is_whitespace) {
            return Ok((pos, Vec::new()));
        }
        let upper = word.to_ascii_uppercase();
        let candidates = self
            .0
            .iter()
            .chain(std::iter::once(&"HELP"))
            .filter(|c| c.starts_with(&upper))
            .map(|c| format!("{c} "))
            .collect();
        Ok((start, candidates))
    }
}

impl Hinter for Commands {
    type Hint = String;
}

impl Highlighter for Commands {}

impl Validator for Commands {}

impl Helper for Commands {}
