"""``docs/benchmarks.md`` from one ``rl bench all`` run: every figure with its baseline."""

from __future__ import annotations

from typing import Any

#: The earlier Relier's published figures (its benchmark page, 0.1.7, 2026-06-03).
EARLIER = {
    "delivery": "100 % (vanilla 92.0 %, acks_late 96.0 %), 500 tasks, 5 kills",
    "recovery": "6.9 s avg, 7.0 s p99 (whole worker)",
    "dispatch": "apush p50 1.31 ms vs .delay() avg 0.77 ms (about 2.3x, +1 ms)",
    "admission": "p99 0.32 ms (0.56 ms in an earlier run)",
    "memory": "60.3 MB per process vs 44.3 MB (+16 MB)",
    "footprint": "1,936 B in 11 keys per in-flight task",
    "cold_start": "1,002 ms",
    "throughput": "not published (CPU 32.5 % vs 1.1 % for 10,000 tasks)",
}


def _us(value: float) -> str:
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} µs"


def markdown(results: dict[str, Any], machine: dict[str, Any], command: str) -> str:
    """The benchmarks page."""
    out = [
        "# Benchmarks",
        "",
        "Every figure on this page was produced by one run of",
        f"`{command}` on the machine below; Relier and vanilla Celery ran side by side in",
        "that run, against the same Redis (a fresh local `redis-server` with AOF and",
        "`noeviction`). Rerun the command to regenerate the page on your machine. The earlier",
        "Relier's figures are its own published ones (different machine; for orientation).",
        "",
        f"- Machine: {machine['cpu']}, {machine['cores']} cores; {machine['os']}; "
        f"Python {machine['python']}",
        f"- Date: {machine['date']}",
        f"- Redis: {machine.get('redis', 'local redis-server')}",
        "",
    ]
    if "delivery" in results:
        d = results["delivery"]
        out += ["## Delivery under kills", "",
                f"{d['relier']['tasks']} tasks of 50 ms, two workers (prefork x2), "
                f"{d['relier']['kills']} SIGKILLs of a whole worker, each replaced.", "",
                "| | delivered | lost | bodies run twice |", "|---|---|---|---|"]
        for label in ("relier", "vanilla", "vanilla_acks_late"):
            r = d[label]
            name = {"relier": "Relier", "vanilla": "vanilla Celery",
                    "vanilla_acks_late": "vanilla, acks_late + reject_on_worker_lost"}[label]
            runs_twice = r.get("bodies_started_more_than_once",
                               r.get("bodies_run_more_than_once", 0))
            out.append(f"| {name} | {r['delivered']}/{r['tasks']} "
                       f"({100 * r['delivery_rate']:.1f} %) | {r['lost']} | {runs_twice} |")
        out += ["", f"Earlier Relier: {EARLIER['delivery']}. Vanilla's lost tasks sit in "
                "kombu's unacked set until its 1 h visibility timeout (or are gone for good when "
                "the kill fell between BRPOP and the unacked write).", ""]
    if "recovery" in results:
        r = results["recovery"]
        w, c = r["whole_worker_sigkill"], r["pool_child_sigkill"]
        out += ["## Recovery time", "",
                "From SIGKILL to the task running again, default settings "
                "(`RELIER_HEARTBEAT_TTL=3`), measured on the Redis clock.", "",
                "| kill | p50 | p99 | max | trials |", "|---|---|---|---|---|",
                f"| whole worker (lease expiry + resurrector) | {w['p50']:.2f} s | "
                f"{w['p99']:.2f} s | {w['max']:.2f} s | {w['n']} |",
                f"| pool child (worker lives) | {c['p50']:.2f} s | {c['p99']:.2f} s | "
                f"{c['max']:.2f} s | {c['n']} |", "",
                f"Targets: whole worker p99 ≤ 5 s, child ≤ 1 s. Earlier Relier: "
                f"{EARLIER['recovery']}. Vanilla Celery: the visibility timeout (1 h by "
                "default) with acks_late; never without it.", ""]
    if "dispatch" in results:
        d = results["dispatch"]
        s = d["stats"]
        out += ["## Dispatch cost", "",
                f"{d['n']} dispatches of each kind, interleaved in blocks of 100, one round "
                "trip each for Relier (ledger record, admission check, broker message in one "
                "script call). Vanilla `.delay()` on a plain Celery app with no result backend "
                "(the stricter baseline) and with the Redis result backend.", "",
                "| | p50 | p99 | p50 vs `.delay()` | p99 vs `.delay()` |", "|---|---|---|---|---|"]
        for label, name in (("push", "`push()`"), ("apush", "`await apush()`"),
                            ("push_idempotent", "`push()`, idempotent (dedup)"),
                            ("delay", "vanilla `.delay()`"),
                            ("delay_with_backend", "vanilla `.delay()` + result backend")):
            st = s[label]
            ratio_50 = st["p50"] / s["delay"]["p50"]
            ratio_99 = st["p99"] / s["delay"]["p99"]
            out.append(f"| {name} | {_us(st['p50'])} | {_us(st['p99'])} | {ratio_50:.2f}x | "
                       f"{ratio_99:.2f}x |")
        out += ["", f"Target: at most 1.2x `.delay()` at p50. Earlier Relier: "
                f"{EARLIER['dispatch']}.", ""]
    if "admission" in results:
        a = results["admission"]["check"]
        out += ["## Admission check", "",
                f"{a['n']} standalone checks (`Admission.check()`, one script call), one at a "
                "time.", "", "| p50 | p99 | max |", "|---|---|---|",
                f"| {_us(a['p50'])} | {_us(a['p99'])} | {_us(a['max'])} |", "",
                f"Earlier Relier: {EARLIER['admission']}. Inside dispatch the check costs no "
                "extra round trip.", ""]
    if "throughput" in results:
        t = results["throughput"]
        out += ["## Throughput", "",
                f"{t['n']} one-INCR tasks queued, then one worker (prefork x"
                f"{t['concurrency']}) started; time until all ran.", "",
                "| | tasks/s | vs vanilla |", "|---|---|---|"]
        for label, name in (("relier", "Relier"), ("vanilla", "vanilla Celery"),
                            ("vanilla_acks_late", "vanilla, acks_late")):
            tps = t[label]["tasks_per_second"]
            out.append(f"| {name} | {tps:.0f} | "
                       f"{tps / t['vanilla']['tasks_per_second']:.2f}x |")
        out += ["", f"Target: at least 0.8x vanilla. Earlier Relier: {EARLIER['throughput']}.",
                ""]
    if "envelope" in results:
        e = results["envelope"]
        out += ["## Envelope: seal and open", "",
                f"No Redis: median of {e['repeat']} runs of {e['number']:,} operations on a "
                f"one-argument task with two keyword arguments ({e['payload_bytes']} bytes "
                "sealed).", "",
                "| operation | µs per call |", "|---|---|"]
        for key, label in (
            ("build_and_seal", "build + seal (argument check, JSON, HMAC-SHA256)"),
            ("seal", "seal (JSON + HMAC-SHA256)"),
            ("open", "open (parse + HMAC check + JSON)"),
            ("seal_unsigned", "seal, unsigned (development mode)"),
            ("open_unsigned", "open, unsigned"),
        ):
            out.append(f"| {label} | {e[key]:.1f} |")
        out.append("")
    if "footprint" in results:
        f = results["footprint"]
        rt = f["round_trips_per_task"]
        out += ["## Redis cost per task", "",
                f"{f['in_flight']} tasks in flight (threads pool); `MEMORY USAGE` of "
                "Relier's keys before and during.", "",
                "| | Relier | earlier Relier |", "|---|---|---|",
                f"| bytes per in-flight task | {f['bytes_per_in_flight_task']:.0f} B "
                f"(payload {f['envelope_bytes']} B + {f['overhead_bytes_beyond_payload']:.0f}"
                f" B) | 1,936 B |",
                f"| keys per in-flight task | {f['keys_per_in_flight_task']:.2f} | 11 |",
                f"| round trips per task lifecycle | Relier {rt['relier']:.0f} (dispatch, "
                f"claim, complete) + kombu {rt['kombu']:.0f} | 13–16 ops |", "",
                "Target: payload + at most 600 B in at most 3 keys.", ""]
    if "startup" in results:
        s = results["startup"]
        out += ["## Worker memory and cold start", "",
                "A worker (prefork x2) started with one task waiting: time from process start "
                "to the task done, then RSS per process (median of the runs).", "",
                "| | cold start | RSS per process |", "|---|---|---|",
                f"| Relier | {s['relier']['cold_start_ms']:.0f} ms | "
                f"{s['relier']['rss_mb_per_process']:.1f} MB |",
                f"| vanilla Celery | {s['vanilla']['cold_start_ms']:.0f} ms | "
                f"{s['vanilla']['rss_mb_per_process']:.1f} MB |", "",
                f"Earlier Relier: cold start {EARLIER['cold_start']}; memory "
                f"{EARLIER['memory']}.", ""]
    return "\n".join(out)
