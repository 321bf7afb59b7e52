//! https with a private certificate authority: trusted through `KRUXIAFLOW_CA_CERT_FILE`
//! or through the HTTP client hook, refused without either. The CA and the server's
//! certificate are made by the test; a TLS front on 127.0.0.1 forwards to the fake.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use kruxiaflow_worker_testing::{Endpoint, FakeServer, NewActivity};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivatePkcs8KeyDer};

use crate::common::{RunningWorker, config, echo, eventually};

/// A CA, and a TLS front signed by it that forwards every connection to `backend`.
struct PrivateTls {
    ca_pem: String,
    url: String,
    handshakes_failed: Arc<AtomicUsize>,
}

impl PrivateTls {
    async fn start(backend: SocketAddr) -> Self {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "Kruxia test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server_params = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let server_cert = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
            )
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let handshakes_failed = Arc::new(AtomicUsize::new(0));
        let failed = Arc::clone(&handshakes_failed);
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, failed) = (acceptor.clone(), Arc::clone(&failed));
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        failed.fetch_add(1, Ordering::SeqCst);
                        return;
                    };
                    let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self { ca_pem: ca.pem(), url, handshakes_failed }
    }
}

fn registry() -> ActivityRegistry {
    let mut registry = ActivityRegistry::new();
    registry.register(echo(), "rust");
    registry
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_the_ca_file_variable() {
    let server = FakeServer::start().await;
    let tls = PrivateTls::start(server.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("private-ca.pem");
    std::fs::write(&ca_file, &tls.ca_pem).unwrap();
    let config = WorkerConfig::from_lookup(|name| match name {
        "KRUXIAFLOW_API_URL" => Some(tls.url.clone()),
        "KRUXIAFLOW_CA_CERT_FILE" => Some(ca_file.display().to_string()),
        "KRUXIAFLOW_WORKER_POLL_INTERVAL" => Some("0.01".into()),
        _ => None,
    })
    .unwrap();
    let id = server.enqueue(NewActivity::new("rust", "echo"));
    let worker = RunningWorker::start(config, registry());

    server.wait_for(id).await.expect_completed();
    worker.stop().await.unwrap();
    assert_eq!(tls.handshakes_failed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_private_ca_is_trusted_through_the_http_client_hook() {
    let server = FakeServer::start().await;
    let tls = PrivateTls::start(server.addr()).await;
    let ca = reqwest::Certificate::from_pem(tls.ca_pem.as_bytes()).unwrap();
    let id = server.enqueue(NewActivity::new("rust", "echo"));
    let manager = WorkerManager::new(WorkerConfig { api_url: tls.url.clone(), ..config(&server) }, registry())
        .with_retry_policy(crate::common::fast_retry())
        .with_http_client(move |builder| builder.add_root_certificate(ca.clone()));
    let handle = manager.handle();
    let running = tokio::spawn(manager.run(std::future::pending()));

    server.wait_for(id).await.expect_completed();
    handle.shutdown();
    running.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_private_ca_is_refused_without_either() {
    let server = FakeServer::start().await;
    let tls = PrivateTls::start(server.addr()).await;
    let id = server.enqueue(NewActivity::new("rust", "echo"));
    let worker = RunningWorker::start(WorkerConfig { api_url: tls.url.clone(), ..config(&server) }, registry());

    eventually("the worker tried twice", || tls.handshakes_failed.load(Ordering::SeqCst) >= 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    worker.stop().await.unwrap();

    assert!(server.log().to(Endpoint::Poll).is_empty(), "no request got through an unverified server");
    assert_eq!(server.activity(id).unwrap().claims, 0);
}

#[tokio::test]
async fn an_unusable_ca_file_is_an_error_naming_the_variable_and_the_file() {
    let server = FakeServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "this is not a certificate").unwrap();
    let missing = dir.path().join("missing.pem");
    for (path, detail) in [(&not_pem, "no PEM certificate in the file"), (&missing, "No such file or directory")] {
        let config = WorkerConfig { ca_cert_file: Some(path.clone()), ..config(&server) };
        let error = WorkerManager::new(config, registry()).run(std::future::ready(())).await.unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with(&format!(
                "KRUXIAFLOW_CA_CERT_FILE names {path:?}, which cannot be used as CA certificates: "
            )),
            "{message}"
        );
        assert!(message.contains(detail), "{message}");
    }
}
