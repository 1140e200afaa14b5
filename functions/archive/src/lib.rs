//! The scheduled archive function: each daily run moves finished orders older
//! than the archive age to the data bucket (`shared::archive`), then removes
//! public photos no listed product has referenced for the grace period
//! (`shared::photo_cleanup`), both within the run's time budget; each hourly
//! run cancels orders still pending after `PENDING_ORDER_HOURS`
//! (`shared::orders::expire_pending`). Figures go out as CloudWatch metrics
//! (embedded metric format).
//!
//! The daily run also removes the delivery address of orders finished more
//! than `ADDRESS_RETENTION_DAYS` ago (`shared::orders::redact_addresses`).
//!
//! Settings: `ARCHIVE_AFTER_DAYS` (default 180), `PHOTO_GRACE_DAYS` (default 7),
//! `ADDRESS_RETENTION_DAYS` (default 90),
//! `PENDING_ORDER_HOURS` (default 48, read with the state). The event is the
//! schedule's input, `{"job": "archive"}` or `{"job": "expirePendingOrders"}`.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use shared::archive::{self, ArchiveSettings};
use shared::config::{positive_setting, ConfigError};
use shared::orders::{self, ExpiryReport, OrderError};
use shared::photo_cleanup;
use shared::AppState;

/// What a run needs besides the state.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub archive: ArchiveSettings,
    pub photo_grace: time::Duration,
    /// How long a finished order keeps its delivery address in the table.
    pub address_retention: time::Duration,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let days = |name, default| positive_setting(name, default).map(|d| time::Duration::days(d as i64));
        Ok(Self {
            archive: ArchiveSettings { min_age: days("ARCHIVE_AFTER_DAYS", 180)?, ..ArchiveSettings::default() },
            photo_grace: days("PHOTO_GRACE_DAYS", 7)?,
            address_retention: days("ADDRESS_RETENTION_DAYS", 90)?,
        })
    }
}

/// The schedule's input.
#[derive(Debug, Deserialize)]
#[serde(tag = "job", rename_all = "camelCase", deny_unknown_fields)]
pub enum Event {
    Archive,
    ExpirePendingOrders,
}

/// What a run did, by job (the invocation's result).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Report {
    Archive(Outcome),
    Expiry(ExpiryReport),
}

/// What an archive run did (also logged).
#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub orders_archived: usize,
    pub batches: usize,
    /// Batches a killed earlier run left, completed by this one.
    pub batches_resumed: usize,
    /// `false` when the time budget ran out first; the next run goes on.
    pub archive_complete: bool,
    /// Delivery addresses removed from orders finished more than
    /// `ADDRESS_RETENTION_DAYS` ago (`None` when the budget ran out first).
    pub addresses_redacted: Option<usize>,
    /// `None` when the budget ran out before the clean-up.
    pub photos_removed: Option<usize>,
    pub photos_marked_unreferenced: Option<usize>,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("not an archive event: {0}")]
    BadEvent(serde_json::Error),
    #[error("this function has no {0} (DATA_BUCKET / ASSETS_BUCKET)")]
    NotConfigured(&'static str),
    #[error("archive: {0}")]
    Archive(#[from] archive::ArchiveError),
    #[error("photo clean-up: {0}")]
    Cleanup(#[from] photo_cleanup::CleanupError),
    #[error("pending order expiry: {0}")]
    Expiry(#[from] OrderError),
}

/// How long before the deadline a run stops starting work: a minute, or a
/// tenth of the time left when that is shorter.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);

/// Runs one scheduled job; `deadline` is when the invocation must have returned.
pub async fn handle(
    state: &AppState,
    settings: &Settings,
    event: serde_json::Value,
    deadline: Instant,
) -> Result<Report, RunError> {
    let event: Event = serde_json::from_value(event).map_err(RunError::BadEvent)?;
    let started = Instant::now();
    let margin = DEADLINE_MARGIN.min(deadline.saturating_duration_since(started) / 10);
    let budget_end = deadline.checked_sub(margin).unwrap_or(started);
    match event {
        Event::Archive => archive(state, settings, started, budget_end).await.map(Report::Archive),
        Event::ExpirePendingOrders => {
            let report = orders::expire_pending(state, budget_end).await?;
            shared::telemetry::emit_metrics("archive", &[("PendingOrdersExpired", "Count", report.expired as f64)]);
            Ok(Report::Expiry(report))
        }
    }
}

/// The daily job: archive, then the photo clean-up, until `budget_end`.
async fn archive(
    state: &AppState,
    settings: &Settings,
    started: Instant,
    budget_end: Instant,
) -> Result<Outcome, RunError> {
    let data = state.data_bucket.as_deref().ok_or(RunError::NotConfigured("data bucket"))?;
    let assets = state.blobs.as_deref().ok_or(RunError::NotConfigured("assets bucket"))?;
    let store = state.store.as_ref();
    let report = archive::run(store, data, state.clock.as_ref(), settings.archive, budget_end).await?;
    let redacted = if Instant::now() < budget_end {
        Some(orders::redact_addresses(state, settings.address_retention, budget_end).await?)
    } else {
        None
    };
    let cleanup = if Instant::now() < budget_end {
        Some(photo_cleanup::run(store, assets, state.clock.as_ref(), settings.photo_grace).await?)
    } else {
        None
    };
    let outcome = Outcome {
        orders_archived: report.archived,
        batches: report.batches,
        batches_resumed: report.resumed,
        archive_complete: report.complete,
        addresses_redacted: redacted,
        photos_removed: cleanup.as_ref().map(|c| c.removed),
        photos_marked_unreferenced: cleanup.as_ref().map(|c| c.marked),
        duration_ms: started.elapsed().as_millis() as u64,
    };
    tracing::info!(
        orders_archived = outcome.orders_archived,
        batches = outcome.batches,
        resumed = outcome.batches_resumed,
        complete = outcome.archive_complete,
        photos_removed = ?outcome.photos_removed,
        duration_ms = outcome.duration_ms,
        "archive run finished"
    );
    shared::telemetry::emit_metrics(
        "archive",
        &[
            ("OrdersArchived", "Count", outcome.orders_archived as f64),
            ("ArchiveDuration", "Milliseconds", outcome.duration_ms as f64),
            ("PhotosRemoved", "Count", outcome.photos_removed.unwrap_or_default() as f64),
        ],
    );
    Ok(outcome)
}
