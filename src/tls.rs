//! The one TLS client setup (rustls with ring) used for IMAP, the token endpoint and webhooks:
//! Mozilla's roots plus an optional private CA; certificates and host names always verified.

use crate::error::{Error, ErrorKind, Result};
use futures::io::{AsyncRead, AsyncWrite};
use futures_rustls::client::TlsStream;
use futures_rustls::rustls::pki_types::pem::PemObject;
use futures_rustls::rustls::pki_types::{CertificateDer, ServerName};
use futures_rustls::rustls::{self, ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A client configuration trusting Mozilla's roots and, when given, the CA certificates in the PEM
/// file `ca_file` (for a private CA or a test server).
///
/// Configurations are shared while in use: the root store is some 150 trust anchors, which 500
/// idle mailboxes would otherwise each keep a copy of. A changed CA file (size or modification
/// time) gets a new configuration.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let key: Key = ca_file.map(|p| {
        let meta = std::fs::metadata(p).ok();
        (
            p.to_path_buf(),
            meta.as_ref().map_or(0, |m| m.len()),
            meta.and_then(|m| m.modified().ok()),
        )
    });
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    shared.retain(|(_, w)| w.strong_count() > 0);
    if let Some(config) = shared
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return Ok(config);
    }
    let config = new_client_config(ca_file)?;
    shared.push((key, Arc::downgrade(&config)));
    Ok(config)
}

type Key = Option<(std::path::PathBuf, u64, Option<std::time::SystemTime>)>;
static SHARED: std::sync::Mutex<Vec<(Key, std::sync::Weak<ClientConfig>)>> =
    std::sync::Mutex::new(Vec::new());

/// Frees the shared configurations no agent uses any more (a `Weak` keeps its allocation). The C
/// API calls it when a handle is freed, so a host that frees every handle holds nothing of ours.
pub fn release_unused() {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    shared.retain(|(_, w)| w.strong_count() > 0);
    if shared.is_empty() {
        *shared = Vec::new();
    }
}

fn new_client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("ca_file {}: {e}", path.display()),
                )
                .with_fix("point imap.ca_file at a readable PEM file with the CA certificate")
            })?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("ca_file {}: {e}", path.display()),
                )
            })?;
        if certs.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("ca_file {}: no PEM certificate in the file", path.display()),
            ));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("ca_file {}: {e}", path.display()),
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Internal, format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Runs the TLS handshake over `stream` for `host` within `limit`.
pub async fn handshake<S>(
    config: Arc<ClientConfig>,
    host: &str,
    stream: S,
    limit: Duration,
) -> Result<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        Error::new(
            ErrorKind::Config,
            format!("{host:?} is not a valid host name for TLS"),
        )
    })?;
    let connector = futures_rustls::TlsConnector::from(config);
    crate::net::with_timeout(limit, &format!("TLS handshake with {host}"), async {
        connector
            .connect(name, stream)
            .await
            .map_err(|e| classify(host, e))
    })
    .await
}

fn classify(host: &str, e: std::io::Error) -> Error {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(reason)) => Error::new(
            ErrorKind::Certificate,
            format!("TLS: the certificate of {host} was refused: {reason:?}"),
        )
        .with_fix(
            "check the server name (it must match the certificate); for a private CA set imap.ca_file",
        ),
        Some(other) => Error::new(ErrorKind::Tls, format!("TLS with {host}: {other}"))
            .with_fix("check the port and encryption type (993 = ssl, 143 = starttls)"),
        None => {
            let mut err = Error::from(e);
            err = err.context(format!("TLS with {host}"));
            if err.kind() == ErrorKind::Io {
                err = Error::new(ErrorKind::Tls, err.message().to_string())
                    .with_fix("check the port and encryption type (993 = ssl, 143 = starttls)");
            }
            err
        }
    }
}
