//! Property tests: arbitrary valid packets of every kind, in both versions, survive
//! encode → decode → encode unchanged; arbitrary bytes never panic the decoder, and whatever it
//! accepts re-encodes and re-decodes to the same packet.
//!
//! Strategies build owned models (`String`, `Vec`) and each test borrows them into a [`Packet`]
//! with `List::new(&slice)`, as an application would.

mod common;

use std::num::{NonZeroU16, NonZeroU32};

use common::*;
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use wren_codec::header::PacketType;
use wren_codec::*;

// ------------------------------------------------------------------ strings and topics

/// A UTF-8 string MQTT accepts: any characters but U+0000.
fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[^\\x00]{0,10}").unwrap()
}

fn data() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..12)
}

/// One topic level: no separator, no wildcard, no U+0000 (may be empty).
fn level() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[^\\x00/+#]{0,6}").unwrap()
}

fn topic_name() -> impl Strategy<Value = String> {
    vec(level(), 1..5).prop_map(|levels| {
        let t = levels.join("/");
        if t.is_empty() { "t".to_owned() } else { t }
    })
}

fn topic_filter(shared: bool) -> impl Strategy<Value = String> {
    let level = prop_oneof![3 => level(), 1 => Just("+".to_owned())];
    (
        vec(level, 1..5),
        any::<bool>(),
        of(proptest::string::string_regex("[^\\x00/+#]{1,5}").unwrap()),
    )
        .prop_map(move |(levels, hash, share)| {
            let mut f = levels.join("/");
            if hash {
                f = if f.is_empty() {
                    "#".to_owned()
                } else {
                    format!("{f}/#")
                };
            }
            if f.is_empty() {
                f = "f".to_owned();
            }
            match share {
                Some(name) if shared => format!("$share/{name}/{f}"),
                _ => f,
            }
        })
}

// ------------------------------------------------------------------ properties

/// Where a property block sits.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Ctx {
    Connect,
    Will,
    ConnAck,
    Publish,
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    Disconnect,
    Auth,
}

/// Whether property `id` may sit in `ctx` (5.0 §2.2.2.2), written out independently of the codec.
fn allowed(ctx: Ctx, id: u8) -> bool {
    use Ctx::*;
    match id {
        0x01 | 0x02 | 0x03 | 0x08 | 0x09 => matches!(ctx, Publish | Will),
        0x0B => matches!(ctx, Publish | Subscribe),
        0x11 => matches!(ctx, Connect | ConnAck | Disconnect),
        0x12 | 0x13 | 0x1A | 0x24 | 0x25 | 0x28 | 0x29 | 0x2A => ctx == ConnAck,
        0x15 | 0x16 => matches!(ctx, Connect | ConnAck | Auth),
        0x17 | 0x19 => ctx == Connect,
        0x18 => ctx == Will,
        0x1C => matches!(ctx, ConnAck | Disconnect),
        0x1F => matches!(ctx, ConnAck | Ack | SubAck | Disconnect | Auth),
        0x21 | 0x22 | 0x27 => matches!(ctx, Connect | ConnAck),
        0x23 => ctx == Publish,
        0x26 => true,
        _ => false,
    }
}

/// Every property, owned; [`OwnedProps::borrow`] keeps those allowed in a context.
#[derive(Debug, Clone, Default)]
struct OwnedProps {
    payload_format_utf8: Option<bool>,
    message_expiry: Option<u32>,
    content_type: Option<String>,
    response_topic: Option<String>,
    correlation: Option<Vec<u8>>,
    sub_ids: Vec<u32>,
    session_expiry: Option<u32>,
    assigned_client_id: Option<String>,
    server_keep_alive: Option<u16>,
    auth_method: Option<String>,
    auth_data: Option<Vec<u8>>,
    request_problem: Option<bool>,
    will_delay: Option<u32>,
    request_response: Option<bool>,
    response_info: Option<String>,
    server_reference: Option<String>,
    reason_string: Option<String>,
    receive_max: Option<NonZeroU16>,
    topic_alias_max: Option<u16>,
    topic_alias: Option<NonZeroU16>,
    max_qos_1: Option<bool>,
    retain_available: Option<bool>,
    users: Vec<(String, String)>,
    max_packet_size: Option<NonZeroU32>,
    wildcard: Option<bool>,
    sub_id_available: Option<bool>,
    shared_available: Option<bool>,
}

fn nz16() -> impl Strategy<Value = NonZeroU16> {
    (1..=u16::MAX).prop_map(|v| NonZeroU16::new(v).unwrap())
}

fn props() -> impl Strategy<Value = OwnedProps> {
    (
        (
            of(any::<bool>()),
            of(any::<u32>()),
            of(text()),
            of(topic_name()),
            of(data()),
            vec(1..=268_435_455u32, 0..4),
        ),
        (
            of(any::<u32>()),
            of(text()),
            of(any::<u16>()),
            of(text()),
            of(data()),
            of(any::<bool>()),
        ),
        (
            of(any::<u32>()),
            of(any::<bool>()),
            of(text()),
            of(text()),
            of(text()),
            of(nz16()),
        ),
        (
            of(any::<u16>()),
            of(nz16()),
            of(any::<bool>()),
            of(any::<bool>()),
            vec((text(), text()), 0..4),
            of((1..=u32::MAX).prop_map(|v| NonZeroU32::new(v).unwrap())),
        ),
        (of(any::<bool>()), of(any::<bool>()), of(any::<bool>())),
    )
        .prop_map(|(a, b, c, d, e)| OwnedProps {
            payload_format_utf8: a.0,
            message_expiry: a.1,
            content_type: a.2,
            response_topic: a.3,
            correlation: a.4,
            sub_ids: a.5,
            session_expiry: b.0,
            assigned_client_id: b.1,
            server_keep_alive: b.2,
            auth_method: b.3,
            auth_data: b.4,
            request_problem: b.5,
            will_delay: c.0,
            request_response: c.1,
            response_info: c.2,
            server_reference: c.3,
            reason_string: c.4,
            receive_max: c.5,
            topic_alias_max: d.0,
            topic_alias: d.1,
            max_qos_1: d.2,
            retain_available: d.3,
            users: d.4,
            max_packet_size: d.5,
            wildcard: e.0,
            sub_id_available: e.1,
            shared_available: e.2,
        })
}

/// Borrowed views of an [`OwnedProps`]'s lists, which [`Properties`] holds as slices.
struct PropLists<'a> {
    users: Vec<UserProperty<'a>>,
}

impl OwnedProps {
    fn lists(&self) -> PropLists<'_> {
        PropLists {
            users: self
                .users
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
        }
    }

    /// The properties allowed in `ctx` (none in 3.1.1).
    fn borrow<'a>(
        &'a self,
        lists: &'a PropLists<'a>,
        ctx: Ctx,
        version: ProtocolVersion,
    ) -> Properties<'a> {
        if !version.is_v5() {
            return NO_PROPERTIES;
        }
        fn keep<T>(ctx: Ctx, id: u8, v: Option<T>) -> Option<T> {
            v.filter(|_| allowed(ctx, id))
        }
        let sub_ids: &[u32] = match ctx {
            Ctx::Publish => &self.sub_ids,
            Ctx::Subscribe => &self.sub_ids[..self.sub_ids.len().min(1)],
            _ => &[],
        };
        Properties {
            payload_format_indicator: keep(ctx, 0x01, self.payload_format_utf8).map(|u| {
                if u {
                    PayloadFormat::Utf8
                } else {
                    PayloadFormat::Unspecified
                }
            }),
            message_expiry_interval: keep(ctx, 0x02, self.message_expiry),
            content_type: keep(ctx, 0x03, self.content_type.as_deref()),
            response_topic: keep(ctx, 0x08, self.response_topic.as_deref())
                .map(|t| TopicName::new(t).unwrap()),
            correlation_data: keep(ctx, 0x09, self.correlation.as_deref()),
            subscription_identifiers: List::new(sub_ids),
            session_expiry_interval: keep(ctx, 0x11, self.session_expiry),
            assigned_client_identifier: keep(ctx, 0x12, self.assigned_client_id.as_deref()),
            server_keep_alive: keep(ctx, 0x13, self.server_keep_alive),
            authentication_method: keep(ctx, 0x15, self.auth_method.as_deref()),
            authentication_data: keep(ctx, 0x16, self.auth_data.as_deref()),
            request_problem_information: keep(ctx, 0x17, self.request_problem),
            will_delay_interval: keep(ctx, 0x18, self.will_delay),
            request_response_information: keep(ctx, 0x19, self.request_response),
            response_information: keep(ctx, 0x1A, self.response_info.as_deref()),
            server_reference: keep(ctx, 0x1C, self.server_reference.as_deref()),
            reason_string: keep(ctx, 0x1F, self.reason_string.as_deref()),
            receive_maximum: keep(ctx, 0x21, self.receive_max),
            topic_alias_maximum: keep(ctx, 0x22, self.topic_alias_max),
            topic_alias: keep(ctx, 0x23, self.topic_alias),
            maximum_qos: keep(ctx, 0x24, self.max_qos_1).map(|one| {
                if one {
                    QoS::AtLeastOnce
                } else {
                    QoS::AtMostOnce
                }
            }),
            retain_available: keep(ctx, 0x25, self.retain_available),
            user_properties: List::new(&lists.users),
            maximum_packet_size: keep(ctx, 0x27, self.max_packet_size),
            wildcard_subscription_available: keep(ctx, 0x28, self.wildcard),
            subscription_identifier_available: keep(ctx, 0x29, self.sub_id_available),
            shared_subscription_available: keep(ctx, 0x2A, self.shared_available),
        }
    }
}

// ------------------------------------------------------------------ the check

/// encode → decode → encode: the same packet, all bytes consumed, the same bytes.
fn check_roundtrip(p: &Packet<'_>, version: ProtocolVersion) {
    let len = p
        .encoded_len(version)
        .unwrap_or_else(|e| panic!("{p:?}: {e:?}"));
    let mut buf = vec![0u8; len];
    assert_eq!(p.encode(version, &mut buf), Ok(len));
    let d = decode_complete(&buf, DecodeOptions::new(version));
    assert_eq!(d.consumed, len);
    assert_packet_eq("roundtrip", &d.packet, p);
    let mut again = vec![0u8; len];
    assert_eq!(d.packet.encode(version, &mut again), Ok(len));
    assert!(again == buf, "re-encoding changed the bytes");
    check_per_packet_encoder(p, version, &buf);
}

/// The per-packet encoders (what firmware calls, without the all-packet dispatch) write the
/// bytes [`Packet::encode`] wrote.
fn check_per_packet_encoder(p: &Packet<'_>, version: ProtocolVersion, expected: &[u8]) {
    let mut buf = vec![0u8; expected.len()];
    let written = match p {
        Packet::Connect(c) => c.encode(&mut buf),
        Packet::Publish(x) => {
            assert_eq!(x.encoded_len(version), Ok(expected.len()));
            x.encode(version, &mut buf)
        }
        Packet::PubAck(a) => a.encode(PacketType::PubAck, version, &mut buf),
        Packet::PubRec(a) => a.encode(PacketType::PubRec, version, &mut buf),
        Packet::PubRel(a) => a.encode(PacketType::PubRel, version, &mut buf),
        Packet::PubComp(a) => a.encode(PacketType::PubComp, version, &mut buf),
        Packet::Subscribe(x) => x.encode(version, &mut buf),
        Packet::Unsubscribe(x) => x.encode(version, &mut buf),
        Packet::Disconnect(x) => x.encode(version, &mut buf),
        Packet::PingReq => packet::encode_pingreq(&mut buf),
        // Server-side and AUTH packets have no per-packet entry point.
        _ => return,
    };
    assert_eq!(written, Ok(expected.len()), "{p:?}");
    assert!(
        buf == expected,
        "per-packet encoder differs from Packet::encode: {p:?}"
    );
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![Just(ProtocolVersion::V311), Just(ProtocolVersion::V5)]
}

fn codes_for(t: PacketType, version: ProtocolVersion) -> Vec<u8> {
    (0..=255u8)
        .filter(|&c| ReasonCode(c).is_valid_for(t, version))
        .collect()
}

fn packet_id() -> impl Strategy<Value = PacketId> {
    (1..=u16::MAX).prop_map(|v| PacketId::new(v).unwrap())
}

fn qos() -> impl Strategy<Value = QoS> {
    (0..3u8).prop_map(|b| QoS::from_bits(b).unwrap())
}

// ------------------------------------------------------------------ every packet kind

#[derive(Debug, Clone)]
struct OwnedWill {
    topic: String,
    payload: Vec<u8>,
    qos: QoS,
    retain: bool,
    props: OwnedProps,
}

proptest! {
    #[test]
    fn connect_roundtrips(
        protocol in prop_oneof![
            Just(ProtocolVersion::V31),
            Just(ProtocolVersion::V311),
            Just(ProtocolVersion::V5)
        ],
        bridge in any::<bool>(),
        clean in any::<bool>(),
        keep_alive in any::<u16>(),
        client_id in text(),
        will in of((topic_name(), data(), qos(), any::<bool>(), props())),
        username in of(text()),
        password in of(data()),
        props in props(),
    ) {
        let will = will.map(|(topic, payload, qos, retain, props)| OwnedWill {
            topic, payload, qos, retain, props,
        });
        // 3.1.1 needs a user name with a password [MQTT-3.1.2-22].
        let username = match (&username, &password) {
            (None, Some(_)) if !protocol.is_v5() => Some(String::new()),
            _ => username,
        };
        let lists = props.lists();
        let will_lists = will.as_ref().map(|w| w.props.lists());
        let p = Packet::Connect(Connect {
            protocol,
            bridge,
            clean_start: clean,
            keep_alive,
            client_id: &client_id,
            will: will.as_ref().map(|w| Will {
                topic: TopicName::new(&w.topic).unwrap(),
                payload: &w.payload,
                qos: w.qos,
                retain: w.retain,
                properties: w.props.borrow(will_lists.as_ref().unwrap(), Ctx::Will, protocol),
            }),
            username: username.as_deref(),
            password: password.as_deref(),
            properties: props.borrow(&lists, Ctx::Connect, protocol),
        });
        // A CONNECT is encoded in its own version, whatever the connection says.
        check_roundtrip(&p, protocol);
        check_roundtrip(&p, ProtocolVersion::V311);
    }

    #[test]
    fn connack_roundtrips(
        version in version(),
        session_present in any::<bool>(),
        code_index in any::<prop::sample::Index>(),
        props in props(),
    ) {
        let codes = codes_for(PacketType::ConnAck, version);
        let code = ReasonCode(codes[code_index.index(codes.len())]);
        let lists = props.lists();
        let p = Packet::ConnAck(ConnAck {
            session_present: session_present && code == ReasonCode::SUCCESS,
            code,
            properties: props.borrow(&lists, Ctx::ConnAck, version),
        });
        check_roundtrip(&p, version);
    }

    #[test]
    fn publish_roundtrips(
        version in version(),
        dup in any::<bool>(),
        qos in qos(),
        id in packet_id(),
        retain in any::<bool>(),
        topic in topic_name(),
        alias_only in any::<bool>(),
        mut props in props(),
        payload in vec(any::<u8>(), 0..300),
    ) {
        let alias_only = alias_only && version.is_v5();
        if alias_only && props.topic_alias.is_none() {
            props.topic_alias = NonZeroU16::new(1);
        }
        let lists = props.lists();
        let p = Packet::Publish(Publish {
            dup: dup && qos != QoS::AtMostOnce,
            qos_pid: QosPid::new(qos, id),
            retain,
            topic: if alias_only { TopicName::alias_only() } else { TopicName::new(&topic).unwrap() },
            properties: props.borrow(&lists, Ctx::Publish, version),
            payload: &payload,
        });
        check_roundtrip(&p, version);
    }

    #[test]
    fn pub_acks_roundtrip(
        version in version(),
        kind in 0..4usize,
        id in packet_id(),
        code_index in any::<prop::sample::Index>(),
        props in props(),
    ) {
        let t = [PacketType::PubAck, PacketType::PubRec, PacketType::PubRel, PacketType::PubComp][kind];
        let codes = codes_for(t, version);
        let lists = props.lists();
        let ack = Ack {
            packet_id: id,
            reason_code: ReasonCode(codes[code_index.index(codes.len())]),
            properties: props.borrow(&lists, Ctx::Ack, version),
        };
        let p = match kind {
            0 => Packet::PubAck(ack),
            1 => Packet::PubRec(ack),
            2 => Packet::PubRel(ack),
            _ => Packet::PubComp(ack),
        };
        check_roundtrip(&p, version);
    }

    #[test]
    fn subscribe_roundtrips(
        version in version(),
        id in packet_id(),
        props in props(),
        subs in vec(
            (topic_filter(true), qos(), any::<bool>(), any::<bool>(), 0..3u8),
            1..30,
        ),
    ) {
        let lists = props.lists();
        let subscriptions: Vec<Subscription<'_>> = subs
            .iter()
            .map(|(filter, qos, no_local, rap, rh)| {
                let filter = TopicFilter::new(filter).unwrap();
                let options = if version.is_v5() {
                    SubscriptionOptions {
                        qos: *qos,
                        // No Local is a Protocol Error on a shared subscription [MQTT-3.8.3-4].
                        no_local: *no_local && filter.shared().unwrap().is_none(),
                        retain_as_published: *rap,
                        retain_handling: [
                            RetainHandling::SendAtSubscribe,
                            RetainHandling::SendIfNew,
                            RetainHandling::DoNotSend,
                        ][usize::from(*rh)],
                    }
                } else {
                    SubscriptionOptions::qos(*qos)
                };
                Subscription { filter, options }
            })
            .collect();
        let p = Packet::Subscribe(Subscribe {
            packet_id: id,
            properties: props.borrow(&lists, Ctx::Subscribe, version),
            subscriptions: List::new(&subscriptions),
        });
        check_roundtrip(&p, version);
    }

    #[test]
    fn suback_and_unsuback_roundtrip(
        version in version(),
        unsub in any::<bool>(),
        id in packet_id(),
        props in props(),
        picks in vec(any::<prop::sample::Index>(), 1..40),
    ) {
        let t = if unsub { PacketType::UnsubAck } else { PacketType::SubAck };
        let allowed = codes_for(t, version);
        // A 3.1.1 UNSUBACK carries no codes.
        let codes: Vec<ReasonCode> = if unsub && !version.is_v5() {
            Vec::new()
        } else {
            picks.iter().map(|i| ReasonCode(allowed[i.index(allowed.len())])).collect()
        };
        let lists = props.lists();
        let ack = SubAck {
            packet_id: id,
            properties: props.borrow(&lists, Ctx::SubAck, version),
            reason_codes: List::new(&codes),
        };
        let p = if unsub { Packet::UnsubAck(ack) } else { Packet::SubAck(ack) };
        check_roundtrip(&p, version);
    }

    #[test]
    fn unsubscribe_roundtrips(
        version in version(),
        id in packet_id(),
        props in props(),
        filters in vec(topic_filter(true), 1..30),
    ) {
        let lists = props.lists();
        let filters: Vec<TopicFilter<'_>> =
            filters.iter().map(|f| TopicFilter::new(f).unwrap()).collect();
        let p = Packet::Unsubscribe(Unsubscribe {
            packet_id: id,
            properties: props.borrow(&lists, Ctx::Unsubscribe, version),
            filters: List::new(&filters),
        });
        check_roundtrip(&p, version);
    }

    #[test]
    fn ping_disconnect_and_auth_roundtrip(
        version in version(),
        which in 0..4usize,
        code_index in any::<prop::sample::Index>(),
        props in props(),
    ) {
        let lists = props.lists();
        let p = match which {
            0 => Packet::PingReq,
            1 => Packet::PingResp,
            2 => {
                let codes = codes_for(PacketType::Disconnect, version);
                Packet::Disconnect(Disconnect {
                    reason_code: ReasonCode(codes[code_index.index(codes.len())]),
                    properties: props.borrow(&lists, Ctx::Disconnect, version),
                })
            }
            _ => {
                // AUTH exists only in 5.0.
                let codes = codes_for(PacketType::Auth, ProtocolVersion::V5);
                let auth = Packet::Auth(Disconnect {
                    reason_code: ReasonCode(codes[code_index.index(codes.len())]),
                    properties: props.borrow(&lists, Ctx::Auth, ProtocolVersion::V5),
                });
                check_roundtrip(&auth, ProtocolVersion::V5);
                prop_assert_eq!(auth.encoded_len(ProtocolVersion::V311), Err(EncodeError::NotInVersion));
                return Ok(());
            }
        };
        check_roundtrip(&p, version);
    }
}

// ------------------------------------------------------------------ arbitrary bytes

/// Decode arbitrary bytes: no panic; a prefix answer is sane; an accepted packet re-encodes to
/// bytes that decode to the same packet and re-encode identically.
fn check_arbitrary(bytes: &[u8], version: ProtocolVersion) {
    match decode(bytes, DecodeOptions::new(version)) {
        Ok(Status::Complete(d)) => {
            assert!(d.consumed >= 2 && d.consumed <= bytes.len());
            let len = d
                .packet
                .encoded_len(version)
                .unwrap_or_else(|e| panic!("{:?} decodes but does not encode: {e:?}", d.packet));
            let mut buf = vec![0u8; len];
            assert_eq!(d.packet.encode(version, &mut buf), Ok(len));
            let again = decode_complete(&buf, DecodeOptions::new(version));
            assert_eq!(again.consumed, len);
            assert_packet_eq("re-decoded", &again.packet, &d.packet);
            let mut buf2 = vec![0u8; len];
            assert_eq!(again.packet.encode(version, &mut buf2), Ok(len));
            assert!(buf == buf2);
        }
        Ok(Status::Partial(n)) => assert!(n >= 1),
        Err(e) => {
            let _ = (e.kind(), e.reason_code(), e.as_str());
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..200), version in version()) {
        check_arbitrary(&bytes, version);
    }

    #[test]
    fn arbitrary_bodies_with_a_valid_header_never_panic(
        nibble in 1..16u8,
        publish_flags in 0..16u8,
        body in vec(any::<u8>(), 0..120),
        version in version(),
    ) {
        // A correct fixed header, so the body parsers get to see the junk.
        let first = match nibble {
            3 => 0x30 | publish_flags,
            6 | 8 | 10 => (nibble << 4) | 0x02,
            n => n << 4,
        };
        check_arbitrary(&frame(first, &body), version);
    }

    #[test]
    fn mutated_vectors_never_panic(
        which in any::<prop::sample::Index>(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        version in version(),
    ) {
        let small: Vec<&Vector> = small_vectors().filter(|v| v.bytes.len() < 1024).collect();
        let v = small[which.index(small.len())];
        let mut bytes = v.bytes.to_vec();
        for (at, byte) in edits {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        check_arbitrary(&bytes, version);
    }
}
