//! The scheduled backup function: `{"job": "backup"}` exports every item of
//! the table, and the archive objects its archived orders point at, to the
//! data bucket (`shared::backup`) and prunes backups past the retention. Each
//! run logs and emits its figures as CloudWatch metrics (embedded metric
//! format).
//!
//! It never restores: its role may read the table but not write it. A restore
//! is an operator's `marketplace-admin restore`, under the operator's own
//! credentials; any other event (such as `{"job": "restore"}`) is refused.
//!
//! The manifest is signed with the backup key (`BACKUP_KEY_SECRET_ARN`'s
//! secret, fetched once at start-up; locally `<DATA_DIR>/backup-key.bin`).
//!
//! Settings: `BACKUP_SEGMENTS` (parallel scan readers, default 4),
//! `BACKUP_READ_UNITS_PER_SECOND` (default 200), `BACKUP_RETENTION_DAYS`
//! (default 35).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use shared::backup::{self, BackupError, BackupKey, BackupSettings};
use shared::config::{positive_setting, ConfigError};
use shared::AppState;

/// The backup key, read once at start-up (`shared::config::backup_key`).
pub async fn key_from_env(state: &AppState) -> Result<BackupKey, RunError> {
    let secret = shared::config::backup_key(&state.backend).await?;
    Ok(BackupKey::new(&secret)?)
}

/// Reads the settings from the environment.
pub fn settings_from_env() -> Result<BackupSettings, ConfigError> {
    let defaults = BackupSettings::default();
    Ok(BackupSettings {
        segments: positive_setting("BACKUP_SEGMENTS", u64::from(defaults.segments))?.min(64) as u32,
        read_units_per_second: positive_setting("BACKUP_READ_UNITS_PER_SECOND", defaults.read_units_per_second as u64)?
            as f64,
        retention: time::Duration::days(positive_setting("BACKUP_RETENTION_DAYS", 35)? as i64),
        ..defaults
    })
}

/// The schedule's input: the one job this function runs.
#[derive(Debug, Deserialize)]
#[serde(tag = "job", rename_all = "camelCase", deny_unknown_fields)]
pub enum Event {
    Backup,
}

/// What a run did (the invocation's result, also logged).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub job: &'static str,
    pub backup_id: String,
    pub items: u64,
    pub parts: usize,
    /// Archive objects copied into the backup.
    pub archive_objects: usize,
    /// Read capacity the backup's scan consumed.
    pub read_units: f64,
    /// Backups removed by the retention.
    pub pruned: Vec<String>,
    pub duration_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("not a backup event (this function only backs up; restore with marketplace-admin restore): {0}")]
    BadEvent(serde_json::Error),
    #[error("this function has no data bucket (DATA_BUCKET)")]
    NoDataBucket,
    #[error(transparent)]
    Backup(#[from] BackupError),
    #[error("prune old backups: {0}")]
    Prune(#[from] shared::ports::BlobError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Runs one backup.
pub async fn handle(
    state: &AppState,
    settings: &BackupSettings,
    key: &BackupKey,
    event: serde_json::Value,
) -> Result<Outcome, RunError> {
    let Event::Backup = serde_json::from_value(event).map_err(RunError::BadEvent)?;
    let started = Instant::now();
    let bucket = state.data_bucket.as_deref().ok_or(RunError::NoDataBucket)?;
    let manifest = backup::back_up(
        state.store.as_ref(),
        bucket,
        bucket,
        key,
        state.clock.as_ref(),
        settings,
        state.backend.name(),
    )
    .await?;
    let pruned = backup::prune(bucket, state.clock.as_ref(), settings.retention).await?;
    let outcome = Outcome {
        job: "backup",
        backup_id: manifest.id,
        items: manifest.items,
        parts: manifest.parts.len(),
        archive_objects: manifest.archive_objects.len(),
        read_units: manifest.read_units,
        pruned,
        duration_ms: started.elapsed().as_millis() as u64,
    };
    tracing::info!(job = outcome.job, backup_id = %outcome.backup_id, items = outcome.items, parts = outcome.parts,
        archive_objects = outcome.archive_objects, read_units = outcome.read_units, pruned = outcome.pruned.len(),
        duration_ms = outcome.duration_ms, "backup run finished");
    shared::telemetry::emit_metrics(
        "backup",
        &[
            ("ItemsBackedUp", "Count", outcome.items as f64),
            ("BackupDuration", "Milliseconds", outcome.duration_ms as f64),
        ],
    );
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_function_refuses_a_restore_event() {
        let restore = serde_json::json!({"job": "restore", "backupId": "20261128T031500Z-3K9QZ2"});
        assert!(serde_json::from_value::<Event>(restore).is_err());
        assert!(serde_json::from_value::<Event>(serde_json::json!({"job": "backup"})).is_ok());
    }
}
