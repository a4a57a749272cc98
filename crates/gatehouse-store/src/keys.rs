//! Signing keys and per-deployment secrets.

use serde_json::Value;
use sqlx::types::Json;

use crate::{with_pool, Store, StoreError, Timestamp};

/// A signing key row. `private_key` is PKCS#8 DER, sealed when `private_key_sealed`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SigningKeyRecord {
    pub kid: String,
    pub alg: String,
    pub public_jwk: Json<Value>,
    pub private_key: Vec<u8>,
    pub private_key_sealed: bool,
    pub created_at: Timestamp,
    pub signs_from: Timestamp,
    pub retired_at: Option<Timestamp>,
    pub publish_until: Option<Timestamp>,
}

impl Store {
    /// Every signing key, oldest first.
    pub async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>, StoreError> {
        const SQL: &str =
            "SELECT kid, alg, public_jwk, private_key, private_key_sealed, created_at, \
             signs_from, retired_at, publish_until FROM signing_keys ORDER BY signs_from, kid";
        Ok(with_pool!(self, pool => sqlx::query_as(SQL).fetch_all(pool).await?))
    }

    /// Adds a key.
    pub async fn insert_signing_key(&self, key: &SigningKeyRecord) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO signing_keys (kid, alg, public_jwk, private_key, private_key_sealed, \
             created_at, signs_from, retired_at, publish_until) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
        with_pool!(self, pool => {
            sqlx::query(SQL)
                .bind(&key.kid)
                .bind(&key.alg)
                .bind(&key.public_jwk)
                .bind(&key.private_key)
                .bind(key.private_key_sealed)
                .bind(key.created_at)
                .bind(key.signs_from)
                .bind(key.retired_at)
                .bind(key.publish_until)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Sets when a key stops signing and when it leaves the JWKS.
    pub async fn retire_signing_key(
        &self,
        kid: &str,
        retired_at: Timestamp,
        publish_until: Timestamp,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE signing_keys SET retired_at = $2, publish_until = $3 WHERE kid = $1";
        with_pool!(self, pool => sqlx::query(SQL).bind(kid).bind(retired_at).bind(publish_until).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// Replaces the deployment-wide secret called `name` (a rotation).
    pub async fn replace_instance_secret(
        &self,
        name: &str,
        secret: &[u8],
        at: Timestamp,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO instance_secrets (name, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at";
        with_pool!(self, pool => sqlx::query(SQL).bind(name).bind(secret).bind(at).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// The deployment-wide secret called `name`, created from `candidate` if there is none
    /// yet. Instances racing to create it all end up with the one that was stored first.
    pub async fn instance_secret(
        &self,
        name: &str,
        candidate: &[u8],
        at: Timestamp,
    ) -> Result<Vec<u8>, StoreError> {
        const INSERT: &str =
            "INSERT INTO instance_secrets (name, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING";
        const SELECT: &str = "SELECT secret FROM instance_secrets WHERE name = $1";
        Ok(with_pool!(self, pool => {
            sqlx::query(INSERT).bind(name).bind(candidate).bind(at).execute(pool).await?;
            sqlx::query_scalar(SELECT).bind(name).fetch_one(pool).await?
        }))
    }
}
