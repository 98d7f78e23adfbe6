//! Checks shared by the fuzz targets in `fuzz_targets/`.
//!
//! Every helper panics (via `assert!`) when the codec breaks one of its documented promises, so
//! libFuzzer records the input as a crash. The targets themselves stay a few lines each.

use std::fmt::Write as _;

use wren_codec::{
    DecodeError, DecodeOptions, Packet, Properties, ProtocolVersion, Status, decode,
    header::parse_fixed_header,
};

/// A `max_packet_size` taken from the first four input bytes (little-endian), so the fuzzer
/// controls it without a prefix that would spoil raw-packet seeds: for a real packet these bytes
/// are its header and give a mix of tiny and huge limits.
pub fn limit_from(data: &[u8]) -> u32 {
    let mut le = [0u8; 4];
    for (dst, src) in le.iter_mut().zip(data) {
        *dst = *src;
    }
    u32::from_le_bytes(le)
}

/// Read every lazily decoded list of `props` to the end, checking `len()` agrees with iteration.
pub fn touch_properties(props: &Properties<'_>) {
    let users = props.user_properties.iter().count();
    assert_eq!(users, props.user_properties.len());
    for (k, v) in props.user_properties {
        assert!(!k.contains('\0') && !v.contains('\0'));
    }
    let ids = props.subscription_identifiers.iter().count();
    assert_eq!(ids, props.subscription_identifiers.len());
    for id in props.subscription_identifiers {
        assert!((1..=268_435_455).contains(&id), "subscription id {id}");
    }
    if let Some(t) = props.response_topic {
        assert!(!t.is_empty());
    }
}

/// Read every lazy list a packet holds (subscriptions, filters, reason codes, properties) and
/// format it with `Debug`: none of this may panic on anything `decode` accepted.
pub fn touch_packet(packet: &Packet<'_>) {
    match packet {
        Packet::Connect(c) => {
            touch_properties(&c.properties);
            if let Some(w) = &c.will {
                touch_properties(&w.properties);
                assert!(!w.topic.is_empty());
            }
        }
        Packet::ConnAck(p) => touch_properties(&p.properties),
        Packet::Publish(p) => touch_properties(&p.properties),
        Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
            touch_properties(&a.properties)
        }
        Packet::Subscribe(s) => {
            touch_properties(&s.properties);
            let mut n = 0usize;
            for sub in s.subscriptions {
                // A decoded filter must pass the same validation a caller's would.
                assert!(wren_codec::TopicFilter::new(sub.filter.as_str()).is_ok());
                n += 1;
            }
            assert!(n >= 1, "SUBSCRIBE with no subscription decoded");
            assert_eq!(n, s.subscriptions.len());
        }
        Packet::SubAck(s) | Packet::UnsubAck(s) => {
            touch_properties(&s.properties);
            let n = s.reason_codes.iter().count();
            assert_eq!(n, s.reason_codes.len());
        }
        Packet::Unsubscribe(u) => {
            touch_properties(&u.properties);
            let n = u.filters.iter().count();
            assert!(n >= 1, "UNSUBSCRIBE with no filter decoded");
            assert_eq!(n, u.filters.len());
        }
        Packet::PingReq | Packet::PingResp => {}
        Packet::Disconnect(d) | Packet::Auth(d) => touch_properties(&d.properties),
    }
    let mut s = String::new();
    write!(s, "{packet:?}").expect("formatting into a String cannot fail");
    assert!(!s.is_empty());
}

/// The error must describe itself without panicking.
pub fn touch_error(e: &DecodeError) {
    let mut s = String::new();
    write!(s, "{e} {e:?} {:?} {:?}", e.kind(), e.reason_code()).expect("String write");
    assert!(!s.is_empty());
}

/// A few cut points inside `0..len`: the edges, the header boundary and some spread between.
fn cut_points(len: usize, header_len: usize) -> Vec<usize> {
    if len <= 48 {
        return (0..len).collect();
    }
    let mut cuts = vec![
        0,
        1,
        header_len.saturating_sub(1),
        header_len,
        len / 2,
        len - 1,
    ];
    cuts.extend((1..8).map(|k| len * k / 8));
    cuts.retain(|&c| c < len);
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// The `decode_v311` / `decode_v5` property: decode `data` with no limit and with a fuzzer-chosen
/// one, and check every promise of [`decode`]'s documentation.
pub fn check_decode(data: &[u8], version: ProtocolVersion) {
    let unlimited = DecodeOptions::new(version);
    let result = decode(data, unlimited);
    match &result {
        Ok(Status::Complete(d)) => {
            assert!(d.consumed <= data.len(), "consumed past the input");
            assert!(d.consumed >= 2, "a packet is at least two bytes");
            touch_packet(&d.packet);
            let packet_bytes = &data[..d.consumed];
            // Bytes after the packet do not change it.
            assert_eq!(decode(packet_bytes, unlimited), result);
            let (_, header) = parse_fixed_header(packet_bytes, version)
                .expect("a decoded packet has a valid fixed header");
            let header_len = usize::from(header.header_len);
            assert_eq!(header.packet_len() as usize, d.consumed);
            // Every proper prefix is Partial, and once the header is complete it names exactly
            // the missing byte count.
            for cut in cut_points(d.consumed, header_len) {
                match decode(&packet_bytes[..cut], unlimited) {
                    Ok(Status::Partial(n)) => {
                        assert!(n >= 1);
                        if cut >= header_len {
                            assert_eq!(n, d.consumed - cut, "cut at {cut}");
                        }
                    }
                    other => panic!("prefix of {cut} bytes gave {other:?}"),
                }
            }
        }
        Ok(Status::Partial(n)) => {
            assert!(*n >= 1);
            // A prefix of a prefix is still a prefix.
            if !data.is_empty() {
                let shorter = decode(&data[..data.len() - 1], unlimited);
                assert!(
                    matches!(shorter, Ok(Status::Partial(_))),
                    "shorter prefix gave {shorter:?}"
                );
            }
        }
        Err(e) => touch_error(e),
    }

    // With a maximum packet size: the same outcome, except that a packet whose fixed header is
    // complete and which is larger than the limit is refused, before its body is needed.
    let limit = limit_from(data);
    let limited = decode(data, unlimited.with_max_packet_size(limit));
    let size = match parse_fixed_header(data, version) {
        Ok((_, h)) => Some(h.packet_len()),
        Err(_) => None,
    };
    match size {
        Some(size) if size > limit => assert_eq!(
            limited,
            Err(DecodeError::PacketTooLarge { size, max: limit }),
            "limit {limit}"
        ),
        _ => assert_eq!(limited, result, "limit {limit}"),
    }
}

/// The `roundtrip` property for one version: whatever decodes re-encodes, `encoded_len` tells the
/// length `encode` writes, and the bytes decode to an equal packet that re-encodes identically.
pub fn check_roundtrip(data: &[u8], version: ProtocolVersion) {
    let options = DecodeOptions::new(version);
    let Ok(Status::Complete(d)) = decode(data, options) else {
        return;
    };
    let packet = d.packet;
    let len = match packet.encoded_len(version) {
        Ok(len) => len,
        Err(e) => panic!("decoded packet {packet:?} has no encoded length: {e:?}"),
    };
    let mut buf = vec![0u8; len];
    let written = match packet.encode(version, &mut buf) {
        Ok(n) => n,
        Err(e) => panic!("decoded packet {packet:?} does not encode: {e:?}"),
    };
    assert_eq!(written, len, "encoded_len disagrees with encode");
    // One byte short must be refused, naming the size needed, and must not panic.
    assert_eq!(
        packet.encode(version, &mut buf[..len - 1].to_vec()),
        Err(wren_codec::EncodeError::BufferTooSmall { needed: len })
    );
    // A CONNECT is read by its own protocol level; every other packet by the connection's.
    let again = match decode(&buf, options) {
        Ok(Status::Complete(again)) => again,
        other => panic!("re-encoded {packet:?} as {buf:02x?}, which decodes to {other:?}"),
    };
    assert_eq!(again.consumed, len);
    assert_eq!(again.packet, packet, "re-encoded bytes {buf:02x?}");
    // The canonical form is a fixed point.
    let mut buf2 = vec![0u8; len];
    assert_eq!(again.packet.encode(version, &mut buf2), Ok(len));
    assert_eq!(buf2, buf);
    // A decoded packet can be re-encoded for the other version too (a broker forwarding a 5.0
    // PUBLISH to a 3.1.1 subscriber). It may be refused with an error, never a panic, and if it
    // encodes, the length must be right and the bytes must decode.
    let other = if version.is_v5() {
        ProtocolVersion::V311
    } else {
        ProtocolVersion::V5
    };
    if let Ok(len) = packet.encoded_len(other) {
        let mut buf = vec![0u8; len];
        assert_eq!(packet.encode(other, &mut buf), Ok(len));
        match decode(&buf, DecodeOptions::new(other)) {
            Ok(Status::Complete(d)) => {
                assert_eq!(d.consumed, len);
                assert_eq!(d.packet.packet_type(), packet.packet_type());
            }
            res => panic!("{packet:?} encoded for {other:?} as {buf:02x?} decodes to {res:?}"),
        }
    }
}
