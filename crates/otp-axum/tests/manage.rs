//! `otp_axum::manage`, the library's device management, on SQLite and PostgreSQL: any kind
//! enrolled the same way, the first device verifies the session, one device of a kind that
//! allows one, the step-up rule, and nothing for a visitor.

mod common;

use otp_test_support::store_tests;

use std::time::Duration;

use common::{TestApp, TestDb, me, post_right_password, post_token};
use http::StatusCode;
use serde_json::json;

async fn the_first_device_verifies_and_the_rules_hold(db: TestDb) {
    let app = TestApp::new(db).await;
    let visitor = app.client().await;
    visitor
        .post_json("/test/manage/totp", &json!({}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "login_required", "a visitor");

    // Bob has no device: the password was his only factor.
    let bob = app.client().await;
    post_right_password(&bob, "bob")
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(me(&bob).await["verified"], false);
    let added = bob.post_json("/test/manage/totp", &json!({})).await;
    added.assert_status(StatusCode::OK);
    assert_eq!(added.json()["confirmed"], false, "a secret to prove first");
    let id = added.json()["id"].as_str().unwrap().to_owned();
    let device = app.reload_id(&id).await;
    let confirmed = bob
        .post_json(
            &format!("/test/manage/{id}/confirm"),
            &json!({ "token": app.code(&device) }),
        )
        .await;
    confirmed.assert_status(StatusCode::OK);
    assert_eq!(
        me(&bob).await["verified"],
        true,
        "the first device verifies"
    );

    // Codes shown once; one set per user.
    let codes = bob
        .post_json("/test/manage/static", &json!({ "count": 4 }))
        .await;
    codes.assert_status(StatusCode::OK);
    assert_eq!(codes.json()["confirmed"], true);
    assert_eq!(codes.json()["codes"].as_array().unwrap().len(), 4);
    bob.post_json("/test/manage/static", &json!({}))
        .await
        .assert_error(StatusCode::CONFLICT, "one_per_user", "a second set");
    bob.post_json("/test/manage/nosuchkind", &json!({}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", "an unknown kind");

    // Five minutes later, a confirmed device goes only after a new verification.
    app.advance(Duration::from_secs(5 * 60 + 1));
    bob.delete(&format!("/test/manage/{id}"))
        .await
        .assert_error(
            StatusCode::FORBIDDEN,
            "fresh_verification_required",
            "a stale session",
        );
    post_token(&bob, &device.id, &app.code(&device))
        .await
        .assert_status(StatusCode::OK);
    bob.delete(&format!("/test/manage/{id}"))
        .await
        .assert_status(StatusCode::NO_CONTENT);
    // Another user's device is not found.
    let alice_device = app.totp_device("u-alice", "phone").await;
    bob.delete(&format!("/test/manage/{}", alice_device.id))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", "another user's device");
}

/// The JSON API of `manage::json::routes`: any kind enrolled at `/devices/{kind}`, the answer
/// shaped by its enrolment; the list; the CSRF checks before anything else.
async fn the_json_api_enrols_any_kind(db: TestDb) {
    let app = TestApp::new(db).await;
    let carol = app.client().await;
    post_right_password(&carol, "carol")
        .await
        .assert_status(StatusCode::OK);
    let totp = carol.post_json("/api/v1/devices/totp", &json!({})).await;
    totp.assert_status(StatusCode::CREATED);
    let body = totp.json();
    assert!(body["uri"].as_str().unwrap().starts_with("otpauth://totp/"));
    assert_eq!(
        body["qr_svg_url"],
        format!("/account/devices/{}/qr.svg", body["id"].as_str().unwrap())
    );
    assert_eq!(
        totp.header(http::header::LOCATION),
        Some(format!("/api/v1/devices/{}", body["id"].as_str().unwrap()).as_str())
    );
    let codes = carol
        .post_json("/api/v1/devices/static", &json!({ "count": 3 }))
        .await;
    codes.assert_status(StatusCode::CREATED);
    assert_eq!(codes.json()["codes"].as_array().unwrap().len(), 3);
    let listed = carol.get("/api/v1/devices").await.json();
    let kinds: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|device| device["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["totp", "static"]);
    assert_eq!(listed[1]["codes_remaining"], 3);
    carol
        .post_raw("/api/v1/devices/hotp", "text/plain", "{}")
        .await
        .assert_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "not JSON",
        );
    // The codes made the session verified: the rest of the API is open to it.
    assert_eq!(me(&carol).await["verified"], true);
}

store_tests!(
    the_first_device_verifies_and_the_rules_hold,
    the_json_api_enrols_any_kind,
);
