//! AWS errors as kiln reports them: AWS's error code and message, what kiln was doing, and the
//! kiln address, with a hint for the codes users can act on.

use std::fmt;

use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
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
            None => AwsError { code: None, message: DisplayErrorContext(&e).to_string() },
        }
    }

    pub fn is(&self, code: &str) -> bool {
        self.code.as_deref() == Some(code)
    }

    /// The diagnostic for `address`, saying what kiln was doing (`"launch instances"`).
    pub fn diagnostic(&self, address: &str, doing: &str) -> Diagnostic {
        let d = Diagnostic::error("E-AWS", format!("{address}: cannot {doing}: {self}")).address(address);
        match self.code.as_deref().and_then(hint) {
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
}
