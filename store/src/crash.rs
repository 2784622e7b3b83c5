//! Crash points for tests: with the `crash-points` feature (enabled only by this crate's
//! own tests), a process whose `BALLAST_CRASH_AT` names a point aborts there, stopped as
//! a kill -9 would stop it. Without the feature each point compiles to nothing.

/// The variable naming the point to abort at.
#[cfg(feature = "crash-points")]
pub const CRASH_AT: &str = "BALLAST_CRASH_AT";

/// Aborts the process if `CRASH_AT` names `point`.
#[cfg(feature = "crash-points")]
pub fn point(point: &str) {
    if std::env::var(CRASH_AT).is_ok_and(|at| at == point) {
        std::process::abort();
    }
}

#[cfg(not(feature = "crash-points"))]
#[inline(always)]
pub fn point(_point: &str) {}
