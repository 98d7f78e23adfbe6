//! wren-pub and wren-sub against a Mosquitto broker started by each test.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn pub_then_sub_retained_verbose() {
    let b = Broker::start();
    let port = b.port_arg();
    let r = run(
        "wren-pub",
        &[
            "-p",
            &port,
            "-t",
            "a/b",
            "-m",
            "hello world",
            "-r",
            "-q",
            "1",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let r = run(
        "wren-sub",
        &["-p", &port, "-t", "a/b", "-v", "-C", "1"],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.stdout, "a/b hello world");
    // -R skips stale (retained) messages: nothing else arrives, so -W fires.
    let r = run(
        "wren-sub",
        &["-p", &port, "-t", "a/b", "-R", "-C", "1", "-W", "1"],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 27, "{r:?}");
    assert_eq!(r.stdout, "");
}

#[test]
fn format_codes_match_mosquitto() {
    let b = Broker::start();
    let port = b.port_arg();
    run(
        "wren-pub",
        &["-p", &port, "-t", "f/1", "-m", "hi", "-r"],
        "",
        SECS10,
    );
    let r = run(
        "wren-sub",
        &[
            "-p",
            &port,
            "-t",
            "f/1",
            "-C",
            "1",
            "-F",
            r"%t|%p|%q|%r|%l|%m|%x|%X|%%|\t|x\ny",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.stdout, "f/1|hi|0|1|2|0|6869|6869|%|\t|x\ny");
    // %I and %U: an ISO-8601 date and unix.nanos.
    let r = run(
        "wren-sub",
        &["-p", &port, "-t", "f/1", "-C", "1", "-F", "%I %U"],
        "",
        SECS10,
    );
    let (iso, unix) = r.stdout.split_once(' ').unwrap();
    assert_eq!(iso.len(), "2026-11-25T04:14:14+0000".len(), "{iso}");
    assert!(iso.ends_with("+0000") && iso.contains('T'), "{iso}");
    let (s, ns) = unix.split_once('.').unwrap();
    assert!(s.parse::<u64>().unwrap() > 1_600_000_000);
    assert_eq!(ns.len(), 9);
    // -N: no newline after the message.
    let r = run(
        "wren-sub",
        &["-p", &port, "-t", "f/1", "-C", "1", "-v", "-N"],
        "",
        SECS10,
    );
    assert_eq!(r.stdout, "f/1 hi");
}

#[test]
fn live_messages_qos_and_payload_sources() {
    let b = Broker::start();
    let port = b.port_arg();
    let sub = subscribed(
        &port,
        &["-t", "live/#", "-q", "2", "-C", "6", "-F", "%t %q %l %p"],
    );
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "live/m", "-m", "one", "-q", "1"],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "live/l", "-l", "-q", "2"],
        "x\ny z\n",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "live/s", "-s"],
        "all\nof it",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let file = std::env::temp_dir().join(format!("wren-pub-file-{}", std::process::id()));
    std::fs::write(&file, "from a file").unwrap();
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "live/f", "-f", file.to_str().unwrap()],
        "",
        SECS10,
    );
    std::fs::remove_file(&file).unwrap();
    assert_eq!(r.code(), 0, "{r:?}");
    let r = run("wren-pub", &["-p", &port, "-t", "live/n", "-n"], "", SECS10);
    assert_eq!(r.code(), 0, "{r:?}");
    let done = sub.finish(SECS10);
    assert_eq!(done.code(), 0, "{done:?}");
    assert_eq!(
        messages(&done.stdout),
        [
            "live/m 1 3 one",
            "live/l 2 1 x",
            "live/l 2 3 y z",
            "live/s 0 9 all",
            "of it",
            "live/f 0 11 from a file",
            "live/n 0 0 "
        ]
    );
}

#[test]
fn verbose_null_message_and_filters() {
    let b = Broker::start();
    let port = b.port_arg();
    let sub = subscribed(&port, &["-t", "n/#", "-v", "-C", "2", "-T", "n/skip/#"]);
    run(
        "wren-pub",
        &["-p", &port, "-t", "n/skip/1", "-m", "hidden"],
        "",
        SECS10,
    );
    run(
        "wren-pub",
        &["-p", &port, "-t", "n/empty", "-n"],
        "",
        SECS10,
    );
    run(
        "wren-pub",
        &["-p", &port, "-t", "n/x", "-m", "shown"],
        "",
        SECS10,
    );
    let done = sub.finish(SECS10);
    assert_eq!(messages(&done.stdout), ["n/empty (null)", "n/x shown"]);
}

#[test]
fn exit_after_subscribe_and_debug_lines() {
    let b = Broker::start();
    let port = b.port_arg();
    let r = run(
        "wren-sub",
        &[
            "-p", &port, "-t", "e/1", "-t", "e/2", "-q", "1", "-E", "-d", "-i", "tester",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert!(
        r.stdout.contains("Client tester sending CONNECT"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Client tester received CONNACK (0)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(
            "Client tester sending SUBSCRIBE (Mid: 1, Topic: e/2, QoS: 1, Options: 0x00)"
        ),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("Subscribed (mid: 1): 1, 1"),
        "{}",
        r.stdout
    );
}

#[test]
fn default_client_ids_follow_mosquitto() {
    let b = Broker::start();
    let port = b.port_arg();
    let r = run(
        "wren-sub",
        &["-p", &port, "-t", "x", "-E", "-d"],
        "",
        SECS10,
    );
    assert!(r.stdout.contains("Client wren_sub_"), "{}", r.stdout);
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "x", "-m", "y", "-d"],
        "",
        SECS10,
    );
    assert!(r.stdout.contains("Client wren_pub_"), "{}", r.stdout);
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "x", "-m", "y", "-d", "-I", "pre-"],
        "",
        SECS10,
    );
    assert!(r.stdout.contains("Client pre-"), "{}", r.stdout);
}

#[test]
fn wait_timeout_exits_27() {
    let b = Broker::start();
    let r = run(
        "wren-sub",
        &["-p", &b.port_arg(), "-t", "quiet", "-W", "1"],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 27, "{r:?}");
    assert!(r.stderr.contains("Timed out"), "{r:?}");
}

#[test]
fn refused_connection_exits_with_connack_code() {
    let b = Broker::with_config("allow_anonymous false\n");
    let port = b.port_arg();
    for tool in ["wren-sub", "wren-pub"] {
        let args: &[&str] = if tool == "wren-sub" {
            &["-p", &port, "-t", "x"]
        } else {
            &["-p", &port, "-t", "x", "-m", "y"]
        };
        let r = run(tool, args, "", SECS10);
        assert_eq!(r.code(), 5, "{tool} 3.1.1: {r:?}");
        assert!(r.stderr.contains("not authorised"), "{r:?}");
        let mut v5 = args.to_vec();
        v5.extend(["-V", "mqttv5"]);
        let r = run(tool, &v5, "", SECS10);
        assert_eq!(r.code(), 135, "{tool} 5.0: {r:?}");
        assert!(r.stderr.contains("Not authorized"), "{r:?}");
    }
    // The sensor fleet follows the same rule.
    let r = run(
        "wren-sensor",
        &["-p", &port, "-n", "2", "--count", "1"],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 5, "{r:?}");
}

#[test]
fn bad_flags_print_usage_and_exit_1() {
    for (tool, args, message) in [
        ("wren-sub", &["-Z"][..], "unexpected argument '-Z'"),
        (
            "wren-sub",
            &["-p", "1"][..],
            "You must specify a topic to subscribe to.",
        ),
        (
            "wren-sub",
            &["-t", "a", "-q", "3"][..],
            "Invalid QoS given: 3",
        ),
        (
            "wren-sub",
            &["-t", "a", "-V", "4"][..],
            "Invalid protocol version",
        ),
        (
            "wren-sub",
            &["-t", "a/#/b"][..],
            "Invalid subscription topic",
        ),
        (
            "wren-pub",
            &["-t", "a"][..],
            "Both topic and message must be supplied.",
        ),
        (
            "wren-pub",
            &["-t", "a", "-m", "x", "-n"][..],
            "Only one type of message can be sent at once.",
        ),
        (
            "wren-pub",
            &["-t", "a/+", "-m", "x"][..],
            "Invalid publish topic",
        ),
        (
            "wren-pub",
            &["-t", "a", "-m", "x", "-k", "2"][..],
            "Invalid keepalive",
        ),
        (
            "wren-sensor",
            &["--kinds", "plasma"][..],
            "unknown sensor kind 'plasma'",
        ),
        (
            "wren-sensor",
            &["--duration", "soon"][..],
            "invalid duration",
        ),
    ] {
        let r = run(tool, args, "", SECS5);
        assert_eq!(r.code(), 1, "{tool} {args:?}: {r:?}");
        assert!(
            r.stderr.starts_with("Error: "),
            "{tool} {args:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(message), "{tool} {args:?}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("Use '{tool} --help' to see usage.")),
            "{}",
            r.stderr
        );
    }
}

#[test]
fn no_broker_is_a_clear_error() {
    let port = free_port().to_string();
    let r = run("wren-pub", &["-p", &port, "-t", "a", "-m", "b"], "", SECS10);
    assert_eq!(r.code(), 1, "{r:?}");
    assert!(r.stderr.contains("Error: Connection refused"), "{r:?}");
}

#[test]
fn help_has_one_layout_for_the_family() {
    for tool in ["wren-pub", "wren-sub", "wren-sensor"] {
        let r = run(tool, &["--help"], "", SECS5);
        assert_eq!(r.code(), 0, "{r:?}");
        for needle in [
            "Usage: ",
            "Connection:",
            "-h, --host <host>",
            "-p, --port <port>",
            "-i, --id <id>",
            "-k, --keepalive <keepalive>",
            "-u, --username <username>",
            "-P, --pw <password>",
            "-V, --protocol-version <version>",
            "Exit status: 0 on success",
        ] {
            assert!(
                r.stdout.contains(needle),
                "{tool} --help lacks {needle:?}:\n{}",
                r.stdout
            );
        }
        let has_will = r.stdout.contains("--will-topic");
        assert_eq!(has_will, tool != "wren-sensor", "{tool}");
    }
}

#[test]
fn will_is_published_when_the_client_dies() {
    let b = Broker::start();
    let port = b.port_arg();
    let watcher = subscribed(&port, &["-t", "wills/#", "-v", "-C", "1"]);
    let mut doomed = subscribed(
        &port,
        &[
            "-t",
            "nothing",
            "--will-topic",
            "wills/doomed",
            "--will-payload",
            "gone",
            "--will-qos",
            "1",
            "-k",
            "5",
        ],
    );
    doomed.kill();
    let done = watcher.finish(SECS10);
    assert_eq!(messages(&done.stdout), ["wills/doomed gone"]);
}

#[test]
fn persistent_session_keeps_qos1_messages() {
    let b = Broker::start();
    let port = b.port_arg();
    // Subscribe with a persistent session, then leave.
    let r = run(
        "wren-sub",
        &[
            "-p", &port, "-t", "ps/t", "-q", "1", "-c", "-i", "keeper", "-E",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    run(
        "wren-pub",
        &["-p", &port, "-t", "ps/t", "-m", "while away", "-q", "1"],
        "",
        SECS10,
    );
    // Come back: the broker delivers what was queued.
    let r = run(
        "wren-sub",
        &[
            "-p", &port, "-t", "ps/t", "-q", "1", "-c", "-i", "keeper", "-C", "1", "-W", "5",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    assert_eq!(r.stdout, "while away");
    // -U removes the subscription from the session: nothing is queued any more.
    let r = run(
        "wren-sub",
        &[
            "-p", &port, "-t", "other", "-U", "ps/t", "-c", "-i", "keeper", "-E",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
}

#[test]
fn mqtt5_properties_pass_through() {
    let b = Broker::start();
    let port = b.port_arg();
    let sub = subscribed(
        &port,
        &["-V", "5", "-t", "p5", "-C", "1", "-F", "%t %C %P %p"],
    );
    let r = run(
        "wren-pub",
        &[
            "-p",
            &port,
            "-V",
            "mqttv5",
            "-t",
            "p5",
            "-m",
            "21.5",
            "-q",
            "1",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "user-property",
            "unit",
            "C",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let done = sub.finish(SECS10);
    assert_eq!(messages(&done.stdout), ["p5 text/plain unit:C 21.5"]);
    // -D without -V 5: accepted and left out of the 3.1.1 packets, as mosquitto_pub 2.0 does.
    let r = run(
        "wren-pub",
        &[
            "-p",
            &port,
            "-t",
            "p5",
            "-m",
            "x",
            "-D",
            "publish",
            "content-type",
            "a",
        ],
        "",
        SECS5,
    );
    assert_eq!(r.code(), 0, "{r:?}");
}

#[test]
fn mqtt31_connects() {
    let b = Broker::start();
    let port = b.port_arg();
    let r = run(
        "wren-pub",
        &[
            "-p", &port, "-V", "mqttv31", "-t", "v31", "-m", "old", "-r", "-q", "2",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let r = run(
        "wren-sub",
        &["-p", &port, "-V", "31", "-t", "v31", "-C", "1"],
        "",
        SECS10,
    );
    assert_eq!(r.stdout, "old");
}

#[test]
fn repeat_publishes_n_times() {
    let b = Broker::start();
    let port = b.port_arg();
    let sub = subscribed(&port, &["-t", "rep", "-C", "3"]);
    let r = run(
        "wren-pub",
        &[
            "-p",
            &port,
            "-t",
            "rep",
            "-m",
            "again",
            "--repeat",
            "3",
            "--repeat-delay",
            "0.01",
            "-q",
            "1",
        ],
        "",
        SECS10,
    );
    assert_eq!(r.code(), 0, "{r:?}");
    let done = sub.finish(SECS10);
    assert_eq!(messages(&done.stdout), ["again", "again", "again"]);
    let _ = Duration::ZERO;
}
