//! Password hashing with argon2id (RFC 9106; OWASP parameters: 19 MiB, 2 passes, 1 lane).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

pub fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| argon2::password_hash::Error::Crypto)?;
    let salt = SaltString::encode_b64(&salt)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

pub fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash of a password nobody has, verified when the email is unknown so that a login takes as
/// long whether or not the account exists.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash("not-a-real-password-0!A").unwrap_or_default())
}

/// The contract's rule: 12 to 128 characters (argon2 cost is linear in length), among them an
/// upper-case letter `A-Z`, a lower-case letter `a-z`, a digit `0-9` and an ASCII symbol (any other
/// character counts towards the length only). [`PATTERN`] says the same to clients.
pub fn strong_enough(p: &str) -> bool {
    let n = p.chars().count();
    (12..=128).contains(&n)
        && p.bytes().any(|b| b.is_ascii_uppercase())
        && p.bytes().any(|b| b.is_ascii_lowercase())
        && p.bytes().any(|b| b.is_ascii_digit())
        && p.bytes().any(|b| b.is_ascii_punctuation())
}

/// [`strong_enough`] as a regular expression (ECMA-262 and Python alike), for the OpenAPI
/// document; `(?![\s\S])` is the end of the string (`$` would also match before a final newline).
pub const PATTERN: &str = "^(?=[\\s\\S]*[A-Z])(?=[\\s\\S]*[a-z])(?=[\\s\\S]*[0-9])(?=[\\s\\S]*[!-/:-@\\[-`{-~])[\\s\\S]{12,128}(?![\\s\\S])";

/// At most one hash per core at a time: a burst of sign-ups or logins queues here instead of
/// taking every core from the requests that cost microseconds.
fn hashing() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        tokio::sync::Semaphore::new(cores)
    })
}

/// Runs a CPU-heavy password operation on the blocking pool, within the hashing permits.
pub async fn run_bounded<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let _permit = hashing().acquire().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| e.to_string())
}
