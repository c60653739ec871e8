//! `foresight tune STUDY.toml`: a training command as the trials of a
//! study, from a study file (the format is `examples/command/study.toml`,
//! which `foresight tune --help` prints).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use foresight::observe::Output;
use foresight::sampler::SamplerSpec;
use foresight::space::Space;
use foresight::storage;
use foresight::study::{Direction, Objective, Status};
use foresight::trial::command::{LineFormat, TrainingCommand};
use foresight::tuner::{Budget, Interrupt, Tuner};
use foresight::{Error, Result, policy};

/// The study file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StudyFile {
    command: Vec<String>,
    metric: String,
    direction: Direction,
    low: Option<f64>,
    high: Option<f64>,
    horizon: usize,
    #[serde(default = "one")]
    workers: usize,
    #[serde(default)]
    seed: u64,
    #[serde(default = "gp_hedge")]
    sampler: String,
    #[serde(default = "lc")]
    policy: String,
    storage: Option<String>,
    /// The study's name in a database.
    study: Option<String>,
    /// The trials' folders and checkpoints, for a storage without a folder.
    dir: Option<PathBuf>,
    worker_grace_seconds: Option<f64>,
    retries: Option<usize>,
    #[serde(default)]
    gpus: Vec<toml::Value>,
    pattern: Option<String>,
    #[serde(default = "ten")]
    grace_seconds: f64,
    cwd: Option<PathBuf>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    budget: BudgetFile,
    param: Vec<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetFile {
    trials: Option<usize>,
    epochs: Option<usize>,
    minutes: Option<f64>,
    trial_minutes: Option<f64>,
}

fn one() -> usize {
    1
}
fn ten() -> f64 {
    10.0
}
fn gp_hedge() -> String {
    "gp-hedge".into()
}
fn lc() -> String {
    "lc".into()
}

/// Settings of the study file that flags override.
#[derive(Debug, Args)]
pub struct Overrides {
    /// Where the study is kept: a folder, or a PostgreSQL database
    /// (`postgres://user@host/db`; workers on many machines then share the
    /// study); default: the environment variable FORESIGHT_STORAGE, then
    /// the file's `storage`, then runs/NAME.
    #[arg(long, env = "FORESIGHT_STORAGE", hide_env_values = true)]
    storage: Option<String>,
    /// The study's name (in a database); default: the file's `study`, or
    /// its stem.
    #[arg(long)]
    study: Option<String>,
    /// The trials' folders and checkpoints when the storage is a database
    /// (default: the file's `dir`, or runs/NAME); share it between machines
    /// (a network file system) for a lost worker's trial to continue from
    /// its checkpoint elsewhere.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Seconds another worker may be silent before its trials are taken
    /// over (a database only; default 60).
    #[arg(long)]
    worker_grace: Option<f64>,
    /// Times a lost worker's trial is started again (default 3).
    #[arg(long)]
    retries: Option<usize>,
    /// Trials at once.
    #[arg(long)]
    workers: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    /// Epochs of a full run.
    #[arg(long)]
    horizon: Option<usize>,
    /// Trials to start, over all workers.
    #[arg(long)]
    trials: Option<usize>,
    /// Epochs to train, over all trials.
    #[arg(long)]
    epochs: Option<usize>,
    /// Wall-clock budget, minutes.
    #[arg(long)]
    minutes: Option<f64>,
    /// Wall-clock limit of one trial, minutes.
    #[arg(long)]
    trial_minutes: Option<f64>,
    /// The sampler: random, gp, gp-hedge (with settings: `gp-hedge(eta=0.5)`).
    #[arg(long)]
    sampler: Option<String>,
    /// The stopping policy: lc, median, asha, hyperband, none (with
    /// settings: `lc(threshold=0.01)`).
    #[arg(long)]
    policy: Option<String>,
    /// Devices, one per worker in turn: `--gpus 0,1,2,3`.
    #[arg(long, value_delimiter = ',')]
    gpus: Option<Vec<String>>,
    /// Print every event as a JSON line instead of progress bars.
    #[arg(long)]
    json: bool,
    /// Print nothing while tuning.
    #[arg(long)]
    quiet: bool,
}

fn invalid(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::invalid("study file", format!("{}: {message}", path.display()))
}

/// Runs the study of `path`: the study's outcome, or 130 when interrupted.
pub fn tune(path: &Path, o: Overrides) -> Result<ExitCode> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut file: StudyFile = toml::from_str(&text).map_err(|e| invalid(path, e))?;
    let stem = path
        .file_stem()
        .map_or("study".into(), |s| s.to_string_lossy().into_owned());
    let name = o.study.or(file.study.take()).unwrap_or(stem);
    let storage = o
        .storage
        .or(file.storage.take())
        .unwrap_or(format!("runs/{name}"));
    let space = {
        // The `[[param]]` tables in the search space's own TOML form.
        let mut table = toml::Table::new();
        table.insert("param".into(), toml::Value::Array(file.param.clone()));
        Space::from_toml(&toml::to_string(&table).map_err(|e| invalid(path, e))?)?
    };
    let objective = Objective {
        direction: file.direction,
        low: file.low,
        high: file.high,
    };
    let horizon = o.horizon.unwrap_or(file.horizon);
    let workers = o.workers.unwrap_or(file.workers);
    let seed = o.seed.unwrap_or(file.seed);
    let minutes = |m: Option<f64>| {
        m.map(|m| {
            Duration::try_from_secs_f64(m * 60.0)
                .map_err(|_| invalid(path, format!("{m} is not a number of minutes")))
        })
        .transpose()
    };
    let budget = Budget {
        trials: o.trials.or(file.budget.trials),
        epochs: o.epochs.or(file.budget.epochs),
        wall: minutes(o.minutes.or(file.budget.minutes))?,
        trial_time: minutes(o.trial_minutes.or(file.budget.trial_minutes))?,
    };
    let store = storage::open(&storage, Some(&name))?;
    // The trials' folders: the study folder's, or (a database) the given one.
    let folder = match store.folder() {
        Some(f) => f.to_path_buf(),
        None => o
            .dir
            .or(file.dir.take())
            .unwrap_or_else(|| PathBuf::from(format!("runs/{name}"))),
    };
    let grace = o
        .worker_grace
        .or(file.worker_grace_seconds)
        .map(|g| {
            Duration::try_from_secs_f64(g)
                .map_err(|_| invalid(path, format!("{g} is not a number of seconds")))
        })
        .transpose()?
        .unwrap_or(Duration::from_secs(60));
    let mut command = TrainingCommand::new(file.command, file.metric, folder.join("trials"));
    if let Some(p) = &file.pattern {
        command.format = LineFormat::pattern(p)?;
    }
    command.grace = Duration::try_from_secs_f64(file.grace_seconds)
        .map_err(|_| invalid(path, "grace_seconds must be a number of seconds"))?;
    command.gpus = match o.gpus {
        Some(g) => g,
        None => file
            .gpus
            .iter()
            .map(|g| match g {
                toml::Value::Integer(i) => Ok(i.to_string()),
                toml::Value::String(s) => Ok(s.clone()),
                other => Err(invalid(path, format!("gpus: {other} is not a device"))),
            })
            .collect::<Result<_>>()?,
    };
    command.cwd = file.cwd;
    command.env = file.env.into_iter().collect();
    command.check(&space)?;
    let sampler = o
        .sampler
        .unwrap_or(file.sampler)
        .parse::<SamplerSpec>()?
        .build(&space, seed)?;
    let policy = policy::parse(&o.policy.unwrap_or(file.policy))?;
    let output = match (o.json, o.quiet) {
        (true, _) => Output::Json,
        (false, true) => Output::Quiet,
        (false, false) => Output::Bars,
    };
    // Ctrl-C (and SIGTERM, from a scheduler): stop at once, leaving the
    // running trials to the next run, which starts them again.
    let interrupt = Interrupt::new();
    ctrlc::set_handler({
        let interrupt = interrupt.clone();
        move || interrupt.interrupt()
    })
    .map_err(|e| Error::invalid("signals", e.to_string()))?;
    if output == Output::Bars {
        eprintln!(
            "tuning `{}`: {workers} workers, {horizon} epochs per trial, study {}",
            command.argv.join(" "),
            store.describe()
        );
    }
    let storage_shown = store.describe();
    let runner = Arc::new(command);
    let result = Tuner::new(space, objective, horizon)
        .sampler(sampler)
        .policy(policy)
        .workers(workers)
        .seed(seed)
        .budget(budget)
        .worker_grace(grace)
        .retries(o.retries.or(file.retries).unwrap_or(3))
        .checkpoints(folder.join("checkpoints"))
        .storage(store)
        .output(output)
        .interrupt(interrupt)
        .run({
            let runner = runner.clone();
            move |config, ctx| runner.start(config, ctx)
        });
    // Whatever ended the run, no program outlives it.
    runner.stop_all();
    let study = match result {
        Err(Error::Interrupted) => {
            eprintln!(
                "interrupted; the study is kept in {storage_shown}: run the same command again to \
                 continue it"
            );
            return Ok(ExitCode::from(130));
        }
        other => other?,
    };
    match study.best() {
        Some(best) => println!(
            "best: trial {}, {} {:.4}: {}",
            best.id,
            runner.metric,
            best.final_score().unwrap_or(f64::NAN),
            foresight::observe::show_config(&best.config)
        ),
        None => println!("no trial completed"),
    }
    let full = study.epochs_without_stopping();
    println!(
        "{} trials ({} completed, {} stopped, {} failed); {} epochs trained, {} saved by stopping",
        study.trials.len(),
        study.count(Some(Status::Completed)),
        study.count(Some(Status::Stopped)),
        study.count(Some(Status::Failed)) + study.count(Some(Status::Diverged)),
        study.epochs_used,
        full.saturating_sub(study.epochs_used)
    );
    println!("report: foresight report {}", report_args(&storage, &name));
    Ok(ExitCode::SUCCESS)
}

/// The arguments `foresight report` needs for this study (no password).
fn report_args(storage: &str, name: &str) -> String {
    if storage.contains("://") {
        let shown = storage::open(storage, Some(name)).map_or(String::new(), |s| {
            s.describe()
                .split(" (study")
                .next()
                .unwrap_or_default()
                .to_string()
        });
        format!("{shown} --study {name}")
    } else {
        storage.to_string()
    }
}
