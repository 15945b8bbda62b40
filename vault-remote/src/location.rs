//! Which object store a URL names, and how it is reached: the scheme
//! (`s3://`, `gs://`, `az://`, `file://`, read-only `https://`), the
//! bucket and key prefix, credentials and endpoint from the environment
//! only, the plain-HTTP policy, and the redacted form of the URL that is
//! the only one ever printed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::http::HttpBuilder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, RetryConfig};
use url::Url;
use vault_core::{Error, Result};

/// Set to `1` to allow a plain `http://` endpoint that is not loopback.
pub const ALLOW_HTTP_ENV: &str = "MVAULT_ALLOW_HTTP";

/// The kinds of store a URL can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `s3://bucket/key` (AWS S3 or any S3-compatible store).
    S3,
    /// `gs://bucket/key`.
    Gcs,
    /// `az://container/key`.
    Azure,
    /// `file:///absolute/path`.
    File,
    /// `https://host/path`: read-only.
    Https,
}

/// A parsed URL location.
#[derive(Clone, Debug)]
pub struct Location {
    scheme: Scheme,
    url: Url,
    /// The key (or key prefix) inside the bucket.
    key: ObjectPath,
    /// The URL without userinfo, query or fragment, for messages.
    shown: PathBuf,
}

impl Location {
    /// Parses `s` (see [`Scheme`]); anything else is `InvalidArgument`.
    pub fn parse(s: &str) -> Result<Self> {
        let url = Url::parse(s).map_err(|e| {
            Error::InvalidArgument(format!("{}: not a valid URL ({e})", redact_str(s)))
        })?;
        let shown = PathBuf::from(redact(&url));
        let bad = |why: &str| Error::InvalidArgument(format!("{}: {why}", shown.display()));
        let scheme = match url.scheme() {
            "s3" => Scheme::S3,
            "gs" => Scheme::Gcs,
            "az" => Scheme::Azure,
            "file" => Scheme::File,
            "https" => Scheme::Https,
            "http" => {
                return Err(bad(
                    "plain http:// is not accepted for a location; use https://",
                ));
            }
            other => return Err(bad(&format!("unsupported URL scheme {other}://"))),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials in the URL are refused; they come from the environment (AWS_*, GOOGLE_*, AZURE_*)",
            ));
        }
        if scheme != Scheme::File && url.host_str().is_none_or(str::is_empty) {
            return Err(bad("no bucket (host) in the URL"));
        }
        let path = url.path().trim_matches('/');
        let key = ObjectPath::parse(path).map_err(|e| bad(&format!("invalid key ({e})")))?;
        Ok(Location {
            scheme,
            url,
            key,
            shown,
        })
    }

    /// The store kind.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The key inside the bucket.
    pub fn key(&self) -> &ObjectPath {
        &self.key
    }

    /// The URL as printed (no userinfo, query or fragment).
    pub fn shown(&self) -> &std::path::Path {
        &self.shown
    }

    /// Builds the store, configured from the environment (`AWS_*`,
    /// `GOOGLE_*`, `AZURE_*`) and then `options` (key, value pairs in
    /// `object_store`'s config names, e.g. `aws_endpoint`), which win.
    pub fn connect(&self, options: &[(String, String)]) -> Result<Arc<dyn ObjectStore>> {
        self.connect_with(options, RetryConfig::default())
    }

    /// [`Location::connect`] with object_store's retry policy `retry`
    /// (see [`crate::config::ReadConfig::retry`]).
    pub fn connect_with(
        &self,
        options: &[(String, String)],
        retry: RetryConfig,
    ) -> Result<Arc<dyn ObjectStore>> {
        let fail = |e: object_store::Error| {
            Error::InvalidArgument(format!(
                "{}: cannot configure the object store: {}",
                self.shown.display(),
                crate::scrub(&e.to_string())
            ))
        };
        let bucket_url = format!(
            "{}://{}",
            self.url.scheme(),
            self.url.host_str().unwrap_or("")
        );
        Ok(match self.scheme {
            Scheme::S3 => {
                let mut b = AmazonS3Builder::from_env().with_url(bucket_url);
                for (k, v) in options {
                    if let Ok(key) = k.to_ascii_lowercase().parse() {
                        b = b.with_config(key, v);
                    }
                }
                let endpoint = options
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("aws_endpoint"))
                    .map(|(_, v)| v.clone())
                    .or_else(env_endpoint);
                let allow = self.http_allowed(endpoint.as_deref())?;
                Arc::new(
                    b.with_allow_http(allow)
                        .with_retry(retry)
                        .build()
                        .map_err(fail)?,
                )
            }
            Scheme::Gcs => {
                let b = GoogleCloudStorageBuilder::from_env()
                    .with_url(bucket_url)
                    .with_retry(retry);
                Arc::new(b.build().map_err(fail)?)
            }
            Scheme::Azure => {
                let b = MicrosoftAzureBuilder::from_env()
                    .with_url(bucket_url)
                    .with_retry(retry);
                Arc::new(b.build().map_err(fail)?)
            }
            Scheme::File => Arc::new(LocalFileSystem::new()),
            Scheme::Https => {
                let base = &self.url[..url::Position::BeforePath];
                Arc::new(
                    HttpBuilder::new()
                        .with_url(base)
                        .with_retry(retry)
                        .build()
                        .map_err(fail)?,
                )
            }
        })
    }

    /// Plain-HTTP policy for an S3 endpoint: `https://` always; `http://`
    /// only to a loopback host or with `MVAULT_ALLOW_HTTP=1`.
    fn http_allowed(&self, endpoint: Option<&str>) -> Result<bool> {
        let Some(endpoint) = endpoint else {
            return Ok(false);
        };
        let Ok(url) = Url::parse(endpoint) else {
            return Err(Error::InvalidArgument(format!(
                "the S3 endpoint ({}) is not a valid URL",
                redact_str(endpoint)
            )));
        };
        if url.scheme() != "http" {
            return Ok(false);
        }
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        };
        if loopback || std::env::var(ALLOW_HTTP_ENV).is_ok_and(|v| v == "1") {
            return Ok(true);
        }
        Err(Error::InvalidArgument(format!(
            "refusing the plain-HTTP S3 endpoint {} (not loopback): credentials and data would cross the network unencrypted; use https:// or set {ALLOW_HTTP_ENV}=1",
            redact(&url)
        )))
    }
}

/// Refuses a command-line argument that is (or starts with) a URL
/// carrying credentials (`s3://key:secret@bucket/…`), before anything can
/// echo it; the error shows the URL without them.
pub fn check_argument(arg: &str) -> Result<()> {
    let Some((scheme, rest)) = arg.split_once("://") else {
        return Ok(());
    };
    if !vault_core::remote::is_url(std::path::Path::new(&format!("{scheme}://"))) {
        return Ok(());
    }
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err(Error::InvalidArgument(format!(
            "{}: credentials in the URL are refused; they come from the environment (AWS_*, GOOGLE_*, AZURE_*)",
            redact_str(arg)
        )));
    }
    Ok(())
}

/// The S3 endpoint the environment names, if any.
fn env_endpoint() -> Option<String> {
    ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

/// `url` without userinfo, query and fragment.
pub fn redact(url: &Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

/// [`redact`] for a string that may not parse: everything from `?` or `#`
/// and any `user:pass@` is dropped.
fn redact_str(s: &str) -> String {
    let s = s.split(['?', '#']).next().unwrap_or("");
    match s.split_once("://") {
        Some((scheme, rest)) => {
            let rest = match rest.split_once('/') {
                Some((auth, path)) => format!("{}/{path}", auth.rsplit('@').next().unwrap_or("")),
                None => rest.rsplit('@').next().unwrap_or("").to_string(),
            };
            format!("{scheme}://{rest}")
        }
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_scheme_and_key() {
        let l = Location::parse("s3://bucket/data/ds.vault").unwrap();
        assert_eq!(l.scheme(), Scheme::S3);
        assert_eq!(l.key().as_ref(), "data/ds.vault");
        assert_eq!(Location::parse("gs://b/x").unwrap().scheme(), Scheme::Gcs);
        assert_eq!(Location::parse("az://c/x").unwrap().scheme(), Scheme::Azure);
        assert_eq!(
            Location::parse("file:///tmp/x/y.vault")
                .unwrap()
                .key()
                .as_ref(),
            "tmp/x/y.vault"
        );
        assert_eq!(
            Location::parse("https://h/f.mvlt").unwrap().scheme(),
            Scheme::Https
        );
    }

    #[test]
    fn secrets_in_urls_are_refused_and_never_shown() {
        for url in [
            "s3://AKIDSECRET:hunter2@bucket/x",
            "https://user:hunter2@h/f.mvlt",
        ] {
            let e = Location::parse(url).unwrap_err().to_string();
            assert!(e.contains("credentials in the URL are refused"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        let e = Location::parse("ftp://u:hunter2@h/x?sig=hunter2")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsupported URL scheme ftp://"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let l = Location::parse("s3://b/x?X-Amz-Signature=hunter2#f").unwrap();
        assert_eq!(l.shown(), std::path::Path::new("s3://b/x"));
        assert_eq!(redact_str("s3://u:p@b/x?y"), "s3://b/x");
        assert_eq!(redact_str("not a url ? q"), "not a url ");
        let e = check_argument("s3://k:hunter2@b/v:x.txt")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s3://b/v:x.txt: credentials in the URL are refused"),
            "{e}"
        );
        assert!(check_argument("s3://b/v:user@host").is_ok());
        assert!(check_argument("plain/path@x").is_ok());
    }

    #[test]
    fn plain_http_needs_loopback_or_an_explicit_opt_in() {
        let l = Location::parse("s3://b/x").unwrap();
        assert!(!l.http_allowed(None).unwrap());
        assert!(!l.http_allowed(Some("https://s3.example.com")).unwrap());
        assert!(l.http_allowed(Some("http://127.0.0.2:3900")).unwrap());
        assert!(l.http_allowed(Some("http://[::1]:3900")).unwrap());
        assert!(l.http_allowed(Some("http://localhost:3900")).unwrap());
        if std::env::var(ALLOW_HTTP_ENV).is_err() {
            let e = l
                .http_allowed(Some("http://k:hunter2@s3.example.com/?t=hunter2"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("refusing the plain-HTTP S3 endpoint http://s3.example.com/"),
                "{e}"
            );
            assert!(!e.contains("hunter2"), "{e}");
        }
        assert!(Location::parse("http://h/f.mvlt").is_err());
        assert!(Location::parse("s3:///nobucket").is_err());
    }
}
