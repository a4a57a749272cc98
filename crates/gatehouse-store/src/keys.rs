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

    /// Replaces the plain private key of `kid` by its sealed form, if it is still that
    /// plain key. Returns whether this call sealed it.
    pub async fn seal_signing_key(
        &self,
        kid: &str,
        plain: &[u8],
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE signing_keys SET private_key = $3, private_key_sealed = $4 \
             WHERE kid = $1 AND private_key = $2 AND private_key_sealed = $5";
        Ok(
            with_pool!(self, pool => sqlx::query(SQL).bind(kid).bind(plain).bind(sealed).bind(true).bind(false)
            .execute(pool).await?.rows_affected() == 1),
        )
    }

    /// Replaces the deployment-wide secret called `name` (a rotation); `sealed` says
    /// whether `secret` is sealed under the key-encryption key.
    pub async fn replace_instance_secret(
        &self,
        name: &str,
        secret: &[u8],
        sealed: bool,
        at: Timestamp,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO instance_secrets (name, secret, sealed, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET secret = excluded.secret, sealed = excluded.sealed, \
             created_at = excluded.created_at";
        with_pool!(self, pool => sqlx::query(SQL).bind(name).bind(secret).bind(sealed).bind(at).execute(pool).await?.rows_affected());
        Ok(())
    }

    /// The deployment-wide secret called `name` and whether it is sealed, if there is one.
    pub async fn get_instance_secret(
        &self,
        name: &str,
    ) -> Result<Option<(Vec<u8>, bool)>, StoreError> {
        const SQL: &str = "SELECT secret, sealed FROM instance_secrets WHERE name = $1";
        Ok(with_pool!(self, pool => sqlx::query_as(SQL).bind(name).fetch_optional(pool).await?))
    }

    /// The deployment-wide secret called `name` and whether it is sealed, created from
    /// `candidate` if there is none yet. Instances racing to create it all end up with the
    /// one that was stored first.
    pub async fn instance_secret(
        &self,
        name: &str,
        candidate: &[u8],
        candidate_sealed: bool,
        at: Timestamp,
    ) -> Result<(Vec<u8>, bool), StoreError> {
        const INSERT: &str =
            "INSERT INTO instance_secrets (name, secret, sealed, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO NOTHING";
        const SELECT: &str = "SELECT secret, sealed FROM instance_secrets WHERE name = $1";
        Ok(with_pool!(self, pool => {
            sqlx::query(INSERT).bind(name).bind(candidate).bind(candidate_sealed).bind(at).execute(pool).await?;
            sqlx::query_as(SELECT).bind(name).fetch_one(pool).await?
        }))
    }

    /// Replaces the plain secret `name` by its sealed form, if it is still that plain
    /// secret (another instance may have sealed or rotated it meanwhile). Returns whether
    /// this call sealed it.
    pub async fn seal_instance_secret(
        &self,
        name: &str,
        plain: &[u8],
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE instance_secrets SET secret = $3, sealed = $4 \
             WHERE name = $1 AND secret = $2 AND sealed = $5";
        Ok(
            with_pool!(self, pool => sqlx::query(SQL).bind(name).bind(plain).bind(sealed).bind(true).bind(false)
            .execute(pool).await?.rows_affected() == 1),
        )
    }
}
