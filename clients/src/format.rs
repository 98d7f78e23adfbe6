//! `wren-sub -F`: Mosquitto's output format codes and backslash escapes.
//!
//! Codes: `%%` percent, `%t` topic, `%p` payload, `%q` QoS, `%r` retain (0/1), `%l` payload
//! length, `%m` message id (0 at QoS 0), `%x`/`%X` payload as lower/upper-case hex, `%I` ISO-8601
//! time, `%U` Unix time with nanoseconds; 5.0 properties `%C` content type, `%E` message expiry,
//! `%F` payload format indicator, `%P` user properties (`key:value`, space separated), `%R`
//! response topic, `%D` correlation data, `%S` subscription identifiers. Escapes: `\\`, `\0`,
//! `\a`, `\e`, `\n`, `\r`, `\t`, `\v`. Like Mosquitto, a newline follows unless `-N` is given
//! (the caller's business); an unknown code is copied as is.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::client::ReceivedMessage;

/// Render `format` for `message` at wall-clock time `now`.
pub fn format_message(format: &str, message: &ReceivedMessage, now: SystemTime) -> Vec<u8> {
    let mut out = Vec::with_capacity(format.len() + message.payload.len());
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => match chars.next() {
                Some(code) => code_into(&mut out, code, message, now),
                None => out.push(b'%'),
            },
            '\\' => match chars.next() {
                Some(e) => escape_into(&mut out, e),
                None => out.push(b'\\'),
            },
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out
}

fn escape_into(out: &mut Vec<u8>, e: char) {
    let byte = match e {
        '\\' => b'\\',
        '0' => 0,
        'a' => 0x07,
        'e' => 0x1b,
        'n' => b'\n',
        'r' => b'\r',
        't' => b'\t',
        'v' => 0x0b,
        other => {
            out.push(b'\\');
            let mut buf = [0u8; 4];
            out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            return;
        }
    };
    out.push(byte);
}

fn code_into(out: &mut Vec<u8>, code: char, m: &ReceivedMessage, now: SystemTime) {
    use std::io::Write;
    let p = &m.properties;
    // Writing to a Vec cannot fail.
    let _ = match code {
        '%' => write!(out, "%"),
        't' => write!(out, "{}", m.topic),
        'p' => out.write_all(&m.payload),
        'q' => write!(out, "{}", m.qos.bits()),
        'r' => write!(out, "{}", u8::from(m.retain)),
        'l' => write!(out, "{}", m.payload.len()),
        'm' => write!(out, "{}", m.packet_id.unwrap_or(0)),
        'x' => m.payload.iter().try_for_each(|b| write!(out, "{b:02x}")),
        'X' => m.payload.iter().try_for_each(|b| write!(out, "{b:02X}")),
        'I' => write!(out, "{}", iso8601(now)),
        'U' => {
            let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
            write!(out, "{}.{:09}", d.as_secs(), d.subsec_nanos())
        }
        'C' => write!(out, "{}", p.content_type.as_deref().unwrap_or_default()),
        'E' => match p.message_expiry_interval {
            Some(e) => write!(out, "{e}"),
            None => Ok(()),
        },
        'F' => match p.payload_format_utf8 {
            Some(f) => write!(out, "{}", u8::from(f)),
            None => Ok(()),
        },
        'P' => {
            let pairs: Vec<String> = p
                .user_properties
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect();
            write!(out, "{}", pairs.join(" "))
        }
        'R' => write!(out, "{}", p.response_topic.as_deref().unwrap_or_default()),
        'D' => out.write_all(p.correlation_data.as_deref().unwrap_or_default()),
        'S' => {
            let ids: Vec<String> = p
                .subscription_identifiers
                .iter()
                .map(u32::to_string)
                .collect();
            write!(out, "{}", ids.join(","))
        }
        other => write!(out, "%{other}"),
    };
}

/// `2024-05-01T12:00:00+0000` (UTC; Mosquitto prints local time with its offset).
pub fn iso8601(now: SystemTime) -> String {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, mo, d) = civil_from_days(days);
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}+0000",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::MessageProperties;
    use std::time::Duration;
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

    #[test]
    fn mosquitto_codes() {
        let t = UNIX_EPOCH + Duration::new(1_795_580_054, 499_069_371);
        let out = format_message("%t|%p|%q|%r|%l|%m|%x|%X|%%|%I|%U", &msg(), t);
        assert_eq!(
            out,
            b"a/b|hi\x01|1|1|3|7|686901|686901|%|2026-11-25T04:14:14+0000|1795580054.499069371"
        );
    }

    #[test]
    fn escapes_and_unknown_codes() {
        let out = format_message(r"%t\t%p\n\e\\%Z\q", &msg(), UNIX_EPOCH);
        assert_eq!(out, b"a/b\thi\x01\n\x1b\\%Z\\q");
        assert_eq!(format_message("100%", &msg(), UNIX_EPOCH), b"100%");
    }

    #[test]
    fn v5_properties() {
        let out = format_message("%C %P", &msg(), UNIX_EPOCH);
        assert_eq!(out, b"text/plain k:v a:b");
    }

    #[test]
    fn dates() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00+0000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(iso8601(leap), "2000-02-29T00:00:00+0000");
    }
}
