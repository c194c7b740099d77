//! S3 errors as the backend reports them: one line saying what failed and why, then a hint.
//! Errors met before S3 answered (no credentials, no connection, a timeout) read by kind, S3's
//! answers by code and message; never the SDK's Debug dump of its error tree (about 1 KB).
//!
//! The aws provider does the same for its calls (`kiln-provider-aws/src/error.rs`). The walk
//! down the error chain is duplicated here rather than shared: it is a few lines, every hint
//! differs (they name this `backend "s3"` block's settings, not the provider block's), and a
//! crate of its own for it would add a workspace member both AWS crates must keep in step.

use std::error::Error;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::result::ConnectorError;

use crate::S3Settings;

const CREDENTIALS_HINT: &str = "give kiln AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, \
     a profile of ~/.aws/credentials or ~/.aws/config named by AWS_PROFILE or by `profile` in the backend \"s3\" block \
     (`aws sso login --profile NAME` for SSO), or `access_key` and `secret_key` there; on EC2, an instance role";
const CONNECT_HINT: &str = "check the network, the backend block's `endpoint` and `region`, and any proxy (HTTPS_PROXY)";

/// `"{what} failed: {why}; {hint}"`.
pub(crate) fn sdk_message<E, R>(what: &str, s: &S3Settings, e: SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (why, hint) = match e.code() {
        Some(code) => {
            let why = match e.message().filter(|m| !m.is_empty()) {
                Some(m) => format!("{code}: {m}"),
                None => code.to_string(),
            };
            (why, answered_hint(code, s))
        }
        None => unanswered(&e, s),
    };
    format!("{what} failed: {why}; {hint}")
}

fn answered_hint(code: &str, s: &S3Settings) -> String {
    match code {
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidToken" => {
            "check the AWS credentials kiln found (environment, `profile` or `access_key`/`secret_key` in the backend block, SSO login, instance role)".to_string()
        }
        "AccessDenied" => format!("the AWS identity kiln uses may not read and write bucket `{}`; grant it in IAM or the bucket policy", s.bucket),
        _ => bucket_hint(s),
    }
}

fn bucket_hint(s: &S3Settings) -> String {
    format!("check that bucket `{}` exists in the configured region and that the credentials may read and write it", s.bucket)
}

/// An error without an S3 error code, with its hint.
fn unanswered(e: &(dyn Error + 'static), s: &S3Settings) -> (String, String) {
    let chain: Vec<&(dyn Error + 'static)> = std::iter::successors(Some(e), |e: &&(dyn Error + 'static)| (*e).source()).collect();
    let below = |i: usize| messages(&chain[i + 1..]);
    let raw_below = |i: usize| chain[i + 1..].iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n");
    for (i, err) in chain.iter().enumerate() {
        if let Some(c) = err.downcast_ref::<CredentialsError>() {
            let why = match c {
                // A profile named but missing is the one cause worth naming (a typo).
                CredentialsError::CredentialsNotLoaded(_) => {
                    match raw_below(i).lines().find_map(|l| l.find("profile `").map(|at| &l[at..])) {
                        Some(why) => format!("no AWS credentials found ({})", why.trim()),
                        None => "no AWS credentials found".to_string(),
                    }
                }
                other => join("cannot load AWS credentials", &join(&other.to_string(), &below(i))),
            };
            return (why, CREDENTIALS_HINT.to_string());
        }
    }
    let at = s.endpoint.as_deref().map(|e| format!(" at `{e}`")).unwrap_or_default();
    for (i, err) in chain.iter().enumerate() {
        if let Some(c) = err.downcast_ref::<ConnectorError>() {
            if c.is_timeout() {
                return (join(&format!("S3{at} did not answer in time"), &below(i)), CONNECT_HINT.to_string());
            }
            if c.is_io() {
                return (join(&format!("cannot reach S3{at}"), &below(i)), CONNECT_HINT.to_string());
            }
        }
    }
    (messages(&chain), bucket_hint(s))
}

/// Each error's Display on one line, joined with ": ", leaving out one already said.
fn messages(chain: &[&(dyn Error + 'static)]) -> String {
    let mut out = String::new();
    for e in chain {
        let m = e.to_string();
        let m = m.split_whitespace().collect::<Vec<_>>().join(" ");
        if m.is_empty() || out.contains(&m) {
            continue;
        }
        out = join(&out, &m);
    }
    out
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (_, true) => a.to_string(),
        (true, false) => b.to_string(),
        (false, false) => format!("{a}: {b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::error::ErrorMetadata;
    use aws_sdk_s3::operation::put_object::PutObjectError;
    use aws_sdk_s3::primitives::SdkBody;
    use aws_smithy_runtime_api::http::{Response, StatusCode};

    type Sdk = SdkError<PutObjectError, Response>;

    fn settings() -> S3Settings {
        S3Settings {
            bucket: "team-state".into(),
            key: "k.json".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            ..S3Settings::default()
        }
    }

    /// One line, short, no Debug dump.
    fn readable(m: &str) {
        assert!(m.len() < 500 && !m.contains('{') && !m.contains("Some(") && !m.contains("Error {") && !m.contains('\n'), "{m}");
    }

    #[test]
    fn s3_answers_read_as_code_and_message_with_a_hint() {
        let meta = ErrorMetadata::builder().code("AccessDenied").message("Access Denied").build();
        let raw = Response::new(StatusCode::try_from(403).unwrap(), SdkBody::empty());
        let m = sdk_message("PutObject", &settings(), Sdk::service_error(PutObjectError::generic(meta), raw));
        readable(&m);
        assert!(m.starts_with("PutObject failed: AccessDenied: Access Denied; "), "{m}");
        assert!(m.contains("bucket `team-state`") && m.contains("IAM"), "{m}");
    }

    #[test]
    fn missing_credentials_and_refused_connections_say_so() {
        let e = Sdk::dispatch_failure(ConnectorError::other(CredentialsError::not_loaded("environment variable not set").into(), None));
        let m = sdk_message("GetObject", &settings(), e);
        readable(&m);
        assert!(m.starts_with("GetObject failed: no AWS credentials found; give kiln AWS credentials"), "{m}");
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        let m = sdk_message("GetObject", &settings(), Sdk::dispatch_failure(ConnectorError::io(refused.into())));
        readable(&m);
        assert!(
            m.starts_with(
                "GetObject failed: cannot reach S3 at `http://127.0.0.1:9`: Connection refused (os error 111); check the network"
            ),
            "{m}"
        );
    }
}
