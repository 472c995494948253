//! Small helpers below every layer: micro-batch splitting, atomic file writes, an order-keeping parallel map,
//! locating the checkout's shipped files, order statistics and a machine description for
//! benchmarks, the progress line of long commands and Ctrl-C as a flag.
pub mod batches;
pub mod checkout;
pub mod fs;
pub mod interrupt;
pub mod machine;
pub mod parallel;
pub mod progress;
pub mod stats;

pub use checkout::find_in_checkout;
pub use fs::write_atomic;
pub use parallel::parallel_map;
