//! API keys: the anon and service-role keys a Supabase client sends as `apikey`. HS256
//! JWTs (as Supabase's legacy keys are) under a deployment-wide secret of their own, so
//! rotating signing keys never breaks them and rotating them never touches user tokens.

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::secrets::InstanceSecrets;
use crate::Error;

/// The `kid` that marks an API key (never a user token).
pub const API_KEY_KID: &str = "gatehouse-api-key";
const API_KEY_SECRET: &str = "api-keys";
const API_KEY_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const RELOAD_EVERY: Duration = Duration::from_secs(30);

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiRole {
    /// Public routes only (supabase-js's `supabaseKey` in a browser).
    Anon,
    /// The admin API (server-side only).
    ServiceRole,
}

impl ApiRole {
    fn claim(self) -> &'static str {
        match self {
            Self::Anon => "anon",
            Self::ServiceRole => "service_role",
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct ApiKeyClaims {
    iss: String,
    role: String,
    iat: i64,
    exp: i64,
}

/// The API-key secret, reloaded from the database as it ages (another instance may have
/// rotated it).
pub(crate) struct ApiKeys {
    secrets: Arc<InstanceSecrets>,
    issuer: String,
    secret: RwLock<Vec<u8>>,
    loaded_at: Mutex<Instant>,
}

impl ApiKeys {
    pub(crate) async fn load(
        secrets: Arc<InstanceSecrets>,
        issuer: String,
        now: OffsetDateTime,
    ) -> Result<Self, Error> {
        let secret = secrets.get(API_KEY_SECRET, now).await?;
        Ok(Self {
            secrets,
            issuer,
            secret: RwLock::new(secret),
            loaded_at: Mutex::new(Instant::now()),
        })
    }

    fn secret(&self) -> Vec<u8> {
        self.secret.read().map(|s| s.clone()).unwrap_or_default()
    }

    async fn refresh_if_stale(&self, now: OffsetDateTime) -> Result<(), Error> {
        let stale = self
            .loaded_at
            .lock()
            .map(|t| t.elapsed() > RELOAD_EVERY)
            .unwrap_or(true);
        if stale {
            self.reload(now).await?;
        }
        Ok(())
    }

    pub(crate) async fn reload(&self, now: OffsetDateTime) -> Result<(), Error> {
        let secret = self.secrets.get(API_KEY_SECRET, now).await?;
        if let Ok(mut current) = self.secret.write() {
            *current = secret;
        }
        if let Ok(mut at) = self.loaded_at.lock() {
            *at = Instant::now();
        }
        Ok(())
    }

    /// Replaces the secret: every key issued so far stops working.
    pub(crate) async fn rotate(&self, now: OffsetDateTime) -> Result<(), Error> {
        self.secrets.replace(API_KEY_SECRET, now).await
    }

    pub(crate) fn issue(&self, role: ApiRole, now: OffsetDateTime) -> Result<String, Error> {
        let iat = now.unix_timestamp();
        let claims = ApiKeyClaims {
            iss: self.issuer.clone(),
            role: role.claim().to_owned(),
            iat,
            exp: iat + i64::try_from(API_KEY_LIFETIME.as_secs()).unwrap_or(i64::MAX / 2),
        };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(API_KEY_KID.to_owned());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&self.secret()))
            .map_err(|e| Error::Internal(Box::new(e)))
    }

    pub(crate) async fn verify(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<ApiRole>, Error> {
        if token.len() > crate::tokens::MAX_TOKEN_BYTES {
            return Ok(None);
        }
        let Ok(header) = jsonwebtoken::decode_header(token) else {
            return Ok(None);
        };
        if header.kid.as_deref() != Some(API_KEY_KID) || header.alg != Algorithm::HS256 {
            return Ok(None);
        }
        self.refresh_if_stale(now).await?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims = std::collections::HashSet::new();
        validation.set_issuer(&[&self.issuer]);
        let Ok(data) = jsonwebtoken::decode::<ApiKeyClaims>(
            token,
            &DecodingKey::from_secret(&self.secret()),
            &validation,
        ) else {
            return Ok(None);
        };
        if data.claims.exp < now.unix_timestamp() {
            return Ok(None);
        }
        Ok(match data.claims.role.as_str() {
            "anon" => Some(ApiRole::Anon),
            "service_role" => Some(ApiRole::ServiceRole),
            _ => None,
        })
    }
}
