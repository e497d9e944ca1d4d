//! Latency-distribution plots as self-contained SVG: latency against percentile on a "nines"
//! axis (50%, 90%, 99%, 99.9%, 99.99%), one line per series, as HdrHistogram plots do.

/// One line of the plot: a name and `(percentile in 0..=100, latency in µs)` points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, u64)],
}

const W: f64 = 720.0;
const H: f64 = 400.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// x position of a percentile: -log10(1 - p), so each extra nine takes the same width.
fn nines(p: f64) -> f64 {
    let q = (p / 100.0).min(0.99999);
    -(1.0 - q).log10()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG document for `series` under `title`.
pub fn latency_svg(title: &str, series: &[Series<'_>]) -> String {
    let max_x = 4.0; // 99.99%
    let max_us = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(p, _)| *p <= 99.99)
        .map(|(_, us)| *us)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let x = |p: f64| LEFT + nines(p).min(max_x) / max_x * (W - LEFT - RIGHT);
    let y = |us: f64| TOP + (1.0 - us / max_us) * (H - TOP - BOTTOM);
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{LEFT}" y="22" font-size="14">{}</text>
"#,
        escape(title)
    );
    for (label, p) in [
        ("0%", 0.0),
        ("90%", 90.0),
        ("99%", 99.0),
        ("99.9%", 99.9),
        ("99.99%", 99.99),
    ] {
        let px = x(p);
        out += &format!(
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#ddd"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>
"##,
            H - BOTTOM,
            H - BOTTOM + 18.0
        );
    }
    for i in 0..=4 {
        let us = max_us * i as f64 / 4.0;
        let py = y(us);
        out += &format!(
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{:.2} ms</text>
"##,
            W - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            us / 1000.0
        );
    }
    out += &format!(
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>
"#,
        (LEFT + W - RIGHT) / 2.0,
        H - 12.0
    );
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let points: Vec<String> = s
            .points
            .iter()
            .filter(|(p, _)| *p <= 99.99)
            .map(|(p, us)| format!("{:.1},{:.1}", x(*p), y(*us as f64)))
            .collect();
        out += &format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>
<text x="{:.1}" y="{:.1}" fill="{color}">{}</text>
"#,
            points.join(" "),
            W - RIGHT + 10.0,
            TOP + 16.0 * (i as f64 + 1.0),
            escape(s.name)
        );
    }
    out + "</svg>\n"
}

/// The percentiles a report records for its plot.
pub const PERCENTILES: &[f64] = &[
    0.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_every_series_within_the_frame() {
        let a = [
            (0.0, 100),
            (50.0, 200),
            (99.0, 900),
            (99.99, 2000),
            (100.0, 9000),
        ];
        let b = [(0.0, 150), (50.0, 300), (99.0, 1200), (99.99, 2500)];
        let svg = latency_svg(
            "h1 <pass-through>",
            &[
                Series {
                    name: "breakwater",
                    points: &a,
                },
                Series {
                    name: "nginx",
                    points: &b,
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("h1 &lt;pass-through&gt;"));
        // Every plotted coordinate stays inside the drawing.
        for poly in svg.split("points=\"").skip(1) {
            for pair in poly.split('"').next().unwrap().split(' ') {
                let (px, py) = pair.split_once(',').unwrap();
                let (px, py): (f64, f64) = (px.parse().unwrap(), py.parse().unwrap());
                assert!(
                    (LEFT..=W - RIGHT).contains(&px) && (TOP..=H - BOTTOM).contains(&py),
                    "{pair}"
                );
            }
        }
    }
}
