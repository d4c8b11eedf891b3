//! Backup-code devices (django-otp's `otp_static`): several codes, each usable once, kept only
//! as keyed hashes.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{read_state, write_state};
use crate::{
    BackupCode, DeviceKind, EnrolInput, Enrolled, Enrolment, Error, KindContext, Settings,
    ThrottlePolicy, TokenCheck, normalize_backup_code,
};

/// The kind of backup-code devices: `static/N`.
#[derive(Debug, Default)]
pub struct StaticKind;

/// The stored state: the hashes of the codes not used yet.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StaticState {
    pub(crate) codes: Vec<String>,
}

impl StaticState {
    /// Adds the hash of a normalised code.
    pub(crate) fn add(&mut self, ctx: &KindContext<'_>, normalized: &str) {
        self.codes.push(ctx.hash_code(normalized.as_bytes()));
    }
}

/// `count` fresh codes (`None`: `OTP_STATIC_COUNT`), and the state that holds their hashes.
///
/// # Errors
///
/// [`Error::InvalidCodeCount`] for a count outside 1 to 100.
pub(crate) fn fresh_codes(
    ctx: &KindContext<'_>,
    count: Option<usize>,
) -> Result<(Value, Vec<BackupCode>), Error> {
    let count = count.unwrap_or(ctx.settings.static_codes.count);
    if !(1..=100).contains(&count) {
        return Err(Error::InvalidCodeCount(count));
    }
    let codes: Vec<BackupCode> = (0..count).map(|_| BackupCode::generate()).collect();
    let mut state = StaticState::default();
    for code in &codes {
        state.add(ctx, code.normalized());
    }
    Ok((write_state(&state), codes))
}

/// How many unused codes a backup-code device state holds.
pub(crate) fn remaining(state: &Value) -> Result<usize, Error> {
    Ok(read_state::<StaticState>(state)?.codes.len())
}

impl DeviceKind for StaticKind {
    fn name(&self) -> &'static str {
        "static"
    }

    fn verbose_name(&self) -> &'static str {
        "backup codes"
    }

    fn label(&self) -> &'static str {
        "Backup codes"
    }

    fn description(&self) -> &'static str {
        "Codes to print or keep in a password manager, each good once, for when your other \
         devices are out of reach."
    }

    fn enrolment(&self) -> Enrolment {
        Enrolment::CodesShownOnce
    }

    fn enrol(&self, ctx: &KindContext<'_>, input: &EnrolInput) -> Result<Enrolled, Error> {
        let (state, codes) = fresh_codes(ctx, input.count)?;
        Ok(Enrolled::with_codes(state, codes))
    }

    fn one_per_user(&self) -> bool {
        true
    }

    fn codes_remaining(&self, state: &Value) -> Result<Option<usize>, Error> {
        remaining(state).map(Some)
    }

    fn throttle_policy(&self, settings: &Settings) -> ThrottlePolicy {
        settings.throttle(settings.static_codes.throttle_factor)
    }

    fn is_recovery(&self) -> bool {
        true
    }

    fn check_token(
        &self,
        ctx: &KindContext<'_>,
        state: &Value,
        token: &str,
    ) -> Result<TokenCheck, Error> {
        let mut static_state: StaticState = read_state(state)?;
        let Some(normalized) = normalize_backup_code(token) else {
            return Ok(TokenCheck::NoMatch { state: None });
        };
        // Compare with every code, so the time taken does not tell which one matched.
        let mut matched = None;
        for (index, stored) in static_state.codes.iter().enumerate() {
            if ctx.verify_code(stored, normalized.as_bytes())? && matched.is_none() {
                matched = Some(index);
            }
        }
        let Some(index) = matched else {
            return Ok(TokenCheck::NoMatch { state: None });
        };
        static_state.codes.remove(index);
        Ok(TokenCheck::Matched {
            state: write_state(&static_state),
        })
    }
}
