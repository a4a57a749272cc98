//! Keys: the signing keys of access tokens (published as a JWKS, rotated by the operator)
//! and the API keys Supabase clients send: the service over [`crate::signing_keys`] and
//! [`crate::api_keys`].

pub use crate::signing_keys::{
    JwtAlg, KeyConfig, KeyInfo, KeyRing, KeySet, KeyState, LoadedKey, RELOAD_EVERY,
};

use std::sync::Arc;

use crate::api_keys::ApiRole;
use crate::shared::Shared;
use crate::Error;

/// The keys service.
#[derive(Clone)]
pub struct Keys {
    shared: Arc<Shared>,
}

impl Keys {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The public keys, as a JWKS document.
    pub async fn jwks(&self) -> Result<serde_json::Value, Error> {
        Ok(self.shared.keys.keys().await?.jwks(self.shared.now()))
    }

    /// The configured signing algorithm.
    pub fn alg(&self) -> JwtAlg {
        self.shared.keys.alg()
    }

    /// Adds a signing key (see [`KeyRing::rotate`]); with `immediate` it signs at once and
    /// the old keys are unpublished, invalidating their tokens.
    pub async fn rotate_signing_key(&self, immediate: bool) -> Result<KeyInfo, Error> {
        self.shared.keys.rotate(self.shared.now(), immediate).await
    }

    /// Every signing key with its state now.
    pub async fn list_signing_keys(&self) -> Result<Vec<KeyInfo>, Error> {
        self.shared.keys.list(self.shared.now()).await
    }

    /// A fresh anon or service-role API key.
    pub fn issue_api_key(&self, role: ApiRole) -> Result<String, Error> {
        self.shared.api_keys.issue(role, self.shared.now())
    }

    /// The role of an API key, if `token` is one of ours.
    pub async fn verify_api_key(&self, token: &str) -> Result<Option<ApiRole>, Error> {
        self.shared.api_keys.verify(token, self.shared.now()).await
    }

    /// Replaces the API-key secret: every anon and service-role key issued so far stops
    /// working (on every instance within 30 seconds).
    pub async fn rotate_api_keys(&self) -> Result<(), Error> {
        self.shared.api_keys.rotate(self.shared.now()).await
    }

    /// Re-reads the API-key secret now (after a rotation by this process).
    pub async fn reload_api_keys(&self) -> Result<(), Error> {
        self.shared.api_keys.reload(self.shared.now()).await
    }
}
