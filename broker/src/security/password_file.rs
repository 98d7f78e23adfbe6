//! Mosquitto's password file (`password_file` in `mosquitto.conf`), read as Mosquitto 2.0 reads
//! it, and its lines written as `mosquitto_passwd` 2.0 writes them ([`hash_line`]), so that a file
//! made by either tool works with both brokers unchanged.
//!
//! # Format
//!
//! One user a line, `username:hash`, where the hash is one of
//!
//! * `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 of the password with `ITERATIONS` rounds
//!   (`mosquitto_passwd` 2.0's default, `-H sha512-pbkdf2`, with 101 rounds:
//!   `PW_DEFAULT_ITERATIONS`);
//! * `$6$SALT$HASH`: SHA-512 over the password bytes followed by the salt bytes (Mosquitto 1.x's
//!   only format, `mosquitto_passwd -H sha512`; `pw__digest` feeds the password, then the salt).
//!
//! `SALT` is 12 bytes and `HASH` 64 bytes, both in standard base64 with padding (16 and 88
//! characters); Mosquitto refuses any other length. `ITERATIONS` is a decimal number from 1 to
//! 2147483647 (Mosquitto reads it into a C `int` and refuses less than 1). The password is hashed
//! as the bytes the client sends.
//!
//! # What is ignored, what is refused
//!
//! Mosquitto 2.0.11 (`pwfile__parse` and `unpwd__decode_passwords` in `src/security_default.c`,
//! checked against Debian's `/usr/sbin/mosquitto`) **ignores silently**:
//!
//! * a line whose first character is `#` (a comment: only in the first column; ` #x:…` is the
//!   user `#x`);
//! * a line without `:`, blank lines included;
//!
//! and it **trims** blanks (space, tab, `\r`, `\n`, `\v`, `\f`) around the user name and around
//! the hash, so CRLF files work. [`PasswordFile::parse`] does the same: none of these lines can let
//! anyone in.
//!
//! Mosquitto **drops a user, logging an error, and starts anyway** when the hash is missing
//! (`user:`), is not `$6$`/`$7$` (plain-text passwords included: the 2.0 broker only reads hashed
//! files), has iterations below 1, a salt or hash that is not base64 or not 12/64 bytes; and it
//! skips, with a warning, a user name over 65535 bytes. Here each of these **refuses the whole
//! file**, naming the line ([`FileError`]), so that a typo cannot silently lock a user out, and a
//! reload can keep the previous file instead.
//!
//! Deliberately stricter than Mosquitto, also refused with the line number:
//!
//! * the same user on two lines (Mosquitto silently uses the last one: which password counts
//!   should not depend on the order of lines);
//! * text after the hash (Mosquitto's `strtok` ignores `:anything` after the hash, and empty
//!   `$$` fields);
//! * an empty user name (`:hash`).
//!
//! `mosquitto_passwd` never writes any of these, so its files load unchanged.
//!
//! # Checking a password
//!
//! [`PasswordFile::check`] compares digests in constant time, and an unknown user costs the
//! same hashing as a known one (a dummy entry with the file's most common algorithm is hashed),
//! so the time taken does not tell which users exist. Mosquitto hashes the client's password up
//! to its first NUL byte (it is a C string); here every byte counts, so a password with a NUL
//! inside is refused where Mosquitto would compare its prefix. A CONNECT without a password must
//! be refused by the caller for a user in the file (as Mosquitto does); `check(user, b"")` checks
//! the empty password, which `mosquitto_passwd -b file user ''` can set.
//!
//! # Writing a line
//!
//! [`hash_line`] writes `username:$7$ITERATIONS$SALT$HASH` with 12 fresh random salt bytes from
//! the operating system, as `mosquitto_passwd` does (`SALT_LEN 12`, `RAND_bytes`);
//! [`hash_line_with`] also writes `$6$` lines. They refuse a user name that the file cannot hold
//! as given ([`check_username`]).
//!
//! Nothing here logs, and no error or `Debug` output shows a hash, a salt or a password.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha512};
use subtle::ConstantTimeEq as _;

#[cfg(test)]
thread_local! {
    /// Digests computed on this thread (tests count them).
    static DIGESTS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// PBKDF2 rounds `mosquitto_passwd` 2.0 uses without `-I` (`PW_DEFAULT_ITERATIONS`).
pub const DEFAULT_ITERATIONS: u32 = 101;

/// Most PBKDF2 rounds a line may have: Mosquitto reads them into a C `int`.
pub const MAX_ITERATIONS: u32 = i32::MAX as u32;

/// Longest user name (and password) `mosquitto_passwd` and the broker accept, in bytes: an MQTT
/// string.
pub const MAX_NAME_LEN: usize = 65535;

const SALT_LEN: usize = 12;
const HASH_LEN: usize = 64;

/// How a line's password is hashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Algorithm {
    /// `$6$`: SHA-512 over the password, then the salt (`mosquitto_passwd -H sha512`).
    Sha512,
    /// `$7$`: PBKDF2-HMAC-SHA512 (`mosquitto_passwd -H sha512-pbkdf2`, the default).
    Sha512Pbkdf2 {
        /// PBKDF2 rounds, 1 to [`MAX_ITERATIONS`].
        iterations: u32,
    },
}

impl Algorithm {
    fn digest(self, password: &[u8], salt: &[u8; SALT_LEN]) -> [u8; HASH_LEN] {
        #[cfg(test)]
        DIGESTS.with(|d| d.set(d.get() + 1));
        match self {
            Algorithm::Sha512 => {
                let mut hasher = Sha512::new();
                hasher.update(password);
                hasher.update(salt);
                let mut out = [0u8; HASH_LEN];
                out.copy_from_slice(&hasher.finalize());
                out
            }
            Algorithm::Sha512Pbkdf2 { iterations } => {
                pbkdf2::pbkdf2_hmac_array::<Sha512, HASH_LEN>(password, salt, iterations)
            }
        }
    }
}

/// One user's line: algorithm, salt and hash. Two entries are equal when the line hashes the
/// same way with the same salt to the same hash, i.e. when the user's password line did not
/// change (a reload that finds a different entry for a connected user should disconnect it).
/// Its `Debug` shows the algorithm only.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    algorithm: Algorithm,
    salt: [u8; SALT_LEN],
    hash: [u8; HASH_LEN],
}

impl Entry {
    /// How this user's password is hashed.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    fn verify(&self, password: &[u8]) -> bool {
        let digest = self.algorithm.digest(password, &self.salt);
        digest.ct_eq(&self.hash).into()
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

/// What [`PasswordFile::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The user is in the file and the password matches.
    Accepted,
    /// The user is in the file; the password does not match.
    WrongPassword,
    /// The user is not in the file (found after as much hashing as a known user costs).
    UnknownUser,
}

/// A parsed password file: user names and their [`Entry`]. Immutable; share it in an `Arc`.
/// Its `Debug` shows the number of users only.
#[derive(Clone)]
pub struct PasswordFile {
    users: BTreeMap<String, Entry>,
    /// Hashed for unknown users, so that they cost what known ones do. Its hash is all zeros,
    /// which no password is expected to produce; the result is thrown away anyway.
    dummy: Entry,
}

impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile")
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl PasswordFile {
    /// Parse the text of a password file (see the module documentation for what is ignored and
    /// what is refused). The error names the 1-based line.
    pub fn parse(text: &str) -> Result<PasswordFile, FileError> {
        let mut users: BTreeMap<String, (usize, Entry)> = BTreeMap::new();
        for (index, raw) in text.split('\n').enumerate() {
            let number = index + 1;
            if raw.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = raw.split_once(':') else {
                continue;
            };
            let user = trim_blanks(user);
            let entry = parse_entry(user, trim_blanks(hash)).map_err(|p| error_at(number, p))?;
            if let Some((first_line, _)) = users.get(user) {
                return Err(error_at(
                    number,
                    Problem::Duplicate {
                        user: user.to_owned(),
                        first_line: *first_line,
                    },
                ));
            }
            users.insert(user.to_owned(), (number, entry));
        }
        let users: BTreeMap<String, Entry> = users
            .into_iter()
            .map(|(user, (_, entry))| (user, entry))
            .collect();
        let dummy = Entry {
            algorithm: most_common_algorithm(&users),
            salt: [0; SALT_LEN],
            hash: [0; HASH_LEN],
        };
        Ok(PasswordFile { users, dummy })
    }

    /// Read and parse a password file. The error names the file (as given) and, for a line's
    /// problem, the line.
    pub fn load(path: &Path) -> Result<PasswordFile, FileError> {
        let in_file = |line: Option<usize>, problem: Problem| FileError {
            file: Some(path.to_path_buf()),
            line,
            problem,
        };
        let bytes = std::fs::read(path).map_err(|e| in_file(None, Problem::Io(e)))?;
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(e) => {
                let before = bytes.get(..e.valid_up_to()).unwrap_or_default();
                let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                return Err(in_file(Some(line), Problem::NotUtf8));
            }
        };
        PasswordFile::parse(text).map_err(|e| in_file(e.line, e.problem))
    }

    /// Check `password` for `username`. Digests are compared in constant time; an unknown user
    /// is hashed against a dummy entry first, so it takes as long as a known one.
    pub fn check(&self, username: &str, password: &[u8]) -> Check {
        match self.users.get(username) {
            Some(entry) if entry.verify(password) => Check::Accepted,
            Some(_) => Check::WrongPassword,
            None => {
                std::hint::black_box(self.dummy.verify(std::hint::black_box(password)));
                Check::UnknownUser
            }
        }
    }

    /// The entry of `username`, if it is in the file.
    pub fn entry(&self, username: &str) -> Option<&Entry> {
        self.users.get(username)
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// No users at all (an empty file, or only comments): every password check fails.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// The user names, in byte order.
    pub fn users(&self) -> impl Iterator<Item = &str> + '_ {
        self.users.keys().map(String::as_str)
    }
}

/// A new `$7$` (PBKDF2-HMAC-SHA512) password line for `username`, without a newline:
/// `username:$7$ITERATIONS$SALT$HASH`, with 12 fresh random salt bytes, as
/// `mosquitto_passwd -b file username password` writes it ([`DEFAULT_ITERATIONS`] is its
/// default). `iterations` must be 1 to [`MAX_ITERATIONS`].
pub fn hash_line(username: &str, password: &str, iterations: u32) -> Result<String, HashError> {
    hash_line_with(username, password, Algorithm::Sha512Pbkdf2 { iterations })
}

/// A new password line for `username` hashed with `algorithm` (`$6$` is
/// `mosquitto_passwd -H sha512`), without a newline, with 12 fresh random salt bytes.
pub fn hash_line_with(
    username: &str,
    password: &str,
    algorithm: Algorithm,
) -> Result<String, HashError> {
    check_username(username).map_err(HashError::Username)?;
    if password.len() > MAX_NAME_LEN {
        return Err(HashError::PasswordTooLong);
    }
    if let Algorithm::Sha512Pbkdf2 { iterations } = algorithm {
        if !(1..=MAX_ITERATIONS).contains(&iterations) {
            return Err(HashError::Iterations(iterations));
        }
    }
    let mut salt = [0u8; SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| HashError::Random(e.into()))?;
    let hash = BASE64.encode(algorithm.digest(password.as_bytes(), &salt));
    let salt = BASE64.encode(salt);
    Ok(match algorithm {
        Algorithm::Sha512 => format!("{username}:$6${salt}${hash}"),
        Algorithm::Sha512Pbkdf2 { iterations } => {
            format!("{username}:$7${iterations}${salt}${hash}")
        }
    })
}

/// Whether a password line can hold `username` so that it reads back as the same user:
/// `mosquitto_passwd`'s rules (at most 65535 bytes, no control characters, no `:`), and, since
/// the broker trims blanks around the name and takes a line starting with `#` for a comment,
/// neither of those either. Not empty.
pub fn check_username(username: &str) -> Result<(), UsernameError> {
    if username.is_empty() {
        Err(UsernameError::Empty)
    } else if username.len() > MAX_NAME_LEN {
        Err(UsernameError::TooLong)
    } else if username.chars().any(char::is_control) {
        Err(UsernameError::ControlCharacter)
    } else if username.contains(':') {
        Err(UsernameError::Colon)
    } else if username.starts_with('#') {
        Err(UsernameError::Comment)
    } else if username.starts_with(is_blank) || username.ends_with(is_blank) {
        Err(UsernameError::Blank)
    } else {
        Ok(())
    }
}

/// Why a user name cannot be written to a password file. Displays as `mosquitto_passwd`'s
/// message where it has one (`Username must not contain the ':' character.`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsernameError {
    /// Empty.
    Empty,
    /// Over [`MAX_NAME_LEN`] bytes.
    TooLong,
    /// A control character (a newline, say).
    ControlCharacter,
    /// A `:`, which ends the user name.
    Colon,
    /// Starts with `#`: the line would be a comment.
    Comment,
    /// Starts or ends with a blank, which the broker trims.
    Blank,
}

impl fmt::Display for UsernameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UsernameError::Empty => "Username must not be empty.",
            UsernameError::TooLong => "Username must be less than 65536 characters long.",
            UsernameError::ControlCharacter => "Username must not contain control characters.",
            UsernameError::Colon => "Username must not contain the ':' character.",
            UsernameError::Comment => {
                "Username must not start with '#': the line would be read as a comment."
            }
            UsernameError::Blank => {
                "Username must not start or end with a blank: the broker trims them."
            }
        })
    }
}

impl std::error::Error for UsernameError {}

/// Why [`hash_line`] wrote no line.
#[derive(Debug)]
#[non_exhaustive]
pub enum HashError {
    /// The user name cannot be written ([`check_username`]).
    Username(UsernameError),
    /// A password over [`MAX_NAME_LEN`] bytes (an MQTT client could not send it).
    PasswordTooLong,
    /// `$7$` iterations outside 1 to [`MAX_ITERATIONS`].
    Iterations(u32),
    /// The operating system gave no random bytes for the salt.
    Random(std::io::Error),
}

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashError::Username(e) => write!(f, "{e}"),
            HashError::PasswordTooLong => {
                f.write_str("Password must be less than 65536 characters long.")
            }
            HashError::Iterations(0) => f.write_str("Number of iterations must be > 0."),
            HashError::Iterations(_) => {
                write!(f, "Number of iterations must be at most {MAX_ITERATIONS}.")
            }
            HashError::Random(e) => write!(f, "Unable to get random bytes for the salt: {e}."),
        }
    }
}

impl std::error::Error for HashError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HashError::Username(e) => Some(e),
            HashError::Random(e) => Some(e),
            _ => None,
        }
    }
}

/// The algorithm most users' lines have (of those, the costliest), else `mosquitto_passwd`'s
/// default: what an unknown user is hashed with.
fn most_common_algorithm(users: &BTreeMap<String, Entry>) -> Algorithm {
    let mut counts: BTreeMap<Algorithm, usize> = BTreeMap::new();
    for entry in users.values() {
        *counts.entry(entry.algorithm).or_default() += 1;
    }
    let cost = |algorithm: &Algorithm| match algorithm {
        Algorithm::Sha512 => 0,
        Algorithm::Sha512Pbkdf2 { iterations } => *iterations,
    };
    counts
        .into_iter()
        .max_by_key(|(algorithm, count)| (*count, cost(algorithm)))
        .map_or(
            Algorithm::Sha512Pbkdf2 {
                iterations: DEFAULT_ITERATIONS,
            },
            |(algorithm, _)| algorithm,
        )
}

/// C's `isspace` in the C locale, what Mosquitto's `misc__trimblanks` trims.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn trim_blanks(s: &str) -> &str {
    s.trim_matches(is_blank)
}

/// Hash types of other password schemes (crypt(3) and PHC identifiers), named in the error when
/// found; anything else is not shown, as it may be the start of a plain-text password.
const KNOWN_HASH_TYPES: &[&str] = &[
    "1",
    "2",
    "2a",
    "2b",
    "2x",
    "2y",
    "3",
    "5",
    "md5",
    "sha1",
    "y",
    "gy",
    "argon2i",
    "argon2d",
    "argon2id",
    "scrypt",
    "pbkdf2",
    "pbkdf2-sha256",
    "pbkdf2-sha512",
    "bcrypt",
];

fn parse_entry(user: &str, field: &str) -> Result<Entry, Problem> {
    if user.is_empty() {
        return Err(Problem::NoUsername);
    }
    if user.len() > MAX_NAME_LEN {
        return Err(Problem::UsernameTooLong);
    }
    if field.is_empty() {
        return Err(Problem::NoHash);
    }
    let Some(rest) = field.strip_prefix('$') else {
        return Err(Problem::PlainText);
    };
    if rest.contains(':') {
        return Err(Problem::TrailingText);
    }
    let mut parts = rest.split('$');
    let algorithm = match parts.next() {
        Some("6") => Algorithm::Sha512,
        Some("7") => Algorithm::Sha512Pbkdf2 {
            iterations: parse_iterations(parts.next().unwrap_or_default())?,
        },
        Some(kind) => {
            let shown = KNOWN_HASH_TYPES.iter().find(|k| **k == kind).copied();
            return Err(Problem::UnknownHashType(shown));
        }
        None => return Err(Problem::UnknownHashType(None)),
    };
    let salt = decode::<SALT_LEN>(parts.next(), Field::Salt)?;
    let hash = decode::<HASH_LEN>(parts.next(), Field::Hash)?;
    if parts.next().is_some() {
        return Err(Problem::TrailingText);
    }
    Ok(Entry {
        algorithm,
        salt,
        hash,
    })
}

fn parse_iterations(text: &str) -> Result<u32, Problem> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::Iterations);
    }
    match text.parse::<u32>() {
        Ok(n) if (1..=MAX_ITERATIONS).contains(&n) => Ok(n),
        _ => Err(Problem::Iterations),
    }
}

fn decode<const N: usize>(text: Option<&str>, field: Field) -> Result<[u8; N], Problem> {
    let text = match text {
        Some(t) if !t.is_empty() => t,
        _ => return Err(Problem::MissingField(field)),
    };
    let bytes = BASE64.decode(text).map_err(|_| Problem::BadBase64(field))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| Problem::WrongLength {
        field,
        bytes: bytes.len(),
        expected: N,
    })
}

/// A field of a hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// The base64 salt.
    Salt,
    /// The base64 hash.
    Hash,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::Salt => "salt",
            Field::Hash => "hash",
        })
    }
}

/// What is wrong with a password file or one of its lines. Never contains a hash, a salt or a
/// password: only a user name for [`Problem::Duplicate`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Problem {
    /// The file could not be read.
    Io(std::io::Error),
    /// The file is not UTF-8 (user names are MQTT strings).
    NotUtf8,
    /// Nothing before the `:`.
    NoUsername,
    /// A user name over [`MAX_NAME_LEN`] bytes.
    UsernameTooLong,
    /// Nothing after the `:`.
    NoHash,
    /// The field after `:` does not start with `$`: a plain-text password, which Mosquitto 2.0
    /// does not read either (`wren-passwd -U` hashes such a file).
    PlainText,
    /// A `$type$` other than `$6$` and `$7$`; the type is named when it is a known scheme's.
    UnknownHashType(Option<&'static str>),
    /// `$7$` iterations not a number from 1 to [`MAX_ITERATIONS`].
    Iterations,
    /// The salt or hash field is missing or empty.
    MissingField(Field),
    /// The salt or hash is not standard base64 with padding.
    BadBase64(Field),
    /// The salt or hash decodes to the wrong number of bytes.
    WrongLength {
        /// Which field.
        field: Field,
        /// Bytes it decodes to.
        bytes: usize,
        /// Bytes Mosquitto requires (12 or 64).
        expected: usize,
    },
    /// More `$` fields, or a second `:`, after the hash.
    TrailingText,
    /// The user already has a line.
    Duplicate {
        /// The user name.
        user: String,
        /// Its first line.
        first_line: usize,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Io(e) => write!(f, "{e}"),
            Problem::NotUtf8 => f.write_str("not valid UTF-8"),
            Problem::NoUsername => f.write_str("no user name before ':'"),
            Problem::UsernameTooLong => {
                write!(f, "user name longer than {MAX_NAME_LEN} bytes")
            }
            Problem::NoHash => f.write_str("no password hash after ':'"),
            Problem::PlainText => f.write_str(
                "not a password hash (plain-text passwords are not read: hash the file with \
                 `wren-passwd -U`)",
            ),
            Problem::UnknownHashType(Some(kind)) => {
                write!(f, "unknown hash type ${kind}$ (expected $6$ or $7$)")
            }
            Problem::UnknownHashType(None) => {
                f.write_str("unknown hash type (expected $6$ or $7$)")
            }
            Problem::Iterations => {
                write!(f, "iterations must be a number from 1 to {MAX_ITERATIONS}")
            }
            Problem::MissingField(field) => write!(f, "no {field}"),
            Problem::BadBase64(field) => write!(f, "the {field} is not valid base64"),
            Problem::WrongLength {
                field,
                bytes,
                expected,
            } => write!(f, "the {field} is {bytes} bytes, not {expected}"),
            Problem::TrailingText => f.write_str("text after the hash"),
            Problem::Duplicate { user, first_line } => {
                write!(f, "user {user} already has line {first_line}")
            }
        }
    }
}

/// A password file that could not be read or parsed: the file (for [`PasswordFile::load`]), the
/// 1-based line (for a line's problem) and the [`Problem`]. Displays as
/// `passwords.txt line 3: unknown hash type $5$ (expected $6$ or $7$)`.
pub type FileError = super::FileError<Problem>;

impl super::FileProblem for Problem {
    fn io(&self) -> Option<&std::io::Error> {
        match self {
            Problem::Io(e) => Some(e),
            _ => None,
        }
    }
}

fn error_at(line: usize, problem: Problem) -> FileError {
    FileError {
        file: None,
        line: Some(line),
        problem,
    }
}

/// The core checks CONNECTs against the file through this ([`crate::UserStore`]).
impl crate::UserStore for PasswordFile {
    fn verify(&self, username: &str, password: &[u8]) -> bool {
        self.check(username, password) == Check::Accepted
    }

    fn credential(&self, username: &str) -> Option<u64> {
        use std::hash::{Hash, Hasher};
        let entry = self.entry(username)?;
        // Only compared within this process (a reload against the logins it made).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        entry.hash(&mut h);
        Some(h.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made once with Debian's `mosquitto_passwd` 2.0.11:
    /// `mosquitto_passwd -c -b f alice 'correct horse'`,
    /// `mosquitto_passwd -b -I 1000 f bob 'battery staple'`,
    /// `mosquitto_passwd -H sha512 -b f carol 'correct horse'`.
    const MOSQUITTO_PASSWD: &str = "\
alice:$7$101$n5ejWdGjSH7zCrIg$102nENPZH6733o6MQXIA3y0Gz2hr1R/lf/PZ2nlbHoaIrLhvObAPC8lz0bVLOSoxTUfDqTveF5hX/2FSF5T6wg==
bob:$7$1000$GwV7sCgkEabTCl7H$GCT6JLVIPq7/eT9+DLQFkmkRbCL+iQuk5hZ/dHQg6J32CKNto/5DNzwouxufcM2asFhI9Al7whlvdihZfDQUQQ==
carol:$6$uqXI/ySVBQX8eSDS$xoXOGnjnYb57BAwFl6XZAfNvXoMZIAjKyV+GE6zi2B2oHhqVCyUD0pLuYtUq9G1CaleQPzs/et6fU9j2J5binQ==
";

    /// Computed independently with Python's hashlib, salt bytes 0 to 11:
    /// ```text
    /// salt = bytes(range(12)); pw = b'Tr0ub4dor&3'
    /// b64(salt), b64(hashlib.sha512(pw + salt).digest())
    /// b64(hashlib.pbkdf2_hmac('sha512', pw, salt, 3))
    /// ```
    const PYTHON: &str = "\
dave:$6$AAECAwQFBgcICQoL$TFwnckt1zs3rjOUEfKeVJY8/xwHWFTQ61nQ6Xbb1Uzem02GbYhU4VksQqu680EEBg37CTsgDWp6vCVNAgdHY5A==
erin:$7$3$AAECAwQFBgcICQoL$UUiHREYY+9jRG0guAZi0z+bC2YAreVvJZzYNnH+VjZo9ZsnZPgVa1Fd1rSeHbva8WF0KXCh/40s1rjNd7dgmgw==
";

    const ALICE: &str = "alice:$7$101$n5ejWdGjSH7zCrIg$102nENPZH6733o6MQXIA3y0Gz2hr1R/lf/PZ2nlbHoaIrLhvObAPC8lz0bVLOSoxTUfDqTveF5hX/2FSF5T6wg==";

    fn parse(text: &str) -> PasswordFile {
        match PasswordFile::parse(text) {
            Ok(file) => file,
            Err(e) => panic!("{text:?} was refused: {e}"),
        }
    }

    fn refusal(text: &str) -> FileError {
        match PasswordFile::parse(text) {
            Ok(file) => panic!("{text:?} was accepted: {file:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn mosquitto_passwd_lines_check_as_mosquitto_checks_them() {
        let file = parse(MOSQUITTO_PASSWD);
        assert_eq!(file.len(), 3);
        assert_eq!(file.users().collect::<Vec<_>>(), ["alice", "bob", "carol"]);
        assert_eq!(file.check("alice", b"correct horse"), Check::Accepted);
        assert_eq!(file.check("bob", b"battery staple"), Check::Accepted);
        assert_eq!(file.check("carol", b"correct horse"), Check::Accepted);
        assert_eq!(file.check("alice", b"correct horse "), Check::WrongPassword);
        assert_eq!(file.check("alice", b"Correct horse"), Check::WrongPassword);
        assert_eq!(file.check("bob", b"correct horse"), Check::WrongPassword);
        assert_eq!(file.check("carol", b""), Check::WrongPassword);
        assert_eq!(file.check("dave", b"correct horse"), Check::UnknownUser);
        assert_eq!(file.check("Alice", b"correct horse"), Check::UnknownUser);
        assert_eq!(
            file.entry("alice").map(Entry::algorithm),
            Some(Algorithm::Sha512Pbkdf2 { iterations: 101 })
        );
        assert_eq!(
            file.entry("bob").map(Entry::algorithm),
            Some(Algorithm::Sha512Pbkdf2 { iterations: 1000 })
        );
        assert_eq!(
            file.entry("carol").map(Entry::algorithm),
            Some(Algorithm::Sha512)
        );
        assert!(file.entry("dave").is_none());
    }

    #[test]
    fn independently_computed_lines_check() {
        let file = parse(PYTHON);
        assert_eq!(file.check("dave", b"Tr0ub4dor&3"), Check::Accepted);
        assert_eq!(file.check("erin", b"Tr0ub4dor&3"), Check::Accepted);
        assert_eq!(file.check("dave", b"Tr0ub4dor&"), Check::WrongPassword);
        assert_eq!(file.check("erin", b"Tr0ub4dor&4"), Check::WrongPassword);
        // The same salt and password, other rounds: a different hash.
        let four = PYTHON
            .lines()
            .nth(1)
            .map(|l| l.replacen("$7$3$", "$7$4$", 1));
        let four = parse(&four.unwrap_or_default());
        assert_eq!(four.check("erin", b"Tr0ub4dor&3"), Check::WrongPassword);
        // $6$ is the password then the salt, not the salt then the password.
        let mut swapped = Sha512::new();
        swapped.update((0u8..12).collect::<Vec<_>>());
        swapped.update(b"Tr0ub4dor&3");
        let swapped = BASE64.encode(swapped.finalize());
        assert!(!PYTHON.contains(&swapped));
    }

    #[test]
    fn comments_blank_lines_lines_without_colon_and_blanks_are_mosquittos() {
        let text = format!(
            "# users\n\n   \r\nno colon here\n\t{ALICE}\r\n#bob:$7$junk\n  carol  :  {}  \n",
            MOSQUITTO_PASSWD
                .lines()
                .nth(2)
                .and_then(|l| l.split_once(':'))
                .map(|(_, h)| h)
                .unwrap_or_default()
        );
        let file = parse(&text);
        assert_eq!(file.users().collect::<Vec<_>>(), ["alice", "carol"]);
        assert_eq!(file.check("alice", b"correct horse"), Check::Accepted);
        assert_eq!(file.check("carol", b"correct horse"), Check::Accepted);
        // `#` is a comment in the first column only, as in Mosquitto.
        let hashed_user = parse(&format!(" #x:{}", &ALICE["alice:".len()..]));
        assert_eq!(hashed_user.users().collect::<Vec<_>>(), ["#x"]);
        // Empty and comment-only files have no users: nobody gets in.
        for empty in ["", "\n", "# nobody\n"] {
            let file = parse(empty);
            assert!(file.is_empty());
            assert_eq!(file.check("alice", b"correct horse"), Check::UnknownUser);
        }
    }

    #[test]
    fn malformed_lines_are_refused_with_their_line_number() {
        let hash = &ALICE["alice:".len()..];
        let (salt, digest) = (
            "n5ejWdGjSH7zCrIg",
            &hash["$7$101$n5ejWdGjSH7zCrIg$".len()..],
        );
        type Case = (String, fn(&Problem) -> bool, &'static str);
        let cases: Vec<Case> = vec![
            (
                "dave:".into(),
                |p| matches!(p, Problem::NoHash),
                "no password hash after ':'",
            ),
            (
                "dave:   \r".into(),
                |p| matches!(p, Problem::NoHash),
                "no password hash",
            ),
            (
                format!(":{hash}"),
                |p| matches!(p, Problem::NoUsername),
                "no user name",
            ),
            (
                format!("  :{hash}"),
                |p| matches!(p, Problem::NoUsername),
                "no user name",
            ),
            (
                "eve:s3cret".into(),
                |p| matches!(p, Problem::PlainText),
                "plain-text passwords",
            ),
            (
                format!("frank:$5${salt}${digest}"),
                |p| matches!(p, Problem::UnknownHashType(Some("5"))),
                "unknown hash type $5$",
            ),
            (
                format!("frank:$2y$10${salt}${digest}"),
                |p| matches!(p, Problem::UnknownHashType(Some("2y"))),
                "unknown hash type $2y$",
            ),
            // A type that may be a plain-text password's start is not shown.
            (
                "frank:$ecret$pass".into(),
                |p| matches!(p, Problem::UnknownHashType(None)),
                "unknown hash type (expected",
            ),
            (
                format!("gina:$7$0${salt}${digest}"),
                |p| matches!(p, Problem::Iterations),
                "iterations must be a number from 1 to 2147483647",
            ),
            (
                format!("gina:$7$-1${salt}${digest}"),
                |p| matches!(p, Problem::Iterations),
                "iterations",
            ),
            (
                format!("gina:$7$2147483648${salt}${digest}"),
                |p| matches!(p, Problem::Iterations),
                "iterations",
            ),
            (
                format!("gina:$7$1e3${salt}${digest}"),
                |p| matches!(p, Problem::Iterations),
                "iterations",
            ),
            (
                format!("gina:$7$${salt}${digest}"),
                |p| matches!(p, Problem::Iterations),
                "iterations",
            ),
            (
                format!("hal:$7$101$n5ejWdGjSH7zCrI!${digest}"),
                |p| matches!(p, Problem::BadBase64(Field::Salt)),
                "the salt is not valid base64",
            ),
            (
                format!("hal:$7$101$n5ejWdGjSH7zCr${digest}"),
                |p| matches!(p, Problem::BadBase64(Field::Salt)),
                "the salt is not valid base64",
            ),
            (
                format!("hal:$7$101$n5ejWdGjSH7z${digest}"),
                |p| {
                    matches!(
                        p,
                        Problem::WrongLength {
                            field: Field::Salt,
                            bytes: 9,
                            expected: 12
                        }
                    )
                },
                "the salt is 9 bytes, not 12",
            ),
            (
                format!("ivan:$7$101${salt}$102nENPZH6733o6MQXIA3y0Gz2hr1R/lf/PZ2nlbHoaI"),
                |p| {
                    matches!(
                        p,
                        Problem::WrongLength {
                            field: Field::Hash,
                            bytes: 33,
                            ..
                        }
                    )
                },
                "the hash is 33 bytes, not 64",
            ),
            (
                format!("ivan:$7$101${salt}${}", digest.trim_end_matches('=')),
                |p| matches!(p, Problem::BadBase64(Field::Hash)),
                "the hash is not valid base64",
            ),
            (
                format!("ivan:$7$101${salt}${}", digest.replacen('1', "*", 1)),
                |p| matches!(p, Problem::BadBase64(Field::Hash)),
                "the hash is not valid base64",
            ),
            (
                "ivan:$7$101".into(),
                |p| matches!(p, Problem::MissingField(Field::Salt)),
                "no salt",
            ),
            (
                format!("ivan:$7$101${salt}"),
                |p| matches!(p, Problem::MissingField(Field::Hash)),
                "no hash",
            ),
            (
                format!("ivan:$6${salt}$"),
                |p| matches!(p, Problem::MissingField(Field::Hash)),
                "no hash",
            ),
            (
                format!("{ALICE}:extra"),
                |p| matches!(p, Problem::TrailingText),
                "text after",
            ),
            (
                format!("{ALICE}$extra"),
                |p| matches!(p, Problem::TrailingText),
                "text after",
            ),
            (
                format!("{ALICE}\n{ALICE}"),
                |p| matches!(p, Problem::Duplicate { first_line: 3, .. }),
                "user alice already has line 3",
            ),
            (
                format!("{}:{hash}", "u".repeat(65536)),
                |p| matches!(p, Problem::UsernameTooLong),
                "longer than 65535",
            ),
        ];
        for (line, is, shown) in cases {
            // Two lines before: a comment and a good user; the bad line is line 3.
            let text = format!(
                "# users\nbob:{}\n{line}\n",
                PYTHON
                    .lines()
                    .next()
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, h)| h)
                    .unwrap_or_default()
            );
            let e = refusal(&text);
            let at = if line.contains('\n') { 4 } else { 3 };
            assert_eq!(e.line(), Some(at), "{line:.80}: {e}");
            assert!(is(e.problem()), "{line:.80}: {:?}", e.problem());
            let message = e.to_string();
            assert!(message.starts_with(&format!("line {at}: ")), "{message}");
            assert!(message.contains(shown), "{line:.80}: {message}");
            // Never the secret material.
            assert!(
                !message.contains(salt)
                    && !message.contains("s3cret")
                    && !message.contains("ecret$pass"),
                "{message}"
            );
            assert!(!message.contains(&digest[..20]), "{message}");
        }
    }

    #[test]
    fn load_names_the_file_and_refuses_non_utf8() {
        let dir = std::env::temp_dir().join(format!("wren-pwfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("passwords.txt");
        std::fs::write(&path, format!("{ALICE}\n\nfrank:$5$abc$def\n")).unwrap();
        let e = PasswordFile::load(&path).unwrap_err();
        assert_eq!(e.file(), Some(path.as_path()));
        assert_eq!(
            e.to_string(),
            format!(
                "{} line 3: unknown hash type $5$ (expected $6$ or $7$)",
                path.display()
            )
        );
        std::fs::write(&path, b"# caf\xe9\nalice:x\n").unwrap();
        let e = PasswordFile::load(&path).unwrap_err();
        assert!(matches!(e.problem(), Problem::NotUtf8));
        assert_eq!(e.line(), Some(1));
        std::fs::write(&path, MOSQUITTO_PASSWD).unwrap();
        assert_eq!(PasswordFile::load(&path).unwrap().len(), 3);
        let missing = dir.join("missing.txt");
        let e = PasswordFile::load(&missing).unwrap_err();
        assert!(
            matches!(e.problem(), Problem::Io(io) if io.kind() == std::io::ErrorKind::NotFound)
        );
        assert_eq!(e.line(), None);
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", missing.display())),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn entries_compare_equal_only_for_the_same_line() {
        let before = parse(MOSQUITTO_PASSWD);
        // Same lines, other order and a comment: every entry is unchanged.
        let mut lines: Vec<&str> = MOSQUITTO_PASSWD.lines().collect();
        lines.reverse();
        let after = parse(&format!("# reordered\n{}", lines.join("\n")));
        for user in before.users() {
            assert_eq!(before.entry(user), after.entry(user), "{user}");
        }
        // alice's password set again (same password, fresh salt): a different entry.
        let again = parse(&format!(
            "alice:$7$101$AAECAwQFBgcICQoL${}",
            BASE64.encode(
                Algorithm::Sha512Pbkdf2 { iterations: 101 }
                    .digest(b"correct horse", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
            )
        ));
        assert_eq!(again.check("alice", b"correct horse"), Check::Accepted);
        assert_ne!(before.entry("alice"), again.entry("alice"));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let file = parse(MOSQUITTO_PASSWD);
        let shown = format!("{file:?} {:?}", file.entry("alice"));
        assert_eq!(
            shown,
            "PasswordFile { users: 3, .. } Some(Entry { algorithm: Sha512Pbkdf2 { iterations: 101 }, .. })"
        );
    }

    #[test]
    fn unknown_users_are_hashed_like_the_most_common_known_user() {
        // One line each: the costliest.
        assert_eq!(
            parse(MOSQUITTO_PASSWD).dummy.algorithm,
            Algorithm::Sha512Pbkdf2 { iterations: 1000 }
        );
        // Two lines with 101 rounds, one with 1000: 101.
        let two = format!("{MOSQUITTO_PASSWD}{}", ALICE.replacen("alice", "alice2", 1));
        assert_eq!(
            parse(&two).dummy.algorithm,
            Algorithm::Sha512Pbkdf2 { iterations: 101 }
        );
        let sixes = format!("{}{}", PYTHON.lines().next().unwrap_or_default(), "\n");
        assert_eq!(parse(&sixes).dummy.algorithm, Algorithm::Sha512);
        assert_eq!(
            parse("").dummy.algorithm,
            Algorithm::Sha512Pbkdf2 {
                iterations: DEFAULT_ITERATIONS
            }
        );
    }

    #[test]
    fn written_lines_read_back_and_check() {
        let line = hash_line("alice", "correct horse", DEFAULT_ITERATIONS).unwrap();
        // alice:$7$101$ + 16 characters of salt + $ + 88 of hash, as mosquitto_passwd writes.
        let fields: Vec<&str> = line.split('$').collect();
        assert_eq!(fields.len(), 5, "{line}");
        assert_eq!(&fields[..3], ["alice:", "7", "101"]);
        assert_eq!((fields[3].len(), fields[4].len()), (16, 88), "{line}");
        assert!(fields[4].ends_with("=="), "{line}");
        let file = parse(&format!("{line}\n"));
        assert_eq!(file.check("alice", b"correct horse"), Check::Accepted);
        assert_eq!(file.check("alice", b"correct horse!"), Check::WrongPassword);

        // A fresh salt each time: the same password gives another line.
        let again = hash_line("alice", "correct horse", DEFAULT_ITERATIONS).unwrap();
        assert_ne!(line, again);
        assert_ne!(file.entry("alice"), parse(&again).entry("alice"));

        let bob = hash_line("bob", "battery staple", 3).unwrap();
        assert!(bob.starts_with("bob:$7$3$"), "{bob}");
        let carol = hash_line_with("carol", "", Algorithm::Sha512).unwrap();
        assert!(
            carol.starts_with("carol:$6$") && carol.split('$').count() == 4,
            "{carol}"
        );
        let file = parse(&format!("{bob}\n{carol}\n"));
        assert_eq!(file.check("bob", b"battery staple"), Check::Accepted);
        assert_eq!(file.check("carol", b""), Check::Accepted);
        assert_eq!(file.check("carol", b" "), Check::WrongPassword);
        // Any byte of the password counts, beyond the first NUL too.
        let nul = parse(&hash_line("nul", "a\0b", 1).unwrap());
        assert_eq!(nul.check("nul", b"a\0b"), Check::Accepted);
        assert_eq!(nul.check("nul", b"a"), Check::WrongPassword);
        assert_eq!(nul.check("nul", b"a\0c"), Check::WrongPassword);
    }

    #[test]
    fn unwritable_lines_are_refused() {
        let refused = |user: &str, password: &str, iterations: u32| match hash_line(
            user, password, iterations,
        ) {
            Ok(line) => panic!("{user:?} {iterations}: wrote {line}"),
            Err(e) => e.to_string(),
        };
        assert_eq!(
            refused("a:b", "x", 101),
            "Username must not contain the ':' character."
        );
        assert_eq!(
            refused("a\nb", "x", 101),
            "Username must not contain control characters."
        );
        assert_eq!(
            refused("a\tb", "x", 101),
            "Username must not contain control characters."
        );
        assert_eq!(
            refused(&"u".repeat(65536), "x", 101),
            "Username must be less than 65536 characters long."
        );
        assert_eq!(refused("", "x", 101), "Username must not be empty.");
        assert!(refused("#alice", "x", 101).contains("comment"));
        assert!(refused(" alice", "x", 101).contains("blank"));
        assert!(refused("alice ", "x", 101).contains("blank"));
        assert_eq!(
            refused("alice", &"p".repeat(65536), 101),
            "Password must be less than 65536 characters long."
        );
        assert_eq!(
            refused("alice", "x", 0),
            "Number of iterations must be > 0."
        );
        assert_eq!(
            refused("alice", "x", MAX_ITERATIONS + 1),
            "Number of iterations must be at most 2147483647."
        );
        // Names the reader takes as they are.
        for user in ["alice", "a b", "élodie", "a#b", "$7$", &"u".repeat(65535)] {
            assert_eq!(check_username(user), Ok(()), "{user:.20}");
        }
    }

    /// An unknown user costs what a known one does: one digest, with the file's algorithm (the
    /// dummy entry's, checked above), so timing does not tell which users exist. Counted, not
    /// timed: a timing assertion would fail on a loaded machine.
    #[test]
    fn unknown_users_cost_one_digest_as_known_ones_do() {
        let salt = [7u8; SALT_LEN];
        let algorithm = Algorithm::Sha512Pbkdf2 { iterations: 50 };
        let line = format!(
            "slow:$7$50${}${}",
            BASE64.encode(salt),
            BASE64.encode(algorithm.digest(b"pw", &salt))
        );
        let file = parse(&line);
        let digests = |user: &str, password: &[u8]| {
            let before = DIGESTS.with(std::cell::Cell::get);
            std::hint::black_box(file.check(user, password));
            DIGESTS.with(std::cell::Cell::get) - before
        };
        assert_eq!(digests("slow", b"wrong"), 1);
        assert_eq!(digests("slow", b"pw"), 1);
        assert_eq!(digests("nobody", b"wrong"), 1, "the dummy entry is hashed");
        assert_eq!(file.dummy.algorithm, algorithm);
    }
}
