//! E.164 normalisation per phone number: the cost the `e164` transform
//! adds to every mapped contact (parse with the default region, validate
//! against the region's patterns, format).
//!
//! cargo bench --bench phone_e164 -- [--numbers 200000]
//!
//! The numbers are North American ones written three ways, plus numbers
//! of other regions with their country code; every one must normalise.

#[path = "common/args.rs"]
mod args;

use std::time::Instant;

use ghl_sync::mapping::Normalize;
use serde_json::Value;

fn main() {
    let count: usize = args::value("--numbers")
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let written: Vec<Value> = (0..count)
        .map(|i| {
            let line = i % 10_000;
            Value::String(match i % 4 {
                0 => format!("+1212555{line:04}"),
                1 => format!("(415) 555-{line:04}"),
                2 => format!("212 555 {line:04}"),
                _ => {
                    ["+49 151 23456789", "+44 20 7183 8750", "+33 6 12 34 56 78"][i % 3].to_owned()
                }
            })
        })
        .collect();
    let e164 = Normalize::E164 {
        default_region: "US".into(),
    };
    let started = Instant::now();
    for value in &written {
        std::hint::black_box(e164.apply(value.clone()).expect("a valid number"));
    }
    let elapsed = started.elapsed();
    println!("{count} numbers normalised to E.164 with default region US");
    println!(
        "  {:.2} µs per number, {:.0} numbers/s",
        elapsed.as_secs_f64() * 1e6 / count as f64,
        count as f64 / elapsed.as_secs_f64()
    );
}
