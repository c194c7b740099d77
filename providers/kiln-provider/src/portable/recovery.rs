//! A job's `recovery` block: which failures `kiln watch` starts the job again after, and how
//! often. The block is portable (every provider's `job` has it, changing it never replaces the
//! job), read from state by `kiln watch` ([`Recovery::of`]), and checked at validate
//! ([`validate`]) with errors at the attribute.
//!
//! ```hcl
//! recovery {
//!   on               = ["preemption", "host_failure", "error"]  # default: all but "error"
//!   max_restarts     = 20                                       # default 10
//!   retry_exit_codes = [75]     # with "error": only these exit codes restart; default any non-zero
//!   strategy         = "same_pool"  # or "next_offering", "next_region" (a cluster with `placement`)
//!   give_up_after    = "6h"     # of continuous no-capacity; default never
//!   notify {
//!     command = "./page-me.sh"  # run by kiln watch on each event, KILN_EVENT_* in its environment
//!   }
//! }
//! ```
//!
//! # Failure categories
//!
//! A job that ended without succeeding is put in one category ([`failure`]), from the
//! attributes every provider reports: `status` ([`JobStatus`]), `exit_codes` and, where the
//! provider tells why a node went, `lost_reason`.
//!
//! | Category | What it is | How it is seen |
//! |---|---|---|
//! | `preemption` | the capacity was taken back (spot) | status `lost` with `lost_reason = "preemption"` |
//! | `host_failure` | a node vanished without an exit code (process group, host or instance gone) | status `lost` (any other `lost_reason`, or none) |
//! | `no_capacity` | no capacity to start the job again | the restart fails with an error whose code ends in `-CAPACITY` (`E-AWS-CAPACITY`) |
//! | `error` | a node exited non-zero | status `failed` |
//!
//! Per provider: `local` — a node's process group gone without an exit code is `host_failure`, a
//! non-zero exit is `error`; `aws` — a spot interruption notice (the agent relays it and gives
//! the job SIGTERM to write a last checkpoint) or `Server.SpotInstanceTermination` is
//! `preemption`, an instance gone otherwise `host_failure`; `onprem` — a host that stops
//! answering is `host_failure`; `slurm` —
//! `PREEMPTED` is `preemption`, `NODE_FAIL` (and `BOOT_FAIL`, `REVOKED`) `host_failure`, `FAILED`
//! `error`.

use std::time::Duration;

use kiln_diag::Diagnostic;
use kiln_schema::{Attribute, Block, Body, Nesting};
use kiln_value::{Type, Value};

use crate::portable::job::JobStatus;

/// The block's name on a job.
pub const BLOCK: &str = "recovery";

/// How many restarts a `recovery` block allows when it does not say.
pub const DEFAULT_MAX_RESTARTS: u64 = 10;

/// The most `max_restarts` may be.
pub const MAX_RESTARTS: u64 = 10_000;

/// Why a job ended without succeeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Category {
    Preemption,
    HostFailure,
    NoCapacity,
    Error,
}

impl Category {
    pub const ALL: [Category; 4] = [Category::Preemption, Category::HostFailure, Category::NoCapacity, Category::Error];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Preemption => "preemption",
            Category::HostFailure => "host_failure",
            Category::NoCapacity => "no_capacity",
            Category::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `recovery` block as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// The categories that restart the job.
    pub on: Vec<Category>,
    pub max_restarts: u64,
    /// With [`Category::Error`]: the exit codes that restart it (empty: any non-zero one).
    pub retry_exit_codes: Vec<i64>,
    /// How long continuous no-capacity lasts before `kiln watch` gives up (`None`: never).
    pub give_up_after: Option<Duration>,
    /// `notify.command`: run for every event.
    pub notify: Option<String>,
    pub strategy: Strategy,
}

/// Where a job starts again after a preemption or no capacity (`recovery.strategy`). Any other
/// failure starts it again on its own cluster: moving does not mend a program or a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// On its own cluster (lost nodes replaced where they were): the default.
    #[default]
    SamePool,
    /// Its cluster placed again (it must opt into placement) without the offering it ran on:
    /// the next cheapest offering of its request.
    NextOffering,
    /// Its cluster placed again outside the region it ran in.
    NextRegion,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Strategy> {
        match s {
            "same_pool" => Some(Strategy::SamePool),
            "next_offering" => Some(Strategy::NextOffering),
            "next_region" => Some(Strategy::NextRegion),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::SamePool => "same_pool",
            Strategy::NextOffering => "next_offering",
            Strategy::NextRegion => "next_region",
        }
    }

    /// Whether a restart after `category` places the cluster again.
    pub fn moves_after(self, category: Category) -> bool {
        self != Strategy::SamePool && matches!(category, Category::Preemption | Category::NoCapacity)
    }
}

/// The block's schema: optional, one at most, updated in place.
pub fn block() -> Block {
    let categories = "Failures that start the job again: \"preemption\", \"host_failure\", \"no_capacity\", \"error\"; \
                      default all but \"error\"";
    let body = Body::new()
        .attr("on", Attribute::optional(Type::List(Box::new(Type::String)), categories))
        .attr("max_restarts", Attribute::optional(Type::Number, "Most times the job is started again; default 10"))
        .attr(
            "retry_exit_codes",
            Attribute::optional(
                Type::List(Box::new(Type::Number)),
                "With \"error\": the exit codes that start the job again (others fail it); default any non-zero",
            ),
        )
        .attr(
            "strategy",
            Attribute::optional(
                Type::String,
                "Where the job starts again after a preemption or no capacity: \"same_pool\" (its own cluster, the default), \
                 \"next_offering\" (its cluster, which must have a `placement` block, placed again without the offering it ran on) \
                 or \"next_region\" (placed again outside the region it ran in)",
            ),
        )
        .attr(
            "give_up_after",
            Attribute::optional(Type::String, "How long continuous no-capacity lasts before kiln gives up, such as \"6h\""),
        )
        .block("notify", notify_block());
    Block {
        nesting: Nesting::Single,
        body,
        min_items: 0,
        max_items: Some(1),
        force_new: false,
        description: "Restarts the job after the failures it names, from its last checkpoint (`kiln watch`)",
    }
}

/// `notify { command = "..." }`: run on the machine running `kiln watch` for every event.
fn notify_block() -> Block {
    let command = "Shell command run (sh -c) for every event of the job, with KILN_EVENT, KILN_EVENT_JOB, KILN_EVENT_CATEGORY, \
                   KILN_EVENT_ATTEMPT, KILN_EVENT_DETAIL and KILN_EVENT_AT in its environment";
    Block {
        nesting: Nesting::Single,
        body: Body::new().attr("command", Attribute::required(Type::String, command)),
        min_items: 0,
        max_items: Some(1),
        force_new: false,
        description: "A command kiln watch runs on each event (a page, a chat message)",
    }
}

fn number(v: &Value) -> Option<f64> {
    v.as_number().and_then(|n| f64::try_from(n).ok())
}

fn block_of(job: &Value) -> Option<&Value> {
    job.get(BLOCK).filter(|b| b.as_map().is_some())
}

impl Recovery {
    /// The job's `recovery` block (from its configuration or its state), or `None` without one.
    /// Values that [`validate`] refuses are read leniently (an unknown category is skipped).
    pub fn of(job: &Value) -> Option<Recovery> {
        let b = block_of(job)?;
        let on = match b.get("on").and_then(Value::as_list) {
            Some(l) => l.iter().filter_map(|c| c.as_str().and_then(Category::parse)).collect(),
            None => vec![Category::Preemption, Category::HostFailure, Category::NoCapacity],
        };
        let max_restarts =
            b.get("max_restarts").and_then(number).map_or(DEFAULT_MAX_RESTARTS, |n| n.clamp(0.0, MAX_RESTARTS as f64) as u64);
        let retry_exit_codes =
            b.get("retry_exit_codes").and_then(Value::as_list).into_iter().flatten().filter_map(number).map(|n| n as i64).collect();
        let give_up_after = b.get("give_up_after").and_then(Value::as_str).and_then(|s| crate::logs::parse_duration(s).ok());
        let notify = b.get("notify").and_then(|n| n.get("command")).and_then(Value::as_str).map(str::to_string);
        let strategy = b.get("strategy").and_then(Value::as_str).and_then(Strategy::parse).unwrap_or_default();
        Some(Recovery { on, max_restarts, retry_exit_codes, give_up_after, notify, strategy })
    }

    /// Whether `failure` of a job that has restarted `restarts` times starts it again.
    pub fn verdict(&self, failure: &Failure, restarts: u64) -> Verdict {
        if !self.on.contains(&failure.category) {
            return Verdict::NotCovered;
        }
        if let (Category::Error, Some(code)) = (failure.category, failure.exit_code) {
            if !self.retry_exit_codes.is_empty() && !self.retry_exit_codes.contains(&code) {
                return Verdict::ExitCodeNotRetried(code);
            }
        }
        if restarts >= self.max_restarts {
            return Verdict::OutOfRestarts(self.max_restarts);
        }
        Verdict::Restart
    }
}

/// What `kiln watch` does about a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Start it again.
    Restart,
    /// The block's `on` does not name the failure's category.
    NotCovered,
    /// An `error` whose exit code `retry_exit_codes` does not list.
    ExitCodeNotRetried(i64),
    /// It has restarted `max_restarts` times already.
    OutOfRestarts(u64),
}

/// Why a job ended without succeeding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub category: Category,
    /// For [`Category::Error`]: the first non-zero exit code, by rank.
    pub exit_code: Option<i64>,
    /// What happened, in words (`node 1 exited 137`).
    pub detail: String,
}

/// The failure of a job whose state says it ended without succeeding (lost or failed); `None`
/// while it runs, once it succeeded, or when it was stopped on purpose.
pub fn failure(job: &Value) -> Option<Failure> {
    match JobStatus::of(job)? {
        JobStatus::Lost => {
            let reason = job.get("lost_reason").and_then(Value::as_str);
            let category = reason.and_then(Category::parse).filter(|c| *c != Category::Error).unwrap_or(Category::HostFailure);
            let detail = match reason {
                Some(r) if !r.is_empty() => format!("a node is gone without an exit code ({r})"),
                _ => "a node is gone without an exit code".to_string(),
            };
            Some(Failure { category, exit_code: None, detail })
        }
        JobStatus::Failed => {
            let codes = job.get("exit_codes").and_then(Value::as_list).unwrap_or_default();
            let first = codes.iter().enumerate().find_map(|(rank, c)| number(c).filter(|c| *c != 0.0).map(|c| (rank, c as i64)));
            let detail = match first {
                Some((rank, code)) => format!("node {rank} exited {code}"),
                None => "the job failed".to_string(),
            };
            Some(Failure { category: Category::Error, exit_code: first.map(|(_, c)| c), detail })
        }
        _ => None,
    }
}

/// The `recovery` block's problems, each at its attribute (`recovery.on`) with a hint.
pub fn validate(config: &Value) -> Vec<Diagnostic> {
    let Some(b) = block_of(config) else { return Vec::new() };
    let mut out = Vec::new();
    let err = |attr: &str, summary: String, hint: &str| {
        Diagnostic::error("E-JOB-RECOVERY", summary).attribute(format!("{BLOCK}.{attr}")).hint(hint.to_string())
    };
    let names = Category::ALL.map(Category::as_str).join("\", \"");
    for c in b.get("on").and_then(Value::as_list).into_iter().flatten() {
        if let Some(s) = c.as_str().filter(|s| Category::parse(s).is_none()) {
            out.push(err("on", format!("recovery.on: `{s}` is not a failure category"), &format!("write some of \"{names}\"")));
        }
    }
    if let Some(n) = b.get("max_restarts").and_then(number) {
        if n < 0.0 || n.fract() != 0.0 || n > MAX_RESTARTS as f64 {
            out.push(err(
                "max_restarts",
                format!("recovery.max_restarts: {n} is not a whole number from 0 to {MAX_RESTARTS}"),
                "such as 20",
            ));
        }
    }
    for c in b.get("retry_exit_codes").and_then(Value::as_list).into_iter().flatten() {
        if let Some(n) = number(c).filter(|n| *n < 1.0 || *n > 255.0 || n.fract() != 0.0) {
            out.push(err(
                "retry_exit_codes",
                format!("recovery.retry_exit_codes: {n} is not an exit code that fails a job (1 to 255)"),
                "list the non-zero exit codes your program uses to ask for a restart, such as [75]",
            ));
        }
    }
    if let Some(s) = b.get("strategy").and_then(Value::as_str).filter(|s| Strategy::parse(s).is_none()) {
        out.push(err(
            "strategy",
            format!("recovery.strategy: `{s}` is not a recovery strategy kiln has"),
            "write \"same_pool\" (the job's own cluster), \"next_offering\" or \"next_region\"",
        ));
    }
    if let Some(s) = b.get("give_up_after").and_then(Value::as_str) {
        if let Err(e) = crate::logs::parse_duration(s) {
            out.push(err("give_up_after", format!("recovery.give_up_after: {e}"), "write a duration such as \"6h\" or \"30m\""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(j: serde_json::Value) -> Value {
        Value::from_json(&j)
    }

    #[test]
    fn defaults_cover_all_but_error() {
        let r = Recovery::of(&v(serde_json::json!({ "recovery": {} }))).expect("a block");
        assert_eq!(r.on, vec![Category::Preemption, Category::HostFailure, Category::NoCapacity]);
        assert_eq!(r.max_restarts, DEFAULT_MAX_RESTARTS);
        assert!(r.retry_exit_codes.is_empty() && r.give_up_after.is_none() && r.notify.is_none());
        let told = Recovery::of(&v(serde_json::json!({ "recovery": { "notify": { "command": "echo $KILN_EVENT" } } }))).unwrap();
        assert_eq!(told.notify.as_deref(), Some("echo $KILN_EVENT"));
        assert_eq!(Recovery::of(&v(serde_json::json!({ "recovery": null }))), None);
    }

    #[test]
    fn a_lost_job_is_a_host_failure_unless_its_provider_says_preemption() {
        let lost = failure(&v(serde_json::json!({ "status": "lost" }))).expect("a failure");
        assert_eq!(lost.category, Category::HostFailure);
        let preempted = failure(&v(serde_json::json!({ "status": "lost", "lost_reason": "preemption" }))).expect("a failure");
        assert_eq!(preempted.category, Category::Preemption);
        assert_eq!(failure(&v(serde_json::json!({ "status": "running" }))), None);
        assert_eq!(failure(&v(serde_json::json!({ "status": "succeeded" }))), None);
    }

    #[test]
    fn errors_restart_only_for_listed_exit_codes_and_restarts_are_capped() {
        let failed = failure(&v(serde_json::json!({ "status": "failed", "exit_codes": [0, 75] }))).expect("a failure");
        assert_eq!((failed.category, failed.exit_code, failed.detail.as_str()), (Category::Error, Some(75), "node 1 exited 75"));
        let r =
            Recovery::of(&v(serde_json::json!({ "recovery": { "on": ["error"], "retry_exit_codes": [75], "max_restarts": 2 } }))).unwrap();
        assert_eq!(r.verdict(&failed, 0), Verdict::Restart);
        assert_eq!(r.verdict(&failed, 2), Verdict::OutOfRestarts(2));
        let other = Failure { exit_code: Some(1), ..failed.clone() };
        assert_eq!(r.verdict(&other, 0), Verdict::ExitCodeNotRetried(1));
        let default = Recovery::of(&v(serde_json::json!({ "recovery": {} }))).unwrap();
        assert_eq!(default.verdict(&failed, 0), Verdict::NotCovered);
    }

    #[test]
    fn validate_names_each_bad_attribute() {
        let cfg = v(serde_json::json!({ "recovery": {
            "on": ["preemption", "oom"], "max_restarts": -1, "retry_exit_codes": [0, 75],
            "strategy": "next_cloud", "give_up_after": "soon"
        } }));
        let attrs: Vec<String> = validate(&cfg).into_iter().map(|d| d.attribute.unwrap_or_default()).collect();
        assert_eq!(
            attrs,
            ["recovery.on", "recovery.max_restarts", "recovery.retry_exit_codes", "recovery.strategy", "recovery.give_up_after"]
        );
        assert!(validate(&v(serde_json::json!({ "recovery": { "on": ["error"], "retry_exit_codes": [75] } }))).is_empty());
        for s in ["same_pool", "next_offering", "next_region"] {
            let r = v(serde_json::json!({ "recovery": { "strategy": s } }));
            assert!(validate(&r).is_empty(), "{s}");
            assert_eq!(Recovery::of(&r).unwrap().strategy.as_str(), s);
        }
    }
}
