//! The consoles typed into by a person: driven through a pseudo-terminal (prompt, line editing,
//! history, completion, messages arriving while a line is half typed).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use expectrl::{Eof, Expect, Session};

const UP: &str = "\x1b[A";

fn spawn(tool: &str, args: &[&str]) -> expectrl::session::OsSession {
    let mut cmd = Command::new(bin(tool));
    cmd.args(args);
    let mut s = Session::spawn(cmd).expect("spawn in a pseudo-terminal");
    s.set_expect_timeout(Some(SECS10));
    s
}

/// Wait for the process to end; its exit code.
fn exit_code(s: &mut expectrl::session::OsSession) -> i32 {
    s.expect(Eof).expect("end of output");
    match s.get_process().wait().expect("wait") {
        expectrl::process::unix::WaitStatus::Exited(_, code) => code,
        other => panic!("not a normal exit: {other:?}"),
    }
}

#[test]
fn sub_console_in_a_terminal() {
    let b = Broker::start();
    let port = b.port_arg();
    let mut s = spawn("wren-sub", &["-p", &port, "--console", "-q", "1"]);
    s.expect("CONNACK accepted").unwrap();
    s.expect("wren-sub> ").unwrap();
    s.send("subscribe room/#\r").unwrap();
    s.expect("SUBACK mid=1 granted QoS 1").unwrap();
    s.send("help\r").unwrap();
    s.expect("UNSUBSCRIBE <filter>").unwrap();
    // The help's lines are printed above the prompt one by one (the prompt is redrawn after
    // each): wait for the last before the prompt that follows it.
    s.expect("Ctrl-D or Ctrl-C disconnects.").unwrap();
    s.expect("wren-sub> ").unwrap();

    // Half a line typed when a message arrives: the message is printed above it and the half
    // line is redrawn after the prompt, then completed as if nothing had happened.
    s.send("SUBSCR").unwrap();
    s.expect("SUBSCR").unwrap();
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "room/1", "-m", "hello there", "-q", "1"],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let seen = s.expect("wren-sub> SUBSCR").unwrap();
    let before = String::from_utf8_lossy(seen.before()).into_owned();
    assert!(
        before.contains("MESSAGE room/1 hello there\r\n"),
        "the message is printed on a line of its own: {before:?}"
    );
    assert!(
        !before.contains("SUBSCRMESSAGE") && !before.contains("thereSUBSCR"),
        "{before:?}"
    );
    s.send("IBE other/x\r").unwrap();
    s.expect("SUBACK mid=2 granted QoS 1").unwrap();

    // Tab completes the command word.
    s.send("unsu\t").unwrap();
    s.expect("UNSUBSCRIBE ").unwrap();
    s.send("room/#\r").unwrap();
    s.expect("UNSUBACK mid=3").unwrap();

    // History: Up twice recalls "SUBSCRIBE other/x"; the escape sequence never reaches a command.
    s.send(UP).unwrap();
    s.send(UP).unwrap();
    s.expect("SUBSCRIBE other/x").unwrap();
    s.send("\r").unwrap();
    let seen = s.expect("SUBACK mid=4 granted QoS 1").unwrap();
    let before = String::from_utf8_lossy(seen.before()).into_owned();
    assert!(!before.contains("unknown command"), "{before:?}");
    assert!(!before.contains("[A"), "{before:?}");

    // Unknown commands get a one-line error and the session goes on.
    s.send("FROB\r").unwrap();
    s.expect("error: unknown command 'FROB'").unwrap();

    s.send("DISCONNECT\r").unwrap();
    s.expect("DISCONNECTED").unwrap();
    assert_eq!(exit_code(&mut s), 0);
}

#[test]
fn pub_console_in_a_terminal() {
    let b = Broker::start();
    let port = b.port_arg();
    let mut sub = subscribed(&port, &["-t", "t/#", "-v"]);
    let mut s = spawn("wren-pub", &["-p", &port, "--console", "-q", "1"]);
    s.expect("wren-pub> ").unwrap();

    // A topic without a value says what is missing and publishes nothing.
    s.send("PUBLISH t/1\r").unwrap();
    s.expect("error: PUBLISH t/1 needs a value after the topic")
        .unwrap();
    s.send("PUBLISH t/1 first value\r").unwrap();
    s.expect("PUBACK mid=1").unwrap();
    // The first message on t/1 is this one: nothing was published by the line without a value.
    let first = sub.expect_out(|l| l.starts_with("t/1"), SECS10);
    assert_eq!(first, "t/1 first value");

    // Line editing: type, move left over a word with Ctrl-B, insert, and send.
    s.send("publish t/2 wrld").unwrap();
    s.send("\x02\x02\x02").unwrap();
    s.send("o").unwrap();
    s.send("\r").unwrap();
    s.expect("PUBACK mid=2").unwrap();
    sub.expect_out(|l| l == "t/2 world", SECS10);

    // History: Up recalls the last line, Enter sends it again.
    s.send(UP).unwrap();
    s.expect("publish t/2 world").unwrap();
    s.send("\r").unwrap();
    s.expect("PUBACK mid=3").unwrap();
    sub.expect_out(|l| l == "t/2 world", SECS10);

    s.send("HELP\r").unwrap();
    s.expect("PUBLISH <topic> <value>").unwrap();
    s.expect("Ctrl-D or Ctrl-C disconnects.").unwrap();
    s.expect("wren-pub> ").unwrap();

    // Ctrl-D at an empty prompt ends the session cleanly.
    std::thread::sleep(Duration::from_millis(100));
    s.send("\x04").unwrap();
    s.expect("DISCONNECTED").unwrap();
    assert_eq!(exit_code(&mut s), 0);
}

/// Whether the terminal is in canonical (line) mode, as a shell leaves it; the line editor
/// turns it off while it waits for a line.
fn canonical(s: &expectrl::session::OsSession) -> bool {
    let master = s.get_process().get_raw_handle().unwrap();
    nix::sys::termios::tcgetattr(&master)
        .unwrap()
        .local_flags
        .contains(nix::sys::termios::LocalFlags::ICANON)
}

/// The broker goes away while the line editor waits for a line: the tool ends with its error and
/// the terminal is back in its normal mode, not left raw.
#[test]
fn terminal_restored_when_the_connection_is_lost() {
    let mut b = Broker::start();
    let port = b.port_arg();
    let mut s = spawn("wren-pub", &["-p", &port, "--console"]);
    assert!(canonical(&s));
    s.expect("wren-pub> ").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        !canonical(&s),
        "the line editor puts the terminal in raw mode"
    );
    b.stop();
    s.expect("Error: the broker closed the connection").unwrap();
    let code = exit_code(&mut s);
    assert_ne!(code, 0);
    assert!(canonical(&s), "the terminal is back in canonical mode");
}

/// Ctrl-C at the prompt (the terminal is raw: no SIGINT, the line editor reads it) ends the
/// session as DISCONNECT does: a clean disconnect, exit 0, so the broker publishes no will.
#[test]
fn ctrl_c_at_the_prompt_disconnects_cleanly() {
    let b = Broker::start();
    let port = b.port_arg();
    let mut watcher = subscribed(&port, &["-t", "wills/#", "-v"]);
    let mut s = spawn(
        "wren-sub",
        &[
            "-p",
            &port,
            "--console",
            "--will-topic",
            "wills/console",
            "--will-payload",
            "gone",
        ],
    );
    s.expect("wren-sub> ").unwrap();
    s.send("SUBSCRIBE x/half").unwrap();
    s.send("\x03").unwrap();
    s.expect("DISCONNECTED").unwrap();
    assert_eq!(exit_code(&mut s), 0);
    // A will would arrive at once; a live marker published after the disconnect comes first.
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "wills/marker", "-m", "after"],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let first = watcher.expect_out(|l| l.starts_with("wills/"), SECS10);
    assert_eq!(first, "wills/marker after");
}
