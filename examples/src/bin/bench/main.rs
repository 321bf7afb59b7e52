//! The benchmark: a worker process against the `kruxiaflow-fake-server` process, each
//! measured apart through `/proc`.
//!
//! ```text
//! cargo run --release -p kruxiaflow-worker-examples --bin bench -- [--runs 3] [--quick] [--csv bench.csv] [--only gh]
//! ```
//!
//! Scenarios: (a) 20,000 no-op activities at concurrency 16 and 64 (activities/s, time
//! from handler end to the server recording the completion, and the server's share of
//! the CPU), with the time from enqueue to handler start measured on an idle worker;
//! (b) 1,000 activities sleeping 1 s at concurrency 1,000 (RSS per activity while they
//! sleep, and at the peak, when they all report);
//! (c) worker CPU per no-op activity; (d) a 1 GiB file downloaded and uploaded again;
//! (e) 1,000 activities each streaming 500 tokens (one every 2 ms) to one WebSocket
//! subscriber, at concurrency 100; (f) 50 activities streaming 200 tokens at an LLM's
//! pace, 50 and 200 tokens a second, with the stream's linger at its default and off;
//! (g) 2,000 activities of 5 durable steps against 2,000 without (record requests, worker
//! CPU and handler time per activity, and per step); (h) 10,000 no-ops with traces off
//! and on (the `otel` layer exporting to a local OTLP receiver): worker CPU per activity.
//! Every figure is the median of `--runs` runs. `--quick` uses small sizes and one run.
#![forbid(unsafe_code)]

mod procs;
mod scenarios;

use std::process::ExitCode;

struct Options {
    runs: usize,
    quick: bool,
    csv: String,
    /// The scenarios to run (letters); all when empty.
    only: String,
}

impl Options {
    /// Whether to run a scenario reporting any of `letters`.
    fn wants(&self, letters: &str) -> bool {
        self.only.is_empty() || letters.chars().any(|letter| self.only.contains(letter))
    }
}

fn parse() -> Result<Options, String> {
    let mut options = Options { runs: 3, quick: false, csv: "bench.csv".to_owned(), only: String::new() };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                let raw = args.next().ok_or("--runs needs a number")?;
                options.runs = raw
                    .parse()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or(format!("--runs must be a positive number, got {raw:?}"))?;
            }
            "--quick" => options.quick = true,
            "--csv" => options.csv = args.next().ok_or("--csv needs a path")?,
            "--only" => options.only = args.next().ok_or("--only needs scenario letters, such as gh")?,
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: bench [--runs N] [--quick] [--csv PATH] [--only LETTERS]"
                ));
            }
        }
    }
    if options.quick {
        options.runs = 1;
    }
    Ok(options)
}

/// One row of the report: a figure, its unit, and the goal it is measured against.
struct Row {
    scenario: &'static str,
    metric: String,
    value: f64,
    unit: &'static str,
    goal: &'static str,
}

fn row(scenario: &'static str, metric: String, value: f64, unit: &'static str, goal: &'static str) -> Row {
    Row { scenario, metric, value, unit, goal }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs a scenario `runs` times.
async fn repeat<T, F>(runs: usize, mut scenario: impl FnMut() -> F) -> Result<Vec<T>, String>
where
    F: std::future::Future<Output = Result<T, String>>,
{
    let mut results = Vec::with_capacity(runs);
    for _ in 0..runs {
        results.push(scenario().await?);
    }
    Ok(results)
}

async fn measure(options: &Options) -> Result<Vec<Row>, String> {
    let (noops, naps, file_mib, pings, streams) =
        if options.quick { (2_000, 200, 64, 100, 100) } else { (20_000, 1_000, 1_024, 300, 1_000) };
    let mut rows = Vec::new();
    if options.wants("ac") {
        for concurrency in [16, 64] {
            let runs = repeat(options.runs, || scenarios::throughput(noops, concurrency)).await?;
            let label = |what: &str| format!("{noops} no-ops, concurrency {concurrency}: {what}");
            let pick = |f: fn(&scenarios::Throughput) -> f64| median(runs.iter().map(f).collect());
            rows.push(row("a", label("throughput"), pick(|t| t.per_second), "activities/s", ">= 5000"));
            rows.push(row("a", label("handler end -> completion recorded, p50"), pick(|t| t.report_p50_ms), "ms", ""));
            rows.push(row("a", label("handler end -> completion recorded, p99"), pick(|t| t.report_p99_ms), "ms", ""));
            rows.push(row(
                "c",
                label("worker CPU per activity"),
                pick(|t| t.worker_cpu_us_per_activity),
                "us",
                "<= 30",
            ));
            rows.push(row("a", label("fake server's share of CPU"), pick(|t| t.server_cpu_share * 100.0), "%", ""));
        }
    }

    if options.wants("a") {
        let runs = repeat(options.runs, || scenarios::latency(pings)).await?;
        let label = |what: &str| format!("{pings} no-ops, one every 13 ms, idle worker: {what}");
        let goal = "<= 52 (poll interval / 2 + 2)";
        rows.push(row(
            "a",
            label("enqueue -> handler start, p50"),
            median(runs.iter().map(|l| l.start_p50_ms).collect()),
            "ms",
            goal,
        ));
        rows.push(row(
            "a",
            label("enqueue -> handler start, p99"),
            median(runs.iter().map(|l| l.start_p99_ms).collect()),
            "ms",
            "",
        ));
    }

    if options.wants("b") {
        let runs = repeat(options.runs, || scenarios::memory(naps)).await?;
        let label = |what: &str| format!("{naps} activities sleeping 1 s at once: {what}");
        let mib = |kib: u64| kib as f64 / 1024.0;
        rows.push(row(
            "b",
            label("worker RSS idle"),
            median(runs.iter().map(|m| mib(m.idle_kib)).collect()),
            "MiB",
            "",
        ));
        rows.push(row(
            "b",
            label("worker peak RSS"),
            median(runs.iter().map(|m| mib(m.peak_kib)).collect()),
            "MiB",
            "",
        ));
        let sleeping = median(runs.iter().map(|m| m.per_sleeping_kib(naps)).collect());
        rows.push(row("b", label("RSS per activity while all sleep"), sleeping, "KiB", ""));
        let per_activity = median(runs.iter().map(|m| m.per_peak_kib(naps)).collect());
        rows.push(row("b", label("RSS per in-flight activity (peak, as all report)"), per_activity, "KiB", "<= 16"));
    }

    if options.wants("d") {
        let runs = repeat(options.runs, || scenarios::files(file_mib)).await?;
        let label = |what: &str| format!("{file_mib} MiB file downloaded then uploaded: {what}");
        rows.push(row("d", label("throughput"), median(runs.iter().map(|f| f.mb_per_s).collect()), "MB/s", ">= 200"));
        rows.push(row(
            "d",
            label("worker peak RSS growth"),
            median(runs.iter().map(|f| f.rss_growth_mib).collect()),
            "MiB",
            "flat",
        ));
    }

    if options.wants("e") {
        let fast = || scenarios::Pace { pace_ms: 2, linger: None };
        let runs = repeat(options.runs, || scenarios::streaming(streams, 500, 100, fast())).await?;
        let label = |what: &str| format!("{streams} activities streaming 500 tokens to a subscriber each: {what}");
        let pick = |f: fn(&scenarios::Streaming) -> f64| median(runs.iter().map(f).collect());
        rows.push(row("e", label("tokens delivered end to end"), pick(|s| s.tokens_per_second), "tokens/s", ""));
        rows.push(row(
            "e",
            label("ws/token requests per activity"),
            pick(|s| s.requests_per_activity),
            "requests",
            "< 500",
        ));
        rows.push(row("e", label("worker CPU per token"), pick(|s| s.worker_cpu_ns_per_token), "ns", ""));
        rows.push(row("e", label("worker peak RSS"), pick(|s| s.worker_peak_rss_mib), "MiB", ""));
    }

    if options.wants("f") {
        let llm_streams = if options.quick { 10 } else { 50 };
        for (rate, pace_ms) in [(50, 20), (200, 5)] {
            for (linger, linger_label) in [(None, "linger 40 ms"), (Some("0"), "linger off")] {
                let pace = || scenarios::Pace { pace_ms, linger };
                let runs = repeat(options.runs, || scenarios::streaming(llm_streams, 200, 100, pace())).await?;
                let label = |what: &str| {
                    format!("{llm_streams} activities streaming 200 tokens at {rate}/s, {linger_label}: {what}")
                };
                let pick = |f: fn(&scenarios::Streaming) -> f64| median(runs.iter().map(f).collect());
                rows.push(row(
                    "f",
                    label("ws/token requests per activity"),
                    pick(|s| s.requests_per_activity),
                    "requests",
                    "",
                ));
                rows.push(row("f", label("worker CPU per token"), pick(|s| s.worker_cpu_ns_per_token), "ns", ""));
            }
        }
    }

    if options.wants("g") {
        let stepped = if options.quick { 200 } else { 2_000 };
        let mut per_step = Vec::new();
        for steps in [0, 5] {
            let runs = repeat(options.runs, || scenarios::steps_cost(stepped, steps)).await?;
            let label = |what: &str| format!("{stepped} activities of {steps} durable steps: {what}");
            let pick = |f: fn(&scenarios::StepsCost) -> f64| median(runs.iter().map(f).collect());
            rows.push(row(
                "g",
                label("record requests per activity"),
                pick(|s| s.record_requests_per_activity),
                "requests",
                "",
            ));
            rows.push(row("g", label("worker CPU per activity"), pick(|s| s.worker_cpu_us_per_activity), "us", ""));
            rows.push(row("g", label("handler time, p50"), pick(|s| s.handler_p50_ms), "ms", ""));
            per_step.push((pick(|s| s.worker_cpu_us_per_activity), pick(|s| s.handler_p50_ms)));
        }
        let label = |what: &str| format!("{stepped} activities, 5 durable steps against none: {what}");
        rows.push(row("g", label("worker CPU per step"), (per_step[1].0 - per_step[0].0) / 5.0, "us", ""));
        rows.push(row("g", label("latency added per step, p50"), (per_step[1].1 - per_step[0].1) / 5.0, "ms", ""));
    }

    if options.wants("h") {
        let sink = scenarios::trace_sink().await?;
        let traced = [("OTEL_EXPORTER_OTLP_ENDPOINT", sink)];
        let mut cpu = Vec::new();
        for (extra, what) in [(&traced[..0], "traces off"), (&traced[..], "traces on (otel, to a local OTLP receiver)")]
        {
            let runs = repeat(options.runs, || scenarios::throughput_with(noops / 2, 16, extra)).await?;
            let per_activity = median(runs.iter().map(|t| t.worker_cpu_us_per_activity).collect());
            let label = format!("{} no-ops, concurrency 16, {what}: worker CPU per activity", noops / 2);
            rows.push(row("h", label, per_activity, "us", ""));
            cpu.push(per_activity);
        }
        rows.push(row("h", "worker CPU added per activity by traces".to_owned(), cpu[1] - cpu[0], "us", ""));
    }

    Ok(rows)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown CPU");
    format!("{cores} cores, {}", model.trim())
}

fn main() -> ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--worker") {
        let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
        return match runtime.block_on(kruxiaflow_worker_examples::load::run_worker()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("{error}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match parse() {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let rows = match runtime.block_on(measure(&options)) {
        Ok(rows) => rows,
        Err(error) => {
            eprintln!("benchmark failed: {error}");
            return ExitCode::FAILURE;
        }
    };
    let machine = machine();
    println!("machine: {machine}; median of {} run(s)\n", options.runs);
    println!("| scenario | measurement | value | unit | goal |");
    println!("|---|---|---:|---|---|");
    let mut csv = String::from("machine,runs,scenario,measurement,value,unit,goal\n");
    for row in &rows {
        println!("| {} | {} | {:.1} | {} | {} |", row.scenario, row.metric, row.value, row.unit, row.goal);
        csv.push_str(&format!(
            "\"{machine}\",{},{},\"{}\",{:.3},{},\"{}\"\n",
            options.runs, row.scenario, row.metric, row.value, row.unit, row.goal
        ));
    }
    if let Err(error) = std::fs::write(&options.csv, csv) {
        eprintln!("cannot write {}: {error}", options.csv);
        return ExitCode::FAILURE;
    }
    println!("\nCSV written to {}", options.csv);
    ExitCode::SUCCESS
}
