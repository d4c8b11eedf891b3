//! Email devices (django-otp's `otp_email`): a 6-digit code sent on request, kept only as a
//! keyed hash, valid for a while, void after use or after too many wrong tries.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use super::{read_state, write_state};
use crate::mailer::{Mailer, OutgoingEmail};
use crate::{
    BoxFuture, Challenge, CooldownPolicy, DeviceKind, EnrolInput, Enrolled, Enrolment, Error,
    KindContext, Settings, ThrottlePolicy, Timestamp, TokenCheck,
};

/// Digits of an email code.
const CODE_DIGITS: usize = 6;

/// The kind of email devices: `email/N`. It sends codes through its [`Mailer`].
#[derive(Debug, Clone)]
pub struct EmailKind {
    mailer: Arc<dyn Mailer>,
    settings: crate::EmailSettings,
}

impl EmailKind {
    /// An email kind that sends through `mailer`, with the message settings of `settings`.
    pub fn new(mailer: Arc<dyn Mailer>, settings: crate::EmailSettings) -> Self {
        Self { mailer, settings }
    }
}

/// The stored state of an email device.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EmailState {
    /// Where codes go.
    pub(crate) address: String,
    /// The hash of the current code, if one is outstanding.
    pub(crate) code: Option<String>,
    /// When the current code expires (milliseconds since the epoch).
    pub(crate) valid_until: Option<i64>,
    /// Wrong tries against the current code.
    pub(crate) failures: u32,
}

impl EmailState {
    pub(crate) fn new(address: &str) -> Result<Self, Error> {
        check_email_address(address)?;
        Ok(Self {
            address: address.to_owned(),
            code: None,
            valid_until: None,
            failures: 0,
        })
    }
}

/// Whether `address` is a plausible email address: one `@` between a non-empty local part and
/// a domain with a dot (not at either end), no white space, control characters, angle
/// brackets, commas or semicolons (which could smuggle in another recipient), at most 254
/// characters. It catches typing mistakes and tricks; the mail server has the last word. The
/// one rule for the addresses of email devices and, in the reference server, of accounts.
///
/// # Errors
///
/// [`Error::InvalidEmailAddress`].
pub fn check_email_address(address: &str) -> Result<(), Error> {
    let valid = address.chars().count() <= 254
        && !address
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';'))
        && address.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        });
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidEmailAddress)
    }
}

/// A uniformly random code of `CODE_DIGITS` decimal digits from the OS random number generator.
fn random_code() -> Zeroizing<String> {
    const RANGE: u32 = 1_000_000;
    // Rejection sampling: the largest multiple of RANGE below 2^32 keeps the draw unbiased.
    const LIMIT: u32 = u32::MAX - u32::MAX % RANGE;
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).expect("the operating system random number generator failed");
        let value = u32::from_le_bytes(bytes);
        if value < LIMIT {
            return Zeroizing::new(format!("{:0width$}", value % RANGE, width = CODE_DIGITS));
        }
    }
}

/// Replaces `{token}` and `{{ token }}` (django's spelling) in a template; anything else,
/// braces included, stays as written.
fn render(template: &str, token: &str) -> String {
    template
        .replace("{{ token }}", token)
        .replace("{{token}}", token)
        .replace("{token}", token)
}

impl DeviceKind for EmailKind {
    fn name(&self) -> &'static str {
        "email"
    }

    fn verbose_name(&self) -> &'static str {
        "email device"
    }

    fn label(&self) -> &'static str {
        "Email codes"
    }

    fn description(&self) -> &'static str {
        "A code is sent to your email address each time you log in."
    }

    fn enrolment(&self) -> Enrolment {
        Enrolment::DeliveredCode
    }

    fn recipient(&self, state: &Value) -> Result<Option<String>, Error> {
        Ok(Some(read_state::<EmailState>(state)?.address))
    }

    fn enrol(&self, _ctx: &KindContext<'_>, input: &EnrolInput) -> Result<Enrolled, Error> {
        let address = input.address.as_deref().ok_or(Error::InvalidEmailAddress)?;
        Ok(Enrolled::unconfirmed(write_state(&EmailState::new(
            address.trim(),
        )?)))
    }

    fn throttle_policy(&self, settings: &Settings) -> ThrottlePolicy {
        settings.throttle(settings.email.throttle_factor)
    }

    fn is_interactive(&self) -> bool {
        true
    }

    fn cooldown(&self, settings: &Settings) -> CooldownPolicy {
        CooldownPolicy::new(settings.email.cooldown)
    }

    fn check_token(
        &self,
        ctx: &KindContext<'_>,
        state: &Value,
        token: &str,
    ) -> Result<TokenCheck, Error> {
        let mut email_state: EmailState = read_state(state)?;
        let (Some(stored), Some(valid_until)) = (&email_state.code, email_state.valid_until) else {
            return Ok(TokenCheck::NoMatch { state: None });
        };
        if ctx.now >= Timestamp::from_unix_millis(valid_until) {
            return Ok(TokenCheck::NoMatch { state: None });
        }
        let token = token.trim();
        let well_formed = token.len() == CODE_DIGITS && token.bytes().all(|b| b.is_ascii_digit());
        if well_formed && ctx.verify_code(stored, token.as_bytes())? {
            email_state.code = None;
            email_state.valid_until = None;
            email_state.failures = 0;
            return Ok(TokenCheck::Matched {
                state: write_state(&email_state),
            });
        }
        email_state.failures = email_state.failures.saturating_add(1);
        if email_state.failures >= ctx.settings.email.max_failures {
            email_state.code = None;
            email_state.valid_until = None;
        }
        Ok(TokenCheck::NoMatch {
            state: Some(write_state(&email_state)),
        })
    }

    fn prepare_challenge(
        &self,
        ctx: &KindContext<'_>,
        state: &Value,
    ) -> Result<Option<Challenge>, Error> {
        let mut email_state: EmailState = read_state(state)?;
        let code = random_code();
        let validity = ctx.settings.email.token_validity;
        email_state.code = Some(ctx.hash_code(code.as_bytes()));
        email_state.valid_until = Some(ctx.now.plus(validity).unix_millis());
        email_state.failures = 0;
        Ok(Some(Challenge {
            state: write_state(&email_state),
            recipient: email_state.address,
            code,
            valid_for: validity,
        }))
    }

    fn deliver<'a>(&'a self, challenge: &'a Challenge) -> BoxFuture<'a, Result<(), Error>> {
        Box::pin(async move {
            let settings = &self.settings;
            let email = OutgoingEmail {
                from: settings.sender.clone(),
                to: challenge.recipient.clone(),
                subject: render(&settings.subject, &challenge.code),
                text_body: Zeroizing::new(render(&settings.body_template, &challenge.code)),
                html_body: settings
                    .body_html_template
                    .as_deref()
                    .map(|template| Zeroizing::new(render(template, &challenge.code))),
            };
            self.mailer.send(&email).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: Vec<_> = (0..50).map(|_| random_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(codes.iter().any(|c| **c != *codes[0]));
    }

    #[test]
    fn templates_replace_only_the_token() {
        assert_eq!(
            render("Code {token} {{ token }} {other} {", "123456"),
            "Code 123456 123456 {other} {"
        );
    }

    #[test]
    fn addresses_get_a_light_check() {
        assert!(check_email_address("alice@example.com").is_ok());
        for bad in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a b@example.com",
            "a@b@c",
            "alice@localhost",
            "alice@example.com.",
            "<victim@example.com>",
            "victim@example.com>,other@example.com",
            "a@example.com;b@example.com",
        ] {
            assert_eq!(
                check_email_address(bad),
                Err(Error::InvalidEmailAddress),
                "{bad:?}"
            );
        }
    }
}
