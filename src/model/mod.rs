//! The shared vocabulary every layer uses: workload kinds, the clock, names of labels and
//! annotations, error chains, the process environment. It imports nothing from the crate, so
//! any module may import it.

pub mod clock;
pub mod environment;
pub mod errors;
pub mod names;
pub mod workload;
