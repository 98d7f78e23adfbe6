//! TLS listeners: the rustls server configuration of a listener (`certfile`, `keyfile`, `cafile`,
//! `capath`, `tls_version`, `require_certificate`), rebuilt from the files on demand
//! ([`TlsListener::reload`], for SIGHUP), and the user name a client certificate gives
//! (`use_identity_as_username`: its Common Name; `use_subject_as_username`: its subject in RFC 2253
//! form, as Mosquitto prints it with OpenSSL's `XN_FLAG_RFC2253`).
//!
//! rustls with the *ring* provider: TLS 1.2 and 1.3 (`tls_version = "tlsv1.3"`: 1.3 only). With
//! `require_certificate`, clients must present a certificate that chains to one of the CAs of
//! `cafile`/`capath` (rustls-webpki's verifier: signature, validity dates, client-auth usage);
//! without it no client certificate is asked for (as Mosquitto: the CAs are then unused).

use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};

use futures_rustls::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConnection, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};

use crate::config::Listener;
use crate::core::CertificateUser;

/// A TLS listener's settings and its current rustls configuration.
#[derive(Debug)]
pub(super) struct TlsListener {
    listener: Listener,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsListener {
    /// Load the listener's certificate, key and CAs; the error names the file at fault.
    pub(super) fn new(listener: &Listener) -> io::Result<TlsListener> {
        let config = server_config(listener)?;
        if (listener.use_identity_as_username || listener.use_subject_as_username)
            && !listener.require_certificate
        {
            log::warn!(
                "Warning: listener on port {} takes user names from client certificates but does \
                 not set require_certificate: no certificate is asked for, and every CONNECT is \
                 refused.",
                listener.port
            );
        }
        Ok(TlsListener {
            listener: listener.clone(),
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// The listener's port (for log lines).
    pub(super) fn port(&self) -> u16 {
        self.listener.port
    }

    /// An acceptor with the configuration in force now.
    pub(super) fn acceptor(&self) -> TlsAcceptor {
        let config = self.current.read().unwrap_or_else(|e| e.into_inner());
        TlsAcceptor::from(Arc::clone(&config))
    }

    /// Read the files again and build a new configuration, without putting it in force.
    pub(super) fn prepare_reload(&self) -> io::Result<Arc<ServerConfig>> {
        server_config(&self.listener).map(Arc::new)
    }

    /// Put a configuration from [`TlsListener::prepare_reload`] in force: new connections use
    /// it; those already open keep theirs.
    pub(super) fn install(&self, config: Arc<ServerConfig>) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// The user name the client's certificate gives, if the listener takes user names from
    /// certificates (`None` otherwise).
    pub(super) fn certificate_user(&self, tls: &ServerConnection) -> Option<CertificateUser> {
        let l = &self.listener;
        if !(l.use_identity_as_username || l.use_subject_as_username) {
            return None;
        }
        let name = tls
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| subject_names(cert.as_ref()))
            .and_then(|names| {
                if l.use_identity_as_username {
                    common_name(&names)
                } else {
                    Some(rfc2253(&names))
                }
            });
        Some(match name {
            Some(name) => CertificateUser::Name(name.into()),
            None => CertificateUser::Missing,
        })
    }
}

/// `error` as an `io::Error` naming the listener (and the file, in `what`).
fn invalid(listener: &Listener, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("listener on port {}: {what}", listener.port),
    )
}

/// The rustls server configuration of a TLS listener.
fn server_config(l: &Listener) -> io::Result<ServerConfig> {
    // rustls 0.23.48 deprecates the ring provider for lacking post-quantum key exchange
    // (X25519MLKEM768 is aws-lc-rs's); ring builds here with the C compiler alone, and X25519,
    // P-256 and P-384 are what Mosquitto's OpenSSL offers too.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (Some(certfile), Some(keyfile)) = (&l.certfile, &l.keyfile) else {
        return Err(invalid(l, "certfile and keyfile must both be set for TLS"));
    };
    let versions: &[&rustls::SupportedProtocolVersion] = match l.tls_version.as_deref() {
        None | Some("tlsv1.2") => &[&rustls::version::TLS13, &rustls::version::TLS12],
        Some("tlsv1.3") => &[&rustls::version::TLS13],
        Some(other) => {
            return Err(invalid(
                l,
                format!("tls_version must be tlsv1.2 or tlsv1.3 (got {other:?})"),
            ));
        }
    };
    let chain = certificates(certfile).map_err(|e| invalid(l, e))?;
    let key = PrivateKeyDer::from_pem_file(keyfile)
        .map_err(|e| invalid(l, format!("keyfile {}: {e}", keyfile.display())))?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| invalid(l, e))?;
    let builder = if l.require_certificate {
        let roots = ca_roots(l)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| invalid(l, format!("client certificate verifier: {e}")))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    builder.with_single_cert(chain, key).map_err(|e| {
        invalid(
            l,
            format!(
                "certfile {} with keyfile {}: {e}",
                certfile.display(),
                keyfile.display()
            ),
        )
    })
}

/// Every certificate of a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = |e: &dyn std::fmt::Display| format!("certfile {}: {e}", path.display());
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| what(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| what(&e))?;
    if chain.is_empty() {
        return Err(what(&"no PEM certificate in it"));
    }
    Ok(chain)
}

/// The CAs of `cafile` and every PEM certificate file of `capath` (at least one CA).
fn ca_roots(l: &Listener) -> io::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let mut add = |path: &Path, strict: bool| -> io::Result<()> {
        let certs = match CertificateDer::pem_file_iter(path) {
            Ok(iter) => iter.collect::<Result<Vec<_>, _>>(),
            Err(e) => Err(e),
        };
        let certs = match certs {
            Ok(certs) => certs,
            // A file of the directory that is not PEM (an index, a CRL) is passed over.
            Err(_) if !strict => return Ok(()),
            Err(e) => return Err(invalid(l, format!("cafile {}: {e}", path.display()))),
        };
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| invalid(l, format!("CA certificate in {}: {e}", path.display())))?;
        }
        Ok(())
    };
    if let Some(cafile) = &l.cafile {
        add(cafile, true)?;
    }
    if let Some(capath) = &l.capath {
        let entries = std::fs::read_dir(capath)
            .map_err(|e| invalid(l, format!("capath {}: {e}", capath.display())))?;
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            add(&file, false)?;
        }
    }
    if roots.is_empty() {
        return Err(invalid(
            l,
            "require_certificate needs the CA certificates to check clients against \
             (cafile or capath)",
        ));
    }
    Ok(roots)
}

// ---------------------------------------------------------------------------------------------
// The subject of a certificate (DER), read just far enough to name the client.
// ---------------------------------------------------------------------------------------------

/// One attribute of a distinguished name: its type (OID, DER content bytes), which RDN (SET) it
/// belongs to, the value's tag, the value's content bytes, and the value's whole DER encoding.
#[derive(Debug)]
struct Attribute<'a> {
    oid: &'a [u8],
    rdn: usize,
    tag: u8,
    value: &'a [u8],
    der: &'a [u8],
}

/// A DER reader over a byte slice.
struct Der<'a>(&'a [u8]);

impl<'a> Der<'a> {
    /// The next TLV: tag, content, whole encoding.
    fn next(&mut self) -> Option<(u8, &'a [u8], &'a [u8])> {
        let tag = *self.0.first()?;
        let first = *self.0.get(1)?;
        let (len, header) = if first < 0x80 {
            (usize::from(first), 2usize)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 {
                return None;
            }
            let mut len = 0usize;
            for byte in self.0.get(2..2 + n)? {
                len = (len << 8) | usize::from(*byte);
            }
            (len, 2 + n)
        };
        let end = header.checked_add(len)?;
        let content = self.0.get(header..end)?;
        let whole = self.0.get(..end)?;
        self.0 = self.0.get(end..)?;
        Some((tag, content, whole))
    }

    /// The next TLV, which must have `tag`.
    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (t, content, _) = self.next()?;
        (t == tag).then_some(content)
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The subject's attributes, in certificate order.
fn subject_names(cert: &[u8]) -> Option<Vec<Attribute<'_>>> {
    let certificate = Der(cert).expect(SEQUENCE)?;
    let mut tbs = Der(Der(certificate).expect(SEQUENCE)?);
    // [0] version (optional), serialNumber, signature, issuer, validity, subject.
    let (mut tag, _, _) = tbs.next()?;
    if tag == 0xa0 {
        (tag, _, _) = tbs.next()?;
    }
    if tag != 0x02 {
        return None;
    }
    tbs.expect(SEQUENCE)?;
    tbs.expect(SEQUENCE)?;
    tbs.expect(SEQUENCE)?;
    let mut name = Der(tbs.expect(SEQUENCE)?);
    let mut out = Vec::new();
    let mut rdn = 0usize;
    while !name.0.is_empty() {
        let mut set = Der(name.expect(SET)?);
        while !set.0.is_empty() {
            let mut atv = Der(set.expect(SEQUENCE)?);
            let oid = atv.expect(OID)?;
            let (tag, value, der) = atv.next()?;
            out.push(Attribute {
                oid,
                rdn,
                tag,
                value,
                der,
            });
        }
        rdn = rdn.saturating_add(1);
    }
    Some(out)
}

/// OpenSSL's short names of the usual attribute types (DER content of the OID).
fn short_name(oid: &[u8]) -> Option<&'static str> {
    Some(match oid {
        [0x55, 0x04, 3] => "CN",
        [0x55, 0x04, 4] => "SN",
        [0x55, 0x04, 5] => "serialNumber",
        [0x55, 0x04, 6] => "C",
        [0x55, 0x04, 7] => "L",
        [0x55, 0x04, 8] => "ST",
        [0x55, 0x04, 9] => "street",
        [0x55, 0x04, 10] => "O",
        [0x55, 0x04, 11] => "OU",
        [0x55, 0x04, 12] => "title",
        [0x55, 0x04, 17] => "postalCode",
        [0x55, 0x04, 42] => "GN",
        [0x55, 0x04, 43] => "initials",
        [0x55, 0x04, 46] => "dnQualifier",
        [0x55, 0x04, 65] => "pseudonym",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19] => "DC",
        [0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x01] => "UID",
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress",
        _ => return None,
    })
}

/// An OID in dotted form.
fn dotted(oid: &[u8]) -> String {
    let mut out = String::new();
    let mut value: u64 = 0;
    let mut first = true;
    for byte in oid {
        value = (value << 7) | u64::from(byte & 0x7f);
        if byte & 0x80 != 0 {
            continue;
        }
        if first {
            let (a, b) = match value {
                0..=39 => (0, value),
                40..=79 => (1, value - 40),
                _ => (2, value - 80),
            };
            let _ = write!(out, "{a}.{b}");
            first = false;
        } else {
            let _ = write!(out, ".{value}");
        }
        value = 0;
    }
    out
}

/// A string value as text: UTF8String, PrintableString, IA5String, NumericString,
/// VisibleString, TeletexString (read as Latin-1), BMPString and UniversalString.
fn text(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        0x0c | 0x12 | 0x13 | 0x16 | 0x1a => String::from_utf8(value.to_vec()).ok(),
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        0x1e => {
            let units: Vec<u16> = value
                .chunks(2)
                .map(|c| match c {
                    [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                    _ => 0xfffd,
                })
                .collect();
            String::from_utf16(&units).ok()
        }
        0x1c => value
            .chunks(4)
            .map(|c| match c {
                [a, b, c, d] => char::from_u32(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The first Common Name, as Mosquitto takes it for `use_identity_as_username` (`None` if there
/// is none, or it holds a NUL, which Mosquitto refuses too).
fn common_name(names: &[Attribute<'_>]) -> Option<String> {
    let cn = names.iter().find(|a| a.oid == [0x55, 0x04, 3])?;
    text(cn.tag, cn.value).filter(|t| !t.contains('\0'))
}

/// The subject as OpenSSL prints it with `XN_FLAG_RFC2253` (what Mosquitto uses for
/// `use_subject_as_username`): attributes last to first, RDNs separated by `,` and the
/// attributes of one RDN by `+`, short names (`CN=...`) or the dotted OID, values escaped as RFC
/// 2253 says (`,+"\<>;`, a leading `#` or space, a trailing space) with control characters and
/// every byte of a non-ASCII character as `\XX`; a value of a type without a string form, or of
/// an unknown attribute type, as `#` and its DER encoding in hexadecimal.
fn rfc2253(names: &[Attribute<'_>]) -> String {
    let mut out = String::new();
    let mut previous: Option<usize> = None;
    for a in names.iter().rev() {
        if let Some(p) = previous {
            out.push(if p == a.rdn { '+' } else { ',' });
        }
        previous = Some(a.rdn);
        let known = short_name(a.oid);
        match known {
            Some(name) => out.push_str(name),
            None => out.push_str(&dotted(a.oid)),
        }
        out.push('=');
        match text(a.tag, a.value).filter(|_| known.is_some()) {
            Some(value) => escape_into(&mut out, &value),
            None => {
                out.push('#');
                for b in a.der {
                    let _ = write!(out, "{b:02X}");
                }
            }
        }
    }
    out
}

fn escape_into(out: &mut String, value: &str) {
    let bytes = value.as_bytes();
    let last = bytes.len().saturating_sub(1);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b',' | b'+' | b'"' | b'\\' | b'<' | b'>' | b';' => {
                out.push('\\');
                out.push(char::from(b));
            }
            b'#' if i == 0 => out.push_str("\\#"),
            b' ' if i == 0 || i == last => out.push_str("\\ "),
            0..=0x1f | 0x7f..=0xff => {
                let _ = write!(out, "\\{b:02X}");
            }
            _ => out.push(char::from(b)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(oid: &'a [u8], rdn: usize, value: &'a [u8], der: &'a [u8]) -> Attribute<'a> {
        Attribute {
            oid,
            rdn,
            tag: 0x0c,
            value,
            der,
        }
    }

    #[test]
    fn subject_in_rfc2253_form() {
        let names = [
            attr(&[0x55, 4, 6], 0, b"GB", b""),
            attr(&[0x55, 4, 10], 1, b"Wren, Ltd", b""),
            attr(&[0x55, 4, 11], 2, b"a", b""),
            attr(&[0x55, 4, 3], 2, b" #x\xc3\xa9 ", b""),
            attr(&[0x2b, 6, 1, 4, 1, 0x82, 0x37, 1], 3, b"z", b"\x0c\x01z"),
        ];
        assert_eq!(
            rfc2253(&names),
            r"1.3.6.1.4.1.311.1=#0C017A,CN=\ #x\C3\A9\ +OU=a,O=Wren\, Ltd,C=GB"
        );
        assert_eq!(common_name(&names).as_deref(), Some(" #xé "));
        assert_eq!(dotted(&[0x55, 4, 3]), "2.5.4.3");
    }

    #[test]
    fn garbage_is_no_subject() {
        assert!(subject_names(b"").is_none());
        assert!(subject_names(b"\x30\x84\xff\xff\xff\xff").is_none());
        assert!(subject_names(b"\x30\x03\x30\x01\x02").is_none());
    }
}
