//! Mosquitto's `acl_file`: parsed ([`AclFile::parse`], [`AclFile::load`]) and checked
//! ([`AclFile::check`]) as Mosquitto 2.0's built-in ACL check decides (`aclfile__parse` and
//! `mosquitto_acl_check_default` in its `src/security_default.c`, `acl__check_dollar` and
//! `mosquitto_acl_check` in `src/security.c`). `tests/acl.rs` compares the decisions with
//! Debian's Mosquitto 2.0.11 over MQTT.
//!
//! # The file
//!
//! ```text
//! # Before the first `user` line: the rules of clients that connect without a username.
//! topic read public/#
//! user alice
//! topic readwrite alice/#
//! topic deny alice/secret
//! topic sensors/+/temperature
//! # Anywhere: for every client, %c its client id, %u its username.
//! pattern write devices/%c/#
//! ```
//!
//! - `topic [read|write|readwrite|deny] FILTER`: without the access word, `readwrite`. The filter
//!   is the rest of the line (spaces inside it kept, blanks around it trimmed), so a filter with a
//!   space needs the access word. It must be a valid topic filter (wildcards placed as in a
//!   SUBSCRIBE, at most 200 `/`, at most 65,535 bytes).
//! - `user NAME`: the rest of the line is the username; the `topic` lines after it, up to the next
//!   `user`, are that user's. Two `user` blocks of one name are one block. There is no way back to
//!   the anonymous rules after the first `user` line.
//! - `pattern [ACCESS] FILTER`: for every client, wherever the line stands. `%c` and `%u` are
//!   replaced anywhere in the filter by the client id and the username (a client id with a `/`
//!   spans levels). `topic` lines are never substituted.
//! - Words are separated by spaces (not tabs); a line may start with spaces but not with a tab;
//!   `#` starts a comment only in the first column; trailing whitespace (`\r` included) is
//!   ignored; blank lines are skipped.
//! - Anything else is a [`FileError`] naming the line: Mosquitto refuses to start on the same
//!   lines (an unknown keyword, an unknown access word, `topic`/`pattern` without a filter, `user`
//!   without a name, an invalid filter).
//!
//! # The decision
//!
//! Mosquitto asks with [`Access::Write`] for a PUBLISH (the publisher and its topic) and for a
//! will when it is published (its client), with [`Access::Read`] for every delivery of a message,
//! retained ones included (the subscriber and the message's topic), and with
//! [`Access::Subscribe`] for each filter of a SUBSCRIBE. [`AclFile::check`] decides:
//!
//! 1. SUBSCRIBE (Wren's rule: Mosquitto 2.0's acl_file grants every SUBSCRIBE, its source says
//!    `FIXME - implement ACL subscription strings`, and lets the Read check on each message
//!    decide what arrives). Here a filter is refused (SUBACK 0x80, 5.0 0x87) when a `deny` rule
//!    of the client's section covers every topic it can match, or when no rule granting read
//!    access — in the client's own rules, then the patterns — matches any topic it can match: a
//!    subscription that could never deliver anything. `#` is granted wherever something is
//!    readable, and what it delivers is still decided by Read on each message. UNSUBSCRIBE is
//!    never refused and has no [`Access`] variant.
//! 2. `$` topics (`acl__check_dollar`): a topic beginning with `$SYS` cannot be written, except
//!    `$SYS/broker/connection/+/state` (which still needs a rule below); a topic beginning with
//!    `$share` can be neither written nor read.
//! 3. The client's own rules: those of the `user` block of its username, or, for a client without
//!    username, the anonymous rules. A username without a block has none (it does not fall back to
//!    the anonymous rules). If a `deny` rule matches, refused, wherever it stands in the block;
//!    else if a rule granting this access matches, granted. A matching rule of the other access
//!    (a `read` rule for a Write check) decides nothing: the check goes on.
//! 4. Then, if the file has patterns: a client whose username or client id contains `+` or `#` is
//!    refused (Mosquitto's guard against wildcards smuggled in through `%c`/`%u`); patterns with
//!    `%u` are skipped for a client without username; a matching `deny` pattern refuses, else a
//!    matching pattern granting this access grants.
//! 5. Else refused. An ACL file without rules refuses every Read and Write.
//!
//! Matching is MQTT's (§4.7, as [`TopicFilter::matches`]): `+` one level, `#` the parent level and
//! everything below, and a filter beginning with a wildcard does not match a `$` topic, so `topic
//! read #` grants no `$SYS` topic. A topic that is empty or holds a wildcard matches no rule.
//!
//! # What surprised
//!
//! - SUBSCRIBE is never refused (1.), so a SUBACK says nothing about what the client may read.
//! - `deny` wins only within its own section: a user's `deny` beats that user's grants whatever
//!   their order in the file, but a user's grant beats a `pattern deny` (the patterns are not
//!   consulted once the user's rules have granted).
//! - The `+`/`#` guard of 4. refuses everything not granted by the client's own rules, also
//!   through patterns without `%c` or `%u`; and it is not applied at all to a client whose own
//!   rules decide.
//! - `topic read` alone is a `readwrite` rule on a topic named `read`; `topic a b` is an error
//!   (`a` is taken for the access word).
//! - An indented comment (`  # note`) and tab-separated words are errors; Mosquitto does not start.
//! - The `$` prefixes are compared as text: `$SYSTEM/x` cannot be written either, and `$shared/x`
//!   can be neither read nor written.
//!
//! Unlike Mosquitto, the file must be UTF-8 and free of NUL bytes (a [`FileError`] names the
//! line; Mosquitto reads such bytes as they come, and runs a line with a NUL into the next), and
//! a pattern without `%c` or `%u`, which Mosquitto warns about, is accepted silently.
//!
//! # Cost
//!
//! The rules are compiled when the file is parsed: each filter is split into its levels once,
//! the `user` blocks are in a hash map by username, and every section keeps its `deny` rules, its
//! rules granting Read and its rules granting Write in three lists. A check hashes the username
//! once, then walks the `deny` list and the list of the asked access of the client's section, and
//! the same two lists of patterns: linear in the number of those rules, each costing one string
//! comparison per level until the first difference (a topic rarely gets past the first level of
//! a rule that does not match), with `%c`/`%u` compared in place against the client id and
//! username. Nothing is allocated. With a handful of rules per user, a check is a few dozen byte
//! comparisons and one hash.
//!
//! The codec's [`TopicFilter::new`] validates every filter of the file. The compiled matcher is
//! not [`TopicFilter::matches`], which splits the filter anew on every call and would need a
//! substituted `String` per pattern and check, but unit tests check it against it, patterns
//! substituted included.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use wren_codec::{TopicFilter, TopicName};

/// Mosquitto's `TOPIC_HIERARCHY_LIMIT`: at most this many `/` in a filter of the file.
const MAX_SEPARATORS: usize = 200;

/// The longest filter (the length of an MQTT string).
const MAX_FILTER_LEN: usize = u16::MAX as usize;

/// What a client asks to do with a topic (Mosquitto's `MOSQ_ACL_READ`, `MOSQ_ACL_WRITE`,
/// `MOSQ_ACL_SUBSCRIBE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Receive a message published to the topic (checked for each delivery).
    Read,
    /// Publish to the topic.
    Write,
    /// Subscribe with the topic filter: refused only where nothing readable could ever arrive
    /// through it, or a `deny` rule covers it (Mosquitto 2.0 grants every SUBSCRIBE).
    Subscribe,
}

/// A parsed, compiled ACL file. See the [module documentation](self) for the format and the
/// decision.
#[derive(Debug, Clone, Default)]
pub struct AclFile {
    /// The `topic` lines before the first `user` line; `None` if there are none.
    anonymous: Option<Section>,
    /// The `topic` lines of each `user` block.
    users: HashMap<Box<str>, Section, foldhash::fast::RandomState>,
    /// The `pattern` lines.
    patterns: Section,
}

impl AclFile {
    /// Parse the text of an ACL file. Errors name the 1-based line; [`AclFile::load`] adds the
    /// file.
    ///
    /// ```
    /// use wren_broker::security::acl::{Access, AclFile};
    ///
    /// let acl = AclFile::parse("topic read public/#\nuser alice\ntopic alice/#\n")?;
    /// assert!(acl.check("c1", None, "public/news", Access::Read));
    /// assert!(!acl.check("c1", None, "public/news", Access::Write));
    /// assert!(acl.check("c2", Some("alice"), "alice/x", Access::Write));
    /// assert!(!acl.check("c2", Some("alice"), "public/news", Access::Read));
    /// # Ok::<(), wren_broker::security::acl::FileError>(())
    /// ```
    pub fn parse(text: &str) -> Result<AclFile, FileError> {
        let mut acl = AclFile::default();
        // The user of the current block; `None` before the first `user` line.
        let mut user: Option<Box<str>> = None;
        for (index, raw) in text.split('\n').enumerate() {
            let line_no = index.saturating_add(1);
            let fail = |problem| FileError {
                file: None,
                line: Some(line_no),
                problem,
            };
            let Some(line) = parse_line(raw).map_err(fail)? else {
                continue;
            };
            match line {
                Line::User(name) => user = Some(name.into()),
                Line::Rule {
                    pattern,
                    grant,
                    filter,
                } => {
                    let section = if pattern {
                        &mut acl.patterns
                    } else {
                        match &user {
                            Some(name) => acl.users.entry(name.clone()).or_default(),
                            None => acl.anonymous.get_or_insert_with(Section::default),
                        }
                    };
                    section.add(Filter::compile(filter, pattern), grant);
                }
            }
        }
        Ok(acl)
    }

    /// Read and parse an ACL file; errors name the file (as given) and, for its content, the
    /// line.
    pub fn load(path: &Path) -> Result<AclFile, FileError> {
        let named = |e: FileError| FileError {
            file: Some(path.to_path_buf()),
            ..e
        };
        let bytes = std::fs::read(path).map_err(|e| {
            named(FileError {
                file: None,
                line: None,
                problem: Problem::Io(e),
            })
        })?;
        let text = match std::str::from_utf8(&bytes) {
            Ok(text) => text,
            Err(e) => {
                let before = bytes.get(..e.valid_up_to()).unwrap_or_default();
                let newlines = before.iter().filter(|&&b| b == b'\n').count();
                return Err(named(FileError {
                    file: None,
                    line: Some(newlines.saturating_add(1)),
                    problem: Problem::NotUtf8,
                }));
            }
        };
        AclFile::parse(text).map_err(named)
    }

    /// Whether the client `client_id`, connected with `username` (`None`: without one), may do
    /// `access` with `topic` (a topic name for [`Access::Read`] and [`Access::Write`], the
    /// subscription's filter for [`Access::Subscribe`]): Mosquitto 2.0's decision, described in
    /// the [module documentation](self).
    pub fn check(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        access: Access,
    ) -> bool {
        let access = match access {
            Access::Subscribe => return self.may_subscribe(client_id, username, topic),
            Access::Read => Grant::Read,
            Access::Write => Grant::Write,
        };
        if !dollar_topic_allowed(topic, access) {
            return false;
        }
        // Mosquitto's matcher refuses (matches nothing against) an empty topic or one with a
        // wildcard; the compiled matcher would take a `+` in a topic for a level.
        if topic.is_empty() || topic.contains(['+', '#']) {
            return false;
        }
        let client = Client {
            id: client_id,
            username,
        };
        let own = match username {
            Some(name) => self.users.get(name),
            None => self.anonymous.as_ref(),
        };
        if let Some(decision) = own.and_then(|section| section.decide(topic, access, client)) {
            return decision;
        }
        if self.patterns.is_empty() {
            return false;
        }
        let smuggled = |s: &str| s.contains(['+', '#']);
        if username.is_some_and(smuggled) || smuggled(client_id) {
            return false;
        }
        self.patterns.decide(topic, access, client).unwrap_or(false)
    }

    /// SUBSCRIBE with `filter` (Wren's rule; Mosquitto 2.0 grants every SUBSCRIBE): refused
    /// when a `deny` rule covers every topic the filter can match, or when no rule granting read
    /// access matches any topic it can match — such a subscription could never deliver
    /// anything. The same sections in the same order as a Read check: the client's own rules,
    /// then the patterns. Granted subscriptions still deliver only what Read allows.
    fn may_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool {
        let Some(wanted) = concrete_levels(filter) else {
            return false;
        };
        let client = Client {
            id: client_id,
            username,
        };
        let own = match username {
            Some(name) => self.users.get(name),
            None => self.anonymous.as_ref(),
        };
        if let Some(decision) = own.and_then(|section| section.decide_subscribe(&wanted, client)) {
            return decision;
        }
        let smuggled = |s: &str| s.contains(['+', '#']);
        if self.patterns.is_empty() || username.is_some_and(smuggled) || smuggled(client_id) {
            return false;
        }
        self.patterns
            .decide_subscribe(&wanted, client)
            .unwrap_or(false)
    }
}

/// A filter's levels, `%c`/`%u` already substituted: what [`covers`] and [`intersects`] compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Concrete {
    Exact(String),
    Plus,
    Hash,
}

/// The levels of a filter written in a SUBSCRIBE (`None` if it is not a valid filter).
fn concrete_levels(filter: &str) -> Option<Vec<Concrete>> {
    TopicFilter::new(filter).ok()?;
    Some(
        filter
            .split('/')
            .map(|level| match level {
                "+" => Concrete::Plus,
                "#" => Concrete::Hash,
                _ => Concrete::Exact(level.to_owned()),
            })
            .collect(),
    )
}

/// Whether every topic `inner` matches is matched by `outer`.
fn covers(outer: &[Concrete], inner: &[Concrete]) -> bool {
    match (outer.split_first(), inner.split_first()) {
        (Some((Concrete::Hash, _)), _) | (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some((o, outer)), Some((i, inner))) => {
            let level = match (o, i) {
                (_, Concrete::Hash) => false,
                (Concrete::Plus, _) => true,
                (Concrete::Exact(a), Concrete::Exact(b)) => a == b,
                _ => false,
            };
            level && covers(outer, inner)
        }
    }
}

/// Whether some topic matches both `a` and `b`.
fn intersects(a: &[Concrete], b: &[Concrete]) -> bool {
    match (a.split_first(), b.split_first()) {
        (Some((Concrete::Hash, _)), _) | (_, Some((Concrete::Hash, _))) => true,
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some((x, a)), Some((y, b))) => {
            let level = match (x, y) {
                (Concrete::Exact(p), Concrete::Exact(q)) => p == q,
                _ => true,
            };
            level && intersects(a, b)
        }
    }
}

/// Whether a filter starting with `first` can match a `$` topic (a wildcard first level
/// cannot, [MQTT-4.7.2-1]).
fn reaches_dollar(levels: &[Concrete]) -> bool {
    matches!(levels.first(), Some(Concrete::Exact(l)) if l.starts_with('$'))
}

/// `acl__check_dollar`: `false` where a `$` topic is refused whatever the rules say.
fn dollar_topic_allowed(topic: &str, access: Grant) -> bool {
    if topic.starts_with("$SYS") {
        access != Grant::Write || bridge_state_topic(topic)
    } else {
        !topic.starts_with("$share")
    }
}

/// Whether `topic` matches `$SYS/broker/connection/+/state`, the one `$SYS` topic Mosquitto lets
/// clients (its bridges) publish to.
fn bridge_state_topic(topic: &str) -> bool {
    match (
        TopicFilter::new("$SYS/broker/connection/+/state"),
        TopicName::new(topic),
    ) {
        (Ok(filter), Ok(topic)) => filter.matches(topic),
        _ => false,
    }
}

/// The client a check is for.
#[derive(Clone, Copy)]
struct Client<'a> {
    id: &'a str,
    username: Option<&'a str>,
}

/// The access of a rule, or the one asked (`Read`, `Write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    Read,
    Write,
    ReadWrite,
    Deny,
}

/// The rules of one section (the anonymous rules, a user's, the patterns), by what they do.
#[derive(Debug, Clone, Default)]
struct Section {
    deny: Vec<Filter>,
    read: Vec<Filter>,
    write: Vec<Filter>,
}

impl Section {
    fn add(&mut self, filter: Filter, grant: Grant) {
        match grant {
            Grant::Deny => self.deny.push(filter),
            Grant::Read => self.read.push(filter),
            Grant::Write => self.write.push(filter),
            Grant::ReadWrite => {
                self.read.push(filter.clone());
                self.write.push(filter);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.deny.is_empty() && self.read.is_empty() && self.write.is_empty()
    }

    /// For a SUBSCRIBE with `wanted`: `Some(false)` if a `deny` rule covers it, else
    /// `Some(true)` if a rule granting read access can match a topic it can, else `None`.
    fn decide_subscribe(&self, wanted: &[Concrete], client: Client<'_>) -> Option<bool> {
        let dollar = reaches_dollar(wanted);
        let fits = |f: &Filter, test: fn(&[Concrete], &[Concrete]) -> bool| {
            f.concrete(client).is_some_and(|rule| {
                // A rule starting with a wildcard says nothing about `$` topics, and a `$` rule
                // nothing about a filter starting with a wildcard.
                dollar == reaches_dollar(&rule) && test(&rule, wanted)
            })
        };
        if self.deny.iter().any(|f| fits(f, covers)) {
            return Some(false);
        }
        self.read
            .iter()
            .any(|f| fits(f, intersects))
            .then_some(true)
    }

    /// `Some(false)` if a `deny` rule matches, else `Some(true)` if a rule granting `access`
    /// (`Read` or `Write`) matches, else `None`: Mosquitto puts the `deny` rules of a section at
    /// its front and stops at the first match that denies or grants.
    fn decide(&self, topic: &str, access: Grant, client: Client<'_>) -> Option<bool> {
        if self.deny.iter().any(|f| f.matches(topic, client)) {
            return Some(false);
        }
        let grants = if access == Grant::Read {
            &self.read
        } else {
            &self.write
        };
        grants
            .iter()
            .any(|f| f.matches(topic, client))
            .then_some(true)
    }
}

/// A filter of the file, split into levels once.
#[derive(Debug, Clone)]
struct Filter {
    levels: Box<[Level]>,
    /// A pattern with `%u`: matches no client without username.
    needs_username: bool,
}

#[derive(Debug, Clone)]
enum Level {
    /// A level compared as it is.
    Exact(Box<str>),
    /// A pattern level with `%c` or `%u`: the text of its pieces, substituted, must come next in
    /// the topic, up to a `/` or the end (a substituted `/` makes it span levels).
    Template(Box<[Piece]>),
    /// `+`.
    Plus,
    /// `#`, always the last level.
    Hash,
}

#[derive(Debug, Clone)]
enum Piece {
    Text(Box<str>),
    ClientId,
    Username,
}

impl Filter {
    /// Compile a filter that [`check_filter`] accepted; `%c` and `%u` are substituted in patterns
    /// only.
    fn compile(filter: &str, pattern: bool) -> Filter {
        let mut needs_username = false;
        let levels = filter
            .split('/')
            .map(|level| match level {
                "+" => Level::Plus,
                "#" => Level::Hash,
                _ if pattern && level.contains('%') => {
                    let pieces = pieces(level);
                    needs_username |= pieces.iter().any(|p| matches!(p, Piece::Username));
                    match pieces.as_slice() {
                        [] => Level::Exact("".into()),
                        [Piece::Text(text)] => Level::Exact(text.clone()),
                        _ => Level::Template(pieces.into()),
                    }
                }
                _ => Level::Exact(level.into()),
            })
            .collect();
        Filter {
            levels,
            needs_username,
        }
    }

    /// The filter's levels with `%c`/`%u` substituted for `client` (`None` for a `%u` pattern
    /// and a client without user name).
    fn concrete(&self, client: Client<'_>) -> Option<Vec<Concrete>> {
        if self.needs_username && client.username.is_none() {
            return None;
        }
        let mut out = Vec::with_capacity(self.levels.len());
        for level in &self.levels {
            match level {
                Level::Plus => out.push(Concrete::Plus),
                Level::Hash => out.push(Concrete::Hash),
                Level::Exact(text) => out.push(Concrete::Exact(text.to_string())),
                Level::Template(pieces) => {
                    let mut text = String::new();
                    for piece in pieces.iter() {
                        text.push_str(match piece {
                            Piece::Text(t) => t,
                            Piece::ClientId => client.id,
                            Piece::Username => client.username?,
                        });
                    }
                    // A substituted `/` spans levels, as in `matches`.
                    out.extend(text.split('/').map(|l| Concrete::Exact(l.to_owned())));
                }
            }
        }
        Some(out)
    }

    /// Whether `topic` (non-empty, no wildcards) matches the filter, substituted for `client`.
    fn matches(&self, topic: &str, client: Client<'_>) -> bool {
        if self.needs_username && client.username.is_none() {
            return false;
        }
        if topic.starts_with('$') && matches!(self.levels.first(), Some(Level::Plus | Level::Hash))
        {
            return false;
        }
        // The topic from the level to match next on; `None` once its last level is matched.
        let mut rest = Some(topic);
        for level in &self.levels {
            let Some(here) = rest else {
                // Only `#` matches past the end of the topic (`a/#` matches `a`).
                return matches!(level, Level::Hash);
            };
            let after = match level {
                Level::Hash => return true,
                Level::Plus => Some(next_level(here).1),
                Level::Exact(text) => {
                    let (first, after) = next_level(here);
                    (first == &**text).then_some(after)
                }
                Level::Template(pieces) => {
                    substituted_prefix(here, pieces, client).and_then(|after| {
                        match after.strip_prefix('/') {
                            Some(after) => Some(Some(after)),
                            None if after.is_empty() => Some(None),
                            None => None,
                        }
                    })
                }
            };
            match after {
                Some(after) => rest = after,
                None => return false,
            }
        }
        rest.is_none()
    }
}

/// A topic's first level and the rest after its `/` (`None` if it is the last level).
fn next_level(topic: &str) -> (&str, Option<&str>) {
    match topic.split_once('/') {
        Some((first, rest)) => (first, Some(rest)),
        None => (topic, None),
    }
}

/// `topic` after the text of `pieces` substituted for `client`, if it starts with it.
fn substituted_prefix<'t>(topic: &'t str, pieces: &[Piece], client: Client<'_>) -> Option<&'t str> {
    pieces.iter().try_fold(topic, |rest, piece| {
        let text = match piece {
            Piece::Text(text) => text,
            Piece::ClientId => client.id,
            Piece::Username => client.username?,
        };
        rest.strip_prefix(text)
    })
}

/// The pieces of a pattern level, read from the left as Mosquitto substitutes: `%c` and `%u`
/// are replaced, any other `%` is kept.
fn pieces(level: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut rest = level;
    while let Some((before, after)) = rest.split_once('%') {
        text.push_str(before);
        let (piece, after) = if let Some(after) = after.strip_prefix('c') {
            (Piece::ClientId, after)
        } else if let Some(after) = after.strip_prefix('u') {
            (Piece::Username, after)
        } else {
            text.push('%');
            rest = after;
            continue;
        };
        if !text.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut text).into()));
        }
        pieces.push(piece);
        rest = after;
    }
    text.push_str(rest);
    if !text.is_empty() {
        pieces.push(Piece::Text(text.into()));
    }
    pieces
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// A line that is not blank or a comment.
enum Line<'a> {
    User(&'a str),
    Rule {
        pattern: bool,
        grant: Grant,
        filter: &'a str,
    },
}

/// C's `isspace` in the "C" locale: what Mosquitto trims.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// A word as `strtok_r(_, " ")` takes it: spaces skipped, then up to the next space. The word
/// and the rest after the one space that ends it (`None` at the end of the line).
fn word(s: &str) -> Option<(&str, Option<&str>)> {
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return None;
    }
    Some(match s.split_once(' ') {
        Some((word, rest)) => (word, Some(rest)),
        None => (s, None),
    })
}

/// One line of the file as `aclfile__parse` reads it; `None` for a blank line or a comment.
fn parse_line(raw: &str) -> Result<Option<Line<'_>>, Problem> {
    if raw.contains('\0') {
        return Err(Problem::Nul);
    }
    let line = raw.trim_end_matches(is_c_space);
    if line.starts_with('#') {
        return Ok(None);
    }
    let Some((keyword, rest)) = word(line) else {
        return Ok(None);
    };
    match keyword {
        "topic" | "pattern" => {
            let Some((first, rest)) = rest.and_then(word) else {
                return Err(Problem::MissingTopic(if keyword == "topic" {
                    "topic"
                } else {
                    "pattern"
                }));
            };
            // The line ends in a non-blank, so a rest after the access word is never blank.
            let (grant, filter) = match rest {
                Some(filter) => {
                    let grant = match first {
                        "read" => Grant::Read,
                        "write" => Grant::Write,
                        "readwrite" => Grant::ReadWrite,
                        "deny" => Grant::Deny,
                        other => return Err(Problem::UnknownAccess(other.to_owned())),
                    };
                    (grant, filter.trim_matches(is_c_space))
                }
                None => (Grant::ReadWrite, first),
            };
            check_filter(filter)?;
            Ok(Some(Line::Rule {
                pattern: keyword == "pattern",
                grant,
                filter,
            }))
        }
        "user" => match rest.map(|name| name.trim_matches(is_c_space)) {
            Some(name) if !name.is_empty() => Ok(Some(Line::User(name))),
            _ => Err(Problem::MissingUsername),
        },
        other => Err(Problem::UnknownKeyword(other.to_owned())),
    }
}

/// `mosquitto_sub_topic_check`, as Mosquitto checks each filter of the file: the codec's filter
/// validation and at most 200 `/`.
fn check_filter(filter: &str) -> Result<(), Problem> {
    let invalid = |reason: String| {
        Err(Problem::InvalidTopic {
            filter: filter.to_owned(),
            reason,
        })
    };
    if filter.len() > MAX_FILTER_LEN {
        return invalid(format!("longer than {MAX_FILTER_LEN} bytes"));
    }
    if filter.bytes().filter(|&b| b == b'/').count() > MAX_SEPARATORS {
        return invalid(format!("more than {MAX_SEPARATORS} '/'"));
    }
    match TopicFilter::new(filter) {
        Ok(_) => Ok(()),
        Err(e) => invalid(e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// An ACL file that cannot be used: which file ([`AclFile::load`]), which line, what is wrong.
///
/// Displayed as `acl.conf line 7: unknown access type 'writee'`.
pub type FileError = super::FileError<Problem>;

impl super::FileProblem for Problem {
    fn io(&self) -> Option<&std::io::Error> {
        match self {
            Problem::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// What is wrong with an ACL file.
#[derive(Debug)]
#[non_exhaustive]
pub enum Problem {
    /// The file could not be read.
    Io(std::io::Error),
    /// The line is not UTF-8.
    NotUtf8,
    /// The line holds a NUL byte (Mosquitto's reader would run it into the next line).
    Nul,
    /// The first word of the line is not `topic`, `pattern` or `user` (an indented `#` comment
    /// and tab-separated words land here too, as in Mosquitto).
    UnknownKeyword(String),
    /// `topic` or `pattern` (the keyword given) without a filter.
    MissingTopic(&'static str),
    /// An access word other than `read`, `write`, `readwrite` and `deny`.
    UnknownAccess(String),
    /// A filter that is not a valid topic filter.
    InvalidTopic {
        /// The filter.
        filter: String,
        /// Why not.
        reason: String,
    },
    /// `user` without a name.
    MissingUsername,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Io(e) => write!(f, "{e}"),
            Problem::NotUtf8 => f.write_str("not UTF-8"),
            Problem::Nul => f.write_str("NUL byte"),
            Problem::UnknownKeyword(word) => write!(
                f,
                "unknown keyword '{}' (a line is `topic ...`, `pattern ...`, `user NAME`, blank, \
                 or a comment with # in the first column)",
                word.escape_debug()
            ),
            Problem::MissingTopic(keyword) => write!(f, "'{keyword}' without a topic"),
            Problem::UnknownAccess(word) => {
                write!(f, "unknown access type '{}'", word.escape_debug())
            }
            Problem::InvalidTopic { filter, reason } => {
                write!(f, "invalid topic '{}': {reason}", filter.escape_debug())
            }
            Problem::MissingUsername => f.write_str("'user' without a username"),
        }
    }
}

/// The core checks topics against the file through this ([`crate::TopicRules`]).
impl crate::TopicRules for AclFile {
    fn allows(
        &self,
        client_id: &str,
        username: Option<&str>,
        topic: &str,
        access: crate::TopicAccess,
    ) -> bool {
        let access = match access {
            crate::TopicAccess::Read => Access::Read,
            crate::TopicAccess::Write => Access::Write,
            crate::TopicAccess::Subscribe => Access::Subscribe,
        };
        self.check(client_id, username, topic, access)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: Access = Access::Read;
    const W: Access = Access::Write;
    const S: Access = Access::Subscribe;

    fn ok(text: &str) -> AclFile {
        match AclFile::parse(text) {
            Ok(acl) => acl,
            Err(e) => panic!("{text:?} refused: {e}"),
        }
    }

    fn err(text: &str) -> FileError {
        match AclFile::parse(text) {
            Ok(acl) => panic!("{text:?} accepted: {acl:?}"),
            Err(e) => e,
        }
    }

    /// A client without username, client id `anon`.
    fn anon(acl: &AclFile, topic: &str, access: Access) -> bool {
        acl.check("anon", None, topic, access)
    }

    /// A client with `username`, client id `c-<username>`.
    fn user(acl: &AclFile, username: &str, topic: &str, access: Access) -> bool {
        acl.check(&format!("c-{username}"), Some(username), topic, access)
    }

    // -----------------------------------------------------------------------------------------
    // Parsing
    // -----------------------------------------------------------------------------------------

    #[test]
    fn errors_name_the_line() {
        let e = err("# rules\n\ntopic read a\nuser alice\n  topic write b\ntopic writee c\n");
        assert_eq!(e.line(), Some(6));
        assert_eq!(e.file(), None);
        assert!(matches!(e.problem(), Problem::UnknownAccess(w) if w == "writee"));
        assert_eq!(e.to_string(), "line 6: unknown access type 'writee'");

        let e = err("topic a\r\ntopic a b\r\n");
        assert_eq!(e.line(), Some(2), "\\r\\n lines are counted once");
        assert!(matches!(e.problem(), Problem::UnknownAccess(w) if w == "a"));
    }

    #[test]
    fn every_refused_line() {
        type Is = fn(&Problem) -> bool;
        let cases: &[(&str, Is)] = &[
            ("topic", |p| matches!(p, Problem::MissingTopic("topic"))),
            ("topic    ", |p| matches!(p, Problem::MissingTopic("topic"))),
            ("pattern", |p| matches!(p, Problem::MissingTopic("pattern"))),
            ("user", |p| matches!(p, Problem::MissingUsername)),
            ("user  \t ", |p| matches!(p, Problem::MissingUsername)),
            (
                "foo bar",
                |p| matches!(p, Problem::UnknownKeyword(w) if w == "foo"),
            ),
            (
                "TOPIC read a",
                |p| matches!(p, Problem::UnknownKeyword(w) if w == "TOPIC"),
            ),
            // A comment only in the first column.
            (
                "  # note",
                |p| matches!(p, Problem::UnknownKeyword(w) if w == "#"),
            ),
            // Words are separated by spaces only.
            (
                "\ttopic read a",
                |p| matches!(p, Problem::UnknownKeyword(w) if w == "\ttopic"),
            ),
            (
                "topic\tread a",
                |p| matches!(p, Problem::UnknownKeyword(w) if w == "topic\tread"),
            ),
            (
                "topic reads a",
                |p| matches!(p, Problem::UnknownAccess(w) if w == "reads"),
            ),
            (
                "pattern Read a",
                |p| matches!(p, Problem::UnknownAccess(w) if w == "Read"),
            ),
            (
                "topic my topic",
                |p| matches!(p, Problem::UnknownAccess(w) if w == "my"),
            ),
            (
                "topic read a/b#",
                |p| matches!(p, Problem::InvalidTopic { filter, .. } if filter == "a/b#"),
            ),
            ("topic read #/a", |p| {
                matches!(p, Problem::InvalidTopic { .. })
            }),
            ("topic read a/+x", |p| {
                matches!(p, Problem::InvalidTopic { .. })
            }),
            ("pattern read %c+", |p| {
                matches!(p, Problem::InvalidTopic { .. })
            }),
            ("topic read a #comment", |p| {
                matches!(p, Problem::InvalidTopic { .. })
            }),
            ("topic a\0b", |p| matches!(p, Problem::Nul)),
            ("user a\0", |p| matches!(p, Problem::Nul)),
        ];
        for (line, is) in cases {
            let e = err(&format!("topic ok\n{line}\n"));
            assert_eq!(e.line(), Some(2), "{line:?}");
            assert!(is(e.problem()), "{line:?}: {:?}", e.problem());
        }
        // Mosquitto's limits: 200 `/`, 65,535 bytes.
        let deep = "a/".repeat(200) + "a";
        ok(&format!("topic read {deep}"));
        let e = err(&format!("topic read {deep}/a"));
        assert!(matches!(e.problem(), Problem::InvalidTopic { .. }));
        ok(&format!("topic {}", "a".repeat(65_535)));
        let e = err(&format!("topic {}", "a".repeat(65_536)));
        assert!(matches!(e.problem(), Problem::InvalidTopic { .. }));
        assert!(e.to_string().starts_with("line 1: invalid topic '"));
    }

    #[test]
    fn layout_mosquitto_accepts() {
        let acl = ok(concat!(
            "# a comment\n",
            "\n",
            "   \n",
            "\t\n",
            "#topic read not/a/rule\n",
            "   topic   read    a/b   \t\r\n",
            "topic read   with space/+  \n",
            "topic read \tleading/tab\n",
            "user   alice smith  \r\n",
            "topic write mine\n",
        ));
        assert!(anon(&acl, "a/b", R));
        assert!(!anon(&acl, "a/b", W));
        assert!(
            !anon(&acl, "not/a/rule", R),
            "# in the first column is a comment"
        );
        assert!(
            anon(&acl, "with space/x", R),
            "the filter is the rest of the line"
        );
        assert!(
            anon(&acl, "leading/tab", R),
            "blanks around the filter are trimmed"
        );
        assert!(
            user(&acl, "alice smith", "mine", W),
            "the username is the rest of the line"
        );
        assert!(!user(&acl, "alice", "mine", W));
    }

    #[test]
    fn an_access_word_alone_is_the_topic() {
        // `topic read` is a readwrite rule on the topic `read`, not a read rule without a topic.
        let acl = ok("topic read\ntopic deny\npattern write\ntopic read\ta\n");
        for topic in ["read", "deny", "write"] {
            assert!(anon(&acl, topic, R), "{topic}");
            assert!(anon(&acl, topic, W), "{topic}");
        }
        // No space after the word: the whole is the topic.
        assert!(anon(&acl, "read\ta", W));
        assert!(!anon(&acl, "a", R));
    }

    #[test]
    fn load_names_the_file() {
        let dir = std::env::temp_dir().join(format!("wren-acl-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("acl.conf");
        std::fs::write(
            &path,
            "# 1\n# 2\ntopic a\n\nuser u\ntopic b\ntopic writee c\n",
        )
        .unwrap();
        let e = AclFile::load(&path).unwrap_err();
        assert_eq!(e.file(), Some(path.as_path()));
        assert_eq!(e.line(), Some(7));
        assert_eq!(
            e.to_string(),
            format!("{} line 7: unknown access type 'writee'", path.display())
        );

        std::fs::write(&path, b"topic a\ntopic b\ntopic \xff\n").unwrap();
        let e = AclFile::load(&path).unwrap_err();
        assert!(matches!(e.problem(), Problem::NotUtf8));
        assert_eq!(e.line(), Some(3));

        std::fs::write(&path, "topic read a/#\n").unwrap();
        let loaded = AclFile::load(&path).unwrap();
        assert!(anon(&loaded, "a/b", R));

        let missing = dir.join("missing.conf");
        let e = AclFile::load(&missing).unwrap_err();
        assert!(matches!(e.problem(), Problem::Io(_)));
        assert_eq!(e.line(), None);
        assert!(std::error::Error::source(&e).is_some());
        assert!(
            e.to_string()
                .starts_with(&format!("{}: ", missing.display()))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    // -----------------------------------------------------------------------------------------
    // Decisions
    // -----------------------------------------------------------------------------------------

    #[test]
    fn no_rules_refuse_everything() {
        for text in ["", "\n\n", "# only a comment\n", "user alice\n"] {
            let acl = ok(text);
            for access in [R, W, S] {
                assert!(!anon(&acl, "a", access), "{text:?}");
                assert!(!user(&acl, "alice", "a", access), "{text:?}");
            }
            assert!(!anon(&acl, "#", S), "{text:?}: nothing readable");
        }
    }

    #[test]
    fn access_words() {
        let acl = ok(concat!(
            "topic read r\n",
            "topic write w\n",
            "topic readwrite rw\n",
            "topic plain\n",
            "topic deny d\n",
        ));
        let table = [
            ("r", true, false),
            ("w", false, true),
            ("rw", true, true),
            ("plain", true, true),
            ("d", false, false),
            ("other", false, false),
        ];
        for (topic, read, write) in table {
            assert_eq!(anon(&acl, topic, R), read, "read {topic}");
            assert_eq!(anon(&acl, topic, W), write, "write {topic}");
        }
    }

    #[test]
    fn deny_wins_in_its_section_whatever_the_order() {
        for text in [
            "topic readwrite a/#\ntopic deny a/secret\n",
            "topic deny a/secret\ntopic readwrite a/#\n",
            "topic deny a/+\ntopic a/secret\n",
        ] {
            let acl = ok(text);
            assert!(!anon(&acl, "a/secret", R), "{text:?}");
            assert!(!anon(&acl, "a/secret", W), "{text:?}");
        }
        let acl = ok("topic readwrite a/#\ntopic deny a/secret\n");
        assert!(anon(&acl, "a/public", R));
        assert!(anon(&acl, "a", W), "a/# matches a");
    }

    #[test]
    fn sections_are_checked_user_first_then_patterns() {
        let acl = ok(concat!(
            "topic read shared/#\n",
            "pattern deny shared/%c\n",
            "pattern read other/#\n",
            "pattern deny other/closed\n",
            "user alice\n",
            "topic deny other/alice\n",
        ));
        // A grant of the client's own rules beats a deny pattern.
        assert!(acl.check("me", None, "shared/me", R));
        // A deny pattern beats a grant pattern.
        assert!(anon(&acl, "other/open", R));
        assert!(!anon(&acl, "other/closed", R));
        assert!(user(&acl, "alice", "other/open", R));
        // A deny of the client's own rules beats a grant pattern.
        assert!(!user(&acl, "alice", "other/alice", R));
        assert!(user(&acl, "bob", "other/alice", R));
    }

    #[test]
    fn a_rule_of_the_other_access_does_not_stop_the_search() {
        let acl = ok("topic read a\npattern write a\n");
        assert!(
            anon(&acl, "a", W),
            "the read rule matches, the write pattern grants"
        );
        let acl = ok("topic read a\n");
        assert!(!anon(&acl, "a", W));
    }

    #[test]
    fn anonymous_and_user_rules() {
        let acl = ok(concat!(
            "topic anon/#\n",
            "user alice\n",
            "topic alice/#\n",
            "user bob\n",
            "topic bob/#\n",
            "user alice\n",
            "topic read more/alice\n",
        ));
        assert!(anon(&acl, "anon/x", W));
        assert!(!anon(&acl, "alice/x", R));
        assert!(user(&acl, "alice", "alice/x", W));
        assert!(
            user(&acl, "alice", "more/alice", R),
            "two blocks of a user are one"
        );
        assert!(!user(&acl, "alice", "bob/x", R));
        assert!(
            !user(&acl, "alice", "anon/x", R),
            "users do not get the anonymous rules"
        );
        assert!(user(&acl, "bob", "bob/x", R));
        assert!(
            !user(&acl, "carol", "anon/x", R),
            "nor do users without a block"
        );
        assert!(!user(&acl, "carol", "alice/x", R));
        assert!(
            !user(&acl, "Alice", "alice/x", R),
            "usernames are case-sensitive"
        );
        // An empty username is a username.
        assert!(!acl.check("c", Some(""), "anon/x", R));
    }

    #[test]
    fn patterns_substitute_client_id_and_username() {
        let acl = ok(concat!(
            "pattern readwrite devices/%c/#\n",
            "pattern read users/%u/inbox\n",
            "pattern write log/%c-%u\n",
            "pattern read odd/%%c/%x\n",
            "topic read literal/%c\n",
        ));
        assert!(acl.check("d1", None, "devices/d1/temp", W));
        assert!(
            acl.check("d1", None, "devices/d1", R),
            "# matches the parent level"
        );
        assert!(!acl.check("d1", None, "devices/d2/temp", W));
        assert!(acl.check("d1", Some("u"), "users/u/inbox", R));
        assert!(!acl.check("d1", Some("u"), "users/v/inbox", R));
        assert!(!acl.check("d1", Some("u"), "users/u/inbox", W));
        // %u never matches a client without username, %%u not either.
        assert!(!acl.check("d1", None, "users//inbox", R));
        assert!(!acl.check("d1", None, "users/%u/inbox", R));
        assert!(!acl.check("d1", None, "log/d1-", W));
        assert!(!acl.check("d1", None, "log/d1-%u", W));
        // An empty username is substituted.
        assert!(acl.check("d1", Some(""), "users//inbox", R));
        // Substituted within a level.
        assert!(acl.check("d1", Some("u"), "log/d1-u", W));
        assert!(!acl.check("d1", Some("u"), "log/d1-u/x", W));
        // A client id with `/` spans levels.
        assert!(acl.check("a/b", None, "devices/a/b/c", W));
        assert!(!acl.check("a/b", None, "devices/a/c", W));
        // `%` not followed by c or u is kept; `%%c` is `%` then the client id.
        assert!(acl.check("d1", None, "odd/%d1/%x", R));
        // `topic` lines are not substituted.
        assert!(!acl.check("d1", None, "literal/d1", R));
        assert!(acl.check("d1", None, "literal/%c", R));
    }

    #[test]
    fn wildcards_in_ids_refuse_everything_from_patterns() {
        let acl = ok(concat!(
            "topic read anon/#\n",
            "pattern read devices/%c\n",
            "pattern read public/#\n",
            "user alice+\n",
            "topic read alice/#\n",
        ));
        for (id, name) in [
            ("a+b", None),
            ("a#", None),
            ("ok", Some("x+y")),
            ("ok", Some("#")),
        ] {
            assert!(!acl.check(id, name, "public/x", R), "{id} {name:?}");
            assert!(
                !acl.check(id, name, &format!("devices/{id}"), R),
                "{id} {name:?}"
            );
        }
        assert!(acl.check("ok", Some("x"), "public/x", R));
        // The client's own rules are consulted before the guard.
        assert!(acl.check("a+b", None, "anon/x", R));
        assert!(acl.check("a#", Some("alice+"), "alice/x", R));
        // Without patterns there is no guard.
        let acl = AclFile::parse("topic read #\n").unwrap();
        assert!(acl.check("a+b", None, "x", R));
        // `/` is not refused (Mosquitto 1.x refused it).
        let acl = AclFile::parse("pattern read public/#\n").unwrap();
        assert!(acl.check("a/b", Some("c/d"), "public/x", R));
    }

    #[test]
    fn wildcards_in_rules() {
        let acl = ok(concat!(
            "topic read one/+\n",
            "topic read tree/#\n",
            "topic read mid/+/end\n",
            "topic read +/any\n",
        ));
        let table = [
            ("one/x", true),
            ("one/", true),
            ("one", false),
            ("one/x/y", false),
            ("tree", true),
            ("tree/x/y/z", true),
            ("treetop", false),
            ("mid/x/end", true),
            ("mid//end", true),
            ("mid/x/y/end", false),
            ("x/any", true),
            ("/any", true),
            ("any", false),
        ];
        for (topic, granted) in table {
            assert_eq!(anon(&acl, topic, R), granted, "{topic}");
        }
        let all = AclFile::parse("topic #\n").unwrap();
        assert!(anon(&all, "a", W));
        assert!(anon(&all, "/", W));
        // Topics with wildcards (never a PUBLISH topic) and the empty topic match no rule.
        for topic in ["a/+", "#", "+", ""] {
            assert!(!anon(&all, topic, R), "{topic:?}");
            assert!(!anon(&all, topic, W), "{topic:?}");
        }
    }

    #[test]
    fn dollar_topics() {
        let acl = ok(concat!(
            "topic readwrite #\n",
            "user sys\n",
            "topic readwrite $SYS/#\n",
            "topic readwrite $share/#\n",
            "topic readwrite $app/#\n",
            "topic readwrite $SYSTEM/#\n",
            "pattern read +/%c\n",
        ));
        // `#` and `+/...` do not match `$` topics.
        assert!(!anon(&acl, "$SYS/broker/uptime", R));
        assert!(!anon(&acl, "$app/x", R));
        assert!(!acl.check("x", None, "$app/x", R));
        assert!(anon(&acl, "app/x", R));
        // A `$SYS` rule grants reading but never writing, except a bridge state topic.
        assert!(user(&acl, "sys", "$SYS/broker/uptime", R));
        assert!(!user(&acl, "sys", "$SYS/broker/uptime", W));
        assert!(!user(&acl, "sys", "$SYS", W));
        assert!(user(&acl, "sys", "$SYS/broker/connection/b1/state", W));
        assert!(
            !anon(&acl, "$SYS/broker/connection/b1/state", W),
            "still needs a rule"
        );
        // The prefixes are compared as text.
        assert!(user(&acl, "sys", "$SYSTEM/x", R));
        assert!(!user(&acl, "sys", "$SYSTEM/x", W));
        // `$share...` is neither read nor written.
        for topic in ["$share/g/t", "$shared/x"] {
            assert!(!user(&acl, "sys", topic, R), "{topic}");
            assert!(!user(&acl, "sys", topic, W), "{topic}");
        }
        // Other `$` topics are ordinary topics matched by `$` rules.
        assert!(user(&acl, "sys", "$app/x", W));
        // Subscribing to `$SYS` needs a rule that can read there: `#` cannot.
        assert!(!anon(&acl, "$SYS/#", S));
        assert!(
            anon(&acl, "+/broker/uptime", S),
            "x/broker/uptime is readable"
        );
        assert!(user(&acl, "sys", "$SYS/#", S));
        assert!(user(&acl, "sys", "$SYS/broker/+", S));
        assert!(anon(&acl, "app/#", S));
    }

    #[test]
    fn subscribe_needs_something_readable() {
        let acl = ok("topic read sensors/+/temp\nuser alice\ntopic deny #\n");
        for (filter, granted) in [
            ("sensors/#", true),
            ("sensors/a/temp", true),
            ("sensors/+/+", true),
            ("#", true),
            ("sensors/a/humidity", false),
            ("other/topic", false),
            ("+", false),
            ("sensors/+", false),
        ] {
            assert_eq!(anon(&acl, filter, S), granted, "{filter}");
            // `deny #` covers everything; a user without a block has no rules.
            assert!(!user(&acl, "alice", filter, S), "{filter}");
            assert!(!user(&acl, "nobody", filter, S), "{filter}");
            assert!(!acl.check("a+b", Some("x#"), filter, S), "{filter}");
        }
        // What such a subscription then delivers is decided message by message.
        assert!(anon(&acl, "sensors/a/temp", R));
        assert!(!anon(&acl, "sensors/a/humidity", R));
        assert!(!anon(&acl, "sensors/a/temp", W));
        assert!(!user(&acl, "alice", "sensors/a/temp", R));
        // A `deny` rule refuses the subscriptions it covers, not those it only overlaps.
        let acl = ok("topic readwrite test/#\ntopic deny test/nosubscribe\n");
        assert!(!anon(&acl, "test/nosubscribe", S));
        assert!(anon(&acl, "test/#", S));
        assert!(anon(&acl, "test/other", S));
        // Patterns, substituted.
        let acl = ok("pattern read users/%u/#\npattern read clients/%c\n");
        assert!(user(&acl, "bob", "users/bob/inbox", S));
        assert!(user(&acl, "bob", "users/+/inbox", S));
        assert!(!user(&acl, "bob", "users/alice/inbox", S));
        assert!(!anon(&acl, "users/bob/inbox", S), "%u without a user name");
        assert!(acl.check("c1", None, "clients/c1", S));
        assert!(!acl.check("c1", None, "clients/c2", S));
    }

    // -----------------------------------------------------------------------------------------
    // The compiled matcher against the codec's
    // -----------------------------------------------------------------------------------------

    /// Every `/`-joined sequence of 1 to `max` levels from `alphabet`.
    fn joined(alphabet: &[&str], max: usize) -> Vec<String> {
        // The empty string is no topic (`check` refuses it before matching).
        let mut all: Vec<String> = Vec::new();
        let mut last: Vec<String> = vec![String::new()];
        for depth in 1..=max {
            last = last
                .iter()
                .flat_map(|prefix| {
                    alphabet.iter().map(move |level| {
                        if depth == 1 {
                            (*level).to_owned()
                        } else {
                            format!("{prefix}/{level}")
                        }
                    })
                })
                .collect();
            all.extend(last.iter().filter(|s| !s.is_empty()).cloned());
        }
        all
    }

    fn codec_matches(filter: &str, topic: &str) -> bool {
        match (TopicFilter::new(filter), TopicName::new(topic)) {
            (Ok(f), Ok(t)) => f.matches(t),
            _ => false,
        }
    }

    #[test]
    fn compiled_filters_match_as_the_codec() {
        let topics = joined(&["a", "b", "", "$x"], 4);
        let filters = joined(&["a", "b", "", "$x", "+", "#"], 4);
        let client = Client {
            id: "id",
            username: Some("u"),
        };
        let mut compared = 0;
        for filter in filters.iter().filter(|f| TopicFilter::new(f).is_ok()) {
            let compiled = Filter::compile(filter, false);
            let pattern = Filter::compile(filter, true);
            for topic in &topics {
                let expected = codec_matches(filter, topic);
                assert_eq!(
                    compiled.matches(topic, client),
                    expected,
                    "{filter} {topic}"
                );
                assert_eq!(pattern.matches(topic, client), expected, "{filter} {topic}");
                compared += 1;
            }
        }
        assert!(compared > 50_000, "{compared}");
    }

    #[test]
    fn compiled_patterns_match_as_the_codec_after_substitution() {
        let topics = joined(&["a", "b", "", "$x", "a-b", "%c"], 3);
        let topics: Vec<(&str, TopicName<'_>)> = topics
            .iter()
            .map(|t| (t.as_str(), TopicName::new(t).unwrap()))
            .collect();
        let patterns = joined(&["a", "", "+", "#", "%c", "%u", "%c-%u", "$%c", "%%c"], 3);
        let ids = ["a", "", "a/b", "$x", "a/"];
        let mut compared = 0;
        for pattern in patterns.iter().filter(|f| check_filter(f).is_ok()) {
            let compiled = Filter::compile(pattern, true);
            for id in ids {
                for username in [None, Some("b"), Some(""), Some("a/b")] {
                    let client = Client { id, username };
                    if username.is_none() && pattern.contains("%u") {
                        for (topic, _) in &topics {
                            assert!(!compiled.matches(topic, client), "{pattern} {topic}");
                        }
                        continue;
                    }
                    // Mosquitto's substitution: left to right, `%c` and `%u` only.
                    let mut substituted = String::new();
                    let mut rest = pattern.as_str();
                    while let Some((before, after)) = rest.split_once('%') {
                        substituted.push_str(before);
                        if let Some(after) = after.strip_prefix('c') {
                            substituted.push_str(id);
                            rest = after;
                        } else if let Some(after) = after.strip_prefix('u') {
                            substituted.push_str(username.unwrap());
                            rest = after;
                        } else {
                            substituted.push('%');
                            rest = after;
                        }
                    }
                    substituted.push_str(rest);
                    // An invalid substituted filter (e.g. empty) matches nothing in Mosquitto.
                    let codec = TopicFilter::new(&substituted).ok();
                    for (topic, name) in &topics {
                        assert_eq!(
                            compiled.matches(topic, client),
                            codec.is_some_and(|f| f.matches(*name)),
                            "{pattern} ({substituted}) {topic} id {id:?} username {username:?}"
                        );
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared > 100_000, "{compared}");
    }
}
