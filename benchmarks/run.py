#!/usr/bin/env python3
"""Runs asock_bench for every implementation and workload, in interleaved
rounds, and writes a table of medians (results.md), the raw data
(results.json) and a chart (chart.svg). Also counts user-space instructions
per ping-pong round trip under callgrind, and heap allocations per operation.

Usually started by scripts/bench.sh, which builds the program first.

Method (docs/benchmarks.md says more):
- Rounds are interleaved: round r runs every workload, and for each workload
  every implementation, in an order rotated by r. Machine noise then spreads
  over all implementations instead of landing on whichever ran last.
- Each run is a fresh process; the program measures only its steady state (it
  starts the clock after a warm-up) and prints one JSON line.
- The table shows the median over rounds, and the ratio of that median to the
  hand-written epoll loop's median.
- System calls: the same difference of two runs under `strace -f -c`.
- Instructions: the program runs under `valgrind --tool=callgrind` twice, with
  N1 and N2 measured round trips (same warm-up); (Ir(N2) - Ir(N1)) / (N2 - N1)
  is the cost of one round trip, client and server together, with set-up,
  warm-up and tear-down cancelled out. The same difference, per function,
  gives the cost centres of one round trip.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

REFERENCE = "epoll"

# name -> (title, unit, scale, extra args, (warm-up, count) quick, (warm-up, count) long)
WORKLOADS = {
    "pingpong-1": ("ping-pong, 1 connection", "round trips/s", 1.0,
                   ["--workload", "pingpong", "--connections", "1", "--latency"],
                   (2000, 20000), (5000, 200000)),
    "pingpong-64": ("ping-pong, 64 connections", "round trips/s", 1.0,
                    ["--workload", "pingpong", "--connections", "64"],
                    (10000, 100000), (20000, 1000000)),
    "bulk": ("bulk, 64 KiB sends", "GB/s", 1e-9,
             ["--workload", "bulk", "--chunk-size", "65536"],
             (64 << 20, 1 << 30), (256 << 20, 4 << 30)),
    "churn": ("connection churn", "connections/s", 1.0,
              ["--workload", "churn"],
              (200, 3000), (500, 15000)),
}

# Fairness between the sockets of one loop (asock_bench --workload fairness):
# (warm-up, count) quick and long; the implementations that offer it.
FAIRNESS = (["--workload", "fairness"], (1000, 5000), (2000, 20000))
FAIRNESS_IMPLS = ("asock",)
FAIRNESS_METRICS = ("pingpong_alone_p50_us", "pingpong_alone_p99_us", "pingpong_loaded_p50_us",
                    "pingpong_loaded_p99_us", "pingpong_loaded_max_us", "pingpong_starved",
                    "stream_alone_gbps", "stream_loaded_gbps", "latency_ratio", "stream_ratio")

# Instruction counts: workload -> (args, warm-up, N1, N2)
CALLGRIND = {
    "pingpong-1": (["--workload", "pingpong", "--connections", "1"], 200, 2000, 6000),
    "pingpong-64": (["--workload", "pingpong", "--connections", "64"], 2000, 6000, 26000),
}


# Implementations run from a second program (--baseline): name -> (program, name in that program).
BASELINE = {}


def program_for(binary, impl):
    """The program and the name to run `impl` with: a baseline's "NAME@before" runs NAME from that program."""
    return BASELINE.get(impl, (binary, impl))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def list_impls(binary):
    out = subprocess.run([binary, "--list"], check=True, capture_output=True, text=True).stdout
    impls = []
    for line in out.splitlines():
        name, label = line.split("\t", 1)
        impls.append((name, label))
    return impls


def run_once(binary, impl, args, warmup, count, timeout):
    binary, real = program_for(binary, impl)
    cmd = [binary, "--impl", real] + args + ["--warmup", str(warmup), "--count", str(count)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"impl": impl, "ok": False, "error": "timed out after %d s" % timeout}
    line = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    try:
        res = json.loads(line)
        res["impl"] = impl
        return res
    except ValueError:
        return {"impl": impl, "ok": False, "error": "no result (exit %d): %s" % (p.returncode, p.stderr.strip()[-300:])}


def median(xs):
    return statistics.median(xs) if xs else None


# ---- callgrind ------------------------------------------------------------------

FUNC_LINE = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.*\S)\s*$")


def strip_file(name):
    """'path/file.c:function [object]' -> 'function [object]'."""
    if name.startswith("???:"):
        return name[4:]
    for i, ch in enumerate(name):
        if ch == " ":
            break
        if ch == ":" and name[i + 1:i + 2] != ":" and name[i - 1:i] != ":" and ("/" in name[:i] or "." in name[:i]):
            return name[i + 1:]
    return name


def callgrind_profile(binary, impl, args, warmup, count, workdir, timeout):
    """Runs once under callgrind; returns (total Ir, {function: self Ir})."""
    out = os.path.join(workdir, "callgrind.%s.%d.out" % (impl, count))
    binary, real = program_for(binary, impl)
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
           binary, "--impl", real] + args + ["--warmup", str(warmup), "--count", str(count)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0 or not os.path.exists(out):
        raise RuntimeError("callgrind run failed: %s" % p.stderr.strip()[-300:])
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                total = int(line.split()[1])
                if line.startswith("summary:"):
                    break
    ann = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", "--auto=no", out],
                         capture_output=True, text=True, check=True).stdout
    funcs = {}
    objects = {}
    started = False
    for line in ann.splitlines():
        if "file:function" in line:
            started = True
            continue
        if not started or not line.strip() or line.startswith("---"):
            continue
        m = FUNC_LINE.match(line)
        if m:
            # With debug information, code inlined from other files is listed
            # under "that-file:function"; add it to the function itself.
            # Lines of inlined code come without the "[object]" suffix: merge on the name alone.
            name = re.sub(r" \[[^\]]*\]$", "", strip_file(m.group(2)))
            obj = re.search(r"\[([^\]]*)\]$", m.group(2))
            if obj and name not in objects:
                objects[name] = os.path.basename(obj.group(1))
            funcs[name] = funcs.get(name, 0) + int(m.group(1).replace(",", ""))
    os.remove(out)
    return total, {(k + (" [%s]" % objects[k] if k in objects else "")): v for k, v in funcs.items()}


def short_function(name):
    """'file:function [object]' -> a readable function name."""
    obj = ""
    m = re.match(r"^(.*) \[(.*)\]$", name)
    if m:
        name, obj = m.group(1), os.path.basename(m.group(2))
    name = name.replace("(anonymous namespace)::", "")
    name = re.sub(r"@@\S+", "", name)
    name = re.sub(r"::_ZN\w*(\.Frame\*)?", "", name)
    name = re.sub(r"op_awaitable<.*?asock::detail::(\w+_op)>", r"op_awaitable[\1]", name)
    name = re.sub(r"asock::linux_epoll::epoll_sys", "sys", name)
    name = re.sub(r"asock::linux_epoll::basic_epoll_platform<sys>", "platform", name)
    name = re.sub(r"std::__n4861::", "std::", name)
    # Drop template argument lists and parameter lists for readability.
    prev = None
    while prev != name:
        prev = name
        name = re.sub(r"<[^<>]*>", "", name)
    # Drop every parameter list (nested ones first), then mark the function with "()".
    tail = ""
    m = re.search(r"( \[clone [^\]]*\])$", name)
    if m:
        name, tail = name[:m.start()], m.group(1)
    prev = None
    while prev != name:
        prev = name
        name = re.sub(r"\([^()]*\)", "", name)
    name = name.replace("::{lambda#1}", "").replace("::{lambda#2}", "") + "()" + tail
    if len(name) > 110:
        name = name[:107] + "..."
    return name + ("  [%s]" % obj if obj and obj != "asock_bench" else "")


def count_instructions(binary, impls, workdir, timeout, log_dir):
    results = {}
    for wl, (args, warmup, n1, n2) in CALLGRIND.items():
        for impl, _label in impls:
            log("  callgrind %-8s %s" % (impl, wl))
            try:
                t1, f1 = callgrind_profile(binary, impl, args, warmup, n1, workdir, timeout)
                t2, f2 = callgrind_profile(binary, impl, args, warmup, n2, workdir, timeout)
            except (RuntimeError, subprocess.SubprocessError) as e:
                log("    failed: %s" % e)
                continue
            per_rt = (t2 - t1) / (n2 - n1)
            diff = {k: (f2.get(k, 0) - f1.get(k, 0)) / (n2 - n1) for k in set(f1) | set(f2)}
            top = sorted(((v, k) for k, v in diff.items() if v > 0), reverse=True)[:25]
            results.setdefault(impl, {})[wl] = {
                "instructions_per_round_trip": per_rt,
                "top": [{"function": re.sub(r"\[[^\]]*/([^/\]]+)\]$", r"[\1]", k), "short": short_function(k),
                         "ir_per_round_trip": v} for v, k in top],
            }
            with open(os.path.join(log_dir, "%s-%s.txt" % (impl, wl)), "w") as f:
                f.write("# %s, %s: user-space instructions per round trip (client + server), "
                        "self cost per function, from callgrind runs of %d and %d round trips\n" % (impl, wl, n1, n2))
                f.write("%10.1f  TOTAL\n" % per_rt)
                for v, k in top:
                    f.write("%10.1f  %s\n" % (v, re.sub(r"\[[^\]]*/([^/\]]+)\]$", r"[\1]", k)))
    return results


# ---- system calls (strace) --------------------------------------------------------

SYSCALLS = {"pingpong-1": (["--workload", "pingpong", "--connections", "1"], 200, 2000, 6000)}


def strace_counts(binary, impl, args, warmup, count, workdir, timeout):
    out = os.path.join(workdir, "strace.%s.%d" % (impl, count))
    binary, real = program_for(binary, impl)
    cmd = ["strace", "-f", "-c", "-o", out, binary, "--impl", real] + args + ["--warmup", str(warmup), "--count", str(count)]
    subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)
    counts = {}
    with open(out) as f:
        for line in f:
            parts = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
                try:
                    calls = int(parts[3])
                    errors = int(parts[4]) if len(parts) == 6 else 0
                except ValueError:
                    continue
                counts[parts[-1]] = (calls, errors)
    return counts


def count_syscalls(binary, impls, workdir, timeout):
    results = {}
    for wl, (args, warmup, n1, n2) in SYSCALLS.items():
        for impl, _label in impls:
            log("  strace    %-8s %s" % (impl, wl))
            try:
                c1 = strace_counts(binary, impl, args, warmup, n1, workdir, timeout)
                c2 = strace_counts(binary, impl, args, warmup, n2, workdir, timeout)
            except (subprocess.SubprocessError, OSError) as e:
                log("    failed: %s" % e)
                continue
            per = {}
            for name in set(c1) | set(c2):
                calls = (c2.get(name, (0, 0))[0] - c1.get(name, (0, 0))[0]) / (n2 - n1)
                errors = (c2.get(name, (0, 0))[1] - c1.get(name, (0, 0))[1]) / (n2 - n1)
                if calls > 0.05:
                    per[name] = {"calls": calls, "errors": errors}
            results.setdefault(impl, {})[wl] = {"total": sum(v["calls"] for v in per.values()), "by_syscall": per}
    return results


# ---- output -----------------------------------------------------------------------

def fmt_rate(value, unit):
    if value is None:
        return "n/a"
    if unit == "GB/s":
        return "%.2f" % value
    return "{:,.0f}".format(value)


def fmt_ratio(value):
    return "n/a" if value is None else "%.2f×" % value


def build_summary(impls, runs):
    summary = {}
    for impl, label in impls:
        s = summary.setdefault(impl, {"label": label, "workloads": {}})
        for wl, (_title, _unit, scale, *_rest) in WORKLOADS.items():
            ok = [r for r in runs if r["impl"] == impl and r.get("workload_key") == wl and r.get("ok")]
            failed = [r for r in runs if r["impl"] == impl and r.get("workload_key") == wl and not r.get("ok")]
            rates = [r["rate"] * scale for r in ok]
            entry = {
                "rounds": len(ok),
                "failed": len(failed),
                "errors": sorted({r.get("error", "") for r in failed}),
                "median": median(rates),
                "min": min(rates) if rates else None,
                "max": max(rates) if rates else None,
                "allocations_per_op": median([r["allocations_per_op"] for r in ok]),
                "cpu_user_us": median([r["cpu_user_us_per_op"] for r in ok if "cpu_user_us_per_op" in r]),
                "cpu_sys_us": median([r["cpu_sys_us_per_op"] for r in ok if "cpu_sys_us_per_op" in r]),
            }
            if wl == "pingpong-1":
                entry["p50_us"] = median([r["p50_us"] for r in ok if "p50_us" in r])
                entry["p99_us"] = median([r["p99_us"] for r in ok if "p99_us" in r])
            s["workloads"][wl] = entry
    ref = summary.get(REFERENCE)
    for impl, s in summary.items():
        for wl, e in s["workloads"].items():
            r = ref["workloads"][wl]["median"] if ref else None
            e["ratio"] = e["median"] / r if (r and e["median"] is not None) else None
    return summary


def targets(summary, instructions):
    """The issue's targets, reported (never asserted)."""
    out = []

    def ratio(impl, wl):
        return summary.get(impl, {}).get("workloads", {}).get(wl, {}).get("ratio")

    def med(impl, wl):
        return summary.get(impl, {}).get("workloads", {}).get(wl, {}).get("median")

    def line(what, value, goal, met):
        out.append("| %s | %s | %s | %s |" % (what, value, goal, "n/a" if met is None else ("met" if met else "**missed**")))

    # Throughput: asock C++ against the hand-written loop and Asio.
    for wl, goal in (("pingpong-1", 0.97), ("pingpong-64", 1.00), ("bulk", 0.95)):
        r = ratio("asock", wl)
        line("asock C++ vs hand-written, %s" % WORKLOADS[wl][0], fmt_ratio(r), "≥ %.2f×" % goal,
             None if r is None else r >= goal)
    for wl in WORKLOADS:
        a, b = med("asock", wl), med("asio", wl)
        if b is not None:
            line("asock C++ vs Asio, %s" % WORKLOADS[wl][0], fmt_ratio(a / b if a and b else None), "> 1.00×",
                 None if not (a and b) else a > b)
    # Instructions per round trip.
    for wl, goal in (("pingpong-1", 1.5), ("pingpong-64", 2.0)):
        a = instructions.get("asock", {}).get(wl, {}).get("instructions_per_round_trip")
        e = instructions.get(REFERENCE, {}).get(wl, {}).get("instructions_per_round_trip")
        if a and e:
            line("asock C++ instructions per round trip vs hand-written, %s" % WORKLOADS[wl][0],
                 "%.2f× (%.0f vs %.0f)" % (a / e, a, e), "≤ %.1f×" % goal, a / e <= goal)
    for wl in CALLGRIND:
        a = instructions.get("asock", {}).get(wl, {}).get("instructions_per_round_trip")
        c = instructions.get("asock-c", {}).get(wl, {}).get("instructions_per_round_trip")
        if a and c:
            line("C shim instructions per round trip vs asock C++, %s" % WORKLOADS[wl][0],
                 "%.2f× (%.0f vs %.0f)" % (c / a, c, a), "≤ 1.3×", c / a <= 1.3)
    # The C shim against the C++ path, and on the default engine against the hand-written loop.
    if "asock-c" in summary:
        for wl in WORKLOADS:
            a, c = med("asock", wl), med("asock-c", wl)
            if a and c:
                line("C shim vs asock C++, %s" % WORKLOADS[wl][0], fmt_ratio(c / a), "≥ 0.95×", c / a >= 0.95)
        for wl in ("pingpong-1", "pingpong-64", "bulk"):
            n = summary["asock-c"]["workloads"].get(wl, {}).get("allocations_per_op")
            if n is not None:
                line("C shim heap allocations per operation, %s" % WORKLOADS[wl][0], "%.2f" % n, "0", n < 0.005)
    else:
        out.append("| C shim vs asock C++ | not built | ≥ 0.95× | n/a |")
    if "asock-c-default" in summary:
        for wl, goal, strict in (("pingpong-1", 0.90, False), ("pingpong-64", 1.00, True)):
            r = ratio("asock-c-default", wl)
            line("C shim on default engines (`execution_engine_create(NULL)`) vs hand-written, %s" % WORKLOADS[wl][0],
                 fmt_ratio(r), ("> %.2f×" if strict else "≥ %.2f×") % goal,
                 None if r is None else (r > goal if strict else r >= goal))
    return out


def fairness_summary(runs):
    """Per implementation: medians of each figure over the rounds, and pass / miss
    of the medians against the bounds the program states."""
    out = {}
    for impl in sorted({r["impl"] for r in runs}):
        ok = [r for r in runs if r["impl"] == impl and r.get("ok")]
        e = {"rounds": len(ok), "failed": len([r for r in runs if r["impl"] == impl and not r.get("ok")])}
        if ok:
            e["label"] = ok[0]["label"]
            for m in FAIRNESS_METRICS:
                e[m] = median([r[m] for r in ok])
            e["latency_bound"] = ok[0]["latency_bound"]
            e["stream_bound"] = ok[0]["stream_bound"]
            e["latency_ok"] = e["pingpong_starved"] == 0 and 0 < e["latency_ratio"] < e["latency_bound"]
            e["stream_ok"] = e["stream_ratio"] >= e["stream_bound"]
            e["rounds_passed"] = len([r for r in ok if r["latency_ok"] and r["stream_ok"]])
        out[impl] = e
    return out


def fairness_lines(fsum):
    L = []
    if not fsum:
        return L
    L.append("Fairness (`--workload fairness`): on the client's one loop, a connection receiving a stream "
             "(1 KiB receives, always data ready) and a ping-pong connection; medians over rounds. "
             "Bounds: loaded p99 round trip below the bound times the p99 alone; the stream keeps at least "
             "the bound times its throughput alone.")
    L.append("")
    L.append("| implementation | ping-pong p50 / p99 alone (us) | ping-pong p50 / p99 / max with the stream (us) "
             "| starved round trips | p99 ratio (bound) | stream alone / with ping-pong (GB/s) "
             "| stream ratio (bound) | rounds passing both | |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for impl, e in fsum.items():
        if not e["rounds"]:
            L.append("| %s | | | | | | | | failed |" % impl)
            continue
        L.append("| %s | %.0f / %.0f | %.0f / %.0f / %.0f | %d | %.1fx (< %.0fx) | %.2f / %.2f | %.2fx (>= %.1fx) | %d of %d | %s |" % (
            e["label"], e["pingpong_alone_p50_us"], e["pingpong_alone_p99_us"], e["pingpong_loaded_p50_us"],
            e["pingpong_loaded_p99_us"], e["pingpong_loaded_max_us"], e["pingpong_starved"], e["latency_ratio"],
            e["latency_bound"], e["stream_alone_gbps"], e["stream_loaded_gbps"], e["stream_ratio"], e["stream_bound"],
            e["rounds_passed"], e["rounds"],
            "pass" if e["latency_ok"] and e["stream_ok"] else
            "miss (%s)" % ", ".join(w for w, ok in (("latency", e["latency_ok"]), ("stream", e["stream_ok"])) if not ok)))
    L.append("")
    return L


def write_markdown(path, meta, impls, summary, instructions, syscalls=None, fairness=None):
    L = []
    L.append("# asock benchmark results")
    L.append("")
    L.append("Measured %s on `%s` (%s, %d cores), %s build, commit %s; %d round(s), load average %s before, %s after%s." % (
        meta["date"], meta["host"], meta["kernel"], meta["cores"], meta["build"], meta["commit"], meta["rounds"],
        meta["load_before"], meta["load_after"], "; **" + meta["note"] + "**" if meta.get("note") else ""))
    if meta.get("baseline"):
        L.append("")
        L.append("Rows marked with a tag in brackets ran from a second program, `%s`, interleaved with the others." %
                 meta["baseline"])
    L.append("")
    have_runs = any(e["rounds"] or e["failed"] for st in summary.values() for e in st["workloads"].values())
    if have_runs:
        L.append("Medians over rounds; in brackets, the ratio to the hand-written epoll loop's median.")
        L.append("")
        head = "| implementation |"
        sep = "|---|"
        for wl, (title, unit, *_r) in WORKLOADS.items():
            head += " %s (%s) |" % (title, unit)
            sep += "---:|"
        L.append(head)
        L.append(sep)
        for impl, label in impls:
            row = "| %s |" % label
            for wl, (_t, unit, *_r) in WORKLOADS.items():
                e = summary[impl]["workloads"][wl]
                if e["median"] is None:
                    row += " failed |" if e["failed"] else " not run |"
                else:
                    row += " %s (%s) |" % (fmt_rate(e["median"], unit), fmt_ratio(e["ratio"]))
            L.append(row)
        L.append("")
        L.append("Ping-pong latency, 1 connection (µs per round trip, medians over rounds of each run's percentile):")
        L.append("")
        L.append("| implementation | p50 | p99 |")
        L.append("|---|---:|---:|")
        for impl, label in impls:
            e = summary[impl]["workloads"]["pingpong-1"]
            p50, p99 = e.get("p50_us"), e.get("p99_us")
            L.append("| %s | %s | %s |" % (label, "n/a" if p50 is None else "%.1f" % p50, "n/a" if p99 is None else "%.1f" % p99))
        L.append("")
        L.append("CPU time per operation, µs, user + system, both loops together (getrusage over the measured "
                 "interval; medians over rounds; per round trip, per 64 KiB send for bulk, per connection for churn). "
                 "Less sensitive to other load than throughput, but not immune to it:")
        L.append("")
        L.append("| implementation |" + "".join(" %s |" % WORKLOADS[w][0] for w in WORKLOADS))
        L.append("|---|" + "---:|" * len(WORKLOADS))
        for impl, label in impls:
            row = "| %s |" % label
            for wl in WORKLOADS:
                e = summary[impl]["workloads"][wl]
                u, k = e.get("cpu_user_us"), e.get("cpu_sys_us")
                row += " %s |" % ("n/a" if u is None or k is None else "%.2f + %.2f" % (u, k))
            L.append(row)
        L.append("")
        L.append("Heap allocations per operation in steady state (round trip; 64 KiB send for bulk; connection for churn), client and server together:")
        L.append("")
        L.append("| implementation |" + "".join(" %s |" % WORKLOADS[w][0] for w in WORKLOADS))
        L.append("|---|" + "---:|" * len(WORKLOADS))
        for impl, label in impls:
            row = "| %s |" % label
            for wl in WORKLOADS:
                a = summary[impl]["workloads"][wl]["allocations_per_op"]
                row += " %s |" % ("n/a" if a is None else ("%.2f" % a).rstrip("0").rstrip(".") if a else "0")
            L.append(row)
        L.append("")
    if instructions:
        L.append("User-space instructions per round trip (callgrind; client and server together):")
        L.append("")
        L.append("| implementation |" + "".join(" %s |" % WORKLOADS[w][0] for w in CALLGRIND))
        L.append("|---|" + "---:|" * len(CALLGRIND))
        for impl, label in impls:
            row = "| %s |" % label
            for wl in CALLGRIND:
                v = instructions.get(impl, {}).get(wl, {}).get("instructions_per_round_trip")
                e = instructions.get(REFERENCE, {}).get(wl, {}).get("instructions_per_round_trip")
                row += " %s |" % ("n/a" if v is None else "{:,.0f} ({})".format(v, fmt_ratio(v / e) if e else "n/a"))
            L.append(row)
        L.append("")
    if syscalls:
        L.append("System calls per round trip, ping-pong with 1 connection (strace -f -c; client and server together; "
                 "in brackets, calls that failed, e.g. EAGAIN):")
        L.append("")
        L.append("| implementation | total | by call |")
        L.append("|---|---:|---|")
        for impl, label in impls:
            d = syscalls.get(impl, {}).get("pingpong-1")
            if not d:
                L.append("| %s | n/a | |" % label)
                continue
            parts = []
            for name, v in sorted(d["by_syscall"].items(), key=lambda kv: -kv[1]["calls"]):
                parts.append("%s %.2f%s" % (name, v["calls"], " (%.2f)" % v["errors"] if v["errors"] > 0.05 else ""))
            L.append("| %s | %.2f | %s |" % (label, d["total"], ", ".join(parts)))
        L.append("")
    L.append("Targets (reported, not asserted):")
    L.append("")
    L.append("| target | measured | goal | |")
    L.append("|---|---:|---:|---|")
    L.extend(targets(summary, instructions))
    L.append("")
    L.extend(fairness_lines(fairness_summary(fairness or [])))
    failures = [(impl, wl, e) for impl in summary for wl, e in summary[impl]["workloads"].items() if e["failed"]]
    if failures:
        L.append("Failed runs:")
        L.append("")
        for impl, wl, e in failures:
            L.append("- %s, %s: %d failed (%s)" % (impl, wl, e["failed"], "; ".join(e["errors"])))
        L.append("")
    if "asock" in instructions and "pingpong-1" in instructions["asock"]:
        L.append("Where asock C++ spends its instructions, ping-pong with 1 connection (self cost per round trip, top 15):")
        L.append("")
        L.append("| Ir per round trip | function |")
        L.append("|---:|---|")
        merged = {}
        for t in instructions["asock"]["pingpong-1"]["top"]:
            name = short_function(re.sub(r" \[asock_bench\]$", "", t["function"]))
            merged[name] = merged.get(name, 0) + t["ir_per_round_trip"]
        for name, v in sorted(merged.items(), key=lambda kv: -kv[1])[:15]:
            L.append("| %.0f | `%s` |" % (v, name.replace("|", "\\|")))
        L.append("")
    with open(path, "w") as f:
        f.write("\n".join(L))


COLORS = {"epoll": "#555555", "asock": "#1f77b4", "asock-c": "#6baed6", "asio": "#d62728", "libuv": "#2ca02c"}
EXTRA_COLORS = ["#9467bd", "#8c564b", "#e377c2", "#bcbd22"]


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_svg(path, meta, impls, summary, instructions):
    colors = {}
    for i, (impl, _l) in enumerate(impls):
        colors[impl] = COLORS.get(impl, EXTRA_COLORS[i % len(EXTRA_COLORS)])
    W, H = 960, 640
    left, right, top = 70, 84, 80
    p1_h = 300
    out = []
    out.append('<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
               'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">' % (W, H, W, H))
    out.append('<rect width="100%" height="100%" fill="white"/>')
    out.append('<text x="%d" y="24" font-size="16" font-weight="bold">asock benchmarks: throughput relative to the hand-written epoll loop</text>' % left)
    out.append('<text x="%d" y="44" fill="#555">%s</text>' % (left, esc(
        "median of %d interleaved rounds; whiskers: min–max of the rounds; %s, %d cores, %s" % (
            meta["rounds"], meta["kernel"], meta["cores"], meta["date"]))))
    if meta.get("note"):
        out.append('<text x="%d" y="60" fill="#b00">%s</text>' % (left, esc(meta["note"])))
    # Panel 1: grouped bars of ratios.
    ratios = [e["ratio"] for s in summary.values() for e in s["workloads"].values() if e.get("ratio")]
    maxes = []
    for impl, s in summary.items():
        for wl, e in s["workloads"].items():
            ref = summary.get(REFERENCE, {}).get("workloads", {}).get(wl, {}).get("median")
            if e.get("max") and ref:
                maxes.append(e["max"] / ref)
    ymax = max([1.2] + ratios + maxes)
    ymax = math.ceil(ymax * 5) / 5.0
    plot_w = W - left - right
    y0 = top + p1_h

    def y_of(v):
        return y0 - (v / ymax) * p1_h

    step = 0.2 if ymax <= 2 else 0.5
    v = 0.0
    while v <= ymax + 1e-9:
        y = y_of(v)
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e5e5e5"/>' % (left, W - right, y, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end" fill="#555">%.1f×</text>' % (left - 6, y + 4, v))
        v += step
    y = y_of(1.0)
    out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333" stroke-dasharray="5,4"/>' % (left, W - right, y, y))
    out.append('<text x="%d" y="%.1f" fill="#333" font-size="10">1.00× epoll</text>' % (W - right + 4, y_of(1.0) + 3))
    groups = list(WORKLOADS.keys())
    gw = plot_w / len(groups)
    n = len(impls)
    bw = min(34, (gw - 30) / max(n, 1))
    for gi, wl in enumerate(groups):
        gx = left + gi * gw + (gw - bw * n) / 2
        title, unit = WORKLOADS[wl][0], WORKLOADS[wl][1]
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-weight="bold">%s</text>' % (left + gi * gw + gw / 2, y0 + 20, esc(title)))
        ref = summary.get(REFERENCE, {}).get("workloads", {}).get(wl, {}).get("median")
        out.append('<text x="%.1f" y="%.1f" text-anchor="middle" fill="#555" font-size="11">%s</text>' % (
            left + gi * gw + gw / 2, y0 + 36, esc("epoll = %s %s" % (fmt_rate(ref, unit), unit)) if ref else "epoll: n/a"))
        for ii, (impl, _label) in enumerate(impls):
            e = summary[impl]["workloads"][wl]
            x = gx + ii * bw
            r = e.get("ratio")
            if r is None:
                out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" fill="#999">n/a</text>' % (x + bw / 2, y0 - 4))
                continue
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s</title></rect>' % (
                x + 2, y_of(r), bw - 4, y0 - y_of(r), colors[impl],
                esc("%s, %s: %s %s (%.2f×)" % (impl, title, fmt_rate(e["median"], unit), unit, r))))
            if ref and e.get("min") is not None:
                lo, hi = e["min"] / ref, e["max"] / ref
                cx = x + bw / 2
                out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#222"/>' % (cx, cx, y_of(lo), y_of(hi)))
                out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#222"/>' % (cx - 4, cx + 4, y_of(hi), y_of(hi)))
                out.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#222"/>' % (cx - 4, cx + 4, y_of(lo), y_of(lo)))
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10" transform="rotate(-90 %.1f %.1f)">%.2f</text>' % (
                x + bw / 2 + 3, y0 - 6, x + bw / 2 + 3, y0 - 6, r))
    out.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#333"/>' % (left, W - right, y0, y0))
    # Legend.
    lx, ly = left, y0 + 60
    for impl, label in impls:
        width = 20 + 7 * len(label) + 16
        if lx > left and lx + width > W - right:
            lx, ly = left, ly + 20  # next legend row
        out.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>' % (lx, ly - 10, colors[impl]))
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 16, ly, esc(label)))
        lx += width
    # Panel 2: instructions per round trip, horizontal bars.
    p2_top = ly + 40
    out.append('<text x="%d" y="%d" font-size="14" font-weight="bold">User-space instructions per round trip, ping-pong 1 connection (callgrind, client + server)</text>' % (left, p2_top))
    vals = [(impl, label, instructions.get(impl, {}).get("pingpong-1", {}).get("instructions_per_round_trip")) for impl, label in impls]
    vmax = max([v for _i, _l, v in vals if v] + [1])
    bar_h, gap = 16, 6
    label_w = 200
    for k, (impl, label, v) in enumerate(vals):
        y = p2_top + 14 + k * (bar_h + gap)
        out.append('<text x="%d" y="%d" text-anchor="end">%s</text>' % (left + label_w - 8, y + 12, esc(label)))
        if v:
            w = (W - right - left - label_w - 140) * v / vmax
            out.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (left + label_w, y, w, bar_h, colors[impl]))
            ref = instructions.get(REFERENCE, {}).get("pingpong-1", {}).get("instructions_per_round_trip")
            out.append('<text x="%.1f" y="%d">%s</text>' % (left + label_w + w + 6, y + 12, esc(
                "{:,.0f}".format(v) + (" (%.2f×)" % (v / ref) if ref else ""))))
        else:
            out.append('<text x="%d" y="%d" fill="#999">n/a</text>' % (left + label_w, y + 12))
    out.append("</svg>")
    H_needed = p2_top + 14 + len(vals) * (bar_h + gap) + 20
    svg = "\n".join(out).replace('height="%d" viewBox="0 0 %d %d"' % (H, W, H),
                                 'height="%d" viewBox="0 0 %d %d"' % (H_needed, W, H_needed), 1)
    with open(path, "w") as f:
        f.write(svg + "\n")


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", help="the asock_bench program")
    ap.add_argument("--from-json", metavar="FILE", help="no runs: rewrite the report from an earlier results.json")
    ap.add_argument("--out", required=True, help="directory for results.md, results.json, chart.svg, callgrind/")
    ap.add_argument("--rounds", type=int, help="interleaved rounds (default 5, 11 with --long)")
    ap.add_argument("--long", action="store_true", help="bigger counts and more rounds (tens of minutes)")
    ap.add_argument("--impls", help="comma-separated subset of implementations")
    ap.add_argument("--workloads", help="comma-separated subset of: " + ", ".join(WORKLOADS))
    ap.add_argument("--no-callgrind", action="store_true", help="skip the instruction counts")
    ap.add_argument("--callgrind-only", action="store_true", help="only the instruction and system call counts")
    ap.add_argument("--no-strace", action="store_true", help="skip the system call counts")
    ap.add_argument("--no-fairness", action="store_true", help="skip the fairness workload")
    ap.add_argument("--fairness-only", action="store_true", help="only the fairness workload")
    ap.add_argument("--note", default="", help="a remark printed with the results (e.g. 'busy machine')")
    ap.add_argument("--build", default="Release", help="build type, for the record")
    ap.add_argument("--timeout", type=int, default=180, help="seconds before one run is abandoned")
    ap.add_argument("--baseline", metavar="BIN[:TAG]",
                    help="a second asock_bench (say, built from an earlier commit) whose implementations run "
                         "interleaved with the others, as NAME@TAG (TAG defaults to 'before')")
    ap.add_argument("--baseline-impls", default="asock,asock-c",
                    help="comma-separated implementations taken from --baseline (default asock,asock-c)")
    args = ap.parse_args()

    if args.from_json:
        with open(args.from_json) as f:
            old = json.load(f)
        impls = [(name, s["label"]) for name, s in old["summary"].items()]
        summary = build_summary(impls, old["runs"])
        write_report(args.out, old["meta"], impls, summary, old["runs"], old["instructions"], old.get("syscalls", {}),
                     old.get("fairness", []))
        return
    if not args.bin:
        ap.error("--bin is required")
    impls = list_impls(args.bin)
    if args.impls:
        wanted = args.impls.split(",")
        impls = [i for i in impls if i[0] in wanted]
    if args.baseline:
        bin2, _sep, tag = args.baseline.partition(":")
        tag = tag or "before"
        wanted = args.baseline_impls.split(",")
        for name, label in list_impls(bin2):
            if name in wanted:
                BASELINE[name + "@" + tag] = (bin2, name)
                impls.append((name + "@" + tag, "%s (%s)" % (label, tag)))
    if REFERENCE not in [i[0] for i in impls]:
        log("note: without '%s' there are no ratios" % REFERENCE)
    workloads = args.workloads.split(",") if args.workloads else list(WORKLOADS)
    for w in workloads:
        if w not in WORKLOADS:
            ap.error("unknown workload %s" % w)
    rounds = args.rounds or (11 if args.long else 5)
    os.makedirs(args.out, exist_ok=True)
    cg_dir = os.path.join(args.out, "callgrind")

    try:
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or "n/a"
    except OSError:
        commit = "n/a"
    meta = {
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "host": platform.node(),
        "kernel": "Linux " + platform.release(),
        "cores": os.cpu_count() or 0,
        "build": args.build,
        "commit": commit,
        "rounds": 0 if args.callgrind_only else rounds,
        "long": args.long,
        "note": args.note,
        "load_before": loadavg(),
        "baseline": args.baseline or "",
    }

    if args.fairness_only:
        args.no_callgrind = args.no_strace = True
        workloads = []
    runs = []
    if not args.callgrind_only:
        for r in range(rounds):
            log("round %d/%d" % (r + 1, rounds))
            for wl in workloads:
                title, unit, scale, wargs, quick, longer = WORKLOADS[wl]
                warmup, count = longer if args.long else quick
                k = r % len(impls)
                order = impls[k:] + impls[:k]
                for impl, _label in order:
                    res = run_once(args.bin, impl, wargs, warmup, count, args.timeout)
                    res["workload_key"] = wl
                    res["round"] = r
                    runs.append(res)
                    if res.get("ok"):
                        log("  %-12s %-8s %14s %s" % (wl, impl, fmt_rate(res["rate"] * scale, unit), unit))
                    else:
                        log("  %-12s %-8s FAILED: %s" % (wl, impl, res.get("error")))

    fairness = []
    if not args.callgrind_only and not args.no_fairness:
        fargs, quick, longer = FAIRNESS
        warmup, count = longer if args.long else quick
        for r in range(rounds):
            log("fairness round %d/%d" % (r + 1, rounds))
            for impl, _label in [i for i in impls if i[0] in FAIRNESS_IMPLS]:
                res = run_once(args.bin, impl, fargs, warmup, count, args.timeout)
                res["round"] = r
                fairness.append(res)
                if res.get("ok"):
                    log("  fairness %-8s ping-pong p99 %.0f us alone, %.0f us with the stream (%.1fx, %s); "
                        "stream %.2f GB/s alone, %.2f with the ping-pong (%.2fx, %s)" % (
                            impl, res["pingpong_alone_p99_us"], res["pingpong_loaded_p99_us"], res["latency_ratio"],
                            "pass" if res["latency_ok"] else "miss", res["stream_alone_gbps"],
                            res["stream_loaded_gbps"], res["stream_ratio"], "pass" if res["stream_ok"] else "miss"))
                else:
                    log("  fairness %-8s FAILED: %s" % (impl, res.get("error")))
        for impl, e in fairness_summary(fairness).items():
            if e["rounds"]:
                log("fairness %s (medians): p99 ratio %.1fx (bound < %.0fx) %s; stream ratio %.2fx (bound >= %.1fx) %s" % (
                    impl, e["latency_ratio"], e["latency_bound"], "pass" if e["latency_ok"] else "MISS",
                    e["stream_ratio"], e["stream_bound"], "pass" if e["stream_ok"] else "MISS"))

    instructions = {}
    if not args.no_callgrind:
        if shutil.which("valgrind") and shutil.which("callgrind_annotate"):
            log("instruction counts (callgrind)")
            os.makedirs(cg_dir, exist_ok=True)
            with tempfile.TemporaryDirectory() as tmp:
                instructions = count_instructions(args.bin, impls, tmp, max(args.timeout, 600), cg_dir)
        else:
            log("valgrind not found: no instruction counts")
    syscalls = {}
    if not args.no_strace:
        if shutil.which("strace"):
            log("system call counts (strace)")
            with tempfile.TemporaryDirectory() as tmp:
                syscalls = count_syscalls(args.bin, impls, tmp, args.timeout)
        else:
            log("strace not found: no system call counts")
    meta["load_after"] = loadavg()

    summary = build_summary(impls, runs)
    write_report(args.out, meta, impls, summary, runs, instructions, syscalls, fairness)


def write_report(out, meta, impls, summary, runs, instructions, syscalls, fairness=None):
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary, "instructions": instructions, "syscalls": syscalls, "runs": runs,
                   "fairness": fairness or []}, f, indent=1)
    write_markdown(os.path.join(out, "results.md"), meta, impls, summary, instructions, syscalls, fairness)
    write_svg(os.path.join(out, "chart.svg"), meta, impls, summary, instructions)
    with open(os.path.join(out, "results.md")) as f:
        print(f.read())
    log("wrote %s/results.md, results.json, chart.svg%s" % (out, ", callgrind/" if instructions else ""))


if __name__ == "__main__":
    main()
