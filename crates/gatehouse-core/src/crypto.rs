//! Small, named uses of well-kept primitives (aws-lc-rs, getrandom): random bytes from the
//! OS, SHA-256, HMAC, and AES-256-GCM sealing under HKDF-derived keys.

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, NONCE_LEN};
use aws_lc_rs::{digest, hkdf, hmac};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::Error;

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Internal(format!("OS random source failed: {e}").into()))?;
    Ok(bytes)
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Unpadded base64url.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url; `None` when it is not.
pub fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// HMAC-SHA256 of `data` under `key`.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// Whether `tag` is the HMAC-SHA256 of `data` under `key`, compared in constant time.
pub fn hmac_sha256_verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::verify(&key, data, tag).is_ok()
}

/// Constant-time equality of two byte strings.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// AES-256-GCM under a key derived with HKDF-SHA256 from a secret and a purpose, so one
/// secret never keys two uses. Sealed form: `nonce ‖ ciphertext ‖ tag`.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

struct KeyLen;

impl hkdf::KeyType for KeyLen {
    fn len(&self) -> usize {
        32
    }
}

impl Sealer {
    /// A sealer keyed by `secret` for `purpose`.
    pub fn new(secret: &[u8], purpose: &str) -> Result<Self, Error> {
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"gatehouse");
        let prk = salt.extract(secret);
        let info = [purpose.as_bytes()];
        let okm = prk
            .expand(&info, KeyLen)
            .map_err(|_| Error::Internal("hkdf expand failed".into()))?;
        let mut key = [0u8; 32];
        okm.fill(&mut key)
            .map_err(|_| Error::Internal("hkdf fill failed".into()))?;
        let unbound = UnboundKey::new(&aead::AES_256_GCM, &key)
            .map_err(|_| Error::Internal("aes key rejected".into()))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Encrypts and authenticates `plaintext`, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Result<Vec<u8>, Error> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(context),
                &mut in_out,
            )
            .map_err(|_| Error::Internal("seal failed".into()))?;
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Decrypts what [`Sealer::seal`] produced with the same key and context; `None` when
    /// the key, the context or a single byte differs.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(nonce, Aad::from(context), &mut in_out)
            .ok()?;
        Some(plaintext.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_only_with_the_same_secret_purpose_and_context() {
        let sealer = Sealer::new(b"a secret of some length", "purpose-a").unwrap();
        let sealed = sealer.seal(b"payload", b"ctx").unwrap();
        assert_eq!(sealer.open(&sealed, b"ctx").unwrap(), b"payload");
        assert!(sealer.open(&sealed, b"other").is_none());
        assert!(Sealer::new(b"a secret of some length", "purpose-b")
            .unwrap()
            .open(&sealed, b"ctx")
            .is_none());
        assert!(Sealer::new(b"another secret", "purpose-a")
            .unwrap()
            .open(&sealed, b"ctx")
            .is_none());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(sealer.open(&tampered, b"ctx").is_none());
    }

    #[test]
    fn random_bytes_differ_between_calls() {
        assert_ne!(random_bytes::<32>().unwrap(), random_bytes::<32>().unwrap());
    }

    #[test]
    fn hmac_verifies_only_its_own_tag() {
        let tag = hmac_sha256(b"k", b"data");
        assert!(hmac_sha256_verify(b"k", b"data", &tag));
        assert!(!hmac_sha256_verify(b"k", b"datA", &tag));
        assert!(!hmac_sha256_verify(b"K", b"data", &tag));
    }
}
