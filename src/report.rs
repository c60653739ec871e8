//! The study report: what `foresight report STORAGE` shows.
//!
//! * [`summary`]: a plain-text summary of a [`Study`]: its settings, the
//!   best configuration, how the trials ended, the epochs early stopping
//!   saved, a table of all trials (with the last value of every metric
//!   they reported), their attributes and failures;
//! * [`epochs_by_outcome`]: where a study's epochs went — to trials that
//!   improved the incumbent, to other completed trials, to stopped ones;
//! * [`incumbent_trace`]: the exact steps of the incumbent, from the
//!   study's events in the order they happened ([`estimated_trace`] guesses
//!   them from the study alone). [`crate::plot`] draws the figures.
//!
//! ```no_run
//! use foresight::report;
//! use foresight::storage::{Journal, Storage};
//! use foresight::study::Study;
//!
//! let (study, events) = Journal::new("runs/toy").load()?;
//! print!("{}", report::summary(&study));
//! let trace = report::incumbent_trace(&events);
//! foresight::plot::study_figures(&study, &trace, "runs/toy/report".as_ref())?;
//! # Ok::<(), foresight::Error>(())
//! ```

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::observe::show_config;
use crate::study::{Event, Status, Study, TrialRecord};

/// A plain-text summary of a study: sampler, policy, objective and
/// horizon; the best configuration with its final score and trial number;
/// how many trials completed, were stopped, pruned, failed, diverged or
/// were cut; the epochs used against the epochs the same trials would have
/// used without early stopping; a table of the trials, by id; their
/// attributes; and why trials failed or pruned themselves.
pub fn summary(study: &Study) -> String {
    let h = &study.header;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "study: sampler {}, policy {}, objective {}, horizon {} epochs",
        h.sampler.name, h.policy.name, h.objective, h.horizon
    );
    if study.trials.is_empty() {
        s.push_str("no trials\n");
        return s;
    }
    match study.best() {
        Some(best) => {
            let score = best
                .scores
                .last()
                .copied()
                .or(study.incumbent())
                .unwrap_or(f64::NAN);
            let _ = writeln!(
                s,
                "best: trial {}, final score {}: {}",
                best.id,
                number(score),
                show_config(&best.config)
            );
        }
        None => s.push_str("best: no completed trial\n"),
    }
    let running = study.count(None);
    let _ = writeln!(
        s,
        "trials: {} ({} completed, {} stopped, {}{} failed, {} diverged, {} cut{})",
        study.trials.len(),
        study.count(Some(Status::Completed)),
        study.count(Some(Status::Stopped)),
        match study.count(Some(Status::Pruned)) {
            0 => String::new(),
            n => format!("{n} pruned, "),
        },
        study.count(Some(Status::Failed)),
        study.count(Some(Status::Diverged)),
        study.count(Some(Status::Cut)),
        if running > 0 {
            format!(", {running} unfinished")
        } else {
            String::new()
        }
    );
    let used = study.epochs_used;
    let without = study.epochs_without_stopping();
    let saved = without.saturating_sub(used);
    let fraction = if without > 0 {
        format!(" ({:.1}% saved)", 100.0 * saved as f64 / without as f64)
    } else {
        String::new()
    };
    let _ = writeln!(
        s,
        "epochs: {used} used, {without} without early stopping{fraction}"
    );
    let by = epochs_by_outcome(study, usize::MAX);
    let stopped = by.stopped();
    let _ = writeln!(
        s,
        "epochs by outcome: {} on {} trials that improved the incumbent, {} on {} other completed trials, {} on {} stopped trials{}{}",
        by.improving.epochs,
        by.improving.trials,
        by.completed.epochs,
        by.completed.trials,
        stopped.epochs,
        stopped.trials,
        by.median_stop()
            .map_or(String::new(), |e| format!(" (median stop after epoch {e})")),
        match by.other.trials {
            0 => String::new(),
            n => format!(
                ", {} on {n} pruned, failed, diverged or cut",
                by.other.epochs
            ),
        }
    );
    s.push('\n');
    s.push_str(&trial_table(study));
    let with_attrs: Vec<&TrialRecord> = study
        .trials
        .iter()
        .filter(|t| !t.attrs.is_empty())
        .collect();
    if !with_attrs.is_empty() {
        s.push_str("\nattributes:\n");
        for t in with_attrs {
            let attrs: Vec<String> = t.attrs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = writeln!(s, "  trial {}: {}", t.id, attrs.join(" "));
        }
    }
    for (status, title) in [(Status::Failed, "failures"), (Status::Pruned, "pruned")] {
        let trials: Vec<&TrialRecord> = study
            .trials
            .iter()
            .filter(|t| t.status == Some(status))
            .collect();
        if !trials.is_empty() {
            let _ = writeln!(s, "\n{title}:");
            for t in trials {
                let message = t.message.as_deref().unwrap_or("(no message)");
                let _ = writeln!(s, "  trial {}: {}", t.id, message.trim());
            }
        }
    }
    s
}

/// The table of trials, columns aligned: id, status, epochs, last score,
/// what the sampler was told, `P(better)` of the last prediction, and the
/// last value of every other metric the trials reported.
fn trial_table(study: &Study) -> String {
    let metrics: BTreeSet<&String> = study.trials.iter().flat_map(|t| t.metrics.keys()).collect();
    let mut head: Vec<String> = [
        "trial",
        "status",
        "epochs",
        "last score",
        "told",
        "P(better)",
    ]
    .map(String::from)
    .to_vec();
    head.extend(metrics.iter().map(|m| m.to_string()));
    // Right-aligned columns (numbers); the status is left-aligned.
    let right: Vec<bool> = (0..head.len()).map(|i| i != 1).collect();
    let mut trials: Vec<&TrialRecord> = study.trials.iter().collect();
    trials.sort_by_key(|t| t.id);
    let rows: Vec<Vec<String>> = trials
        .iter()
        .map(|t| {
            let told = match t.told {
                None => "-".to_string(),
                Some((v, var)) if var > 0.0 => format!("{} ± {}", number(v), number(var.sqrt())),
                Some((v, _)) => number(v),
            };
            let p = t
                .predictions
                .last()
                .and_then(|p| p.p_better)
                .map_or("-".to_string(), |p| format!("{p:.3}"));
            let mut row = vec![
                t.id.to_string(),
                status_name(t.status).to_string(),
                t.scores.len().to_string(),
                t.scores.last().map_or("-".to_string(), |&v| number(v)),
                told,
                p,
            ];
            row.extend(metrics.iter().map(|m| {
                t.metrics
                    .get(*m)
                    .and_then(|series| series.last())
                    .map_or("-".to_string(), |&(_, v)| number(v))
            }));
            row
        })
        .collect();
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right[i] {
                l.push_str(&" ".repeat(pad));
                l.push_str(cell);
            } else {
                l.push_str(cell);
                l.push_str(&" ".repeat(pad));
            }
        }
        s.push_str(l.trim_end());
        s.push('\n');
    };
    line(&head);
    for row in &rows {
        line(row);
    }
    s
}

/// A score for the table: four decimals, or scientific notation for very
/// large or very small magnitudes.
fn number(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

fn status_name(s: Option<Status>) -> &'static str {
    match s {
        Some(Status::Completed) => "completed",
        Some(Status::Stopped) => "stopped",
        Some(Status::Pruned) => "pruned",
        Some(Status::Failed) => "failed",
        Some(Status::Diverged) => "diverged",
        Some(Status::Cut) => "cut",
        None => "unfinished",
    }
}

/// Trials and the epochs of their curves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub trials: usize,
    pub epochs: usize,
}

impl Tally {
    fn add(&mut self, epochs: usize) {
        self.trials += 1;
        self.epochs += epochs;
    }
}

/// Where a study's epochs went ([`epochs_by_outcome`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochsByOutcome {
    /// Completed trials that set a new incumbent when they ended: epochs no
    /// stopping policy can save (a trial must finish to become the best).
    pub improving: Tally,
    /// Completed trials that did not: all but their first check's epochs
    /// are what a perfect stopping policy would have saved.
    pub completed: Tally,
    /// Pruned (by the trial itself), failed, diverged and cut trials.
    pub other: Tally,
    /// The epoch after which each trial the stopping policy stopped
    /// stopped, in the order they ended.
    pub stopped_after: Vec<usize>,
}

impl EpochsByOutcome {
    /// The stopped trials and their epochs.
    pub fn stopped(&self) -> Tally {
        Tally {
            trials: self.stopped_after.len(),
            epochs: self.stopped_after.iter().sum(),
        }
    }

    /// The median of [`EpochsByOutcome::stopped_after`] (the upper one of
    /// an even count); `None` without a stop.
    pub fn median_stop(&self) -> Option<usize> {
        let mut e = self.stopped_after.clone();
        e.sort_unstable();
        e.get(e.len() / 2).copied()
    }

    /// Adds another study's counts to these.
    pub fn merge(&mut self, other: &EpochsByOutcome) {
        for (a, b) in [
            (&mut self.improving, other.improving),
            (&mut self.completed, other.completed),
            (&mut self.other, other.other),
        ] {
            a.trials += b.trials;
            a.epochs += b.epochs;
        }
        self.stopped_after.extend(&other.stopped_after);
    }
}

/// Where a study's epochs went: the trials that had ended when the study
/// had used `until` epochs (`usize::MAX`: all that ended), taken in the
/// order they ended ([`Study::ends`]), each counted with the epochs of its
/// curve under what became of it (epochs lost to a crash and retrained are
/// counted once). A completed trial *improves* when its final score beats
/// every completed trial's that ended before it, as the study's incumbent
/// is defined. Trials still running are not counted.
///
/// This is the split the speedup of learning-curve stopping depends on:
/// improving epochs cannot be saved, the other completed trials' can (but
/// for the epochs before a policy's first check), and a stopped trial's
/// count says how early it was stopped.
pub fn epochs_by_outcome(study: &Study, until: usize) -> EpochsByOutcome {
    let objective = study.header.objective;
    let mut by = EpochsByOutcome::default();
    let mut incumbent: Option<f64> = None;
    for &(trial, used) in &study.ends {
        if used > until {
            break;
        }
        let Some(r) = study.trials.get(trial) else {
            continue;
        };
        let epochs = r.scores.len();
        match r.status {
            Some(Status::Completed) => match r.final_score().filter(|f| f.is_finite()) {
                Some(f) if incumbent.is_none_or(|i| objective.better(f, i)) => {
                    incumbent = Some(f);
                    by.improving.add(epochs);
                }
                _ => by.completed.add(epochs),
            },
            Some(Status::Stopped) => by.stopped_after.push(epochs),
            Some(_) => by.other.add(epochs),
            None => {}
        }
    }
    by
}

/// The steps of the incumbent over a study, from its events, header first
/// (as [`crate::storage::Storage::load`] returns them): one entry
/// `(epochs used so far, incumbent score)` for every trial end that set a
/// new incumbent, in the order they happened. Exact: the events are folded
/// into a [`Study`] one by one, so the incumbent and the epoch count are the
/// study's own (epochs lost to a crash count as used).
///
/// An end marked completed for a trial with no recorded score is skipped.
pub fn incumbent_trace(events: &[Event]) -> Vec<(usize, f64)> {
    let Some(Event::Study(header)) = events.first() else {
        return Vec::new();
    };
    let mut study = Study::new(header.clone());
    let mut trace: Vec<(usize, f64)> = Vec::new();
    for e in &events[1..] {
        if let Event::End {
            trial,
            status: Status::Completed,
            ..
        } = e
            && study.trials.get(*trial).is_none_or(|t| t.scores.is_empty())
        {
            continue;
        }
        study.apply(e);
        if let (Event::End { .. }, Some(v)) = (e, study.incumbent())
            && trace.last().is_none_or(|&(_, last)| last != v)
        {
            trace.push((study.epochs_used, v));
        }
    }
    trace
}

/// The incumbent's steps estimated from a [`Study`] alone, which does not
/// record the order in which trials ended: trials are taken in the order
/// they started, each ending after the epochs of all trials up to it. Exact
/// for a study with one worker and no crash; [`incumbent_trace`] is exact
/// always.
pub fn estimated_trace(study: &Study) -> Vec<(usize, f64)> {
    let mut trials: Vec<&TrialRecord> = study.trials.iter().collect();
    trials.sort_by_key(|t| t.id);
    let mut epochs = 0;
    let mut best: Option<f64> = None;
    let mut trace = Vec::new();
    for t in trials {
        epochs += t.scores.len();
        if t.status != Some(Status::Completed) {
            continue;
        }
        let Some(&f) = t.scores.last() else { continue };
        if f.is_finite() && best.is_none_or(|b| study.header.objective.better(f, b)) {
            best = Some(f);
            trace.push((epochs, f));
        }
    }
    trace
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::space::{Config, Value};
    use crate::study::{Header, Objective};

    pub(crate) fn header(objective: Objective) -> Header {
        Header {
            objective,
            ..crate::study::test_header()
        }
    }

    fn config(lr: f64) -> Config {
        let mut c = Config::new();
        c.insert("lr".into(), Value::Float(lr));
        c
    }

    pub(crate) fn start(trial: usize, t: f64) -> Event {
        Event::Start {
            trial,
            config: config(0.01 * (trial + 1) as f64),
            seed: trial as u64,
            owner: "w".into(),
            t,
        }
    }

    fn epoch(trial: usize, epoch: usize, value: Option<f64>, t: f64) -> Event {
        Event::Epoch {
            trial,
            epoch,
            value,
            metrics: Default::default(),
            attrs: Default::default(),
            t,
        }
    }

    pub(crate) fn epochs(trial: usize, scores: &[Option<f64>], t0: f64) -> Vec<Event> {
        scores
            .iter()
            .enumerate()
            .map(|(i, &value)| epoch(trial, i + 1, value, t0 + i as f64))
            .collect()
    }

    pub(crate) fn end(trial: usize, status: Status, value: Option<f64>, t: f64) -> Event {
        Event::End {
            trial,
            status,
            value,
            variance: value.map(|_| 0.0),
            message: (status == Status::Failed).then(|| "out of memory".to_string()),
            t,
        }
    }

    fn curve(n: usize, top: f64) -> Vec<Option<f64>> {
        (1..=n)
            .map(|e| Some(top * (1.0 - (-(e as f64) / 3.0).exp())))
            .collect()
    }

    fn prediction(trial: usize, epoch: usize, band: bool) -> Event {
        Event::Prediction {
            trial,
            epoch,
            p_better: Some(0.02),
            mean: Some(0.6),
            variance: Some(0.01),
            band: if band {
                (epoch + 1..=10)
                    .map(|e| (e, 0.4, 0.5 + 0.01 * e as f64, 0.7))
                    .collect()
            } else {
                Vec::new()
            },
            stop: true,
            error: None,
            t: 0.0,
        }
    }

    /// Trial 0 completes (0.8), trial 1 is stopped after 3 epochs (with or
    /// without a band), trial 2 completes better (0.9), trial 3 fails,
    /// trial 4 diverges (a NaN score).
    pub(crate) fn events(band: bool) -> Vec<Event> {
        let mut ev = vec![start(0, 0.0)];
        ev.extend(epochs(0, &curve(10, 0.8), 0.0));
        ev.push(end(
            0,
            Status::Completed,
            Some(0.8 * (1.0 - (-10.0f64 / 3.0).exp())),
            10.0,
        ));
        ev.push(start(1, 10.0));
        ev.extend(epochs(1, &curve(3, 0.5), 10.0));
        ev.push(prediction(1, 3, band));
        ev.push(end(1, Status::Stopped, Some(0.6), 13.0));
        ev.push(start(2, 13.0));
        ev.extend(epochs(2, &curve(10, 0.9), 13.0));
        ev.push(end(
            2,
            Status::Completed,
            Some(0.9 * (1.0 - (-10.0f64 / 3.0).exp())),
            23.0,
        ));
        ev.push(start(3, 23.0));
        ev.extend(epochs(3, &curve(2, 0.7), 23.0));
        ev.push(end(3, Status::Failed, None, 25.0));
        ev.push(start(4, 25.0));
        ev.extend(epochs(4, &[Some(0.3), None], 25.0));
        ev.push(end(4, Status::Diverged, Some(0.0), 27.0));
        ev
    }

    /// All trials failed or diverged; a third one still running.
    pub(crate) fn odd_events() -> Vec<Event> {
        let mut ev = vec![start(0, 0.0)];
        ev.extend(epochs(0, &[Some(0.1)], 0.0));
        ev.push(end(0, Status::Failed, None, 1.0));
        ev.push(start(1, 1.0));
        ev.extend(epochs(1, &[None], 1.0));
        ev.push(end(1, Status::Diverged, None, 2.0));
        ev.push(start(2, 2.0));
        ev
    }

    pub(crate) fn study(objective: Objective, events: &[Event]) -> Study {
        let mut s = Study::new(header(objective));
        for e in events {
            s.apply(e);
        }
        s
    }

    /// `events` after their header.
    fn with_header(objective: Objective, horizon: usize, events: Vec<Event>) -> Vec<Event> {
        let mut h = header(objective);
        h.horizon = horizon;
        let mut all = vec![Event::Study(h)];
        all.extend(events);
        all
    }

    #[test]
    fn summary_names_the_best_trial_and_the_counts() {
        let s = study(Objective::accuracy(), &events(true));
        let text = summary(&s);
        assert!(text.contains("sampler gp-hedge, policy lc"), "{text}");
        assert!(text.contains("objective maximize in [0, 1]"), "{text}");
        assert!(text.contains("horizon 10"), "{text}");
        assert!(text.contains("best: trial 2, final score 0.8679"), "{text}");
        assert!(text.contains("lr=3.000e-2"), "{text}");
        assert!(
            text.contains("5 (2 completed, 1 stopped, 1 failed, 1 diverged, 0 cut)"),
            "{text}"
        );
        // 10 + 3 + 10 + 2 + 2 used; the stopped trial would have used 7 more.
        assert!(
            text.contains("27 used, 34 without early stopping (20.6% saved)"),
            "{text}"
        );
        assert!(
            text.contains(
                "epochs by outcome: 20 on 2 trials that improved the incumbent, 0 on 0 other \
                 completed trials, 3 on 1 stopped trials (median stop after epoch 3), 4 on 2 \
                 pruned, failed, diverged or cut"
            ),
            "{text}"
        );
        assert!(text.contains("trial 3: out of memory"), "{text}");
        // The table: one line per trial, by id, columns aligned.
        let table: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("trial  "))
            .take(6)
            .collect();
        assert_eq!(table.len(), 6, "{text}");
        let col = table[0].find("status").unwrap();
        for (i, row) in table[1..].iter().enumerate() {
            assert!(row.trim_start().starts_with(&i.to_string()), "{row}");
            let status = &row[col..];
            assert!(
                ["completed", "stopped", "failed", "diverged"]
                    .iter()
                    .any(|s| status.starts_with(s)),
                "{row}"
            );
        }
        let stopped = table[2];
        assert!(stopped.contains("0.6000"), "{stopped}");
        assert!(stopped.ends_with("0.020"), "{stopped}");
        let diverged = table[5];
        assert!(diverged.contains("NaN"), "{diverged}");
    }

    #[test]
    fn epochs_are_split_by_what_became_of_their_trials() {
        // `events`, then trial 5 completes worse than the incumbent, trial 6
        // is stopped after 5 epochs and trial 7 is still running.
        let mut ev = events(false);
        ev.push(start(5, 27.0));
        ev.extend(epochs(5, &curve(10, 0.85), 27.0));
        ev.push(end(5, Status::Completed, None, 37.0));
        ev.push(start(6, 37.0));
        ev.extend(epochs(6, &curve(5, 0.4), 37.0));
        ev.push(end(6, Status::Stopped, None, 42.0));
        ev.push(start(7, 42.0));
        ev.extend(epochs(7, &curve(2, 0.9), 42.0));
        let s = study(Objective::accuracy(), &ev);
        let by = epochs_by_outcome(&s, usize::MAX);
        let tally = |trials, epochs| Tally { trials, epochs };
        assert_eq!(by.improving, tally(2, 20));
        assert_eq!(by.completed, tally(1, 10));
        assert_eq!(by.stopped(), tally(2, 8));
        assert_eq!(by.other, tally(2, 4));
        assert_eq!(by.stopped_after, vec![3, 5]);
        assert_eq!(by.median_stop(), Some(5));
        // The running trial's 2 epochs are the only ones not counted.
        let counted = [by.improving, by.completed, by.stopped(), by.other]
            .iter()
            .map(|t| t.epochs)
            .sum::<usize>();
        assert_eq!(counted + 2, s.epochs_used);
        // Up to the epochs used when trial 2 ended (23): trials 0-2 only.
        let early = epochs_by_outcome(&s, 23);
        assert_eq!(early.improving, tally(2, 20));
        assert_eq!(early.stopped(), tally(1, 3));
        assert_eq!(early.other, Tally::default());
        // A minimised objective: only the first completed trial improves.
        let loss = epochs_by_outcome(&study(Objective::minimize(), &ev), usize::MAX);
        assert_eq!(loss.improving, tally(1, 10));
        assert_eq!(loss.completed, tally(2, 20));
        let mut sum = by.clone();
        sum.merge(&loss);
        assert_eq!(sum.completed, tally(3, 30));
        assert_eq!(sum.stopped_after, vec![3, 5, 3, 5]);
    }

    #[test]
    fn metrics_attributes_and_pruning_are_shown() {
        let mut ev = vec![start(0, 0.0)];
        ev.push(Event::Epoch {
            trial: 0,
            epoch: 1,
            value: Some(0.4),
            metrics: [
                ("train_loss".to_string(), Some(1.25)),
                ("seconds".to_string(), Some(3.5)),
            ]
            .into(),
            attrs: [("device".to_string(), serde_json::json!("cuda:1"))].into(),
            t: 1.0,
        });
        ev.push(Event::End {
            trial: 0,
            status: Status::Pruned,
            value: Some(0.4),
            variance: Some(0.0),
            message: Some("loss exploded".into()),
            t: 1.0,
        });
        let s = study(Objective::accuracy(), &ev);
        let text = summary(&s);
        let head = text.lines().find(|l| l.starts_with("trial  ")).unwrap();
        assert!(
            head.contains("seconds") && head.contains("train_loss"),
            "{text}"
        );
        assert!(text.contains("1.2500"), "{text}");
        assert!(text.contains("device=\"cuda:1\""), "{text}");
        assert!(text.contains("1 pruned"), "{text}");
        assert!(text.contains("pruned:\n  trial 0: loss exploded"), "{text}");
    }

    #[test]
    fn table_columns_line_up() {
        let s = study(Objective::accuracy(), &events(true));
        let text = trial_table(&s);
        let lines: Vec<&str> = text.lines().collect();
        // Every right-aligned "epochs" cell ends under the end of its header.
        let end = lines[0].find("epochs").unwrap() + "epochs".len();
        for l in &lines[1..] {
            assert!(l.as_bytes()[end - 1].is_ascii_digit(), "{l}");
            assert_eq!(l.as_bytes()[end], b' ', "{l}");
        }
    }

    #[test]
    fn incumbent_trace_gives_the_steps() {
        let ev = with_header(Objective::accuracy(), 10, events(true));
        let trace = incumbent_trace(&ev);
        let f = |top: f64| top * (1.0 - (-10.0f64 / 3.0).exp());
        assert_eq!(trace, vec![(10, f(0.8)), (23, f(0.9))]);
        // The estimate from the study alone agrees here (one worker).
        assert_eq!(
            estimated_trace(&study(Objective::accuracy(), &events(true))),
            trace
        );

        // Interleaved trials (two workers): the order of ends decides.
        let mut ev = vec![start(0, 0.0), start(1, 0.0)];
        for e in 1..=4 {
            for (trial, top) in [(0, 0.5), (1, 0.9)] {
                ev.push(epoch(trial, e, Some(top * e as f64 / 4.0), e as f64));
            }
        }
        ev.push(end(1, Status::Completed, Some(0.9), 4.0));
        ev.push(end(0, Status::Completed, Some(0.5), 4.0));
        assert_eq!(
            incumbent_trace(&with_header(Objective::accuracy(), 4, ev)),
            vec![(8, 0.9)]
        );

        // Loss: lower is better.
        let mut ev = vec![start(0, 0.0)];
        ev.extend(epochs(0, &[Some(3.0), Some(2.0)], 0.0));
        ev.push(end(0, Status::Completed, Some(2.0), 2.0));
        ev.push(start(1, 2.0));
        ev.extend(epochs(1, &[Some(3.0), Some(2.5)], 2.0));
        ev.push(end(1, Status::Completed, Some(2.5), 4.0));
        ev.push(start(2, 4.0));
        ev.extend(epochs(2, &[Some(2.0), Some(1.0)], 4.0));
        ev.push(end(2, Status::Completed, Some(1.0), 6.0));
        assert_eq!(
            incumbent_trace(&with_header(Objective::loss(), 2, ev)),
            vec![(2, 2.0), (6, 1.0)]
        );

        // A completed end without any score is skipped, not a panic.
        let ev = vec![start(0, 0.0), end(0, Status::Completed, Some(1.0), 0.0)];
        assert!(incumbent_trace(&with_header(Objective::loss(), 2, ev)).is_empty());
        assert!(incumbent_trace(&[]).is_empty());
    }

    #[test]
    fn an_empty_or_odd_study_is_reported() {
        let s = Study::new(header(Objective::accuracy()));
        assert!(summary(&s).contains("no trials"));
        let s = study(Objective::accuracy(), &odd_events());
        let text = summary(&s);
        assert!(text.contains("no completed trial"), "{text}");
        assert!(text.contains("1 unfinished"), "{text}");
    }
}
