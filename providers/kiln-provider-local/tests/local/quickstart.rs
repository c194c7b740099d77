//! The quickstart's `train.py`, run directly with python3 as two nodes with the environment a
//! job gets, then the whole quickstart (bucket, 2-node cluster, job) through the provider.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::json;

use crate::common::*;

fn train_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/train.py")
}

/// Runs both ranks at once (as two nodes would) and waits for them.
fn train(ckpt: &Path, extra: &[(&str, &str)]) -> Vec<Output> {
    let children: Vec<_> = (0..2)
        .map(|rank| {
            Command::new("python3")
                .arg(train_py())
                .env("KILN_NODE_RANK", rank.to_string())
                .env("KILN_NUM_NODES", "2")
                .env("KILN_CHECKPOINT_DIR", ckpt)
                .env("TRAIN_STEP_SLEEP", "0")
                .env("TRAIN_STEPS", "40")
                .envs(extra.iter().copied())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python3 runs")
        })
        .collect();
    children.into_iter().map(|c| c.wait_with_output().expect("python3 ends")).collect()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))).expect("JSON")
}

/// (step, loss) of every checkpoint, in step order.
fn checkpoints(ckpt: &Path) -> Vec<(u64, f64)> {
    let mut names: Vec<_> = std::fs::read_dir(ckpt)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ckpt-"))
        .collect();
    names.sort();
    names.iter().map(|n| read_json(&ckpt.join(n))).map(|j| (j["step"].as_u64().unwrap(), j["loss"].as_f64().unwrap())).collect()
}

#[test]
fn loss_decreases_across_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("run-1");
    let outs = train(&ckpt, &[]);
    for out in &outs {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert!(String::from_utf8_lossy(&outs[0].stdout).contains("rank 0 step 40 loss"));
    let ckpts = checkpoints(&ckpt);
    assert_eq!(ckpts.iter().map(|c| c.0).collect::<Vec<_>>(), vec![10, 20, 30, 40]);
    assert!(ckpts.windows(2).all(|w| w[1].1 < w[0].1), "loss decreases: {ckpts:?}");
    let result = read_json(&ckpt.join("result.json"));
    assert!((result["final_loss"].as_f64().unwrap() - ckpts[3].1).abs() < 1e-5);
}

#[test]
fn a_restart_resumes_from_the_latest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("run-1");
    for out in train(&ckpt, &[("TRAIN_FAIL_AT_STEP", "25")]) {
        assert!(!out.status.success(), "the first run crashes at step 25");
    }
    assert_eq!(checkpoints(&ckpt).last().map(|c| c.0), Some(20));
    assert!(!ckpt.join("result.json").exists());

    let outs = train(&ckpt, &[]);
    let rank0 = String::from_utf8_lossy(&outs[0].stdout);
    assert!(rank0.contains("resuming from checkpoint at step 20"), "{rank0}");
    assert!(!rank0.contains("step 20 loss") && rank0.contains("step 21 loss"), "{rank0}");
    let ckpts = checkpoints(&ckpt);
    assert_eq!(ckpts.iter().map(|c| c.0).collect::<Vec<_>>(), vec![10, 20, 30, 40]);
    assert!(ckpts.windows(2).all(|w| w[1].1 < w[0].1), "loss keeps decreasing after the resume: {ckpts:?}");
    assert!(ckpt.join("result.json").is_file());
}

#[tokio::test]
async fn the_quickstart_trains_through_the_provider() {
    let (_dir, p) = cpu_provider();
    let bucket = create(&p, "bucket.checkpoints", &config(&p, "bucket", json!({ "force_destroy": true }))).await;
    let cluster = create(&p, "cluster.train", &config(&p, "cluster", json!({ "nodes": 2 }))).await;
    let workdir = train_py().parent().unwrap().display().to_string();
    let cfg = config(
        &p,
        "job",
        json!({
            "cluster": cluster.to_json(),
            "workdir": workdir,
            "setup": "python3 --version",
            "run": "python3 train.py",
            "env": { "TRAIN_STEPS": "30", "TRAIN_STEP_SLEEP": "0" },
            "checkpoint": { "bucket": bucket.to_json(), "path": "run-1/" },
        }),
    );
    let done = finished(&p, "job.train", &create(&p, "job.train", &cfg).await).await;
    assert_eq!(status(&done), "succeeded", "{}", log(&p, "job.train", &done, 0).await);
    let result = read_json(&Path::new(str_of(&bucket, "path")).join("run-1/result.json"));
    assert_eq!(result["steps"], 30);
    assert!(log(&p, "job.train", &done, 1).await.contains("rank 1: done"));
    assert!(!delete(&p, "job.train", &done).await.has_errors());
    assert!(!delete(&p, "bucket.checkpoints", &bucket).await.has_errors());
}
