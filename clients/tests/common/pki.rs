//! Test certificates made by each run with rcgen (as the broker's `tests/common/certs.rs`): a CA,
//! a server certificate for 127.0.0.1 and localhost, one for another name only, a client
//! certificate signed by the CA, and a rogue CA; PEM files in a directory removed on drop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Signed by the CA for `elsewhere.invalid` only (for --insecure).
    pub other_name_cert: PathBuf,
    pub other_name_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub rogue_ca: PathBuf,
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

fn leaf(
    sans: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, &KeyPair>,
) -> (String, String) {
    let mut p =
        CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![usage];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    pub fn new() -> Pki {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        // The temporary directory, so that Mosquitto (which runs as its own user) can read it.
        let dir = std::env::temp_dir().join(format!(
            "clients-pki-{}-{}",
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
        let (_, _, rogue_pem) = ca("Rogue CA");
        let server = ExtendedKeyUsagePurpose::ServerAuth;
        let (server_cert, server_key) = leaf(
            &["localhost", "127.0.0.1"],
            "localhost",
            server.clone(),
            &issuer,
        );
        let (other_cert, other_key) =
            leaf(&["elsewhere.invalid"], "elsewhere.invalid", server, &issuer);
        let (client_cert, client_key) = leaf(
            &[],
            "wren-client",
            ExtendedKeyUsagePurpose::ClientAuth,
            &issuer,
        );
        Pki {
            ca: write("ca.pem", &ca_pem),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            other_name_cert: write("other.pem", &other_cert),
            other_name_key: write("other.key", &other_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            rogue_ca: write("rogue-ca.pem", &rogue_pem),
            dir,
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
