//! The harness's figures: percentiles over the raw samples, the JSON written to
//! `target/bench/lambda-harness.json`, and the Markdown report (every figure
//! also as a ratio to hello-lambda, the per-event breakdown, the targets).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::runtime::WarmRun;

/// The floor's package name (the first row of every report).
const FLOOR: &str = "hello-lambda";

/// The single-item reads the embedded warm p99 target applies to.
const SINGLE_READS: &[&str] = &["health.json", "categories-get.json", "products-get.json", "users-get-farmer.json"];

const MIB: f64 = 1024.0 * 1024.0;

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples.
fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// One sample event's share of a warm run.
#[derive(Debug, Serialize)]
pub struct EventFigures {
    pub event: String,
    pub invocations: usize,
    pub p50_us: f64,
    pub p99_us: f64,
    /// Answer label (status code, `batch ok`, ...) to how many times it came back.
    pub outcomes: BTreeMap<String, usize>,
}

/// A function in one configuration.
#[derive(Debug, Serialize)]
pub struct ConfigFigures {
    /// Spawn to first `next`, one per fresh process, in order.
    pub init_us: Vec<f64>,
    pub init_median_us: f64,
    pub init_p90_us: f64,
    /// Warm latencies (event handed out to response received), in order.
    pub warm_us: Vec<f64>,
    pub warm_p50_us: f64,
    pub warm_p99_us: f64,
    pub peak_rss_bytes: u64,
    /// Init of the process the warm invocations ran in (not among `init_us`).
    pub warm_process_init_us: f64,
    pub events: Vec<EventFigures>,
}

impl ConfigFigures {
    pub fn new(init: Vec<Duration>, warm: WarmRun, event_names: Vec<String>) -> Self {
        let init_us: Vec<f64> = init.into_iter().map(micros).collect();
        let warm_us: Vec<f64> = warm.invocations.iter().map(|i| micros(i.latency)).collect();
        let events = event_names
            .into_iter()
            .enumerate()
            .map(|(index, event)| {
                let mine: Vec<_> = warm.invocations.iter().filter(|i| i.event == index).collect();
                let samples: Vec<f64> = mine.iter().map(|i| micros(i.latency)).collect();
                let mut outcomes = BTreeMap::new();
                for invocation in &mine {
                    *outcomes.entry(invocation.outcome.clone()).or_default() += 1;
                }
                EventFigures {
                    event,
                    invocations: mine.len(),
                    p50_us: percentile(&samples, 50.0),
                    p99_us: percentile(&samples, 99.0),
                    outcomes,
                }
            })
            .collect();
        Self {
            init_median_us: percentile(&init_us, 50.0),
            init_p90_us: percentile(&init_us, 90.0),
            init_us,
            warm_p50_us: percentile(&warm_us, 50.0),
            warm_p99_us: percentile(&warm_us, 99.0),
            warm_us,
            peak_rss_bytes: warm.peak_rss_bytes,
            warm_process_init_us: micros(warm.init),
            events,
        }
    }
}

/// Stripped arm64 bootstrap and its zip.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Arm64Size {
    pub bootstrap_bytes: u64,
    pub zip_bytes: u64,
}

/// Everything measured for one function.
#[derive(Debug, Serialize)]
pub struct FunctionFigures {
    pub function: String,
    /// By configuration: `embedded`, `aws`.
    pub configs: BTreeMap<String, ConfigFigures>,
    pub arm64: Option<Arm64Size>,
}

impl FunctionFigures {
    pub fn new(function: &str) -> Self {
        Self { function: function.to_owned(), configs: BTreeMap::new(), arm64: None }
    }
}

/// The machine the figures come from.
#[derive(Debug, Serialize)]
pub struct Machine {
    pub cpu_model: String,
    pub logical_cpus: usize,
    pub kernel: String,
    pub memory_total: String,
    /// `/proc/loadavg` when the report was written (other work on the machine
    /// shows here: every process measured shares its CPUs).
    pub load_average: String,
}

impl Machine {
    fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |line: &str| line.split_once(':').map(|(_, v)| v.trim().to_owned());
        let cpu_model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(field).unwrap_or_default();
        let logical_cpus = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_total = meminfo.lines().find(|l| l.starts_with("MemTotal")).and_then(field).unwrap_or_default();
        let load_average = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        let load_average = load_average.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
        Self { cpu_model, logical_cpus, kernel, memory_total, load_average }
    }
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub command: String,
    pub settings: String,
    pub seed: &'static str,
    pub machine: Machine,
    pub functions: Vec<FunctionFigures>,
}

fn ms(us: f64) -> String {
    if us < 10_000.0 {
        format!("{:.3}", us / 1000.0)
    } else {
        format!("{:.1}", us / 1000.0)
    }
}

fn ratio(value: f64, floor: f64) -> String {
    if floor > 0.0 && value.is_finite() {
        format!("{:.2}×", value / floor)
    } else {
        "–".into()
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / MIB)
}

impl Report {
    pub fn new(command: String, settings: &str, functions: Vec<FunctionFigures>) -> Self {
        Self {
            command,
            settings: settings.to_owned(),
            seed: crate::backend::SEED_SUMMARY,
            machine: Machine::read(),
            functions,
        }
    }

    fn floor(&self) -> Option<&FunctionFigures> {
        self.functions.iter().find(|f| f.function == FLOOR)
    }

    fn configs(&self) -> Vec<String> {
        let mut configs: Vec<String> = self.functions.iter().flat_map(|f| f.configs.keys().cloned()).collect();
        configs.sort();
        configs.dedup();
        configs.reverse(); // embedded first
        configs
    }

    /// A "a / b ms (x× / y×)" cell for a pair of figures of one configuration.
    fn pair(&self, function: &FunctionFigures, config: &str, get: impl Fn(&ConfigFigures) -> (f64, f64)) -> String {
        let Some(mine) = function.configs.get(config) else { return "–".into() };
        let (a, b) = get(mine);
        let floor = self.floor().and_then(|f| f.configs.get(config)).map(&get);
        match floor {
            Some((fa, fb)) => format!("{} / {} ms ({} / {})", ms(a), ms(b), ratio(a, fa), ratio(b, fb)),
            None => format!("{} / {} ms", ms(a), ms(b)),
        }
    }

    fn rss(&self, function: &FunctionFigures, configs: &[String]) -> String {
        configs
            .iter()
            .map(|config| {
                let Some(mine) = function.configs.get(config) else { return "–".to_owned() };
                let floor = self.floor().and_then(|f| f.configs.get(config)).map(|c| c.peak_rss_bytes as f64);
                let value = mine.peak_rss_bytes as f64;
                format!("{} ({})", mib(mine.peak_rss_bytes), floor.map(|f| ratio(value, f)).unwrap_or_default())
            })
            .collect::<Vec<_>>()
            .join(" / ")
    }

    fn size(&self, function: &FunctionFigures, get: impl Fn(&Arm64Size) -> u64) -> String {
        let Some(mine) = function.arm64 else { return "–".into() };
        let floor = self.floor().and_then(|f| f.arm64).map(|a| get(&a) as f64);
        format!("{} ({})", mib(get(&mine)), floor.map(|f| ratio(get(&mine) as f64, f)).unwrap_or_default())
    }

    pub fn markdown(&self) -> String {
        let configs = self.configs();
        let mut out = String::new();
        let m = &self.machine;
        out.push_str(&format!(
            "Machine: {} ({} logical CPUs), Linux {}, {} RAM; load average at the end of the run {}\n\n",
            m.cpu_model, m.logical_cpus, m.kernel, m.memory_total, m.load_average
        ));
        out.push_str(&format!(
            "Command: `{}`\n\nSettings: {}.\n\nSeed: {}.\n\n",
            self.command, self.settings, self.seed
        ));

        let mut header = vec!["function".to_owned()];
        for config in &configs {
            header.push(format!("init median / p90 ({config})"));
        }
        for config in &configs {
            header.push(format!("warm p50 / p99 ({config})"));
        }
        header.push(format!("peak RSS ({})", configs.join(" / ")));
        header.push("arm64 bootstrap".into());
        header.push("arm64 zip".into());
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
        for function in &self.functions {
            let mut row = vec![function.function.clone()];
            for config in &configs {
                row.push(self.pair(function, config, |c| (c.init_median_us, c.init_p90_us)));
            }
            for config in &configs {
                row.push(self.pair(function, config, |c| (c.warm_p50_us, c.warm_p99_us)));
            }
            row.push(self.rss(function, &configs));
            row.push(self.size(function, |a| a.bootstrap_bytes));
            row.push(self.size(function, |a| a.zip_bytes));
            out.push_str(&format!("| {} |\n", row.join(" | ")));
        }
        out.push_str("\nRatios are to hello-lambda in the same run and configuration.\n\n");

        out.push_str("Per event (warm; answers are status codes, `batch ok` or `batch N failed` for the worker):\n\n");
        let mut header = vec!["function".to_owned(), "event".to_owned()];
        for config in &configs {
            header.push(format!("p50 / p99 ({config})"));
            header.push(format!("answers ({config})"));
        }
        out.push_str(&format!("| {} |\n", header.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
        for function in &self.functions {
            let Some(first) = configs.iter().find_map(|c| function.configs.get(c)) else { continue };
            for (index, event) in first.events.iter().enumerate() {
                let mut row = vec![function.function.clone(), event.event.clone()];
                for config in &configs {
                    match function.configs.get(config).and_then(|c| c.events.get(index)) {
                        Some(e) => {
                            row.push(format!("{} / {} ms", ms(e.p50_us), ms(e.p99_us)));
                            let answers: Vec<String> = e.outcomes.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
                            row.push(answers.join(", "));
                        }
                        None => row.extend(["–".to_owned(), "–".to_owned()]),
                    }
                }
                out.push_str(&format!("| {} |\n", row.join(" | ")));
            }
        }
        out.push('\n');
        out.push_str(&self.targets());
        out
    }

    /// The targets, each checked against this run's figures.
    fn targets(&self) -> String {
        let mut out = String::from("Targets (1 MiB = 1024 × 1024 bytes):\n\n");
        let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
        let functions: Vec<&FunctionFigures> = self.functions.iter().filter(|f| f.function != FLOOR).collect();
        for config in self.configs() {
            let Some(floor) = self.floor().and_then(|f| f.configs.get(&config)) else { continue };
            let over: Vec<String> = functions
                .iter()
                .filter_map(|f| f.configs.get(&config).map(|c| (f, c)))
                .filter(|(_, c)| c.init_median_us > 2.0 * floor.init_median_us)
                .map(|(f, c)| format!("{} {:.2}×", f.function, c.init_median_us / floor.init_median_us))
                .collect();
            out.push_str(&format!(
                "- init median ≤ 2× the hello floor ({config}, floor {} ms): {}{}\n",
                ms(floor.init_median_us),
                verdict(over.is_empty()),
                if over.is_empty() { String::new() } else { format!(" ({})", over.join(", ")) }
            ));
        }
        let reads: Vec<String> = functions
            .iter()
            .filter_map(|f| f.configs.get("embedded").map(|c| (f, c)))
            .flat_map(|(f, c)| {
                c.events.iter().filter(|e| SINGLE_READS.contains(&e.event.as_str())).map(move |e| {
                    let answers: Vec<&str> = e.outcomes.keys().map(String::as_str).collect();
                    format!(
                        "{} {} p99 {} ms [{}] {}",
                        f.function,
                        e.event,
                        ms(e.p99_us),
                        answers.join(", "),
                        verdict(e.p99_us < 1500.0)
                    )
                })
            })
            .collect();
        if !reads.is_empty() {
            out.push_str(&format!("- warm p99 (embedded) < 1.5 ms for single reads: {}\n", reads.join("; ")));
        }
        let rss: Vec<String> = functions
            .iter()
            .flat_map(|f| f.configs.iter().map(move |(config, c)| (f, config, c)))
            .filter(|(_, _, c)| c.peak_rss_bytes as f64 >= 32.0 * MIB)
            .map(|(f, config, c)| format!("{} ({config}) {}", f.function, mib(c.peak_rss_bytes)))
            .collect();
        out.push_str(&format!(
            "- peak RSS < 32 MiB: {}{}\n",
            verdict(rss.is_empty()),
            if rss.is_empty() { String::new() } else { format!(" ({})", rss.join(", ")) }
        ));
        let sized: Vec<(&FunctionFigures, Arm64Size)> =
            functions.iter().filter_map(|f| f.arm64.map(|a| (*f, a))).collect();
        if !sized.is_empty() {
            let over: Vec<String> = sized
                .iter()
                .filter(|(f, a)| {
                    let limit = if matches!(f.function.as_str(), "health" | "categories") { 3.0 } else { 4.0 };
                    a.zip_bytes as f64 > limit * MIB
                })
                .map(|(f, a)| format!("{} {}", f.function, mib(a.zip_bytes)))
                .collect();
            out.push_str(&format!(
                "- arm64 zip ≤ 4 MiB (health and categories ≤ 3 MiB): {}{}\n",
                verdict(over.is_empty()),
                if over.is_empty() { String::new() } else { format!(" ({})", over.join(", ")) }
            ));
        }
        out
    }
}
