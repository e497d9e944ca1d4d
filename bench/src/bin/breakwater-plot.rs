//! `breakwater-plot OUT.svg TITLE REPORT.json...`: one latency-distribution plot of several
//! `breakwater-bench --json` reports (each a line named by its label), for the comparison
//! reports of bench/compare.sh.

use breakwater_bench::plot::{latency_svg, Series};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, title, reports @ ..] = args.as_slice() else {
        anyhow::bail!("usage: breakwater-plot OUT.svg TITLE REPORT.json...");
    };
    let mut data = Vec::new();
    for path in reports {
        let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
        let label = r["label"].as_str().unwrap_or(path).to_string();
        let points: Vec<(f64, u64)> = serde_json::from_value(r["distribution"].clone())?;
        data.push((label, points));
    }
    let series: Vec<Series<'_>> = data
        .iter()
        .map(|(name, points)| Series { name, points })
        .collect();
    std::fs::write(out, latency_svg(title, &series))?;
    Ok(())
}
