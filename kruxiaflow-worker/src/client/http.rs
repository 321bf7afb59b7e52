//! Building the HTTP connection pools the worker uses.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, WorkerConfig, env};

/// A hook that adjusts the worker's HTTP client builder (proxies, client certificates,
/// extra roots), applied after the worker's own settings.
pub(crate) type HttpCustomizer = Arc<dyn Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder + Send + Sync>;

/// The worker's two connection pools: one for its own control traffic, one for the
/// activities' traffic (polls, reports, file transfers). Control requests must
/// never ride a connection an activity opened, since such a connection is driven by an
/// activity thread; and activities' requests on the control pool would wake the
/// worker's runtime for each of them.
pub(crate) struct Pools {
    pub(crate) control: reqwest::Client,
    pub(crate) work: reqwest::Client,
}

/// Builds both pools alike: no redirects (a redirect could carry the client secret or
/// a token to another origin), a bounded connect, TLS trusting the bundled web roots,
/// the operating system's roots, and the CA file of the configuration (read once).
pub(crate) fn build_pools(config: &WorkerConfig, customize: Option<&HttpCustomizer>) -> Result<Pools, ConfigError> {
    let certificates = match &config.ca_cert_file {
        Some(path) => read_certificates(path)?,
        None => Vec::new(),
    };
    let build = || {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.http_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("kruxiaflow-worker-rust/", env!("CARGO_PKG_VERSION")));
        for certificate in &certificates {
            builder = builder.add_root_certificate(certificate.clone());
        }
        if let Some(customize) = customize {
            builder = customize(builder);
        }
        builder.build().map_err(|e| ConfigError::HttpClient(crate::text::escape_controls(&e.to_string()).into_owned()))
    };
    Ok(Pools { control: build()?, work: build()? })
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
