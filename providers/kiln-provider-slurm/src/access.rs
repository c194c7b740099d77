//! `kiln ssh` on Slurm ([`kiln_provider::Provider::shell`]): a job's node is reached from where
//! Slurm's commands run (the login node over SSH, or this machine) with
//! `srun --jobid ID --relative N --nodes 1 --ntasks 1 --overlap --pty`, a step inside the
//! running job's allocation on its node N; a cluster (a partition), or a job that is not
//! running, gets the login node, and the note says so.

use kiln_diag::Diagnostic;
use kiln_provider::{ShellAccess, ShellHost, ShellHostKey, ShellRequest};

use crate::util::{error, str_attr, u64_attr};
use crate::Ctx;

/// The `srun` words that open node `node` of the running job `job_id`.
pub fn srun(job_id: &str, node: usize) -> Vec<String> {
    ["srun", "--jobid", job_id, "--relative", &node.to_string(), "--nodes", "1", "--ntasks", "1", "--overlap", "--pty"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

pub async fn shell(ctx: &Ctx, req: &ShellRequest<'_>) -> Result<ShellAccess, Diagnostic> {
    let a = req.address;
    let (wrapper, note) = if req.kind == "job" {
        let nodes = u64_attr(req.state, "nodes").unwrap_or(1) as usize;
        if req.node >= nodes {
            return Err(error("E-SSH-NODE", a, format!("{a}: there is no node {} (it has {nodes})", req.node))
                .hint(format!("give --node a rank from 0 to {}", nodes.saturating_sub(1))));
        }
        match (str_attr(req.state, "status"), str_attr(req.state, "job_id")) {
            (Some("running"), Some(id)) => (srun(id, req.node), None),
            (status, _) => (
                Vec::new(),
                Some(format!(
                    "{a} is not running ({}): this shell is on the login node, not on a node of the job",
                    status.unwrap_or("unknown")
                )),
            ),
        }
    } else {
        (
            Vec::new(),
            Some(format!("{a} is a Slurm partition: this shell is on the login node (`kiln ssh JOB --node N` opens a running job's node)")),
        )
    };
    let route = ctx.runner.route().await.map_err(|e| ctx.unreachable(a, &e))?;
    let Some(route) = route else {
        if wrapper.is_empty() {
            return Err(error(
                "E-SSH-LOCAL",
                a,
                format!(
                    "{a}: Slurm's commands run on this machine (provider \"slurm\" has no `login` block): there is no login node to reach"
                ),
            )
            .hint("open a shell here; `kiln ssh JOB --node N` opens a node of a running job with srun"));
        }
        // The job's node, reached with srun from this machine, where Slurm's commands run.
        return Ok(ShellAccess { hosts: Vec::new(), wrapper, note: None });
    };
    let hosts = route
        .into_iter()
        .map(|(h, key)| ShellHost {
            name: h.name,
            address: h.address,
            port: h.port,
            user: h.user,
            identity_file: h.identity_file,
            private_key: None,
            proxy_jump: h.proxy_jump,
            host_key: key.map_or(ShellHostKey::UserKnownHosts, ShellHostKey::Pinned),
        })
        .collect();
    Ok(ShellAccess { hosts, wrapper, note })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_jobs_node_is_a_step_of_its_allocation() {
        assert_eq!(srun("42", 1).join(" "), "srun --jobid 42 --relative 1 --nodes 1 --ntasks 1 --overlap --pty");
    }
}
