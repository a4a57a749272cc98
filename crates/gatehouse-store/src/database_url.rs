//! `DATABASE_URL`: which backend, and how to print it without leaking a password.

use std::fmt;

/// The two databases gatehouse runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A Postgres server.
    Postgres,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        })
    }
}

/// Why a `DATABASE_URL` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DatabaseUrlError {
    /// Neither `sqlite:` nor `postgres://`.
    #[error("unsupported scheme; expected sqlite://<path> or postgres://user@host/db")]
    Scheme,
    /// A postgres URL that does not parse.
    #[error("not a valid URL: {0}")]
    Invalid(String),
    /// `sqlite://` with no path.
    #[error("sqlite:// needs a file path, e.g. sqlite://gatehouse.db")]
    EmptySqlitePath,
}

/// A validated database URL. Its `Debug` and `Display` mask any password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    backend: Backend,
}

impl DatabaseUrl {
    /// Checks the scheme and shape of `raw`.
    pub fn parse(raw: &str) -> Result<Self, DatabaseUrlError> {
        let raw = raw.trim();
        if let Some(rest) = raw.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err(DatabaseUrlError::EmptySqlitePath);
            }
            return Ok(Self {
                raw: raw.to_owned(),
                backend: Backend::Sqlite,
            });
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            url::Url::parse(raw).map_err(|e| DatabaseUrlError::Invalid(e.to_string()))?;
            return Ok(Self {
                raw: raw.to_owned(),
                backend: Backend::Postgres,
            });
        }
        Err(DatabaseUrlError::Scheme)
    }

    /// The backend the scheme selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL with any password (and `password=` query parameter) replaced by `***`.
    pub fn masked(&self) -> String {
        mask_database_url(&self.raw)
    }
}

/// Masks the password of any URL-shaped string; used for messages about invalid URLs too.
pub fn mask_database_url(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        // Not a URL we can take apart: hide everything between "://" and the last '@'.
        return match (raw.find("://"), raw.rfind('@')) {
            (Some(start), Some(at)) if at > start => {
                format!("{}***{}", &raw[..start + 3], &raw[at..])
            }
            _ => raw.to_owned(),
        };
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url
        .query_pairs()
        .any(|(k, _)| k.eq_ignore_ascii_case("password"))
    {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let v = if k.eq_ignore_ascii_case("password") {
                    "***".into()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.masked()).finish()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_and_postgres_schemes_select_their_backend() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://gatehouse.db")
                .unwrap()
                .backend(),
            Backend::Sqlite
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:data/g.db?mode=rwc")
                .unwrap()
                .backend(),
            Backend::Sqlite
        );
        assert_eq!(
            DatabaseUrl::parse("postgres://u:p@localhost/db")
                .unwrap()
                .backend(),
            Backend::Postgres
        );
        assert_eq!(
            DatabaseUrl::parse("postgresql://localhost/db")
                .unwrap()
                .backend(),
            Backend::Postgres
        );
    }

    #[test]
    fn other_schemes_and_empty_paths_are_refused() {
        assert_eq!(
            DatabaseUrl::parse("mysql://localhost/db"),
            Err(DatabaseUrlError::Scheme)
        );
        assert_eq!(
            DatabaseUrl::parse("gatehouse.db"),
            Err(DatabaseUrlError::Scheme)
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://"),
            Err(DatabaseUrlError::EmptySqlitePath)
        );
    }

    #[test]
    fn passwords_never_appear_in_the_masked_form() {
        let url = DatabaseUrl::parse("postgres://app:s3cr3t@db.internal:5432/auth").unwrap();
        assert_eq!(url.masked(), "postgres://app:***@db.internal:5432/auth");
        assert!(!format!("{url:?} {url}").contains("s3cr3t"));
        let url = DatabaseUrl::parse("postgres://db/auth?user=app&password=s3cr3t").unwrap();
        assert!(!url.masked().contains("s3cr3t"), "{}", url.masked());
        assert!(!mask_database_url("postgres://a:b c@@host/x").contains("b c"));
        assert_eq!(
            mask_database_url("postgres://a:p w@host:5432:9/x"),
            "postgres://***@host:5432:9/x"
        );
    }
}
