//! Benchmarks of the otp-oath algorithms against the floor they are built on (bare SHA
//! compressions) and against `totp-rs` 6 doing the same work.
//!
//! Run with `cargo bench -p otp-oath --bench oath`. Groups:
//!
//! - `floor`: bare compressions of one block (`sha1::block_api::compress` and the SHA-2 ones),
//!   and two dependent SHA-1 compressions in a row, which is all an HOTP code needs once the
//!   HMAC state is precomputed.
//! - `hotp_code`: one code for a counter, SHA-1 / SHA-256 / SHA-512, 6 digits: ours
//!   (`Hotp::code`) against `totp-rs` (`Totp::generate`).
//! - `totp_verify_wrong`: checking a wrong 6-digit SHA-1 code with one step of tolerance either
//!   side (three candidates): ours (`Totp::verify`) against `totp-rs` (`Totp::check`, skew 1).
//! - `uri_parse`: `OtpAuthUri::parse` of a typical URI with an issuer (ours only: `totp-rs`
//!   needs its `otpauth` feature, which pulls in the `url` crate, for the same thing).
//!
//! Every input is passed through `black_box` and every result is returned from the routine
//! (criterion black-boxes it), so nothing can be hoisted out of the loop or discarded.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use otp_oath::{Algorithm, Hotp, HotpParams, OtpAuthUri, Secret, Totp, TotpParams, TotpWindow};

/// The RFC 4226 / RFC 6238 test secret (160 bits, so valid for both libraries).
const SECRET: [u8; 20] = *b"12345678901234567890";

/// A fixed Unix time for the TOTP benchmarks (step 56 666 666 of 30 s).
const NOW: i64 = 1_700_000_000;

/// A typical provisioning URI: issuer in the label and as a parameter, 160-bit secret.
const URI: &str = "otpauth://totp/Example%20Corp:alice%40example.com?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Example%20Corp&algorithm=SHA1&digits=6&period=30";

fn our_secret() -> Secret {
    Secret::from_bytes(&SECRET).expect("160-bit secret")
}

fn their_totp(algorithm: totp_rs::Algorithm) -> totp_rs::Totp {
    totp_rs::Builder::new()
        .with_algorithm(algorithm)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(SECRET)
        .build()
        .expect("valid totp-rs parameters")
}

/// The floor: bare compressions of one block, each iteration depending on the previous one
/// (the state goes through `black_box(&mut state)`), as the two compressions of an HMAC do.
fn floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("floor");
    group.throughput(Throughput::Elements(1));

    let block = [0x5au8; 64];
    let mut state = [
        0x6745_2301u32,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    group.bench_function("sha1_compress", |b| {
        b.iter(|| {
            sha1::block_api::compress(
                black_box(&mut state),
                std::slice::from_ref(black_box(&block)),
            );
        })
    });

    let inner_block = [0x36u8; 64];
    let outer_block = [0x5cu8; 64];
    group.bench_function("sha1_compress_x2", |b| {
        b.iter(|| {
            sha1::block_api::compress(
                black_box(&mut state),
                std::slice::from_ref(black_box(&inner_block)),
            );
            sha1::block_api::compress(
                black_box(&mut state),
                std::slice::from_ref(black_box(&outer_block)),
            );
        })
    });

    let mut state256 = [0x6a09_e667u32; 8];
    group.bench_function("sha256_compress", |b| {
        b.iter(|| {
            sha2::block_api::compress256(
                black_box(&mut state256),
                std::slice::from_ref(black_box(&block)),
            );
        })
    });

    let block512 = [0x5au8; 128];
    let mut state512 = [0x6a09_e667_f3bc_c908u64; 8];
    group.bench_function("sha512_compress", |b| {
        b.iter(|| {
            sha2::block_api::compress512(
                black_box(&mut state512),
                std::slice::from_ref(black_box(&block512)),
            );
        })
    });
    group.finish();
}

/// One 6-digit code for a counter that changes every iteration.
///
/// totp-rs has no HOTP type; its closest equivalent of `Hotp::code(counter)` is
/// `Totp::generate(time)`, which computes the HMAC of `time / step` and truncates it to a
/// `Token` (one code, no string formatting). We pass `time = counter * 30` with a 30-second
/// step so that both compute the code of the same counter; totp-rs rebuilds the HMAC key
/// (two extra compressions) on every call, which is the difference being measured.
fn hotp_code(c: &mut Criterion) {
    let mut group = c.benchmark_group("hotp_code");
    group.throughput(Throughput::Elements(1));

    for (name, ours, theirs) in [
        ("sha1", Algorithm::Sha1, totp_rs::Algorithm::SHA1),
        ("sha256", Algorithm::Sha256, totp_rs::Algorithm::SHA256),
        ("sha512", Algorithm::Sha512, totp_rs::Algorithm::SHA512),
    ] {
        let hotp = Hotp::new(&our_secret(), HotpParams::default().with_algorithm(ours));
        let totp = their_totp(theirs);
        // Both libraries agree before anything is timed.
        for counter in 0..4u64 {
            assert_eq!(
                hotp.code(counter).value(),
                totp.generate(counter * 30)
                    .to_string()
                    .parse::<u32>()
                    .unwrap(),
                "{name} counter {counter}"
            );
        }

        let mut counter = 56_666_666u64;
        group.bench_function(format!("otp-oath/{name}"), |b| {
            b.iter(|| {
                counter = counter.wrapping_add(1);
                hotp.code(black_box(counter))
            })
        });

        let mut counter = 56_666_666u64;
        group.bench_function(format!("totp-rs/{name}"), |b| {
            b.iter(|| {
                counter = counter.wrapping_add(1);
                totp.generate(black_box(counter) * 30)
            })
        });
    }
    group.finish();
}

/// A wrong code checked against three candidates (one step of tolerance either side). Both
/// libraries compute all three codes: ours always does (constant time), totp-rs does because
/// none matches.
fn totp_verify_wrong(c: &mut Criterion) {
    let mut group = c.benchmark_group("totp_verify_wrong");
    group.throughput(Throughput::Elements(1));

    let ours = Totp::new(&our_secret(), TotpParams::default()).expect("valid parameters");
    let theirs = their_totp(totp_rs::Algorithm::SHA1);
    let window = TotpWindow::with_tolerance(1);

    // A code that matches none of the three candidates.
    let step = ours.time_step(NOW).expect("after t0");
    let candidates: Vec<u32> = (step - 1..=step + 1)
        .map(|s| ours.code_for_step(s).value())
        .collect();
    let wrong_value = (0..1_000_000u32)
        .map(|i| (candidates[1] + 500_000 + i) % 1_000_000)
        .find(|v| !candidates.contains(v))
        .expect("a wrong code exists");
    let wrong = format!("{wrong_value:06}");
    assert!(ours.verify(&wrong, NOW, window).is_none());
    assert!(theirs.check(&wrong, NOW as u64).is_none());
    let right = ours.code_at(NOW).expect("after t0").to_string();
    assert!(ours.verify(&right, NOW, window).is_some());
    assert!(theirs.check(&right, NOW as u64).is_some());

    group.bench_function("otp-oath", |b| {
        b.iter(|| ours.verify(black_box(&wrong), black_box(NOW), black_box(window)))
    });
    group.bench_function("totp-rs", |b| {
        b.iter(|| theirs.check(black_box(&wrong), black_box(NOW as u64)))
    });
    group.finish();
}

/// Parsing a provisioning URI, secret decoding included (ours only, see the crate docs above).
fn uri_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("uri_parse");
    group.throughput(Throughput::Elements(1));

    let parsed = OtpAuthUri::parse(URI).expect("valid URI");
    assert_eq!(
        parsed.to_totp().expect("totp").code_at(NOW).unwrap(),
        Totp::new(&our_secret(), TotpParams::default())
            .unwrap()
            .code_at(NOW)
            .unwrap()
    );

    group.bench_function("otp-oath", |b| b.iter(|| OtpAuthUri::parse(black_box(URI))));
    group.finish();
}

criterion_group! {
    name = benches;
    // Modest times so that the whole run stays around two minutes; `--measurement-time` and
    // `--warm-up-time` on the command line still override these.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = floor, hotp_code, totp_verify_wrong, uri_parse
}
criterion_main!(benches);
