//! # otp-core: devices, policies and the store
//!
//! This crate will hold the device framework of the project, the counterpart of django-otp's models
//! and public API:
//!
//! - the `Device` model and its pluggable kinds (TOTP, HOTP, backup codes, email codes);
//! - the policies that apply to every kind: throttling, challenge cooldowns, timestamps and an
//!   account-wide failure budget;
//! - an async SQL store (SQLite embedded by default, PostgreSQL for many app servers) where every
//!   state change is one compare-and-set update, so a code is accepted exactly once;
//! - secrets sealed at rest under an application key.
//!
//! It builds on [`otp-oath`](https://docs.rs/otp-oath) for the algorithms and knows nothing of HTTP.
//! Nothing is implemented yet: the algorithms crate is the foundation this one will stand on.
