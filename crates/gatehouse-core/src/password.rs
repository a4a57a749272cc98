//! Passwords: the policy, and hashing with Argon2id at OWASP parameters on a bounded pool
//! of blocking threads. bcrypt hashes (imported from Supabase) verify and are flagged for
//! re-hashing; an unknown user is checked against a dummy hash so both paths cost the same.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::crypto::{b64url, random_bytes};
use crate::Error;

/// OWASP's Argon2id parameters: 19 MiB, 2 iterations, 1 lane.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const ARGON2_LANES: u32 = 1;
/// Longest password accepted, in bytes: bounds the hashing cost.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What a password must be.
#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode code points).
    pub min_length: usize,
    /// Require at least one digit and one symbol (the seeds' rule; NIST and ASVS advise
    /// against composition rules: set false with `min_length` 15 for their profile).
    pub require_digit_and_symbol: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            require_digit_and_symbol: true,
        }
    }
}

impl PasswordPolicy {
    /// Every reason `password` fails the policy; empty when it passes. `email` and
    /// `username` are the account's, which the password must not contain.
    pub fn check(
        &self,
        password: &str,
        email: Option<&str>,
        username: Option<&str>,
    ) -> Vec<&'static str> {
        let mut reasons = Vec::new();
        if password.chars().count() < self.min_length || password.len() > MAX_PASSWORD_BYTES {
            reasons.push("length");
        }
        if self.require_digit_and_symbol {
            let digit = password.chars().any(char::is_numeric);
            let symbol = password.chars().any(|c| !c.is_alphanumeric());
            if !(digit && symbol) {
                reasons.push("characters");
            }
        }
        if is_common(password) {
            reasons.push("pwned");
        }
        let lowered = password.to_lowercase();
        let local_part = email.and_then(|e| e.split('@').next());
        let similar = [local_part, username, email]
            .into_iter()
            .flatten()
            .map(str::to_lowercase)
            .any(|word| word.chars().count() >= 3 && lowered.contains(&word));
        if similar {
            reasons.push("similar");
        }
        reasons
    }
}

/// Whether the password is among the most common ones, or guessable in under a million
/// tries, per zxcvbn's frequency lists (30,000 leaked passwords and common words, with
/// l33t and case variations). zxcvbn reads at most the first 100 characters.
fn is_common(password: &str) -> bool {
    if password.is_empty() {
        return true;
    }
    let estimate = zxcvbn::zxcvbn(password, &[]);
    u8::from(estimate.score()) < 2
}

/// Result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password is right.
    pub valid: bool,
    /// The hash is bcrypt or older Argon2 parameters: store a fresh one.
    pub needs_rehash: bool,
}

/// Bounds on hashing work in flight.
#[derive(Debug, Clone, Copy)]
pub struct HashLimits {
    /// Hashes computed at once (each takes 19 MiB and one core).
    pub concurrency: usize,
    /// Requests allowed to wait for a slot; beyond it the answer is an immediate
    /// [`Error::Overloaded`].
    pub queue: usize,
}

impl Default for HashLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            concurrency: cores,
            queue: 32 * cores,
        }
    }
}

/// Hashes and verifies passwords off the async workers.
pub struct Hasher {
    argon: Argon2<'static>,
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    limits: HashLimits,
    dummy_hash: String,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Counts a waiter while it waits, even if the request is dropped meanwhile.
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn argon2() -> Result<Argon2<'static>, Error> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_LANES, None)
        .map_err(|e| Error::Internal(format!("argon2 params: {e}").into()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_with(argon: &Argon2<'_>, password: &[u8]) -> Result<String, Error> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()?)
        .map_err(|e| Error::Internal(format!("salt: {e}").into()))?;
    Ok(argon
        .hash_password(password, &salt)
        .map_err(|e| Error::Internal(format!("argon2: {e}").into()))?
        .to_string())
}

fn verify_with(argon: &Argon2<'_>, password: &[u8], stored: &str) -> Verification {
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        let valid = bcrypt::verify(password, stored).unwrap_or(false);
        return Verification {
            valid,
            needs_rehash: true,
        };
    }
    let Ok(parsed) = PasswordHash::new(stored) else {
        return Verification {
            valid: false,
            needs_rehash: false,
        };
    };
    let valid = argon.verify_password(password, &parsed).is_ok();
    let current = parsed.algorithm.as_str() == "argon2id"
        && Params::try_from(&parsed).is_ok_and(|p| {
            p.m_cost() == ARGON2_MEMORY_KIB
                && p.t_cost() == ARGON2_ITERATIONS
                && p.p_cost() == ARGON2_LANES
        });
    Verification {
        valid,
        needs_rehash: valid && !current,
    }
}

impl Hasher {
    /// A hasher with these limits; computes the dummy hash once.
    pub fn new(limits: HashLimits) -> Result<Self, Error> {
        let argon = argon2()?;
        let dummy_hash = hash_with(&argon, b64url(&random_bytes::<24>()?).as_bytes())?;
        Ok(Self {
            argon,
            slots: Arc::new(Semaphore::new(limits.concurrency.max(1))),
            waiting: Arc::new(AtomicUsize::new(0)),
            limits,
            dummy_hash,
        })
    }

    async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(Argon2<'static>) -> T + Send + 'static,
    {
        let permit = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::SeqCst) >= self.limits.queue {
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(Error::Overloaded);
                }
                let _waiting = Waiting(self.waiting.clone());
                self.slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::Internal(Box::new(e)))?
            }
        };
        let argon = self.argon.clone();
        tokio::task::spawn_blocking(move || {
            let result = work(argon);
            drop(permit);
            result
        })
        .await
        .map_err(|e| Error::Internal(Box::new(e)))
    }

    /// A PHC string of `password` under Argon2id.
    pub async fn hash(&self, password: &SecretString) -> Result<String, Error> {
        let password = password.clone();
        self.run(move |argon| hash_with(&argon, password.expose_secret().as_bytes()))
            .await?
    }

    /// Checks `password` against `stored`; with `None` (no such user) against the dummy
    /// hash, at the same cost, and always invalid.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verification, Error> {
        let password = password.clone();
        let (hash, real) = match stored {
            Some(hash) => (hash.to_owned(), true),
            None => (self.dummy_hash.clone(), false),
        };
        let verification = self
            .run(move |argon| verify_with(&argon, password.expose_secret().as_bytes(), &hash))
            .await?;
        Ok(if real {
            verification
        } else {
            Verification {
                valid: false,
                needs_rehash: false,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::default()
    }

    #[test]
    fn a_long_unusual_password_with_a_digit_and_a_symbol_passes() {
        assert!(policy()
            .check(
                "quartz-Lantern-47-orbit",
                Some("ada@example.com"),
                Some("ada")
            )
            .is_empty());
    }

    #[test]
    fn each_rule_reports_its_reason() {
        assert_eq!(policy().check("x7!k", None, None), vec!["length", "pwned"]);
        assert!(
            policy()
                .check(&"a1!".repeat(400), None, None)
                .contains(&"length"),
            "over 1024 bytes"
        );
        assert_eq!(
            policy().check("quartzlanternorbit", None, None),
            vec!["characters"]
        );
        for common in [
            "password",
            "Password1!",
            "P@ssw0rd1",
            "qwerty123!",
            "iloveyou",
            "12345678",
        ] {
            assert!(
                policy().check(common, None, None).contains(&"pwned"),
                "{common} is common"
            );
        }
        assert!(policy()
            .check(
                "ada.lovelace-92-quartz!",
                Some("ada.lovelace@example.com"),
                None
            )
            .contains(&"similar"));
        assert!(policy()
            .check("zz-Grace_Hopper-1906!", None, Some("grace_hopper"))
            .contains(&"similar"));
    }

    #[test]
    fn the_nist_profile_drops_composition_rules() {
        let nist = PasswordPolicy {
            min_length: 15,
            require_digit_and_symbol: false,
        };
        assert!(nist
            .check("correct horse battery staple", None, None)
            .is_empty());
        assert_eq!(nist.check("quartzlantern", None, None), vec!["length"]);
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_at_owasp_parameters_and_verify() {
        let hasher = Hasher::new(HashLimits {
            concurrency: 1,
            queue: 4,
        })
        .unwrap();
        let password = SecretString::from("quartz-Lantern-47");
        let hash = hasher.hash(&password).await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        let ok = hasher.verify(&password, Some(&hash)).await.unwrap();
        assert_eq!(
            ok,
            Verification {
                valid: true,
                needs_rehash: false
            }
        );
        let wrong = hasher
            .verify(&SecretString::from("quartz-lantern-47"), Some(&hash))
            .await
            .unwrap();
        assert!(!wrong.valid, "passwords are never case-folded");
        assert!(
            !hasher.verify(&password, None).await.unwrap().valid,
            "the dummy hash never matches"
        );
    }

    #[tokio::test]
    async fn bcrypt_hashes_verify_and_ask_to_be_rehashed() {
        let hasher = Hasher::new(HashLimits {
            concurrency: 1,
            queue: 4,
        })
        .unwrap();
        let stored = bcrypt::hash("imported-Pass-1", 4)
            .unwrap()
            .replacen("$2b$", "$2a$", 1);
        let ok = hasher
            .verify(&SecretString::from("imported-Pass-1"), Some(&stored))
            .await
            .unwrap();
        assert_eq!(
            ok,
            Verification {
                valid: true,
                needs_rehash: true
            }
        );
        assert!(
            !hasher
                .verify(&SecretString::from("imported-pass-1"), Some(&stored))
                .await
                .unwrap()
                .valid
        );
    }

    #[tokio::test]
    async fn older_argon2_parameters_ask_to_be_rehashed() {
        let hasher = Hasher::new(HashLimits {
            concurrency: 1,
            queue: 4,
        })
        .unwrap();
        let weak = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(4096, 1, 1, None).unwrap(),
        );
        let stored = hash_with(&weak, b"quartz-Lantern-47").unwrap();
        let ok = hasher
            .verify(&SecretString::from("quartz-Lantern-47"), Some(&stored))
            .await
            .unwrap();
        assert_eq!(
            ok,
            Verification {
                valid: true,
                needs_rehash: true
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_overloaded_at_once() {
        let hasher = Arc::new(
            Hasher::new(HashLimits {
                concurrency: 1,
                queue: 1,
            })
            .unwrap(),
        );
        let password = SecretString::from("quartz-Lantern-47");
        // One hashing, one waiting: the third finds the queue full.
        let busy: Vec<_> = (0..2)
            .map(|_| {
                let (hasher, password) = (hasher.clone(), password.clone());
                tokio::spawn(async move { hasher.hash(&password).await })
            })
            .collect();
        while hasher.waiting.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(matches!(
            hasher.hash(&password).await,
            Err(Error::Overloaded)
        ));
        for task in busy {
            assert!(task.await.unwrap().is_ok());
        }
        assert_eq!(hasher.waiting.load(Ordering::SeqCst), 0);
    }
}
