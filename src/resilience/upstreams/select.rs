//! Power of two choices: the pure core of [`Upstreams`](super::Upstreams).

/// The member to call: two distinct members drawn with `random` among the eligible ones, the one
/// with fewer requests in flight (the first drawn on a tie); the only eligible one when there is
/// one; `None` when none is. `loads[i]` is member `i`'s requests in flight, `None` when it may not
/// be called. No allocation; two passes over `loads`.
pub(crate) fn pick(loads: &[Option<usize>], random: u64) -> Option<usize> {
    let eligible = loads.iter().filter(|l| l.is_some()).count();
    let nth = |k: usize| {
        loads
            .iter()
            .enumerate()
            .filter(|(_, l)| l.is_some())
            .nth(k)
            .map(|(i, _)| i)
    };
    match eligible {
        0 => None,
        1 => nth(0),
        n => {
            // Two distinct ranks from the two halves of `random`: the second skips the first.
            let a = (random & 0xffff_ffff) as usize % n;
            let mut b = (random >> 32) as usize % (n - 1);
            if b >= a {
                b += 1;
            }
            let (a, b) = (nth(a)?, nth(b)?);
            Some(if loads[b] < loads[a] { b } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn none_eligible_is_none_and_one_is_that_one() {
        assert_eq!(pick(&[], 7), None);
        assert_eq!(pick(&[None, None], 7), None);
        assert_eq!(pick(&[None, Some(9), None], 7), Some(1));
    }

    #[test]
    fn of_two_the_less_loaded_always_wins() {
        for random in [0, 1, u64::MAX, 0x1_0000_0000, 12_345_678_901] {
            assert_eq!(pick(&[Some(3), Some(1)], random), Some(1));
            assert_eq!(pick(&[Some(0), None, Some(4)], random), Some(0));
        }
    }

    proptest! {
        /// The pick is eligible; it exists whenever one member is; it is never the one strictly
        /// most loaded of two or more; and it is one of the two drawn, so no better than needed:
        /// at least one eligible member other than it carries as much or more load.
        #[test]
        fn the_pick_is_eligible_and_never_the_single_most_loaded(
            loads in proptest::collection::vec(proptest::option::of(0usize..5), 0..12),
            random: u64,
        ) {
            let eligible: Vec<usize> = (0..loads.len()).filter(|&i| loads[i].is_some()).collect();
            let got = pick(&loads, random);
            prop_assert_eq!(got.is_some(), !eligible.is_empty());
            if let Some(i) = got {
                prop_assert!(loads[i].is_some());
                if eligible.len() >= 2 {
                    prop_assert!(eligible.iter().any(|&j| j != i && loads[j] >= loads[i]));
                }
            }
        }

        /// With equal loads every eligible member gets picked: over consecutive random values
        /// (as a counter would give), the picks cover them all, each about as often.
        #[test]
        fn equal_loads_spread_over_every_eligible_member(
            mask in proptest::collection::vec(any::<bool>(), 2..10),
            seed: u64,
        ) {
            let loads: Vec<Option<usize>> = mask.iter().map(|&m| m.then_some(0)).collect();
            let n = mask.iter().filter(|&&m| m).count();
            prop_assume!(n >= 2);
            let mut counts = vec![0usize; loads.len()];
            let mut state = seed;
            let draws = 400 * n;
            for _ in 0..draws {
                // splitmix64: the draws independent of one another.
                state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                z ^= z >> 31;
                counts[pick(&loads, z).unwrap()] += 1;
            }
            for (i, &c) in counts.iter().enumerate() {
                if mask[i] {
                    // Expected 400 each; a share below half of it would be a skew, not noise.
                    prop_assert!(c > 200, "member {} got {} of {}", i, c, draws);
                } else {
                    prop_assert_eq!(c, 0);
                }
            }
        }
    }
}
