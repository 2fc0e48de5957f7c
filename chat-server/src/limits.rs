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

/// How often one user may toggle reactions on one message, per chat-server; 429 beyond. A reaction
/// is one event in the log and one frame to every viewer of the room: toggling one emoji as fast
/// as a script can would flood the room's streams while staying under `USER_POST_RATE`.
#[derive(Debug, Clone, Copy, clap::Args)]
#[command(next_help_heading = "Write limits")]
pub struct ReactionLimits {
    /// Reaction changes (PUT or DELETE) per second one user may make on one message.
    #[arg(
        id = "reaction_rate",
        long = "reaction-rate",
        env = "REACTION_RATE",
        default_value_t = 2
    )]
    pub rate: u32,
    /// Reaction changes one user may make on one message at once before the rate applies.
    #[arg(
        id = "reaction_burst",
        long = "reaction-burst",
        env = "REACTION_BURST",
        default_value_t = 4
    )]
    pub burst: u32,
}

impl Default for ReactionLimits {
    fn default() -> Self {
        shared::settings::defaults()
    }
}

/// [`ReactionLimits`], keyed by user and message.
pub struct ReactionLimiter {
    limiter: DefaultKeyedRateLimiter<(Uuid, Uuid)>,
}

impl ReactionLimiter {
    pub fn new(limits: ReactionLimits) -> Self {
        let rate = NonZeroU32::new(limits.rate).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
        }
    }

    /// Refused (429 with `Retry-After` at the edge) when `user` changes reactions on `message`
    /// faster than allowed.
    pub fn admit(&self, user: Uuid, message: Uuid) -> Result<(), Refused> {
        self.limiter
            .check_key(&(user, message))
            .map_err(|not_until| {
                Refused::ReactingTooFast(not_until.wait_time_from(DefaultClock::default().now()))
            })
    }

    /// Forgets pairs that have not changed recently.
    pub fn housekeeping(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
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

    #[test]
    fn reactions_are_limited_per_user_and_message() {
        let limiter = ReactionLimiter::new(ReactionLimits { rate: 2, burst: 2 });
        let (user, message, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        assert!(limiter.admit(user, message).is_ok());
        assert!(limiter.admit(user, message).is_ok());
        let refused = crate::error::ApiError::from(limiter.admit(user, message).unwrap_err());
        assert_eq!(refused.code, "rate_limited");
        assert_eq!(refused.retry_after, Some(1));
        assert!(limiter.admit(user, other).is_ok(), "another message");
        assert!(limiter.admit(other, message).is_ok(), "another user");
    }
}
