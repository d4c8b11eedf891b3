//! The JSON login flow on top of axum-login (`AxumLoginAccounts`), on SQLite and PostgreSQL: a
//! tiny in-memory backend, axum-login's layer outside `OtpLayer`, and axum-login's own
//! `AuthSession` showing who is logged in.
#![cfg(feature = "axum-login")]

mod common;

use otp_test_support::store_tests;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use axum_login::{AuthManagerLayerBuilder, AuthSession, AuthUser, AuthnBackend};
use common::{
    Client, TestDb, assert_not_logged_in, assert_otp_required, framework, me, post_password,
    post_right_password, post_token, serve, session_layer,
};
use http::StatusCode;
use otp_axum::{AxumLoginAccounts, OtpLayer, OtpWeb, UsernamePassword, WebConfig};
use otp_core::{Device, Otp, TotpOptions};
use otp_oath::Secret;
use serde_json::{Value, json};

store_tests!(
    two_step_login_ends_with_axum_login_showing_the_user,
    a_user_without_devices_is_logged_in_by_axum_login_at_the_password,
    a_wrong_token_or_an_expired_login_leaves_axum_login_anonymous,
);

#[derive(Clone)]
struct User {
    id: i64,
    username: String,
    password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl AuthUser for User {
    type Id = i64;

    fn id(&self) -> i64 {
        self.id
    }

    fn session_auth_hash(&self) -> &[u8] {
        // A real app would use the password hash.
        self.password.as_bytes()
    }
}

struct Credentials {
    username: String,
    password: String,
}

impl From<UsernamePassword> for Credentials {
    fn from(form: UsernamePassword) -> Self {
        Self {
            username: form.username,
            password: form.password,
        }
    }
}

/// alice is 1, bob 2, carol 3.
#[derive(Clone, Debug)]
struct Backend {
    users: Arc<HashMap<i64, User>>,
}

impl Backend {
    fn new() -> Self {
        let users = common::USERS
            .iter()
            .zip(1..)
            .map(|((username, password, _), id)| {
                let user = User {
                    id,
                    username: (*username).to_owned(),
                    password: (*password).to_owned(),
                };
                (id, user)
            })
            .collect();
        Self {
            users: Arc::new(users),
        }
    }
}

impl AuthnBackend for Backend {
    type User = User;
    type Credentials = Credentials;
    type Error = Infallible;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Infallible> {
        Ok(self
            .users
            .values()
            .find(|u| u.username == creds.username && u.password == creds.password)
            .cloned())
    }

    async fn get_user(&self, id: &i64) -> Result<Option<User>, Infallible> {
        Ok(self.users.get(id).cloned())
    }
}

async fn auth_user(auth: AuthSession<Backend>) -> Json<Value> {
    Json(json!({ "user": auth.user.map(|u| u.id) }))
}

struct App {
    otp: Otp,
    clock: otp_core::ManualClock,
    client: Client,
    _db: TestDb,
}

impl App {
    async fn new(db: TestDb) -> Self {
        let framework = framework(&db, otp_core::Settings::default(), false).await;
        let backend = Backend::new();
        let web = OtpWeb::with_config(
            framework.otp.clone(),
            AxumLoginAccounts::new(backend.clone()),
            WebConfig::default(),
        )
        .expect("the web layer")
        .with_clock(Arc::new(framework.clock.clone()));
        let auth_layer = AuthManagerLayerBuilder::new(backend, session_layer()).build();
        let router = Router::new()
            .nest("/api/v1", otp_axum::json::routes())
            .merge(common::test_routes())
            .route("/auth-user", get(auth_user))
            .layer(OtpLayer::new(web))
            .layer(auth_layer);
        Self {
            otp: framework.otp,
            clock: framework.clock,
            client: Client::new(&serve(router).await),
            _db: db,
        }
    }

    async fn totp_device(&self, user_key: &str) -> Device {
        self.otp
            .create_totp_device(
                user_key,
                "phone",
                Some(Secret::from_hex(common::TOTP_KEY).unwrap()),
                TotpOptions::default(),
                true,
            )
            .await
            .unwrap()
    }

    fn code(&self, device: &Device) -> String {
        common::totp_code(&self.otp, device, &self.clock)
    }

    async fn auth_user(&self) -> Value {
        let reply = self.client.get("/auth-user").await;
        reply.assert_status(StatusCode::OK);
        reply.json()["user"].clone()
    }
}

async fn two_step_login_ends_with_axum_login_showing_the_user(db: TestDb) {
    let app = App::new(db).await;
    // User keys are axum-login's user ids as text.
    let device = app.totp_device("1").await;
    let client = &app.client;

    post_password(client, "alice", "wrong").await.assert_error(
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
        "wrong password",
    );
    let reply = post_right_password(client, "alice").await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({
            "otp_required": true,
            "devices": [{ "id": device.id.to_string(), "name": "phone", "kind": "totp", "interactive": false, "recovery": false }],
        })
    );
    let pending = client.session_cookie().expect("a session");
    assert_eq!(
        app.auth_user().await,
        Value::Null,
        "not logged in before the token"
    );
    assert_not_logged_in(client, "/me while pending").await;

    let reply = post_token(client, &device.id, &app.code(&device)).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.json(), json!({ "verified": true }));
    assert_ne!(
        client.session_cookie().unwrap(),
        pending,
        "the id is cycled"
    );

    assert_eq!(app.auth_user().await, json!(1));
    assert_eq!(
        me(client).await,
        json!({ "user": "1", "verified": true, "device": device.id.to_string() })
    );
    assert_eq!(client.get("/protected").await.status, StatusCode::OK);
    assert_eq!(client.get("/verified-only").await.text(), "verified 1");

    // Logging out through the JSON API logs axum-login out too.
    let reply = client.delete("/api/v1/session").await;
    reply.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(app.auth_user().await, Value::Null);
    assert_not_logged_in(client, "/me after logout").await;
}

async fn a_user_without_devices_is_logged_in_by_axum_login_at_the_password(db: TestDb) {
    let app = App::new(db).await;
    let client = &app.client;
    let reply = post_right_password(client, "carol").await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({ "otp_required": false, "devices": [] })
    );
    assert_eq!(app.auth_user().await, json!(3));
    assert_eq!(
        me(client).await,
        json!({ "user": "3", "verified": false, "device": null })
    );
    assert_otp_required(client, "/protected", "/protected").await;
    assert_eq!(
        client.get("/protected-if-configured").await.status,
        StatusCode::OK
    );
}

async fn a_wrong_token_or_an_expired_login_leaves_axum_login_anonymous(db: TestDb) {
    let app = App::new(db).await;
    let device = app.totp_device("1").await;
    let client = &app.client;
    post_right_password(client, "alice").await;
    let wrong = common::wrong_totp_code(&app.otp, &device, &app.clock);
    post_token(client, &device.id, &wrong).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "wrong token",
    );
    assert_eq!(app.auth_user().await, Value::Null);

    app.clock.advance(Duration::from_secs(601));
    post_token(client, &device.id, &app.code(&device))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "login_expired", "late token");
    assert_eq!(app.auth_user().await, Value::Null);
    assert_not_logged_in(client, "/me").await;
}
