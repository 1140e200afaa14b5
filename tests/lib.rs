//! End-to-end and cross-function tests live under `api/`; this library is empty.
