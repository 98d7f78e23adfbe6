//! A child process (the broker binary, Mosquitto) whose output lines arrive on a channel as it
//! writes them, so a test can wait for a log line; killed on drop. The one such helper of the
//! integration tests (`binary.rs`, `mosquitto_conf.rs`, `trace.rs`).

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

/// How long a process may take to write the line a test waits for (a broker starting, a
/// reload): generous, as CI runs the tests two at a time on two cores.
const WAIT: Duration = Duration::from_secs(10);

/// Which output of the process the lines come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Stderr (stdout discarded): the broker's log.
    Stderr,
    /// Stdout (stderr as the command says).
    Stdout,
    /// Both, interleaved as they arrive.
    Both,
}

pub struct Running {
    child: Child,
    /// The working directory given to a command that named none (removed on drop): a broker
    /// started there keeps its persistence file (`wren.db`) apart from every other test's.
    scratch: Option<std::path::PathBuf>,
    lines: Receiver<String>,
    /// Every line read so far, for failure messages.
    seen: Vec<String>,
}

impl Running {
    /// Start `cmd` (stdin closed), reading `output`.
    pub fn spawn(mut cmd: Command, output: Output) -> Running {
        cmd.stdin(Stdio::null());
        let scratch = cmd.get_current_dir().is_none().then(|| {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "wren-running-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            cmd.current_dir(&dir);
            dir
        });
        match output {
            Output::Stderr => cmd.stdout(Stdio::null()).stderr(Stdio::piped()),
            Output::Stdout => cmd.stdout(Stdio::piped()),
            Output::Both => cmd.stdout(Stdio::piped()).stderr(Stdio::piped()),
        };
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let mut readers: Vec<Box<dyn Read + Send>> = Vec::new();
        if output != Output::Stderr {
            readers.push(Box::new(child.stdout.take().unwrap()));
        }
        if output != Output::Stdout {
            readers.push(Box::new(child.stderr.take().unwrap()));
        }
        let (tx, lines) = channel();
        for r in readers {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Running {
            child,
            scratch,
            lines,
            seen: Vec::new(),
        }
    }

    /// The port of the broker's first loopback socket, from its `running on 127.0.0.1:PORT`
    /// line (waited for).
    pub fn listening_port(&mut self) -> u16 {
        let line = self.wait_for_line("running on 127.0.0.1:");
        line.split("running on 127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.trim_end_matches(',').parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"))
    }

    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// The first line (after those already seen) containing `needle`; panics after `WAIT` or
    /// once the output closes without it.
    pub fn wait_for_line(&mut self, needle: &str) -> String {
        self.until(needle).pop().unwrap_or_default()
    }

    /// The lines (after those already seen) up to and including the first containing `last`;
    /// panics after `WAIT` or once the output closes without it.
    pub fn until(&mut self, last: &str) -> Vec<String> {
        let from = self.seen.len();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let done = line.contains(last);
                    self.seen.push(line);
                    if done {
                        return self.seen[from..].to_vec();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no line with {last:?} within {WAIT:?}: {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("output closed without {last:?}: {:#?}", self.seen)
                }
            }
        }
    }

    /// The lines that arrived so far, without waiting.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Every line up to the output's close (the process has exited), as one text.
    pub fn rest_of_output(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Disconnected) => return self.seen.join("\n"),
                Err(RecvTimeoutError::Timeout) => panic!("output still open: {:#?}", self.seen),
            }
        }
    }

    /// SIGKILL now (the output stays readable: [`Running::rest_of_output`]).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// The exit status within `timeout`, or `None` if it is still running.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panic, with its output, if the process has exited.
    pub fn assert_running(&mut self, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            std::thread::sleep(Duration::from_millis(100));
            panic!("{what} exited ({status}): {:#?}", self.drain());
        }
    }

    /// Wait until 127.0.0.1:`port` accepts connections (the process still running).
    pub fn wait_for_port(&mut self, port: u16, what: &str) {
        let deadline = Instant::now() + WAIT;
        while !wren_broker::testing::listening(("127.0.0.1", port)) {
            self.assert_running(what);
            assert!(
                Instant::now() < deadline,
                "{what} does not listen on port {port}: {:#?}",
                self.drain()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.scratch {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
