//! Every directory in `examples/` is validated and planned, in a copy (so that no `.kiln/`
//! appears in the source tree). Examples on the `aws` provider (a `provider "aws"` block) are
//! pointed at the suite's moto server through their `endpoint` variable, with test credentials:
//! planning needs an AWS API (the aws provider resolves instance types, images and subnets).
//! Examples on the `slurm` provider plan against the harness's single-node Slurm, and those on
//! `onprem` against the sshd harness's hosts (`--var` flags from `onprem::var_flags`). Validation
//! needs none of them: it makes no provider API calls.

use crate::support::{copy_dir, repo_root, run, Project, Run};

/// Whether any `*.kiln.hcl` of `dir` configures `provider`.
fn uses(dir: &std::path::Path, provider: &str) -> bool {
    std::fs::read_dir(dir).expect("example dir").flatten().any(|e| {
        e.file_name().to_string_lossy().ends_with(".kiln.hcl")
            && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains(&format!("provider \"{provider}\"")))
    })
}

#[test]
fn every_example_validates_and_plans() {
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(repo_root().join("examples")).expect("examples/").map(|e| e.unwrap().path()).collect();
    entries.sort();
    for dir in entries.into_iter().filter(|d| d.is_dir()) {
        seen += 1;
        let p = Project::empty();
        copy_dir(&dir, p.path(), &[]);
        let aws = uses(&dir, "aws");
        let _moto = aws.then(crate::moto::exclusive);
        if uses(&dir, "slurm") {
            crate::slurm::cluster();
        }
        // Examples on the `onprem` provider plan against the sshd harness's hosts.
        let onprem = uses(&dir, "onprem").then(crate::onprem::var_flags).unwrap_or_default();
        let kiln = |cmd: &str| -> Run {
            if aws {
                let endpoint = format!("endpoint={}", crate::moto::server().endpoint());
                let mut c = p.command(&[cmd, "--var", &endpoint]);
                crate::aws::aws_env(&mut c);
                run(c)
            } else {
                let mut args = vec![cmd];
                args.extend(onprem.iter().map(String::as_str));
                p.kiln(&args)
            }
        };
        let r = kiln("validate");
        assert_eq!(r.code(), 0, "{}: validate failed:\n{}", dir.display(), r.stderr());
        let r = kiln("plan");
        assert_eq!(r.code(), 0, "{}: plan failed:\n{}", dir.display(), r.stderr());
        assert!(r.stdout().contains("Plan: "), "{}: no plan summary:\n{}", dir.display(), r.stdout());
    }
    assert!(seen > 0, "examples/ has no example directory");
}
