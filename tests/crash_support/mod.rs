//! What the SIGKILL crash tests share: a child process running one of the test binary's ignored
//! helper tests, and deterministic kill delays.
#![allow(dead_code)] // each test binary uses a different part

use std::ffi::OsStr;
use std::process::{Child, Command, Stdio};

/// Starts this test binary again, running only the ignored helper test `test` with `env` set;
/// its output is discarded (it is killed mid-work).
pub fn spawn_child<K: AsRef<OsStr>, V: AsRef<OsStr>>(test: &str, env: &[(K, V)]) -> Child {
    let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
    command
        .args(["--ignored", "--exact", test, "--nocapture"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    command.spawn().expect("the child process starts")
}

/// A small deterministic generator (splitmix64): kill delays that differ from kill to kill but
/// are the same on every run.
pub struct Delays(u64);

impl Delays {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The next delay of `base + [0, spread)` milliseconds.
    pub fn millis(&mut self, base: u64, spread: u64) -> std::time::Duration {
        std::time::Duration::from_millis(base + self.next() % spread.max(1))
    }
}
