//! A device kind written outside the framework's crates (here: a printed card of codes) plugs
//! in with `OtpBuilder::with_kind` alone: it passes the kinds' conformance suite, and the
//! library's device management and its JSON API enrol it, list it and count its codes with no
//! edit of `otp-axum`.

mod common;

use std::sync::{Arc, Mutex};

use common::{TestApp, TestDb, post_right_password};
use http::StatusCode;
use otp_core::{
    BackupCode, Device, DeviceKind, EnrolInput, Enrolled, Enrolment, Error, KindContext,
    ManualClock, Otp, OtpBuilder, TokenCheck, normalize_backup_code,
};
use otp_test_support::conformance::KindFixture;
use otp_test_support::{kind_conformance, store_tests};
use serde_json::{Value, json};

/// A printed card of codes, each good once: the hashes of those left are the state.
#[derive(Debug)]
struct CodeCard;

impl DeviceKind for CodeCard {
    fn name(&self) -> &'static str {
        "card"
    }

    fn verbose_name(&self) -> &'static str {
        "printed code card"
    }

    fn label(&self) -> &'static str {
        "Code card"
    }

    fn description(&self) -> &'static str {
        "A printed card of codes, each good once."
    }

    fn enrolment(&self) -> Enrolment {
        Enrolment::CodesShownOnce
    }

    fn enrol(&self, ctx: &KindContext<'_>, input: &EnrolInput) -> Result<Enrolled, Error> {
        let codes: Vec<BackupCode> = (0..input.count.unwrap_or(6))
            .map(|_| BackupCode::generate())
            .collect();
        let hashes: Vec<String> = codes
            .iter()
            .map(|code| ctx.hash_code(code.normalized().as_bytes()))
            .collect();
        Ok(Enrolled::with_codes(json!({ "codes": hashes }), codes))
    }

    fn codes_remaining(&self, state: &Value) -> Result<Option<usize>, Error> {
        Ok(state["codes"].as_array().map(Vec::len))
    }

    fn check_token(
        &self,
        ctx: &KindContext<'_>,
        state: &Value,
        token: &str,
    ) -> Result<TokenCheck, Error> {
        let Some(typed) = normalize_backup_code(token) else {
            return Ok(TokenCheck::NoMatch { state: None });
        };
        let hashes: Vec<&str> = state["codes"]
            .as_array()
            .map(|codes| codes.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (n, hash) in hashes.iter().enumerate() {
            if ctx.verify_code(hash, typed.as_bytes())? {
                let mut left = hashes.clone();
                left.remove(n);
                return Ok(TokenCheck::Matched {
                    state: json!({ "codes": left }),
                });
            }
        }
        Ok(TokenCheck::NoMatch { state: None })
    }
}

/// The card in the conformance suite: codes made at enrolment, used one by one.
struct CardFixture(Mutex<Vec<String>>);

impl KindFixture for CardFixture {
    const KIND: &'static str = "card";

    fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    fn configure(&self, builder: OtpBuilder) -> OtpBuilder {
        builder.with_kind(Arc::new(CodeCard))
    }

    async fn create(&self, otp: &Otp, user: &str) -> Device {
        let (device, codes) = otp
            .enrol_device(user, "card", "card", &EnrolInput::count(Some(8)))
            .await
            .unwrap();
        *self.0.lock().unwrap() = codes.iter().map(ToString::to_string).collect();
        device
    }

    async fn valid_token(&self, _: &Otp, _: &Device, _: &ManualClock) -> String {
        self.0.lock().unwrap().pop().expect("a code left")
    }

    fn wrong_token(&self) -> String {
        "aaaaa-aaaaa".into()
    }

    fn seals_secrets(&self) -> bool {
        false
    }
}

kind_conformance!(card, CardFixture);

/// The library's device management enrols the card through its JSON API, lists it with its
/// codes left, and a code of it verifies the session.
async fn the_library_enrols_the_outside_kind(db: TestDb) {
    let app = TestApp::builder(db).kind(Arc::new(CodeCard)).build().await;
    let carol = app.client().await;
    post_right_password(&carol, "carol")
        .await
        .assert_status(StatusCode::OK);
    let made = carol
        .post_json("/api/v1/devices/card", &json!({ "count": 4 }))
        .await;
    made.assert_status(StatusCode::CREATED);
    let codes: Vec<String> = made.json()["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 4);
    let listed = carol.get("/api/v1/devices").await.json();
    assert_eq!(listed[0]["kind"], "card");
    assert_eq!(listed[0]["codes_remaining"], 4);
    let id: otp_core::DeviceId = listed[0]["id"].as_str().unwrap().parse().unwrap();
    common::post_token(&carol, &id, &codes[0])
        .await
        .assert_status(StatusCode::OK);
    let listed = carol.get("/api/v1/devices").await.json();
    assert_eq!(listed[0]["codes_remaining"], 3);
}

store_tests!(the_library_enrols_the_outside_kind);
