//! `coe --version`: the crate version, the libtorch it was built against, and
//! whether CUDA is usable right now (so a GPU host shows at a glance whether
//! `libtorch_cuda` was linked and a device is visible).
pub fn long_version() -> String {
    let cuda = if tch::Cuda::is_available() {
        format!("yes ({} device(s))", tch::Cuda::device_count())
    } else {
        "no".to_string()
    };
    format!(
        "coe {}\nlibtorch {}\nCUDA available: {}",
        env!("CARGO_PKG_VERSION"),
        env!("COE_LIBTORCH_VERSION"),
        cuda
    )
}
