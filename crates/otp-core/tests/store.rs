//! The store's own schema handling: migrations of this crate and of an app, applied once even
//! when several processes start together, on SQLite and PostgreSQL.

mod common;

use otp_test_support::store_tests;

use common::TestDb;
use otp_core::{ConnectionRef, Migration, Pool, Store};

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

/// Adds a note on `connection`, inside a sqlx transaction that is committed or dropped.
async fn add_note(connection: &mut otp_core::StoreConnection, body: &str, commit: bool) {
    use sqlx::Connection;
    const INSERT: &str = "INSERT INTO app_notes (body) VALUES ($1)";
    match connection.get() {
        ConnectionRef::Sqlite(c) => {
            let mut tx = c.begin().await.unwrap();
            sqlx::query(INSERT)
                .bind(body)
                .execute(&mut *tx)
                .await
                .unwrap();
            if commit {
                tx.commit().await.unwrap();
            }
        }
        ConnectionRef::Postgres(c) => {
            let mut tx = c.begin().await.unwrap();
            sqlx::query(INSERT)
                .bind(body)
                .execute(&mut *tx)
                .await
                .unwrap();
            if commit {
                tx.commit().await.unwrap();
            }
        }
        _ => unreachable!("only two databases"),
    }
}

async fn app_connections_are_reused_and_keep_no_dropped_transaction(db: TestDb) {
    let store = Store::connect(&db.url).await.unwrap();
    store.apply_migrations(APP_MIGRATIONS).await.unwrap();
    // A transaction dropped uncommitted, on a connection then kept for the next operations.
    let mut connection = store.connection().await.unwrap();
    add_note(&mut connection, "rolled back", false).await;
    connection.release();
    // Many more operations than the store keeps connections: each one finds a connection,
    // none inherits the dropped transaction or its lock (SQLite's single writer would wait).
    for round in 0..12 {
        let mut connection = store.connection().await.unwrap();
        add_note(&mut connection, &format!("note {round}"), true).await;
        if round % 3 == 0 {
            drop(connection); // As after an error: back to sqlx's pool.
        } else {
            connection.release();
        }
    }
    // The migration's row and the twelve committed notes; not the dropped one.
    assert_eq!(count_notes(&store).await, 13);
}

store_tests!(
    concurrent_first_migrations_apply_once,
    app_connections_are_reused_and_keep_no_dropped_transaction
);
