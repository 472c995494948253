//! Every configuration shipped in `configs/` loads and passes validation, so a user who
//! follows the README never starts from a broken file.
use std::path::Path;

#[test]
fn every_shipped_config_loads_and_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("ron") {
            continue;
        }
        if let Err(e) = coe::config::Config::load(&path) {
            panic!("{}: {e}", path.display());
        }
        checked.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    checked.sort();
    for want in [
        "default.ron",
        "rl.ron",
        "sft.ron",
        "sft-cot.ron",
        "sft-direct.ron",
    ] {
        assert!(
            checked.iter().any(|c| c == want),
            "{want} not found in {checked:?}"
        );
    }
}
