//! [`Otp`]: the public API, the counterpart of django-otp's `verify_token`, `match_token`,
//! `devices_for_user`, `user_has_device` and `device_classes`, plus enrolment and operations.

use std::fmt;
use std::sync::Arc;

use otp_oath::{OtpAuthUri, Secret};
use tokio::sync::broadcast;

use crate::kinds::email::EmailState;
use crate::kinds::hotp::{HotpOptions, HotpState};
use crate::kinds::static_codes::StaticState;
use crate::kinds::totp::{TotpOptions, TotpState};
use crate::kinds::{EmailKind, HotpKind, StaticKind, TotpKind, read_state, write_state};
use crate::mailer::Mailer;
use crate::store::{Allowance, ClaimedWrite, Conn, DeviceUpdate, NewDevice};
use crate::turns::DeviceTurns;
use crate::{
    BackupCode, ChallengeOutcome, Clock, Device, DeviceId, DeviceKind, EnrolInput, Error, KeyRing,
    KindContext, KindRegistry, NotAllowedReason, OtpEvent, Settings, Store, SystemClock,
    ThrottleState, TokenCheck, VerifyOutcome,
};

/// How often a compare-and-set may lose before a verification gives up. Each loss means another
/// writer changed the same device in the meantime; hundreds in a row do not happen by chance.
const MAX_CAS_ATTEMPTS: usize = 256;

/// The window of [`Settings::challenges_per_hour`](crate::Settings::challenges_per_hour).
const CHALLENGE_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// Events buffered per subscriber before the slowest one starts missing some.
const EVENT_BUFFER: usize = 1024;

/// The framework: devices in a store, their kinds, the keys that seal their secrets, the clock,
/// the settings. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Otp {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    keys: KeyRing,
    kinds: KindRegistry,
    clock: Arc<dyn Clock>,
    settings: Settings,
    events: broadcast::Sender<OtpEvent>,
    /// Verifications of one device take turns in this process (see [`DeviceTurns`]).
    turns: DeviceTurns,
}

impl fmt::Debug for Otp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Otp")
            .field("store", &self.inner.store)
            .field("keys", &self.inner.keys)
            .field("kinds", &self.kind_names())
            .finish_non_exhaustive()
    }
}

/// Builds an [`Otp`].
#[derive(Debug)]
pub struct OtpBuilder {
    store: Store,
    keys: KeyRing,
    settings: Settings,
    clock: Arc<dyn Clock>,
    mailer: Option<Arc<dyn Mailer>>,
    extra_kinds: Vec<Arc<dyn DeviceKind>>,
}

impl OtpBuilder {
    /// Replaces the default settings.
    pub fn with_settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Replaces the system clock (tests freeze time with [`ManualClock`](crate::ManualClock)).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the mailer of email devices. Without one, challenges of email devices fail with
    /// [`Error::Delivery`].
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = Some(mailer);
        self
    }

    /// Registers a kind after the built-in ones (`totp`, `hotp`, `email`, `static`, in that
    /// order).
    pub fn with_kind(mut self, kind: Arc<dyn DeviceKind>) -> Self {
        self.extra_kinds.push(kind);
        self
    }

    /// Builds the framework.
    ///
    /// # Errors
    ///
    /// [`Error::DuplicateKind`] or [`Error::InvalidDeviceId`] for a badly named extra kind.
    pub fn build(self) -> Result<Otp, Error> {
        let mailer = self.mailer.unwrap_or_else(|| Arc::new(NoMailer));
        let mut kinds = KindRegistry::new();
        kinds.register(Arc::new(TotpKind))?;
        kinds.register(Arc::new(HotpKind))?;
        kinds.register(Arc::new(EmailKind::new(
            mailer,
            self.settings.email.clone(),
        )))?;
        kinds.register(Arc::new(StaticKind))?;
        for kind in self.extra_kinds {
            kinds.register(kind)?;
        }
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(Otp {
            inner: Arc::new(Inner {
                store: self.store,
                keys: self.keys,
                kinds,
                clock: self.clock,
                settings: self.settings,
                events,
                turns: DeviceTurns::default(),
            }),
        })
    }
}

/// The mailer of a framework built without one.
#[derive(Debug)]
struct NoMailer;

impl Mailer for NoMailer {
    fn send<'a>(
        &'a self,
        _email: &'a crate::OutgoingEmail,
    ) -> crate::BoxFuture<'a, Result<(), Error>> {
        Box::pin(async { Err(Error::Delivery("no mailer is configured".into())) })
    }
}

/// Whether a verification logs in or finishes enrolment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Login,
    Confirm,
}

/// Who pays the account failure budget for a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Budget {
    /// The verification claims its own attempt (every public path).
    ClaimPerAttempt,
    /// The caller claimed one already ([`Otp::match_token`]).
    AlreadyClaimed,
}

/// What [`Otp::rotate_keys`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RotationReport {
    /// Devices looked at.
    pub examined: u64,
    /// Devices whose secrets were re-sealed under the newest key.
    pub resealed: u64,
}

impl Otp {
    /// Starts building a framework on `store` with the application keys `keys`.
    pub fn builder(store: Store, keys: KeyRing) -> OtpBuilder {
        OtpBuilder {
            store,
            keys,
            settings: Settings::default(),
            clock: Arc::new(SystemClock),
            mailer: None,
            extra_kinds: Vec::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The application keys, for an app's own keyed hashes and seals (a web layer's stateless
    /// CSRF tokens, say). Use a context of your own with them, never one of this crate's.
    pub fn key_ring(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The kinds, in their defined order (django-otp's `device_classes()`).
    pub fn device_kinds(&self) -> impl Iterator<Item = &Arc<dyn DeviceKind>> {
        self.inner.kinds.iter()
    }

    fn kind_names(&self) -> Vec<&'static str> {
        self.device_kinds().map(|k| k.name()).collect()
    }

    /// The kind called `name`.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKind`].
    pub fn kind(&self, name: &str) -> Result<&Arc<dyn DeviceKind>, Error> {
        self.inner
            .kinds
            .get(name)
            .ok_or_else(|| Error::UnknownKind(name.chars().take(32).collect()))
    }

    /// Receives every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<OtpEvent> {
        self.inner.events.subscribe()
    }

    fn emit(&self, event: OtpEvent) {
        event.log();
        // No subscriber is fine.
        let _ = self.inner.events.send(event);
    }

    fn context<'a>(&'a self, user_key: &'a str, kind: &'a str) -> KindContext<'a> {
        KindContext {
            now: self.inner.clock.now(),
            user_key,
            settings: &self.inner.settings,
            keys: &self.inner.keys,
            kind,
        }
    }

    /// The user's devices in the kinds' defined order, then by creation; `confirmed: Some(b)`
    /// keeps only devices whose confirmation is `b` (django-otp's `devices_for_user`).
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn devices_for_user(
        &self,
        user_key: &str,
        confirmed: Option<bool>,
    ) -> Result<Vec<Device>, Error> {
        let mut devices = self.inner.store.devices_of(user_key, confirmed).await?;
        devices.sort_by_key(|d| self.inner.kinds.position(d.kind()));
        Ok(devices)
    }

    /// Whether the user has a device (django-otp's `user_has_device`).
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn user_has_device(
        &self,
        user_key: &str,
        confirmed: Option<bool>,
    ) -> Result<bool, Error> {
        Ok(!self
            .inner
            .store
            .devices_of(user_key, confirmed)
            .await?
            .is_empty())
    }

    /// The device with this id if it belongs to `user_key`.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn device_of(&self, user_key: &str, id: &DeviceId) -> Result<Option<Device>, Error> {
        Ok(self
            .inner
            .store
            .device(id)
            .await?
            .filter(|d| d.user_key == user_key))
    }

    /// The device with this id, whoever owns it (for operators).
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn device(&self, id: &DeviceId) -> Result<Option<Device>, Error> {
        self.inner.store.device(id).await
    }

    /// Verifies `token` against the user's confirmed device `device_id` (django-otp's
    /// `verify_token`, with the original's weaknesses fixed): the device must belong to the user
    /// and be confirmed, throttling and the account failure budget apply, and the token is
    /// accepted at most once, across threads, processes and servers.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotFound`] if the user has no such device (another user's device is
    /// reported the same way, and nothing of it changes); [`Error::Database`]; broken stored
    /// state. A wrong token is [`VerifyOutcome::Invalid`], not an error.
    pub async fn verify_token(
        &self,
        user_key: &str,
        device_id: &DeviceId,
        token: &str,
    ) -> Result<VerifyOutcome, Error> {
        self.verify(
            user_key,
            device_id,
            token,
            Purpose::Login,
            Budget::ClaimPerAttempt,
        )
        .await
    }

    /// Verifies `token` against an **unconfirmed** device and confirms it if the token is right:
    /// the last step of enrolment. The token is consumed as at login, so it cannot be used
    /// again.
    ///
    /// # Errors
    ///
    /// As [`Otp::verify_token`].
    pub async fn confirm_device(
        &self,
        user_key: &str,
        device_id: &DeviceId,
        token: &str,
    ) -> Result<VerifyOutcome, Error> {
        self.verify(
            user_key,
            device_id,
            token,
            Purpose::Confirm,
            Budget::ClaimPerAttempt,
        )
        .await
    }

    async fn verify(
        &self,
        user_key: &str,
        device_id: &DeviceId,
        token: &str,
        purpose: Purpose,
        budget: Budget,
    ) -> Result<VerifyOutcome, Error> {
        let mut claimed = None;
        // Before the connection: a verification waiting for its turn holds none.
        let mut turn = self.inner.turns.turn(device_id.number()).await;
        let mut conn = self.inner.store.conn().await?;
        let result = self
            .verify_claiming(
                &mut conn,
                turn.device(),
                user_key,
                device_id,
                token,
                purpose,
                budget,
                &mut claimed,
            )
            .await;
        if result.is_ok() {
            conn.finish();
        } else {
            // Back to sqlx's pool, which checks it.
            drop(conn);
        }
        drop(turn);
        // An attempt that ended before a token was judged gives its claim back.
        let judged = matches!(
            result,
            Ok(VerifyOutcome::Verified(_) | VerifyOutcome::Invalid { .. })
        );
        if claimed.is_some() && !judged {
            self.inner.store.release_account_attempt(user_key).await?;
        }
        result
    }

    /// The body of [`Otp::verify`]. For kinds that are not recovery codes, one attempt of the
    /// account's failure budget is claimed for each token checked, atomically with the
    /// device's compare-and-set ([`Store::claim_and_set`]): the check takes effect only if
    /// the attempt could be claimed, so concurrent attempts can never check more tokens than
    /// the budget allows, and a right token's claim resets the account. A verification is one
    /// read and one write, in one commit, on one connection (see `store::Conn`).
    ///
    /// `last_stored` is the device as the previous verification of this process stored it,
    /// if one was queued right before this one (see [`DeviceTurns`]): it saves reading the
    /// device, since the write is a compare-and-set on its version, but nothing is refused
    /// on its word: a refusal is decided on the device read from the database. This one's
    /// result is left there for the next.
    ///
    /// `claimed` is set if an attempt was claimed and kept without its check taking effect
    /// (only when a compare-and-set is lost after the claim, which the combined write rules
    /// out); [`Otp::verify`] gives it back if the attempt then ends without a judgement.
    #[allow(clippy::too_many_arguments)]
    async fn verify_claiming(
        &self,
        conn: &mut Conn,
        last_stored: &mut Option<Device>,
        user_key: &str,
        device_id: &DeviceId,
        token: &str,
        purpose: Purpose,
        budget: Budget,
        claimed: &mut Option<u32>,
    ) -> Result<VerifyOutcome, Error> {
        let kind = self.kind(device_id.kind())?;
        let limit = self.inner.settings.failure_budget.limit;
        let store = &self.inner.store;
        let mut hint = last_stored
            .take()
            .filter(|d| d.id == *device_id && d.user_key == user_key);
        // Its own loop rather than `Otp::modify`: a pass may start from the hint instead of a
        // read, a refusal of a hinted device reads again instead of answering, the write may
        // claim an attempt of the budget with it, and all of it runs on `conn`.
        for _ in 0..MAX_CAS_ATTEMPTS {
            // `hinted`: taken from the previous verification, not read; any refusal below
            // goes back to the database first.
            let (device, hinted) = match hint.take() {
                Some(device) => (device, true),
                None => {
                    let device = store
                        .device_on(conn, device_id)
                        .await?
                        .filter(|d| d.user_key == user_key)
                        .ok_or(Error::DeviceNotFound)?;
                    (device, false)
                }
            };
            let refusal = match (purpose, device.confirmed) {
                (Purpose::Login, false) => Some(NotAllowedReason::Unconfirmed),
                (Purpose::Confirm, true) => Some(NotAllowedReason::AlreadyConfirmed),
                _ => None,
            };
            if let Some(reason) = refusal {
                if hinted {
                    continue;
                }
                return Ok(VerifyOutcome::NotAllowed { reason });
            }
            let ctx = self.context(user_key, kind.name());
            let now = ctx.now;
            let policy = kind.throttle_policy(&self.inner.settings);
            if let Err(throttled) = device.throttle.check(&policy, now) {
                if hinted {
                    continue;
                }
                self.emit(OtpEvent::Throttled {
                    at: now,
                    user_key: user_key.to_owned(),
                    device_id: device_id.clone(),
                    retry_after: throttled.retry_after,
                });
                return Ok(VerifyOutcome::Throttled {
                    failure_count: throttled.failure_count,
                    retry_after: throttled.retry_after,
                });
            }
            let claim_with_write =
                !kind.is_recovery() && budget == Budget::ClaimPerAttempt && claimed.is_none();
            if claim_with_write && limit == 0 {
                return Ok(self.account_locked(user_key, now));
            }
            let mut update = DeviceUpdate::from(&device);
            let checked = match kind.check_token(&ctx, &device.state, token) {
                Ok(checked) => checked,
                Err(_) if hinted => continue,
                Err(err) => return Err(err),
            };
            let matched = match checked {
                TokenCheck::Matched { state } => {
                    update.state = state;
                    update.throttle = ThrottleState::default();
                    update.last_used_at = Some(now);
                    // A success lifts the challenge cooldown, as in django-otp.
                    update.last_challenge_at = None;
                    update.confirmed = true;
                    true
                }
                TokenCheck::NoMatch { state } => {
                    if let Some(state) = state {
                        update.state = state;
                    }
                    update.throttle.record_failure(now);
                    false
                }
            };
            let (stored, claimed_now) = if claim_with_write {
                match store
                    .claim_and_set(conn, &device, update, user_key, limit, matched)
                    .await?
                {
                    ClaimedWrite::Written {
                        device,
                        account_failures,
                    } => (device, Some(account_failures)),
                    ClaimedWrite::BudgetExhausted => {
                        return Ok(self.account_locked(user_key, now));
                    }
                    ClaimedWrite::Lost { claimed: kept } => {
                        *claimed = kept;
                        continue; // Another writer came first: re-read and decide again.
                    }
                }
            } else {
                let Some(stored) = store.compare_and_set_on(conn, &device, update).await? else {
                    continue; // Another writer came first: re-read and decide again.
                };
                (stored, None)
            };
            *last_stored = Some(stored.clone());
            if matched {
                // The combined claim has reset the account already.
                if claimed_now.is_none() {
                    store.reset_account_on(conn, user_key).await?;
                }
                self.emit(OtpEvent::Verified {
                    at: now,
                    user_key: user_key.to_owned(),
                    device_id: device_id.clone(),
                });
                return Ok(VerifyOutcome::Verified(stored));
            }
            // The claimed attempt is the failure's record; recovery codes count theirs now.
            let account_failures = match (claimed_now.or(*claimed), kind.is_recovery(), budget) {
                (Some(count), _, _) => Some(count),
                (None, true, Budget::ClaimPerAttempt) => {
                    Some(store.record_account_failure_on(conn, user_key).await?)
                }
                _ => None,
            };
            self.emit(OtpEvent::VerificationFailed {
                at: now,
                user_key: user_key.to_owned(),
                device_id: device_id.clone(),
                failure_count: stored.throttle.failure_count,
            });
            if account_failures == Some(limit) {
                self.emit(OtpEvent::AccountLocked {
                    at: now,
                    user_key: user_key.to_owned(),
                });
            }
            return Ok(VerifyOutcome::Invalid {
                failure_count: stored.throttle.failure_count,
            });
        }
        Err(Error::Contention)
    }

    /// The outcome of an attempt on a locked account, with its event.
    fn account_locked(&self, user_key: &str, at: crate::Timestamp) -> VerifyOutcome {
        self.emit(OtpEvent::AccountLocked {
            at,
            user_key: user_key.to_owned(),
        });
        VerifyOutcome::NotAllowed {
            reason: NotAllowedReason::AccountLocked,
        }
    }

    /// Tries `token` against each of the user's confirmed devices in order and returns the
    /// first that accepts it. Throttled devices are skipped; a miss counts **one** failure
    /// against the account budget, not one per device (django-otp counted one per device).
    ///
    /// # Errors
    ///
    /// As [`Otp::verify_token`].
    #[deprecated(note = "verify against one device the user chose, with `verify_token`")]
    pub async fn match_token(&self, user_key: &str, token: &str) -> Result<Option<Device>, Error> {
        let limit = self.inner.settings.failure_budget.limit;
        // One claim pays for the whole attempt; without one only recovery codes are tried.
        let claimed = self
            .inner
            .store
            .claim_account_attempt(user_key, limit)
            .await?;
        for device in self.devices_for_user(user_key, Some(true)).await? {
            let kind = self.kind(device.kind())?;
            if claimed.is_none() && !kind.is_recovery() {
                continue;
            }
            let ctx = self.context(user_key, kind.name());
            let policy = kind.throttle_policy(&self.inner.settings);
            if device.throttle.check(&policy, ctx.now).is_err() {
                continue;
            }
            let TokenCheck::Matched { .. } = kind.check_token(&ctx, &device.state, token)? else {
                continue;
            };
            // Consume it through the one path that guarantees exactly once.
            let budget = if claimed.is_some() {
                Budget::AlreadyClaimed
            } else {
                Budget::ClaimPerAttempt
            };
            match self
                .verify(user_key, &device.id, token, Purpose::Login, budget)
                .await?
            {
                VerifyOutcome::Verified(device) => return Ok(Some(device)),
                // Another request spent the code first; that failure is counted.
                VerifyOutcome::Invalid { .. } => return Ok(None),
                _ => {}
            }
        }
        let failures = match claimed {
            Some(count) => count,
            None => self.inner.store.record_account_failure(user_key).await?,
        };
        if failures == limit {
            self.emit(OtpEvent::AccountLocked {
                at: self.inner.clock.now(),
                user_key: user_key.to_owned(),
            });
        }
        Ok(None)
    }

    /// Sends a challenge (an email code) for the user's device. Unconfirmed devices may be
    /// challenged, so that enrolment can send its confirmation code. The device's cooldown
    /// applies, and so does the user's allowance of challenges per hour across all their
    /// devices ([`Settings::challenges_per_hour`](crate::Settings::challenges_per_hour)), and
    /// the recipient's allowance across all accounts
    /// ([`Settings::email_per_address_per_hour`](crate::Settings::email_per_address_per_hour)),
    /// so that many accounts cannot flood one address; each answers
    /// [`ChallengeOutcome::Cooldown`] with the time to wait. A delivery that fails starts
    /// none of them.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotFound`]; [`Error::Delivery`] if the message could not be sent (the
    /// detail is logged, and is safe to show to operators but not to users);
    /// [`Error::Database`].
    pub async fn generate_challenge(
        &self,
        user_key: &str,
        device_id: &DeviceId,
    ) -> Result<ChallengeOutcome, Error> {
        let kind = self.kind(device_id.kind())?;
        if self.device_of(user_key, device_id).await?.is_none() {
            return Err(Error::DeviceNotFound);
        }
        if !kind.is_interactive() {
            return Ok(ChallengeOutcome::NotAllowed {
                reason: NotAllowedReason::NotInteractive,
            });
        }
        // Its own loop rather than `Otp::modify`: between the read and the write it reads the
        // account and claims the hour's allowances (statements of their own, which a closure
        // could not await), and a lost compare-and-set gives the allowances back.
        for _ in 0..MAX_CAS_ATTEMPTS {
            let device = self
                .device_of(user_key, device_id)
                .await?
                .ok_or(Error::DeviceNotFound)?;
            let ctx = self.context(user_key, kind.name());
            let now = ctx.now;
            let account_failures = self.inner.store.account_failures(user_key).await?;
            if self
                .inner
                .settings
                .failure_budget
                .is_exhausted(account_failures)
                && !kind.is_recovery()
            {
                return Ok(ChallengeOutcome::NotAllowed {
                    reason: NotAllowedReason::AccountLocked,
                });
            }
            if let Err(next) = kind
                .cooldown(&self.inner.settings)
                .check(device.last_challenge_at, now)
            {
                return Ok(ChallengeOutcome::Cooldown {
                    retry_after: next.since(now),
                });
            }
            let Some(challenge) = kind.prepare_challenge(&ctx, &device.state)? else {
                return Ok(ChallengeOutcome::NotAllowed {
                    reason: NotAllowedReason::NotInteractive,
                });
            };
            let recipient = self.recipient_hash(&challenge.recipient);
            let allowances = self.challenge_allowances(user_key, &recipient);
            if let Err(retry_after) = self.claim_challenges(&allowances, now).await? {
                tracing::warn!(
                    user = user_key,
                    device = %device_id,
                    "challenge refused: the challenges of the hour are used up"
                );
                return Ok(ChallengeOutcome::Cooldown { retry_after });
            }
            let mut update = DeviceUpdate::from(&device);
            update.state = challenge.state.clone();
            update.last_challenge_at = Some(now);
            let Some(stored) = self.inner.store.compare_and_set(&device, update).await? else {
                self.release_challenges(&allowances).await?;
                continue;
            };
            if let Err(err) = kind.deliver(&challenge).await {
                self.release_challenges(&allowances).await?;
                tracing::error!(device = %device_id, error = %err, "challenge delivery failed");
                self.emit(OtpEvent::ChallengeFailed {
                    at: now,
                    user_key: user_key.to_owned(),
                    device_id: device_id.clone(),
                });
                // Undo: the cooldown did not start and the old state (and code) stands, unless
                // someone changed the device since.
                let mut undo = DeviceUpdate::from(&stored);
                undo.state = device.state.clone();
                undo.last_challenge_at = device.last_challenge_at;
                self.inner.store.compare_and_set(&stored, undo).await?;
                return Err(err);
            }
            self.emit(OtpEvent::ChallengeSent {
                at: now,
                user_key: user_key.to_owned(),
                device_id: device_id.clone(),
            });
            return Ok(ChallengeOutcome::Sent {
                recipient: challenge.recipient.clone(),
                valid_for: challenge.valid_for,
            });
        }
        Err(Error::Contention)
    }

    /// The keyed hash by which a recipient's allowance is kept: the address, trimmed and in
    /// lower case, never stored in the clear.
    fn recipient_hash(&self, recipient: &str) -> String {
        let normalised = recipient.trim().to_lowercase();
        self.inner
            .keys
            .hash_code(b"otp-core/challenge-recipient", normalised.as_bytes())
            .to_stored()
    }

    /// The hourly allowances a challenge of `user_key` to `recipient` (a hash) takes from,
    /// with their limits: the account's and the recipient's, those that are on.
    fn challenge_allowances<'a>(
        &self,
        user_key: &'a str,
        recipient: &'a str,
    ) -> Vec<(Allowance<'a>, u32)> {
        let settings = &self.inner.settings;
        [
            (Allowance::Account(user_key), settings.challenges_per_hour),
            (
                Allowance::Recipient(recipient),
                settings.email_per_address_per_hour,
            ),
        ]
        .into_iter()
        .filter(|(_, limit)| *limit > 0)
        .collect()
    }

    /// Claims one challenge of each allowance; if one is used up, gives back those claimed and
    /// returns the wait.
    async fn claim_challenges(
        &self,
        allowances: &[(Allowance<'_>, u32)],
        now: crate::Timestamp,
    ) -> Result<Result<(), std::time::Duration>, Error> {
        for (n, (allowance, limit)) in allowances.iter().enumerate() {
            let claim = self
                .inner
                .store
                .claim_challenge(*allowance, now, CHALLENGE_WINDOW, *limit)
                .await?;
            if let Err(retry_after) = claim {
                tracing::debug!(?allowance, limit, "challenge allowance used up");
                self.release_challenges(&allowances[..n]).await?;
                return Ok(Err(retry_after));
            }
        }
        Ok(Ok(()))
    }

    /// Gives back the challenges claimed by [`Otp::claim_challenges`].
    async fn release_challenges(&self, allowances: &[(Allowance<'_>, u32)]) -> Result<(), Error> {
        for (allowance, _) in allowances {
            self.inner.store.release_challenge(*allowance).await?;
        }
        Ok(())
    }

    async fn insert(
        &self,
        user_key: &str,
        kind: &str,
        name: &str,
        confirmed: bool,
        state: serde_json::Value,
    ) -> Result<Device, Error> {
        check_user_key(user_key)?;
        check_device_name(name)?;
        self.inner
            .store
            .insert_device(NewDevice {
                user_key,
                kind,
                name,
                confirmed,
                created_at: self.inner.clock.now(),
                state,
            })
            .await
    }

    /// Creates a device of any registered kind, for kinds defined outside this crate: `init`
    /// builds the kind's initial state, with a context to seal secrets and hash codes in.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKind`], what `init` returns, and as [`Otp::create_totp_device`].
    pub async fn create_device(
        &self,
        user_key: &str,
        kind: &str,
        name: &str,
        confirmed: bool,
        init: impl FnOnce(&KindContext<'_>) -> Result<serde_json::Value, Error>,
    ) -> Result<Device, Error> {
        let kind = self.kind(kind)?.name();
        let state = init(&self.context(user_key, kind))?;
        self.insert(user_key, kind, name, confirmed, state).await
    }

    /// Creates a TOTP device with `secret` (a fresh 160-bit one if `None`). Enrolment creates it
    /// unconfirmed and confirms it with [`Otp::confirm_device`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidUserKey`], [`Error::InvalidDeviceName`], [`Error::Oath`] for a zero step,
    /// [`Error::Database`].
    pub async fn create_totp_device(
        &self,
        user_key: &str,
        name: &str,
        secret: Option<Secret>,
        options: TotpOptions,
        confirmed: bool,
    ) -> Result<Device, Error> {
        let secret = secret.unwrap_or_else(Secret::generate);
        let ctx = self.context(user_key, "totp");
        let state = write_state(&TotpState::new(&ctx, &secret, options)?);
        self.insert(user_key, "totp", name, confirmed, state).await
    }

    /// Creates an HOTP device with `secret` (a fresh 160-bit one if `None`).
    ///
    /// # Errors
    ///
    /// As [`Otp::create_totp_device`].
    pub async fn create_hotp_device(
        &self,
        user_key: &str,
        name: &str,
        secret: Option<Secret>,
        options: HotpOptions,
        confirmed: bool,
    ) -> Result<Device, Error> {
        let secret = secret.unwrap_or_else(Secret::generate);
        let ctx = self.context(user_key, "hotp");
        let state = write_state(&HotpState::new(&ctx, &secret, options)?);
        self.insert(user_key, "hotp", name, confirmed, state).await
    }

    /// Creates an email device sending to `address`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidEmailAddress`], and as [`Otp::create_totp_device`].
    pub async fn create_email_device(
        &self,
        user_key: &str,
        name: &str,
        address: &str,
        confirmed: bool,
    ) -> Result<Device, Error> {
        let state = write_state(&EmailState::new(address)?);
        self.insert(user_key, "email", name, confirmed, state).await
    }

    /// Creates a backup-code device with `count` fresh codes (`None`: `OTP_STATIC_COUNT`) and
    /// returns them: this is the only time they can be shown, only their hashes are stored.
    ///
    /// # Errors
    ///
    /// As [`Otp::create_totp_device`].
    pub async fn create_backup_codes(
        &self,
        user_key: &str,
        name: &str,
        count: Option<usize>,
    ) -> Result<(Device, Vec<BackupCode>), Error> {
        self.enrol_device(user_key, "static", name, &EnrolInput::count(count))
            .await
    }

    /// Enrols a device of any kind users enrol by themselves ([`DeviceKind::enrol`]): the kind
    /// makes its first state from `input` (an address, a number of codes; fresh secrets are
    /// made here). Returns the device, unconfirmed unless the kind has nothing to prove, and
    /// the codes to show once, if the kind makes any.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKind`], [`Error::NotSelfService`], [`Error::OnePerUser`] if the kind
    /// allows one device per user and the user has one (checked atomically, so two concurrent
    /// enrolments cannot both make one), the kind's errors for bad input
    /// ([`Error::InvalidEmailAddress`], [`Error::InvalidCodeCount`]), and as
    /// [`Otp::create_totp_device`].
    pub async fn enrol_device(
        &self,
        user_key: &str,
        kind: &str,
        name: &str,
        input: &EnrolInput,
    ) -> Result<(Device, Vec<BackupCode>), Error> {
        let kind = self.kind(kind)?;
        let enrolled = kind.enrol(&self.context(user_key, kind.name()), input)?;
        if !kind.one_per_user() {
            let device = self
                .insert(
                    user_key,
                    kind.name(),
                    name,
                    enrolled.confirmed,
                    enrolled.state,
                )
                .await?;
            return Ok((device, enrolled.codes));
        }
        check_user_key(user_key)?;
        check_device_name(name)?;
        let device = self
            .inner
            .store
            .insert_device_unless_kind_exists(NewDevice {
                user_key,
                kind: kind.name(),
                name,
                confirmed: enrolled.confirmed,
                created_at: self.inner.clock.now(),
                state: enrolled.state,
            })
            .await?
            .ok_or(Error::OnePerUser(kind.name()))?;
        Ok((device, enrolled.codes))
    }

    /// Replaces every code of a backup-code device with `count` fresh ones and returns them.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotFound`] if the user has no such backup-code device, and as
    /// [`Otp::create_backup_codes`].
    pub async fn regenerate_backup_codes(
        &self,
        user_key: &str,
        device_id: &DeviceId,
        count: Option<usize>,
    ) -> Result<Vec<BackupCode>, Error> {
        let count = count.unwrap_or(self.inner.settings.static_codes.count);
        check_code_count(count)?;
        if device_id.kind() != "static" {
            return Err(Error::DeviceNotFound);
        }
        let ctx = self.context(user_key, "static");
        let codes: Vec<BackupCode> = (0..count).map(|_| BackupCode::generate()).collect();
        let mut state = StaticState::default();
        for code in &codes {
            state.add(&ctx, code.normalized());
        }
        let state = write_state(&state);
        self.modify(device_id, Some(user_key), |update| {
            update.state = state.clone();
        })
        .await?;
        Ok(codes)
    }

    /// Adds one code to the user's first backup-code device, creating one named "Backup Code"
    /// if the user has none (django-otp's `add_static_token`). `token: None` generates a code;
    /// an operator's code must be 8 to 32 symbols of the backup-code alphabet.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidBackupCode`] for an unusable chosen code, and as
    /// [`Otp::create_backup_codes`].
    pub async fn add_static_token(
        &self,
        user_key: &str,
        token: Option<&str>,
    ) -> Result<(Device, BackupCode), Error> {
        let code = match token {
            None => BackupCode::generate(),
            Some(text) => BackupCode::parse(text).ok_or(Error::InvalidBackupCode)?,
        };
        check_user_key(user_key)?;
        let ctx = self.context(user_key, "static");
        // Its own loop rather than `Otp::modify`: it finds the device by kind rather than id,
        // and creates it if there is none.
        for _ in 0..MAX_CAS_ATTEMPTS {
            let existing = self
                .inner
                .store
                .devices_of(user_key, None)
                .await?
                .into_iter()
                .find(|d| d.kind() == "static");
            let Some(device) = existing else {
                let mut state = StaticState::default();
                state.add(&ctx, code.normalized());
                // Two first calls at once: one creates the device, the other adds its code to
                // it on the next turn.
                let created = self
                    .inner
                    .store
                    .insert_device_unless_kind_exists(NewDevice {
                        user_key,
                        kind: "static",
                        name: "Backup Code",
                        confirmed: true,
                        created_at: self.inner.clock.now(),
                        state: write_state(&state),
                    })
                    .await?;
                match created {
                    Some(created) => return Ok((created, code)),
                    None => continue,
                }
            };
            let mut state: StaticState = read_state(&device.state)?;
            state.add(&ctx, code.normalized());
            let mut update = DeviceUpdate::from(&device);
            update.state = write_state(&state);
            if let Some(device) = self.inner.store.compare_and_set(&device, update).await? {
                return Ok((device, code));
            }
        }
        Err(Error::Contention)
    }

    /// How many codes of a backup-code device (or of any kind made of one-time codes) are
    /// left.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotFound`] for devices of other kinds; broken stored state.
    pub fn backup_codes_remaining(&self, device: &Device) -> Result<usize, Error> {
        self.codes_remaining(device)?.ok_or(Error::DeviceNotFound)
    }

    /// How many one-time codes `device` has left, if its kind counts them
    /// ([`DeviceKind::codes_remaining`]).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKind`]; broken stored state.
    pub fn codes_remaining(&self, device: &Device) -> Result<Option<usize>, Error> {
        self.kind(device.kind())?.codes_remaining(&device.state)
    }

    /// The otpauth:// URI of a device provisioned with a shared secret (TOTP, HOTP), with the
    /// issuer and image of the settings, for its QR code ([`DeviceKind::provisioning_uri`]).
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotFound`] for devices of other kinds; broken stored state.
    pub fn provisioning_uri(&self, device: &Device) -> Result<OtpAuthUri, Error> {
        let ctx = self.context(&device.user_key, device.kind());
        self.kind(device.kind())?
            .provisioning_uri(&ctx, device)?
            .ok_or(Error::DeviceNotFound)
    }

    /// Renames a device or changes its confirmation (for self-service and operators).
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotFound`], [`Error::InvalidDeviceName`], [`Error::Database`].
    pub async fn update_device(
        &self,
        device_id: &DeviceId,
        name: Option<&str>,
        confirmed: Option<bool>,
    ) -> Result<Device, Error> {
        if let Some(name) = name {
            check_device_name(name)?;
        }
        self.modify(device_id, None, |update| {
            if let Some(name) = name {
                update.name = name.to_owned();
            }
            if let Some(confirmed) = confirmed {
                update.confirmed = confirmed;
            }
        })
        .await
    }

    /// Clears a device's throttling (django-otp's `throttle_reset`, for operators).
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotFound`], [`Error::Database`].
    pub async fn reset_throttle(&self, device_id: &DeviceId) -> Result<Device, Error> {
        self.modify(device_id, None, |update| {
            update.throttle = ThrottleState::default()
        })
        .await
    }

    /// Changes a device with a compare-and-set: reads it (if `owner` is set, only as that
    /// user's), lets `change` make the update, and writes it unless another writer changed the
    /// device since the read; then reads it again and changes it again, up to
    /// [`MAX_CAS_ATTEMPTS`] times. Returns the device as stored.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotFound`], also for a device deleted in the meantime;
    /// [`Error::Contention`] once every attempt lost; [`Error::Database`].
    async fn modify(
        &self,
        device_id: &DeviceId,
        owner: Option<&str>,
        change: impl Fn(&mut DeviceUpdate),
    ) -> Result<Device, Error> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let device = self
                .inner
                .store
                .device(device_id)
                .await?
                .filter(|d| owner.is_none_or(|owner| d.user_key == owner))
                .ok_or(Error::DeviceNotFound)?;
            let mut update = DeviceUpdate::from(&device);
            change(&mut update);
            if let Some(stored) = self.inner.store.compare_and_set(&device, update).await? {
                return Ok(stored);
            }
        }
        Err(Error::Contention)
    }

    /// Deletes a device.
    ///
    /// # Errors
    ///
    /// [`Error::DeviceNotFound`], [`Error::Database`].
    pub async fn remove_device(&self, device_id: &DeviceId) -> Result<(), Error> {
        if self.inner.store.delete_device(device_id).await? {
            Ok(())
        } else {
            Err(Error::DeviceNotFound)
        }
    }

    /// Consecutive failed verifications of the account (the failure budget spent so far).
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn account_failures(&self, user_key: &str) -> Result<u32, Error> {
        self.inner.store.account_failures(user_key).await
    }

    /// Restores the account's failure budget and its challenges of the hour (for operators).
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn reset_account(&self, user_key: &str) -> Result<(), Error> {
        self.inner.store.reset_account(user_key).await
    }

    /// Deletes what the per-recipient limit of challenges no longer needs: the rows of
    /// recipients whose hour has passed. Call it now and then (`otp serve` does, once a
    /// minute), or the table keeps one small row per address ever sent a code.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn forget_closed_challenge_windows(&self) -> Result<u64, Error> {
        let now = self.inner.clock.now().unix_millis();
        let window = i64::try_from(CHALLENGE_WINDOW.as_millis()).unwrap_or(i64::MAX);
        self.inner
            .store
            .forget_closed_recipient_windows(now.saturating_sub(window))
            .await
    }

    /// The account's session epoch: a number that [`Otp::end_sessions`] moves on. A web layer
    /// stores it in a session at login and treats a session whose epoch is behind the
    /// account's as ended, whatever its store still holds (`otp-axum` does).
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn session_epoch(&self, user_key: &str) -> Result<i64, Error> {
        self.inner.store.session_epoch(user_key).await
    }

    /// Ends every session of the account, and every login of it that is half done, by moving
    /// its session epoch on (after a password change, say); returns the new epoch. Atomic, so
    /// it holds across servers, and against a request of an old session in flight.
    ///
    /// # Errors
    ///
    /// [`Error::Database`].
    pub async fn end_sessions(&self, user_key: &str) -> Result<i64, Error> {
        self.inner.store.advance_session_epoch(user_key).await
    }

    /// Re-seals every device's secrets under the newest application key, `progress(done,
    /// resealed)` after each batch. Hashed codes cannot be re-hashed (only their hashes are
    /// kept): keep old keys in the ring until those codes are used or regenerated.
    ///
    /// # Errors
    ///
    /// [`Error::UnknownKeyId`] if a secret was sealed under a key the ring lacks;
    /// [`Error::Database`].
    pub async fn rotate_keys(
        &self,
        mut progress: impl FnMut(RotationReport),
    ) -> Result<RotationReport, Error> {
        const BATCH: i64 = 256;
        let mut report = RotationReport::default();
        let mut after = 0;
        loop {
            let page = self.inner.store.devices_page(after, BATCH).await?;
            let Some(last) = page.last() else {
                break;
            };
            after = last.id.number();
            for device in page {
                report.examined += 1;
                let Ok(kind) = self.kind(device.kind()) else {
                    continue; // A kind this program does not register: nothing it can open.
                };
                let mut current = device;
                // Its own loop rather than `Otp::modify`: it starts from the page's device
                // without reading it again, writes nothing when there is nothing to reseal, and
                // passes over a device deleted in the meantime or that lost every attempt
                // (not resealed) instead of failing the rotation.
                for _ in 0..MAX_CAS_ATTEMPTS {
                    let ctx = self.context(&current.user_key, kind.name());
                    let Some(state) = kind.reseal(&ctx, &current.state)? else {
                        break;
                    };
                    let mut update = DeviceUpdate::from(&current);
                    update.state = state;
                    if self
                        .inner
                        .store
                        .compare_and_set(&current, update)
                        .await?
                        .is_some()
                    {
                        report.resealed += 1;
                        break;
                    }
                    match self.inner.store.device(&current.id).await? {
                        Some(fresh) => current = fresh,
                        None => break,
                    }
                }
            }
            progress(report);
        }
        Ok(report)
    }
}

fn check_user_key(user_key: &str) -> Result<(), Error> {
    if user_key.is_empty() || user_key.len() > 255 || user_key.chars().any(char::is_control) {
        return Err(Error::InvalidUserKey);
    }
    Ok(())
}

fn check_device_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Error::InvalidDeviceName);
    }
    Ok(())
}

fn check_code_count(count: usize) -> Result<(), Error> {
    if !(1..=100).contains(&count) {
        return Err(Error::InvalidCodeCount(count));
    }
    Ok(())
}
