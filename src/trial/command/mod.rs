//! Any program as a trial: a training command in any language, run once
//! per trial, reporting one line per epoch on stdout.
//!
//! [`TrainingCommand`] says what to run: an argv with placeholders
//! (`["python3", "train.py", "--lr", "{learning_rate}"]`, no shell unless
//! you write one), the name of the metric in the program's lines and how to
//! read them ([`LineFormat`]). [`TrainingCommand::start`] starts one trial's
//! program and gives the [`CommandTrial`] the tuner trains: each
//! `train_epoch` waits for the program's next report, read incrementally as
//! it is printed; dropping the trial (the tuner stopped it, or it ended)
//! stops the program's whole process group. `foresight tune` is this with a
//! study file.
//!
//! The protocol, for a program:
//!
//! * print one line per epoch on stdout, with the metric (and, to be
//!   resumed after an interruption, the epoch): `{"epoch": 3,
//!   "val_accuracy": 0.71}` or `epoch=3 val_accuracy=0.71`; other lines are
//!   only logged; flush after each (`PYTHONUNBUFFERED=1` is set);
//! * read the configuration from the command line, or from the JSON file
//!   named by `FORESIGHT_CONFIG`; seed everything from `FORESIGHT_SEED`;
//! * keep checkpoints in `FORESIGHT_CHECKPOINT_DIR` and continue from them
//!   when it is started again for the same trial (after an interruption);
//!   printing the epoch with each line lets foresight skip the epochs it
//!   has already recorded;
//! * exit when it has trained its epochs (`FORESIGHT_HORIZON`); on SIGTERM,
//!   exit within the grace period (SIGKILL follows).
//!
//! Each trial has a folder, `DIR/trial-NNNN/`: `stdout.log`, `stderr.log`,
//! `config.json`, `checkpoint/` (the program's; foresight never deletes it)
//! and `pid`. The environment also gets `FORESIGHT_TRIAL`,
//! `FORESIGHT_TRIAL_DIR`, `FORESIGHT_WORKER`, `FORESIGHT_THREADS` (and
//! `OMP_NUM_THREADS`, `MKL_NUM_THREADS` set to it unless they are set
//! already), and with [`TrainingCommand::gpus`] `CUDA_VISIBLE_DEVICES` and
//! `HIP_VISIBLE_DEVICES`: worker `w` sees `gpus[w % gpus.len()]`.
//!
//! Failures end the trial, never the study: a program that cannot start, a
//! non-zero exit (with the tail of its stderr), one that prints nothing or
//! never the metric, a non-finite value (diverged), a trial past its time
//! limit (its process group is stopped at the limit).

mod lines;
mod process;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, unbounded};

pub use lines::{LineFormat, Reported};

use super::{EpochReport, Trainable, TrialContext, TrialError};
use crate::error::{Error, Result};
use crate::space::{Config, Space, Value};

/// The trial's number.
pub const ENV_TRIAL: &str = "FORESIGHT_TRIAL";
/// The trial's folder.
pub const ENV_TRIAL_DIR: &str = "FORESIGHT_TRIAL_DIR";
/// The trial's checkpoint folder (the program's own).
pub const ENV_CHECKPOINT_DIR: &str = "FORESIGHT_CHECKPOINT_DIR";
/// The JSON file holding the trial's configuration.
pub const ENV_CONFIG: &str = "FORESIGHT_CONFIG";
/// The trial's seed.
pub const ENV_SEED: &str = "FORESIGHT_SEED";
/// The worker's index.
pub const ENV_WORKER: &str = "FORESIGHT_WORKER";
/// The trial's compute threads.
pub const ENV_THREADS: &str = "FORESIGHT_THREADS";
/// Epochs of a full run.
pub const ENV_HORIZON: &str = "FORESIGHT_HORIZON";

/// Placeholders every command may use besides the parameters.
const BUILTINS: [&str; 7] = [
    "trial",
    "trial_dir",
    "checkpoint_dir",
    "config",
    "seed",
    "worker",
    "horizon",
];

/// How many of the program's last stderr lines a failure quotes.
const TAIL: usize = 12;

/// A training program to run as each trial.
#[derive(Debug, Clone)]
pub struct TrainingCommand {
    /// The program and its arguments; `{name}` is replaced by the
    /// parameter's value (or a builtin: `{trial}`, `{trial_dir}`,
    /// `{checkpoint_dir}`, `{config}`, `{seed}`, `{worker}`, `{horizon}`),
    /// `{{` and `}}` by braces.
    pub argv: Vec<String>,
    /// The name of the study's metric in the program's lines.
    pub metric: String,
    pub format: LineFormat,
    /// The folder that holds each trial's folder.
    pub dir: PathBuf,
    /// The program's working directory (default: the tuner's).
    pub cwd: Option<PathBuf>,
    /// More environment variables for the program.
    pub env: Vec<(String, String)>,
    /// Devices, handed out by worker (empty: nothing is set).
    pub gpus: Vec<String>,
    /// Between SIGTERM and SIGKILL when a trial is stopped.
    pub grace: Duration,
    /// Process groups of the trials running now, by trial.
    running: Arc<Mutex<HashMap<usize, u32>>>,
}

impl TrainingCommand {
    /// `argv` reporting `metric`, each trial's folder in `dir`; lines read
    /// as JSON or `key=value`, 10 s of grace, no devices.
    pub fn new(argv: Vec<String>, metric: impl Into<String>, dir: impl Into<PathBuf>) -> Self {
        TrainingCommand {
            argv,
            metric: metric.into(),
            format: LineFormat::Auto,
            dir: dir.into(),
            cwd: None,
            env: Vec::new(),
            gpus: Vec::new(),
            grace: Duration::from_secs(10),
            running: Arc::default(),
        }
    }

    /// Checks the command against the search space before anything
    /// starts: a program to run, every placeholder a parameter that is
    /// always active or a builtin (a conditional parameter is read from
    /// the configuration file instead), braces balanced.
    pub fn check(&self, space: &Space) -> Result<()> {
        if self.argv.first().is_none_or(|p| p.is_empty()) {
            return Err(Error::invalid("command", "no program to run"));
        }
        if self.metric.is_empty() {
            return Err(Error::invalid("command", "no metric name"));
        }
        for arg in &self.argv {
            for name in placeholders(arg)? {
                let param = space.params().iter().find(|p| p.name == name);
                match param {
                    Some(p) if p.condition.is_some() => {
                        return Err(Error::invalid(
                            "command",
                            format!(
                                "`{{{name}}}` in `{arg}`: `{name}` is conditional, so some trials \
                                 have no value for it; read it from the file ${ENV_CONFIG}"
                            ),
                        ));
                    }
                    Some(_) => {}
                    None if BUILTINS.contains(&name.as_str()) => {}
                    None => {
                        let known: Vec<&str> =
                            space.params().iter().map(|p| p.name.as_str()).collect();
                        return Err(Error::invalid(
                            "command",
                            format!(
                                "`{{{name}}}` in `{arg}` names no parameter (the parameters: {}; \
                                 the builtins: {})",
                                known.join(", "),
                                BUILTINS.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The folder of trial `trial`.
    pub fn trial_dir(&self, trial: usize) -> PathBuf {
        self.dir.join(format!("trial-{trial:04}"))
    }

    /// Starts trial `ctx.trial`'s program with `config` (what a tuner's
    /// build function calls). Errors: the trial's folder cannot be made, the
    /// program cannot be started.
    pub fn start(
        &self,
        config: &Config,
        ctx: &TrialContext,
    ) -> std::result::Result<CommandTrial, TrialError> {
        let trial_dir = self.trial_dir(ctx.trial);
        let checkpoint_dir = trial_dir.join("checkpoint");
        std::fs::create_dir_all(&checkpoint_dir)
            .map_err(|e| format!("{}: {e}", checkpoint_dir.display()))?;
        // What an earlier run of this trial left behind (the tuner was
        // killed): its programs' children.
        process::kill_stale_group(&trial_dir, self.grace);
        let config_file = trial_dir.join("config.json");
        std::fs::write(&config_file, serde_json::to_string_pretty(config)?)
            .map_err(|e| format!("{}: {e}", config_file.display()))?;
        let builtin = |name: &str| -> Option<String> {
            Some(match name {
                "trial" => ctx.trial.to_string(),
                "trial_dir" => trial_dir.display().to_string(),
                "checkpoint_dir" => checkpoint_dir.display().to_string(),
                "config" => config_file.display().to_string(),
                "seed" => ctx.seed.to_string(),
                "worker" => ctx.worker.to_string(),
                "horizon" => ctx.horizon.to_string(),
                _ => return None,
            })
        };
        let argv: Vec<String> = self
            .argv
            .iter()
            .map(|a| {
                substitute(a, |name| {
                    config.get(name).map(show).or_else(|| builtin(name))
                })
            })
            .collect::<Result<_>>()?;
        // The program writes straight into the trial's logs (appended to:
        // a trial started again keeps its earlier runs' output), so nothing
        // it printed is lost, whenever the tuner dies; the tuner follows the
        // log as it grows.
        let log = |name: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(trial_dir.join(name))
                .map_err(|e| format!("{name}: {e}"))
        };
        let (stdout_log, stderr_log) = (log("stdout.log")?, log("stderr.log")?);
        // What earlier runs of this trial printed (read back by `restore`).
        let earlier_output = stdout_log.metadata().map_or(0, |m| m.len());
        let earlier_errors = stderr_log.metadata().map_or(0, |m| m.len());
        let mut cmd = std::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout_log))
            .stderr(Stdio::from(stderr_log))
            .env(ENV_TRIAL, ctx.trial.to_string())
            .env(ENV_TRIAL_DIR, &trial_dir)
            .env(ENV_CHECKPOINT_DIR, &checkpoint_dir)
            .env(ENV_CONFIG, &config_file)
            .env(ENV_SEED, ctx.seed.to_string())
            .env(ENV_WORKER, ctx.worker.to_string())
            .env(ENV_THREADS, ctx.threads.to_string())
            .env(ENV_HORIZON, ctx.horizon.to_string())
            // Line-buffered output from the usual runtimes.
            .env("PYTHONUNBUFFERED", "1");
        for var in ["OMP_NUM_THREADS", "MKL_NUM_THREADS"] {
            if std::env::var_os(var).is_none() {
                cmd.env(var, ctx.threads.to_string());
            }
        }
        if !self.gpus.is_empty() {
            let gpu = &self.gpus[ctx.worker % self.gpus.len()];
            cmd.env("CUDA_VISIBLE_DEVICES", gpu)
                .env("HIP_VISIBLE_DEVICES", gpu);
        }
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let child =
            process::spawn(&mut cmd).map_err(|e| format!("cannot start `{}`: {e}", argv[0]))?;
        let pgid = child.id();
        let _ = std::fs::write(trial_dir.join(process::PID_FILE), pgid.to_string());
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ctx.trial, pgid);
        let (tx, rx) = unbounded();
        let seen = Arc::new(Mutex::new(Lines::default()));
        let (format, metric, seen_out) = (self.format.clone(), self.metric.clone(), seen.clone());
        let stdout_path = trial_dir.join("stdout.log");
        std::thread::Builder::new()
            .name(format!("foresight-trial-{}", ctx.trial))
            .spawn(move || {
                follow(&stdout_path, earlier_output, pgid, |line| {
                    let reported = format.parse(line, &metric);
                    let mut seen = seen_out.lock().unwrap_or_else(|e| e.into_inner());
                    seen.count += 1;
                    match reported {
                        Some(r) => tx.send(r).is_ok(),
                        None => {
                            seen.remember(line);
                            true
                        }
                    }
                })
            })?;
        let mut trial = CommandTrial {
            child,
            trial: ctx.trial,
            trial_dir,
            format: self.format.clone(),
            earlier_output,
            recovered: VecDeque::new(),
            reports: rx,
            metric: self.metric.clone(),
            horizon: ctx.horizon,
            deadline: ctx.time_limit.map(|l| (Instant::now() + l, l)),
            grace: self.grace,
            lines: 0,
            skip: 0,
            reported: 0,
            seen,
            earlier_errors,
            running: self.running.clone(),
        };
        // Started again without a checkpoint of the study's (killed before
        // its first epoch was recorded): what the earlier run printed still
        // counts, from epoch 1, so that a program continuing from its own
        // checkpoint leaves no gap. `restore` redoes this from its epoch.
        trial.recover_earlier_reports()?;
        Ok(trial)
    }

    /// Stops every trial's program that is running now: SIGTERM to each
    /// process group, the grace period, SIGKILL. Call it after
    /// [`crate::tuner::Tuner::run`] returns: when the study was interrupted,
    /// cut by the wall-clock budget or ended by an error, its worker threads
    /// were not waited for, and their programs may still run.
    pub fn stop_all(&self) {
        let groups: Vec<u32> = {
            let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
            for &pgid in running.values() {
                process::signal_group(pgid, libc::SIGTERM);
            }
            running.values().copied().collect()
        };
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline && groups.iter().any(|&g| process::group_alive(g)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        for &pgid in running.values() {
            process::signal_group(pgid, libc::SIGKILL);
        }
    }
}

/// A value as it goes into an argument: integers plainly, floats in the
/// shortest form that reads back the same, text as it is.
fn show(v: &Value) -> String {
    match v {
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s.clone(),
    }
}

/// The names of the `{name}` placeholders in `arg`.
fn placeholders(arg: &str) -> Result<Vec<String>> {
    let mut names = Vec::new();
    substitute(arg, |name| {
        names.push(name.to_string());
        Some(String::new())
    })?;
    Ok(names)
}

/// `arg` with each `{name}` replaced by `value(name)` (an error if it has
/// none), `{{` and `}}` by braces.
fn substitute(arg: &str, mut value: impl FnMut(&str) -> Option<String>) -> Result<String> {
    let bad = |m: &str| Error::invalid("command", format!("`{arg}`: {m}"));
    let mut out = String::new();
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut name = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed || name.is_empty() || name.contains('{') {
                    return Err(bad("a `{` without its `}` (write `{{` for a brace)"));
                }
                let v = value(&name).ok_or_else(|| bad(&format!("no value for `{{{name}}}`")))?;
                out.push_str(&v);
            }
            '}' => return Err(bad("a `}` without its `{` (write `}}` for a brace)")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Follows the log at `path` from byte `from` as the program `pid` writes
/// it, handing each complete line to `each`, until the program has exited
/// and the log is read to its end (its last line taken even without a
/// newline), or `each` returns false. Reads only what is new; waits 1 ms
/// for more at first, up to 20 ms while the program is quiet.
fn follow(path: &Path, from: u64, pid: u32, mut each: impl FnMut(&str) -> bool) {
    let Ok(mut file) = File::open(path) else {
        return;
    };
    if file.seek(SeekFrom::Start(from)).is_err() {
        return;
    }
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut wait = Duration::from_millis(1);
    loop {
        // Whether it had exited before this read: then the read gets all.
        let finished = process::pid_exited(pid);
        let n = file.read(&mut chunk).unwrap_or(0);
        if n > 0 {
            pending.extend_from_slice(&chunk[..n]);
            while let Some(i) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                let text = String::from_utf8_lossy(&line);
                if !each(text.trim_end_matches(['\n', '\r'])) {
                    return;
                }
            }
            wait = Duration::from_millis(1);
            continue;
        }
        if finished {
            if !pending.is_empty() {
                each(String::from_utf8_lossy(&pending).trim_end_matches('\r'));
            }
            return;
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_millis(20));
    }
}

/// The last lines of a stream, and how many there were.
#[derive(Debug, Default)]
struct Lines {
    count: usize,
    last: VecDeque<String>,
}

impl Lines {
    fn remember(&mut self, line: &str) {
        if self.last.len() == TAIL {
            self.last.pop_front();
        }
        let mut line = line.to_string();
        if line.len() > 300 {
            let cut = (0..=300)
                .rev()
                .find(|&i| line.is_char_boundary(i))
                .unwrap_or(0);
            line.truncate(cut);
            line.push('…');
        }
        self.last.push_back(line);
    }

    fn show(&self, n: usize) -> String {
        let skip = self.last.len().saturating_sub(n);
        self.last
            .iter()
            .skip(skip)
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// One trial's running program, as the tuner trains it: each epoch waits
/// for the program's next report. Dropping it stops the program (after the
/// last epoch, the program gets the grace period to exit on its own).
pub struct CommandTrial {
    child: Child,
    trial: usize,
    trial_dir: PathBuf,
    format: LineFormat,
    /// Bytes of `stdout.log` that earlier runs of the trial wrote.
    earlier_output: u64,
    /// Reports an earlier run printed that the study did not record (it
    /// was killed between the two), handed out first.
    recovered: VecDeque<EpochReport>,
    reports: Receiver<Reported>,
    metric: String,
    horizon: usize,
    /// When the trial's time is up, and its limit.
    deadline: Option<(Instant, Duration)>,
    grace: Duration,
    /// Reports read, and how many of them (the first) were recorded
    /// already by an earlier run of this trial.
    lines: usize,
    skip: usize,
    /// Epochs reported to the tuner by this run.
    reported: usize,
    /// The program's lines without the metric.
    seen: Arc<Mutex<Lines>>,
    /// Bytes of `stderr.log` that earlier runs wrote.
    earlier_errors: u64,
    running: Arc<Mutex<HashMap<usize, u32>>>,
}

impl CommandTrial {
    /// Stops the program (and its group) and says how it ended. It is
    /// reaped, and forgotten by [`TrainingCommand::stop_all`], together,
    /// under the lock: stop_all never signals a reaped group's number.
    fn stop(&mut self) -> Option<ExitStatus> {
        process::stop_group(&self.child, self.grace);
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        let status = self.child.wait().ok();
        running.remove(&self.trial);
        status
    }

    /// The last lines this run of the program wrote to stderr.
    fn stderr_tail(&self) -> String {
        let mut text = Vec::new();
        if let Ok(mut f) = File::open(self.trial_dir.join("stderr.log")) {
            let len = f.metadata().map_or(0, |m| m.len());
            // The last 8 KiB hold the last lines.
            let from = len.saturating_sub(8192).max(self.earlier_errors);
            if f.seek(SeekFrom::Start(from)).is_ok() {
                let _ = f.read_to_end(&mut text);
            }
        }
        let mut tail = Lines::default();
        for line in String::from_utf8_lossy(&text).lines() {
            tail.remember(line);
        }
        tail.show(TAIL)
    }

    /// The epoch the next report is for.
    fn next_epoch(&self) -> usize {
        self.skip + self.reported + 1
    }

    /// Why the trial ended when its program's stdout did.
    fn ended(&mut self) -> String {
        // The program closed stdout: it is exiting.
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline && !process::exited(&self.child) {
            std::thread::sleep(Duration::from_millis(5));
        }
        let status = self
            .stop()
            .map_or("an unknown status".to_string(), |s| s.to_string());
        let epochs = self.skip + self.reported;
        let stderr = self.stderr_tail();
        let stderr = if stderr.is_empty() {
            String::new()
        } else {
            format!("; its stderr ends: {stderr}")
        };
        if self.lines == 0 {
            let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let printed = if seen.count == 0 {
                "printed nothing".to_string()
            } else {
                format!(
                    "printed {} lines, none with `{}` (the last: {})",
                    seen.count,
                    self.metric,
                    seen.show(3)
                )
            };
            return format!("the program {printed} and exited ({status}){stderr}");
        }
        format!(
            "the program exited ({status}) after {epochs} of {} epochs{stderr}",
            self.horizon
        )
    }
}

impl Trainable for CommandTrial {
    type Report = EpochReport;

    /// The program's next report (skipping the epochs an earlier run of
    /// this trial recorded).
    fn train_epoch(&mut self) -> std::result::Result<EpochReport, TrialError> {
        if let Some(report) = self.recovered.pop_front() {
            self.reported += 1;
            return Ok(report);
        }
        loop {
            let next = match self.deadline {
                Some((at, _)) => self.reports.recv_deadline(at),
                None => self
                    .reports
                    .recv()
                    .map_err(|_| RecvTimeoutError::Disconnected),
            };
            match next {
                Ok(r) => {
                    self.lines += 1;
                    // Without epoch numbers, the lines count the epochs.
                    let epoch = r.epoch.unwrap_or(self.lines);
                    let next = self.next_epoch();
                    if epoch < next {
                        // Recorded already (an earlier run reported it).
                        continue;
                    }
                    if epoch > next {
                        self.stop();
                        return Err(format!(
                            "the program went on at epoch {epoch}, but the study has {} epochs \
                             of this trial: its checkpoint is ahead of what was recorded (delete \
                             {} to start the trial over)",
                            next - 1,
                            self.trial_dir.join("checkpoint").display()
                        )
                        .into());
                    }
                    self.reported += 1;
                    return Ok(r.report);
                }
                Err(RecvTimeoutError::Timeout) => {
                    let limit = self.deadline.map_or(0.0, |d| d.1.as_secs_f64());
                    self.stop();
                    return Err(format!(
                        "exceeded the per-trial time limit of {limit} s after {} epochs",
                        self.skip + self.reported
                    )
                    .into());
                }
                Err(RecvTimeoutError::Disconnected) => return Err(self.ended().into()),
            }
        }
    }

    /// Records how many epochs the study has of this trial (the program
    /// keeps its own checkpoints).
    fn save(&mut self, dir: &Path) -> std::result::Result<bool, TrialError> {
        std::fs::write(dir.join("epochs"), (self.skip + self.reported).to_string())?;
        Ok(true)
    }

    /// Started again after an interruption: the program's reports of the
    /// epochs the study has already are skipped; reports an earlier run
    /// printed (with their epochs) that the study had not recorded yet are
    /// taken from the trial's log, so that a program which continues from a
    /// checkpoint a little ahead of the study leaves no gap.
    fn restore(&mut self, dir: &Path) -> std::result::Result<bool, TrialError> {
        let text = std::fs::read_to_string(dir.join("epochs"))?;
        self.skip = text.trim().parse()?;
        self.recover_earlier_reports()?;
        Ok(true)
    }
}

impl CommandTrial {
    /// Queues the reports of epochs `skip + 1, skip + 2, ...` that earlier
    /// runs of this trial printed (with their epochs) into its log.
    fn recover_earlier_reports(&mut self) -> std::result::Result<(), TrialError> {
        self.recovered.clear();
        if self.earlier_output == 0 {
            return Ok(());
        }
        let mut earlier = Vec::new();
        File::open(self.trial_dir.join("stdout.log"))?
            .take(self.earlier_output)
            .read_to_end(&mut earlier)?;
        let mut by_epoch: HashMap<usize, EpochReport> = HashMap::new();
        for line in String::from_utf8_lossy(&earlier).lines() {
            if let Some(Reported {
                report,
                epoch: Some(e),
            }) = self.format.parse(line, &self.metric)
            {
                // The last run's report of an epoch wins.
                by_epoch.insert(e, report);
            }
        }
        let mut epoch = self.skip + 1;
        while let Some(r) = by_epoch.remove(&epoch) {
            self.recovered.push_back(r);
            epoch += 1;
        }
        Ok(())
    }
}

impl Drop for CommandTrial {
    fn drop(&mut self) {
        if self.skip + self.reported >= self.horizon {
            // Done: it may still be saving its model.
            let deadline = Instant::now() + self.grace;
            while Instant::now() < deadline && !process::exited(&self.child) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Scale;

    fn space() -> Space {
        Space::builder()
            .float("lr", 1e-4, 1e-1, Scale::Log)
            .categorical("opt", &["adam", "sgd"])
            .float("momentum", 0.0, 0.99, Scale::Linear)
            .when("opt", &["sgd"])
            .build()
            .unwrap()
    }

    fn command(argv: &[&str]) -> TrainingCommand {
        TrainingCommand::new(
            argv.iter().map(|s| s.to_string()).collect(),
            "acc",
            std::env::temp_dir(),
        )
    }

    #[test]
    fn placeholders_are_checked_before_anything_starts() {
        let ok = command(&[
            "train",
            "--lr={lr}",
            "{opt}",
            "--out",
            "{trial_dir}/x",
            "{{literal}}",
        ]);
        assert!(ok.check(&space()).is_ok());
        let err = command(&["train", "--lr", "{learning_rate}"])
            .check(&space())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`{learning_rate}`") && err.contains("lr, opt"),
            "{err}"
        );
        let err = command(&["train", "{momentum}"])
            .check(&space())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("conditional") && err.contains(ENV_CONFIG),
            "{err}"
        );
        assert!(command(&["train", "{lr"]).check(&space()).is_err());
        assert!(command(&["train", "lr}"]).check(&space()).is_err());
        assert!(command(&[]).check(&space()).is_err());
    }

    #[test]
    fn values_are_substituted() {
        let config = Config::from([
            ("lr".to_string(), Value::Float(0.001)),
            ("opt".to_string(), Value::Str("sgd".into())),
            ("layers".to_string(), Value::Int(3)),
        ]);
        let get = |n: &str| config.get(n).map(show);
        assert_eq!(substitute("--lr={lr}", get).unwrap(), "--lr=0.001");
        assert_eq!(substitute("{opt}-{layers}", get).unwrap(), "sgd-3");
        assert_eq!(substitute("{{x}}", get).unwrap(), "{x}");
        assert!(substitute("{nope}", get).is_err());
    }
}
