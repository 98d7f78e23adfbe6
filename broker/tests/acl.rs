//! `security::acl` against Mosquitto (#18): for a table of (ACL file, client id, username, topic,
//! access) cases, what Debian's Mosquitto 2.0.11 (started by the test with `acl_file` and a
//! `password_file`) does over raw MQTT sockets, and what `AclFile::check` decides, must agree,
//! and both must be the answer the table records. Fails, naming the packages, without Mosquitto.
//!
//! How a decision is observed:
//! - Subscribe: the client SUBSCRIBEs (3.1.1) to the filter; SUBACK 0x80 is a refusal. Mosquitto
//!   2.0 grants every SUBSCRIBE; the table gives Wren's answer, which refuses a filter nothing
//!   readable could arrive through (the one deliberate difference, checked both ways).
//! - Write: the client PUBLISHes at QoS 1 (5.0, whose PUBACK says 0x87 Not authorized when the
//!   ACL refuses); and `spy`, a 3.1.1 subscriber that may read everything it is asked to watch,
//!   must receive the message exactly when the PUBACK granted it.
//! - Read: the client subscribes (3.1.1) to the topic and to `#`; `pub`, which may write
//!   everything the cases read, publishes to the topic; the client either receives it or not.
//!   `$SYS/broker/version` is read from Mosquitto's own retained message instead.
//!
//! "Received or not" is decided without waiting out a timeout: a PINGREQ sent after the publisher's
//! PUBACK is answered after any delivery the PUBLISH caused (Mosquitto routes a message before it
//! acknowledges it, and writes to one client in order).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wren_broker::security::acl::{Access, AclFile};
use wren_broker::testing::raw::{frame, string as s};
use wren_broker::testing::{Mosquitto, Sent, decode_sent};
use wren_codec::ProtocolVersion;

const R: Access = Access::Read;
const W: Access = Access::Write;
const S: Access = Access::Subscribe;

/// Debian's password tool (package `mosquitto`).
const PASSWD: &str = "/usr/bin/mosquitto_passwd";

/// Every user of the cases; all have the password [`PASSWORD`].
const USERS: &[&str] = &["alice", "bob", "carol", "sys", "x+y", "spy", "pub"];
const PASSWORD: &str = "pw";

/// The blocks of the helper clients, appended to the ACL files that have them: `spy` may read,
/// `pub` may write, every topic the cases watch.
const HELPERS: &str = "
user spy
topic read #
topic read $SYS/#
topic read $app/#
topic read $SYSTEM/#
user pub
topic write #
topic write $app/#
topic write $SYS/broker/connection/+/state
";

/// One case: client id, username, topic (a filter for Subscribe), access, Mosquitto's answer.
type Case = (
    &'static str,
    Option<&'static str>,
    &'static str,
    Access,
    bool,
);

// ---------------------------------------------------------------------------------------------
// The cases
// ---------------------------------------------------------------------------------------------

#[test]
fn anonymous_and_user_rules() {
    let acl = "\
# Anonymous clients
topic read public/#
topic write inbox/+
topic readwrite both/#
topic deny both/secret
topic open
user alice
topic readwrite alice/#
topic read public/#
topic deny alice/private/#
user bob
topic read alice/shared
topic write sensors/+/temp
";
    let a = Some("alice");
    let b = Some("bob");
    run(
        acl,
        true,
        &[
            ("anon", None, "public/news", R, true),
            ("anon", None, "public/news", W, false),
            ("anon", None, "public", R, true),
            ("anon", None, "inbox/x", W, true),
            ("anon", None, "inbox/x", R, false),
            ("anon", None, "inbox/x/y", W, false),
            ("anon", None, "both/x", R, true),
            ("anon", None, "both/x", W, true),
            ("anon", None, "both", R, true),
            ("anon", None, "both/secret", R, false),
            ("anon", None, "both/secret", W, false),
            ("anon", None, "open", W, true),
            ("anon", None, "alice/x", R, false),
            ("c-alice", a, "alice/x", W, true),
            ("c-alice", a, "alice/x", R, true),
            ("c-alice", a, "alice/private/diary", R, false),
            ("c-alice", a, "alice/private/diary", W, false),
            ("c-alice", a, "public/news", R, true),
            ("c-alice", a, "public/news", W, false),
            ("c-alice", a, "both/x", R, false),
            ("c-bob", b, "alice/shared", R, true),
            ("c-bob", b, "alice/shared", W, false),
            ("c-bob", b, "sensors/kitchen/temp", W, true),
            ("c-bob", b, "sensors/kitchen/hum", W, false),
            ("c-carol", Some("carol"), "public/news", R, false),
            ("c-carol", Some("carol"), "open", W, false),
            // SUBSCRIBE: Mosquitto grants them all; Wren refuses what can deliver nothing.
            ("anon", None, "secret/#", S, false),
            ("anon", None, "#", S, true),
            ("anon", None, "both/secret", S, false),
            ("c-alice", a, "alice/private/#", S, false),
            ("c-alice", a, "alice/#", S, true),
            ("c-carol", Some("carol"), "anything", S, false),
        ],
    );
}

#[test]
fn deny_order_and_the_other_access() {
    let acl = "\
topic deny a/secret
topic readwrite a/#
topic read b/x
pattern write b/#
topic deny c/+
topic c/x
";
    run(
        acl,
        true,
        &[
            ("anon", None, "a/secret", R, false),
            ("anon", None, "a/secret", W, false),
            ("anon", None, "a/x", W, true),
            // The read rule matches a Write check but decides nothing; the pattern grants.
            ("anon", None, "b/x", W, true),
            ("anon", None, "b/x", R, true),
            ("anon", None, "b/y", R, false),
            // A deny before or after the grant wins.
            ("anon", None, "c/x", R, false),
            ("anon", None, "c/x", W, false),
        ],
    );
}

#[test]
fn patterns() {
    let acl = "\
topic read anon/#
pattern readwrite devices/%c/#
pattern read users/%u/#
pattern write log/%c-%u
pattern deny devices/%c/locked
pattern read everyone/#
user alice
topic read devices/#
topic deny users/alice/blocked
";
    let a = Some("alice");
    run(
        acl,
        true,
        &[
            ("d1", None, "devices/d1/temp", W, true),
            ("d1", None, "devices/d1", R, true),
            ("d1", None, "devices/d2/temp", W, false),
            ("d1", None, "devices/d1/locked", W, false),
            ("d1", None, "users/d1/x", R, false),
            // %u patterns are skipped without a username (not substituted by nothing).
            ("d1", None, "users//x", R, false),
            ("d1", None, "log/d1-", W, false),
            ("a1", a, "users/alice/x", R, true),
            ("a1", a, "users/bob/x", R, false),
            ("a1", a, "users/alice/blocked", R, false),
            ("a1", a, "log/a1-alice", W, true),
            ("a1", a, "log/a1-bob", W, false),
            // alice's own read rule beats the deny pattern; for a write only the patterns decide.
            ("a1", a, "devices/a1/locked", R, true),
            ("a1", a, "devices/a1/locked", W, false),
            ("a1", a, "devices/zz/x", R, true),
            ("a1", a, "devices/zz/x", W, false),
            // A client id with `/` spans levels.
            ("b/1", Some("bob"), "devices/b/1/x", W, true),
            ("b/1", Some("bob"), "devices/b/x", W, false),
            // `+` or `#` in a client id or username: nothing from the patterns, not even from
            // those without %c or %u; the client's own rules still apply.
            ("d1", None, "everyone/x", R, true),
            ("d+1", None, "everyone/x", R, false),
            ("d#", None, "everyone/x", R, false),
            ("d+1", None, "anon/x", R, true),
            ("c9", Some("x+y"), "everyone/x", R, false),
            ("c9", Some("carol"), "everyone/x", R, true),
        ],
    );
}

#[test]
fn dollar_topics() {
    let acl = "\
topic readwrite #
user sys
topic readwrite $SYS/#
topic readwrite $app/#
topic readwrite $SYSTEM/#
topic readwrite $shared/#
";
    let sys = Some("sys");
    run(
        acl,
        true,
        &[
            // `#` matches no `$` topic.
            ("anon", None, "app/x", R, true),
            ("anon", None, "$app/x", R, false),
            ("anon", None, "$app/x", W, false),
            ("anon", None, "$SYS/broker/version", R, false),
            ("c-sys", sys, "$SYS/broker/version", R, true),
            ("c-sys", sys, "$app/x", R, true),
            ("c-sys", sys, "$app/x", W, true),
            // `$SYS` is never written, but for bridge state topics.
            ("c-sys", sys, "$SYS/test", W, false),
            ("c-sys", sys, "$SYS/broker/connection/b1/state", W, true),
            ("c-sys", sys, "$SYS/broker/connection/b1/state", R, true),
            ("anon", None, "$SYS/broker/connection/b1/state", W, false),
            // The prefixes are compared as text.
            ("c-sys", sys, "$SYSTEM/x", W, false),
            ("c-sys", sys, "$shared/x", W, false),
            // Subscribing to `$SYS` needs a rule that reads there.
            ("anon", None, "$SYS/#", S, false),
            ("c-sys", sys, "$SYS/#", S, true),
        ],
    );
}

#[test]
fn subscriptions_with_wildcards() {
    run(
        "topic read sensors/+/temp\n",
        true,
        &[
            ("anon", None, "sensors/#", S, true),
            ("anon", None, "sensors/a/temp", S, true),
            ("anon", None, "sensors/+/hum", S, false),
            ("anon", None, "other/#", S, false),
            // What the subscriptions then deliver.
            ("anon", None, "sensors/a/temp", R, true),
            ("anon", None, "sensors/a/hum", R, false),
            ("anon", None, "sensors/a/temp", W, false),
        ],
    );
}

#[test]
fn no_rules_refuse_everything() {
    // No helper blocks: the files have no rule at all. Reads cannot be observed (nobody may
    // publish); writes are seen in the PUBACK.
    for acl in ["", "# only comments\n\n# here\n"] {
        run(
            acl,
            false,
            &[
                ("anon", None, "a", W, false),
                ("c-alice", Some("alice"), "a/b", W, false),
                ("anon", None, "#", S, false),
            ],
        );
    }
}

#[test]
fn layout() {
    let acl = "# comment\r\n\
               \r\n   \r\n\
               \x20  topic   read   with space/+  \r\n\
               topic read\r\n\
               #topic readwrite commented/out\r\n\
               user   alice  \r\n\
               topic alice\r\n";
    run(
        acl,
        true,
        &[
            ("anon", None, "with space/x", R, true),
            ("anon", None, "with space/x", W, false),
            // `topic read` is a readwrite rule on the topic `read`.
            ("anon", None, "read", W, true),
            ("anon", None, "commented/out", R, false),
            ("c-alice", Some("alice"), "alice", W, true),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------------

/// Start Mosquitto with `acl` (plus [`HELPERS`] if `helpers`), observe every case, and check that
/// Mosquitto, `AclFile::check` and the table agree; all disagreements are reported at once.
fn run(acl: &str, helpers: bool, cases: &[Case]) {
    let text = if helpers {
        format!("{acl}{HELPERS}")
    } else {
        acl.to_owned()
    };
    let files = Files::new(&text);
    let mosquitto = Mosquitto::start(&format!(
        "acl_file {}\npassword_file {}\n",
        files.acl.display(),
        files.passwords.display()
    ));
    let parsed = match AclFile::parse(&text) {
        Ok(parsed) => parsed,
        Err(e) => panic!("AclFile refuses a file Mosquitto loads: {e}\n{text}"),
    };
    let mut wrong = Vec::new();
    for &(id, username, topic, access, expected) in cases {
        let observed = observe(mosquitto.addr(), helpers, id, username, topic, access);
        let decided = parsed.check(id, username, topic, access);
        // SUBSCRIBE is the one deliberate difference: Mosquitto 2.0 grants every one; the
        // table gives Wren's answer (refused where nothing readable could arrive, or a `deny`
        // covers the filter), and Mosquitto must still grant.
        let mosquitto_expected = expected || access == Access::Subscribe;
        if (observed, decided) != (mosquitto_expected, expected) {
            wrong.push(format!(
                "{access:?} {topic:?} by {id:?} (username {username:?}): Mosquitto {}, \
                 AclFile::check {}, the table says {}",
                verdict(observed),
                verdict(decided),
                verdict(expected)
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "ACL file:\n{text}\n{} of {} cases disagree:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

fn verdict(granted: bool) -> &'static str {
    if granted { "grants" } else { "refuses" }
}

/// What Mosquitto does: `true` if it grants `access`.
fn observe(
    addr: SocketAddr,
    helpers: bool,
    id: &str,
    username: Option<&str>,
    topic: &str,
    access: Access,
) -> bool {
    match access {
        Access::Subscribe => {
            let mut client = Raw::connect(addr, ProtocolVersion::V311, id, username);
            client.send(&subscribe(&[(topic, 1)]));
            let codes = client.suback();
            client.disconnect();
            match codes.as_slice() {
                [0x80] => false,
                [0..=2] => true,
                other => panic!("SUBACK {other:?} for {topic}"),
            }
        }
        Access::Write => {
            // `spy` watches when it may read the topic: a `$share...` topic is never readable.
            let spy = (helpers && !topic.starts_with("$share")).then(|| {
                let mut spy = Raw::connect(addr, ProtocolVersion::V311, "spy", Some("spy"));
                spy.send(&subscribe(&[(topic, 0)]));
                assert_eq!(spy.suback(), [0], "spy's subscription to {topic}");
                spy
            });
            let mut writer = Raw::connect(addr, ProtocolVersion::V5, id, username);
            writer.send(&publish_v5(topic, 1));
            let code = writer.puback(1);
            writer.disconnect();
            let granted = match code {
                0x87 => false,
                // Success, or No matching subscribers.
                0x00 | 0x10 => true,
                other => panic!("PUBACK {other:#04x} for {topic}"),
            };
            if let Some(mut spy) = spy {
                let received = spy.received(topic, false);
                spy.disconnect();
                assert_eq!(
                    received, granted,
                    "{topic}: spy's delivery disagrees with the PUBACK ({code:#04x})"
                );
            }
            granted
        }
        Access::Read => {
            assert!(helpers, "a Read case needs `pub` to publish");
            let mut reader = Raw::connect(addr, ProtocolVersion::V311, id, username);
            reader.send(&subscribe(&[(topic, 0), ("#", 0)]));
            assert_eq!(reader.suback().len(), 2);
            // Mosquitto's own retained message, or one from `pub`.
            let retained = topic == "$SYS/broker/version";
            if !retained {
                let mut publisher = Raw::connect(addr, ProtocolVersion::V5, "pub", Some("pub"));
                publisher.send(&publish_v5(topic, 1));
                let code = publisher.puback(1);
                publisher.disconnect();
                assert_ne!(
                    code, 0x87,
                    "pub may not write {topic}: the case shows nothing"
                );
            }
            let received = reader.received(topic, retained);
            reader.disconnect();
            received
        }
    }
}

/// The ACL and password files of one Mosquitto, in a folder removed on drop.
struct Files {
    dir: PathBuf,
    acl: PathBuf,
    passwords: PathBuf,
}

impl Files {
    fn new(acl: &str) -> Files {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        assert!(
            Path::new(PASSWD).exists(),
            "{PASSWD} is not installed: apt-get install mosquitto mosquitto-clients"
        );
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("wren-acl-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = Files {
            acl: dir.join("acl.conf"),
            passwords: dir.join("passwords"),
            dir,
        };
        std::fs::write(&files.acl, acl).unwrap();
        for (i, user) in USERS.iter().enumerate() {
            let mut command = Command::new(PASSWD);
            if i == 0 {
                command.arg("-c");
            }
            let status = command
                .arg("-b")
                .arg(&files.passwords)
                .arg(user)
                .arg(PASSWORD)
                .output()
                .unwrap();
            assert!(status.status.success(), "{PASSWD} {user}: {status:?}");
        }
        files
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Raw MQTT
// ---------------------------------------------------------------------------------------------

/// How long to wait for an answer Mosquitto owes.
const WAIT: Duration = Duration::from_secs(5);

/// SUBSCRIBE, packet id 1, to `(filter, qos)` pairs (3.1.1).
fn subscribe(filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = vec![0, 1];
    for (filter, qos) in filters {
        body.extend(s(filter));
        body.push(*qos);
    }
    frame(0x82, &body)
}

/// A 5.0 PUBLISH at QoS 1 with packet id `pid`, no properties.
fn publish_v5(topic: &str, pid: u16) -> Vec<u8> {
    let mut body = s(topic);
    body.extend_from_slice(&pid.to_be_bytes());
    body.push(0);
    body.extend_from_slice(b"payload");
    frame(0x32, &body)
}

/// A client on a socket, reading Mosquitto's packets with the broker tests' decoder.
struct Raw {
    name: String,
    stream: TcpStream,
    version: ProtocolVersion,
    pending: Vec<u8>,
    packets: VecDeque<Sent>,
}

impl Raw {
    /// CONNECT (clean session, keep-alive 60 s; with `username`, password [`PASSWORD`]) and
    /// check that Mosquitto accepts it.
    fn connect(
        addr: SocketAddr,
        version: ProtocolVersion,
        id: &str,
        username: Option<&str>,
    ) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_nodelay(true).unwrap();
        let mut client = Raw {
            name: format!("{id:?}"),
            stream,
            version,
            pending: Vec::new(),
            packets: VecDeque::new(),
        };
        let v5 = version == ProtocolVersion::V5;
        let mut body = s("MQTT");
        body.push(if v5 { 5 } else { 4 });
        body.push(if username.is_some() { 0xC2 } else { 0x02 });
        body.extend_from_slice(&[0, 60]);
        if v5 {
            body.push(0);
        }
        body.extend(s(id));
        if let Some(username) = username {
            body.extend(s(username));
            body.extend(s(PASSWORD));
        }
        client.send(&frame(0x10, &body));
        match client.next().without_properties() {
            Sent::ConnAck { code: 0, .. } => client,
            other => panic!("{}: CONNECT answered {other:?}", client.name),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next packet from Mosquitto; fails the test after [`WAIT`].
    fn next(&mut self) -> Sent {
        let deadline = Instant::now() + WAIT;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(packet) = self.packets.pop_front() {
                return packet;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{}: nothing from Mosquitto in {WAIT:?}",
                self.name
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            let n = match self.stream.read(&mut chunk) {
                Ok(0) => panic!("{}: Mosquitto closed the connection", self.name),
                Ok(n) => n,
                Err(e) => panic!("{}: {e}", self.name),
            };
            self.pending.extend_from_slice(&chunk[..n]);
            let decoded = match decode_sent(&self.pending, self.version) {
                Ok(decoded) => decoded,
                Err(e) => panic!("{}: {e}", self.name),
            };
            let used: usize = decoded.iter().map(|(_, len)| len).sum();
            self.pending.drain(..used);
            self.packets
                .extend(decoded.into_iter().map(|(packet, _)| packet));
        }
    }

    /// The return codes of the SUBACK to the SUBSCRIBE just sent.
    fn suback(&mut self) -> Vec<u8> {
        match self.next() {
            Sent::SubAck(1, codes) => codes,
            other => panic!("{}: {other:?} instead of the SUBACK", self.name),
        }
    }

    /// The reason code of the PUBACK for `pid` (0 in 3.1.1).
    fn puback(&mut self, pid: u16) -> u8 {
        match self.next() {
            Sent::PubAck(p, code) if p == pid => code,
            other => panic!("{}: {other:?} instead of the PUBACK", self.name),
        }
    }

    /// Whether a PUBLISH to `topic` (a retained one if `retained`, else a live one) arrived
    /// before the answer to a PINGREQ sent now.
    fn received(&mut self, topic: &str, retained: bool) -> bool {
        self.send(&[0xC0, 0]);
        let mut found = false;
        loop {
            match self.next() {
                Sent::PingResp => return found,
                Sent::Publish(p) => found |= p.topic == topic && p.retain == retained,
                other => panic!("{}: unexpected {other:?}", self.name),
            }
        }
    }

    fn disconnect(mut self) {
        let _ = self.stream.write_all(&[0xE0, 0]);
    }
}
