//! `wren-sub -F`: mosquitto_sub 2.0's output format, code for code.
//!
//! `%` codes, with an optional `-` (left align), `0` (zero pad), field width and `.precision`
//! as mosquitto_sub applies them (`%10t`, `%-10t`, `%.3t`, `%08l`; a payload longer than the
//! width is cut to it): `%%` percent, `%t` topic, `%p` payload, `%q` QoS, `%r` retain (0/1),
//! `%l` payload length, `%m` message id (0 at QoS 0), `%x`/`%X` payload as lower/upper-case hex,
//! `%I` ISO-8601 local time, `%U` Unix time with nanoseconds, `%j` the message as JSON (payload
//! as a string), `%J` the same with a JSON payload inlined; 5.0 properties `%A` topic alias,
//! `%C` content type, `%D` correlation data, `%E` message expiry, `%F` payload format
//! indicator, `%P` user properties (`key:value`, space separated), `%R` response topic, `%S`
//! subscription identifier. `@` codes are strftime's, in local time (`@Y`, `@m`, `@d`, `@H`,
//! `@M`, `@S`, `@z`, `@s` …), plus `@N` nanoseconds and `@@`. Escapes: `\\`, `\0`, `\a`, `\e`,
//! `\n`, `\r`, `\t`, `\v`. [`Format::parse`] refuses what mosquitto_sub refuses, with its
//! messages. Like Mosquitto, a newline follows unless `-N` is given (the caller's business).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::SystemTime;

use chrono::{DateTime, Local, Timelike};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::ReceivedMessage;

/// The `%` codes mosquitto_sub knows.
const CODES: &str = "%ACDEFIjJlmPpqRrStUxX";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Literal(Vec<u8>),
    Code {
        code: u8,
        left: bool,
        zero: bool,
        width: usize,
        precision: Option<usize>,
    },
    Time(u8),
}

/// A parsed `-F` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    items: Vec<Item>,
}

/// One rendered message: the bytes for stdout and the errors for stderr (`%J` on a payload that
/// is not JSON).
#[derive(Debug, Default)]
pub struct Rendered {
    /// What goes to stdout.
    pub out: Vec<u8>,
    /// Error lines for stderr.
    pub errors: Vec<String>,
}

impl Format {
    /// Parse and check `format`; `Err` is mosquitto_sub's message (without `Error: `).
    pub fn parse(format: &str) -> Result<Format, String> {
        let b = format.as_bytes();
        let mut items = Vec::new();
        let mut lit = Vec::new();
        let mut i = 0;
        let incomplete = || "Incomplete format specifier.".to_owned();
        while let Some(&c) = b.get(i) {
            match c {
                b'%' => {
                    i += 1;
                    let (mut left, mut zero, mut width, mut precision) =
                        (false, false, 0usize, None);
                    if b.get(i) == Some(&b'-') {
                        left = true;
                        i += 1;
                    }
                    if b.get(i) == Some(&b'0') {
                        zero = true;
                        i += 1;
                    }
                    while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
                        width = width
                            .saturating_mul(10)
                            .saturating_add(usize::from(d - b'0'));
                        i += 1;
                    }
                    if b.get(i) == Some(&b'.') {
                        i += 1;
                        let mut p = 0usize;
                        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
                            p = p.saturating_mul(10).saturating_add(usize::from(d - b'0'));
                            i += 1;
                        }
                        precision = Some(p);
                    }
                    let &code = b.get(i).ok_or_else(incomplete)?;
                    if !CODES.as_bytes().contains(&code) {
                        return Err(format!(
                            "Invalid format specifier '{}'.",
                            char_at(format, i)
                        ));
                    }
                    flush(&mut items, &mut lit);
                    items.push(Item::Code {
                        code,
                        left,
                        zero,
                        width,
                        precision,
                    });
                }
                b'@' => {
                    i += 1;
                    let &c = b.get(i).ok_or_else(incomplete)?;
                    if c == b'@' {
                        lit.push(b'@');
                    } else {
                        flush(&mut items, &mut lit);
                        items.push(Item::Time(c));
                    }
                }
                b'\\' => {
                    i += 1;
                    let &c = b
                        .get(i)
                        .ok_or_else(|| "Incomplete escape specifier.".to_owned())?;
                    lit.push(match c {
                        b'\\' => b'\\',
                        b'0' => 0,
                        b'a' => 0x07,
                        b'e' => 0x1b,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'v' => 0x0b,
                        _ => {
                            return Err(format!(
                                "Invalid escape specifier '{}'.",
                                char_at(format, i)
                            ));
                        }
                    });
                }
                c => lit.push(c),
            }
            i += 1;
        }
        flush(&mut items, &mut lit);
        Ok(Format { items })
    }

    /// Render for `message` received at `now`; `pretty` is `--pretty` (for `%j`/`%J`).
    pub fn render(&self, m: &ReceivedMessage, now: SystemTime, pretty: bool) -> Rendered {
        let local: DateTime<Local> = now.into();
        let mut r = Rendered::default();
        for item in &self.items {
            match item {
                Item::Literal(l) => r.out.extend_from_slice(l),
                Item::Time(b'N') => {
                    let _ = write!(r.out, "{:09}", local.nanosecond() % 1_000_000_000);
                }
                Item::Time(c) => r.out.extend_from_slice(strftime(&local, *c).as_bytes()),
                Item::Code {
                    code,
                    left,
                    zero,
                    width,
                    precision,
                } => {
                    let spec = Spec {
                        left: *left,
                        pad: if *zero { b'0' } else { b' ' },
                        width: *width,
                        precision: *precision,
                    };
                    code_into(&mut r, *code, spec, m, &local, pretty);
                }
            }
        }
        r
    }
}

fn char_at(s: &str, i: usize) -> char {
    s.get(i..).and_then(|t| t.chars().next()).unwrap_or('?')
}

fn flush(items: &mut Vec<Item>, lit: &mut Vec<u8>) {
    if !lit.is_empty() {
        items.push(Item::Literal(std::mem::take(lit)));
    }
}

/// Render `format` for `message` at wall-clock time `now` (an invalid format renders as
/// nothing; the tools check it first with [`Format::parse`]).
pub fn format_message(format: &str, message: &ReceivedMessage, now: SystemTime) -> Vec<u8> {
    Format::parse(format)
        .map(|f| f.render(message, now, false).out)
        .unwrap_or_default()
}

#[derive(Clone, Copy)]
struct Spec {
    left: bool,
    pad: u8,
    width: usize,
    precision: Option<usize>,
}

/// mosquitto_sub's `formatted_print_int`.
fn int_into(out: &mut Vec<u8>, value: i64, s: Spec) {
    let w = s.width;
    let _ = if w == 0 {
        write!(out, "{value}")
    } else if s.left {
        write!(out, "{value:<w$}")
    } else if s.pad == b'0' {
        write!(out, "{value:0w$}")
    } else {
        write!(out, "{value:>w$}")
    };
}

/// mosquitto_sub's `formatted_print_str` (printf `%-*.*s`: precision cuts bytes).
fn str_into(out: &mut Vec<u8>, value: &[u8], s: Spec) {
    let value = match s.precision {
        Some(p) => value.get(..p).unwrap_or(value),
        _ => value,
    };
    let fill = s.width.saturating_sub(value.len());
    if !s.left {
        out.resize(out.len() + fill, b' ');
    }
    out.extend_from_slice(value);
    if s.left {
        out.resize(out.len() + fill, b' ');
    }
}

fn blank_into(out: &mut Vec<u8>, pad: u8, width: usize) {
    out.resize(out.len() + width, pad);
}

/// mosquitto_sub's `write_payload`, quirks included: a width cuts the payload to that many
/// bytes (for hex, to half as many bytes), and `-` with no width pads with as many spaces as
/// the payload is long.
fn payload_into(out: &mut Vec<u8>, payload: &[u8], hex: u8, s: Spec) {
    let width = s.width;
    let mut len = payload.len();
    let padlen: i64;
    if width > 0 {
        len = len.min(width);
        if hex > 0 {
            len /= 2;
            padlen = width as i64 - (len * 2) as i64;
        } else {
            padlen = width as i64 - len as i64;
        }
    } else {
        padlen = -(len as i64);
    }
    if !s.left && padlen > 0 {
        out.resize(out.len() + padlen as usize, s.pad);
    }
    let bytes = payload.get(..len).unwrap_or(payload);
    match hex {
        0 => out.extend_from_slice(bytes),
        1 => bytes.iter().for_each(|b| {
            let _ = write!(out, "{b:02x}");
        }),
        _ => bytes.iter().for_each(|b| {
            let _ = write!(out, "{b:02X}");
        }),
    }
    if s.left {
        out.resize(out.len() + padlen.unsigned_abs() as usize, b' ');
    }
}

fn code_into(
    r: &mut Rendered,
    code: u8,
    s: Spec,
    m: &ReceivedMessage,
    now: &DateTime<Local>,
    pretty: bool,
) {
    let p = &m.properties;
    let out = &mut r.out;
    match code {
        b'%' => out.push(b'%'),
        b'A' => match p.topic_alias {
            Some(a) => int_into(out, i64::from(a), s),
            None => blank_into(out, s.pad, s.width),
        },
        b'C' => match &p.content_type {
            Some(c) => str_into(out, c.as_bytes(), s),
            None => blank_into(out, b' ', s.width),
        },
        b'D' => out.extend_from_slice(p.correlation_data.as_deref().unwrap_or_default()),
        b'E' => match p.message_expiry_interval {
            // Mosquitto prints it through an int.
            Some(e) => int_into(out, i64::from(e as i32), s),
            None => blank_into(out, s.pad, s.width),
        },
        b'F' => match p.payload_format_utf8 {
            Some(f) => int_into(out, i64::from(f), s),
            None => blank_into(out, s.pad, s.width),
        },
        b'I' => str_into(out, now.format("%FT%T%z").to_string().as_bytes(), s),
        b'j' | b'J' => match json(m, now, code == b'j', pretty) {
            Some(j) => out.extend_from_slice(j.as_bytes()),
            None => r.errors.push(format!(
                "Error: Message payload is not valid JSON on topic {}.",
                m.topic
            )),
        },
        b'l' => int_into(out, m.payload.len() as i64, s),
        b'm' => int_into(out, i64::from(m.packet_id.unwrap_or(0)), s),
        b'P' => {
            let pairs: Vec<String> = p
                .user_properties
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            out.extend_from_slice(pairs.join(" ").as_bytes());
        }
        b'p' => payload_into(out, &m.payload, 0, s),
        b'q' => out.push(b'0' + m.qos.bits()),
        b'R' => {
            if let Some(t) = &p.response_topic {
                str_into(out, t.as_bytes(), s);
            }
        }
        b'r' => out.push(if m.retain { b'1' } else { b'0' }),
        // Mosquitto reads the first subscription identifier only.
        b'S' => match p.subscription_identifiers.first() {
            Some(&id) => int_into(out, i64::from(id as i32), s),
            None => blank_into(out, s.pad, s.width),
        },
        b't' => str_into(out, m.topic.as_bytes(), s),
        b'U' => {
            let _ = write!(
                out,
                "{}.{:09}",
                now.timestamp(),
                now.nanosecond() % 1_000_000_000
            );
        }
        b'x' => payload_into(out, &m.payload, 1, s),
        b'X' => payload_into(out, &m.payload, 2, s),
        _ => {}
    }
}

/// strftime's `%c` for an `@c` code, as glibc prints it in the C locale; a letter strftime
/// does not know is printed as `%c`, as glibc does.
fn strftime(now: &DateTime<Local>, c: u8) -> String {
    const KNOWN: &[u8] = b"aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%";
    if !KNOWN.contains(&c) {
        return format!("%{}", char::from(c));
    }
    let spec = format!("%{}", char::from(c));
    let mut s = String::new();
    if write!(s, "{}", now.format(&spec)).is_err() {
        return spec;
    }
    s
}

/// `tst` of `%j`: `2020-05-06T21:48:00.123456Z+0100` (Mosquitto's own layout: local time,
/// microseconds, a literal `Z`, then the offset).
fn tst(now: &DateTime<Local>) -> String {
    format!(
        "{}.{:06}Z{}",
        now.format("%Y-%m-%dT%H:%M:%S"),
        (now.nanosecond() % 1_000_000_000) / 1000,
        now.format("%z")
    )
}

/// The `%j`/`%J` object, fields in mosquitto_sub's order; `None` if `%J` and the payload is not
/// JSON.
fn json(m: &ReceivedMessage, now: &DateTime<Local>, escaped: bool, pretty: bool) -> Option<String> {
    let mut root = Map::new();
    root.insert("tst".into(), tst(now).into());
    root.insert("topic".into(), m.topic.clone().into());
    root.insert("qos".into(), m.qos.bits().into());
    root.insert("retain".into(), u8::from(m.retain).into());
    root.insert("payloadlen".into(), m.payload.len().into());
    if let Some(id) = m.packet_id.filter(|_| m.qos.bits() > 0) {
        root.insert("mid".into(), id.into());
    }
    let p = &m.properties;
    let mut props = Map::new();
    // Mosquitto prints the properties in the order the broker sent them; wren keeps no order,
    // so this is the order Mosquitto's broker sends them in.
    if let Some(&id) = p.subscription_identifiers.first() {
        props.insert("subscription-identifier".into(), id.into());
    }
    if let Some(c) = &p.content_type {
        props.insert("content-type".into(), c.clone().into());
    }
    if !p.user_properties.is_empty() {
        let users: Map<String, Value> = p
            .user_properties
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
            .collect();
        props.insert("user-properties".into(), users.into());
    }
    if let Some(t) = &p.response_topic {
        props.insert("response-topic".into(), t.clone().into());
    }
    if let Some(d) = &p.correlation_data {
        props.insert(
            "correlation-data".into(),
            String::from_utf8_lossy(d).into_owned().into(),
        );
    }
    if let Some(f) = p.payload_format_utf8 {
        props.insert("payload-format-indicator".into(), u8::from(f).into());
    }
    if let Some(e) = p.message_expiry_interval {
        props.insert("message-expiry-interval".into(), e.into());
    }
    if !props.is_empty() {
        root.insert("properties".into(), props.into());
    }
    let payload = if m.payload.is_empty() {
        Value::Null
    } else if escaped {
        Value::from(String::from_utf8_lossy(&m.payload).into_owned())
    } else {
        serde_json::from_slice(&m.payload).ok()?
    };
    root.insert("payload".into(), payload);
    let root = Value::Object(root);
    let mut buf = Vec::new();
    let written = if pretty {
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, CJson::pretty());
        root.serialize(&mut ser)
    } else {
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, CJson::compact());
        root.serialize(&mut ser)
    };
    written.ok()?;
    String::from_utf8(buf).ok()
}

/// A serde_json formatter printing as cJSON does (what mosquitto_sub uses): numbers as doubles
/// (`%d` when integral, else `%1.15g`/`%1.17g`), and with `--pretty` tabs for indentation,
/// `"key":<TAB>value`, arrays on one line as `[1, 2]`.
struct CJson {
    pretty: bool,
    depth: usize,
    /// Whether each open object has a member yet.
    open: Vec<bool>,
}

impl CJson {
    fn compact() -> Self {
        CJson {
            pretty: false,
            depth: 0,
            open: Vec::new(),
        }
    }

    fn pretty() -> Self {
        CJson {
            pretty: true,
            ..CJson::compact()
        }
    }

    fn tabs<W: ?Sized + io::Write>(w: &mut W, n: usize) -> io::Result<()> {
        for _ in 0..n {
            w.write_all(b"\t")?;
        }
        Ok(())
    }
}

/// cJSON's `print_number`.
fn cjson_number(d: f64) -> String {
    if !d.is_finite() {
        return "null".into();
    }
    // cJSON's valueint saturates to an int; an integral value in range prints as %d.
    if d.fract() == 0.0 && d >= f64::from(i32::MIN) && d <= f64::from(i32::MAX) {
        return format!("{}", d as i64);
    }
    let s = c_g(d, 15);
    if s.parse::<f64>().ok() == Some(d) {
        s
    } else {
        c_g(d, 17)
    }
}

/// C's `%1.<prec>g`.
fn c_g(d: f64, prec: usize) -> String {
    if d == 0.0 {
        return "0".into();
    }
    let e = format!("{:.*e}", prec - 1, d);
    let (mantissa, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let strip = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s.to_owned()
        }
    };
    if exp < -4 || exp >= prec as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip(mantissa), exp.unsigned_abs())
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        strip(&format!("{d:.decimals$}"))
    }
}

impl serde_json::ser::Formatter for CJson {
    fn write_i64<W: ?Sized + io::Write>(&mut self, w: &mut W, v: i64) -> io::Result<()> {
        w.write_all(cjson_number(v as f64).as_bytes())
    }
    fn write_u64<W: ?Sized + io::Write>(&mut self, w: &mut W, v: u64) -> io::Result<()> {
        w.write_all(cjson_number(v as f64).as_bytes())
    }
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, v: f64) -> io::Result<()> {
        w.write_all(cjson_number(v).as_bytes())
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        w.write_all(b"[")
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        w.write_all(b"]")
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        match (first, self.pretty) {
            (true, _) => Ok(()),
            (false, true) => w.write_all(b", "),
            (false, false) => w.write_all(b","),
        }
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.open.push(false);
        w.write_all(if self.pretty { b"{\n" } else { b"{" })
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        let had_members = self.open.pop().unwrap_or(false);
        if self.pretty {
            if had_members {
                w.write_all(b"\n")?;
            }
            CJson::tabs(w, self.depth)?;
        }
        w.write_all(b"}")
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if let Some(m) = self.open.last_mut() {
            *m = true;
        }
        if !first {
            w.write_all(if self.pretty { b",\n" } else { b"," })?;
        }
        if self.pretty {
            CJson::tabs(w, self.depth)?;
        }
        Ok(())
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(if self.pretty { b":\t" } else { b":" })
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }
}

/// `2024-05-01T12:00:00+0000` (the local time with its offset, as Mosquitto's `%I`).
pub fn iso8601(now: SystemTime) -> String {
    let local: DateTime<Local> = now.into();
    local.format("%FT%T%z").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::MessageProperties;
    use std::time::{Duration, UNIX_EPOCH};
    use wren_codec::QoS;

    fn msg() -> ReceivedMessage {
        ReceivedMessage {
            topic: "a/b".into(),
            payload: b"hi\x01".to_vec(),
            qos: QoS::AtLeastOnce,
            retain: true,
            dup: false,
            packet_id: Some(7),
            properties: MessageProperties {
                content_type: Some("text/plain".into()),
                user_properties: vec![("k".into(), "v".into()), ("a".into(), "b".into())],
                ..MessageProperties::default()
            },
        }
    }

    fn render(f: &str, m: &ReceivedMessage) -> Vec<u8> {
        Format::parse(f).unwrap().render(m, UNIX_EPOCH, false).out
    }

    #[test]
    fn mosquitto_codes() {
        let out = render("%t|%p|%q|%r|%l|%m|%x|%X|%%", &msg());
        assert_eq!(out, b"a/b|hi\x01|1|1|3|7|686901|686901|%");
    }

    #[test]
    fn escapes_and_checks() {
        assert_eq!(render(r"%t\t%p\n\e\\", &msg()), b"a/b\thi\x01\n\x1b\\");
        let err = |f: &str| Format::parse(f).unwrap_err();
        assert_eq!(err("%Z"), "Invalid format specifier 'Z'.");
        assert_eq!(err(r"\q"), "Invalid escape specifier 'q'.");
        assert_eq!(err("100%"), "Incomplete format specifier.");
        assert_eq!(err("%-5"), "Incomplete format specifier.");
        assert_eq!(err("a@"), "Incomplete format specifier.");
        assert_eq!(err("a\\"), "Incomplete escape specifier.");
        assert_eq!(err("%0-5t"), "Invalid format specifier '-'.");
    }

    #[test]
    fn widths_as_mosquitto() {
        let mut m = msg();
        m.payload = b"hi \"x\"".to_vec();
        let out = render(
            "[%10t][%-10t][%.1t][%08l][%-8l][%5p][%-5p][%.2p][%6x][%3x][%-6X][%5q][%5m]",
            &m,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[       a/b][a/b       ][a][00000006][6       ][hi \"x][hi \"x][hi \"x\"]\
             [686920][ 68][686920][1][    7]"
        );
        let out = render("[%-p][%-x][%10x][%-10p][%05p]", &m);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[hi \"x\"      ][686920227822      ][    686920][hi \"x\"    ][hi \"x]"
        );
    }

    #[test]
    fn v5_properties() {
        assert_eq!(render("%C %P [%5E]", &msg()), b"text/plain k:v a:b [     ]");
    }

    #[test]
    fn json_like_cjson() {
        let mut m = msg();
        m.payload =
            br#"{"x":1e3,"y":1.5,"z":[],"w":{},"v":[{"a":1}],"s":-0.1,"big":12345678901}"#.to_vec();
        m.properties = MessageProperties::default();
        let f = Format::parse("%J").unwrap();
        let out = String::from_utf8(f.render(&m, UNIX_EPOCH, false).out).unwrap();
        let tail = out.split_once(r#""topic""#).unwrap().1;
        assert_eq!(
            tail,
            r#":"a/b","qos":1,"retain":1,"payloadlen":72,"mid":7,"payload":{"x":1000,"y":1.5,"z":[],"w":{},"v":[{"a":1}],"s":-0.1,"big":12345678901}}"#
        );
        let out = String::from_utf8(f.render(&m, UNIX_EPOCH, true).out).unwrap();
        let tail = out.split_once("\"payload\":").unwrap().1;
        assert_eq!(
            tail,
            "\t{\n\t\t\"x\":\t1000,\n\t\t\"y\":\t1.5,\n\t\t\"z\":\t[],\n\t\t\"w\":\t{\n\t\t},\n\t\t\"v\":\t[{\n\t\t\t\t\"a\":\t1\n\t\t\t}],\n\t\t\"s\":\t-0.1,\n\t\t\"big\":\t12345678901\n\t}\n}"
        );
        m.payload = b"not json".to_vec();
        let r = f.render(&m, UNIX_EPOCH, false);
        assert!(r.out.is_empty());
        assert_eq!(
            r.errors,
            ["Error: Message payload is not valid JSON on topic a/b."]
        );
    }

    #[test]
    fn numbers_like_cjson() {
        assert_eq!(cjson_number(1e20), "1e+20");
        assert_eq!(cjson_number(0.1), "0.1");
        assert_eq!(cjson_number(-0.0), "0");
        assert_eq!(cjson_number(1.0e-5), "1e-05");
        assert_eq!(cjson_number(123456.5), "123456.5");
    }

    #[test]
    fn dates() {
        let t = UNIX_EPOCH + Duration::new(1_795_580_054, 499_069_371);
        let local: DateTime<Local> = t.into();
        let expect = format!(
            "{} {}.499069371 {}",
            local.format("%Y-%m-%d %H:%M:%S"),
            1_795_580_054,
            local.format("%z")
        );
        let f = Format::parse("@Y-@m-@d @H:@M:@S %U @z").unwrap();
        assert_eq!(
            String::from_utf8(f.render(&msg(), t, false).out).unwrap(),
            expect
        );
        let f = Format::parse("@N @@ @q").unwrap();
        assert_eq!(f.render(&msg(), t, false).out, b"499069371 @ %q");
    }
}
