//! Every directory in `examples/` is validated and planned, in a copy (so that no `.kiln/`
//! appears in the source tree). Examples on the `aws` provider (a `provider "aws"` block) are
//! pointed at the suite's moto server through their `endpoint` variable, with test credentials:
//! both commands need an AWS API (validate plans without refresh, and the aws provider resolves
//! instance types, images and subnets while planning).

use crate::support::{copy_dir, repo_root, run, Project, Run};

/// Whether any `*.kiln.hcl` of `dir` configures the aws provider.
fn uses_aws(dir: &std::path::Path) -> bool {
    std::fs::read_dir(dir).expect("example dir").flatten().any(|e| {
        e.file_name().to_string_lossy().ends_with(".kiln.hcl")
            && std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("provider \"aws\""))
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
        let aws = uses_aws(&dir);
        let _moto = aws.then(crate::moto::exclusive);
        let kiln = |cmd: &str| -> Run {
            if aws {
                let endpoint = format!("endpoint={}", crate::moto::server().endpoint());
                let mut c = p.command(&[cmd, "--var", &endpoint]);
                crate::aws::aws_env(&mut c);
                run(c)
            } else {
                p.kiln(&[cmd])
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
