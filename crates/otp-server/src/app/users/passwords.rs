//! Passwords: their rules, and argon2id hashing on the blocking threads.

use std::sync::{Arc, OnceLock};

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::{LOG_TARGET, MAX_PASSWORD_LEN, MIN_PASSWORD_LEN, UserError};

/// Checks the password rules.
///
/// # Errors
///
/// [`UserError::InvalidPassword`] saying which rule is broken.
pub fn check_password(password: &str) -> Result<(), UserError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD_LEN {
        return Err(UserError::InvalidPassword(
            "it must be at least 8 characters long",
        ));
    }
    if len > MAX_PASSWORD_LEN {
        return Err(UserError::InvalidPassword(
            "it must be at most 1024 characters long",
        ));
    }
    Ok(())
}

/// The algorithm, version and cost of a PHC string (`$argon2id$v=19$m=…,t=…,p=…`), without its
/// salt and hash, and without its `$` separators (`argon2id v=19 m=…,t=…,p=…`), so that the
/// log holds nothing shaped like a password hash.
fn phc_cost(phc: &str) -> String {
    let end = phc
        .match_indices('$')
        .nth(3)
        .map_or(phc.len(), |(at, _)| at);
    phc[..end].trim_start_matches('$').replace('$', " ")
}

/// Argon2id hashing on the blocking threads, a bounded number at a time.
pub(super) struct Hasher {
    argon2: Argon2<'static>,
    /// A hash of a random password, to check unknown users against.
    dummy: OnceLock<String>,
    permits: Arc<Semaphore>,
}

impl Hasher {
    pub(super) fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default()),
            dummy: OnceLock::new(),
            permits: Arc::new(Semaphore::new(cores)),
        }
    }

    /// Runs `work` on a blocking thread once a permit is free. The permit goes with the work,
    /// so a caller that gives up (a request that timed out) does not free it early.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Self) -> T + Send + 'static,
    ) -> Result<T, UserError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| UserError::Hashing("the hasher is closed".into()))?;
        let hasher = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&hasher)
        })
        .await
        .map_err(|err| UserError::Hashing(err.to_string()))
    }

    fn hash_now(&self, password: &[u8]) -> Result<String, UserError> {
        self.argon2
            .hash_password(password)
            .map(|hash| hash.to_string())
            .map_err(|err| UserError::Hashing(err.to_string()))
    }

    /// A PHC string of `password` with a fresh salt.
    pub(super) async fn hash(
        self: &Arc<Self>,
        password: &str,
    ) -> Result<Zeroizing<String>, UserError> {
        let password = Zeroizing::new(password.to_owned());
        self.blocking(move |hasher| hasher.hash_now(password.as_bytes()))
            .await?
            .map(Zeroizing::new)
    }

    /// The dummy hash, made on first use (on a blocking thread).
    async fn dummy(self: &Arc<Self>) -> Result<String, UserError> {
        if let Some(dummy) = self.dummy.get() {
            return Ok(dummy.clone());
        }
        self.blocking(|hasher| {
            let mut random = [0u8; 32];
            getrandom::fill(&mut random)
                .expect("the operating system random number generator failed");
            let made = hasher.hash_now(&random)?;
            Ok(hasher.dummy.get_or_init(|| made).clone())
        })
        .await?
    }

    /// Whether `password` matches `hash`; with `None`, checks it against the dummy hash and
    /// returns `false`, taking the same time. Both go the same way from here on: an owned hash
    /// made on this thread, moved to a blocking thread, checked, dropped there (a user's hash
    /// moved in while the dummy was cloned on the blocking thread measured about 1 ms slower
    /// per check; see `otp bench login-timing`).
    pub(super) async fn verify(
        self: &Arc<Self>,
        password: &str,
        hash: Option<String>,
    ) -> Result<bool, UserError> {
        let real = hash.is_some();
        let hash = match hash {
            Some(hash) => hash,
            None => self.dummy().await?,
        };
        let password = Zeroizing::new(password.to_owned());
        let matches = self
            .blocking(move |hasher| {
                // The same event for a user's hash and the dummy: it names the cost, not the hash.
                tracing::trace!(
                    target: LOG_TARGET,
                    cost = phc_cost(&hash),
                    "checking a password hash"
                );
                match hasher
                    .argon2
                    .verify_password(password.as_bytes(), hash.as_str())
                {
                    Ok(()) => Ok(true),
                    Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
                    Err(err) => Err(UserError::Hashing(format!(
                        "a stored password hash cannot be used: {err}"
                    ))),
                }
            })
            .await??;
        Ok(real && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules() {
        check_password("12345678").unwrap();
        check_password(&"é".repeat(1024)).unwrap();
        assert!(check_password("1234567").is_err());
        assert!(check_password(&"a".repeat(1025)).is_err());
    }

    fn cost(phc: &str) -> Vec<String> {
        phc_cost(phc).split(' ').map(str::to_owned).collect()
    }

    #[tokio::test]
    async fn unknown_users_are_checked_against_a_hash_of_the_same_cost() {
        let hasher = Arc::new(Hasher::new());
        let real = hasher.hash("a long password").await.unwrap();
        assert!(hasher.dummy.get().is_none());
        // No user: the password is checked against the dummy hash, made on first use.
        assert!(!hasher.verify("a long password", None).await.unwrap());
        let dummy = hasher
            .dummy
            .get()
            .expect("the dummy hash was checked against");
        assert_eq!(cost(dummy).len(), 3, "{dummy}");
        assert_eq!(
            cost(dummy),
            cost(&real),
            "the same work as a real user's check"
        );
        assert!(
            hasher
                .verify("a long password", Some(real.to_string()))
                .await
                .unwrap()
        );
    }
}
