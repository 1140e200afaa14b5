//! What stands in for AWS on a laptop: the local API Gateway that serves every
//! HttpApi route of `template.yaml` in one process, the template reader it is
//! built on, the function handler table, and demo data.
//!
//! # Layout
//! - `template`: `template.yaml` → functions, their binaries and HttpApi routes, CORS.
//! - `functions`: the one table of binary name → `handle` fn and `ROUTES`.
//! - `gateway`: the local API Gateway (HTTP API payload 2.0, CORS, 10 MB limit,
//!   `/openapi.json`); `gateway::spawn` for tests.
//! - `assets`: the local bucket and CDN (presigned uploads, `/assets/`).
//! - `mailbox`: the development pages `/_local/mail` and `/_local/links/*`.
//! - `pump`: the local SQS event source (batches, partial failures, dead-letter queue).
//! - `local`: the whole local stack (gateway, assets, pumps) in one process.
//! - `seed`: idempotent demo users and categories.
//!
//! Binaries: `marketplace-local` (gateway over the embedded backend) and
//! `marketplace-admin` (create an admin account, locally or against AWS).

/// The allocator of every program built on this crate: the local gateway, the
/// admin tool and the load tests that stand in for the gateway. Under load,
/// glibc's allocator was a large share of the gateway's CPU time (see
/// BENCHMARKS.md). Lambda binaries do not link this crate and keep glibc's
/// allocator: each serves one request at a time, and a smaller zip and init
/// matter more there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod assets;
pub mod functions;
pub mod gateway;
pub mod local;
pub mod mailbox;
pub mod pump;
pub mod scheduler;
pub mod seed;
pub mod template;

pub use gateway::{spawn, Gateway, GatewayError, ServedRoute};
pub use template::{
    BucketCors, BucketNotification, CorsConfig, Function, HttpRoute, Queue, QueueSource, Template, TemplateError,
};
