//! Every server a test starts (Portcullis, the OpenID provider,
//! SimpleSAMLphp's `php -S`, nginx, Caddy, chromedriver with its Chromium)
//! is a [`Server`]: it runs in a process group of its own and is stopped the
//! way its operator stops it: nginx with SIGQUIT to its master, everything
//! else with SIGTERM to the whole group, as systemd does. Only when that has
//! not worked within a bound is the group killed. A server that forks
//! (nginx's workers, php's workers, Chromium's helpers) so never outlives the
//! test that started it; scripts/test.sh checks that at the end of a run.

use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, kill_process_group};

/// How a server is asked to stop.
#[derive(Debug, Clone, Copy)]
pub enum Shutdown {
    /// SIGTERM to every process of the group.
    Term,
    /// SIGQUIT to the group leader only: nginx's graceful stop, in which the
    /// master lets its workers finish and then stops them itself.
    Quit,
}

/// What stopping a server took.
#[derive(Debug)]
pub struct Stopped {
    pub status: ExitStatus,
    /// The server (or a process of its group) had to be killed.
    pub killed: bool,
}

/// A running child server in its own process group.
pub struct Server {
    name: String,
    child: Child,
    shutdown: Shutdown,
    grace: Duration,
    stopped: Option<ExitStatus>,
}

/// How long a process group's last members get after SIGTERM before SIGKILL.
const GROUP_GRACE: Duration = Duration::from_secs(5);

impl Server {
    /// Starts `cmd` as the leader of a new process group. `grace` bounds the
    /// wait for a graceful stop before the group is killed.
    pub fn spawn(
        name: &str,
        cmd: &mut Command,
        shutdown: Shutdown,
        grace: Duration,
    ) -> std::io::Result<Server> {
        use std::os::unix::process::CommandExt;
        let child = cmd.process_group(0).spawn()?;
        Ok(Server {
            name: name.to_string(),
            child,
            shutdown,
            grace,
            stopped: None,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child's stdout, when it was piped.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    fn pid(&self) -> Pid {
        Pid::from_child(&self.child)
    }

    /// Sends `sig` to the server process itself (not its group).
    pub fn signal(&self, sig: Signal) {
        if self.stopped.is_none() {
            kill_process(self.pid(), sig)
                .unwrap_or_else(|e| panic!("cannot signal {} ({}): {e}", self.name, self.id()));
        }
    }

    /// The exit status, if the server has exited (it is reaped then).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.stopped.is_none() {
            self.stopped = self.child.try_wait().expect("waitpid on a child");
        }
        self.stopped
    }

    /// Waits up to `bound` for the server to exit on its own.
    pub fn wait_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(s) = self.try_exit() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the server as its operator would, waits for it and for every
    /// other process of its group, and kills what is left after the bounds.
    pub fn stop(&mut self) -> Stopped {
        let mut killed = false;
        let status = if let Some(s) = self.try_exit() {
            s
        } else {
            // An error means it exited meanwhile: the wait finds that.
            let _ = match self.shutdown {
                Shutdown::Term => kill_process_group(self.pid(), Signal::TERM),
                Shutdown::Quit => kill_process(self.pid(), Signal::QUIT),
            };
            if let Some(s) = self.wait_exit(self.grace) {
                s
            } else {
                killed = true;
                let _ = kill_process_group(self.pid(), Signal::KILL);
                let s = self.child.wait().expect("waitpid on a child");
                self.stopped = Some(s);
                s
            }
        };
        // The leader is gone; processes it left in its group are ended too.
        // The group id cannot be reused while any of them is alive.
        if !self.wait_group_gone(Duration::ZERO) {
            let _ = kill_process_group(self.pid(), Signal::TERM);
            if !self.wait_group_gone(GROUP_GRACE) {
                killed = true;
                let _ = kill_process_group(self.pid(), Signal::KILL);
                self.wait_group_gone(GROUP_GRACE);
            }
        }
        Stopped { status, killed }
    }

    /// Waits up to `bound` until no live process is left in the group.
    fn wait_group_gone(&self, bound: Duration) -> bool {
        let deadline = Instant::now() + bound;
        loop {
            if group_members(self.id()).is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.stopped.is_some() && group_members(self.id()).is_empty() {
            return;
        }
        let stopped = self.stop();
        if stopped.killed {
            eprintln!(
                "{} (pid {}) did not stop within {:?} of its stop signal and was killed",
                self.name,
                self.id(),
                self.grace
            );
        }
    }
}

/// Live (not zombie) processes whose process group is `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/PID/stat: "pid (comm) state ppid pgrp …"; comm may hold
            // spaces and parentheses, so read after the last ')'.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|g| g.parse::<u32>().ok());
            state != Some("Z") && state != Some("X") && pgrp == Some(pgid)
        })
        .collect()
}

/// Maps a signal name as `kill -NAME` spells it.
pub fn signal_named(name: &str) -> Signal {
    match name.trim_start_matches("SIG") {
        "TERM" => Signal::TERM,
        "INT" => Signal::INT,
        "HUP" => Signal::HUP,
        "QUIT" => Signal::QUIT,
        "KILL" => Signal::KILL,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        other => panic!("signal {other} is not known to the test harness"),
    }
}
