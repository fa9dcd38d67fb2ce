//! Secrets in the service config: wrapped so that printing the config (a `{:?}` in a log
//! line, an error message) never shows them.

use std::fmt;

/// A secret value. `Debug` shows `***`; the value is read only through [`Secret::expose`],
/// where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Secret<T> {
        Secret(value)
    }

    /// The value itself: hand it to what needs it, never to a formatter.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A URL that may carry credentials (`mysql://user:password@host/db`). `Debug` and `Display`
/// show it with the password as `***`; [`SecretUrl::expose`] gives the URL to connect with.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> SecretUrl {
        SecretUrl(url.into())
    }

    /// The URL with its password: for the adapter that connects, never for a formatter.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with the password (if any) replaced by `***`.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `scheme://user:password@host…` → `scheme://user:***@host…`; anything else unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// [`redact_url`] of every URL of a comma-separated list.
pub fn redact_urls(list: &str) -> String {
    list.split(',')
        .map(redact_url)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let key = Secret::new("c2VjcmV0LWtleS1tYXRlcmlhbA==".to_owned());
        assert_eq!(format!("{key:?}"), "***");
        assert_eq!(key.expose(), "c2VjcmV0LWtleS1tYXRlcmlhbA==");
        let url = SecretUrl::new("mysql://oc:hunter2@db-0:3306/ordercenter?ssl=true");
        for shown in [format!("{url:?}"), format!("{url}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(
                shown.contains("mysql://oc:***@db-0:3306/ordercenter?ssl=true"),
                "{shown}"
            );
        }
        assert_eq!(
            url.expose(),
            "mysql://oc:hunter2@db-0:3306/ordercenter?ssl=true"
        );
        for plain in [
            "redis://redis:6379",
            "kafka://k1:9092,k2:9092",
            "redb://data/cold.redb",
        ] {
            assert_eq!(redact_url(plain), plain);
        }
        assert_eq!(redact_url("redis://:pw@r:6379/0"), "redis://:***@r:6379/0");
        assert_eq!(
            redact_urls("mysql://a:x@h/0,mysql://b:y@h/1"),
            "mysql://a:***@h/0,mysql://b:***@h/1"
        );
    }
}
