//! wren-sub/wren-pub side by side with Debian's mosquitto_sub/mosquitto_pub (2.0) against the
//! same Mosquitto broker: stdout, stderr and exit code compared, or the difference asserted
//! where it is documented. `TZ=UTC` for the time codes. The -F, JSON and retained cases also
//! run against the in-process wren-broker.

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output};
use wren_broker::{Config, Server};

const MOSQUITTO_SUB: &str = "/usr/bin/mosquitto_sub";
const MOSQUITTO_PUB: &str = "/usr/bin/mosquitto_pub";

fn need_debian_tools() {
    for tool in [MOSQUITTO_SUB, MOSQUITTO_PUB] {
        assert!(
            Path::new(tool).exists(),
            "these tests compare against Debian's {tool}: apt-get install mosquitto mosquitto-clients"
        );
    }
}

/// What one tool printed and returned.
#[derive(Debug, PartialEq)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Run `program` with `args` under TZ=UTC. The tools end by themselves (-C, -W, -E or an
/// argument error), so no timeout is needed beyond -W.
fn exec(program: &str, args: &[&str]) -> Outcome {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(program)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    Outcome {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The same flags to the Mosquitto tool and to wren's; the tool names in messages (`Use
/// 'mosquitto_sub --help'`) are made equal before comparing.
fn both(tool: &str, args: &[&str]) -> (Outcome, Outcome) {
    let (theirs, ours) = match tool {
        "sub" => (MOSQUITTO_SUB, bin("wren-sub")),
        _ => (MOSQUITTO_PUB, bin("wren-pub")),
    };
    let mut m = exec(theirs, args);
    let w = exec(ours, args);
    m.stderr = m
        .stderr
        .replace("mosquitto_sub", "wren-sub")
        .replace("mosquitto_pub", "wren-pub");
    (m, w)
}

fn same(tool: &str, args: &[&str]) -> Outcome {
    let (m, w) = both(tool, args);
    assert_eq!(w, m, "{tool} {args:?}: wren (left) vs mosquitto (right)");
    w
}

fn publish(port: &str, args: &[&str]) {
    let mut all = vec!["-p", port];
    all.extend_from_slice(args);
    let r = exec(MOSQUITTO_PUB, &all);
    assert_eq!(r.code, 0, "{r:?}");
}

#[test]
fn format_widths_codes_and_escapes_match_mosquitto_sub() {
    need_debian_tools();
    let b = Broker::start();
    format_cases(&b.port_arg());
}

fn format_cases(port: &str) {
    let port = port.to_owned();
    publish(&port, &["-t", "w/1", "-m", "hi \"x\"", "-r", "-q", "1"]);
    for format in [
        "[%10t][%-10t][%.1t][%08l][%-8l][%5p][%-5p][%.2p][%6x][%3x][%-6X][%5q][%5r][%5m]",
        "[%-p][%-x][%10x][%-10p][%05p][%X][%x][%5%][%-05.3t][%0t][%-t][%.5%]",
        "%t|%p|%q|%r|%l|%m|%%|\\t|x\\ny|\\\\|\\e|\\a|\\v|\\r|@@",
        "[%A][%5A][%C][%5C][%D][%E][%5E][%F][%P][%R][%S][%5S]",
        "@Y-@m-@d|@y|@j|@e|@a|@A|@b|@B|@q|@%",
    ] {
        for extra in [&[][..], &["-N"][..], &["-V", "5"][..]] {
            let mut args = vec!["-p", &port, "-t", "w/1", "-C", "1", "-F", format];
            args.extend_from_slice(extra);
            same("sub", &args);
        }
    }
    // A second may pass between the two runs: compare the shape of the time codes.
    let args = [
        "-p",
        &port,
        "-t",
        "w/1",
        "-C",
        "1",
        "-F",
        "%I|%U|@H:@M:@S.@N|@s|@z",
    ];
    let (m, w) = both("sub", &args);
    assert_eq!((w.code, w.stderr.as_str()), (m.code, m.stderr.as_str()));
    let shape = |s: &str| s.replace(|c: char| c.is_ascii_digit(), "9");
    assert_eq!(shape(&w.stdout), shape(&m.stdout), "{w:?} {m:?}");
    assert!(w.stdout.contains("+0000|"), "{w:?}");
}

#[test]
fn format_errors_match_mosquitto_sub() {
    need_debian_tools();
    let b = Broker::start();
    let port = b.port_arg();
    for format in [
        "%z", "%5z", "@", "a@", "x\\q", "x\\", "%", "%-", "%5", "%.", "%0-5t", "100%",
    ] {
        let r = same("sub", &["-p", &port, "-t", "f/1", "-F", format]);
        assert_eq!(r.code, 1, "{format}");
    }
}

/// `tst` of a `%j` line, checked for Mosquitto's layout, then replaced so the rest compares.
fn without_tst(line: &str) -> String {
    let Some(start) = line.find("\"tst\":") else {
        return line.to_owned();
    };
    let start = start + "\"tst\":".len();
    let rest = &line[start..];
    let open = rest.find('"').unwrap() + 1;
    let tst = &rest[open..open + "2026-12-05T11:43:13.607970Z+0000".len()];
    let shape: String = tst
        .chars()
        .map(|c| if c.is_ascii_digit() { '9' } else { c })
        .collect();
    assert_eq!(shape, "9999-99-99T99:99:99.999999Z+9999", "{line}");
    line.replacen(tst, "TST", 1)
}

/// The value of `"message-expiry-interval"` replaced by `N`.
fn without_expiry(json: &str) -> String {
    let key = "\"message-expiry-interval\":";
    let Some(at) = json.find(key) else {
        return json.to_owned();
    };
    let (head, rest) = json.split_at(at + key.len());
    let rest = rest.trim_start_matches('\t');
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    assert!(digits > 0, "{json}");
    format!("{head}N{}", &rest[digits..])
}

#[test]
fn json_output_matches_mosquitto_sub() {
    need_debian_tools();
    let b = Broker::start();
    json_cases(&b.port_arg(), true);
}

/// `wire_order`: the broker sends 5.0 properties in the order wren prints them (Mosquitto's);
/// other brokers' order is kept by mosquitto_sub and not by wren, so only the values compare.
fn json_cases(port: &str, wire_order: bool) {
    let port = port.to_owned();
    publish(&port, &["-t", "j/s", "-m", "hi \"x\"\\", "-r"]);
    publish(&port, &["-t", "j/u", "-m", "café\u{1}\t", "-r"]);
    publish(
        &port,
        &[
            "-t",
            "j/o",
            "-m",
            r#"{"x":1e3,"y":1.5,"z":[],"w":{},"v":[{"a":1}],"u":null,"t":true,"s":-0.1,"big":12345678901,"e":"\u00e9"}"#,
            "-r",
            "-q",
            "1",
        ],
    );
    publish(&port, &["-t", "j/n", "-m", "42", "-r"]);
    publish(
        &port,
        &[
            "-t",
            "j/5",
            "-r",
            "-V",
            "5",
            "-m",
            "[1, 2]",
            "-D",
            "publish",
            "content-type",
            "application/json",
            "-D",
            "publish",
            "user-property",
            "k1",
            "v1",
            "-D",
            "publish",
            "user-property",
            "k2",
            "v2",
            "-D",
            "publish",
            "response-topic",
            "r/t",
            "-D",
            "publish",
            "correlation-data",
            "cd",
            "-D",
            "publish",
            "message-expiry-interval",
            "100",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
        ],
    );
    for topic in ["j/s", "j/u", "j/o", "j/n", "j/5"] {
        for format in ["%j", "%J"] {
            for extra in [
                &[][..],
                &["--pretty"][..],
                &["-V", "5", "-q", "1"][..],
                &["-V", "5", "--pretty"][..],
            ] {
                let mut args = vec!["-p", &port, "-t", topic, "-C", "1", "-F", format];
                args.extend_from_slice(extra);
                let (m, w) = both("sub", &args);
                assert_eq!((w.code, &w.stderr), (m.code, &m.stderr), "{args:?}");
                let (wj, mj) = (without_tst(&w.stdout), without_tst(&m.stdout));
                // j/5 carries a 100 s message expiry the broker counts down.
                let (wj, mj) = (without_expiry(&wj), without_expiry(&mj));
                if w.stdout.trim().is_empty() {
                    // %J on a payload that is not JSON.
                    assert_eq!(wj, mj, "{args:?}");
                    continue;
                }
                // Valid JSON, whatever the payload.
                let parse = |s: &str| -> serde_json::Value {
                    serde_json::from_str(
                        s.trim_end()
                            .replace(":\tN", ":0")
                            .replace(":N", ":0")
                            .as_str(),
                    )
                    .unwrap_or_else(|e| panic!("{args:?}: {e}: {s}"))
                };
                let v = parse(&wj);
                assert_eq!(v["topic"], topic);
                if wire_order || topic != "j/5" {
                    assert_eq!(wj, mj, "{args:?}");
                } else {
                    assert_eq!(v, parse(&mj), "{args:?}");
                }
            }
        }
    }
    // %J on a payload that is not JSON: Mosquitto's error, an empty line, exit 0.
    let r = same("sub", &["-p", &port, "-t", "j/s", "-C", "1", "-F", "%J"]);
    assert_eq!(
        r.stderr,
        "Error: Message payload is not valid JSON on topic j/s.\n"
    );
    assert_eq!(r.stdout, "\n");
}

#[test]
fn retained_only_and_remove_retained_match_mosquitto_sub() {
    need_debian_tools();
    let b = Broker::start();
    retained_cases(&b.port_arg());
}

fn retained_cases(port: &str) {
    let port = port.to_owned();
    publish(&port, &["-t", "r/1", "-m", "one", "-r"]);
    publish(&port, &["-t", "r/2", "-m", "two", "-r"]);
    // The retained messages, then a live one that ends it.
    for tool in [MOSQUITTO_SUB, bin("wren-sub")] {
        let port2 = port.clone();
        let live = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(700));
            publish(&port2, &["-t", "r/3", "-m", "live"]);
        });
        let r = exec(
            tool,
            &["-p", &port, "-t", "r/#", "--retained-only", "-v", "-W", "5"],
        );
        live.join().unwrap();
        assert_eq!(r.code, 0, "{tool}: {r:?}");
        // wren-broker sends its retained messages in no particular order.
        let mut lines: Vec<&str> = r.stdout.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["r/1 one", "r/2 two"], "{tool}: {r:?}");
    }
    same("sub", &["-p", &port, "-t", "r/#", "-R", "--retained-only"]);
    // --remove-retained clears what it prints, except what -T leaves alone.
    let r = exec(
        bin("wren-sub"),
        &[
            "-p",
            &port,
            "-t",
            "r/#",
            "--remove-retained",
            "-T",
            "r/2",
            "-v",
            "-C",
            "1",
        ],
    );
    assert_eq!((r.code, r.stdout.as_str()), (0, "r/1 one\n"), "{r:?}");
    let left = exec(MOSQUITTO_SUB, &["-p", &port, "-t", "r/#", "-v", "-W", "1"]);
    assert_eq!(left.stdout, "r/2 two\n", "{left:?}");
}

#[test]
fn random_filter_checks_match_and_chance_is_a_percentage() {
    need_debian_tools();
    let b = Broker::start();
    let port = b.port_arg();
    publish(&port, &["-t", "rf", "-m", "x", "-r"]);
    for bad in [
        &["--random-filter"][..],
        &["--random-filter", "x"],
        &["--random-filter", "-1"],
        &["--random-filter", "0.05"],
    ] {
        let mut args = vec!["-p", &port, "-t", "rf", "-C", "1"];
        args.extend_from_slice(bad);
        let r = same("sub", &args);
        assert_eq!(r.code, 1);
    }
    // 100 prints every message. (mosquitto_sub 2.0.11 multiplies the chance by 10 where it
    // means 100 and prints about a tenth of them: wren follows its manual, not that bug.)
    let sub = subscribed(
        &port,
        &["-t", "rf/live", "--random-filter", "100", "-C", "50"],
    );
    let lines: String = (0..50).map(|i| format!("{i}\n")).collect();
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "rf/live", "-l"],
        &lines,
        SECS10,
    );
    assert_eq!(r.code(), 0);
    let done = sub.finish(SECS10);
    assert_eq!(messages(&done.stdout).len(), 50, "{done:?}");
    // 0.1: -C still counts the messages left out, as mosquitto_sub does.
    let sub = subscribed(
        &port,
        &["-t", "rf/live", "--random-filter", "0.1", "-C", "50"],
    );
    let r = run(
        "wren-pub",
        &["-p", &port, "-t", "rf/live", "-l"],
        &lines,
        SECS10,
    );
    assert_eq!(r.code(), 0);
    let done = sub.finish(SECS10);
    assert!(messages(&done.stdout).len() < 5, "{done:?}");
}

#[test]
fn argument_checks_match_mosquitto() {
    need_debian_tools();
    let b = Broker::start();
    let port = b.port_arg();
    publish(&port, &["-t", "a/1", "-m", "v", "-r"]);
    let sub = |extra: &[&'static str]| {
        let mut args = vec!["-p", port.as_str(), "-t", "a/1", "-C", "1", "-W", "2"];
        args.extend_from_slice(extra);
        args
    };
    let publ = |extra: &[&'static str]| {
        let mut args = vec!["-p", port.as_str(), "-t", "a/2", "-m", "x"];
        args.extend_from_slice(extra);
        args
    };
    for (extra, code) in [
        (&["-k", "0"][..], 1),
        (&["-k", "4"], 1),
        (&["-k", "70000"], 1),
        (&["-k", "abc"], 1),
        (&["-k", "5"], 0),
        (&["-W", "0"], 1),
        (&["-C", "0"], 1),
        // A repeated -W or -F: the last one counts.
        (&["-W", "3", "-W", "2"], 0),
        (&["-F", "%t", "-F", "%p"], 0),
        // -x and -D without -V 5: accepted (and left out of the 3.1.1 packets).
        (&["-x", "30"], 0),
        (&["-D", "connect", "user-property", "k", "v"], 0),
        (&["-D", "subscribe", "subscription-identifier", "3"], 0),
        (&["-D", "unsubscribe", "user-property", "k", "v"], 0),
        (&["-D", "disconnect", "reason-string", "bye"], 0),
        (&["-D", "will", "content-type", "x"], 0),
        // -D with 5.0.
        (
            &[
                "-V",
                "5",
                "-D",
                "connect",
                "user-property",
                "k",
                "v",
                "-D",
                "connect",
                "session-expiry-interval",
                "0",
            ],
            0,
        ),
        // Several -D in a row, three and four values.
        (
            &[
                "-D",
                "disconnect",
                "reason-string",
                "bye",
                "-D",
                "connect",
                "user-property",
                "k",
                "v",
                "-D",
                "subscribe",
                "user-property",
                "a",
                "b",
            ],
            0,
        ),
        // Mosquitto's -D checks.
        (&["-D"], 1),
        (&["-D", "connect"], 1),
        (&["-D", "connect", "user-property", "a"], 1),
        (&["-D", "connect", "foo", "1"], 1),
        (&["-D", "foo", "content-type", "x"], 1),
        (&["-D", "connect", "content-type", "x"], 1),
        (&["-D", "subscribe", "content-type", "x"], 1),
        (&["-D", "disconnect", "topic-alias", "1"], 1),
        (&["-D", "connect", "receive-maximum", "70000"], 1),
        (&["-D", "connect", "request-problem-information", "256"], 1),
    ] {
        let r = same("sub", &sub(extra));
        assert_eq!(r.code, code, "sub {extra:?}: {r:?}");
    }
    for (extra, code) in [
        (&["-k", "0"][..], 1),
        (&["-D", "publish", "content-type", "x"], 0),
        (&["-V", "5", "-D", "publish", "topic-alias", "1"], 0),
        (&["-D", "publish", "topic-alias", "70000"], 1),
        (&["-D", "publish", "request-problem-information", "1"], 1),
        (&["-D", "will", "will-delay-interval", "5"], 0),
        (&["-D", "connect", "maximum-packet-size", "1000"], 0),
    ] {
        let r = same("pub", &publ(extra));
        assert_eq!(r.code, code, "pub {extra:?}: {r:?}");
    }
}

#[test]
fn debug_lines_match_mosquitto() {
    need_debian_tools();
    let b = Broker::start();
    let port = b.port_arg();
    for qos in ["0", "1", "2"] {
        for v in ["mqttv311", "mqttv5"] {
            let args = [
                "-p", &port, "-t", "d/1", "-m", "x", "-q", qos, "-d", "-i", "dbg", "-V", v,
            ];
            let r = same("pub", &args);
            assert_eq!(r.code, 0, "{r:?}");
        }
    }
    // libmosquitto numbers the QoS 0 PUBLISHes it sends (m1, m2 …).
    let r = same(
        "pub",
        &[
            "-p", &port, "-t", "d/1", "-m", "x", "--repeat", "3", "-d", "-i", "dbg",
        ],
    );
    assert!(r.stdout.contains("m3, 'd/1'"), "{r:?}");
    publish(&port, &["-t", "d/r", "-m", "kept", "-r"]);
    same(
        "sub",
        &[
            "-p", &port, "-t", "d/r", "-C", "1", "-d", "-i", "dbg", "-U", "x/y",
        ],
    );
    same(
        "sub",
        &[
            "-p", &port, "-t", "d/r", "-t", "d/s", "-q", "2", "-E", "-d", "-i", "dbg",
        ],
    );
}

#[test]
fn topic_alias_publish_like_mosquitto_pub() {
    need_debian_tools();
    let b = Broker::start();
    let port = b.port_arg();
    let sub = std::process::Command::new(MOSQUITTO_SUB)
        .args(["-p", &port, "-t", "ta/#", "-v", "-C", "2", "-W", "10"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Both tools publish (the -d lines compared); the broker maps the alias to the topic.
    let r = same(
        "pub",
        &[
            "-p",
            &port,
            "-V",
            "5",
            "-t",
            "ta/1",
            "-m",
            "x",
            "-q",
            "1",
            "-D",
            "publish",
            "topic-alias",
            "1",
            "-d",
            "-i",
            "alias",
        ],
    );
    assert_eq!(r.code, 0, "{r:?}");
    let out = sub.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ta/1 x\nta/1 x\n");
}

#[test]
fn format_json_and_retained_match_against_wren_broker() {
    need_debian_tools();
    let mut config = Config::for_tests();
    config.sys_interval = 0;
    let broker = Server::bind(config).unwrap().start().unwrap();
    let port = broker.local_addr().port().to_string();
    format_cases(&port);
    json_cases(&port, false);
    retained_cases(&port);
}

#[test]
fn v5_request_properties_sent_like_mosquitto_sub() {
    need_debian_tools();
    let b = Broker::start();
    let port = b.port_arg();
    publish(&port, &["-t", "rp/1", "-m", "x", "-r"]);
    let base = ["-p", &port, "-V", "5", "-t", "rp/#", "-C", "1", "-W", "3"];
    for extra in [
        // The broker returns the subscription identifier with the message (%S).
        &[
            "-F",
            "%S %t %p",
            "-D",
            "subscribe",
            "subscription-identifier",
            "7",
            "-D",
            "subscribe",
            "user-property",
            "a",
            "b",
        ][..],
        &[
            "-D",
            "unsubscribe",
            "user-property",
            "c",
            "d",
            "-U",
            "zz",
            "-D",
            "disconnect",
            "reason-string",
            "bye",
            "-D",
            "disconnect",
            "user-property",
            "e",
            "f",
        ],
        &[
            "-D",
            "connect",
            "receive-maximum",
            "10",
            "-D",
            "connect",
            "maximum-packet-size",
            "100000",
            "-D",
            "connect",
            "request-problem-information",
            "1",
            "-D",
            "connect",
            "request-response-information",
            "1",
        ],
    ] {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let r = same("sub", &args);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let r = same(
        "sub",
        &[
            &base[..],
            &[
                "-F",
                "%S %t %p",
                "-D",
                "subscribe",
                "subscription-identifier",
                "7",
            ],
        ]
        .concat(),
    );
    assert_eq!(r.stdout, "7 rp/1 x\n");
    // An authentication method Mosquitto does not know: refused with 140 by both (the
    // wording of the refusal differs: wren's names the code).
    let mut args = base.to_vec();
    args.extend_from_slice(&["-D", "connect", "authentication-method", "x"]);
    let (m, w) = both("sub", &args);
    assert_eq!((w.code, m.code), (140, 140), "{w:?} {m:?}");
}
