//! # otp-axum: OTP-verified sessions for axum and tower
//!
//! This crate will hold everything HTTP of the project, the counterpart of django-otp's middleware,
//! decorator, forms, views and admin protection:
//!
//! - a tower layer that reads the verified device from a `tower-sessions` session, and extractors
//!   for the verification state;
//! - an `otp_required` guard for routes;
//! - login and verification flows as HTML forms and as a JSON API, with CSRF protection;
//! - templates that an application can override one by one.
//!
//! It depends on `otp-core`; nothing depends on it but applications. Nothing is implemented yet.
