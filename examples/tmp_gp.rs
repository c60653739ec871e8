use foresight::gp::Gp;
use rand::{RngExt, SeedableRng};
fn main() {
    for n in [50usize, 200] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let x: Vec<Vec<f64>> = (0..n).map(|_| (0..6).map(|_| rng.random::<f64>()).collect()).collect();
        let y: Vec<f64> = x.iter().map(|p| p.iter().enumerate().map(|(i, v)| (v - 0.3).powi(2) * (i + 1) as f64).sum::<f64>().sin()).collect();
        let t = std::time::Instant::now();
        let gp = Gp::fit(&x, &y, &vec![0.0; n], None).unwrap();
        let t1 = t.elapsed();
        let h = gp.hyperparameters().clone();
        let t = std::time::Instant::now();
        let gp2 = Gp::fit(&x, &y, &vec![0.0; n], Some(&h)).unwrap();
        let t2 = t.elapsed();
        let t = std::time::Instant::now();
        let mut s = 0.0;
        for i in 0..1000 { let p: Vec<f64> = (0..6).map(|j| ((i * 7 + j * 13) % 100) as f64 / 100.0).collect(); s += gp2.predict(&p).1; }
        let t3 = t.elapsed();
        println!("n={n}: cold fit {:?}, warm fit {:?}, 1000 predicts {:?} {s:.3} {:?}", t1, t2, t3, gp.hyperparameters());
    }
}
