//! What a running study shows on the terminal: an [`Observer`].
//!
//! * [`Output::Bars`]: a bar for the budget (with an ETA) and one line per
//!   running trial (epoch and current score), with a line printed above them
//!   for every notable event: a stop (with the prediction behind it), a
//!   failure, a new incumbent. Without a terminal on stderr, or without the
//!   `bars` feature (indicatif), the same lines are printed plainly.
//! * [`Output::Json`]: every event as one JSON line on stdout.
//! * [`Output::Quiet`] shows nothing.

use super::{Flow, Observer};
use crate::space::{Config, Value};
use crate::study::{Event, Status, Study};

/// What a study shows while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Bars,
    Json,
    Quiet,
}

/// What the budget bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Epochs used, out of this many.
    Epochs(u64),
    /// Seconds elapsed, out of this many.
    Seconds(u64),
}

/// The terminal display of one study.
pub struct Progress {
    output: Output,
    measure: Option<Measure>,
    bars: bars::Bars,
}

impl Progress {
    /// A display for a study whose runs last `horizon` epochs, with a
    /// budget bar counting `measure` (none without a budget).
    pub fn new(output: Output, horizon: usize, measure: Option<Measure>) -> Progress {
        Progress {
            bars: bars::Bars::new(output == Output::Bars, horizon, measure),
            output,
            measure,
        }
    }

    /// A line above the bars (or on stderr without them).
    fn say(&self, line: String) {
        if self.output == Output::Bars {
            self.bars.println(line);
        }
    }

    fn advance(&self, study: &Study) {
        let pos = match self.measure {
            Some(Measure::Epochs(_)) => study.epochs_used as u64,
            Some(Measure::Seconds(_)) => study.elapsed as u64,
            None => return,
        };
        let best = study
            .incumbent()
            .map_or("no incumbent yet".to_string(), |v| {
                format!("incumbent {v:.4}")
            });
        self.bars.main(
            pos,
            format!(
                "{best} | trials: {} completed, {} stopped, {} failed",
                study.count(Some(Status::Completed)),
                study.count(Some(Status::Stopped)) + study.count(Some(Status::Pruned)),
                study.count(Some(Status::Failed)) + study.count(Some(Status::Diverged)),
            ),
        );
    }

    /// The line for a trial's end.
    fn end_line(study: &Study, trial: usize, status: Status, message: Option<&str>) -> String {
        let r = &study.trials[trial];
        let n = r.scores.len();
        let last = r.scores.last().copied().unwrap_or(f64::NAN);
        match status {
            Status::Completed => {
                let best = study.best().map(|b| b.id) == Some(trial);
                format!(
                    "trial {trial} completed: {last:.4}{}",
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
                format!("trial {trial} stopped after epoch {n}: score {last:.4}{why}")
            }
            Status::Pruned => format!(
                "trial {trial} pruned itself after epoch {n}: {}",
                message.unwrap_or("")
            ),
            Status::Failed => format!(
                "trial {trial} failed after {n} epochs: {}",
                message.unwrap_or("")
            ),
            Status::Diverged => format!("trial {trial} diverged at epoch {n}"),
            Status::Cut => format!("trial {trial} cut off after {n} epochs"),
        }
    }
}

impl Observer for Progress {
    fn on_open(&mut self, study: &Study) {
        if !study.trials.is_empty() {
            self.say(format!(
                "resuming the study: {} trials so far ({} completed, {} stopped), {} epochs used",
                study.trials.len(),
                study.count(Some(Status::Completed)),
                study.count(Some(Status::Stopped)),
                study.epochs_used
            ));
        }
        self.advance(study);
    }

    fn on_event(&mut self, event: &Event, study: &Study) -> Flow {
        match self.output {
            Output::Quiet => return Flow::Continue,
            Output::Json => {
                if let Ok(line) = serde_json::to_string(event) {
                    println!("{line}");
                }
                return Flow::Continue;
            }
            Output::Bars => {}
        }
        match event {
            Event::Start { trial, config, .. } => self.bars.add(*trial, show_config(config)),
            Event::Epoch {
                trial,
                epoch,
                value,
                ..
            } => {
                let v = value.map_or("NaN".to_string(), |v| format!("{v:.4}"));
                self.bars.set(*trial, *epoch as u64, format!("score {v}"));
                self.advance(study);
            }
            Event::Prediction {
                trial,
                epoch,
                error: Some(e),
                ..
            } => self.say(format!(
                "trial {trial}: the assessment after epoch {epoch} failed ({e}); it is assessed \
                 again at its next check"
            )),
            Event::Takeover { trial, from, .. } => self.say(format!(
                "trial {trial}: its worker {from} is gone; running it again here"
            )),
            Event::End {
                trial,
                status,
                message,
                ..
            } => {
                self.bars.remove(*trial);
                if *trial < study.trials.len() {
                    self.say(Self::end_line(study, *trial, *status, message.as_deref()));
                }
                self.advance(study);
            }
            _ => {}
        }
        Flow::Continue
    }

    fn on_finish(&mut self, study: &Study) {
        self.bars.clear();
        if self.output == Output::Bars {
            let without = study.epochs_without_stopping();
            let saved = without - study.epochs_used.min(without);
            self.say(format!(
                "study done: {} trials ({} completed, {} stopped, {} failed or diverged), {} epochs used, {} saved by stopping",
                study.trials.len(),
                study.count(Some(Status::Completed)),
                study.count(Some(Status::Stopped)) + study.count(Some(Status::Pruned)),
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

/// Progress bars with indicatif.
#[cfg(feature = "bars")]
mod bars {
    use std::collections::HashMap;
    use std::io::IsTerminal;
    use std::time::Duration;

    use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

    use super::Measure;

    pub(super) struct Bars {
        /// Drawing bars (a terminal, and bars asked for).
        live: bool,
        horizon: usize,
        multi: MultiProgress,
        main: Option<ProgressBar>,
        trials: HashMap<usize, ProgressBar>,
    }

    impl Bars {
        pub(super) fn new(wanted: bool, horizon: usize, measure: Option<Measure>) -> Bars {
            let live = wanted && std::io::stderr().is_terminal();
            let multi = if live {
                MultiProgress::new()
            } else {
                MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
            };
            let main = live.then(|| {
                let (len, unit) = match measure {
                    Some(Measure::Epochs(e)) => (e, "epochs"),
                    Some(Measure::Seconds(s)) => (s, "s"),
                    None => (0, ""),
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
            Bars {
                live,
                horizon,
                multi,
                main,
                trials: HashMap::new(),
            }
        }

        pub(super) fn println(&self, line: String) {
            if self.live {
                let _ = self.multi.println(line);
            } else {
                eprintln!("{line}");
            }
        }

        pub(super) fn main(&self, pos: u64, message: String) {
            if let Some(m) = &self.main {
                m.set_position(pos);
                m.set_message(message);
            }
        }

        pub(super) fn add(&mut self, trial: usize, message: String) {
            if !self.live {
                return;
            }
            let bar = self.multi.add(ProgressBar::new(self.horizon as u64));
            bar.set_style(
                ProgressStyle::with_template("  trial {prefix:>4} [{bar:20}] {pos:>3}/{len} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(trial.to_string());
            bar.set_message(message);
            self.trials.insert(trial, bar);
        }

        pub(super) fn set(&self, trial: usize, pos: u64, message: String) {
            if let Some(bar) = self.trials.get(&trial) {
                bar.set_position(pos);
                bar.set_message(message);
            }
        }

        pub(super) fn remove(&mut self, trial: usize) {
            if let Some(bar) = self.trials.remove(&trial) {
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }

        pub(super) fn clear(&mut self) {
            for (_, bar) in self.trials.drain() {
                bar.finish_and_clear();
            }
            if let Some(main) = self.main.take() {
                main.finish_and_clear();
            }
        }
    }
}

/// Plain lines on stderr (built without the `bars` feature).
#[cfg(not(feature = "bars"))]
mod bars {
    use super::Measure;

    pub(super) struct Bars;

    impl Bars {
        pub(super) fn new(_wanted: bool, _horizon: usize, _measure: Option<Measure>) -> Bars {
            Bars
        }
        pub(super) fn println(&self, line: String) {
            eprintln!("{line}");
        }
        pub(super) fn main(&self, _pos: u64, _message: String) {}
        pub(super) fn add(&mut self, _trial: usize, _message: String) {}
        pub(super) fn set(&self, _trial: usize, _pos: u64, _message: String) {}
        pub(super) fn remove(&mut self, _trial: usize) {}
        pub(super) fn clear(&mut self) {}
    }
}
