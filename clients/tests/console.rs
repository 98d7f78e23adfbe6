//! The consoles, driven through stdin as a person or a script would.

mod common;

use common::*;

#[test]
fn sub_console_session() {
    let b = Broker::start();
    let port = b.port_arg();
    let mut c = Proc::spawn("wren-sub", &["-p", &port, "--console", "-q", "1"]);
    c.expect_out(|l| l.starts_with("CONNACK accepted"), SECS10);
    // Commands are case-insensitive.
    c.write("subscribe room/#\n");
    c.expect_out(|l| l == "SUBACK mid=1 granted QoS 1", SECS10);
    let r = run(
        "wren-pub",
        &[
            "-p",
            &port,
            "-t",
            "room/1",
            "-m",
            "hello there world",
            "-q",
            "1",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0);
    c.expect_out(|l| l == "MESSAGE room/1 hello there world", SECS10);
    // Mistakes get a one-line explanation and the session goes on.
    c.write("FROB x\n");
    c.expect_err(|l| l.contains("unknown command 'FROB'"), SECS10);
    c.write("SUBSCRIBE\n");
    c.expect_err(|l| l.contains("SUBSCRIBE needs a topic filter"), SECS10);
    c.write("SUBSCRIBE a/#/b\n");
    c.expect_err(|l| l.contains("not a valid topic filter"), SECS10);
    c.write("Unsubscribe room/#\n");
    c.expect_out(|l| l == "UNSUBACK mid=2", SECS10);
    run(
        "wren-pub",
        &["-p", &port, "-t", "room/2", "-m", "unseen"],
        "",
        SECS10,
    );
    c.write("DISCONNECT\n");
    let done = c.finish(SECS10);
    assert_eq!(done.code(), 0, "{done:?}");
    assert!(done.stdout.ends_with("DISCONNECTED"), "{}", done.stdout);
    assert!(!done.stdout.contains("unseen"), "{}", done.stdout);
}

#[test]
fn sub_console_piped_script_ends_at_eof() {
    let b = Broker::start();
    let port = b.port_arg();
    run(
        "wren-pub",
        &["-p", &port, "-t", "kept/a", "-m", "retained value", "-r"],
        "",
        SECS10,
    );
    // EOF right after the commands: outstanding acks and retained messages still arrive.
    let r = run(
        "wren-sub",
        &["-p", &port, "--console"],
        "SUBSCRIBE kept/#\nSUBSCRIBE other\n",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines.contains(&"SUBACK mid=1 granted QoS 0"), "{lines:?}");
    assert!(lines.contains(&"SUBACK mid=2 granted QoS 0"), "{lines:?}");
    assert_eq!(lines.last(), Some(&"DISCONNECTED"));
}

#[test]
fn pub_console_piped_script() {
    let b = Broker::start();
    let port = b.port_arg();
    let sub = subscribed(&port, &["-t", "c/#", "-v", "-C", "2", "-q", "2"]);
    let script =
        "PUBLISH c/a hello  there world\npublish\nbogus stuff\nPUBLISH c/+ x\nPublish c/b 42\n";
    let r = run(
        "wren-pub",
        &["-p", &port, "--console", "-q", "2"],
        script,
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let out: Vec<&str> = r.stdout.lines().collect();
    for line in [
        "CONNACK accepted, session present: no",
        "PUBLISH c/a mid=1 qos=2",
        "PUBREC mid=1",
        "PUBCOMP mid=1",
        "PUBLISH c/b mid=2 qos=2",
        "PUBREC mid=2",
        "PUBCOMP mid=2",
        "DISCONNECTED",
    ] {
        assert!(out.contains(&line), "missing {line:?} in {out:?}");
    }
    assert_eq!(out.last(), Some(&"DISCONNECTED"));
    assert!(
        r.stderr.contains("PUBLISH needs a topic and a value"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("unknown command 'BOGUS'"), "{}", r.stderr);
    assert!(
        r.stderr.contains("'c/+' is not a valid topic name"),
        "{}",
        r.stderr
    );
    let done = sub.finish(SECS10);
    assert_eq!(messages(&done.stdout), ["c/a hello  there world", "c/b 42"]);
}

#[test]
fn pub_console_qos1_acks_and_disconnect_command() {
    let b = Broker::start();
    let port = b.port_arg();
    let mut c = Proc::spawn("wren-pub", &["-p", &port, "--console", "-q", "1"]);
    c.expect_out(|l| l.starts_with("CONNACK accepted"), SECS10);
    c.write("PUBLISH t/1 v\n");
    c.expect_out(|l| l == "PUBACK mid=1", SECS10);
    c.write("disconnect\n");
    let done = c.finish(SECS10);
    assert_eq!(done.code(), 0, "{done:?}");
    assert!(done.stdout.ends_with("DISCONNECTED"));
}
