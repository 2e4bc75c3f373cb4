//! Self-contained plots of a load run: throughput, P50/P99 latency and errors per second, with the
//! phases of the plan (and marks such as a killed instance) drawn over them — one HTML page with
//! inline SVG beside goose's report, which opens without a network (goose's own charts load their
//! script from the internet and stay blank offline).
//!
//! Written by hand rather than with a plotting crate: three line charts of a few hundred points
//! are a few dozen lines of SVG text, where plotters and the like would add a large dependency
//! tree to a crate built on every test run. Every number that reaches the SVG is finite (counts
//! and microseconds are integers; scales are guarded against zero), and memory is bounded by
//! [`MAX_SECONDS`] whatever the samples say.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::observe::Sample;
use crate::profile::Phase;
use crate::report::percentile;

/// The longest run plotted second by second (10 hours); later samples fall in its last second.
pub(crate) const MAX_SECONDS: u64 = 36_000;

/// One second of a run: requests started in it, how many failed, and their P50/P99.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Second {
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) p50_us: u64,
    pub(crate) p99_us: u64,
}

/// The run second by second, from the first second to the last one with a sample (seconds
/// without a request are zero); empty without samples.
pub(crate) fn timeline(samples: &[Sample]) -> Vec<Second> {
    let mut by_second: BTreeMap<u64, (Vec<u64>, u64)> = BTreeMap::new();
    for s in samples {
        let second = (s.elapsed_ms / 1000).min(MAX_SECONDS - 1);
        let (times, errors) = by_second.entry(second).or_default();
        times.push(s.micros);
        *errors += u64::from(!s.success);
    }
    let last = by_second.keys().next_back().map_or(0, |l| l + 1);
    let mut out = vec![Second::default(); usize::try_from(last).unwrap_or(0)];
    for (second, (mut times, errors)) in by_second {
        times.sort_unstable();
        if let Some(slot) = usize::try_from(second).ok().and_then(|i| out.get_mut(i)) {
            *slot = Second {
                requests: times.len() as u64,
                errors,
                p50_us: percentile(&times, 0.50),
                p99_us: percentile(&times, 0.99),
            };
        }
    }
    out
}

/// A vertical line at a moment of the run, with its label (a killed instance, say).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Mark {
    pub(crate) at_s: f64,
    pub(crate) label: String,
}

/// Escapes text for XML content and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `value` (1 for zero, negatives and non-numbers).
pub(crate) fn nice_max(value: f64) -> f64 {
    if !value.is_finite() || value <= 1.0 {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    // Near `f64::MAX` the next round step overflows to infinity: the value
    // itself is then the top of the axis.
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|v| *v >= value)
        .filter(|v| v.is_finite())
        .unwrap_or(value)
}

const WIDTH: f64 = 960.0;
const PANEL: f64 = 190.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 34.0;
const GAP: f64 = 44.0;

/// One line of a panel: its name, colour and a value per second.
struct Line<'a> {
    name: &'a str,
    colour: &'a str,
    values: Vec<f64>,
}

/// A chart: title, unit, lines over the run's seconds.
fn panel(out: &mut String, index: usize, title: &str, seconds: usize, lines: &[Line<'_>]) {
    let top = TOP + index as f64 * (PANEL + GAP);
    let inner = WIDTH - LEFT - RIGHT;
    let max = nice_max(
        lines
            .iter()
            .flat_map(|l| l.values.iter().copied())
            .fold(0.0, f64::max),
    );
    let span = seconds.max(1) as f64;
    let x = |s: f64| LEFT + s / span * inner;
    let y = |v: f64| top + PANEL - (v.clamp(0.0, max) / max) * PANEL;
    let _ = write!(
        out,
        r##"<text x="{LEFT}" y="{:.1}" class="title">{}</text>"##,
        top - 8.0,
        escape(title)
    );
    let _ = write!(
        out,
        r##"<rect x="{LEFT}" y="{top:.1}" width="{inner:.1}" height="{PANEL}" class="frame"/>"##
    );
    for step in 0..=4 {
        let v = max * f64::from(step) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="axis" text-anchor="end">{}</text>"##,
            LEFT + inner,
            LEFT - 6.0,
            y(v) + 4.0,
            trim(v),
            y = y(v),
        );
    }
    let tick = nice_max(span / 10.0);
    let mut t = 0.0;
    while t <= span {
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{}s</text>"##,
            x(t),
            top + PANEL + 14.0,
            trim(t)
        );
        t += tick;
    }
    for (i, line) in lines.iter().enumerate() {
        let points: Vec<String> = line
            .values
            .iter()
            .enumerate()
            .map(|(s, v)| format!("{:.1},{:.1}", x(s as f64 + 0.5), y(*v)))
            .collect();
        if !points.is_empty() {
            let _ = write!(
                out,
                r##"<polyline fill="none" stroke="{}" stroke-width="1.6" points="{}"/>"##,
                line.colour,
                points.join(" ")
            );
        }
        let lx = LEFT + inner - 150.0 + i as f64 * 75.0;
        let _ = write!(
            out,
            r##"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{:.1}" class="axis">{}</text>"##,
            top - 18.0,
            line.colour,
            lx + 14.0,
            top - 9.0,
            escape(line.name)
        );
    }
}

/// A number without trailing zeros (`12`, `0.5`).
fn trim(v: f64) -> String {
    let text = format!("{v:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// The three charts as one SVG element. `phases` (when the run followed a known plan) shade and
/// name each phase; `marks` draw a labelled line each.
pub(crate) fn svg(samples: &[Sample], phases: &[Phase], marks: &[Mark]) -> String {
    let seconds = timeline(samples);
    let planned: u64 = phases.iter().map(|p| p.secs).sum();
    let span = seconds
        .len()
        .max(usize::try_from(planned.min(MAX_SECONDS)).unwrap_or(0))
        .max(1);
    let height = TOP + 3.0 * (PANEL + GAP);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11"><style>.title{{font-size:13px;font-weight:bold}}.axis{{fill:#444}}.frame{{fill:none;stroke:#999}}.grid{{stroke:#eee}}.phase{{fill:#555;font-size:10px}}.mark{{stroke:#c00;stroke-width:1.5;stroke-dasharray:4 3}}</style>"##
    );
    let ms = |f: fn(&Second) -> u64| -> Vec<f64> {
        seconds.iter().map(|s| f(s) as f64 / 1000.0).collect()
    };
    let count =
        |f: fn(&Second) -> u64| -> Vec<f64> { seconds.iter().map(|s| f(s) as f64).collect() };
    panel(
        &mut out,
        0,
        "Throughput (requests started per second)",
        span,
        &[Line {
            name: "req/s",
            colour: "#1f77b4",
            values: count(|s| s.requests),
        }],
    );
    panel(
        &mut out,
        1,
        "Latency (ms) of the requests started each second",
        span,
        &[
            Line {
                name: "P50",
                colour: "#2ca02c",
                values: ms(|s| s.p50_us),
            },
            Line {
                name: "P99",
                colour: "#ff7f0e",
                values: ms(|s| s.p99_us),
            },
        ],
    );
    panel(
        &mut out,
        2,
        "Errors per second",
        span,
        &[Line {
            name: "errors",
            colour: "#d62728",
            values: count(|s| s.errors),
        }],
    );
    let inner = WIDTH - LEFT - RIGHT;
    let x = |s: f64| LEFT + (s.clamp(0.0, span as f64) / span as f64) * inner;
    let bottom = TOP + 3.0 * PANEL + 2.0 * GAP;
    let mut from: u64 = 0;
    for phase in phases {
        let at = x(from as f64);
        let _ = write!(
            out,
            r##"<line x1="{at:.1}" x2="{at:.1}" y1="{TOP}" y2="{bottom:.1}" stroke="#bbb" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}" class="phase">{}</text>"##,
            at + 3.0,
            TOP + 11.0,
            escape(phase.name)
        );
        from = from.saturating_add(phase.secs);
    }
    for mark in marks {
        let at = x(if mark.at_s.is_finite() {
            mark.at_s
        } else {
            0.0
        });
        let _ = write!(
            out,
            r##"<line x1="{at:.1}" x2="{at:.1}" y1="{TOP}" y2="{bottom:.1}" class="mark"/><text x="{:.1}" y="{:.1}" fill="#c00">{}</text>"##,
            at + 3.0,
            TOP + 24.0,
            escape(&mark.label)
        );
    }
    if samples.is_empty() {
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" class="title">no request was made</text>"##,
            WIDTH / 2.0,
            TOP + PANEL / 2.0
        );
    }
    out.push_str("</svg>");
    out
}

/// A whole page: a title, the text report, the charts. Nothing in it refers to another resource.
pub(crate) fn page(title: &str, report: &str, svg: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;margin:1.5em}}pre{{font-size:12px;overflow-x:auto}}</style>\
         </head><body><h1>{t}</h1>\n{svg}\n<pre>{}</pre></body></html>\n",
        escape(report),
        t = escape(title),
    )
}

/// Where the plots of a run go: beside `report` (goose's report file), `-plots.html` after its
/// stem.
pub(crate) fn path_beside(report: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(report);
    let stem = path
        .file_stem()
        .map_or_else(|| "report".into(), |s| s.to_string_lossy());
    path.with_file_name(format!("{stem}-plots.html"))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn sample(elapsed_ms: u64, micros: u64, success: bool) -> Sample {
        Sample {
            elapsed_ms,
            micros,
            success,
            name: 0,
        }
    }

    /// Nothing in the output may make a browser fetch anything.
    fn self_contained(text: &str) -> bool {
        let lower = text.to_ascii_lowercase();
        !lower.contains("<script")
            && !lower.contains("src=")
            && !lower.contains("href=")
            && !lower.contains("url(")
            && !lower.contains("@import")
    }

    #[test]
    fn seconds_count_requests_errors_and_percentiles() {
        let samples = [
            sample(10, 1_000, true),
            sample(900, 3_000, false),
            sample(2_500, 5_000, true),
        ];
        let t = timeline(&samples);
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[0],
            Second {
                requests: 2,
                errors: 1,
                p50_us: 1_000,
                p99_us: 3_000
            }
        );
        assert_eq!(t[1], Second::default(), "a second without requests");
        assert_eq!((t[2].requests, t[2].p99_us), (1, 5_000));
        assert!(timeline(&[]).is_empty());
    }

    #[test]
    fn far_samples_stay_bounded() {
        let t = timeline(&[sample(u64::MAX, u64::MAX, false)]);
        assert_eq!(t.len(), MAX_SECONDS as usize);
        assert_eq!(t[t.len() - 1].errors, 1);
    }

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
        assert_eq!(nice_max(-3.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(120.0), 200.0);
        assert_eq!(nice_max(500.0), 500.0);
        assert_eq!(nice_max(501.0), 1000.0);
        assert_eq!(nice_max(1.0302811763272762e308), 1.0302811763272762e308);
        assert_eq!(nice_max(f64::MAX), f64::MAX);
    }

    #[test]
    fn an_empty_run_still_draws_its_axes_and_phases() {
        let phases = [Phase {
            name: "warm-up",
            users: 10,
            secs: 5,
        }];
        let svg = svg(&[], &phases, &[]);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert!(svg.contains("no request was made"));
        assert!(svg.contains(">warm-up<"));
        assert!(self_contained(&svg));
    }

    #[test]
    fn labels_are_escaped_and_the_page_is_self_contained() {
        let marks = [Mark {
            at_s: 2.0,
            label: "kill -9 <api-b> & \"more\"".to_owned(),
        }];
        let svg = svg(&[sample(0, 1_500, true)], &[], &marks);
        assert!(svg.contains("kill -9 &lt;api-b&gt; &amp; &quot;more&quot;"));
        let page = page("run <1>", "P50 < 200 ms", &svg);
        assert!(page.contains("<title>run &lt;1&gt;</title>"));
        assert!(page.contains("P50 &lt; 200 ms"));
        assert!(self_contained(&page));
    }

    #[test]
    fn plots_go_beside_the_report() {
        assert_eq!(
            path_beside("/tmp/x/report-full.html"),
            std::path::Path::new("/tmp/x/report-full-plots.html")
        );
        assert_eq!(path_beside("r.json"), std::path::Path::new("r-plots.html"));
    }

    proptest! {
        #[test]
        fn any_series_renders_finite_self_contained_svg(
            raw in proptest::collection::vec((0u64..200_000, any::<u64>(), any::<bool>()), 0..400),
            secs in proptest::collection::vec(0u64..100, 0..6),
            mark in proptest::num::f64::ANY,
        ) {
            let samples: Vec<Sample> = raw.iter().map(|&(e, m, s)| sample(e, m, s)).collect();
            let phases: Vec<Phase> = secs.iter().map(|&secs| Phase { name: "p", users: 1, secs }).collect();
            let marks = [Mark { at_s: mark, label: "m".to_owned() }];
            let svg = svg(&samples, &phases, &marks);
            prop_assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
            prop_assert!(!svg.contains("NaN") && !svg.contains("inf"));
            prop_assert!(self_contained(&svg));
            let t = timeline(&samples);
            prop_assert_eq!(t.iter().map(|s| s.requests).sum::<u64>(), samples.len() as u64);
            prop_assert_eq!(
                t.iter().map(|s| s.errors).sum::<u64>(),
                samples.iter().filter(|s| !s.success).count() as u64
            );
            prop_assert!(t.iter().all(|s| s.p50_us <= s.p99_us && s.errors <= s.requests));
        }

        #[test]
        fn nice_max_is_at_least_the_value(v in proptest::num::f64::ANY) {
            let m = nice_max(v);
            prop_assert!(m.is_finite() && m >= 1.0);
            if v.is_finite() && v > 1.0 {
                prop_assert!(m >= v && m <= v * 10.0 + 1e-9);
            }
        }
    }
}
