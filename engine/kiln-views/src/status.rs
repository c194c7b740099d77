//! `kiln status`: every cluster (nodes, GPUs, state, uptime) and every job (as `kiln jobs`),
//! read from the attributes their providers reported now. A cluster's fields come from the
//! portable and provider attributes where present: `nodes` (Slurm: `total_nodes`, aws without
//! it: its `instance_ids`), the node addresses (`node_ips`, aws `private_ips`, Slurm
//! `node_names`), `accelerators`, `gpus_per_node` (Slurm: `total_gpus`), `state`, and
//! `created_at` for the uptime (every provider records it; a state written before, where the
//! provider cannot read it back, has none: no uptime).

use std::fmt::Write;

use chrono::{DateTime, Utc};
use kiln_value::Value;
use serde::Serialize;

use crate::jobs::{attr, number, seconds, text, JobView};
use crate::markdown::{cell, code};
use crate::FORMAT_VERSION;

/// `kiln status --json` (schema: `schemas/json/status-view.schema.json`).
#[derive(Debug, Clone, Serialize)]
pub struct StatusView {
    pub format_version: &'static str,
    pub clusters: Vec<ClusterView>,
    pub jobs: Vec<JobView>,
}

/// One cluster (or spot pool). Fields its provider does not report are `null`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterView {
    pub address: String,
    pub provider: String,
    /// `cluster` or `spot_pool`.
    pub kind: String,
    /// The provider's own `state` (aws: running, pending, degraded...; Slurm: up, down,
    /// drain...); `ready` when the provider found it and reports no state; `gone` when it no
    /// longer finds it; `released` when a finished job released it (`on_finish =
    /// "destroy_capacity"`: it is not running, and the rest is what it had).
    pub state: String,
    pub nodes: Option<u64>,
    /// Each node's address by rank, where the provider reports them.
    pub node_addresses: Vec<String>,
    /// The request, such as `A100:8`.
    pub accelerators: Option<String>,
    pub gpus_per_node: Option<u64>,
    /// GPUs of all its nodes.
    pub gpus: Option<u64>,
    /// RFC 3339, where the provider records when it was made.
    pub created_at: Option<String>,
    /// Seconds since `created_at`.
    pub uptime_seconds: Option<u64>,
    /// USD per hour, as recorded when it was applied (`kiln cost`); `null`: unknown or not
    /// recorded.
    pub price_hourly: Option<f64>,
}

fn strings(v: Option<&Value>, name: &str) -> Vec<String> {
    attr(v, name).and_then(Value::as_list).unwrap_or_default().iter().filter_map(|x| x.as_str()).map(str::to_string).collect()
}

/// An `accelerators` request as people write it: `A100:8`, or alternatives `H100:8 | A100:8`.
fn accelerators(v: Option<&Value>) -> Option<String> {
    let a = attr(v, "accelerators")?;
    match a.as_list() {
        Some(list) => Some(list.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" | ")).filter(|s| !s.is_empty()),
        None => a.as_str().map(str::to_string),
    }
}

impl ClusterView {
    /// The cluster at `address` of `kind` served by `provider`, from what its provider read now
    /// (`None`: gone).
    pub fn new(address: &str, provider: &str, kind: &str, current: Option<&Value>, now: DateTime<Utc>) -> ClusterView {
        let state = match current {
            None => "gone".to_string(),
            Some(_) => text(current, "state").unwrap_or_else(|| "ready".to_string()),
        };
        let node_addresses =
            ["node_ips", "private_ips", "node_names"].iter().map(|k| strings(current, k)).find(|l| !l.is_empty()).unwrap_or_default();
        let ids = strings(current, "instance_ids");
        let nodes = number(current, "total_nodes")
            .or_else(|| number(current, "nodes"))
            .or_else(|| (!ids.is_empty()).then_some(ids.len() as u64))
            .or_else(|| (!node_addresses.is_empty()).then_some(node_addresses.len() as u64));
        let gpus_per_node = number(current, "gpus_per_node");
        let gpus = number(current, "total_gpus").or_else(|| Some(gpus_per_node? * nodes?));
        let created_at = text(current, "created_at");
        ClusterView {
            address: address.to_string(),
            provider: provider.to_string(),
            kind: kind.to_string(),
            state,
            nodes,
            node_addresses,
            accelerators: accelerators(current),
            gpus_per_node,
            gpus,
            uptime_seconds: current.and(seconds(created_at.as_deref(), None, now)),
            created_at,
            price_hourly: None,
        }
    }

    /// A released cluster, from the attributes it had (state keeps them): not running, no uptime.
    pub fn released(address: &str, provider: &str, kind: &str, had: &Value, now: DateTime<Utc>) -> ClusterView {
        ClusterView { state: "released".to_string(), uptime_seconds: None, ..ClusterView::new(address, provider, kind, Some(had), now) }
    }

    /// With the price state recorded for it at apply.
    pub fn priced(mut self, hourly: Option<kiln_value::Decimal>) -> ClusterView {
        self.price_hourly = hourly.and_then(|d| d.round_dp(6).to_string().parse().ok());
        self
    }
}

/// `$0.2022/h`, or `-` when unknown.
fn price(p: Option<f64>) -> String {
    p.and_then(|v| kiln_value::Decimal::try_from(v).ok()).map_or("-".to_string(), |d| format!("{}/h", kiln_plan::cost::usd(d)))
}

/// A long time for a table: `12m05s`, `3h12m`, `2d03h`.
pub fn uptime(secs: u64) -> String {
    match secs {
        s if s < 3600 => crate::jobs::minutes(s),
        s if s < 86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        s => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn opt(n: Option<u64>) -> String {
    n.map(|n| n.to_string()).unwrap_or_else(|| "-".to_string())
}

/// Clusters and jobs, as read now.
pub struct Status {
    pub clusters: Vec<ClusterView>,
    pub jobs: Vec<JobView>,
}

impl crate::View for Status {
    fn json(&self) -> serde_json::Value {
        let v = StatusView { format_version: FORMAT_VERSION, clusters: self.clusters.clone(), jobs: self.jobs.clone() };
        serde_json::to_value(v).expect("a status view serializes")
    }

    fn human(&self) -> String {
        if self.clusters.is_empty() && self.jobs.is_empty() {
            return "No clusters or jobs.\n".to_string();
        }
        let mut out = String::new();
        if !self.clusters.is_empty() {
            out += "Clusters:\n\n";
            let _ = writeln!(
                out,
                "{:<32} {:<10} {:<10} {:>5} {:>5} {:<16} {:>8} {:>11}  NODE ADDRESSES",
                "ADDRESS", "PROVIDER", "STATE", "NODES", "GPUS", "ACCELERATORS", "UPTIME", "$/H"
            );
            for c in &self.clusters {
                let row = format!(
                    "{:<32} {:<10} {:<10} {:>5} {:>5} {:<16} {:>8} {:>11}  {}",
                    c.address,
                    c.provider,
                    c.state,
                    opt(c.nodes),
                    opt(c.gpus),
                    c.accelerators.as_deref().unwrap_or("-"),
                    c.uptime_seconds.map_or("-".to_string(), uptime),
                    price(c.price_hourly),
                    if c.node_addresses.is_empty() { "-".to_string() } else { c.node_addresses.join(", ") }
                );
                let _ = writeln!(out, "{}", row.trim_end());
            }
        }
        if !self.jobs.is_empty() {
            if !out.is_empty() {
                out += "\n";
            }
            out += "Jobs:\n\n";
            out += &crate::jobs::table(&self.jobs);
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        if !self.clusters.is_empty() {
            out += "| Cluster | Provider | State | Nodes | GPUs | Accelerators | Uptime | $/h | Node addresses |\n";
            out += "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | --- |\n";
            for c in &self.clusters {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    code(&c.address),
                    cell(&c.provider),
                    cell(&c.state),
                    opt(c.nodes),
                    opt(c.gpus),
                    c.accelerators.as_deref().map(code).unwrap_or_default(),
                    c.uptime_seconds.map(uptime).unwrap_or_default(),
                    price(c.price_hourly),
                    cell(&c.node_addresses.join(", ")),
                );
            }
        }
        if !self.jobs.is_empty() {
            if !out.is_empty() {
                out += "\n";
            }
            out += &crate::jobs::markdown_table(&self.jobs);
        }
        if out.is_empty() {
            out = "No clusters or jobs.\n".to_string();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::time;
    use crate::View;

    fn map(pairs: &[(&str, Value)]) -> Value {
        Value::Map(pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| Value::from(*s)).collect())
    }

    fn now() -> DateTime<Utc> {
        time("2026-01-02T03:00:00Z").unwrap()
    }

    #[test]
    fn clusters_of_each_provider() {
        let onprem = map(&[
            ("nodes", Value::from(2i64)),
            ("accelerators", Value::from("A100:4")),
            ("gpus_per_node", Value::from(4i64)),
            ("node_ips", list(&["10.0.0.1", "10.0.0.2"])),
        ]);
        let c = ClusterView::new("cluster.train", "onprem", "cluster", Some(&onprem), now());
        assert_eq!((c.state.as_str(), c.nodes, c.gpus, c.accelerators.as_deref()), ("ready", Some(2), Some(8), Some("A100:4")));
        assert_eq!(c.node_addresses, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(c.uptime_seconds, None, "no creation time recorded: no uptime");

        let aws = map(&[
            ("state", Value::from("running")),
            ("accelerators", list(&["H100:8", "A100:8"])),
            ("gpus_per_node", Value::from(8i64)),
            ("instance_ids", list(&["i-1"])),
            ("private_ips", list(&["10.1.0.5"])),
            ("created_at", Value::from("2026-01-01T01:00:00Z")),
        ]);
        let c = ClusterView::new("cluster.big", "aws", "cluster", Some(&aws), now());
        assert_eq!((c.state.as_str(), c.nodes, c.gpus), ("running", Some(1), Some(8)));
        assert_eq!(c.accelerators.as_deref(), Some("H100:8 | A100:8"));
        assert_eq!(c.uptime_seconds, Some(26 * 3600));
        assert_eq!(uptime(26 * 3600), "1d02h");

        let slurm = map(&[
            ("state", Value::from("up")),
            ("nodes", Value::from(1i64)),
            ("total_nodes", Value::from(4i64)),
            ("total_gpus", Value::from(16i64)),
            ("node_names", list(&["n1", "n2", "n3", "n4"])),
        ]);
        let c = ClusterView::new("cluster.hpc", "slurm", "cluster", Some(&slurm), now());
        assert_eq!((c.nodes, c.gpus, c.gpus_per_node), (Some(4), Some(16), None));

        let gone = ClusterView::new("cluster.old", "local", "cluster", None, now());
        assert_eq!((gone.state.as_str(), gone.nodes, gone.gpus), ("gone", None, None));
    }

    #[test]
    fn every_format_lists_clusters_and_jobs() {
        let local =
            map(&[("nodes", Value::from(2i64)), ("gpus_per_node", Value::from(0i64)), ("created_at", Value::from("2026-01-02T00:46:40Z"))]);
        let job = map(&[("status", Value::from("running")), ("started_at", Value::from("2026-01-02T02:59:00Z"))]);
        let s = Status {
            clusters: vec![ClusterView::new("cluster.c", "local", "cluster", Some(&local), now()).priced(Some(0.into()))],
            jobs: vec![JobView::new("job.j", "local", Some(&job), now())],
        };
        let human = s.human();
        assert!(human.starts_with("Clusters:\n\nADDRESS"), "{human}");
        let row = human.lines().find(|l| l.starts_with("cluster.c")).unwrap();
        assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["cluster.c", "local", "ready", "2", "0", "-", "2h13m", "$0.00/h", "-"]);
        assert!(human.contains("\nJobs:\n\nADDRESS"), "{human}");
        assert!(human.lines().any(|l| l.split_whitespace().eq(["job.j", "running", "2026-01-02T02:59:00Z", "1m00s"])), "{human}");
        let j = s.json();
        assert_eq!(j["format_version"], "1.0");
        assert_eq!(j["clusters"][0]["gpus"], 0);
        assert_eq!(j["clusters"][0]["price_hourly"], 0.0);
        assert_eq!(
            (j["clusters"][0]["created_at"].as_str(), j["clusters"][0]["uptime_seconds"].as_u64()),
            (Some("2026-01-02T00:46:40Z"), Some(8000))
        );
        assert_eq!(j["jobs"][0]["duration_seconds"], 60);
        assert!(s.markdown().contains("| `cluster.c` | local | ready | 2 | 0 |  | 2h13m | $0.00/h |"), "{}", s.markdown());
        assert_eq!(Status { clusters: vec![], jobs: vec![] }.human(), "No clusters or jobs.\n");
    }
}
