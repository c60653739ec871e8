//! The processes of command trials (Linux and other Unix systems).
//!
//! * Each trial's program leads a process group of its own, so that a stop
//!   reaches everything it started (data-loader workers, shells): SIGTERM
//!   to the group, a grace period for it to save and exit, then SIGKILL to
//!   whatever is left. The program is reaped only after its group is
//!   killed, so its number cannot be reused meanwhile; nothing is left a
//!   zombie.
//! * The program gets SIGKILL if the tuner's thread that started it dies
//!   (`PR_SET_PDEATHSIG`, Linux): a tuner killed by SIGKILL takes its
//!   programs with it. What they started is in their group, which the next
//!   run of the study kills before starting the trial again: the group's
//!   number is recorded in the trial's folder, and a process of that group
//!   is only taken for the trial's if its environment names the trial's
//!   folder (so a recycled number never kills someone else's process).

use std::io;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// The file in a trial's folder that records its process group.
pub(super) const PID_FILE: &str = "pid";

/// Starts `cmd` as the leader of a new process group, to be killed with
/// SIGKILL if the calling thread ends before it.
pub(super) fn spawn(cmd: &mut Command) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: only async-signal-safe calls (prctl, getppid) between
        // fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // The tuner died between fork and prctl.
                if libc::getppid() != parent {
                    return Err(io::Error::other("the tuner is gone"));
                }
                Ok(())
            });
        }
    }
    cmd.spawn()
}

/// Whether the process has exited (without reaping it).
pub(super) fn exited(child: &Child) -> bool {
    pid_exited(child.id())
}

/// Whether the tuner's child `pid` has exited, or is already reaped
/// (without reaping it).
pub(super) fn pid_exited(pid: u32) -> bool {
    // SAFETY: waitid with WNOWAIT only reads the child's state.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        // ECHILD: reaped already (no longer our child).
        r != 0 || info.si_pid() != 0
    }
}

/// Sends `signal` to the process group `pgid`.
pub(super) fn signal_group(pgid: u32, signal: libc::c_int) {
    // SAFETY: kill has no memory effects; a group that is gone is ESRCH.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), signal);
    }
}

/// Whether any process of group `pgid` is alive.
pub(super) fn group_alive(pgid: u32) -> bool {
    // SAFETY: signal 0 only checks.
    unsafe { libc::kill(-(pgid as libc::pid_t), 0) == 0 }
}

/// Stops the program and everything in its group: SIGTERM, up to `grace`
/// for the program to exit, then SIGKILL to the group. The program is not
/// reaped here (its number stays reserved until it is).
pub(super) fn stop_group(child: &Child, grace: Duration) {
    let pgid = child.id();
    if !exited(child) {
        signal_group(pgid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline && !exited(child) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    signal_group(pgid, libc::SIGKILL);
}

/// Kills what is left of a trial's earlier process group (after the tuner
/// was killed), if the trial's folder records one that is still alive and
/// really the trial's; waits up to `grace` after SIGTERM.
pub(super) fn kill_stale_group(trial_dir: &Path, grace: Duration) {
    let Some(pgid) = std::fs::read_to_string(trial_dir.join(PID_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
    else {
        return;
    };
    if !group_alive(pgid) || !group_is_trials(pgid, trial_dir) {
        return;
    }
    signal_group(pgid, libc::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && group_alive(pgid) {
        std::thread::sleep(Duration::from_millis(10));
    }
    signal_group(pgid, libc::SIGKILL);
}

/// Whether some process of group `pgid` was started for `trial_dir` (its
/// environment says so).
fn group_is_trials(pgid: u32, trial_dir: &Path) -> bool {
    let marker = format!("{}={}", super::ENV_TRIAL_DIR, trial_dir.display());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        let path = p.path();
        let Some(pid) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
        else {
            return false;
        };
        let in_group = std::fs::read_to_string(path.join("stat"))
            .ok()
            .and_then(|stat| {
                // pid (comm) state ppid pgrp ...: the fields after `)`.
                let rest = stat.rsplit_once(')')?.1.to_string();
                rest.split_whitespace().nth(2)?.parse::<u32>().ok()
            })
            == Some(pgid);
        in_group
            && pid != std::process::id()
            && std::fs::read(path.join("environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == marker.as_bytes()))
    })
}
