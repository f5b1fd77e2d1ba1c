//! The checked `revocation:` section ([`Revocation`]) and its checks: where
//! the list of revoked sessions lives (a file in the state directory, and
//! optionally Redis, shared by every instance of the domain). The YAML form
//! is `raw::Revocation`.

use std::path::{Path, PathBuf};

use super::FieldError;
use super::raw;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// The revocation list's file.
    pub file: PathBuf,
    /// The Redis the list is shared through, when configured.
    pub redis: Option<RedisStore>,
}

/// A checked Redis connection: everything the client needs, the secret
/// parts kept out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisStore {
    /// The URL as configured (it may hold a password: never log it).
    url: String,
    /// From `redis_password_file`.
    password: Option<String>,
    /// PEM bytes of `redis_ca_file`.
    pub ca_pem: Option<Vec<u8>>,
    pub key_prefix: String,
    /// `host:port`, for logs.
    pub address: String,
    pub tls: bool,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.address)
            .field("tls", &self.tls)
            .field("key_prefix", &self.key_prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// What the `redis` crate connects with: the URL, and the password of
    /// `redis_password_file` when there is one.
    pub fn connection_info(&self) -> redis::RedisResult<redis::ConnectionInfo> {
        use redis::IntoConnectionInfo;
        let info = self.url.as_str().into_connection_info()?;
        Ok(match &self.password {
            Some(p) => {
                let settings = info.redis_settings().clone().set_password(p);
                info.set_redis_settings(settings)
            }
            None => info,
        })
    }
}

/// Checks the section, adding one error per bad field to `errs`.
pub(super) fn validate(
    raw: &raw::Revocation,
    domain: &str,
    state_dir: &Path,
    errs: &mut Vec<FieldError>,
) -> Option<Revocation> {
    let mut found = Vec::new();
    let file = raw
        .file
        .clone()
        .unwrap_or_else(|| state_dir.join("revocations.json"));
    let redis = if let Some(url) = &raw.redis_url {
        redis(raw, url, domain, &mut found)
    } else {
        for (set, field) in [
            (raw.redis_password_file.is_some(), "redis_password_file"),
            (raw.redis_ca_file.is_some(), "redis_ca_file"),
            (raw.redis_key_prefix.is_some(), "redis_key_prefix"),
        ] {
            if set {
                found.push((
                    format!("revocation.{field}"),
                    "applies only with `revocation.redis_url`; set that too, or remove this".into(),
                ));
            }
        }
        None
    };
    if !found.is_empty() {
        errs.extend(
            found
                .into_iter()
                .map(|(field, message)| FieldError { field, message }),
        );
        return None;
    }
    Some(Revocation { file, redis })
}

fn redis(
    section: &raw::Revocation,
    raw: &str,
    domain: &str,
    errs: &mut Vec<(String, String)>,
) -> Option<RedisStore> {
    let field = "revocation.redis_url".to_string();
    // The messages never repeat the URL: it may carry a password.
    let url = match url::Url::parse(raw.trim()) {
        Ok(u) => u,
        Err(e) => {
            errs.push((
                field,
                format!("is not a URL ({e}): write e.g. `redis://127.0.0.1:6379` or `rediss://redis.example.com:6380`"),
            ));
            return None;
        }
    };
    let tls = match url.scheme() {
        "redis" => false,
        "rediss" => true,
        other => {
            errs.push((
                field,
                format!("has the scheme `{other}`: use `redis://` or, for TLS, `rediss://`"),
            ));
            return None;
        }
    };
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        errs.push((
            field,
            "has no host: write e.g. `redis://127.0.0.1:6379`".into(),
        ));
        return None;
    };
    if url.query().is_some() || url.fragment().is_some() {
        errs.push((
            field,
            "must not have a query or fragment: the database number goes in the path (`redis://host/2`)".into(),
        ));
        return None;
    }
    let address = format!("{host}:{}", url.port().unwrap_or(6379));
    if let Err(e) = redis::IntoConnectionInfo::into_connection_info(url.as_str()) {
        errs.push((
            field,
            format!(
                "is not a Redis URL the client accepts ({}): write e.g. `redis://127.0.0.1:6379/0`",
                e.detail().unwrap_or("invalid")
            ),
        ));
        return None;
    }
    let password = match &section.redis_password_file {
        None => None,
        Some(_) if url.password().is_some() => {
            errs.push((
                "revocation.redis_password_file".into(),
                "the password is also in `revocation.redis_url`: keep it in one place (the file is better: URLs end up in shell histories)".into(),
            ));
            None
        }
        Some(f) => match std::fs::read_to_string(f) {
            Ok(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Ok(_) => {
                errs.push((
                    "revocation.redis_password_file".into(),
                    format!("`{}` is empty: put the Redis password in it", f.display()),
                ));
                None
            }
            Err(e) => {
                errs.push((
                    "revocation.redis_password_file".into(),
                    format!(
                        "cannot read `{}`: {e}; check the path and that the portcullis user may read it",
                        f.display()
                    ),
                ));
                None
            }
        },
    };
    let ca_pem = match &section.redis_ca_file {
        None => None,
        Some(_) if !tls => {
            errs.push((
                "revocation.redis_ca_file".into(),
                "applies only to TLS: use a `rediss://` URL, or remove this".into(),
            ));
            None
        }
        Some(f) => match std::fs::read(f) {
            Ok(pem) if pem.windows(11).any(|w| w == b"-----BEGIN ") => Some(pem),
            Ok(_) => {
                errs.push((
                    "revocation.redis_ca_file".into(),
                    format!("`{}` holds no PEM certificate", f.display()),
                ));
                None
            }
            Err(e) => {
                errs.push((
                    "revocation.redis_ca_file".into(),
                    format!("cannot read `{}`: {e}", f.display()),
                ));
                None
            }
        },
    };
    let key_prefix = match &section.redis_key_prefix {
        Some(p) if p.trim().is_empty() || p.chars().any(char::is_whitespace) => {
            errs.push((
                "revocation.redis_key_prefix".into(),
                "must be a non-empty word without spaces, e.g. `portcullis:app.example.com`".into(),
            ));
            return None;
        }
        Some(p) => p.clone(),
        None => format!("portcullis:{domain}"),
    };
    Some(RedisStore {
        url: url.as_str().to_string(),
        password,
        ca_pem,
        key_prefix,
        address,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<Revocation, Vec<(String, String)>> {
        let c: raw::Revocation = serde_saphyr::from_str(yaml).unwrap();
        let mut errs = Vec::new();
        validate(&c, "app.example.com", Path::new("/var/lib/p"), &mut errs)
            .ok_or_else(|| errs.into_iter().map(|e| (e.field, e.message)).collect())
    }

    #[test]
    fn redis_defaults_to_a_prefix_named_after_the_domain() {
        let r = check("redis_url: redis://127.0.0.1:6390\n").unwrap();
        let s = r.redis.unwrap();
        assert_eq!(s.key_prefix, "portcullis:app.example.com");
        assert_eq!(s.address, "127.0.0.1:6390");
        assert!(!s.tls);
        let s = check("redis_url: rediss://r.example.com\nredis_key_prefix: shared:a\n")
            .unwrap()
            .redis
            .unwrap();
        assert_eq!((s.key_prefix.as_str(), s.tls), ("shared:a", true));
        assert_eq!(s.address, "r.example.com:6379");
        assert!(check("{}").unwrap().redis.is_none());
    }

    #[test]
    fn a_bad_redis_setting_names_its_field_and_never_repeats_the_password() {
        for (yaml, field) in [
            ("redis_url: 'not a url'\n", "revocation.redis_url"),
            ("redis_url: http://r.example.com\n", "revocation.redis_url"),
            (
                "redis_url: unix:///run/redis.sock\n",
                "revocation.redis_url",
            ),
            ("redis_url: 'redis://'\n", "revocation.redis_url"),
            (
                "redis_url: redis://r.example.com/x?secret=1\n",
                "revocation.redis_url",
            ),
            (
                "redis_url: redis://r.example.com/not-a-db\n",
                "revocation.redis_url",
            ),
            (
                "redis_url: redis://r.example.com\nredis_password_file: /nonexistent/pw\n",
                "revocation.redis_password_file",
            ),
            (
                "redis_url: redis://:hunter2@r.example.com\nredis_password_file: /etc/hostname\n",
                "revocation.redis_password_file",
            ),
            (
                "redis_url: redis://r.example.com\nredis_ca_file: /etc/hostname\n",
                "revocation.redis_ca_file",
            ),
            (
                "redis_url: rediss://r.example.com\nredis_ca_file: /etc/hostname\n",
                "revocation.redis_ca_file",
            ),
            (
                "redis_url: redis://r.example.com\nredis_key_prefix: 'a b'\n",
                "revocation.redis_key_prefix",
            ),
            (
                "redis_password_file: /etc/hostname\n",
                "revocation.redis_password_file",
            ),
        ] {
            let errs = check(yaml).unwrap_err();
            let got: Vec<&str> = errs.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(got, [field], "{yaml}");
            for (_, m) in &errs {
                assert!(!m.contains("hunter2"), "{m}");
            }
        }
    }

    #[test]
    fn the_password_file_is_used_and_kept_out_of_debug() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret-pw\n").unwrap();
        let s = check(&format!(
            "redis_url: redis://r.example.com:6400/2\nredis_password_file: {}\n",
            pw.display()
        ))
        .unwrap()
        .redis
        .unwrap();
        let info = s.connection_info().unwrap();
        assert_eq!(info.redis_settings().password(), Some("s3cret-pw"));
        assert_eq!(info.redis_settings().db(), 2);
        let with_url_pw = check("redis_url: redis://u:hunter2@r.example.com\n")
            .unwrap()
            .redis
            .unwrap();
        for d in [format!("{s:?}"), format!("{with_url_pw:?}")] {
            assert!(!d.contains("s3cret") && !d.contains("hunter2"), "{d}");
        }
    }
}
