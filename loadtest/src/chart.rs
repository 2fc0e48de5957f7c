//! The PNG chart: throughput and p99 against users, one line per plan, saturation points circled.
//!
//! Text is drawn with plotters' `ab_glyph` backend and the DejaVu Sans font compiled in (the `dejavu`
//! crate), so the chart renders the same on a machine with no fonts or fontconfig installed.

use std::path::Path;

use anyhow::{Context, anyhow};
use plotters::{
    coord::Shift,
    prelude::*,
    style::{FontStyle, register_font},
};

use crate::plan::PlanResult;

const WIDTH: u32 = 1400;
const HEIGHT: u32 = 640;

/// One line of the chart.
struct Series<'a> {
    plan: &'a PlanResult,
    label: String,
    color: RGBColor,
}

/// Draws `plans` (with their labels) to `path`.
pub fn draw(path: &Path, title: &str, plans: &[(&PlanResult, &str)]) -> anyhow::Result<()> {
    register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow!("the built-in font does not load"))?;
    register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold())
        .map_err(|_| anyhow!("the built-in font does not load"))?;
    const COLORS: [RGBColor; 5] = [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
        RGBColor(255, 127, 14),
    ];
    let series: Vec<Series> = plans
        .iter()
        .zip(COLORS.iter().cycle())
        .map(|((plan, label), color)| Series {
            plan,
            label: (*label).to_owned(),
            color: *color,
        })
        .collect();

    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let (header, body) = root.split_vertically(64);
    header
        .draw_text(
            title,
            &("sans-serif", 22, FontStyle::Bold).into_text_style(&header),
            (20, 10),
        )
        .map_err(draw_error)?;
    header
        .draw_text(
            "Each point is one step of closed-loop goose users; a ring marks the saturation point \
             (or the busiest step when the plan did not reach it).",
            &("sans-serif", 14).into_text_style(&header),
            (20, 40),
        )
        .map_err(draw_error)?;
    let (left, right) = body.split_horizontally(WIDTH / 2);
    panel(
        &left,
        &series,
        "Throughput (successful answers/s)",
        "answers/s",
        |s| s.focus.ok_per_sec,
    )?;
    panel(&right, &series, "p99 latency (ms)", "p99 ms", |s| {
        s.focus.latency.p99_ms
    })?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    series: &[Series],
    caption: &str,
    y_label: &str,
    value: fn(&crate::plan::StepResult) -> f64,
) -> anyhow::Result<()> {
    let points = || {
        series
            .iter()
            .flat_map(|s| {
                s.plan
                    .steps
                    .iter()
                    .map(move |step| (step.users as f64, value(step)))
            })
            .filter(|(_, y)| y.is_finite() && *y > 0.0)
    };
    let x_max = points().map(|(x, _)| x).fold(2.0, f64::max) * 1.4;
    let x_min = points().map(|(x, _)| x).fold(x_max, f64::min).max(1.0) / 1.4;
    let y_max = points().map(|(_, y)| y).fold(1.0, f64::max) * 2.0;
    let y_min = points().map(|(_, y)| y).fold(y_max, f64::min).max(0.01) / 2.0;

    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((x_min..x_max).log_scale(), (y_min..y_max).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("concurrent users (log scale)")
        .y_desc(format!("{y_label} (log scale)"))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| short_number(*y))
        .draw()
        .map_err(draw_error)?;

    for s in series {
        let line: Vec<(f64, f64)> = s
            .plan
            .steps
            .iter()
            .map(|step| (step.users as f64, value(step)))
            .filter(|(_, y)| y.is_finite() && *y > 0.0)
            .collect();
        let color = s.color;
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(draw_error)?
            .label(s.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(draw_error)?;
        if let Some(step) = s.plan.quoted_step() {
            let at = (step.users as f64, value(step));
            if at.1 > 0.0 {
                chart
                    .draw_series(std::iter::once(Circle::new(at, 9, color.stroke_width(2))))
                    .map_err(draw_error)?;
            }
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(draw_error)?;
    Ok(())
}

/// 1234 → "1.2k", 0.5 → "0.5".
fn short_number(value: f64) -> String {
    if value >= 1000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

fn draw_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}
