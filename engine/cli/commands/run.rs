//! `kiln run ADDRESS`: plan with --replace ADDRESS --target ADDRESS, confirm, apply, then wait
//! and stream the job's output (apply --wait --logs).

use kiln_addrs::{Mode as AddrMode, ResourceAddr, Target};
use kiln_diag::Diagnostic;
use kiln_plan::Mode;

use super::apply::{apply_cmd, ApplyOpts};
use super::{load, Ctx, R};
use crate::cli::{PlanArgs, VarArgs};

pub async fn run(cx: &Ctx, vars: &VarArgs, address: &str, auto_approve: bool) -> R {
    let resource = job_resource(address)?;
    let l = load(cx, vars)?;
    let mut node = Some(&l.config.root);
    for m in &resource.module {
        node = node.and_then(|n| n.children.get(m));
    }
    if node.and_then(|n| n.module.resource(AddrMode::Managed, &resource.kind, &resource.name)).is_none() {
        return Err(Diagnostic::error("E-RUN-UNKNOWN", format!("the configuration declares no job `{resource}`"))
            .address(address)
            .hint("`kiln run` runs a job of the configuration again: `kiln jobs` lists the jobs in state")
            .into());
    }
    drop(l);
    let args = PlanArgs {
        vars: vars.clone(),
        target: vec![address.to_string()],
        replace: vec![address.to_string()],
        refresh: true,
        ..PlanArgs::default()
    };
    apply_cmd(cx, &args, ApplyOpts { auto_approve, wait: true, logs: true, plan_file: None, mode: Mode::Normal }).await
}

/// The resource `address` names, refused unless it is a job's.
fn job_resource(address: &str) -> Result<ResourceAddr, Diagnostic> {
    let target: Target = address.parse().map_err(|e: kiln_addrs::AddrError| {
        Diagnostic::error("E-ADDR-INVALID", e.to_string()).hint("a job's address looks like job.train or job.train[0]")
    })?;
    let resource = match target {
        Target::Resource(r) => r,
        Target::Instance(i) => i.resource,
        Target::Module(_) => return Err(not_a_job(address)),
    };
    if resource.mode != AddrMode::Managed || resource.kind != "job" {
        return Err(not_a_job(address));
    }
    Ok(resource)
}

fn not_a_job(address: &str) -> Diagnostic {
    Diagnostic::error("E-RUN-NOT-JOB", format!("`{address}` is not a job"))
        .address(address)
        .hint("`kiln run` runs a job again, such as `kiln run job.train`; to replace anything else use `kiln apply --replace ADDRESS`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_jobs_address_is_run() {
        assert_eq!(job_resource("job.train").unwrap().name, "train");
        assert_eq!(job_resource("module.m.job.train[\"a\"]").unwrap().module, ["m"]);
        for other in ["cluster.c", "data.job.x", "module.m", "bucket.b[0]"] {
            assert_eq!(job_resource(other).unwrap_err().code, "E-RUN-NOT-JOB", "{other}");
        }
        assert_eq!(job_resource("job.").unwrap_err().code, "E-ADDR-INVALID");
    }
}
