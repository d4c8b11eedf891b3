//! HOTP devices (django-otp's `otp_hotp`).

use otp_oath::{Algorithm, Digits, Hotp, HotpParams, OtpAuthUri, Secret};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{read_state, write_state};
use crate::{
    Device, DeviceKind, EnrolInput, Enrolled, Enrolment, Error, KindContext, Settings,
    ThrottlePolicy, TokenCheck,
};

/// The kind of HOTP devices: `hotp/N`.
#[derive(Debug, Default)]
pub struct HotpKind;

/// The stored state of an HOTP device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HotpState {
    /// The secret, sealed.
    pub(crate) secret: String,
    pub(crate) algorithm: String,
    pub(crate) digits: u32,
    pub(crate) tolerance: u16,
    /// The next counter value to expect.
    pub(crate) counter: u64,
}

/// Options of a new HOTP device; the defaults are django-otp's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HotpOptions {
    /// Algorithm and digits.
    pub params: HotpParams,
    /// Missed codes tolerated; `None` takes `OTP_HOTP_TOLERANCE`.
    pub tolerance: Option<u16>,
    /// The first counter value to expect.
    pub counter: u64,
}

impl HotpState {
    pub(crate) fn new(
        ctx: &KindContext<'_>,
        secret: &Secret,
        options: HotpOptions,
    ) -> Result<Self, Error> {
        Ok(Self {
            secret: ctx.seal(secret.as_bytes())?,
            algorithm: options.params.algorithm.uri_name().to_owned(),
            digits: options.params.digits.get(),
            tolerance: options.tolerance.unwrap_or(ctx.settings.hotp.tolerance),
            counter: options.counter,
        })
    }

    fn params(&self) -> Result<HotpParams, Error> {
        Ok(HotpParams {
            algorithm: self.algorithm.parse::<Algorithm>()?,
            digits: Digits::new(self.digits)?,
        })
    }

    fn secret(&self, ctx: &KindContext<'_>) -> Result<Secret, Error> {
        Ok(Secret::from_bytes_legacy_weak(&ctx.open(&self.secret)?)?)
    }

    /// The provisioning URI with the current counter and the `OTP_HOTP_ISSUER` issuer.
    pub(crate) fn uri(&self, ctx: &KindContext<'_>, device: &Device) -> Result<OtpAuthUri, Error> {
        let params = self.params()?;
        let mut uri = OtpAuthUri::hotp(self.secret(ctx)?, device.user_key.clone(), self.counter)
            .with_algorithm(params.algorithm)
            .with_digits(params.digits);
        uri.issuer = ctx
            .settings
            .hotp
            .issuer
            .resolve(device)
            .map(|i| i.replace(':', ""));
        Ok(uri)
    }
}

impl DeviceKind for HotpKind {
    fn name(&self) -> &'static str {
        "hotp"
    }

    fn verbose_name(&self) -> &'static str {
        "HOTP device"
    }

    fn label(&self) -> &'static str {
        "Hardware token"
    }

    fn description(&self) -> &'static str {
        "A key fob or app that shows the next code each time you press its button."
    }

    fn enrolment(&self) -> Enrolment {
        Enrolment::GeneratedSecret
    }

    fn enrol(&self, ctx: &KindContext<'_>, _input: &EnrolInput) -> Result<Enrolled, Error> {
        let state = HotpState::new(ctx, &Secret::generate(), HotpOptions::default())?;
        Ok(Enrolled::unconfirmed(write_state(&state)))
    }

    fn provisioning_uri(
        &self,
        ctx: &KindContext<'_>,
        device: &Device,
    ) -> Result<Option<OtpAuthUri>, Error> {
        read_state::<HotpState>(&device.state)?
            .uri(ctx, device)
            .map(Some)
    }

    fn throttle_policy(&self, settings: &Settings) -> ThrottlePolicy {
        settings.throttle(settings.hotp.throttle_factor)
    }

    fn check_token(
        &self,
        ctx: &KindContext<'_>,
        state: &Value,
        token: &str,
    ) -> Result<TokenCheck, Error> {
        let mut hotp_state: HotpState = read_state(state)?;
        let hotp = Hotp::new(&hotp_state.secret(ctx)?, hotp_state.params()?);
        let next = hotp
            .verify(token, hotp_state.counter, hotp_state.tolerance)
            .and_then(|matched| matched.checked_add(1));
        let Some(next) = next else {
            return Ok(TokenCheck::NoMatch { state: None });
        };
        hotp_state.counter = next;
        Ok(TokenCheck::Matched {
            state: write_state(&hotp_state),
        })
    }

    fn reseal(&self, ctx: &KindContext<'_>, state: &Value) -> Result<Option<Value>, Error> {
        let mut hotp_state: HotpState = read_state(state)?;
        Ok(ctx.reseal(&hotp_state.secret)?.map(|sealed| {
            hotp_state.secret = sealed;
            write_state(&hotp_state)
        }))
    }
}
