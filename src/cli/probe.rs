//! `sidewatch probe`: run probes once and print a table or JSON.

use super::exit;
use crate::plan::Plan;
use crate::report::probe::{table, ProbeResult};

/// Runs the plan's probes (or the one named) concurrently, once each.
pub(crate) async fn run_once(plan: Plan, name: Option<&str>, json: bool) -> u8 {
    let probes: Vec<_> = plan
        .probes
        .iter()
        .filter(|p| name.is_none_or(|n| p.name == n))
        .cloned()
        .collect();
    if probes.is_empty() {
        match name {
            Some(n) => eprintln!("no probe named `{n}` in the config"),
            None => eprintln!("the config has no probes"),
        }
        return exit::CONFIG;
    }
    let handles: Vec<_> = probes
        .iter()
        .map(|p| {
            let p = p.clone();
            tokio::spawn(async move { p.run_contained().await })
        })
        .collect();
    let mut results = Vec::new();
    for (p, h) in probes.iter().zip(handles) {
        let outcome = h.await.expect("a contained run does not panic");
        results.push(ProbeResult::new(p, &outcome, &plan.redactor));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).expect("serializable")
        );
    } else {
        print!("{}", table(&results));
    }
    if results.iter().all(|r| r.success) {
        exit::OK
    } else {
        exit::FAILED
    }
}
