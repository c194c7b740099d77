//! Resource requests as users write them: `accelerators = "H100:8"` (a GPU name and a count per
//! node, 1 when left out), `cpus = "4+"` and `memory = "8+"` (GiB; a trailing `+` means "at
//! least", and on one machine every request is a minimum). Pure parsing and name matching.

/// `NAME[:COUNT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accelerators {
    pub name: String,
    pub count: u64,
}

/// Parses `"H100:8"`, `"A100"`, `"RTX-4090:2"`.
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

/// Parses `"4"`, `"4+"`, `"0.5+"` into the minimum it asks for.
pub fn parse_minimum(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let n: f64 = t.strip_suffix('+').unwrap_or(t).trim().parse().map_err(|_| format!("`{s}` is not a number such as \"4\" or \"4+\""))?;
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("`{s}` must be more than 0"));
    }
    Ok(n)
}

fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_ascii_alphanumeric()).filter(|t| !t.is_empty()).map(str::to_ascii_uppercase).collect()
}

/// Whether a GPU named `gpu` (as `nvidia-smi` prints it, "NVIDIA H100 80GB HBM3") is what a
/// request names ("H100", "h100-80gb", "RTX4090"). Every word of the request must be a word of
/// the name, or two adjacent words joined; so "A10" does not match an A100.
pub fn gpu_matches(request: &str, gpu: &str) -> bool {
    let have = tokens(gpu);
    let joined: Vec<String> = have.windows(2).map(|w| format!("{}{}", w[0], w[1])).collect();
    let want = tokens(request);
    !want.is_empty() && want.iter().all(|w| have.contains(w) || joined.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accelerators() {
        assert_eq!(parse_accelerators("H100:8"), Ok(Accelerators { name: "H100".into(), count: 8 }));
        assert_eq!(parse_accelerators("A100"), Ok(Accelerators { name: "A100".into(), count: 1 }));
        assert!(parse_accelerators("H100:x").is_err());
        assert!(parse_accelerators(":2").is_err());
        assert!(parse_accelerators("T4:0").is_err());
    }

    #[test]
    fn minimums() {
        assert_eq!(parse_minimum("4"), Ok(4.0));
        assert_eq!(parse_minimum("8+"), Ok(8.0));
        assert_eq!(parse_minimum(" 0.5+ "), Ok(0.5));
        assert!(parse_minimum("lots").is_err());
        assert!(parse_minimum("0").is_err());
    }

    #[test]
    fn names() {
        assert!(gpu_matches("H100", "NVIDIA H100 80GB HBM3"));
        assert!(gpu_matches("h100-80gb", "NVIDIA H100 80GB HBM3"));
        assert!(gpu_matches("A100-80GB", "NVIDIA A100-SXM4-80GB"));
        assert!(!gpu_matches("A100-40GB", "NVIDIA A100-SXM4-80GB"));
        assert!(!gpu_matches("A10", "NVIDIA A100-SXM4-80GB"));
        assert!(gpu_matches("RTX4090", "NVIDIA GeForce RTX 4090"));
        assert!(gpu_matches("T4", "Tesla T4"));
        assert!(!gpu_matches("", "Tesla T4"));
    }
}
