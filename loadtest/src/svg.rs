//! A latency-by-percentile plot as a standalone SVG: x is the percentile on the usual log
//! scale of `1 / (1 - p)` (50, 90, 99, 99.9, 99.99 equally spaced), y the latency in
//! milliseconds (linear from 0), one line per series.

use std::fmt::Write as _;

use crate::stats::Latencies;

/// The percentiles each line is drawn through.
pub const PERCENTILES: &[f64] = &[50.0, 75.0, 90.0, 95.0, 99.0, 99.5, 99.9, 99.95, 99.99];

/// One line of the plot: `(percentile, latency ms)` points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

impl Series {
    pub fn of(name: impl Into<String>, latencies: &Latencies) -> Series {
        Series {
            name: name.into(),
            points: PERCENTILES
                .iter()
                .map(|p| (*p, latencies.percentile_ms(*p)))
                .collect(),
        }
    }
}

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 200.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
    "#7f7f7f", "#bcbd22",
];

/// `log10(1 / (1 - p/100))`: 50 → 0.30, 90 → 1, 99 → 2, 99.9 → 3, 99.99 → 4.
fn x_value(percentile: f64) -> f64 {
    let tail = (1.0 - percentile / 100.0).max(1e-9);
    (1.0 / tail).log10()
}

/// A round number at or above `value` (1, 2, 5 × 10^k).
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|candidate| *candidate >= value)
        .unwrap_or(10.0 * magnitude)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Map a point to SVG coordinates, given the y range `0..y_max`.
fn to_canvas(percentile: f64, ms: f64, y_max: f64) -> (f64, f64) {
    let (x_min, x_max) = (x_value(50.0), x_value(99.99));
    let plot_width = WIDTH - LEFT - RIGHT;
    let plot_height = HEIGHT - TOP - BOTTOM;
    let x = LEFT + (x_value(percentile) - x_min) / (x_max - x_min) * plot_width;
    let y = TOP + plot_height - (ms / y_max).clamp(0.0, 1.0) * plot_height;
    (x, y)
}

/// The plot of `series` titled `title`.
pub fn percentile_plot(title: &str, series: &[Series]) -> String {
    let highest = series
        .iter()
        .flat_map(|s| s.points.iter().map(|(_, ms)| *ms))
        .fold(0.0, f64::max);
    let y_max = nice_ceiling(highest);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/><text x="{LEFT}" y="22" font-size="15">{}</text>"#,
        escape(title)
    );
    // grid and axes
    for percentile in [50.0, 90.0, 99.0, 99.9, 99.99] {
        let (x, _) = to_canvas(percentile, 0.0, y_max);
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{percentile}</text>"##,
            HEIGHT - BOTTOM,
            HEIGHT - BOTTOM + 18.0
        );
    }
    for step in 0..=5 {
        let ms = y_max * f64::from(step) / 5.0;
        let (_, y) = to_canvas(50.0, ms, y_max);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            trim_number(ms)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text><text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">latency (ms)</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 10.0,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0
    );
    for (index, line) in series.iter().enumerate() {
        let color = COLORS[index % COLORS.len()];
        let points: Vec<String> = line
            .points
            .iter()
            .map(|(p, ms)| {
                let (x, y) = to_canvas(*p, *ms, y_max);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
            points.join(" "),
            escape(&line.name)
        );
        let legend_y = TOP + 10.0 + 20.0 * index as f64;
        let legend_x = WIDTH - RIGHT + 15.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{legend_x}" y1="{legend_y}" x2="{:.1}" y2="{legend_y}" stroke="{color}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            legend_x + 20.0,
            legend_x + 26.0,
            legend_y + 4.0,
            escape(&line.name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn trim_number(value: f64) -> String {
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn polyline_points(svg: &str, index: usize) -> Vec<(f64, f64)> {
        let line = svg.split("<polyline").nth(index + 1).expect("a polyline");
        let points = line
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        points
            .split(' ')
            .map(|pair| {
                let (x, y) = pair.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn percentiles_are_equally_spaced_per_nine() {
        let gap = |a: f64, b: f64| x_value(b) - x_value(a);
        assert!((gap(90.0, 99.0) - 1.0).abs() < 1e-9);
        assert!((gap(99.0, 99.9) - 1.0).abs() < 1e-6);
        assert!((gap(99.9, 99.99) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn lines_are_placed_by_percentile_and_latency() {
        let series = vec![
            Series {
                name: "create <retail & co>".into(),
                points: vec![(50.0, 0.0), (99.0, 5.0), (99.99, 10.0)],
            },
            Series {
                name: "get".into(),
                points: vec![(50.0, 1.0), (99.99, 2.0)],
            },
        ];
        let svg = percentile_plot("test", &series);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        // names are escaped
        assert!(svg.contains("create &lt;retail &amp; co&gt;"));
        assert!(!svg.contains("<retail"));
        let first = polyline_points(&svg, 0);
        // y range is 0..10 ms: 0 ms at the bottom, 10 ms at the top, 5 ms half way
        let bottom = HEIGHT - BOTTOM;
        assert!((first[0].1 - bottom).abs() < 0.1);
        assert!((first[2].1 - TOP).abs() < 0.1);
        assert!((first[1].1 - (TOP + bottom) / 2.0).abs() < 0.1);
        // p50 at the left edge, p99.99 at the right edge, p99 at 5/8 of log(2)..log(10000)
        assert!((first[0].0 - LEFT).abs() < 0.1);
        assert!((first[2].0 - (WIDTH - RIGHT)).abs() < 0.1);
        let expected = LEFT + (2.0 - 2f64.log10()) / (4.0 - 2f64.log10()) * (WIDTH - LEFT - RIGHT);
        assert!(
            (first[1].0 - expected).abs() < 0.1,
            "{} vs {expected}",
            first[1].0
        );
        // every point is inside the canvas
        for (x, y) in first.iter().chain(polyline_points(&svg, 1).iter()) {
            assert!((0.0..=WIDTH).contains(x) && (0.0..=HEIGHT).contains(y));
        }
    }

    #[test]
    fn the_y_axis_ends_on_a_round_number() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(0.42), 0.5);
    }

    #[test]
    fn series_come_from_histograms() {
        let mut latencies = Latencies::default();
        for ms in 1..=1000 {
            latencies.record(std::time::Duration::from_millis(ms));
        }
        let series = Series::of("x", &latencies);
        assert_eq!(series.points.len(), PERCENTILES.len());
        assert!((series.points[0].1 - 500.0).abs() < 1.0);
        assert!(series.points.windows(2).all(|w| w[0].1 <= w[1].1));
    }
}
