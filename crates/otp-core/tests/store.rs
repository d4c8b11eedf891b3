//! The store's own schema handling: migrations of this crate and of an app, applied once even
//! when several processes start together, on SQLite and PostgreSQL.

mod common;

use otp_test_support::store_tests;

use common::TestDb;
use otp_core::{Migration, Pool, Store};

const APP_MIGRATIONS: &[Migration] = &[
    Migration {
        component: "test-app",
        version: 1,
        description: "notes",
        sqlite: "CREATE TABLE app_notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
        postgres: "CREATE TABLE app_notes (id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)",
    },
    Migration {
        component: "test-app",
        version: 2,
        description: "a note",
        sqlite: "INSERT INTO app_notes (body) VALUES ('hello')",
        postgres: "INSERT INTO app_notes (body) VALUES ('hello')",
    },
];

async fn count_notes(store: &Store) -> i64 {
    match store.pool() {
        Pool::Sqlite(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM app_notes")
            .fetch_one(pool)
            .await
            .unwrap(),
        Pool::Postgres(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM app_notes")
            .fetch_one(pool)
            .await
            .unwrap(),
        _ => unreachable!("only two databases"),
    }
}

async fn concurrent_first_migrations_apply_once(db: TestDb) {
    // Eight "servers" start at once on an empty database.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let url = db.url.clone();
        tasks.push(tokio::spawn(async move {
            let store = Store::connect(&url).await?;
            store.migrate().await?;
            store.apply_migrations(APP_MIGRATIONS).await?;
            Ok::<_, otp_core::Error>(store)
        }));
    }
    let mut stores = Vec::new();
    for task in tasks {
        stores.push(task.await.unwrap().expect("every start succeeds"));
    }
    // Version 2 inserted its row once, not eight times.
    assert_eq!(count_notes(&stores[0]).await, 1);
    // Again, later: nothing to do.
    stores[0].apply_migrations(APP_MIGRATIONS).await.unwrap();
    stores[0].migrate().await.unwrap();
    assert_eq!(count_notes(&stores[0]).await, 1);
}

store_tests!(concurrent_first_migrations_apply_once);
