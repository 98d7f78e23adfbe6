//! TLS client configuration for the tools' `--cafile`, `--capath`, `--cert`, `--key`,
//! `--insecure`, `--tls-version` and `--tls-use-os-certs` (rustls with the ring provider, as the
//! broker).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// What the TLS flags ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of trusted CA certificates.
    pub cafile: Option<PathBuf>,
    /// Directory of PEM files of trusted CA certificates (every file that parses is loaded).
    pub capath: Option<PathBuf>,
    /// Client certificate chain (PEM).
    pub cert: Option<PathBuf>,
    /// Client private key (PEM).
    pub key: Option<PathBuf>,
    /// Do not check that the server certificate names the host (the chain is still checked).
    pub insecure: bool,
    /// `tlsv1.2` or `tlsv1.3` (default: both).
    pub version: Option<String>,
    /// Trust the operating system's roots as well.
    pub use_os_certs: bool,
}

fn provider() -> Arc<CryptoProvider> {
    // Deprecated in rustls 0.23.48 for lacking post-quantum key exchange; the broker uses it too
    // (ring builds with the C compiler alone).
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

const NOT_FOUND: &str = "Problem setting TLS options: File not found.";

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    if !path.exists() {
        return Err(NOT_FOUND.into());
    }
    CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("Problem setting TLS options: {}: {e}", path.display()))
}

impl TlsSettings {
    /// Whether any flag turns TLS on (Mosquitto: `--cafile`, `--capath`, `--tls-use-os-certs`).
    pub fn enabled(&self) -> bool {
        self.cafile.is_some() || self.capath.is_some() || self.use_os_certs
    }

    /// The rustls configuration; `Err` is Mosquitto's line for it, after "Error: ".
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, String> {
        let versions: &[&'static rustls::SupportedProtocolVersion] = match self.version.as_deref() {
            None => rustls::DEFAULT_VERSIONS,
            Some("tlsv1.3") => &[&rustls::version::TLS13],
            Some("tlsv1.2") => &[&rustls::version::TLS12],
            Some(_) => {
                return Err("Problem setting TLS options, check the options are valid.".into());
            }
        };
        let mut roots = RootCertStore::empty();
        if let Some(ca) = &self.cafile {
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("Problem setting TLS options: {}: {e}", ca.display()))?;
            }
        }
        if let Some(dir) = &self.capath {
            let entries = std::fs::read_dir(dir).map_err(|_| NOT_FOUND.to_owned())?;
            for entry in entries.flatten() {
                if let Ok(certs) = read_certs(&entry.path()) {
                    roots.add_parsable_certificates(certs);
                }
            }
        }
        if self.use_os_certs {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
        let roots = Arc::new(roots);
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .map_err(|e| format!("Problem setting TLS options: {e}"))?;
        let builder = if self.insecure {
            let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| format!("Problem setting TLS options: {e}"))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyName(inner)))
        } else {
            builder.with_root_certificates(roots)
        };
        let config = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs(cert)?;
                if !key.exists() {
                    return Err(NOT_FOUND.into());
                }
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("Problem setting TLS options: {}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("Problem setting TLS options: {e}"))?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

/// `--insecure`: the chain is verified, a certificate for another name is accepted.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
