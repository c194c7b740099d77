//! `--help` offers only what a command uses (issue 13): destroy has no `--replace` or
//! `--refresh-only`, a saved plan refuses the options only planning uses. (That every option and
//! argument has a description is a unit test walking clap's tree, in engine/cli/cli.rs.)

use crate::support::Project;

#[test]
fn destroy_offers_no_replace_nor_refresh_only_and_says_how_its_target_walks() {
    let p = Project::empty();
    let help = p.kiln(&["destroy", "--help"]).ok().stdout();
    assert!(!help.contains("--replace") && !help.contains("--refresh-only"), "{help}");
    assert!(help.contains("Only destroy this resource, instance or module and what depends on it"), "{help}");
    let err = p.kiln(&["destroy", "--replace", "record.a"]).code_is(1).stderr();
    assert!(err.contains("E-CLI-USAGE") && err.contains("--replace"), "{err}");
}

#[test]
fn a_saved_plan_refuses_the_options_only_planning_uses() {
    let p = Project::new("resource \"record\" \"a\" {\n  input = \"x\"\n}\n");
    p.kiln(&["plan", "--out", "saved.plan"]).ok();
    for flag in ["--target=record.a", "--replace=record.a", "--refresh-only", "--refresh=false"] {
        let err = p.kiln(&["apply", "saved.plan", flag]).code_is(1).stderr();
        assert!(err.contains("E-CLI-USAGE") && err.contains("cannot be used with"), "{flag}: {err}");
    }
    assert!(p.state_list().is_empty(), "nothing was applied");
    let err = p.kiln(&["plan", "--destroy", "--refresh-only"]).code_is(1).stderr();
    assert!(err.contains("E-CLI-USAGE"), "{err}");
    p.kiln(&["apply", "saved.plan"]).ok();
    assert_eq!(p.state_list(), ["record.a"]);
}

#[test]
fn output_raw_needs_the_name_of_the_one_output_it_prints() {
    let p = Project::new("output \"a\" {\n  value = \"x\"\n}\n");
    p.kiln(&["apply", "--auto-approve"]).ok();
    let err = p.kiln(&["output", "--raw"]).code_is(1).stderr();
    assert!(err.contains("E-CLI-USAGE") && err.contains("<NAME>"), "{err}");
    assert_eq!(p.kiln(&["output", "--raw", "a"]).ok().stdout(), "x\n");
}
