//! Framing: how one connection's bytes are cut into packets. Before CONNECT only a small first
//! packet is accepted, decoded as 3.1.1 (CVE-2017-7651, CVE-2023-0809: a peer that has not
//! connected cannot make the broker buffer megabytes); the CONNECT then says the protocol
//! version the rest is decoded in, with the full `max_packet_size`. The shell and the fuzz
//! target both decode through this, so they cannot disagree on that switch.

use wren_codec::{DecodeError, DecodeOptions, Decoded, Packet, ProtocolVersion, Status, decode};

use crate::config::Config;

/// A connection's decode state.
#[derive(Debug, Clone, Copy)]
pub struct Framing {
    options: DecodeOptions,
    /// The limit once connected.
    max_packet_size: u32,
    connected: bool,
}

impl Framing {
    /// A new connection, waiting for its CONNECT.
    pub fn new(config: &Config) -> Framing {
        Framing {
            options: DecodeOptions::new(ProtocolVersion::V311)
                .with_max_packet_size(config.max_connect_packet_size)
                .from_client(),
            max_packet_size: config.max_packet_size,
            connected: false,
        }
    }

    /// A connection whose CONNECT (of `version`) was decoded before (a revived one).
    pub fn connected(config: &Config, version: ProtocolVersion) -> Framing {
        Framing {
            options: DecodeOptions::new(version)
                .with_max_packet_size(config.max_packet_size)
                .from_client(),
            max_packet_size: config.max_packet_size,
            connected: true,
        }
    }

    /// Decode the packet at the front of `bytes` and hand it to `handle` with its length; a
    /// CONNECT switches the connection to its version and the full size limit (before `handle`
    /// sees it). Returns what `handle` returned, or how many more bytes a partial packet needs.
    ///
    /// The packet is lent to `handle` rather than returned: a `Packet` is a few hundred bytes,
    /// and returning it through this step copied it twice more per packet (callgrind, fan-in:
    /// three copies instead of one, and about 10% of the bounded fan-in rate).
    #[inline]
    pub fn decode<'b, R>(
        &mut self,
        bytes: &'b [u8],
        handle: impl FnOnce(&Packet<'b>, usize) -> R,
    ) -> Result<Status<R>, DecodeError> {
        // Matched by reference: moving the packet out would copy it.
        match &decode(bytes, self.options) {
            Err(e) => Err(*e),
            Ok(Status::Partial(needed)) => Ok(Status::Partial(*needed)),
            Ok(Status::Complete(Decoded { packet, consumed })) => {
                if let Packet::Connect(c) = packet {
                    self.options.version = c.protocol;
                    self.options.max_packet_size = self.max_packet_size;
                    self.connected = true;
                }
                Ok(Status::Complete(handle(packet, *consumed)))
            }
        }
    }

    /// The version packets are decoded in (3.1.1 before CONNECT).
    pub fn version(&self) -> ProtocolVersion {
        self.options.version
    }

    /// Whether a CONNECT has been decoded.
    pub fn is_connected(&self) -> bool {
        self.connected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CONNECT, MQTT 5.0, clean start, keep-alive 60, no properties, client id "f".
    const CONNECT_V5: [u8; 16] = [
        0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 5, 0x02, 0, 60, 0, 0, 1, b'f',
    ];

    #[test]
    fn connect_switches_version_and_size_limit() {
        let config = Config {
            max_connect_packet_size: 20,
            max_packet_size: 1000,
            ..Config::default()
        };
        let mut f = Framing::new(&config);
        assert_eq!(f.version(), ProtocolVersion::V311);
        assert!(!f.is_connected());
        // 30 bytes announced before CONNECT: over the pre-CONNECT limit.
        assert!(matches!(
            Framing::new(&config).decode(&[0x30, 28], |_, _| ()),
            Err(DecodeError::PacketTooLarge { .. })
        ));
        let seen = f.decode(&CONNECT_V5, |packet, len| {
            (matches!(packet, Packet::Connect(_)), len)
        });
        match seen {
            Ok(Status::Complete(seen)) => assert_eq!(seen, (true, CONNECT_V5.len())),
            other => panic!("{other:?}"),
        }
        assert_eq!(f.version(), ProtocolVersion::V5);
        assert!(f.is_connected());
        // The same 30 bytes are fine once connected: a partial packet, not an error.
        assert!(matches!(
            f.decode(&[0x30, 28], |_, _| ()),
            Ok(Status::Partial(_))
        ));
        let revived = Framing::connected(&config, ProtocolVersion::V5);
        assert!(revived.is_connected());
        assert_eq!(revived.version(), ProtocolVersion::V5);
    }
}
