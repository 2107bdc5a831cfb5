//! Building the test binaries on the host: the `tests` package's integration-test executables
//! (found through cargo's JSON messages) and the workspace binaries those tests start.
use std::{io::BufRead as _, path::PathBuf, process::Stdio};

use anyhow::{Context as _, bail};

use crate::process::cargo;

/// A built executable and the cargo target it came from.
#[derive(Debug, Clone)]
pub struct Executable {
    pub target: String,
    pub path: PathBuf,
    /// A `bin` target (as opposed to a test, or a build script).
    pub is_bin: bool,
}

/// Builds `verifier-userspace`'s binaries (tests run them) and returns them.
pub fn build_workspace_binaries() -> anyhow::Result<Vec<Executable>> {
    built_executables(&["build", "--package", "verifier-userspace", "--bins"])
}

/// The `tests` package's built test executables and its other executables (helper binaries).
pub struct BuiltTests {
    pub tests: Vec<Executable>,
    pub helpers: Vec<Executable>,
}

/// Builds the `tests` package's integration tests named `targets` without running them.
pub fn build_tests(targets: &[String]) -> anyhow::Result<BuiltTests> {
    let mut args = vec!["test", "--package", "tests", "--no-run"];
    for target in targets {
        args.extend(["--test", target.as_str()]);
    }
    let built = built_executables(&args)?;
    for target in targets {
        if !built.iter().any(|executable| &executable.target == target) {
            bail!("cargo built no test executable for {target}");
        }
    }
    let (tests, others): (Vec<_>, Vec<_>) = built
        .into_iter()
        .partition(|executable| targets.contains(&executable.target));
    let helpers = others
        .into_iter()
        .filter(|executable| executable.is_bin)
        .collect();
    Ok(BuiltTests { tests, helpers })
}

/// Runs cargo with `--message-format=json` and collects every artifact that has an executable.
fn built_executables(args: &[&str]) -> anyhow::Result<Vec<Executable>> {
    let mut command = cargo();
    command
        .args(args)
        .arg("--message-format=json")
        .stdout(Stdio::piped());
    eprintln!("xtask: running {command:?}");
    let output = command
        .spawn()
        .with_context(|| format!("cannot start {command:?}"))?
        .wait_with_output()
        .with_context(|| format!("waiting for {command:?}"))?;
    if !output.status.success() {
        bail!("{command:?} failed: {}", output.status);
    }
    Ok(output
        .stdout
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| executable_of(&line))
        .collect())
}

fn executable_of(message: &str) -> Option<Executable> {
    let message: serde_json::Value = serde_json::from_str(message).ok()?;
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let path = message["executable"].as_str()?;
    let target = message["target"]["name"].as_str()?;
    let is_bin = message["target"]["kind"]
        .as_array()
        .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bin"));
    Some(Executable {
        target: target.to_owned(),
        path: PathBuf::from(path),
        is_bin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_come_from_compiler_artifact_messages() {
        let message = r#"{"reason":"compiler-artifact","target":{"name":"vm_smoke","kind":["test"]},"executable":"/w/target/debug/deps/vm_smoke-1"}"#;
        let executable = executable_of(message).unwrap();
        assert_eq!(executable.target, "vm_smoke");
        assert_eq!(
            executable.path,
            PathBuf::from("/w/target/debug/deps/vm_smoke-1")
        );
        let library =
            r#"{"reason":"compiler-artifact","target":{"name":"tests"},"executable":null}"#;
        assert!(executable_of(library).is_none());
    }
}
