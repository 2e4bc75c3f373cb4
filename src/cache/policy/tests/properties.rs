//! Property tests of the policy.

use super::*;

proptest! {
    /// A response answered `Fresh` is never older than its lifetime (and never past a request's
    /// `max-age`), whatever the directives.
    #[test]
    fn fresh_never_outlives_its_lifetime(
        res_cc in "(max-age=[0-9]{1,3}|s-maxage=[0-9]{1,3}|no-cache|must-revalidate|stale-while-revalidate=[0-9]{1,3}|immutable|public)(, (max-age=[0-9]{1,3}|stale-if-error=[0-9]{1,2}|proxy-revalidate)){0,2}",
        req_cc in "(|max-age=[0-9]{1,3}|min-fresh=[0-9]{1,2}|max-stale=[0-9]{1,2}|no-cache)",
        partition in any::<bool>(),
        age in 0u64..2000,
        extra_age in 0u64..200,
        received_offset in 0u64..10,
    ) {
        let scope = if partition { Scope::Partition } else { Scope::Shared };
        let parts = res(200, &[("cache-control", res_cc.as_str())]);
        let received = at(T0 + received_offset);
        let life = freshness_lifetime(&parts, scope, received, DEFAULT_HEURISTIC_CAP);
        let req = CacheControl::parse(&req_cc);
        let now_age = current_age(Duration::from_secs(age), received, received + Duration::from_secs(extra_age));
        if reuse(&req, &CacheControl::parse(&res_cc), scope, life, now_age) == Reuse::Fresh {
            prop_assert!(now_age < life);
            if let Some(m) = req.max_age {
                prop_assert!(now_age <= Duration::from_secs(u64::from(m)));
            }
            prop_assert!(!req.no_cache && !CacheControl::parse(&res_cc).no_cache);
        }
    }

    /// `no-store` in a response (without `must-understand`) or a request is never storable.
    #[test]
    fn no_store_is_never_storable(
        other in "(public|private|max-age=[0-9]{1,4}|s-maxage=9|must-revalidate|NO-STORE|no-cache)",
        status in prop_oneof![Just(200u16), Just(203), Just(301), Just(404), Just(500)],
        on_request in any::<bool>(),
        partitioned in any::<bool>(),
        auth in any::<bool>(),
    ) {
        let cc = format!("{other}, no-store");
        let mut rq: Vec<(&str, &str)> = Vec::new();
        let mut rs: Vec<(&str, &str)> = vec![("cache-control", "max-age=60")];
        if on_request { rq.push(("cache-control", cc.as_str())); } else { rs.push(("cache-control", cc.as_str())); }
        if auth { rq.push(("authorization", "Bearer x")); }
        prop_assert_eq!(
            storable(&req(&rq), &res(status, &rs), partitioned),
            Err(NotStorable::NoStore)
        );
    }
}
