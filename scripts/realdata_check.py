"""The real-data check (run by scripts/realdata-check.sh).

Runs every recording of the real-data folder through the flimgru binary
as a new user would (README "Your own recording"): first `flimgru map
FILE` with no options in an empty folder, then the instrument flow for the
two image instruments (`flimgru instrument`, `flimgru build --out
models/NAME`) and `flimgru map FILE` again with no options, which now
picks the built model. It compares the maps with the labs' published
lifetimes and rewrites the generated part of docs/realdata.md (between
the two `realdata-check` markers). numpy and tifffile come from the
repository's .venv (python/requirements-dev.txt).
"""

import argparse
import csv
import glob
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import tifffile

BEGIN = "<!-- realdata-check:begin (scripts/realdata-check.sh writes this part) -->"
END = "<!-- realdata-check:end -->"

# The instruments a user would describe and build a model for: the
# recording that describes it, and the options the README's flow gives
# (the B&H files do not carry the laser period: 80 MHz per the folder's
# README; the measured IRF is the lab's).
INSTRUMENTS = [
    (
        "skala",
        "skala_Neutrophils-021_NADH.sdt",
        ["--irf", "skala_ref/Neutrophils-021_IRF.asc", "--period", "12.5"],
    ),
    ("uu", "uu_Example_PTU_PicoHarp.ptu", []),
]

# SPCImage's per-pixel bi-exponential fits (skala_ref/): file -> prefix.
SPCIMAGE = {
    "skala_Tcells-002.sdt": "Tcells-002-Ch2-",
    "skala_Neutrophils-021_NADH.sdt": "Neutrophils-021",
}
BEADS = ("skala_bigger_beads_2.1ns.sdt", 2.1)
SYMPHOTIME = ("uu_Example_PTU_PicoHarp.ptu", "uu_ref/SymPhoTime_fast_lifetime_ns.tif")


def run(cmd, cwd):
    """Runs a command; returns (exit code, seconds, stderr)."""
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, time.monotonic() - t0, p.stdout + p.stderr


def first_error(text):
    for line in text.splitlines():
        if line.startswith("error"):
            return line[len("error: ") :] if line.startswith("error: ") else line
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[-1] if lines else "(no message)"


def built_model(text):
    """The built model map says it picked (`map: using M, built for ...`)."""
    for line in text.splitlines():
        if line.startswith("map: using ") and "built for this instrument" in line:
            return line[len("map: using ") :].split(",")[0]
    return ""


def read_map_csv(path):
    """The map CSV as {column: float array}, keyed by (row, col) order."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    cols = {}
    for name in rows[0].keys():
        cols[name] = np.array([float(r[name]) if r[name] != "" else np.nan for r in rows])
    return cols


def as_image(cols, key):
    h = int(cols["row"].max()) + 1
    w = int(cols["col"].max()) + 1
    img = np.full((h, w), np.nan)
    img[cols["row"].astype(int), cols["col"].astype(int)] = cols[key]
    return img


def eval_summary(folder):
    """The build's eval table in short: mean-lifetime RMSE of the network
    and the MLE-bi (on the MLE's pixels), and F at 0.5 / 1 / 2 ns with
    1,000 photons and 1 ns with 5,000, network (MLE)."""
    found = sorted(glob.glob(os.path.join(folder, "*.eval.json")))
    if not found:
        return "no eval table"
    with open(found[0]) as f:
        ev = json.load(f)
    rmse = {m["name"]: m["tau_mean"]["rmse"] for m in ev["table"]["methods"]}
    f_of = {(v["method"], v["tau_ns"], v["photons"]): v["f_value"] for v in ev["f_values"]}
    points = [(0.5, 1000.0), (1.0, 1000.0), (2.0, 1000.0), (1.0, 5000.0)]
    fs = " / ".join(
        f"{fmt(f_of.get(('network', t, n), math.nan), 2)} ({fmt(f_of.get(('MLE mono', t, n), math.nan), 2)})"
        for t, n in points
    )
    same = rmse.get("network, same pixels as MLE", math.nan)
    mle = rmse.get("MLE bi (IRF known)", math.nan)
    return (
        f"`{os.path.basename(found[0])}`: mean-tau RMSE {fmt(rmse.get('network', math.nan))} ns "
        f"({fmt(same)} against MLE-bi {fmt(mle)} on the MLE's pixels); F {fs}"
    )


def map_file(binary, data, name, cwd):
    out = os.path.join(cwd, os.path.splitext(name)[0] + ".png")
    code, secs, text = run([binary, "map", os.path.join(data, name), "-o", out], cwd)
    row = {"file": name, "path": os.path.join(data, name), "code": code, "secs": secs, "text": text}
    if code == 0:
        cols = read_map_csv(os.path.splitext(out)[0] + ".csv")
        ok = np.isfinite(cols["tau_mean"]) & (cols["out_of_range"] == 0)
        row["cols"] = cols
        row["pixels"] = int(np.isfinite(cols["tau_mean"]).sum())
        row["flagged"] = int((cols["out_of_range"] == 1).sum())
        row["median"] = float(np.median(cols["tau_mean"][ok])) if ok.any() else math.nan
    return row


def reason(row):
    """The refusal's reason, without the file path and the way-forward text
    the message also carries (docs/realdata.md quotes one in full)."""
    msg = first_error(row["text"])
    for prefix in (f"mapping {row['path']}: ", f"ptu file {row['path']}: ", f"sdt file {row['path']}: "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if "cannot match: " in msg:
        msg = "no model for its grid: " + msg.split("cannot match: ", 1)[1]
    return msg


def outcome(row):
    if row["code"] != 0:
        return "refused: " + reason(row).replace("|", "\\|")
    s = f"maps: {row['pixels']:,} pixel{'s' if row['pixels'] != 1 else ''}"
    binned = [l for l in row["text"].splitlines() if l.startswith("map: ") and "; binned " in l]
    if binned:
        r = binned[0].split("; binned ", 1)[1].split(" ", 1)[0]
        s += f" (too dim: binned {r}, {2 * int(r) + 1} x {2 * int(r) + 1})"
    model = built_model(row["text"])
    if model:
        s += f" with {model}"
    if row["flagged"]:
        s += f", {row['flagged']:,} flagged out of range"
    return s


def fmt(x, digits=3):
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def spcimage(data, prefix, cols):
    ref = os.path.join(data, "skala_ref", prefix)
    t1, t2 = np.loadtxt(ref + "_t1.asc"), np.loadtxt(ref + "_t2.asc")
    a1, a2 = np.loadtxt(ref + "_a1[%].asc"), np.loadtxt(ref + "_a2[%].asc")
    photons = np.loadtxt(ref + "_photons.asc")
    tm_ref = (a1 * t1 + a2 * t2) / np.maximum(a1 + a2, 1e-9) / 1000.0
    tm = as_image(cols, "tau_mean")
    flag = as_image(cols, "out_of_range")
    if tm.shape != tm_ref.shape:
        raise SystemExit(f"realdata-check: {prefix}: map {tm.shape} vs SPCImage {tm_ref.shape}")
    m = (photons >= 500) & np.isfinite(tm) & (a1 + a2 > 0) & (flag == 0)
    ours, theirs = np.median(tm[m]), np.median(tm_ref[m])
    return {
        "pixels": int(m.sum()),
        "ours": float(ours),
        "ref": float(theirs),
        "diff": float(ours - theirs),
        "corr": float(np.corrcoef(tm[m], tm_ref[m])[0, 1]),
    }


def symphotime(data, rel, cols):
    ref = tifffile.imread(os.path.join(data, rel)).astype(float)
    tm = as_image(cols, "tau_mean")
    flag = as_image(cols, "out_of_range")
    if tm.shape != ref.shape:
        raise SystemExit(f"realdata-check: {rel}: map {tm.shape} vs reference {ref.shape}")
    m = np.isfinite(tm) & (flag == 0) & np.isfinite(ref) & (ref > 0)
    return {
        "pixels": int(m.sum()),
        "ours": float(np.median(tm[m])),
        "ref": float(np.median(ref[m])),
        "corr": float(np.corrcoef(tm[m], ref[m])[0, 1]),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the flimgru binary")
    ap.add_argument("--data", required=True, help="the real-data folder")
    ap.add_argument("--work", required=True, help="an empty scratch folder")
    ap.add_argument("--doc", required=True, help="docs/realdata.md")
    ap.add_argument(
        "--build-opt",
        action="append",
        default=[],
        help="an extra option for flimgru build (repeatable; e.g. a small --float-samples for a smoke run)",
    )
    a = ap.parse_args()
    binary, data, work = os.path.abspath(a.bin), os.path.abspath(a.data), os.path.abspath(a.work)

    files = sorted(f for f in os.listdir(data) if f.endswith((".ptu", ".sdt", ".phu")))
    if not files:
        raise SystemExit(f"realdata-check: no .ptu/.sdt/.phu file in {data}")
    with open(a.doc) as f:
        doc = f.read()
    if BEGIN not in doc or END not in doc:
        raise SystemExit(f"realdata-check: {a.doc} lacks the realdata-check markers")

    bare = os.path.join(work, "new-user")
    os.makedirs(bare)
    print("realdata-check: map every file with no options", flush=True)
    first = [map_file(binary, data, f, bare) for f in files]

    built = os.path.join(work, "instruments")
    os.makedirs(os.path.join(built, "models"))
    builds = []
    for name, source, opts in INSTRUMENTS:
        inst = f"{name}.inst.json"
        opts = [os.path.join(data, o) if o.endswith(".asc") else o for o in opts]
        print(f"realdata-check: describe and build the {name} instrument ({source})", flush=True)
        code, secs_i, text = run([binary, "instrument", os.path.join(data, source), *opts, "-o", inst], built)
        if code != 0:
            raise SystemExit(f"realdata-check: flimgru instrument {source} failed: {first_error(text)}")
        code, secs_b, text = run(
            [binary, "build", "--instrument", inst, "--out", os.path.join("models", name), *a.build_opt], built
        )
        if code != 0:
            raise SystemExit(f"realdata-check: flimgru build for {source} failed: {first_error(text)}")
        cmd = " ".join(["flimgru instrument", source, *[os.path.relpath(o, data) if o.startswith(data) else o for o in opts], "-o", inst])
        extra = "".join(" " + o for o in a.build_opt)
        summary = eval_summary(os.path.join(built, "models", name))
        builds.append((name, cmd, f"flimgru build --instrument {inst} --out models/{name}{extra}", secs_b, summary))
    print("realdata-check: map every file again, with the built models under ./models", flush=True)
    second = [map_file(binary, data, f, built) for f in files]

    lines = [BEGIN, ""]
    lines.append(
        f"Generated by `bash scripts/realdata-check.sh` ({len(files)} recordings; times are wall "
        "seconds on the machine that ran it)."
    )
    lines += ["", "### Every file, as a new user runs it", ""]
    lines.append("| file | `flimgru map FILE` in an empty folder | s | with the built models under ./models | s | median tau_m (ns) |")
    lines.append("|---|---|---:|---|---:|---:|")
    for r1, r2 in zip(first, second):
        med = r2.get("median", math.nan)
        lines.append(
            f"| {r1['file']} | {outcome(r1)} | {r1['secs']:.1f} | {outcome(r2)} | {r2['secs']:.1f} | {fmt(med)} |"
        )
    lines += ["", "### The instrument models", ""]
    lines.append(
        "Each build's eval table on simulated pixels of its instrument: F at 0.5 / 1 / 2 ns with "
        "1,000 photons and at 1 ns with 5,000, the network's (the mono MLE's with the IRF known)."
    )
    lines.append("")
    lines.append("| instrument | commands | build wall time | hardware student's eval |")
    lines.append("|---|---|---:|---|")
    for name, c1, c2, secs, summary in builds:
        lines.append(f"| {name} | `{c1}`; `{c2}` | {secs / 60:.1f} min | {summary} |")

    lines += ["", "### Against the labs' lifetimes", ""]
    lines.append("| recording | reference | pixels | median tau_m, ours (ns) | median, reference (ns) | difference (ns) | correlation | target | met |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---|---|")
    by_file = {r["file"]: r for r in second}
    for f, prefix in SPCIMAGE.items():
        r = by_file.get(f)
        if r is None or r["code"] != 0:
            lines.append(f"| {f} | SPCImage | - | - | - | - | - | 0.15 ns, 0.8 | no (did not map) |")
            continue
        c = spcimage(data, prefix, r["cols"])
        met = abs(c["diff"]) <= 0.15 and c["corr"] >= 0.8
        lines.append(
            f"| {f} | SPCImage per-pixel fits, >= 500 photons | {c['pixels']:,} | {fmt(c['ours'])} | {fmt(c['ref'])} | "
            f"{c['diff']:+.3f} | {fmt(c['corr'])} | within 0.15 ns, correlation >= 0.8 | {'yes' if met else 'no'} |"
        )
    f, truth = BEADS
    r = by_file.get(f)
    if r is not None and r["code"] == 0:
        d = r["median"] - truth
        lines.append(
            f"| {f} | {truth} ns (published) | {r['pixels']:,} | {fmt(r['median'])} | {truth:.3f} | {d:+.3f} | - | "
            f"within 0.1 ns | {'yes' if abs(d) <= 0.1 else 'no'} |"
        )
    f, rel = SYMPHOTIME
    r = by_file.get(f)
    if r is not None and r["code"] == 0:
        c = symphotime(data, rel, r["cols"])
        lines.append(
            f"| {f} | SymPhoTime fast lifetime | {c['pixels']:,} | {fmt(c['ours'])} | {fmt(c['ref'])} | "
            f"{c['ours'] - c['ref']:+.3f} | {fmt(c['corr'])} | - | - |"
        )
    lines += ["", END]
    start, stop = doc.index(BEGIN), doc.index(END) + len(END)
    new = doc[:start] + "\n".join(lines) + doc[stop:]
    tmp = a.doc + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, a.doc)
    print("\n".join(lines[2:-2]))
    print(f"realdata-check: wrote {a.doc}")


if __name__ == "__main__":
    sys.exit(main())
