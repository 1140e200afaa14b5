//! The whole stack on a laptop: the local gateway with the local bucket and CDN,
//! a queue pump per SQS event source, and the outbox relay (what the table's
//! stream and its EventBridge Pipe do in AWS: pending `OUTBOX` events go to the
//! jobs queue), and the template's schedules (`scheduler`), over the embedded
//! backend in one data directory.
//! `marketplace-local` and the end-to-end tests both start it here. A stack
//! listening beyond loopback serves no local mailbox (`/_local/mail`,
//! `/_local/links/*`): the mail holds live sign-in and reset links.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use shared::adapters::wake;
use shared::AppState;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::gateway::{Gateway, GatewayError, Observer};
use crate::pump::{PumpError, PumpSettings, QueuePump};
use crate::scheduler::Scheduler;
use crate::template::{Template, TemplateError};

/// Why the local stack cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Pump(#[from] PumpError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Scheduler(#[from] crate::scheduler::SchedulerError),
    #[error("read the listener's address: {0}")]
    Addr(#[source] std::io::Error),
}

/// The longest wait of the local outbox relay between looks for new events: a
/// write to the embedded store wakes it at once (on DynamoDB it polls).
const RELAY_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Drains the outbox into the jobs queue, forever; `db` is the embedded
/// store's file, whose writes wake it.
async fn relay_outbox(state: AppState, db: PathBuf) {
    let Some(jobs) = state.jobs.clone() else {
        return;
    };
    let written = wake::waker(&db, wake::STORE_WRITES);
    loop {
        // Listening before the relay: a write during it is not missed. (The
        // relay's own deletes wake it once more, to find nothing.)
        let woken = written.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        if let Err(error) = shared::repo::outbox::relay(state.store.as_ref(), jobs.as_ref()).await {
            tracing::warn!(error = %error, "outbox relay failed; retrying");
        }
        tokio::select! {
            _ = woken => {}
            _ = tokio::time::sleep(RELAY_POLL) => {}
        }
    }
}

/// Whether a stack listening on `addr` shows the local mailbox: only on a
/// loopback address, which no other machine reaches.
pub fn serves_mailbox(addr: SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// A running local stack; its tasks stop when it is dropped.
#[derive(Debug)]
pub struct LocalStack {
    pub addr: SocketAddr,
    pub gateway: Gateway,
    pub pumps: Vec<QueuePump>,
    pub scheduler: Scheduler,
    tasks: Vec<JoinHandle<()>>,
}

impl LocalStack {
    /// Serves `template`'s API on `listener` and runs its queues, with `state`
    /// (whose embedded data lives in `data_dir`); `observer`, if any, sees every
    /// exchange a function answers.
    pub async fn start(
        state: AppState,
        data_dir: &Path,
        template: &Path,
        listener: TcpListener,
        settings: PumpSettings,
        observer: Option<Observer>,
    ) -> Result<Self, LocalError> {
        let addr = listener.local_addr().map_err(LocalError::Addr)?;
        let template = Template::load(template)?;
        let mut gateway = Gateway::local(state.clone(), &template, data_dir)?;
        if !serves_mailbox(addr) {
            gateway = gateway.without_mailbox();
        }
        if let Some(observer) = observer {
            gateway = gateway.observe(observer);
        }
        let scheduler = Scheduler::for_template(&state, &template)?;
        gateway = gateway.with_scheduler(scheduler.clone());
        let pumps = QueuePump::for_template(&state, &template, &data_dir.join("marketplace.db"), &settings)?;
        let mut tasks: Vec<JoinHandle<()>> = pumps.iter().cloned().flat_map(QueuePump::spawn).collect();
        tasks.push(tokio::spawn(relay_outbox(state.clone(), data_dir.join("marketplace.db"))));
        tasks.extend(scheduler.spawn());
        let serving = gateway.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(error) = serving.serve(listener, std::future::pending()).await {
                tracing::error!(error = %error, "local gateway stopped");
            }
        }));
        Ok(Self { addr, gateway, pumps, scheduler, tasks })
    }

    /// Waits until Ctrl-C.
    pub async fn run_until_ctrl_c(self) {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
