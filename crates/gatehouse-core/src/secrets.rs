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

    /// A fresh 32-byte secret, in the form it is stored in.
    fn fresh(&self, name: &str) -> Result<Vec<u8>, Error> {
        let plain = random_bytes::<32>()?;
        match &self.sealer {
            Some(sealer) => sealer.seal(&plain, name.as_bytes()),
            None => Ok(plain.to_vec()),
        }
    }

    /// The secret called `name`, created on first use. A read once it exists (the API-key
    /// secret is re-read every 30 seconds).
    pub(crate) async fn get(&self, name: &str, now: OffsetDateTime) -> Result<Vec<u8>, Error> {
        let (stored, sealed) = match self.store.get_instance_secret(name).await? {
            Some(row) => row,
            None => {
                self.store
                    .instance_secret(name, &self.fresh(name)?, self.sealer.is_some(), now.into())
                    .await?
            }
        };
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
        self.store
            .replace_instance_secret(name, &self.fresh(name)?, self.sealer.is_some(), now.into())
            .await?;
        Ok(())
    }
}
