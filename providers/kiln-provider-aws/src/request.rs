//! Resource requests as users write them: `accelerators = "A100:8"` (a GPU name and a count per
//! node, 1 when left out), `cpus = "8+"` and `memory = "64+"` (GiB). A trailing `+` means "at
//! least"; a plain number means exactly that much. Pure parsing.

/// `NAME[:COUNT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accelerators {
    pub name: String,
    pub count: u64,
}

/// A CPU or memory request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Amount {
    pub value: f64,
    pub at_least: bool,
}

impl Amount {
    pub fn admits(&self, have: f64) -> bool {
        if self.at_least {
            have + 1e-9 >= self.value
        } else {
            (have - self.value).abs() < 1e-9
        }
    }
}

/// Parses `"A100:8"`, `"H100"`, `"a10g:4"`.
pub fn parse_accelerators(s: &str) -> Result<Accelerators, String> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n.trim(), c.trim().parse::<u64>().map_err(|_| format!("`{c}` is not a GPU count"))?),
        None => (s.trim(), 1),
    };
    if name.is_empty() {
        return Err("the GPU name is empty".into());
    }
    if count == 0 {
        return Err("the GPU count must be at least 1".into());
    }
    Ok(Accelerators { name: name.to_string(), count })
}

/// Parses `"8"` (exactly 8) and `"8+"` (8 or more).
pub fn parse_amount(s: &str) -> Result<Amount, String> {
    let t = s.trim();
    let (num, at_least) = match t.strip_suffix('+') {
        Some(n) => (n.trim(), true),
        None => (t, false),
    };
    let value: f64 = num.parse().map_err(|_| format!("`{s}` is not a number such as \"8\" or \"8+\""))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("`{s}` must be more than 0"));
    }
    Ok(Amount { value, at_least })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accelerators() {
        assert_eq!(parse_accelerators("A100:8"), Ok(Accelerators { name: "A100".into(), count: 8 }));
        assert_eq!(parse_accelerators("T4"), Ok(Accelerators { name: "T4".into(), count: 1 }));
        assert!(parse_accelerators("A100:x").is_err());
        assert!(parse_accelerators(":2").is_err());
        assert!(parse_accelerators("T4:0").is_err());
    }

    #[test]
    fn amounts() {
        let exact = parse_amount("8").unwrap();
        assert!(exact.admits(8.0) && !exact.admits(16.0));
        let min = parse_amount(" 64+ ").unwrap();
        assert!(min.admits(64.0) && min.admits(128.0) && !min.admits(32.0));
        assert!(parse_amount("lots").is_err());
        assert!(parse_amount("0+").is_err());
    }
}
