//! The HTTP client every remote sink shares: hyper over rustls (system roots, plus an optional
//! CA file; certificate checks off only with `tls.insecure_skip_verify`), a request timeout,
//! gzip bodies, extra headers, and basic or bearer authentication whose secrets may be read from
//! files and are never logged.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use indexmap::IndexMap;
use serde::Deserialize;

use crate::units::{KeyedResult, SettingError};

/// A secret value: shown as `***` in debug output and logs.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Authentication: `{ user, password }` or `{ bearer }`, each secret inline (use `${ENV}`) or
/// read from a file (`password_file`, `bearer_file`, as mounted from a Kubernetes Secret).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    pub bearer: Option<Secret>,
    pub bearer_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// A PEM file of extra CA certificates to trust besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. Only for tests and trusted networks.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// Request body compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    Gzip,
    None,
}

/// A secret given inline (`what`) or in a file (`what_file`, as a Kubernetes Secret is
/// mounted; a trailing newline is not part of it), or neither. Errors are keyed relative to the
/// block holding the two keys.
pub(crate) fn secret(
    inline: &Option<Secret>,
    file: &Option<PathBuf>,
    what: &str,
) -> Result<Option<String>, SettingError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(SettingError::new(
            what,
            format!("give `{what}` or `{what}_file`, not both"),
        )),
        (Some(s), None) => Ok(Some(s.0.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|text| Some(text.trim_end_matches(['\n', '\r']).to_string()))
            .map_err(|e| {
                SettingError::new(
                    format!("{what}_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            }),
        (None, None) => Ok(None),
    }
}

impl AuthConfig {
    /// The `Authorization` header value; errors are keyed relative to `auth`.
    pub fn header(&self) -> Result<HeaderValue, SettingError> {
        let password = secret(&self.password, &self.password_file, "password")?;
        let bearer = secret(&self.bearer, &self.bearer_file, "bearer")?;
        let value = match (&self.user, password, bearer) {
            (Some(user), Some(pw), None) => {
                use base64::Engine;
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
                )
            }
            (None, None, Some(token)) => format!("Bearer {token}"),
            _ => {
                return Err(SettingError::new(
                    "",
                    "auth takes `user` with `password` (or `password_file`), or `bearer` (or `bearer_file`)",
                ));
            }
        };
        let mut v = HeaderValue::from_str(&value)
            .map_err(|_| SettingError::new("", "the credentials are not a valid header value"))?;
        v.set_sensitive(true);
        Ok(v)
    }
}

/// What a remote sink's HTTP requests share.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub method: Method,
    pub url: http::Uri,
    pub headers: HeaderMap,
    pub compression: Compression,
    pub timeout: Duration,
}

impl HttpSettings {
    /// Checks and builds the request settings of an HTTP sink's shared keys (`headers`, `auth`,
    /// `tls`, `request_timeout`: see `remote_sink_config!`), for requests `method url`; errors
    /// are keyed relative to the sink. The TLS client itself is built at start
    /// ([`client`]); here its files are read, so a wrong `tls.ca_file` is a configuration error.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        method: &str,
        url: &str,
        headers: &IndexMap<String, Secret>,
        auth: Option<&AuthConfig>,
        tls: &TlsConfig,
        compression: Compression,
        timeout: Duration,
    ) -> Result<Self, SettingError> {
        let method: Method = method.parse().map_err(|_| {
            SettingError::new("method", format!("`{method}` is not an HTTP method"))
        })?;
        let uri: http::Uri = url
            .parse()
            .map_err(|e| SettingError::new("url", format!("`{url}` is not a URL: {e}")))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(SettingError::new(
                "url",
                format!("`{url}` must start with http:// or https://"),
            ));
        }
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            let name: HeaderName = k
                .parse()
                .map_err(|_| SettingError::new("headers", format!("`{k}` is not a header name")))?;
            let mut value = HeaderValue::from_str(&v.0).map_err(|_| {
                SettingError::new(format!("headers.{k}"), "not a valid header value")
            })?;
            value.set_sensitive(true);
            map.insert(name, value);
        }
        if let Some(a) = auth {
            let value = a.header().map_err(|e| e.under("auth"))?;
            map.insert(http::header::AUTHORIZATION, value);
        }
        extra_roots(tls).map_err(|e| e.under("tls"))?;
        Ok(HttpSettings {
            method,
            url: uri,
            headers: map,
            compression,
            timeout,
        })
    }

    /// Adds a header the sink sets from one of its own keys (`key`, for the error).
    pub fn add_header(
        &mut self,
        name: &'static str,
        value: &str,
        key: &str,
    ) -> Result<(), SettingError> {
        let mut v = HeaderValue::from_str(value)
            .map_err(|_| SettingError::new(key, "not a valid header value"))?;
        v.set_sensitive(true);
        self.headers.insert(HeaderName::from_static(name), v);
        Ok(())
    }
}

pub type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The certificates of `tls.ca_file`, if given; errors are keyed relative to `tls`.
fn extra_roots(
    tls: &TlsConfig,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, SettingError> {
    use rustls_pki_types::pem::PemObject;
    let Some(path) = &tls.ca_file else {
        return Ok(Vec::new());
    };
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(path)
        .map_err(|e| SettingError::new("ca_file", format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            SettingError::new(
                "ca_file",
                format!("{} is not a PEM certificate file: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err(SettingError::new(
            "ca_file",
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

/// The TLS client settings every sink that speaks TLS shares: the system's roots plus
/// `tls.ca_file`, or no certificate checks with `tls.insecure_skip_verify`. Errors are keyed
/// relative to `tls`.
pub fn tls_client_config(tls: &TlsConfig) -> Result<rustls::ClientConfig, SettingError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .key("")?;
    let config = if tls.insecure_skip_verify {
        tracing::warn!("tls.insecure_skip_verify: server certificates are not checked");
        builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(danger::NoVerification))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        for c in extra_roots(tls)? {
            // `extra_roots` found certificates, so `ca_file` is set.
            let path = tls.ca_file.as_deref().unwrap_or(std::path::Path::new("?"));
            roots.add(c).map_err(|e| {
                let reason = format!("a certificate in {} is invalid: {e}", path.display());
                SettingError::new("ca_file", reason)
            })?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// Builds the client for `url`: TLS as [`tls_client_config`], HTTP/1.1. A plain `http://` URL
/// never shakes hands, so its client skips loading and parsing the system's CA bundle.
pub fn client(tls: &TlsConfig, url: &http::Uri) -> Result<HttpClient> {
    let config = if url.scheme() != Some(&http::uri::Scheme::HTTP) {
        tls_client_config(tls)?
    } else {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(https))
}

/// A response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A sink's request URL: `base` with the API's path appended, unless `base` already ends with
/// it (a URL pasted with its API path, as Promtail configurations write Loki's, is used as
/// written, never doubled).
pub fn endpoint(base: &str, api_path: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with(api_path) {
        base.to_string()
    } else {
        format!("{base}{api_path}")
    }
}

/// A request body as it goes on the wire: compressed once, then sent as it is by every attempt.
#[derive(Debug, Clone)]
pub struct Body {
    pub bytes: Bytes,
    /// The `Content-Encoding`, when compressed.
    pub encoding: Option<&'static str>,
}

impl Body {
    /// `body` compressed as `compression` says.
    pub fn new(compression: Compression, body: Vec<u8>) -> Body {
        match compression {
            Compression::Gzip => {
                use std::io::Write;
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::fast(),
                );
                // Compressing into a Vec cannot fail.
                gz.write_all(&body).expect("compressing into a Vec");
                Body {
                    bytes: gz.finish().expect("compressing into a Vec").into(),
                    encoding: Some("gzip"),
                }
            }
            Compression::None => Body {
                bytes: body.into(),
                encoding: None,
            },
        }
    }
}

/// Sends `body` and reads the response, within the timeout.
pub async fn send(
    client: &HttpClient,
    settings: &HttpSettings,
    content_type: &str,
    body: &Body,
) -> Result<Response> {
    let mut request = Request::builder()
        .method(settings.method.clone())
        .uri(settings.url.clone());
    let headers = request.headers_mut().expect("a fresh builder");
    headers.extend(settings.headers.clone());
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)?,
    );
    if let Some(e) = body.encoding {
        headers.insert(http::header::CONTENT_ENCODING, HeaderValue::from_static(e));
    }
    let request = request.body(Full::new(body.bytes.clone()))?;
    let exchange = async {
        let response = client.request(request).await.context("request failed")?;
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .context("reading the response")?
            .to_bytes();
        Ok::<_, anyhow::Error>(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(settings.timeout, exchange)
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "no response within {}",
                humantime::format_duration(settings.timeout)
            )
        })?
}

mod danger {
    use rustls::DigitallySignedStruct;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

    /// Accepts every certificate (`tls.insecure_skip_verify`).
    #[derive(Debug)]
    pub struct NoVerification;

    impl ServerCertVerifier for NoVerification {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_path_already_in_the_url_is_not_doubled() {
        for (base, want) in [
            ("http://loki:3100", "http://loki:3100/loki/api/v1/push"),
            ("http://loki:3100/", "http://loki:3100/loki/api/v1/push"),
            ("http://gw/loki", "http://gw/loki/loki/api/v1/push"),
            (
                "http://loki:3100/loki/api/v1/push",
                "http://loki:3100/loki/api/v1/push",
            ),
            (
                "http://loki:3100/loki/api/v1/push/",
                "http://loki:3100/loki/api/v1/push",
            ),
        ] {
            assert_eq!(endpoint(base, "/loki/api/v1/push"), want);
        }
        assert_eq!(
            endpoint("http://es:9200/_bulk", "/_bulk"),
            "http://es:9200/_bulk"
        );
    }

    #[test]
    fn auth_headers_and_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let basic = AuthConfig {
            user: Some("elastic".into()),
            password: None,
            password_file: Some(pw),
            bearer: None,
            bearer_file: None,
        };
        let h = basic.header().unwrap();
        assert_eq!(h.to_str().unwrap(), "Basic ZWxhc3RpYzpzM2NyZXQ=");
        assert!(h.is_sensitive());
        let bearer = AuthConfig {
            user: None,
            password: None,
            password_file: None,
            bearer: Some(Secret("tok".into())),
            bearer_file: None,
        };
        assert_eq!(bearer.header().unwrap().to_str().unwrap(), "Bearer tok");
        assert_eq!(
            format!("{bearer:?}").matches("tok").count(),
            0,
            "secrets never appear in debug output"
        );
        let neither = AuthConfig {
            user: Some("u".into()),
            password: None,
            password_file: None,
            bearer: None,
            bearer_file: None,
        };
        assert!(neither.header().is_err());
    }

    #[test]
    fn settings_name_the_bad_option() {
        let h = IndexMap::new();
        let err = |m: &str, u: &str| {
            let tls = TlsConfig::default();
            let timeout = Duration::from_secs(1);
            HttpSettings::new(m, u, &h, None, &tls, Compression::None, timeout).unwrap_err()
        };
        assert_eq!(err("POST", "ftp://x").key, "url");
        assert_eq!(err("NOT A METHOD", "http://x").key, "method");
    }

    #[test]
    fn nested_settings_are_keyed_by_their_full_path() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let auth = AuthConfig {
            user: Some("u".into()),
            password: None,
            password_file: Some(missing.clone()),
            bearer: None,
            bearer_file: None,
        };
        let h = IndexMap::new();
        let timeout = Duration::from_secs(1);
        let tls = TlsConfig::default();
        let e = HttpSettings::new(
            "POST",
            "http://x",
            &h,
            Some(&auth),
            &tls,
            Compression::None,
            timeout,
        )
        .unwrap_err();
        assert_eq!(e.key, "auth.password_file");
        assert!(
            e.reason
                .starts_with(&format!("cannot read {}", missing.display())),
            "{e}"
        );

        let not_pem = dir.path().join("key.txt");
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        for (ca, reason) in [
            (missing, "cannot read"),
            (not_pem, "holds no PEM certificate"),
        ] {
            let tls = TlsConfig {
                ca_file: Some(ca),
                insecure_skip_verify: false,
            };
            let e = HttpSettings::new(
                "POST",
                "https://x",
                &h,
                None,
                &tls,
                Compression::None,
                timeout,
            )
            .unwrap_err();
            assert_eq!(e.key, "tls.ca_file");
            assert!(e.reason.contains(reason), "{e}");
            let e = tls_client_config(&tls).unwrap_err();
            assert_eq!(e.key, "ca_file");
        }
    }
}
