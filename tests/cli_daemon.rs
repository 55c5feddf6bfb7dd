//! `ghlsync run` as systemd and Docker see it: `READY=1`, watchdog pings
//! and `STOPPING=1` on the notify socket, and `ghlsync healthcheck`
//! answering for the running daemon.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ghl_sync::demo::{Sims, DEMO_CONFIG};

const BIN: &str = env!("CARGO_BIN_EXE_ghlsync");

/// A loopback port nobody listens on (right now).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `ghlsync healthcheck` off the async runtime.
async fn healthcheck(config: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "healthcheck".to_owned(),
        "--config".to_owned(),
        config.to_owned(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// Reads the notify socket on a thread of its own, as systemd would, so
/// the daemon never waits on a full socket; the datagrams so far, in order.
fn listen(socket: UnixDatagram) -> Arc<Mutex<Vec<String>>> {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let sink = messages.clone();
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buffer) {
            let text = String::from_utf8_lossy(&buffer[..n]).trim().to_owned();
            sink.lock().unwrap().push(text);
        }
    });
    messages
}

/// Kills a child process when dropped (a failed assertion included).
struct Reaper(u32);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_notifies_systemd_and_answers_healthchecks() {
    let sims = Sims::start(2, 2).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = sims.render(DEMO_CONFIG, dir.path()).replace(
        "bind = \"127.0.0.1:0\"",
        &format!("bind = \"127.0.0.1:{port}\""),
    );
    let config = dir.path().join("ghlsync.toml");
    std::fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap().to_owned();

    // Nothing listens yet: the healthcheck fails and says where it asked.
    let down = healthcheck(&config, &[]).await;
    assert_eq!(down.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}/readyz")),
        "{stderr}"
    );

    let socket_path = dir.path().join("notify.sock");
    let messages = listen(UnixDatagram::bind(&socket_path).unwrap());
    let mut child = Command::new(BIN)
        .args(["run", "--config", &config])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Whatever happens next, the daemon does not outlive the test.
    let _reaper = Reaper(child.id());

    let started = Instant::now();
    loop {
        let seen = messages.lock().unwrap().clone();
        let ready = seen.iter().any(|m| m.lines().any(|l| l == "READY=1"));
        let pings = seen.iter().filter(|m| m.as_str() == "WATCHDOG=1").count();
        if ready && pings >= 2 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no READY=1 and watchdog pings: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Ready once the first pass polled both sides.
    let started = Instant::now();
    loop {
        let up = healthcheck(&config, &[]).await;
        if up.status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready: {}",
            String::from_utf8_lossy(&up.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healthcheck(&config, &["--live"]).await.status.success());

    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let seen = messages.lock().unwrap().clone();
    assert!(
        seen.iter().any(|m| m.as_str() == "STOPPING=1"),
        "no STOPPING=1: {seen:?}"
    );
}
