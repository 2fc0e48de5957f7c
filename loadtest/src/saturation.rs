//! The saturation point of a stepped plan.
//!
//! A plan runs a fixed number of users per step, doubling from step to step, each user a closed loop
//! (the next request leaves when the last answer arrived). Below saturation, doubling the users
//! nearly doubles the throughput and leaves latency flat; past it, throughput stays flat and latency
//! doubles instead (Little's law), or errors appear. The rule, precisely:
//!
//! > Step *k* is the saturation point when it is the first step whose successor
//! > (a) gains less than [`Rule::min_gain`] (10 %) throughput over it, **and**
//! > (b) has a p99 more than [`Rule::p99_rise`] (1.5×) its p99, or an error rate above
//! > [`Rule::max_error_rate`] (1 %).
//! > A step whose own error rate is above that limit ends the search: the step before it is the
//! > saturation point (or the load was saturated from the first step on).
//!
//! Throughput counts successful answers only; intended `429`s of a throttled room are not errors and
//! are not throughput either. The saturation throughput is the throughput of step *k*.

use serde::{Deserialize, Serialize};

/// One step of a plan, reduced to what the rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub users: usize,
    /// Successful answers per second.
    pub throughput: f64,
    pub p99_ms: f64,
    /// Errors (not counting intended 429s) over all answers.
    pub error_rate: f64,
}

/// The thresholds of the rule (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub min_gain: f64,
    pub p99_rise: f64,
    pub max_error_rate: f64,
}

impl Default for Rule {
    fn default() -> Self {
        Self {
            min_gain: 0.10,
            p99_rise: 1.5,
            max_error_rate: 0.01,
        }
    }
}

/// Where a plan saturated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "step", rename_all = "snake_case")]
pub enum Saturation {
    /// At this step (index into the plan's steps).
    At(usize),
    /// Errors from the first step on: the saturation point is below the plan's lightest load.
    BelowFirstStep,
    /// The plan ended before the rule fired: the point lies beyond its heaviest step.
    NotReached,
}

impl Rule {
    /// Applies the rule to `steps`, ordered by increasing users.
    pub fn saturation(&self, steps: &[Point]) -> Saturation {
        for (i, step) in steps.iter().enumerate() {
            if step.error_rate > self.max_error_rate {
                return match i {
                    0 => Saturation::BelowFirstStep,
                    _ => Saturation::At(i - 1),
                };
            }
            let Some(next) = steps.get(i + 1) else {
                break;
            };
            let flat = next.throughput < step.throughput * (1.0 + self.min_gain);
            let worse =
                next.p99_ms > step.p99_ms * self.p99_rise || next.error_rate > self.max_error_rate;
            if flat && worse {
                return Saturation::At(i);
            }
        }
        Saturation::NotReached
    }
}

/// The step to quote for a plan: the saturation point, else (not reached) the busiest step.
pub fn quoted_step(steps: &[Point], saturation: Saturation) -> Option<usize> {
    match saturation {
        Saturation::At(i) => Some(i),
        Saturation::BelowFirstStep => None,
        Saturation::NotReached => steps
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.throughput.total_cmp(&b.1.throughput))
            .map(|(i, _)| i),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(users: usize, throughput: f64, p99_ms: f64, error_rate: f64) -> Point {
        Point {
            users,
            throughput,
            p99_ms,
            error_rate,
        }
    }

    #[test]
    fn the_step_before_throughput_flattens_and_p99_climbs_is_the_saturation_point() {
        let steps = [
            point(8, 1000.0, 2.0, 0.0),
            point(16, 1900.0, 2.2, 0.0),
            point(32, 2500.0, 3.0, 0.0),
            point(64, 2600.0, 6.0, 0.0),
            point(128, 2550.0, 12.0, 0.0),
        ];
        assert_eq!(Rule::default().saturation(&steps), Saturation::At(2));
    }

    #[test]
    fn flat_throughput_with_steady_latency_is_not_saturation() {
        // E.g. a client-side cap: no queue builds at the server.
        let steps = [
            point(8, 1000.0, 2.0, 0.0),
            point(16, 1050.0, 2.1, 0.0),
            point(32, 2100.0, 2.2, 0.0),
        ];
        assert_eq!(Rule::default().saturation(&steps), Saturation::NotReached);
    }

    #[test]
    fn growing_throughput_with_growing_latency_is_not_saturation_yet() {
        let steps = [point(8, 1000.0, 2.0, 0.0), point(16, 1500.0, 4.0, 0.0)];
        assert_eq!(Rule::default().saturation(&steps), Saturation::NotReached);
    }

    #[test]
    fn errors_in_the_next_step_with_flat_throughput_mark_the_point() {
        let steps = [
            point(8, 1000.0, 2.0, 0.0),
            point(16, 1800.0, 2.0, 0.0),
            point(32, 1850.0, 2.1, 0.05),
        ];
        assert_eq!(Rule::default().saturation(&steps), Saturation::At(1));
    }

    #[test]
    fn errors_end_the_search_even_when_throughput_still_grows() {
        let steps = [
            point(8, 1000.0, 2.0, 0.0),
            point(16, 1800.0, 2.0, 0.0),
            point(32, 3000.0, 2.0, 0.02),
            point(64, 3100.0, 9.0, 0.0),
        ];
        assert_eq!(Rule::default().saturation(&steps), Saturation::At(1));
    }

    #[test]
    fn errors_from_the_first_step_put_the_point_below_the_plan() {
        let steps = [point(8, 10.0, 2.0, 0.5), point(16, 10.0, 2.0, 0.5)];
        assert_eq!(
            Rule::default().saturation(&steps),
            Saturation::BelowFirstStep
        );
        assert_eq!(quoted_step(&steps, Saturation::BelowFirstStep), None);
    }

    #[test]
    fn an_unsaturated_plan_quotes_its_busiest_step() {
        let steps = [
            point(8, 1000.0, 2.0, 0.0),
            point(16, 3000.0, 2.0, 0.0),
            point(32, 2900.0, 2.0, 0.0),
        ];
        let saturation = Rule::default().saturation(&steps);
        assert_eq!(saturation, Saturation::NotReached);
        assert_eq!(quoted_step(&steps, saturation), Some(1));
        assert_eq!(quoted_step(&[], Saturation::NotReached), None);
    }
}
