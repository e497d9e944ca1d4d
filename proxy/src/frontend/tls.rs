//! Downstream TLS: certificates loaded once per config generation, chosen by SNI.
//!
//! pingora's rustls backend ignores `TlsAccept::certificate_callback`, so certificates are
//! served by a rustls `ResolvesServerCert` whose store is swapped atomically on reload.

use arc_swap::ArcSwap;
use breakwater_config::{Certificate, HostPattern, Location};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A certificate or key file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{at}: {}: {reason}", file.display())]
pub struct CertError {
    pub at: Location,
    pub file: PathBuf,
    pub reason: String,
}

/// The certificates of one listener, indexed by server name.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `(".example.com", key)`, longest suffix first so the most specific wildcard wins.
    suffix: Vec<(String, Arc<CertifiedKey>)>,
    /// Served to clients that send no SNI (e.g. connecting by IP): the first certificate.
    default: Option<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Read and check every certificate and key file; any unusable file is an error.
    pub fn load(certs: &[Certificate]) -> Result<Self, CertError> {
        let mut store = CertStore::default();
        for c in certs {
            let key = Arc::new(load_certified_key(c)?);
            store.default.get_or_insert_with(|| key.clone());
            for name in &c.names {
                match name {
                    HostPattern::Exact(n) => {
                        store.exact.entry(n.clone()).or_insert_with(|| key.clone());
                    }
                    HostPattern::Suffix(s) => store.suffix.push((s.clone(), key.clone())),
                }
            }
        }
        store.suffix.sort_by_key(|s| std::cmp::Reverse(s.0.len()));
        Ok(store)
    }

    fn find(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = sni else {
            return self.default.clone();
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(k) = self.exact.get(&name) {
            return Some(k.clone());
        }
        self.suffix
            .iter()
            .find(|(s, _)| name.len() > s.len() && name.ends_with(s.as_str()))
            .map(|(_, k)| k.clone())
    }
}

fn load_certified_key(c: &Certificate) -> Result<CertifiedKey, CertError> {
    let err = |file: &PathBuf, reason: String| CertError {
        at: c.at.clone(),
        file: file.clone(),
        reason,
    };
    let pem = std::fs::read(&c.cert).map_err(|e| err(&c.cert, e.to_string()))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| err(&c.cert, format!("not a PEM certificate file ({e})")))?;
    if chain.is_empty() {
        return Err(err(&c.cert, "no certificate found in the file".into()));
    }
    let key_pem = std::fs::read(&c.key).map_err(|e| err(&c.key, e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| err(&c.key, format!("not a PEM private key file ({e})")))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| err(&c.key, format!("key does not fit the certificate: {e}")))?;
    Ok(certified)
}

/// The rustls resolver installed on an HTTPS listener; reload swaps its store.
#[derive(Debug)]
pub struct SniResolver {
    store: ArcSwap<CertStore>,
}

impl SniResolver {
    pub fn new(store: Arc<CertStore>) -> Self {
        Self {
            store: ArcSwap::new(store),
        }
    }

    pub fn replace(&self, store: Arc<CertStore>) {
        self.store.store(store);
    }
}

impl ResolvesServerCert for SniResolver {
    /// `None` for an unknown name: rustls aborts the handshake with an alert.
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.store.load().find(hello.server_name())
    }
}
