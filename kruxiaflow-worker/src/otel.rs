//! Traces over OpenTelemetry (the `otel` feature): every attempt a span, exported over
//! OTLP, one trace per workflow.
//!
//! [`init`] installs the log lines of [`logging::init`](crate::logging::init) and,
//! beside them, a layer that turns the worker's `tracing` spans into OpenTelemetry
//! spans and sends them to a collector. It is configured by OpenTelemetry's own
//! variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`;
//! default `http://localhost:4318`), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`,
//! the default, or `http/json`), `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`
//! (default: the worker type, `KRUXIAFLOW_WORKER`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`.
//!
//! The trace id of every attempt is its workflow id (a UUID is 128 bits, as a trace id
//! is): the attempts of one workflow, on any worker, retries included, are one trace.
//! Each attempt's span is the child of a span that stands for the workflow (its id is
//! the workflow id's last 8 bytes; nobody exports it, and trace viewers show the
//! attempts under a missing root). With `OTEL_TRACES_SAMPLER=traceidratio` every
//! worker samples the same workflows.
//!
//! Exporting never holds up the work: finished spans wait in a queue of 4,096; what
//! does not fit is dropped and counted in `kruxiaflow_worker_spans_dropped_total`, as
//! is a batch the collector does not take within 10 s. [`Tracing::shutdown`] sends
//! what is queued, waiting at most the time it is given.

mod export;

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::{
    SpanContext, SpanId, Status, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider,
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use uuid::Uuid;

use crate::config::env;
use crate::report::Report;

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OtelError {
    /// `KRUXIAFLOW_LOG_FORMAT` is invalid.
    #[error(transparent)]
    Logging(#[from] crate::ConfigError),
    /// The OTLP exporter could not be built from the `OTEL_EXPORTER_OTLP_*` variables
    /// (for instance `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`, which this build does not
    /// speak).
    #[error("cannot export traces over OTLP: {0}")]
    Exporter(String),
    /// [`init`] was called outside a tokio runtime: the exporter runs on it.
    #[error("otel::init must be called inside a tokio runtime")]
    NoRuntime,
}

/// Tracing, once set up: flush it before the process ends.
#[derive(Debug)]
#[must_use = "dropping it does not send the spans still queued: call shutdown"]
pub struct Tracing {
    provider: SdkTracerProvider,
    flusher: export::Flusher,
}

impl Tracing {
    /// Sends the spans still queued, waiting at most `limit`; returns whether they all
    /// went out.
    pub async fn shutdown(self, limit: Duration) -> bool {
        let flushed = self.flusher.flush(limit).await;
        drop(self.provider);
        flushed
    }
}

/// Installs the worker's log lines (as [`logging::init`](crate::logging::init)) and
/// OpenTelemetry tracing, exported over OTLP as the `OTEL_*` variables say. Call it
/// inside the tokio runtime, first thing in `main`; [`Tracing::shutdown`] at the end.
///
/// ```no_run
/// use kruxiaflow_worker::prelude::*;
/// use std::time::Duration;
///
/// # async fn demo(registry: ActivityRegistry) -> Result<(), Box<dyn std::error::Error>> {
/// let tracing = kruxiaflow_worker::otel::init()?;
/// let config = WorkerConfig::from_env()?;
/// WorkerManager::new(config, registry).run_until_shutdown().await?;
/// tracing.shutdown(Duration::from_secs(5)).await;
/// # Ok(()) }
/// ```
///
/// # Errors
/// See [`OtelError`].
pub fn init() -> Result<Tracing, OtelError> {
    let (layer, tracing) = layer()?;
    let subscriber = tracing_subscriber::registry().with(crate::logging::lines()?).with(layer);
    // An error here means a subscriber is installed already: the application's choice
    // (it can add `layer()` to its own).
    let _ = tracing::subscriber::set_global_default(subscriber);
    Ok(tracing)
}

/// The OpenTelemetry layer alone, for an application that builds its own subscriber.
///
/// # Errors
/// See [`OtelError`].
pub fn layer<S>() -> Result<(impl Layer<S> + Send + Sync, Tracing), OtelError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    layer_with(None)
}

/// Like [`layer`], sending to the traces endpoint `url` (a full URL, such as
/// `http://127.0.0.1:4318/v1/traces`) whatever `OTEL_EXPORTER_OTLP_ENDPOINT` says.
///
/// # Errors
/// See [`OtelError`].
pub fn layer_exporting_to<S>(url: &str) -> Result<(impl Layer<S> + Send + Sync, Tracing), OtelError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    layer_with(Some(url))
}

fn layer_with<S>(url: Option<&str>) -> Result<(impl Layer<S> + Send + Sync, Tracing), OtelError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| OtelError::NoRuntime)?;
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| OtelError::Exporter(e.to_string()))?;
    let mut exporter =
        opentelemetry_otlp::SpanExporter::builder().with_http().with_http_client(export::ReqwestClient(http));
    if let Some(url) = url {
        exporter = exporter.with_endpoint(url);
    }
    exporter = exporter.with_protocol(protocol()?);
    let exporter = exporter.build().map_err(|e| OtelError::Exporter(e.to_string()))?;
    let (queue, flusher) = export::Queue::start(exporter, &runtime);
    let provider = SdkTracerProvider::builder().with_span_processor(queue).with_resource(resource()).build();
    let tracer = provider.tracer("kruxiaflow-worker");
    // Spans and events at INFO and above, the activities' own among them (an
    // `#[instrument]`ed call inside an activity is a child of its attempt), and the
    // per-call usage events, whatever `RUST_LOG` lets through to the log lines.
    let filter = tracing_subscriber::filter::Targets::new()
        .with_default(tracing::Level::INFO)
        .with_target("kruxiaflow_worker::gen_ai", tracing::Level::DEBUG)
        .with_target("kruxiaflow_worker::heartbeat", tracing::Level::DEBUG)
        .with_target("kruxiaflow_worker::stream_ended", tracing::Level::DEBUG);
    let layer = tracing_opentelemetry::layer().with_tracer(tracer).with_filter(filter);
    Ok((layer, Tracing { provider, flusher }))
}

/// The protocol the `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` or
/// `OTEL_EXPORTER_OTLP_PROTOCOL` variable asks for (the first set wins), of those this
/// build speaks; OpenTelemetry's default, `http/protobuf`, when neither is set.
fn protocol() -> Result<opentelemetry_otlp::Protocol, OtelError> {
    use opentelemetry_otlp::Protocol;
    for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
        let Ok(value) = std::env::var(name) else { continue };
        return match value.trim() {
            "" => continue,
            "http/protobuf" => Ok(Protocol::HttpBinary),
            "http/json" => Ok(Protocol::HttpJson),
            other => Err(OtelError::Exporter(format!(
                "{name} is {other:?}; this build exports over HTTP: http/protobuf or http/json"
            ))),
        };
    }
    Ok(Protocol::HttpBinary)
}

/// The resource: the `OTEL_*` variables', with the worker type as the service name
/// when none is set.
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|name| !name.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|attributes| attributes.contains("service.name="));
    let builder = Resource::builder();
    if named {
        return builder.build();
    }
    let worker = std::env::var(env::WORKER).ok().filter(|w| !w.trim().is_empty()).unwrap_or_else(|| "rust".into());
    builder.with_service_name(worker).build()
}

/// Puts the attempt `span` into its workflow's trace: the parent is the span that
/// stands for workflow `workflow_id`.
fn join_workflow(span: &tracing::Span, workflow_id: Uuid) {
    let bytes = workflow_id.into_bytes();
    let parent_id = u64::from_be_bytes(bytes[8..].try_into().expect("8 bytes")).max(1);
    let parent = SpanContext::new(
        TraceId::from_bytes(bytes),
        SpanId::from(parent_id),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(Context::new().with_remote_span_context(parent));
}

/// The attempt `span` of an activity of workflow `workflow_id` starts: in the
/// workflow's trace, with the attempt's `ids` (`kruxiaflow.*` attribute names and
/// values).
pub(crate) fn attempt_started(span: &tracing::Span, workflow_id: Uuid, ids: [(&'static str, String); 6]) {
    join_workflow(span, workflow_id);
    for (key, value) in ids {
        span.set_attribute(key, value);
    }
    // In the log lines too (as the span's fields), so a line leads to its trace.
    let context = span.context();
    let ids = context.span().span_context().clone();
    if ids.is_valid() {
        span.record("trace_id", tracing::field::display(ids.trace_id()));
        span.record("span_id", tracing::field::display(ids.span_id()));
    }
}

/// The attempt `span` ended with `accepted` (the report the server took; `None`:
/// nothing was reported): its outcome, its error, and what it spent.
pub(crate) fn attempt_ended(span: &tracing::Span, accepted: Option<&Report>) {
    let (outcome, cost, usage) = match accepted {
        Some(Report::Complete(complete)) => ("completed", complete.cost_usd, complete.usage.as_slice()),
        Some(Report::Fail(fail)) => {
            span.set_attribute("error.type", fail.error.code.clone());
            span.set_attribute("kruxiaflow.error.code", fail.error.code.clone());
            span.set_attribute("kruxiaflow.error.message", fail.error.message.clone());
            span.set_attribute("kruxiaflow.error.retryable", fail.error.retryable);
            span.set_status(Status::error(format!("{}: {}", fail.error.code, fail.error.message)));
            ("failed", fail.cost_usd, fail.usage.as_slice())
        }
        None => ("abandoned", None, &[][..]),
    };
    span.set_attribute("kruxiaflow.outcome", outcome);
    let cost = usage.iter().filter_map(|u| u.cost_usd).chain(cost).sum::<rust_decimal::Decimal>();
    if cost > rust_decimal::Decimal::ZERO {
        span.set_attribute("kruxiaflow.cost_usd", cost.to_string().parse::<f64>().unwrap_or_default());
    }
    if !usage.is_empty() {
        let input: u64 = usage.iter().map(|u| u64::from(u.input_tokens)).sum();
        let output: u64 = usage.iter().map(|u| u64::from(u.output_tokens)).sum();
        span.set_attribute("gen_ai.usage.input_tokens", i64::try_from(input).unwrap_or(i64::MAX));
        span.set_attribute("gen_ai.usage.output_tokens", i64::try_from(output).unwrap_or(i64::MAX));
    }
}

/// The W3C `traceparent` of `span`, if it is being traced.
pub(crate) fn traceparent(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!("00-{}-{}-{:02x}", span_context.trace_id(), span_context.span_id(), span_context.trace_flags().to_u8())
    })
}
