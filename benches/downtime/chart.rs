//! The timeline chart (SVG, `plotters`): one panel per procedure, side by side (one row per
//! round), all on the same axes: successful (green) and failed (red) requests per second,
//! stacked, against the seconds from the start of the procedure; the procedure's own run is
//! shaded.

use anyhow::{Result, anyhow};
use plotters::prelude::*;

use crate::figures::Bucket;

/// One procedure's panel.
pub struct Panel {
    pub title: String,
    pub buckets: Vec<Bucket>,
    /// How long the procedure ran (from 0 on the x axis).
    pub wall_s: f64,
}

const PANEL_WIDTH: u32 = 520;
const PANEL_HEIGHT: u32 = 340;
const TITLE_HEIGHT: u32 = 40;
const OK: RGBColor = RGBColor(46, 139, 87);
const FAILED: RGBColor = RGBColor(214, 39, 40);
const RUNNING: RGBColor = RGBColor(120, 120, 120);

/// The SVG document for `panels` in rows of `columns` (same x and y ranges on every panel),
/// under `title`.
pub fn render(panels: &[Panel], columns: usize, title: &str) -> Result<String> {
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let from = panels
        .iter()
        .filter_map(|p| p.buckets.first())
        .map(|b| b.second)
        .min()
        .unwrap_or(0);
    let to = panels
        .iter()
        .filter_map(|p| p.buckets.last())
        .map(|b| b.second + 1)
        .max()
        .unwrap_or(1);
    let peak = panels
        .iter()
        .flat_map(|p| &p.buckets)
        .map(|b| b.ok + b.failed)
        .max()
        .unwrap_or(0);
    // Headroom above the tallest bar for the legend, rounded up to a multiple of 5.
    let y_max = ((peak + peak / 2 + 1).div_ceil(5) * 5).max(5) as f64;
    let (x0, x1) = (from as f64, to as f64);

    let width = PANEL_WIDTH * columns as u32;
    let height = TITLE_HEIGHT + PANEL_HEIGHT * rows as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| anyhow!("{e:?}"))?;
        let root = root
            .titled(title, ("sans-serif", 18))
            .map_err(|e| anyhow!("{e:?}"))?;
        let areas = root.split_evenly((rows, columns));
        for (area, panel) in areas.iter().zip(panels) {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 15))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(44)
                .build_cartesian_2d(x0..x1, 0.0..y_max)
                .map_err(|e| anyhow!("{e:?}"))?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_desc("seconds from the start of the procedure")
                .y_desc("requests per second")
                .x_labels(10)
                .y_labels(6)
                .max_light_lines(0)
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|y| format!("{y:.0}"))
                .label_style(("sans-serif", 12))
                .axis_desc_style(("sans-serif", 12))
                .draw()
                .map_err(|e| anyhow!("{e:?}"))?;
            let running = RUNNING.mix(0.15).filled();
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(0.0, 0.0), (panel.wall_s, y_max)],
                    running,
                )))
                .map_err(|e| anyhow!("{e:?}"))?
                .label(format!("procedure ({:.1} s)", panel.wall_s))
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], running));
            let bar = |b: &Bucket, low: usize, high: usize, color: RGBColor| {
                let left = b.second as f64 + 0.1;
                let right = b.second as f64 + 0.9;
                Rectangle::new([(left, low as f64), (right, high as f64)], color.filled())
            };
            chart
                .draw_series(
                    panel
                        .buckets
                        .iter()
                        .filter(|b| b.ok > 0)
                        .map(|b| bar(b, 0, b.ok, OK)),
                )
                .map_err(|e| anyhow!("{e:?}"))?
                .label("successful")
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], OK.filled()));
            chart
                .draw_series(
                    panel
                        .buckets
                        .iter()
                        .filter(|b| b.failed > 0)
                        .map(|b| bar(b, b.ok, b.ok + b.failed, FAILED)),
                )
                .map_err(|e| anyhow!("{e:?}"))?
                .label("failed")
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], FAILED.filled()));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .label_font(("sans-serif", 12))
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.4))
                .draw()
                .map_err(|e| anyhow!("{e:?}"))?;
        }
        root.present().map_err(|e| anyhow!("{e:?}"))?;
    }
    Ok(svg)
}

pub fn tests() -> Vec<(&'static str, fn())> {
    vec![(
        "chart::renders_one_panel_per_procedure",
        renders_one_panel_per_procedure,
    )]
}

fn renders_one_panel_per_procedure() {
    let bucket = |second, ok, failed| Bucket { second, ok, failed };
    let panels = [
        Panel {
            title: "runbook".into(),
            buckets: vec![bucket(-1, 20, 0), bucket(0, 17, 3), bucket(1, 20, 0)],
            wall_s: 1.4,
        },
        Panel {
            title: "plugin".into(),
            buckets: vec![bucket(-1, 20, 0), bucket(0, 20, 0), bucket(1, 20, 0)],
            wall_s: 1.2,
        },
    ];
    let svg = render(&panels, 2, "openai-api-key at 20 requests/s").expect("an SVG");
    assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
    assert!(svg.trim_end().ends_with("</svg>"));
    for text in [
        "runbook",
        "plugin",
        "openai-api-key at 20 requests/s",
        "failed",
    ] {
        assert!(svg.contains(text), "{text:?} is missing");
    }
    assert!(svg.contains(&format!("width=\"{}\"", 2 * PANEL_WIDTH)));
    assert!(svg.contains(&format!("height=\"{}\"", TITLE_HEIGHT + PANEL_HEIGHT)));
    // Two rounds of two procedures: two rows.
    let four: Vec<Panel> = panels
        .iter()
        .chain(&panels)
        .map(|p| Panel {
            title: p.title.clone(),
            buckets: p.buckets.clone(),
            wall_s: p.wall_s,
        })
        .collect();
    let svg = render(&four, 2, "two rounds").expect("an SVG");
    assert!(svg.contains(&format!("height=\"{}\"", TITLE_HEIGHT + 2 * PANEL_HEIGHT)));
    // 3 + 3 green bars, 1 red one, 2 shaded runs, plus the legend swatches.
    let fill = |c: RGBColor| format!("fill=\"#{:02X}{:02X}{:02X}\"", c.0, c.1, c.2);
    assert!(svg.matches(&fill(FAILED)).count() >= 1);
    assert!(svg.matches(&fill(OK)).count() >= 6);
}
