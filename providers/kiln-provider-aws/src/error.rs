//! AWS errors as kiln reports them: AWS's error code and message, what kiln was doing, and the
//! kiln address, with a hint for the codes users can act on. Errors met before AWS answered
//! (no credentials, no connection, a timeout) read as one short sentence, never the SDK's Debug
//! dump of its error tree.

use std::error::Error;
use std::fmt;

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::result::ConnectorError;
use kiln_diag::Diagnostic;

/// An error answered by AWS (code and message) or met on the way (no code: network, timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsError {
    pub code: Option<String>,
    pub message: String,
}

impl AwsError {
    /// From any SDK error (EC2, S3: they share the error types).
    pub fn from_sdk<E: ProvideErrorMetadata + std::error::Error + 'static>(e: E) -> AwsError {
        match e.code() {
            Some(code) => AwsError { code: Some(code.to_string()), message: e.message().unwrap_or_default().to_string() },
            None => AwsError { code: None, message: unanswered(&e) },
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The diagnostic for `address`, saying what kiln was doing (`"launch instances"`).
    pub fn diagnostic(&self, address: &str, doing: &str) -> Diagnostic {
        self.hinted(Diagnostic::error("E-AWS", format!("{address}: cannot {doing}: {self}")).address(address))
    }

    /// The diagnostic of an operation of the provider itself rather than of one object
    /// (`kiln catalog refresh aws`): `aws: cannot {doing}: ...`, with the same hints.
    pub fn provider_diagnostic(&self, doing: &str) -> Diagnostic {
        self.hinted(Diagnostic::error("E-AWS", format!("aws: cannot {doing}: {self}")))
    }

    fn hinted(&self, d: Diagnostic) -> Diagnostic {
        let local = || match self.message.as_str() {
            m if m.starts_with(NO_CREDENTIALS) || m.starts_with(BAD_CREDENTIALS) => Some(CREDENTIALS_HINT),
            m if m.starts_with(UNREACHABLE) || m.starts_with(TIMED_OUT) => Some(CONNECT_HINT),
            _ => None,
        };
        match self.code.as_deref().and_then(hint).or_else(|| self.code.is_none().then(local).flatten()) {
            Some(h) => d.hint(h),
            None => d,
        }
    }
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(c) if self.message.is_empty() => write!(f, "{c}"),
            Some(c) => write!(f, "{c}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

const NO_CREDENTIALS: &str = "no AWS credentials found";
const BAD_CREDENTIALS: &str = "cannot load AWS credentials";
const UNREACHABLE: &str = "cannot reach the AWS endpoint";
const TIMED_OUT: &str = "the AWS endpoint did not answer in time";
const CREDENTIALS_HINT: &str = "give kiln AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment, \
     or a profile of ~/.aws/credentials or ~/.aws/config named by AWS_PROFILE or by `profile = \"NAME\"` in the provider \"aws\" block \
     (`aws sso login --profile NAME` for SSO); on EC2, an instance role";
const CONNECT_HINT: &str =
    "check the network, the provider block's `region` and `endpoint` (or AWS_ENDPOINT_URL), and any proxy (HTTPS_PROXY)";

/// An SDK error without an AWS error code, as one line: credentials, connection and timeout
/// errors by kind, anything else as its chain of messages (each source's Display once, never a
/// Debug dump).
fn unanswered(e: &(dyn Error + 'static)) -> String {
    let chain: Vec<&(dyn Error + 'static)> = std::iter::successors(Some(e), |e: &&(dyn Error + 'static)| (*e).source()).collect();
    let below = |i: usize| messages(&chain[i + 1..]);
    for (i, err) in chain.iter().enumerate() {
        if let Some(c) = err.downcast_ref::<CredentialsError>() {
            return match c {
                // A profile named but missing is the one cause worth naming (a typo in
                // AWS_PROFILE or `profile`); the other sources are simply not set up.
                CredentialsError::CredentialsNotLoaded(_) => match below(i).lines().find_map(|l| l.find("profile `").map(|at| &l[at..])) {
                    Some(why) => format!("{NO_CREDENTIALS} ({})", why.trim()),
                    None => NO_CREDENTIALS.to_string(),
                },
                other => join(BAD_CREDENTIALS, &join(&other.to_string(), &below(i))),
            };
        }
    }
    for (i, err) in chain.iter().enumerate() {
        if let Some(c) = err.downcast_ref::<ConnectorError>() {
            if c.is_timeout() {
                return join(TIMED_OUT, &below(i));
            }
            if c.is_io() {
                return join(UNREACHABLE, &below(i));
            }
        }
    }
    messages(&chain)
}

/// Each error's Display, joined with ": ", leaving out one its predecessor already says.
fn messages(chain: &[&(dyn Error + 'static)]) -> String {
    let mut out = String::new();
    for e in chain {
        let m = e.to_string();
        let m = m.trim();
        if m.is_empty() || out.contains(m) {
            continue;
        }
        out = join(&out, m);
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

fn hint(code: &str) -> Option<&'static str> {
    Some(match code {
        "AuthFailure" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "ExpiredToken" | "InvalidClientTokenId" => {
            "check the AWS credentials kiln found (environment, `profile` in the provider block, SSO login, instance role)"
        }
        "UnauthorizedOperation" | "AccessDenied" => "the AWS identity kiln uses lacks a permission for this call; grant it in IAM",
        "RequestLimitExceeded" | "Throttling" | "SlowDown" => {
            "AWS kept throttling after every retry: run again later, or raise `max_attempts` in the provider block"
        }
        "InsufficientInstanceCapacity" => "AWS has no capacity for this instance type now: try another type, zone or region, or later",
        "BucketAlreadyExists" => "S3 bucket names are global: choose another `name`, or leave it out and kiln makes one up",
        "InvalidAMIID.NotFound" | "InvalidAMIID.Malformed" => {
            "`image` must be an AMI ID that exists in this region, such as \"ami-0abc...\""
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnostics_carry_code_message_and_address() {
        let e = AwsError { code: Some("InsufficientInstanceCapacity".into()), message: "no p4d".into() };
        let d = e.diagnostic("cluster.train", "launch instances");
        assert_eq!(d.summary, "cluster.train: cannot launch instances: InsufficientInstanceCapacity: no p4d");
        assert_eq!(d.address.as_deref(), Some("cluster.train"));
        assert!(d.hint.is_some());
    }

    type Sdk = aws_smithy_runtime_api::client::result::SdkError<
        aws_sdk_ec2::operation::describe_instances::DescribeInstancesError,
        aws_smithy_runtime_api::http::Response,
    >;

    /// Short, one line, no Debug dump (`{`, `Some(`, struct names).
    fn readable(m: &str) {
        assert!(m.len() < 200 && !m.contains('{') && !m.contains("Some(") && !m.contains("DispatchFailure") && !m.contains('\n'), "{m}");
    }

    #[test]
    fn missing_credentials_say_so_and_how_to_give_them() {
        let e = Sdk::dispatch_failure(ConnectorError::other(CredentialsError::not_loaded("environment variable not set").into(), None));
        let e = AwsError::from_sdk(e);
        assert_eq!(e, AwsError { code: None, message: NO_CREDENTIALS.into() });
        let d = e.diagnostic("cluster.train", "list instance types");
        assert_eq!(d.summary, "cluster.train: cannot list instance types: no AWS credentials found");
        let h = d.hint.unwrap();
        for needle in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "provider \"aws\" block"] {
            assert!(h.contains(needle), "{h}");
        }
    }

    #[test]
    fn a_missing_named_profile_is_named() {
        let chain = "no credentials found in chain. Attempted:\n  Environment: environment variable not set\n  Profile: the credential provider was not enabled: profile `dev` was not defined: not in ~/.aws/config";
        let e = Sdk::dispatch_failure(ConnectorError::other(CredentialsError::not_loaded(chain).into(), None));
        let e = AwsError::from_sdk(e);
        assert_eq!(e.message, "no AWS credentials found (profile `dev` was not defined: not in ~/.aws/config)");
        assert!(e.diagnostic("a", "b").hint.unwrap().contains("AWS_PROFILE"));
    }

    #[test]
    fn a_broken_credentials_source_is_named_with_its_cause() {
        let e =
            Sdk::dispatch_failure(ConnectorError::other(CredentialsError::invalid_configuration("profile `dev` not found").into(), None));
        let e = AwsError::from_sdk(e);
        readable(&e.message);
        assert!(e.message.starts_with(BAD_CREDENTIALS) && e.message.ends_with("profile `dev` not found"), "{}", e.message);
        assert!(e.diagnostic("a", "b").hint.unwrap().contains("AWS_PROFILE"));
    }

    #[test]
    fn connection_errors_and_timeouts_are_one_line_with_the_cause() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        let e = AwsError::from_sdk(Sdk::dispatch_failure(ConnectorError::io(refused.into())));
        assert_eq!(e.message, "cannot reach the AWS endpoint: Connection refused (os error 111)");
        assert!(e.diagnostic("a", "b").hint.unwrap().contains("endpoint"));
        let slow = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
        let e = AwsError::from_sdk(Sdk::dispatch_failure(ConnectorError::timeout(slow.into())));
        assert_eq!(e.message, "the AWS endpoint did not answer in time: connect timed out");
    }

    #[test]
    fn other_errors_without_a_code_are_their_messages_not_a_debug_dump() {
        let e = AwsError::from_sdk(Sdk::construction_failure("a required field is missing"));
        readable(&e.message);
        assert!(e.message.contains("a required field is missing"), "{}", e.message);
        assert!(e.diagnostic("a", "b").hint.is_none());
    }
}
