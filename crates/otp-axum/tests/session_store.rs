//! `SqlSessionStore` on SQLite and PostgreSQL: what a copy of the table gives away, and a
//! session deleted while a request of it was in flight.

use otp_axum::SqlSessionStore;
use otp_core::Store;
use otp_test_support::{TestDb, store_tests};
use serde_json::json;
use tower_sessions::cookie::time::{Duration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::SessionStore;

async fn sessions(db: &TestDb) -> (Store, SqlSessionStore) {
    let store = Store::connect(&db.url).await.unwrap();
    let sessions = SqlSessionStore::new(store.clone());
    sessions.migrate().await.unwrap();
    (store, sessions)
}

fn record(user_key: &str) -> Record {
    let mut data = std::collections::HashMap::new();
    data.insert(otp_axum::USER_KEY_SESSION_KEY.to_owned(), json!(user_key));
    Record {
        id: Id::default(),
        data,
        expiry_date: OffsetDateTime::now_utc() + Duration::hours(1),
    }
}

/// Every text of every row of `otp_sessions`, joined.
async fn table_text(store: &Store) -> String {
    let rows = async {
        otp_core::on_connection!(store, std::convert::identity, |c| {
            sqlx::query_as::<_, (String, String, Option<String>)>(
                "SELECT id_hash, data, user_key FROM otp_sessions",
            )
            .fetch_all(c)
            .await
            .map_err(otp_core::Error::from)
        })
    }
    .await
    .unwrap();
    rows.iter()
        .map(|(hash, data, user)| format!("{hash} {data} {}", user.as_deref().unwrap_or("")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A copy of the table holds no cookie value: only hashes, which the store cannot be asked
/// for a session by.
async fn the_table_holds_no_session_id(db: TestDb) {
    let (store, sessions) = sessions(&db).await;
    let mut alice = record("alice");
    sessions.create(&mut alice).await.unwrap();
    let cookie = alice.id.to_string();

    let text = table_text(&store).await;
    assert!(text.contains("alice"), "the row is there: {text}");
    assert!(
        !text.contains(&cookie),
        "the cookie value is stored: {text}"
    );

    // The stored hash, presented as a cookie, opens nothing.
    let hash = text.split_whitespace().next().unwrap();
    if let Ok(forged) = hash.parse::<Id>() {
        assert!(sessions.load(&forged).await.unwrap().is_none());
    }
    let loaded = sessions
        .load(&alice.id)
        .await
        .unwrap()
        .expect("found by its id");
    assert_eq!(loaded.data, alice.data);
}

/// A save of a session that was deleted in the meantime (by a password change ending every
/// session of the user, while a request of the session was in flight) does not bring it back.
async fn a_save_never_recreates_a_deleted_session(db: TestDb) {
    let (_store, sessions) = sessions(&db).await;
    let mut stolen = record("alice");
    sessions.create(&mut stolen).await.unwrap();
    let mut current = record("alice");
    sessions.create(&mut current).await.unwrap();

    let ended = sessions
        .delete_user_sessions("alice", Some(current.id))
        .await
        .unwrap();
    assert_eq!(ended, 1);
    // The stolen session's request ends, and tower-sessions saves its record.
    sessions.save(&stolen).await.unwrap();
    assert!(sessions.load(&stolen.id).await.unwrap().is_none());
    assert!(sessions.load(&current.id).await.unwrap().is_some());

    // A session that is there is updated as before.
    current.data.insert("note".into(), json!(1));
    sessions.save(&current).await.unwrap();
    let loaded = sessions.load(&current.id).await.unwrap().unwrap();
    assert_eq!(loaded.data.get("note"), Some(&json!(1)));
}

store_tests!(
    the_table_holds_no_session_id,
    a_save_never_recreates_a_deleted_session,
);
