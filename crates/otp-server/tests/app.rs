//! The app in-process: `otp_server::app::build` gives a `Router` that tests call with
//! `oneshot`, without a socket or a process.

use axum::body::Body;
use http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use otp_server::app::{self, NewUser, ServerConfig};
use tower::ServiceExt;

/// A configuration on a SQLite file in `dir` (its key file is created beside it).
fn config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        database_url: format!("sqlite://{}", dir.join("otp.db").display()),
        ..ServerConfig::default()
    }
}

async fn call(
    router: &axum::Router,
    request: Request<Body>,
) -> (StatusCode, http::HeaderMap, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_serves_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let (router, state) = app::build(config(dir.path())).await.unwrap();
    assert!(dir.path().join("otp.db.key").is_file());

    let (status, headers, body) =
        call(&router, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get(header::CONTENT_SECURITY_POLICY).unwrap(),
        app::CONTENT_SECURITY_POLICY
    );
    assert!(body.contains("You are not logged in."), "{body}");

    let user = state
        .users
        .create(NewUser::new("alice", "correct horse battery"))
        .await
        .unwrap();
    let login = Request::post("/api/v1/session")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            r#"{"username": "alice", "password": "correct horse battery"}"#,
        ))
        .unwrap();
    let (status, headers, body) = call(&router, login).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = headers
        .get(header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .unwrap()
        .to_owned();
    let me = Request::get("/api/v1/me")
        .header(header::COOKIE, &cookie)
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = call(&router, me).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(me["user"], user.key());
    state.otp().store().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_signup_is_404() {
    let dir = tempfile::tempdir().unwrap();
    let config = ServerConfig {
        signup_enabled: false,
        ..config(dir.path())
    };
    let (router, state) = app::build(config).await.unwrap();
    let (status, headers, body) = call(
        &router,
        Request::get("/signup").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
    assert!(body.contains("Sign-up is closed"), "{body}");
    state.otp().store().close().await;
}

/// `/api/v1/openapi.json` parses, and every path and method it describes is routed: no 404
/// (unless the path names a device, which the anonymous caller does not have) and no 405.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_description_matches_the_routes() {
    let dir = tempfile::tempdir().unwrap();
    let (router, state) = app::build(config(dir.path())).await.unwrap();
    let (status, headers, body) = call(
        &router,
        Request::get("/api/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get(header::CONTENT_TYPE).unwrap(),
        "application/json"
    );
    let spec: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(spec["openapi"], "3.0.3");
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 14, "{}", paths.len());
    let mut checked = 0;
    for (path, item) in paths {
        let concrete = path.replace("{kind}", "totp").replace("{number}", "1");
        for method in ["get", "post", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let request = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(format!("/api/v1{concrete}"))
                .header(header::ACCEPT, "application/json")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let (status, _, body) = call(&router, request).await;
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {body}"
            );
            if !path.contains("{kind}") {
                assert_ne!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            }
            assert!(
                !status.is_server_error(),
                "{method} {path}: {status} {body}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 17, "{checked}");
    state.otp().store().close().await;
}

/// Issue #10: the origin check compares the scheme too. A server with secure cookies is an
/// HTTPS site (behind a proxy that terminates TLS): `http://` origins of its own host are
/// another site; without them it is an HTTP site, and `https://` origins are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origin_must_have_the_sites_scheme() {
    for secure_cookies in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let config = ServerConfig {
            secure_cookies,
            ..config(dir.path())
        };
        let (router, state) = app::build(config).await.unwrap();
        let login = |origin: &str| {
            Request::post("/api/v1/session")
                .header(header::HOST, "app.example")
                .header(header::ORIGIN, origin)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(
                    r#"{"username": "nobody", "password": "wrong password"}"#,
                ))
                .unwrap()
        };
        let (own, other) = if secure_cookies {
            ("https://app.example", "http://app.example")
        } else {
            ("http://app.example", "https://app.example")
        };
        let (status, _, body) = call(&router, login(other)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{other}: {body}");
        assert!(body.contains("csrf_failed"), "{body}");
        let (status, _, body) = call(&router, login(own)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{own}: {body}");
        assert!(body.contains("invalid_credentials"), "{body}");
        state.otp().store().close().await;
    }
}

/// Security review, issue 10, finding 8: a visitor's pages (the login and sign-up forms) store
/// no session row, however many cookie-less requests ask for them; the form still works with
/// the token and cookie they were given.
async fn visitors_store_no_session(db: otp_test_support::TestDb) {
    let config = ServerConfig {
        database_url: db.url.clone(),
        secret_key: db
            .is_postgres()
            .then(|| zeroize::Zeroizing::new("1:".to_owned() + &"ab".repeat(32))),
        ..ServerConfig::default()
    };
    let (router, state) = app::build(config).await.unwrap();
    let rows = || async {
        let count: i64 = async {
            otp_core::on_connection!(state.otp().store(), std::convert::identity, |c| {
                sqlx::query_scalar("SELECT COUNT(*) FROM otp_sessions")
                    .fetch_one(c)
                    .await
                    .map_err(otp_core::Error::from)
            })
        }
        .await
        .unwrap();
        count
    };
    let mut login_page = None;
    for n in 0..40 {
        let path = if n % 2 == 0 {
            "/account/login"
        } else {
            "/signup"
        };
        let (status, headers, body) =
            call(&router, Request::get(path).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let cookies: Vec<&str> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        assert!(
            cookies
                .iter()
                .all(|cookie| !cookie.starts_with("otp_session=")),
            "{path} made a session: {cookies:?}"
        );
        if n == 0 {
            login_page = Some((cookies[0].split(';').next().unwrap().to_owned(), body));
        }
    }
    assert_eq!(rows().await, 0, "visitors' pages stored sessions");

    // The login form of the first page, with its cookie: a password step that stores the
    // session, since it now holds the login.
    state
        .users
        .create(NewUser::new("alice", "correct horse battery"))
        .await
        .unwrap();
    let (csrf_cookie, body) = login_page.unwrap();
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker).unwrap() + marker.len();
    let token = &body[start..start + body[start..].find('"').unwrap()];
    let form = format!("username=alice&password=correct+horse+battery&csrf_token={token}");
    let login = Request::post("/account/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::COOKIE, &csrf_cookie)
        .body(Body::from(form))
        .unwrap();
    let (status, headers, body) = call(&router, login).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(
        headers
            .get_all(header::SET_COOKIE)
            .iter()
            .any(|value| value.to_str().unwrap().starts_with("otp_session="))
    );
    assert_eq!(rows().await, 1);
    state.otp().store().close().await;
}

otp_test_support::store_tests!(visitors_store_no_session);
