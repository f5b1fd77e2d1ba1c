//! The test harness stops every server it starts, with the processes those
//! servers forked: a leftover nginx worker keeps listening on a test's port
//! and makes later runs on the same machine flaky.

mod common;
mod operations_support;

use std::process::Command;
use std::time::Duration;

use common::process::{Server, Shutdown, group_members};

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()? != "Z"))
        .unwrap_or(false)
}

#[test]
fn nginx_workers_stop_with_their_master() {
    let port = operations_support::free_port();
    let nginx = operations_support::Nginx::start(
        &format!("server {{ listen 127.0.0.1:{port}; return 204; }}\n"),
        port,
    );
    let group = group_members(nginx_master(&nginx));
    assert!(group.len() >= 2, "a master and a worker: {group:?}");
    drop(nginx);
    let left: Vec<u32> = group.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "nginx processes left: {left:?}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still accepts connections"
    );
}

fn nginx_master(nginx: &operations_support::Nginx) -> u32 {
    std::fs::read_to_string(nginx.dir.path().join("nginx.pid"))
        .expect("nginx wrote its pid file")
        .trim()
        .parse()
        .unwrap()
}

/// A shell running `script` (which forks a `sleep`) as a [`Server`];
/// returns it once its group holds the shell and the sleep, with the
/// group's members then.
fn shell_with_a_child(
    name: &str,
    script: &str,
    shutdown: Shutdown,
    grace: Duration,
) -> (Server, Vec<u32>) {
    let server = Server::spawn(
        name,
        Command::new("sh").args(["-c", script]),
        shutdown,
        grace,
    )
    .unwrap();
    let pgid = server.id();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while group_members(pgid).len() < 2 {
        assert!(std::time::Instant::now() < deadline, "sleep never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    (server, group_members(pgid))
}

#[test]
fn a_server_that_ignores_its_stop_signal_is_killed_with_its_children() {
    // The shell and the child it forks both ignore SIGTERM (an ignored
    // signal stays ignored across exec).
    let (mut server, members) = shell_with_a_child(
        "stubborn",
        "trap '' TERM; sleep 600 & wait",
        Shutdown::Term,
        Duration::from_millis(300),
    );
    let stopped = server.stop();
    assert!(
        stopped.killed,
        "SIGTERM was ignored: the group had to be killed"
    );
    let left: Vec<u32> = members.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "processes left: {left:?}");
}

#[test]
fn children_left_in_the_group_are_ended_with_the_leader() {
    // The leader exits at once on SIGTERM; its child would be orphaned.
    let (mut server, members) = shell_with_a_child(
        "forking",
        "trap '' TERM; (trap - TERM; exec sleep 600) & wait",
        Shutdown::Quit,
        Duration::from_secs(5),
    );
    // SIGQUIT ends the shell (its default action); the sleep stays until
    // the group is sent SIGTERM.
    let stopped = server.stop();
    assert!(!stopped.killed, "{stopped:?}");
    let left: Vec<u32> = members.into_iter().filter(|p| alive(*p)).collect();
    assert!(left.is_empty(), "processes left: {left:?}");
}
