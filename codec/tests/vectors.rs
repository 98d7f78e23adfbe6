//! Byte-exact vectors: every vector's bytes decode to exactly its packet, taking all the bytes, and
//! its packet encodes to exactly its bytes.

mod common;

use common::*;
use wren_codec::header::PacketType;
use wren_codec::*;

#[test]
fn every_vector_decodes_to_its_packet() {
    for v in vectors() {
        let d = decode_complete(v.bytes, v.options());
        assert_eq!(d.consumed, v.bytes.len(), "{}: consumed", v.name);
        assert_packet_eq(v.name, &d.packet, &v.packet);
    }
}

#[test]
fn every_vector_decodes_by_its_per_packet_decoder() {
    for v in vectors() {
        let (body, header) = header::parse_fixed_header(v.bytes, v.version).unwrap();
        let h = &header;
        let packet = match header.packet_type {
            PacketType::Connect => Connect::decode_body(h, body).map(Packet::Connect),
            PacketType::ConnAck => ConnAck::decode_body(h, body, v.version).map(Packet::ConnAck),
            PacketType::Publish => Publish::decode_body(h, body, v.version).map(Packet::Publish),
            PacketType::PubAck => Ack::decode_body(h, body, v.version).map(Packet::PubAck),
            PacketType::PubRec => Ack::decode_body(h, body, v.version).map(Packet::PubRec),
            PacketType::PubRel => Ack::decode_body(h, body, v.version).map(Packet::PubRel),
            PacketType::PubComp => Ack::decode_body(h, body, v.version).map(Packet::PubComp),
            PacketType::Subscribe => {
                Subscribe::decode_body(h, body, v.version).map(Packet::Subscribe)
            }
            PacketType::SubAck => SubAck::decode_body(h, body, v.version).map(Packet::SubAck),
            PacketType::Unsubscribe => {
                Unsubscribe::decode_body(h, body, v.version).map(Packet::Unsubscribe)
            }
            PacketType::UnsubAck => SubAck::decode_body(h, body, v.version).map(Packet::UnsubAck),
            PacketType::PingReq => Ok(Packet::PingReq),
            PacketType::PingResp => Ok(Packet::PingResp),
            PacketType::Disconnect => {
                Disconnect::decode_body(h, body, v.version).map(Packet::Disconnect)
            }
            PacketType::Auth => Disconnect::decode_body(h, body, v.version).map(Packet::Auth),
        };
        let packet = packet.unwrap_or_else(|e| panic!("{}: {e:?}", v.name));
        assert_packet_eq(v.name, &packet, &v.packet);
    }
}

#[test]
fn per_packet_decoders_refuse_another_type_and_a_short_body() {
    let bytes = [0x40, 0x02, 0x00, 0x07]; // PUBACK 7
    let (body, header) = header::parse_fixed_header(&bytes, V311).unwrap();
    assert_eq!(
        ConnAck::decode_body(&header, body, V311),
        Err(DecodeError::InvalidPacketType(4))
    );
    assert_eq!(
        Ack::decode_body(&header, &body[..1], V311),
        Err(DecodeError::UnexpectedEnd)
    );
    assert_eq!(
        Ack::decode_body(&header, &[0, 7, 0], V311),
        Err(DecodeError::TrailingBytes)
    );
    assert_eq!(
        Ack::decode_body(&header, body, V311).map(|a| a.packet_id.get()),
        Ok(7)
    );
}

#[test]
fn every_vector_encodes_to_its_bytes() {
    for v in vectors() {
        assert_eq!(
            v.packet.encoded_len(v.version),
            Ok(v.bytes.len()),
            "{}: encoded_len",
            v.name
        );
        let mut buf = vec![0u8; v.bytes.len()];
        assert_eq!(
            v.packet.encode(v.version, &mut buf),
            Ok(v.bytes.len()),
            "{}",
            v.name
        );
        assert!(buf == v.bytes, "{}: encoded bytes differ", v.name);
        // A larger buffer: the same bytes, the rest untouched.
        let mut big = vec![0xEEu8; v.bytes.len() + 7];
        assert_eq!(v.packet.encode(v.version, &mut big), Ok(v.bytes.len()));
        assert!(big[..v.bytes.len()] == *v.bytes, "{}", v.name);
        assert!(
            big[v.bytes.len()..].iter().all(|&b| b == 0xEE),
            "{}",
            v.name
        );
    }
}

#[test]
fn decoded_packets_reencode_to_the_same_bytes() {
    for v in vectors() {
        let d = decode_complete(v.bytes, v.options());
        let mut buf = vec![0u8; v.bytes.len()];
        assert_eq!(
            d.packet.encode(v.version, &mut buf),
            Ok(v.bytes.len()),
            "{}",
            v.name
        );
        assert!(buf == v.bytes, "{}: re-encoded bytes differ", v.name);
    }
}

#[test]
fn table_covers_every_packet_type_in_both_versions() {
    let all = [
        PacketType::Connect,
        PacketType::ConnAck,
        PacketType::Publish,
        PacketType::PubAck,
        PacketType::PubRec,
        PacketType::PubRel,
        PacketType::PubComp,
        PacketType::Subscribe,
        PacketType::SubAck,
        PacketType::Unsubscribe,
        PacketType::UnsubAck,
        PacketType::PingReq,
        PacketType::PingResp,
        PacketType::Disconnect,
        PacketType::Auth,
    ];
    for t in all {
        for version in [V311, V5] {
            let n = vectors()
                .iter()
                .filter(|v| v.packet.packet_type() == t)
                .filter(|v| match v.packet {
                    // A CONNECT's version is its own.
                    Packet::Connect(c) => c.protocol == version,
                    _ => v.version == version,
                })
                .count();
            if t == PacketType::Auth && version == V311 {
                assert_eq!(n, 0);
            } else {
                assert!(n > 0, "no {t:?} vector for {version:?}");
            }
        }
    }
    assert!(
        vectors()
            .iter()
            .any(|v| matches!(v.packet, Packet::Connect(c) if c.protocol == V31)),
        "a 3.1 MQIsdp CONNECT"
    );
    // The short forms of 5.0 (rust-mqtt #59): Remaining Length 0..=3.
    for (first, len) in [
        (0x40u8, 2u8),
        (0x40, 3),
        (0x50, 2),
        (0x50, 3),
        (0x62, 2),
        (0x62, 3),
        (0x70, 2),
        (0x70, 3),
        (0xE0, 0),
        (0xE0, 1),
        (0xF0, 0),
        (0xF0, 1),
    ] {
        assert!(
            vectors()
                .iter()
                .any(|v| v.version == V5 && v.bytes[0] == first && v.bytes[1] == len),
            "short form {first:#x} / {len}"
        );
    }
    assert!(vectors().iter().any(|v| v.bytes.len() > 2 * 1024 * 1024));
}

#[test]
fn packet_followed_by_more_bytes_consumes_only_itself() {
    for v in small_vectors() {
        let mut two = v.bytes.to_vec();
        two.extend_from_slice(&[0xC0, 0x00]);
        let d = decode_complete(&two, v.options());
        assert_eq!(d.consumed, v.bytes.len(), "{}", v.name);
        assert_packet_eq(v.name, &d.packet, &v.packet);
        let rest = decode_complete(&two[d.consumed..], v.options());
        assert_eq!(rest.packet, Packet::PingReq);
    }
}

#[test]
fn max_packet_size_equal_to_the_packet_is_accepted() {
    for v in vectors() {
        let len = v.bytes.len() as u32;
        let d = decode_complete(v.bytes, v.options().with_max_packet_size(len));
        assert_eq!(d.consumed, v.bytes.len());
        assert_eq!(
            decode(v.bytes, v.options().with_max_packet_size(len - 1)),
            Err(DecodeError::PacketTooLarge {
                size: len,
                max: len - 1
            }),
            "{}",
            v.name
        );
    }
}

#[test]
fn connect_is_decoded_by_its_own_level() {
    for v in vectors() {
        if let Packet::Connect(c) = v.packet {
            for version in [V31, V311, V5] {
                let d = decode_complete(v.bytes, DecodeOptions::new(version));
                assert_packet_eq(v.name, &d.packet, &v.packet);
                // ... and encoded in its own version whatever the connection says.
                let mut buf = vec![0u8; v.bytes.len()];
                assert_eq!(v.packet.encode(version, &mut buf), Ok(v.bytes.len()));
                assert!(buf == v.bytes);
            }
            assert!(matches!(c.protocol.level(), 3..=5));
        }
    }
}

#[test]
fn v311_accepts_a_non_minimal_remaining_length() {
    // 3.1.1 does not require minimal Variable Byte Integers; 5.0 does ([MQTT-1.5.5-1]).
    let bytes = [0xC0, 0x80, 0x00];
    let d = decode_complete(&bytes, DecodeOptions::new(V311));
    assert_eq!((d.packet, d.consumed), (Packet::PingReq, 3));
    let bytes = [0x30, 0x85, 0x00, 0x00, 0x03, b'a', b'/', b'b'];
    let d = decode_complete(&bytes, DecodeOptions::new(V311));
    assert_eq!(d.consumed, 8);
    let Packet::Publish(p) = d.packet else {
        panic!()
    };
    assert_eq!((p.topic.as_str(), p.payload), ("a/b", &b""[..]));
}

#[test]
fn v5_properties_in_any_order_decode() {
    // User property, then topic alias, then content type: not the canonical (ascending) order.
    let bytes = [
        0x30, 0x15, 0x00, 0x03, b'a', b'/', b'b', 0x0E, 0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v',
        0x23, 0x00, 0x02, 0x03, 0x00, 0x01, b't', b'!',
    ];
    let d = decode_complete(&bytes, DecodeOptions::new(V5));
    assert_eq!(d.consumed, bytes.len());
    let Packet::Publish(p) = d.packet else {
        panic!()
    };
    assert_eq!(p.properties.topic_alias, Some(nz16(2)));
    assert_eq!(p.properties.content_type, Some("t"));
    assert_eq!(
        p.properties.user_properties.iter().collect::<Vec<_>>(),
        [("k", "v")]
    );
    assert_eq!(p.payload, b"!");
    // Re-encoding writes the canonical order: same length, different bytes, same packet.
    let mut buf = [0u8; 25];
    let n = d.packet.encode(V5, &mut buf).unwrap();
    assert_eq!(n, bytes.len());
    assert_ne!(&buf[..n], &bytes[..]);
    assert_eq!(
        decode_complete(&buf[..n], DecodeOptions::new(V5)).packet,
        d.packet
    );
}

#[test]
fn v5_ack_with_explicit_success_and_empty_properties_decodes() {
    // Remaining Length 4: reason code 0x00 and property length 0, both of which may be left out.
    for first in [0x40u8, 0x50, 0x62, 0x70] {
        let bytes = [first, 0x04, 0x00, 0x09, 0x00, 0x00];
        let d = decode_complete(&bytes, DecodeOptions::new(V5));
        assert_eq!(d.consumed, 6);
        let expected = Ack::new(pid(9));
        let expected = match first {
            0x40 => Packet::PubAck(expected),
            0x50 => Packet::PubRec(expected),
            0x62 => Packet::PubRel(expected),
            _ => Packet::PubComp(expected),
        };
        assert_packet_eq("RL 4 ack", &d.packet, &expected);
        // Encoded in the shortest form.
        let mut buf = [0u8; 8];
        assert_eq!(d.packet.encode(V5, &mut buf), Ok(4));
        assert_eq!(&buf[..4], &[first, 0x02, 0x00, 0x09]);
    }
    // DISCONNECT and AUTH with reason code 0 and property length 0.
    for first in [0xE0u8, 0xF0] {
        let bytes = [first, 0x02, 0x00, 0x00];
        let d = decode_complete(&bytes, DecodeOptions::new(V5));
        assert_eq!(d.consumed, 4);
        let mut buf = [0u8; 4];
        assert_eq!(d.packet.encode(V5, &mut buf), Ok(2));
        assert_eq!(&buf[..2], &[first, 0x00]);
    }
}

#[test]
fn v5_packets_encode_for_v311_without_their_v5_parts() {
    // A broker forwards a 5.0 PUBLISH to a 3.1.1 subscriber: properties are left out.
    let v5 = vectors()
        .iter()
        .find(|v| v.name.starts_with("5.0 PUBLISH: QoS 1 retained"))
        .unwrap();
    let mut buf = [0u8; 64];
    let n = v5.packet.encode(V311, &mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        &[
            0x33, 0x09, 0x00, 0x03, b's', b'/', b't', 0x12, 0x34, b'{', b'}'
        ]
    );
    // 5.0 subscription options become a bare QoS byte.
    let v5 = vectors()
        .iter()
        .find(|v| {
            v.name
                .starts_with("5.0 SUBSCRIBE: every subscription option")
        })
        .unwrap();
    let n = v5.packet.encode(V311, &mut buf).unwrap();
    let expected = cat(&[
        &[0x82, 31, 0x00, 0x0B],
        &[0x00, 0x03],
        b"a/+",
        &[0x01],
        &[0x00, 0x03],
        b"b/#",
        &[0x02],
        &[0x00, 0x0A],
        b"$share/g/c",
        &[0x00],
        &[0x00, 0x01],
        b"d",
        &[0x01],
    ]);
    assert_eq!(&buf[..n], &expected[..]);
    // A 5.0 DISCONNECT with a reason is an empty 3.1.1 DISCONNECT.
    let d = Packet::Disconnect(Disconnect::with_reason(ReasonCode::SERVER_SHUTTING_DOWN));
    assert_eq!(d.encode(V311, &mut buf), Ok(2));
    assert_eq!(&buf[..2], &[0xE0, 0x00]);
}

#[test]
fn decoded_strings_and_payloads_borrow_the_input() {
    let v = vectors()
        .iter()
        .find(|v| v.name.starts_with("5.0 PUBLISH: QoS 1 retained"))
        .unwrap();
    let d = decode_complete(v.bytes, v.options());
    let Packet::Publish(p) = d.packet else {
        panic!()
    };
    let range = v.bytes.as_ptr_range();
    assert!(range.contains(&p.payload.as_ptr()));
    assert!(range.contains(&p.topic.as_str().as_ptr()));
    assert!(range.contains(&p.properties.content_type.unwrap().as_ptr()));
    let (k, _) = p.properties.user_properties.iter().next().unwrap();
    assert!(range.contains(&k.as_ptr()));
}

#[test]
fn v31_connections_follow_v311_rules() {
    // After a 3.1 (MQIsdp) CONNECT the connection speaks 3.1.1's packet formats.
    for v in small_vectors().filter(|v| v.version == V311) {
        let d = decode_complete(v.bytes, DecodeOptions::new(V31));
        assert_eq!(d.consumed, v.bytes.len());
        assert_packet_eq(v.name, &d.packet, &v.packet);
        let mut buf = vec![0u8; v.bytes.len()];
        assert_eq!(
            v.packet.encode(V31, &mut buf),
            Ok(v.bytes.len()),
            "{}",
            v.name
        );
        // The one difference: 3.1's CONNACK has no Session Present (its first byte is
        // reserved and written 0).
        let mut expected = v.bytes.to_vec();
        if let Packet::ConnAck(c) = v.packet
            && c.session_present
            && let Some(flags) = expected.get_mut(2)
        {
            *flags = 0;
        }
        assert!(buf == expected, "{}", v.name);
    }
}

#[test]
fn write_packet_writes_the_vector_bytes() {
    for v in small_vectors() {
        let len = v.bytes.len();
        let mut out = vec![0xAAu8; len + 8];
        let mut scratch = vec![0u8; len];
        let mut w: &mut [u8] = &mut out;
        let n = wren_codec::io::write_packet(&mut w, &v.packet, v.version, &mut scratch).unwrap();
        assert_eq!(n, len);
        assert!(out[..len] == *v.bytes, "{}", v.name);
        assert!(out[len..].iter().all(|&b| b == 0xAA));
        // A scratch buffer one byte short is an encode error, and nothing is written.
        let mut out = vec![0xAAu8; len];
        let mut short = vec![0u8; len - 1];
        let mut w: &mut [u8] = &mut out;
        assert_eq!(
            wren_codec::io::write_packet(&mut w, &v.packet, v.version, &mut short),
            Err(wren_codec::io::WriteError::Encode(
                EncodeError::BufferTooSmall { needed: len }
            ))
        );
        assert!(out.iter().all(|&b| b == 0xAA));
    }
}
