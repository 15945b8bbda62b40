//! The two seeded generators of the test suites. Both algorithms are kept
//! as they were: a printed `MVAULT_TEST_SEED` replays an [`XorShift64`] run,
//! and the fixed seeds of the mount tests pin [`SplitMix64`]'s streams.

/// A small xorshift generator for randomized tests; the seed is printed so
/// a failure replays with `MVAULT_TEST_SEED`.
pub struct XorShift64(u64);

impl XorShift64 {
    /// Seeded from `$MVAULT_TEST_SEED`, else from the clock.
    pub fn from_env_or_time() -> XorShift64 {
        let seed = std::env::var("MVAULT_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("random seed {seed} (set MVAULT_TEST_SEED to replay)");
        XorShift64(seed)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A small deterministic generator (SplitMix64) for random read offsets.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
