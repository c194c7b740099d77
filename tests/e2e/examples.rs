//! Every directory in `examples/` is validated and planned, in a copy (so that no `.kiln/`
//! appears in the source tree).

use crate::support::{copy_dir, repo_root, Project};

#[test]
fn every_example_validates_and_plans() {
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(repo_root().join("examples")).expect("examples/").map(|e| e.unwrap().path()).collect();
    entries.sort();
    for dir in entries.into_iter().filter(|d| d.is_dir()) {
        seen += 1;
        let p = Project::empty();
        copy_dir(&dir, p.path(), &[]);
        let r = p.kiln(&["validate"]);
        assert_eq!(r.code(), 0, "{}: validate failed:\n{}", dir.display(), r.stderr());
        let r = p.kiln(&["plan"]);
        assert_eq!(r.code(), 0, "{}: plan failed:\n{}", dir.display(), r.stderr());
        assert!(r.stdout().contains("Plan: "), "{}: no plan summary:\n{}", dir.display(), r.stdout());
    }
    assert!(seen > 0, "examples/ has no example directory");
}
