//! "The argon2 ceiling": how many logins per second this machine could verify at best.
//!
//! Hashes one password with Directus's defaults (argon2id, m=65536 KiB, t=3, p=4, 32-byte
//! output) and times N sequential verifications with the call the server uses
//! (`gatehouse::password::verify_phc`: parameters read from the PHC string, argon2's working
//! memory reused from one verification to the next, as the server reuses it while logins
//! keep coming). ceiling = cores ÷ the fastest of those verifications: noise on a shared
//! machine only ever adds time, so the minimum is the best estimate of one verification's
//! cost, and the ceiling stays an upper bound (the median is printed too).
//!
//! With `--parallel`, also runs one verification loop per core at once and reports the
//! aggregate rate: memory-bandwidth contention between simultaneous 64 MiB hashes shows up
//! there, and it is the realistic best a server could reach on this machine.
//!
//! Output: a human summary and one `RESULT key=value …` line.
//!
//! usage: argon2_ceiling [--iterations 5] [--parallel] [--cores N]

use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use gatehouse::password::verify_phc;

fn verify_once(phc: &str, password: &[u8], memory: &mut Vec<Block>) -> Duration {
    let t = Instant::now();
    let hash = PasswordHash::new(phc).expect("own PHC string parses");
    let ok = verify_phc(&hash, password, memory);
    let d = t.elapsed();
    assert!(ok, "verification of the benchmark hash failed");
    d
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let mut iterations: usize = 5;
    let mut parallel = false;
    let mut cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--iterations" | "-n" => {
                iterations = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5)
                    .clamp(1, 100)
            }
            "--parallel" => parallel = true,
            "--cores" => {
                cores = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(cores)
                    .clamp(1, 256)
            }
            _ => {
                eprintln!("usage: argon2_ceiling [--iterations 5] [--parallel] [--cores N]");
                std::process::exit(2);
            }
        }
    }

    let password = b"bench-password-0123456789";
    let params =
        Params::new(65536, 3, 4, Some(32)).expect("Directus's argon2 parameters are valid");
    let t = Instant::now();
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let phc = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password, &salt)
        .expect("hashing works")
        .to_string();
    let hash_ms = t.elapsed().as_secs_f64() * 1e3;

    let mut memory = Vec::new();
    verify_once(&phc, password, &mut memory); // the server's buffer is already there too
    let mut times: Vec<f64> = (0..iterations)
        .map(|_| verify_once(&phc, password, &mut memory).as_secs_f64())
        .collect();
    drop(memory);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let each: Vec<String> = times.iter().map(|t| format!("{:.1}", t * 1e3)).collect();
    let med = median(&mut times);
    let ceiling = cores as f64 / min;

    println!(
        "argon2 ceiling: argon2id m=65536 t=3 p=4 (Directus defaults), {}",
        &phc[..phc.find("$v=").map_or(0, |i| i)]
    );
    println!("  hash once       {hash_ms:.1} ms");
    println!("  verify x{iterations}      {} ms", each.join(", "));
    println!(
        "  verify median   {:.1} ms (mean {:.1}, min {:.1})",
        med * 1e3,
        mean * 1e3,
        min * 1e3
    );
    println!("  cores           {cores}");
    println!("  ceiling         {ceiling:.2} logins/s  (= cores / fastest verify; {:.2} with the median)", cores as f64 / med);

    let mut par_rps = f64::NAN;
    if parallel {
        let per_thread = iterations.max(3);
        let t = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..cores {
                s.spawn(|| {
                    let mut memory = Vec::new();
                    for _ in 0..per_thread {
                        verify_once(&phc, password, &mut memory);
                    }
                });
            }
        });
        par_rps = (cores * per_thread) as f64 / t.elapsed().as_secs_f64();
        println!("  parallel        {par_rps:.2} verifications/s with {cores} threads at once ({per_thread} each)");
    }
    println!(
        "RESULT verify_ms={:.2} verify_median_ms={:.2} verify_mean_ms={:.2} verify_min_ms={:.2} hash_ms={hash_ms:.2} cores={cores} ceiling_rps={ceiling:.3} parallel_rps={par_rps:.3}",
        min * 1e3,
        med * 1e3,
        mean * 1e3,
        min * 1e3
    );
}
