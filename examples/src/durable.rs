//! Durable steps: an activity of two paid LLM steps and a publish step whose target
//! may fail, so that a retry pays for neither LLM call again; and a batch that
//! checkpoints its progress, so that a retry resumes where the last attempt stopped.
//!
//! The "LLM calls" are local stand-ins that record the usage and price a real call
//! would, so the example runs anywhere. With `trace` set, each step appends its name
//! to that file when it runs, so a test can count the calls across worker processes.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use kruxiaflow_worker::prelude::*;
use serde::{Deserialize, Serialize};

/// Parameters of [`research`].
#[derive(Debug, Deserialize)]
pub struct Topic {
    /// What to write about.
    pub topic: String,
    /// The publish target fails on the first attempt (as a 503 would), then works.
    #[serde(default)]
    pub publish_fails_first: bool,
    /// The publish step hangs on the first attempt (for a test to kill the worker).
    #[serde(default)]
    pub publish_hangs_first: bool,
    /// A file each step appends its name to when it runs.
    #[serde(default)]
    pub trace: Option<PathBuf>,
}

/// What the planning step decides.
#[derive(Debug, Serialize, Deserialize)]
pub struct Plan {
    /// Section titles.
    pub sections: Vec<String>,
}

/// Price of one stand-in LLM call.
pub const CALL_PRICE: Decimal = dec!(0.012);

/// Plans, drafts and publishes; the two LLM steps are skipped by a retry.
#[activity(name = "research")]
pub async fn research(p: Topic, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let plan: Plan = ctx.step("plan", || async { plan_with_llm(&p, ctx).await }).await?;
    let draft: String = ctx.step("draft", || async { draft_with_llm(&p, &plan, ctx).await }).await?;
    let url: String = ctx.step("publish", || async { publish(&p, &draft, ctx).await }).await?;
    Ok(ActivityResult::value("url", url))
}

async fn plan_with_llm(p: &Topic, ctx: &ActivityContext) -> Result<Plan, ActivityError> {
    trace(p.trace.as_ref(), "plan")?;
    paid_call(ctx, 120, 40);
    Ok(Plan { sections: vec![format!("Why {}", p.topic), format!("How {}", p.topic)] })
}

async fn draft_with_llm(p: &Topic, plan: &Plan, ctx: &ActivityContext) -> Result<String, ActivityError> {
    trace(p.trace.as_ref(), "draft")?;
    paid_call(ctx, 300, 900);
    Ok(plan.sections.iter().map(|s| format!("## {s}\n")).collect())
}

async fn publish(p: &Topic, draft: &str, ctx: &ActivityContext) -> Result<String, ActivityError> {
    trace(p.trace.as_ref(), "publish")?;
    let first_attempt = !ctx.is_resumed().await;
    if p.publish_hangs_first && first_attempt {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if p.publish_fails_first && first_attempt {
        return Err(ActivityError::retryable("PUBLISH_UNAVAILABLE", "the publish target answered 503"));
    }
    Ok(format!("https://example.invalid/{}/{}", slug(&p.topic), draft.len()))
}

/// Records one stand-in LLM call's usage at [`CALL_PRICE`].
fn paid_call(ctx: &ActivityContext, input_tokens: u32, output_tokens: u32) {
    ctx.record_usage(
        UsageEntry::new("stand-in", "stand-in-1")
            .input_tokens(input_tokens)
            .output_tokens(output_tokens)
            .cost_usd(CALL_PRICE),
    );
}

fn slug(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

fn trace(file: Option<&PathBuf>, line: &str) -> Result<(), ActivityError> {
    let Some(file) = file else { return Ok(()) };
    let mut out = std::fs::OpenOptions::new().create(true).append(true).open(file)?;
    writeln!(out, "{line}")?;
    Ok(())
}

/// Parameters of [`batch`].
#[derive(Debug, Deserialize)]
pub struct Batch {
    /// How many items.
    pub items: u32,
    /// On the first attempt, hang before this item (for a test to kill the worker).
    #[serde(default)]
    pub hang_at: Option<u32>,
    /// A file each item appends `item <n>` to when it is processed.
    #[serde(default)]
    pub trace: Option<PathBuf>,
}

/// Processes `items` items, saving the index of the next one after each; a retry
/// starts from the last checkpoint.
#[activity(name = "batch")]
pub async fn batch(p: Batch, ctx: &ActivityContext) -> Result<ActivityResult, ActivityError> {
    let start: u32 = ctx.last_checkpoint().await.unwrap_or(0);
    for item in start..p.items {
        if p.hang_at == Some(item) && start == 0 {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        trace(p.trace.as_ref(), &format!("item {item}"))?;
        ctx.checkpoint(&(item + 1))?;
    }
    Ok(ActivityResult::values(vec![
        ActivityOutput::value("started_at", start),
        ActivityOutput::value("processed", p.items - start),
    ]))
}

/// Registers the durable-steps activities under `worker`.
pub fn register(registry: &mut ActivityRegistry, worker: &str) {
    registry.register(research, worker).register(batch, worker);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kruxiaflow_worker_testing::{EarlierAttempt, MockContext};
    use serde_json::json;

    #[tokio::test]
    async fn a_resumed_research_runs_only_the_step_the_earlier_attempt_did_not_finish() {
        let plan = Plan { sections: vec!["Why rust".into(), "How rust".into()] };
        let earlier = EarlierAttempt::new().step("plan", &plan).step("draft", "## Why rust\n## How rust\n");
        let mock = MockContext::builder("rust", "research").resumed_from(earlier).build();
        let result = mock.run(&research, json!({"topic": "rust", "publish_fails_first": true})).await.unwrap();
        assert_eq!(result.output("url"), Some(&json!("https://example.invalid/rust/24")));
        assert_eq!(mock.steps_skipped(), ["plan", "draft"]);
        assert_eq!(mock.steps_ran(), ["publish"]);
        assert_eq!(mock.spend().usage, [], "the skipped steps' calls were reported by the earlier attempt");
    }

    #[tokio::test]
    async fn a_first_research_attempt_pays_for_both_calls_and_fails_at_publish() {
        let mock = MockContext::new("rust", "research");
        let error = mock.run(&research, json!({"topic": "rust", "publish_fails_first": true})).await.unwrap_err();
        assert_eq!(error.code(), "PUBLISH_UNAVAILABLE");
        assert_eq!(mock.steps_ran(), ["plan", "draft"], "a failed step is not taken");
        assert_eq!(mock.spend().usage.len(), 2);
        assert_eq!(mock.recorded_steps().keys().collect::<Vec<_>>(), ["draft", "plan"]);
    }

    #[tokio::test]
    async fn a_batch_resumes_at_its_checkpoint() {
        let mock = MockContext::builder("rust", "batch").resumed_from(EarlierAttempt::new().checkpoint(60)).build();
        let result = mock.run(&batch, json!({"items": 100})).await.unwrap();
        assert_eq!(result.output("started_at"), Some(&json!(60)));
        assert_eq!(result.output("processed"), Some(&json!(40)));
    }
}
