//! Provenance-store apply throughput (run by `cargo xtask bench`): prints one JSON array of
//! results, one per scenario. Usage: `store_bench SCRATCH_DIR [EVENTS] [BATCH]`.
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let scratch = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: store_bench SCRATCH [EVENTS] [BATCH]"))?,
    );
    let events = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(200_000);
    let batch = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1_024);
    let results = verifier::store::bench::apply_throughput(&scratch, events, batch)?;
    println!("{}", serde_json::to_string(&results)?);
    Ok(())
}
