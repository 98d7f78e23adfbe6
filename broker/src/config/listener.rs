//! Listeners: where the broker accepts connections, over which protocol, with which TLS
//! settings and, with `per_listener_settings`, which authentication (Mosquitto's `listener`
//! blocks; `[[listener]]` tables in wren.toml).
//!
//! Secure by default, as Mosquitto 2.0: with no listener configured the broker runs in
//! **local-only mode**, on the loopback addresses (127.0.0.1 and ::1) of `port`, anonymous
//! clients allowed. A listener that other hosts can reach admits anonymous clients only with
//! `allow_anonymous = true`; otherwise clients need a user in the `password_file` (and without
//! one nobody gets in, which the start-up log says).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use serde::Deserialize;

/// What a listener speaks on top of TCP (or TLS).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// MQTT over TCP (or TLS).
    #[default]
    Mqtt,
    /// MQTT over WebSockets (or WebSockets over TLS).
    Websockets,
}

/// Which address family an address-less listener binds (Mosquitto's `socket_domain`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SocketDomain {
    /// IPv4 only (`0.0.0.0`).
    Ipv4,
    /// IPv6 only (`::`).
    Ipv6,
}

/// One listener. Every field has a default: `[[listener]]` with just `port` listens on every
/// address, MQTT over TCP.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Listener {
    /// TCP port (0: an ephemeral one, for tests).
    pub port: u16,
    /// Address or host name to listen on; empty: every address (of `socket_domain`, if set).
    pub bind: String,
    /// With an empty `bind`: IPv4 or IPv6 only (default: both).
    pub socket_domain: Option<SocketDomain>,
    /// `mqtt` (default) or `websockets`.
    pub protocol: Protocol,
    /// TLS: the server's PEM certificate chain; set (with `keyfile`) it makes the listener TLS.
    pub certfile: Option<PathBuf>,
    /// TLS: the server's PEM private key.
    pub keyfile: Option<PathBuf>,
    /// TLS: PEM file of CA certificates client certificates are checked against.
    pub cafile: Option<PathBuf>,
    /// TLS: a directory of PEM CA certificates, as `cafile`.
    pub capath: Option<PathBuf>,
    /// TLS: clients must present a certificate signed by one of the CAs.
    pub require_certificate: bool,
    /// TLS: the client certificate's Common Name is the client's user name.
    pub use_identity_as_username: bool,
    /// TLS: the client certificate's whole subject is the client's user name.
    pub use_subject_as_username: bool,
    /// TLS: the oldest version accepted, `tlsv1.2` or `tlsv1.3` (default: both).
    pub tls_version: Option<String>,
    /// With `per_listener_settings = true`: this listener's `allow_anonymous`.
    pub allow_anonymous: Option<bool>,
    /// With `per_listener_settings = true`: this listener's `password_file`.
    pub password_file: Option<PathBuf>,
    /// With `per_listener_settings = true`: this listener's `acl_file`.
    pub acl_file: Option<PathBuf>,
}

impl Listener {
    /// Whether the listener speaks TLS (a certificate is configured).
    pub fn is_tls(&self) -> bool {
        self.certfile.is_some() || self.keyfile.is_some()
    }

    /// The socket addresses to bind: `bind` resolved, or every address of the domain(s).
    pub fn addresses(&self) -> std::io::Result<Vec<SocketAddr>> {
        if self.bind.is_empty() {
            let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, self.port));
            let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, self.port));
            return Ok(match self.socket_domain {
                Some(SocketDomain::Ipv4) => vec![v4],
                Some(SocketDomain::Ipv6) => vec![v6],
                None => vec![v4, v6],
            });
        }
        if self.bind == "localhost" {
            // Both loopback addresses, without asking the resolver (local-only mode is the
            // default: it must not depend on /etc/hosts).
            let all = [
                SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, self.port)),
            ];
            return Ok(all
                .into_iter()
                .filter(|a| match self.socket_domain {
                    Some(SocketDomain::Ipv4) => a.is_ipv4(),
                    Some(SocketDomain::Ipv6) => a.is_ipv6(),
                    None => true,
                })
                .collect());
        }
        let mut addrs: Vec<SocketAddr> = (self.bind.as_str(), self.port)
            .to_socket_addrs()?
            .filter(|a| match self.socket_domain {
                Some(SocketDomain::Ipv4) => a.is_ipv4(),
                Some(SocketDomain::Ipv6) => a.is_ipv6(),
                None => true,
            })
            .collect();
        addrs.dedup();
        Ok(addrs)
    }

    /// Whether only this machine can reach the listener (every address it binds is loopback).
    pub fn is_local_only(&self) -> bool {
        self.addresses()
            .is_ok_and(|a| !a.is_empty() && a.iter().all(|a| is_loopback(a.ip())))
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The listener of local-only mode: `port` on 127.0.0.1 and, where the machine has IPv6, ::1.
pub(crate) fn local_only(port: u16) -> Listener {
    Listener {
        port,
        bind: "localhost".into(),
        ..Listener::default()
    }
}

/// Who may connect through a listener: the settings that apply to it (its own with
/// `per_listener_settings`, else the global ones), defaults resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerSecurity {
    /// Clients without a user name are admitted.
    pub allow_anonymous: bool,
    /// Users and their password hashes (mosquitto_passwd's format).
    pub password_file: Option<PathBuf>,
    /// Topic access rules (Mosquitto's acl_file syntax).
    pub acl_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_local_only() {
        let l = |bind: &str, domain| Listener {
            port: 1883,
            bind: bind.into(),
            socket_domain: domain,
            ..Listener::default()
        };
        assert_eq!(
            l("", None).addresses().unwrap(),
            [
                "0.0.0.0:1883".parse::<SocketAddr>().unwrap(),
                "[::]:1883".parse().unwrap()
            ]
        );
        assert_eq!(
            l("", Some(SocketDomain::Ipv4)).addresses().unwrap(),
            ["0.0.0.0:1883".parse::<SocketAddr>().unwrap()]
        );
        assert!(!l("", None).is_local_only());
        assert!(!l("0.0.0.0", None).is_local_only());
        assert!(l("127.0.0.1", None).is_local_only());
        assert!(l("::1", None).is_local_only());
        assert!(local_only(1883).is_local_only());
        assert!(
            local_only(1883)
                .addresses()
                .unwrap()
                .iter()
                .any(|a| a.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
        assert!(!l("", None).is_tls());
    }
}
