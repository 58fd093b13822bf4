//! AWS's published endpoint facts, read from `aws.tsv` (written by `scripts/gen-endpoints` from
//! botocore's service models and `endpoints.json`; regenerate it, never edit it).
//!
//! The file is compiled in and parsed once, on first use: it is a few hundred short lines, and
//! a text table keeps regenerations reviewable as plain diffs.

use std::collections::HashMap;
use std::sync::OnceLock;

const DATA: &str = include_str!("aws.tsv");

/// The parsed table.
#[derive(Debug)]
pub(super) struct Table {
    /// The botocore release the table was generated from, for error messages.
    pub botocore: &'static str,
    /// Host label(s) of a service's endpoint (`runtime.sagemaker`) → its signing name.
    prefixes: HashMap<&'static str, &'static str>,
    /// Hosts with a fixed signing name and region (`iam.amazonaws.com` → `iam`, `us-east-1`).
    globals: HashMap<&'static str, (&'static str, &'static str)>,
    /// Partition DNS suffixes (`amazonaws.com`, `amazonaws.com.cn`, `api.aws`, …), longest first
    /// so that `amazonaws.com.cn` is found before `com.cn` could be.
    pub suffixes: Vec<&'static str>,
    /// Every region botocore lists, for tests of the region shape.
    #[cfg_attr(not(test), allow(dead_code))]
    pub regions: Vec<&'static str>,
}

impl Table {
    /// The signing name of an endpoint prefix, if any service model has that prefix.
    pub fn signing_name(&self, prefix: &str) -> Option<&'static str> {
        self.prefixes.get(prefix).copied()
    }

    /// The signing name and region of a host AWS lists with its own fixed credential scope.
    pub fn global(&self, host: &str) -> Option<(&'static str, &'static str)> {
        self.globals.get(host).copied()
    }
}

/// The table, parsed on first use.
pub(super) fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(|| parse(DATA))
}

/// Parses the generated file; a malformed line is a bug in the generator, caught by the tests.
fn parse(data: &'static str) -> Table {
    let mut table = Table {
        botocore: "unknown",
        prefixes: HashMap::new(),
        globals: HashMap::new(),
        suffixes: Vec::new(),
        regions: Vec::new(),
    };
    for line in data.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            if let Some(rest) = comment.split(" from botocore ").nth(1) {
                table.botocore = rest.split(';').next().unwrap_or(rest);
            }
            continue;
        }
        let fields: Vec<&'static str> = line.split('\t').collect();
        match fields[..] {
            ["prefix", prefix, signing] => {
                table.prefixes.insert(prefix, signing);
            }
            ["global", host, signing, region] => {
                table.globals.insert(host, (signing, region));
            }
            ["suffix", suffix, _partition] => {
                if !table.suffixes.contains(&suffix) {
                    table.suffixes.push(suffix);
                }
            }
            ["region", region] => table.regions.push(region),
            _ => {
                panic!("aws.tsv: malformed line {line:?}; regenerate it with scripts/gen-endpoints")
            }
        }
    }
    table.suffixes.sort_by_key(|s| std::cmp::Reverse(s.len()));
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_table_parses_and_names_its_source() {
        let t = table();
        assert!(t.botocore.starts_with("1."), "{}", t.botocore);
        assert!(t.prefixes.len() > 300, "{}", t.prefixes.len());
        assert_eq!(t.signing_name("bedrock-runtime"), Some("bedrock"));
        assert_eq!(t.signing_name("email"), Some("ses"));
        assert_eq!(t.global("iam.amazonaws.com"), Some(("iam", "us-east-1")));
        assert!(t.suffixes.contains(&"amazonaws.com.cn"));
        assert!(t.regions.contains(&"us-gov-west-1"));
    }
}
