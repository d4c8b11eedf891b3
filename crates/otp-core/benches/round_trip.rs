//! What one statement costs through sqlx's SQLite driver, beside the floor under it: a round
//! trip between two threads. sqlx runs each SQLite connection on a thread of its own, so every
//! statement is at least one such round trip, whatever SQLite itself does; a verification is
//! two statements (see `BENCHMARKS.md`).
//!
//! ```sh
//! cargo bench -p otp-core --bench round_trip
//! ```

use std::sync::mpsc;
use std::thread;

use criterion::{Criterion, criterion_group, criterion_main};
use otp_core::{ConnectionRef, Store};

/// A message to another thread and its answer: two wake-ups, nothing else.
fn thread_round_trip(c: &mut Criterion) {
    let (to_worker, from_caller) = mpsc::channel::<()>();
    let (to_caller, from_worker) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        for () in from_caller {
            if to_caller.send(()).is_err() {
                break;
            }
        }
    });
    c.bench_function("thread_round_trip", |b| {
        b.iter(|| {
            to_worker.send(()).expect("the worker is running");
            from_worker.recv().expect("the worker answers");
        });
    });
    drop(to_worker);
    worker.join().expect("the worker ends");
}

/// `SELECT 1` on a SQLite connection of the store (WAL, as the store opens it).
fn sqlite_statement(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = runtime
        .block_on(Store::connect(&url))
        .expect("the store opens");
    let mut connection = runtime.block_on(store.connection()).expect("a connection");
    c.bench_function("sqlx_sqlite_select_1", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let ConnectionRef::Sqlite(conn) = connection.get() else {
                    unreachable!("a SQLite store");
                };
                let one: i64 = sqlx::query_scalar("SELECT 1")
                    .fetch_one(conn)
                    .await
                    .expect("SELECT 1 runs");
                assert_eq!(one, 1);
            });
        });
    });
    connection.release();
}

criterion_group!(benches, thread_round_trip, sqlite_statement);
criterion_main!(benches);
