//! HTTPS: a certificate of the user's own, or one made once per data folder.
//!
//! The generated pair is a small local CA (`tls/ca.pem`, the file to give to LAN clients that
//! should trust this server) and a server certificate it signs, for `localhost`, the loopback
//! addresses and the bound address. A self-signed leaf alone would be simpler, but rustls-based
//! clients refuse a CA certificate used as an end entity, so the pair works with every client.

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// A ready TLS configuration and what to tell the user about it.
pub struct TlsSetup {
    /// For the listener.
    pub config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the server certificate, as `AB:CD:...`.
    pub fingerprint: String,
    /// The CA certificate clients can trust, when this server made its own.
    pub ca_file: Option<PathBuf>,
}

/// Errors setting up TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Reading or writing certificate files.
    #[error("TLS files: {0}")]
    Io(#[from] io::Error),
    /// Making a certificate.
    #[error("could not generate a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// The given files are not a usable certificate and key.
    #[error("the certificate or key is not usable: {0}")]
    Bad(String),
}

/// Loads `cert`/`key` (PEM) as given by the user.
pub fn from_files(cert: &Path, key: &Path) -> Result<TlsSetup, TlsError> {
    let chain = read_chain(&fs::read(cert)?)?;
    let key = PrivateKeyDer::from_pem_slice(&fs::read(key)?)
        .map_err(|e| TlsError::Bad(format!("{}: {e}", key.display())))?;
    build(chain, key, None)
}

/// Loads the generated certificate from `dir/tls`, making it first if needed or if it does not
/// cover `bind_ip`.
pub fn generated(dir: &Path, bind_ip: IpAddr) -> Result<TlsSetup, TlsError> {
    let tls_dir = dir.join("tls");
    fs::create_dir_all(&tls_dir)?;
    let (ca_cert, ca_key) = (tls_dir.join("ca.pem"), tls_dir.join("ca.key"));
    let (cert, key, sans_file) = (
        tls_dir.join("server.pem"),
        tls_dir.join("server.key"),
        tls_dir.join("server.sans"),
    );
    if !ca_cert.exists() || !ca_key.exists() {
        let ca_keypair = KeyPair::generate()?;
        let ca = ca_params()?.self_signed(&ca_keypair)?;
        write_private(&ca_key, ca_keypair.serialize_pem().as_bytes())?;
        fs::write(&ca_cert, ca.pem())?;
    }
    let mut sans = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if !bind_ip.is_unspecified() && !bind_ip.is_loopback() {
        sans.push(bind_ip.to_string());
    }
    let wanted = sans.join(",");
    let current = fs::read_to_string(&sans_file).unwrap_or_default();
    if current != wanted || !cert.exists() || !key.exists() {
        let ca_keypair = KeyPair::from_pem(&fs::read_to_string(&ca_key)?)?;
        // The issuer is named by the same parameters the CA was made with; its key signs.
        let issuer = Issuer::new(ca_params()?, &ca_keypair);
        let leaf_key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "huddle-db");
        params.subject_alt_names = sans
            .iter()
            .map(|s| match s.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => s.clone().try_into().map(SanType::DnsName),
            })
            .collect::<Result<_, _>>()?;
        let leaf = params.signed_by(&leaf_key, &issuer)?;
        write_private(&key, leaf_key.serialize_pem().as_bytes())?;
        fs::write(
            &cert,
            format!("{}{}", leaf.pem(), fs::read_to_string(&ca_cert)?),
        )?;
        fs::write(&sans_file, wanted)?;
    }
    let chain = read_chain(&fs::read(&cert)?)?;
    let key = PrivateKeyDer::from_pem_slice(&fs::read(&key)?)
        .map_err(|e| TlsError::Bad(e.to_string()))?;
    build(chain, key, Some(ca_cert))
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "huddle-db local CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn read_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Bad(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Bad("no certificate in the PEM file".into()));
    }
    Ok(chain)
}

fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca_file: Option<PathBuf>,
) -> Result<TlsSetup, TlsError> {
    let fingerprint = Sha256::digest(&chain[0])
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Bad(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Bad(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsSetup {
        config: Arc::new(config),
        fingerprint,
        ca_file,
    })
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    opts.open(path)?.write_all(bytes)
}
