//! `loko bench --plot`: the ratio and the makespan against the number of workers, one line per
//! scenario, drawn as a plain SVG (two panels, logarithmic axes) with no dependency.

use std::fmt::Write as _;

/// One measured run.
pub struct Point {
    pub scenario: &'static str,
    pub workers: usize,
    pub ratio: f64,
    pub makespan_sim_s: f64,
    pub terraform_sim_s: f64,
}

const COLORS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
const W: f64 = 460.0;
const H: f64 = 300.0;
const LEFT: f64 = 60.0;
const TOP: f64 = 40.0;
const PLOT_W: f64 = W - LEFT - 20.0;
const PLOT_H: f64 = H - TOP - 50.0;

/// A panel's mapping from data to pixels; `x` is always log10 of workers.
struct Axes {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    log_y: bool,
    offset: f64,
}

impl Axes {
    fn px(&self, workers: usize) -> f64 {
        let x = (workers.max(1) as f64).log10();
        self.offset + LEFT + (x - self.x0) / (self.x1 - self.x0).max(1e-9) * PLOT_W
    }

    fn py(&self, v: f64) -> f64 {
        let v = if self.log_y { v.max(1e-9).log10() } else { v };
        TOP + PLOT_H - (v - self.y0) / (self.y1 - self.y0).max(1e-9) * PLOT_H
    }
}

/// The scenarios in the order they were first measured.
fn scenarios(points: &[Point]) -> Vec<&'static str> {
    let mut names: Vec<&'static str> = Vec::new();
    for p in points {
        if !names.contains(&p.scenario) {
            names.push(p.scenario);
        }
    }
    names
}

fn polyline(out: &mut String, coords: &[(f64, f64)], color: &str, dashed: bool) {
    let pts: Vec<String> = coords
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    let dash = if dashed {
        " stroke-dasharray=\"5,4\""
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>",
        pts.join(" ")
    );
    for (x, y) in coords {
        let _ = writeln!(
            out,
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{color}\"/>"
        );
    }
}

fn frame(out: &mut String, axes: &Axes, title: &str, workers: &[usize], y_ticks: &[(f64, String)]) {
    let (x, y) = (axes.offset + LEFT, TOP);
    let _ = writeln!(
        out,
        "<rect x=\"{x}\" y=\"{y}\" width=\"{PLOT_W}\" height=\"{PLOT_H}\" fill=\"none\" stroke=\"#888\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{title}</text>",
        x + PLOT_W / 2.0,
        TOP - 14.0
    );
    for &w in workers {
        let px = axes.px(w);
        let _ = writeln!(
            out,
            "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{w}</text>",
            TOP,
            TOP + PLOT_H,
            TOP + PLOT_H + 16.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">workers</text>",
        x + PLOT_W / 2.0,
        TOP + PLOT_H + 34.0
    );
    for (v, label) in y_ticks {
        let py = axes.py(*v);
        let _ = writeln!(
            out,
            "<line x1=\"{x}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            x + PLOT_W,
            x - 4.0,
            py + 4.0
        );
    }
}

/// The SVG document: ratio (left) and simulated makespan with Terraform's estimate dashed
/// (right), against workers on a log scale.
pub fn svg(points: &[Point], time_scale: f64) -> String {
    let mut workers: Vec<usize> = points.iter().map(|p| p.workers).collect();
    workers.sort_unstable();
    workers.dedup();
    let names = scenarios(points);
    let x0 = (workers.first().copied().unwrap_or(1).max(1) as f64).log10();
    let x1 = (workers.last().copied().unwrap_or(10).max(1) as f64)
        .log10()
        .max(x0 + 1.0);

    let mut out = String::new();
    let legend_h = 20.0 * (names.len() as f64 + 1.0);
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{:.0}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
        2.0 * W,
        H + legend_h
    );

    // Ratio: linear, from 1 (the bound) up to the worst measured, at least 1.10.
    let worst = points.iter().map(|p| p.ratio).fold(1.10_f64, f64::max);
    let ratio = Axes {
        x0,
        x1,
        y0: 0.95_f64.min(points.iter().map(|p| p.ratio).fold(1.0, f64::min)),
        y1: worst,
        log_y: false,
        offset: 0.0,
    };
    let step = if worst - ratio.y0 > 0.5 { 0.1 } else { 0.05 };
    let ticks: Vec<(f64, String)> = (0..)
        .map(|i| (ratio.y0 / step).ceil() * step + f64::from(i) * step)
        .take_while(|v| *v <= worst + 1e-9)
        .map(|v| (v, format!("{v:.2}")))
        .collect();
    frame(&mut out, &ratio, "makespan / lower bound", &workers, &ticks);
    let target = ratio.py(1.05);
    let _ = writeln!(
        out,
        "<line x1=\"{LEFT}\" y1=\"{target:.1}\" x2=\"{:.1}\" y2=\"{target:.1}\" stroke=\"#000\" stroke-dasharray=\"2,3\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"10\">target 1.05</text>",
        LEFT + PLOT_W,
        LEFT + PLOT_W - 4.0,
        target - 4.0
    );

    // Makespan in simulated seconds, log scale, with Terraform's waves of 10.
    let values = points
        .iter()
        .flat_map(|p| [p.makespan_sim_s, p.terraform_sim_s])
        .filter(|v| *v > 0.0);
    let (lo, hi) = values.fold((f64::MAX, 1.0_f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let makespan = Axes {
        x0,
        x1,
        y0: lo.min(hi).max(1.0).log10().floor(),
        y1: hi.log10().ceil().max(lo.max(1.0).log10().floor() + 1.0),
        log_y: true,
        offset: W,
    };
    let ticks: Vec<(f64, String)> = (makespan.y0 as i32..=makespan.y1 as i32)
        .map(|e| {
            let v = 10f64.powi(e);
            (v, format!("{v}s"))
        })
        .collect();
    frame(
        &mut out,
        &makespan,
        "makespan, simulated seconds",
        &workers,
        &ticks,
    );

    for (i, name) in names.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let mine: Vec<&Point> = points.iter().filter(|p| p.scenario == *name).collect();
        let coords = |f: &dyn Fn(&Point) -> f64, axes: &Axes| -> Vec<(f64, f64)> {
            mine.iter()
                .map(|p| (axes.px(p.workers), axes.py(f(p))))
                .collect()
        };
        polyline(&mut out, &coords(&|p| p.ratio, &ratio), color, false);
        polyline(
            &mut out,
            &coords(&|p| p.makespan_sim_s, &makespan),
            color,
            false,
        );
        polyline(
            &mut out,
            &coords(&|p| p.terraform_sim_s, &makespan),
            color,
            true,
        );
        let y = H + 20.0 * i as f64;
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT}\" y1=\"{y:.0}\" x2=\"{:.0}\" y2=\"{y:.0}\" stroke=\"{color}\" stroke-width=\"2\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\">{name}</text>",
            LEFT + 24.0,
            LEFT + 30.0,
            y + 4.0
        );
    }
    let y = H + 20.0 * names.len() as f64;
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{y:.0}\">solid: loko (time scale {time_scale}); dashed: Terraform's \
         parallelism of 10 on the same simulated times (waves of 10 devices)</text>\n</svg>"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_scenario_and_terraform_dashed() {
        let p = |scenario, workers, ratio| Point {
            scenario,
            workers,
            ratio,
            makespan_sim_s: 380.0,
            terraform_sim_s: 370.0 * workers as f64,
        };
        let svg = svg(
            &[
                p("create", 1, 1.03),
                p("create", 100, 1.04),
                p("destroy", 1, 1.2),
                p("destroy", 100, 1.1),
            ],
            0.2,
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // Ratio, makespan and Terraform's line for each of the two scenarios.
        assert_eq!(svg.matches("<polyline").count(), 6);
        assert_eq!(svg.matches("stroke-dasharray=\"5,4\"").count(), 2);
        assert!(svg.contains(">create<") && svg.contains(">destroy<"));
    }
}
