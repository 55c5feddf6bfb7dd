//! `ghlsync sim app` serves the API it prints.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn sim_app_serves_the_api_it_prints() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ghlsync"))
        .args([
            "sim",
            "app",
            "--port",
            "0",
            "--contacts",
            "3",
            "--token",
            "t-1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut api = String::new();
    for _ in 0..10 {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        if let Some(url) = line.strip_prefix("app simulator listening on ") {
            api = url.trim().to_owned();
            break;
        }
    }
    assert!(api.ends_with("/api/v1"), "banner: {api:?}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let body: serde_json::Value = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{api}/contacts?limit=10"))
            .bearer_auth("t-1")
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(body["data"].as_array().map(Vec::len), Some(3), "{body}");
}
