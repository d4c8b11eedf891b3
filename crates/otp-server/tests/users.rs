//! The app's users (`otp_server::app::Users`) on SQLite and on PostgreSQL.

mod common;

use std::future::Future;

use common::TestDb;
use otp_axum::PasswordVerifier;
use otp_core::{Pool, Store};
use otp_server::app::{NewUser, UserError, UserQuery, Users};

const PASSWORD: &str = "correct horse battery";

/// Runs `test` on a runtime with the users of `db`, migrated (twice: migrating is
/// idempotent).
fn with_users<F, Fut>(db: &TestDb, test: F)
where
    F: FnOnce(Users) -> Fut,
    Fut: Future<Output = ()>,
{
    common::block_on(async {
        let store = Store::connect(&db.url).await.unwrap();
        let users = Users::new(store.clone());
        users.migrate().await.unwrap();
        users.migrate().await.unwrap();
        test(users).await;
        store.close().await;
    });
}

async fn stored_hash(store: &Store, id: i64) -> String {
    let query = "SELECT password_hash FROM app_users WHERE id = $1";
    match store.pool() {
        Pool::Sqlite(pool) => sqlx::query_scalar(query).bind(id).fetch_one(pool).await,
        Pool::Postgres(pool) => sqlx::query_scalar(query).bind(id).fetch_one(pool).await,
        _ => unreachable!(),
    }
    .unwrap()
}

fn create_and_find(db: &mut TestDb) {
    with_users(db, |users| async move {
        let alice = users
            .create(
                NewUser::new("Alice", PASSWORD)
                    .with_email(Some(" alice@example.com "))
                    .with_staff(true),
            )
            .await
            .unwrap();
        assert_eq!(alice.username, "Alice");
        assert_eq!(alice.email.as_deref(), Some("alice@example.com"));
        assert!(alice.is_staff);
        assert_eq!(alice.key(), alice.id.to_string());
        let bob = users
            .create(NewUser::new("bob", PASSWORD).with_email(Some("")))
            .await
            .unwrap();
        assert_eq!(bob.email, None);
        assert!(!bob.is_staff);
        assert!(bob.id > alice.id);

        for name in ["alice", "ALICE", "Alice"] {
            assert_eq!(
                users.find_by_username(name).await.unwrap().as_ref(),
                Some(&alice)
            );
        }
        assert_eq!(
            users.find_by_id(alice.id).await.unwrap().as_ref(),
            Some(&alice)
        );
        assert_eq!(
            users.find_by_key(&alice.key()).await.unwrap(),
            Some(alice.clone())
        );
        assert_eq!(users.find_by_key("nobody").await.unwrap(), None);
        assert_eq!(users.find_by_id(9999).await.unwrap(), None);

        // The hash is an argon2id PHC string with OWASP's parameters.
        let hash = stored_hash(users.store(), alice.id).await;
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains(PASSWORD));
        assert_ne!(hash, stored_hash(users.store(), bob.id).await, "salted");

        // The user JSON that templates and the API see.
        let json = serde_json::to_value(&alice).unwrap();
        assert_eq!(json["key"], alice.key());
        assert_eq!(json["username"], "Alice");
        assert!(json.get("password_hash").is_none());
    });
}

fn create_refuses_bad_input_and_duplicates(db: &mut TestDb) {
    with_users(db, |users| async move {
        users.create(NewUser::new("carol", PASSWORD)).await.unwrap();
        for (new, expected) in [
            (
                NewUser::new("CAROL", PASSWORD),
                "the username is already taken",
            ),
            (
                NewUser::new("", PASSWORD),
                "invalid username: it must not be empty",
            ),
            (
                NewUser::new(" carol", PASSWORD),
                "invalid username: it must not begin or end with white space",
            ),
            (
                NewUser::new("2024", PASSWORD),
                "invalid username: it must not be made of digits only (those are user keys)",
            ),
            (
                NewUser::new("dan", "1234567"),
                "invalid password: it must be at least 8 characters long",
            ),
            (
                NewUser::new("dan", "x").with_email(Some("dan")),
                "invalid email address",
            ),
        ] {
            let err = users.create(new).await.unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
        let long = "p".repeat(1025);
        let err = users.create(NewUser::new("dan", &long)).await.unwrap_err();
        assert!(matches!(err, UserError::InvalidPassword(_)), "{err}");
        assert_eq!(users.list(&UserQuery::default()).await.unwrap().total, 1);

        // Two creations of one name at once: exactly one wins.
        let results = futures_join(
            (0..4)
                .map(|i| {
                    let users = users.clone();
                    tokio::spawn(async move {
                        let name = if i % 2 == 0 { "Erin" } else { "erin" };
                        users.create(NewUser::new(name, PASSWORD)).await
                    })
                })
                .collect(),
        )
        .await;
        let created = results.iter().filter(|result| result.is_ok()).count();
        assert_eq!(created, 1, "{results:?}");
        assert!(
            results
                .iter()
                .filter_map(|result| result.as_ref().err())
                .all(|err| matches!(err, UserError::UsernameTaken))
        );
    });
}

async fn futures_join<T>(handles: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

fn authenticate_and_change_passwords(db: &mut TestDb) {
    with_users(db, |users| async move {
        let frank = users.create(NewUser::new("Frank", PASSWORD)).await.unwrap();
        assert_eq!(
            users.authenticate("frank", PASSWORD).await.unwrap(),
            Some(frank.clone())
        );
        assert_eq!(
            users.authenticate("frank", "wrong password").await.unwrap(),
            None
        );
        assert_eq!(users.authenticate("nobody", PASSWORD).await.unwrap(), None);
        assert_eq!(users.authenticate("", PASSWORD).await.unwrap(), None);
        assert_eq!(
            users
                .authenticate("frank", &"x".repeat(5000))
                .await
                .unwrap(),
            None
        );
        // Through the web layer's trait: the key.
        assert_eq!(
            users.verify_password("FRANK", PASSWORD).await.unwrap(),
            Some(frank.key())
        );
        assert_eq!(users.verify_password("frank", "nope").await.unwrap(), None);

        assert!(users.check_password(frank.id, PASSWORD).await.unwrap());
        assert!(
            !users
                .check_password(frank.id, "wrong password")
                .await
                .unwrap()
        );
        assert!(!users.check_password(9999, PASSWORD).await.unwrap());

        let err = users.set_password(frank.id, "short").await.unwrap_err();
        assert!(matches!(err, UserError::InvalidPassword(_)), "{err}");
        users
            .set_password(frank.id, "a new password")
            .await
            .unwrap();
        assert_eq!(users.authenticate("frank", PASSWORD).await.unwrap(), None);
        let found = users
            .authenticate("frank", "a new password")
            .await
            .unwrap()
            .expect("the new password works");
        assert!(found.password_changed_at >= frank.password_changed_at);
        assert!(matches!(
            users.set_password(9999, "a new password").await,
            Err(UserError::NotFound)
        ));

        users.set_staff(frank.id, true).await.unwrap();
        assert!(users.find_by_id(frank.id).await.unwrap().unwrap().is_staff);
        users.set_staff(frank.id, false).await.unwrap();
        assert!(!users.find_by_id(frank.id).await.unwrap().unwrap().is_staff);
        assert!(matches!(
            users.set_staff(9999, true).await,
            Err(UserError::NotFound)
        ));
    });
}

fn list_search_and_resolve(db: &mut TestDb) {
    with_users(db, |users| async move {
        for (name, email) in [
            ("heidi", "heidi@example.com"),
            ("Ivan", "ivan@corp.example"),
            ("judy_50%", "judy@example.com"),
            ("mallory", ""),
            ("niaj", "NIAJ@Corp.Example"),
        ] {
            users
                .create(NewUser::new(name, PASSWORD).with_email(Some(email)))
                .await
                .unwrap();
        }
        let all = users.list(&UserQuery::default()).await.unwrap();
        assert_eq!(
            (all.total, all.users.len(), all.page, all.per_page),
            (5, 5, 1, 25)
        );
        let names = |page: &otp_server::app::UserPage| {
            page.users
                .iter()
                .map(|user| user.username.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&all),
            ["heidi", "Ivan", "judy_50%", "mallory", "niaj"]
        );

        let query = |search: &str, page: u32, per_page: u32| UserQuery {
            search: (!search.is_empty()).then(|| search.to_owned()),
            page,
            per_page,
        };
        let second = users.list(&query("", 2, 2)).await.unwrap();
        assert_eq!((second.total, second.pages()), (5, 3));
        assert_eq!(names(&second), ["judy_50%", "mallory"]);
        let past = users.list(&query("", 9, 2)).await.unwrap();
        assert!(past.users.is_empty());
        assert_eq!(past.total, 5);

        let corp = users.list(&query("CORP", 1, 10)).await.unwrap();
        assert_eq!(names(&corp), ["Ivan", "niaj"]);
        assert_eq!(corp.total, 2);
        let ivan = users.list(&query("iva", 1, 10)).await.unwrap();
        assert_eq!(names(&ivan), ["Ivan"]);
        // Wildcards are literal.
        let percent = users.list(&query("50%", 1, 10)).await.unwrap();
        assert_eq!(names(&percent), ["judy_50%"]);
        let underscore = users.list(&query("_", 1, 10)).await.unwrap();
        assert_eq!(names(&underscore), ["judy_50%"]);
        let capped = users.list(&query("", 1, 1000)).await.unwrap();
        assert_eq!(capped.per_page, 100);

        let heidi = users.find_by_username("heidi").await.unwrap().unwrap();
        assert_eq!(users.resolve("HEIDI").await.unwrap(), heidi.key());
        assert_eq!(users.resolve(&heidi.key()).await.unwrap(), heidi.key());
        assert_eq!(users.resolve("4242").await.unwrap(), "4242");
        assert_eq!(users.resolve("user-42").await.unwrap(), "user-42");
    });
}

/// Sets a user's stored name and key as they were before names were normalised.
async fn store_legacy_name(store: &Store, id: i64, username: &str) {
    let query = "UPDATE app_users SET username = $1, username_key = $2 WHERE id = $3";
    let key = username.to_lowercase();
    let updated = match store.pool() {
        Pool::Sqlite(pool) => sqlx::query(query)
            .bind(username)
            .bind(&key)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
        Pool::Postgres(pool) => sqlx::query(query)
            .bind(username)
            .bind(&key)
            .bind(id)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()),
        _ => unreachable!(),
    };
    assert_eq!(updated.unwrap(), 1);
}

/// Issue #10: users stored before names were normalised get the NFKC key at the next
/// migration, and log in with the name in either form; a row whose new key is another user's
/// keeps its own.
fn names_stored_before_normalisation_are_rekeyed(db: &mut TestDb) {
    with_users(db, |users| async move {
        let store = users.store().clone();
        let full = users
            .create(NewUser::new("placeholder-1", PASSWORD))
            .await
            .unwrap();
        store_legacy_name(&store, full.id, "\u{ff26}ull").await;
        let bob = users.create(NewUser::new("bob", PASSWORD)).await.unwrap();
        let clash = users
            .create(NewUser::new("placeholder-2", PASSWORD))
            .await
            .unwrap();
        store_legacy_name(&store, clash.id, "\u{ff42}ob").await;
        // Before: the typed name, normalised, is not the stored key.
        assert_eq!(users.authenticate("full", PASSWORD).await.unwrap(), None);

        users.migrate().await.unwrap();
        for typed in ["full", "FULL", "\u{ff26}ull"] {
            let found = users.authenticate(typed, PASSWORD).await.unwrap();
            assert_eq!(found.map(|user| user.id), Some(full.id), "{typed:?}");
        }
        let found = users.find_by_username("full").await.unwrap().unwrap();
        assert_eq!(
            found.username, "\u{ff26}ull",
            "the name is shown as it was written"
        );
        let found = users.authenticate("\u{ff42}ob", PASSWORD).await.unwrap();
        assert_eq!(
            found.map(|user| user.id),
            Some(bob.id),
            "bob keeps his name"
        );
        let keys = users.list(&UserQuery::default()).await.unwrap().users;
        assert_eq!(keys.len(), 3);
    });
}

database_tests!(
    names_stored_before_normalisation_are_rekeyed,
    create_and_find,
    create_refuses_bad_input_and_duplicates,
    authenticate_and_change_passwords,
    list_search_and_resolve,
);
