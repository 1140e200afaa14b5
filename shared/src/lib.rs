//! The marketplace's common crate: domain rules, ports and their two adapters,
//! the HTTP kit every function uses, and telemetry.
//!
//! # Layout
//! - `domain`: plain types and rules, no I/O (users, categories, products, validation).
//! - `accounts`: the accounts' use cases (register, sign in, refresh, sign out,
//!   email verification, password reset and change, profiles, administration, erasure).
//! - `orders`: checkout, the order lifecycle, reading by role, and order events.
//! - `catalogue`: the catalogue's use cases (categories, products, photo uploads).
//! - `jobs`: the jobs the functions put on the jobs queue for the worker.
//! - `archive`, `backup`, `photo_cleanup`: the scheduled jobs; `jsonl`, the gzip
//!   JSON lines their objects are written in.
//! - `health`: the health check (whether the store answers in time).
//! - `mail`: outgoing mail templates and their rendering.
//! - `passwords`: argon2id hashing with pooled working memory, behind `domain::PasswordHash`.
//! - `ports`: async traits the handlers talk to (store, blob store, job queue, mailer, clock).
//! - `adapters`: the `embedded` (SQLite, directory) and `aws` (DynamoDB, S3, SQS) backends.
//! - `config`: configuration read once at start-up, and the `AppState` built from it.
//! - `tokens`: Ed25519-signed access tokens (sign in `auth`, verify everywhere).
//! - `http`: request parsing, auth guard, problem+json errors, cursors and pages
//!   (`Page`, `paginate`), responses (`Reply`), ETags, routing.
//! - `telemetry`: log set-up (JSON in Lambda, readable lines locally).
//! - `repo`: item layouts of the single table (keys, index keys) for each entity,
//!   and the whole-table scan (`scan_all`).
//!   Outside it, storage is named by path (`repo::orders::get`) after one
//!   `use crate::repo;`, never by importing a storage module, so a bare
//!   `orders::` or `products::` never means the storage layer; its types may be
//!   imported by name.
//! - `retry`: the named retry policies and `retry::run`, the one way to retry.

pub mod accounts;
pub mod adapters;
pub mod archive;
pub mod backup;
pub mod catalogue;
pub mod config;
pub mod domain;
pub mod health;
pub mod http;
pub mod jobs;
pub mod jsonl;
pub mod mail;
pub mod orders;
mod passwords;
pub mod photo_cleanup;
pub mod ports;
pub mod repo;
pub mod retry;
pub mod telemetry;
pub mod tokens;

pub use config::{AppState, Backend, ConfigError};
