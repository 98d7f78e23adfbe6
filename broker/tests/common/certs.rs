//! Test certificates, made by each test run with rcgen (never committed): a CA, a server
//! certificate for 127.0.0.1 and localhost, a client certificate signed by the CA, a second
//! ("rogue") CA and a client certificate signed by it, as PEM files in a directory removed on
//! drop. And a capture of the in-process broker's log lines, to see what it logged.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The client certificate's subject, as OpenSSL prints it in RFC 2253 form (and Mosquitto
/// takes it for `use_subject_as_username`): last attribute first (rcgen writes the Common Name
/// first), a comma and a non-ASCII letter escaped.
pub const CLIENT_SUBJECT: &str = r"O=Wren\, Tests \C3\A9,CN=wren-client";
/// The client certificate's Common Name.
pub const CLIENT_CN: &str = "wren-client";

/// The PEM files of one test's certificates.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_ca: PathBuf,
    pub rogue_cert: PathBuf,
    pub rogue_key: PathBuf,
    /// A server certificate for 127.0.0.1 signed by the rogue CA (to reload to).
    pub rogue_server_cert: PathBuf,
    pub rogue_server_key: PathBuf,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let pem = p.self_signed(&key).unwrap().pem();
    (p, key, pem)
}

/// A leaf certificate and its key (PEM), signed by `issuer`.
fn leaf(
    sans: &[&str],
    dn: &[(DnType, &str)],
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, &KeyPair>,
) -> (String, String) {
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    for (ty, value) in dn {
        p.distinguished_name.push(ty.clone(), *value);
    }
    p.extended_key_usages = vec![usage];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn new() -> Pki {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "pki-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let (ca_params, ca_key, ca_pem) = ca("Wren Test CA");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        let (rogue_params, rogue_key, rogue_pem) = ca("Rogue CA");
        let rogue_issuer = Issuer::from_params(&rogue_params, &rogue_key);
        let server_dn = [(DnType::CommonName, "localhost")];
        let (server_cert, server_key) = leaf(
            &["localhost", "127.0.0.1", "::1"],
            &server_dn,
            ExtendedKeyUsagePurpose::ServerAuth,
            &issuer,
        );
        let client_dn = [
            (DnType::OrganizationName, "Wren, Tests é"),
            (DnType::CommonName, CLIENT_CN),
        ];
        let (client_cert, client_key) = leaf(
            &[],
            &client_dn,
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        );
        let (rogue_cert, rogue_key_pem) = leaf(
            &[],
            &[(DnType::CommonName, "rogue-client")],
            ExtendedKeyUsagePurpose::ClientAuth,
            &rogue_issuer,
        );
        let (rogue_server_cert, rogue_server_key) = leaf(
            &["localhost", "127.0.0.1", "::1"],
            &server_dn,
            ExtendedKeyUsagePurpose::ServerAuth,
            &rogue_issuer,
        );
        Pki {
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            rogue_ca: write("rogue-ca.pem", &rogue_pem),
            rogue_cert: write("rogue.pem", &rogue_cert),
            rogue_key: write("rogue.key", &rogue_key_pem),
            rogue_server_cert: write("rogue-server.pem", &rogue_server_cert),
            rogue_server_key: write("rogue-server.key", &rogue_server_key),
            dir,
        }
    }

    /// A TLS listener on 127.0.0.1 (ephemeral port) with the server certificate.
    pub fn listener(&self) -> wren_broker::Listener {
        wren_broker::Listener {
            bind: "127.0.0.1".into(),
            certfile: Some(self.server_cert.clone()),
            keyfile: Some(self.server_key.clone()),
            ..wren_broker::Listener::default()
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A plain MQTT listener on 127.0.0.1 (ephemeral port).
pub fn plain_listener() -> wren_broker::Listener {
    wren_broker::Listener {
        bind: "127.0.0.1".into(),
        ..wren_broker::Listener::default()
    }
}

// ---------------------------------------------------------------------------------------------
// The broker's log lines
// ---------------------------------------------------------------------------------------------

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let line = record.args().to_string();
            eprintln!("[broker] {line}");
            LINES.lock().unwrap().push(line);
        }
    }

    fn flush(&self) {}
}

/// Capture the log lines of the in-process brokers of this test binary (from now on).
pub fn capture_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// The first captured line containing every one of `parts`, waiting up to `wait` for it.
pub fn logged(parts: &[&str], wait: Duration) -> Option<String> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(line) = LINES
            .lock()
            .unwrap()
            .iter()
            .find(|l| parts.iter().all(|p| l.contains(p)))
        {
            return Some(line.clone());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
