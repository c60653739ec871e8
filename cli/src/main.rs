//! The `foresight` command line: thin, every piece of logic lives in the
//! library (`foresight`) or the protocols (`foresight-protocols`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

mod recipe;
mod tune;

use foresight::curve::PredictorConfig;
use foresight::{report, spec, storage};
use foresight_protocols::{curveset, predict as protocol, replay};

#[derive(Parser)]
#[command(
    name = "foresight",
    version,
    about = "Hyperparameter tuning that looks ahead"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Preset {
    /// foresight's predictor (docs/benchmarks.md says how it was chosen).
    Default,
    /// The reference implementation's configuration (Domhan et al. 2015).
    Reference,
}

#[derive(Clone, Copy, ValueEnum)]
enum MetricArg {
    /// Larger is better (accuracy-like).
    Accuracy,
    /// Smaller is better (a loss).
    Loss,
}

#[derive(Subcommand)]
enum Command {
    /// Tune a training program in any language: each trial runs the study
    /// file's command with the trial's configuration, reads one line per
    /// epoch from its stdout (JSON, `key=value`, or a pattern), and stops
    /// the runs that will not beat the best (process group: SIGTERM, a
    /// grace period, SIGKILL). Ctrl-C stops every trial cleanly; the same
    /// command continues the study.
    #[command(after_long_help = concat!(
        "A complete study file (examples/command/study.toml):\n\n",
        include_str!("../../examples/command/study.toml")
    ))]
    Tune {
        /// The study file (TOML).
        #[arg(value_name = "STUDY_FILE")]
        file: PathBuf,
        #[command(flatten)]
        overrides: tune::Overrides,
    },
    /// Protocol P: predict the final value of logged curves from their
    /// first epochs, and score accuracy, calibration, stop decisions and speed.
    Predict {
        /// Curve set: JSON Lines (optionally .gz), a long CSV
        /// (trial,epoch,value,<hyperparameters>), or a study folder (its
        /// completed trials); repeat for several.
        #[arg(long, required = true)]
        curves: Vec<PathBuf>,
        /// Direction of a CSV's metric (JSON Lines carry their own).
        #[arg(long, value_enum)]
        metric: Option<MetricArg>,
        /// Fractions of each curve observed before predicting.
        #[arg(long, value_delimiter = ',', default_values_t = protocol::CUTOFFS.to_vec())]
        cutoffs: Vec<f64>,
        /// Curves selected per task.
        #[arg(long, default_value_t = 12)]
        per_task: usize,
        /// Predictor configuration.
        #[arg(long, value_enum, default_value = "default")]
        preset: Preset,
        /// MCMC steps per walker (overrides the preset).
        #[arg(long)]
        steps: Option<usize>,
        /// MCMC walkers (overrides the preset).
        #[arg(long)]
        walkers: Option<usize>,
        /// Burn-in steps (overrides the preset).
        #[arg(long)]
        burn_in: Option<usize>,
        /// Thinning of the kept steps (overrides the preset).
        #[arg(long)]
        thin: Option<usize>,
        /// Seed of the MCMC.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Print one JSON object (protocol P's format) instead of a table.
        #[arg(long)]
        json: bool,
        /// Also print every prediction (with --json: a "rows" array).
        #[arg(long)]
        rows: bool,
    },
    /// Protocol R: replay tuning runs on logged curves (simulated clock) and
    /// measure samplers and stopping policies side by side.
    Replay {
        /// Curve set: JSON Lines (optionally .gz), a long CSV
        /// (trial,epoch,value,<hyperparameters>), or a study folder (its
        /// completed trials); repeat for several.
        #[arg(long, required = true)]
        curves: Vec<PathBuf>,
        /// Direction of a CSV's metric (JSON Lines carry their own).
        #[arg(long, value_enum)]
        metric: Option<MetricArg>,
        /// Only these tasks (repeat); default: every task.
        #[arg(long)]
        task: Vec<String>,
        /// At most this many tasks per source, in file order.
        #[arg(long)]
        tasks_per_source: Option<usize>,
        /// Samplers, comma-separated: random, gp, gp-hedge, each with
        /// optional settings, e.g. `gp-hedge(eta=0.5)`.
        #[arg(long, default_value = "gp-hedge")]
        sampler: String,
        /// Stopping policies, comma-separated: none, median, asha,
        /// hyperband, lc, each with optional settings, e.g.
        /// `lc(threshold=0.01,min_epochs=6)` (`none` is always run too:
        /// speedups are measured against it).
        #[arg(long, default_value = "none,median,asha,hyperband,lc")]
        policy: String,
        /// Simulated parallel workers.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Seeds per (task, sampler, policy).
        #[arg(long, default_value_t = 10)]
        seeds: u64,
        /// Print one JSON object (protocol R's format).
        #[arg(long)]
        json: bool,
        /// Also write a markdown table and a regret plot into this folder,
        /// and keep every finished run in its runs.jsonl: a replay
        /// interrupted and started again with the same folder reuses them
        /// (delete runs.jsonl after changing foresight itself).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Continue a study killed before it finished. A study run by a program
    /// of yours is continued by running that program again with the same
    /// settings (it resumes from the study's storage without losing or
    /// repeating a completed trial). Its storage records the command line
    /// that created it: this shows it, and runs it only with --yes.
    Resume {
        /// The study's storage: its folder, or a PostgreSQL database
        /// (`postgres://user@host/db`, with --study).
        storage: String,
        /// The study's name in a database.
        #[arg(long)]
        study: Option<String>,
        /// Run the recorded command (after reading it: a study folder from
        /// someone else can hold any command).
        #[arg(long)]
        yes: bool,
    },
    /// Summarise a study (best configuration, how trials ended, epochs
    /// saved, metrics and attributes) and draw its learning curves and
    /// incumbent as SVG figures.
    Report {
        /// The study's storage: its folder, or a PostgreSQL database
        /// (`postgres://user@host/db`, with --study).
        storage: String,
        /// The study's name in a database.
        #[arg(long)]
        study: Option<String>,
        /// Where the figures go (default: the study folder's report/).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// List the studies of a PostgreSQL database: events, trials, running
    /// trials, and workers heard from in the last minute.
    Studies {
        /// The database: `postgres://user@host/db` (default: the
        /// environment variable FORESIGHT_STORAGE).
        #[arg(long, env = "FORESIGHT_STORAGE", hide_env_values = true)]
        storage: String,
    },
    /// Print what starts a study's workers on a cluster: a Slurm job-array
    /// script (`> job.sh; sbatch job.sh`) or a Kubernetes Indexed Job
    /// (`| kubectl apply -f -`), one `foresight tune` process per array task
    /// or pod, sharing a study in PostgreSQL (docs/clusters.md).
    Recipe(recipe::RecipeArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> foresight::Result<ExitCode> {
    if let Command::Tune { file, overrides } = cli.command {
        return tune::tune(&file, overrides);
    }
    run_other(cli).map(|()| ExitCode::SUCCESS)
}

/// The curves of `--curves`: JSON Lines files, long CSVs (whose direction
/// `--metric` gives) and study folders (their completed trials).
fn read_curves(
    paths: &[PathBuf],
    metric: Option<MetricArg>,
) -> foresight::Result<Vec<curveset::CurveRecord>> {
    let mut records = Vec::new();
    for path in paths {
        if path.is_dir() {
            let (study, _) = storage::open(&path.to_string_lossy(), None)?.load()?;
            records.extend(curveset::from_study(&study, &path.to_string_lossy())?);
        } else if path.extension().is_some_and(|e| e == "csv") {
            let m = metric.ok_or_else(|| {
                foresight::Error::invalid("metric", "a CSV needs --metric accuracy|loss")
            })?;
            records.extend(curveset::read_csv(path, matches!(m, MetricArg::Accuracy))?);
        } else {
            records.extend(curveset::read(path)?);
        }
    }
    Ok(records)
}

fn run_other(cli: Cli) -> foresight::Result<()> {
    match cli.command {
        Command::Tune { .. } => unreachable!("handled by run"),
        Command::Replay {
            curves,
            metric,
            task,
            tasks_per_source,
            sampler,
            policy,
            workers,
            seeds,
            json,
            out,
        } => {
            let records = read_curves(&curves, metric)?;
            let mut pools = replay::Pool::from_records(records)?;
            if !task.is_empty() {
                pools.retain(|p| task.contains(&p.task));
                if pools.is_empty() {
                    return Err(foresight::Error::invalid(
                        "task",
                        "no task of that name in the curves",
                    ));
                }
            }
            if let Some(n) = tasks_per_source {
                let mut kept: Vec<replay::Pool> = Vec::new();
                for p in pools {
                    if kept.iter().filter(|k| k.source == p.source).count() < n {
                        kept.push(p);
                    }
                }
                pools = kept;
            }
            let samplers = replay::samplers(&spec::split_list(&sampler))?;
            let policies = replay::policies(&spec::split_list(&policy))?;
            if workers == 0 || seeds == 0 {
                return Err(foresight::Error::invalid(
                    "replay",
                    "--workers and --seeds must be at least 1",
                ));
            }
            let total = pools.len() * samplers.len() * policies.len() * seeds as usize;
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} runs, {elapsed} elapsed, ETA {eta}",
                )
                .expect("valid template"),
            );
            let started = std::time::Instant::now();
            // With --out, every finished run is appended to runs.jsonl at
            // once, and runs already there are reused: an interrupted replay
            // resumes where it stopped.
            let (done, log) = match &out {
                Some(dir) => {
                    let path = dir.join("runs.jsonl");
                    let done = replay::read_runs(&path)?;
                    let io = |source| foresight::Error::Io {
                        path: path.clone(),
                        source,
                    };
                    std::fs::create_dir_all(dir).map_err(io)?;
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)
                        .map_err(io)?;
                    (done, Some(std::sync::Mutex::new((file, path))))
                }
                None => (Vec::new(), None),
            };
            let reused = std::sync::atomic::AtomicUsize::new(0);
            let failed = std::sync::Mutex::new(None);
            let runs = replay::run_all(
                &pools,
                &samplers,
                &policies,
                seeds,
                workers,
                &done,
                |run, new| {
                    bar.inc(1);
                    if !new {
                        reused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    } else if let Some(log) = &log {
                        use std::io::Write;
                        let mut guard = log.lock().unwrap_or_else(|e| e.into_inner());
                        let (file, path) = &mut *guard;
                        let line = format!("{}\n", serde_json::to_string(run).unwrap_or_default());
                        if let Err(source) = file.write_all(line.as_bytes()) {
                            failed
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(foresight::Error::Io {
                                    path: path.clone(),
                                    source,
                                });
                        }
                    }
                },
            )?;
            if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
                return Err(e);
            }
            let reused = reused.into_inner();
            if reused > 0 {
                eprintln!("{reused} runs reused from the --out folder's runs.jsonl");
            }
            bar.finish_and_clear();
            let summary = replay::summarise(&runs);
            if let Some(dir) = &out {
                for path in replay::write_outputs(&runs, &summary, dir)? {
                    eprintln!("wrote {}", path.display());
                }
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "runs": runs, "summary": summary })
                );
            } else {
                print!("{}", replay::summary_table(&summary));
                eprintln!(
                    "{} runs on {} tasks in {:.1} s",
                    runs.len(),
                    pools.len(),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Recipe(args) => {
            print!("{}", recipe::render(&args)?);
            Ok(())
        }
        Command::Studies { storage } => {
            let rows = foresight::storage::Postgres::studies(&storage)?;
            if rows.is_empty() {
                println!("no studies");
                return Ok(());
            }
            println!(
                "{:<24} {:<19} {:>8} {:>7} {:>8} {:>8}",
                "study", "created", "events", "trials", "running", "workers"
            );
            for r in rows {
                println!(
                    "{:<24} {:<19} {:>8} {:>7} {:>8} {:>8}",
                    r.name, r.created, r.events, r.trials, r.running, r.workers
                );
            }
            Ok(())
        }
        Command::Report {
            storage,
            study,
            out,
        } => {
            let mut store = storage::open(&storage, study.as_deref())?;
            let (study, events) = store.load()?;
            print!("{}", report::summary(&study));
            let out = match (out, store.folder()) {
                (Some(out), _) => out,
                (None, Some(dir)) => dir.join("report"),
                (None, None) => {
                    return Err(foresight::Error::invalid(
                        "report",
                        "this storage has no folder: give --out for the figures",
                    ));
                }
            };
            let trace = report::incumbent_trace(&events);
            for path in foresight::plot::study_figures(&study, &trace, &out)? {
                println!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Resume {
            storage,
            study: name,
            yes,
        } => {
            let mut store = storage::open(&storage, name.as_deref())?;
            let (study, _) = store.load()?;
            let running = study.running().count();
            let command = store.command()?.ok_or_else(|| {
                foresight::Error::invalid(
                    "resume",
                    format!(
                        "{} records no command; run the program that created the study \
                         again, with the same settings, to continue it",
                        store.describe()
                    ),
                )
            })?;
            eprintln!(
                "{}: {} trials so far ({running} unfinished); it was created by\n  \
                 (in {}) {}",
                store.describe(),
                study.trials.len(),
                command.cwd.display(),
                command.display()
            );
            if !yes {
                let study_flag = name.map_or(String::new(), |n| format!(" --study {n}"));
                eprintln!(
                    "to continue the study, run that command again yourself, or run \
                     `foresight resume {}{study_flag} --yes` to have it run",
                    foresight::study::hide_password(&storage)
                );
                return Err(foresight::Error::invalid(
                    "resume",
                    "not run without --yes (a study can hold any command)",
                ));
            }
            let (program, args) = command
                .argv
                .split_first()
                .ok_or_else(|| foresight::Error::invalid("command", "empty command"))?;
            let mut child = std::process::Command::new(program);
            child.args(args).current_dir(&command.cwd);
            if storage.contains("://") {
                // A study in a database: the command finds it there even if
                // it named it through the environment.
                child.env("FORESIGHT_STORAGE", &storage);
            }
            let status = child.status().map_err(|source| foresight::Error::Io {
                path: program.into(),
                source,
            })?;
            if status.success() {
                Ok(())
            } else {
                Err(foresight::Error::invalid(
                    "study",
                    format!("`{program}` exited with {status}"),
                ))
            }
        }
        Command::Predict {
            curves,
            metric,
            cutoffs,
            per_task,
            preset,
            steps,
            walkers,
            burn_in,
            thin,
            seed,
            json,
            rows: print_rows,
        } => {
            let mut config = match preset {
                Preset::Default => PredictorConfig::default(),
                Preset::Reference => PredictorConfig::reference(),
            };
            config.seed = seed;
            if let Some(s) = steps {
                config.steps = s;
            }
            if let Some(w) = walkers {
                config.walkers = w;
            }
            if let Some(b) = burn_in {
                config.burn_in = b;
            }
            if let Some(t) = thin {
                config.thin = t;
            }
            if cutoffs.iter().any(|c| !(*c > 0.0 && *c < 1.0)) {
                return Err(foresight::Error::invalid(
                    "cutoffs",
                    "each cutoff must be in (0, 1)",
                ));
            }
            let set = read_curves(&curves, metric)?;
            let cases = protocol::select(&set, per_task)?;
            let bar = ProgressBar::new((cases.len() * cutoffs.len()) as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} predictions, {elapsed} elapsed, ETA {eta}",
                )
                .expect("valid template"),
            );
            let rows = protocol::run(&cases, &cutoffs, &config, |done, _| {
                bar.set_position(done as u64)
            })?;
            bar.finish_and_clear();
            let summary = protocol::summarize(&rows);
            if json {
                let mut out = serde_json::json!({ "by_source_cutoff": summary });
                if print_rows {
                    out["rows"] = serde_json::to_value(&rows).expect("serialisable");
                }
                println!("{out}");
            } else {
                if print_rows {
                    for r in &rows {
                        println!(
                            "{} {} {} c={} n={} true={:.4} mean={:.4} [{:.4}, {:.4}] lpd={:.3} p={:.3} stop={} fam={} {:.3}s",
                            r.source,
                            r.task,
                            r.config_id,
                            r.cutoff,
                            r.n,
                            r.y_true,
                            r.mean,
                            r.q05,
                            r.q95,
                            r.log_density,
                            r.p_better,
                            r.stop,
                            r.families,
                            r.seconds
                        );
                    }
                }
                println!(
                    "{:<26} {:>6} {:>4} {:>8} {:>9} {:>9} {:>9} {:>6} {:>7} {:>8} {:>9}",
                    "source",
                    "cutoff",
                    "n",
                    "mae",
                    "med_err",
                    "mean_lpd",
                    "med_lpd",
                    "cov90",
                    "fstops",
                    "stop_w",
                    "med_s"
                );
                for s in &summary {
                    println!(
                        "{:<26} {:>6} {:>4} {:>8.4} {:>9.5} {:>9.3} {:>9.3} {:>6.3} {:>7} {:>8.3} {:>9.4}",
                        s.source,
                        s.cutoff,
                        s.n,
                        s.mae,
                        s.median_abs_err,
                        s.mean_log_density,
                        s.median_log_density,
                        s.coverage90,
                        format!("{}/{}", s.false_stops, s.true_better),
                        s.stopped_worse_frac,
                        s.median_seconds
                    );
                }
            }
            Ok(())
        }
    }
}
