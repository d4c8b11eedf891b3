//! TOTP: time-based one-time passwords (RFC 6238), with django-otp's verification semantics.

use std::num::NonZeroU64;

use crate::code::{first_match, parse_token};
use crate::{Algorithm, Code, Digits, Error, Hotp, HotpParams, Secret};

/// Parameters of a TOTP credential. The defaults are RFC 6238's and every authenticator app's:
/// SHA-1, 6 digits, 30-second steps counted from the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    /// Hash function under HMAC.
    pub algorithm: Algorithm,
    /// Digits per code.
    pub digits: Digits,
    /// Seconds per time step; must be at least 1.
    pub step: u64,
    /// Unix time at which step 0 begins.
    pub t0: i64,
}

impl Default for TotpParams {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Sha1,
            digits: Digits::SIX,
            step: 30,
            t0: 0,
        }
    }
}

impl TotpParams {
    /// Sets the algorithm.
    pub fn with_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the number of digits.
    pub fn with_digits(mut self, digits: Digits) -> Self {
        self.digits = digits;
        self
    }

    /// Sets the length of a time step in seconds.
    pub fn with_step(mut self, step: u64) -> Self {
        self.step = step;
        self
    }

    /// Sets the Unix time at which step 0 begins.
    pub fn with_t0(mut self, t0: i64) -> Self {
        self.t0 = t0;
        self
    }
}

/// Where to look for a TOTP code, as django-otp's `TOTPDevice` does: the steps
/// `current + drift - tolerance ..= current + drift + tolerance`, leaving out every step below
/// `min_step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TotpWindow {
    /// Steps accepted on either side of the expected one (django-otp's default is 1).
    pub tolerance: u16,
    /// Known clock offset of the prover, in steps.
    pub drift: i64,
    /// Lowest step that may match: one past the last accepted step, so that no code, nor any
    /// older one, is accepted twice.
    pub min_step: u64,
}

impl TotpWindow {
    /// A window of `tolerance` steps on either side, no drift, no minimum.
    pub fn with_tolerance(tolerance: u16) -> Self {
        Self {
            tolerance,
            ..Self::default()
        }
    }

    /// Sets the drift.
    pub fn with_drift(mut self, drift: i64) -> Self {
        self.drift = drift;
        self
    }

    /// Sets the lowest step that may match (for replay prevention: last accepted step + 1).
    pub fn with_min_step(mut self, min_step: u64) -> Self {
        self.min_step = min_step;
        self
    }
}

/// A successful TOTP verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpMatch {
    /// The step whose code matched: store it, and pass `step + 1` as the next
    /// [`TotpWindow::min_step`].
    pub step: u64,
    /// The drift that centres the window on the matched step (the old drift plus the offset at
    /// which the code matched); store it if drift synchronisation is on.
    pub drift: i64,
}

/// A TOTP generator and verifier for one secret, with its HMAC state precomputed.
///
/// ```
/// use otp_oath::{Secret, Totp, TotpParams, TotpWindow};
///
/// // RFC 6238 Appendix B, SHA-1, 8 digits.
/// let secret = Secret::from_bytes(b"12345678901234567890")?;
/// let params = TotpParams::default().with_digits(otp_oath::Digits::EIGHT);
/// let totp = Totp::new(&secret, params)?;
/// assert_eq!(totp.code_at(59)?.to_string(), "94287082");
///
/// // Verification at time 59 (step 1) with a tolerance of one step accepts the code of step 2,
/// // returns the step to store and the new drift.
/// let window = TotpWindow::with_tolerance(1);
/// let code = totp.code_for_step(2).to_string();
/// let matched = totp.verify(&code, 59, window).expect("in the window");
/// assert_eq!((matched.step, matched.drift), (2, 1));
///
/// // The same code again, with the minimum step moved past the match: refused.
/// assert_eq!(totp.verify(&code, 59, window.with_min_step(matched.step + 1)), None);
/// # Ok::<(), otp_oath::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Totp {
    hotp: Hotp,
    step: NonZeroU64,
    t0: i64,
}

impl Totp {
    /// Precomputes the HMAC state of `secret` for `params`.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroTimeStep`] if `params.step` is 0.
    pub fn new(secret: &Secret, params: TotpParams) -> Result<Self, Error> {
        let step = NonZeroU64::new(params.step).ok_or(Error::ZeroTimeStep)?;
        let hotp = Hotp::new(
            secret,
            HotpParams {
                algorithm: params.algorithm,
                digits: params.digits,
            },
        );
        Ok(Self {
            hotp,
            step,
            t0: params.t0,
        })
    }

    /// The parameters this generator was built with.
    pub fn params(&self) -> TotpParams {
        let hotp = self.hotp.params();
        TotpParams {
            algorithm: hotp.algorithm,
            digits: hotp.digits,
            step: self.step.get(),
            t0: self.t0,
        }
    }

    /// The time step at `unix_time`: `floor((unix_time - t0) / step)`, or `None` before `t0`.
    pub fn time_step(&self, unix_time: i64) -> Option<u64> {
        u64::try_from(self.floor_step(unix_time)).ok()
    }

    /// `floor((unix_time - t0) / step)`, negative before `t0`. In 64 bits when nothing can
    /// overflow (every realistic time), else in 128.
    fn floor_step(&self, unix_time: i64) -> i128 {
        match (
            unix_time.checked_sub(self.t0),
            i64::try_from(self.step.get()),
        ) {
            (Some(elapsed), Ok(step)) => i128::from(elapsed.div_euclid(step)),
            _ => (i128::from(unix_time) - i128::from(self.t0))
                .div_euclid(i128::from(self.step.get())),
        }
    }

    /// The code at `unix_time`.
    ///
    /// # Errors
    ///
    /// [`Error::TimeBeforeEpoch`] if `unix_time` lies before `t0`.
    pub fn code_at(&self, unix_time: i64) -> Result<Code, Error> {
        let step = self.time_step(unix_time).ok_or(Error::TimeBeforeEpoch {
            time: unix_time,
            t0: self.t0,
        })?;
        Ok(self.code_for_step(step))
    }

    /// The code of a time step.
    pub fn code_for_step(&self, step: u64) -> Code {
        self.hotp.code(step)
    }

    /// Looks for `token` in `window` around the step of `unix_time` and returns the earliest
    /// step that matches, with the drift that centres the window on it.
    ///
    /// Steps below zero (before `t0`) and below `window.min_step` are never tried. A token that
    /// is not exactly the right number of ASCII digits (after trimming white space) matches
    /// nothing.
    pub fn verify(&self, token: &str, unix_time: i64, window: TotpWindow) -> Option<TotpMatch> {
        let token = parse_token(token, self.hotp.params().digits)?;
        let centre = self.floor_step(unix_time) + i128::from(window.drift);
        let tolerance = i128::from(window.tolerance);
        let first = (centre - tolerance).max(i128::from(window.min_step));
        let last = (centre + tolerance).min(i128::from(u64::MAX));
        if first > last {
            return None;
        }
        // Both bounds now lie within 0..=u64::MAX.
        let (first, last) = (first as u64, last as u64);
        let step = first_match(token, first..=last, |s| {
            u64::from(self.hotp.code(s).value())
        })?;
        let offset = i128::from(step) - centre;
        let drift = i128::from(window.drift) + offset;
        Some(TotpMatch {
            step,
            drift: i64::try_from(drift).unwrap_or(window.drift),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_totp(params: TotpParams) -> Totp {
        Totp::new(
            &Secret::from_bytes(b"12345678901234567890").unwrap(),
            params,
        )
        .unwrap()
    }

    #[test]
    fn zero_step_is_refused() {
        let err = Totp::new(&Secret::generate(), TotpParams::default().with_step(0)).unwrap_err();
        assert_eq!(err, Error::ZeroTimeStep);
    }

    #[test]
    fn django_otp_oath_doctests() {
        // reference §3.3, key 12345678901234567890, 6 digits.
        let totp = rfc_totp(TotpParams::default());
        assert_eq!(totp.code_at(0).unwrap().to_string(), "755224");
        assert_eq!(totp.code_at(30).unwrap().to_string(), "287082");
        assert!(totp.verify("287082", 30, TotpWindow::default()).is_some());
        assert!(totp.verify("359152", 30, TotpWindow::default()).is_none());
        let matched = totp.verify("359152", 30, TotpWindow::with_tolerance(1));
        assert_eq!(matched, Some(TotpMatch { step: 2, drift: 1 }));
        let window = TotpWindow::with_tolerance(1).with_min_step(3);
        assert_eq!(totp.verify("359152", 30, window), None);
    }

    #[test]
    fn drift_moves_the_window_and_accumulates() {
        let totp = rfc_totp(TotpParams::default());
        // At step 10 with drift 2 the window is 11..=13.
        let window = TotpWindow::with_tolerance(1).with_drift(2);
        let at = 10 * 30 + 5;
        assert_eq!(
            totp.verify(&totp.code_for_step(10).to_string(), at, window),
            None
        );
        let matched = totp
            .verify(&totp.code_for_step(11).to_string(), at, window)
            .unwrap();
        assert_eq!(matched, TotpMatch { step: 11, drift: 1 });
        let matched = totp
            .verify(&totp.code_for_step(13).to_string(), at, window)
            .unwrap();
        assert_eq!(matched, TotpMatch { step: 13, drift: 3 });
    }

    #[test]
    fn before_t0_nothing_is_generated_or_accepted() {
        let totp = rfc_totp(TotpParams::default().with_t0(1_000));
        assert_eq!(
            totp.code_at(999),
            Err(Error::TimeBeforeEpoch {
                time: 999,
                t0: 1_000
            })
        );
        assert_eq!(totp.time_step(999), None);
        assert_eq!(totp.time_step(1_000), Some(0));
        // At t0 - 1 the window -1..=1 still reaches steps 0 and 1, but never a negative step.
        let code0 = totp.code_for_step(0).to_string();
        let matched = totp.verify(&code0, 999, TotpWindow::with_tolerance(1));
        assert_eq!(matched, Some(TotpMatch { step: 0, drift: 1 }));
        assert_eq!(totp.verify(&code0, 0, TotpWindow::with_tolerance(1)), None);
    }

    #[test]
    fn extreme_times_and_drifts_do_not_panic() {
        let totp = rfc_totp(TotpParams::default().with_step(1));
        let window = TotpWindow::with_tolerance(u16::MAX).with_drift(i64::MAX);
        assert_eq!(totp.verify("123456", i64::MAX, window), None);
        let window = TotpWindow::with_tolerance(3).with_drift(i64::MIN);
        assert_eq!(totp.verify("123456", i64::MIN, window), None);
        // Step i64::MAX plus a drift of i64::MAX is u64::MAX - 1; one more step is the last.
        let code = totp.code_for_step(u64::MAX).to_string();
        let window = TotpWindow::with_tolerance(2).with_drift(i64::MAX);
        let matched = totp.verify(&code, i64::MAX, window);
        assert_eq!(matched.map(|m| m.step), Some(u64::MAX));
    }

    #[test]
    fn django_otp_fixture_codes() {
        // reference §8: TOTP key 2a2b…, steps 0..9.
        let secret = Secret::from_hex("2a2bbba1092ffdd25a328ad1a0a5f5d61d7aacc4").unwrap();
        let totp = Totp::new(&secret, TotpParams::default()).unwrap();
        let codes: Vec<String> = (0..10).map(|s| totp.code_for_step(s).to_string()).collect();
        assert_eq!(
            codes,
            [
                "179225", "656163", "839400", "154567", "346912", "471576", "045675", "101397",
                "491039", "784503"
            ]
        );
    }
}
