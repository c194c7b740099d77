//! The built-in `kiln` provider, always available without a `provider` block. Its `record` kind
//! stores an `input` value of any type and exposes it as `output`, with a generated `id`, as
//! Terraform's `terraform_data` does; `create_delay = "100ms"` emulates a slow API. It calls no
//! remote API, so it has no concurrency limit. Tests and benchmarks use it.

use std::time::Duration;

use kiln_diag::{Diagnostic, Diagnostics};
use kiln_provider::kinds::{Kind, KindFactory, KindProvider, Kinds, Outcome};
use kiln_provider::{
    async_trait, ApplyResponse, ConfigureRequest, CreateRequest, DeleteRequest, ImportRequest, Limits, PlanRequest, PlanResponse, ReadItem,
    ReadResult, RecoverRequest, UpdateRequest,
};
use kiln_schema::{Attribute, Body, KindSchema};
use kiln_value::{Map, Type, Value};

pub const NAME: &str = "kiln";

pub struct BuiltinFactory;

impl KindFactory for BuiltinFactory {
    type Provider = Builtin;
}

pub struct Builtin;

/// The `record` kind.
struct Record;

fn record_schema() -> KindSchema {
    let record = Body::new()
        .attr("input", Attribute::optional(Type::Any, "Any value to store; changes update in place"))
        .attr("output", Attribute::computed(Type::Any, "The stored input"))
        .attr("id", Attribute::computed(Type::String, "Generated identifier"))
        .attr("triggers_replace", Attribute::optional(Type::Any, "Any value; a change replaces the record").force_new())
        .attr(
            "create_delay",
            Attribute::optional(Type::String, "Duration such as `100ms` or `2s` to wait in create, emulating a slow API"),
        );
    KindSchema::new("A value stored in state", record).state_only()
}

/// The longest `create_delay`: a record emulates a slow API, not a day-long one.
pub const MAX_DELAY: Duration = Duration::from_secs(24 * 3600);

/// Parses `100ms`, `2s`, `1.5s`, `1m`, `2h`, up to [`MAX_DELAY`].
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok().filter(|d| *d <= MAX_DELAY)
}

fn attrs(v: &Value) -> Map {
    v.as_map().cloned().unwrap_or_default()
}

fn with_output(mut m: Map) -> Map {
    let input = m.get("input").cloned().unwrap_or(Value::Null);
    m.insert("output".into(), input);
    m
}

static KINDS: Kinds<(), ()> = Kinds { provider: NAME, config: Body::new, kinds: &[&Record], data: &[] };

#[async_trait]
impl KindProvider for Builtin {
    type Ctx = ();
    type Batch = ();
    const KINDS: &'static Kinds<(), ()> = &KINDS;

    async fn configure(_req: ConfigureRequest) -> Result<Self, Diagnostics> {
        Ok(Builtin)
    }

    fn ctx(&self) -> &() {
        &()
    }

    fn limits(&self) -> Limits {
        Limits { concurrency: None }
    }
}

#[async_trait]
impl Kind<(), ()> for Record {
    fn name(&self) -> &'static str {
        "record"
    }

    fn schema(&self) -> KindSchema {
        record_schema()
    }

    fn validate(&self, config: &Value) -> Diagnostics {
        let mut d = Diagnostics::new();
        if let Some(s) = config.get("create_delay").and_then(Value::as_str) {
            if parse_duration(s).is_none() {
                d.push(
                    Diagnostic::error("E-RECORD-DELAY", format!("invalid create_delay `{s}`"))
                        .attribute("create_delay")
                        .hint("write a duration of at most 24h, such as \"100ms\", \"2s\" or \"1m\""),
                );
            }
        }
        d
    }

    async fn plan(&self, _ctx: &(), req: &PlanRequest<'_>) -> Outcome<PlanResponse> {
        let mut planned = with_output(attrs(req.proposed));
        let id = req.prior.and_then(|p| p.get("id")).cloned().unwrap_or(Value::Unknown);
        planned.insert("id".into(), id);
        Ok(PlanResponse { planned: Value::Map(planned), requires_replace: Vec::new(), diagnostics: Diagnostics::new() })
    }

    async fn create(&self, _ctx: &(), req: &CreateRequest<'_>) -> Outcome<ApplyResponse> {
        if let Some(d) = req.planned.get("create_delay").and_then(Value::as_str).and_then(parse_duration) {
            tokio::time::sleep(d).await;
        }
        let mut m = with_output(attrs(req.planned));
        m.insert("id".into(), Value::String(uuid::Uuid::new_v4().to_string()));
        Ok(ApplyResponse::ok(Value::Map(m)))
    }

    async fn update(&self, _ctx: &(), req: &UpdateRequest<'_>) -> Outcome<ApplyResponse> {
        let mut m = with_output(attrs(req.planned));
        m.insert("id".into(), req.prior.get("id").cloned().unwrap_or(Value::Null));
        Ok(ApplyResponse::ok(Value::Map(m)))
    }

    async fn delete(&self, _ctx: &(), _req: &DeleteRequest<'_>) -> Outcome<Diagnostics> {
        Ok(Diagnostics::new())
    }

    async fn read(&self, _ctx: &(), items: &[&ReadItem<'_>], _batch: &()) -> Outcome<Vec<ReadResult>> {
        Ok(items.iter().map(|i| ReadResult::found(i.state.clone())).collect())
    }

    async fn recover(&self, _ctx: &(), _req: &RecoverRequest<'_>) -> Outcome<ReadResult> {
        // A record exists only in state: an interrupted create left nothing behind.
        Ok(ReadResult::gone())
    }

    async fn import(&self, _ctx: &(), req: &ImportRequest<'_>) -> Outcome<ReadResult> {
        let m: Map =
            [("id".to_string(), Value::from(req.id)), ("input".to_string(), Value::Null), ("output".to_string(), Value::Null)].into();
        Ok(ReadResult::found(Value::Map(m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Some(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("fast"), None);
        assert_eq!(parse_duration("24h"), Some(MAX_DELAY));
        // Too long for a Duration, or longer than the limit: invalid, never a panic.
        assert_eq!(parse_duration("99999999999999999h"), None);
        assert_eq!(parse_duration("25h"), None);
        assert_eq!(parse_duration(&format!("{}s", "9".repeat(400))), None);
    }

    #[test]
    fn an_overlong_delay_is_a_validation_error_at_the_attribute() {
        let config = Value::Map([("create_delay".to_string(), Value::from("99999999999999999h"))].into());
        let d = kiln_provider::Provider::validate(&Builtin, kiln_provider::ValidateRequest { kind: "record", config: &config });
        let e = d.iter().next().expect("an error");
        assert_eq!(e.code, "E-RECORD-DELAY");
        assert_eq!(e.attribute.as_deref(), Some("create_delay"));
    }

    #[tokio::test]
    async fn conformance() {
        let p = Builtin;
        let case = kiln_provider::conformance::Case {
            kind: "record",
            config: Value::Map([("input".to_string(), Value::from("a"))].into()),
            update: Some(Value::Map([("input".to_string(), Value::from("b"))].into())),
            import_id: Some("imported-1"),
        };
        kiln_provider::conformance::run(&p, &[case]).await;
    }
}
