use foresight::acquisition::Acquisition;
use foresight::sampler::*;
use foresight::space::{Config, Space};
fn branin(c: &Config) -> f64 {
    let (x1, x2) = (c["x1"].as_f64(), c["x2"].as_f64());
    let pi = std::f64::consts::PI;
    let (b, cc, r, s, t) = (5.1 / (4.0 * pi * pi), 5.0 / pi, 6.0, 10.0, 1.0 / (8.0 * pi));
    (x2 - b * x1 * x1 + cc * x1 - r).powi(2) + s * (1.0 - t) * x1.cos() + s
}
fn main() {
    let space = Space::builder().float("x1", -5.0, 10.0, false).float("x2", 0.0, 15.0, false).build().unwrap();
    for arms in [vec![Acquisition::Ei], vec![Acquisition::Pi], vec![Acquisition::Ucb], vec![Acquisition::Ucb, Acquisition::Pi]] {
        let mut regrets = vec![];
        for seed in 0..5 {
            let mut s = GpSampler::new(space.clone(), GpSettings { arms: arms.clone(), seed, ..GpSettings::default() }).unwrap();
            let mut best = f64::INFINITY;
            for _ in 0..30 { let c = s.ask(&[]).unwrap(); let y = branin(&c); best = best.min(y); s.tell(&c, y, 0.0).unwrap(); }
            regrets.push(best - 0.397887);
        }
        println!("{:?}: {:?}", arms, regrets.iter().map(|r| format!("{:.4}", r)).collect::<Vec<_>>());
    }
}
