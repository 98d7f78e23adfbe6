//! Test helpers: a Mosquitto broker on an ephemeral loopback port, and tools run as processes.
#![allow(dead_code)]

pub mod pki;
pub mod tcp;
pub mod tcp_async;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
static NEXT: AtomicUsize = AtomicUsize::new(0);

pub fn scratch_dir() -> PathBuf {
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("wren-clients-test-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A Mosquitto broker for one test; killed on drop.
pub struct Broker {
    child: Child,
    pub port: u16,
    dir: PathBuf,
}

impl Broker {
    /// Anonymous access allowed.
    pub fn start() -> Broker {
        Broker::with_config("allow_anonymous true\n")
    }

    /// `extra` is appended to `listener <port> 127.0.0.1`.
    pub fn with_config(extra: &str) -> Broker {
        Broker::on_port(free_port(), extra)
    }

    pub fn on_port(port: u16, extra: &str) -> Broker {
        assert!(
            std::path::Path::new(MOSQUITTO).exists(),
            "these tests need Debian's mosquitto at {MOSQUITTO}: apt-get install mosquitto \
             mosquitto-clients (.ci/run installs them)"
        );
        let dir = scratch_dir();
        let conf = dir.join("mosquitto.conf");
        std::fs::write(&conf, format!("listener {port} 127.0.0.1\n{extra}")).unwrap();
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !wren_broker::testing::listening(("127.0.0.1", port)) {
            assert!(
                Instant::now() < deadline,
                "mosquitto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { child, port, dir }
    }

    pub fn port_arg(&self) -> String {
        self.port.to_string()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn bin(name: &str) -> &'static str {
    match name {
        "wren-pub" => env!("CARGO_BIN_EXE_wren-pub"),
        "wren-sub" => env!("CARGO_BIN_EXE_wren-sub"),
        "wren-sensor" => env!("CARGO_BIN_EXE_wren-sensor"),
        "wren-rr" => env!("CARGO_BIN_EXE_wren-rr"),
        other => panic!("no binary {other}"),
    }
}

/// The result of a finished tool.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or(-1)
    }
}

/// Run a tool to completion (killed after `timeout`), with `stdin` as its input.
pub fn run(tool: &str, args: &[&str], stdin: &str, timeout: Duration) -> Finished {
    let mut p = Proc::spawn(tool, args);
    p.write(stdin);
    p.close_stdin();
    p.finish(timeout)
}

/// A running tool whose output lines are collected by threads.
pub struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
    pub out_lines: Vec<String>,
    pub err_lines: Vec<String>,
}

fn lines_of(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Proc {
    pub fn spawn(tool: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(bin(tool))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = lines_of(child.stdout.take().unwrap());
        let err = lines_of(child.stderr.take().unwrap());
        Proc {
            stdin: child.stdin.take(),
            child,
            out,
            err,
            out_lines: Vec::new(),
            err_lines: Vec::new(),
        }
    }

    pub fn write(&mut self, text: &str) {
        if let Some(s) = self.stdin.as_mut() {
            s.write_all(text.as_bytes()).unwrap();
            s.flush().unwrap();
        }
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for a stdout line satisfying `pred`; panics with everything seen after `timeout`.
    pub fn expect_out(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.out_lines.iter().find(|l| pred(l)) {
                return l.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.out.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(line) => self.out_lines.push(line),
                Err(_) if Instant::now() >= deadline => {
                    self.drain_err();
                    panic!(
                        "expected line not seen.\nstdout: {:#?}\nstderr: {:#?}",
                        self.out_lines, self.err_lines
                    );
                }
                Err(_) => {}
            }
        }
    }

    /// Wait for a stderr line satisfying `pred`.
    pub fn expect_err(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.err_lines.iter().find(|l| pred(l)) {
                return l.clone();
            }
            match self.err.recv_timeout(Duration::from_millis(50)) {
                Ok(line) => self.err_lines.push(line),
                Err(_) if Instant::now() >= deadline => {
                    panic!("expected stderr line not seen: {:#?}", self.err_lines)
                }
                Err(_) => {}
            }
        }
    }

    fn drain_err(&mut self) {
        while let Ok(l) = self.err.try_recv() {
            self.err_lines.push(l);
        }
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Wait for exit (killing after `timeout`) and collect all output.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        self.stdin = None;
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                self.drain_err();
                panic!(
                    "{:?} did not exit in time; stdout {:#?} stderr {:#?}",
                    self.child.id(),
                    self.out_lines,
                    self.err_lines
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The reader threads end at EOF, which follows the exit.
        let until = Instant::now() + Duration::from_secs(2);
        loop {
            match self.out.recv_timeout(Duration::from_millis(20)) {
                Ok(l) => self.out_lines.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(_) if Instant::now() > until => break,
                Err(_) => {}
            }
        }
        loop {
            match self.err.recv_timeout(Duration::from_millis(20)) {
                Ok(l) => self.err_lines.push(l),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(_) if Instant::now() > until => break,
                Err(_) => {}
            }
        }
        Finished {
            status,
            stdout: self.out_lines.join("\n"),
            stderr: self.err_lines.join("\n"),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const SECS5: Duration = Duration::from_secs(5);
pub const SECS10: Duration = Duration::from_secs(10);

/// Start `wren-sub` with `args` (plus -d) and wait until its subscription is acknowledged.
pub fn subscribed(port: &str, args: &[&str]) -> Proc {
    let mut all = vec!["-p", port, "-d"];
    all.extend_from_slice(args);
    let mut p = Proc::spawn("wren-sub", &all);
    p.expect_out(|l| l.contains("received SUBACK"), SECS10);
    p
}

/// Message lines of a `-d` run (debug lines removed).
pub fn messages(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| !l.starts_with("Client ") && !l.starts_with("Subscribed (mid"))
        .collect()
}
