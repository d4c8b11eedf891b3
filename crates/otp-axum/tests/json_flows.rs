//! The JSON API through a real HTTP client on 127.0.0.1:0 with cookies, on SQLite and
//! PostgreSQL: every path of the two-step login, replay, throttling, session id rotation, the
//! partial-login timeout, email challenges through an SMTP sink, devices deleted or foreign,
//! malformed bodies, content types, CSRF and the account failure budget.

mod common;

use otp_test_support::store_tests;

use std::time::Duration;

use common::{
    Client, Reply, SESSION_COOKIE, TestApp, TestDb, assert_not_logged_in, assert_otp_required,
    code_in, log_in_verified, me, post_challenge, post_password, post_right_password, post_token,
    whoami,
};
use http::{Method, StatusCode, header};
use otp_core::Device;
use serde_json::{Value, json};

store_tests!(
    wrong_password_unknown_user_and_empty_fields_are_invalid_credentials,
    user_without_devices_logs_in_with_the_password_but_is_not_verified,
    two_step_login_with_totp_cycles_the_session_id_at_each_step,
    old_session_ids_are_dead_after_each_step,
    a_code_is_refused_after_logout_and_login_again,
    a_right_code_right_after_a_wrong_one_is_throttled_until_the_delay_passes,
    the_second_factor_waits_ten_minutes_and_no_longer,
    a_backup_code_completes_the_login_once,
    email_codes_are_sent_through_smtp_with_a_cooldown,
    challenging_a_totp_device_is_not_interactive,
    a_failed_delivery_is_502_without_the_smtp_error,
    a_device_deleted_while_verified_unverifies_the_next_request,
    another_users_device_is_an_invalid_device_and_stays_untouched,
    unknown_and_malformed_device_ids_are_invalid_devices,
    an_empty_token_is_token_required,
    malformed_bodies_are_400_never_500,
    a_huge_body_is_refused_and_a_long_token_is_just_wrong,
    non_json_content_types_are_415,
    cross_site_requests_are_refused_and_same_site_ones_pass,
    configured_origins_may_post,
    the_origin_scheme_must_be_the_sites,
    an_https_site_refuses_http_origins,
    the_account_failure_budget_stops_verification,
    steps_without_a_login_are_login_required,
    throttling_doubles_and_retry_after_rounds_up,
    logging_out_drops_a_half_done_login,
    a_challenge_after_the_timeout_is_login_expired,
    unconfirmed_devices_are_not_offered_and_cannot_verify,
    verifying_a_session_the_app_logged_in_cycles_its_id,
    an_http2_request_without_host_is_checked_against_its_authority,
);

fn devices(reply: &Reply) -> Vec<Value> {
    reply.json()["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The ids of the devices offered by the password step.
fn device_ids(reply: &Reply) -> Vec<Value> {
    devices(reply).iter().map(|d| d["id"].clone()).collect()
}

/// Posts a wrong code for `device` and asserts that it is 401 `invalid_token`.
async fn assert_wrong_code_refused(app: &TestApp, client: &Client, device: &Device, what: &str) {
    post_token(client, &device.id, &app.wrong_code(device))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token", what);
}

/// `POST path` with a JSON body, sent from `origin`.
async fn post_json_from(client: &Client, origin: &str, path: &str, body: &Value) -> Reply {
    client
        .request(Method::POST, path)
        .header(header::ORIGIN, origin)
        .json(body)
        .send()
        .await
}

async fn wrong_password_unknown_user_and_empty_fields_are_invalid_credentials(db: TestDb) {
    let app = TestApp::new(db).await;
    let alice = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    for (username, password) in [
        ("alice", "wrong"),
        ("alice", "ALICE-PASSWORD"),
        ("mallory", "alice-password"),
        ("", "alice-password"),
        ("alice", ""),
        ("", ""),
    ] {
        let reply = post_password(&client, username, password).await;
        let what = format!("{username:?}/{password:?}");
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials", &what);
        assert_eq!(
            reply.json()["message"],
            "Please enter a correct username and password.",
            "{what}"
        );
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
        assert!(reply.json().get("devices").is_none(), "{what}");
    }
    // Nothing was started: no session, and a token has nobody to verify.
    assert_eq!(client.session_cookie(), None);
    post_token(&client, &alice.id, &app.code(&alice))
        .await
        .assert_error(
            StatusCode::UNAUTHORIZED,
            "login_required",
            "token after failures",
        );
    assert_eq!(app.reload(&alice).await.throttle.failure_count, 0);
}

async fn user_without_devices_logs_in_with_the_password_but_is_not_verified(db: TestDb) {
    let app = TestApp::new(db).await;
    // An unconfirmed device does not count: carol has not finished enrolment.
    app.unconfirmed_totp_device("u-carol").await;
    let client = app.client().await;
    client.get("/touch").await;
    let before = client.session_cookie().expect("an anonymous session");

    let reply = post_right_password(&client, "carol").await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({ "otp_required": false, "devices": [] })
    );
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    let after = client.session_cookie().expect("a session");
    assert_ne!(before, after, "the session id must be cycled at login");

    let me = client.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.json(),
        json!({ "user": "u-carol", "verified": false, "device": null })
    );
    // Logged in, not verified: otp_required refuses, if_configured lets a user without
    // devices through.
    assert_otp_required(&client, "/protected", "/protected").await;
    assert_otp_required(&client, "/verified-only", "/verified-only").await;
    let if_configured = client.get("/protected-if-configured").await;
    assert_eq!(if_configured.status, StatusCode::OK);
    assert_eq!(if_configured.text(), "protected content");
}

async fn two_step_login_with_totp_cycles_the_session_id_at_each_step(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    client.get("/touch").await;
    let anonymous = client.session_cookie().expect("an anonymous session");

    let reply = post_right_password(&client, "alice").await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        reply.json(),
        json!({
            "otp_required": true,
            "devices": [{
                "id": device.id.to_string(),
                "name": "phone",
                "kind": "totp",
                "interactive": false,
                "recovery": false,
            }],
        })
    );
    assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
    let pending = client.session_cookie().expect("a session");
    assert_ne!(
        anonymous, pending,
        "the session id must change at the password step"
    );

    // The password alone logs nobody in.
    assert_not_logged_in(&client, "/me while pending").await;
    let whoami = whoami(&client).await;
    assert_eq!(whoami["user"], Value::Null);
    assert_eq!(whoami["authenticated"], false);
    assert_otp_required(&client, "/protected", "/protected while pending").await;

    let wrong = post_token(&client, &device.id, &app.wrong_code(&device)).await;
    wrong.assert_error(StatusCode::UNAUTHORIZED, "invalid_token", "wrong token");
    assert_eq!(
        wrong.json()["message"],
        "Invalid token. Please make sure you have entered it correctly."
    );
    assert_eq!(client.session_cookie().as_deref(), Some(pending.as_str()));
    assert_eq!(app.reload(&device).await.throttle.failure_count, 1);

    // Past the one-second throttling delay of one failure.
    app.advance(Duration::from_secs(2));
    let right = post_token(&client, &device.id, &app.code(&device)).await;
    right.assert_status(StatusCode::OK);
    assert_eq!(right.json(), json!({ "verified": true }));
    assert_eq!(right.header(header::CACHE_CONTROL), Some("no-store"));
    let verified = client.session_cookie().expect("a session");
    assert_ne!(
        pending, verified,
        "the session id must change at verification"
    );
    assert_ne!(anonymous, verified);

    let me = client.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.json(),
        json!({ "user": "u-alice", "verified": true, "device": device.id.to_string() })
    );
    assert_eq!(me.header(header::CACHE_CONTROL), Some("no-store"));
    let protected = client.get("/protected").await;
    assert_eq!(protected.status, StatusCode::OK);
    assert_eq!(protected.text(), "protected content");
    let verified_only = client.get("/verified-only").await;
    assert_eq!(verified_only.status, StatusCode::OK);
    assert_eq!(verified_only.text(), "verified u-alice");
    let stored = app.reload(&device).await;
    assert_eq!(
        stored.throttle.failure_count, 0,
        "a success resets throttling"
    );
    assert!(stored.last_used_at.is_some());
}

async fn old_session_ids_are_dead_after_each_step(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    client.get("/touch").await;
    let planted = client.session_cookie().unwrap();
    // An attacker who knows (or planted) the anonymous session id before the login.
    let attacker = client.fresh();
    attacker.set_cookie(SESSION_COOKIE, &planted);

    post_right_password(&client, "alice").await;
    let pending = client.session_cookie().unwrap();
    // The old id carries no pending login: a token sent with it has nobody to verify.
    post_token(&attacker, &device.id, &app.wrong_code(&device))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "login_required", "planted id");
    assert_eq!(app.reload(&device).await.throttle.failure_count, 0);

    let attacker = client.fresh();
    attacker.set_cookie(SESSION_COOKIE, &pending);
    let reply = post_token(&client, &device.id, &app.code(&device)).await;
    reply.assert_status(StatusCode::OK);
    for (what, old) in [("anonymous id", &planted), ("pending id", &pending)] {
        let stale = client.fresh();
        stale.set_cookie(SESSION_COOKIE, old);
        assert_not_logged_in(&stale, what).await;
        assert_otp_required(&stale, "/protected", what).await;
    }
    assert_eq!(me(&client).await["verified"], true);
}

async fn a_code_is_refused_after_logout_and_login_again(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    let code = app.code(&device);
    log_in_verified(&app, &client, "alice", &device).await;

    let logout = client.delete("/api/v1/session").await;
    logout.assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        client.session_cookie(),
        None,
        "the session cookie is removed"
    );
    assert_not_logged_in(&client, "/me after logout").await;

    let again = post_right_password(&client, "alice").await;
    assert_eq!(again.json()["otp_required"], true);
    post_token(&client, &device.id, &code).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "replayed code",
    );
    assert_not_logged_in(&client, "/me after replay").await;
    assert_otp_required(&client, "/protected", "/protected after replay").await;
}

async fn a_right_code_right_after_a_wrong_one_is_throttled_until_the_delay_passes(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    post_right_password(&client, "alice").await;

    assert_wrong_code_refused(&app, &client, &device, "wrong token").await;
    let throttled = post_token(&client, &device.id, &app.code(&device)).await;
    throttled.assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        "n_failed_attempts",
        "right code during the delay",
    );
    assert_eq!(throttled.header(header::RETRY_AFTER), Some("1"));
    let body = throttled.json();
    assert_eq!(body["retry_after"], 1);
    assert_eq!(body["failure_count"], 1);
    assert_eq!(
        body["message"],
        "Verification temporarily disabled because of 1 failed attempt, please try again soon."
    );
    // Attempts during the delay are not counted.
    assert_eq!(app.reload(&device).await.throttle.failure_count, 1);
    assert_not_logged_in(&client, "/me while throttled").await;

    app.advance(Duration::from_millis(1_100));
    let reply = post_token(&client, &device.id, &app.code(&device)).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(me(&client).await["verified"], true);
}

async fn the_second_factor_waits_ten_minutes_and_no_longer(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;

    // Exactly ten minutes: still in time.
    let client = app.client().await;
    post_right_password(&client, "alice").await;
    app.advance(Duration::from_secs(600));
    let reply = post_token(&client, &device.id, &app.code(&device)).await;
    reply.assert_status(StatusCode::OK);

    // Ten minutes and a second: the password must be entered again.
    let late = client.fresh();
    post_right_password(&late, "alice").await;
    app.advance(Duration::from_secs(601));
    let code = app.code(&device);
    let expired = post_token(&late, &device.id, &code).await;
    expired.assert_error(StatusCode::UNAUTHORIZED, "login_expired", "late token");
    assert_eq!(
        expired.json()["message"],
        "Your login took too long. Please enter your password again."
    );
    // The half-done login is gone for good, and the code was not spent or counted.
    post_token(&late, &device.id, &code).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "login_required",
        "token after expiry",
    );
    assert_not_logged_in(&late, "/me after expiry").await;
    assert_eq!(app.reload(&device).await.throttle.failure_count, 0);
    post_right_password(&late, "alice").await;
    let reply = post_token(&late, &device.id, &code).await;
    reply.assert_status(StatusCode::OK);
}

async fn a_backup_code_completes_the_login_once(db: TestDb) {
    let app = TestApp::new(db).await;
    let totp = app.totp_device("u-alice", "phone").await;
    let (backup, codes) = app
        .otp
        .create_backup_codes("u-alice", "backup codes", Some(2))
        .await
        .unwrap();
    let client = app.client().await;
    let reply = post_right_password(&client, "alice").await;
    let ids = device_ids(&reply);
    assert_eq!(
        ids,
        [json!(totp.id.to_string()), json!(backup.id.to_string())]
    );
    assert_eq!(devices(&reply)[1]["kind"], "static");
    assert_eq!(devices(&reply)[1]["interactive"], false);
    assert_eq!(devices(&reply)[1]["recovery"], true, "backup codes");

    // As printed for the user (with its dash).
    let code = codes[0].to_string();
    let reply = post_token(&client, &backup.id, &code).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(
        me(&client).await,
        json!({ "user": "u-alice", "verified": true, "device": backup.id.to_string() })
    );
    assert_eq!(
        app.otp
            .backup_codes_remaining(&app.reload(&backup).await)
            .unwrap(),
        1
    );

    client.delete("/api/v1/session").await;
    post_right_password(&client, "alice").await;
    post_token(&client, &backup.id, &code).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "a used backup code",
    );
}

async fn email_codes_are_sent_through_smtp_with_a_cooldown(db: TestDb) {
    let app = TestApp::builder(db).smtp().build().await;
    let email = app.email_device("u-alice", "alice@example.com").await;
    let client = app.client().await;
    let reply = post_right_password(&client, "alice").await;
    assert_eq!(
        devices(&reply),
        [
            json!({ "id": email.id.to_string(), "name": "mail", "kind": "email", "interactive": true, "recovery": false })
        ]
    );

    let sent = post_challenge(&client, &email.id).await;
    sent.assert_status(StatusCode::OK);
    assert_eq!(sent.json(), json!({ "sent": true }));
    let mails = app.smtp().received();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["alice@example.com"]);
    let code = code_in(&mails[0]);

    let again = post_challenge(&client, &email.id).await;
    again.assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        "challenge_cooldown",
        "second challenge",
    );
    assert_eq!(again.header(header::RETRY_AFTER), Some("60"));
    assert_eq!(again.json()["retry_after"], 60);
    assert_eq!(app.smtp().received().len(), 1, "no second mail");

    let reply = post_token(&client, &email.id, &code).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(me(&client).await["device"], email.id.to_string());

    // After the cooldown a new code goes out.
    app.advance(Duration::from_secs(61));
    let sent = post_challenge(&client, &email.id).await;
    sent.assert_status(StatusCode::OK);
    assert_eq!(app.smtp().received().len(), 2);
}

async fn challenging_a_totp_device_is_not_interactive(db: TestDb) {
    let app = TestApp::builder(db).smtp().build().await;
    let totp = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    post_right_password(&client, "alice").await;
    let reply = post_challenge(&client, &totp.id).await;
    reply.assert_error(StatusCode::BAD_REQUEST, "not_interactive", "TOTP challenge");
    assert_eq!(
        reply.json()["message"],
        "The selected OTP device is not interactive"
    );
    assert!(app.smtp().received().is_empty());
    // The login goes on.
    let reply = post_token(&client, &totp.id, &app.code(&totp)).await;
    reply.assert_status(StatusCode::OK);
}

async fn a_failed_delivery_is_502_without_the_smtp_error(db: TestDb) {
    let app = TestApp::builder(db).smtp().build().await;
    let email = app.email_device("u-alice", "alice@example.com").await;
    let client = app.client().await;
    post_right_password(&client, "alice").await;
    app.smtp().fail_next();
    let reply = post_challenge(&client, &email.id).await;
    reply.assert_error(
        StatusCode::BAD_GATEWAY,
        "challenge_exception",
        "failed delivery",
    );
    let text = reply.text();
    assert_eq!(
        reply.json()["message"],
        "The code could not be sent. Please try again later."
    );
    for secret in [
        "554",
        "Transaction failed",
        "SMTP",
        "127.0.0.1",
        "alice@example.com",
    ] {
        assert!(!text.contains(secret), "{secret:?} leaked: {text}");
    }
    assert!(app.smtp().received().is_empty());
    // A failed delivery starts no cooldown: the next try goes out.
    let retry = post_challenge(&client, &email.id).await;
    retry.assert_status(StatusCode::OK);
    assert_eq!(app.smtp().received().len(), 1);
}

async fn a_device_deleted_while_verified_unverifies_the_next_request(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    log_in_verified(&app, &client, "alice", &device).await;
    assert_eq!(client.get("/protected").await.status, StatusCode::OK);

    app.otp.remove_device(&device.id).await.unwrap();
    assert_eq!(
        me(&client).await,
        json!({ "user": "u-alice", "verified": false, "device": null })
    );
    assert_otp_required(&client, "/protected", "/protected").await;
    assert_otp_required(&client, "/verified-only", "/verified-only").await;
    // Without a device left, if_configured lets the logged-in user through.
    assert_eq!(
        client.get("/protected-if-configured").await.status,
        StatusCode::OK
    );
    // A new device with the same kind does not revive the old verification.
    let replacement = app.totp_device("u-alice", "new phone").await;
    assert_ne!(replacement.id, device.id);
    assert_eq!(me(&client).await["verified"], false);
}

async fn another_users_device_is_an_invalid_device_and_stays_untouched(db: TestDb) {
    let app = TestApp::builder(db).smtp().build().await;
    app.totp_device("u-alice", "phone").await;
    let bobs = app.totp_device("u-bob", "bob's phone").await;
    let bobs_mail = app.email_device("u-bob", "bob@example.com").await;
    let client = app.client().await;
    post_right_password(&client, "alice").await;

    let code = app.code(&bobs);
    let reply = post_token(&client, &bobs.id, &code).await;
    reply.assert_error(StatusCode::BAD_REQUEST, "invalid_device", "bob's device");
    assert_eq!(
        reply.json()["message"],
        "Please choose one of your devices."
    );
    post_token(&client, &bobs.id, &app.wrong_code(&bobs))
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "invalid_device",
            "bob's device, wrong",
        );
    post_challenge(&client, &bobs_mail.id).await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_device",
        "bob's email device",
    );
    assert!(app.smtp().received().is_empty());
    assert_not_logged_in(&client, "/me").await;

    let stored = app.reload(&bobs).await;
    assert_eq!(stored.throttle.failure_count, 0);
    assert_eq!(stored.last_used_at, None);
    assert_eq!(app.reload(&bobs_mail).await.last_challenge_at, None);
    assert_eq!(app.otp.account_failures("u-bob").await.unwrap(), 0);
    // Bob's code was not spent.
    let bob = client.fresh();
    post_right_password(&bob, "bob").await;
    let reply = post_token(&bob, &bobs.id, &code).await;
    reply.assert_status(StatusCode::OK);
}

async fn unknown_and_malformed_device_ids_are_invalid_devices(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    post_right_password(&client, "alice").await;
    let code = app.code(&device);
    for id in [
        "totp/999999",
        "nope/1",
        "totp",
        "totp/",
        "totp/-1",
        "totp/99999999999999999999999",
        "",
        "../totp/1",
        "TOTP/1x",
    ] {
        let reply = client
            .post_json(
                "/api/v1/otp/verify",
                &json!({ "device": id, "token": code }),
            )
            .await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_device", id);
        let reply = client
            .post_json("/api/v1/otp/challenge", &json!({ "device": id }))
            .await;
        reply.assert_error(StatusCode::BAD_REQUEST, "invalid_device", id);
    }
    assert_eq!(app.reload(&device).await.throttle.failure_count, 0);
    let reply = post_token(&client, &device.id, &code).await;
    reply.assert_status(StatusCode::OK);
}

async fn an_empty_token_is_token_required(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    post_right_password(&client, "alice").await;
    for token in ["", "   "] {
        post_token(&client, &device.id, token).await.assert_error(
            StatusCode::BAD_REQUEST,
            "token_required",
            &format!("{token:?}"),
        );
    }
    assert_eq!(app.reload(&device).await.throttle.failure_count, 0);
}

async fn malformed_bodies_are_400_never_500(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    let cases: &[(&str, &[u8])] = &[
        ("/api/v1/session", b"not json"),
        ("/api/v1/session", b""),
        ("/api/v1/session", b"{"),
        ("/api/v1/session", b"null"),
        ("/api/v1/session", b"[]"),
        ("/api/v1/session", b"\"alice\""),
        ("/api/v1/session", br#"{"username": "alice"}"#),
        (
            "/api/v1/session",
            br#"{"username": 1, "password": "alice-password"}"#,
        ),
        (
            "/api/v1/session",
            br#"{"username": "alice", "password": null}"#,
        ),
        (
            "/api/v1/session",
            br#"{"username": "alice", "password": "alice-password", "admin": true}"#,
        ),
        (
            "/api/v1/session",
            b"{\"username\": \"al\xffice\", \"password\": \"x\"}",
        ),
        (
            "/api/v1/session",
            br#"{"username": "mallory", "username": "alice", "password": "alice-password"}"#,
        ),
        (
            "/api/v1/session",
            br#"{"username": "alice", "password": "alice-password"} trailing"#,
        ),
        ("/api/v1/otp/verify", b"not json"),
        ("/api/v1/otp/verify", b""),
        ("/api/v1/otp/verify", br#"{"token": "123456"}"#),
        ("/api/v1/otp/verify", br#"{"device": 1, "token": "123456"}"#),
        (
            "/api/v1/otp/verify",
            br#"{"device": "totp/1", "token": 123456}"#,
        ),
        (
            "/api/v1/otp/verify",
            br#"{"device": ["totp/1"], "token": "1"}"#,
        ),
        (
            "/api/v1/otp/verify",
            br#"{"device": "totp/1", "token": "123456", "extra": 1}"#,
        ),
        ("/api/v1/otp/challenge", b"not json"),
        ("/api/v1/otp/challenge", b""),
        ("/api/v1/otp/challenge", b"{}"),
        ("/api/v1/otp/challenge", br#"{"device": {"id": 1}}"#),
        ("/api/v1/otp/challenge", br#"{"device": "totp/1", "x": 1}"#),
    ];
    // Both before any login and with a login under way.
    for stage in ["anonymous", "pending"] {
        if stage == "pending" {
            let reply = post_right_password(&client, "alice").await;
            assert_eq!(reply.json()["otp_required"], true);
        }
        for (path, body) in cases {
            let reply = client
                .post_raw(path, "application/json", body.to_vec())
                .await;
            let what = format!("{stage} {path} {:?}", String::from_utf8_lossy(body));
            reply.assert_error(StatusCode::BAD_REQUEST, "bad_request", &what);
            assert_eq!(
                reply.json()["message"],
                "The body is not the expected JSON object.",
                "{what}"
            );
        }
    }
    // None of it counted against the device or stopped the login.
    assert_eq!(app.reload(&device).await.throttle.failure_count, 0);
    let reply = post_token(&client, &device.id, &app.code(&device)).await;
    reply.assert_status(StatusCode::OK);
}

async fn a_huge_body_is_refused_and_a_long_token_is_just_wrong(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    post_right_password(&client, "alice").await;

    // Larger than axum's default body limit (2 MiB): refused as a bad body. In-process, with
    // the client's session: over TCP the server answers before it has read the whole body and
    // closes the connection, and the client may see the reset instead of the answer.
    let huge = json!({ "device": device.id.to_string(), "token": "1".repeat(3 << 20) });
    let request = http::Request::builder()
        .method(Method::POST)
        .uri("/api/v1/otp/verify")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::COOKIE,
            format!("{SESSION_COOKIE}={}", client.session_cookie().unwrap()),
        )
        .body(axum::body::Body::from(serde_json::to_vec(&huge).unwrap()))
        .unwrap();
    let reply = app.oneshot(request).await;
    reply.assert_error(StatusCode::BAD_REQUEST, "bad_request", "3 MiB token");
    assert_eq!(app.reload(&device).await.throttle.failure_count, 0);

    // Within the limit but nothing a device issues: a wrong token, not a server error.
    for token in ["1".repeat(64 << 10), "é".repeat(1000), "12345\u{0}6".into()] {
        let reply = post_token(&client, &device.id, &token).await;
        reply.assert_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            &format!("{} bytes", token.len()),
        );
        // Past the throttling delay of this failure (1, 2, 4 s), well within the login's ten
        // minutes.
        app.advance(Duration::from_secs(10));
    }
    assert_eq!(app.reload(&device).await.throttle.failure_count, 3);
    let huge_password = json!({ "username": "alice", "password": "x".repeat(1 << 20) });
    client
        .post_json("/api/v1/session", &huge_password)
        .await
        .assert_error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "1 MiB password",
        );
}

async fn non_json_content_types_are_415(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    let credentials = r#"{"username": "alice", "password": "alice-password"}"#;
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/jsonx"),
        None,
    ] {
        let request = client.request(Method::POST, "/api/v1/session");
        let request = match content_type {
            Some(content_type) => request.raw(content_type, credentials),
            None => request.body(credentials),
        };
        let reply = request.send().await;
        let what = format!("{content_type:?}");
        reply.assert_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            &what,
        );
        assert_eq!(client.session_cookie(), None, "{what}: no login started");
    }
    let form = client
        .post_raw(
            "/api/v1/session",
            "application/x-www-form-urlencoded",
            "username=alice&password=alice-password",
        )
        .await;
    form.assert_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "form",
    );

    // A JSON content type with parameters is JSON.
    let reply = client
        .post_raw(
            "/api/v1/session",
            "Application/JSON; charset=utf-8",
            credentials,
        )
        .await;
    reply.assert_status(StatusCode::OK);
    let body = format!(
        r#"{{"device": "{}", "token": "{}"}}"#,
        device.id,
        app.code(&device)
    );
    let reply = client
        .post_raw("/api/v1/otp/verify", "text/plain", body.clone())
        .await;
    reply.assert_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "verify as text",
    );
    let reply = client
        .post_raw(
            "/api/v1/otp/challenge",
            "text/plain",
            format!(r#"{{"device": "{}"}}"#, device.id),
        )
        .await;
    reply.assert_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "challenge as text",
    );
    // The token was not looked at.
    let reply = client
        .post_raw("/api/v1/otp/verify", "application/json", body)
        .await;
    reply.assert_status(StatusCode::OK);
}

async fn cross_site_requests_are_refused_and_same_site_ones_pass(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    let credentials = json!({ "username": "alice", "password": "alice-password" });
    let cross_site: &[(header::HeaderName, &str)] = &[
        (header::ORIGIN, "http://evil.example"),
        (header::ORIGIN, "null"),
        (header::ORIGIN, "https://127.0.0.1.evil.example"),
        (header::ORIGIN, "ftp://127.0.0.1"),
        (
            header::HeaderName::from_static("sec-fetch-site"),
            "cross-site",
        ),
    ];
    for (name, value) in cross_site {
        let reply = client
            .request(Method::POST, "/api/v1/session")
            .header(name.clone(), value)
            .json(&credentials)
            .send()
            .await;
        let what = format!("{name}: {value}");
        reply.assert_error(StatusCode::FORBIDDEN, "csrf_failed", &what);
        assert_eq!(reply.header(header::CACHE_CONTROL), Some("no-store"));
        assert_eq!(client.session_cookie(), None, "{what}: no login started");
    }
    // The app's own origin passes.
    let origin = client.origin().to_owned();
    let reply = client
        .request(Method::POST, "/api/v1/session")
        .header(header::ORIGIN, &origin)
        .header(
            header::HeaderName::from_static("sec-fetch-site"),
            "same-origin",
        )
        .json(&credentials)
        .send()
        .await;
    reply.assert_status(StatusCode::OK);

    let token = json!({ "device": device.id.to_string(), "token": app.code(&device) });
    let reply = post_json_from(&client, "http://evil.example", "/api/v1/otp/verify", &token).await;
    reply.assert_error(StatusCode::FORBIDDEN, "csrf_failed", "cross-site verify");
    let reply = post_json_from(
        &client,
        "http://evil.example",
        "/api/v1/otp/challenge",
        &json!({ "device": device.id.to_string() }),
    )
    .await;
    reply.assert_error(StatusCode::FORBIDDEN, "csrf_failed", "cross-site challenge");
    assert_eq!(app.reload(&device).await.throttle.failure_count, 0);
    let reply = post_json_from(&client, &origin, "/api/v1/otp/verify", &token).await;
    reply.assert_status(StatusCode::OK);

    // A cross-site logout is refused and logs nobody out.
    let reply = client
        .request(Method::DELETE, "/api/v1/session")
        .header(header::ORIGIN, "http://evil.example")
        .send()
        .await;
    reply.assert_error(StatusCode::FORBIDDEN, "csrf_failed", "cross-site logout");
    assert_eq!(me(&client).await["verified"], true);
    let reply = client
        .request(Method::DELETE, "/api/v1/session")
        .header(header::ORIGIN, &origin)
        .send()
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        client.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn configured_origins_may_post(db: TestDb) {
    let app = TestApp::builder(db)
        .config(|c| c.allowed_origins = vec!["http://localhost:5173".into()])
        .build()
        .await;
    app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    let credentials = json!({ "username": "alice", "password": "alice-password" });
    let reply = post_json_from(
        &client,
        "http://localhost:5173",
        "/api/v1/session",
        &credentials,
    )
    .await;
    reply.assert_status(StatusCode::OK);
    let reply = post_json_from(
        &client,
        "http://localhost:5174",
        "/api/v1/session",
        &credentials,
    )
    .await;
    reply.assert_error(StatusCode::FORBIDDEN, "csrf_failed", "another port");
}

/// `https://host` is not `http://host`: an `Origin` with the right host and the wrong scheme is
/// another site (a page served over plain HTTP on the same host, for one).
async fn the_origin_scheme_must_be_the_sites(db: TestDb) {
    let app = TestApp::new(db).await;
    app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    let credentials = json!({ "username": "alice", "password": "alice-password" });
    let http_origin = client.origin().to_owned();
    let https_origin = http_origin.replacen("http://", "https://", 1);
    assert_ne!(http_origin, https_origin);
    let reply = post_json_from(&client, &https_origin, "/api/v1/session", &credentials).await;
    reply.assert_error(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        "https origin, http site",
    );
    let reply = post_json_from(&client, &http_origin, "/api/v1/session", &credentials).await;
    reply.assert_status(StatusCode::OK);
}

/// The same for an HTTPS site (behind a proxy that terminates TLS): the other way round.
async fn an_https_site_refuses_http_origins(db: TestDb) {
    let app = TestApp::builder(db)
        .config(|c| c.https = true)
        .build()
        .await;
    app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    let credentials = json!({ "username": "alice", "password": "alice-password" });
    let http_origin = client.origin().to_owned();
    let https_origin = http_origin.replacen("http://", "https://", 1);
    let reply = post_json_from(&client, &http_origin, "/api/v1/session", &credentials).await;
    reply.assert_error(
        StatusCode::FORBIDDEN,
        "csrf_failed",
        "http origin, https site",
    );
    let reply = post_json_from(&client, &https_origin, "/api/v1/session", &credentials).await;
    reply.assert_status(StatusCode::OK);
}

async fn the_account_failure_budget_stops_verification(db: TestDb) {
    let app = TestApp::builder(db)
        .settings(|s| {
            s.failure_budget.limit = 3;
            s.totp.throttle_factor = Duration::ZERO;
        })
        .build()
        .await;
    let device = app.totp_device("u-alice", "phone").await;
    let (backup, codes) = app
        .otp
        .create_backup_codes("u-alice", "backup", Some(1))
        .await
        .unwrap();
    let client = app.client().await;
    post_right_password(&client, "alice").await;
    for attempt in 1..=3 {
        assert_wrong_code_refused(&app, &client, &device, &format!("wrong code {attempt}")).await;
    }
    assert_eq!(app.otp.account_failures("u-alice").await.unwrap(), 3);
    let locked = post_token(&client, &device.id, &app.code(&device)).await;
    locked.assert_error(
        StatusCode::FORBIDDEN,
        "verification_not_allowed",
        "right code, account locked",
    );
    assert!(
        locked.json()["message"]
            .as_str()
            .unwrap()
            .contains("backup code"),
        "{}",
        locked.text()
    );
    assert_not_logged_in(&client, "/me while locked").await;
    // A recovery code still works, and unlocks the account.
    let reply = post_token(&client, &backup.id, &codes[0].to_string()).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(app.otp.account_failures("u-alice").await.unwrap(), 0);
}

async fn steps_without_a_login_are_login_required(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    post_token(&client, &device.id, &app.code(&device))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "login_required", "verify");
    post_challenge(&client, &device.id).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "login_required",
        "challenge",
    );
    assert_not_logged_in(&client, "/me").await;
    // Logging out without a session is fine.
    assert_eq!(
        client.delete("/api/v1/session").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.reload(&device).await.throttle.failure_count, 0);
}

async fn throttling_doubles_and_retry_after_rounds_up(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    post_right_password(&client, "alice").await;
    assert_wrong_code_refused(&app, &client, &device, "first wrong token").await;
    app.advance(Duration::from_millis(1_100));
    assert_wrong_code_refused(&app, &client, &device, "second wrong token").await;
    // Two failures: two seconds; 1.5 s are left after half a second, announced as 2.
    app.advance(Duration::from_millis(500));
    let throttled = post_token(&client, &device.id, &app.code(&device)).await;
    throttled.assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        "n_failed_attempts",
        "throttled",
    );
    assert_eq!(throttled.header(header::RETRY_AFTER), Some("2"));
    assert_eq!(throttled.json()["retry_after"], 2);
    assert_eq!(throttled.json()["failure_count"], 2);
    assert_eq!(
        throttled.json()["message"],
        "Verification temporarily disabled because of 2 failed attempts, please try again soon."
    );
    app.advance(Duration::from_millis(1_000));
    post_token(&client, &device.id, &app.code(&device))
        .await
        .assert_error(
            StatusCode::TOO_MANY_REQUESTS,
            "n_failed_attempts",
            "still throttled",
        );
    app.advance(Duration::from_millis(600));
    let reply = post_token(&client, &device.id, &app.code(&device)).await;
    reply.assert_status(StatusCode::OK);
}

async fn logging_out_drops_a_half_done_login(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    post_right_password(&client, "alice").await;
    assert!(client.session_cookie().is_some());
    let reply = client.delete("/api/v1/session").await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(client.session_cookie(), None);
    post_token(&client, &device.id, &app.code(&device))
        .await
        .assert_error(
            StatusCode::UNAUTHORIZED,
            "login_required",
            "token after logout",
        );
}

async fn a_challenge_after_the_timeout_is_login_expired(db: TestDb) {
    let app = TestApp::builder(db).smtp().build().await;
    let email = app.email_device("u-alice", "alice@example.com").await;
    let client = app.client().await;
    post_right_password(&client, "alice").await;
    app.advance(Duration::from_secs(601));
    post_challenge(&client, &email.id).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "login_expired",
        "late challenge",
    );
    assert!(app.smtp().received().is_empty());
    post_challenge(&client, &email.id).await.assert_error(
        StatusCode::UNAUTHORIZED,
        "login_required",
        "challenge after expiry",
    );
}

async fn unconfirmed_devices_are_not_offered_and_cannot_verify(db: TestDb) {
    let app = TestApp::new(db).await;
    let confirmed = app.totp_device("u-alice", "phone").await;
    let unconfirmed = app.unconfirmed_totp_device("u-alice").await;
    let client = app.client().await;
    let reply = post_right_password(&client, "alice").await;
    let ids = device_ids(&reply);
    assert_eq!(ids, [json!(confirmed.id.to_string())]);
    // Same secret, so the code is right for it: still refused, and enrolment is not finished
    // behind the user's back.
    post_token(&client, &unconfirmed.id, &app.code(&unconfirmed))
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "invalid_device",
            "unconfirmed device",
        );
    let stored = app.reload(&unconfirmed).await;
    assert!(!stored.confirmed);
    assert_eq!(stored.throttle.failure_count, 0);
    assert_not_logged_in(&client, "/me").await;
}

async fn verifying_a_session_the_app_logged_in_cycles_its_id(db: TestDb) {
    let app = TestApp::new(db).await;
    let device = app.totp_device("u-alice", "phone").await;
    let client = app.client().await;
    // The app logged alice in by its own means (another login page, say).
    let reply = client
        .request(Method::POST, "/test/login?user=u-alice")
        .send()
        .await;
    reply.assert_status(StatusCode::OK);
    let logged_in = client.session_cookie().unwrap();
    assert_eq!(
        me(&client).await,
        json!({ "user": "u-alice", "verified": false, "device": null })
    );
    assert_wrong_code_refused(&app, &client, &device, "wrong token").await;
    app.advance(Duration::from_secs(2));
    let reply = post_token(&client, &device.id, &app.code(&device)).await;
    reply.assert_status(StatusCode::OK);
    assert_ne!(
        client.session_cookie().unwrap(),
        logged_in,
        "the id is cycled"
    );
    assert_eq!(
        me(&client).await,
        json!({ "user": "u-alice", "verified": true, "device": device.id.to_string() })
    );
}

/// Over HTTP/2 browsers send no `Host` header: hyper puts `:authority` in the request URI. A
/// same-site `Origin` must still pass (in-process: this server speaks HTTP/1 only). Browsers
/// speak HTTP/2 over TLS only: the app says it is an HTTPS site.
async fn an_http2_request_without_host_is_checked_against_its_authority(db: TestDb) {
    let app = TestApp::builder(db)
        .config(|c| c.https = true)
        .build()
        .await;
    app.totp_device("u-alice", "phone").await;
    let request = |origin: &str| {
        http::Request::builder()
            .method(Method::POST)
            .version(http::Version::HTTP_2)
            .uri("https://app.example:8443/api/v1/session")
            .header(header::ORIGIN, origin)
            .header(header::CONTENT_TYPE, "application/json")
            .body(axum::body::Body::from(
                r#"{"username": "alice", "password": "alice-password"}"#,
            ))
            .unwrap()
    };
    let cross = app.oneshot(request("https://evil.example")).await;
    cross.assert_error(StatusCode::FORBIDDEN, "csrf_failed", "HTTP/2, cross-site");
    let same = app.oneshot(request("https://app.example:8443")).await;
    assert_eq!(
        same.status,
        StatusCode::OK,
        "HTTP/2, same-site: {}",
        same.text()
    );
    assert_eq!(same.json()["otp_required"], true);
}
