//! Test support: real databases (a SQLite file in a temporary directory, a uniquely named
//! PostgreSQL database that is dropped afterwards), a frozen clock, and the skip rule for
//! outside services.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use otp_test_support::{TestDb, smtp};

use std::sync::Arc;

use otp_core::{KeyRing, ManualClock, Otp, OtpBuilder, Settings, Store, Timestamp};

/// The frozen time most scenarios start at: a whole step boundary plus 5 s.
pub const T0: i64 = 1_700_000_010;

/// A framework on a test database with a frozen clock.
pub struct Env {
    pub otp: Otp,
    pub clock: ManualClock,
    pub store: Store,
    pub db: TestDb,
}

impl Env {
    pub async fn new(db: TestDb) -> Self {
        Self::with(db, Settings::default(), |b| b).await
    }

    pub async fn with(
        db: TestDb,
        settings: Settings,
        extra: impl FnOnce(OtpBuilder) -> OtpBuilder,
    ) -> Self {
        let store = Store::connect(&db.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let clock = ManualClock::new(Timestamp::from_unix_secs(T0));
        let builder = Otp::builder(store.clone(), KeyRing::generate())
            .with_settings(settings)
            .with_clock(Arc::new(clock.clone()));
        let otp = extra(builder).build().expect("build");
        Self {
            otp,
            clock,
            store,
            db,
        }
    }

    pub fn advance_ms(&self, millis: u64) {
        self.clock.advance(std::time::Duration::from_millis(millis));
    }
}
