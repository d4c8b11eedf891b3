//! The guard (`otp_required`), the extractors (`Verified`, `OtpSession`) and `otp_axum::login`:
//! anonymous requests in-process with `oneshot`, logged-in ones through the cookie-keeping
//! client, on SQLite and PostgreSQL; `safe_next` as a table.

mod common;

use otp_test_support::store_tests;

use std::time::Duration;

use axum::body::Body;
use common::{
    Client, Reply, TestApp, TestDb, log_in_verified, me, oneshot, post_right_password, post_token,
    whoami,
};
use http::{Method, Request, StatusCode, header};
use otp_axum::{OtpLayer, WebConfig, safe_next};
use otp_core::{Clock, Device};
use serde_json::{Value, json};

store_tests!(
    browsers_are_redirected_to_the_login_url_with_the_page_in_next,
    json_clients_get_403_otp_required,
    the_guard_takes_its_own_login_url_and_field,
    the_configuration_moves_the_login_url_and_field,
    the_next_of_a_redirect_is_always_the_page_asked_for_on_this_site,
    if_configured_lets_users_without_confirmed_devices_through_only,
    a_missing_otp_layer_is_a_500_that_names_it,
    a_missing_session_layer_is_a_500_that_names_it,
    login_refuses_another_users_device_and_an_unconfirmed_one,
    a_verification_lapses_after_the_maximum_age,
    a_verification_lapses_when_idle,
    stepped_up_needs_a_recent_verification,
    ended_sessions_stay_ended_whatever_the_store_holds,
    a_half_done_login_ends_with_the_password_change,
    a_nested_guard_puts_the_full_path_in_next,
    unverify_drops_the_verification_and_cycles_the_id,
);

fn get(uri: &str, accept: Option<&str>) -> Request<Body> {
    let mut request = Request::builder().method(Method::GET).uri(uri);
    if let Some(accept) = accept {
        request = request.header(header::ACCEPT, accept);
    }
    request.body(Body::empty()).unwrap()
}

const HTML: Option<&str> = Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
const JSON: Option<&str> = Some("application/json");

#[track_caller]
fn assert_redirect(reply: &Reply, location: &str, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SEE_OTHER,
        "{what}: {}",
        reply.text()
    );
    assert_eq!(reply.header(header::LOCATION), Some(location), "{what}");
}

#[track_caller]
fn assert_otp_required_json(reply: &Reply, what: &str) {
    assert_eq!(
        reply.status,
        StatusCode::FORBIDDEN,
        "{what}: {}",
        reply.text()
    );
    assert_eq!(reply.json(), json!({ "error": "otp_required" }), "{what}");
    assert_eq!(
        reply.header(header::CACHE_CONTROL),
        Some("no-store"),
        "{what}"
    );
    assert_eq!(reply.header(header::LOCATION), None, "{what}");
}

async fn browsers_are_redirected_to_the_login_url_with_the_page_in_next(db: TestDb) {
    let app = TestApp::new(db).await;
    // The page asked for, query included, percent-encoded as one query value ('/' is left as
    // is, as Django's redirect_to_login does).
    let expected = "/account/login?next=/protected%3Fa%3D1";
    for accept in [HTML, None, Some("*/*"), Some("application/json, text/html")] {
        let what = format!("/protected, Accept {accept:?}");
        assert_redirect(
            &app.oneshot(get("/protected?a=1", accept)).await,
            expected,
            &what,
        );
    }
    // The Verified extractor rejects the same way.
    assert_redirect(
        &app.oneshot(get("/verified-only?a=1", HTML)).await,
        "/account/login?next=/verified-only%3Fa%3D1",
        "Verified",
    );
    // Characters of the query are encoded once, so that decoding gives the raw path back.
    assert_redirect(
        &app.oneshot(get("/protected?q=caf%C3%A9&x=a+b&y=1#frag", HTML))
            .await,
        "/account/login?next=/protected%3Fq%3Dcaf%25C3%25A9%26x%3Da%2Bb%26y%3D1",
        "encoded query",
    );
    // The handler did not run.
    let reply = app.oneshot(get("/protected", HTML)).await;
    assert!(!reply.text().contains("protected content"));
}

async fn json_clients_get_403_otp_required(db: TestDb) {
    let app = TestApp::new(db).await;
    for uri in [
        "/protected?a=1",
        "/verified-only",
        "/protected-if-configured",
    ] {
        let reply = app.oneshot(get(uri, JSON)).await;
        assert_otp_required_json(&reply, uri);
        // A request that sends JSON is a JSON client, whatever it accepts.
        let request = Request::builder()
            .uri(uri)
            .header(header::ACCEPT, "text/html")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::empty())
            .unwrap();
        assert_otp_required_json(&app.oneshot(request).await, uri);
    }
}

async fn the_guard_takes_its_own_login_url_and_field(db: TestDb) {
    let app = TestApp::new(db).await;
    assert_redirect(
        &app.oneshot(get("/custom-guard?x=1", HTML)).await,
        "/signin?from=guard&return_to=/custom-guard%3Fx%3D1",
        "custom guard",
    );
    assert_otp_required_json(
        &app.oneshot(get("/custom-guard", JSON)).await,
        "custom guard, JSON",
    );
}

async fn the_configuration_moves_the_login_url_and_field(db: TestDb) {
    let app = TestApp::builder(db)
        .config(|config| {
            *config = WebConfig::default().with_mount("/auth/");
            config.redirect_field = "goto".into();
        })
        .build()
        .await;
    assert_eq!(app.web.config().login_url, "/auth/login");
    assert_redirect(
        &app.oneshot(get("/protected?a=1", HTML)).await,
        "/auth/login?goto=/protected%3Fa%3D1",
        "guard",
    );
    assert_redirect(
        &app.oneshot(get("/verified-only", HTML)).await,
        "/auth/login?goto=/verified-only",
        "Verified",
    );
    // The guard's own settings win over the configuration.
    assert_redirect(
        &app.oneshot(get("/custom-guard", HTML)).await,
        "/signin?from=guard&return_to=/custom-guard",
        "custom guard",
    );
}

async fn the_next_of_a_redirect_is_always_the_page_asked_for_on_this_site(db: TestDb) {
    let app = TestApp::new(db).await;
    for asked in [
        "/protected?next=https://evil.example/",
        "/protected?next=//evil.example",
        "/protected?a=%2F%2Fevil.example&b=%5Cevil",
        "/protected?javascript:alert(1)",
    ] {
        let reply = app.oneshot(get(asked, HTML)).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{asked}");
        let location = reply.header(header::LOCATION).unwrap();
        let next = location
            .strip_prefix("/account/login?next=")
            .unwrap_or_else(|| panic!("{asked}: the redirect leaves the login URL: {location}"));
        assert!(
            !next.contains(['&', '?', '#', ':']),
            "{asked}: the value is not one encoded parameter: {next}"
        );
        let decoded = percent_encoding::percent_decode_str(next)
            .decode_utf8()
            .unwrap();
        assert_eq!(decoded, asked, "{asked}: decoding gives the page back");
        assert_eq!(safe_next(&decoded), Some(asked), "{asked}: a safe next");
    }
}

async fn if_configured_lets_users_without_confirmed_devices_through_only(db: TestDb) {
    let app = TestApp::new(db).await;
    let alice = app.totp_device("u-alice", "phone").await;
    app.unconfirmed_totp_device("u-carol").await;

    // Anonymous users never pass.
    assert_redirect(
        &app.oneshot(get("/protected-if-configured", HTML)).await,
        "/account/login?next=/protected-if-configured",
        "anonymous",
    );
    assert_otp_required_json(
        &app.oneshot(get("/protected-if-configured", JSON)).await,
        "anonymous",
    );

    let client = app.client().await;
    // Carol has only an unconfirmed device: nothing to verify with, so she passes.
    let carol = test_login(&client, "u-carol", None).await;
    assert_eq!(carol["logged_in"], "u-carol");
    let reply = client.get("/protected-if-configured").await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.text(), "protected content");
    assert_otp_required_json(&client.get("/protected").await, "carol on /protected");

    // Alice has a confirmed device: she must verify.
    let client = client.fresh();
    test_login(&client, "u-alice", None).await;
    assert_eq!(
        whoami(&client).await,
        json!({ "user": "u-alice", "authenticated": true, "verified": false, "device": null })
    );
    assert_otp_required_json(
        &client.get("/protected-if-configured").await,
        "alice unverified",
    );
    assert_redirect(
        &client.get_html("/protected-if-configured").await,
        "/account/login?next=/protected-if-configured",
        "alice unverified, browser",
    );
    let reply = test_login(&client, "u-alice", Some(&alice)).await;
    assert_eq!(reply["verified_now"], true);
    assert_eq!(
        client.get("/protected-if-configured").await.status,
        StatusCode::OK
    );
    assert_eq!(client.get("/protected").await.status, StatusCode::OK);
}

async fn a_missing_otp_layer_is_a_500_that_names_it(db: TestDb) {
    let app = TestApp::new(db).await;
    for uri in ["/bare/whoami", "/bare/verified-only", "/bare/protected"] {
        for accept in [HTML, JSON] {
            let reply = app.oneshot(get(uri, accept)).await;
            assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
            assert_eq!(
                reply.text(),
                "Can't extract the OTP state. Is `otp_axum::OtpLayer` enabled?",
                "{uri}"
            );
        }
    }
}

async fn a_missing_session_layer_is_a_500_that_names_it(db: TestDb) {
    let app = TestApp::new(db).await;
    let router = common::test_routes()
        .nest("/api/v1", otp_axum::json::routes())
        .layer(OtpLayer::new(app.web.clone()));
    for uri in [
        "/whoami",
        "/verified-only",
        "/protected",
        "/protected-if-configured",
        "/api/v1/me",
    ] {
        let reply = oneshot(&router, get(uri, HTML)).await;
        assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
        let text = reply.text();
        assert!(
            text.contains("`SessionManagerLayer`") && text.contains("outside `otp_axum::OtpLayer`"),
            "{uri}: {text}"
        );
    }
}

/// `POST /test/login`: the app logs `user` in by itself, then (with a device) calls
/// `otp_axum::login`.
async fn test_login(client: &Client, user: &str, device: Option<&Device>) -> serde_json::Value {
    let mut path = format!("/test/login?user={user}");
    if let Some(device) = device {
        path.push_str(&format!("&device={}", device.id));
    }
    let reply = client.request(Method::POST, &path).send().await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.text());
    reply.json()
}

async fn login_refuses_another_users_device_and_an_unconfirmed_one(db: TestDb) {
    let app = TestApp::new(db).await;
    let alice = app.totp_device("u-alice", "phone").await;
    let unconfirmed = app.unconfirmed_totp_device("u-alice").await;
    let bobs = app.totp_device("u-bob", "phone").await;
    let client = app.client().await;
    test_login(&client, "u-alice", None).await;
    let before = client.session_cookie().unwrap();

    for (what, device) in [("bob's device", &bobs), ("unconfirmed", &unconfirmed)] {
        let reply = test_login(&client, "u-alice", Some(device)).await;
        assert_eq!(reply["verified_now"], false, "{what}");
        assert_eq!(
            whoami(&client).await,
            json!({ "user": "u-alice", "authenticated": true, "verified": false, "device": null }),
            "{what}"
        );
        assert_otp_required_json(&client.get("/protected").await, what);
    }
    assert_eq!(
        client.session_cookie().unwrap(),
        before,
        "nothing was cycled"
    );

    let reply = test_login(&client, "u-alice", Some(&alice)).await;
    assert_eq!(reply["verified_now"], true);
    assert_ne!(client.session_cookie().unwrap(), before, "the id is cycled");
    assert_eq!(
        whoami(&client).await,
        json!({
            "user": "u-alice",
            "authenticated": true,
            "verified": true,
            "device": alice.id.to_string(),
        })
    );
    assert_eq!(client.get("/protected").await.status, StatusCode::OK);

    // A refused device leaves the verification as it was.
    let reply = test_login(&client, "u-alice", Some(&bobs)).await;
    assert_eq!(reply["verified_now"], false);
    assert_eq!(me(&client).await["device"], alice.id.to_string());
    // Another user logged in on the same session does not inherit the verification: the
    // device the session names is not theirs.
    test_login(&client, "u-bob", None).await;
    assert_eq!(
        whoami(&client).await,
        json!({ "user": "u-bob", "authenticated": true, "verified": false, "device": null })
    );
}

/// A verified session left without a request for longer than the idle limit loses its
/// verification; one in use keeps it (NIST SP 800-63B AAL2: 30 minutes idle).
async fn a_verification_lapses_when_idle(db: TestDb) {
    let app = TestApp::builder(db)
        .config(|config| config.max_verification_idle = Some(Duration::from_secs(30 * 60)))
        .build()
        .await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    log_in_verified(&app, &client, "alice", &device).await;

    // A request every 20 minutes for two hours: still verified.
    for _ in 0..6 {
        app.advance(Duration::from_secs(20 * 60));
        assert_eq!(me(&client).await["verified"], true);
    }
    // Then 30 minutes and a second without one: the verification lapses.
    app.advance(Duration::from_secs(30 * 60 + 1));
    assert_eq!(me(&client).await["verified"], false);
    assert_otp_required_json(&client.get("/protected").await, "idle");
}

/// Security review, issue 10, finding 4: a password change ends the user's other sessions
/// although the session store still holds them (as after a request in flight wrote one back),
/// and keeps the one that made it.
async fn ended_sessions_stay_ended_whatever_the_store_holds(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let owner = app.client().await;
    let thief = app.client().await;
    log_in_verified(&app, &owner, "alice", &device).await;
    app.advance(Duration::from_secs(30));
    log_in_verified(&app, &thief, "alice", &device).await;
    assert_eq!(me(&thief).await["verified"], true);

    let ended = owner
        .post_json("/test/end-other-sessions", &json!({}))
        .await;
    ended.assert_status(StatusCode::NO_CONTENT);
    // The memory store never deleted the thief's session: only the epoch ends it.
    assert_eq!(me(&thief).await["error"], "login_required");
    assert_eq!(whoami(&thief).await["authenticated"], false);
    assert_eq!(
        me(&owner).await["verified"],
        true,
        "the owner's session goes on"
    );
}

/// Security review, issue 10, finding 5: a login whose password passed before a password
/// change cannot be finished with the second factor after it.
async fn a_half_done_login_ends_with_the_password_change(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let owner = app.client().await;
    let thief = app.client().await;
    log_in_verified(&app, &owner, "alice", &device).await;
    let reply = post_right_password(&thief, "alice").await;
    assert_eq!(reply.json()["otp_required"], true);

    owner
        .post_json("/test/end-other-sessions", &json!({}))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.advance(Duration::from_secs(30));
    let refused = post_token(&thief, &device.id, &app.code(&device)).await;
    assert_eq!(refused.json()["error"], "login_expired");
    assert_eq!(whoami(&thief).await["user"], Value::Null);
}

/// The `SteppedUp` extractor applies the step-up rule to an app's own sensitive actions.
async fn stepped_up_needs_a_recent_verification(db: TestDb) {
    let app = TestApp::new(db).await;
    let anonymous = app.client().await;
    anonymous.get("/test/stepped-up").await.assert_error(
        StatusCode::UNAUTHORIZED,
        "login_required",
        "nobody",
    );
    assert_redirect(
        &anonymous.get_html("/test/stepped-up").await,
        "/account/login?next=/test/stepped-up",
        "nobody, browser",
    );

    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    log_in_verified(&app, &client, "alice", &device).await;
    let fresh = client.get("/test/stepped-up").await;
    fresh.assert_status(StatusCode::OK);
    assert_eq!(fresh.text(), "stepped up u-alice");

    app.advance(Duration::from_secs(5 * 60 + 1));
    client.get("/test/stepped-up").await.assert_error(
        StatusCode::FORBIDDEN,
        "fresh_verification_required",
        "verified 5 minutes ago",
    );
    assert_redirect(
        &client.get_html("/test/stepped-up").await,
        "/account/verify?next=/test/stepped-up",
        "verified 5 minutes ago, browser",
    );
    // Verified again: fresh.
    let reply = common::post_token(&client, &device.id, &app.code(&device)).await;
    reply.assert_status(StatusCode::OK);
    client
        .get("/test/stepped-up")
        .await
        .assert_status(StatusCode::OK);

    // A user without a confirmed device has only the password: nothing to step up with.
    let bob = app.client().await;
    common::post_right_password(&bob, "bob")
        .await
        .assert_status(StatusCode::OK);
    bob.get("/test/stepped-up")
        .await
        .assert_status(StatusCode::OK);
}

async fn a_verification_lapses_after_the_maximum_age(db: TestDb) {
    let app = TestApp::builder(db)
        .config(|config| config.max_verification_age = Some(Duration::from_secs(60)))
        .build()
        .await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    let verified_at = app.clock.now();
    log_in_verified(&app, &client, "alice", &device).await;

    app.advance(Duration::from_secs(60));
    assert_eq!(me(&client).await["verified"], true);
    assert_eq!(client.get("/protected").await.status, StatusCode::OK);

    app.advance(Duration::from_secs(1));
    assert_eq!(
        me(&client).await,
        json!({ "user": "u-alice", "verified": false, "device": null })
    );
    assert_otp_required_json(&client.get("/protected").await, "lapsed");
    assert_redirect(
        &client.get_html("/verified-only").await,
        "/account/login?next=/verified-only",
        "lapsed, browser",
    );
    // The lapsed verification was removed from the session, not just ignored.
    app.clock.set(verified_at);
    assert_eq!(me(&client).await["verified"], false);
    // Verifying again (a fresh code, not the spent one) restores it.
    app.advance(Duration::from_secs(120));
    let reply = common::post_token(&client, &device.id, &app.code(&device)).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(me(&client).await["verified"], true);
}

#[test]
fn safe_next_follows_only_paths_on_this_site() {
    let cases: &[(&str, bool)] = &[
        ("/ok?x=1", true),
        ("/", true),
        ("/account/settings#tab", true),
        ("/a/b/../c", true),
        ("/%2F%2Fevil.example", true),
        ("/caf\u{e9}", true),
        ("//evil", false),
        ("///evil", false),
        ("https://evil", false),
        ("http://evil.example/", false),
        ("HTTPS://evil", false),
        ("/\\evil", false),
        ("\\\\evil", false),
        ("/ok\\..\\evil", false),
        ("javascript:alert(1)", false),
        ("JavaScript:alert(1)", false),
        ("data:text/html,x", false),
        ("evil.example", false),
        ("", false),
        (" /ok", false),
        ("/ok x", false),
        ("/\t/evil", false),
        ("/\n/evil", false),
        ("/ok\r\nSet-Cookie: x=1", false),
        ("/\u{2028}evil", false),
        ("\u{0}/ok", false),
    ];
    for (next, safe) in cases {
        let expected = safe.then_some(*next);
        assert_eq!(safe_next(next), expected, "{next:?}");
    }
    let long = format!("/{}", "a".repeat(2047));
    assert_eq!(safe_next(&long), Some(long.as_str()), "2048 bytes");
    let too_long = format!("/{}", "a".repeat(2048));
    assert_eq!(safe_next(&too_long), None, "2049 bytes");
}

async fn a_nested_guard_puts_the_full_path_in_next(db: TestDb) {
    let app = TestApp::new(db).await;
    let router = axum::Router::new()
        .nest("/app", common::test_routes())
        .layer(OtpLayer::new(app.web.clone()))
        .layer(common::session_layer());
    for (uri, location) in [
        (
            "/app/protected?a=1",
            "/account/login?next=/app/protected%3Fa%3D1",
        ),
        (
            "/app/verified-only",
            "/account/login?next=/app/verified-only",
        ),
    ] {
        assert_redirect(&oneshot(&router, get(uri, HTML)).await, location, uri);
    }
}

async fn unverify_drops_the_verification_and_cycles_the_id(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    log_in_verified(&app, &client, "alice", &device).await;
    let verified = client.session_cookie().unwrap();

    let reply = client.request(Method::POST, "/test/unverify").send().await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let unverified = client.session_cookie().unwrap();
    assert_ne!(unverified, verified, "the id is cycled");
    assert_eq!(
        me(&client).await,
        json!({ "user": "u-alice", "verified": false, "device": null })
    );
    assert_otp_required_json(&client.get("/protected").await, "after unverify");

    // Nothing to drop: the id stays.
    let reply = client.request(Method::POST, "/test/unverify").send().await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(client.session_cookie().unwrap(), unverified);
}
