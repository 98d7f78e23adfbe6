//! `wren-passwd`: create and update password files, as Mosquitto's `mosquitto_passwd` 2.0 does
//! (same options, messages and exit codes; the files work with wren-broker and Mosquitto alike).
//!
//! ```text
//! wren-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] passwordfile username
//! wren-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b passwordfile username password
//! wren-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] -U passwordfile
//! ```
//!
//! Where it differs from `mosquitto_passwd` 2.0.11, on purpose:
//!
//! * the file is replaced at once (a temporary file in the same directory, renamed over it), so
//!   it is never half written; a new file is created 0600, an existing one keeps its mode, owner
//!   and group, and one that others can read gets the warning later Mosquitto versions print;
//! * without `-b`, the password is read from the terminal without echo, or, when standard input
//!   is not a terminal, as two lines from it (`mosquitto_passwd` reads standard input either way);
//!   Ctrl-C at the prompt exits 130 (`mosquitto_passwd`: 0), the terminal restored, nothing
//!   written;
//! * comment and blank lines are kept (`mosquitto_passwd` calls them corrupt);
//! * `-U` leaves lines that are already hashed as they are (`mosquitto_passwd` hashes the hash,
//!   locking the user out), honours `-I`, and refuses a line with a second `:` (it would hash only
//!   the text before it);
//! * a user on several lines is written once, at its first line.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use std::ffi::OsString;
use std::fs;
use std::io::{self, BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wren_broker::security::password_file::{
    Algorithm, DEFAULT_ITERATIONS, MAX_ITERATIONS, MAX_NAME_LEN, PasswordFile, check_username,
    hash_line_with,
};

const USAGE: &str = "\
wren-passwd is a tool for managing password files for wren-broker and mosquitto.

Usage: wren-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c | -D] passwordfile username
       wren-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] [-c] -b passwordfile username password
       wren-passwd [-H sha512 | -H sha512-pbkdf2] [-I iterations] -U passwordfile
 -b : run in batch mode to allow passing passwords on the command line.
 -c : create a new password file. This will overwrite existing files.
 -D : delete the username rather than adding/updating its password.
 -H : specify the hashing algorithm. Defaults to sha512-pbkdf2, which is recommended.
      Mosquitto 1.6 and earlier defaulted to sha512.
 -I : PBKDF2 iterations for sha512-pbkdf2 (default 101, as mosquitto_passwd).
 -U : update a plain text password file to use hashed passwords.
Without -b the password is asked for twice, on the terminal without echo; when standard input
is not a terminal, the two lines are read from it.
";

/// A failure already reported on stderr: the exit code.
struct Exit(u8);

/// Report `message` on stderr (as `Error: …` or `Warning: …`, given) and fail with `code`.
fn fail(code: u8, message: impl std::fmt::Display) -> Exit {
    eprintln!("{message}");
    Exit(code)
}

fn main() -> ExitCode {
    match run(std::env::args_os().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Exit(code)) => ExitCode::from(code),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `-c`: a new file with one user.
    Create,
    /// `-D`: remove a user.
    Delete,
    /// `-U`: hash a plain-text file.
    Upgrade,
    /// Add a user or set its password.
    Set,
}

fn run(args: Vec<OsString>) -> Result<(), Exit> {
    if args.is_empty() {
        print!("{USAGE}");
        return Err(Exit(1));
    }
    let (mut sha512, mut iterations) = (false, DEFAULT_ITERATIONS);
    let (mut batch, mut create, mut delete, mut upgrade) = (false, false, false, false);
    let mut index = 0;
    while let Some(arg) = args.get(index) {
        match arg.to_str() {
            Some("-H") => {
                let Some(value) = args.get(index + 1) else {
                    return Err(fail(
                        1,
                        "Error: -H argument given but not enough other arguments.",
                    ));
                };
                sha512 = match value.to_str() {
                    Some("sha512") => true,
                    Some("sha512-pbkdf2") => false,
                    _ => {
                        return Err(fail(
                            1,
                            format_args!("Error: Unknown hash type '{}'", value.to_string_lossy()),
                        ));
                    }
                };
                index += 1;
            }
            Some("-I") => {
                let Some(value) = args.get(index + 1) else {
                    return Err(fail(
                        1,
                        "Error: -I argument given but not enough other arguments.",
                    ));
                };
                iterations = match value.to_str().map(str::parse::<i64>) {
                    Some(Ok(n)) if n > i64::from(MAX_ITERATIONS) => {
                        return Err(fail(
                            1,
                            format_args!(
                                "Error: Number of iterations must be at most {MAX_ITERATIONS}."
                            ),
                        ));
                    }
                    Some(Ok(n)) if n >= 1 => u32::try_from(n).unwrap_or(DEFAULT_ITERATIONS),
                    _ => return Err(fail(1, "Error: Number of iterations must be > 0.")),
                };
                index += 1;
            }
            Some("-b") => batch = true,
            Some("-c") => create = true,
            Some("-D") => delete = true,
            Some("-U") => upgrade = true,
            _ => break,
        }
        index += 1;
    }
    let algorithm = if sha512 {
        Algorithm::Sha512
    } else {
        Algorithm::Sha512Pbkdf2 { iterations }
    };

    for (both, message) in [
        (
            create && delete,
            "Error: -c and -D cannot be used together.",
        ),
        (
            create && upgrade,
            "Error: -c and -U cannot be used together.",
        ),
        (
            delete && upgrade,
            "Error: -D and -U cannot be used together.",
        ),
        (delete && batch, "Error: -b and -D cannot be used together."),
    ] {
        if both {
            return Err(fail(1, message));
        }
    }

    let rest = args.get(index..).unwrap_or_default();
    let positional = |n: usize| rest.get(n).cloned().unwrap_or_default();
    let (mode, file, username, password) = if create {
        if batch && rest.len() < 3 {
            return Err(fail(
                1,
                "Error: -c argument given but password file, username, or password missing.",
            ));
        }
        if rest.len() < 2 {
            return Err(fail(
                1,
                "Error: -c argument given but password file or username missing.",
            ));
        }
        let password = batch.then(|| positional(2));
        (Mode::Create, positional(0), Some(positional(1)), password)
    } else if delete {
        if rest.len() < 2 {
            return Err(fail(
                1,
                "Error: -D argument given but password file or username missing.",
            ));
        }
        (Mode::Delete, positional(0), Some(positional(1)), None)
    } else if upgrade {
        if rest.len() != 1 {
            return Err(fail(
                1,
                "Error: -U argument given but password file missing.",
            ));
        }
        (Mode::Upgrade, positional(0), None, None)
    } else if batch && rest.len() == 3 {
        (
            Mode::Set,
            positional(0),
            Some(positional(1)),
            Some(positional(2)),
        )
    } else if !batch && rest.len() == 2 {
        (Mode::Set, positional(0), Some(positional(1)), None)
    } else {
        print!("{USAGE}");
        return Err(Exit(1));
    };

    let username = match username.map(OsString::into_string) {
        None => None,
        Some(Ok(name)) => {
            check_username(&name).map_err(|e| fail(1, format_args!("Error: {e}")))?;
            Some(name)
        }
        Some(Err(_)) => return Err(fail(1, "Error: Username must be valid UTF-8.")),
    };
    let password = match password.map(OsString::into_string) {
        None => None,
        Some(Ok(password)) if password.len() > MAX_NAME_LEN => {
            return Err(fail(
                1,
                "Error: Password must be less than 65536 characters long.",
            ));
        }
        Some(Ok(password)) => Some(password),
        Some(Err(_)) => return Err(fail(1, "Error: Password must be valid UTF-8.")),
    };

    let shown = PathBuf::from(&file);
    // Write where a symbolic link points, as mosquitto_passwd does (realpath).
    let path = match fs::canonicalize(&shown) {
        Ok(path) => path,
        Err(e) if e.kind() == io::ErrorKind::NotFound => shown.clone(),
        Err(e) => {
            return Err(fail(
                1,
                format_args!("Error reading password file: {}", reason(&e)),
            ));
        }
    };
    let user = username.as_deref().unwrap_or_default();

    if mode == Mode::Create {
        let password = match password {
            Some(password) => password,
            None => get_password()?,
        };
        let line = new_line(user, &password, algorithm)?;
        warn_if_world_readable(&path, &shown);
        return write_file(&path, &format!("{line}\n")).map_err(|e| {
            fail(
                1,
                format_args!(
                    "Error: Unable to open file {} for writing. {}.",
                    shown.display(),
                    reason(&e)
                ),
            )
        });
    }

    let text = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            return Err(fail(
                1,
                format_args!(
                    "Error: Unable to open password file {}. {}.",
                    shown.display(),
                    reason(&e)
                ),
            ));
        }
    };
    let text = String::from_utf8(text).map_err(|e| {
        let before = e.as_bytes().get(..e.utf8_error().valid_up_to());
        let line = before
            .unwrap_or_default()
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        corrupt(line)
    })?;
    warn_if_world_readable(&path, &shown);
    let password = match (mode, password) {
        (Mode::Set, Some(password)) => password,
        (Mode::Set, None) => get_password()?,
        _ => String::new(),
    };
    let updated = rewrite(&text, mode, user, &password, algorithm)?;
    write_file(&path, &updated).map_err(|e| {
        fail(
            1,
            format_args!(
                "Error: Unable to write password file {}. {}.",
                shown.display(),
                reason(&e)
            ),
        )
    })
}

fn corrupt(line: usize) -> Exit {
    fail(
        1,
        format_args!("Error: Corrupt password file at line {line}."),
    )
}

fn new_line(user: &str, password: &str, algorithm: Algorithm) -> Result<String, Exit> {
    hash_line_with(user, password, algorithm).map_err(|e| fail(1, format_args!("Error: {e}")))
}

/// The file's new text for `mode` (not `Create`). Comment and blank lines are kept as they are;
/// every other line must be `user:something` (else "Corrupt password file at line N.", as
/// `mosquitto_passwd` says).
fn rewrite(
    text: &str,
    mode: Mode,
    user: &str,
    password: &str,
    algorithm: Algorithm,
) -> Result<String, Exit> {
    let mut out = String::with_capacity(text.len() + 200);
    let mut found = false;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        let content = raw.trim_end_matches(['\n', '\r']);
        if content.starts_with('#') || trim_blanks(content).is_empty() {
            out.push_str(raw);
            continue;
        }
        let Some((name, field)) = content.split_once(':') else {
            return Err(corrupt(number));
        };
        let (name, field) = (trim_blanks(name), trim_blanks(field));
        if name.is_empty() || field.is_empty() {
            return Err(corrupt(number));
        }
        match mode {
            Mode::Set | Mode::Delete if name == user => {
                if mode == Mode::Set && !found {
                    out.push_str(&new_line(user, password, algorithm)?);
                    out.push('\n');
                }
                found = true;
            }
            Mode::Upgrade if !is_hashed(content) => {
                if field.contains(':') {
                    return Err(fail(
                        1,
                        format_args!(
                            "Error: Line {number} has more than one ':', so where the password \
                             ends is unclear; nothing was changed."
                        ),
                    ));
                }
                if check_username(name).is_err() {
                    return Err(corrupt(number));
                }
                out.push_str(&new_line(name, field, algorithm)?);
                out.push('\n');
            }
            _ => out.push_str(raw),
        }
    }
    match mode {
        Mode::Set if !found => {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&new_line(user, password, algorithm)?);
            out.push('\n');
        }
        Mode::Delete if !found => {
            return Err(fail(
                1,
                format_args!("Warning: User {user} not found in password file."),
            ));
        }
        _ => {}
    }
    Ok(out)
}

/// What the broker trims around a user name and its hash (C's `isspace`).
fn trim_blanks(s: &str) -> &str {
    s.trim_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r'])
}

/// A line the broker reads as a hashed password (what `-U` leaves alone).
fn is_hashed(line: &str) -> bool {
    PasswordFile::parse(line).is_ok_and(|file| !file.is_empty())
}

/// Read the password twice (`Password: `, `Reenter password: `), as `mosquitto_passwd` does:
/// empty is "Error: Empty password." (exit 1), different is "Error: Passwords do not match."
/// (exit 2).
fn get_password() -> Result<String, Exit> {
    let first = read_password("Password: ")?;
    if first.is_empty() {
        return Err(fail(1, "Error: Empty password."));
    }
    let second = read_password("Reenter password: ")?;
    if second.is_empty() {
        return Err(fail(1, "Error: Empty password."));
    }
    if first != second {
        return Err(fail(2, "Error: Passwords do not match."));
    }
    if first.len() > MAX_NAME_LEN {
        return Err(fail(
            1,
            "Error: Password must be less than 65536 characters long.",
        ));
    }
    Ok(first)
}

/// One password: from the terminal without echo when standard input is one, else a line of
/// standard input (without its `\n` or `\r\n`; end of input is an empty password).
fn read_password(prompt: &str) -> Result<String, Exit> {
    if io::stdin().is_terminal() {
        return match prompt_on_terminal(prompt) {
            Ok(password) => Ok(password),
            // Ctrl-C: the terminal is back as it was; nothing was written.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(Exit(130)),
            Err(e) => Err(fail(1, format_args!("Error: {}.", reason(&e)))),
        };
    }
    let mut stdout = io::stdout();
    let _ = write!(stdout, "{prompt}");
    let _ = stdout.flush();
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| fail(1, format_args!("Error: {}.", reason(&e))))?;
    let _ = writeln!(stdout);
    let line = line.strip_suffix('\n').unwrap_or(&line);
    Ok(line.strip_suffix('\r').unwrap_or(line).to_owned())
}

/// `rpassword` reads the terminal in raw mode and, on Ctrl-C, raises SIGINT while the terminal is
/// still raw: killed then, the process would leave the shell without echo (`mosquitto_passwd`
/// restores the terminal in its SIGINT handler). So while it reads, SIGINT only makes it return
/// `Interrupted`, restoring the terminal on the way; at any other time SIGINT kills as usual.
#[cfg(unix)]
fn prompt_on_terminal(prompt: &str) -> io::Result<String> {
    use std::sync::Arc;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, Ordering};
    static KILL_ON_SIGINT: OnceLock<Option<Arc<AtomicBool>>> = OnceLock::new();
    let kill = KILL_ON_SIGINT.get_or_init(|| {
        let kill = Arc::new(AtomicBool::new(true));
        signal_hook::flag::register_conditional_default(
            signal_hook::consts::SIGINT,
            Arc::clone(&kill),
        )
        .ok()
        .map(|_| kill)
    });
    if let Some(kill) = kill {
        kill.store(false, Ordering::SeqCst);
    }
    let password = rpassword::prompt_password(prompt);
    if let Some(kill) = kill {
        kill.store(true, Ordering::SeqCst);
    }
    password
}

#[cfg(not(unix))]
fn prompt_on_terminal(prompt: &str) -> io::Result<String> {
    rpassword::prompt_password(prompt)
}

/// Later Mosquitto versions (2.0.16 on) warn about a password file others can read; so does
/// this tool, for a file it rewrites.
fn warn_if_world_readable(path: &Path, shown: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = fs::metadata(path) {
            if meta.permissions().mode() & 0o007 != 0 {
                eprintln!(
                    "Warning: File {0} has world readable permissions.\n\
                     To fix this, use `chmod 0600 {0}`.",
                    shown.display()
                );
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, shown);
}

/// Replace `path` with `contents` at once: write a temporary file beside it, flush it to disk
/// and rename it over `path`. A new file is created 0600; an existing one keeps its mode and,
/// where allowed, its owner and group.
fn write_file(path: &Path, contents: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let existing = fs::metadata(path).ok();
    let (temp, mut file) = create_temp(&dir, &name)?;
    let written = (|| {
        file.write_all(contents.as_bytes())?;
        #[cfg(unix)]
        if let Some(meta) = &existing {
            use std::os::unix::fs::MetadataExt as _;
            file.set_permissions(meta.permissions())?;
            if let Err(e) = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid())) {
                eprintln!(
                    "Warning: Could not keep the owner and group of {}: {}.",
                    path.display(),
                    reason(&e)
                );
            }
        }
        #[cfg(not(unix))]
        let _ = &existing;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temp);
    } else if let Ok(dir) = fs::File::open(&dir) {
        // The rename itself, to disk (best effort: not every system can sync a directory).
        let _ = dir.sync_all();
    }
    written
}

/// A new file `.NAME.wren-passwd-PID-N` in `dir`, only the owner may read or write.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, fs::File)> {
    let mut last = io::Error::other("no temporary file name was free");
    for n in 0..100 {
        let temp = dir.join(format!(".{name}.wren-passwd-{}-{n}", std::process::id()));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        match options.open(&temp) {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// An I/O error as C's `strerror` words it: without Rust's ` (os error N)`.
fn reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(at) if text.ends_with(')') => text.get(..at).unwrap_or(&text).to_owned(),
        _ => text,
    }
}
