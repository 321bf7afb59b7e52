//! Building the HTTP connection pools the worker uses.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, WorkerConfig, env};

/// A hook that adjusts the worker's HTTP client builder (proxies, client certificates,
/// extra roots), applied after the worker's own settings.
pub(crate) type HttpCustomizer = Arc<dyn Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync>;

/// A connection pool for the worker: no redirects (a redirect could carry the client
/// secret or a token to another origin), a bounded connect, TLS trusting the bundled
/// web roots, the operating system's roots, and the CA file of the configuration.
pub(crate) fn build_http(
    config: &WorkerConfig,
    customize: Option<&HttpCustomizer>,
) -> Result<reqwest::Client, ConfigError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(config.http_timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("kruxiaflow-worker-rust/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &config.ca_cert_file {
        for certificate in read_certificates(path)? {
            builder = builder.add_root_certificate(certificate);
        }
    }
    if let Some(customize) = customize {
        builder = customize(builder);
    }
    builder.build().map_err(|e| ConfigError::HttpClient(crate::text::escape_controls(&e.to_string()).into_owned()))
}

fn read_certificates(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, ConfigError> {
    let bad = |detail: String| ConfigError::CaCertFile { name: env::CA_CERT_FILE, path: path.to_owned(), detail };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(e.to_string()))?;
    if certificates.is_empty() {
        return Err(bad("no PEM certificate in the file".to_owned()));
    }
    Ok(certificates)
}
