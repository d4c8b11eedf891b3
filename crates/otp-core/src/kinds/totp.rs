//! TOTP devices (django-otp's `otp_totp`).

use otp_oath::{Algorithm, Digits, OtpAuthUri, Secret, Totp, TotpParams, TotpWindow};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{read_state, write_state};
use crate::{
    Device, DeviceKind, EnrolInput, Enrolled, Enrolment, Error, KindContext, Settings,
    ThrottlePolicy, TokenCheck,
};

/// The kind of TOTP devices: `totp/N`.
#[derive(Debug, Default)]
pub struct TotpKind;

/// The stored state of a TOTP device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TotpState {
    /// The secret, sealed.
    pub(crate) secret: String,
    pub(crate) algorithm: String,
    pub(crate) digits: u32,
    pub(crate) step: u64,
    pub(crate) t0: i64,
    pub(crate) tolerance: u16,
    pub(crate) drift: i64,
    /// The step of the last accepted code; the next code must come from a later step.
    pub(crate) last_step: Option<u64>,
}

/// Options of a new TOTP device; the defaults are django-otp's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TotpOptions {
    /// Algorithm, digits, step and t0.
    pub params: TotpParams,
    /// Steps accepted either side; `None` takes `OTP_TOTP_TOLERANCE`.
    pub tolerance: Option<u16>,
}

impl TotpState {
    pub(crate) fn new(
        ctx: &KindContext<'_>,
        secret: &Secret,
        options: TotpOptions,
    ) -> Result<Self, Error> {
        // Refuse what cannot work now rather than at the first verification.
        Totp::new(secret, options.params)?;
        Ok(Self {
            secret: ctx.seal(secret.as_bytes())?,
            algorithm: options.params.algorithm.uri_name().to_owned(),
            digits: options.params.digits.get(),
            step: options.params.step,
            t0: options.params.t0,
            tolerance: options.tolerance.unwrap_or(ctx.settings.totp.tolerance),
            drift: 0,
            last_step: None,
        })
    }

    fn params(&self) -> Result<TotpParams, Error> {
        Ok(TotpParams {
            algorithm: self.algorithm.parse::<Algorithm>()?,
            digits: Digits::new(self.digits)?,
            step: self.step,
            t0: self.t0,
        })
    }

    pub(crate) fn secret(&self, ctx: &KindContext<'_>) -> Result<Secret, Error> {
        Ok(Secret::from_bytes_legacy_weak(&ctx.open(&self.secret)?)?)
    }

    /// The provisioning URI: issuer and image from the settings. `t0` and drift cannot be
    /// carried by the format.
    pub(crate) fn uri(&self, ctx: &KindContext<'_>, device: &Device) -> Result<OtpAuthUri, Error> {
        let params = self.params()?;
        let mut uri = OtpAuthUri::totp(self.secret(ctx)?, device.user_key.clone())
            .with_algorithm(params.algorithm)
            .with_digits(params.digits);
        uri.kind = otp_oath::OtpKind::Totp {
            period: params.step,
        };
        uri.issuer = ctx
            .settings
            .totp
            .issuer
            .resolve(device)
            .map(|i| i.replace(':', ""));
        uri.image = ctx.settings.totp.image.resolve(device);
        Ok(uri)
    }
}

impl DeviceKind for TotpKind {
    fn name(&self) -> &'static str {
        "totp"
    }

    fn verbose_name(&self) -> &'static str {
        "TOTP device"
    }

    fn label(&self) -> &'static str {
        "Authenticator app"
    }

    fn description(&self) -> &'static str {
        "An app on your phone or computer shows a new code every 30 seconds."
    }

    fn enrolment(&self) -> Enrolment {
        Enrolment::GeneratedSecret
    }

    fn enrol(&self, ctx: &KindContext<'_>, _input: &EnrolInput) -> Result<Enrolled, Error> {
        let state = TotpState::new(ctx, &Secret::generate(), TotpOptions::default())?;
        Ok(Enrolled::unconfirmed(write_state(&state)))
    }

    fn provisioning_uri(
        &self,
        ctx: &KindContext<'_>,
        device: &Device,
    ) -> Result<Option<OtpAuthUri>, Error> {
        read_state::<TotpState>(&device.state)?
            .uri(ctx, device)
            .map(Some)
    }

    fn throttle_policy(&self, settings: &Settings) -> ThrottlePolicy {
        settings.throttle(settings.totp.throttle_factor)
    }

    fn check_token(
        &self,
        ctx: &KindContext<'_>,
        state: &Value,
        token: &str,
    ) -> Result<TokenCheck, Error> {
        let mut totp_state: TotpState = read_state(state)?;
        let totp = Totp::new(&totp_state.secret(ctx)?, totp_state.params()?)?;
        let Some(min_step) = totp_state.last_step.map_or(Some(0), |s| s.checked_add(1)) else {
            return Ok(TokenCheck::NoMatch { state: None });
        };
        let window = TotpWindow {
            tolerance: totp_state.tolerance,
            drift: totp_state.drift,
            min_step,
        };
        let Some(matched) = totp.verify(token, ctx.now.unix_secs(), window) else {
            return Ok(TokenCheck::NoMatch { state: None });
        };
        totp_state.last_step = Some(matched.step);
        if ctx.settings.totp.sync {
            let bound = i64::from(ctx.settings.totp.max_drift);
            totp_state.drift = matched.drift.clamp(-bound, bound);
        }
        Ok(TokenCheck::Matched {
            state: write_state(&totp_state),
        })
    }

    fn reseal(&self, ctx: &KindContext<'_>, state: &Value) -> Result<Option<Value>, Error> {
        let mut totp_state: TotpState = read_state(state)?;
        Ok(ctx.reseal(&totp_state.secret)?.map(|sealed| {
            totp_state.secret = sealed;
            write_state(&totp_state)
        }))
    }
}
