//! Where a verified link may send the browser: only to the allowlist
//! (`GATEHOUSE_REDIRECT_URLS`, GoTrue's `uri_allow_list`), else to the site URL.
//!
//! A pattern is a URL in which `*` matches any run of characters but `.` and `/` (one
//! label of a host, one segment of a path) and `**` matches anything; a pattern without
//! wildcards matches itself and every path below it. The scheme, host and port of a
//! candidate are compared after parsing, so `https://app.example.com@evil.test/` or a
//! backslash trick cannot pass for the allowed host.

use url::Url;

/// The allowlist.
#[derive(Debug, Clone, Default)]
pub struct RedirectAllowlist {
    patterns: Vec<String>,
}

impl RedirectAllowlist {
    /// Patterns as configured (comma-separated in the environment). Empty entries are
    /// dropped.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(patterns: I) -> Self {
        Self {
            patterns: patterns
                .into_iter()
                .map(|p| normalize_pattern(p.as_ref()))
                .filter(|p| !p.is_empty())
                .collect(),
        }
    }

    /// Whether `pattern` is one the allowlist can hold: an http(s) URL whose host has no
    /// `**` (which would match across the host into the path).
    pub fn check_pattern(pattern: &str) -> Result<(), &'static str> {
        let pattern = normalize_pattern(pattern);
        let Some((scheme, rest)) = pattern.split_once("://") else {
            return Err("is not an http(s) URL");
        };
        if !matches!(scheme, "http" | "https") {
            return Err("is not an http(s) URL");
        }
        let host = rest.split('/').next().unwrap_or_default();
        if host.contains("**") {
            return Err("has ** in its host; use * for one label");
        }
        if host.is_empty() {
            return Err("has no host");
        }
        Ok(())
    }

    /// The patterns.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `candidate` (absolute http or https, no credentials) is allowed. The site
    /// URL (and what is under it) always is.
    pub fn allows(&self, candidate: &str, site_url: &str) -> bool {
        let Ok(url) = Url::parse(candidate) else {
            return false;
        };
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
            || url.host_str().is_none()
        {
            return false;
        }
        let normalized = url.as_str();
        std::iter::once(site_url)
            .chain(self.patterns.iter().map(String::as_str))
            .any(|pattern| matches_pattern(pattern, normalized))
    }

    /// `requested`, normalized, if allowed, else the site URL.
    pub fn resolve(&self, requested: Option<&str>, site_url: &str) -> String {
        match requested.map(str::trim).filter(|r| !r.is_empty()) {
            Some(r) if self.allows(r, site_url) => match Url::parse(r) {
                // Parsed form: punycode hosts and percent-encoded paths, so it is always a
                // valid Location header.
                Ok(url) => url.to_string(),
                Err(_) => site_url.to_owned(),
            },
            _ => site_url.to_owned(),
        }
    }
}

/// Lowercases a pattern's scheme and host (as parsed URLs have them) and makes a bare
/// origin (`https://*.example.com`) cover its paths.
fn normalize_pattern(pattern: &str) -> String {
    let pattern = pattern.trim();
    let Some((scheme, rest)) = pattern.split_once("://") else {
        return pattern.to_owned();
    };
    let (host, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let path = if path.is_empty() { "/**" } else { path };
    format!(
        "{}://{}{}",
        scheme.to_ascii_lowercase(),
        host.to_ascii_lowercase(),
        path
    )
}

fn matches_pattern(pattern: &str, candidate: &str) -> bool {
    if !pattern.contains('*') {
        // Compared as parsed URLs: same origin, and the path at or under the pattern's.
        let (Ok(p), Ok(c)) = (Url::parse(pattern), Url::parse(candidate)) else {
            return false;
        };
        if p.scheme() != c.scheme()
            || p.host_str() != c.host_str()
            || p.port_or_known_default() != c.port_or_known_default()
        {
            return false;
        }
        let base = p.path().trim_end_matches('/');
        let path = c.path();
        return path == base || path.starts_with(&format!("{base}/")) || base.is_empty();
    }
    glob(pattern.as_bytes(), candidate.as_bytes())
}

/// `*` matches a run without `.` or `/`; `**` matches any run.
fn glob(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => {
            let deep = p.get(1) == Some(&b'*');
            let rest = if deep { &p[2..] } else { &p[1..] };
            for i in 0..=s.len() {
                if glob(rest, &s[i..]) {
                    return true;
                }
                if i < s.len() && !deep && matches!(s[i], b'.' | b'/') {
                    return false;
                }
            }
            false
        }
        Some(c) => s.first() == Some(c) && glob(&p[1..], &s[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SITE: &str = "https://app.example.com";

    #[test]
    fn the_site_url_and_what_is_under_it_are_allowed() {
        let list = RedirectAllowlist::default();
        assert!(list.allows("https://app.example.com/welcome?x=1", SITE));
        assert!(!list.allows("https://evil.test/", SITE));
        assert_eq!(list.resolve(Some("https://evil.test/"), SITE), SITE);
        assert_eq!(list.resolve(None, SITE), SITE);
    }

    #[test]
    fn wildcards_stay_within_a_label_or_a_segment() {
        let list = RedirectAllowlist::new([
            "https://*.preview.example.com/**",
            "http://localhost:3000/auth/*",
        ]);
        assert!(list.allows("https://pr-12.preview.example.com/a/b", SITE));
        assert!(!list.allows("https://a.b.preview.example.com/", SITE));
        assert!(!list.allows("https://evil.test/.preview.example.com/", SITE));
        assert!(list.allows("http://localhost:3000/auth/callback", SITE));
        assert!(!list.allows("http://localhost:3000/auth/callback/deeper", SITE));
        assert!(!list.allows("http://localhost:3001/auth/callback", SITE));
    }

    #[test]
    fn patterns_are_normalized_and_checked() {
        let list = RedirectAllowlist::new(["HTTPS://*.Example.com"]);
        assert!(list.allows("https://app.example.com/deep/path", SITE));
        assert!(!list.allows("https://evil.test/x.example.com/", SITE));
        assert!(RedirectAllowlist::check_pattern("https://**.example.com/**").is_err());
        assert!(RedirectAllowlist::check_pattern("javascript:alert(1)").is_err());
        assert!(RedirectAllowlist::check_pattern("https://*.example.com/cb/*").is_ok());
        let resolved = RedirectAllowlist::new(["https://books.example/**"])
            .resolve(Some("https://books.example/a b"), SITE);
        assert_eq!(resolved, "https://books.example/a%20b", "a valid Location");
    }

    #[test]
    fn tricks_do_not_pass_for_an_allowed_host() {
        let list = RedirectAllowlist::default();
        for evil in [
            "https://app.example.com@evil.test/",
            "https://app.example.com.evil.test/",
            "https://evil.test\\@app.example.com/",
            "//evil.test/",
            "javascript:alert(1)",
            "https://app.example.com:444/",
            "http://app.example.com/",
        ] {
            assert!(!list.allows(evil, SITE), "{evil} passed");
        }
    }
}
