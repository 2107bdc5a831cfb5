//! `verifier status`: the daemon's health, asked over the query socket.
use std::{path::Path, process::ExitCode, time::Duration};

use anyhow::Context as _;

use crate::{
    protocol::{Request, RequestBody, ResponseBody},
    socket::client,
};

/// How long the CLI waits for the daemon.
const STATUS_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run(config: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config)?;
    let response = client::request(
        &config.socket,
        &Request::new(RequestBody::Status),
        STATUS_TIMEOUT,
    )
    .with_context(|| format!("asking the daemon at {}", config.socket.display()))?;
    let status = match response.body {
        ResponseBody::Status { status } => status,
        ResponseBody::Error { message } => anyhow::bail!("the daemon refused: {message}"),
        other => anyhow::bail!("unexpected answer from the daemon: {other:?}"),
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
    } else {
        print_human(&status, 0);
    }
    Ok(ExitCode::SUCCESS)
}

/// Nested objects as indented `key: value` lines; `*_secs` numbers as `key: <n> s`, `*_bytes`
/// numbers as `key: <n> MiB`.
fn print_human(value: &serde_json::Value, indent: usize) {
    let Some(object) = value.as_object() else {
        println!("{:indent$}{value}", "");
        return;
    };
    for (key, value) in object {
        match value {
            serde_json::Value::Object(_) => {
                println!("{:indent$}{key}:", "");
                print_human(value, indent + 2);
            }
            serde_json::Value::Array(items) => {
                println!("{:indent$}{key}:", "");
                for item in items {
                    match item {
                        serde_json::Value::String(text) => {
                            println!("{:w$}- {text}", "", w = indent + 2)
                        }
                        other => println!("{:w$}- {other}", "", w = indent + 2),
                    }
                }
            }
            serde_json::Value::String(text) => println!("{:indent$}{key}: {text}", ""),
            serde_json::Value::Number(number) if key.ends_with("_secs") => {
                println!(
                    "{:indent$}{}: {number} s",
                    "",
                    key.trim_end_matches("_secs")
                )
            }
            serde_json::Value::Number(number) if key.ends_with("_bytes") => {
                let mib = number.as_f64().unwrap_or(f64::NAN) / (1024.0 * 1024.0);
                println!(
                    "{:indent$}{}: {mib:.1} MiB",
                    "",
                    key.trim_end_matches("_bytes")
                )
            }
            other => println!("{:indent$}{key}: {other}", ""),
        }
    }
}
