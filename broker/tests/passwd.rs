//! Password files (#18) against Debian's Mosquitto 2.0.11: files made by `mosquitto_passwd` are
//! read by `PasswordFile::load`, files made by `wren-passwd` are accepted by `/usr/sbin/mosquitto`
//! (checked with `mosquitto_pub`), and `wren-passwd` answers as `mosquitto_passwd` does. Fails,
//! naming the packages, without `mosquitto` and `mosquitto-clients`: nothing is skipped.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use wren_broker::security::password_file::{Algorithm, Check, PasswordFile};
use wren_broker::testing::Mosquitto;

const MOSQUITTO_PASSWD: &str = "/usr/bin/mosquitto_passwd";
const MOSQUITTO_PUB: &str = "/usr/bin/mosquitto_pub";
const WREN_PASSWD: &str = env!("CARGO_BIN_EXE_wren-passwd");

/// A folder of its own for each test, removed at the end (kept when the test fails).
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("wren-passwd-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    /// Write a file only its owner can read (else wren-passwd warns).
    fn write(&self, name: &str, text: &str) {
        std::fs::write(self.path(name), text).unwrap();
        std::fs::set_permissions(self.path(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn mode(&self, name: &str) -> u32 {
        std::fs::metadata(self.path(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    fn load(&self, name: &str) -> PasswordFile {
        match PasswordFile::load(&self.path(name)) {
            Ok(file) => file,
            Err(e) => panic!("{e}\n{}", self.read(name)),
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What a tool did: exit code, standard output, standard error.
#[derive(Debug)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

fn require(tool: &str) {
    assert!(
        Path::new(tool).exists(),
        "{tool} is not installed: apt-get install mosquitto mosquitto-clients (.ci/run installs \
         them)"
    );
}

/// Run `program args…` in `dir` with `stdin` as its standard input (never a terminal).
fn run(program: &str, dir: &Dir, args: &[&str], stdin: &str) -> Ran {
    require(program);
    let mut child = Command::new(program)
        .args(args)
        .current_dir(&dir.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut input = child.stdin.take().unwrap();
    // A tool that exits before reading it all closes the pipe: not an error here.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let out = child.wait_with_output().unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn wren_passwd(dir: &Dir, args: &[&str], stdin: &str) -> Ran {
    run(WREN_PASSWD, dir, args, stdin)
}

/// Run it and expect exit 0 and nothing on standard error.
fn ok(program: &str, dir: &Dir, args: &[&str], stdin: &str) -> Ran {
    let ran = run(program, dir, args, stdin);
    assert_eq!(
        (ran.code, ran.stderr.as_str()),
        (0, ""),
        "{program} {args:?}: {ran:?}"
    );
    ran
}

/// `mosquitto_pub -u user -P password` to `mosquitto`: its exit code and standard error.
fn publish(mosquitto: &Mosquitto, dir: &Dir, credentials: Option<(&str, &str)>) -> Ran {
    let port = mosquitto.addr().port().to_string();
    let mut args = vec![
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "t",
        "-m",
        "x",
        "-i",
        "passwd-test",
    ];
    if let Some((user, password)) = credentials {
        args.extend(["-u", user, "-P", password]);
    }
    run(MOSQUITTO_PUB, dir, &args, "")
}

#[test]
fn files_made_by_mosquitto_passwd_load_and_check() {
    let dir = Dir::new("mosquitto-made");
    ok(
        MOSQUITTO_PASSWD,
        &dir,
        &["-c", "-b", "pw", "alice", "correct horse"],
        "",
    );
    ok(
        MOSQUITTO_PASSWD,
        &dir,
        &["-b", "-I", "1000", "pw", "bob", "battery staple"],
        "",
    );
    ok(
        MOSQUITTO_PASSWD,
        &dir,
        &["-H", "sha512", "-b", "pw", "carol", "correct horse"],
        "",
    );
    // A password typed twice on standard input, with spaces inside.
    ok(
        MOSQUITTO_PASSWD,
        &dir,
        &["pw", "dave"],
        "two  words \ntwo  words \n",
    );
    ok(MOSQUITTO_PASSWD, &dir, &["-b", "pw", "erin", ""], "");

    let file = dir.load("pw");
    assert_eq!(
        file.users().collect::<Vec<_>>(),
        ["alice", "bob", "carol", "dave", "erin"]
    );
    assert_eq!(
        file.entry("bob").map(|e| e.algorithm()),
        Some(Algorithm::Sha512Pbkdf2 { iterations: 1000 })
    );
    assert_eq!(
        file.entry("carol").map(|e| e.algorithm()),
        Some(Algorithm::Sha512)
    );
    for (user, right, wrong) in [
        ("alice", "correct horse", "correct horse "),
        ("bob", "battery staple", "battery stapl"),
        ("carol", "correct horse", "correct_horse"),
        ("dave", "two  words ", "two  words"),
        ("erin", "", " "),
    ] {
        assert_eq!(
            file.check(user, right.as_bytes()),
            Check::Accepted,
            "{user}"
        );
        assert_eq!(
            file.check(user, wrong.as_bytes()),
            Check::WrongPassword,
            "{user}"
        );
    }
    assert_eq!(file.check("frank", b"correct horse"), Check::UnknownUser);

    // The same file with CRLF line ends and a comment.
    let crlf = format!(
        "# made by mosquitto_passwd\r\n{}",
        dir.read("pw").replace('\n', "\r\n")
    );
    dir.write("crlf", &crlf);
    let again = dir.load("crlf");
    for user in file.users() {
        assert_eq!(file.entry(user), again.entry(user), "{user}");
    }

    // A plain-text file hashed by mosquitto_passwd -U.
    dir.write("plain", "frank:s3cret\ngina: spaced out \n");
    ok(MOSQUITTO_PASSWD, &dir, &["-U", "plain"], "");
    let upgraded = dir.load("plain");
    assert_eq!(upgraded.check("frank", b"s3cret"), Check::Accepted);
    // mosquitto_passwd trims blanks around the plain-text password.
    assert_eq!(upgraded.check("gina", b"spaced out"), Check::Accepted);
    // The plain-text file itself is refused, naming the line and no password.
    let e = PasswordFile::parse("frank:s3cret\n").unwrap_err();
    assert_eq!(e.line(), Some(1));
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[test]
fn files_made_by_wren_passwd_are_accepted_by_mosquitto() {
    let dir = Dir::new("wren-made");
    // Plain text first, hashed by -U; then users added and changed with -b and on stdin.
    dir.write("pw", "# Wren users\nerin:erin's pw\nfrank:  frank pw  \n");
    ok(WREN_PASSWD, &dir, &["-U", "pw"], "");
    ok(WREN_PASSWD, &dir, &["-b", "pw", "alice", "right"], "");
    ok(
        WREN_PASSWD,
        &dir,
        &["-H", "sha512", "-b", "pw", "bob", "bob's pw"],
        "",
    );
    ok(
        WREN_PASSWD,
        &dir,
        &["-I", "1000", "-b", "pw", "carol", "carol pw"],
        "",
    );
    ok(WREN_PASSWD, &dir, &["pw", "dave"], "dave pw\ndave pw\n");
    ok(WREN_PASSWD, &dir, &["-b", "pw", "élodie", "pâté"], "");
    // Mosquitto started as root reads its files as the user `mosquitto`.
    std::fs::set_permissions(dir.path("pw"), std::fs::Permissions::from_mode(0o644)).unwrap();

    let users = [
        ("alice", "right"),
        ("bob", "bob's pw"),
        ("carol", "carol pw"),
        ("dave", "dave pw"),
        ("erin", "erin's pw"),
        ("frank", "frank pw"),
        ("élodie", "pâté"),
    ];
    let file = dir.load("pw");
    assert_eq!(file.len(), users.len(), "{}", dir.read("pw"));
    assert!(
        dir.read("pw").starts_with("# Wren users\nerin:$7$101$"),
        "{}",
        dir.read("pw")
    );
    for (user, password) in users {
        assert_eq!(
            file.check(user, password.as_bytes()),
            Check::Accepted,
            "{user}"
        );
    }

    let config = format!(
        "allow_anonymous false\npassword_file {}",
        dir.path("pw").display()
    );
    let mosquitto = Mosquitto::start(&config);
    for (user, password) in users {
        let ran = publish(&mosquitto, &dir, Some((user, password)));
        assert_eq!(
            ran.code,
            0,
            "Mosquitto refused {user}: {ran:?}\n{}",
            dir.read("pw")
        );
    }
    // Wrong password, unknown user, no user: CONNACK 5 (not authorised), mosquitto_pub exits 5.
    for credentials in [
        Some(("alice", "wrong")),
        Some(("bob", "carol pw")),
        Some(("zoe", "right")),
        None,
    ] {
        let ran = publish(&mosquitto, &dir, credentials);
        assert_eq!(ran.code, 5, "{credentials:?}: {ran:?}");
        assert!(
            ran.stderr.contains("Connection Refused: not authorised."),
            "{credentials:?}: {ran:?}"
        );
    }
}

#[test]
fn passwords_on_stdin_update_delete_and_upgrade() {
    let dir = Dir::new("edit");

    // -c with the password twice on stdin: prompts as mosquitto_passwd's, a 0600 file.
    let ran = ok(
        WREN_PASSWD,
        &dir,
        &["-c", "pw", "alice"],
        "first pw\nfirst pw\n",
    );
    assert_eq!(ran.stdout, "Password: \nReenter password: \n");
    assert_eq!(dir.mode("pw"), 0o600);
    assert_eq!(dir.load("pw").check("alice", b"first pw"), Check::Accepted);

    // CRLF input: the \r is not part of the password.
    ok(WREN_PASSWD, &dir, &["pw", "bob"], "bob pw\r\nbob pw\r\n");
    assert_eq!(dir.load("pw").check("bob", b"bob pw"), Check::Accepted);

    // Mismatched, empty or missing passwords change nothing.
    let before = dir.read("pw");
    for (input, code, message) in [
        ("one\ntwo\n", 2, "Error: Passwords do not match.\n"),
        ("\n\n", 1, "Error: Empty password.\n"),
        ("one\n", 1, "Error: Empty password.\n"),
        ("", 1, "Error: Empty password.\n"),
    ] {
        for args in [&["pw", "carol"][..], &["-c", "pw", "carol"]] {
            let ran = wren_passwd(&dir, args, input);
            assert_eq!(
                (ran.code, ran.stderr.as_str()),
                (code, message),
                "{args:?} {input:?}"
            );
            assert_eq!(dir.read("pw"), before, "{args:?} {input:?}");
        }
    }

    // A comment, a blank line and a CRLF line are kept as they are; changing alice's password
    // rewrites her line in place.
    dir.write(
        "pw",
        &format!("# users\n\n{}\r\n", before.trim_end().replace('\n', "\r\n")),
    );
    let lines_before: Vec<String> = dir.read("pw").lines().map(str::to_owned).collect();
    ok(WREN_PASSWD, &dir, &["-b", "pw", "alice", "second pw"], "");
    let lines: Vec<String> = dir.read("pw").lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), lines_before.len());
    assert_eq!(lines[..2], lines_before[..2]);
    assert_ne!(lines[2], lines_before[2]);
    assert!(lines[2].starts_with("alice:$7$101$"));
    assert_eq!(lines[3], lines_before[3], "bob's line is kept");
    assert!(
        dir.read("pw").ends_with(&format!("{}\r\n", lines[3])),
        "with its \\r"
    );
    let file = dir.load("pw");
    assert_eq!(file.check("alice", b"second pw"), Check::Accepted);
    assert_eq!(file.check("alice", b"first pw"), Check::WrongPassword);
    assert_eq!(file.check("bob", b"bob pw"), Check::Accepted);

    // -D: bob goes, the rest stays; an unknown user is a warning, exit 1, nothing changed.
    ok(WREN_PASSWD, &dir, &["-D", "pw", "bob"], "");
    assert_eq!(dir.load("pw").users().collect::<Vec<_>>(), ["alice"]);
    assert!(dir.read("pw").starts_with("# users\n\nalice:"));
    let before = dir.read("pw");
    let ran = wren_passwd(&dir, &["-D", "pw", "bob"], "");
    assert_eq!(
        (ran.code, ran.stderr.as_str()),
        (1, "Warning: User bob not found in password file.\n")
    );
    assert_eq!(dir.read("pw"), before);

    // -U: plain lines hashed (blanks around the password trimmed, as Mosquitto did), hashed
    // lines and comments left as they are; a second -U changes nothing.
    let alice = before.lines().nth(2).unwrap().to_owned();
    dir.write(
        "plain",
        &format!("# plain\ncarol: carol pw \n{alice}\ndave:x\n"),
    );
    ok(WREN_PASSWD, &dir, &["-I", "7", "-U", "plain"], "");
    let upgraded = dir.read("plain");
    let lines: Vec<&str> = upgraded.lines().collect();
    assert_eq!(lines[0], "# plain");
    assert!(lines[1].starts_with("carol:$7$7$"), "{upgraded}");
    assert_eq!(lines[2], alice);
    let file = dir.load("plain");
    assert_eq!(file.check("carol", b"carol pw"), Check::Accepted);
    assert_eq!(file.check("alice", b"second pw"), Check::Accepted);
    assert_eq!(file.check("dave", b"x"), Check::Accepted);
    ok(WREN_PASSWD, &dir, &["-U", "plain"], "");
    assert_eq!(dir.read("plain"), upgraded);

    // Refused by -U, nothing written: a second ':' (where does the password end?).
    dir.write("bad", "erin:a:b\n");
    let ran = wren_passwd(&dir, &["-U", "bad"], "");
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr
            .starts_with("Error: Line 1 has more than one ':'"),
        "{ran:?}"
    );
    assert_eq!(dir.read("bad"), "erin:a:b\n");
    // Refused by every mode, as mosquitto_passwd refuses them: corrupt lines.
    for text in ["erin:x\nno colon\n", "erin:x\n:x\n", "erin:x\nfrank:\n"] {
        dir.write("bad", text);
        for args in [
            &["-U", "bad"][..],
            &["-b", "bad", "zoe", "pw"],
            &["-D", "bad", "erin"],
        ] {
            let ran = wren_passwd(&dir, args, "");
            assert_eq!(
                (ran.code, ran.stderr.as_str()),
                (1, "Error: Corrupt password file at line 2.\n"),
                "{args:?} {text:?}"
            );
            assert_eq!(dir.read("bad"), text);
        }
    }

    // An existing file keeps its mode (a warning if others can read it); a link is followed.
    std::fs::set_permissions(dir.path("pw"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let ran = wren_passwd(&dir, &["-b", "pw", "bob", "bob pw"], "");
    assert_eq!(ran.code, 0, "{ran:?}");
    assert_eq!(
        ran.stderr,
        "Warning: File pw has world readable permissions.\nTo fix this, use `chmod 0600 pw`.\n"
    );
    assert_eq!(dir.mode("pw"), 0o644);
    std::os::unix::fs::symlink(dir.path("pw"), dir.path("link")).unwrap();
    std::fs::set_permissions(dir.path("pw"), std::fs::Permissions::from_mode(0o640)).unwrap();
    ok(WREN_PASSWD, &dir, &["-b", "link", "carol", "carol pw"], "");
    assert!(
        std::fs::symlink_metadata(dir.path("link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(dir.mode("pw"), 0o640);
    assert_eq!(
        dir.load("pw").users().collect::<Vec<_>>(),
        ["alice", "bob", "carol"]
    );
    // No temporary file left behind.
    let names: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// The same mistakes given to both tools: the same message on standard error, the same exit code.
#[test]
fn errors_are_mosquitto_passwds() {
    let dir = Dir::new("errors");
    ok(WREN_PASSWD, &dir, &["-c", "-b", "pw", "alice", "pw"], "");
    let cases: &[(&[&str], &str)] = &[
        (&[], ""),
        (&["-H"], ""),
        (&["-H", "md5", "pw", "bob"], ""),
        (&["-I"], ""),
        (&["-I", "0", "-b", "pw", "bob", "x"], ""),
        (&["-I", "none", "-b", "pw", "bob", "x"], ""),
        (&["-c", "-D", "pw", "bob"], ""),
        (&["-c", "-U", "pw"], ""),
        (&["-D", "-U", "pw"], ""),
        (&["-b", "-D", "pw", "bob"], ""),
        (&["-c", "pw"], ""),
        (&["-c", "-b", "pw", "bob"], ""),
        (&["-D", "pw"], ""),
        (&["-U"], ""),
        (&["-U", "pw", "bob"], ""),
        (&["pw"], ""),
        (&["-b", "pw", "bob"], ""),
        (&["-b", "pw", "a:b", "x"], ""),
        (&["-b", "pw", "a\nb", "x"], ""),
        (&["-b", "missing", "bob", "x"], ""),
        (&["-D", "missing", "bob"], ""),
        (&["-D", "pw", "bob"], ""),
        (&["pw", "bob"], "one\ntwo\n"),
        (&["pw", "bob"], "\n"),
        (&["-c", "new", "bob"], "one\ntwo\n"),
    ];
    for (args, stdin) in cases {
        let theirs = run(MOSQUITTO_PASSWD, &dir, args, stdin);
        let ours = wren_passwd(&dir, args, stdin);
        assert_eq!(
            (ours.code, &ours.stderr),
            (theirs.code, &theirs.stderr),
            "wren-passwd (left) and mosquitto_passwd (right) for {args:?} {stdin:?}"
        );
        assert_ne!(theirs.code, 0, "{args:?}: {theirs:?}");
    }
    assert!(!dir.path("new").exists());
    // Both print their usage on standard output.
    assert!(
        wren_passwd(&dir, &[], "")
            .stdout
            .contains("Usage: wren-passwd [-H sha512")
    );
}
