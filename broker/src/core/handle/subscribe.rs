//! SUBSCRIBE and UNSUBSCRIBE: filters granted or refused, SUBACK / UNSUBACK, retained messages.

use std::num::NonZeroU32;
use std::sync::Arc;

use wren_codec::{
    List, Packet, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, TopicFilter, Unsubscribe,
    properties::NO_PROPERTIES,
};

use crate::core::Broker;
use crate::core::access::TopicAccess;
use crate::core::close::CloseReason;
use crate::core::delivery::Send;
use crate::core::ids::{ConnId, SessionId};
use crate::core::persist::{Change, StoredSub};
use crate::core::subscriptions::Sub;
use crate::core::trace;
use crate::core::validate::check_topic;

impl Broker {
    /// SUBSCRIBE: each filter granted (at min(requested, maximum QoS)) or refused, SUBACK, then
    /// the retained messages the granted filters match.
    pub(in crate::core) fn on_subscribe(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        sub: &Subscribe<'_>,
    ) -> Result<(), CloseReason> {
        // Every filter is checked before any is subscribed: a refused packet changes nothing.
        for s in sub.subscriptions.iter() {
            check_topic("topic filter", s.filter.as_str())?;
        }
        let v5 = self.version(conn).is_v5();
        // A bridge (Mosquitto's `is_bridge`) gets No Local and Retain As Published on every
        // subscription, in 3.1 and 3.1.1 too: what it published is not sent back to it (the
        // loop it would otherwise make) and retained messages stay retained on the far side.
        let bridge = self.conns.get(&conn).is_some_and(|c| c.is_bridge());
        let max = self.config.max_subscriptions_per_client;
        let sub_id = sub
            .properties
            .subscription_identifiers
            .iter()
            .next()
            .and_then(NonZeroU32::new);
        let mut codes = Vec::new();
        // Granted filters that may receive retained messages now, with their subscription.
        let mut granted: Vec<(TopicFilter<'_>, Sub)> = Vec::new();
        for s in sub.subscriptions.iter() {
            if trace::enabled() {
                trace::filter(s.filter.as_str(), Some(s.options.qos.bits()));
            }
            let refuse = |v5_code: ReasonCode| {
                if v5 {
                    v5_code
                } else {
                    ReasonCode::V3_SUBACK_FAILURE
                }
            };
            let shared = match s.filter.shared() {
                // Shared subscriptions are defined by 5.0; 3.1.1 clients get them too, as from
                // Mosquitto, EMQX and HiveMQ (3.1.1 reserves no `$share` prefix).
                Ok(Some((_, inner))) => {
                    if !self.config.shared_subscription_available {
                        codes.push(refuse(ReasonCode::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED));
                        continue;
                    }
                    // [MQTT-3.8.3-4] (5.0): No Local on a shared subscription is a protocol error.
                    if s.options.no_local {
                        return Err(CloseReason::ProtocolError);
                    }
                    Some(inner)
                }
                Ok(None) => None,
                Err(_) => {
                    codes.push(refuse(ReasonCode::TOPIC_FILTER_INVALID));
                    continue;
                }
            };
            let filter = shared.unwrap_or(s.filter);
            // The topic rules (`access.rs`): 0x80, 5.0 0x87 Not authorized.
            let allowed = self.sessions.get(sid).is_none_or(|session| {
                self.may(
                    &session.client_id,
                    &session.identity,
                    filter.as_str(),
                    TopicAccess::Subscribe,
                )
            });
            if !allowed {
                codes.push(refuse(ReasonCode::NOT_AUTHORIZED));
                continue;
            }
            if filter.has_wildcards() && !self.config.wildcard_subscription_available {
                codes.push(refuse(ReasonCode::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED));
                continue;
            }
            if sub_id.is_some() && !self.config.subscription_identifier_available {
                codes.push(refuse(ReasonCode::SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED));
                continue;
            }
            if self.sessions.get(sid).is_none() {
                return Ok(());
            }
            let qos_bits = s.options.qos.bits().min(self.config.maximum_qos);
            let qos = QoS::from_bits(qos_bits).unwrap_or(QoS::AtMostOnce);
            let entry = Sub {
                session: sid,
                qos,
                no_local: s.options.no_local || bridge,
                retain_as_published: s.options.retain_as_published || bridge,
                id: sub_id,
            };
            // A session at `max_subscriptions_per_client` may still replace one of its own.
            let Ok(existed) = self.subscriptions.subscribe(s.filter, entry, max) else {
                codes.push(refuse(ReasonCode::QUOTA_EXCEEDED));
                continue;
            };
            codes.push(ReasonCode(qos_bits));
            if let Some(session) = self.sessions.get(sid).filter(|s| s.persisted) {
                self.journal.record(Change::Subscribed {
                    client_id: Arc::clone(&session.client_id),
                    filter: s.filter.as_str().into(),
                    sub: StoredSub {
                        qos,
                        no_local: entry.no_local,
                        retain_as_published: entry.retain_as_published,
                        id: entry.id.map(NonZeroU32::get),
                    },
                });
            }
            if trace::enabled()
                && let Some(session) = self.sessions.get(sid)
            {
                trace::subscribed(&session.client_id, Some(qos_bits), s.filter.as_str());
            }
            // Retain Handling 0, 1, 2: [MQTT-3.3.1-9], [MQTT-3.3.1-10], [MQTT-3.3.1-11] (5.0;
            // 3.1.1 always sends). A shared subscription gets no retained messages, as in
            // Mosquitto (5.0 §4.8.2 leaves it to the server; no numbered statement).
            let send_retained = shared.is_none()
                && match s.options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                granted.push((filter, entry));
            }
        }
        let suback = Packet::SubAck(SubAck {
            packet_id: sub.packet_id,
            properties: NO_PROPERTIES,
            reason_codes: List::new(&codes),
        });
        self.send_ack_packet(conn, &suback);
        // Matching retained messages follow, with RETAIN set ([MQTT-3.3.1-6] (3.1.1),
        // [MQTT-3.3.1-9] (5.0)), at min(QoS) ([MQTT-3.8.4-8] (5.0)).
        let now = self.now_ms;
        let mut retained = Vec::new();
        for (filter, entry) in granted {
            retained.clear();
            self.retained.matching(filter, &mut retained);
            let ids: Vec<u32> = entry.id.map(NonZeroU32::get).into_iter().collect();
            for m in &retained {
                if !m.is_expired(now) {
                    let send = Send {
                        qos: entry.qos.min(m.qos()),
                        retain: true,
                        sub_ids: &ids,
                        shared: None,
                    };
                    self.deliver(sid, m, send);
                }
            }
        }
        Ok(())
    }

    /// UNSUBSCRIBE: each filter removed, UNSUBACK (5.0: with a code per filter).
    pub(in crate::core) fn on_unsubscribe(
        &mut self,
        conn: ConnId,
        sid: SessionId,
        unsub: &Unsubscribe<'_>,
    ) -> Result<(), CloseReason> {
        for f in unsub.filters.iter() {
            check_topic("topic filter", f.as_str())?;
        }
        let mut codes = Vec::new();
        for f in unsub.filters.iter() {
            if trace::enabled() {
                trace::filter(f.as_str(), None);
                if let Some(session) = self.sessions.get(sid) {
                    trace::subscribed(&session.client_id, None, f.as_str());
                }
            }
            let existed = self.subscriptions.unsubscribe(f, sid);
            if existed && let Some(session) = self.sessions.get(sid).filter(|s| s.persisted) {
                self.journal.record(Change::Unsubscribed {
                    client_id: Arc::clone(&session.client_id),
                    filter: f.as_str().into(),
                });
            }
            codes.push(if existed {
                ReasonCode::SUCCESS
            } else {
                ReasonCode::NO_SUBSCRIPTION_EXISTED
            });
        }
        // 3.1.1 UNSUBACK carries no codes; the codec leaves them out.
        let unsuback = Packet::UnsubAck(SubAck {
            packet_id: unsub.packet_id,
            properties: NO_PROPERTIES,
            reason_codes: List::new(&codes),
        });
        self.send_ack_packet(conn, &unsuback);
        Ok(())
    }
}
