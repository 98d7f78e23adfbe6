//! Failing input: one hand-built packet (or more) for every `DecodeError` variant `decode` can
//! produce, each asserting the exact variant, its `kind()` and its `reason_code()`, and the same
//! error through `StreamDecoder` and `io::read_packet`. Then every way an encode can fail.

mod common;

use common::*;
use wren_codec::header::PacketType;
use wren_codec::io::{ReadError, read_packet};
use wren_codec::stream::StreamDecoder;
use wren_codec::*;

const M: ErrorKind = ErrorKind::Malformed;
const P: ErrorKind = ErrorKind::ProtocolError;

fn reason_for(kind: ErrorKind) -> ReasonCode {
    match kind {
        ErrorKind::Malformed => ReasonCode(0x81),
        ErrorKind::ProtocolError => ReasonCode(0x82),
        ErrorKind::TooLarge => ReasonCode(0x95),
        ErrorKind::UnsupportedProtocol => ReasonCode(0x84),
    }
}

/// `bytes` on a `version` connection fail with exactly `want`, of class `kind`, by every entry
/// point.
#[track_caller]
fn expect(version: ProtocolVersion, bytes: &[u8], want: DecodeError, kind: ErrorKind) {
    let opts = DecodeOptions::new(version);
    let got = decode_err(bytes, version);
    assert_eq!(got, want, "{version:?} {bytes:02x?}");
    assert_eq!(got.kind(), kind, "kind of {want:?}");
    assert_eq!(
        got.reason_code(),
        reason_for(kind),
        "reason code of {want:?}"
    );
    assert!(!got.as_str().is_empty());
    assert!(!got.to_string().is_empty());
    if bytes.len() <= 4096 {
        let mut d = StreamDecoder::<4096>::new(opts);
        assert_eq!(d.feed(bytes), bytes.len());
        assert_eq!(d.next_packet(), Err(want), "stream decoder");
        let mut buf = [0u8; 4096];
        assert_eq!(
            read_packet(&mut &bytes[..], &mut buf, opts),
            Err(ReadError::Decode(want)),
            "read_packet"
        );
    }
}

/// A minimal CONNECT body: protocol name, level, flags, keep alive 0 (and 5.0 property length 0).
fn connect_head(level: u8, flags: u8) -> Vec<u8> {
    let mut b = vec![0x00, 0x04, b'M', b'Q', b'T', b'T', level, flags, 0x00, 0x00];
    if level == 5 {
        b.push(0x00);
    }
    b
}

// ------------------------------------------------------------------ fixed header

#[test]
fn reserved_packet_type_0() {
    for version in [V31, V311, V5] {
        expect(version, &[0x00, 0x00], DecodeError::InvalidPacketType(0), P);
        // Known from the first byte alone.
        assert_eq!(
            decode(&[0x00], DecodeOptions::new(version)),
            Err(DecodeError::InvalidPacketType(0))
        );
    }
}

#[test]
fn auth_on_a_v311_connection() {
    for version in [V31, V311] {
        expect(
            version,
            &[0xF0, 0x00],
            DecodeError::InvalidPacketType(15),
            P,
        );
    }
}

/// A packet type only the other side sends is refused from the first byte, whatever follows
/// (flags, a length over any limit, a body that would not parse), by every entry point; with
/// `Sender::Any` the same bytes decode (or fail) as before.
#[test]
fn packet_type_from_the_wrong_side() {
    let from_server: [(u8, PacketType); 4] = [
        (0x20, PacketType::ConnAck),
        (0x90, PacketType::SubAck),
        (0xB0, PacketType::UnsubAck),
        (0xD0, PacketType::PingResp),
    ];
    let from_client: [(u8, PacketType); 4] = [
        (0x10, PacketType::Connect),
        (0x82, PacketType::Subscribe),
        (0xA2, PacketType::Unsubscribe),
        (0xC0, PacketType::PingReq),
    ];
    for version in [V31, V311, V5] {
        for (sent_by_server, (first, t)) in from_server
            .iter()
            .map(|x| (true, *x))
            .chain(from_client.iter().map(|x| (false, *x)))
        {
            let opts = if sent_by_server {
                DecodeOptions::new(version).from_client()
            } else {
                DecodeOptions::new(version).from_server()
            };
            let want = DecodeError::WrongDirection(t);
            assert_eq!(want.kind(), P);
            assert_eq!(want.reason_code(), ReasonCode(0x82));
            for bytes in [
                &[first][..],
                &[first | 0x0F, 0x00],
                &[first, 0xFF, 0xFF, 0xFF, 0x7F],
                &[first, 0x03, 0xFF, 0xFF, 0xFF],
            ] {
                assert_eq!(decode(bytes, opts).map(|_| ()), Err(want), "{bytes:02x?}");
                let mut d = StreamDecoder::<64>::new(opts);
                d.feed(bytes);
                assert_eq!(
                    d.next_packet().map(|_| ()),
                    Err(want),
                    "stream {bytes:02x?}"
                );
                let mut buf = [0u8; 64];
                assert_eq!(
                    read_packet(&mut &bytes[..], &mut buf, opts).map(|_| ()),
                    Err(ReadError::Decode(want)),
                    "read_packet {bytes:02x?}"
                );
            }
            // From the side that does send it, a first byte alone is a partial packet.
            let mut other = opts;
            other.sender = Sender::Any;
            assert_eq!(decode(&[first], other), Ok(Status::Partial(1)));
        }
    }
    // Packets both sides send are decoded whoever sent them.
    let puback = [0x40, 0x02, 0x00, 0x01];
    for opts in [
        DecodeOptions::new(V311).from_client(),
        DecodeOptions::new(V311).from_server(),
    ] {
        assert!(matches!(decode(&puback, opts), Ok(Status::Complete(_))));
    }
}

#[test]
fn reserved_flags_for_each_fixed_flag_packet_type() {
    let types = [
        (1u8, PacketType::Connect, 0u8),
        (2, PacketType::ConnAck, 0),
        (4, PacketType::PubAck, 0),
        (5, PacketType::PubRec, 0),
        (6, PacketType::PubRel, 2),
        (7, PacketType::PubComp, 0),
        (8, PacketType::Subscribe, 2),
        (9, PacketType::SubAck, 0),
        (10, PacketType::Unsubscribe, 2),
        (11, PacketType::UnsubAck, 0),
        (12, PacketType::PingReq, 0),
        (13, PacketType::PingResp, 0),
        (14, PacketType::Disconnect, 0),
        (15, PacketType::Auth, 0),
    ];
    let mut checked = 0;
    for version in [V311, V5] {
        for (nibble, t, required) in types {
            if t == PacketType::Auth && !version.is_v5() {
                continue;
            }
            for flags in 0..16u8 {
                if flags == required {
                    continue;
                }
                let first = (nibble << 4) | flags;
                expect(version, &[first, 0x00], DecodeError::ReservedFlags(t), M);
                // Refused from the first byte, before the length arrives.
                assert_eq!(
                    decode(&[first], DecodeOptions::new(version)),
                    Err(DecodeError::ReservedFlags(t))
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, (13 + 14) * 15);
}

#[test]
fn five_byte_remaining_length() {
    for version in [V311, V5] {
        expect(
            version,
            &[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            DecodeError::VarintTooLong,
            M,
        );
        // Known as soon as the fourth length byte has its continuation bit set.
        expect(
            version,
            &[0x30, 0x80, 0x80, 0x80, 0x80],
            DecodeError::VarintTooLong,
            M,
        );
    }
}

#[test]
fn five_byte_varints_inside_a_v5_body() {
    // Property length.
    let body = cat(&[&[0x00, 0x01, b't'], &[0xFF, 0xFF, 0xFF, 0xFF, 0x01]]);
    expect(V5, &frame(0x30, &body), DecodeError::VarintTooLong, M);
    // Subscription identifier value.
    let body = cat(&[&[0x00, 0x01, b't', 0x06, 0x0B, 0x80, 0x80, 0x80, 0x80, 0x01]]);
    expect(V5, &frame(0x30, &body), DecodeError::VarintTooLong, M);
}

#[test]
fn non_minimal_varint_in_v5() {
    // Remaining Length 0 as two bytes.
    expect(V5, &[0xC0, 0x80, 0x00], DecodeError::VarintNotMinimal, M);
    // Remaining Length 5 as three bytes.
    expect(
        V5,
        &[0x30, 0x85, 0x80, 0x00, 0x00, 0x01, b't', 0x00, b'x'],
        DecodeError::VarintNotMinimal,
        M,
    );
    // Property length 0 as two bytes.
    expect(
        V5,
        &[0x30, 0x05, 0x00, 0x01, b't', 0x80, 0x00],
        DecodeError::VarintNotMinimal,
        M,
    );
    // Subscription identifier 1 as two bytes.
    expect(
        V5,
        &[0x30, 0x07, 0x00, 0x01, b't', 0x03, 0x0B, 0x81, 0x00],
        DecodeError::VarintNotMinimal,
        M,
    );
    // Property identifier 0x26 as two bytes.
    expect(
        V5,
        &[
            0x30, 0x0B, 0x00, 0x01, b't', 0x07, 0xA6, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ],
        DecodeError::VarintNotMinimal,
        M,
    );
}

#[test]
fn packet_too_large_from_the_header_alone() {
    // 200 MiB = 209,715,200 = 100 * 128^3: length bytes 80 80 80 64.
    let header = [0x30, 0x80, 0x80, 0x80, 0x64];
    assert_eq!(vbi(200 << 20), &header[1..]);
    let max = 1 << 20;
    let opts = DecodeOptions::new(V311).with_max_packet_size(max);
    let want = DecodeError::PacketTooLarge {
        size: (200 << 20) + 5,
        max,
    };
    assert_eq!(decode(&header, opts), Err(want));
    assert_eq!(want.kind(), ErrorKind::TooLarge);
    assert_eq!(want.reason_code(), ReasonCode::PACKET_TOO_LARGE);
    // The reader stops after the header: it never waits for 200 MiB.
    let mut buf = [0u8; 64];
    assert_eq!(
        read_packet(&mut &header[..], &mut buf, opts),
        Err(ReadError::Decode(want))
    );
    let mut d = StreamDecoder::<64>::new(opts);
    d.feed(&header);
    assert_eq!(
        d.next_packet(),
        Err(DecodeError::PacketTooLarge {
            size: (200 << 20) + 5,
            max: 64
        })
    );
    // Without a limit the same header is just incomplete.
    assert_eq!(
        decode(&header, DecodeOptions::new(V311)),
        Ok(Status::Partial(200 << 20))
    );
}

// ------------------------------------------------------------------ lengths

#[test]
fn topic_length_longer_than_the_remaining_length() {
    // MQTT-C #206: a topic length pointing past the packet.
    for version in [V311, V5] {
        expect(
            version,
            &[0x30, 0x03, 0x00, 0x10, b'a'],
            DecodeError::UnexpectedEnd,
            M,
        );
        expect(
            version,
            &[0x30, 0x04, 0xFF, 0xFF, b'a', b'b'],
            DecodeError::UnexpectedEnd,
            M,
        );
    }
}

#[test]
fn fields_missing_inside_the_remaining_length() {
    for version in [V311, V5] {
        // PUBLISH QoS 1 without its packet identifier.
        expect(
            version,
            &[0x32, 0x05, 0x00, 0x03, b'a', b'/', b'b'],
            DecodeError::UnexpectedEnd,
            M,
        );
        // PUBLISH with only half a topic length.
        expect(version, &[0x30, 0x01, 0x00], DecodeError::UnexpectedEnd, M);
        // PUBACK with one byte of packet identifier.
        expect(version, &[0x40, 0x01, 0x00], DecodeError::UnexpectedEnd, M);
        // CONNACK with only the flags.
        expect(version, &[0x20, 0x01, 0x00], DecodeError::UnexpectedEnd, M);
        // SUBSCRIBE filter without its options byte.
        let sub = cat(&[
            &[0x00, 0x01],
            if version.is_v5() { &[0x00] } else { &[] },
            &[0x00, 0x01, b'a'],
        ]);
        expect(version, &frame(0x82, &sub), DecodeError::UnexpectedEnd, M);
        // CONNECT cut after the keep alive.
        let body = &connect_head(if version.is_v5() { 5 } else { 4 }, 0x02)[..];
        expect(version, &frame(0x10, body), DecodeError::UnexpectedEnd, M);
        // CONNECT whose user name flag promises a user name that is not there.
        let level = if version.is_v5() { 5 } else { 4 };
        let body = cat(&[&connect_head(level, 0x82), &[0x00, 0x00]]);
        expect(version, &frame(0x10, &body), DecodeError::UnexpectedEnd, M);
    }
    // 5.0: a property length pointing past the packet, and a property value cut short.
    expect(
        V5,
        &[0x30, 0x05, 0x00, 0x01, b't', 0x09, 0x01],
        DecodeError::UnexpectedEnd,
        M,
    );
    expect(
        V5,
        &[0x30, 0x07, 0x00, 0x01, b't', 0x02, 0x02, 0x00, 0x00],
        DecodeError::UnexpectedEnd,
        M,
    );
    expect(
        V5,
        &[0x30, 0x08, 0x00, 0x01, b't', 0x03, 0x03, 0x00, 0x05, b'x'],
        DecodeError::UnexpectedEnd,
        M,
    );
}

#[test]
fn trailing_bytes_for_each_packet_type() {
    let mut cases: Vec<(ProtocolVersion, Vec<u8>)> = vec![
        (
            V311,
            frame(0x10, &cat(&[&connect_head(4, 0x02), &[0x00, 0x00, 0xFF]])),
        ),
        (
            V5,
            frame(0x10, &cat(&[&connect_head(5, 0x02), &[0x00, 0x00, 0xFF]])),
        ),
        (V311, vec![0x20, 0x03, 0x00, 0x00, 0xFF]),
        (V5, vec![0x20, 0x04, 0x00, 0x00, 0x00, 0xFF]),
        (V311, vec![0xB0, 0x03, 0x00, 0x01, 0x00]),
        (V311, vec![0xE0, 0x01, 0x00]),
        (V5, vec![0xE0, 0x03, 0x00, 0x00, 0xFF]),
        (V5, vec![0xF0, 0x03, 0x00, 0x00, 0xFF]),
    ];
    for first in [0x40u8, 0x50, 0x62, 0x70] {
        cases.push((V311, vec![first, 0x03, 0x00, 0x01, 0x00]));
        cases.push((V5, vec![first, 0x05, 0x00, 0x01, 0x00, 0x00, 0xFF]));
    }
    for version in [V311, V5] {
        cases.push((version, vec![0xC0, 0x01, 0x00]));
        cases.push((version, vec![0xD0, 0x01, 0x00]));
    }
    for (version, bytes) in cases {
        expect(version, &bytes, DecodeError::TrailingBytes, M);
    }
    // In SUBSCRIBE and UNSUBSCRIBE a stray byte starts another filter that does not fit; in SUBACK
    // and 5.0 UNSUBACK it is one more reason code; a PUBLISH payload takes every byte.
    expect(
        V311,
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x01, b'a', 0x00, 0xFF],
        DecodeError::UnexpectedEnd,
        M,
    );
    expect(
        V311,
        &[0xA2, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0xFF],
        DecodeError::UnexpectedEnd,
        M,
    );
    expect(
        V311,
        &[0x90, 0x04, 0x00, 0x01, 0x00, 0x03],
        DecodeError::InvalidReasonCode {
            code: 3,
            packet: PacketType::SubAck,
        },
        M,
    );
}

// ------------------------------------------------------------------ strings

const BAD_UTF8: [&[u8]; 5] = [
    &[0xED, 0xA0, 0x80], // U+D800, a surrogate
    &[0xED, 0xBF, 0xBF], // U+DFFF, a surrogate
    &[0xC0, 0xAF],       // overlong '/'
    &[0x80],             // lone continuation byte
    &[b'a', 0xE2, 0x82], // truncated sequence
];

#[test]
fn invalid_utf8_in_topic_client_id_user_property_and_more() {
    for bad in BAD_UTF8 {
        let s = field(bad);
        for version in [V311, V5] {
            let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
            let level = if version.is_v5() { 5 } else { 4 };
            // PUBLISH topic.
            expect(version, &frame(0x30, &s), DecodeError::InvalidUtf8, M);
            // CONNECT client id, will topic, user name.
            expect(
                version,
                &frame(0x10, &cat(&[&connect_head(level, 0x02), &s])),
                DecodeError::InvalidUtf8,
                M,
            );
            let will = cat(&[
                &connect_head(level, 0x06),
                &[0x00, 0x00],
                props,
                &s,
                &[0x00, 0x00],
            ]);
            expect(version, &frame(0x10, &will), DecodeError::InvalidUtf8, M);
            let user = cat(&[&connect_head(level, 0x82), &[0x00, 0x00], &s]);
            expect(version, &frame(0x10, &user), DecodeError::InvalidUtf8, M);
            // SUBSCRIBE and UNSUBSCRIBE filters.
            expect(
                version,
                &frame(0x82, &cat(&[&[0x00, 0x01], props, &s, &[0x00]])),
                DecodeError::InvalidUtf8,
                M,
            );
            expect(
                version,
                &frame(0xA2, &cat(&[&[0x00, 0x01], props, &s])),
                DecodeError::InvalidUtf8,
                M,
            );
        }
        // 5.0 user property key and value, reason string, content type.
        let key = cat(&[&[0x26], &s, &[0x00, 0x00]]);
        let value = cat(&[&[0x26, 0x00, 0x00], &s]);
        for prop in [key, value, cat(&[&[0x03], &s])] {
            let body = cat(&[&[0x00, 0x01, b't'], &vbi(prop.len()), &prop]);
            expect(V5, &frame(0x30, &body), DecodeError::InvalidUtf8, M);
        }
        let reason = cat(&[&[0x1F], &s]);
        expect(
            V5,
            &frame(
                0x40,
                &cat(&[&[0x00, 0x01, 0x00], &vbi(reason.len()), &reason]),
            ),
            DecodeError::InvalidUtf8,
            M,
        );
    }
}

#[test]
fn null_character_in_topic_client_id_user_property() {
    let s = field(b"a\0b");
    for version in [V311, V5] {
        let level = if version.is_v5() { 5 } else { 4 };
        let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
        expect(version, &frame(0x30, &s), DecodeError::NullCharacter, M);
        expect(
            version,
            &frame(0x10, &cat(&[&connect_head(level, 0x02), &s])),
            DecodeError::NullCharacter,
            M,
        );
        expect(
            version,
            &frame(0x82, &cat(&[&[0x00, 0x01], props, &s, &[0x00]])),
            DecodeError::NullCharacter,
            M,
        );
        expect(
            version,
            &frame(0xA2, &cat(&[&[0x00, 0x01], props, &s])),
            DecodeError::NullCharacter,
            M,
        );
    }
    for prop in [
        cat(&[&[0x26], &s, &[0x00, 0x00]]),
        cat(&[&[0x26, 0x00, 0x00], &s]),
    ] {
        let body = cat(&[&[0x00, 0x01, b't'], &vbi(prop.len()), &prop]);
        expect(V5, &frame(0x30, &body), DecodeError::NullCharacter, M);
    }
    // A lone U+0000 client id.
    expect(
        V311,
        &frame(0x10, &cat(&[&connect_head(4, 0x02), &[0x00, 0x01, 0x00]])),
        DecodeError::NullCharacter,
        M,
    );
}

#[test]
fn a_byte_order_mark_is_kept() {
    // [MQTT-1.5.4-3]: 0xEF 0xBB 0xBF is U+FEFF and must not be skipped or stripped.
    let d = decode_complete(
        &[0x30, 0x05, 0x00, 0x03, 0xEF, 0xBB, 0xBF],
        DecodeOptions::new(V311),
    );
    let Packet::Publish(p) = d.packet else {
        panic!()
    };
    assert_eq!(p.topic.as_str(), "\u{FEFF}");
}

// ------------------------------------------------------------------ packet identifiers, QoS, DUP

#[test]
fn packet_id_zero() {
    for version in [V311, V5] {
        let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
        expect(
            version,
            &[0x32, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x00],
            DecodeError::ZeroPacketId,
            M,
        );
        expect(
            version,
            &[0x34, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x00],
            DecodeError::ZeroPacketId,
            M,
        );
        expect(
            version,
            &frame(
                0x82,
                &cat(&[&[0x00, 0x00], props, &[0x00, 0x01, b'a', 0x00]]),
            ),
            DecodeError::ZeroPacketId,
            M,
        );
        expect(
            version,
            &frame(0xA2, &cat(&[&[0x00, 0x00], props, &[0x00, 0x01, b'a']])),
            DecodeError::ZeroPacketId,
            M,
        );
        for first in [0x40u8, 0x50, 0x62, 0x70, 0xB0] {
            expect(
                version,
                &[first, 0x02, 0x00, 0x00],
                DecodeError::ZeroPacketId,
                M,
            );
        }
        expect(
            version,
            &frame(0x90, &cat(&[&[0x00, 0x00], props, &[0x00]])),
            DecodeError::ZeroPacketId,
            M,
        );
    }
}

#[test]
fn qos_3() {
    for version in [V311, V5] {
        let level = if version.is_v5() { 5 } else { 4 };
        for first in [0x36u8, 0x37, 0x3E, 0x3F] {
            expect(
                version,
                &[first, 0x07, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01],
                DecodeError::InvalidQos,
                M,
            );
        }
        // Will QoS 3 [MQTT-3.1.2-12]: flags Will + QoS 3.
        let body = cat(&[&connect_head(level, 0x1E), &[0x00, 0x00]]);
        expect(version, &frame(0x10, &body), DecodeError::InvalidQos, M);
    }
    // Subscription option Maximum QoS 3: 3.1.1 treats it as malformed ([MQTT-3-8.3-4]); 5.0 calls
    // it a Protocol Error (§3.8.3.1).
    expect(
        V311,
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x03],
        DecodeError::InvalidQos,
        M,
    );
    expect(
        V5,
        &[0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, b'a', 0x03],
        DecodeError::SubscriptionOptionOutOfRange,
        P,
    );
}

#[test]
fn dup_on_qos_0() {
    for version in [V311, V5] {
        let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
        expect(
            version,
            &frame(0x38, &cat(&[&[0x00, 0x01, b't'], props])),
            DecodeError::DupWithQos0,
            M,
        );
        expect(
            version,
            &frame(0x39, &cat(&[&[0x00, 0x01, b't'], props])),
            DecodeError::DupWithQos0,
            M,
        );
    }
}

// ------------------------------------------------------------------ topics and filters

#[test]
fn wildcard_in_topic_name() {
    for version in [V311, V5] {
        let level = if version.is_v5() { 5 } else { 4 };
        let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
        for topic in [&b"a/+"[..], b"#", b"a/#", b"+", b"a+b"] {
            expect(
                version,
                &frame(0x30, &cat(&[&field(topic), props])),
                DecodeError::WildcardInTopicName,
                M,
            );
            let will = cat(&[
                &connect_head(level, 0x06),
                &[0x00, 0x00],
                props,
                &field(topic),
                &[0x00, 0x00],
            ]);
            expect(
                version,
                &frame(0x10, &will),
                DecodeError::WildcardInTopicName,
                M,
            );
        }
    }
    // A 5.0 Response Topic is a topic name too [MQTT-3.3.2-14].
    let body = cat(&[&[0x00, 0x01, b't', 0x05, 0x08, 0x00, 0x02, b'r', b'#']]);
    expect(
        V5,
        &frame(0x30, &body),
        DecodeError::InvalidPropertyValue(0x08),
        P,
    );
}

#[test]
fn empty_topics() {
    expect(V311, &[0x30, 0x02, 0x00, 0x00], DecodeError::EmptyTopic, M);
    expect(
        V5,
        &[0x30, 0x03, 0x00, 0x00, 0x00],
        DecodeError::EmptyTopicWithoutAlias,
        P,
    );
    // An empty topic with a topic alias is fine in 5.0.
    assert!(
        decode(
            &[0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01],
            DecodeOptions::new(V5)
        )
        .is_ok()
    );
    // ... but not in 3.1.1, where those bytes are an empty topic and a payload.
    expect(
        V311,
        &[0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01],
        DecodeError::EmptyTopic,
        M,
    );
    for version in [V311, V5] {
        let level = if version.is_v5() { 5 } else { 4 };
        let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
        // Empty will topic, empty filters.
        let will = cat(&[
            &connect_head(level, 0x06),
            &[0x00, 0x00],
            props,
            &[0x00, 0x00],
            &[0x00, 0x00],
        ]);
        expect(version, &frame(0x10, &will), DecodeError::EmptyTopic, M);
        expect(
            version,
            &frame(0x82, &cat(&[&[0x00, 0x01], props, &[0x00, 0x00, 0x00]])),
            DecodeError::EmptyTopic,
            M,
        );
        expect(
            version,
            &frame(0xA2, &cat(&[&[0x00, 0x01], props, &[0x00, 0x00]])),
            DecodeError::EmptyTopic,
            M,
        );
    }
    // A 5.0 Response Topic may not be empty either.
    expect(
        V5,
        &frame(0x30, &[0x00, 0x01, b't', 0x03, 0x08, 0x00, 0x00]),
        DecodeError::InvalidPropertyValue(0x08),
        P,
    );
}

#[test]
fn bad_topic_filters() {
    for version in [V311, V5] {
        let props: &[u8] = if version.is_v5() { &[0x00] } else { &[] };
        for filter in [
            "a#",
            "a/#/b",
            "a+",
            "a/b+/c",
            "#/",
            "##",
            "++",
            "+a",
            "a/#b",
            "sport/tennis#",
        ] {
            let s = field(filter.as_bytes());
            expect(
                version,
                &frame(0x82, &cat(&[&[0x00, 0x01], props, &s, &[0x01]])),
                DecodeError::InvalidTopicFilter,
                M,
            );
            expect(
                version,
                &frame(0xA2, &cat(&[&[0x00, 0x01], props, &s])),
                DecodeError::InvalidTopicFilter,
                M,
            );
            // A bad filter after good ones is still found.
            let two = cat(&[&[0x00, 0x01], props, &field(b"ok/+"), &[0x00], &s, &[0x00]]);
            expect(
                version,
                &frame(0x82, &two),
                DecodeError::InvalidTopicFilter,
                M,
            );
        }
    }
}

#[test]
fn bad_shared_subscriptions() {
    for filter in ["$share//a", "$share/g", "$share/g/"] {
        let body = cat(&[&[0x00, 0x01, 0x00], &field(filter.as_bytes()), &[0x00]]);
        expect(
            V5,
            &frame(0x82, &body),
            DecodeError::InvalidSharedSubscription,
            P,
        );
        // 3.1.1 has no shared subscriptions: these are ordinary (valid) filters there.
        let body = cat(&[&[0x00, 0x01], &field(filter.as_bytes()), &[0x00]]);
        assert!(
            decode(&frame(0x82, &body), DecodeOptions::new(V311)).is_ok(),
            "{filter}"
        );
    }
    // A share name with a wildcard is already an invalid filter.
    let body = cat(&[&[0x00, 0x01, 0x00], &field(b"$share/g+/a"), &[0x00]]);
    expect(V5, &frame(0x82, &body), DecodeError::InvalidTopicFilter, M);
    // No Local on a shared subscription [MQTT-3.8.3-4].
    let body = cat(&[&[0x00, 0x01, 0x00], &field(b"$share/g/a"), &[0x04]]);
    expect(
        V5,
        &frame(0x82, &body),
        DecodeError::NoLocalOnSharedSubscription,
        P,
    );
}

#[test]
fn empty_subscribe_and_unsubscribe() {
    // 3.1.1 [MQTT-3.8.3-3] / [MQTT-3.10.3-2]; 5.0 §3.8.3 / §3.10.3: "a SUBSCRIBE packet with no
    // Payload is a Protocol Error", and likewise UNSUBSCRIBE.
    expect(
        V311,
        &[0x82, 0x02, 0x00, 0x01],
        DecodeError::EmptySubscribe,
        P,
    );
    expect(
        V5,
        &[0x82, 0x03, 0x00, 0x01, 0x00],
        DecodeError::EmptySubscribe,
        P,
    );
    expect(
        V5,
        &[0x82, 0x05, 0x00, 0x01, 0x02, 0x0B, 0x01],
        DecodeError::EmptySubscribe,
        P,
    );
    expect(
        V311,
        &[0xA2, 0x02, 0x00, 0x01],
        DecodeError::EmptyUnsubscribe,
        P,
    );
    expect(
        V5,
        &[0xA2, 0x03, 0x00, 0x01, 0x00],
        DecodeError::EmptyUnsubscribe,
        P,
    );
}

#[test]
fn reserved_subscription_option_bits() {
    // 3.1.1: bits 2-7 reserved [MQTT-3-8.3-4].
    for bit in 2..8 {
        let body = cat(&[&[0x00, 0x01], &field(b"a"), &[1 << bit]]);
        expect(
            V311,
            &frame(0x82, &body),
            DecodeError::InvalidSubscriptionOptions,
            M,
        );
    }
    // 5.0: bits 6-7 reserved, Malformed [MQTT-3.8.3-5].
    for byte in [0x40u8, 0x80, 0xC0, 0x41] {
        let body = cat(&[&[0x00, 0x01, 0x00], &field(b"a"), &[byte]]);
        expect(
            V5,
            &frame(0x82, &body),
            DecodeError::InvalidSubscriptionOptions,
            M,
        );
    }
    // 5.0: Retain Handling 3 is a Protocol Error (§3.8.3.1).
    for byte in [0x30u8, 0x31, 0x3E] {
        let body = cat(&[&[0x00, 0x01, 0x00], &field(b"a"), &[byte]]);
        expect(
            V5,
            &frame(0x82, &body),
            DecodeError::SubscriptionOptionOutOfRange,
            P,
        );
    }
    // Every valid 5.0 options byte decodes to the options it encodes.
    for byte in 0..=0xFFu8 {
        let body = cat(&[&[0x00, 0x01, 0x00], &field(b"a"), &[byte]]);
        let valid = byte & 0xC0 == 0 && byte & 0x03 != 3 && (byte >> 4) & 0x03 != 3;
        match decode(&frame(0x82, &body), DecodeOptions::new(V5)) {
            Ok(Status::Complete(d)) => {
                assert!(valid, "{byte:#04x} accepted");
                let Packet::Subscribe(s) = d.packet else {
                    panic!()
                };
                let o = s.subscriptions.iter().next().unwrap().options;
                assert_eq!(o.to_byte(), byte);
                assert_eq!(o.qos.bits(), byte & 3);
                assert_eq!(o.no_local, byte & 4 != 0);
                assert_eq!(o.retain_as_published, byte & 8 != 0);
            }
            Err(_) => assert!(!valid, "{byte:#04x} refused"),
            Ok(other) => panic!("{other:?}"),
        }
    }
}

// ------------------------------------------------------------------ properties

/// Where a property block can sit, with a packet that carries the block.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

const CTXS: [Ctx; 14] = [
    Ctx::Connect,
    Ctx::Will,
    Ctx::ConnAck,
    Ctx::Publish,
    Ctx::PubAck,
    Ctx::PubRec,
    Ctx::PubRel,
    Ctx::PubComp,
    Ctx::Subscribe,
    Ctx::SubAck,
    Ctx::Unsubscribe,
    Ctx::UnsubAck,
    Ctx::Disconnect,
    Ctx::Auth,
];

impl Ctx {
    fn packet_type(self) -> PacketType {
        match self {
            Ctx::Connect | Ctx::Will => PacketType::Connect,
            Ctx::ConnAck => PacketType::ConnAck,
            Ctx::Publish => PacketType::Publish,
            Ctx::PubAck => PacketType::PubAck,
            Ctx::PubRec => PacketType::PubRec,
            Ctx::PubRel => PacketType::PubRel,
            Ctx::PubComp => PacketType::PubComp,
            Ctx::Subscribe => PacketType::Subscribe,
            Ctx::SubAck => PacketType::SubAck,
            Ctx::Unsubscribe => PacketType::Unsubscribe,
            Ctx::UnsubAck => PacketType::UnsubAck,
            Ctx::Disconnect => PacketType::Disconnect,
            Ctx::Auth => PacketType::Auth,
        }
    }

    /// A valid 5.0 packet carrying `props` (without its length) in this place.
    fn packet(self, props: &[u8]) -> Vec<u8> {
        let block = cat(&[&vbi(props.len()), props]);
        let b = &block[..];
        match self {
            Ctx::Connect => frame(
                0x10,
                &cat(&[&connect_head(5, 0x02)[..10], b, &[0x00, 0x00]]),
            ),
            Ctx::Will => frame(
                0x10,
                &cat(&[
                    &connect_head(5, 0x06),
                    &[0x00, 0x00],
                    b,
                    &[0x00, 0x01, b'w', 0x00, 0x00],
                ]),
            ),
            Ctx::ConnAck => frame(0x20, &cat(&[&[0x00, 0x00], b])),
            Ctx::Publish => frame(0x30, &cat(&[&[0x00, 0x01, b't'], b])),
            Ctx::PubAck => frame(0x40, &cat(&[&[0x00, 0x01, 0x00], b])),
            Ctx::PubRec => frame(0x50, &cat(&[&[0x00, 0x01, 0x00], b])),
            Ctx::PubRel => frame(0x62, &cat(&[&[0x00, 0x01, 0x00], b])),
            Ctx::PubComp => frame(0x70, &cat(&[&[0x00, 0x01, 0x00], b])),
            Ctx::Subscribe => frame(0x82, &cat(&[&[0x00, 0x01], b, &[0x00, 0x01, b'a', 0x00]])),
            Ctx::SubAck => frame(0x90, &cat(&[&[0x00, 0x01], b, &[0x00]])),
            Ctx::Unsubscribe => frame(0xA2, &cat(&[&[0x00, 0x01], b, &[0x00, 0x01, b'a']])),
            Ctx::UnsubAck => frame(0xB0, &cat(&[&[0x00, 0x01], b, &[0x00]])),
            Ctx::Disconnect => frame(0xE0, &cat(&[&[0x00], b])),
            Ctx::Auth => frame(0xF0, &cat(&[&[0x00], b])),
        }
    }
}

/// Every 5.0 property with a valid value, and where the specification allows it (§2.2.2.2,
/// table 2-4, as condensed in the reference notes), written out independently of the codec.
fn property_table() -> Vec<(u8, Vec<u8>, &'static [Ctx])> {
    use Ctx::*;
    let acks: &'static [Ctx] = &[
        ConnAck, PubAck, PubRec, PubRel, PubComp, SubAck, UnsubAck, Disconnect, Auth,
    ];
    vec![
        (0x01, vec![0x01], &[Publish, Will]),
        (0x02, vec![0, 0, 0, 9], &[Publish, Will]),
        (0x03, field(b"t"), &[Publish, Will]),
        (0x08, field(b"r"), &[Publish, Will]),
        (0x09, field(b"\x00\x01"), &[Publish, Will]),
        (0x0B, vec![0x05], &[Publish, Subscribe]),
        (0x11, vec![0, 0, 0, 9], &[Connect, ConnAck, Disconnect]),
        (0x12, field(b"id"), &[ConnAck]),
        (0x13, vec![0, 9], &[ConnAck]),
        (0x15, field(b"m"), &[Connect, ConnAck, Auth]),
        (0x16, field(b"d"), &[Connect, ConnAck, Auth]),
        (0x17, vec![0x01], &[Connect]),
        (0x18, vec![0, 0, 0, 9], &[Will]),
        (0x19, vec![0x01], &[Connect]),
        (0x1A, field(b"ri"), &[ConnAck]),
        (0x1C, field(b"sr"), &[ConnAck, Disconnect]),
        (0x1F, field(b"why"), acks),
        (0x21, vec![0, 9], &[Connect, ConnAck]),
        (0x22, vec![0, 9], &[Connect, ConnAck]),
        (0x23, vec![0, 9], &[Publish]),
        (0x24, vec![0x01], &[ConnAck]),
        (0x25, vec![0x01], &[ConnAck]),
        (0x26, cat(&[&field(b"k"), &field(b"v")]), &CTXS),
        (0x27, vec![0, 0, 0, 9], &[Connect, ConnAck]),
        (0x28, vec![0x01], &[ConnAck]),
        (0x29, vec![0x01], &[ConnAck]),
        (0x2A, vec![0x01], &[ConnAck]),
    ]
}

#[test]
fn every_property_in_every_packet_allowed_or_not_allowed() {
    let mut refused = 0;
    for (id, value, allowed) in property_table() {
        let prop = cat(&[&[id], &value]);
        for ctx in CTXS {
            let bytes = ctx.packet(&prop);
            if allowed.contains(&ctx) {
                let d = decode_complete(&bytes, DecodeOptions::new(V5));
                assert_eq!(d.consumed, bytes.len(), "{ctx:?} {id:#04x}");
            } else {
                expect(
                    V5,
                    &bytes,
                    DecodeError::PropertyNotAllowed {
                        id,
                        packet: ctx.packet_type(),
                    },
                    M,
                );
                refused += 1;
            }
        }
    }
    assert!(refused > 250);
}

#[test]
fn disallowed_property_per_packet() {
    // One explicit case per packet, for readers of this file.
    let cases: [(Ctx, u8, &[u8]); 14] = [
        (Ctx::Connect, 0x23, &[0x23, 0x00, 0x01]),
        (Ctx::Will, 0x11, &[0x11, 0x00, 0x00, 0x00, 0x01]),
        (Ctx::ConnAck, 0x23, &[0x23, 0x00, 0x01]),
        (Ctx::Publish, 0x11, &[0x11, 0x00, 0x00, 0x00, 0x01]),
        (Ctx::PubAck, 0x01, &[0x01, 0x01]),
        (Ctx::PubRec, 0x01, &[0x01, 0x01]),
        (Ctx::PubRel, 0x01, &[0x01, 0x01]),
        (Ctx::PubComp, 0x01, &[0x01, 0x01]),
        (Ctx::Subscribe, 0x1F, &[0x1F, 0x00, 0x01, b'x']),
        (Ctx::SubAck, 0x0B, &[0x0B, 0x01]),
        (Ctx::Unsubscribe, 0x0B, &[0x0B, 0x01]),
        (Ctx::UnsubAck, 0x0B, &[0x0B, 0x01]),
        (Ctx::Disconnect, 0x17, &[0x17, 0x01]),
        (Ctx::Auth, 0x11, &[0x11, 0x00, 0x00, 0x00, 0x01]),
    ];
    for (ctx, id, prop) in cases {
        expect(
            V5,
            &ctx.packet(prop),
            DecodeError::PropertyNotAllowed {
                id,
                packet: ctx.packet_type(),
            },
            M,
        );
    }
}

#[test]
fn repeated_property() {
    for (id, value, allowed) in property_table() {
        let twice = cat(&[&[id], &value, &[id], &value]);
        for &ctx in allowed {
            let bytes = ctx.packet(&twice);
            let may_repeat = id == 0x26 || (id == 0x0B && ctx == Ctx::Publish);
            if may_repeat {
                assert!(
                    decode(&bytes, DecodeOptions::new(V5)).is_ok(),
                    "{ctx:?} {id:#04x}"
                );
            } else {
                expect(V5, &bytes, DecodeError::DuplicateProperty(id), P);
            }
        }
    }
    // Repeats need not be adjacent.
    let prop = [
        0x03, 0x00, 0x01, b'a', 0x26, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, b'b',
    ];
    expect(
        V5,
        &Ctx::Publish.packet(&prop),
        DecodeError::DuplicateProperty(0x03),
        P,
    );
}

#[test]
fn unknown_property_id() {
    for id in [
        0x00u8, 0x04, 0x05, 0x06, 0x07, 0x0A, 0x0C, 0x10, 0x14, 0x1B, 0x1D, 0x1E, 0x20, 0x2B, 0x7F,
    ] {
        for ctx in CTXS {
            expect(
                V5,
                &ctx.packet(&[id, 0x00]),
                DecodeError::UnknownProperty(u32::from(id)),
                M,
            );
        }
    }
    // A two-byte identifier (128).
    expect(
        V5,
        &Ctx::Publish.packet(&[0x80, 0x01, 0x00]),
        DecodeError::UnknownProperty(128),
        M,
    );
}

#[test]
fn property_values_out_of_range() {
    let cases: [(Ctx, &[u8]); 16] = [
        (Ctx::Publish, &[0x01, 0x02]), // payload format 2
        (Ctx::Will, &[0x01, 0xFF]),
        (Ctx::Connect, &[0x17, 0x02]), // request problem information 2
        (Ctx::Connect, &[0x19, 0x02]), // request response information 2
        (Ctx::Connect, &[0x21, 0x00, 0x00]), // receive maximum 0
        (Ctx::ConnAck, &[0x21, 0x00, 0x00]),
        (Ctx::Connect, &[0x27, 0x00, 0x00, 0x00, 0x00]), // maximum packet size 0
        (Ctx::Publish, &[0x23, 0x00, 0x00]),             // topic alias 0 [MQTT-3.3.2-8]
        (Ctx::ConnAck, &[0x24, 0x02]),                   // maximum QoS 2
        (Ctx::ConnAck, &[0x25, 0x02]),                   // retain available 2
        (Ctx::ConnAck, &[0x28, 0x02]),
        (Ctx::ConnAck, &[0x29, 0x02]),
        (Ctx::ConnAck, &[0x2A, 0x02]),
        (Ctx::Publish, &[0x0B, 0x00]), // subscription identifier 0
        (Ctx::Subscribe, &[0x0B, 0x00]),
        (Ctx::Will, &[0x08, 0x00, 0x01, b'+']), // response topic with a wildcard
    ];
    for (ctx, prop) in cases {
        expect(
            V5,
            &ctx.packet(prop),
            DecodeError::InvalidPropertyValue(prop[0]),
            P,
        );
    }
}

// ------------------------------------------------------------------ reason codes

/// The reason codes each packet may carry (5.0 table 2-6; 3.1.1 §3.2.2.3, §3.9.3), written out
/// independently of the codec.
fn allowed_codes(t: PacketType, version: ProtocolVersion) -> Vec<u8> {
    if !version.is_v5() {
        return match t {
            PacketType::ConnAck => vec![0, 1, 2, 3, 4, 5],
            PacketType::SubAck => vec![0, 1, 2, 0x80],
            _ => unreachable!(),
        };
    }
    match t {
        PacketType::ConnAck => vec![
            0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90,
            0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
        ],
        PacketType::PubAck | PacketType::PubRec => {
            vec![0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99]
        }
        PacketType::PubRel | PacketType::PubComp => vec![0x00, 0x92],
        PacketType::SubAck => vec![
            0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
        ],
        PacketType::UnsubAck => vec![0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91],
        PacketType::Disconnect => vec![
            0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90,
            0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0,
            0xA1, 0xA2,
        ],
        PacketType::Auth => vec![0x00, 0x18, 0x19],
        _ => unreachable!(),
    }
}

#[test]
fn invalid_reason_code_per_packet_type() {
    // A packet type, a version, and the packet carrying a given code.
    type Case = (PacketType, ProtocolVersion, fn(u8) -> Vec<u8>);
    let cases: Vec<Case> = vec![
        (PacketType::ConnAck, V311, |c| vec![0x20, 0x02, 0x00, c]),
        (PacketType::SubAck, V311, |c| {
            vec![0x90, 0x03, 0x00, 0x01, c]
        }),
        (PacketType::ConnAck, V5, |c| vec![0x20, 0x03, 0x00, c, 0x00]),
        (PacketType::PubAck, V5, |c| vec![0x40, 0x03, 0x00, 0x01, c]),
        (PacketType::PubRec, V5, |c| vec![0x50, 0x03, 0x00, 0x01, c]),
        (PacketType::PubRel, V5, |c| vec![0x62, 0x03, 0x00, 0x01, c]),
        (PacketType::PubComp, V5, |c| vec![0x70, 0x03, 0x00, 0x01, c]),
        (PacketType::SubAck, V5, |c| {
            vec![0x90, 0x04, 0x00, 0x01, 0x00, c]
        }),
        (PacketType::UnsubAck, V5, |c| {
            vec![0xB0, 0x04, 0x00, 0x01, 0x00, c]
        }),
        (PacketType::Disconnect, V5, |c| vec![0xE0, 0x01, c]),
        (PacketType::Auth, V5, |c| vec![0xF0, 0x01, c]),
    ];
    for (t, version, build) in cases {
        let allowed = allowed_codes(t, version);
        for code in 0..=0xFFu8 {
            let bytes = build(code);
            if allowed.contains(&code) {
                let d = decode_complete(&bytes, DecodeOptions::new(version));
                assert_eq!(d.consumed, bytes.len());
                assert!(ReasonCode(code).is_valid_for(t, version));
            } else {
                expect(
                    version,
                    &bytes,
                    DecodeError::InvalidReasonCode { code, packet: t },
                    M,
                );
                assert!(!ReasonCode(code).is_valid_for(t, version));
            }
        }
    }
    // A bad code after good ones in a list.
    expect(
        V5,
        &[0xB0, 0x06, 0x00, 0x01, 0x00, 0x00, 0x11, 0x01],
        DecodeError::InvalidReasonCode {
            code: 1,
            packet: PacketType::UnsubAck,
        },
        M,
    );
}

#[test]
fn suback_with_zero_codes() {
    // rust-mqtt #82.
    expect(
        V311,
        &[0x90, 0x02, 0x00, 0x01],
        DecodeError::EmptyAckList,
        M,
    );
    expect(
        V5,
        &[0x90, 0x03, 0x00, 0x01, 0x00],
        DecodeError::EmptyAckList,
        M,
    );
    expect(
        V5,
        &[0xB0, 0x03, 0x00, 0x01, 0x00],
        DecodeError::EmptyAckList,
        M,
    );
}

// ------------------------------------------------------------------ CONNECT and CONNACK

#[test]
fn unsupported_protocol_level() {
    let u = ErrorKind::UnsupportedProtocol;
    for level in [0u8, 1, 2, 3, 6, 7, 0x83, 0xFF] {
        let body = cat(&[
            &[0x00, 0x04],
            b"MQTT",
            &[level, 0x02, 0x00, 0x00, 0x00, 0x00],
        ]);
        expect(
            V311,
            &frame(0x10, &body),
            DecodeError::UnsupportedProtocolLevel(level),
            u,
        );
    }
    for level in [4u8, 5] {
        let body = cat(&[
            &[0x00, 0x06],
            b"MQIsdp",
            &[level, 0x02, 0x00, 0x00, 0x00, 0x00],
        ]);
        expect(
            V311,
            &frame(0x10, &body),
            DecodeError::UnsupportedProtocolLevel(level),
            u,
        );
    }
}

#[test]
fn bad_protocol_name() {
    let u = ErrorKind::UnsupportedProtocol;
    for name in [&b"mqtt"[..], b"MQTX", b"MQT", b"MQTTT", b"", b"MQIsdP"] {
        let body = cat(&[&field(name), &[0x04, 0x02, 0x00, 0x00, 0x00, 0x00]]);
        expect(
            V311,
            &frame(0x10, &body),
            DecodeError::InvalidProtocolName,
            u,
        );
    }
}

#[test]
fn connect_reserved_flag() {
    for (version, level) in [(V311, 4u8), (V5, 5), (V311, 3)] {
        let name: &[u8] = if level == 3 { b"MQIsdp" } else { b"MQTT" };
        let props: &[u8] = if level == 5 { &[0x00] } else { &[] };
        for flags in [0x01u8, 0x03, 0xC3] {
            let body = cat(&[
                &field(name),
                &[level, flags, 0x00, 0x00],
                props,
                &[0x00, 0x00],
            ]);
            expect(
                version,
                &frame(0x10, &body),
                DecodeError::ConnectReservedFlag,
                M,
            );
        }
    }
}

#[test]
fn will_qos_or_retain_without_will() {
    for level in [4u8, 5] {
        for flags in [0x08u8, 0x10, 0x20, 0x30] {
            let body = cat(&[&connect_head(level, flags), &[0x00, 0x00]]);
            expect(
                V311,
                &frame(0x10, &body),
                DecodeError::WillFlagsWithoutWill,
                M,
            );
        }
    }
}

#[test]
fn password_without_username_only_in_v311() {
    for level in [3u8, 4] {
        let name: &[u8] = if level == 3 { b"MQIsdp" } else { b"MQTT" };
        let body = cat(&[
            &field(name),
            &[level, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, b'p'],
        ]);
        expect(
            V311,
            &frame(0x10, &body),
            DecodeError::PasswordWithoutUsername,
            M,
        );
    }
    // Allowed in 5.0 (§3.1.2.9).
    let body = cat(&[&connect_head(5, 0x42), &[0x00, 0x00, 0x00, 0x01, b'p']]);
    let bytes = frame(0x10, &body);
    let d = decode_complete(&bytes, DecodeOptions::new(V5));
    let Packet::Connect(c) = d.packet else {
        panic!()
    };
    assert_eq!((c.username, c.password), (None, Some(&b"p"[..])));
}

#[test]
fn connack_flags_and_session_present_on_refusal() {
    for flags in [0x02u8, 0x80, 0xFE, 0x03] {
        expect(
            V311,
            &[0x20, 0x02, flags, 0x00],
            DecodeError::ConnAckReservedFlags,
            M,
        );
        expect(
            V5,
            &[0x20, 0x03, flags, 0x00, 0x00],
            DecodeError::ConnAckReservedFlags,
            M,
        );
    }
    for code in 1..=5u8 {
        expect(
            V311,
            &[0x20, 0x02, 0x01, code],
            DecodeError::SessionPresentOnRefusal,
            P,
        );
    }
    expect(
        V5,
        &[0x20, 0x03, 0x01, 0x80, 0x00],
        DecodeError::SessionPresentOnRefusal,
        P,
    );
}

// ------------------------------------------------------------------ arbitrary junk

#[test]
fn decode_never_panics_on_mutated_vectors() {
    // Flip every bit of every byte of every small vector (not just the ones named above).
    for v in small_vectors().filter(|v| v.bytes.len() <= 512) {
        let mut bytes = v.bytes.to_vec();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                bytes[i] ^= 1 << bit;
                for version in [V311, V5] {
                    if let Ok(Status::Complete(d)) = decode(&bytes, DecodeOptions::new(version)) {
                        assert!(d.consumed <= bytes.len());
                        let n = d.packet.encoded_len(version);
                        assert!(
                            n.is_ok(),
                            "{}: {:?} decodes but does not encode: {n:?}",
                            v.name,
                            d.packet
                        );
                    }
                }
                bytes[i] ^= 1 << bit;
            }
        }
    }
}

// ------------------------------------------------------------------ encoding

#[test]
fn buffer_too_small_for_every_shorter_length() {
    for v in vectors() {
        let len = v.bytes.len();
        // Every shorter length up to 4 KiB packets; the long vectors (each encode costs the
        // whole packet) at the header, around every length boundary and just short of the end.
        let lengths: Vec<usize> = if len <= 4096 {
            (0..len).collect()
        } else {
            (0..64).chain([len / 2, len - 2, len - 1]).collect()
        };
        let mut buf = vec![0xAAu8; len];
        for l in lengths {
            assert_eq!(
                v.packet.encode(v.version, &mut buf[..l]),
                Err(EncodeError::BufferTooSmall { needed: len }),
                "{}: buffer of {l}",
                v.name
            );
            assert!(
                buf.iter().all(|&b| b == 0xAA),
                "{}: wrote into a short buffer",
                v.name
            );
        }
    }
}

#[test]
fn string_longer_than_65535_bytes() {
    let long = "x".repeat(65_536);
    let long_bytes = vec![7u8; 65_536];
    let ok = "y".repeat(65_535);
    let publish = |props: Properties<'_>| {
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: tn("t"),
            properties: props,
            payload: b"",
        })
        .encoded_len(V5)
    };
    assert_eq!(
        publish(Properties {
            content_type: Some(&long),
            ..NO_PROPERTIES
        }),
        Err(EncodeError::FieldTooLong)
    );
    assert_eq!(
        publish(Properties {
            correlation_data: Some(&long_bytes),
            ..NO_PROPERTIES
        }),
        Err(EncodeError::FieldTooLong)
    );
    let pair = [(long.as_str(), "v")];
    assert_eq!(
        publish(Properties {
            user_properties: List::new(&pair),
            ..NO_PROPERTIES
        }),
        Err(EncodeError::FieldTooLong)
    );
    // 65,535 bytes is still fine.
    assert!(
        publish(Properties {
            content_type: Some(&ok),
            ..NO_PROPERTIES
        })
        .is_ok()
    );
    fn connect<'a>(
        client_id: &'a str,
        password: Option<&'a [u8]>,
        will_payload: &'a [u8],
    ) -> Packet<'a> {
        Packet::Connect(Connect {
            protocol: V311,
            bridge: false,
            clean_start: true,
            keep_alive: 0,
            client_id,
            will: Some(Will {
                topic: tn("w"),
                payload: will_payload,
                qos: QoS::AtMostOnce,
                retain: false,
                properties: NO_PROPERTIES,
            }),
            username: Some("u"),
            password,
            properties: NO_PROPERTIES,
        })
    }
    let mut buf = vec![0u8; 200_000];
    assert_eq!(
        connect(&long, None, b"").encode(V311, &mut buf),
        Err(EncodeError::FieldTooLong)
    );
    assert_eq!(
        connect("c", Some(&long_bytes), b"").encode(V311, &mut buf),
        Err(EncodeError::FieldTooLong)
    );
    assert_eq!(
        connect("c", None, &long_bytes).encode(V311, &mut buf),
        Err(EncodeError::FieldTooLong)
    );
    assert!(
        connect(&ok, None, &long_bytes[..65_535])
            .encode(V311, &mut buf)
            .is_ok()
    );
}

#[test]
fn encode_disallowed_property() {
    let mut buf = [0u8; 64];
    let p = Packet::Publish(Publish {
        dup: false,
        qos_pid: QosPid::AtMostOnce,
        retain: false,
        topic: tn("t"),
        properties: Properties {
            session_expiry_interval: Some(1),
            ..NO_PROPERTIES
        },
        payload: b"",
    });
    let want = Err(EncodeError::PropertyNotAllowed {
        id: 0x11,
        packet: PacketType::Publish,
    });
    assert_eq!(p.encode(V5, &mut buf), want);
    assert_eq!(p.encoded_len(V5), want);
    // 3.1.1 has no properties at all: they are left out, not refused.
    assert_eq!(p.encode(V311, &mut buf), Ok(5));
    let c = Packet::Connect(Connect {
        protocol: V5,
        bridge: false,
        clean_start: true,
        keep_alive: 0,
        client_id: "c",
        will: Some(Will {
            topic: tn("w"),
            payload: b"",
            qos: QoS::AtMostOnce,
            retain: false,
            properties: Properties {
                session_expiry_interval: Some(1),
                ..NO_PROPERTIES
            },
        }),
        username: None,
        password: None,
        properties: NO_PROPERTIES,
    });
    assert_eq!(
        c.encode(V5, &mut buf),
        Err(EncodeError::PropertyNotAllowed {
            id: 0x11,
            packet: PacketType::Connect
        })
    );
    let s = Packet::Subscribe(Subscribe {
        packet_id: pid(1),
        properties: Properties {
            reason_string: Some("r"),
            ..NO_PROPERTIES
        },
        subscriptions: List::new(leak(vec![Subscription {
            filter: tf("a"),
            options: SubscriptionOptions::qos(QoS::AtMostOnce),
        }])),
    });
    assert_eq!(
        s.encode(V5, &mut buf),
        Err(EncodeError::PropertyNotAllowed {
            id: 0x1F,
            packet: PacketType::Subscribe
        })
    );
    let d = Packet::Disconnect(Disconnect {
        reason_code: ReasonCode::SUCCESS,
        properties: Properties {
            topic_alias: Some(nz16(1)),
            ..NO_PROPERTIES
        },
    });
    assert_eq!(
        d.encode(V5, &mut buf),
        Err(EncodeError::PropertyNotAllowed {
            id: 0x23,
            packet: PacketType::Disconnect
        })
    );
}

#[test]
fn encode_invalid_reason_code() {
    let mut buf = [0u8; 64];
    let ack = |code| Ack {
        packet_id: pid(1),
        reason_code: ReasonCode(code),
        properties: NO_PROPERTIES,
    };
    let cases = [
        (Packet::PubAck(ack(0x92)), V5, 0x92, PacketType::PubAck),
        (Packet::PubRel(ack(0x10)), V5, 0x10, PacketType::PubRel),
        (Packet::PubAck(ack(0x10)), V311, 0x10, PacketType::PubAck),
        (
            Packet::ConnAck(ConnAck {
                session_present: false,
                code: ReasonCode(6),
                properties: NO_PROPERTIES,
            }),
            V311,
            6,
            PacketType::ConnAck,
        ),
        (
            Packet::SubAck(SubAck {
                packet_id: pid(1),
                properties: NO_PROPERTIES,
                reason_codes: List::new(&[ReasonCode(0x11)]),
            }),
            V5,
            0x11,
            PacketType::SubAck,
        ),
        (
            Packet::UnsubAck(SubAck {
                packet_id: pid(1),
                properties: NO_PROPERTIES,
                reason_codes: List::new(&[ReasonCode(0x01)]),
            }),
            V5,
            0x01,
            PacketType::UnsubAck,
        ),
        (
            Packet::Disconnect(Disconnect::with_reason(ReasonCode(0x18))),
            V5,
            0x18,
            PacketType::Disconnect,
        ),
        (
            Packet::Auth(Disconnect::with_reason(ReasonCode(0x04))),
            V5,
            0x04,
            PacketType::Auth,
        ),
    ];
    for (p, version, code, packet) in cases {
        let want = Err(EncodeError::InvalidReasonCode { code, packet });
        assert_eq!(p.encode(version, &mut buf), want, "{p:?}");
        assert_eq!(p.encoded_len(version), want);
    }
}

#[test]
fn encode_auth_in_v311() {
    let mut buf = [0u8; 16];
    for version in [V31, V311] {
        assert_eq!(
            Packet::Auth(Disconnect::NORMAL).encode(version, &mut buf),
            Err(EncodeError::NotInVersion)
        );
        assert_eq!(
            Packet::Auth(Disconnect::NORMAL).encoded_len(version),
            Err(EncodeError::NotInVersion)
        );
    }
}

#[test]
fn encode_values_out_of_range() {
    let mut buf = [0u8; 64];
    let publish = |dup, qos_pid, topic, props| {
        Packet::Publish(Publish {
            dup,
            qos_pid,
            retain: false,
            topic,
            properties: props,
            payload: b"",
        })
    };
    let bad = [
        (
            publish(true, QosPid::AtMostOnce, tn("t"), NO_PROPERTIES),
            V5,
        ),
        (
            publish(
                false,
                QosPid::AtMostOnce,
                TopicName::alias_only(),
                NO_PROPERTIES,
            ),
            V5,
        ),
        // A topic alias cannot stand in for the topic in 3.1.1.
        (
            publish(
                false,
                QosPid::AtMostOnce,
                TopicName::alias_only(),
                Properties {
                    topic_alias: Some(nz16(1)),
                    ..NO_PROPERTIES
                },
            ),
            V311,
        ),
        (
            publish(
                false,
                QosPid::AtMostOnce,
                tn("t"),
                Properties {
                    subscription_identifiers: List::new(&[0]),
                    ..NO_PROPERTIES
                },
            ),
            V5,
        ),
        (
            publish(
                false,
                QosPid::AtMostOnce,
                tn("t"),
                Properties {
                    subscription_identifiers: List::new(&[268_435_456]),
                    ..NO_PROPERTIES
                },
            ),
            V5,
        ),
        (
            Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                properties: NO_PROPERTIES,
                subscriptions: List::empty(),
            }),
            V5,
        ),
        (
            Packet::Subscribe(Subscribe {
                packet_id: pid(1),
                properties: Properties {
                    subscription_identifiers: List::new(&[1, 2]),
                    ..NO_PROPERTIES
                },
                subscriptions: List::new(leak(vec![Subscription {
                    filter: tf("a"),
                    options: SubscriptionOptions::default(),
                }])),
            }),
            V5,
        ),
        (
            Packet::Unsubscribe(Unsubscribe {
                packet_id: pid(1),
                properties: NO_PROPERTIES,
                filters: List::empty(),
            }),
            V311,
        ),
        (
            Packet::SubAck(SubAck {
                packet_id: pid(1),
                properties: NO_PROPERTIES,
                reason_codes: List::empty(),
            }),
            V311,
        ),
        (
            Packet::ConnAck(ConnAck {
                session_present: false,
                code: ReasonCode::SUCCESS,
                properties: Properties {
                    maximum_qos: Some(QoS::ExactlyOnce),
                    ..NO_PROPERTIES
                },
            }),
            V5,
        ),
        (
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: ReasonCode(0x05),
                properties: NO_PROPERTIES,
            }),
            V311,
        ),
        (
            Packet::Connect(Connect {
                protocol: V311,
                bridge: false,
                clean_start: true,
                keep_alive: 0,
                client_id: "c",
                will: None,
                username: None,
                password: Some(b"p"),
                properties: NO_PROPERTIES,
            }),
            V311,
        ),
        (
            Packet::Connect(Connect {
                protocol: V5,
                bridge: false,
                clean_start: true,
                keep_alive: 0,
                client_id: "c",
                will: Some(Will {
                    topic: TopicName::alias_only(),
                    payload: b"",
                    qos: QoS::AtMostOnce,
                    retain: false,
                    properties: NO_PROPERTIES,
                }),
                username: None,
                password: None,
                properties: NO_PROPERTIES,
            }),
            V5,
        ),
    ];
    for (p, version) in bad {
        assert_eq!(
            p.encode(version, &mut buf),
            Err(EncodeError::InvalidValue),
            "{p:?}"
        );
        assert_eq!(
            p.encoded_len(version),
            Err(EncodeError::InvalidValue),
            "{p:?}"
        );
    }
}

#[test]
fn encode_packet_larger_than_the_maximum_remaining_length() {
    // The encoder only counts the payload, so a zeroed (untouched) 256 MiB buffer costs nothing.
    let payload = vec![0u8; 268_435_451];
    let publish = |payload| {
        Packet::Publish(Publish {
            dup: false,
            qos_pid: QosPid::AtMostOnce,
            retain: false,
            topic: tn("a/b"),
            properties: NO_PROPERTIES,
            payload,
        })
    };
    // Remaining Length 5 + 268,435,450 = 268,435,455: the largest packet, 268,435,460 bytes.
    assert_eq!(publish(&payload[1..]).encoded_len(V311), Ok(268_435_460));
    let mut buf = [0u8; 16];
    assert_eq!(
        publish(&payload[1..]).encode(V311, &mut buf),
        Err(EncodeError::BufferTooSmall {
            needed: 268_435_460
        })
    );
    // One byte more cannot be expressed.
    assert_eq!(
        publish(&payload).encoded_len(V311),
        Err(EncodeError::PacketTooLarge)
    );
    assert_eq!(
        publish(&payload).encode(V311, &mut buf),
        Err(EncodeError::PacketTooLarge)
    );
    // 5.0 adds the property length byte.
    assert_eq!(
        publish(&payload[1..]).encoded_len(V5),
        Err(EncodeError::PacketTooLarge)
    );
    assert_eq!(publish(&payload[2..]).encoded_len(V5), Ok(268_435_460));
}
