//! `/healthz` on `metrics.listen`, and a listen address already in use.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}

#[test]
fn healthz_answers_while_running_even_with_clusters_down_and_a_busy_port_is_refused() {
    let port = closed_port();
    // Clusters unreachable: the bridge keeps retrying its start-up and stays alive.
    let text = config_text(
        &format!("127.0.0.1:{}", closed_port()),
        &format!("127.0.0.1:{}", closed_port()),
        &[("a", "a")],
    );
    let file = config_file(&format!("{text}metrics:\n  listen: \"127.0.0.1:{port}\"\n"));
    let mut bridge = BridgeProcess::start(file.path());
    let start = Instant::now();
    let mut answer = None;
    while answer.is_none() && start.elapsed() < Duration::from_secs(20) {
        answer = get(port, "/healthz");
        std::thread::sleep(Duration::from_millis(100));
    }
    let answer = answer.unwrap_or_else(|| panic!("no /healthz answer; log:\n{}", bridge.logs()));
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(
        get(port, "/nope")
            .unwrap_or_default()
            .starts_with("HTTP/1.1 404")
    );

    let second = run(&["run", "--config", file.path().to_str().unwrap()]);
    assert_eq!(second.status.code(), Some(1));
    let message = stderr(&second);
    assert!(
        message.contains(&format!("cannot listen on metrics.listen 127.0.0.1:{port}")),
        "{message}"
    );
    assert!(message.contains("change metrics.listen"), "{message}");

    assert!(
        bridge.logs().contains("cannot start the bridge; retrying"),
        "{}",
        bridge.logs()
    );
    bridge.signal("TERM");
    let status = bridge
        .wait(Duration::from_secs(10))
        .expect("exits on SIGTERM while retrying start-up");
    assert!(status.success());
}
