//! Results: one machine-readable JSON line per scenario run, a human table, and the /proc
//! readings (CPU time, resident memory) that go into them.

use std::fmt::Write as _;
use std::time::Duration;

/// A value in a result line.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// An integer count.
    Int(u64),
    /// A measurement.
    Num(f64),
    /// A name.
    Str(String),
    /// Not measured (e.g. no broker pid for memory).
    Null,
}

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Int(v)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        if v.is_finite() {
            Value::Num(v)
        } else {
            Value::Null
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_owned())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// The result of one scenario run: ordered fields, the first ones shared by every scenario.
#[derive(Debug, Clone, Default)]
pub struct Report {
    fields: Vec<(&'static str, Value)>,
}

impl Report {
    /// A report for `scenario` run in `mode` ("bounded", "unbounded" or "-") against `broker`.
    pub fn new(scenario: &str, mode: &str, broker: &str) -> Report {
        let mut r = Report::default();
        r.set("scenario", scenario);
        r.set("mode", mode);
        r.set("broker", broker);
        r
    }

    /// Set (or replace) a field.
    pub fn set(&mut self, key: &'static str, value: impl Into<Value>) {
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.fields.push((key, value)),
        }
    }

    /// A field's value.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The report as one JSON object on one line.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            let _ = write!(s, "\"{k}\":");
            match v {
                Value::Int(n) => {
                    let _ = write!(s, "{n}");
                }
                Value::Num(x) => {
                    let _ = write!(s, "{x:.3}");
                }
                Value::Str(t) => json_str(&mut s, t),
                Value::Null => s.push_str("null"),
            }
        }
        s.push('}');
        s
    }
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::Int(n)) => n.to_string(),
        Some(Value::Num(x)) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(Value::Num(x)) => format!("{x:.2}"),
        Some(Value::Str(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
    }
}

/// A human table of the reports: the headline number of each scenario and its checks.
pub fn table(reports: &[Report]) -> String {
    let header = [
        "scenario",
        "mode",
        "broker",
        "result",
        "unit",
        "delivered",
        "expected",
        "gen cpu",
        "broker cpu",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    for r in reports {
        let (result, unit) = headline(r);
        rows.push(vec![
            cell(r.get("scenario")),
            cell(r.get("mode")),
            cell(r.get("broker")),
            result,
            unit,
            cell(r.get("delivered")),
            cell(r.get("expected")),
            cell(r.get("gen_cpu")),
            cell(r.get("broker_cpu")),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        for (c, text) in row.iter().enumerate() {
            let _ = write!(out, "{text:<w$}  ", w = widths[c]);
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

/// The number a scenario is judged by, and its unit.
fn headline(r: &Report) -> (String, String) {
    match r.get("scenario") {
        Some(Value::Str(s)) if s == "latency" => (
            format!(
                "p50 {} p99 {} p99.9 {}",
                cell(r.get("p50_us")),
                cell(r.get("p99_us")),
                cell(r.get("p999_us"))
            ),
            "us".into(),
        ),
        Some(Value::Str(s)) if s == "idle" || s == "idle-sub" => (
            format!(
                "{} B/conn, {} conn/s",
                cell(r.get("bytes_per_conn")),
                cell(r.get("connect_rate"))
            ),
            "".into(),
        ),
        _ => (cell(r.get("rate")), cell(r.get("unit"))),
    }
}

/// The `q`-quantile (0..=1) of sorted samples, nearest rank.
pub fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// User + system CPU time of a process (`None` = this one) from /proc/<pid>/stat.
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".into(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // /proc reports clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Resident set size of a process in bytes, from VmRSS in /proc/<pid>/status.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_keeps_field_order_and_escapes() {
        let mut r = Report::new("fan-in", "bounded", "mos\"quitto");
        r.set("rate", 1234.5678);
        r.set("delivered", 10u64);
        r.set("rss", None::<u64>);
        r.set("delivered", 11u64);
        assert_eq!(
            r.to_json(),
            "{\"scenario\":\"fan-in\",\"mode\":\"bounded\",\"broker\":\"mos\\\"quitto\",\
             \"rate\":1234.568,\"delivered\":11,\"rss\":null}"
        );
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let s: Vec<u64> = (1..=1000).collect();
        assert_eq!(quantile(&s, 0.5), Some(500));
        assert_eq!(quantile(&s, 0.99), Some(990));
        assert_eq!(quantile(&s, 0.999), Some(999));
        assert_eq!(quantile(&s, 1.0), Some(1000));
        assert_eq!(quantile(&s, 0.0), Some(1));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn reads_own_process_stats() {
        assert!(cpu_time(None).is_some());
        let rss = rss_bytes(std::process::id()).unwrap();
        assert!(rss > 100 * 1024, "rss {rss}");
    }

    #[test]
    fn table_shows_headline_per_scenario() {
        let mut a = Report::new("fan-in", "bounded", "wren");
        a.set("rate", 250_000.0);
        a.set("unit", "msg/s");
        let mut b = Report::new("latency", "-", "wren");
        b.set("p50_us", 41.0);
        b.set("p99_us", 120.0);
        b.set("p999_us", 300.0);
        let t = table(&[a, b]);
        assert!(t.contains("250000"), "{t}");
        assert!(t.contains("p50 41.00 p99 120 p99.9 300"), "{t}");
        assert_eq!(t.lines().count(), 3);
    }
}
