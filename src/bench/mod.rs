//! The project's own benchmarks (`coe bench <what>`); each returns one JSON object and
//! measures its baseline in the same run on the same machine.
pub mod decode;
