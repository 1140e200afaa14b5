//! The local scheduler: what EventBridge Scheduler does in AWS. It reads the
//! template's `ScheduleV2` events and runs each function in-process with the
//! schedule's `Input`, every `rate(...)` interval from start-up (a failed run
//! is logged and waits for the next). `fire` runs one now: the local gateway's
//! `POST /_local/schedules/<name>` and `marketplace-local --fire <name>` use it.
//! Runs of one schedule never overlap (reserved concurrency 1 in AWS).

use std::collections::BTreeMap;
use std::sync::Arc;

use shared::AppState;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

use crate::functions::{scheduled_function, ScheduledFunction};
use crate::template::{Schedule, Template};

/// The gateway path prefix that fires a schedule now.
pub const FIRE_PATH: &str = "/_local/schedules/";

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error(
        "the template schedules {binary}, which no local scheduled function builds (add it to infra/src/functions.rs)"
    )]
    UnknownFunction { binary: String },
    #[error("no schedule named {0:?} (the template has: {1})")]
    UnknownSchedule(String, String),
    #[error("{name} failed: {reason}")]
    Failed { name: String, reason: String },
}

struct Entry {
    schedule: Schedule,
    function: &'static ScheduledFunction,
    /// Held while a run is in progress.
    running: Mutex<()>,
}

/// The template's schedules over one state.
#[derive(Clone)]
pub struct Scheduler {
    state: AppState,
    entries: Arc<BTreeMap<String, Entry>>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").field("schedules", &self.entries.keys().collect::<Vec<_>>()).finish()
    }
}

impl Scheduler {
    pub fn for_template(state: &AppState, template: &Template) -> Result<Self, SchedulerError> {
        let mut entries = BTreeMap::new();
        for schedule in &template.schedules {
            let function = scheduled_function(&schedule.binary)
                .ok_or_else(|| SchedulerError::UnknownFunction { binary: schedule.binary.clone() })?;
            let entry = Entry { schedule: schedule.clone(), function, running: Mutex::new(()) };
            entries.insert(schedule.name.clone(), entry);
        }
        Ok(Self { state: state.clone(), entries: Arc::new(entries) })
    }

    /// The schedules' names.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Runs schedule `name` now (after a run of it in progress, if any) and
    /// returns the function's result. `name` may also be the function's
    /// binary when it has a single schedule (`archive` for `archive.daily`).
    pub async fn fire(&self, name: &str) -> Result<serde_json::Value, SchedulerError> {
        let entry = match self.entries.get(name) {
            Some(entry) => entry,
            None => {
                let mut by_binary = self.entries.values().filter(|e| e.schedule.binary == name);
                match (by_binary.next(), by_binary.next()) {
                    (Some(entry), None) => entry,
                    _ => return Err(SchedulerError::UnknownSchedule(name.to_owned(), self.names().join(", "))),
                }
            }
        };
        let _running = entry.running.lock().await;
        let name = &entry.schedule.name;
        tracing::info!(schedule = %name, "scheduled run starting");
        match (entry.function.handle)(&self.state, entry.schedule.input.clone()).await {
            Ok(result) => {
                tracing::info!(schedule = %name, result = %result, "scheduled run finished");
                Ok(result)
            }
            Err(reason) => {
                tracing::error!(schedule = %name, error = %reason, "scheduled run failed");
                Err(SchedulerError::Failed { name: name.clone(), reason })
            }
        }
    }

    /// Fires every schedule at its interval, forever (one task per schedule).
    pub fn spawn(&self) -> Vec<JoinHandle<()>> {
        self.entries
            .values()
            .map(|entry| {
                let scheduler = self.clone();
                let (name, every) = (entry.schedule.name.clone(), entry.schedule.every);
                tokio::spawn(async move {
                    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        ticks.tick().await;
                        // A failure is logged by `fire`; the next tick tries again.
                        let _ = scheduler.fire(&name).await;
                    }
                })
            })
            .collect()
    }
}
