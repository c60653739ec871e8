//! The simulated-clock executor, which replay of logged curves uses: one
//! epoch takes one unit of time on one of `W` virtual workers; assessments
//! run inline and take no time, so a stop applies at the epoch boundary
//! where it was asked for. Deterministic: the same study, seed and
//! trainables give the same events.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use super::controller::{Controller, Directive, panic_message};
use super::{Failure, Interrupt, guarded};
use crate::error::{Error, Result};
use crate::space::Config;
use crate::trial::{Trainable, TrialContext, TrialError};

pub(super) fn run<T, F>(
    ctl: &mut Controller,
    build: &F,
    workers: usize,
    interrupt: Option<&Interrupt>,
) -> Result<()>
where
    T: Trainable,
    F: Fn(&Config, &TrialContext) -> std::result::Result<T, TrialError>,
{
    struct Slot<T> {
        time: f64,
        trial: Option<(usize, T, usize)>,
    }
    let horizon = ctl.study.header.horizon;
    let start_time = ctl.now;
    let mut slots: Vec<Slot<T>> = (0..workers)
        .map(|_| Slot {
            time: start_time,
            trial: None,
        })
        .collect();
    // Trials a crash interrupted run again from scratch (no checkpoints
    // under the simulated clock).
    let mut queue = ctl.orphans(usize::MAX)?;
    queue.reverse();
    loop {
        // Fill idle workers.
        for (w, slot) in slots.iter_mut().enumerate() {
            while slot.trial.is_none() {
                ctl.now = slot.time;
                let a = match queue.pop() {
                    Some(a) => {
                        ctl.restarted(a.id, 0)?;
                        a
                    }
                    None => match ctl.start()? {
                        Some(a) => a,
                        None => break,
                    },
                };
                let ctx = TrialContext {
                    trial: a.id,
                    seed: a.seed,
                    horizon,
                    worker: w,
                    threads: 1,
                    time_limit: None,
                    checkpoint_dir: PathBuf::new(),
                };
                match guarded(|| build(&a.config, &ctx)) {
                    Ok(m) => slot.trial = Some((a.id, m, 0)),
                    Err(Failure::Error(m)) => ctl.failed(a.id, m)?,
                    Err(Failure::Pruned(r)) => ctl.pruned(a.id, r)?,
                }
            }
        }
        if interrupt.is_some_and(|i| i.is_interrupted()) {
            return Err(Error::Interrupted);
        }
        // The busy worker whose epoch ends first.
        let Some(w) = (0..workers)
            .filter(|&w| slots[w].trial.is_some())
            .min_by(|&a, &b| slots[a].time.total_cmp(&slots[b].time))
        else {
            return Ok(());
        };
        let slot = &mut slots[w];
        slot.time += 1.0;
        ctl.now = slot.time;
        let (id, model, epoch) = slot.trial.as_mut().expect("busy");
        let id = *id;
        let report = match guarded(|| model.train_epoch().map(Into::into)) {
            Ok(r) => r,
            Err(f) => {
                match f {
                    Failure::Error(m) => ctl.failed(id, m)?,
                    Failure::Pruned(r) => ctl.pruned(id, r)?,
                }
                slot.trial = None;
                continue;
            }
        };
        *epoch += 1;
        let (mut directive, job) = ctl.epoch(id, *epoch, report)?;
        if let Some(job) = job {
            // A panicking assessment is recorded as failed, never a crash
            // of the replay.
            let result =
                catch_unwind(AssertUnwindSafe(job)).unwrap_or_else(|p| Err(panic_message(p)));
            if ctl.assessed(id, *epoch, result)? && ctl.apply_stop(id)? {
                directive = Directive::End;
            }
        }
        if directive == Directive::End {
            slot.trial = None;
        }
        if !ctl.budget_left() {
            for s in slots.iter_mut() {
                if let Some((id, _, _)) = s.trial.take() {
                    ctl.cut(id)?;
                }
            }
            return Ok(());
        }
    }
}
