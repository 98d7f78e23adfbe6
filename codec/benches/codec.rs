//! wren-codec against rumqttc's `mqttbytes` (v4 for 3.1.1, v5 for 5.0), decode and encode, on the
//! same packets, side by side in one run. After the criterion groups a table prints
//! `mqttbytes time / wren time` for every row (> 1 means wren is faster).
//!
//! Run: `cargo bench -p wren-codec --bench codec` (about 2 minutes).
//!
//! What is timed, so that the comparison is fair:
//! - Both sides work on the same bytes: each packet is built once with wren, encoded, and the
//!   `mqttbytes` structs are obtained by decoding those bytes with `mqttbytes` (and the setup checks
//!   that `mqttbytes` encodes them back to the same length).
//! - Decode, wren: `decode(&bytes)`, plus reading every list it returns lazily (SUBSCRIBE's
//!   filters, CONNECT's user properties), so wren is charged for the work `mqttbytes` does eagerly.
//! - Decode, mqttbytes: `read(&mut BytesMut)`, its receive path. The `BytesMut` holding a copy of
//!   the packet is prepared outside the timed loop (batches of 64) and the decoded packet is
//!   dropped outside it too, so freeing its `String`s and `Vec`s is not charged to `mqttbytes`.
//! - Encode, both: from an already built packet into a reused buffer (`&mut [u8]` for wren, a
//!   cleared `BytesMut` with enough capacity for `mqttbytes`).

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BatchSize, Criterion};
use rumqttc::mqttbytes::v4;
use rumqttc::v5::mqttbytes::v5;
use wren_codec::{DecodeOptions, Packet, ProtocolVersion, Status, decode};

mod common;
use common::*;

/// The `mqttbytes` side of a row: the packet decoded from wren's bytes.
// Returned by value from the timed decode, as `mqttbytes` itself returns its packets.
#[allow(clippy::large_enum_variant)]
enum Reference {
    V4(v4::Packet),
    V5(v5::Packet),
}

impl Reference {
    fn read(bytes: &[u8], v5: bool) -> Reference {
        let mut buf = BytesMut::from(bytes);
        let r = if v5 {
            Reference::V5(v5::Packet::read(&mut buf, None).expect("mqttbytes v5 decodes"))
        } else {
            Reference::V4(v4::read(&mut buf, usize::MAX).expect("mqttbytes v4 decodes"))
        };
        assert!(buf.is_empty(), "mqttbytes took the whole packet");
        r
    }

    fn write(&self, out: &mut BytesMut) -> usize {
        match self {
            Reference::V5(p) => p.write(out).expect("encodes"),
            Reference::V4(v4::Packet::Publish(p)) => p.write(out).expect("encodes"),
            Reference::V4(v4::Packet::Connect(p)) => p.write(out).expect("encodes"),
            Reference::V4(v4::Packet::Subscribe(p)) => p.write(out).expect("encodes"),
            Reference::V4(other) => unreachable!("no bench row for {other:?}"),
        }
    }
}

/// One comparison row: a packet in one version.
struct Row<'a> {
    name: &'static str,
    version: ProtocolVersion,
    packet: Packet<'a>,
}

fn bench_row(c: &mut Criterion, row: &Row<'_>) {
    let v5 = row.version.is_v5();
    let mut bytes = vec![0u8; row.packet.encoded_len(row.version).expect("encodable")];
    let n = row.packet.encode(row.version, &mut bytes).expect("encodes");
    assert_eq!(n, bytes.len());
    let opts = DecodeOptions::new(row.version);
    let reference = Reference::read(&bytes, v5);
    let mut out = BytesMut::with_capacity(4096);
    // (`mqttbytes`' `write` returns the body length for some packets, so compare the buffer.)
    reference.write(&mut out);
    assert_eq!(out.len(), bytes.len(), "{}: same size", row.name);
    if out[..] != bytes[..] {
        println!(
            "note: {}: mqttbytes encodes the fields in another order",
            row.name
        );
    }
    match decode(&bytes, opts) {
        Ok(Status::Complete(d)) => assert_eq!(d.packet, row.packet),
        other => panic!("{}: {other:?}", row.name),
    }

    let mut g = c.benchmark_group(format!("decode_{}", row.name));
    g.bench_function("wren", |b| {
        b.iter(|| match decode(black_box(&bytes), opts) {
            Ok(Status::Complete(d)) => read_lists(&d.packet) + d.consumed,
            _ => unreachable!(),
        })
    });
    g.bench_function("mqttbytes", |b| {
        b.iter_batched_ref(
            || BytesMut::from(&bytes[..]),
            |buf| {
                if v5 {
                    Reference::V5(v5::Packet::read(buf, None).expect("decodes"))
                } else {
                    Reference::V4(v4::read(buf, usize::MAX).expect("decodes"))
                }
            },
            BatchSize::NumIterations(64),
        )
    });
    g.finish();

    let mut g = c.benchmark_group(format!("encode_{}", row.name));
    let mut wren_buf = vec![0u8; 4096];
    g.bench_function("wren", |b| {
        b.iter(|| {
            black_box(&row.packet)
                .encode(row.version, &mut wren_buf)
                .expect("encodes")
        })
    });
    g.bench_function("mqttbytes", |b| {
        b.iter(|| {
            out.clear();
            black_box(&reference).write(&mut out)
        })
    });
    g.finish();
}

/// Criterion's output directory: `<target>/criterion`, the bench binary being
/// `<target>/release/deps/codec-<hash>`.
fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.ancestors().nth(3)?.join("criterion"))
}

/// The median point estimate (ns) from a criterion `estimates.json`, read without a JSON crate.
fn median_ns(group: &str, function: &str) -> Option<f64> {
    let path = criterion_dir()?
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let json = std::fs::read_to_string(path).ok()?;
    let median = json.get(json.find("\"median\"")?..)?;
    let start = median.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let rest = median.get(start..)?;
    let end = rest.find([',', '}'])?;
    rest.get(..end)?.trim().parse().ok()
}

fn ratio_table(rows: &[&str]) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "| row | wren (ns) | mqttbytes (ns) | mqttbytes / wren |\n|---|---:|---:|---:|"
    );
    for row in rows {
        for op in ["decode", "encode"] {
            let group = format!("{op}_{row}");
            let wren = median_ns(&group, "wren");
            let mqttbytes = median_ns(&group, "mqttbytes");
            let fmt = |x: Option<f64>| x.map_or("n/a".to_owned(), |x| format!("{x:.1}"));
            let ratio = match (wren, mqttbytes) {
                (Some(w), Some(m)) if w > 0.0 => format!("{:.2}x", m / w),
                _ => "n/a".to_owned(),
            };
            let _ = writeln!(
                t,
                "| {group} | {} | {} | {ratio} |",
                fmt(wren),
                fmt(mqttbytes)
            );
        }
    }
    t
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_millis(1500))
        .sample_size(50)
        .configure_from_args();

    let payload_64 = vec![0x5Au8; 64];
    let payload_1k = vec![0xA5u8; 1024];
    let subs_v311 = subscriptions(false);
    let subs_v5 = subscriptions(true);
    let rows = [
        Row {
            name: "publish_v311_qos1_64B",
            version: ProtocolVersion::V311,
            packet: publish(&payload_64),
        },
        Row {
            name: "publish_v311_qos1_1KiB",
            version: ProtocolVersion::V311,
            packet: publish(&payload_1k),
        },
        Row {
            name: "publish_v5_qos1_64B",
            version: ProtocolVersion::V5,
            packet: publish(&payload_64),
        },
        Row {
            name: "publish_v5_qos1_1KiB",
            version: ProtocolVersion::V5,
            packet: publish(&payload_1k),
        },
        Row {
            name: "connect_v311_will",
            version: ProtocolVersion::V311,
            packet: connect(ProtocolVersion::V311),
        },
        Row {
            name: "connect_v5_will_props",
            version: ProtocolVersion::V5,
            packet: connect(ProtocolVersion::V5),
        },
        Row {
            name: "subscribe_v311_8_filters",
            version: ProtocolVersion::V311,
            packet: subscribe(false, &subs_v311),
        },
        Row {
            name: "subscribe_v5_8_filters",
            version: ProtocolVersion::V5,
            packet: subscribe(true, &subs_v5),
        },
    ];
    for row in &rows {
        bench_row(&mut c, row);
    }
    c.final_summary();

    let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
    println!("\nmedian time per packet; ratio > 1 means wren is faster\n");
    println!("{}", ratio_table(&names));
}
