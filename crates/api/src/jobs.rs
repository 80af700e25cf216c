//! Timers that must fire once: W4's wait time, I4's snooze wake-ups and inactivity close.
//! They are jobs in the database, claimed with a lease, so they survive restarts and (on
//! PostgreSQL) run once across nodes; a job whose node died is claimed again after its
//! lease. Every job re-checks its rule on fresh state, so running one twice is harmless.

use std::time::Duration;

use confab_domain::rules;
use confab_domain::*;
use confab_store::{Job, JobKind, StatusChange, StoreError};

use crate::service;
use crate::state::AppState;

/// How long a claimed job is ours before another node may take it.
const LEASE_SECS: i64 = 60;

/// Runs until shutdown, polling for due jobs.
pub async fn run(state: AppState, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = state.shutdown.cancelled() => return,
        }
        if let Err(e) = run_due(&state).await {
            tracing::warn!(error = %e, "timer jobs failed; will retry");
        }
    }
}

/// Runs every due job once. Public for tests that drive time themselves.
pub async fn run_due(state: &AppState) -> Result<usize, StoreError> {
    let mut done = 0;
    loop {
        let jobs = state
            .store
            .claim_due_jobs(state.now(), chrono::Duration::seconds(LEASE_SECS), 100)
            .await?;
        if jobs.is_empty() {
            return Ok(done);
        }
        for job in jobs {
            match run_one(state, &job).await {
                Ok(()) | Err(StoreError::NotFound(_)) => state.store.complete_job(job.id).await?,
                Err(e) => {
                    tracing::warn!(error = %e, job_id = job.id, conversation_id = %job.conversation_id, "job failed; it will be retried after its lease")
                }
            }
            done += 1;
        }
    }
}

async fn run_one(state: &AppState, job: &Job) -> Result<(), StoreError> {
    let now = state.now();
    match job.kind {
        JobKind::WaitExpiry => {
            let conv = state.store.conversation(job.conversation_id).await?;
            let site = state.store.site(conv.site_id).await?;
            let message = rules::offline_message(&site.settings, now);
            if let Some(changed) = state.store.mark_offline(conv.id, &message, now).await? {
                service::publish_change(state, &changed).await;
                let agents = state.agents().await?;
                let items = rules::new_conversation_notifications(&changed.conversation, &agents);
                service::notify(state, conv.id, items, None, "Nobody took the chat in time").await;
            }
        }
        JobKind::SnoozeWake => {
            let changed = state
                .store
                .change_status(job.conversation_id, StatusChange::Wake, now)
                .await?;
            if !changed.written.is_empty() {
                service::publish_change(state, &changed).await;
            }
        }
        JobKind::InactivityClose => {
            let conv = state.store.conversation(job.conversation_id).await?;
            let site = state.store.site(conv.site_id).await?;
            if rules::inactivity_due(&conv, &site.settings, now) {
                let changed = state
                    .store
                    .change_status(
                        conv.id,
                        StatusChange::Close {
                            by: None,
                            by_visitor: false,
                        },
                        now,
                    )
                    .await?;
                service::publish_change(state, &changed).await;
            } else if conv.handoff_at.is_none() && conv.status != Status::Closed {
                let at = conv.last_message_at
                    + chrono::Duration::seconds(i64::from(site.settings.inactivity_timeout_secs));
                state
                    .store
                    .schedule_job(JobKind::InactivityClose, conv.id, at)
                    .await?;
            }
        }
    }
    Ok(())
}
