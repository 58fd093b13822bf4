//! Any text given as a configuration file is either a valid `Config` or a `ConfigError` that
//! names the file: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    match sigproxy::config::Config::parse(text, Path::new("fuzz.yaml")) {
        Ok(config) => assert!(!config.routes.is_empty()),
        Err(e) => assert!(e.to_string().starts_with("fuzz.yaml: ")),
    }
});
