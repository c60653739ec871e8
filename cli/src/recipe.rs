//! `foresight recipe slurm|kubernetes`: the text that starts a study's
//! workers on a cluster, a Slurm job array (`sbatch job.sh`) or a Kubernetes
//! Indexed Job (`kubectl apply -f -`), for a study kept in PostgreSQL.
//!
//! Both recipes start one `foresight tune` process per array task or pod,
//! and each process runs one trial at a time (`--workers 1`): the scheduler
//! then sizes, places and accounts for every trial on its own (its CPUs, its
//! GPUs, its time limit), and more trials at once means more tasks or pods,
//! never a second kind of worker count to get right. Nothing coordinates the
//! processes but the database: each appends its events to the study and
//! claims the next trial from it, so they may start late, stop early, or be
//! added (another `sbatch`, another Job) in any order. A process that dies
//! (its node lost, preempted, past its time limit) stops being heard from;
//! after the worker grace (`worker_grace_seconds`, 60 s by default) the other
//! workers take its trials over and start them again, up to `retries` times,
//! from their last checkpoint when `--dir` is on storage they all see.
//!
//! The database's URL holds its password, so a recipe never holds it:
//! `foresight tune` reads it from `FORESIGHT_STORAGE`, which `sbatch` passes
//! on from the environment it was run in, and which Kubernetes fills from a
//! Secret.
//!
//! GPUs: a worker's trial sees every GPU of its task or pod. Slurm says which
//! in `CUDA_VISIBLE_DEVICES`, with the node's numbers where the site does not
//! confine devices, so the Slurm recipe passes no `--gpus` (a `--gpus 0` would
//! then name another job's GPU). A container sees only its own GPUs, numbered
//! from 0, so the Kubernetes recipe passes `--gpus 0` to a one-GPU worker; a
//! several-GPU worker gets no `--gpus` (the flag hands one device to each
//! worker) and its trial sees all of them. Either way a study file meant for
//! a cluster leaves out `gpus`: the allocation decides.

use std::path::{Component, Path, PathBuf};

use clap::{Args, ValueEnum};
use foresight::{Error, Result};

/// `--workers` when not given.
pub const DEFAULT_WORKERS: usize = 4;
/// Slurm's `--time` when not given.
pub const DEFAULT_TIME: &str = "04:00:00";
/// Slurm's `--cpus-per-task` when not given.
pub const DEFAULT_CPUS_PER_TASK: usize = 2;
/// The Kubernetes Secret whose key `url` holds the database's URL.
pub const DEFAULT_SECRET: &str = "foresight-storage";
/// The Kubernetes ConfigMap that holds the study file.
pub const DEFAULT_CONFIG_MAP: &str = "foresight-study";
/// Where the ConfigMap's study file is mounted in a pod.
const STUDY_MOUNT: &str = "/study";
/// The longest Job name made from a study's name: a pod's host name is the
/// Job's name, `-` and its index, and a host name has at most 63 characters.
const MAX_JOB_NAME: usize = 52;

/// The scheduler a recipe is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// A bash script for `sbatch`: a job array, one task per worker.
    Slurm,
    /// A `batch/v1` Job for `kubectl apply`: an Indexed Job, one pod per
    /// worker.
    Kubernetes,
}

/// What `foresight recipe` renders.
#[derive(Debug, Args)]
pub struct RecipeArgs {
    /// The scheduler.
    #[arg(value_enum)]
    pub kind: Kind,
    /// The study file, as the workers see it: for Slurm its path from the
    /// directory `sbatch` runs in; for Kubernetes the local file that goes
    /// into the ConfigMap (the pods read its file name under /study).
    #[arg(long, value_name = "PATH")]
    pub study_file: PathBuf,
    /// The study's name in the database.
    #[arg(long, value_name = "NAME")]
    pub study: String,
    /// Worker processes (array tasks, pods), each running one trial at a
    /// time: the number of trials at once.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WORKERS)]
    pub workers: usize,
    /// GPUs of each worker, all seen by its trial.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub gpus_per_worker: usize,
    /// Where trials keep their logs and checkpoints (default: Slurm
    /// runs/NAME, on the shared file system; Kubernetes /study-runs/JOB, on
    /// the pod's own emptyDir: a volume all pods share lets a taken-over
    /// trial continue from its checkpoint).
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Time limit of each array task (Slurm's formats: HH:MM:SS, D-HH, ...).
    #[arg(long, value_name = "TIME", default_value = DEFAULT_TIME, help_heading = "Slurm")]
    pub time: String,
    /// The partition (default: the cluster's).
    #[arg(long, value_name = "NAME", help_heading = "Slurm")]
    pub partition: Option<String>,
    /// CPUs of each array task.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CPUS_PER_TASK, help_heading = "Slurm")]
    pub cpus_per_task: usize,
    /// The container image: foresight and the training program.
    #[arg(
        long,
        required_if_eq("kind", "kubernetes"),
        help_heading = "Kubernetes"
    )]
    pub image: Option<String>,
    /// The Secret whose key `url` is the database's URL (FORESIGHT_STORAGE).
    #[arg(long, value_name = "NAME", default_value = DEFAULT_SECRET, help_heading = "Kubernetes")]
    pub secret: String,
    /// The ConfigMap holding the study file, mounted at /study.
    #[arg(long, value_name = "NAME", default_value = DEFAULT_CONFIG_MAP, help_heading = "Kubernetes")]
    pub config_map: String,
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("recipe", message)
}

/// The recipe's text: a bash script for `sbatch`, or a Kubernetes Job's
/// YAML. Refuses what would make a broken recipe (no worker, a path or
/// name the text cannot hold, a Kubernetes name no object can have).
pub fn render(args: &RecipeArgs) -> Result<String> {
    if args.workers == 0 {
        return Err(invalid("--workers must be at least 1"));
    }
    if args.study.is_empty() {
        return Err(invalid("--study must not be empty"));
    }
    // A name starting with `-` would be read by `foresight tune` as a flag.
    if args.study.starts_with('-') {
        return Err(invalid(format!("--study `{}` starts with `-`", args.study)));
    }
    plain("--study", &args.study)?;
    let study_file = path_text("--study-file", &args.study_file)?;
    if study_file.is_empty() {
        return Err(invalid("--study-file must not be empty"));
    }
    match args.kind {
        Kind::Slurm => slurm(args, study_file),
        Kind::Kubernetes => kubernetes(args, study_file),
    }
}

/// A job array of `workers` tasks, each `srun foresight tune ... --workers 1`.
fn slurm(args: &RecipeArgs, study_file: &str) -> Result<String> {
    if args.cpus_per_task == 0 {
        return Err(invalid("--cpus-per-task must be at least 1"));
    }
    if !slurm_time(&args.time) {
        return Err(invalid(format!(
            "--time `{}` is not a Slurm time (HH:MM:SS, MM, D-HH, D-HH:MM:SS, ...)",
            args.time
        )));
    }
    let dir = match &args.dir {
        Some(d) => path_text("--dir", d)?.to_string(),
        None => format!("runs/{}", args.study),
    };
    if let Some(p) = &args.partition
        && (p.is_empty()
            || !p
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.,-".contains(c)))
    {
        return Err(invalid(format!(
            "--partition `{p}` is not a partition name"
        )));
    }
    // #SBATCH lines are not shell: keep the job's name to characters that
    // need no quoting there.
    let job: String = args
        .study
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let study = &args.study;
    let mut sbatch = vec![
        format!("--job-name={job}"),
        format!("--array=0-{}", args.workers - 1),
        "--ntasks=1".to_string(),
        format!("--cpus-per-task={}", args.cpus_per_task),
        format!("--time={}", args.time),
    ];
    if let Some(p) = &args.partition {
        sbatch.push(format!("--partition={p}"));
    }
    if args.gpus_per_worker > 0 {
        sbatch.push(format!("--gres=gpu:{}", args.gpus_per_worker));
    }
    // One file per array task: %x the job's name, %A the array's job id,
    // %a the task's index (in the submit directory, which exists).
    sbatch.push("--output=%x-%A_%a.out".to_string());
    sbatch.push("--export=ALL".to_string());
    let sbatch: String = sbatch
        .iter()
        .map(|line| format!("#SBATCH {line}\n"))
        .collect();
    let tune = [
        study_file,
        "--study",
        study,
        "--workers",
        "1",
        "--dir",
        &dir,
    ]
    .iter()
    .map(|w| shell_quote(w))
    .collect::<Vec<_>>()
    .join(" ");
    let workers = args.workers;
    let invocation = invocation(args);
    let gpus = if args.gpus_per_worker > 0 {
        "# The trial sees the task's GPUs as Slurm sets them (CUDA_VISIBLE_DEVICES).\n\
         # No --gpus: its numbers would be taken as the node's where the site does\n\
         # not confine devices, and name another job's GPU.\n"
    } else {
        ""
    };
    Ok(format!(
        r#"#!/bin/bash
# foresight study {study_q}: {workers} workers as a Slurm job array, one
# `foresight tune` process per array task, each running one trial at a time.
# The workers share the study through the database: each claims its next
# trial there. The trials of a task that dies (a node lost, the time limit)
# are taken over by the other workers after the worker grace
# (`worker_grace_seconds` in the study file, 60 s by default) and started
# again; they continue from their checkpoints in {dir_q}, which must
# be on the shared file system, like the study file.
#
# Render it, then submit it from the directory the study file's relative
# paths start from, with the database in the environment (sbatch passes it
# to the job: neither this file nor a command line holds the password):
#
#   {invocation} > job.sh
#   export FORESIGHT_STORAGE=postgres://user:password@host/db
#   sbatch job.sh
#
# More workers at any time: sbatch it again, they join the same study.
# Progress: foresight studies --storage "$FORESIGHT_STORAGE"
# Results:  foresight report "$FORESIGHT_STORAGE" --study {study_sh} --out report
# foresight and the training program must be on the nodes' PATH.
#
{sbatch}
set -euo pipefail
: "${{FORESIGHT_STORAGE:?export FORESIGHT_STORAGE=postgres://... before sbatch}}"
# The step gets the task's CPUs (srun of Slurm 22.05 to 23.02 does not take
# them from sbatch by itself).
export SRUN_CPUS_PER_TASK="$SLURM_CPUS_PER_TASK"
{gpus}srun foresight tune {tune}
"#,
        study_q = quoted(study),
        dir_q = shell_quote(&dir),
        study_sh = shell_quote(study),
    ))
}

/// An Indexed Job of `workers` pods, each `foresight tune ... --workers 1`.
fn kubernetes(args: &RecipeArgs, study_file: &str) -> Result<String> {
    let image = args
        .image
        .as_deref()
        .ok_or_else(|| invalid("a Kubernetes recipe needs --image"))?;
    if image.is_empty() || image.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(format!("--image `{image}` is not an image name")));
    }
    for (flag, name) in [
        ("--secret", &args.secret),
        ("--config-map", &args.config_map),
    ] {
        if !dns_subdomain(name) {
            return Err(invalid(format!(
                "{flag} `{name}` is not a Kubernetes name (lowercase letters, digits, '-' and \
                 '.', starting and ending with a letter or digit)"
            )));
        }
    }
    // The ConfigMap's key, hence the file's name under /study, is the file
    // name `kubectl create configmap --from-file` is given.
    let file_name = Path::new(study_file)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| {
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
        })
        .ok_or_else(|| {
            invalid(format!(
                "--study-file `{study_file}`: a ConfigMap key needs a file name of letters, \
                 digits, '-', '_' and '.'"
            ))
        })?;
    let (job, renamed) = job_name(&args.study)?;
    let dir = match &args.dir {
        Some(d) => path_text("--dir", d)?.to_string(),
        None => format!("/study-runs/{job}"),
    };
    let dir_path = Path::new(&dir);
    if !dir_path.is_absolute()
        || dir_path.components().any(|c| c == Component::ParentDir)
        || dir_path == Path::new("/")
        || dir_path.starts_with(STUDY_MOUNT)
    {
        return Err(invalid(format!(
            "--dir `{dir}` must be an absolute path without `..`, outside {STUDY_MOUNT} (a \
             volume is mounted there)"
        )));
    }
    let study = &args.study;
    let k = args.gpus_per_worker;
    let mut command = vec![
        "foresight".to_string(),
        "tune".into(),
        format!("{STUDY_MOUNT}/{file_name}"),
        "--study".into(),
        study.clone(),
        "--workers".into(),
        "1".into(),
        "--dir".into(),
        dir.clone(),
    ];
    // A container sees its own GPUs only, from 0: one GPU is device 0 (and
    // overrides a study file's `gpus`). Several stay all visible to the one
    // trial: `--gpus` hands one device to each worker.
    if k == 1 {
        command.extend(["--gpus".into(), "0".into()]);
    }
    let command = command
        .iter()
        .map(|w| quoted(w))
        .collect::<Vec<_>>()
        .join(", ");
    let resources = if k > 0 {
        format!("          resources:\n            limits:\n              nvidia.com/gpu: {k}\n")
    } else {
        String::new()
    };
    let renamed = if renamed {
        format!(
            "#\n# The Job is named {job}: {} is not a Kubernetes name (at most {MAX_JOB_NAME}\n\
             # lowercase letters, digits and '-'); the study keeps its name.\n",
            quoted(study)
        )
    } else {
        String::new()
    };
    let workers = args.workers;
    let secret = &args.secret;
    let config_map = &args.config_map;
    let invocation = invocation(args);
    Ok(format!(
        r#"# foresight study {study_q}: {workers} workers as a Kubernetes Indexed Job, one pod
# (one `foresight tune` process, one trial at a time) per index. The workers
# share the study through the database: each claims its next trial there. The
# trials of a pod that dies (its node lost, preempted) are taken over by the
# other workers after the worker grace (`worker_grace_seconds` in the study
# file, 60 s by default), and the Job starts a new pod for its index.
#
# Once per namespace, the database's URL (a Secret: the Job does not hold the
# password) and the study file (a ConfigMap, mounted at {STUDY_MOUNT}):
#
#   export FORESIGHT_STORAGE=postgres://user:password@host/db
#   kubectl create secret generic {secret} --from-literal=url="$FORESIGHT_STORAGE"
#   kubectl create configmap {config_map} --from-file={file_sh}
#
# then the workers (a Job's pods cannot change: `kubectl delete job {job}`
# before applying another one of the same name):
#
#   {invocation} | kubectl apply -f -
#
# Progress: foresight studies --storage "$FORESIGHT_STORAGE"
# Results:  foresight report "$FORESIGHT_STORAGE" --study {study_sh} --out report
{renamed}apiVersion: batch/v1
kind: Job
metadata:
  name: {job_q}
  labels:
    app.kubernetes.io/name: foresight
    app.kubernetes.io/instance: {job_q}
spec:
  completionMode: Indexed
  completions: {workers}
  parallelism: {workers}
  # Pods that fail on their own (a database out of reach, a bad study file):
  # one new pod per worker on average before the Job gives up.
  backoffLimit: {workers}
  # Pods taken away (preemption, a drained node, eviction) are started again
  # without counting (Kubernetes 1.26 and later).
  podFailurePolicy:
    rules:
      - action: Ignore
        onPodConditions:
          - type: DisruptionTarget
  template:
    metadata:
      labels:
        app.kubernetes.io/name: foresight
        app.kubernetes.io/instance: {job_q}
    spec:
      restartPolicy: Never
      containers:
        - name: worker
          image: {image_q}
          command: [{command}]
          env:
            - name: FORESIGHT_STORAGE
              valueFrom:
                secretKeyRef:
                  name: {secret_q}
                  key: url
{resources}          volumeMounts:
            - name: study
              mountPath: {STUDY_MOUNT}
              readOnly: true
            - name: runs
              mountPath: {dir_q}
      volumes:
        - name: study
          configMap:
            name: {config_map_q}
        - name: runs
          # The trials' logs and checkpoints, here each pod's own. A volume
          # all pods share (a PersistentVolumeClaim with ReadWriteMany) lets
          # a taken-over trial continue from its checkpoint:
          #   persistentVolumeClaim:
          #     claimName: foresight-runs
          emptyDir: {{}}
"#,
        study_q = quoted(study),
        study_sh = shell_quote(study),
        file_sh = shell_quote(study_file),
        image_q = quoted(image),
        job_q = quoted(&job),
        secret_q = quoted(secret),
        config_map_q = quoted(config_map),
        dir_q = quoted(&dir),
    ))
}

/// A Job name from a study's name: lowercase, every run of other characters
/// one `-`, at most [`MAX_JOB_NAME`] characters; and whether it differs.
fn job_name(study: &str) -> Result<(String, bool)> {
    let mut name = String::new();
    for c in study.chars() {
        if c.is_ascii_alphanumeric() {
            name.push(c.to_ascii_lowercase());
        } else if !name.is_empty() && !name.ends_with('-') {
            name.push('-');
        }
    }
    name.truncate(MAX_JOB_NAME);
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        return Err(invalid(format!(
            "--study `{study}` has no letter or digit to name a Kubernetes Job after"
        )));
    }
    let renamed = name != study;
    Ok((name, renamed))
}

/// A DNS subdomain, as the names of Secrets and ConfigMaps are.
fn dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S, or no limit.
fn slurm_time(time: &str) -> bool {
    if ["infinite", "unlimited"].contains(&time.to_ascii_lowercase().as_str()) {
        return true;
    }
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let (days, rest) = match time.split_once('-') {
        Some((d, rest)) => (Some(d), rest),
        None => (None, time),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    days.is_none_or(digits) && parts.len() <= 3 && parts.iter().all(|p| digits(p))
}

/// Text a recipe can hold on one line: no control characters (a newline
/// would end a comment or a command).
fn plain<'a>(flag: &str, text: &'a str) -> Result<&'a str> {
    if text.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{flag} {text:?} holds a control character"
        )));
    }
    Ok(text)
}

fn path_text<'a>(flag: &str, path: &'a Path) -> Result<&'a str> {
    let text = path
        .to_str()
        .ok_or_else(|| invalid(format!("{flag} {} is not UTF-8", path.display())))?;
    plain(flag, text)
}

/// `text` as one word of bash: as it is when nothing in it is special,
/// else in single quotes.
fn shell_quote(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c));
    if safe {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// `text` as a double-quoted string, in YAML as in a comment: JSON's
/// strings are YAML's.
fn quoted(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
}

/// The `foresight recipe` command line that renders `args`, defaults left
/// out, so a recipe says how to render it again.
fn invocation(args: &RecipeArgs) -> String {
    let kind = match args.kind {
        Kind::Slurm => "slurm",
        Kind::Kubernetes => "kubernetes",
    };
    let mut words: Vec<String> = vec!["foresight".into(), "recipe".into(), kind.into()];
    let mut flag = |name: &str, value: &str| {
        words.push(name.into());
        words.push(shell_quote(value));
    };
    flag("--study-file", &args.study_file.to_string_lossy());
    flag("--study", &args.study);
    if args.workers != DEFAULT_WORKERS {
        flag("--workers", &args.workers.to_string());
    }
    if args.gpus_per_worker != 0 {
        flag("--gpus-per-worker", &args.gpus_per_worker.to_string());
    }
    if let Some(d) = &args.dir {
        flag("--dir", &d.to_string_lossy());
    }
    match args.kind {
        Kind::Slurm => {
            if args.time != DEFAULT_TIME {
                flag("--time", &args.time);
            }
            if let Some(p) = &args.partition {
                flag("--partition", p);
            }
            if args.cpus_per_task != DEFAULT_CPUS_PER_TASK {
                flag("--cpus-per-task", &args.cpus_per_task.to_string());
            }
        }
        Kind::Kubernetes => {
            if let Some(i) = &args.image {
                flag("--image", i);
            }
            if args.secret != DEFAULT_SECRET {
                flag("--secret", &args.secret);
            }
            if args.config_map != DEFAULT_CONFIG_MAP {
                flag("--config-map", &args.config_map);
            }
        }
    }
    words.join(" ")
}
