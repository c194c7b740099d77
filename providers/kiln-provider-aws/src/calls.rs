//! Counts the AWS API calls a provider instance makes, by operation (`DescribeInstances`), through
//! an SDK interceptor: once per operation, however many attempts its retries took, and attempts
//! separately. Tests and `plan --verbose` read it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

#[derive(Debug, Default)]
struct Counts {
    operations: BTreeMap<String, u64>,
    attempts: u64,
    throttled: u64,
}

/// Shared by the EC2 and S3 clients of one provider instance.
#[derive(Debug, Clone, Default)]
pub struct ApiCalls(Arc<Mutex<Counts>>);

impl ApiCalls {
    /// Calls made so far, by operation name.
    pub fn by_operation(&self) -> BTreeMap<String, u64> {
        self.lock().operations.clone()
    }

    /// Calls of one operation (`"DescribeInstances"`).
    pub fn of(&self, operation: &str) -> u64 {
        self.lock().operations.get(operation).copied().unwrap_or(0)
    }

    /// All calls, whatever the operation.
    pub fn total(&self) -> u64 {
        self.lock().operations.values().sum()
    }

    /// Attempts AWS answered with a throttling error (each was retried after a backoff).
    pub fn throttled(&self) -> u64 {
        self.lock().throttled
    }

    /// HTTP attempts, retries included.
    pub fn attempts(&self) -> u64 {
        self.lock().attempts
    }

    pub fn reset(&self) {
        *self.lock() = Counts::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
pub(crate) struct CountCalls(pub ApiCalls);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "kiln::CountCalls"
    }

    /// Once per operation, after the operation's configuration (its name) is in `cfg`.
    fn read_before_serialization(
        &self,
        _ctx: &BeforeSerializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg.load::<Metadata>().map_or("unknown", Metadata::name).to_string();
        *self.0.lock().operations.entry(name).or_default() += 1;
        Ok(())
    }

    fn read_before_attempt(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.lock().attempts += 1;
        Ok(())
    }

    /// Notes throttling answers: HTTP 429, or an error body naming a throttling code.
    /// After deserialization, when the error body has been read into memory.
    fn read_after_deserialization(
        &self,
        ctx: &AfterDeserializationInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let r = ctx.response();
        let status = r.status().as_u16();
        let body = r.body().bytes().unwrap_or_default();
        if status == 429 || (status >= 400 && is_throttling(body)) {
            self.0.lock().throttled += 1;
        }
        Ok(())
    }
}

/// Error codes AWS services use for throttling.
const THROTTLING: [&str; 8] = [
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "TooManyRequestsException",
];

fn is_throttling(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    THROTTLING.iter().any(|c| text.contains(&format!("<Code>{c}</Code>")))
}
