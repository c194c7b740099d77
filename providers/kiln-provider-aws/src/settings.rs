//! The provider block, `provider "aws" { region, endpoint, profile, max_attempts }`, and the SDK
//! clients built from it. Credentials come from the standard AWS chain (environment, shared
//! profile, SSO, web identity, container and instance metadata) and stay in memory: nothing of
//! them reaches state or plans. `endpoint` (or `AWS_ENDPOINT_URL`) points every client at an
//! AWS-compatible server; S3 then uses path-style addressing (`http://HOST/BUCKET/KEY`).
//!
//! Retries: the SDK's standard mode retries throttling (`RequestLimitExceeded`, `Throttling`,
//! ...), 5xx answers and transient network errors with jittered exponential backoff, up to
//! `max_attempts` attempts per call (default 5).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::{Credentials, SharedInterceptor};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use kiln_diag::Diagnostic;
use kiln_value::Value;

use crate::calls::{ApiCalls, CountCalls};
use crate::util::{str_attr, u64_attr};

pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;

/// How to reach AWS. Built from the provider block by [`Settings::from_config`], or directly by
/// programs and tests embedding the provider.
#[derive(Clone)]
pub struct Settings {
    pub region: Option<String>,
    /// Base URL of an AWS-compatible endpoint for every service; `AWS_ENDPOINT_URL` otherwise.
    pub endpoint: Option<String>,
    /// Shared-config profile; the chain's default otherwise.
    pub profile: Option<String>,
    /// Attempts per API call, retries included.
    pub max_attempts: u32,
    /// First backoff of the retry schedule (doubles, with jitter, up to 20 s).
    pub initial_backoff: Duration,
    /// Fixed credentials instead of the chain (access key, secret key); never from HCL.
    pub static_credentials: Option<(String, String)>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            region: None,
            endpoint: None,
            profile: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            initial_backoff: Duration::from_secs(1),
            static_credentials: None,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("profile", &self.profile)
            .field("max_attempts", &self.max_attempts)
            .field("static_credentials", &self.static_credentials.as_ref().map(|_| "(sensitive value)"))
            .finish()
    }
}

impl Settings {
    /// Reads an evaluated provider block.
    pub fn from_config(v: &Value) -> Result<Settings, Diagnostic> {
        let max_attempts = match v.get("max_attempts").filter(|x| !x.is_null()) {
            None => DEFAULT_MAX_ATTEMPTS,
            Some(_) => u64_attr(v, "max_attempts").filter(|n| (1..=50).contains(n)).ok_or_else(|| {
                Diagnostic::error("E-AWS-CONFIG", "`max_attempts` must be a whole number from 1 to 50")
                    .attribute("max_attempts")
                    .hint("max_attempts counts the first try: 1 turns retries off")
            })? as u32,
        };
        let endpoint = str_attr(v, "endpoint").map(str::to_string);
        if let Some(e) = &endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                return Err(Diagnostic::error("E-AWS-CONFIG", format!("`endpoint` must be an http:// or https:// URL, got `{e}`"))
                    .attribute("endpoint")
                    .hint("for example endpoint = \"http://127.0.0.1:5000\""));
            }
        }
        Ok(Settings {
            region: str_attr(v, "region").map(str::to_string),
            endpoint,
            profile: str_attr(v, "profile").map(str::to_string),
            max_attempts,
            ..Settings::default()
        })
    }

    /// The endpoint in force: the setting, else `AWS_ENDPOINT_URL`.
    fn effective_endpoint(&self) -> Option<String> {
        self.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok().filter(|s| !s.is_empty()))
    }
}

/// The SDK clients of one configured provider instance.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub s3: aws_sdk_s3::Client,
    /// SSM Parameter Store: a job's sensitive env (see `job`).
    pub ssm: aws_sdk_ssm::Client,
    pub region: String,
    /// The endpoint in use when not AWS itself: instances' agents reach S3 there too.
    pub endpoint: Option<String>,
    pub calls: ApiCalls,
}

/// rustls with ring: no C toolchain beyond what `ring` needs, no OpenSSL.
fn http_client() -> aws_sdk_ec2::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https()
}

/// Resolves region and credentials sources (credentials are fetched lazily, at the first call).
pub async fn sdk_config(s: &Settings) -> SdkConfig {
    let retry = RetryConfig::standard().with_max_attempts(s.max_attempts).with_initial_backoff(s.initial_backoff);
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http_client()).retry_config(retry);
    if let Some(r) = &s.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &s.endpoint {
        loader = loader.endpoint_url(e.clone());
    }
    if let Some(p) = &s.profile {
        loader = loader.profile_name(p.clone());
    }
    if let Some((key, secret)) = &s.static_credentials {
        loader = loader.credentials_provider(Credentials::new(key.clone(), secret.clone(), None, None, "kiln-static"));
    }
    loader.load().await
}

impl Clients {
    pub async fn connect(s: &Settings) -> Result<Clients, Diagnostic> {
        let sdk = sdk_config(s).await;
        let Some(region) = sdk.region().map(|r| r.to_string()) else {
            return Err(Diagnostic::error(
                "E-AWS-CONFIG",
                "no AWS region: the provider block has no `region` and none was found in the environment or profile",
            )
            .attribute("region")
            .hint("set region = \"us-east-1\" (or another) in the provider \"aws\" block, or AWS_REGION"));
        };
        let calls = ApiCalls::default();
        let counter = SharedInterceptor::new(CountCalls(calls.clone()));
        let ec2 = aws_sdk_ec2::config::Builder::from(&sdk).interceptor(counter.clone()).build();
        let s3 =
            aws_sdk_s3::config::Builder::from(&sdk).force_path_style(s.effective_endpoint().is_some()).interceptor(counter.clone()).build();
        let ssm = aws_sdk_ssm::config::Builder::from(&sdk).interceptor(counter).build();
        Ok(Clients {
            ec2: aws_sdk_ec2::Client::from_conf(ec2),
            s3: aws_sdk_s3::Client::from_conf(s3),
            ssm: aws_sdk_ssm::Client::from_conf(ssm),
            region,
            endpoint: s.effective_endpoint(),
            calls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(j: &[(&str, Value)]) -> Value {
        Value::Map(j.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn reads_the_block() {
        let s = Settings::from_config(&cfg(&[
            ("region", "eu-west-1".into()),
            ("endpoint", "http://127.0.0.1:5000".into()),
            ("max_attempts", 3i64.into()),
        ]))
        .unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.max_attempts, 3);
        assert_eq!(Settings::from_config(&cfg(&[])).unwrap().max_attempts, DEFAULT_MAX_ATTEMPTS);
    }

    #[test]
    fn rejects_bad_values() {
        assert!(Settings::from_config(&cfg(&[("max_attempts", 0i64.into())])).is_err());
        assert!(Settings::from_config(&cfg(&[("endpoint", "localhost:5000".into())])).is_err());
    }

    #[test]
    fn debug_hides_credentials() {
        let s = Settings { static_credentials: Some(("AKIA".into(), "secret".into())), ..Settings::default() };
        assert!(!format!("{s:?}").contains("secret"));
    }
}
