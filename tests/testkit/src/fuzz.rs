//! What the fuzz suites (proptest, in the normal test run) share: a reproducible configuration
//! and the mapping of a generated position onto a text.

use proptest::test_runner::{Config, RngSeed};

/// The cases of a property test. The seed is fixed so every run (CI included) tries the same
/// inputs; set PROPTEST_RNG_SEED (and PROPTEST_CASES) to explore others.
pub fn config(cases: u32) -> Config {
    let mut c = Config { failure_persistence: None, ..Config::default() };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(0x6b69_6c6e);
    }
    c
}

/// The character boundary at or before `at`, read as a fraction of the text's length.
pub fn pos(text: &str, at: u16) -> usize {
    let mut i = (at as usize * text.len()) / (u16::MAX as usize + 1);
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}
