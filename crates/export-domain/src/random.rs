//! Randomness from the operating system's source (`getrandom`): the jitter that keeps retries
//! of things that failed together from coming back together, and random suffixes.

/// A random `u32` from the operating system.
pub fn random_u32() -> u32 {
    let mut bytes = [0u8; 4];
    // The OS source fails only where none exists at all; a fixed value then still works
    // everywhere these are used (a spread of 0, a suffix a retry changes).
    if getrandom::getrandom(&mut bytes).is_err() {
        return 0;
    }
    u32::from_le_bytes(bytes)
}

/// A random spread in `-permille..=permille` thousandths, evenly drawn.
pub fn spread(permille: u16) -> i64 {
    let span = 2 * u64::from(permille) + 1;
    // Rejection sampling: no value of the span is likelier than another.
    let limit = (u64::from(u32::MAX) + 1) / span * span;
    loop {
        let draw = u64::from(random_u32());
        if draw < limit {
            return (draw % span) as i64 - i64::from(permille);
        }
    }
}

/// `base_ms` changed by a random spread of up to `permille` thousandths of itself.
pub fn jittered_ms(base_ms: i64, permille: u16) -> i64 {
    base_ms + base_ms * spread(permille) / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spreads_stay_in_their_range_and_reach_both_ends() {
        let draws: Vec<i64> = (0..20_000).map(|_| spread(25)).collect();
        assert!(draws.iter().all(|d| (-25..=25).contains(d)));
        assert!(draws.contains(&-25) && draws.contains(&25) && draws.contains(&0));
        assert_eq!(spread(0), 0);
    }

    #[test]
    fn jitter_is_within_its_share_of_the_base() {
        for _ in 0..1000 {
            let wait = jittered_ms(10_000, 250);
            assert!((7_500..=12_500).contains(&wait), "{wait}");
        }
    }
}
