//! A copy of the database alone reveals no OTP key and no code: the SQLite file (with its
//! write-ahead log) and every row of PostgreSQL are searched for each secret in every encoding.

mod common;

use common::{Env, TestDb};
use otp_core::{HotpOptions, TotpOptions};
use otp_oath::Secret;

/// The forms a secret could take on disk.
fn encodings(secret: &Secret) -> Vec<Vec<u8>> {
    let base32 = secret.to_base32().to_string();
    vec![
        secret.as_bytes().to_vec(),
        secret.to_hex().as_bytes().to_vec(),
        secret.to_hex().to_uppercase().into_bytes(),
        base32.clone().into_bytes(),
        base32.to_lowercase().into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Creates one device of each kind with known secrets and codes; returns every sensitive string.
async fn populate(env: &Env) -> Vec<Vec<u8>> {
    let mut sensitive = Vec::new();
    let totp_secret = Secret::generate();
    let hotp_secret = Secret::generate();
    sensitive.extend(encodings(&totp_secret));
    sensitive.extend(encodings(&hotp_secret));
    env.otp
        .create_totp_device(
            "alice",
            "phone",
            Some(totp_secret),
            TotpOptions::default(),
            true,
        )
        .await
        .unwrap();
    env.otp
        .create_hotp_device(
            "alice",
            "key",
            Some(hotp_secret),
            HotpOptions::default(),
            true,
        )
        .await
        .unwrap();
    let (_, codes) = env
        .otp
        .create_backup_codes("alice", "codes", Some(10))
        .await
        .unwrap();
    for code in codes {
        sensitive.push(code.normalized().as_bytes().to_vec());
        sensitive.push(code.to_string().into_bytes());
    }
    let (_, chosen) = env
        .otp
        .add_static_token("alice", Some("operator-chosen-code"))
        .await
        .unwrap();
    sensitive.push(chosen.normalized().as_bytes().to_vec());
    sensitive
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_sqlite_file_reveals_nothing() {
    let db = TestDb::sqlite();
    let path = db.url.trim_start_matches("sqlite://").to_owned();
    let env = Env::new(db).await;
    let sensitive = populate(&env).await;
    env.store.close().await;
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(format!("{path}-wal")) {
        bytes.extend(wal);
    }
    assert!(
        bytes.len() > 4096,
        "the database file is not where the test looks"
    );
    assert!(
        contains(&bytes, b"alice"),
        "the search would not find plain text"
    );
    for needle in &sensitive {
        assert!(
            !contains(&bytes, needle),
            "found {} bytes of a secret in the file",
            needle.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dump_of_the_postgresql_rows_reveals_nothing() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let url = db.url.clone();
    let env = Env::new(db).await;
    let sensitive = populate(&env).await;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar("SELECT row_to_json(d)::text FROM otp_devices d")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let dump = rows.join("\n").into_bytes();
    assert!(contains(&dump, b"alice"));
    for needle in &sensitive {
        assert!(
            !contains(&dump, needle),
            "found {} bytes of a secret in the rows",
            needle.len()
        );
    }
}

/// Other local users cannot read the SQLite database, its write-ahead log and shared memory,
/// nor the key file made beside it, whatever the process's umask (files are made 0600); and
/// [`otp_core::files_open_to_others`] names a file that was opened up afterwards.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;

    let db = TestDb::sqlite();
    let database: otp_core::DatabaseUrl = db.url.parse().unwrap();
    let key_file = database.default_key_file().unwrap();
    otp_core::KeyRing::for_database(&database, None, None).unwrap();
    let env = Env::new(db).await;
    populate(&env).await;

    let files = database.private_files();
    assert_eq!(files.len(), 4, "{files:?}");
    assert!(files.contains(&key_file));
    for path in &files {
        let mode = std::fs::metadata(path)
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{} has mode {mode:o}", path.display());
    }
    assert!(otp_core::files_open_to_others(&files).is_empty());

    std::fs::set_permissions(&files[0], std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        otp_core::files_open_to_others(&files),
        vec![files[0].clone()]
    );
    env.store.close().await;
}
