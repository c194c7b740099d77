//! Releasing a finished job's capacity (`on_finish = "destroy_capacity"`), as plan changes.
//!
//! A job that succeeded and asks for it releases its cluster: the plan deletes the cluster with
//! [`Reason::Released`], and apply keeps it in state as released (`kiln_state::Released`)
//! rather than forgetting it. A released object is not read, billed or deleted again; a plan
//! leaves it released (a no-op with the same reason) until its configuration changes or a job
//! that needs it is created or replaced, and then creates it again ([`Reason::Reacquired`]).
//! Only the planner's changes are read: values in, values out.

use std::collections::{BTreeMap, HashMap};

use kiln_addrs::InstanceAddr;
use kiln_plan::{Action, PlannedChange, Reason};
use kiln_provider::portable::job::{releases_capacity, JobStatus};
use kiln_value::Value;

/// The kind whose objects a job's finish releases.
pub(crate) const CAPACITY: &str = "cluster";

/// Released objects (planned to stay released, or found gone and released by this plan) that a
/// created or replaced change depends on, each with the first such change's address: these
/// must be created again.
pub(crate) fn needed(changes: &[PlannedChange]) -> BTreeMap<InstanceAddr, String> {
    let released: HashMap<&InstanceAddr, &PlannedChange> = changes
        .iter()
        .filter(|c| matches!(c.action, Action::NoOp | Action::Delete) && matches!(c.reason, Some(Reason::Released { .. })))
        .map(|c| (&c.address, c))
        .collect();
    let mut out = BTreeMap::new();
    if released.is_empty() {
        return out;
    }
    for c in changes.iter().filter(|c| matches!(c.action, Action::Create | Action::Replace)) {
        for d in c.dependencies.iter().filter(|d| released.contains_key(d)) {
            out.entry(d.clone()).or_insert_with(|| c.address.to_string());
        }
    }
    out
}

/// The job in `state` that released (or is releasing) `cluster`: one that depends on it and,
/// as `value` (refreshed, else as recorded) reads it, succeeded with `on_finish =
/// "destroy_capacity"`, while every other job on it has finished. `None` otherwise.
pub(crate) fn releasing_job(
    state: &kiln_state::State,
    value: impl Fn(&InstanceAddr) -> Option<Value>,
    cluster: &InstanceAddr,
) -> Option<InstanceAddr> {
    let jobs: Vec<(&InstanceAddr, Option<Value>)> =
        state.resources.iter().filter(|(_, r)| r.kind == "job" && r.dependencies.contains(cluster)).map(|(a, _)| (a, value(a))).collect();
    let finished = |v: &Option<Value>| v.as_ref().and_then(JobStatus::of).is_some_and(JobStatus::is_terminal);
    if !jobs.iter().all(|(_, v)| finished(v)) {
        return None;
    }
    jobs.into_iter().find(|(_, v)| v.as_ref().is_some_and(releases_capacity)).map(|(a, _)| a.clone())
}

/// Turns the no-op of each cluster that a succeeded `destroy_capacity` job ran on into its
/// release, unless something else still needs it: a dependent that is created, updated or
/// replaced, or a job on it that has not finished.
pub(crate) fn plan_releases(changes: &mut [PlannedChange]) {
    let index: HashMap<InstanceAddr, usize> = changes.iter().enumerate().map(|(i, c)| (c.address.clone(), i)).collect();
    let mut releases: Vec<(usize, String)> = Vec::new();
    for job in changes.iter().filter(|c| c.action == Action::NoOp && c.kind == "job" && c.deposed.is_none()) {
        let Some(after) = job.after.as_ref().filter(|v| releases_capacity(v)) else { continue };
        let Some(i) = cluster_of(job, after, changes, &index) else { continue };
        if releases.iter().all(|(j, _)| *j != i) && !still_needed(&changes[i].address, changes) {
            releases.push((i, job.address.to_string()));
        }
    }
    for (i, by) in releases {
        let c = &mut changes[i];
        c.action = Action::Delete;
        c.after = None;
        c.reason = Some(Reason::Released { by });
        c.references.clear();
    }
}

/// The change of the running cluster `job` ran on: among what it depends on, the cluster its
/// `cluster` attribute holds (the only cluster when the values no longer match).
fn cluster_of(job: &PlannedChange, after: &Value, changes: &[PlannedChange], index: &HashMap<InstanceAddr, usize>) -> Option<usize> {
    let live = |i: &usize| {
        let c = &changes[*i];
        c.kind == CAPACITY && c.action == Action::NoOp && c.reason.is_none() && c.deposed.is_none()
    };
    let clusters: Vec<usize> = job.dependencies.iter().filter_map(|d| index.get(d).copied()).filter(live).collect();
    let held = after.get("cluster");
    let same = |i: &&usize| changes[**i].after.as_ref().zip(held).is_some_and(|(a, b)| a.unmarked_eq(b));
    clusters.iter().find(same).copied().or(if clusters.len() == 1 { Some(clusters[0]) } else { None })
}

/// Whether a change other than a finished job's no-op depends on `cluster`.
fn still_needed(cluster: &InstanceAddr, changes: &[PlannedChange]) -> bool {
    changes.iter().filter(|c| c.dependencies.contains(cluster)).any(|c| {
        let finished_job =
            c.kind == "job" && c.after.as_ref().and_then(JobStatus::of).is_some_and(JobStatus::is_terminal) && c.action == Action::NoOp;
        !(finished_job || c.action == Action::Delete)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(addr: &str, kind: &str, action: Action, after: serde_json::Value, deps: &[&str]) -> PlannedChange {
        PlannedChange {
            address: addr.parse().unwrap(),
            provider: "local".into(),
            kind: kind.into(),
            action,
            before: Some(Value::from_json(&after)),
            after: Some(Value::from_json(&after)),
            reason: None,
            create_before_destroy: false,
            sensitive: Vec::new(),
            dependencies: deps.iter().map(|d| d.parse().unwrap()).collect(),
            deposed: None,
            references: BTreeMap::new(),
            cost: None,
        }
    }

    fn cluster() -> PlannedChange {
        change("cluster.train", "cluster", Action::NoOp, json!({"name": "train", "nodes": 1}), &[])
    }

    fn job(addr: &str, status: &str, on_finish: Option<&str>) -> PlannedChange {
        let mut v = json!({"cluster": {"name": "train", "nodes": 1}, "status": status});
        if let Some(o) = on_finish {
            v["on_finish"] = json!(o);
        }
        change(addr, "job", Action::NoOp, v, &["cluster.train"])
    }

    #[test]
    fn a_succeeded_destroy_capacity_job_releases_its_cluster() {
        let mut changes = vec![cluster(), job("job.pretrain", "succeeded", Some("destroy_capacity"))];
        plan_releases(&mut changes);
        assert_eq!(changes[0].action, Action::Delete);
        assert_eq!(changes[0].reason, Some(Reason::Released { by: "job.pretrain".into() }));
        assert_eq!(changes[1].action, Action::NoOp, "the job stays as it is");
    }

    #[test]
    fn nothing_is_released_while_the_job_runs_or_keeps_its_cluster() {
        for (status, on_finish) in [("running", Some("destroy_capacity")), ("failed", Some("destroy_capacity")), ("succeeded", None)] {
            let mut changes = vec![cluster(), job("job.pretrain", status, on_finish)];
            plan_releases(&mut changes);
            assert_eq!(changes[0].action, Action::NoOp, "{status} {on_finish:?}");
        }
    }

    #[test]
    fn a_cluster_another_job_still_runs_on_is_kept() {
        let mut changes = vec![cluster(), job("job.pretrain", "succeeded", Some("destroy_capacity")), job("job.eval", "running", None)];
        plan_releases(&mut changes);
        assert_eq!(changes[0].action, Action::NoOp);
        // A new job on it needs it too.
        let mut changes = vec![
            cluster(),
            job("job.pretrain", "succeeded", Some("destroy_capacity")),
            change("job.next", "job", Action::Create, json!({"status": null}), &["cluster.train"]),
        ];
        plan_releases(&mut changes);
        assert_eq!(changes[0].action, Action::NoOp);
    }

    #[test]
    fn a_gone_cluster_was_released_by_its_succeeded_job_unless_another_job_runs() {
        use kiln_state::{ResourceState, State};
        let resource = |kind: &str, deps: &[&str]| ResourceState {
            provider: "aws".into(),
            kind: kind.into(),
            attributes: Value::from_json(&json!({})),
            sensitive: Vec::new(),
            dependencies: deps.iter().map(|d| d.parse().unwrap()).collect(),
            tainted: false,
            create_before_destroy: false,
            billing: None,
            released: None,
        };
        let mut state = State::default();
        let (c, j, k): (InstanceAddr, InstanceAddr, InstanceAddr) =
            ("cluster.c".parse().unwrap(), "job.j".parse().unwrap(), "job.k".parse().unwrap());
        state.resources.insert(c.clone(), resource("cluster", &[]));
        state.resources.insert(j.clone(), resource("job", &["cluster.c"]));
        let values = |k_status: &'static str| {
            move |a: &InstanceAddr| {
                Some(Value::from_json(&match a.to_string().as_str() {
                    "job.j" => json!({"status": "succeeded", "on_finish": "destroy_capacity"}),
                    _ => json!({"status": k_status}),
                }))
            }
        };
        assert_eq!(releasing_job(&state, values("running"), &c), Some(j.clone()));
        state.resources.insert(k.clone(), resource("job", &["cluster.c"]));
        assert_eq!(releasing_job(&state, values("running"), &c), None, "job.k still runs on it");
        assert_eq!(releasing_job(&state, values("failed"), &c), Some(j));
        assert_eq!(releasing_job(&state, values("failed"), &k), None, "no job depends on a job");
    }

    #[test]
    fn a_released_cluster_a_new_job_depends_on_is_needed() {
        let mut released = cluster();
        released.reason = Some(Reason::Released { by: "job.pretrain".into() });
        let changes = vec![
            released,
            job("job.pretrain", "succeeded", Some("destroy_capacity")),
            change("job.next", "job", Action::Create, json!({}), &["cluster.train"]),
        ];
        let needed = needed(&changes);
        assert_eq!(needed.into_iter().collect::<Vec<_>>(), vec![("cluster.train".parse().unwrap(), "job.next".to_string())]);
        assert!(super::needed(&changes[..2]).is_empty(), "a finished job's no-op needs nothing");
    }
}
