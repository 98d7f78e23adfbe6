//! Identifiers the broker assigns ([`ConnId`], [`SessionId`]) and the hashers for the maps keyed
//! by them or by what clients choose. A leaf: it imports nothing from the core.

/// A hasher for the broker's own sequential ids ([`SessionId`], [`ConnId`]): one multiply
/// instead of SipHash, which was a quarter of the fan-out path's instructions. The ids are
/// assigned by the broker, never chosen by a peer, so hash flooding is not a concern here
/// (maps keyed by client-chosen strings keep the default hasher).
#[derive(Debug, Default, Clone, Copy)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        // Fibonacci hashing: spreads sequential ids over the high bits (hashbrown's control
        // bytes) and keeps the low bits (the bucket index) varied.
        let h = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        h ^ (h >> 32)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8)) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// `BuildHasher` of [`IdHasher`].
pub type IdHash = std::hash::BuildHasherDefault<IdHasher>;

/// foldhash keyed once per process: seeded hashing (minimally resistant to hash flooding) for
/// maps keyed by what a client chooses (topic levels, topic filters), without a per-map seed —
/// a session's maps are per client, and idle clients are most of a broker's memory — and at a
/// fraction of SipHash's cost on the routing path (every topic level of every publish).
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessRandomState;

impl std::hash::BuildHasher for ProcessRandomState {
    type Hasher = foldhash::fast::FoldHasher<'static>;

    #[inline]
    fn build_hasher(&self) -> Self::Hasher {
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED.get_or_init(|| std::hash::RandomState::new().hash_one(0u64));
        foldhash::fast::FoldHasher::with_seed(seed, foldhash::SharedSeed::global_random())
    }
}

/// Identifies a session for its whole life; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

/// Identifies a network connection; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);
