//! The circuit breaker: after [`CIRCUIT_FAILURES`] unavailable answers in a row, calls
//! fail at once for [`CIRCUIT_COOLDOWN`]; then one call at a time tries the upstream
//! (half-open) until one succeeds.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::UpstreamError;

/// Unavailable answers in a row that open the circuit.
pub const CIRCUIT_FAILURES: u32 = 5;
/// How long an open circuit refuses calls before one may try again.
pub const CIRCUIT_COOLDOWN: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(crate) struct Circuit {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failures: u32,
    /// While open: until when calls are refused.
    open_until: Option<Instant>,
    /// Half-open: one trial call is in flight.
    trial: bool,
}

impl Circuit {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a call may go out now.
    pub(crate) fn admit(&self) -> Result<(), UpstreamError> {
        let mut state = self.state();
        let Some(until) = state.open_until else {
            return Ok(());
        };
        if Instant::now() < until || state.trial {
            return Err(UpstreamError::Unavailable("circuit open"));
        }
        state.trial = true;
        Ok(())
    }

    pub(crate) fn succeeded(&self) {
        let mut state = self.state();
        *state = State::default();
    }

    pub(crate) fn failed(&self) {
        let mut state = self.state();
        state.failures = state.failures.saturating_add(1);
        state.trial = false;
        if state.failures >= CIRCUIT_FAILURES {
            if state.open_until.is_none() {
                tracing::warn!(
                    failures = state.failures,
                    "upstream Auth API circuit opened"
                );
            }
            state.open_until = Some(Instant::now() + CIRCUIT_COOLDOWN);
        }
    }
}

/// A call in flight through the circuit; dropped before it is settled, it counts as a
/// failure.
pub(crate) struct Pending<'a> {
    circuit: &'a Circuit,
    settled: bool,
}

impl<'a> Pending<'a> {
    pub(crate) fn new(circuit: &'a Circuit) -> Self {
        Self {
            circuit,
            settled: false,
        }
    }

    pub(crate) fn succeeded(&mut self) {
        self.settled = true;
        self.circuit.succeeded();
    }

    pub(crate) fn failed(&mut self) {
        self.settled = true;
        self.circuit.failed();
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.circuit.failed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_a_row_and_lets_one_trial_through_after_the_cooldown() {
        let circuit = Circuit::default();
        for _ in 0..CIRCUIT_FAILURES - 1 {
            circuit.admit().unwrap();
            circuit.failed();
        }
        circuit.admit().unwrap();
        circuit.succeeded();
        for _ in 0..CIRCUIT_FAILURES {
            circuit.admit().unwrap();
            circuit.failed();
        }
        assert!(
            circuit.admit().is_err(),
            "open after {CIRCUIT_FAILURES} failures"
        );
        tokio::time::advance(CIRCUIT_COOLDOWN + Duration::from_millis(1)).await;
        circuit.admit().unwrap();
        assert!(circuit.admit().is_err(), "one trial at a time");
        circuit.failed();
        assert!(circuit.admit().is_err(), "a failed trial opens it again");
        tokio::time::advance(CIRCUIT_COOLDOWN + Duration::from_millis(1)).await;
        circuit.admit().unwrap();
        circuit.succeeded();
        circuit.admit().unwrap();
        circuit.admit().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_trial_does_not_keep_the_circuit_open() {
        let circuit = Circuit::default();
        for _ in 0..CIRCUIT_FAILURES {
            circuit.failed();
        }
        tokio::time::advance(CIRCUIT_COOLDOWN + Duration::from_millis(1)).await;
        circuit.admit().unwrap();
        drop(Pending::new(&circuit));
        assert!(circuit.admit().is_err(), "counted as a failure: open again");
        tokio::time::advance(CIRCUIT_COOLDOWN + Duration::from_millis(1)).await;
        circuit.admit().unwrap();
    }
}
