//! End-to-end tests: the local gateway on `127.0.0.1:0` with fresh storage per
//! test, driven over HTTP; the sample events through their handlers; and each
//! function's real binary under a Lambda Runtime API emulator.

mod abuse;
mod accounts;
mod auth;
mod backups;
mod categories;
mod concurrency;
mod conformance;
mod contract;
mod damaged_items;
mod events;
mod health;
mod helpers;
mod lambda_binaries;
mod mail;
mod order_guards;
mod orders;
mod outbox;
mod photos;
mod presign;
mod products;
mod sales;
mod scheduled;
mod uploads;
mod validation;
mod worker;
