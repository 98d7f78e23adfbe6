//! PUBLISH from a client: topic aliases, the 5.0 checks, routing, and PUBACK / PUBREC.

use std::borrow::Cow;

use wren_codec::{Ack, Packet, PayloadFormat, Publish, QoS, QosPid, ReasonCode};

use crate::core::Broker;
use crate::core::access::TopicAccess;
use crate::core::close::CloseReason;
use crate::core::conn::Phase;
use crate::core::ids::{ConnId, SessionId};
use crate::core::message::Message;
use crate::core::persist::Change;
use crate::core::validate::check_topic_name;

impl Broker {
    /// PUBLISH: check it, route it, acknowledge it (QoS 2: exactly once, MQTT §4.3.3 method B).
    pub(in crate::core) fn on_publish(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        p: &Publish<'_>,
    ) -> Result<(), CloseReason> {
        self.stats.publish_received = self.stats.publish_received.saturating_add(1);
        let v5 = self.version(conn).is_v5();
        // [MQTT-3.3.4-6] (5.0): Subscription Identifiers are the broker's to send; one from a
        // client is a protocol error (checked before a Topic Alias it carries is set up).
        if v5 && !p.properties.subscription_identifiers.is_empty() {
            return Err(CloseReason::ProtocolError);
        }
        // Control characters and depth (`validate.rs`), before a Topic Alias is set to it.
        check_topic_name(p.topic.as_str())?;
        // Borrowed from the packet unless a Topic Alias names it: no allocation per publish.
        let topic: Cow<'_, str> = if v5 {
            let max = self.config.topic_alias_maximum;
            match self.conns.get_mut(&conn).map(|c| &mut c.state) {
                Some(Phase::Connected(client)) => client.resolve_topic_alias(p, max)?,
                _ => return Err(CloseReason::ProtocolError),
            }
        } else if p.topic.is_empty() {
            return Err(CloseReason::ProtocolError);
        } else {
            Cow::Borrowed(p.topic.as_str())
        };
        let qos = p.qos_pid.qos();
        if v5 {
            // 5.0 §3.2.2.3.4: above the Maximum QoS the broker announced.
            if qos.bits() > self.config.maximum_qos {
                return Err(CloseReason::QosNotSupported);
            }
            // 5.0 §3.3.1.3: RETAIN when Retain Available is 0.
            if p.retain && !self.config.retain_available {
                return Err(CloseReason::RetainNotSupported);
            }
        }
        // 5.0 §3.3.2.3.2 check: the payload must be UTF-8 if the publisher says so.
        let bad_format = v5
            && p.properties.payload_format_indicator == Some(PayloadFormat::Utf8)
            && std::str::from_utf8(p.payload).is_err();
        if bad_format && qos == QoS::AtMostOnce {
            return Err(CloseReason::PayloadFormatInvalid);
        }
        // Clients may not publish to `$` topics (`$SYS` belongs to the broker), nor where the
        // topic rules say no (`access.rs`): the message is acknowledged and dropped, as
        // Mosquitto does (CVE-2018-12543: never an assert).
        let denied = (topic.starts_with('$')
            && !self
                .conns
                .get(&conn)
                .is_some_and(|c| c.may_publish_dollar(&topic)))
            || (self.any_topic_rules
                && self.sessions.get(sid).is_some_and(|s| {
                    !self.may(&s.client_id, &s.identity, &topic, TopicAccess::Write)
                }));
        // `message_size_limit` (Mosquitto's): a larger payload is acknowledged and dropped, the
        // publisher stays connected. 5.0: 0x97 Quota exceeded (Mosquitto sends 0x95, which is
        // not a PUBACK/PUBREC reason code, 5.0 §3.4.2.1).
        let limit = self.config.message_size_limit as usize;
        let too_large = limit > 0 && p.payload.len() > limit;
        let accepted = !denied && !bad_format && !too_large;
        if (denied || too_large)
            && let Some(c) = self.conns.get(&conn)
        {
            log::info!(
                "{} PUBLISH from {} (d{}, q{}, r{}, m{}, '{topic}', ... ({} bytes)).",
                if too_large {
                    "Dropped too large"
                } else {
                    "Denied"
                },
                c.client_id(),
                u8::from(p.dup),
                qos.bits(),
                u8::from(p.retain),
                p.qos_pid.packet_id().map_or(0, |id| id.get()),
                p.payload.len()
            );
        }
        let now = self.now_ms;
        let retain = p.retain && self.config.retain_available;
        let message =
            || Message::with_properties(&topic, p.payload, qos, retain, &p.properties, now);
        // The 5.0 acknowledgement code: what happened to the message.
        let code = |matched: usize| {
            if bad_format {
                ReasonCode::PAYLOAD_FORMAT_INVALID
            } else if too_large {
                ReasonCode::QUOTA_EXCEEDED
            } else if denied {
                ReasonCode::NOT_AUTHORIZED
            } else if matched == 0 {
                ReasonCode::NO_MATCHING_SUBSCRIBERS
            } else {
                ReasonCode::SUCCESS
            }
        };
        // The durable store cannot write (`persist.rs`): a QoS 1/2 message is refused rather
        // than acknowledged and lost. 5.0 says so (0x97 Quota exceeded); 3.1/3.1.1 have no way
        // to refuse a PUBLISH but to close the connection.
        if qos != QoS::AtMostOnce && self.journal.failing {
            self.stats.store_refused = self.stats.store_refused.saturating_add(1);
            let Some(pid) = p.qos_pid.packet_id() else {
                return Ok(());
            };
            if !v5 {
                return Err(CloseReason::StoreFailing);
            }
            let mut ack = Ack::new(pid);
            ack.reason_code = ReasonCode::QUOTA_EXCEEDED;
            let packet = if qos == QoS::AtLeastOnce {
                Packet::PubAck(ack)
            } else {
                Packet::PubRec(ack)
            };
            self.send_packet(conn, &packet);
            return Ok(());
        }
        match p.qos_pid {
            QosPid::AtMostOnce => {
                if accepted {
                    self.route(message(), Some(sid));
                }
            }
            QosPid::AtLeastOnce(pid) => {
                let matched = if accepted {
                    self.route(message(), Some(sid))
                } else {
                    0
                };
                let mut ack = Ack::new(pid);
                if v5 {
                    ack.reason_code = code(matched);
                }
                self.send_ack_packet(conn, &Packet::PubAck(ack));
            }
            QosPid::ExactlyOnce(pid) => {
                // Exactly once: deliver on the first PUBLISH with this id, remember the id until
                // PUBREL, and only acknowledge duplicates (MQTT §4.3.3, method B).
                let receive_maximum = usize::from(self.config.receive_maximum);
                let Some(s) = self.sessions.get_mut(sid) else {
                    return Ok(());
                };
                let duplicate = s.delivery().awaiting_rel.contains(&pid.get());
                if !duplicate && v5 && s.delivery().awaiting_rel.len() >= receive_maximum {
                    // 5.0 §3.3.4: more unacknowledged QoS 2 than the Receive Maximum.
                    return Err(CloseReason::ReceiveMaximumExceeded);
                }
                let mut matched = 1;
                // A 5.0 PUBREC with an error code (0x99, 0x87, 0x97) ends the exchange, so the
                // id is remembered only when the PUBREC will say success (3.1.1 always does).
                let refused = v5 && (bad_format || denied || too_large);
                if !duplicate && !refused {
                    s.delivery_mut().awaiting_rel.insert(pid.get());
                    if s.persisted {
                        self.journal.record(Change::AwaitingRel {
                            client_id: std::sync::Arc::clone(&s.client_id),
                            pid: pid.get(),
                        });
                    }
                    matched = if accepted {
                        self.route(message(), Some(sid))
                    } else {
                        1
                    };
                }
                let mut rec = Ack::new(pid);
                if v5 {
                    rec.reason_code = code(matched);
                }
                self.send_ack_packet(conn, &Packet::PubRec(rec));
            }
        }
        Ok(())
    }
}
