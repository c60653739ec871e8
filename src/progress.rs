//! What a running study shows on the terminal.
//!
//! * [`Output::Bars`]: a bar for the budget (with an ETA) and one line per
//!   running trial (epoch and current score), with a line printed above them
//!   for every notable event: a stop (with the prediction behind it), a
//!   failure, a new incumbent. When stderr is not a terminal the same lines
//!   are printed plainly, without bars.
//! * [`Output::Json`]: every journal event as one JSON line on stdout.
//! * [`Output::Quiet`] shows nothing.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::journal::{Event, Status};
use crate::space::{Config, Value};
use crate::tuner::{Budget, Study};

/// What a study shows while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Bars,
    Json,
    Quiet,
}

/// The terminal display of one study.
pub(crate) struct Progress {
    output: Output,
    horizon: usize,
    multi: MultiProgress,
    main: Option<ProgressBar>,
    trials: HashMap<usize, ProgressBar>,
    terminal: bool,
    budget: Budget,
}

impl Progress {
    pub(crate) fn new(output: Output, budget: Budget, horizon: usize) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let multi = if output == Output::Bars && terminal {
            MultiProgress::new()
        } else {
            MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
        };
        let main = (output == Output::Bars && terminal).then(|| {
            let (len, unit) = match (budget.epochs, budget.trials, budget.wall) {
                (Some(e), _, _) => (e as u64, "epochs"),
                (None, Some(t), _) => ((t * horizon) as u64, "epochs (trials × horizon)"),
                (None, None, Some(w)) => (w.as_secs(), "s"),
                _ => (0, ""),
            };
            let bar = multi.add(ProgressBar::new(len));
            bar.set_style(
                ProgressStyle::with_template(&format!(
                    "{{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {unit}, ETA {{eta}}  {{msg}}"
                ))
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress {
            output,
            horizon,
            multi,
            main,
            trials: HashMap::new(),
            terminal,
            budget,
        }
    }

    /// A line above the bars (or on stderr without a terminal).
    fn say(&self, line: String) {
        if self.output != Output::Bars {
            return;
        }
        if self.terminal {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }

    /// Shown once when a study is resumed from its journal.
    pub(crate) fn resumed(&mut self, study: &Study) {
        self.say(format!(
            "resuming the study: {} trials so far ({} completed, {} stopped), {} epochs used",
            study.trials.len(),
            study.count(Some(Status::Completed)),
            study.count(Some(Status::Stopped)),
            study.epochs_used
        ));
        self.advance(study);
    }

    pub(crate) fn on_event(&mut self, event: &Event, study: &Study) {
        match self.output {
            Output::Quiet => return,
            Output::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    println!("{line}");
                }
                return;
            }
            Output::Bars => {}
        }
        match event {
            Event::Start { trial, config, .. } if self.terminal => {
                let bar = self.multi.add(ProgressBar::new(self.horizon as u64));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  trial {prefix:>4} [{bar:20}] {pos:>3}/{len} {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(trial.to_string());
                bar.set_message(show_config(config));
                self.trials.insert(*trial, bar);
            }
            Event::Epoch {
                trial,
                epoch,
                value,
                ..
            } => {
                if let Some(bar) = self.trials.get(trial) {
                    bar.set_position(*epoch as u64);
                    let v = value.map_or("NaN".to_string(), |v| format!("{v:.4}"));
                    bar.set_message(format!("score {v}"));
                }
                self.advance(study);
            }
            Event::End {
                trial,
                status,
                message,
                ..
            } => {
                if let Some(bar) = self.trials.remove(trial) {
                    bar.finish_and_clear();
                    self.multi.remove(&bar);
                }
                let r = &study.trials[*trial];
                let n = r.scores.len();
                let line = match status {
                    Status::Completed => {
                        let best = study.best().map(|b| b.id) == Some(*trial);
                        format!(
                            "trial {trial} completed: {:.4}{}",
                            r.scores[n - 1],
                            if best { "  (new incumbent)" } else { "" }
                        )
                    }
                    Status::Stopped => {
                        let why = match r.predictions.last() {
                            Some(p) if p.stop => format!(
                                ", P(beats incumbent) = {:.3}, predicted final {:.4} ± {:.4}",
                                p.p_better.unwrap_or(f64::NAN),
                                p.mean.unwrap_or(f64::NAN),
                                p.variance.unwrap_or(f64::NAN).sqrt()
                            ),
                            _ => String::new(),
                        };
                        format!(
                            "trial {trial} stopped after epoch {n}: score {:.4}{why}",
                            r.scores.last().copied().unwrap_or(f64::NAN)
                        )
                    }
                    Status::Failed => format!(
                        "trial {trial} failed after {n} epochs: {}",
                        message.as_deref().unwrap_or("")
                    ),
                    Status::Diverged => format!("trial {trial} diverged at epoch {n}"),
                    Status::Cut => format!("trial {trial} cut off by the budget after {n} epochs"),
                };
                self.say(line);
                self.advance(study);
            }
            _ => {}
        }
    }

    /// Updates the budget bar.
    fn advance(&self, study: &Study) {
        let Some(main) = &self.main else { return };
        let pos = match (self.budget.epochs, self.budget.trials, self.budget.wall) {
            (Some(_), _, _) | (None, Some(_), _) => study.epochs_used as u64,
            _ => study.elapsed as u64,
        };
        main.set_position(pos);
        let best = study
            .incumbent()
            .map_or("no incumbent yet".to_string(), |v| {
                format!("incumbent {v:.4}")
            });
        main.set_message(format!(
            "{best} | trials: {} completed, {} stopped, {} failed",
            study.count(Some(Status::Completed)),
            study.count(Some(Status::Stopped)),
            study.count(Some(Status::Failed)) + study.count(Some(Status::Diverged)),
        ));
    }

    pub(crate) fn finish(&mut self, study: &Study) {
        for (_, bar) in self.trials.drain() {
            bar.finish_and_clear();
        }
        if let Some(main) = self.main.take() {
            main.finish_and_clear();
        }
        if self.output == Output::Bars {
            let saved = study.epochs_without_stopping()
                - study.epochs_used.min(study.epochs_without_stopping());
            self.say(format!(
                "study done: {} trials ({} completed, {} stopped, {} failed or diverged), {} epochs used, {} saved by stopping",
                study.trials.len(),
                study.count(Some(Status::Completed)),
                study.count(Some(Status::Stopped)),
                study.count(Some(Status::Failed)) + study.count(Some(Status::Diverged)),
                study.epochs_used,
                saved
            ));
        }
    }
}

/// A configuration in one short line.
pub fn show_config(config: &Config) -> String {
    config
        .iter()
        .map(|(k, v)| match v {
            Value::Float(f) => format!("{k}={f:.3e}"),
            Value::Int(i) => format!("{k}={i}"),
            Value::Str(s) => format!("{k}={s}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}
