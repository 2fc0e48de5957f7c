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

use crate::plan::{PlanResult, StepResult};

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
    register_fonts()?;
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
        Scale::Linear,
        |s| s.focus.ok_per_sec,
    )?;
    panel(
        &right,
        &series,
        "p99 latency (ms)",
        "p99 ms (log scale)",
        Scale::Log,
        |s| s.focus.latency.p99_ms,
    )?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// How a panel's y axis is drawn.
#[derive(Clone, Copy)]
enum Scale {
    /// From zero, linear.
    Linear,
    /// Logarithmic (the values are plotted as their log10).
    Log,
}

impl Scale {
    fn to_axis(self, y: f64) -> f64 {
        match self {
            Scale::Linear => y,
            Scale::Log => y.log10(),
        }
    }

    fn value_at(self, y: f64) -> f64 {
        match self {
            Scale::Linear => y,
            Scale::Log => 10f64.powf(y),
        }
    }
}

/// One panel: users on a log2 axis (the plans double them), the values on `scale`.
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    series: &[Series],
    caption: &str,
    y_desc: &str,
    scale: Scale,
    value: fn(&StepResult) -> f64,
) -> anyhow::Result<()> {
    let line_of = |plan: &PlanResult| -> Vec<(f64, f64)> {
        plan.steps
            .iter()
            .map(|step| (step.users as f64, value(step)))
            .filter(|(x, y)| *x > 0.0 && y.is_finite() && *y > 0.0)
            .map(|(x, y)| (x.log2(), scale.to_axis(y)))
            .collect()
    };
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| line_of(s.plan)).collect();
    let x_max = all.iter().map(|p| p.0).fold(1.0, f64::max) + 0.4;
    let x_min = all.iter().map(|p| p.0).fold(x_max, f64::min) - 0.4;
    let (y_min, y_max) = match scale {
        Scale::Linear => (0.0, all.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15),
        Scale::Log => (
            all.iter()
                .map(|p| p.1)
                .fold(f64::INFINITY, f64::min)
                .min(0.0)
                .floor(),
            all.iter().map(|p| p.1).fold(1.0, f64::max).ceil(),
        ),
    };

    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min..x_max, y_min..y_max)
        .map_err(draw_error)?;
    let x_ticks = (x_max - x_min).round() as usize + 1;
    chart
        .configure_mesh()
        .x_desc("concurrent users (doubling each step)")
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .x_labels(x_ticks)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 0.01 {
                format!("{:.0}", 2f64.powf(x.round()))
            } else {
                String::new()
            }
        })
        .y_labels(match scale {
            Scale::Linear => 10,
            Scale::Log => ((y_max - y_min) as usize * 2 + 1).max(3),
        })
        .y_label_formatter(&|y| short_number(scale.value_at(*y)))
        .draw()
        .map_err(draw_error)?;

    for s in series {
        let line = line_of(s.plan);
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
            let y = value(step);
            if step.users > 0 && y.is_finite() && y > 0.0 {
                let at = ((step.users as f64).log2(), scale.to_axis(y));
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

/// 12345 → "12k", 1500 → "1.5k", 0.5 → "0.5".
fn short_number(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 1000.0 {
        format!("{:.1}k", value / 1000.0)
    } else if value >= 10.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// Registers the DejaVu font compiled into the binary (no system fonts needed).
fn register_fonts() -> anyhow::Result<()> {
    register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| anyhow!("the built-in font does not load"))?;
    register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold())
        .map_err(|_| anyhow!("the built-in font does not load"))
}

fn draw_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}

/// One line of the fan-out chart: deliveries per CPU-second at each number of subscribers.
pub struct FanoutLine {
    pub label: String,
    pub points: Vec<(usize, f64)>,
}

/// Deliveries per CPU-second against subscribers (log scale), one line each: the kernel's floor
/// beside the publish-server.
pub fn draw_fanout(path: &Path, title: &str, lines: &[FanoutLine]) -> anyhow::Result<()> {
    register_fonts()?;
    // The floors in grey and orange, hotchat in blue and green.
    const COLORS: [RGBColor; 4] = [
        RGBColor(90, 90, 90),
        RGBColor(255, 127, 14),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
    ];
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let points: Vec<(f64, f64)> = lines
        .iter()
        .flat_map(|l| l.points.iter())
        .map(|&(n, y)| ((n as f64).log10(), y))
        .collect();
    let x_min = points.iter().map(|p| p.0).fold(f64::INFINITY, f64::min) - 0.3;
    let x_max = points.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max) + 0.3;
    let y_max = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.2;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d(x_min..x_max, 0.0..y_max)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("subscribers (log scale)")
        .y_desc("deliveries per CPU-second")
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .x_labels(12)
        .x_label_formatter(&|x| {
            if (x - x.round()).abs() < 0.01 {
                short_number(10f64.powf(x.round()))
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| short_number(*y))
        .draw()
        .map_err(draw_error)?;
    for (line, color) in lines.iter().zip(COLORS.iter().cycle()) {
        let xy: Vec<(f64, f64)> = line
            .points
            .iter()
            .map(|&(n, y)| ((n as f64).log10(), y))
            .collect();
        let color = *color;
        chart
            .draw_series(LineSeries::new(xy.clone(), color.stroke_width(2)))
            .map_err(draw_error)?
            .label(line.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(xy.iter().map(|&p| Circle::new(p, 4, color.filled())))
            .map_err(draw_error)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 13))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_error)?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
