//! The provider conformance suite against the real cluster: a partition, and a job (imported
//! by the ID of a job submitted with sbatch directly).

use kiln_provider::conformance::{run, Case};
use serde_json::json;

use crate::common::{json, provider, Jobs};
use crate::harness::slurm;

#[tokio::test]
async fn conformance() {
    let (p, dir) = provider();
    let out = slurm(&["sbatch", "--parsable", "-J", "kiln-conformance-import", "-o", "/dev/null", "-p", "debug", "--wrap", "sleep 1"]);
    let id = out.trim().split(';').next().unwrap_or_default().to_string();
    assert!(!id.is_empty() && id.chars().all(|c| c.is_ascii_digit()), "sbatch printed no job ID: {out}");
    let _guard = Jobs(vec![id.clone()]);
    let import_id: &'static str = Box::leak(id.into_boxed_str());
    let workdir = dir.path().display().to_string();
    let cases = [
        Case { kind: "cluster", config: json(json!({ "partition": "debug" })), update: None, import_id: Some("debug") },
        Case {
            kind: "job",
            config: json(json!({ "cluster": { "partition": "debug" }, "run": "sleep 30", "workdir": workdir, "requeue": false })),
            update: None,
            import_id: Some(import_id),
        },
    ];
    run(&p, &cases).await;
}
