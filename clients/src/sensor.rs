//! The physics of `wren-sensor`: sensor kinds with their units and ranges, bounded random walks
//! that vary slowly and realistically, topic templates and payload formats.

use std::fmt::Write;

/// One kind of sensor: its unit, physical range, typical start and largest step per reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kind {
    /// Name used in topics and `--kinds`.
    pub name: &'static str,
    /// Unit of the readings.
    pub unit: &'static str,
    /// Lowest possible reading.
    pub min: f64,
    /// Highest possible reading.
    pub max: f64,
    /// Typical value readings start around.
    pub typical: f64,
    /// Largest change between two readings.
    pub step: f64,
    /// Decimal places printed.
    pub decimals: usize,
}

/// Every kind `--kinds` accepts.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "temperature",
        unit: "°C",
        min: -10.0,
        max: 40.0,
        typical: 21.0,
        step: 0.2,
        decimals: 2,
    },
    Kind {
        name: "humidity",
        unit: "%",
        min: 0.0,
        max: 100.0,
        typical: 45.0,
        step: 0.5,
        decimals: 1,
    },
    Kind {
        name: "pressure",
        unit: "hPa",
        min: 950.0,
        max: 1050.0,
        typical: 1013.0,
        step: 0.3,
        decimals: 1,
    },
    Kind {
        name: "co2",
        unit: "ppm",
        min: 400.0,
        max: 5000.0,
        typical: 600.0,
        step: 15.0,
        decimals: 0,
    },
    Kind {
        name: "motion",
        unit: "",
        min: 0.0,
        max: 1.0,
        typical: 0.0,
        step: 1.0,
        decimals: 0,
    },
    Kind {
        name: "battery",
        unit: "%",
        min: 0.0,
        max: 100.0,
        typical: 95.0,
        step: 0.05,
        decimals: 2,
    },
    Kind {
        name: "light",
        unit: "lx",
        min: 0.0,
        max: 2000.0,
        typical: 300.0,
        step: 20.0,
        decimals: 0,
    },
    Kind {
        name: "noise",
        unit: "dB",
        min: 20.0,
        max: 110.0,
        typical: 40.0,
        step: 1.5,
        decimals: 1,
    },
];

/// Look a kind up by name (case-insensitive).
pub fn kind(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|k| k.name.eq_ignore_ascii_case(name))
}

/// A bounded random walk in a kind's range.
#[derive(Debug, Clone)]
pub struct Walk {
    kind: &'static Kind,
    value: f64,
    rng: fastrand::Rng,
}

impl Walk {
    /// A walk starting near the kind's typical value, driven by `rng`.
    pub fn new(kind: &'static Kind, mut rng: fastrand::Rng) -> Self {
        let spread = (kind.max - kind.min) * 0.02;
        let value = if kind.name == "motion" {
            0.0
        } else {
            (kind.typical + (rng.f64() * 2.0 - 1.0) * spread).clamp(kind.min, kind.max)
        };
        Walk { kind, value, rng }
    }

    /// The current reading.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// Advance one reading.
    pub fn step(&mut self) -> f64 {
        let k = self.kind;
        self.value = match k.name {
            // Presence flips now and then; mostly nothing moves.
            "motion" => {
                if self.rng.f64() < 0.15 {
                    1.0 - self.value
                } else {
                    self.value
                }
            }
            // Batteries only drain; a flat one is replaced.
            "battery" => {
                let v = self.value - self.rng.f64() * k.step;
                if v <= k.min { k.max } else { v }
            }
            _ => {
                // A small pull back towards the typical value keeps the walk realistic instead
                // of drifting to a bound; reflection keeps it inside the physical range.
                let pull = (k.typical - self.value) * 0.02;
                let v = self.value + (self.rng.f64() * 2.0 - 1.0) * k.step + pull;
                if v > k.max {
                    (2.0 * k.max - v).max(k.min)
                } else if v < k.min {
                    (2.0 * k.min - v).min(k.max)
                } else {
                    v
                }
            }
        };
        self.value
    }
}

/// Payload format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// The number alone, e.g. `21.53`.
    Plain,
    /// A JSON object with sensor, kind, room, value, unit and timestamp.
    Json,
}

/// Identity of one emulated sensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `sensor-<n>`.
    pub id: String,
    /// 1-based index in the fleet.
    pub n: usize,
    /// Room name.
    pub room: String,
    /// Kind name.
    pub kind: &'static str,
}

/// Expand `{room}`, `{kind}`, `{id}` and `{n}` in a topic template.
pub fn expand(template: &str, who: &Identity) -> String {
    template
        .replace("{room}", &who.room)
        .replace("{kind}", who.kind)
        .replace("{id}", &who.id)
        .replace("{n}", &who.n.to_string())
}

/// The payload for a reading.
pub fn payload(format: Format, who: &Identity, kind: &Kind, value: f64, unix_ms: u128) -> String {
    let number = format!("{value:.prec$}", prec = kind.decimals);
    match format {
        Format::Plain => number,
        Format::Json => {
            let mut s = String::new();
            let _ = write!(
                s,
                "{{\"sensor\":\"{}\",\"kind\":\"{}\",\"room\":\"{}\",\"value\":{},\"unit\":\"{}\",\"ts\":{}}}",
                json_escape(&who.id),
                kind.name,
                json_escape(&who.room),
                number,
                kind.unit,
                unix_ms
            );
            s
        }
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
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
    out
}

/// Parse a duration: `30`, `30s`, `500ms`, `2m`, `1h`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    number
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(|v| std::time::Duration::from_secs_f64(v * scale))
        .ok_or_else(|| format!("invalid duration '{s}' (e.g. 30, 30s, 500ms, 2m, 1h)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_stay_in_range_and_move_slowly() {
        for k in KINDS {
            let mut w = Walk::new(k, fastrand::Rng::with_seed(7));
            let mut prev = w.value();
            for _ in 0..5000 {
                let v = w.step();
                assert!((k.min..=k.max).contains(&v), "{} {v}", k.name);
                if k.name != "battery" {
                    // Never more than a step (plus the small pull) at once.
                    assert!(
                        (v - prev).abs() <= k.step * 1.5 + (k.max - k.min) * 0.02,
                        "{} {prev}->{v}",
                        k.name
                    );
                }
                prev = v;
            }
        }
    }

    #[test]
    fn seeded_walks_are_deterministic() {
        let k = kind("temperature").unwrap();
        let mut a = Walk::new(k, fastrand::Rng::with_seed(42));
        let mut b = Walk::new(k, fastrand::Rng::with_seed(42));
        for _ in 0..100 {
            assert_eq!(a.step().to_bits(), b.step().to_bits());
        }
        let mut c = Walk::new(k, fastrand::Rng::with_seed(43));
        assert_ne!(a.step().to_bits(), c.step().to_bits());
    }

    #[test]
    fn templates_and_payloads() {
        let who = Identity {
            id: "sensor-3".into(),
            n: 3,
            room: "lab".into(),
            kind: "co2",
        };
        assert_eq!(
            expand("site/{room}/{kind}/{id}", &who),
            "site/lab/co2/sensor-3"
        );
        assert_eq!(expand("s{n}/status", &who), "s3/status");
        let k = kind("co2").unwrap();
        assert_eq!(payload(Format::Plain, &who, k, 612.4, 0), "612");
        assert_eq!(
            payload(
                Format::Json,
                &who,
                kind("temperature").unwrap(),
                21.456,
                1700
            ),
            r#"{"sensor":"sensor-3","kind":"temperature","room":"lab","value":21.46,"unit":"°C","ts":1700}"#
        );
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("2m"),
            Ok(std::time::Duration::from_secs(120))
        );
        assert_eq!(
            parse_duration("500ms"),
            Ok(std::time::Duration::from_millis(500))
        );
        assert_eq!(
            parse_duration("1.5"),
            Ok(std::time::Duration::from_millis(1500))
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }
}
