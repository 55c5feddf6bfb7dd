//! `--name value` options of the benchmarks (they run without a harness,
//! so `cargo bench --bench X -- --name value` reaches them as plain
//! arguments).

#![allow(dead_code)]

/// The value after `--name`, if given.
pub fn value(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The number after `--name`, or `default` when it is absent or not a
/// number.
pub fn number(name: &str, default: u64) -> u64 {
    value(name).and_then(|v| v.parse().ok()).unwrap_or(default)
}
