//! An in-process Lambda Runtime API on loopback (`/2018-06-01/runtime/...`) and
//! the driver that runs a function binary under it: cold starts (spawn to the
//! first `GET .../invocation/next`) and warm invocations (an event handed out to
//! its response `POST`), plus the process's peak resident memory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// How long one invocation (or a start-up) may take before the run is abandoned.
const PATIENCE: Duration = Duration::from_secs(60);

/// What the binary posted back for one invocation.
struct Posted {
    id: String,
    at: Instant,
    kind: Kind,
    body: Bytes,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Response,
    Error,
    InitError,
}

struct Shared {
    /// Events to hand out, one `next` at a time.
    events: tokio::sync::Mutex<mpsc::UnboundedReceiver<(String, Bytes)>>,
    /// When each request id was handed out.
    handed_out: Mutex<HashMap<String, Instant>>,
    /// Fired by the first `next` of the process.
    first_next: Mutex<Option<oneshot::Sender<Instant>>>,
    posted: mpsc::UnboundedSender<Posted>,
}

async fn next_invocation(State(rt): State<Arc<Shared>>) -> Response {
    let asked = Instant::now();
    if let Some(first) = rt.first_next.lock().expect("first_next lock").take() {
        let _ = first.send(asked);
    }
    let Some((id, event)) = rt.events.lock().await.recv().await else {
        return StatusCode::GONE.into_response();
    };
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default() + PATIENCE;
    let mut headers = HeaderMap::new();
    let header = |value: &str| HeaderValue::from_str(value).expect("a valid header value");
    headers.insert("lambda-runtime-aws-request-id", header(&id));
    headers.insert("lambda-runtime-deadline-ms", header(&deadline.as_millis().to_string()));
    headers
        .insert("lambda-runtime-invoked-function-arn", header("arn:aws:lambda:us-east-1:000000000000:function:bench"));
    headers.insert("lambda-runtime-trace-id", header("Root=1-00000000-000000000000000000000000;Sampled=0"));
    headers.insert("content-type", header("application/json"));
    rt.handed_out.lock().expect("handed_out lock").insert(id, Instant::now());
    (StatusCode::OK, headers, event).into_response()
}

fn record(rt: &Shared, id: String, kind: Kind, body: Bytes) -> StatusCode {
    let at = Instant::now();
    let _ = rt.posted.send(Posted { id, at, kind, body });
    StatusCode::ACCEPTED
}

async fn invocation_response(State(rt): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    record(&rt, id, Kind::Response, body)
}

async fn invocation_error(State(rt): State<Arc<Shared>>, UrlPath(id): UrlPath<String>, body: Bytes) -> StatusCode {
    record(&rt, id, Kind::Error, body)
}

async fn init_error(State(rt): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    record(&rt, String::new(), Kind::InitError, body)
}

/// One process under a fresh Runtime API server.
struct Lambda {
    child: Child,
    started: Instant,
    first_next: oneshot::Receiver<Instant>,
    events: mpsc::UnboundedSender<(String, Bytes)>,
    posted: mpsc::UnboundedReceiver<Posted>,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
    name: String,
}

/// Where a process's output goes.
pub enum Output<'a> {
    Discard,
    File(&'a Path),
}

impl Lambda {
    async fn spawn(binary: &Path, env: &[(String, String)], output: Output<'_>) -> anyhow::Result<Self> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (posted_tx, posted_rx) = mpsc::unbounded_channel();
        let (first_tx, first_rx) = oneshot::channel();
        let shared = Arc::new(Shared {
            events: tokio::sync::Mutex::new(events_rx),
            handed_out: Mutex::default(),
            first_next: Mutex::new(Some(first_tx)),
            posted: posted_tx,
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route("/2018-06-01/runtime/invocation/{id}/response", post(invocation_response))
            .route("/2018-06-01/runtime/invocation/{id}/error", post(invocation_error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("bind the Runtime API")?;
        let addr: SocketAddr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let (stdout, stderr) = match output {
            Output::Discard => (Stdio::null(), Stdio::null()),
            Output::File(path) => {
                let file = std::fs::File::create(path).with_context(|| format!("create {}", path.display()))?;
                (Stdio::from(file.try_clone()?), Stdio::from(file))
            }
        };
        let mut command = Command::new(binary);
        command
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true);
        let started = Instant::now();
        let child = command.spawn().with_context(|| format!("start {}", binary.display()))?;
        let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Self { child, started, first_next: first_rx, events: events_tx, posted: posted_rx, shared, server, name })
    }

    /// Waits for the first `next`: the init duration.
    async fn init(&mut self) -> anyhow::Result<Duration> {
        let name = self.name.clone();
        tokio::select! {
            at = &mut self.first_next => Ok(at.map_err(|_| anyhow!("{name}: the Runtime API stopped"))? - self.started),
            status = self.child.wait() => bail!("{name} exited before asking for an event: {status:?}"),
            posted = self.posted.recv() => match posted {
                Some(p) if p.kind == Kind::InitError => {
                    bail!("{name} reported an init error: {}", String::from_utf8_lossy(&p.body))
                }
                _ => bail!("{name} posted before asking for an event"),
            },
            _ = tokio::time::sleep(PATIENCE) => bail!("{name} did not ask for an event within {PATIENCE:?}"),
        }
    }

    /// Hands out `event` and waits for its answer.
    async fn invoke(&mut self, id: String, event: Bytes) -> anyhow::Result<(Duration, String)> {
        self.events.send((id.clone(), event)).map_err(|_| anyhow!("the Runtime API stopped"))?;
        let name = self.name.clone();
        let posted = tokio::select! {
            posted = self.posted.recv() => posted.ok_or_else(|| anyhow!("the Runtime API stopped"))?,
            status = self.child.wait() => bail!("{name} exited during invocation {id}: {status:?}"),
            _ = tokio::time::sleep(PATIENCE) => bail!("{name} did not answer invocation {id} within {PATIENCE:?}"),
        };
        if posted.kind == Kind::InitError {
            bail!("{name} reported an init error: {}", String::from_utf8_lossy(&posted.body));
        }
        if posted.id != id {
            bail!("{name} answered {} while {id} was outstanding", posted.id);
        }
        let handed_out = self
            .shared
            .handed_out
            .lock()
            .expect("handed_out lock")
            .remove(&id)
            .ok_or_else(|| anyhow!("{id} was answered before it was handed out"))?;
        Ok((posted.at.saturating_duration_since(handed_out), outcome(posted.kind, &posted.body)))
    }

    /// VmHWM of the process (bytes), read now.
    fn peak_rss(&self) -> anyhow::Result<u64> {
        let pid = self.child.id().ok_or_else(|| anyhow!("{} is no longer running", self.name))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("read /proc/<pid>/status")?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).ok_or_else(|| anyhow!("no VmHWM line"))?;
        let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).ok_or_else(|| anyhow!("{line}"))?;
        Ok(kib * 1024)
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
        let _ = self.child.wait().await;
        self.server.abort();
    }
}

/// A short label for an answer: the API Gateway status code, the worker's
/// partial batch failures, or an invocation error.
fn outcome(kind: Kind, body: &[u8]) -> String {
    if kind == Kind::Error {
        return "invocation error".into();
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return "unparsable answer".into();
    };
    if let Some(status) = value.get("statusCode").and_then(|s| s.as_u64()) {
        return status.to_string();
    }
    match value.get("batchItemFailures").and_then(|f| f.as_array()) {
        Some(failures) if failures.is_empty() => "batch ok".into(),
        Some(failures) => format!("batch {} failed", failures.len()),
        None => "other answer".into(),
    }
}

/// Init durations of `count` fresh processes, one after the other.
pub async fn cold_starts(binary: &Path, env: &[(String, String)], count: usize) -> anyhow::Result<Vec<Duration>> {
    let mut durations = Vec::with_capacity(count);
    for _ in 0..count {
        let mut lambda = Lambda::spawn(binary, env, Output::Discard).await?;
        let init = lambda.init().await;
        lambda.stop().await;
        durations.push(init?);
    }
    Ok(durations)
}

/// One warm invocation: which event, how long, what came back.
pub struct Invocation {
    pub event: usize,
    pub latency: Duration,
    pub outcome: String,
}

/// What a warm run measured.
pub struct WarmRun {
    pub init: Duration,
    pub invocations: Vec<Invocation>,
    pub peak_rss_bytes: u64,
}

/// Starts one process, runs the events in turn `count` times in all (one in
/// flight at a time) and reads its peak memory before stopping it. The
/// process's output goes to `log`.
pub async fn warm_run(
    binary: &Path,
    env: &[(String, String)],
    events: &[Bytes],
    count: usize,
    log: &Path,
) -> anyhow::Result<WarmRun> {
    if events.is_empty() {
        bail!("no events to send");
    }
    let mut lambda = Lambda::spawn(binary, env, Output::File(log)).await?;
    let result: anyhow::Result<WarmRun> = async {
        let init = lambda.init().await?;
        let mut invocations = Vec::with_capacity(count);
        for i in 0..count {
            let event = i % events.len();
            let (latency, outcome) = lambda.invoke(format!("bench-{i}"), events[event].clone()).await?;
            invocations.push(Invocation { event, latency, outcome });
        }
        let peak_rss_bytes = lambda.peak_rss()?;
        Ok(WarmRun { init, invocations, peak_rss_bytes })
    }
    .await;
    lambda.stop().await;
    result.with_context(|| format!("see {}", log.display()))
}
