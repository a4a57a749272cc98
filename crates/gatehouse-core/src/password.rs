//! Passwords: the policy, and hashing with Argon2id at OWASP parameters on a bounded pool
//! of blocking threads. bcrypt hashes (imported from Supabase) verify and are flagged for
//! re-hashing; an unknown user is checked against a dummy hash so both paths cost the same.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::crypto::random_bytes;
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

/// Hashes and verifies passwords on threads of its own, off the async workers. Clones share
/// the threads, slots and queue.
#[derive(Clone)]
pub struct Hasher {
    jobs: flume::Sender<Job>,
    /// Argon2 buffers the hashing threads hold (each 19 MiB).
    held: Arc<AtomicUsize>,
    slots: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
    /// Verifications run so far (real and dummy alike).
    verifications: Arc<std::sync::atomic::AtomicU64>,
    limits: HashLimits,
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

/// After this long without a hash, the hashing memory goes back to the system.
pub const MEMORY_IDLE: Duration = Duration::from_secs(60);

/// An unknown user's password is checked against this, at the same cost as a real one; the
/// answer is "wrong" whatever it says. A constant (a hash of random bytes nobody kept), so
/// start-up computes no hash and holds no hashing memory.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$pY440HsY2F/2dvxOwePRKQ$2klb8dlkTEhZoK4Cs2dLH7Lc7iBorRtJmmAvCTI30tU";

// Argon2 working memory is reused: each hashing thread keeps one buffer while hashes keep
// coming and frees it after MEMORY_IDLE. Peak memory is then `concurrency × 19 MiB`
// whatever the request rate (a fresh buffer per hash, freed on whichever blocking thread
// ran it, left glibc holding over 500 MiB in per-thread arenas under a sign-in load), and
// no hash pays for faulting in 19 MiB of fresh pages (13.5 ms a hash instead of 22.5 ms
// here).

/// A job for a hashing thread.
type Job = Box<dyn FnOnce(&Argon2<'static>, &mut Vec<Block>) + Send>;

/// How much nicer than the rest of the process the hashing threads are (Linux `nice`).
/// At 10 a hashing thread weighs about a tenth of an async worker, so a saturated sign-in
/// load cannot starve the executor (`GET /health` stays fast); when nothing else runs,
/// hashing still gets every core.
pub const HASH_THREAD_NICENESS: i32 = 10;

/// Starts `count` hashing threads taking jobs from `jobs`. Each keeps its Argon2 buffer
/// while jobs keep coming and frees it after `idle` without one; `held` counts buffers.
fn start_threads(
    count: usize,
    argon: &Argon2<'static>,
    jobs: &flume::Receiver<Job>,
    idle: Duration,
    held: &Arc<AtomicUsize>,
) -> Result<(), Error> {
    for i in 0..count {
        let (argon, jobs, held) = (argon.clone(), jobs.clone(), held.clone());
        std::thread::Builder::new()
            .name(format!("gatehouse-hash-{i}"))
            .spawn(move || {
                lower_this_threads_priority();
                let mut buffer: Vec<Block> = Vec::new();
                loop {
                    match jobs.recv_timeout(idle) {
                        Ok(job) => {
                            if buffer.is_empty() {
                                held.fetch_add(1, Ordering::SeqCst);
                            }
                            job(&argon, &mut buffer);
                        }
                        Err(flume::RecvTimeoutError::Timeout) => {
                            if !buffer.is_empty() {
                                buffer = Vec::new();
                                held.fetch_sub(1, Ordering::SeqCst);
                            }
                        }
                        Err(flume::RecvTimeoutError::Disconnected) => break,
                    }
                }
            })
            .map_err(|e| Error::Internal(Box::new(e)))?;
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    // On Linux the niceness of a thread id is that thread's own; 19 is the lowest.
    let thread = rustix::thread::gettid();
    let niceness = rustix::process::getpriority_process(None)
        .map_or(HASH_THREAD_NICENESS, |process| {
            (process + HASH_THREAD_NICENESS).min(19)
        });
    if let Err(err) = rustix::process::setpriority_process(Some(thread), niceness) {
        tracing::warn!(error = %err, "could not lower the priority of a hashing thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}

/// Runs `f` on `params`' blocks: the reused buffer, made on first use, for our parameters
/// or cheaper ones; a buffer of its own for a dearer stored hash, so that one import with a
/// large `m` does not keep its memory for good.
fn with_blocks<T>(
    buffer: &mut Vec<Block>,
    params: &Params,
    f: impl FnOnce(&mut [Block]) -> T,
) -> T {
    const OURS: usize = ARGON2_MEMORY_KIB as usize;
    let count = params.block_count();
    if count > OURS {
        return f(&mut vec![Block::default(); count]);
    }
    if buffer.len() < OURS {
        buffer.resize(OURS, Block::default());
    }
    f(&mut buffer[..count])
}

fn hash_with(
    argon: &Argon2<'_>,
    memory: &mut Vec<Block>,
    password: &[u8],
) -> Result<String, Error> {
    let failed = |e: argon2::Error| Error::Internal(format!("argon2: {e}").into());
    let salt = random_bytes::<16>()?;
    let mut out = [0u8; 32];
    with_blocks(memory, argon.params(), |blocks| {
        argon.hash_password_into_with_memory(password, &salt, &mut out, blocks)
    })
    .map_err(failed)?;
    let phc_failed = |e: argon2::password_hash::Error| Error::Internal(format!("phc: {e}").into());
    let salt = SaltString::encode_b64(&salt).map_err(phc_failed)?;
    Ok(PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: argon.params().try_into().map_err(phc_failed)?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(phc_failed)?),
    }
    .to_string())
}

/// The most bytes bcrypt reads of a password.
const BCRYPT_MAX_BYTES: usize = 72;

fn verify_with(memory: &mut Vec<Block>, password: &[u8], stored: &str) -> Verification {
    if stored.starts_with("$2a$") || stored.starts_with("$2b$") || stored.starts_with("$2y$") {
        // bcrypt reads only the first 72 bytes: a longer password would match any password
        // sharing that prefix. Go's bcrypt (Supabase's) refuses to hash one, so no imported
        // user has such a password; refuse it here too.
        let valid =
            password.len() <= BCRYPT_MAX_BYTES && bcrypt::verify(password, stored).unwrap_or(false);
        return Verification {
            valid,
            needs_rehash: true,
        };
    }
    let invalid = Verification {
        valid: false,
        needs_rehash: false,
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        return invalid;
    };
    let (Ok(algorithm), Ok(params), Some(expected), Some(salt)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(&parsed),
        parsed.hash,
        parsed.salt,
    ) else {
        return invalid;
    };
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from);
    let (Ok(version), Some(output_len)) = (version, params.output_len()) else {
        return invalid;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return invalid;
    };
    let argon = Argon2::new(algorithm, version, params.clone());
    let mut out = [0u8; 64];
    let Some(out) = out.get_mut(..output_len) else {
        return invalid;
    };
    let computed = with_blocks(memory, &params, |blocks| {
        argon.hash_password_into_with_memory(password, salt, out, blocks)
    })
    .ok()
    .and_then(|()| Output::new(out).ok());
    // Output's equality is constant-time.
    let valid = computed.is_some_and(|computed| computed == expected);
    let current = algorithm == Algorithm::Argon2id
        && params.m_cost() == ARGON2_MEMORY_KIB
        && params.t_cost() == ARGON2_ITERATIONS
        && params.p_cost() == ARGON2_LANES;
    Verification {
        valid,
        needs_rehash: valid && !current,
    }
}

impl Hasher {
    /// A hasher with these limits, and its `limits.concurrency` hashing threads.
    pub fn new(limits: HashLimits) -> Result<Self, Error> {
        Self::with_memory_idle(limits, MEMORY_IDLE)
    }

    fn with_memory_idle(limits: HashLimits, idle: Duration) -> Result<Self, Error> {
        let concurrency = limits.concurrency.max(1);
        let (jobs, queue) = flume::unbounded();
        let held = Arc::new(AtomicUsize::new(0));
        start_threads(concurrency, &argon2()?, &queue, idle, &held)?;
        Ok(Self {
            jobs,
            held,
            slots: Arc::new(Semaphore::new(concurrency)),
            waiting: Arc::new(AtomicUsize::new(0)),
            verifications: Arc::default(),
            limits,
        })
    }

    async fn run<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Argon2<'static>, &mut Vec<Block>) -> T + Send + 'static,
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
        // With a permit, a hashing thread is free: the job starts at once.
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |argon, buffer| {
            let _ = done.send(work(argon, buffer));
            drop(permit);
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Internal("the hashing threads are gone".into()))?;
        result
            .await
            .map_err(|_| Error::Internal("a hashing thread dropped its job".into()))
    }

    /// Argon2 buffers (19 MiB each) the hashing threads hold now; at most `concurrency`.
    pub fn buffers_held(&self) -> usize {
        self.held.load(Ordering::SeqCst)
    }

    /// A PHC string of `password` under Argon2id.
    pub async fn hash(&self, password: &SecretString) -> Result<String, Error> {
        let password = password.clone();
        self.run(move |argon, memory| hash_with(argon, memory, password.expose_secret().as_bytes()))
            .await?
    }

    /// How many verifications have run: every sign-in path pays exactly one.
    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
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
            None => (DUMMY_HASH.to_owned(), false),
        };
        let verification = self
            .run(move |_, memory| verify_with(memory, password.expose_secret().as_bytes(), &hash))
            .await?;
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
    async fn a_password_longer_than_bcrypt_reads_never_matches_a_bcrypt_hash() {
        let hasher = Hasher::new(HashLimits {
            concurrency: 1,
            queue: 4,
        })
        .unwrap();
        let first_72 = format!("{}-Aa1", "x".repeat(68));
        assert_eq!(first_72.len(), 72);
        let stored = bcrypt::hash(&first_72, 4).unwrap();
        assert!(
            hasher
                .verify(&SecretString::from(first_72.clone()), Some(&stored))
                .await
                .unwrap()
                .valid,
            "72 bytes are what bcrypt reads: still verifies"
        );
        for tail in ["!", "anything at all after the 72nd byte"] {
            let longer = SecretString::from(format!("{first_72}{tail}"));
            assert!(
                !hasher.verify(&longer, Some(&stored)).await.unwrap().valid,
                "bcrypt alone would accept {tail:?} appended"
            );
        }
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
        let stored = hash_with(&weak, &mut Vec::new(), b"quartz-Lantern-47").unwrap();
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

    /// Our hashing runs Argon2 on reused memory and builds the PHC string itself; the
    /// argon2 crate's own PasswordHasher/PasswordVerifier are the reference both ways.
    #[test]
    fn hashes_interoperate_with_the_reference_phc_implementation() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let argon = argon2().unwrap();
        let mut memory = Vec::new();
        let ours = hash_with(&argon, &mut memory, b"quartz-Lantern-47").unwrap();
        assert!(
            ours.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{ours}"
        );
        let parsed = PasswordHash::new(&ours).unwrap();
        assert_eq!(parsed.hash.unwrap().len(), 32);
        assert!(argon.verify_password(b"quartz-Lantern-47", &parsed).is_ok());
        assert!(argon
            .verify_password(b"quartz-Lantern-48", &parsed)
            .is_err());

        // The reference's hashes, in every variant and at other costs and lengths.
        let salt = SaltString::encode_b64(b"sixteen byte salt").unwrap();
        for (algorithm, version, params) in [
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(19 * 1024, 2, 1, None).unwrap(),
            ),
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(8 * 1024, 3, 2, Some(16)).unwrap(),
            ),
            (
                Algorithm::Argon2i,
                Version::V0x13,
                Params::new(4096, 3, 1, None).unwrap(),
            ),
            (
                Algorithm::Argon2d,
                Version::V0x10,
                Params::new(4096, 1, 1, Some(64)).unwrap(),
            ),
            // More memory than the reused buffer holds: a buffer of its own.
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(32 * 1024, 1, 1, None).unwrap(),
            ),
        ] {
            let reference = Argon2::new(algorithm, version, params)
                .hash_password(b"quartz-Lantern-47", &salt)
                .unwrap()
                .to_string();
            let right = verify_with(&mut memory, b"quartz-Lantern-47", &reference);
            assert!(right.valid, "{reference}");
            let current =
                algorithm == Algorithm::Argon2id && reference.contains("m=19456,t=2,p=1$");
            assert_eq!(right.needs_rehash, !current, "{reference}");
            assert!(!verify_with(&mut memory, b"quartz-Lantern-46", &reference).valid);
            // One character of the hash changed.
            let mut tampered = reference.clone();
            let last = tampered.pop().unwrap();
            tampered.push(if last == 'A' { 'B' } else { 'A' });
            assert!(!verify_with(&mut memory, b"quartz-Lantern-47", &tampered).valid);
            assert_eq!(
                memory.len(),
                19 * 1024,
                "the reused buffer stays at our size"
            );
        }
        for malformed in [
            "",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ",
            "$argon2id$v=19$m=1,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$argon2id$v=99$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$scrypt$ln=15,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2g",
            "$2b$04$notreallybcrypt",
        ] {
            assert!(
                !verify_with(&mut memory, b"quartz-Lantern-47", malformed).valid,
                "{malformed}"
            );
        }
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_one_does() {
        let parsed = PasswordHash::new(DUMMY_HASH).unwrap();
        assert_eq!(parsed.algorithm, Algorithm::Argon2id.ident());
        assert_eq!(
            Params::try_from(&parsed).unwrap().block_count(),
            argon2().unwrap().params().block_count()
        );
        assert!(!verify_with(&mut Vec::new(), b"", DUMMY_HASH).needs_rehash);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashing_memory_is_reused_per_thread_and_released_when_idle() {
        let idle = Duration::from_millis(400);
        let hasher = Hasher::with_memory_idle(
            HashLimits {
                concurrency: 2,
                queue: 8,
            },
            idle,
        )
        .unwrap();
        assert_eq!(
            hasher.buffers_held(),
            0,
            "no hashing memory before the first hash"
        );
        let password = SecretString::from("quartz-Lantern-47");
        let hashes: Vec<_> = (0..6)
            .map(|_| {
                let (hasher, password) = (hasher.clone(), password.clone());
                tokio::spawn(async move { hasher.hash(&password).await.unwrap() })
            })
            .collect();
        for hash in hashes {
            let hash = hash.await.unwrap();
            assert!(hasher.verify(&password, Some(&hash)).await.unwrap().valid);
        }
        // Six hashes and six verifications on two threads: two buffers, not twelve.
        let held = hasher.buffers_held();
        assert!((1..=2).contains(&held), "{held} buffers held");
        tokio::time::sleep(idle * 3).await;
        assert_eq!(hasher.buffers_held(), 0, "idle threads free their buffers");
        assert_eq!(
            hasher.verify(&password, None).await.unwrap(),
            Verification {
                valid: false,
                needs_rehash: false
            }
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn hashing_threads_run_at_a_lower_priority() {
        let hasher = Hasher::new(HashLimits {
            concurrency: 1,
            queue: 1,
        })
        .unwrap();
        let niceness = hasher.jobs.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        niceness
            .send(Box::new(move |_, _| {
                let me = rustix::thread::gettid();
                let _ = tx.send(rustix::process::getpriority_process(Some(me)).unwrap());
            }))
            .unwrap();
        let process = rustix::process::getpriority_process(None).unwrap();
        assert_eq!(rx.recv().unwrap(), (process + HASH_THREAD_NICENESS).min(19));
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
