//! Provenance-store apply throughput (run by `cargo xtask bench`): prints one JSON array of
//! results, one per scenario. Usage: `store_bench SCRATCH_DIR [EVENTS] [BATCH] [SCENARIO]`.
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let scratch = PathBuf::from(args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: store_bench SCRATCH [EVENTS] [BATCH] [SCENARIO]")
    })?);
    let events = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let batch = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_024);
    let only = args.next();
    let results =
        verifier::store::bench::apply_throughput(&scratch, events, batch, only.as_deref())?;
    println!("{}", serde_json::to_string(&results)?);
    Ok(())
}
