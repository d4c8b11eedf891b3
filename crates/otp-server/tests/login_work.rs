//! Issue #10, username enumeration by timing, without timing anything: a wrong password for a
//! user who exists and any password for a name nobody has run the same SQL statements and
//! check a password against an argon2id hash of the same cost, on SQLite and PostgreSQL. The
//! work is recorded from the events that sqlx logs for each statement (target `sqlx::query`)
//! and that `Users` logs for each hash check (its cost only), with a process-wide subscriber:
//! this file holds one test, so that nothing else runs in its process. `otp bench login-timing`
//! measures the times themselves.

mod common;

use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use common::TestDb;
use otp_core::Store;
use otp_server::app::{NewUser, Users};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

const PASSWORD: &str = "correct horse battery";

/// Records the statements and hash checks, one line each.
#[derive(Clone, Default)]
struct Recorder {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}

/// The fields that say what was done (not how long it took).
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if matches!(
            field.name(),
            "message" | "summary" | "db.statement" | "cost"
        ) {
            let _ = write!(self.0, "{}={value:?} ", field.name());
        }
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "sqlx::query" || metadata.target() == "otp_server::app::users"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields(format!("{}: ", event.metadata().target()));
        event.record(&mut fields);
        self.lines.lock().unwrap().push(fields.0);
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

fn same_work_for_known_and_unknown_users(db: &TestDb, recorder: &Recorder) {
    common::block_on(async {
        let store = Store::connect(&db.url).await.unwrap();
        let users = Users::new(store.clone());
        users.migrate().await.unwrap();
        users.create(NewUser::new("alice", PASSWORD)).await.unwrap();
        // Once each first: connections opened, the dummy hash made.
        for name in ["alice", "nobody"] {
            assert!(
                users
                    .authenticate(name, "wrong password")
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        recorder.take();

        let mut work = Vec::new();
        for name in ["alice", "nobody"] {
            let found = users.authenticate(name, "wrong password").await.unwrap();
            assert!(found.is_none());
            work.push(recorder.take());
        }
        let (known, unknown) = (&work[0], &work[1]);
        assert_eq!(
            known, unknown,
            "a wrong password for alice, and one for nobody, must do the same work ({})",
            db.url
        );
        let text = known.join("\n");
        assert!(
            text.contains("app_password_failures"),
            "the back-off: {text}"
        );
        assert!(text.contains("FROM app_users"), "the user's row: {text}");
        let hash_checks: Vec<&String> = known
            .iter()
            .filter(|line| line.contains("checking a password hash"))
            .collect();
        assert_eq!(hash_checks.len(), 1, "{text}");
        assert!(
            hash_checks[0].contains("cost=\"argon2id v=19 m=19456,t=2,p=1\""),
            "{text}"
        );

        // The recorder does tell work apart: the right password also resets the back-off.
        assert!(
            users
                .authenticate("alice", PASSWORD)
                .await
                .unwrap()
                .is_some()
        );
        let right = recorder.take();
        assert_ne!(&right, known);
        assert!(
            right
                .join("\n")
                .contains("DELETE FROM app_password_failures"),
            "{right:?}"
        );
        store.close().await;
    });
}

#[test]
fn known_and_unknown_users_cost_the_same_statements_and_hashing() {
    let recorder = Recorder::default();
    tracing::subscriber::set_global_default(recorder.clone()).unwrap();
    same_work_for_known_and_unknown_users(&TestDb::sqlite(), &recorder);
    if let Some(db) = TestDb::postgres() {
        same_work_for_known_and_unknown_users(&db, &recorder);
    }
}
