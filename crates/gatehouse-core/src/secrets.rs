//! Per-deployment secrets that every instance shares (the CSRF key, the API-key secret),
//! kept in the database and, when a key-encryption key is configured, sealed under it with
//! AES-256-GCM as the signing keys are: a read of the database alone then yields nothing
//! that signs.
//!
//! Rows written before a KEK was configured are sealed at the first start-up with one; a
//! sealed row that the configured KEK cannot open (or with no KEK at all) stops start-up
//! with a message naming `GATEHOUSE_KEY_ENCRYPTION_KEY`.

use gatehouse_store::Store;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;

use crate::crypto::{random_bytes, Sealer};
use crate::Error;

/// Reads, creates and rotates instance secrets.
pub(crate) struct InstanceSecrets {
    store: Store,
    sealer: Option<Sealer>,
}

impl std::fmt::Debug for InstanceSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceSecrets")
            .field("sealed", &self.sealer.is_some())
            .finish_non_exhaustive()
    }
}

impl InstanceSecrets {
    pub(crate) fn new(store: Store, kek: Option<&SecretString>) -> Result<Self, Error> {
        let sealer = kek
            .map(|kek| {
                Sealer::new(
                    kek.expose_secret().as_bytes(),
                    "gatehouse instance secrets v1",
                )
            })
            .transpose()?;
        Ok(Self { store, sealer })
    }

    /// A fresh 32-byte secret and the form it is stored in.
    fn fresh(&self, name: &str) -> Result<([u8; 32], Vec<u8>), Error> {
        let plain = random_bytes::<32>()?;
        let stored = match &self.sealer {
            Some(sealer) => sealer.seal(&plain, name.as_bytes())?,
            None => plain.to_vec(),
        };
        Ok((plain, stored))
    }

    /// The secret called `name`, created on first use.
    pub(crate) async fn get(&self, name: &str, now: OffsetDateTime) -> Result<Vec<u8>, Error> {
        let (_, candidate) = self.fresh(name)?;
        let (stored, sealed) = self
            .store
            .instance_secret(name, &candidate, self.sealer.is_some(), now.into())
            .await?;
        match (sealed, &self.sealer) {
            (true, Some(sealer)) => sealer.open(&stored, name.as_bytes()).ok_or_else(|| {
                Error::Config(format!(
                    "GATEHOUSE_KEY_ENCRYPTION_KEY does not open the instance secret {name:?}: \
                     it was sealed under another key-encryption key"
                ))
            }),
            (true, None) => Err(Error::Config(format!(
                "the instance secret {name:?} is encrypted: set GATEHOUSE_KEY_ENCRYPTION_KEY \
                 to the key it was sealed with"
            ))),
            (false, Some(sealer)) => {
                let sealed = sealer.seal(&stored, name.as_bytes())?;
                if self
                    .store
                    .seal_instance_secret(name, &stored, &sealed)
                    .await?
                {
                    tracing::info!(
                        secret = name,
                        "sealed a plain instance secret under the key-encryption key"
                    );
                }
                Ok(stored)
            }
            (false, None) => Ok(stored),
        }
    }

    /// Replaces the secret called `name` by a fresh one.
    pub(crate) async fn replace(&self, name: &str, now: OffsetDateTime) -> Result<(), Error> {
        let (_, stored) = self.fresh(name)?;
        self.store
            .replace_instance_secret(name, &stored, self.sealer.is_some(), now.into())
            .await?;
        Ok(())
    }
}
