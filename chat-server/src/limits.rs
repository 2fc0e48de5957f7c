//! Per-user write limits: how often one signed-in user may post, react or create rooms.
//!
//! A keyed GCRA limiter (governor) per chat-server instance: memory follows the users active in the
//! last few seconds ([`PostLimiter::housekeeping`] forgets the others). With N chat-servers behind a
//! balancer a user can reach up to N times the rate; the limit is there to stop floods, not to meter.
//!
//! Why in the handler and not a tower-governor layer like the sign-in limit: the key is the verified
//! user, and verifying can mean an async JWKS fetch, which a (synchronous) `KeyExtractor` cannot do;
//! a layer would also verify every token twice and answer 429 before the 401/404 a bad request
//! deserves. The answer is the same 429 as the layer's ([`crate::rate_limit::too_many_requests`],
//! made from [`Refused::TooFast`] at the edge).

use std::num::NonZeroU32;

use governor::{
    DefaultKeyedRateLimiter, Quota, RateLimiter,
    clock::{Clock, DefaultClock},
};
use uuid::Uuid;

use crate::error::Refused;

/// How fast one signed-in user may write (posts, reactions, rooms), per chat-server; 429 beyond.
#[derive(Debug, Clone, Copy, clap::Args)]
#[command(next_help_heading = "Write limits")]
pub struct PostLimits {
    /// Writes per second one user may make.
    #[arg(long = "user-post-rate", env = "USER_POST_RATE", default_value_t = 10)]
    pub rate: u32,
    /// Writes one user may make at once before the rate applies.
    #[arg(
        long = "user-post-burst",
        env = "USER_POST_BURST",
        default_value_t = 30
    )]
    pub burst: u32,
}

impl Default for PostLimits {
    fn default() -> Self {
        shared::settings::defaults()
    }
}

pub struct PostLimiter {
    limiter: DefaultKeyedRateLimiter<Uuid>,
}

impl PostLimiter {
    pub fn new(limits: PostLimits) -> Self {
        let rate = NonZeroU32::new(limits.rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// Refused (429 with `Retry-After` at the edge) when `user` is writing faster than allowed.
    pub fn admit(&self, user: Uuid) -> Result<(), Refused> {
        self.limiter.check_key(&user).map_err(|not_until| {
            Refused::TooFast(not_until.wait_time_from(DefaultClock::default().now()))
        })
    }

    /// Forgets users who have not written recently.
    pub fn housekeeping(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn a_user_beyond_the_burst_is_refused_with_retry_after_and_others_are_not() {
        let limiter = PostLimiter::new(PostLimits { rate: 1, burst: 3 });
        let (flooder, other) = (Uuid::now_v7(), Uuid::now_v7());
        for _ in 0..3 {
            assert!(limiter.admit(flooder).is_ok());
        }
        let refused = crate::error::ApiError::from(limiter.admit(flooder).unwrap_err());
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.retry_after, Some(1));
        assert!(limiter.admit(other).is_ok(), "limits are per user");
    }
}
